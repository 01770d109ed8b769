import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeCommand } from '../../device/cli/probe.js';
import { pickHeaderChip, parseGpiodetect, sysfsGpioChips } from '../../device/field/gpio.js';
import { fieldHardwareConfig, formatFieldHardware, openFieldHardware, probeFieldHardware, type FieldHardwareDeps } from '../../device/field/hardware.js';
import { fieldProbe } from '../../device/cli/probe.js';
import { ledCode } from '../../device/field/model.js';
import { silentLogger, type HostPaths } from '../../lib/index.js';
import { FakeClock, FakeGpiod, FakeOnoff, hostTrees, sysfs, type HostFiles } from '../fakes/index.js';

const trees = hostTrees();
const gpiods: FakeGpiod[] = [];
afterAll(async () => {
  await trees.cleanup();
  await Promise.all(gpiods.map((g) => g.cleanup()));
});

/** sysfs GPIO as a Pi 4 on kernel 6.6 shows it: the header chip at base 512, the expander after it. */
const PI4_GPIO: HostFiles = {
  'sys/class/gpio/export': '',
  'sys/class/gpio/gpiochip512/base': '512\n',
  'sys/class/gpio/gpiochip512/label': 'pinctrl-bcm2711\n',
  'sys/class/gpio/gpiochip512/ngpio': '58\n',
  'sys/class/gpio/gpiochip570/base': '570\n',
  'sys/class/gpio/gpiochip570/label': 'raspberrypi-exp-gpio\n',
  'sys/class/gpio/gpiochip570/ngpio': '8\n',
};
const ACT: HostFiles = { ...sysfs.led('ACT', { trigger: 'none timer oneshot pattern [mmc0] heartbeat\n' }), ...sysfs.led('PWR', { trigger: '[default-on] none\n' }) };

async function deps(files: HostFiles, o: Partial<FieldHardwareDeps> = {}): Promise<FieldHardwareDeps & { paths: HostPaths }> {
  return { paths: await trees.make(files), clock: new FakeClock(0), log: silentLogger(), onoff: null, gpiod: { gpioset: '/nonexistent/gpioset', gpiomon: '/nonexistent/gpiomon', gpiodetect: '/nonexistent/gpiodetect' }, ...o };
}

describe('chips', () => {
  it('finds the header chip and its base from sysfs, never a guessed number', async () => {
    const paths = await trees.make(PI4_GPIO);
    expect(pickHeaderChip(await sysfsGpioChips(paths))).toEqual({ name: 'gpiochip512', label: 'pinctrl-bcm2711', lines: 58, base: 512 });
    const pi5 = parseGpiodetect('gpiochip0 [pinctrl-rp1] (54 lines)\ngpiochip10 [gpio-brcmstb@107d508500] (32 lines)\ngpiochip11 [pinctrl-bcm2712] (4 lines)\n');
    expect(pickHeaderChip(pi5)?.name).toBe('gpiochip0');
    expect(pickHeaderChip(parseGpiodetect('gpiochip4 [pinctrl-bcm2712] (2 lines)\ngpiochip3 [pinctrl-rp1] (54 lines)\n'))?.name).toBe('gpiochip3');
    expect(await sysfsGpioChips(await trees.make({}))).toEqual([]);
  });
});

