import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChardevOutput, detectGpiod, gpiosetArgs } from '../../device/field/gpio.js';
import { LedController, SoftwareLed, SysfsLed, normalizeSteps, patternText, splitCode, type LedOutput } from '../../device/field/leds.js';
import { ledCode, type LedStep } from '../../device/field/model.js';
import { silentLogger } from '../../lib/index.js';
import { FakeClock, FakeGpiod, FakeOutputLine, hostTrees, settle, sysfs } from '../fakes/index.js';

const trees = hostTrees();
const gpiods: FakeGpiod[] = [];
afterAll(async () => {
  await trees.cleanup();
  await Promise.all(gpiods.map((g) => g.cleanup()));
});
const log = silentLogger();

describe('normalizeSteps and patternText', () => {
  it('reduces steady, blink and pulse codes to 1, 2 and 2N steps', () => {
    expect(normalizeSteps(ledCode('in_meeting').steps)).toEqual([[true, 0]]);
    expect(normalizeSteps([[false, 0]])).toEqual([[false, 0]]);
    expect(normalizeSteps(ledCode('idle').steps)).toEqual([[true, 100], [false, 2900]]);
    expect(normalizeSteps(ledCode('no_hub').steps)).toHaveLength(8);
    // Merged across neighbours and the wrap; zero-length steps dropped.
    expect(normalizeSteps([[false, 100], [true, 200], [true, 0], [true, 50], [false, 300]])).toEqual([[false, 400], [true, 250]]);
    expect(normalizeSteps([[true, 100], [true, 200]])).toEqual([[true, 0]]);
  });

  it('writes square steps for the kernel pattern trigger', () => {
    expect(patternText([[true, 200], [false, 300]], 255)).toBe('255 200 255 0 0 300 0 0');
  });
});

describe('splitCode', () => {
  it('one LED: every code on it', () => {
    expect(splitCode(ledCode('no_hub'), false)).toEqual({ status: ledCode('no_hub').steps, fault: [[false, 0]] });
  });
  it('two LEDs: faults on the fault LED, the rest on status, warning and identify on both', () => {
    expect(splitCode(ledCode('no_camera'), true)).toEqual({ status: [[false, 0]], fault: ledCode('no_camera').steps });
    expect(splitCode(ledCode('unprovisioned'), true).fault).toEqual(ledCode('unprovisioned').steps);
    expect(splitCode(ledCode('in_meeting'), true)).toEqual({ status: [[true, 0]], fault: [[false, 0]] });
    expect(splitCode(ledCode('reset_warning'), true)).toEqual({ status: ledCode('reset_warning').steps, fault: ledCode('reset_warning').steps });
  });
});

/** The brightness file once it reads `want` (the loop's writes land on the fs threadpool); what it read last after a hang guard. */
async function until(dir: string, want: string): Promise<string> {
  let last = '';
  for (let i = 0; i < 500; i++) {
    last = await readFile(path.join(dir, 'brightness'), 'utf8');
    if (last === want) return last;
    await new Promise((r) => setTimeout(r, 10));
  }
  return last;
}

