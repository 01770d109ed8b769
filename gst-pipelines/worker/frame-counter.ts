/**
 * A direction's frame counter (send or receive): frames, bytes, when they came, the
 * longest gap between them, and the rates a stats report takes from it.
 */
export interface Counter {
  frames: number;
  bytes: number;
  lastAt: number | null;
  firstAt: number | null;
  /** Longest time between two frames since the last stats report. */
  maxGapMs: number;
  mark: { frames: number; bytes: number; at: number };
}

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
