import { afterAll, describe, expect, it } from 'vitest';
import { Button, type ButtonOptions } from '../../device/field/button.js';
import { ChardevInput, detectGpiod, gpiomonArgs, parseGpiomonLine } from '../../device/field/gpio.js';
import { silentLogger } from '../../lib/index.js';
import { FakeClock, FakeGpiod, FakeInputLine, settle } from '../fakes/index.js';

const gpiods: FakeGpiod[] = [];
afterAll(async () => {
  await Promise.all(gpiods.map((g) => g.cleanup()));
});

function rig(o: Partial<ButtonOptions> = {}): { clock: FakeClock; line: FakeInputLine; button: Button; events: string[]; press(): Promise<void>; release(): Promise<void> } {
  const clock = new FakeClock(0);
  const line = new FakeInputLine();
  const events: string[] = [];
  const button = new Button(line, {
    clock,
    log: silentLogger(),
    onPress: () => events.push(`press@${clock.now()}`),
    onWarn: (on) => events.push(`warn ${on}@${clock.now()}`),
    onFactoryReset: () => events.push(`reset@${clock.now()}`),
    ...o,
  });
  button.start();
  const lowWhenPressed = o.activeLow ?? true;
  const drive = async (pressed: boolean): Promise<void> => {
    line.drive(pressed !== lowWhenPressed);
    await settle();
  };
  return { clock, line, button, events, press: () => drive(true), release: () => drive(false) };
}

describe('Button', () => {
  it('the line lost during a hold (gpiomon ended): the warning is withdrawn and no reset comes', async () => {
    const r = rig();
    await r.press();
    await r.clock.advance(3030);
    expect(r.events).toEqual(['warn true@3030']);
    r.line.lose('gpiomon exited (1)');
    await settle();
    await r.clock.advance(20_000);
    expect(r.events).toEqual(['warn true@3030', 'warn false@3030']);
    expect(r.clock.pending).toBe(0);
  });

  it('a line that reads "pressed" at rest (wrong polarity, nothing wired) never resets until it was seen released', async () => {
    const clock = new FakeClock(0);
    // sysfs can read the level: low with active-low wiring is "pressed"
    const line = Object.assign(new FakeInputLine(), { read: async () => false });
    const events: string[] = [];
    const button = new Button(line, { clock, log: silentLogger(), onPress: () => events.push('press'), onWarn: (on) => events.push(`warn ${on}`), onFactoryReset: () => events.push('reset') });
    await button.start();
    line.drive(true); // a glitch up …
    await settle();
    await clock.advance(10);
    line.drive(false); // … and back to the resting "pressed" level, for good
    await settle();
    await clock.advance(60_000);
    expect(events).toEqual([]);
    line.drive(true); // released: from now on the button counts
    await settle();
    await clock.advance(100);
    line.drive(false);
    await settle();
    await clock.advance(10_100);
    expect(events).toEqual(['warn true', 'reset']);
    await button.close();
  });

  it('a short press (debounced) calls onPress once on release', async () => {
    const r = rig();
    await r.press();
    await r.clock.advance(30);
    expect(r.button.isPressed).toBe(true);
    await r.clock.advance(470);
    await r.release();
    await r.clock.advance(30);
    expect(r.events).toEqual(['press@530']);
    expect(r.clock.pending).toBe(0);
  });

  it('contact bounce shorter than the debounce is one press, and a glitch alone is nothing', async () => {
    const r = rig();
    for (let i = 0; i < 5; i++) {
      await r.press();
      await r.clock.advance(5);
      await r.release();
      await r.clock.advance(5);
    }
    await r.clock.advance(100);
    expect(r.events).toEqual([]);
    await r.press();
    await r.clock.advance(5);
    await r.release();
    await r.clock.advance(5);
    await r.press();
    await r.clock.advance(300);
    await r.release();
    await r.clock.advance(30);
    expect(r.events).toEqual(['press@490']); // released at 460, settled 30 ms later
  });

  it('held: warns at 3 s, factory reset at 10 s, once; nothing more on release', async () => {
    const r = rig();
    await r.press();
    await r.clock.advance(30 + 3000);
    expect(r.events).toEqual(['warn true@3030']);
    await r.clock.advance(7000);
    expect(r.events).toEqual(['warn true@3030', 'reset@10030']);
    await r.clock.advance(5000);
    await r.release();
    await r.clock.advance(30);
    expect(r.events).toEqual(['warn true@3030', 'reset@10030']);
  });

  it('released after the warning and before 10 s: the warning is withdrawn and nothing else', async () => {
    const r = rig();
    await r.press();
    await r.clock.advance(30 + 9000);
    await r.release();
    await r.clock.advance(30);
    await r.clock.advance(20_000);
    expect(r.events).toEqual(['warn true@3030', 'warn false@9060']);
    expect(r.clock.pending).toBe(0);
  });

  it('released between the short press and the warning: nothing at all', async () => {
    const r = rig();
    await r.press();
    await r.clock.advance(30 + 2500);
    await r.release();
    await r.clock.advance(30);
    expect(r.events).toEqual([]);
  });

  it('active-high wiring (pull-down) is a parameter', async () => {
    const r = rig({ activeLow: false });
    await r.press();
    await r.clock.advance(100);
    await r.release();
    await r.clock.advance(30);
    expect(r.events).toEqual(['press@130']);
  });

  it('a throwing handler is logged and the button keeps working; close clears every timer and leaves the line to its owner', async () => {
    let n = 0;
    const r = rig({
      onPress: () => {
        n++;
        throw new Error('boom');
      },
    });
    for (let i = 0; i < 2; i++) {
      await r.press();
      await r.clock.advance(100);
      await r.release();
      await r.clock.advance(30);
    }
    expect(n).toBe(2);
    await r.press();
    await r.clock.advance(30);
    expect(r.clock.pending).toBe(2);
    await r.button.close();
    expect(r.clock.pending).toBe(0);
    // the line is the hardware's (hardware.ts closes it, once: onoff's unexport cannot run twice)
    expect(r.line.closed).toBe(false);
  });

  it('rejects thresholds out of order', () => {
    expect(() => rig({ warnAfterMs: 12_000 })).toThrow(/warnAfterMs \(12000\) < resetAfterMs \(10000\)/);
  });
});