describe('openFieldHardware', () => {
  it('overlay LEDs named in the config: both on /sys/class/leds, split status/fault, restored on close', async () => {
    const d = await deps({ ...ACT, ...sysfs.led('ep-status', { trigger: '[none] timer pattern\n' }), ...sysfs.led('ep-fault', { trigger: '[none] timer pattern\n' }) });
    const hw = await openFieldHardware({ leds: { status: 'ep-status', fault: 'ep-fault' } }, d);
    expect(hw.report.leds).toMatchObject({ driver: 'sysfs-leds', status: expect.stringContaining('ep-status'), fault: expect.stringContaining('ep-fault') });
    expect(hw.report.button).toEqual({ driver: 'none', line: null, tried: ['no button in the config (gpio.button)'] });
    await hw.leds.show(ledCode('no_camera'));
    const read = (led: string, f: string): Promise<string> => readFile(path.join(d.paths.ledsClass, led, f), 'utf8');
    expect([await read('ep-status', 'trigger'), await read('ep-status', 'brightness'), await read('ep-fault', 'trigger')]).toEqual(['none', '0', 'pattern']);
    expect(await read('ACT', 'trigger')).toContain('[mmc0]');
    await hw.close();
    expect(await read('ep-fault', 'trigger')).toBe('none');
  });

  it('GPIO lines through sysfs GPIO: numbers are the base (512) + the BCM offset', async () => {
    const onoff = new FakeOnoff();
    const d = await deps({ ...ACT, ...PI4_GPIO }, { onoff: onoff.factory });
    const hw = await openFieldHardware({ gpio: { statusLed: 17, faultLed: 27, button: 22 } }, d);
    expect(onoff.asked).toEqual([529, 539, 534]);
    expect(hw.report.leds).toMatchObject({ driver: 'sysfs-gpio', status: expect.stringContaining('gpio529'), fault: expect.stringContaining('gpio539') });
    expect(hw.report.button).toMatchObject({ driver: 'sysfs-gpio', line: expect.stringContaining('gpio534') });
    await hw.leds.show(ledCode('in_meeting'));
    await new Promise((r) => setImmediate(r));
    expect(onoff.line(529)?.writes).toEqual([1]);
    expect(onoff.line(534)).toMatchObject({ direction: 'in', edge: 'both' });
    const presses: boolean[] = [];
    hw.buttonLine!.watch((h) => presses.push(h));
    onoff.line(534)!.interrupt(0);
    await new Promise((r) => setImmediate(r));
    expect(presses).toEqual([false]);
    await hw.close();
    expect(onoff.exported.map((g) => g.unexported)).toEqual([true, true, true]);
    expect(onoff.line(529)?.writes.at(-1)).toBe(0);
  });

  it('sysfs GPIO refused with EINVAL (recent Pi kernels): falls through to the character device with the reason', async () => {
    const g = await FakeGpiod.create({ major: 1 });
    gpiods.push(g);
    const onoff = new FakeOnoff().failWith('EINVAL');
    const d = await deps({ ...ACT, ...PI4_GPIO }, { onoff: onoff.factory, gpiod: g.commands });
    const hw = await openFieldHardware({ gpio: { statusLed: 17, button: 22 } }, d);
    expect(hw.report.leds.driver).toBe('chardev');
    expect(hw.report.leds.tried).toEqual(['sysfs GPIO 529: EINVAL on export (sysfs GPIO is deprecated on this kernel)']);
    expect(hw.report.leds.status).toBe('chardev gpiochip0 [pinctrl-bcm2711] line 17 (gpioset v1.6.3)');
    expect(hw.report.button).toMatchObject({ driver: 'chardev', line: 'chardev gpiochip0 [pinctrl-bcm2711] line 22 (gpiomon v1.6.3)' });
    expect(formatFieldHardware(hw.report)).toContain('LEDs: sysfs GPIO 529: EINVAL on export (sysfs GPIO is deprecated on this kernel) → chardev gpiochip0 [pinctrl-bcm2711] line 17');
    await hw.leds.show(ledCode('in_meeting'));
    await g.waitFor(/--mode=signal gpiochip0 17=1$/);
    await hw.close();
    expect(await g.running()).toEqual([]);
  });

  it('no sysfs GPIO and no libgpiod: the board ACT LED, with every reason; nothing at all: none', async () => {
    const d = await deps(ACT, { onoff: new FakeOnoff().factory });
    const hw = await openFieldHardware({ gpio: { statusLed: 17 } }, d);
    expect(hw.report.leds.driver).toBe('sysfs-leds');
    expect(hw.report.leds.status).toContain('/sys/class/leds/ACT');
    expect(hw.report.leds.tried).toEqual(['sysfs GPIO: no gpiochip under /sys/class/gpio', expect.stringMatching(/^chardev: libgpiod tools: not installed/)]);
    await hw.leds.show(ledCode('idle'));
    expect(await readFile(path.join(d.paths.ledsClass, 'ACT', 'trigger'), 'utf8')).toBe('timer');
    await hw.close();
    expect(await readFile(path.join(d.paths.ledsClass, 'ACT', 'trigger'), 'utf8')).toBe('mmc0');

    const none = await openFieldHardware({}, await deps({}));
    expect(none.report.leds).toMatchObject({ driver: 'none', status: null, tried: ['/sys/class/leds/ACT: ENOENT', '/sys/class/leds/led0: ENOENT'] });
    await none.leds.show(ledCode('idle'));
    await none.close();
  });

  it('older kernels name the activity LED led0', async () => {
    const hw = await openFieldHardware({}, await deps(sysfs.led('led0')));
    expect(hw.report.leds.status).toContain('led0');
    await hw.close();
  });
});

