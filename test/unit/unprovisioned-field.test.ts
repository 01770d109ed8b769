/**
 * An unprovisioned box shows its state on the TV too, where one is connected: the standby
 * screen from a media worker (the scriptable fake here), "Chưa cài đặt" and what to do; none
 * without a TV. runUnprovisioned as `ep run` calls it, its hardware boundaries faked.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runUnprovisioned } from '../../device/unprovisioned.js';
import { silentLogger } from '../../lib/index.js';
import { FakeSpawner, hostTrees, piCaps } from '../fakes/index.js';
import type { MediaPlan } from '../../gst-pipelines/types.js';

const trees = hostTrees();
const dirs: string[] = [];
afterAll(async () => {
  await trees.cleanup();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function run(caps: ReturnType<typeof piCaps>) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-unprov-tv-'));
  dirs.push(dir);
  const spawner = new FakeSpawner();
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  let ready!: (reason: string) => void;
  const readyP = new Promise<string>((r) => (ready = r));
  const done = runUnprovisioned({
    configFile: path.join(dir, 'config.json'),
    dataDir: dir,
    version: '1.0.0',
    log: silentLogger(),
    stop: stopped,
    env: { EP_STATUS_PAGE_PORT: 'off', EP_CONTROL_SOCKET: path.join(dir, 'control.sock') },
    paths: await trees.make({}),
    caps,
    spawner,
    onReady: async (reason) => ready(reason),
  });
  const reason = await readyP;
  return { spawner, reason, finish: async () => (stop(), await done) };
}

describe('an unprovisioned box on the TV', () => {
  it('with a TV: the standby screen says "not set up" and what to do, and goes when the agent stops', async () => {
    const r = await run(piCaps());
    const start = r.spawner.workers.flatMap((w) => w.received).find((m) => m.type === 'start');
    expect(start?.type).toBe('start');
    const plan = (start as { plan: MediaPlan }).plan;
    expect(plan.kind).toBe('standby');
    const texts = plan.kind === 'standby' ? plan.texts : undefined;
    expect(texts?.status).toContain('Chưa cài đặt');
    expect(texts?.fault).toContain('ep-provision.json');
    expect(r.reason).toMatch(/provision/i);
    expect(await r.finish()).toBe('stopped');
    expect(r.spawner.workers.every((w) => w.exited)).toBe(true);
  });

  it('without a TV: no media worker at all', async () => {
    const r = await run(piCaps({ displays: [] }));
    expect(r.spawner.workers).toHaveLength(0);
    expect(await r.finish()).toBe('stopped');
  });
});
