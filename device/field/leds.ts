/**
 * The LEDs show `ledFor(view)` (model.ts): a `LedController` takes LedCodes and renders
 * them on one or two `LedOutput`s. Outputs: a /sys/class/leds LED (gpio-leds overlay LEDs or
 * the board's ACT), where the kernel blinks by itself (`timer` for two-step patterns,
 * `pattern` for N-pulse codes) so Node is not woken per blink; a GPIO line blinked by a
 * software loop on the injectable clock; nothing (logs once).
 *
 * Two LEDs (status + fault): fault codes (FAULT_CODES) blink on the fault LED with the status
 * LED off; every other code on the status LED with the fault LED off; the reset warning and
 * identify on both, so they are seen whichever LED one looks at. One LED: every code on it.
 */
import { access, constants, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Clock, HostPaths, Logger } from '../../lib/index.js';
import type { LedCode, LedCodeName, LedStep } from './model.js';
import type { OutputLine } from './gpio.js';

/** Renders a whole pattern (steps repeated). */
export interface LedOutput {
  readonly describe: string;
  render(steps: readonly LedStep[]): Promise<void>;
  /** Stops blinking and gives the LED back as it was found. */
  close(): Promise<void>;
}

const OFF: readonly LedStep[] = [[false, 0]];
const ON: readonly LedStep[] = [[true, 0]];

/**
 * A pattern in its simplest form: zero-length steps out (unless that leaves nothing),
 * neighbours with the same state merged (also across the wrap), so a steady pattern is one
 * step, a blink two, an N-pulse code 2N.
 */
export function normalizeSteps(steps: readonly LedStep[]): LedStep[] {
  const timed = steps.filter(([, ms]) => ms > 0);
  if (timed.length === 0) return steps.some(([on]) => on) ? [[true, 0]] : [[false, 0]];
  const merged: LedStep[] = [];
  for (const [on, ms] of timed) {
    const last = merged[merged.length - 1];
    if (last && last[0] === on) merged[merged.length - 1] = [on, last[1] + ms];
    else merged.push([on, ms]);
  }
  if (merged.length > 1 && merged[0]![0] === merged[merged.length - 1]![0]) {
    const last = merged.pop()!;
    merged[0] = [last[0], last[1] + merged[0]![1]];
  }
  return merged.length === 1 ? [[merged[0]![0], 0]] : merged;
}

/**
 * The kernel `pattern` trigger's text for square steps: each step as `brightness ms
 * brightness 0` (a zero-time tuple makes the change a step instead of a ramp; see the
 * kernel's sysfs-class-led-trigger-pattern ABI document).
 */
export function patternText(steps: readonly LedStep[], max: number): string {
  return steps.map(([on, ms]) => `${on ? max : 0} ${ms} ${on ? max : 0} 0`).join(' ');
}

const key = (steps: readonly LedStep[]): string => JSON.stringify(steps);

/**
 * A software loop: sets the line at each step on the clock. A line slower than the pattern
 * (gpioset restarts) is not queued behind: it gets the latest state (the line coalesces).
 */
export class SoftwareLed implements LedOutput {
  readonly describe: string;
  private timer: unknown = null;
  private shown = '';
  private closed = false;
  private want: boolean | null = null;
  private applied: boolean | null = null;
  private pumping: Promise<void> | null = null;

  constructor(
    private readonly line: OutputLine,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly restore: boolean | null = false,
  ) {
    this.describe = line.describe;
  }

  async render(steps: readonly LedStep[]): Promise<void> {
    const s = normalizeSteps(steps);
    if (this.closed || key(s) === this.shown) return;
    this.shown = key(s);
    this.stop();
    const run = (i: number): void => {
      const [on, ms] = s[i % s.length]!;
      this.apply(on);
      if (ms > 0) this.timer = this.clock.setTimeout(() => run(i + 1), ms);
    };
    run(0);
  }

  /** Resolves once the line has the latest state asked for. */
  flushed(): Promise<void> {
    return this.pumping ?? Promise.resolve();
  }

