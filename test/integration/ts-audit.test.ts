/**
 * TsAudit on real mpegtsmux output (x264 + Opus at 20 and 40 ms, 1316-byte messages),
 * made at test time with gst-launch. Expectations after dropping messages come from
 * an independent reference parse of the same bytes (which PES lost which packets),
 * not from the class under test.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TsAudit } from '../../gst-pipelines/mpegts/audit.js';
import type { TsAuditSnapshot } from '../../gst-pipelines/mpegts/audit.js';
import { TsMerger } from '../../gst-pipelines/mpegts/merger.js';
import { PACKETS_PER_MESSAGE, SRT_MESSAGE_SIZE, TS_PACKET_SIZE, nullPacket } from '../../gst-pipelines/mpegts/packetizer.js';

const run = promisify(execFile);
/** threads=1: with sliced threads x264's frame sizes, hence the packet layout, vary from run to run. */
const VIDEO = 'videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency key-int-max=30 threads=1 ! h264parse';
/** 100 buffers of 960 samples at 48 kHz: 2 s, i.e. 100 Opus frames of 20 ms or 50 of 40 ms. */
const AUDIO = 'audiotestsrc num-buffers=100 samplesperbuffer=960 ! audio/x-raw,rate=48000';
/** At 96 kbit/s every Opus PES needs two TS packets (at the default 64 kbit/s a 20 ms one mostly fits in one). */
const OPUS = 'opusenc bitrate=96000';
const gst = (launch: string): Promise<unknown> => run('gst-launch-1.0', ['-q', ...launch.split(' ')]);

let dir = '';
const clips = new Map<number, Buffer>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-ts-audit-'));
  for (const ms of [20, 40]) {
    const file = path.join(dir, `av${ms}.ts`);
    await gst(`${VIDEO} ! mux. ${AUDIO} ! ${OPUS} frame-size=${ms} ! mux. mpegtsmux name=mux alignment=7 ! filesink location=${file}`);
    clips.set(ms, await readFile(file));
  }
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const clip = (ms: number): Buffer => clips.get(ms)!;
const messages = (ts: Buffer): Buffer[] => {
  const out: Buffer[] = [];
  for (let o = 0; o < ts.length; o += SRT_MESSAGE_SIZE) out.push(ts.subarray(o, o + SRT_MESSAGE_SIZE));
  return out;
};

// ---- Reference parse: deliberately simple, no resync, kind from the PES stream_id. ----
type Kind = 'audio' | 'video';
interface RefPes { kind: Kind; pid: number; pts: number; ptsAt: number; packets: number[] }
interface RefPacket { pid: number; cc: number; payload: boolean }

function refParse(ts: Buffer): { packets: RefPacket[]; pes: RefPes[] } {
  const packets: RefPacket[] = [];
  const pes: RefPes[] = [];
  const open = new Map<number, RefPes>();
  for (let i = 0; i * TS_PACKET_SIZE < ts.length; i++) {
    const p = ts.subarray(i * TS_PACKET_SIZE, (i + 1) * TS_PACKET_SIZE);
    expect(p[0]).toBe(0x47);
    const pid = ((p[1]! & 0x1f) << 8) | p[2]!;
    const afc = p[3]! >> 4 & 3;
    const start = afc & 2 ? 5 + p[4]! : 4;
    packets.push({ pid, cc: p[3]! & 0x0f, payload: (afc & 1) === 1 && start < TS_PACKET_SIZE });
    if ((p[1]! & 0x40) && p[start] === 0 && p[start + 1] === 0 && p[start + 2] === 1) {
      const sid = p[start + 3]!;
      const kind: Kind | null = sid === 0xbd ? 'audio' : (sid & 0xf0) === 0xe0 ? 'video' : null;
      if (!kind) continue;
      const b = p.subarray(start + 9, start + 14);
      const pts = ((b[0]! >> 1) & 7) * 2 ** 30 + b[1]! * 2 ** 22 + (b[2]! >> 1) * 2 ** 15 + b[3]! * 2 ** 7 + (b[4]! >> 1);
      const entry = { kind, pid, pts, ptsAt: i * TS_PACKET_SIZE + start + 9, packets: [i] };
      pes.push(entry);
      open.set(pid, entry);
    } else if (open.has(pid)) {
      open.get(pid)!.packets.push(i);
    }
  }
  return { packets, pes };
}

