/**
 * The box's FieldView kept current: what the agent knows (state, hub, faults, …) plus what
 * only the field has (identify, raised hand, the reset warning, the announced next meeting).
 * Listeners (LEDs, standby screen, status page) hear of every change once; a slow tick
 * catches what changes with time alone (the hub "lost" after 20 s, identify running out,
 * a next meeting that has started).
 */
import type { Clock } from '../../lib/index.js';
import { NO_HUB_AFTER_MS, displayString, type FieldView } from './model.js';

/** What the agent supplies on each build. */
export type FieldBase = Omit<FieldView, 'identify' | 'handRaised' | 'resetWarning' | 'nextMeeting' | 'now'>;

/** A next meeting stays on the screen this long after it was due to start (the hub may run late). */
export const NEXT_GRACE_MS = 30 * 60_000;
/** Listeners are the box's own parts (LEDs, screen, page, tests): a handful; more is a leak. */
export const MAX_FIELD_LISTENERS = 16;

export class FieldState {
  private identifyUntil = 0;
  private hand = false;
  private warn = false;
  private next: { title: string; startsAt: string } | null = null;
  private readonly listeners = new Set<(v: FieldView) => void>();
  private last = '';
  private current: FieldView;
  private tick: unknown = null;

  constructor(
    private readonly d: { clock: Clock; base: () => FieldBase; tickMs?: number },
  ) {
    this.current = this.build();
    this.last = key(this.current);
  }

  get view(): FieldView {
    return this.current;
  }

  start(): void {
    this.tick ??= this.d.clock.setInterval(() => this.changed(), this.d.tickMs ?? 1000);
    this.changed();
  }

  stop(): void {
    if (this.tick !== null) this.d.clock.clearInterval(this.tick);
    this.tick = null;
  }

  /** Listens to every change (called with the new view); returns what stops it. */
  subscribe(fn: (v: FieldView) => void): () => void {
    if (this.listeners.size >= MAX_FIELD_LISTENERS) throw new Error(`field listeners: more than ${MAX_FIELD_LISTENERS}`);
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  identifyFor(ms: number): void {
    this.identifyUntil = Math.max(this.identifyUntil, this.d.clock.now() + ms);
    this.changed();
  }

  get handRaised(): boolean {
    return this.hand;
  }

  setHandRaised(raised: boolean): void {
    this.hand = raised;
    this.changed();
  }

  setResetWarning(on: boolean): void {
    this.warn = on;
    this.changed();
  }

  /** The hub's announcement (already validated), or null when it cleared it. */
  setNextMeeting(next: { title: string; startsAt: string } | null): void {
    this.next = next ? { title: displayString(next.title, 512), startsAt: next.startsAt } : null;
    this.changed();
  }

  /** Rebuilds the view; tells the listeners when anything but the time moved. */
  changed(): void {
    const v = this.build();
    this.current = v;
    const k = key(v);
    if (k === this.last) return;
    this.last = k;
    for (const fn of this.listeners) {
      try {
        fn(v);
      } catch {
        // a listener's failure is its own (each logs); the others still hear
      }
    }
  }

  private build(): FieldView {
    const now = this.d.clock.now();
    const base = this.d.base();
    const due = this.next ? Date.parse(this.next.startsAt) : NaN;
    const next = this.next && !(now > due + NEXT_GRACE_MS) ? this.next : null;
    return { ...base, name: base.name === null ? null : displayString(base.name, 128), identify: now < this.identifyUntil, handRaised: this.hand, resetWarning: this.warn, nextMeeting: next, now };
  }
}

/** A view's identity for "did it change": everything but the time, and the hub's down time only by whether it crossed the threshold. */
function key(v: FieldView): string {
  return JSON.stringify({ ...v, now: 0, hub: { ...v.hub, downForMs: v.hub.downForMs >= NO_HUB_AFTER_MS } });
}