describe('gpiomon lines', () => {
  it('parses v1 (%o %e) and v2 (%o %E) events for our line only', () => {
    expect(['17 1', '17 0', '17 rising', '17 falling', '4 1', 'garbage', '17 2'].map((l) => parseGpiomonLine(l, 17))).toEqual([true, false, true, false, null, null, null]);
    expect(gpiomonArgs(1, 'gpiochip0', 17, true)).toEqual(['--line-buffered', '--format=%o %e', '--bias=pull-up', 'gpiochip0', '17']);
    expect(gpiomonArgs(2, 'gpiochip0', 17, false)).toEqual(['-e', 'both', '-F', '%o %E', '-c', 'gpiochip0', '17']);
  });

  for (const major of [1, 2] as const) {
    it(`v${major}: a running gpiomon's events reach the watcher as levels; close stops it`, async () => {
      const g = await FakeGpiod.create({ major });
      gpiods.push(g);
      const input = new ChardevInput(await detectGpiod(g.commands), 'gpiochip0', 17, true, silentLogger());
      const levels: boolean[] = [];
      input.watch((h) => levels.push(h));
      await g.waitFor(/gpiomon/);
      await g.emit(major === 1 ? '17 0\n4 1\n17 1\n' : '17 falling\n17 rising\n');
      for (let i = 0; i < 500 && levels.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(levels).toEqual([false, true]);
      expect((await g.log()).find((l) => l.includes('gpiomon'))).toContain(gpiomonArgs(major, 'gpiochip0', 17, true).join(' '));
      await input.close();
      expect(await g.running()).toEqual([]);
    });
  }
});