/** What a receiver must report for `kind` when the messages in `dropped` never arrive. */
function expected(ts: Buffer, dropped: Set<number>, kind: Kind) {
  const { packets, pes } = refParse(ts);
  const lost = (i: number): boolean => dropped.has(Math.floor(i / PACKETS_PER_MESSAGE));
  const list = pes.filter((p) => p.kind === kind);
  let frames = 0, broken = 0, unseen = 0, run = 0, longestRun = 0, holes = 0;
  for (const p of list) {
    if (lost(p.packets[0]!)) {
      unseen++;
      if (++run === 1) holes++;
      longestRun = Math.max(longestRun, run);
      continue;
    }
    run = 0;
    if (p.packets.some(lost)) broken++;
    else frames++;
  }
  let ccErrors = 0;
  let last: number | undefined;
  packets.forEach((p, i) => {
    if (p.pid !== list[0]!.pid || !p.payload || lost(i)) return;
    if (last !== undefined && p.cc !== ((last + 1) & 0x0f)) ccErrors++;
    last = p.cc;
  });
  return { pes: list, frames, broken, unseen, longestRun, holes, ccErrors };
}

function feed(chunks: Buffer[], now: (i: number) => number = () => 0): TsAudit {
  const audit = new TsAudit();
  chunks.forEach((c, i) => audit.push(c, now(i)));
  return audit;
}
const rechunk = (b: Buffer, n: number): Buffer[] => {
  const out: Buffer[] = [];
  for (let o = 0; o < b.length; o += n) out.push(b.subarray(o, o + n));
  return out;
};

