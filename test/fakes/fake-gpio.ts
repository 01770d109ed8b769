/**
 * Fakes at the GPIO boundary (device/field/gpio.ts): lines a test scripts, onoff's Gpio,
 * and libgpiod's command-line tools as real executables in a temp directory that behave
 * like libgpiod's (v1 or v2 arguments, a held line is busy until its gpioset exits, gpiomon
 * prints one `<offset> <edge>` line per event) and log what they were asked.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { GpiodCommands, InputLine, OnoffFactory, OnoffGpio, OutputLine } from '../../device/field/gpio.js';
import type { Clock } from '../../lib/index.js';

/** An input line the test drives: `drive(high)` reaches the watcher on a later turn, like an edge. */
export class FakeInputLine implements InputLine {
  readonly describe = 'fake input';
  private cb: ((high: boolean) => void) | null = null;
  private lostCb: ((why: string) => void) | null = null;
  closed = false;

  watch(cb: (high: boolean) => void, lost?: (why: string) => void): void {
    this.cb = cb;
    this.lostCb = lost ?? null;
  }

  /** The line can no longer be watched (gpiomon ended). */
  lose(why: string): void {
    setImmediate(() => {
      if (!this.closed) this.lostCb?.(why);
    });
  }

  drive(high: boolean): void {
    setImmediate(() => {
      if (!this.closed) this.cb?.(high);
    });
  }

