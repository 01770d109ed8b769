/**
 * GPIO lines for the LEDs and the button, behind two small interfaces (an output that is on
 * or off, an input that reports its level), with three drivers: sysfs GPIO through `onoff`
 * (deprecated: numbers carry the gpiochip base, export fails with EINVAL on recent Pi
 * kernels), the character device through libgpiod's `gpioset`/`gpiomon` tools (v1 and v2
 * command lines), and none. Which one a box gets is hardware.ts's choice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { HostPaths, Logger } from '../../lib/index.js';

/** One output line: on or off (already corrected for active-low). */
export interface OutputLine {
  readonly describe: string;
  set(on: boolean): Promise<void>;
  close(): Promise<void>;
}

/** One input line: reports its raw level (true = high) on every edge. */
export interface InputLine {
  readonly describe: string;
  /** Levels as they change; `lost` when the line can no longer be watched (gpiomon ended, a read error). */
  watch(cb: (high: boolean) => void, lost?: (why: string) => void): void;
  /** The level now, where the driver can read it (sysfs); absent: edges only. */
  read?(): Promise<boolean>;
  close(): Promise<void>;
}

/** A GPIO controller as sysfs (`/sys/class/gpio/gpiochipN`) or `gpiodetect` names it. */
export interface ChipInfo {
  /** `gpiochip512` (sysfs, named by base) or `gpiochip0` (character device). */
  name: string;
  label: string;
  lines: number;
  /** sysfs only: the number of the chip's line 0. */
  base?: number;
}

/**
 * The chip with the 40-pin header's lines: `pinctrl-rp1` on a Pi 5, else the SoC's
 * `pinctrl-bcm*` (Pi 4: pinctrl-bcm2711, older: pinctrl-bcm2835), else the first `pinctrl-*`,
 * else the first chip. Never a number guessed from the model.
 */
export function pickHeaderChip(chips: readonly ChipInfo[]): ChipInfo | null {
  return chips.find((c) => c.label === 'pinctrl-rp1') ?? chips.find((c) => /^pinctrl-bcm/.test(c.label)) ?? chips.find((c) => c.label.startsWith('pinctrl-')) ?? chips[0] ?? null;
}

/** The chips sysfs GPIO lists (`gpiochipN/{base,label,ngpio}`); empty when there is no sysfs GPIO. */
export async function sysfsGpioChips(paths: HostPaths): Promise<ChipInfo[]> {
  let names: string[];
  try {
    names = (await readdir(paths.gpioClass)).filter((n) => /^gpiochip\d+$/.test(n));
  } catch {
    return [];
  }
  const chips: ChipInfo[] = [];
  for (const name of names.sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)))) {
    const read = (f: string): Promise<string> => readFile(path.join(paths.gpioClass, name, f), 'utf8').then((s) => s.trim(), () => '');
    const base = Number.parseInt(await read('base'), 10);
    const lines = Number.parseInt(await read('ngpio'), 10);
    if (!Number.isInteger(base) || !Number.isInteger(lines)) continue;
    chips.push({ name, label: (await read('label')) || name, lines, base });
  }
  return chips;
}

/** `gpiodetect`'s lines (v1 and v2 alike): `gpiochip0 [pinctrl-bcm2711] (58 lines)`. */
export function parseGpiodetect(text: string): ChipInfo[] {
  const chips: ChipInfo[] = [];
  for (const line of text.split('\n')) {
    const m = /^(gpiochip\d+)\s+\[([^\]]*)\]\s+\((\d+) lines?\)/.exec(line.trim());
    if (m) chips.push({ name: m[1]!, label: m[2]!, lines: Number(m[3]) });
  }
  return chips;
}

// ---------------------------------------------------------------- sysfs GPIO (onoff)

/** The part of onoff's `Gpio` we use; the factory is onoff's constructor (or a test's fake). */
export interface OnoffGpio {
  read(): Promise<0 | 1>;
  write(value: 0 | 1): Promise<void>;
  watch(cb: (err: Error | null | undefined, value: 0 | 1) => void): void;
  unwatchAll(): void;
  unexport(): void;
}
export type OnoffFactory = (gpio: number, direction: 'in' | 'out', edge?: 'both') => OnoffGpio;

