/**
 * `ep run --config FILE`: the long-running agent. A bad config stops it with every
 * problem listed by path (exit 78, EX_CONFIG, so systemd does not restart-loop on it).
 * SIGTERM/SIGINT stop it cleanly: offline status published, media stopped — within
 * STOP_BOUND_MS whatever hangs: past it the process logs the part it was waiting for
 * (`agent.stop_timeout`) and exits 1; a second signal exits at once.
 *
 * Under systemd (NOTIFY_SOCKET; the unit's main PID is the launcher, NotifyAccess=all) it
 * notifies by itself (lib/sd-notify.ts): READY=1 once started, WATCHDOG=1 every
 * WATCHDOG_USEC/2 while device/liveness.ts finds it alive, STOPPING=1 when a signal
 * stops it. A watchdog it cannot feed stops it at once (EX_NOTIFY), before anything starts.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { readFileSync } from 'node:fs';
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
import { createLogger, systemClock } from '../../lib/index.js';
import { LogRing } from '../../lib/index.js';
import { NOTIFY_ENV, notifyPlan, openNotifier, type SdNotifier, type WatchdogVerdict } from '../../lib/index.js';
import { agentLivenessCheck, livenessBounds } from '../liveness.js';

type Out = (s: string) => void;

export const EX_CONFIG = 78;
/** "Start me again": the launcher decides again and restarts after EP_LAUNCH_RESTART_MS (after an update's switch, or for its rollback). */
export const EX_RESTART = 75;
/** systemd's watchdog is on (WATCHDOG_USEC) but cannot be fed (EX_UNAVAILABLE): restarting cannot fix the unit. */
export const EX_NOTIFY = 69;

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
  const opened = await systemdNotifier(logger);
  if (opened === EX_NOTIFY) return EX_NOTIFY;
  const notifier = opened;
  // After an update's switch (or to roll one back) the agent asks to be restarted: it stops
  // cleanly and exits EX_RESTART; the launcher (ota/launcher.ts) then starts what `current` is.
  let restartWhy: string | null = null;
  /** The button's factory reset: the data dir is wiped once the agent has stopped writing to it. */
  let wipeAfterStop = false;
  let requestRestart: (() => void) | null = null;
  let endTestFaults = (): void => undefined;
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
    factoryReset: (why) => {
      wipeAfterStop = true;
      restart(`factory reset (${why})`);
    },
  });
  // Signals are handled from before start(): a SIGTERM while starting (the box is online
  // already) must stop it cleanly too, not kill it without its offline status.
  let signaledAt = 0;
  const signaled = new Promise<void>((resolve) => {
    void restartRequested.then(() => {
      if (!signaledAt) signaledAt = Date.now();
      // The launcher starts the agent again: the service goes on, so no STOPPING=1 (systemd
      // would take the whole unit for stopping). The stop is bounded (STOP_BOUND_MS); then a
      // last ping lengthens the watchdog over the gap to the next agent's first ping.
      notifier?.stopWatchdog();
      void notifier?.status(`restarting: ${restartWhy ?? ''}`);
      if (notifier?.pingMs) notifier.startWatchdog(startingCheck(notifier.pingMs, () => 0));
      resolve();
    });
    const on = (sig: string): void => {
      if (signaledAt) {
        agent.log.warn({ evt: 'agent.signal_again', sig, step: agent.stopStep }, `received ${sig} again while stopping; exiting now`);
        process.exit(1);
      }
      signaledAt = Date.now();
      agent.log.info({ evt: 'agent.signal', sig }, `received ${sig}, stopping`);
      void notifier?.stopping(`stopping (${sig})`);
      resolve();
    };
    process.on('SIGTERM', () => on('SIGTERM'));
    process.on('SIGINT', () => on('SIGINT'));
  });
  // Pings from the start of the process: after the launcher started us again (an update, a
  // restart into a new config) the unit's watchdog is running. Until start() resolves only the
  // event loop and a bound on the start itself are judged (its parts are not up yet).
  const startedAt = Date.now();
  if (notifier?.pingMs) notifier.startWatchdog(startingCheck(notifier.pingMs, () => Date.now() - startedAt));
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
        : req.command === 'selftest'
          ? { ok: true, result: await agent.runSelftest() }
          : { ok: false, error: { code: 'unknown_command', message: `${JSON.stringify(req.command)}: the local socket answers status and selftest; commands come from the hub` } },
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
  } else {
    if (notifier) {
      await notifier.ready(`running ${agent.config.deviceId}`);
      const ping = notifier.pingMs;
      notifier.stopWatchdog();
      if (ping !== null && !signaledAt) notifier.startWatchdog(agentLivenessCheck(agent, Date.now, ping));
    }
    endTestFaults = installTestFaults(agent, process.env);
    await signaled;
  }
  endTestFaults();
  unwatch();
  await control.stop();
  const outcome = await stopWithin(agent, Math.max(1000, STOP_BOUND_MS - (Date.now() - signaledAt)), agent.log);
  // Only after a clean stop: a part still running could write its store back into the wiped directory.
  if (wipeAfterStop && outcome !== 'stopped') agent.log.error({ evt: 'factory_reset.skipped', outcome }, 'factory reset not done: the agent did not stop cleanly; hold the button again');
  if (wipeAfterStop && outcome === 'stopped') {
    const gone = await import('../../provisioning/index.js').then((p) => p.wipeDataDir(config.dataDir)).catch((e: unknown) => {
      agent.log.error({ evt: 'factory_reset.failed', err: (e as Error).message }, 'factory reset: could not wipe the data directory');
      return null;
    });
    if (gone) agent.log.warn({ evt: 'factory_reset.done', removed: gone }, `factory reset: removed ${gone.length} entries; starting unprovisioned`);
  }
  if (restartWhy !== null) await notifier?.extendWatchdog(RESTART_GAP_MS);
  notifier?.close();
  if (outcome === 'timeout') process.exit(1);
  const code = restartWhy !== null ? EX_RESTART : outcome === 'stopped' ? 0 : 1;
  setTimeout(() => {
    agent.log.warn({ evt: 'agent.exit_forced', resources: process.getActiveResourcesInfo() }, `still running ${EXIT_GRACE_MS} ms after the agent stopped; exiting`);
    process.exit(code);
  }, EXIT_GRACE_MS).unref();
  return code;
}

