/**
 * Over-the-air updates end to end, as a box runs them: the launcher (installed as
 * provisioning installs it, running as built JS with no node_modules) starts `ep run`
 * from releases/1.0.0; the hub sends `ota` over a real Mosquitto (TLS, ACLs); the box
 * fetches a signed manifest and a bundle from a real HTTP server, stages 1.1.0 beside
 * itself, switches, restarts into it through the launcher, self-tests and commits.
 *
 * Then the same with the process SIGKILLed at every step of the planner (OTA_STEPS: before
 * each, and after the last): the box always ends on a working committed version, and the
 * update completed or was cleanly abandoned — one test per step, generated from the list,
 * so a new step cannot go untested.
 */
import { mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type ExpectStatic, type TestContext } from 'vitest';
import { OTA_STEPS, installLauncher, type OtaStep } from '../../ota/index.js';
import { HubClient } from './helpers/hub-client.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { ROOT, installFirstRelease, keys, makeBundle, manifestFor, pidsMentioning, sign, startStaticServer, type StaticServer } from './helpers/ota-fixture.js';
import { Processes, pollUntil, withTimeout, type Proc } from './helpers/processes.js';

const GROUP = 'grp-ota';
/**
 * The crash points: before every step, and after the last. "After step N" leaves the disk as
 * "before step N+1" does (the runner only reads between them), so these are all the states
 * a kill can leave — one test each, generated from the planner's list.
 */
const CRASHES: Array<{ step: OtaStep; when: 'before' | 'after' }> = [...OTA_STEPS.map((step) => ({ step, when: 'before' as const })), { step: OTA_STEPS[OTA_STEPS.length - 1]!, when: 'after' }];
const BOX_OF = (i: number): string => `ota-crash-${i}`;
const BOXES = ['ota-happy', 'ota-meeting', 'ota-crashloop', 'ota-nocommit', ...CRASHES.map((_, i) => BOX_OF(i))];

const procs = new Processes();
let broker: Mosquitto;
let hub: HubClient;
let server: StaticServer;
let work: string;
const key = keys();
let bundle11: Buffer;


beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ep-ota-agent-'));
  broker = await Mosquitto.start({ devices: Object.fromEntries(BOXES.map((b) => [b, GROUP])) });
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
  server = await startStaticServer();
  bundle11 = await makeBundle(work, '1.1.0');
  const manifest = manifestFor('1.1.0', bundle11, server.url('ep-1.1.0.tar.gz'));
  server.files.set('ep-1.1.0.tar.gz', bundle11);
  server.files.set('ep-1.1.0.json', manifest);
  server.files.set('ep-1.1.0.json.sig', sign(manifest, key));
  await writeFile(path.join(work, 'ota.pub.pem'), key.publicKeyPem);
  // Bad releases, each a signed 1.1.0 of its own: one that exits at start, one that runs but never commits.
  const serveBad = async (name: string, tweak: (dir: string) => Promise<void>): Promise<void> => {
    const b = await makeBundle(path.join(work), '1.1.0', tweak);
    const m = manifestFor('1.1.0', b, server.url(`${name}.tar.gz`));
    server.files.set(`${name}.tar.gz`, b);
    server.files.set(`${name}.json`, m);
    server.files.set(`${name}.json.sig`, sign(m, key));
  };
  await serveBad('crashloop-1.1.0', (dir) => writeFile(path.join(dir, 'dist', 'device', 'cli', 'ep.js'), "console.error('1.1.0: broken at start'); process.exit(1);\n"));
  await serveBad('nocommit-1.1.0', (dir) =>
    writeFile(path.join(dir, 'dist', 'ota', 'commit-decision.js'), "export function decideCommit() { return { kind: 'wait', why: 'this release never commits (a test)' }; }\n"),
  );
}, 120_000);

afterAll(async () => {
  await procs.killAll();
  await hub?.close();
  await broker?.stop();
  await server?.close();
  await rm(work, { recursive: true, force: true });
}, 60_000);