  /** One write at a time; states asked for meanwhile collapse to the latest. */
  private apply(on: boolean): void {
    this.want = on;
    this.pumping ??= this.pump().finally(() => (this.pumping = null));
  }

  private async pump(): Promise<void> {
    while (this.want !== null && this.want !== this.applied) {
      const on = this.want;
      try {
        await this.line.set(on);
        this.applied = on;
      } catch (e) {
        this.applied = null;
        this.log.warn({ evt: 'field.led_write_failed', led: this.describe, err: (e as Error).message }, 'LED write failed');
        return;
      }
    }
  }

  private stop(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stop();
    await this.flushed();
    if (this.restore !== null) await this.line.set(this.restore).catch(() => undefined);
    await this.line.close();
  }
}

/** What a /sys/class/leds LED can do and was doing. */
interface SysfsLedState {
  triggers: string[];
  current: string;
  brightness: string;
  max: number;
}

/** Reads `trigger` (`none timer [mmc0] …`), `brightness` and `max_brightness`. */
async function readLedState(dir: string): Promise<SysfsLedState> {
  const trig = await readFile(path.join(dir, 'trigger'), 'utf8');
  const words = trig.trim().split(/\s+/);
  const current = words.find((w) => w.startsWith('['))?.replace(/[[\]]/g, '') ?? 'none';
  const brightness = (await readFile(path.join(dir, 'brightness'), 'utf8').catch(() => '0')).trim();
  const max = Number.parseInt(await readFile(path.join(dir, 'max_brightness'), 'utf8').catch(() => '1'), 10);
  return { triggers: words.map((w) => w.replace(/[[\]]/g, '')), current, brightness, max: Number.isInteger(max) && max > 0 ? max : 1 };
}

/**
 * An LED under /sys/class/leds. Steady: trigger `none` + brightness; two steps: trigger
 * `timer` + delay_on/delay_off; more: trigger `pattern` when the LED offers it, else a
 * software loop writing brightness. Closing writes back the trigger it had (ACT: `mmc0`).
 */
export class SysfsLed implements LedOutput {
  readonly describe: string;
  private shown = '';
  private soft: SoftwareLed | null = null;
  private closed = false;
  /**
   * The kernel's `timer`/`pattern` attributes appear only once their trigger is set, owned by
   * root: a udev rule can open `trigger` and `brightness` to the service's group
   * (install.sh), not them. Refused once, this LED blinks from the software loop from then on.
   */
  private kernelBlinkRefused = false;

  private constructor(
    private readonly dir: string,
    readonly name: string,
    private readonly state: SysfsLedState,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.describe = `/sys/class/leds/${name}`;
  }

  /** Opens LED `name`; throws when it is missing or its trigger cannot be written. */
  static async open(paths: HostPaths, name: string, clock: Clock, log: Logger): Promise<SysfsLed> {
    const dir = path.join(paths.ledsClass, name);
    await access(path.join(dir, 'trigger'), constants.W_OK);
    return new SysfsLed(dir, name, await readLedState(dir), clock, log);
  }

  /** The triggers this LED offers (for the report). */
  get triggers(): readonly string[] {
    return this.state.triggers;
  }

  private write(file: string, text: string): Promise<void> {
    return writeFile(path.join(this.dir, file), text);
  }

  async render(steps: readonly LedStep[]): Promise<void> {
    const s = normalizeSteps(steps);
    if (this.closed || key(s) === this.shown) return;
    this.shown = key(s);
    if (this.soft) await this.soft.close();
    this.soft = null;
    const max = String(this.state.max);
    if (s.length === 1) {
      await this.write('trigger', 'none');
      await this.write('brightness', s[0]![0] ? max : '0');
    } else if (!this.kernelBlinkRefused && (await this.kernelBlink(s))) {
      return;
    } else {
      await this.write('trigger', 'none');
      const line: OutputLine = { describe: this.describe, set: (on) => this.write('brightness', on ? max : '0'), close: async () => undefined };
      this.soft = new SoftwareLed(line, this.clock, this.log, null);
      await this.soft.render(s);
    }
  }

