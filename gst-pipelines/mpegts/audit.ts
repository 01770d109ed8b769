/**
 * MPEG-TS receive audit (pure: bytes and their arrival time in, counters out).
 *
 * The test hub feeds it every buffer its srtsrc receives, so a test can assert "audio
 * unbroken" as "no Opus frame missing" instead of by timing. Any chunking works (whole
 * 1316-byte SRT messages, bytes, packets cut in two). A packet starts at a 0x47 that
 * another 0x47 follows 188 bytes on, or that the buffer ends 188 bytes after (as in
 * ts-packetizer: whole SRT messages are taken at once); anything else is junk, skipped.
 *
 * Per elementary stream (H.264 = stream_type 0x1b, Opus = stream_type 0x06 with an
 * 'Opus' registration descriptor, PIDs learnt from PAT/PMT and followed when the PMT
 * changes, e.g. when ts-merge adds the audio entry) it counts:
 * - Pes: PES starts seen. mpegtsmux writes one input buffer per PES, so one PES is one
 *   Opus packet or one video access unit.
 * - Frames: PES received whole. Broken: PES hit by a continuity-counter error between
 *   their first and last packet, or cut short of their PES_packet_length; not frames.
 *   A PES whose first packet was lost is not seen at all: it shows up as a PTS hole.
 * - PtsHoles / MissingMs / LongestGapMs: the frame duration is learnt as the most
 *   common of the first PTS steps (or given); a step longer than 1.5 frames is a hole of
 *   (step - frame). MissingMs = all holes + one frame per broken PES; LongestGapMs = the
 *   largest hole. PTS are 33-bit (wrap handled); a step backwards (a sender restart, or
 *   B-frames, which our encoder does not make) counts in PtsBackwards, not as a hole.
 * - CcErrors: continuity errors on the stream's PID (a packet repeated once is allowed
 *   and ignored; packets without payload and null packets do not count).
 * - ArrivalMaxGapMs: the largest wall-clock gap between successive PES starts, from the
 *   `now` given with each push: a late but complete stream has these, not PTS holes.
 *
 * `snapshot()` gives the totals, `takeInterval()` the counts since its previous call.
 * Both are flat, JSON-able: `audioFrames`, `audioMissingMs`, `videoBroken`, ...
 */
import { NULL_PID, TS_PACKET_SIZE, crc32Mpeg2 } from './packetizer.js';

const SYNC = 0x47;
const PTS_WRAP = 2 ** 33;
const TICKS_PER_MS = 90;
/** PTS steps looked at before the frame duration is decided. */
const LEARN_STEPS = 8;

type Kind = 'audio' | 'video';
const STREAM_FIELDS = [
  'Pes', 'Frames', 'Broken', 'CcErrors', 'PtsHoles', 'PtsBackwards', 'MissingMs', 'LongestGapMs', 'ArrivalMaxGapMs',
] as const;
type StreamField = (typeof STREAM_FIELDS)[number];
const COUNTERS = [
  'packets', 'junkBytes', 'resyncs', 'ccErrors',
  ...(['audio', 'video'] as const).flatMap((k) => STREAM_FIELDS.map((f) => `${k}${f}` as const)),
] as const;
type CounterName = (typeof COUNTERS)[number];

export type TsAuditCounters = Record<CounterName, number>;

export interface TsAuditSnapshot extends TsAuditCounters {
  pmtPid: number | null;
  audioPid: number | null;
  videoPid: number | null;
  /** Frame duration used for holes: given, learnt, or null while still learning. */
  audioFrameMs: number | null;
  videoFrameMs: number | null;
  /** PTS (90 kHz, 33-bit) of the latest PES start. */
  audioLastPts: number | null;
  videoLastPts: number | null;
}

export interface TsAuditOptions {
  /** Opus frame duration; learnt from the PTS steps when absent. */
  audioFrameMs?: number;
  /** Video frame duration; learnt from the PTS steps when absent. */
  videoFrameMs?: number;
}

