/**
 * The agent of a box that has no configuration yet (never provisioned, a bad provisioning
 * file, or after a factory reset). It has no broker to talk to, so it makes its state
 * visible where the next person looks: the log (the reason, once, and again when it
 * changes), and the local control socket (`ep status`: state `unprovisioned` and the
 * reason; every contract command: `not_provisioned`). It waits for a configuration to
 * appear (first-boot provisioning, `ep provision FILE`) and then returns, so that `ep run`
 * exits EX_RESTART and the launcher starts the agent proper in a fresh process.
 */
import { stat } from 'node:fs/promises';
import type { Logger } from '../lib/index.js';
import { unprovisionedReason } from '../provisioning/index.js';
import { loadConfig } from './config.js';
import { createContract, isDecodeError } from './contract/index.js';
import { ControlServer, controlSocketPath, isContractCommand } from './control-socket.js';

export const UNPROVISIONED_POLL_MS = 2000;

export interface UnprovisionedOptions {
  configFile: string;
  dataDir: string;
  version: string;
  log: Logger;
  /** Resolves when the agent should stop (a signal). */
  stop: Promise<void>;
  pollMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Once the reason is logged and the socket is up (READY=1 for systemd). */
  onReady?: (reason: string) => Promise<void>;
}

/** 'provisioned': a valid configuration is there now; 'stopped': asked to stop first. */
export async function runUnprovisioned(o: UnprovisionedOptions): Promise<'provisioned' | 'stopped'> {
  const since = new Date().toISOString();
  let reason = await unprovisionedReason(o.dataDir);
  o.log.warn({ evt: 'agent.unprovisioned', reason }, `not provisioned: ${reason}`);
  const control = new ControlServer({
    path: controlSocketPath(o.dataDir, o.env),
    deviceId: null,
    log: o.log,
    handler: async (req) => {
      if (req.command === 'status') return { ok: true, result: { state: 'unprovisioned', reason, since, version: o.version, provisioned: false } };
      if (isContractCommand(req.command)) return { ok: false, error: { code: 'not_provisioned', message: reason } };
      return { ok: false, error: { code: 'unknown_command', message: `unknown command ${JSON.stringify(req.command)}` } };
    },
  });
  try {
    await control.start();
  } catch (e) {
    // No socket (a read-only dir, a path too long): the log still says it all.
    o.log.error({ evt: 'control.failed', err: (e as Error).message }, 'cannot open the local control socket');
  }
  await o.onReady?.(reason);
  const contract = createContract();
  let stopped = false;
  void o.stop.then(() => (stopped = true));
  try {
    for (;;) {
      const outcome = await Promise.race([o.stop.then(() => 'stopped' as const), new Promise<'tick'>((r) => setTimeout(() => r('tick'), o.pollMs ?? UNPROVISIONED_POLL_MS).unref())]);
      if (outcome === 'stopped' || stopped) return 'stopped';
      if (!(await stat(o.configFile).catch(() => null))) {
        const now = await unprovisionedReason(o.dataDir);
        if (now !== reason) o.log.warn({ evt: 'agent.unprovisioned', reason: now }, `not provisioned: ${now}`);
        reason = now;
        continue;
      }
      try {
        await loadConfig(contract, o.configFile);
        o.log.info({ evt: 'agent.provisioned', config: o.configFile }, 'a configuration appeared; restarting as a provisioned box');
        return 'provisioned';
      } catch (e) {
        const now = isDecodeError(e) ? `the configuration ${o.configFile} is not valid: ${e.problems.join('; ')}` : (e as Error).message;
        if (now !== reason) o.log.error({ evt: 'agent.unprovisioned', reason: now }, `not provisioned: ${now}`);
        reason = now;
      }
    }
  } finally {
    await control.stop();
  }
}
