import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type os from 'node:os';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createContract } from '../../device/contract/validate.js';
import { healthSchema } from '../../device/contract/schemas.js';
import type { HealthSample } from '../../device/contract/types.js';
import type { Clock } from '../../lib/clock.js';
import { hostPaths } from '../../lib/host-paths.js';
import type { HostPaths } from '../../lib/host-paths.js';
import {
  COMMAND_RETRY_MS,
  HealthSampler,
  clockSynced,
  faultsFromHealth,
  parseNtpSynchronized,
  parseThrottled,
  readThrottled,
} from '../../device/health/index.js';
import type { HealthSamplerDeps, RunCommand, SiSubset } from '../../device/health/index.js';
import { diskUsedPct, parseDefaultRoute, parseMeminfo, parseProcStat, parseUptime, thermalC } from '../../device/health/parse.js';

const validate = createContract().compile(healthSchema);
function expectValid(s: HealthSample): void {
  const ok = validate(s);
  expect(validate.errors ?? []).toEqual([]);
  expect(ok).toBe(true);
}

const roots: string[] = [];
afterAll(async () => {
  await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
});

async function tree(files: Record<string, string>, dirs: string[] = []): Promise<HostPaths> {
  const root = await mkdtemp(path.join(tmpdir(), 'ep-health-'));
  roots.push(root);
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), text);
  }
  for (const d of dirs) await mkdir(path.join(root, d), { recursive: true });
  return hostPaths({ EP_HOST_ROOT: root });
}

/** now() is driven by the test; timers are real (only the read timeouts use them). */
function fakeClock(start = Date.parse('2026-03-01T08:00:00Z')): Clock & { t: number; advance(ms: number): void } {
  const c = {
    t: start,
    now: () => c.t,
    advance: (ms: number) => {
      c.t += ms;
    },
    setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
    clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
    setInterval: (fn: () => void, ms: number) => setInterval(fn, ms),
    clearInterval: (h: unknown) => clearInterval(h as NodeJS.Timeout),
  };
  return c;
}

/** Answers from a table keyed by the command line; the rest is "not installed". Records calls. */
function fakeRunner(table: Record<string, string | { code: number | null; stdout: string }> = {}): { run: RunCommand; calls: string[] } {
  const calls: string[] = [];
  const run: RunCommand = async (cmd, args) => {
    const line = [cmd, ...args].join(' ');
    calls.push(line);
    await new Promise((r) => setImmediate(r));
    const v = table[line];
    if (v === undefined) return { code: null, stdout: '', stderr: `spawn ${cmd} ENOENT` };
    return typeof v === 'string' ? { code: 0, stdout: v, stderr: '' } : { ...v, stderr: '' };
  };
  return { run, calls };
}

const addrs = (ip: string): NodeJS.Dict<os.NetworkInterfaceInfo[]> => ({
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: 'dc:a6:32:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
    { address: ip, netmask: '255.255.255.0', family: 'IPv4', mac: 'dc:a6:32:00:00:01', internal: false, cidr: `${ip}/24` },
  ],
});

const ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
`;
const procStat = (busy: number, idle: number): string =>
  // user nice system idle iowait irq softirq steal guest guest_nice
  `cpu  ${busy - 10} 0 10 ${idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\nintr 1 2 3\n`;
const MEMINFO = 'MemTotal:        3884096 kB\nMemFree:          900000 kB\nMemAvailable:    2913072 kB\nBuffers:           10000 kB\n';

/** A Raspberry Pi 4 as the sampler sees it; `throttled` is the sysfs text. */
function pi4Files(throttled: string): Record<string, string> {
  return {
    'sys/devices/platform/soc/soc:firmware/get_throttled': throttled,
    'sys/class/thermal/thermal_zone0/type': 'cpu-thermal\n',
    'sys/class/thermal/thermal_zone0/temp': '61234\n',
    'proc/uptime': '12345.67 40000.00\n',
    'proc/stat': procStat(1000, 9000),
    'proc/meminfo': MEMINFO,
    'proc/net/route': ROUTE,
    'sys/class/net/eth0/statistics/rx_bytes': '1000000\n',
    'sys/class/net/eth0/statistics/tx_bytes': '500000\n',
    'run/systemd/timesync/synchronized': '',
    'var/lib/commune-endpoint/state.json': '{}',
  };
}

const noDevices = (): null => null;
const noMedia = (): null => null;

function sampler(paths: HostPaths, over: Partial<HealthSamplerDeps> = {}): { s: HealthSampler; clock: ReturnType<typeof fakeClock>; calls: string[] } {
  const clock = fakeClock();
  const { run, calls } = fakeRunner();
  const s = new HealthSampler({
    paths,
    runCommand: run,
    clock,
    startedAt: clock.now() - 5000,
    devices: noDevices,
    media: noMedia,
    si: {},
    interfaceAddresses: () => addrs('10.0.0.23'),
    rssBytes: () => 64 * 1024 * 1024,
    ...over,
  });
  return { s, clock: (over.clock as ReturnType<typeof fakeClock> | undefined) ?? clock, calls };
}

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
    const paths = await tree({ 'sys/devices/platform/soc/soc:firmware/get_throttled': '50005\n' });
    const { run, calls } = fakeRunner({ 'vcgencmd get_throttled': 'throttled=0x0\n' });
    expect(await readThrottled({ paths, runCommand: run })).toMatchObject({ underVoltage: true, raw: 0x50005 });
    expect(calls).toEqual([]);
  });

  it('falls back to vcgencmd when the file is missing, and to null when both are', async () => {
    const paths = await tree({});
    const { run, calls } = fakeRunner({ 'vcgencmd get_throttled': 'throttled=0x50000\n' });
    expect(await readThrottled({ paths, runCommand: run })).toMatchObject({ underVoltage: false, underVoltageSinceBoot: true });
    expect(calls).toEqual(['vcgencmd get_throttled']);
    expect(await readThrottled({ paths, runCommand: fakeRunner().run })).toBeNull();
    const failing = fakeRunner({ 'vcgencmd get_throttled': { code: 255, stdout: 'VCHI initialization failed\n' } }).run;
    expect(await readThrottled({ paths, runCommand: failing })).toBeNull();
  });
});

describe('clockSynced', () => {
  const TD = 'timedatectl show -p NTPSynchronized --value';

  it('is true when timesyncd left its marker, without spawning timedatectl', async () => {
    const paths = await tree({ 'run/systemd/timesync/synchronized': '' });
    const { run, calls } = fakeRunner({ [TD]: 'no\n' });
    expect(await clockSynced({ paths, runCommand: run })).toBe(true);
    expect(calls).toEqual([]);
  });

  it('asks timedatectl otherwise (chrony, or not synced yet)', async () => {
    const paths = await tree({});
    expect(await clockSynced({ paths, runCommand: fakeRunner({ [TD]: 'yes\n' }).run })).toBe(true);
    expect(await clockSynced({ paths, runCommand: fakeRunner({ [TD]: 'no\n' }).run })).toBe(false);
  });

  it('without timedatectl: false when timesyncd runs but has not synced, null when there is no timesyncd', async () => {
    const withDir = await tree({}, ['run/systemd/timesync']);
    expect(await clockSynced({ paths: withDir, runCommand: fakeRunner().run })).toBe(false);
    const bare = await tree({});
    const noSystemd = fakeRunner({ [TD]: { code: 1, stdout: '' } }).run;
    expect(await clockSynced({ paths: bare, runCommand: noSystemd })).toBeNull();
    expect(await clockSynced({ paths: bare, runCommand: fakeRunner({ [TD]: 'maybe\n' }).run })).toBeNull();
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

describe('HealthSampler on a fake Raspberry Pi 4', () => {
  it('reports under-voltage now (0x50005) from files alone, no process spawned', async () => {
    const paths = await tree(pi4Files('50005\n'));
    const { s, calls } = sampler(paths, {
      devices: () => ({ camera: true, display: false, mic: true, speaker: true }),
    });
    const h = await s.sample();
    expectValid(h);
    expect(h).toMatchObject({
      ts: '2026-03-01T08:00:00.000Z',
      uptimeS: 12345,
      cpu: { loadPct: null, tempC: 61.2 },
      power: { underVoltage: true, underVoltageSinceBoot: true, throttled: true },
      mem: { usedPct: 25, agentRssMb: 64 },
      clockSynced: true,
      net: { iface: 'eth0', ip: '10.0.0.23', rxKbps: null, txKbps: null },
      devices: { camera: true, display: false, mic: true, speaker: true },
    });
    expect(typeof h.disk.usedPct).toBe('number');
    expect(h.faults).toBeUndefined();
    expect(faultsFromHealth(h)).toEqual(['no_display', 'under_voltage']);
    expect(calls).toEqual([]);
  });

  it('reports under-voltage since boot only (0x50000) without the fault', async () => {
    const { s } = sampler(await tree(pi4Files('50000\n')));
    const h = await s.sample();
    expectValid(h);
    expect(h.power).toEqual({ underVoltage: false, underVoltageSinceBoot: true, throttled: false });
    expect(faultsFromHealth(h)).toEqual([]);
  });

  it('reports a healthy supply (0x0) as three falses', async () => {
    const { s } = sampler(await tree(pi4Files('0\n')));
    const h = await s.sample();
    expectValid(h);
    expect(h.power).toEqual({ underVoltage: false, underVoltageSinceBoot: false, throttled: false });
  });

  it('computes CPU load and network rates between two samples', async () => {
    const paths = await tree(pi4Files('0\n'));
    const { s, clock } = sampler(paths);
    const first = await s.sample();
    expect(first.cpu.loadPct).toBeNull();
    expect(first.net).toMatchObject({ rxKbps: null, txKbps: null });

    clock.advance(10_000);
    await writeFile(paths.proc('stat'), procStat(1000 + 150, 9000 + 450)); // 150 busy of 600
    await writeFile(paths.sys('class', 'net', 'eth0', 'statistics', 'rx_bytes'), String(1_000_000 + 1_250_000)); // 1 Mbit/s
    await writeFile(paths.sys('class', 'net', 'eth0', 'statistics', 'tx_bytes'), String(500_000 + 62_500)); // 50 kbit/s
    const second = await s.sample();
    expectValid(second);
    expect(second.cpu.loadPct).toBe(25);
    expect(second.net).toEqual({ iface: 'eth0', ip: '10.0.0.23', rxKbps: 1000, txKbps: 50 });

    // A sample 10 ms later repeats the last rates instead of measuring noise.
    clock.advance(10);
    const third = await s.sample();
    expect(third.cpu.loadPct).toBe(25);
    expect(third.net.rxKbps).toBe(1000);

    // Counters that went backwards (interface reset, 32-bit wrap): a new window, null.
    clock.advance(10_000);
    await writeFile(paths.sys('class', 'net', 'eth0', 'statistics', 'rx_bytes'), '42');
    const fourth = await s.sample();
    expect(fourth.net).toMatchObject({ rxKbps: null, txKbps: null });
  });

  it('caches the default interface for 60 s', async () => {
    const paths = await tree(pi4Files('0\n'));
    const { s, clock } = sampler(paths);
    expect((await s.sample()).net.iface).toBe('eth0');
    await writeFile(paths.proc('net', 'route'), ROUTE.replaceAll('eth0', 'usb0'));
    clock.advance(30_000);
    expect((await s.sample()).net.iface).toBe('eth0');
    clock.advance(31_000);
    const h = await s.sample();
    expect(h.net).toEqual({ iface: 'usb0', ip: null, rxKbps: null, txKbps: null });
    expectValid(h);
  });

  it('passes media stats through and turns anything but finite numbers into null', async () => {
    const { s } = sampler(await tree(pi4Files('0\n')), {
      media: () => ({
        send: { fps: 30, kbps: 1800.5, rttMs: 42, lossPct: Number.NaN },
        receive: { fps: 29.9 },
        audio: null,
        link: { adaptive: true, rung: '540p15', targetKbps: 420, sendKbps: 610, rttMs: Number.POSITIVE_INFINITY, rttFloorMs: 12.5, congested: false, stepsDown: 3, stepsUp: 5 },
      }),
    });
    const h = await s.sample();
    expectValid(h);
    expect(h.media).toEqual({
      send: { fps: 30, kbps: 1800.5, rttMs: 42, lossPct: null, retransPct: null },
      receive: { fps: 29.9, kbps: null, lossPct: null },
      audio: { micDb: null, speakerDb: null },
      link: { adaptive: true, rung: '540p15', targetKbps: 420, sendKbps: 610, rttMs: null, rttFloorMs: 12.5, congested: false, stepsDown: 3, stepsUp: 5 },
    });
  });
});

describe('HealthSampler where nothing is readable', () => {
  it('gives null for every field, falls back to agent uptime, and validates', async () => {
    const paths = await tree({ 'a-file': '' });
    // dataDir below a regular file: statfs fails with ENOTDIR (not ENOENT), so no walking up.
    const dataDir = path.join(paths.root, 'a-file', 'data');
    const { s } = sampler(paths, { dataDir, rssBytes: () => Number.NaN, interfaceAddresses: () => ({}) });
    const h = await s.sample();
    expectValid(h);
    expect(h).toEqual({
      ts: '2026-03-01T08:00:00.000Z',
      uptimeS: 5,
      cpu: { loadPct: null, tempC: null },
      power: { underVoltage: null, underVoltageSinceBoot: null, throttled: null },
      mem: { usedPct: null, agentRssMb: null },
      disk: { usedPct: null },
      clockSynced: null,
      net: { iface: null, ip: null, rxKbps: null, txKbps: null },
      devices: { camera: null, display: null, mic: null, speaker: null },
      media: {
        send: { fps: null, kbps: null, rttMs: null, lossPct: null, retransPct: null },
        receive: { fps: null, kbps: null, lossPct: null },
        audio: { micDb: null, speakerDb: null },
        link: null,
      },
    });
    expect(faultsFromHealth(h)).toEqual([]);
  });

  it('does not respawn a failing command on every sample, and retries after 10 minutes', async () => {
    const paths = await tree({});
    const clock = fakeClock();
    const { run, calls } = fakeRunner();
    const s = new HealthSampler({ paths, runCommand: run, clock, startedAt: clock.now(), devices: noDevices, media: noMedia, si: {} });
    await s.sample();
    expect([...calls].sort()).toEqual(['timedatectl show -p NTPSynchronized --value', 'vcgencmd get_throttled']);
    clock.advance(30_000);
    await s.sample();
    expect(calls).toHaveLength(2);
    clock.advance(COMMAND_RETRY_MS);
    await s.sample();
    expect(calls).toHaveLength(4);
  });

  it('walks up to the existing parent when dataDir does not exist yet', async () => {
    const paths = await tree({});
    const { s } = sampler(paths, { dataDir: path.join(paths.root, 'var', 'lib', 'not-yet', 'deeper') });
    expect(typeof (await s.sample()).disk.usedPct).toBe('number');
  });
});

describe('HealthSampler isolation', () => {
  it('one hanging read, one throwing provider: only their fields are null, and the hang is not restarted', async () => {
    let tempCalls = 0;
    const si: SiSubset = {
      cpuTemperature: () => {
        tempCalls += 1;
        return new Promise(() => {}); // never settles
      },
    };
    const errors: string[] = [];
    const files = pi4Files('50005\n');
    delete files['sys/class/thermal/thermal_zone0/type'];
    delete files['sys/class/thermal/thermal_zone0/temp'];
    const { s, clock } = sampler(await tree(files), {
      si,
      timeoutMs: 50,
      devices: () => {
        throw new Error('probe crashed');
      },
      onReadError: (field) => errors.push(field),
    });
    const started = Date.now();
    const h = await s.sample();
    expect(Date.now() - started).toBeLessThan(1000);
    expectValid(h);
    expect(h.cpu.tempC).toBeNull();
    expect(h.devices).toEqual({ camera: null, display: null, mic: null, speaker: null });
    expect(h.power.underVoltage).toBe(true);
    expect(h.mem.usedPct).toBe(25);
    expect(errors.sort()).toEqual(['cpu.temp', 'devices']);
    clock.advance(30_000);
    await s.sample();
    expect(tempCalls).toBe(1);
  });

  it('concurrent callers share one sample', async () => {
    const { s } = sampler(await tree(pi4Files('0\n')));
    const [a, b] = await Promise.all([s.sample(), s.sample()]);
    expect(a).toBe(b);
  });
});

describe('HealthSampler temperature', () => {
  it('prefers the CPU zone by type over thermal_zone0', async () => {
    const { s } = sampler(
      await tree({
        'sys/class/thermal/thermal_zone0/type': 'acpitz\n',
        'sys/class/thermal/thermal_zone0/temp': '27800\n',
        'sys/class/thermal/thermal_zone2/type': 'x86_pkg_temp\n',
        'sys/class/thermal/thermal_zone2/temp': '55000\n',
      }),
    );
    expect((await s.sample()).cpu.tempC).toBe(55);
  });

  it('uses thermal_zone0 when no zone is typed as the CPU, and null for -1', async () => {
    const paths = await tree({ 'sys/class/thermal/thermal_zone0/type': 'soc-dts0\n', 'sys/class/thermal/thermal_zone0/temp': '48900\n' });
    const { s } = sampler(paths);
    expect((await s.sample()).cpu.tempC).toBe(48.9);
    await writeFile(paths.sys('class', 'thermal', 'thermal_zone0', 'temp'), '-1\n');
    expect((await s.sample()).cpu.tempC).toBeNull();
  });

  it('without thermal zones asks systeminformation, and rarely when it knows nothing', async () => {
    let calls = 0;
    let main: number | null = -1;
    const si: SiSubset = {
      cpuTemperature: async () => {
        calls += 1;
        return { main };
      },
    };
    const { s, clock } = sampler(await tree({}), { si });
    expect((await s.sample()).cpu.tempC).toBeNull();
    clock.advance(30_000);
    await s.sample();
    expect(calls).toBe(1);
    main = 47.53;
    clock.advance(10 * 60_000);
    expect((await s.sample()).cpu.tempC).toBe(47.5);
    expect(calls).toBe(2);
  });
});

describe('faultsFromHealth', () => {
  const base = async (): Promise<HealthSample> => sampler(await tree(pi4Files('0\n'))).s.sample();

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
