import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContract } from '../../device/contract/validate.js';
import { healthSchema } from '../../device/contract/schemas.js';
import { systemClock } from '../../lib/clock.js';
import { hostPaths } from '../../lib/host-paths.js';
import { HealthSampler, faultsFromHealth } from '../../device/health/index.js';
import { parseDefaultRoute } from '../../device/health/parse.js';
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
    // The interface of this machine's default route (null without one), and rates for it.
    const iface = parseDefaultRoute(await readFile(paths.proc('net', 'route'), 'utf8').catch(() => ''));
    expect(second.net.iface).toBe(iface);
    expect([typeof second.net.rxKbps, typeof second.net.txKbps]).toEqual(iface === null ? ['object', 'object'] : ['number', 'number']);
    // Throttled flags only where the Pi firmware is; null, never a guess, anywhere else.
    const pi = await isPi();
    expect(Object.values(second.power).every((v) => (pi ? typeof v === 'boolean' : v === null)), JSON.stringify(second.power)).toBe(true);
    expect(second.devices).toEqual({ camera: null, display: null, mic: null, speaker: null });
  });

  it('samples 20 times in a row, each valid (what a sample costs is the bench\'s: agent.healthSampleMs)', async () => {
    const s = newSampler();
    const samples = [];
    for (let i = 0; i < 20; i++) samples.push(await s.sample());
    for (const h of samples) expect(validate(h), JSON.stringify(validate.errors)).toBe(true);
    // One machine, one clock: uptime never goes back from one sample to the next.
    const uptimes = samples.map((h) => h.uptimeS);
    expect(uptimes).toEqual([...uptimes].sort((x, y) => x - y));
  });
});
