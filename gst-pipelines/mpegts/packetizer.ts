/**
 * MPEG-TS → SRT message packetizer (pure: no GStreamer, time injected).
 *
 * ffmpeg (and other SRT peers) decode nothing from 188-byte SRT messages, so the
 * sender must emit 1316-byte messages (7 TS packets). `mpegtsmux alignment=7` does,
 * but holds each frame's tail until the next frame fills its 7-packet buffer (about
 * one frame of latency). This class takes the muxer's packets as they come
 * (`mpegtsmux alignment=0` → appsink), sends every full group of 7 at once and, at
 * the end of each video frame, pads the remainder with null packets so the frame's
 * tail leaves immediately. Audio/PSI-only remainders wait until they fill a group
 * or are `holdMs` old (`flushDue()`, called from a timer), so audio does not pay 7x
 * its bandwidth in padding.
 *
 * Frame ends are found in the stream itself, not from buffer boundaries: measured on
 * GStreamer 1.22, `mpegtsmux alignment=0` pushes one GstBufferList per muxed input
 * buffer, but appsink (buffer-list=false) and the Node binding hand over each 188-byte
 * packet as its own sample. A video PES ends when its PES_packet_length is reached;
 * for unbounded video PES (mpegtsmux writes 0 above 65535 bytes) when a packet carries
 * adaptation-field stuffing (mpegtsmux stuffs the last packet of a PES), or at the
 * next PES start. Whole-frame input buffers work the same way.
 *
 * Every returned Buffer is a whole multiple of 1316 bytes: srtsink sends a buffer as
 * consecutive messages of SRTO_PAYLOADSIZE (1316) bytes, the last one short if the
 * size is not a multiple.
 */

export const TS_PACKET_SIZE = 188;
export const PACKETS_PER_MESSAGE = 7;
export const SRT_MESSAGE_SIZE = TS_PACKET_SIZE * PACKETS_PER_MESSAGE;
export const NULL_PID = 0x1fff;
const SYNC = 0x47;
const STREAM_TYPE_H264 = 0x1b;
const STREAM_TYPE_PRIVATE = 0x06;
const REGISTRATION_DESCRIPTOR = 0x05;

/** A null packet (PID 0x1FFF, payload only, 184 bytes of 0xFF). */
export function nullPacket(): Buffer {
  const p = Buffer.alloc(TS_PACKET_SIZE, 0xff);
  p[0] = SYNC;
  p[1] = 0x1f;
  p[2] = 0xff;
  p[3] = 0x10;
  return p;
}

let crcTable: Uint32Array | null = null;

/** CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor). */
export function crc32Mpeg2(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i << 24;
      for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
      crcTable[i] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of data) crc = ((crc << 8) ^ (crcTable[((crc >>> 24) ^ b) & 0xff] ?? 0)) >>> 0;
  return crc;
}

export interface TsPacketizerOptions {
  /** Video PID to use instead of the one learnt from the PMT. */
  videoPid?: number;
  /** Longest time an audio/PSI-only remainder (< 7 packets) waits before it is padded. */
  holdMs: number;
  now: () => number;
}

export interface TsPacketizerStats {
  bytesIn: number;
  bytesOut: number;
  /** Null packets added by this packetizer, in bytes (included in bytesOut). */
  paddingBytes: number;
  /** Bytes discarded while resynchronising on 0x47. */
  junkBytes: number;
  resyncs: number;
  packetsIn: number;
  continuityErrors: number;
  /** Video PES starts (payload_unit_start_indicator on the video PID). */
  videoFrames: number;
  /** Video PES whose end was detected (each one flushed with padding). */
  framesEnded: number;
  audioPes: number;
  /** Flushes at a video frame end / because a remainder was older than holdMs / by flush(). */
  flushes: { frameEnd: number; hold: number; forced: number };
  pendingPackets: number;
  lastOutputAt: number | null;
  pids: { pmt: number | null; video: number | null; audio: number | null };
}

type FlushReason = keyof TsPacketizerStats['flushes'];

