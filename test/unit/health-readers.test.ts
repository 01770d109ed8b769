/**
 * The health readers that stand alone: the Pi firmware's throttled flags (file first,
 * vcgencmd only without it), clock sync (timesyncd's marker, else timedatectl), the pure
 * /proc parsers, and the faults a sample raises.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { HealthSample } from '../../device/contract/types.js';
import { clockSynced, faultsFromHealth, parseNtpSynchronized, parseThrottled, readThrottled } from '../../device/health/index.js';
import { diskUsedPct, parseDefaultRoute, parseMeminfo, parseProcStat, parseUptime, thermalC } from '../../device/health/parse.js';
import { FakeRunner, hostTrees, sysfs } from '../fakes/index.js';
import { MEMINFO, ROUTE, pi4Files, procStat, sampler } from './helpers/health-host.js';

const trees = hostTrees();
afterAll(trees.cleanup);

describe('parseThrottled', () => {
  it('reads the sysfs form (bare hex) and the vcgencmd form', () => {
    for (const text of ['50005\n', 'throttled=0x50005\n', '0x50005', ' THROTTLED=0X50005 ']) {
      expect(parseThrottled(text)).toEqual({
        underVoltage: true,
        armFreqCapped: false,
        throttled: true,
        softTempLimit: false,
        underVoltageSinceBoot: true,
        throttledSinceBoot: true,
        raw: 0x50005,
      });
    }
  });

  it('tells under-voltage since boot from under-voltage now', () => {
    expect(parseThrottled('throttled=0x50000')).toMatchObject({ underVoltage: false, underVoltageSinceBoot: true, throttled: false, throttledSinceBoot: true });
    expect(parseThrottled('throttled=0x0')).toMatchObject({ underVoltage: false, underVoltageSinceBoot: false, throttled: false, raw: 0 });
    expect(parseThrottled('0\n')).toMatchObject({ underVoltage: false, raw: 0 });
    expect(parseThrottled('throttled=0xe0008')).toMatchObject({ underVoltage: false, softTempLimit: true, throttledSinceBoot: true, armFreqCapped: false });
    expect(parseThrottled('2')).toMatchObject({ armFreqCapped: true, throttled: false });
  });

  it('gives null for anything that is not a throttled word', () => {
    for (const text of ['', '\n', 'error=1 error_msg="Command not registered"', 'throttled=', '0x123456789', 'VCHI initialization failed', '-1']) {
      expect(parseThrottled(text)).toBeNull();
    }
  });
});

describe('readThrottled', () => {
  it('reads the sysfs file without spawning vcgencmd', async () => {
    const paths = await trees.make(sysfs.throttled('50005\n'));
    const runner = new FakeRunner({ 'vcgencmd get_throttled': 'throttled=0x0\n' });
    expect(await readThrottled({ paths, runCommand: runner.run })).toMatchObject({ underVoltage: true, raw: 0x50005 });
    expect(runner.calls).toEqual([]);
  });

  it('falls back to vcgencmd when the file is missing, and to null when both are', async () => {
    const paths = await trees.make();
    const runner = new FakeRunner({ 'vcgencmd get_throttled': 'throttled=0x50000\n' });
    expect(await readThrottled({ paths, runCommand: runner.run })).toMatchObject({ underVoltage: false, underVoltageSinceBoot: true });
    expect(runner.calls).toEqual(['vcgencmd get_throttled']);
    expect(await readThrottled({ paths, runCommand: new FakeRunner().run })).toBeNull();
    const failing = new FakeRunner({ 'vcgencmd get_throttled': { code: 255, stdout: 'VCHI initialization failed\n' } }).run;
    expect(await readThrottled({ paths, runCommand: failing })).toBeNull();
  });
});

describe('clockSynced', () => {
  const TD = 'timedatectl show -p NTPSynchronized --value';

  it('is true when timesyncd left its marker, without spawning timedatectl', async () => {
    const paths = await trees.make(sysfs.timesynced());
    const runner = new FakeRunner({ [TD]: 'no\n' });
    expect(await clockSynced({ paths, runCommand: runner.run })).toBe(true);
    expect(runner.calls).toEqual([]);
  });

  it('asks timedatectl otherwise (chrony, or not synced yet)', async () => {
    const paths = await trees.make();
    expect(await clockSynced({ paths, runCommand: new FakeRunner({ [TD]: 'yes\n' }).run })).toBe(true);
    expect(await clockSynced({ paths, runCommand: new FakeRunner({ [TD]: 'no\n' }).run })).toBe(false);
  });

  it('without timedatectl: false when timesyncd runs but has not synced, null when there is no timesyncd', async () => {
    const withDir = await trees.make({}, ['run/systemd/timesync']);
    expect(await clockSynced({ paths: withDir, runCommand: new FakeRunner().run })).toBe(false);
    const bare = await trees.make();
    const noSystemd = new FakeRunner({ [TD]: { code: 1, stdout: '' } }).run;
    expect(await clockSynced({ paths: bare, runCommand: noSystemd })).toBeNull();
    expect(await clockSynced({ paths: bare, runCommand: new FakeRunner({ [TD]: 'maybe\n' }).run })).toBeNull();
  });

  it('parses the yes/no answer', () => {
    expect(parseNtpSynchronized('yes\n')).toBe(true);
    expect(parseNtpSynchronized('NTPSynchronized=no')).toBe(false);
    expect(parseNtpSynchronized('')).toBeNull();
  });
});

describe('pure parsers', () => {
  it('parse /proc files', () => {
    expect(parseUptime('12345.67 40000.00\n')).toBe(12345.67);
    expect(parseUptime('')).toBeNull();
    expect(parseProcStat(procStat(1000, 9000))).toEqual({ busy: 1000, total: 10000 });
    expect(parseProcStat('intr 1 2\n')).toBeNull();
    expect(parseMeminfo(MEMINFO)).toBe(25);
    expect(parseMeminfo('MemTotal: 100 kB\n')).toBeNull();
    expect(parseDefaultRoute(ROUTE)).toBe('eth0');
    expect(parseDefaultRoute(ROUTE.split('\n').slice(0, 1).join('\n'))).toBeNull();
  });

  it('counts disk usage like df and thermal readings in m°C', () => {
    // 1000 blocks, 300 free of which 250 available to users → 700 / 950.
    expect(diskUsedPct({ blocks: 1000, bfree: 300, bavail: 250 })).toBe(73.7);
    expect(diskUsedPct({ blocks: 0, bfree: 0, bavail: 0 })).toBeNull();
    expect(thermalC('61234\n')).toBe(61.2);
    expect(thermalC('-1')).toBeNull();
    expect(thermalC('garbage')).toBeNull();
    expect(thermalC('-274000')).toBeNull();
  });
});

describe('faultsFromHealth', () => {
  const base = async (): Promise<HealthSample> => sampler(await trees.make(pi4Files('0\n'))).s.sample();

  it('maps each condition to its fault, sorted', async () => {
    const h = await base();
    const bad: HealthSample = {
      ...h,
      cpu: { loadPct: 10, tempC: 80 },
      power: { underVoltage: true, underVoltageSinceBoot: true, throttled: true },
      disk: { usedPct: 95 },
      clockSynced: false,
      devices: { camera: false, display: false, mic: false, speaker: false },
    };
    expect(faultsFromHealth(bad)).toEqual([
      'clock_unsynced', 'disk_full', 'no_camera', 'no_display', 'no_mic', 'no_speaker', 'overheating', 'under_voltage',
    ]);
    expect(faultsFromHealth({ ...bad, cpu: { loadPct: 1, tempC: 79.9 }, disk: { usedPct: 94.9 } })).not.toContain('disk_full');
    expect(faultsFromHealth(bad, { diskFullPct: 99, overheatC: 85 })).not.toContain('overheating');
  });

  it('never raises a fault for an unknown (null) value', async () => {
    const h = await base();
    const unknown: HealthSample = {
      ...h,
      cpu: { loadPct: null, tempC: null },
      power: { underVoltage: null, underVoltageSinceBoot: null, throttled: null },
      disk: { usedPct: null },
      clockSynced: null,
      devices: { camera: null, display: null, mic: null, speaker: null },
    };
    expect(faultsFromHealth(unknown)).toEqual([]);
  });
});
