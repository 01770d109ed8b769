#!/usr/bin/env node
/**
 * The launcher: systemd's ExecStart, installed once by provisioning outside releases/
 * (launcher-install.ts copies this file's import closure to /opt/commune-endpoint/launcher/),
 * never replaced by an update. It supervises `ep run` from the release `current` points at
 * and rolls back a release that crash-loops or never commits, without that release's
 * cooperation:
 *
 *   loop: read release-state.json → decideLaunch (launch-decision.ts) → write the state
 *         (before the start it counts) → point `current` at the version → start
 *         `node <AGENT_NODE_FLAGS> releases/<v>/dist/device/cli/ep.js run <args>` → wait;
 *         a trial version is stopped at its deadline if it has not committed by then;
 *         when the child exits, afterChildExit says: exit (systemd asked us to stop, or a
 *         committed version's configuration is bad) or start again after a pause.
 *
 *   node /opt/commune-endpoint/launcher/ota/launcher.js --config /var/lib/commune-endpoint/config.json
 *
 * Environment: EP_APP_ROOT (default /opt/commune-endpoint), EP_LAUNCH_MAX_STARTS (starts a
 * trial version gets, default 3), EP_LAUNCH_RESTART_MS (pause before a new start, default
 * 2000). Every decision is one JSON line on stdout (name ep-launcher, a stable `evt`, the
 * why in `msg`). SIGTERM/SIGINT are forwarded to the child and end the launcher with the
 * child's code; SIGHUP is forwarded only. The unit must use KillMode=mixed, so that systemd's
 * SIGTERM reaches the launcher alone and the agent gets it once (it exits at once on a second).
 *
 * It imports only node: builtins and modules that do too (it runs without node_modules).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// eslint-disable-next-line shape/boundaries -- the launcher runs outside any release, without node_modules: lib/index.js would pull pino and ajv
import { readJsonFile, writeFileAtomic } from '../lib/atomic-file.js';
import { currentVersion, releaseDir, switchCurrent } from './current.js';
import { decideLaunch } from './launch-decision.js';
import { decodeReleaseState, initialState, type ReleaseState } from './release-state.js';

/** The agent's own Node flags (device/cli/run.ts AGENT_NODE_FLAGS; repeated: the launcher imports nothing of device/). */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--lite-mode'] as const;
/** A bad configuration or nothing to start: systemd does not restart it (RestartPreventExitStatus=78). */
export const EX_CONFIG = 78;
/** The agent's "start me again" (EX_TEMPFAIL), after it switched `current` to a new version. */
export const EX_RESTART = 75;
/** The agent cannot feed systemd's watchdog (EX_UNAVAILABLE, device/cli/run.ts): like 78, not fixed by restarting (RestartPreventExitStatus=78 69). */
export const EX_NOTIFY = 69;
export const STATE_MAX_BYTES = 64 * 1024;

export interface LauncherOptions {
  appRoot: string;
  /** Starts a trial version gets (the next one rolls it back). */
  maxStarts: number;
  /** Pause between a child's exit and the next start. */
  restartMs: number;
  /** A child stopped at its trial deadline gets SIGKILL this long after SIGTERM. */
  killMs: number;
}

/** The options from the environment, with the problems of values it ignored (pure). */
export function launcherOptions(env: NodeJS.ProcessEnv): { options: LauncherOptions; problems: string[] } {
  const problems: string[] = [];
  const int = (name: string, dflt: number, min: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return dflt;
    const n = Number(raw);
    if (Number.isInteger(n) && n >= min) return n;
    problems.push(`${name}=${JSON.stringify(raw)} is not an integer ≥ ${min}; using ${dflt}`);
    return dflt;
  };
  const appRoot = env.EP_APP_ROOT || '/opt/commune-endpoint';
  return { options: { appRoot, maxStarts: int('EP_LAUNCH_MAX_STARTS', 3, 1), restartMs: int('EP_LAUNCH_RESTART_MS', 2000, 0), killMs: 10_000 }, problems };
}

/** A process's exit as a shell reports it: its code, or 128 + the signal's number. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return signal ? 128 + (osConstants.signals[signal] ?? 0) : 1;
}

export interface ChildEnd {
  version: string;
  /** The version ran as a trial (`trying`) when it was started. */
  trial: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The signal systemd (or a user) sent the launcher, forwarded to the child; null if none. */
  stopping: NodeJS.Signals | null;
  /** The launcher stopped it itself: its trial deadline passed without a commit. */
  deadline: boolean;
  /** The child could not be started at all (spawn error, or its release is not installed). */
  startError?: string;
}

export type AfterExit = { kind: 'exit'; code: number; why: string } | { kind: 'restart'; afterMs: number; why: string };

const described = (e: ChildEnd): string => (e.startError !== undefined ? `could not start: ${e.startError}` : e.code !== null ? `exited with code ${e.code}` : `was killed by ${e.signal ?? 'an unknown signal'}`);