/**
 * The unit's watchdog over the launcher's restart of the agent (its pause, EP_LAUNCH_RESTART_MS,
 * 2 s, and the next agent's start until its first ping, a few seconds on a Pi): the next
 * agent's first ping sets the unit's own timeout again.
 */
export const RESTART_GAP_MS = 60_000;
/** A start (probe, stores, the broker's first attempt) that has not resolved within this is hung. */
export const START_BOUND_MS = 120_000;

/** The watchdog's check while the agent starts or stops: its event loop, and the start's own bound. */
function startingCheck(pingMs: number, elapsed: () => number): (late: number) => WatchdogVerdict {
  const b = livenessBounds(pingMs);
  return (late) => {
    if (late > b.loopBoundMs) return { alive: false, part: 'event_loop', detail: `a timer fired ${Math.round(late)} ms late (bound ${b.loopBoundMs} ms)` };
    const e = elapsed();
    return e > START_BOUND_MS ? { alive: false, part: 'start', detail: `the agent has not finished starting in ${Math.round(e / 1000)} s` } : { alive: true };
  };
}

/**
 * systemd first: a watchdog that cannot be fed must stop the agent now, loudly, not get it
 * killed every WatchdogSec (EX_NOTIFY). Our children (media workers) do not get the
 * variables: with NotifyAccess=all, a child pinging would keep a wedged agent's watchdog fed.
 * null: not under a notifying systemd.
 */
