/**
 * The box's one button: debounced, a short press is `onPress` (the integrator maps it to
 * raise-hand or mic mute), a long hold warns (`onWarn(true)`: the LEDs flicker
 * `reset_warning`) and at `resetAfterMs` asks for a factory reset; released before that, the
 * warning is withdrawn (`onWarn(false)`) and nothing else happens. Any InputLine drives it
 * (sysfs via onoff, gpiomon, a test's scripted line); time is the injected clock.
 */
import type { Clock, Logger } from '../../lib/index.js';
import type { InputLine } from './gpio.js';

export interface ButtonOptions {
  clock: Clock;
  log: Logger;
  /** A level must hold this long to count (contact bounce). Default 30 ms. */
  debounceMs?: number;
  /** Released within this: a short press. Default 2 s. Between this and the warning: nothing. */
  shortPressMaxMs?: number;
  /** Held this long: the warning. Default 3 s. */
  warnAfterMs?: number;
  /** Held this long in all: factory reset. Default 10 s. */
  resetAfterMs?: number;
  /** Pressed pulls the line low (pull-up wiring, the usual). Default true. */
  activeLow?: boolean;
  onPress(): void;
  onWarn(on: boolean): void;
  onFactoryReset(): void;
}

export class Button {
  private raw: boolean;
  private pressed = false;
  private pressedAt = 0;
  private warned = false;
  private resetDone = false;
  private debounce: unknown = null;
  private warnTimer: unknown = null;
  private resetTimer: unknown = null;
  private closed = false;
  /**
   * A hold counts toward the factory reset only once the line was seen released: a line that
   * rests at the pressed level (wrong `activeLow`, no pull-up, nothing wired) never resets.
   */
  private armed = true;
  private readonly o: Required<Omit<ButtonOptions, 'onPress' | 'onWarn' | 'onFactoryReset'>> & Pick<ButtonOptions, 'onPress' | 'onWarn' | 'onFactoryReset'>;

  constructor(
    private readonly line: InputLine | null,
    opts: ButtonOptions,
  ) {
    this.o = { debounceMs: 30, shortPressMaxMs: 2000, warnAfterMs: 3000, resetAfterMs: 10_000, activeLow: true, ...opts };
    if (!(this.o.shortPressMaxMs <= this.o.warnAfterMs && this.o.warnAfterMs < this.o.resetAfterMs)) {
      throw new RangeError(`button: need shortPressMaxMs (${this.o.shortPressMaxMs}) <= warnAfterMs (${this.o.warnAfterMs}) < resetAfterMs (${this.o.resetAfterMs})`);
    }
    // Released is the resting level: high with a pull-up (active-low), low otherwise.
    this.raw = this.o.activeLow;
  }

  /** Starts watching the line (a button without a line does nothing). */
  async start(): Promise<void> {
    const line = this.line;
    if (!line) return;
    const now = await line.read?.().catch(() => null);
    if (now !== undefined && now !== null && now !== this.o.activeLow) {
      this.armed = false;
      this.o.log.warn({ evt: 'field.button_pressed_at_rest', line: line.describe, activeLow: this.o.activeLow }, 'the button line reads "pressed" at rest (wiring? field.button.activeLow?): the factory reset waits until it reads released');
    }
    line.watch(
      (high) => this.level(high),
      (why) => this.lost(why),
    );
  }

  /** The line can no longer be watched: a hold in progress is called off (its release would never be seen). */
  private lost(why: string): void {
    if (this.closed || !this.pressed) return;
    this.o.log.warn({ evt: 'field.button_lost', why }, 'button line lost during a hold: factory reset cancelled');
    this.pressed = false;
    this.armed = false;
    this.clearHold();
    if (this.warned && !this.resetDone) this.call('onWarn', false);
  }

  /** Is it held now (debounced)? */
  get isPressed(): boolean {
    return this.pressed;
  }

  /** A raw level from the line; it counts once it has held `debounceMs`. */
  level(high: boolean): void {
    if (this.closed) return;
    this.raw = high;
    if (this.debounce !== null) this.o.clock.clearTimeout(this.debounce);
    this.debounce = this.o.clock.setTimeout(() => {
      this.debounce = null;
      this.settled(this.raw !== this.o.activeLow);
    }, this.o.debounceMs);
  }

  private settled(pressed: boolean): void {
    if (pressed === this.pressed) return;
    this.pressed = pressed;
    const { clock, log } = this.o;
    if (pressed) {
      this.pressedAt = clock.now();
      this.warned = false;
      this.resetDone = false;
      if (!this.armed) return;
      this.warnTimer = clock.setTimeout(() => {
        this.warnTimer = null;
        this.warned = true;
        log.warn({ evt: 'field.button_reset_warning' }, 'button held: factory reset unless released');
        this.call('onWarn', true);
      }, this.o.warnAfterMs);
      this.resetTimer = clock.setTimeout(() => {
        this.resetTimer = null;
        this.resetDone = true;
        log.warn({ evt: 'field.button_factory_reset', heldMs: clock.now() - this.pressedAt }, 'button held: factory reset');
        this.call('onFactoryReset');
      }, this.o.resetAfterMs);
      return;
    }
    const heldMs = clock.now() - this.pressedAt;
    this.clearHold();
    if (!this.armed) {
      this.armed = true;
      return;
    }
    if (this.resetDone) return;
    if (this.warned) {
      log.info({ evt: 'field.button_reset_cancelled', heldMs }, 'button released: factory reset cancelled');
      this.call('onWarn', false);
    } else if (heldMs < this.o.shortPressMaxMs) {
      log.info({ evt: 'field.button_press', heldMs }, 'button pressed');
      this.call('onPress');
    }
  }

  /** A handler that throws is logged: it must not stop the button (or crash a timer). */
  private call(name: 'onPress' | 'onWarn' | 'onFactoryReset', arg?: boolean): void {
    try {
      if (name === 'onWarn') this.o.onWarn(arg!);
      else this.o[name]();
    } catch (e) {
      this.o.log.error({ evt: 'field.button_handler_failed', handler: name, err: (e as Error).message }, 'button handler failed');
    }
  }

  private clearHold(): void {
    if (this.warnTimer !== null) this.o.clock.clearTimeout(this.warnTimer);
    if (this.resetTimer !== null) this.o.clock.clearTimeout(this.resetTimer);
    this.warnTimer = this.resetTimer = null;
  }

  /** Stops counting; the line belongs to whoever opened it (hardware.ts closes it, once). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.debounce !== null) this.o.clock.clearTimeout(this.debounce);
    this.debounce = null;
    this.clearHold();
  }
}