/** A box: app root with 1.0.0 committed, the launcher installed, a config with the OTA keys. */
async function box(t: TestContext, deviceId: string, env: NodeJS.ProcessEnv = {}, ota: Record<string, unknown> = {}): Promise<{ appRoot: string; dataDir: string; p: Proc }> {
  const appRoot = await mkdtemp(path.join(work, `${deviceId}-`));
  await installFirstRelease(appRoot, '1.0.0');
  await installLauncher(appRoot, path.join(ROOT, 'dist'));
  const dataDir = path.join(appRoot, 'data');
  const cfg = path.join(appRoot, 'config.json');
  await writeFile(
    cfg,
    JSON.stringify({
      deviceId,
      groupId: GROUP,
      name: 'Xã Thử',
      mqtt: { url: broker.url, ...broker.tls(deviceId), keepaliveS: 10, reconnectBaseMs: 300, reconnectCapMs: 2000 },
      dataDir,
      media: { source: 'test', aec: false },
      health: { periodS: 3600 },
      log: { level: 'info' },
      ota: { publicKeys: [path.join(work, 'ota.pub.pem')], commitWindowS: 1, trialS: 60, retries: 5, retryBaseMs: 50, retryCapMs: 200, ...ota },
    }),
  );
  const p = procs.spawn(`launcher ${deviceId}`, process.execPath, [path.join(appRoot, 'launcher', 'ota', 'launcher.js'), '--config', cfg], {
    env: { EP_APP_ROOT: appRoot, EP_LAUNCH_RESTART_MS: '100', ...env },
  });
  // Per test, through its own context (the crash tests run concurrently: the global hooks
  // would bind to whichever test is current): its output when it fails, its processes stopped after it.
  t.onTestFailed(() => console.error(`--- ${deviceId}: launcher + ep run (last 8000 chars) ---\n${p.output().slice(-8000)}`));
  t.onTestFinished(() => stopBox(p, appRoot));
  return { appRoot, dataDir, p };
}

/** SIGTERM to the launcher (forwarded to ep run), then whatever is left of this box's processes. */
async function stopBox(launcher: Proc, appRoot: string): Promise<void> {
  if (launcher.running()) {
    launcher.child.kill('SIGTERM');
    await withTimeout(launcher.exited, 20_000, 'the launcher to stop').catch(() => undefined);
  }
  for (const pid of await pidsMentioning(appRoot)) process.kill(pid, 'SIGKILL');
}

const online = (deviceId: string, version: string, since: number): Promise<unknown> =>
  hub.waitFor((m) => m.n > since && m.kind === 'status' && m.deviceId === deviceId && (m.json as { online?: boolean; version?: string })?.online === true && (m.json as { version?: string }).version === version, 60_000, `${deviceId} online running ${version}`);

const releaseState = async (appRoot: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(path.join(appRoot, 'release-state.json'), 'utf8')) as Record<string, unknown>;
const exists = (f: string): Promise<boolean> => stat(f).then(() => true, () => false);

// Every describe is concurrent: each test has its own box (app root, device id, launcher),
// and one after the other the 19 boxes would cost the suite ~100 s of mostly waiting.
describe.concurrent('ota through the launcher, against Mosquitto and an HTTP server', () => {
  it('happy path: 1.0.0 → 1.1.0 — accepted, progress reported, restarts into 1.1.0, commits, the old release kept as previous', async (t) => {
    const { expect } = t;
    const id = 'ota-happy';
    const since = hub.mark();
    const { appRoot } = await box(t, id);
    await online(id, '1.0.0', since);
    const cmd = await hub.send({ device: id }, 'ota', { manifestUrl: server.url('ep-1.1.0.json'), when: 'idle' });
    const reply = await hub.reply(cmd, 30_000, id);
    expect(reply).toMatchObject({ ok: true, result: { accepted: true, version: '1.1.0', from: '1.0.0', when: 'idle' } });
    await online(id, '1.1.0', since);
    const committed = await hub.waitState(id, (s) => (s.ota as { phase?: string } | null)?.phase === 'committed', 60_000, since);
    expect(committed).toMatchObject({ version: '1.1.0', ota: { phase: 'committed', version: '1.1.0', from: '1.0.0' } });
    const phases = hub.states(id).map((s) => (s.ota as { phase?: string } | null)?.phase).filter(Boolean);
    expect(phases).toEqual(expect.arrayContaining(['checking', 'accepted', 'downloading', 'verifying', 'installing', 'restarting', 'trying', 'committed']));
    const progress = hub.states(id).map((s) => (s.ota as { progress?: number } | null)?.progress).filter((p) => p !== undefined);
    expect(progress.at(-1), 'download progress reported, ending at 1').toBe(1);
    await hub.waitFor((m) => m.n > since && m.kind === 'event' && m.deviceId === id && (m.json as { type?: string }).type === 'ota_committed', 30_000, 'the ota_committed event');
    const events = hub.events(id).map((e) => e.type);
    expect(events).toEqual(expect.arrayContaining(['ota_switched', 'ota_committed']));
    expect(await releaseState(appRoot)).toMatchObject({ committed: '1.1.0', previous: '1.0.0', trying: null, last: { version: '1.1.0', outcome: 'committed' } });
    expect(await readlink(path.join(appRoot, 'current'))).toBe(path.join('releases', '1.1.0'));
    expect(await exists(path.join(appRoot, 'data', 'ota')), 'the job directory is gone after the commit').toBe(false);
    // `ota` again with the same manifest: 1.1.0 is not newer than the running 1.1.0.
    const again = await hub.send({ device: id }, 'ota', { manifestUrl: server.url('ep-1.1.0.json') });
    expect(await hub.reply(again, 30_000, id)).toMatchObject({ ok: false, error: { code: 'failed', reason: 'downgrade' } });
  }, 180_000);
});

