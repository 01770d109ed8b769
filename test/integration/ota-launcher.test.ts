/**
 * The launcher as systemd runs it: the built closure installed by installLauncher into a
 * temp appRoot with no node_modules anywhere in or above it (which proves the closure is
 * complete), started as a real process, supervising fake releases — tiny
 * releases/<v>/dist/device/cli/ep.js scripts that play the agent's part (run, crash, never
 * commit, commit, switch `current` and exit 75). Each case checks release-state.json, the
 * `current` symlink and the launcher's log lines. Needs `npm run build` (npm test runs it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initialState, installLauncher, type ReleaseState, type Trying } from '../../ota/index.js';
import { AGENT_NODE_FLAGS } from '../../ota/launcher.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = path.join(ROOT, 'dist');

type Behaviour =
  /** Print `started`, run until SIGTERM, then exit with termCode (default 0). */
  | { kind: 'run'; termCode?: number }
  /** Exit 1 at once. */
  | { kind: 'crash' }
  /** If on trial: commit (release-state.json as the agent writes it), then run. */
  | { kind: 'commit' }
  /** As the agent after a download: unless `to` failed here, write `trying`, switch `current`, exit 75; else run. */
  | { kind: 'switch'; to: string; windowMs: number };

/** The fake release's ep.js (CommonJS, node: builtins only). */
const fakeEp = (version: string, b: Behaviour): string => `'use strict';
const fs = require('node:fs');
const path = require('node:path');
const V = ${JSON.stringify(version)};
const B = ${JSON.stringify(b)};
const appRoot = process.env.EP_APP_ROOT;
const stateFile = path.join(appRoot, 'release-state.json');
const say = (event, extra) => process.stdout.write(JSON.stringify({ fake: V, event, pid: process.pid, argv: process.argv.slice(2), execArgv: process.execArgv, ...extra }) + '\\n');
const readState = () => JSON.parse(fs.readFileSync(stateFile, 'utf8'));
const writeState = (s) => { fs.writeFileSync(stateFile + '.fake', JSON.stringify(s)); fs.renameSync(stateFile + '.fake', stateFile); };
process.on('SIGTERM', () => { say('sigterm'); process.exit(B.termCode ?? 0); });
const runOn = () => setInterval(() => {}, 1 << 30);
say('started');
if (B.kind === 'crash') process.exit(1);
else if (B.kind === 'commit') {
  const s = readState();
  if (s.trying && s.trying.version === V) {
    writeState({ ...s, committed: V, previous: s.trying.from, trying: null, last: { version: V, outcome: 'committed', reason: 'the fake self-test passed', at: Date.now(), reported: false } });
    say('committed');
  }
  runOn();
} else if (B.kind === 'switch') {
  const s = readState();
  if (s.trying === null && s.committed === V && !s.failed.includes(B.to)) {
    const now = Date.now();
    writeState({ ...s, trying: { version: B.to, from: V, since: now, deadline: now + B.windowMs, starts: 0, fromReachedBroker: false, commandId: 'cmd-1' } });
    fs.symlinkSync(path.join('releases', B.to), path.join(appRoot, 'current.fake'));
    fs.renameSync(path.join(appRoot, 'current.fake'), path.join(appRoot, 'current'));
    say('switched', { to: B.to });
    process.exit(75);
  }
  say('refused', { to: B.to });
  runOn();
} else runOn();
`;

interface Line {
  name?: string;
  level?: number;
  evt?: string;
  msg?: string;
  fake?: string;
  event?: string;
  [k: string]: unknown;
}

interface Launcher {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running: () => boolean;
  output: () => string;
  lines: () => Line[];
}

const started: Launcher[] = [];
let appRoot = '';

async function makeAppRoot(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-launcher-'));
  await installLauncher(dir, DIST);
  return dir;
}

