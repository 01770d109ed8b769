import { describe, expect, it } from 'vitest';
import {
  crc32Mpeg2,
  NULL_PID,
  SRT_MESSAGE_SIZE,
  TS_PACKET_SIZE,
  TsPacketizer,
} from '../../gst-pipelines/mpegts/packetizer.js';

const PMT_PID = 0x1000;
const VIDEO_PID = 0x41;
const AUDIO_PID = 0x42;

/** A tiny TS writer: PAT, PMT (H.264 + Opus), PES split over packets, continuity counters. */
class TsBuilder {
  private readonly cc = new Map<number, number>();

  packet(pid: number, payload: Buffer, opts: { pusi?: boolean; pcr?: boolean } = {}): Buffer {
    const p = Buffer.alloc(TS_PACKET_SIZE, 0xff);
    const cc = this.cc.get(pid) ?? 0;
    this.cc.set(pid, (cc + 1) & 0x0f);
    p[0] = 0x47;
    p[1] = (opts.pusi ? 0x40 : 0) | (pid >> 8);
    p[2] = pid & 0xff;
    const afNeeded = opts.pcr ? 8 : 0; // length byte + flags + PCR
    const stuffing = 184 - afNeeded - payload.length;
    if (stuffing < 0) throw new Error('payload too large');
    const afLen = afNeeded > 0 || stuffing > 0 ? afNeeded + stuffing : 0;
    p[3] = (afLen > 0 ? 0x30 : 0x10) | cc;
    if (afLen > 0) {
      p[4] = afLen - 1;
      if (afLen > 1) p[5] = opts.pcr ? 0x10 : 0x00;
    }
    payload.copy(p, 4 + afLen);
    return p;
  }

  private section(tableId: number, idExt: number, data: Buffer): Buffer {
    const len = 5 + data.length + 4;
    const head = Buffer.from([tableId, 0xb0 | (len >> 8), len & 0xff, idExt >> 8, idExt & 0xff, 0xc1, 0, 0]);
    const body = Buffer.concat([head, data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32Mpeg2(body));
    return Buffer.concat([Buffer.from([0]), body, crc]); // pointer_field 0
  }

  pat(): Buffer {
    const d = Buffer.from([0, 1, 0xe0 | (PMT_PID >> 8), PMT_PID & 0xff]);
    return this.packet(0, this.section(0x00, 1, d), { pusi: true });
  }

  pmt(opts: { opusDescriptor?: boolean } = {}): Buffer {
    const opus = opts.opusDescriptor === false ? Buffer.alloc(0) : Buffer.from([0x05, 4, ...Buffer.from('Opus')]);
    const d = Buffer.concat([
      Buffer.from([0xe0 | (VIDEO_PID >> 8), VIDEO_PID & 0xff, 0xf0, 0]), // PCR PID, no program info
      Buffer.from([0x1b, 0xe0 | (VIDEO_PID >> 8), VIDEO_PID & 0xff, 0xf0, 0]),
      Buffer.from([0x06, 0xe0 | (AUDIO_PID >> 8), AUDIO_PID & 0xff, 0xf0, opus.length]),
      opus,
    ]);
    return this.packet(PMT_PID, this.section(0x02, 1, d), { pusi: true });
  }

  /** A PES of `size` payload bytes split over TS packets; PES_packet_length 0 if unbounded. */
  pes(pid: number, size: number, opts: { unbounded?: boolean; pcr?: boolean } = {}): Buffer[] {
    const header = Buffer.from([0, 0, 1, pid === VIDEO_PID ? 0xe0 : 0xbd, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1]);
    if (!opts.unbounded) header.writeUInt16BE(size + header.length - 6, 4);
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = (i * 7 + pid) & 0xff;
    let rest = Buffer.concat([header, body]);
    const out: Buffer[] = [];
    while (rest.length > 0) {
      const first = out.length === 0;
      const room = 184 - (first && opts.pcr ? 8 : 0);
      out.push(this.packet(pid, rest.subarray(0, room), { pusi: first, pcr: first && opts.pcr }));
      rest = rest.subarray(room);
    }
    return out;
  }

  /** PES payload size that fills exactly `n` packets (first one with PCR). */
  static exactFit(n: number): number {
    return 176 + (n - 1) * 184 - 14;
  }
}

interface Tagged {
  pkt: Buffer;
  frameEnd: boolean;
}

/** PAT, PMT, then frames of video (varied sizes) with audio PES in between. */
function stream(frames: number, seed = 1): Tagged[] {
  const b = new TsBuilder();
  let x = seed;
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % n;
  };
  const out: Tagged[] = [];
  const add = (pkts: Buffer[], video = false): void =>
    pkts.forEach((pkt, i) => out.push({ pkt, frameEnd: video && i === pkts.length - 1 }));
  for (let f = 0; f < frames; f++) {
    if (f % 10 === 0) add([b.pat(), b.pmt()]);
    add(b.pes(VIDEO_PID, 100 + rnd(8000), { pcr: f % 3 === 0 }), true);
    for (let a = rnd(3); a > 0; a--) add(b.pes(AUDIO_PID, 60 + rnd(250)));
  }
  return out;
}