describe('probeFieldHardware and ep probe', () => {
  it('reports the choice without holding a line or writing an LED', async () => {
    const onoff = new FakeOnoff();
    const d = await deps({ ...ACT, ...PI4_GPIO }, { onoff: onoff.factory });
    const r = await probeFieldHardware({ gpio: { statusLed: 17, button: 22 } }, d);
    expect(r.leds.driver).toBe('sysfs-gpio');
    expect(r.button.driver).toBe('sysfs-gpio');
    // Exported to see whether the kernel allows it, then given back.
    expect(onoff.exported.map((g) => [g.gpio, g.unexported])).toEqual([[529, true], [534, true]]);
    // … as inputs, and nothing written: the probe drives no line (a wrong offset would drive someone else's)
    expect(onoff.exported.map((g) => [g.direction, g.writes.length])).toEqual([['in', 0], ['in', 0]]);
    // A line the running agent holds already is reported as such, not exported again.
    await mkdir(path.join(d.paths.gpioClass, 'gpio529'));
    const again = await probeFieldHardware({ gpio: { statusLed: 17 } }, d);
    expect(again.leds.status).toContain('exported already');
    expect(onoff.asked).toEqual([529, 534]);
    expect(await readFile(path.join(d.paths.ledsClass, 'ACT', 'trigger'), 'utf8')).toContain('[mmc0]');
  });

  it('ep probe prints the report and puts it under `field` in --json', async () => {
    const d = await deps(ACT);
    const field = (file: string | null) => fieldProbe(file, d);
    const probeDeps = { paths: d.paths, runCommand: async () => ({ code: 1, stdout: '', stderr: '' }), env: {}, arch: 'arm64' };
    const out: string[] = [];
    expect(await probeCommand(['--json'], (s) => out.push(s), probeDeps, field)).toBe(0);
    expect(JSON.parse(out[0]!).field).toEqual({ leds: expect.objectContaining({ driver: 'sysfs-leds' }), button: expect.objectContaining({ driver: 'none' }) });
    expect(await probeCommand([], (s) => out.push(s), probeDeps, field)).toBe(0);
    expect(out[1]).toMatch(/LEDs: \/sys\/class\/leds\/ACT \(timer\+pattern triggers\)\nButton: no button in the config \(gpio\.button\) → none$/);
    expect(await probeCommand(['--config', path.join(d.paths.root, 'missing.json')], (s) => out.push(s), probeDeps, field)).toBe(1);
    expect(out[2]).toContain('missing.json');
  });

  it('takes the wiring from the agent config', () => {
    // the agent config's shape (config.ts FieldConfig): the field reads only its part
    const config = { gpio: { statusLed: 17, button: 22 }, field: { statusPage: { enabled: true, port: 8080, host: '0.0.0.0' }, button: { shortPress: 'mute' as const, activeLow: false }, leds: { status: 'ep-status' } } };
    expect(fieldHardwareConfig(config)).toEqual({
      gpio: { statusLed: 17, button: 22 },
      leds: { status: 'ep-status' },
      buttonActiveLow: false,
    });
  });
});