describe('TsAudit on mpegtsmux output', () => {
  it.each([20, 40])('counts every %i ms Opus frame and every video frame of a clean stream', (ms) => {
    const s = feed(messages(clip(ms))).snapshot();
    const audio = expected(clip(ms), new Set(), 'audio');
    expect(Math.abs(s.audioFrames - 2000 / ms)).toBeLessThanOrEqual(1); // what opusenc was given
    expect(s.audioFrames).toBe(audio.pes.length);
    expect(s).toMatchObject({
      audioPid: 0x42, videoPid: 0x41, audioFrameMs: ms, audioPes: s.audioFrames,
      audioBroken: 0, audioMissingMs: 0, audioPtsHoles: 0, audioCcErrors: 0, audioLongestGapMs: 0,
      videoFrames: 60, videoBroken: 0, videoMissingMs: 0, videoCcErrors: 0, ccErrors: 0, junkBytes: 0,
    });
    expect(s.videoFrameMs).toBeCloseTo(1000 / 30, 1);
    expect(s.audioLastPts).toBe(audio.pes.at(-1)!.pts);
  });

  it.each([20, 40])('reports exactly what dropped 1316-byte messages took (%i ms Opus)', (ms) => {
    const ts = clip(ms);
    const msg = (packet: number): number => Math.floor(packet / PACKETS_PER_MESSAGE);
    const audioPes = refParse(ts).pes.filter((p) => p.kind === 'audio');
    const n = audioPes.length;
    const at = (f: number): RefPes => audioPes[Math.floor(n * f)]!;
    // PES whose start and tail travel in different messages: losing the tail breaks them
    // (the first such one while the frame duration is still being learnt).
    const splits = audioPes.slice(2, -2).filter((p) => msg(p.packets[0]!) !== msg(p.packets.at(-1)!));
    expect(splits.length).toBeGreaterThan(0);
    const dropped = new Set([
      msg(at(0.3).packets[0]!), msg(audioPes[Math.floor(n * 0.3) + 1]!.packets[0]!), // two PES starts in a row
      msg(splits[0]!.packets.at(-1)!),
      msg(splits.at(-1)!.packets.at(-1)!),
      msg(at(0.8).packets[0]!),
      msg(at(0.2).packets[0]!) - 3, // mostly video
    ]);
    const chunks = messages(ts).filter((_, i) => !dropped.has(i));
    const s = feed(chunks).snapshot();

    const a = expected(ts, dropped, 'audio');
    const v = expected(ts, dropped, 'video');
    expect(a.unseen).toBeGreaterThanOrEqual(3);
    expect(a.broken).toBeGreaterThanOrEqual(1);
    expect(v.broken + v.unseen).toBeGreaterThanOrEqual(1);
    expect(s).toMatchObject({
      audioFrames: a.frames, audioBroken: a.broken, audioCcErrors: a.ccErrors, audioPtsHoles: a.holes,
      audioMissingMs: (a.unseen + a.broken) * ms, audioLongestGapMs: a.longestRun * ms, audioFrameMs: ms,
      videoFrames: v.frames, videoBroken: v.broken, videoCcErrors: v.ccErrors, videoPtsHoles: v.holes,
    });
    expect(Math.abs(s.videoMissingMs - ((v.unseen + v.broken) * 1000) / 30)).toBeLessThan(0.05 * (v.unseen + v.broken));

    // Any chunking of the same bytes gives the same counts.
    const bytes = Buffer.concat(chunks);
    expect(feed(rechunk(bytes, 1000)).snapshot()).toEqual(s);
    expect(feed(rechunk(bytes, 1)).snapshot()).toEqual(s);
  });

  it('resynchronises on junk and on a packet cut short, counting the skipped bytes', () => {
    const msgs = messages(clip(20));
    let seed = 7;
    const junk = Buffer.from(Array.from({ length: 37 }, () => ((seed = (seed * 75 + 74) % 65537) % 180) + 0x48)); // 0x48..0xfb: no 0x47
    const cut = nullPacket().subarray(0, 100); // a packet whose tail was lost: starts with 0x47
    const pieces = msgs.flatMap((m, i) =>
      i === 10 ? [m, junk] : i === 50 ? [m, cut] : i === 51 ? [m.subarray(0, 150), m.subarray(150)] : i === 100 ? [m, junk.subarray(0, 5)] : [m]);
    const clean = feed(msgs).snapshot();
    const expectedSnap: TsAuditSnapshot = { ...clean, junkBytes: 37 + 100 + 5, resyncs: 3 };
    expect(feed(pieces).snapshot()).toEqual(expectedSnap);
    expect(feed(rechunk(Buffer.concat(pieces), 1000)).snapshot()).toEqual(expectedSnap);
  });

  it('follows the PTS across its 33-bit wrap', () => {
    const ts = Buffer.from(clip(20));
    const { pes } = refParse(ts);
    const offset = 2 ** 33 - pes[0]!.pts - 90_000; // wraps 1 s into the clip
    for (const p of pes) {
      const pts = (p.pts + offset) % 2 ** 33;
      const lo = pts % 2 ** 30;
      const b = p.ptsAt;
      ts[b] = (ts[b]! & 0xf1) | (Math.floor(pts / 2 ** 30) << 1);
      ts[b + 1] = lo >>> 22;
      ts[b + 2] = ((lo >>> 14) & 0xfe) | 1;
      ts[b + 3] = (lo >>> 7) & 0xff;
      ts[b + 4] = ((lo << 1) & 0xfe) | 1;
    }
    // Drop the first audio PES after the wrap: the hole spans it.
    const audio = refParse(ts).pes.filter((p) => p.kind === 'audio');
    const afterWrap = audio.findIndex((p, k) => k > 0 && p.pts < audio[k - 1]!.pts);
    expect(afterWrap).toBeGreaterThan(10);
    const dropped = new Set([Math.floor(audio[afterWrap]!.packets[0]! / PACKETS_PER_MESSAGE)]);
    const wrapped = feed(messages(ts).filter((_, i) => !dropped.has(i))).snapshot();
    const plain = feed(messages(clip(20)).filter((_, i) => !dropped.has(i))).snapshot();
    expect(wrapped).toEqual({ ...plain, audioLastPts: wrapped.audioLastPts, videoLastPts: wrapped.videoLastPts });
    expect(wrapped.audioPtsBackwards).toBe(0);
    const a = expected(ts, dropped, 'audio');
    expect(a).toMatchObject({ unseen: 1, broken: 0 });
    expect(wrapped).toMatchObject({ audioPtsHoles: 1, audioLongestGapMs: 20, audioMissingMs: 20, videoPtsBackwards: 0 });
  });

  it('tells late arrival from loss: arrival gaps with the injected clock, per interval', () => {
    const msgs = messages(clip(20));
    const audioStarts = refParse(clip(20)).pes.filter((p) => p.kind === 'audio').map((p) => Math.floor(p.packets[0]! / PACKETS_PER_MESSAGE));
    const stallAt = audioStarts[60]!; // the link stalls 500 ms before this message
    const now = (i: number): number => i * 10 + (i >= stallAt ? 500 : 0);
    /** Largest gap between successive audio PES arrivals, for arrivals in messages [from, to). */
    const gaps = (from: number, to: number): number =>
      Math.max(...audioStarts.map((m, k) => (k > 0 && m >= from && m < to ? now(m) - now(audioStarts[k - 1]!) : 0)));

    const audit = new TsAudit();
    msgs.slice(0, stallAt).forEach((m, i) => audit.push(m, now(i)));
    const first = audit.takeInterval();
    msgs.slice(stallAt).forEach((m, i) => audit.push(m, now(stallAt + i)));
    const second = audit.takeInterval();
    const total = audit.snapshot();

    expect(first.audioArrivalMaxGapMs).toBe(gaps(0, stallAt));
    expect(first.audioArrivalMaxGapMs).toBeLessThan(100);
    expect(second.audioArrivalMaxGapMs).toBe(gaps(stallAt, msgs.length));
    expect(total.audioArrivalMaxGapMs).toBeGreaterThanOrEqual(500);
    expect(total.audioMissingMs).toBe(0);
    expect(first.audioFrames + second.audioFrames).toBe(total.audioFrames);
    expect(first.videoFrames + second.videoFrames).toBe(60);
    expect(audit.takeInterval()).toMatchObject({ audioFrames: 0, audioArrivalMaxGapMs: 0, audioPid: 0x42 });
  });

  it('allows one repeat of a packet; ignores null packets and packets without payload', () => {
    const ts = clip(40);
    const pkts = rechunk(ts, TS_PACKET_SIZE);
    const { pes } = refParse(ts);
    const audio = pes.filter((p) => p.kind === 'audio');
    const twice = audio[20]!.packets[0]!; // a PES start: its repeat is not a new PES
    const thrice = audio[30]!.packets.at(-1)!; // its last packet: the third copy is an error, after the PES ended
    const afOnly = Buffer.from(pkts[twice]!);
    afOnly[3] = (afOnly[3]! & 0x0f) | 0x20; // adaptation field only, same CC
    afOnly[4] = 183;
    afOnly[5] = 0;
    const edited = pkts.flatMap((p, i) =>
      i === twice ? [p, p, afOnly, nullPacket()] : i === thrice ? [p, p, p] : i === 40 ? [p, nullPacket()] : [p]);
    const s = feed(rechunk(Buffer.concat(edited), SRT_MESSAGE_SIZE)).snapshot();
    const clean = feed(messages(ts)).snapshot();
    expect(s).toMatchObject({
      audioFrames: clean.audioFrames, audioBroken: 0, audioMissingMs: 0, audioCcErrors: 1, ccErrors: 1,
      audioPes: clean.audioPes, packets: clean.packets + 6,
    });
  });

  it('learns the audio PID when the PMT changes (ts-merge adding the audio entry)', async () => {
    const v = path.join(dir, 'v.ts');
    const a = path.join(dir, 'a.ts');
    await gst(`${VIDEO} ! mux.sink_65 mpegtsmux name=mux alignment=0 ! filesink location=${v} ` +
      `${AUDIO} ! ${OPUS} frame-size=20 ! amux.sink_66 mpegtsmux name=amux alignment=0 ! filesink location=${a}`);
    const [video, audio] = await Promise.all([readFile(v), readFile(a)]);
    const merger = new TsMerger();
    const audit = new TsAudit({ audioFrameMs: 20 });
    const merged: Buffer[] = [merger.pushVideo(video.subarray(0, 40 * TS_PACKET_SIZE))]; // PMT with video only
    audit.push(merged[0]!, 0);
    expect(audit.takeInterval()).toMatchObject({ videoPid: 0x41, audioPid: null, audioPes: 0 });
    let vo = 40 * TS_PACKET_SIZE;
    let ao = 0;
    for (let i = 0; vo < video.length || ao < audio.length; i++) {
      for (const out of [
        merger.pushAudio(audio.subarray(ao, (ao += 1000 + ((i * 37) % 500)))),
        merger.pushVideo(video.subarray(vo, (vo += 3000 + ((i * 91) % 2000)))),
      ]) {
        audit.push(out, i);
        merged.push(out);
      }
    }
    // Audio PES that went out before the first PMT naming 'Opus' cannot be counted.
    const all = Buffer.concat(merged);
    let firstOpusPmt = -1;
    for (let o = 0; firstOpusPmt < 0 && o < all.length; o += TS_PACKET_SIZE) {
      if ((all.readUInt16BE(o + 1) & 0x1fff) === 0x20 && all.subarray(o, o + TS_PACKET_SIZE).includes('Opus')) firstOpusPmt = o / TS_PACKET_SIZE;
    }
    const audioPes = refParse(all).pes.filter((p) => p.kind === 'audio');
    const countable = audioPes.filter((p) => p.packets[0]! > firstOpusPmt).length;
    expect(countable).toBeLessThan(audioPes.length);
    expect(audit.snapshot()).toMatchObject({
      audioPid: 0x42, videoPid: 0x41, audioFrameMs: 20, audioFrames: countable, audioMissingMs: 0, audioBroken: 0, videoFrames: 60,
    });
  });
});