interface Section {
  tableId: number;
  /** Section bytes from table_id up to (excluding) the CRC. */
  body: Buffer;
}

/** The single-packet PSI section in a PUSI packet payload, CRC-checked; null otherwise. */
function readSection(payload: Buffer): Section | null {
  const start = 1 + (payload[0] ?? 0xff);
  if (start + 3 > payload.length) return null;
  const length = (((payload[start + 1] ?? 0) & 0x0f) << 8) | (payload[start + 2] ?? 0);
  const end = start + 3 + length;
  if (length < 9 || end > payload.length) return null;
  const section = payload.subarray(start, end);
  if (crc32Mpeg2(section) !== 0) return null;
  return { tableId: section[0] ?? -1, body: section.subarray(0, section.length - 4) };
}

function parsePat(body: Buffer): number | null {
  for (let o = 8; o + 4 <= body.length; o += 4) {
    if (body.readUInt16BE(o) !== 0) return body.readUInt16BE(o + 2) & 0x1fff;
  }
  return null;
}

function parsePmt(body: Buffer): { video: number | null; audio: number | null } {
  let video: number | null = null;
  let audio: number | null = null;
  let o = 12 + (body.readUInt16BE(10) & 0x0fff);
  while (o + 5 <= body.length) {
    const type = body[o] ?? 0;
    const pid = body.readUInt16BE(o + 1) & 0x1fff;
    const infoEnd = o + 5 + (body.readUInt16BE(o + 3) & 0x0fff);
    if (type === STREAM_TYPE_H264 && video === null) video = pid;
    if (type === STREAM_TYPE_PRIVATE && audio === null) {
      for (let d = o + 5; d + 2 <= infoEnd && d + 2 <= body.length; d += 2 + (body[d + 1] ?? 0)) {
        const len = body[d + 1] ?? 0;
        if (body[d] === REGISTRATION_DESCRIPTOR && len >= 4 && body.toString('latin1', d + 2, d + 6) === 'Opus') {
          audio = pid;
        }
      }
    }
    o = infoEnd;
  }
  return { video, audio };
}

/** True when the adaptation field (length `afl`, at byte 4) holds stuffing bytes. */
function hasStuffing(p: Buffer, afl: number): boolean {
  if (afl === 0) return true; // a zero-length adaptation field is one byte of stuffing
  const flags = p[5] ?? 0;
  let used = 1;
  if (flags & 0x10) used += 6; // PCR
  if (flags & 0x08) used += 6; // OPCR
  if (flags & 0x04) used += 1; // splice_countdown
  if (flags & 0x02) used += 1 + (p[5 + used] ?? 0); // transport_private_data
  if (flags & 0x01) used += 1 + (p[5 + used] ?? 0); // adaptation_field_extension
  return afl > used;
}

export class TsPacketizer {
  private readonly opts: TsPacketizerOptions;
  private carry: Buffer = Buffer.alloc(0);
  private pending: Buffer[] = [];
  private pendingAt: number[] = [];
  private out: Buffer[] = [];
  private readonly cc = new Map<number, number>();
  private pmtPid: number | null = null;
  private learntVideoPid: number | null = null;
  private audioPid: number | null = null;
  /** Bytes still expected in the open video PES; null = unbounded; undefined = none open. */
  private videoRemaining: number | null | undefined = undefined;
  private readonly s = {
    bytesIn: 0, bytesOut: 0, paddingBytes: 0, junkBytes: 0, resyncs: 0, packetsIn: 0,
    continuityErrors: 0, videoFrames: 0, framesEnded: 0, audioPes: 0,
    flushes: { frameEnd: 0, hold: 0, forced: 0 },
    lastOutputAt: null as number | null,
  };

  constructor(opts: TsPacketizerOptions) {
    this.opts = { ...opts };
  }

