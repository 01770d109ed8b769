#!/usr/bin/env node
/**
 * The launcher: systemd's ExecStart (installed once by provisioning, outside releases/,
 * never replaced by an update). It decides which release to start (launch-decision.ts),
 * writes that decision to release-state.json before starting it, points `current` at it,
 * and runs `ep run` from that release as its child, forwarding signals and exiting with
 * the child's code — so systemd's restarts are the launcher's starts, and a release that
 * crash-loops or never commits is rolled back here without its cooperation.
 *
 *   node /opt/commune-endpoint/launcher/launcher.js --config /etc/commune-endpoint/config.json
 *
 * EP_APP_ROOT overrides /opt/commune-endpoint (tests); EP_LAUNCH_MAX_STARTS the 3 starts.
 * It imports only node: builtins and pure modules of ota/ and lib/ (copied beside it).
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { decideLaunch } from './launch-decision.js';
import { decodeReleaseState, initialState, type ReleaseState } from './release-state.js';
import { currentVersion, releaseDir, switchCurrent } from './install.js';

/** The agent's own Node flags (device/cli/run.ts AGENT_NODE_FLAGS; repeated: the launcher imports nothing of device/). */
const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--lite-mode'];
const EX_CONFIG = 78;

const log = (msg: string, extra: Record<string, unknown> = {}): void => void process.stdout.write(`${JSON.stringify({ level: 30, time: new Date().toISOString(), name: 'ep-launcher', msg, ...extra })}\n`);

async function readState(file: string, appRoot: string): Promise<ReleaseState | null> {
  try {
    return decodeReleaseState(JSON.parse(await readFile(file, 'utf8')) as unknown);
  } catch (e) {
    const current = await currentVersion({ appRoot });
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log('release-state.json unreadable: starting what current points at', { err: (e as Error).message, current });
    return current ? initialState(current) : null;
  }
}

export async function launch(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const appRoot = env.EP_APP_ROOT ?? '/opt/commune-endpoint';
  const stateFile = path.join(appRoot, 'release-state.json');
  const state = await readState(stateFile, appRoot);
  if (!state) {
    log('no release to start: neither release-state.json nor a current symlink', { appRoot });
    return EX_CONFIG;
  }
  const maxStarts = Number(env.EP_LAUNCH_MAX_STARTS ?? 3);
  const d = decideLaunch(state, Date.now(), { maxStarts: Number.isInteger(maxStarts) && maxStarts > 0 ? maxStarts : 3 });
  // The decision is on disk before the start it counts: a crash in the child cannot undo it.
  await writeFileAtomic(stateFile, `${JSON.stringify(d.state)}\n`, { mode: 0o644 });
  if ((await currentVersion({ appRoot })) !== d.run) await switchCurrent({ appRoot }, d.run);
  log(d.why, { run: d.run });
  const cli = path.join(releaseDir({ appRoot }, d.run), 'dist', 'device', 'cli', 'ep.js');
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, cli, 'run', ...argv], { stdio: 'inherit', env: { ...env, EP_APP_ROOT: appRoot } });
  const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
  process.on('SIGTERM', forward).on('SIGINT', forward).on('SIGHUP', forward);
  return new Promise((resolve) => {
    child.once('error', (e) => {
      log('cannot start the release', { run: d.run, err: e.message });
      resolve(1);
    });
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  launch(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      log('launcher failed', { err: (e as Error).message });
      process.exitCode = 1;
    },
  );
}
