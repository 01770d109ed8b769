/**
 * A clock the test drives (lib/clock.ts's Clock): `now()` moves only when the test says,
 * and timers fire in time order (ties in the order they were set) as the test advances
 * it, with promise jobs settled after each one — so code that awaits between timers runs
 * as it would on the real clock, only without the waiting.
 */
import type { Clock } from '../../lib/index.js';

interface Timer {
  id: number;
  at: number;
  /** The delay it was set with. */
  delay: number;
  fn: () => void;
  /** Interval period; null for a one-shot timeout. */
  every: number | null;
}

/** Lets pending promise jobs and already-queued callbacks run (one turn of the event loop). */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export class FakeClock implements Clock {
  private t: number;
  private nextId = 1;
  private readonly timers = new Map<number, Timer>();
  /** Every timer that fired: when (clock ms) and the delay it was set with, in firing order. */
  readonly fired: Array<{ at: number; delayMs: number }> = [];

  constructor(start: number | string = '2026-03-01T08:00:00Z') {
    this.t = typeof start === 'number' ? start : Date.parse(start);
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    return this.add(fn, ms, null);
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === 'number') this.timers.delete(handle);
  }

  setInterval(fn: () => void, ms: number): unknown {
    return this.add(fn, ms, Math.max(1, ms));
  }

  clearInterval(handle: unknown): void {
    this.clearTimeout(handle);
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.size;
  }

  /** When the next timer fires (clock ms), or null when none is set. */
  nextAt(): number | null {
    return this.earliest(Number.POSITIVE_INFINITY)?.at ?? null;
  }

  /** Moves the clock `ms` forward, firing every timer due on the way, in time order. */
  async advance(ms: number): Promise<void> {
    const target = this.t + Math.max(0, ms);
    for (let timer = this.earliest(target); timer; timer = this.earliest(target)) await this.fire(timer);
    this.t = target;
    await settle();
  }

  /** Moves the clock to the next timer and fires it (and any due at the same ms); false when none is set. */
  async next(): Promise<boolean> {
    const at = this.nextAt();
    if (at === null) return false;
    await this.advance(at - this.t);
    return true;
  }

  private add(fn: () => void, ms: number, every: number | null): number {
    const id = this.nextId++;
    const delay = Number.isFinite(ms) ? Math.max(0, ms) : 0;
    this.timers.set(id, { id, at: this.t + delay, delay, fn, every });
    return id;
  }

  private earliest(notAfter: number): Timer | undefined {
    let best: Timer | undefined;
    for (const x of this.timers.values()) if (x.at <= notAfter && (!best || x.at < best.at || (x.at === best.at && x.id < best.id))) best = x;
    return best;
  }

  private async fire(timer: Timer): Promise<void> {
    this.t = Math.max(this.t, timer.at);
    if (timer.every === null) this.timers.delete(timer.id);
    else timer.at += timer.every;
    this.fired.push({ at: this.t, delayMs: timer.delay });
    timer.fn();
    await settle();
  }
}
