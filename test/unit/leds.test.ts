/** sysfsLeds on a fake /sys/class/leds (HostTree): blinks what it may write, restores each trigger after the time asked. */
import { chmod, readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { sysfsLeds } from '../../device/host/index.js';
import { FakeClock, hostTrees, sysfs } from '../fakes/index.js';

const trees = hostTrees();
afterAll(trees.cleanup);

describe('sysfsLeds', () => {
  it('sets ACT and PWR to the timer trigger, leaves other LEDs alone, and puts each trigger back after `ms`', async () => {
    const t = await trees.tree({ ...sysfs.led('ACT', { trigger: 'none timer [mmc0]\n' }), ...sysfs.led('PWR', { trigger: '[default-on] timer\n' }), ...sysfs.led('mmc1', { trigger: '[mmc1]\n' }) });
    const clock = new FakeClock(0);
    const leds = sysfsLeds(t.paths, (fn, ms) => clock.setTimeout(fn, ms));
    const trigger = (n: string): Promise<string> => readFile(`${t.paths.ledsClass}/${n}/trigger`, 'utf8');

    expect((await leds.blink(5000)).leds.sort()).toEqual(['ACT', 'PWR']);
    expect([await trigger('ACT'), await trigger('PWR'), await trigger('mmc1')]).toEqual(['timer', 'timer', '[mmc1]\n']);
    expect(await readFile(`${t.paths.ledsClass}/ACT/delay_on`, 'utf8')).toBe('100');

    await clock.advance(4999);
    expect(await trigger('ACT')).toBe('timer');
    await clock.advance(1);
    await expect.poll(() => trigger('ACT'), { timeout: 10_000 }).toBe('mmc0');
    await expect.poll(() => trigger('PWR'), { timeout: 10_000 }).toBe('default-on');
  });

  it('reports no LED when there is no LED class, and skips an LED it may not write', async () => {
    expect(await sysfsLeds((await trees.tree()).paths).blink(10)).toEqual({ leds: [] });
    const t = await trees.tree({ ...sysfs.led('ACT'), ...sysfs.led('PWR') });
    await chmod(`${t.paths.ledsClass}/PWR/trigger`, 0o444);
    const clock = new FakeClock(0);
    const leds = sysfsLeds(t.paths, (fn, ms) => clock.setTimeout(fn, ms));
    const blinked = (await leds.blink(10)).leds;
    // As root (CI containers) a read-only mode does not stop the write: then both blink.
    expect(blinked).toContain('ACT');
    expect(process.getuid?.() === 0 ? ['ACT', 'PWR'] : ['ACT']).toEqual([...blinked].sort());
  });
});