const phaseOf = (st: Record<string, unknown>): string | undefined => (st.ota as { phase?: string } | null)?.phase;

describe.concurrent('bad releases: the launcher rolls back, the old version reports it and refuses that version', () => {
  const rolledBack = async (expect: ExpectStatic, id: string, appRoot: string, since: number, reason: RegExp): Promise<void> => {
    const ev = await hub.waitFor((m) => m.n > since && m.kind === 'event' && m.deviceId === id && (m.json as { type?: string }).type === 'ota_rolled_back', 90_000, 'the ota_rolled_back event');
    expect((ev.json as { detail?: Record<string, unknown> }).detail).toMatchObject({ version: '1.1.0', runningVersion: '1.0.0', reason: expect.stringMatching(reason) });
    const st = await hub.waitState(id, (x) => phaseOf(x) === 'rolled_back', 30_000, since);
    expect(st).toMatchObject({ version: '1.0.0', ota: { phase: 'rolled_back', version: '1.1.0' } });
    // The event goes out (to the persisted outbox) before the state file marks it reported.
    await pollUntil(async () => (await releaseState(appRoot)).last !== null && ((await releaseState(appRoot)).last as { reported: boolean }).reported, 10_000, 'the rollback marked reported');
    expect(await releaseState(appRoot)).toMatchObject({ committed: '1.0.0', trying: null, failed: ['1.1.0'], last: { version: '1.1.0', outcome: 'rolled_back', reported: true } });
    expect(path.basename(await readlink(path.join(appRoot, 'current')))).toBe('1.0.0');
    await pollUntil(async () => !(await exists(path.join(appRoot, 'releases', '1.1.0'))), 10_000, 'the rolled-back release removed');
    // Offered again: refused until a newer version comes.
    const again = await hub.send({ device: id }, 'ota', { manifestUrl: server.url('ep-1.1.0.json') });
    expect(await hub.reply(again, 30_000, id)).toMatchObject({ ok: false, error: { code: 'failed', reason: 'refused_version' } });
  };

  it('1.1.0 exits at start: rolled back to 1.0.0 after its 3rd start', async (t) => {
    const { expect } = t;
    const id = 'ota-crashloop';
    const since = hub.mark();
    const { appRoot, p } = await box(t, id);
    await online(id, '1.0.0', since);
    const cmd = await hub.send({ device: id }, 'ota', { manifestUrl: server.url('crashloop-1.1.0.json') });
    expect(await hub.reply(cmd, 30_000, id)).toMatchObject({ ok: true, result: { accepted: true, version: '1.1.0' } });
    await rolledBack(t.expect, id, appRoot, since, /did not commit after 3 starts/);
    expect(p.output().split('\n').filter((l) => l.includes('1.1.0: broken at start'))).toHaveLength(3);
  }, 180_000);

  it('1.1.0 starts but never commits: rolled back when its trial window ends', async (t) => {
    const id = 'ota-nocommit';
    const since = hub.mark();
    // A trial long enough for 1.1.0 to start and come online on a loaded machine (5 s was
    // not: the launcher stopped it at its deadline before it reached the broker).
    const { appRoot } = await box(t, id, {}, { trialS: 15 });
    await online(id, '1.0.0', since);
    const cmd = await hub.send({ device: id }, 'ota', { manifestUrl: server.url('nocommit-1.1.0.json') });
    await hub.reply(cmd, 30_000, id);
    await online(id, '1.1.0', since);
    await rolledBack(t.expect, id, appRoot, since, /did not commit within its window/);
  }, 180_000);
});

describe.concurrent('during a meeting', () => {
  it('`now` without force is busy; `idle` is accepted, waits with the meeting intact, and proceeds after leave', async (t) => {
    const { expect } = t;
    const id = 'ota-meeting';
    const since = hub.mark();
    await box(t, id);
    await online(id, '1.0.0', since);
    const j = await hub.send({ device: id }, 'join', { meetingId: 'm-ota', send: { url: 'srt://127.0.0.1:9' }, receive: { url: 'srt://127.0.0.1:9' } });
    expect(await hub.reply(j, 30_000, id)).toMatchObject({ ok: true });
    const now = await hub.send({ device: id }, 'ota', { manifestUrl: server.url('ep-1.1.0.json'), when: 'now' });
    expect(await hub.reply(now, 30_000, id)).toMatchObject({ ok: false, error: { code: 'busy', message: expect.stringMatching(/force/) } });
    const idle = await hub.send({ device: id }, 'ota', { manifestUrl: server.url('ep-1.1.0.json'), when: 'idle' });
    expect(await hub.reply(idle, 30_000, id)).toMatchObject({ ok: true, result: { accepted: true, when: 'idle' } });
    await hub.waitState(id, (x) => phaseOf(x) === 'waiting_idle' && x.meeting !== null, 60_000, since);
    const waiting = hub.mark();
    await new Promise((r) => setTimeout(r, 2000));
    // Still 1.0.0 and still in the meeting: nothing restarted it.
    expect(hub.of('status', id).filter((m) => m.n > waiting)).toEqual([]);
    expect(hub.states(id).at(-1)).toMatchObject({ version: '1.0.0', meeting: { id: 'm-ota' } });
    await hub.reply(await hub.send({ device: id }, 'leave', {}), 30_000, id);
    await online(id, '1.1.0', since);
    await hub.waitState(id, (x) => phaseOf(x) === 'committed', 60_000, since);
  }, 180_000);
});

