/**
 * Scriptable fakes of the host's actions (device/host): the LEDs and systemctl. They
 * answer asynchronously like the real ones, record what they were asked, and fail on cue.
 */
import type { Leds, SystemActions } from '../../device/host/index.js';

export class FakeLeds implements Leds {
  /** The duration of every blink that went through, in order. */
  readonly blinks: number[] = [];
  /** Every blink asked for, failed ones included. */
  readonly asked: number[] = [];
  /** What a blink reports having blinked. */
  names = ['fake'];
  private failures: Error[] = [];

  /** The next blink rejects with `err` (once per call). */
  failNext(err = new Error('leds: permission denied')): this {
    this.failures.push(err);
    return this;
  }

  async blink(ms: number): Promise<{ leds: string[] }> {
    this.asked.push(ms);
    await new Promise((r) => setImmediate(r));
    const err = this.failures.shift();
    if (err) throw err;
    this.blinks.push(ms);
    return { leds: [...this.names] };
  }
}

export type SystemAction = 'reboot' | 'restartService';

export class FakeSystemActions implements SystemActions {
  /** Every action asked for, in order, failed ones included. */
  readonly calls: SystemAction[] = [];
  /** The actions that failed on cue. */
  readonly failed: SystemAction[] = [];
  private failures: Array<{ action: SystemAction; err: Error }> = [];

  /** The next `action` rejects with `err` (once per call). */
  failNext(action: SystemAction, err = new Error(`systemctl ${action}: failed on cue`)): this {
    this.failures.push({ action, err });
    return this;
  }

  reboot(): Promise<void> {
    return this.act('reboot');
  }

  restartService(): Promise<void> {
    return this.act('restartService');
  }

  private async act(action: SystemAction): Promise<void> {
    this.calls.push(action);
    await new Promise((r) => setImmediate(r));
    const i = this.failures.findIndex((f) => f.action === action);
    if (i >= 0) {
      this.failed.push(action);
      throw this.failures.splice(i, 1)[0]!.err;
    }
  }
}