async function systemdNotifier(logger: Logger): Promise<SdNotifier | null | typeof EX_NOTIFY> {
  const plan = notifyPlan(process.env, process.pid, process.ppid);
  for (const k of NOTIFY_ENV) delete process.env[k];
  let notifier: SdNotifier | null;
  try {
    notifier = await openNotifier(plan, { clock: systemClock, log: logger.child({ module: 'systemd' }) });
  } catch (e) {
    logger.error({ evt: 'watchdog.unusable', err: (e as Error).message, code: EX_NOTIFY }, `cannot notify systemd: ${(e as Error).message}; exiting (${EX_NOTIFY})`);
    return EX_NOTIFY;
  }
  if (plan.kind !== 'unusable' && plan.note) logger.warn({ evt: 'watchdog.not_ours' }, plan.note);
  if (notifier) logger.info({ evt: 'sd_notify.connected', socket: notifier.plan.socket, pingMs: notifier.pingMs }, `notifying systemd at ${notifier.plan.socket}${notifier.pingMs ? `, watchdog pings every ${notifier.pingMs} ms` : ''}`);
  return notifier;
}

/** `ep run` without a configuration file: device/unprovisioned.ts until one appears (then EX_RESTART). */
async function unprovisionedMain(configFile: string): Promise<number> {
  const dataDir = process.env.EP_DATA_DIR ? path.resolve(process.env.EP_DATA_DIR) : path.dirname(path.resolve(configFile));
  const ring = new LogRing();
  const log = createLogger({ level: 'info', destination: pino.multistream([{ stream: process.stdout, level: 'trace' }, { stream: ring, level: 'trace' }]) });
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
  const notifier = await systemdNotifier(log);
  if (notifier === EX_NOTIFY) return EX_NOTIFY;
  // Up and saying why: the service is active (READY=1), fed while its event loop runs (it
  // has no MQTT session and no media to watch).
  void stop.then(() => notifier?.stopping('stopping'));
  const r = await runUnprovisioned({
    configFile: path.resolve(configFile),
    dataDir,
    version: await readVersion(),
    log,
    logs: (n) => ring.tail(n),
    stop,
    onReady: async (reason) => {
      if (!notifier) return;
      await notifier.ready(`unprovisioned: ${reason}`);
      if (notifier.pingMs !== null) notifier.startWatchdog(startingCheck(notifier.pingMs, () => 0));
    },
  });
  if (r === 'provisioned') {
    await notifier?.status('provisioned: restarting into the agent');
    await notifier?.extendWatchdog(RESTART_GAP_MS);
  }
  notifier?.close();
  return r === 'provisioned' ? EX_RESTART : 0;
}

/**
 * Fault injection for tests (test/integration/watchdog.test.ts), only with
 * EP_TEST_FAULTS=1: on SIGUSR2 the agent reads EP_TEST_FAULT_FILE and does what it says —
 * `block-loop <ms>` busy-waits the main thread that long, `wedge-mqtt` stops the MQTT
 * session's watchdog tick (the connection stays). Returns what removes the handler.
 */
export function installTestFaults(agent: Pick<Agent, 'log' | 'mqtt'>, env: NodeJS.ProcessEnv): () => void {
  if (env.EP_TEST_FAULTS !== '1' || !env.EP_TEST_FAULT_FILE) return () => undefined;
  const file = env.EP_TEST_FAULT_FILE;
  const on = (): void => {
    const [what, arg] = readFileSync(file, 'utf8').trim().split(/\s+/);
    if (what === 'block-loop') {
      const ms = Number(arg);
      agent.log.warn({ evt: 'test.fault', fault: what, ms }, `test fault: blocking the event loop for ${ms} ms`);
      const end = Date.now() + ms;
      while (Date.now() < end) {
        /* busy */
      }
      agent.log.warn({ evt: 'test.fault_done', fault: what }, 'test fault: event loop unblocked');
    } else if (what === 'wedge-mqtt') {
      agent.mqtt.wedgeForTest();
      agent.log.warn({ evt: 'test.fault', fault: what }, 'test fault: the MQTT session loop no longer ticks');
    } else agent.log.error({ evt: 'test.fault_unknown', fault: what }, `unknown test fault ${JSON.stringify(what)}`);
  };
  process.on('SIGUSR2', on);
  return () => process.off('SIGUSR2', on);
}