/** onoff's `Gpio` as a factory, or null when the module (or its native epoll) does not load. */
export async function loadOnoff(): Promise<OnoffFactory | null> {
  try {
    const { Gpio } = await import('onoff');
    return (n, direction, edge) => new Gpio(n, direction, edge) as unknown as OnoffGpio;
  } catch {
    return null;
  }
}

/** Why sysfs GPIO refused a line, for the probe report. */
export function sysfsGpioRefusal(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EINVAL') return 'EINVAL on export (sysfs GPIO is deprecated on this kernel)';
  if (code === 'ENOENT') return 'no /sys/class/gpio (kernel without sysfs GPIO)';
  if (code === 'EACCES' || code === 'EPERM') return `${code} (not permitted: run as root or in the gpio group)`;
  if (code === 'EBUSY') return 'EBUSY (the line is used by something else)';
  return code ?? (e as Error).message;
}

export function sysfsGpioOutput(factory: OnoffFactory, gpio: number, activeLow: boolean): OutputLine {
  const g = factory(gpio, 'out');
  let closed = false;
  return {
    describe: `sysfs gpio${gpio}`,
    set: (on) => g.write(on !== activeLow ? 1 : 0),
    async close() {
      if (closed) return;
      closed = true;
      await g.write(activeLow ? 1 : 0).catch(() => undefined);
      g.unexport();
    },
  };
}

export function sysfsGpioInput(factory: OnoffFactory, gpio: number, log: Logger): InputLine {
  const g = factory(gpio, 'in', 'both');
  let closed = false;
  return {
    describe: `sysfs gpio${gpio}`,
    watch(cb, lost) {
      g.watch((err, value) => {
        if (err) {
          log.warn({ evt: 'field.gpio_watch_failed', gpio, err: err.message }, 'button line read failed');
          lost?.(err.message);
        } else cb(value === 1);
      });
    },
    async read() {
      return (await g.read()) === 1;
    },
    // Once: onoff's unexport closes its value fd unguarded (a second close hits EBADF, or another descriptor).
    async close() {
      if (closed) return;
      closed = true;
      g.unwatchAll();
      g.unexport();
    },
  };
}

// ---------------------------------------------------------------- character device (libgpiod tools)

export interface GpiodCommands {
  gpioset: string;
  gpiomon: string;
  gpiodetect: string;
}
export const GPIOD_COMMANDS: GpiodCommands = { gpioset: 'gpioset', gpiomon: 'gpiomon', gpiodetect: 'gpiodetect' };

export interface GpiodTools {
  commands: GpiodCommands;
  /** libgpiod's major version: the command lines differ. */
  major: 1 | 2;
  version: string;
}

/** Runs a short command; its stdout, or throws with its stderr. Bounded in time and output. */
function runShort(cmd: string, args: string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(0, 16_384)));
    p.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(0, 4096)));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
  });
}

/** `gpioset --version` → the tools and their major version; throws when they are missing. */
export async function detectGpiod(commands: GpiodCommands = GPIOD_COMMANDS): Promise<GpiodTools> {
  const text = await runShort(commands.gpioset, ['--version']);
  const m = /v(\d+)\.(\d+)(?:\.\d+)?/.exec(text);
  if (!m) throw new Error(`gpioset --version: no version in ${JSON.stringify(text.slice(0, 80))}`);
  return { commands, major: m[1] === '1' ? 1 : 2, version: m[0] };
}

/** The character-device chips (`gpiodetect`). */
export async function gpiodChips(tools: GpiodTools): Promise<ChipInfo[]> {
  return parseGpiodetect(await runShort(tools.commands.gpiodetect, []));
}

/** gpioset's arguments to hold `offset` at `value` until signalled (v1: --mode=signal; v2 holds by default). */
export function gpiosetArgs(major: 1 | 2, chip: string, offset: number, value: 0 | 1): string[] {
  return major === 1 ? ['--mode=signal', chip, `${offset}=${value}`] : ['-c', chip, `${offset}=${value}`];
}

/** gpiomon's arguments to print `<offset> <edge>` per event, line-buffered, pulled up (or not). */
export function gpiomonArgs(major: 1 | 2, chip: string, offset: number, pullUp: boolean): string[] {
  return major === 1
    ? ['--line-buffered', '--format=%o %e', ...(pullUp ? ['--bias=pull-up'] : []), chip, String(offset)]
    : ['-e', 'both', '-F', '%o %E', ...(pullUp ? ['-b', 'pull-up'] : []), '-c', chip, String(offset)];
}