/** What to do when the child has exited (pure). */
export function afterChildExit(e: ChildEnd, restartMs: number): AfterExit {
  const code = exitStatus(e.code, e.signal);
  if (e.stopping) return { kind: 'exit', code, why: `stopping (${e.stopping}): ${e.version} ${described(e)}` };
  const again = (why: string): AfterExit => ({ kind: 'restart', afterMs: restartMs, why: `${why}; starting again in ${restartMs} ms` });
  if (e.deadline) return again(`${e.version} was stopped at its trial deadline (${described(e)})`);
  if (e.code === EX_RESTART) return again(`${e.version} asked for a restart (exit ${EX_RESTART})`);
  // A committed version refusing its configuration is not fixed by starting it again (it was
  // systemd's RestartPreventExitStatus=78); a trial version doing so is a failed start.
  if (e.code === EX_CONFIG && !e.trial) return { kind: 'exit', code: EX_CONFIG, why: `${e.version} ${described(e)} (its configuration): not restarting` };
  // Neither is a watchdog it cannot feed: a loop of starts every 2 s would hide it, a failed unit says it.
  if (e.code === EX_NOTIFY && !e.trial) return { kind: 'exit', code: EX_NOTIFY, why: `${e.version} ${described(e)} (it cannot notify systemd): not restarting` };
  return again(`${e.version} ${described(e)}${e.trial ? ' (a failed start of its trial)' : ''}`);
}

export type AtDeadline = { kind: 'stop'; why: string } | { kind: 'wait'; ms: number } | { kind: 'keep'; why: string };

/** The longest setTimeout delay; a deadline further away is looked at again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * While `running` runs: is its trial over, uncommitted (stop it: the next decision rolls it
 * back)? `s` is the state as read now from the file (null: unreadable, so nothing is known
 * and it keeps running). Used at the start (arm the timer) and when the timer fires (pure).
 */
export function atDeadline(s: ReleaseState | null, running: string, now: number): AtDeadline {
  if (s === null) return { kind: 'keep', why: `release-state.json unreadable at the trial deadline: ${running} keeps running` };
  const t = s.trying;
  if (!t || t.version !== running) return { kind: 'keep', why: s.committed === running ? `${running} committed before its trial deadline` : `${running} is no longer on trial` };
  if (now <= t.deadline) return { kind: 'wait', ms: Math.min(t.deadline - now + 1, MAX_TIMER_MS) };
  return { kind: 'stop', why: `${running} did not commit by its trial deadline (${new Date(t.deadline).toISOString()}): stopping it to roll back to ${t.from}` };
}

type Level = 30 | 40 | 50;
export type LogLine = (level: Level, evt: string, msg: string, extra?: Record<string, unknown>) => void;

const stdoutLog: LogLine = (level, evt, msg, extra = {}) =>
  void process.stdout.write(`${JSON.stringify({ level, time: new Date().toISOString(), pid: process.pid, name: 'ep-launcher', evt, ...extra, msg })}\n`);

interface Read {
  state: ReleaseState | null;
  /** Read from release-state.json, or made from what `current` points at (problem: why). */
  fromFile: boolean;
  problem: string | null;
}

async function readState(o: LauncherOptions, log: LogLine, quarantine: boolean): Promise<Read> {
  const file = path.join(o.appRoot, 'release-state.json');
  let problem = 'release-state.json does not exist';
  try {
    const s = await readJsonFile(file, {
      maxBytes: STATE_MAX_BYTES,
      decode: decodeReleaseState,
      quarantine,
      onQuarantine: (e, movedTo) => {
        problem = `release-state.json unreadable (${e.reason})`;
        log(40, 'launcher.state_unreadable', `${problem}: moved to ${path.basename(movedTo)}`, { movedTo });
      },
    });
    if (s) return { state: s, fromFile: true, problem: null };
  } catch (e) {
    problem = `release-state.json unreadable (${(e as Error).message})`;
    log(40, 'launcher.state_unreadable', problem);
  }
  const current = await currentVersion({ appRoot: o.appRoot });
  return { state: current ? initialState(current) : null, fromFile: false, problem };
}

const cliOf = (o: LauncherOptions, version: string): string => path.join(releaseDir({ appRoot: o.appRoot }, version), 'dist', 'device', 'cli', 'ep.js');

