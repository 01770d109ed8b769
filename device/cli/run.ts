/**
 * `ep run --config FILE`: the long-running agent. A bad config stops it with every
 * problem listed by path (exit 78, EX_CONFIG, so systemd does not restart-loop on it).
 * SIGTERM/SIGINT stop it cleanly: offline status published, media stopped — within
 * STOP_BOUND_MS whatever hangs: past it the process logs the part it was waiting for
 * (`agent.stop_timeout`) and exits 1; a second signal exits at once.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from '../../lib/index.js';
import { pino } from 'pino';
import { Agent } from '../agent.js';
import { readVersion } from '../../lib/index.js';
import { loadConfig } from '../config.js';
import { watchConfig } from '../config-watch.js';
import { ControlServer, controlSocketPath } from '../control-socket.js';
import { runUnprovisioned } from '../unprovisioned.js';
import { createContract, isDecodeError } from '../contract/index.js';
import { createLogger } from '../../lib/index.js';
import { LogRing } from '../../lib/index.js';

type Out = (s: string) => void;

export const EX_CONFIG = 78;
/** "Start me again": the launcher decides again and restarts after EP_LAUNCH_RESTART_MS (after an update's switch, or for its rollback). */
export const EX_RESTART = 75;

/**
 * Node flags the box runs the agent with (provisioning/systemd/commune-endpoint.service, and
 * the benchmark). The agent idles most of its life and does little JS work (media runs
 * in worker processes): a 1 MB young generation and no optimising compiler keep its
 * resident memory near 65 MB instead of ~90 MB (measured, docs/benchmarks.md).
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--lite-mode'] as const;

/**
 * SIGTERM → exit within this bound (systemd's own stop timeout is 90 s, then SIGKILL:
 * no offline status, nothing flushed). A healthy stop takes well under a second; the
 * MQTT session's own bound is ~3 s (offline status 1 s + clean end 2 s).
 */
export const STOP_BOUND_MS = 10_000;
/** After a clean stop the event loop should be empty; a handle still open past this is logged and the process exits anyway. */
export const EXIT_GRACE_MS = 2000;

/** The part of the agent stop() needs (`stopStep`: what it is waiting for). */
export interface Stoppable {
  stop(): Promise<void>;
  readonly stopStep: string | null;
}

/**
 * Runs `agent.stop()` for at most `boundMs`: 'stopped', 'failed' (it threw; logged) or
 * 'timeout' (logged with the part it was waiting for and the handles still open).
 */
export async function stopWithin(agent: Stoppable, boundMs: number, log: Logger): Promise<'stopped' | 'failed' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    agent.stop().then(
      () => 'stopped' as const,
      (e: unknown) => {
        log.error({ evt: 'agent.stop_failed', step: agent.stopStep, err: (e as Error).message }, 'stop failed');
        return 'failed' as const;
      },
    ),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), boundMs))),
  ]);
  clearTimeout(timer);
  if (outcome === 'timeout')
    log.error(
      { evt: 'agent.stop_timeout', boundMs, step: agent.stopStep, resources: process.getActiveResourcesInfo() },
      `stop did not finish within ${boundMs} ms (waiting for: ${agent.stopStep ?? 'unknown'}); exiting anyway`,
    );
  return outcome;
}

