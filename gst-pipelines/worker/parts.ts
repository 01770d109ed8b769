/**
 * The media worker's small pieces that need no pipeline: per-direction counters, the
 * plugin preload list, the FIFO the muxers write into, the `level` message parser.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, openSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Counter {
  frames: number;
  bytes: number;
  lastAt: number | null;
  firstAt: number | null;
  /** Longest time between two frames since the last stats report. */
  maxGapMs: number;
  mark: { frames: number; bytes: number; at: number };
}

/**
 * Elements whose plugins a warm worker loads in advance (missing ones are skipped). Not
 * srtsink/srtsrc: creating one starts libsrt, whose garbage-collector thread then wakes
 * every second in the idle warm worker for the whole meeting (0.02 CPU-s per 20 s on the
 * benchmark machine, as much as all of its other threads), and the srt plugin costs the
 * session's first pipeline only ~2 ms to load (measured: 1.7–2.0 ms).
 */
export const PRELOAD_ELEMENTS = [
  'videotestsrc', 'videoconvert', 'videoscale', 'videorate', 'textoverlay', 'timeoverlay', 'clockoverlay', 'valve', 'queue', 'tee',
  'x264enc', 'h264parse', 'mpegtsmux', 'fdsink', 'appsrc', 'tsdemux', 'avdec_h264', 'appsink', 'fakesink', 'pngenc',
  'audiotestsrc', 'audioconvert', 'audioresample', 'webrtcdsp', 'webrtcechoprobe', 'level', 'volume', 'opusenc', 'opusdec',
];

/** Both ends of a FIFO, opened; the name is unlinked at once. Write end blocking. */
export function makeTsFifo(): { wfd: number; rfd: number } {
  const fifo = path.join(os.tmpdir(), `ep-ts-${process.pid}-${randomBytes(4).toString('hex')}`);
  execFileSync('mkfifo', ['-m', '600', fifo]);
  try {
    const wfd = openSync(fifo, fsConstants.O_RDWR);
    const rfd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    return { wfd, rfd };
  } finally {
    unlinkSync(fifo);
  }
}

/** How long the SRT send side may take to connect before it counts as stalled. */
export const SEND_CONNECT_GRACE_MS = 10_000;

export const newCounter = (now: number): Counter => ({ frames: 0, bytes: 0, lastAt: null, firstAt: null, maxGapMs: 0, mark: { frames: 0, bytes: 0, at: now } });

/**
 * A stats report's rates for one direction: frames per second and kbit/s since the
 * counter's last mark, and the longest gap between frames since then — a gap still open
 * counts too, so a freeze shows while it lasts, not only when it ends. Moves the mark.
 */
export function takeRate(c: Counter, now: number): { fps: number | null; kbps: number | null; maxGapMs: number | null } {
  const dt = (now - c.mark.at) / 1000;
  const fps = dt > 0 ? Math.round(((c.frames - c.mark.frames) / dt) * 10) / 10 : null;
  const kbps = dt > 0 ? Math.round(((c.bytes - c.mark.bytes) * 8) / 1000 / dt) : null;
  const maxGapMs = c.lastAt === null ? null : Math.max(c.maxGapMs, now - c.lastAt);
  c.mark = { frames: c.frames, bytes: c.bytes, at: now };
  c.maxGapMs = 0;
  return { fps, kbps, maxGapMs };
}

/** Counts one frame (or message) arriving at `now`. */
export function countArrival(c: Counter, now: number, bytes: number): void {
  countFrames(c, now, 1);
  c.bytes += bytes;
}

/** Counts `n` frames seen at `now` (a pull, a push or a sampled counter); the gap since the last ones. */
export function countFrames(c: Counter, now: number, n: number): void {
  if (n <= 0) return;
  if (c.lastAt !== null) c.maxGapMs = Math.max(c.maxGapMs, now - c.lastAt);
  c.frames += n;
  c.lastAt = now;
}

/** Parses a `level` element's `rms` field, e.g. "< -31.178265 >", into dBFS (null for silence). */
export function parseLevelDb(value: unknown): number | null {
  const nums = String(value ?? '')
    .match(/-?\d+(\.\d+)?(e-?\d+)?|-?inf/gi)
    ?.map((s) => (/inf/i.test(s) ? -Infinity : Number(s)));
  if (!nums || nums.length === 0) return null;
  const max = Math.max(...nums);
  return Number.isFinite(max) ? Math.round(max * 10) / 10 : null;
}

