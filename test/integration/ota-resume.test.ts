/**
 * The update job when the agent stops in the middle (a normal stop: SIGTERM, a reboot
 * command, systemd): the job is paused, not ended, and the next start resumes it — the
 * download from the bytes already on disk (a Range request), the wait for idle without a
 * switch. (A kill -9 at each step is test/integration/ota-agent.test.ts.) The real job and
 * executors in-process, a real HTTP server sending slowly, real files.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJob, runJob, writeJob, type RunnerDeps } from '../../ota/index.js';
import { pollUntil } from './helpers/processes.js';
import { installFirstRelease, jobDeps, keys, makeBundle, manifestFor, sign, startStaticServer, type StaticServer } from './helpers/ota-fixture.js';

let work: string;
let server: StaticServer;
let bundle: Buffer;
const key = keys();

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ep-ota-resume-'));
  server = await startStaticServer();
  // Incompressible padding so the download takes a while at the trickle below.
  bundle = await makeBundle(work, '1.1.0', (dir) => writeFile(path.join(dir, 'dist', 'pad.bin'), Buffer.from(Array.from({ length: 1_000_000 }, (_, i) => (i * 7919) % 251))));
  const m = manifestFor('1.1.0', bundle, server.url('b.tar.gz'));
  server.files.set('b.tar.gz', bundle);
  server.files.set('m.json', m);
  server.files.set('m.json.sig', sign(m, key));
}, 60_000);

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

function deps(appRoot: string, signal: AbortSignal, o: { inMeeting?: () => boolean; untilIdle?: () => Promise<void> } = {}): RunnerDeps {
  return jobDeps(appRoot, key, { runner: { signal, ...o }, exec: { signal } });
}

const size = (f: string): Promise<number> => stat(f).then((s) => s.size, () => -1);

describe('the agent stops during an update', () => {
  it('mid-download: paused (not ended), the partial bundle kept; the next run resumes it with a Range request and stages', async () => {
    const appRoot = await mkdtemp(path.join(work, 'box-'));
    await installFirstRelease(appRoot, '1.0.0');
    const dir = path.join(appRoot, 'job');
    await writeJob(dir, { manifestUrl: server.url('m.json'), when: 'idle', force: false, commandId: 'c-1', ended: null });
    server.trickle = { bytes: 64 * 1024, everyMs: 20 };
    try {
      const stop = new AbortController();
      const run = runJob(deps(appRoot, stop.signal));
      await pollUntil(async () => (await size(path.join(dir, 'bundle'))) > 200_000, 30_000, 'part of the bundle on disk');
      stop.abort();
      expect(await run).toEqual({ paused: 'download' });
      expect((await readJob(dir))?.ended).toBeNull();
      const have = await size(path.join(dir, 'bundle'));
      expect(have).toBeGreaterThan(0);
      expect(have).toBeLessThan(bundle.length);
      expect(JSON.parse(await readFile(path.join(dir, 'bundle.part.json'), 'utf8'))).toMatchObject({ url: server.url('b.tar.gz'), size: bundle.length });
      server.trickle = null;
      const ranged = server.ranged.length;
      expect(await runJob(deps(appRoot, new AbortController().signal), 'switch')).toEqual({ paused: 'switch' });
      expect(server.ranged.slice(ranged)).toEqual([expect.stringMatching(/^b\.tar\.gz bytes=\d+-$/)]);
      expect(Number(/bytes=(\d+)-/.exec(server.ranged.at(-1)!)![1])).toBeGreaterThanOrEqual(have);
      expect(await stat(path.join(appRoot, 'releases', '1.1.0', '.complete')).then(() => true)).toBe(true);
    } finally {
      server.trickle = null;
    }
  });

  it('while waiting for the meeting to end: paused without a switch; the next run waits again', async () => {
    const appRoot = await mkdtemp(path.join(work, 'box-'));
    await installFirstRelease(appRoot, '1.0.0');
    const dir = path.join(appRoot, 'job');
    await writeJob(dir, { manifestUrl: server.url('m.json'), when: 'idle', force: false, commandId: 'c-2', ended: null });
    const stop = new AbortController();
    let waiting = false;
    // As the agent's: the wait ends when the meeting ends or the agent stops.
    const untilIdle = (): Promise<void> =>
      new Promise((resolve) => {
        waiting = true;
        stop.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    const run = runJob(deps(appRoot, stop.signal, { inMeeting: () => true, untilIdle }));
    await pollUntil(() => waiting, 30_000, 'the job waiting for idle');
    stop.abort();
    expect(await run).toEqual({ paused: 'wait-idle' });
    expect(JSON.parse(await readFile(path.join(appRoot, 'release-state.json'), 'utf8'))).toMatchObject({ committed: '1.0.0', trying: null });
    expect((await readJob(dir))?.ended).toBeNull();
    // Restarted, the meeting still on: it waits again (the step the planner names), no switch.
    expect(await runJob(deps(appRoot, new AbortController().signal, { inMeeting: () => true }), 'wait-idle')).toEqual({ paused: 'wait-idle' });
  });
});