/** Cumulative and since-last-take counters, updated together. */
class Tally {
  total = Tally.zero();
  interval = Tally.zero();
  private static zero(): TsAuditCounters {
    return Object.fromEntries(COUNTERS.map((k) => [k, 0])) as TsAuditCounters;
  }
  add(k: CounterName, n = 1): void {
    this.total[k] += n;
    this.interval[k] += n;
  }
  max(k: CounterName, v: number): void {
    this.total[k] = Math.max(this.total[k], v);
    this.interval[k] = Math.max(this.interval[k], v);
  }
  take(): TsAuditCounters {
    const taken = this.interval;
    this.interval = Tally.zero();
    return taken;
  }
}

function readPts(b: Buffer, o: number): number {
  const high = ((b[o]! >> 1) & 0x07) * 2 ** 30;
  return high + ((b[o + 1]! << 22) | ((b[o + 2]! >> 1) << 15) | (b[o + 3]! << 7) | (b[o + 4]! >> 1));
}

/** One elementary stream: its open PES, its PTS chain, its arrival times. */
class StreamAudit {
  pid: number | null = null;
  frameTicks: number | null;
  lastPts: number | null = null;
  /** PES being received: bytes still expected (null = unbounded) and whether it is broken. */
  private open: { remaining: number | null; broken: boolean } | null = null;
  private lastArrival: number | null = null;
  /** PTS steps and broken PES seen before the frame duration was known. */
  private steps: number[] = [];
  private unpricedBroken = 0;

  constructor(
    private readonly kind: Kind,
    private readonly tally: Tally,
    private readonly givenTicks: number | null,
  ) {
    this.frameTicks = givenTicks;
  }

  /** The PMT moved this stream to another PID (or removed it): start afresh. */
  retarget(pid: number | null): void {
    this.pid = pid;
    this.frameTicks = this.givenTicks;
    this.lastPts = null;
    this.open = null;
    this.lastArrival = null;
    this.steps = [];
    this.unpricedBroken = 0;
  }

  onCcError(): void {
    this.count('CcErrors');
    if (this.open) this.open.broken = true;
  }

  onPayload(payload: Buffer, pusi: boolean, now: number): void {
    if (pusi) {
      if (this.open) this.finish(this.open.broken || (this.open.remaining ?? 0) > 0);
      this.count('Pes');
      if (this.lastArrival !== null) this.tally.max(`${this.kind}ArrivalMaxGapMs`, now - this.lastArrival);
      this.lastArrival = now;
      const startCode = payload.length >= 9 && payload[0] === 0 && payload[1] === 0 && payload[2] === 1;
      const length = startCode ? payload.readUInt16BE(4) : 0;
      this.open = { remaining: length > 0 ? length + 6 : null, broken: false };
      if (startCode && payload.length >= 14 && (payload[7]! & 0x80) !== 0) this.onPts(readPts(payload, 9));
    }
    const open = this.open;
    if (!open || open.remaining === null) return; // rest of a PES whose start was lost, or unbounded
    open.remaining -= payload.length;
    if (open.remaining <= 0) this.finish(open.broken);
  }

  private finish(broken: boolean): void {
    this.open = null;
    this.count(broken ? 'Broken' : 'Frames');
    if (!broken) return;
    if (this.frameTicks === null) this.unpricedBroken++;
    else this.count('MissingMs', this.frameTicks / TICKS_PER_MS);
  }

  private onPts(pts: number): void {
    const last = this.lastPts;
    this.lastPts = pts;
    if (last === null) return;
    const step = (pts - last + PTS_WRAP) % PTS_WRAP;
    if (step > PTS_WRAP / 2) this.count('PtsBackwards');
    else if (step > 0 && this.frameTicks !== null) this.onStep(step, this.frameTicks);
    else if (step > 0) {
      this.steps.push(step);
      if (this.steps.length >= LEARN_STEPS) this.learn();
    }
  }