/** Runs the child until it exits, stopping it at its trial deadline if it has not committed by then. */
function supervise(child: ChildProcess, version: string, trial: ReleaseState, o: LauncherOptions, log: LogLine): Promise<Omit<ChildEnd, 'stopping' | 'trial' | 'version'>> {
  return new Promise((resolve) => {
    let exited = false;
    let deadline = false;
    let timer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const act = (a: AtDeadline): void => {
      if (exited) return;
      if (a.kind === 'wait') timer = setTimeout(() => void check(), a.ms);
      else if (a.kind === 'keep') log(30, 'launcher.deadline', a.why, { run: version });
      else {
        deadline = true;
        log(40, 'launcher.deadline', a.why, { run: version });
        child.kill('SIGTERM');
        killTimer = setTimeout(() => child.kill('SIGKILL'), o.killMs);
      }
    };
    const check = async (): Promise<void> => {
      const r = await readState(o, log, false);
      act(atDeadline(r.fromFile ? r.state : null, version, Date.now()));
    };
    const a = atDeadline(trial, version, Date.now());
    if (a.kind !== 'keep') act(a); // nothing to say at the start of a committed version
    const end = (x: Omit<ChildEnd, 'stopping' | 'trial' | 'version' | 'deadline'>): void => {
      if (exited) return;
      exited = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      resolve({ ...x, deadline });
    };
    child.once('error', (e) => end({ code: null, signal: null, startError: e.message }));
    child.once('exit', (code, signal) => end({ code, signal }));
  });
}

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** The supervisor loop; resolves with the launcher's exit code. */
export async function runLauncher(argv: readonly string[], o: LauncherOptions, env: NodeJS.ProcessEnv = process.env, log: LogLine = stdoutLog): Promise<number> {
  const layout = { appRoot: o.appRoot };
  let stopping: NodeJS.Signals | null = null;
  let child: ChildProcess | null = null;
  let wake: (() => void) | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (sig !== 'SIGHUP' && stopping === null) {
      stopping = sig;
      log(30, 'launcher.signal', `received ${sig}: stopping${child ? ' the child' : ''}`, { sig });
    }
    if (child && child.exitCode === null && child.signalCode === null) child.kill(sig);
    else if (stopping) wake?.();
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    for (;;) {
      if (stopping) {
        log(30, 'launcher.exit', `stopping (${stopping}) between starts`, { code: 0 });
        return 0;
      }
      const read = await readState(o, log, true);
      if (!read.state) {
        log(50, 'launcher.no_release', `no release to start: ${read.problem ?? 'no state'} and no current symlink in ${o.appRoot}`, { appRoot: o.appRoot, code: EX_CONFIG });
        return EX_CONFIG;
      }
      const d = decideLaunch(read.state, Date.now(), { maxStarts: o.maxStarts });
      const trial = d.state.trying?.version === d.run;
      // The decision is on disk before the start it counts: a crash of the child (or of this process) cannot undo it.
      if (!read.fromFile || d.state !== read.state) await writeFileAtomic(path.join(o.appRoot, 'release-state.json'), `${JSON.stringify(d.state)}\n`, { mode: 0o644 });
      const why = read.problem && !read.fromFile ? `${read.problem}: starting what current points at; ${d.why}` : d.why;
      const rollback = read.state.trying !== null && d.state.trying === null;
      const cli = cliOf(o, d.run);
      const installed = existsSync(cli);
      if (!installed && !trial) {
        log(50, 'launcher.no_release', `${why}, but ${path.relative(o.appRoot, cli)} does not exist: nothing to start`, { run: d.run, code: EX_CONFIG });
        return EX_CONFIG;
      }
      if (installed && (await currentVersion(layout)) !== d.run) await switchCurrent(layout, d.run);
      log(rollback || !installed ? 40 : 30, rollback ? 'launcher.rollback' : 'launcher.start', why, { run: d.run, trial, ...(trial ? { starts: d.state.trying?.starts } : {}) });
      let end: Omit<ChildEnd, 'stopping' | 'trial' | 'version'>;
      // A trial release that is not there is a failed start like any other (the next decisions roll it back).
      if (!installed) end = { code: null, signal: null, deadline: false, startError: `${path.relative(o.appRoot, cli)} does not exist` };
      else {
        if (stopping) continue; // asked to stop while deciding: nothing started, nothing to forward
        const c = spawn(process.execPath, [...AGENT_NODE_FLAGS, cli, 'run', ...argv], { stdio: 'inherit', env: { ...env, EP_APP_ROOT: o.appRoot } });
        child = c;
        end = await supervise(c, d.run, d.state, o, log);
        child = null;
      }
      const next = afterChildExit({ ...end, version: d.run, trial, stopping }, o.restartMs);
      log(next.kind === 'exit' ? (stopping ? 30 : 50) : end.code === EX_RESTART || end.deadline ? 30 : 40, 'launcher.child_exit', next.why, { run: d.run, code: end.code, signal: end.signal, next: next.kind });
      if (next.kind === 'exit') return next.code;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, next.afterMs);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = null;
    }
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}

const isMain = (): boolean => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
};

if (isMain()) {
  const { options, problems } = launcherOptions(process.env);
  for (const p of problems) stdoutLog(40, 'launcher.env', p);
  runLauncher(process.argv.slice(2), options).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      stdoutLog(50, 'launcher.failed', `launcher failed: ${(e as Error).message}`, { code: 1 });
      process.exitCode = 1;
    },
  );
}