  /** The kernel blinks it (timer for two steps, pattern for more); false when it cannot here. */
  private async kernelBlink(s: LedStep[]): Promise<boolean> {
    try {
      if (s.length === 2) {
        const on = s.find(([x]) => x)![1];
        const off = s.find(([x]) => !x)![1];
        await this.write('trigger', 'timer');
        await this.write('delay_on', String(on));
        await this.write('delay_off', String(off));
        return true;
      }
      if (!this.state.triggers.includes('pattern')) return false;
      await this.write('trigger', 'pattern');
      await this.write('pattern', patternText(s, this.state.max));
      await this.write('repeat', '-1');
      return true;
    } catch (e) {
      this.kernelBlinkRefused = true;
      this.log.info({ evt: 'field.led_kernel_blink_refused', led: this.name, err: (e as Error).message }, `${this.name}: the kernel's blink settings are not writable here; blinking from the agent`);
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.soft?.close();
    this.soft = null;
    if (this.shown === '') return; // never written: nothing to give back
    try {
      await this.write('trigger', this.state.current);
      if (this.state.current === 'none') await this.write('brightness', this.state.brightness);
    } catch (e) {
      this.log.warn({ evt: 'field.led_restore_failed', led: this.name, err: (e as Error).message }, 'could not restore the LED');
    }
  }
}

/** No LED: says once what it would show, then only the changes at debug level. */
export function nullLed(log: Logger, why: string): LedOutput {
  let said = false;
  return {
    describe: 'none',
    async render(steps) {
      if (!said) log.info({ evt: 'field.leds_none', why, steps: normalizeSteps(steps) }, 'no LED to show the status on');
      else log.debug({ evt: 'field.leds_none', steps: normalizeSteps(steps) }, 'would show');
      said = true;
    },
    async close() {},
  };
}

/** The codes that go to the fault LED when there is one. */
export const FAULT_CODES: ReadonlySet<LedCodeName> = new Set<LedCodeName>(['unprovisioned', 'under_voltage', 'no_network', 'no_hub', 'no_camera', 'no_display', 'fault']);
/** The codes shown on every LED. */
export const ALL_LED_CODES: ReadonlySet<LedCodeName> = new Set<LedCodeName>(['reset_warning', 'identify']);

/** Which steps each LED shows for `code` (pure). */
export function splitCode(code: LedCode, hasFault: boolean): { status: readonly LedStep[]; fault: readonly LedStep[] } {
  if (!hasFault || ALL_LED_CODES.has(code.code)) return { status: code.steps, fault: hasFault ? code.steps : OFF };
  return FAULT_CODES.has(code.code) ? { status: OFF, fault: code.steps } : { status: code.steps, fault: OFF };
}

/** Shows LedCodes: the same code again writes nothing; renders are serialized; errors are logged, never thrown. */
export class LedController {
  private code: LedCode | null = null;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly outputs: { status: LedOutput; fault?: LedOutput | null },
    private readonly log: Logger,
  ) {}

  /** The code shown now (null before the first). */
  get current(): LedCode | null {
    return this.code;
  }

  show(code: LedCode): Promise<void> {
    if (this.closed || this.code?.code === code.code) return this.chain;
    this.code = code;
    const { status, fault } = this.outputs;
    const s = splitCode(code, !!fault);
    this.chain = this.chain.then(async () => {
      if (this.closed) return;
      try {
        await status.render(s.status);
        if (fault) await fault.render(s.fault);
        this.log.debug({ evt: 'field.led_code', code: code.code }, 'LED code');
      } catch (e) {
        this.log.warn({ evt: 'field.led_write_failed', code: code.code, err: (e as Error).message }, 'LED write failed');
      }
    });
    return this.chain;
  }

  async close(): Promise<void> {
    await this.chain;
    this.closed = true;
    await this.outputs.status.close().catch(() => undefined);
    await this.outputs.fault?.close().catch(() => undefined);
  }
}

export { ON as STEADY_ON, OFF as STEADY_OFF };