export async function runAgentCommand(argv: string[], _out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } }, strict: true });
  if (!values.config) {
    err('usage: ep run --config FILE');
    return 2;
  }
  // No configuration yet (never provisioned, a factory reset): the unprovisioned agent.
  if ((await stat(values.config).catch(() => null)) === null) return unprovisionedMain(values.config);
  let config;
  try {
    config = await loadConfig(createContract(), values.config);
  } catch (e) {
    if (!isDecodeError(e)) throw e;
    err(`ep run: the configuration ${values.config} is not valid:`);
    for (const p of e.problems) err(`  - ${p}`);
    return EX_CONFIG;
  }
  const ring = new LogRing();
  const logger = createLogger({ level: config.log.level, destination: pino.multistream([{ stream: process.stdout, level: 'trace' }, { stream: ring, level: 'trace' }]) });
  // After an update's switch (or to roll one back) the agent asks to be restarted: it stops
  // cleanly and exits EX_RESTART; the launcher (ota/launcher.ts) then starts what `current` is.
  let restartWhy: string | null = null;
  let requestRestart: (() => void) | null = null;
  const restartRequested = new Promise<void>((resolve) => (requestRestart = resolve));
  const restart = (why: string): void => {
    if (restartWhy !== null) return;
    restartWhy = why;
    agent.log.info({ evt: 'agent.restart', why }, `restarting: ${why}`);
    requestRestart?.();
  };
  const agent = new Agent({
    config,
    version: await readVersion(),
    logger,
    logRing: ring,
    restart: (why) => restart(why),
  });
  // Signals are handled from before start(): a SIGTERM while starting (the box is online
  // already) must stop it cleanly too, not kill it without its offline status.
  let signaledAt = 0;
  const signaled = new Promise<void>((resolve) => {
    void restartRequested.then(() => {
      if (!signaledAt) signaledAt = Date.now();
      resolve();
    });
    const on = (sig: string): void => {
      if (signaledAt) {
        agent.log.warn({ evt: 'agent.signal_again', sig, step: agent.stopStep }, `received ${sig} again while stopping; exiting now`);
        process.exit(1);
      }
      signaledAt = Date.now();
      agent.log.info({ evt: 'agent.signal', sig }, `received ${sig}, stopping`);
      resolve();
    };
    process.on('SIGTERM', () => on('SIGTERM'));
    process.on('SIGINT', () => on('SIGINT'));
  });
  const started = agent.start();
  // `ep status` over the local control socket; a replaced or removed config (ep provision,
  // ep factory-reset) restarts the agent into it.
  const control = new ControlServer({
    path: controlSocketPath(config.dataDir),
    deviceId: config.deviceId,
    log: agent.log,
    handler: async (req) =>
      req.command === 'status'
        ? { ok: true, result: agent.localStatus() }
        : { ok: false, error: { code: 'unknown_command', message: `${JSON.stringify(req.command)}: the local socket answers status; commands come from the hub` } },
  });
  void started.then(() => control.start()).catch((e: unknown) => agent.log.error({ evt: 'control.failed', err: (e as Error).message }, 'cannot open the local control socket'));
  const unwatch = await watchConfig(values.config, (how) => restart(`the configuration was ${how}`));
  if ((await Promise.race([started.then(() => 'started'), signaled.then(() => 'signal')])) === 'signal') {
    let t: NodeJS.Timeout | undefined;
    const done = await Promise.race([started.then(() => true), new Promise<false>((r) => (t = setTimeout(() => r(false), STOP_BOUND_MS)))]);
    clearTimeout(t);
    if (!done) {
      agent.log.error({ evt: 'agent.stop_timeout', boundMs: STOP_BOUND_MS, step: 'start', resources: process.getActiveResourcesInfo() }, `start did not finish within ${STOP_BOUND_MS} ms of the signal; exiting`);
      process.exit(1);
    }
  } else await signaled;
  unwatch();
  await control.stop();
  const outcome = await stopWithin(agent, Math.max(1000, STOP_BOUND_MS - (Date.now() - signaledAt)), agent.log);
  if (outcome === 'timeout') process.exit(1);
  const code = restartWhy !== null ? EX_RESTART : outcome === 'stopped' ? 0 : 1;
  setTimeout(() => {
    agent.log.warn({ evt: 'agent.exit_forced', resources: process.getActiveResourcesInfo() }, `still running ${EXIT_GRACE_MS} ms after the agent stopped; exiting`);
    process.exit(code);
  }, EXIT_GRACE_MS).unref();
  return code;
}

/** `ep run` without a configuration file: device/unprovisioned.ts until one appears (then EX_RESTART). */
async function unprovisionedMain(configFile: string): Promise<number> {
  const dataDir = process.env.EP_DATA_DIR ? path.resolve(process.env.EP_DATA_DIR) : path.dirname(path.resolve(configFile));
  const log = createLogger({ level: 'info', destination: process.stdout });
  let signaled = false;
  const stop = new Promise<void>((resolve) => {
    const on = (sig: string): void => {
      if (signaled) process.exit(1);
      signaled = true;
      log.info({ evt: 'agent.signal', sig }, `received ${sig}, stopping`);
      resolve();
    };
    process.on('SIGTERM', () => on('SIGTERM'));
    process.on('SIGINT', () => on('SIGINT'));
  });
  const r = await runUnprovisioned({ configFile: path.resolve(configFile), dataDir, version: await readVersion(), log, stop });
  return r === 'provisioned' ? EX_RESTART : 0;
}