describe('SysfsLed (a temp /sys/class/leds)', () => {
  const act = (trigger: string) => ({ ...sysfs.led('ACT', { trigger }), 'sys/class/leds/ACT/max_brightness': '255\n' });
  const read = (dir: string, f: string): Promise<string> => readFile(path.join(dir, f), 'utf8');

  it('steady: trigger none + max brightness; blink: timer with delays; pulses: the pattern trigger; closing restores mmc0', async () => {
    const paths = await trees.make(act('none timer oneshot pattern [mmc0] heartbeat\n'));
    const dir = path.join(paths.ledsClass, 'ACT');
    const led = await SysfsLed.open(paths, 'ACT', new FakeClock(), log);
    expect(led.triggers).toContain('pattern');
    await led.render(ledCode('in_meeting').steps);
    expect([await read(dir, 'trigger'), await read(dir, 'brightness')]).toEqual(['none', '255']);
    await led.render(ledCode('idle').steps);
    expect([await read(dir, 'trigger'), await read(dir, 'delay_on'), await read(dir, 'delay_off')]).toEqual(['timer', '100', '2900']);
    await led.render(ledCode('under_voltage').steps);
    expect(await read(dir, 'trigger')).toBe('pattern');
    expect(await read(dir, 'pattern')).toBe('255 200 255 0 0 300 0 0 255 200 255 0 0 1500 0 0');
    expect(await read(dir, 'repeat')).toBe('-1');
    await led.close();
    expect(await read(dir, 'trigger')).toBe('mmc0');
  });

  it('showing the same pattern again writes nothing', async () => {
    const paths = await trees.make(act('none timer [mmc0]\n'));
    const dir = path.join(paths.ledsClass, 'ACT');
    const led = await SysfsLed.open(paths, 'ACT', new FakeClock(), log);
    await led.render(ledCode('updating').steps);
    await writeFile(path.join(dir, 'trigger'), 'sentinel');
    await led.render(ledCode('updating').steps);
    expect(await read(dir, 'trigger')).toBe('sentinel');
  });

  it('without the pattern trigger, N pulses are a software loop on the clock writing brightness', async () => {
    const paths = await trees.make(act('none timer [mmc0]\n'));
    const dir = path.join(paths.ledsClass, 'ACT');
    const clock = new FakeClock();
    const led = await SysfsLed.open(paths, 'ACT', clock, log);
    await led.render(ledCode('under_voltage').steps); // on 200, off 300, on 200, off 1500
    expect([await read(dir, 'trigger'), await until(dir, '255')]).toEqual(['none', '255']);
    const seen: string[] = [];
    for (const [ms, want] of [[200, '0'], [300, '255'], [200, '0'], [1500, '255'], [200, '0']] as const) {
      await clock.advance(ms);
      seen.push(await until(dir, want));
    }
    expect(seen).toEqual(['0', '255', '0', '255', '0']);
    await led.close();
    expect(clock.pending).toBe(0);
    expect(await read(dir, 'trigger')).toBe('mmc0');
  });

  it("where the kernel's blink settings are not writable (root's, as for a service user), it blinks from the software loop", async () => {
    const paths = await trees.make(act('none timer pattern [mmc0]\n'));
    const dir = path.join(paths.ledsClass, 'ACT');
    // delay_on as a directory: the write fails as EACCES would for a non-root agent (root writes any file)
    await mkdir(path.join(dir, 'delay_on'));
    const clock = new FakeClock();
    const led = await SysfsLed.open(paths, 'ACT', clock, log);
    await led.render(ledCode('updating').steps); // on 500, off 500
    expect([await read(dir, 'trigger'), await until(dir, '255')]).toEqual(['none', '255']);
    await clock.advance(500);
    expect(await until(dir, '0')).toBe('0');
    // pulses too, without trying the kernel again
    await led.render(ledCode('no_camera').steps);
    expect(await read(dir, 'trigger')).toBe('none');
    await clock.advance(200);
    expect(await until(dir, '0')).toBe('0');
    await led.close();
    expect(clock.pending).toBe(0);
  });

  it('an LED that was off with trigger none gets its brightness back; a missing LED does not open', async () => {
    const paths = await trees.make({ ...sysfs.led('ep-status', { trigger: '[none] timer\n', brightness: '0\n' }) });
    const led = await SysfsLed.open(paths, 'ep-status', new FakeClock(), log);
    await led.render(ledCode('in_meeting').steps);
    expect(await read(path.join(paths.ledsClass, 'ep-status'), 'brightness')).toBe('1');
    await led.close();
    expect(await read(path.join(paths.ledsClass, 'ep-status'), 'brightness')).toBe('0');
    await expect(SysfsLed.open(paths, 'nope', new FakeClock(), log)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('SoftwareLed', () => {
  it('sets the line at each step boundary, repeats, and stops on close', async () => {
    const clock = new FakeClock(0);
    const line = new FakeOutputLine(clock);
    const led = new SoftwareLed(line, clock, log);
    await led.render(ledCode('identify').steps); // 125 on, 125 off
    await clock.advance(500);
    expect(line.sets).toEqual([0, 125, 250, 375, 500].map((at, i) => ({ at, on: i % 2 === 0 })));
    const n = line.sets.length;
    await led.render(ledCode('in_meeting').steps);
    await clock.advance(1000);
    // Steady on: the line was on already (at 500), so nothing is written, and no timer runs.
    expect(line.sets.slice(n)).toEqual([]);
    expect(line.sets.at(-1)).toEqual({ at: 500, on: true });
    expect(clock.pending).toBe(0);
    await led.close();
    expect(clock.pending).toBe(0);
    expect(line.sets.at(-1)).toEqual({ at: 1500, on: false });
    expect(line.closed).toBe(true);
  });
});

class RecordingOutput implements LedOutput {
  readonly describe = 'rec';
  readonly renders: (readonly LedStep[])[] = [];
  closed = false;
  async render(steps: readonly LedStep[]): Promise<void> {
    await settle();
    this.renders.push(steps);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('LedController', () => {
  it('renders each new code once, in order, split over two LEDs; the same code again does nothing', async () => {
    const status = new RecordingOutput();
    const fault = new RecordingOutput();
    const c = new LedController({ status, fault }, log);
    void c.show(ledCode('idle'));
    void c.show(ledCode('no_hub'));
    await c.show(ledCode('no_hub'));
    await c.show(ledCode('no_hub'));
    expect(c.current?.code).toBe('no_hub');
    expect(status.renders).toEqual([ledCode('idle').steps, [[false, 0]]]);
    expect(fault.renders).toEqual([[[false, 0]], ledCode('no_hub').steps]);
    await c.close();
    expect([status.closed, fault.closed]).toEqual([true, true]);
    await c.show(ledCode('identify'));
    expect(status.renders).toHaveLength(2);
  });

  it('a failing LED is logged, not thrown, and the next code still shows', async () => {
    const status = new RecordingOutput();
    let fail = true;
    const flaky: LedOutput = { describe: 'flaky', render: async (s) => (fail ? Promise.reject(new Error('EACCES')) : status.render(s)), close: async () => undefined };
    const c = new LedController({ status: flaky }, log);
    await expect(c.show(ledCode('idle'))).resolves.toBeUndefined();
    fail = false;
    await c.show(ledCode('updating'));
    expect(status.renders).toEqual([ledCode('updating').steps]);
  });
});

/** Waits (hang guard) until exactly one gpioset runs and the last one started holds `value`. */
async function settledOn(g: FakeGpiod, value: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const starts = (await g.log()).filter((l) => l.startsWith('start'));
    if ((await g.running()).length === 1 && starts.at(-1)?.endsWith(value)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gpioset never settled on ${value}: ${JSON.stringify(await g.log())}`);
}

describe('ChardevOutput (a fake libgpiod on disk)', () => {
  for (const major of [1, 2] as const) {
    it(`v${major}: holds the value with one gpioset, replaces it (stopped first: the line would be busy) on a change, stops it on close`, async () => {
      const g = await FakeGpiod.create({ major });
      gpiods.push(g);
      const tools = await detectGpiod(g.commands);
      expect(tools.major).toBe(major);
      const out = new ChardevOutput(tools, 'gpiochip0', 17, false, log);
      await out.set(true);
      await out.set(true);
      await g.waitFor(/=1$/);
      await out.set(false);
      await g.waitFor(/=0$/);
      // Changes asked for while one runs collapse to the last.
      void out.set(true);
      void out.set(false);
      await out.set(true);
      await settledOn(g, '=1');
      const before = await g.log();
      await out.close();
      const lines = await g.log();
      expect(lines.slice(before.length).every((l) => l.startsWith('stop'))).toBe(true);
      const starts = lines.filter((l) => l.startsWith('start')).map((l) => l.split(' ').slice(2).join(' '));
      expect(starts[0]).toBe(gpiosetArgs(major, 'gpiochip0', 17, 1).join(' '));
      expect(starts[1]).toBe(gpiosetArgs(major, 'gpiochip0', 17, 0).join(' '));
      // The burst (on, off, on) is at most one start per value asked for, never a queue of them.
      expect(starts.length).toBeGreaterThanOrEqual(2);
      expect(starts.length).toBeLessThanOrEqual(5);
      expect(lines.filter((l) => l.startsWith('busy'))).toEqual([]);
      expect(await g.running()).toEqual([]);
    });
  }

  it('active-low inverts the value', async () => {
    const g = await FakeGpiod.create({ major: 1 });
    gpiods.push(g);
    const out = new ChardevOutput(await detectGpiod(g.commands), 'gpiochip0', 27, true, log);
    await out.set(true);
    await g.waitFor(/^start/);
    await out.close();
    expect((await g.log())[0]).toMatch(/^start \d+ --mode=signal gpiochip0 27=0$/);
  });
});
