import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContract } from '../../device/contract/validate.js';
import { healthSchema } from '../../device/contract/schemas.js';
import { systemClock } from '../../lib/clock.js';
import { hostPaths } from '../../lib/host-paths.js';
import { HealthSampler, faultsFromHealth } from '../../device/health/index.js';
import { execRunCommand } from '../../gst-pipelines/probe/probe.js';

const validate = createContract().compile(healthSchema);
const paths = hostPaths({});
let dataDir = '';

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ep-health-int-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

function newSampler(): HealthSampler {
  return new HealthSampler({
    paths,
    runCommand: execRunCommand(),
    clock: systemClock,
    startedAt: Date.now(),
    devices: () => null,
    media: () => null,
    dataDir,
  });
}

const isPi = async (): Promise<boolean> => /Raspberry Pi/.test(await readFile(paths.deviceTreeModel, 'utf8').catch(() => ''));

describe('HealthSampler on this machine', () => {
  it('samples twice, each valid against the health schema, with real numbers where Linux has them', async () => {
    const s = newSampler();
    const first = await s.sample();
    expect(validate(first), JSON.stringify(validate.errors)).toBe(true);
    await new Promise((r) => setTimeout(r, 1100)); // one rate window
    const second = await s.sample();
    expect(validate(second), JSON.stringify(validate.errors)).toBe(true);
    console.log('health sample on this machine:', JSON.stringify(second));
    console.log('faults:', faultsFromHealth(second));

    expect(second.uptimeS).toBeGreaterThan(0);
    const load = second.cpu.loadPct;
    expect(typeof load).toBe('number');
    expect(load).toBeGreaterThanOrEqual(0);
    expect(load).toBeLessThanOrEqual(100);
    expect(typeof second.mem.usedPct).toBe('number');
    expect(second.mem.agentRssMb).toBeGreaterThan(10);
    expect(typeof second.disk.usedPct).toBe('number');
    expect(second.disk.usedPct).toBeGreaterThanOrEqual(0);
    expect(second.disk.usedPct).toBeLessThanOrEqual(100);
    if (second.net.iface !== null) {
      expect(typeof second.net.rxKbps).toBe('number');
      expect(typeof second.net.txKbps).toBe('number');
    }
    if (!(await isPi())) {
      expect(second.power).toEqual({ underVoltage: null, underVoltageSinceBoot: null, throttled: null });
    }
    expect(second.devices).toEqual({ camera: null, display: null, mic: null, speaker: null });
  });

  it('measures what one sample costs (printed, not asserted: shared noisy machine)', async () => {
    const s = newSampler();
    const t0 = performance.now();
    await s.sample();
    const firstMs = performance.now() - t0;

    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const h = await s.sample();
      times.push(performance.now() - t);
      expect(validate(h)).toBe(true);
    }
    loop.disable();
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const p95 = times[Math.ceil(0.95 * times.length) - 1] ?? Number.NaN;
    console.log(
      `health sample cost: first ${firstMs.toFixed(1)} ms; then over ${times.length}: mean ${mean.toFixed(2)} ms, ` +
        `p50 ${(times[times.length >> 1] ?? 0).toFixed(2)} ms, p95 ${p95.toFixed(2)} ms, max ${(times.at(-1) ?? 0).toFixed(2)} ms; ` +
        `event loop delay max ${(loop.max / 1e6).toFixed(1)} ms`,
    );
    expect(times).toHaveLength(20);
  });
});