  /**
   * Changes how long an audio/PSI-only remainder may wait. Audio-only (link adaptation)
   * raises it so messages fill with 7 audio packets instead of being padded every 40 ms:
   * ~78 kbit/s on the wire instead of ~270.
   */
  setHoldMs(ms: number): void {
    this.opts.holdMs = ms;
  }

  /** Feed muxer output (any size, any alignment); returns chunks to send now. */
  push(buf: Buffer): Buffer[] {
    this.s.bytesIn += buf.length;
    const now = this.opts.now();
    const d = this.carry.length > 0 ? Buffer.concat([this.carry, buf]) : buf;
    let o = 0;
    while (d.length - o >= TS_PACKET_SIZE) {
      const at = this.nextPacketAt(d, o);
      if (at < 0) {
        // Nothing confirmable yet: drop what can no longer start a packet, keep the rest.
        this.skipJunk(d.length - (TS_PACKET_SIZE - 1) - o);
        o = d.length - (TS_PACKET_SIZE - 1);
        break;
      }
      if (at > o) this.skipJunk(at - o);
      // A view, not a copy: nothing writes into `d` afterwards (the caller's chunk or our
      // own concat), and collect() copies once into the outgoing message.
      this.onPacket(d.subarray(at, at + TS_PACKET_SIZE), now);
      o = at + TS_PACKET_SIZE;
    }
    this.carry = Buffer.from(d.subarray(o));
    if (this.isDue(now)) this.flushPending('hold');
    return this.collect(now);
  }

  /** Pad and send a remainder older than holdMs. Call from a timer (see msUntilDue). */
  flushDue(): Buffer[] {
    const now = this.opts.now();
    if (this.isDue(now)) this.flushPending('hold');
    return this.collect(now);
  }

  /** Pad and send everything pending now (stop, EOS). A partial packet is dropped. */
  flush(): Buffer[] {
    this.flushPending('forced');
    this.carry = Buffer.alloc(0);
    return this.collect(this.opts.now());
  }

  /** Milliseconds until flushDue() has work, 0 if it has now, null if nothing is held. */
  msUntilDue(): number | null {
    const oldest = this.pendingAt[0];
    if (oldest === undefined) return null;
    return Math.max(0, oldest + this.opts.holdMs - this.opts.now());
  }

  /** Video frames seen so far (stats() copies every counter; this is per-chunk cheap). */
  get videoFrames(): number {
    return this.s.videoFrames;
  }

  stats(): TsPacketizerStats {
    return {
      ...this.s,
      flushes: { ...this.s.flushes },
      pendingPackets: this.pending.length,
      pids: { pmt: this.pmtPid, video: this.videoPid(), audio: this.audioPid },
    };
  }

  private videoPid(): number | null {
    return this.opts.videoPid ?? this.learntVideoPid;
  }

  /** Offset of the packet to take at or after `o`, or -1 when none can be confirmed yet. */
  private nextPacketAt(d: Buffer, o: number): number {
    const confirmed = (p: number): boolean =>
      d[p] === SYNC && (p + TS_PACKET_SIZE === d.length || d[p + TS_PACKET_SIZE] === SYNC);
    if (confirmed(o)) return o;
    let s = -1;
    for (let p = o + 1; p + TS_PACKET_SIZE <= d.length; p++) {
      if (confirmed(p)) {
        s = p;
        break;
      }
    }
    if (d[o] !== SYNC) return s;
    // 0x47 at o but not 188 bytes later: either o is a truncated packet (a confirmed
    // start inside it wins) or junk follows a good packet (take it).
    return s >= 0 && s < o + TS_PACKET_SIZE ? s : o;
  }

  private skipJunk(n: number): void {
    if (n <= 0) return;
    this.s.junkBytes += n;
    this.s.resyncs++;
  }