/** One gpiomon line → the level after the edge (v1 `%e`: 1 rising, 0 falling; v2 `%E`: rising/falling); null if not ours. */
export function parseGpiomonLine(line: string, offset: number): boolean | null {
  const m = /^(\d+)\s+(\S+)\s*$/.exec(line.trim());
  if (!m || Number(m[1]) !== offset) return null;
  if (m[2] === '1' || m[2] === 'rising') return true;
  if (m[2] === '0' || m[2] === 'falling') return false;
  return null;
}

/** Stops a child: SIGTERM, SIGKILL after `graceMs`; resolves when it has exited. */
function stopChild(p: ChildProcess, graceMs = 1000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
    t.unref();
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

/**
 * An output held by a long-lived `gpioset`. Neither CLI can change a held value, so a new
 * value is: stop the holder (the line is released only when it has exited, else EBUSY), start
 * one with the new value. Values asked for while a swap runs are coalesced to the latest.
 */
export class ChardevOutput implements OutputLine {
  readonly describe: string;
  private child: ChildProcess | null = null;
  private value: boolean | null = null;
  private want: boolean | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private readonly warned = new Set<string>();

  constructor(
    private readonly tools: GpiodTools,
    private readonly chip: string,
    private readonly offset: number,
    private readonly activeLow: boolean,
    private readonly log: Logger,
  ) {
    this.describe = `chardev ${chip} line ${offset} (gpioset ${tools.version})`;
  }

  set(on: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.want = on;
    this.running ??= this.pump().finally(() => (this.running = null));
    return this.running;
  }

  private async pump(): Promise<void> {
    while (!this.closed && this.want !== null && this.want !== this.value) {
      const on = this.want;
      if (this.child) await stopChild(this.child);
      if (this.closed) return;
      const child = spawn(this.tools.commands.gpioset, gpiosetArgs(this.tools.major, this.chip, this.offset, on !== this.activeLow ? 1 : 0), { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(0, 512)));
      child.on('exit', (code, signal) => {
        if (this.child === child) {
          this.child = null;
          this.value = null;
        }
        if (signal === null && code !== 0) this.warnOnce(`gpioset exit ${code}: ${err.trim()}`);
      });
      child.on('error', (e) => this.warnOnce(`gpioset: ${e.message}`));
      this.child = child;
      this.value = on;
      await new Promise<void>((r) => {
        child.once('spawn', r);
        child.once('error', () => r());
      });
    }
  }

  private warnOnce(msg: string): void {
    if (this.warned.has(msg) || this.warned.size > 16) return;
    this.warned.add(msg);
    this.log.warn({ evt: 'field.gpioset_failed', chip: this.chip, offset: this.offset, err: msg }, 'gpioset failed');
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running?.catch(() => undefined);
    if (this.child) await stopChild(this.child);
    this.child = null;
  }
}

/** An input watched by a long-lived `gpiomon` whose lines are parsed into levels. */
export class ChardevInput implements InputLine {
  readonly describe: string;
  private child: ChildProcess | null = null;
  private closed = false;

  constructor(
    private readonly tools: GpiodTools,
    private readonly chip: string,
    private readonly offset: number,
    private readonly pullUp: boolean,
    private readonly log: Logger,
  ) {
    this.describe = `chardev ${chip} line ${offset} (gpiomon ${tools.version})`;
  }

  watch(cb: (high: boolean) => void, lost?: (why: string) => void): void {
    if (this.closed || this.child) return;
    const child = spawn(this.tools.commands.gpiomon, gpiomonArgs(this.tools.major, this.chip, this.offset, this.pullUp), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(0, 512)));
    child.on('error', (e) => this.log.warn({ evt: 'field.gpiomon_failed', err: e.message }, 'gpiomon failed'));
    child.on('exit', (code, signal) => {
      if (this.closed) return;
      this.log.warn({ evt: 'field.gpiomon_exited', code, signal, err: err.trim() }, 'gpiomon exited: the button is not watched');
      lost?.(`gpiomon exited (${code ?? signal})`);
    });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const level = parseGpiomonLine(line.slice(0, 200), this.offset);
      if (level !== null) cb(level);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.child) await stopChild(this.child);
    this.child = null;
  }
}
