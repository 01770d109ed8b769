/**
 * `ep fleet` (the compiled CLI, a child process) against 200 simulated boxes — the real
 * agent's control plane, media off (device/fleet-sim/) — on a real Mosquitto:
 *
 * - list: every box, online, idle, version 1.0.0, in its group;
 * - group join: every box's retained state `in_meeting` in that meeting (read by our own
 *   client, not taken from the tool's word); leave: every box back to idle;
 * - a staged OTA (waves 1,10,50,100 → 2, 18, 80, 100 boxes) of a signed 1.1.0 served over
 *   HTTP, where 4 of wave 2's 18 boxes (22 %) fail their self-test under 1.1.0: those
 *   roll back (the simulated launcher, on the launcher's own decision), the rollout halts
 *   before wave 3 and names them; wave 1 and the other 14 committed 1.1.0, and no box of
 *   waves 3–4 was touched.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/index.js';
import { SimBroker, SimFleet, makeFleetDir, simId } from '../../device/fleet-sim/index.js';
import { keys, manifestFor, sign, startStaticServer, type StaticServer } from './helpers/ota-fixture.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');
const N = 200;
const GROUP = 'sim-g001';
/** Wave 2 is sim-00003 … sim-00020: these four fail their self-test under 1.1.0. */
const FAILING = ['sim-00005', 'sim-00009', 'sim-00013', 'sim-00017'];

function ep(args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Every box's retained state, read by a client of our own. */
async function retainedStates(url: string): Promise<Map<string, { state: string; meeting?: { id: string } | null; version: string; ota?: { phase: string; version?: string } | null }>> {
  const c = await mqtt.connectAsync(url, { clientId: `fleet-test-${Date.now()}`, protocolVersion: 5, clean: true, reconnectPeriod: 0 });
  const m = new Map();
  c.on('message', (topic, payload) => {
    const id = topic.split('/')[3]!;
    if (payload.length) m.set(id, JSON.parse(payload.toString()));
  });
  await c.subscribeAsync('ep/v1/dev/+/state', { qos: 1 });
  // Retained messages come right after the SUBACK; quiet for 500 ms = all of them.
  let size = -1;
  while (size !== m.size) {
    size = m.size;
    await new Promise((r) => setTimeout(r, 500));
  }
  await c.endAsync(true);
  return m;
}

/** Waits until `ok(states)` holds (hang guard `ms`). */
async function until(url: string, what: string, ok: (s: Awaited<ReturnType<typeof retainedStates>>) => boolean, ms = 30_000): Promise<Awaited<ReturnType<typeof retainedStates>>> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await retainedStates(url);
    if (ok(s)) return s;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
  }
}

let broker: SimBroker;
let fleet: SimFleet;
let server: StaticServer;
let work = '';

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'ep-fleet-test-'));
  const k = keys();
  const keyFile = path.join(work, 'ota.pub');
  await writeFile(keyFile, k.publicKeyPem);
  // A release of 1.1.0: what `stage` requires (dist/device/cli/ep.js) and its version.
  const tree = path.join(work, 'tree');
  await mkdir(path.join(tree, 'dist', 'device', 'cli'), { recursive: true });
  await writeFile(path.join(tree, 'dist', 'device', 'cli', 'ep.js'), '// 1.1.0\n');
  await writeFile(path.join(tree, 'package.json'), '{"name":"commune-endpoint","version":"1.1.0"}\n');
  await new Promise<void>((resolve, reject) => execFile('tar', ['-czf', path.join(work, 'b.tar.gz'), '-C', tree, 'dist', 'package.json'], (e) => (e ? reject(e) : resolve())));
  const bundle = await readFile(path.join(work, 'b.tar.gz'));
  server = await startStaticServer();
  const manifest = manifestFor('1.1.0', bundle, server.url('ep-1.1.0.tar.gz'));
  server.files.set('ep-1.1.0.tar.gz', bundle);
  server.files.set('manifest.json', manifest);
  server.files.set('manifest.json.sig', sign(manifest, k));

  broker = await SimBroker.start();
  fleet = new SimFleet({
    count: N,
    mqttUrl: broker.url,
    dir: await makeFleetDir(),
    logger: createLogger({ level: 'fatal' }),
    otaKeyFiles: [keyFile],
    failSelftest: new Set(FAILING),
    box: { commitWindowS: 1, restartMs: 200, reconnectCapMs: 5000 },
  });
  const t0 = Date.now();
  await fleet.start();
  expect(await fleet.allConnectedSince(t0, 60_000)).toEqual([]);
}, 120_000);

