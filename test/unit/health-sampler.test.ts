/**
 * HealthSampler against a fake host (a HostTree: a Raspberry Pi 4's /sys and /proc, or
 * nothing readable) with the kit's FakeClock and FakeRunner: every field of a sample,
 * rates between samples, what it caches, and that one stuck or failing read costs only
 * its own field.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { COMMAND_RETRY_MS, HealthSampler, faultsFromHealth } from '../../device/health/index.js';
import type { SiSubset } from '../../device/health/index.js';
import { FakeClock, FakeRunner, hostTrees } from '../fakes/index.js';
import { ROUTE, expectValid, noDevices, noMedia, pi4Files, procStat, sampler } from './helpers/health-host.js';

const trees = hostTrees();
afterAll(trees.cleanup);
const tree = trees.make;

describe('HealthSampler on a fake Raspberry Pi 4', () => {
  it('reports under-voltage now (0x50005) from files alone, no process spawned', async () => {
    const paths = await tree(pi4Files('50005\n'));
    const { s, runner } = sampler(paths, {
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
    expect(runner.calls).toEqual([]);
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

    await clock.advance(10_000);
    await writeFile(paths.proc('stat'), procStat(1000 + 150, 9000 + 450)); // 150 busy of 600
    await writeFile(paths.sys('class', 'net', 'eth0', 'statistics', 'rx_bytes'), String(1_000_000 + 1_250_000)); // 1 Mbit/s
    await writeFile(paths.sys('class', 'net', 'eth0', 'statistics', 'tx_bytes'), String(500_000 + 62_500)); // 50 kbit/s
    const second = await s.sample();
    expectValid(second);
    expect(second.cpu.loadPct).toBe(25);
    expect(second.net).toEqual({ iface: 'eth0', ip: '10.0.0.23', rxKbps: 1000, txKbps: 50 });

    // A sample 10 ms later repeats the last rates instead of measuring noise.
    await clock.advance(10);
    const third = await s.sample();
    expect(third.cpu.loadPct).toBe(25);
    expect(third.net.rxKbps).toBe(1000);

    // Counters that went backwards (interface reset, 32-bit wrap): a new window, null.
    await clock.advance(10_000);
    await writeFile(paths.sys('class', 'net', 'eth0', 'statistics', 'rx_bytes'), '42');
    const fourth = await s.sample();
    expect(fourth.net).toMatchObject({ rxKbps: null, txKbps: null });
  });

  it('caches the default interface for 60 s', async () => {
    const paths = await tree(pi4Files('0\n'));
    const { s, clock } = sampler(paths);
    expect((await s.sample()).net.iface).toBe('eth0');
    await writeFile(paths.proc('net', 'route'), ROUTE.replaceAll('eth0', 'usb0'));
    await clock.advance(30_000);
    expect((await s.sample()).net.iface).toBe('eth0');
    await clock.advance(31_000);
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
    const clock = new FakeClock();
    const runner = new FakeRunner();
    const s = new HealthSampler({ paths, runCommand: runner.run, clock, startedAt: clock.now(), devices: noDevices, media: noMedia, si: {} });
    await s.sample();
    expect([...runner.calls].sort()).toEqual(['timedatectl show -p NTPSynchronized --value', 'vcgencmd get_throttled']);
    await clock.advance(30_000);
    await s.sample();
    expect(runner.calls).toHaveLength(2);
    await clock.advance(COMMAND_RETRY_MS);
    await s.sample();
    expect(runner.calls).toHaveLength(4);
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
    // Every read but the stuck one finishes on its own and clears its timeout; then the
    // clock reaches the stuck one's 50 ms and the sample completes without it.
    const sampling = s.sample();
    await vi.waitFor(() => expect(clock.pending).toBe(1), { timeout: 10_000, interval: 5 });
    await clock.advance(50);
    const h = await sampling;
    expectValid(h);
    expect(h.cpu.tempC).toBeNull();
    expect(h.devices).toEqual({ camera: null, display: null, mic: null, speaker: null });
    expect(h.power.underVoltage).toBe(true);
    expect(h.mem.usedPct).toBe(25);
    expect(errors.sort()).toEqual(['cpu.temp', 'devices']);
    // The next sample does not ask the stuck read again, and needs no timeout to finish.
    await clock.advance(30_000);
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
    await clock.advance(30_000);
    await s.sample();
    expect(calls).toBe(1);
    main = 47.53;
    await clock.advance(10 * 60_000);
    expect((await s.sample()).cpu.tempC).toBe(47.5);
    expect(calls).toBe(2);
  });
});
