/**
 * What a bad link does to datagrams besides narrowing (bottleneck.ts's Link does the
 * capacity): random loss, delay with jitter (which reorders, as netem's does), explicit
 * reordering, and blackouts. One `Impairment` per direction of a BottleneckRelay; this
 * kernel has no netem, so it is modelled here, with netem's meaning of each knob:
 *
 * - `lossPct`: each packet is dropped with this probability, independently.
 * - `delayMs` ± `jitterMs`: each packet waits delay + uniform(−jitter, +jitter) ms (never
 *   below 0), independently of its neighbours, so packets closer together than the jitter
 *   can overtake each other.
 * - `inOrder`: jitter without reordering, as netem with a pfifo child or a mobile link's
 *   scheduler: a packet never leaves before the one ahead of it (its wait is stretched).
 * - `reorderPct`: this share of the packets skips the delay and goes at once.
 * - `blackout`: while on, every packet vanishes (the link is down; nothing is closed).
 *
 * Random draws come from a seeded generator: the same seed gives the same drops.
 */
import { performance } from 'node:perf_hooks';
import { mulberry32 } from './fuzz-strings.js';

/** What a Link (bottleneck.ts) or an Impairment needs of a clock (lib/clock.ts's Clock has it; the unit test drives a FakeClock). */
export interface LinkClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: LinkClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface ImpairOptions {
  lossPct?: number;
  delayMs?: number;
  jitterMs?: number;
  reorderPct?: number;
  inOrder?: boolean;
  /** Seed of the random draws (default 1). */
  seed?: number;
}

export interface ImpairTotals {
  inPackets: number;
  outPackets: number;
  lostPackets: number;
  blackoutPackets: number;
  reorderedPackets: number;
}

function checkPct(name: string, v: number): number {
  if (!(v >= 0 && v <= 100)) throw new RangeError(`${name} must be within 0–100 %, got ${v}`);
  return v;
}

function checkMs(name: string, v: number): number {
  if (!(v >= 0)) throw new RangeError(`${name} must be ≥ 0 ms, got ${v}`);
  return v;
}

/** One direction's impairment. Packets go through `pass(data, deliver)`. */
export class Impairment {
  readonly totals: ImpairTotals = { inPackets: 0, outPackets: 0, lostPackets: 0, blackoutPackets: 0, reorderedPackets: 0 };
  private opts: Required<Omit<ImpairOptions, 'seed'>> = { lossPct: 0, delayMs: 0, jitterMs: 0, reorderPct: 0, inOrder: false };
  /** When the last delayed packet leaves (inOrder). */
  private lastOutAt = -Infinity;
  /** inOrder: packets on the link, first out first; any timer that fires sends every one due. */
  private readonly fifo: Array<{ at: number; data: Buffer; deliver: (data: Buffer) => void }> = [];
  private random: () => number;
  private down = false;
  private readonly timers = new Set<unknown>();

  constructor(
    opts: ImpairOptions = {},
    private readonly clock: LinkClock,
  ) {
    this.random = mulberry32(opts.seed ?? 1);
    this.set(opts);
  }

  /** Changes the knobs given (the others keep their values); a seed restarts the draws. */
  set(opts: ImpairOptions): void {
    const next = { ...this.opts };
    if (opts.lossPct !== undefined) next.lossPct = checkPct('lossPct', opts.lossPct);
    if (opts.reorderPct !== undefined) next.reorderPct = checkPct('reorderPct', opts.reorderPct);
    if (opts.delayMs !== undefined) next.delayMs = checkMs('delayMs', opts.delayMs);
    if (opts.jitterMs !== undefined) next.jitterMs = checkMs('jitterMs', opts.jitterMs);
    if (opts.inOrder !== undefined) next.inOrder = opts.inOrder;
    this.opts = next;
    if (opts.seed !== undefined) this.random = mulberry32(opts.seed);
  }

  /** Link down (every packet vanishes, including those already delayed) or up again. */
  blackout(on: boolean): void {
    this.down = on;
  }

  pass(data: Buffer, deliver: (data: Buffer) => void): void {
    this.totals.inPackets++;
    if (this.down) {
      this.totals.blackoutPackets++;
      return;
    }
    const { lossPct, delayMs, jitterMs, reorderPct, inOrder } = this.opts;
    if (lossPct > 0 && this.random() * 100 < lossPct) {
      this.totals.lostPackets++;
      return;
    }
    let waitMs = delayMs + (jitterMs > 0 ? (this.random() * 2 - 1) * jitterMs : 0);
    if (reorderPct > 0 && this.random() * 100 < reorderPct) {
      this.totals.reorderedPackets++;
      waitMs = 0;
    }
    if (waitMs <= 0) return this.out(data, deliver);
    if (inOrder) {
      const now = this.clock.now();
      waitMs = Math.max(waitMs, this.lastOutAt - now);
      this.lastOutAt = now + waitMs;
      this.fifo.push({ at: this.lastOutAt, data, deliver });
    }
    const t = this.clock.setTimeout(() => {
      this.timers.delete(t);
      if (inOrder) return this.flush();
      // The link went down while the packet was on it.
      if (this.down) this.totals.blackoutPackets++;
      else this.out(data, deliver);
    }, Math.max(0, waitMs));
    this.timers.add(t);
  }

  /** inOrder: sends, in order, every packet whose time has come (timers of 1 ms grain may fire out of order). */
  private flush(): void {
    const now = this.clock.now();
    while (this.fifo.length > 0 && this.fifo[0]!.at <= now + 1) {
      const p = this.fifo.shift()!;
      if (this.down) this.totals.blackoutPackets++;
      else this.out(p.data, p.deliver);
    }
  }

  /** Drops what is still on the link. */
  close(): void {
    for (const t of this.timers) this.clock.clearTimeout(t);
    this.timers.clear();
    this.fifo.length = 0;
  }

  private out(data: Buffer, deliver: (data: Buffer) => void): void {
    this.totals.outPackets++;
    deliver(data);
  }
}
