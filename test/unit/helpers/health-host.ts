/**
 * What the health tests share: a Raspberry Pi 4's /sys and /proc as the sampler reads
 * them (written into a HostTree), and a HealthSampler wired to the kit's FakeClock and
 * FakeRunner.
 */
import type os from 'node:os';
import { expect } from 'vitest';
import { createContract } from '../../../device/contract/validate.js';
import { healthSchema } from '../../../device/contract/schemas.js';
import type { HealthSample } from '../../../device/contract/types.js';
import { HealthSampler } from '../../../device/health/index.js';
import type { HealthSamplerDeps } from '../../../device/health/index.js';
import type { HostPaths } from '../../../lib/index.js';
import { FakeClock, FakeRunner, sysfs, type HostFiles } from '../../fakes/index.js';

const validate = createContract().compile(healthSchema);
export function expectValid(s: HealthSample): void {
  const ok = validate(s);
  expect(validate.errors ?? []).toEqual([]);
  expect(ok).toBe(true);
}

export const addrs = (ip: string): NodeJS.Dict<os.NetworkInterfaceInfo[]> => ({
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: 'dc:a6:32:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
    { address: ip, netmask: '255.255.255.0', family: 'IPv4', mac: 'dc:a6:32:00:00:01', internal: false, cidr: `${ip}/24` },
  ],
});

export const ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
`;
export const procStat = (busy: number, idle: number): string =>
  // user nice system idle iowait irq softirq steal guest guest_nice
  `cpu  ${busy - 10} 0 10 ${idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\nintr 1 2 3\n`;
export const MEMINFO = 'MemTotal:        3884096 kB\nMemFree:          900000 kB\nMemAvailable:    2913072 kB\nBuffers:           10000 kB\n';

/** A Raspberry Pi 4 as the sampler sees it; `throttled` is the sysfs text. */
export function pi4Files(throttled: string): HostFiles {
  return {
    ...sysfs.throttled(throttled),
    'sys/class/thermal/thermal_zone0/type': 'cpu-thermal\n',
    'sys/class/thermal/thermal_zone0/temp': '61234\n',
    'proc/uptime': '12345.67 40000.00\n',
    'proc/stat': procStat(1000, 9000),
    'proc/meminfo': MEMINFO,
    'proc/net/route': ROUTE,
    'sys/class/net/eth0/statistics/rx_bytes': '1000000\n',
    'sys/class/net/eth0/statistics/tx_bytes': '500000\n',
    ...sysfs.timesynced(),
    'var/lib/commune-endpoint/state.json': '{}',
  };
}

export const noDevices = (): null => null;
export const noMedia = (): null => null;

/** A sampler on `paths` with a FakeClock at 2026-03-01T08:00:00Z and a runner that knows no command. */
export function sampler(paths: HostPaths, over: Partial<HealthSamplerDeps> = {}): { s: HealthSampler; clock: FakeClock; runner: FakeRunner } {
  const clock = over.clock instanceof FakeClock ? over.clock : new FakeClock();
  const runner = new FakeRunner();
  const s = new HealthSampler({
    paths,
    runCommand: runner.run,
    clock,
    startedAt: clock.now() - 5000,
    devices: noDevices,
    media: noMedia,
    si: {},
    interfaceAddresses: () => addrs('10.0.0.23'),
    rssBytes: () => 64 * 1024 * 1024,
    ...over,
  });
  return { s, clock, runner };
}