async function addRelease(version: string, b: Behaviour): Promise<void> {
  const cli = path.join(appRoot, 'releases', version, 'dist', 'device', 'cli');
  await mkdir(cli, { recursive: true });
  await writeFile(path.join(appRoot, 'releases', version, 'package.json'), `${JSON.stringify({ name: 'commune-endpoint', version, type: 'commonjs' })}\n`);
  await writeFile(path.join(cli, 'ep.js'), fakeEp(version, b));
}

const stateFile = (): string => path.join(appRoot, 'release-state.json');
const writeState = (s: ReleaseState): Promise<void> => writeFile(stateFile(), `${JSON.stringify(s)}\n`);
const readState = async (): Promise<ReleaseState> => JSON.parse(await readFile(stateFile(), 'utf8')) as ReleaseState;
const pointCurrent = (version: string): Promise<void> => symlink(path.join('releases', version), path.join(appRoot, 'current'));
const current = (): Promise<string> => readlink(path.join(appRoot, 'current'));

function startLauncher(env: Record<string, string> = {}): Launcher {
  // A clean environment (no NODE_PATH, NODE_OPTIONS…) and its own process group, which a
  // kill -9 takes down whole, as systemd kills the unit's control group.
  const child = spawn(process.execPath, [path.join(appRoot, 'launcher', 'ota', 'launcher.js'), '--config', '/var/lib/commune-endpoint/config.json'], {
    cwd: appRoot,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', EP_APP_ROOT: appRoot, EP_LAUNCH_RESTART_MS: '50', ...env },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  void exited.then(() => (done = true));
  const lines = (): Line[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
  const l: Launcher = { child, exited, running: () => !done, output: () => out, lines };
  started.push(l);
  return l;
}

const launcherLines = (l: Launcher): Line[] => l.lines().filter((x) => x.name === 'ep-launcher');
const fakeLines = (l: Launcher, version?: string, event?: string): Line[] => l.lines().filter((x) => x.fake !== undefined && (version === undefined || x.fake === version) && (event === undefined || x.event === event));

async function until(l: Launcher, what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; the launcher's output:\n${l.output()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function stopLauncher(l: Launcher): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  l.child.kill('SIGTERM');
  return l.exited;
}

/** No node_modules in the temp tree, nor in any directory above it: the launcher resolves nothing from packages. */
async function expectNoNodeModules(dir: string): Promise<void> {
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    expect(existsSync(path.join(d, 'node_modules')), `${d}/node_modules`).toBe(false);
    if (path.dirname(d) === d) break;
  }
  const all = (await readdir(dir, { recursive: true })) as string[];
  expect(all.filter((p) => p.split(path.sep).includes('node_modules'))).toEqual([]);
}

const trial = (over: Partial<Trying> = {}): Trying => ({ version: '1.1.0', from: '1.0.0', since: Date.now(), deadline: Date.now() + 60_000, starts: 0, fromReachedBroker: false, commandId: 'cmd-1', ...over });

beforeAll(() => {
  if (!existsSync(path.join(DIST, 'ota', 'launcher.js'))) throw new Error(`${DIST}/ota/launcher.js is missing: run npm run build first`);
});

afterEach(async () => {
  for (const l of started.splice(0)) {
    // Its own process group (detached): the launcher and the fake release it runs.
    if (l.running()) {
      try {
        process.kill(-l.child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      await l.exited;
    }
  }
  if (appRoot) await expectNoNodeModules(appRoot);
  if (appRoot) await rm(appRoot, { recursive: true, force: true });
  appRoot = '';
});

describe('the launcher (built, installed without node_modules, real processes)', () => {
  it('installLauncher copies the closure with its relative paths and an ES-module package.json, atomically, again over an old one', async () => {
    appRoot = await makeAppRoot();
    const files = (await readdir(path.join(appRoot, 'launcher'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => path.relative(path.join(appRoot, 'launcher'), path.join(e.parentPath, e.name)));
    expect(files.sort()).toEqual(['lib/atomic-file.js', 'ota/current.js', 'ota/launch-decision.js', 'ota/launcher.js', 'ota/release-state.js', 'package.json']);
    expect(JSON.parse(await readFile(path.join(appRoot, 'launcher', 'package.json'), 'utf8'))).toEqual({ type: 'module' });
    const again = await installLauncher(appRoot, DIST);
    expect(again.files.sort()).toEqual(files);
    expect((await readdir(appRoot)).sort()).toEqual(['launcher']); // no temp or old copy left
  });

  it('nothing on trial: starts the committed version; SIGTERM stops the child and the launcher exits with its code', async () => {
    appRoot = await makeAppRoot();
    await addRelease('1.0.0', { kind: 'run', termCode: 42 });
    await writeState(initialState('1.0.0'));
    await pointCurrent('1.0.0');
    const before = await readFile(stateFile(), 'utf8');
    const l = startLauncher();
    await until(l, '1.0.0 to start', () => fakeLines(l, '1.0.0', 'started').length === 1);
    const [run] = fakeLines(l, '1.0.0', 'started');
    expect(run).toMatchObject({ argv: ['run', '--config', '/var/lib/commune-endpoint/config.json'], execArgv: [...AGENT_NODE_FLAGS] });
    expect(await stopLauncher(l)).toEqual({ code: 42, signal: null });
    expect(fakeLines(l, '1.0.0', 'sigterm')).toHaveLength(1);
    expect(launcherLines(l).map((x) => [x.evt, x.msg])).toEqual([
      ['launcher.start', 'starting 1.0.0 (committed)'],
      ['launcher.signal', 'received SIGTERM: stopping the child'],
      ['launcher.child_exit', 'stopping (SIGTERM): 1.0.0 exited with code 42'],
    ]);
    expect(launcherLines(l).every((x) => typeof x.time === 'string' && x.level === 30 && typeof x.pid === 'number')).toBe(true);
    // Nothing changed: the state file was not rewritten (no SD card write per start).
    expect(await readFile(stateFile(), 'utf8')).toBe(before);
    expect(await current()).toBe('releases/1.0.0');
  });

  it('1.0.0 switches to 1.1.0 (exit 75), 1.1.0 commits: 1.1.0 runs, kept past its deadline', async () => {
    appRoot = await makeAppRoot();
    await addRelease('1.0.0', { kind: 'switch', to: '1.1.0', windowMs: 2500 });
    await addRelease('1.1.0', { kind: 'commit' });
    await writeState(initialState('1.0.0'));
    await pointCurrent('1.0.0');
    const l = startLauncher();
    await until(l, 'the deadline check of 1.1.0', () => launcherLines(l).some((x) => x.evt === 'launcher.deadline'));
    expect(await readState()).toMatchObject({ committed: '1.1.0', previous: '1.0.0', trying: null, failed: [], last: { version: '1.1.0', outcome: 'committed' } });
    expect(await current()).toBe('releases/1.1.0');
    expect(launcherLines(l).map((x) => [x.evt, x.msg])).toEqual([
      ['launcher.start', 'starting 1.0.0 (committed)'],
      ['launcher.child_exit', '1.0.0 asked for a restart (exit 75); starting again in 50 ms'],
      ['launcher.start', 'trying 1.1.0, start 1 of 3'],
      ['launcher.deadline', '1.1.0 committed before its trial deadline'],
    ]);
    expect(fakeLines(l).map((x) => `${x.fake} ${x.event}`)).toEqual(['1.0.0 started', '1.0.0 switched', '1.1.0 started', '1.1.0 committed']);
    expect(l.running()).toBe(true);
    expect(await stopLauncher(l)).toEqual({ code: 0, signal: null });
  });

  it('1.1.0 exits 1 at start: after 3 starts rolled back to 1.0.0, which runs and refuses 1.1.0 from then on', async () => {
    appRoot = await makeAppRoot();
    await addRelease('1.0.0', { kind: 'switch', to: '1.1.0', windowMs: 60_000 });
    await addRelease('1.1.0', { kind: 'crash' });
    await writeState(initialState('1.0.0'));
    await pointCurrent('1.0.0');
    const l = startLauncher();
    await until(l, '1.0.0 back, refusing 1.1.0', () => fakeLines(l, '1.0.0', 'refused').length === 1);
    const s = await readState();
    expect(s).toMatchObject({ committed: '1.0.0', trying: null, failed: ['1.1.0'], last: { version: '1.1.0', outcome: 'rolled_back', reported: false } });
    expect(s.last?.reason).toBe('1.1.0 did not commit after 3 starts (a crash loop)');
    expect(await current()).toBe('releases/1.0.0');
    expect(fakeLines(l, '1.1.0', 'started')).toHaveLength(3);
    const crash = '1.1.0 exited with code 1 (a failed start of its trial); starting again in 50 ms';
    expect(launcherLines(l).map((x) => [x.evt, x.msg])).toEqual([
      ['launcher.start', 'starting 1.0.0 (committed)'],
      ['launcher.child_exit', '1.0.0 asked for a restart (exit 75); starting again in 50 ms'],
      ['launcher.start', 'trying 1.1.0, start 1 of 3'],
      ['launcher.child_exit', crash],
      ['launcher.start', 'trying 1.1.0, start 2 of 3'],
      ['launcher.child_exit', crash],
      ['launcher.start', 'trying 1.1.0, start 3 of 3'],
      ['launcher.child_exit', crash],
      ['launcher.rollback', 'rolling back to 1.0.0: 1.1.0 did not commit after 3 starts (a crash loop)'],
    ]);
    expect(launcherLines(l).find((x) => x.evt === 'launcher.rollback')).toMatchObject({ level: 40, run: '1.0.0' });
    expect(await stopLauncher(l)).toEqual({ code: 0, signal: null });
  });

  it('1.1.0 starts but never commits: stopped at its deadline while running, rolled back to 1.0.0', async () => {
    appRoot = await makeAppRoot();
    await addRelease('1.0.0', { kind: 'switch', to: '1.1.0', windowMs: 1500 });
    await addRelease('1.1.0', { kind: 'run' });
    await writeState(initialState('1.0.0'));
    await pointCurrent('1.0.0');
    const l = startLauncher();
    await until(l, '1.0.0 back, refusing 1.1.0', () => fakeLines(l, '1.0.0', 'refused').length === 1);
    const s = await readState();
    expect(s).toMatchObject({ committed: '1.0.0', trying: null, failed: ['1.1.0'], last: { version: '1.1.0', outcome: 'rolled_back' } });
    expect(s.last?.reason).toMatch(/^1\.1\.0 did not commit within its window \(deadline .*Z\)$/);
    expect(await current()).toBe('releases/1.0.0');
    // Stopped while it ran, once, by the launcher at the deadline.
    expect(fakeLines(l).map((x) => `${x.fake} ${x.event}`)).toEqual(['1.0.0 started', '1.0.0 switched', '1.1.0 started', '1.1.0 sigterm', '1.0.0 started', '1.0.0 refused']);
    const evts = launcherLines(l).map((x) => x.evt);
    expect(evts).toEqual(['launcher.start', 'launcher.child_exit', 'launcher.start', 'launcher.deadline', 'launcher.child_exit', 'launcher.rollback']);
    expect(launcherLines(l)[3]).toMatchObject({ level: 40, msg: expect.stringMatching(/^1\.1\.0 did not commit by its trial deadline \(.*Z\): stopping it to roll back to 1\.0\.0$/) });
    expect(launcherLines(l)[4]?.msg).toBe('1.1.0 was stopped at its trial deadline (exited with code 0); starting again in 50 ms');
    expect(await stopLauncher(l)).toEqual({ code: 0, signal: null });
  });

  it('release-state.json garbage: moved aside, starts what current points at; no release at all: exit 78 with a clear line', async () => {
    appRoot = await makeAppRoot();
    await addRelease('1.0.0', { kind: 'run' });
    await writeFile(stateFile(), 'not json{');
    await pointCurrent('1.0.0');
    const l = startLauncher();
    await until(l, '1.0.0 to start', () => fakeLines(l, '1.0.0', 'started').length === 1);
    const [bad, start] = launcherLines(l);
    expect(bad).toMatchObject({ evt: 'launcher.state_unreadable', level: 40, msg: expect.stringMatching(/^release-state\.json unreadable \(not JSON .*\): moved to release-state\.json\.corrupt-\d+$/) });
    expect(start).toMatchObject({ evt: 'launcher.start', run: '1.0.0', msg: expect.stringMatching(/^release-state\.json unreadable \(not JSON .*\): starting what current points at; starting 1\.0\.0 \(committed\)$/) });
    expect(await readState()).toEqual(initialState('1.0.0'));
    const corrupt = (await readdir(appRoot)).filter((n) => n.startsWith('release-state.json.corrupt-'));
    expect(corrupt).toHaveLength(1);
    expect(await readFile(path.join(appRoot, corrupt[0]!), 'utf8')).toBe('not json{');
    expect(await stopLauncher(l)).toEqual({ code: 0, signal: null });

    // Nothing: no state, no current.
    await rm(appRoot, { recursive: true, force: true });
    appRoot = await makeAppRoot();
    const none = startLauncher();
    expect(await none.exited).toEqual({ code: 78, signal: null });
    expect(launcherLines(none)).toEqual([expect.objectContaining({ evt: 'launcher.no_release', level: 50, msg: `no release to start: release-state.json does not exist and no current symlink in ${appRoot}` })]);

    // A state naming a release that is not installed.
    await writeState(initialState('1.0.0'));
    const missing = startLauncher();
    expect(await missing.exited).toEqual({ code: 78, signal: null });
    expect(launcherLines(missing)).toEqual([expect.objectContaining({ evt: 'launcher.no_release', msg: 'starting 1.0.0 (committed), but releases/1.0.0/dist/device/cli/ep.js does not exist: nothing to start' })]);
  });

  it('kill -9 of the launcher mid-trial, then a new one: the start count goes on from the file, and the 4th start rolls back', async () => {
    appRoot = await makeAppRoot();
    await addRelease('1.0.0', { kind: 'run' });
    await addRelease('1.1.0', { kind: 'run' });
    // As the agent leaves it after its switch.
    await writeState({ ...initialState('1.0.0'), trying: trial() });
    await pointCurrent('1.1.0');
    for (const n of [1, 2, 3]) {
      const l = startLauncher();
      await until(l, `1.1.0 start ${n}`, () => fakeLines(l, '1.1.0', 'started').length === 1);
      expect(launcherLines(l).map((x) => x.msg)).toEqual([`trying 1.1.0, start ${n} of 3`]);
      expect((await readState()).trying?.starts).toBe(n);
      process.kill(-l.child.pid!, 'SIGKILL'); // the launcher and its child, as systemd kills the control group
      expect(await l.exited).toEqual({ code: null, signal: 'SIGKILL' });
    }
    const l = startLauncher();
    await until(l, '1.0.0 to start', () => fakeLines(l, '1.0.0', 'started').length === 1);
    expect(launcherLines(l).map((x) => [x.evt, x.msg])).toEqual([['launcher.rollback', 'rolling back to 1.0.0: 1.1.0 did not commit after 3 starts (a crash loop)']]);
    expect(fakeLines(l, '1.1.0')).toEqual([]);
    expect(await readState()).toMatchObject({ committed: '1.0.0', trying: null, failed: ['1.1.0'], last: { outcome: 'rolled_back' } });
    expect(await current()).toBe('releases/1.0.0');
    expect(await stopLauncher(l)).toEqual({ code: 0, signal: null });
  });
});