describe.concurrent('kill -9 at every step of the update (generated from OTA_STEPS), then the launcher restarts the box', () => {
  it('the list covers every step, and the point after the last', () => {
    expect(CRASHES.map((c) => c.step)).toEqual([...OTA_STEPS, OTA_STEPS.at(-1)]);
  });

  for (const [i, c] of CRASHES.entries()) {
    it(`killed ${c.when} ${c.step}: ends on a working committed version, the update completed or cleanly abandoned`, async (t) => {
      const { expect } = t;
      const id = BOX_OF(i);
      const since = hub.mark();
      const once = path.join(work, `crashed-${i}`);
      const { appRoot } = await box(t, id, { EP_OTA_CRASH: `${c.step}:${c.when}`, EP_OTA_CRASH_ONCE: once });
      await online(id, '1.0.0', since);
      const needsMeeting = c.step === 'wait-idle';
      if (needsMeeting) {
        // wait-idle is a step only in a meeting: join one (the media retries against a closed port; the meeting is what counts).
        const j = await hub.send({ device: id }, 'join', { meetingId: 'm-ota', send: { url: 'srt://127.0.0.1:9' }, receive: { url: 'srt://127.0.0.1:9' } });
        expect(await hub.reply(j, 30_000, id)).toMatchObject({ ok: true });
      }
      const cmd = await hub.send({ device: id }, 'ota', { manifestUrl: server.url('ep-1.1.0.json'), when: 'idle' });
      if (needsMeeting) {
        // The update waits for the meeting's end: killed as it starts waiting, it comes back
        // in the meeting (restored from meeting.json) and waits again until the leave.
        await hub.waitState(id, (st) => (st.ota as { phase?: string } | null)?.phase === 'waiting_idle' && st.meeting !== null, 60_000, since);
        await pollUntil(() => exists(once), 60_000, `the crash at ${c.step}:${c.when}`);
        const back = hub.mark();
        await hub.waitState(id, (st) => (st.ota as { phase?: string } | null)?.phase === 'waiting_idle' && st.meeting !== null, 60_000, back);
        await hub.reply(await hub.send({ device: id }, 'leave', {}), 30_000, id);
      }
      await pollUntil(() => exists(once), 60_000, `the crash at ${c.step}:${c.when}`);
      // Whatever the step: the box comes back on 1.0.0 or 1.1.0, and settles committed.
      await pollUntil(async () => {
        const s = await releaseState(appRoot).catch(() => null);
        return s !== null && s.trying === null && ((s.committed === '1.1.0' && s.last !== null) || (s.committed === '1.0.0' && !(await exists(path.join(appRoot, 'data', 'ota', 'job.json')))));
      }, 90_000, 'a committed version and no pending job');
      const s = await releaseState(appRoot);
      const current = path.basename(await readlink(path.join(appRoot, 'current')));
      expect(current).toBe(s.committed);
      const reply = hub.replies(cmd, id)[0];
      if (s.committed === '1.1.0') {
        // Completed (or resumed and completed): the command was answered "accepted", once.
        await online(id, '1.1.0', since);
        expect(s).toMatchObject({ previous: '1.0.0', last: { outcome: 'committed' } });
        expect(hub.replies(cmd, id)).toEqual([expect.objectContaining({ ok: true, result: expect.objectContaining({ accepted: true, version: '1.1.0' }) })]);
      } else {
        // Cleanly abandoned: only before the manifest was verified (the command's reply says interrupted), nothing staged.
        expect(['fetch-manifest', 'verify-manifest']).toContain(c.step);
        expect(await exists(path.join(appRoot, 'releases', '1.1.0'))).toBe(false);
        expect(reply === undefined || reply.ok === false).toBe(true);
      }
      console.info(`crash ${c.step}:${c.when} → committed ${String(s.committed)}; reply ${reply ? (reply.ok ? 'accepted' : reply.error?.code) : 'none'}`);
    }, 180_000);
  }
});