  private onPacket(p: Buffer, now: number): void {
    this.s.packetsIn++;
    const pid = ((p[1]! & 0x1f) << 8) | p[2]!;
    const pusi = (p[1]! & 0x40) !== 0;
    const afc = (p[3]! >> 4) & 0x03;
    const afl = afc & 0x02 ? p[4]! : -1;
    const payloadStart = afl >= 0 ? 5 + afl : 4;
    const hasPayload = (afc & 0x01) !== 0 && payloadStart < TS_PACKET_SIZE;
    const stuffed = afl >= 0 && hasStuffing(p, afl);
    const discontinuity = afl > 0 && (p[5]! & 0x80) !== 0;
    if (hasPayload && pid !== NULL_PID) this.checkContinuity(pid, p[3]! & 0x0f, discontinuity);

    if (hasPayload && pusi && (pid === 0 || pid === this.pmtPid)) {
      this.onSection(pid, p.subarray(payloadStart));
    }
    if (pid === this.audioPid && pusi && hasPayload) this.s.audioPes++;

    let frameEnd = false;
    if (pid === this.videoPid() && hasPayload) {
      const payloadLen = TS_PACKET_SIZE - payloadStart;
      if (pusi) {
        // A new PES also ends one still open (unbounded PES without stuffing at its end).
        if (this.videoRemaining !== undefined) this.endFrame();
        this.s.videoFrames++;
        const pes = p.subarray(payloadStart);
        const startCode = pes.length >= 6 && pes[0] === 0 && pes[1] === 0 && pes[2] === 1;
        const pesLength = startCode ? pes.readUInt16BE(4) : 0;
        this.videoRemaining = pesLength > 0 ? pesLength + 6 - payloadLen : null;
      } else if (typeof this.videoRemaining === 'number') {
        this.videoRemaining -= payloadLen;
      }
      const open = this.videoRemaining;
      if (open !== undefined && (open === null ? stuffed : open <= 0)) {
        this.videoRemaining = undefined;
        frameEnd = true;
      }
    }

    this.pending.push(p);
    this.pendingAt.push(now);
    if (this.pending.length === PACKETS_PER_MESSAGE) this.emit(this.pending.length);
    if (frameEnd) {
      this.s.framesEnded++;
      this.flushPending('frameEnd');
    }
  }

  /** An open video PES ended before the current packet (which is not queued yet). */
  private endFrame(): void {
    this.videoRemaining = undefined;
    this.s.framesEnded++;
    this.flushPending('frameEnd');
  }

  private checkContinuity(pid: number, cc: number, discontinuity: boolean): void {
    const last = this.cc.get(pid);
    if (last !== undefined && !discontinuity && cc !== last && cc !== ((last + 1) & 0x0f)) {
      this.s.continuityErrors++;
    }
    this.cc.set(pid, cc);
  }

  private onSection(pid: number, payload: Buffer): void {
    const section = readSection(payload);
    if (!section) return;
    if (pid === 0 && section.tableId === 0x00) {
      const pmt = parsePat(section.body);
      if (pmt !== null) this.pmtPid = pmt;
    } else if (pid === this.pmtPid && section.tableId === 0x02) {
      const { video, audio } = parsePmt(section.body);
      this.learntVideoPid = video;
      this.audioPid = audio;
    }
  }

  private isDue(now: number): boolean {
    const oldest = this.pendingAt[0];
    return oldest !== undefined && now - oldest >= this.opts.holdMs;
  }

  private flushPending(reason: FlushReason): void {
    if (this.pending.length === 0) return;
    const pad = (PACKETS_PER_MESSAGE - (this.pending.length % PACKETS_PER_MESSAGE)) % PACKETS_PER_MESSAGE;
    for (let i = 0; i < pad; i++) this.pending.push(nullPacket());
    this.s.paddingBytes += pad * TS_PACKET_SIZE;
    this.s.flushes[reason]++;
    this.emit(this.pending.length);
  }

  private emit(n: number): void {
    this.out.push(...this.pending.splice(0, n));
    this.pendingAt.splice(0, n);
  }

  private collect(now: number): Buffer[] {
    if (this.out.length === 0) return [];
    const chunk = Buffer.concat(this.out);
    this.out = [];
    this.s.bytesOut += chunk.length;
    this.s.lastOutputAt = now;
    return [chunk];
  }
}
