/**
 * System actions deferred until the box is idle (no meeting), one per kind: a flood of
 * `reboot {"when":"idle"}` is one reboot, not thousands of closures.
 */
import type { Logger } from '../lib/index.js';
import { LIMITS } from './limits.js';

export class IdleActions {
  private readonly waiting = new Map<string, () => Promise<void>>();

  constructor(private readonly log: Logger) {}

  /** Asking again for a kind already waiting changes nothing. */
  add(kind: string, fn: () => Promise<void>): void {
    if (this.waiting.has(kind)) return;
    if (this.waiting.size >= LIMITS.idleActions) throw new Error(`idle actions: more than ${LIMITS.idleActions} kinds`); // a programming error: kinds are a closed list
    this.waiting.set(kind, fn);
  }

  /** The box became idle: runs (and forgets) what waited, in the order asked. */
  async run(): Promise<void> {
    const w = [...this.waiting.values()];
    this.waiting.clear();
    for (const fn of w) await fn().catch((e: unknown) => this.log.error({ evt: 'system.idle_action_failed', err: (e as Error).message }, 'deferred action failed'));
  }
}
