/**
 * What the parts of a running session share: the channel to the supervisor, the timers
 * stop() clears, and whether the session is stopping (no callback may act after that).
 */
import type { FromWorker, ToWorker } from './protocol.js';

export interface WorkerChannel {
  send(msg: FromWorker): void;
  onMessage(cb: (msg: ToWorker) => void): void;
  exit(code: number): void;
}

export class SessionScope {
  stopping = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly ch: WorkerChannel) {}

  send(msg: FromWorker): void {
    this.ch.send(msg);
  }

  addTimer(t: NodeJS.Timeout): void {
    this.timers.push(t);
  }

  /** A pull answered null (not yet playing, or EOS): ask again shortly, never spin. */
  retryPull(again: () => void): void {
    const t = setTimeout(() => {
      this.timers = this.timers.filter((x) => x !== t);
      if (!this.stopping) again();
    }, 50);
    this.timers.push(t);
  }

  clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }
}