const pidOf = (p: Buffer): number => ((p[1]! & 0x1f) << 8) | p[2]!;

function packets(chunks: Buffer[]): Buffer[] {
  const all = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let o = 0; o < all.length; o += TS_PACKET_SIZE) out.push(all.subarray(o, o + TS_PACKET_SIZE));
  return out;
}

const stripNulls = (pkts: Buffer[]): Buffer => Buffer.concat(pkts.filter((p) => pidOf(p) !== NULL_PID));

function makeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('crc32Mpeg2', () => {
  it('matches the CRC-32/MPEG-2 check value', () => {
    expect(crc32Mpeg2(Buffer.from('123456789'))).toBe(0x0376e6e7);
  });
});

describe('TsPacketizer', () => {
  it('learns the PMT, H.264 and Opus PIDs from PAT/PMT', () => {
    const b = new TsBuilder();
    const tp = new TsPacketizer({ holdMs: 20, now: () => 0 });
    tp.push(Buffer.concat([b.pat(), b.pmt()]));
    expect(tp.stats().pids).toEqual({ pmt: PMT_PID, video: VIDEO_PID, audio: AUDIO_PID });
  });

  it('ignores a private-data stream without the Opus registration and a PMT with a bad CRC', () => {
    const b = new TsBuilder();
    const tp = new TsPacketizer({ holdMs: 20, now: () => 0 });
    tp.push(Buffer.concat([b.pat(), b.pmt({ opusDescriptor: false })]));
    expect(tp.stats().pids.audio).toBeNull();
    const corrupt = b.pmt();
    corrupt[TS_PACKET_SIZE - 10] = corrupt[TS_PACKET_SIZE - 10]! ^ 0xff; // inside the section (payload sits at the end)
    const fresh = new TsPacketizer({ holdMs: 20, now: () => 0 });
    fresh.push(Buffer.concat([b.pat(), corrupt]));
    expect(fresh.stats().pids).toEqual({ pmt: PMT_PID, video: null, audio: null });
  });

  for (const [name, split] of [
    ['one packet per buffer (the binding)', (all: Buffer) => packets([all])],
    ['odd buffer boundaries', (all: Buffer) => splitAt(all, [1, 100, 187, 188, 189, 500, 3000])],
  ] as const) {
    it(`keeps every packet in order, in whole 1316-byte messages: ${name}`, () => {
      const input = stream(60);
      const all = Buffer.concat(input.map((t) => t.pkt));
      const clock = makeClock();
      const tp = new TsPacketizer({ holdMs: 20, now: clock.now });
      const chunks: Buffer[] = [];
      for (const piece of split(all)) {
        clock.advance(1);
        chunks.push(...tp.push(piece), ...tp.flushDue());
      }
      chunks.push(...tp.flush());
      for (const c of chunks) expect(c.length % SRT_MESSAGE_SIZE).toBe(0);
      expect(stripNulls(packets(chunks)).equals(all)).toBe(true);
      const s = tp.stats();
      expect(s.bytesIn).toBe(all.length);
      expect(s.bytesOut).toBe(Buffer.concat(chunks).length);
      expect(s.paddingBytes).toBe(s.bytesOut - all.length);
      expect(s.videoFrames).toBe(60);
      expect(s.framesEnded).toBe(60);
      expect(s.audioPes).toBe(input.filter((t) => pidOf(t.pkt) === AUDIO_PID && t.pkt[1]! & 0x40).length);
      expect(s.junkBytes).toBe(0);
      expect(s.continuityErrors).toBe(0);
    });
  }

  it('pads only at the end of a video frame and sends the frame tail at once', () => {
    const input = stream(40, 7);
    const tp = new TsPacketizer({ holdMs: 1e9, now: () => 0 }); // the hold timer never fires
    for (const t of input) {
      const out = packets(tp.push(t.pkt));
      const firstNull = out.findIndex((p) => pidOf(p) === NULL_PID);
      if (firstNull >= 0) {
        expect(t.frameEnd).toBe(true);
        expect(out.slice(firstNull).every((p) => pidOf(p) === NULL_PID)).toBe(true); // trailing only
      }
      if (t.frameEnd) {
        expect(tp.stats().pendingPackets).toBe(0);
        expect(out.at(firstNull >= 0 ? firstNull - 1 : -1)?.equals(t.pkt)).toBe(true);
      }
    }
    expect(tp.stats().flushes.hold).toBe(0);
  });

  it('holds an audio-only remainder until it fills 7 packets or is holdMs old', () => {
    const b = new TsBuilder();
    const clock = makeClock();
    const tp = new TsPacketizer({ holdMs: 20, now: clock.now });
    tp.push(Buffer.concat([b.pat(), b.pmt()]));
    expect(tp.msUntilDue()).toBe(20);
    expect(tp.push(b.pes(AUDIO_PID, 150)[0]!)).toEqual([]);
    clock.advance(19);
    expect(tp.flushDue()).toEqual([]);
    expect(tp.msUntilDue()).toBe(1);
    clock.advance(1);
    const [chunk, ...more] = tp.flushDue();
    expect(more).toEqual([]);
    expect(chunk!.length).toBe(SRT_MESSAGE_SIZE);
    expect(packets([chunk!]).map(pidOf)).toEqual([0, PMT_PID, AUDIO_PID, NULL_PID, NULL_PID, NULL_PID, NULL_PID]);
    expect(tp.stats()).toMatchObject({ paddingBytes: 4 * 188, audioPes: 1, flushes: { hold: 1 }, lastOutputAt: 1020 });
    expect(tp.msUntilDue()).toBeNull();

    // Seven audio packets go out as one message without padding and without waiting.
    const seven = Array.from({ length: 7 }, () => b.pes(AUDIO_PID, 150)[0]!);
    const outs = seven.map((p) => tp.push(p));
    expect(outs.slice(0, 6).every((o) => o.length === 0)).toBe(true);
    expect(outs[6]![0]!.equals(Buffer.concat(seven))).toBe(true);
    expect(tp.stats().paddingBytes).toBe(4 * 188);
  });

  it('flushes held audio with the next video frame end', () => {
    const b = new TsBuilder();
    const tp = new TsPacketizer({ holdMs: 1e9, now: () => 0 });
    tp.push(Buffer.concat([b.pat(), b.pmt(), b.pes(AUDIO_PID, 100)[0]!]));
    const out = tp.push(Buffer.concat(b.pes(VIDEO_PID, 1000)));
    expect(packets(out).map(pidOf).slice(0, 9)).toEqual([0, PMT_PID, AUDIO_PID, ...Array(6).fill(VIDEO_PID)]);
    expect(out[0]!.length).toBe(2 * SRT_MESSAGE_SIZE);
  });

  it('finds the end of an unbounded video PES by stuffing, or by the next PES start', () => {
    const b = new TsBuilder();
    const tp = new TsPacketizer({ holdMs: 1e9, now: () => 0 });
    tp.push(Buffer.concat([b.pat(), b.pmt()]));
    const stuffed = b.pes(VIDEO_PID, 5000, { unbounded: true });
    stuffed.forEach((p) => tp.push(p));
    expect(tp.stats()).toMatchObject({ framesEnded: 1, pendingPackets: 0 });

    const exact = b.pes(VIDEO_PID, TsBuilder.exactFit(5), { unbounded: true, pcr: true });
    expect(exact).toHaveLength(5);
    exact.forEach((p) => tp.push(p)); // PCR in the first packet is not stuffing
    expect(tp.stats()).toMatchObject({ framesEnded: 1, pendingPackets: 5 });
    const next = b.pes(VIDEO_PID, 300, { unbounded: true });
    const out = packets(tp.push(next[0]!));
    expect(out.map(pidOf)).toEqual([...Array(5).fill(VIDEO_PID), NULL_PID, NULL_PID]);
    expect(tp.stats()).toMatchObject({ framesEnded: 2, videoFrames: 3, pendingPackets: 1 });
  });

  it('ends a bounded PES that fills its last packet exactly (no stuffing)', () => {
    const b = new TsBuilder();
    const tp = new TsPacketizer({ holdMs: 1e9, now: () => 0 });
    tp.push(Buffer.concat([b.pat(), b.pmt()]));
    const exact = b.pes(VIDEO_PID, TsBuilder.exactFit(3), { pcr: true });
    exact.forEach((p) => tp.push(p));
    expect(tp.stats()).toMatchObject({ framesEnded: 1, pendingPackets: 0, paddingBytes: 2 * 188 });
  });

  it('uses the videoPid option before any PMT', () => {
    const b = new TsBuilder();
    const tp = new TsPacketizer({ videoPid: VIDEO_PID, holdMs: 1e9, now: () => 0 });
    const out = tp.push(Buffer.concat(b.pes(VIDEO_PID, 400)));
    expect(out[0]!.length).toBe(SRT_MESSAGE_SIZE);
    expect(tp.stats()).toMatchObject({ videoFrames: 1, framesEnded: 1, pids: { video: VIDEO_PID, pmt: null } });
  });

  it('resynchronises on 0x47 after junk, a truncated packet and a torn tail', () => {
    const input = stream(12, 3);
    const all = Buffer.concat(input.map((t) => t.pkt));
    const junk1 = Buffer.from([1, 2, 0x47, 4, 5, 0x47]); // junk that contains sync bytes
    const truncated = input[30]!.pkt.subarray(0, 90); // a packet cut short
    const pieces = [
      all.subarray(0, 188 * 10),
      junk1,
      all.subarray(188 * 10, 188 * 20),
      truncated,
      all.subarray(188 * 20, 188 * 25 + 77),
      all.subarray(188 * 25 + 77),
    ];
    const tp = new TsPacketizer({ holdMs: 1e9, now: () => 0 });
    const chunks = pieces.flatMap((p) => tp.push(p));
    chunks.push(...tp.flush());
    for (const c of chunks) expect(c.length % SRT_MESSAGE_SIZE).toBe(0);
    expect(stripNulls(packets(chunks)).equals(all)).toBe(true);
    expect(tp.stats()).toMatchObject({ junkBytes: junk1.length + truncated.length, resyncs: 2 });
  });

  it('counts continuity-counter gaps', () => {
    const input = stream(5, 9);
    const tp = new TsPacketizer({ holdMs: 20, now: () => 0 });
    input.forEach((t, i) => {
      if (i !== 20) tp.push(t.pkt);
    });
    expect(tp.stats().continuityErrors).toBe(1);
  });
});

function splitAt(all: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0, i = 0; o < all.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(all.subarray(o, o + n));
    o += n;
  }
  return out;
}