  get watched(): boolean {
    return this.cb !== null;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** An output line that records every value set, with the clock's time. */
export class FakeOutputLine implements OutputLine {
  readonly describe = 'fake output';
  readonly sets: Array<{ at: number; on: boolean }> = [];
  closed = false;

  constructor(private readonly clock: Clock) {}

  async set(on: boolean): Promise<void> {
    this.sets.push({ at: this.clock.now(), on });
    await new Promise((r) => setImmediate(r));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** One line onoff would have exported. */
export class FakeOnoffGpio implements OnoffGpio {
  readonly writes: Array<0 | 1> = [];
  unexported = false;
  /** The level now (what read() gives); an interrupt sets it. Default: high (a pull-up, released). */
  value: 0 | 1 = 1;
  private watchers: Array<(err: Error | null | undefined, value: 0 | 1) => void> = [];

  constructor(
    readonly gpio: number,
    readonly direction: 'in' | 'out',
    readonly edge: string | undefined,
  ) {}

  async read(): Promise<0 | 1> {
    await new Promise((r) => setImmediate(r));
    return this.value;
  }

  async write(value: 0 | 1): Promise<void> {
    this.value = value;
    this.writes.push(value);
    await new Promise((r) => setImmediate(r));
  }

  watch(cb: (err: Error | null | undefined, value: 0 | 1) => void): void {
    this.watchers.push(cb);
  }

  unwatchAll(): void {
    this.watchers = [];
  }

  /** Like onoff's: its value fd closed without a guard, so a second unexport fails (EBADF). */
  unexport(): void {
    if (this.unexported) throw Object.assign(new Error('EBADF: bad file descriptor, close'), { code: 'EBADF' });
    this.unexported = true;
  }

  /** An interrupt: the value after the edge, on a later turn (epoll). */
  interrupt(value: 0 | 1): void {
    this.value = value;
    setImmediate(() => this.watchers.forEach((w) => w(null, value)));
  }

  /** The watch fails (epoll error): watchers get the error. */
  fail(message: string): void {
    setImmediate(() => this.watchers.forEach((w) => w(new Error(message), this.value)));
  }
}

/** onoff's constructor: records each export; `failWith('EINVAL')` makes exports throw like a recent Pi kernel. */
export class FakeOnoff {
  readonly exported: FakeOnoffGpio[] = [];
  readonly asked: number[] = [];
  private failure: string | null = null;

  failWith(code: string | null): this {
    this.failure = code;
    return this;
  }

  readonly factory: OnoffFactory = (gpio, direction, edge) => {
    this.asked.push(gpio);
    if (this.failure) throw Object.assign(new Error(`${this.failure}: invalid argument, write`), { code: this.failure, syscall: 'write' });
    const g = new FakeOnoffGpio(gpio, direction, edge);
    this.exported.push(g);
    return g;
  };

  line(gpio: number): FakeOnoffGpio | undefined {
    return this.exported.find((g) => g.gpio === gpio);
  }
}

export interface FakeGpiodOptions {
  major?: 1 | 2;
  /** gpiodetect's lines. */
  chips?: string[];
}

/** libgpiod's tools in a temp dir. `log()` reads what they did: `start PID ARGS`, `stop PID`, `busy ARGS`. */
export class FakeGpiod {
  private constructor(
    readonly dir: string,
    readonly commands: GpiodCommands,
  ) {}

  static async create(o: FakeGpiodOptions = {}): Promise<FakeGpiod> {
    const major = o.major ?? 1;
    const dir = await mkdtemp(path.join(tmpdir(), 'ep-gpiod-'));
    const log = path.join(dir, 'log');
    const fifo = path.join(dir, 'events');
    execFileSync('mkfifo', [fifo]);
    const version = major === 1 ? 'v1.6.3' : 'v2.1.3';
    const chips = (o.chips ?? ['gpiochip0 [pinctrl-bcm2711] (58 lines)', 'gpiochip1 [raspberrypi-exp-gpio] (8 lines)']).join('\n');
    // v1 holds the line only with --mode=signal (its default "exit" lets it go at once); a
    // line held by a running gpioset is busy for the next one, as on the kernel.
    const gpioset = `#!/bin/bash
if [ "$1" = "--version" ] || [ "$1" = "-v" ]; then echo "gpioset (libgpiod) ${version}"; exit 0; fi
line="\${@: -1}"; line="\${line%%=*}"
lock="${dir}/held-$line"
if [ -e "$lock" ] && kill -0 "$(cat "$lock")" 2>/dev/null; then echo "busy $*" >> "${log}"; echo "gpioset: error setting the GPIO line values: Device or resource busy" >&2; exit 1; fi
trap 'kill $(jobs -p) 2>/dev/null; rm -f "$lock"; echo "stop $$" >> "${log}"; exit 0' TERM INT
echo "start $$ $*" >> "${log}"
${major === 1 ? `case " $* " in *" --mode=signal "*) ;; *) echo "exit $$" >> "${log}"; exit 0;; esac` : ''}
echo $$ > "$lock"
sleep infinity & s=$!
wait $s
`;
    const gpiomon = `#!/bin/bash
if [ "$1" = "--version" ] || [ "$1" = "-v" ]; then echo "gpiomon (libgpiod) ${version}"; exit 0; fi
trap 'kill $(jobs -p) 2>/dev/null; echo "stop $$" >> "${log}"; exit 0' TERM INT
echo "start $$ gpiomon $*" >> "${log}"
exec 3<>"${fifo}"
cat <&3 & c=$!
wait $c
`;
    const gpiodetect = `#!/bin/bash\ncat <<'EOF'\n${chips}\nEOF\n`;
    const commands: GpiodCommands = { gpioset: path.join(dir, 'gpioset'), gpiomon: path.join(dir, 'gpiomon'), gpiodetect: path.join(dir, 'gpiodetect') };
    await writeFile(commands.gpioset, gpioset);
    await writeFile(commands.gpiomon, gpiomon);
    await writeFile(commands.gpiodetect, gpiodetect);
    for (const f of Object.values(commands)) await chmod(f, 0o755);
    await writeFile(log, '');
    return new FakeGpiod(dir, commands);
  }

  /** Lines for a running gpiomon to print (as the kernel's events would make it). */
  async emit(text: string): Promise<void> {
    await writeFile(path.join(this.dir, 'events'), text);
  }

  async log(): Promise<string[]> {
    return (await readFile(path.join(this.dir, 'log'), 'utf8')).split('\n').filter(Boolean);
  }

  /** Waits (a hang guard, not a timing) until the log has a line matching `re`; returns the log. */
  async waitFor(re: RegExp, boundMs = 10_000): Promise<string[]> {
    const until = Date.now() + boundMs;
    for (;;) {
      const lines = await this.log();
      if (lines.some((l) => re.test(l))) return lines;
      if (Date.now() > until) throw new Error(`fake gpiod: no log line like ${re} in ${boundMs} ms: ${JSON.stringify(lines)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** PIDs started and not (yet) stopped, from the log. */
  async running(): Promise<number[]> {
    const started = new Set<number>();
    for (const l of await this.log()) {
      const [what, pid] = l.split(' ');
      if (what === 'start') started.add(Number(pid));
      if (what === 'stop' || what === 'exit') started.delete(Number(pid));
    }
    return [...started];
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
