/**
 * A recording fake of the media supervisor as the meeting logic uses it (start a plan,
 * stop, status, 'status' events). Answers on a later promise turn, like the real one,
 * and records every call.
 */
import { EventEmitter } from 'node:events';
import type { MediaStatus, SessionPlan, StandbyPlan } from '../../gst-pipelines/index.js';

export class FakeMedia extends EventEmitter {
  /** `start <pipeline>` (`start standby` for the standby plan; ` (encrypted)` with a passphrase) and `stop`, in order. */
  readonly calls: string[] = [];
  private st: MediaStatus = { running: false, plan: null, send: 'off', receive: 'off', restarts: 0, attempt: 0, lastError: null, choices: null, stats: null, workerPid: null, link: null };

  async start(plan: SessionPlan | StandbyPlan, secrets: { passphrase?: string } = {}): Promise<void> {
    await Promise.resolve();
    this.calls.push(`start ${plan.kind === 'session' ? plan.pipeline : 'standby'}${secrets.passphrase ? ' (encrypted)' : ''}`);
    this.st = { ...this.st, running: true, plan: plan.kind, send: plan.kind === 'session' ? 'starting' : 'off', receive: plan.kind === 'session' ? 'starting' : 'off' };
    this.emit('status', this.st);
  }

  async stop(): Promise<void> {
    await Promise.resolve();
    this.calls.push('stop');
    this.st = { ...this.st, running: false, plan: null, send: 'off', receive: 'off' };
  }

  status(): MediaStatus {
    return this.st;
  }

  /** Script: media flows both ways. */
  flowing(): void {
    this.st = { ...this.st, send: 'ok', receive: 'ok' };
    this.emit('status', this.st);
  }
}