  /** Frame duration = the most common step (the smallest of equals); replays what waited. */
  private learn(): void {
    const seen = new Map<number, number>();
    for (const s of this.steps) seen.set(s, (seen.get(s) ?? 0) + 1);
    const [ticks] = [...seen].sort(([a, na], [b, nb]) => nb - na || a - b)[0]!;
    this.frameTicks = ticks;
    for (const s of this.steps) this.onStep(s, ticks);
    this.count('MissingMs', (this.unpricedBroken * ticks) / TICKS_PER_MS);
    this.steps = [];
    this.unpricedBroken = 0;
  }

  private onStep(step: number, frame: number): void {
    if (step * 2 <= frame * 3) return;
    const holeMs = (step - frame) / TICKS_PER_MS;
    this.count('PtsHoles');
    this.count('MissingMs', holeMs);
    this.tally.max(`${this.kind}LongestGapMs`, holeMs);
  }

  private count(field: StreamField, n = 1): void {
    this.tally.add(`${this.kind}${field}`, n);
  }
}

/** The single-packet PSI section at the start of a payload, CRC-checked; null otherwise. */
function readSection(payload: Buffer): { tableId: number; body: Buffer } | null {
  const start = 1 + (payload[0] ?? 0xff);
  if (start + 3 > payload.length) return null;
  const end = start + 3 + (((payload[start + 1]! & 0x0f) << 8) | payload[start + 2]!);
  if (end - start < 12 || end > payload.length) return null;
  const section = payload.subarray(start, end);
  if (crc32Mpeg2(section) !== 0) return null;
  return { tableId: section[0]!, body: section.subarray(0, section.length - 4) };
}

/** First H.264 and first Opus PID of a PMT section body. */
function parsePmt(body: Buffer): Record<Kind, number | null> {
  const pids: Record<Kind, number | null> = { audio: null, video: null };
  if (body.length < 12) return pids;
  for (let o = 12 + (body.readUInt16BE(10) & 0x0fff); o + 5 <= body.length; ) {
    const type = body[o]!;
    const pid = body.readUInt16BE(o + 1) & 0x1fff;
    const infoEnd = Math.min(body.length, o + 5 + (body.readUInt16BE(o + 3) & 0x0fff));
    if (type === 0x1b) pids.video ??= pid;
    for (let d = o + 5; type === 0x06 && d + 6 <= infoEnd; d += 2 + body[d + 1]!) {
      if (body[d] === 0x05 && body[d + 1]! >= 4 && body.toString('latin1', d + 2, d + 6) === 'Opus') pids.audio ??= pid;
    }
    o = infoEnd;
  }
  return pids;
}

/**
 * Where the next packet starts: `o` if 0x47 is there and 188 bytes on (or the buffer
 * ends right after it); else, with two packets' worth of bytes to look at, the first
 * confirmed start (one inside a 0x47-led packet means that packet was cut short),
 * `o` itself when junk follows a whole packet, or the first offset junk can no longer
 * hide a start before. null: decide when more bytes have come.
 */
function nextPacketAt(d: Buffer, o: number): number | null {
  const confirmed = (p: number): boolean =>
    d[p] === SYNC && (p + TS_PACKET_SIZE === d.length || d[p + TS_PACKET_SIZE] === SYNC);
  if (confirmed(o)) return o;
  if (d.length - o < 2 * TS_PACKET_SIZE) return null;
  for (let p = o + 1; p + TS_PACKET_SIZE <= d.length; p++) {
    if (confirmed(p)) return d[o] === SYNC && p >= o + TS_PACKET_SIZE ? o : p;
  }
  return d[o] === SYNC ? o : d.length - TS_PACKET_SIZE + 1;
}

export class TsAudit {
  private readonly tally = new Tally();
  private readonly streams: Record<Kind, StreamAudit>;
  private carry: Buffer = Buffer.alloc(0);
  /** Last continuity counter per PID, | 0x10 once its repeat was seen. */
  private readonly cc = new Map<number, number>();
  private pmtPid: number | null = null;

  constructor(opts: TsAuditOptions = {}) {
    const ticks = (ms: number | undefined): number | null => (ms === undefined ? null : ms * TICKS_PER_MS);
    this.streams = {
      audio: new StreamAudit('audio', this.tally, ticks(opts.audioFrameMs)),
      video: new StreamAudit('video', this.tally, ticks(opts.videoFrameMs)),
    };
  }