afterAll(async () => {
  await fleet?.dispose();
  await broker?.stop();
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe(`ep fleet against ${N} simulated boxes on Mosquitto`, () => {
  it('list: every box online and idle on 1.0.0, in its group', async () => {
    const r = await ep(['fleet', 'list', '--broker', broker.url, '--group', GROUP, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { boxes: Array<{ id: string; group: string; online: boolean | string; state: string; version: string }>; counts: { online: number } };
    expect(out.boxes.map((b) => b.id)).toEqual(Array.from({ length: N }, (_, i) => simId('sim', i)));
    expect(out.counts.online).toBe(N);
    for (const b of out.boxes) expect(b, b.id).toMatchObject({ group: GROUP, state: 'idle', version: '1.0.0' });
    const text = await ep(['fleet', 'list', '--broker', broker.url]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('sim-00200');
  }, 60_000);

  it('join: every box in_meeting in its retained state; leave: every box idle again', async () => {
    const spec = path.join(work, 'meeting.json');
    await writeFile(spec, JSON.stringify({ meetingId: 'council-2026-12-07', title: 'Họp trực tuyến', send: { url: 'srt://127.0.0.1:9', streamId: 'publish:g001/box' }, receive: { url: 'srt://127.0.0.1:9', streamId: 'read:g001/program' } }));
    const j = await ep(['fleet', 'join', '--broker', broker.url, '--group', GROUP, '--spec', spec, '--json']);
    expect(j.code, j.stdout + j.stderr).toBe(0);
    const states = await until(broker.url, `${N} boxes in_meeting`, (s) => [...s.values()].filter((x) => x.state === 'in_meeting' && x.meeting?.id === 'council-2026-12-07').length === N);
    expect(states.size).toBe(N);

    const l = await ep(['fleet', 'leave', '--broker', broker.url, '--group', GROUP, '--json']);
    expect(l.code, l.stdout + l.stderr).toBe(0);
    await until(broker.url, `${N} boxes idle`, (s) => [...s.values()].filter((x) => x.state === 'idle').length === N);
  }, 120_000);

  it('a staged OTA: wave 2 has 4 of 18 boxes failing their self-test → halts before wave 3, naming them', async () => {
    const r = await ep(['fleet', 'ota', '--broker', broker.url, '--group', GROUP, '--manifest', server.url('manifest.json'), '--waves', '1,10,50,100', '--wave-timeout-s', '90', '--json'], 240_000);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as { target: string; halted: boolean; haltedAtWave: number; waves: Array<{ wave: number; boxes: string[]; committed: string[]; failed: Array<{ id: string; why: string }> }> };
    expect(out).toMatchObject({ target: '1.1.0', halted: true, haltedAtWave: 2 });
    expect(out.waves.map((w) => w.boxes.length)).toEqual([2, 18]);
    expect(out.waves[0]!.committed.sort()).toEqual(['sim-00001', 'sim-00002']);
    expect(out.waves[1]!.failed.map((f) => f.id).sort()).toEqual(FAILING);
    for (const f of out.waves[1]!.failed) expect(f.why, f.id).toMatch(/rolled_back/);
    expect(out.waves[1]!.committed).toHaveLength(14);

    // What the boxes themselves say, and what no command reached.
    const s = await retainedStates(broker.url);
    for (let i = 0; i < 20; i++) {
      const id = simId('sim', i);
      const failing = FAILING.includes(id);
      expect(s.get(id), id).toMatchObject({ version: failing ? '1.0.0' : '1.1.0', ota: { phase: failing ? 'rolled_back' : 'committed', version: '1.1.0' } });
      expect(fleet.box(id)!.version, id).toBe(failing ? '1.0.0' : '1.1.0');
    }
    for (let i = 20; i < N; i++) {
      const id = simId('sim', i);
      expect(s.get(id), id).toMatchObject({ version: '1.0.0' });
      expect(s.get(id)?.ota ?? null, id).toBeNull();
      expect(fleet.box(id)!.starts, id).toBe(1);
    }
  }, 240_000);
});