  /** Everything received, in any chunking; `now` = arrival time in ms (injected clock). */
  push(buf: Buffer, now: number): void {
    const d = this.carry.length > 0 ? Buffer.concat([this.carry, buf]) : buf;
    let o = 0;
    while (d.length - o >= TS_PACKET_SIZE) {
      const at = nextPacketAt(d, o);
      if (at === null) break; // undecided: wait for more bytes
      if (at > o) {
        this.tally.add('junkBytes', at - o);
        this.tally.add('resyncs');
      }
      o = at;
      if (d.length - o < TS_PACKET_SIZE) break; // junk skipped, no packet start yet
      this.onPacket(d.subarray(o, o + TS_PACKET_SIZE), now);
      o += TS_PACKET_SIZE;
    }
    this.carry = Buffer.from(d.subarray(o));
  }

  snapshot(): TsAuditSnapshot {
    return this.view(this.tally.total);
  }

  /** Counters since the previous call (or the start); PIDs and frame durations as now. */
  takeInterval(): TsAuditSnapshot {
    return this.view(this.tally.take());
  }

  private view(c: TsAuditCounters): TsAuditSnapshot {
    const rounded = Object.fromEntries(COUNTERS.map((k) => [k, Math.round(c[k] * 1000) / 1000])) as TsAuditCounters;
    const ms = (t: number | null): number | null => (t === null ? null : Math.round((t / TICKS_PER_MS) * 1000) / 1000);
    const { audio, video } = this.streams;
    return {
      ...rounded,
      pmtPid: this.pmtPid,
      audioPid: audio.pid,
      videoPid: video.pid,
      audioFrameMs: ms(audio.frameTicks),
      videoFrameMs: ms(video.frameTicks),
      audioLastPts: audio.lastPts,
      videoLastPts: video.lastPts,
    };
  }

  private onPacket(p: Buffer, now: number): void {
    this.tally.add('packets');
    const pid = ((p[1]! & 0x1f) << 8) | p[2]!;
    const afc = (p[3]! >> 4) & 0x03;
    const payloadStart = afc & 0x02 ? 5 + p[4]! : 4;
    if ((afc & 0x01) === 0 || payloadStart >= TS_PACKET_SIZE || pid === NULL_PID) return;
    const discontinuity = (afc & 0x02) !== 0 && p[4]! > 0 && (p[5]! & 0x80) !== 0;
    const cc = p[3]! & 0x0f;
    const last = this.cc.get(pid);
    const repeat = last !== undefined && cc === (last & 0x0f) && !discontinuity;
    const lost = last !== undefined && !repeat && !discontinuity && cc !== ((last + 1) & 0x0f);
    this.cc.set(pid, repeat ? cc | 0x10 : cc);
    const stream = pid === this.streams.audio.pid ? this.streams.audio : pid === this.streams.video.pid ? this.streams.video : null;
    if (lost || (repeat && last > 0x0f)) {
      this.tally.add('ccErrors');
      stream?.onCcError();
    }
    if (repeat) return; // a duplicate (or a third copy): its payload was taken already
    const payload = p.subarray(payloadStart);
    const pusi = (p[1]! & 0x40) !== 0;
    if (stream) stream.onPayload(payload, pusi, now);
    else if (pusi && (pid === 0 || pid === this.pmtPid)) this.onSection(pid, payload);
  }

  private onSection(pid: number, payload: Buffer): void {
    const section = readSection(payload);
    if (pid === 0 && section?.tableId === 0x00) {
      for (let o = 8; o + 4 <= section.body.length; o += 4) {
        if (section.body.readUInt16BE(o) === 0) continue; // network PID entry
        this.pmtPid = section.body.readUInt16BE(o + 2) & 0x1fff;
        break;
      }
    } else if (pid === this.pmtPid && section?.tableId === 0x02) {
      const pids = parsePmt(section.body);
      for (const kind of ['audio', 'video'] as const) {
        if (this.streams[kind].pid !== pids[kind]) this.streams[kind].retarget(pids[kind]);
      }
    }
  }
}
