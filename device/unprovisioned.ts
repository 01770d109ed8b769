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
import { hostPaths, systemClock, type HostPaths, type Logger } from '../lib/index.js';
import { unprovisionedReason, wipeDataDir } from '../provisioning/index.js';
import { AgentField, type AgentFieldDeps } from './field/index.js';
import { MediaSupervisor, forkSpawner, planStandby, probe, type Capabilities, type StandbyTexts, type WorkerSpawner } from '../gst-pipelines/index.js';
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
  /** The last log lines (the status page); absent: none shown. */
  logs?: (n: number) => string[];
  paths?: HostPaths;
  /** Tests: the GPIO and libgpiod boundaries of the LEDs and the button. */
  fieldHardware?: AgentFieldDeps['hardware'];
  /** Tests: capabilities instead of probing, and the media worker's spawner (the TV's standby screen). */
  caps?: Capabilities | null;
  spawner?: WorkerSpawner;
}

/**
 * The TV says it too, where one is connected: the standby screen ("Chưa cài đặt", the reason's
 * advice) from a media worker, as the provisioned agent shows it between meetings. Null
 * without a TV (nothing to draw on) or when the worker cannot start (the LEDs and the page still say it).
 */
async function standbyTv(o: UnprovisionedOptions, texts: StandbyTexts): Promise<MediaSupervisor | null> {
  const caps = o.caps !== undefined ? o.caps : await probe().catch(() => null);
  if (!caps?.displays.some((d) => d.connected)) return null;
  const media = new MediaSupervisor({ spawner: o.spawner ?? forkSpawner(), clock: systemClock, logger: o.log.child({ module: 'media' }) });
  try {
    await media.start(planStandby(caps, { source: 'auto', volume: 1, micMuted: false, aec: false, statsPeriodS: 2 }, undefined, texts));
    return media;
  } catch (e) {
    o.log.error({ evt: 'standby.failed', err: (e as Error).message }, 'cannot show the standby screen');
    await media.close().catch(() => undefined);
    return null;
  }
}

/**
 * The status page of a box that has no configuration to say where: port 8080 on every
 * address; `EP_STATUS_PAGE_PORT` another port (0: any free one), or `off`.
 */
export function unprovisionedStatusPage(env: NodeJS.ProcessEnv): { enabled: boolean; port: number; host: string } {
  const v = env.EP_STATUS_PAGE_PORT;
  if (v === 'off') return { enabled: false, port: 8080, host: '0.0.0.0' };
  const port = v !== undefined && /^\d{1,5}$/.test(v) && Number(v) <= 65535 ? Number(v) : 8080;
  return { enabled: true, port, host: '0.0.0.0' };
}

/** 'provisioned': a valid configuration is there now; 'stopped': asked to stop first. */
export async function runUnprovisioned(o: UnprovisionedOptions): Promise<'provisioned' | 'stopped'> {
  const since = new Date().toISOString();
  let reason = await unprovisionedReason(o.dataDir);
  o.log.warn({ evt: 'agent.unprovisioned', reason }, `not provisioned: ${reason}`);
  // What the technician sees without a laptop: the LEDs' one pulse, the status page with the reason, the TV.
  let tv: MediaSupervisor | null = null;
  const field = new AgentField({
    config: { field: { statusPage: unprovisionedStatusPage(o.env ?? process.env), button: { shortPress: 'raise_hand', activeLow: true } } },
    paths: o.paths ?? hostPaths(),
    clock: systemClock,
    log: o.log.child({ module: 'field' }),
    base: () => ({ name: null, deviceId: null, groupId: null, version: o.version, state: 'unprovisioned', unprovisionedReason: reason, hub: { connected: false, url: null, downForMs: 0 }, network: null, meeting: null, faults: [], ota: null, micMuted: false }),
    health: () => null,
    logs: (n) => o.logs?.(n) ?? [],
    showStandby: (texts) => tv?.updateStandby(texts),
    toggleMute: async () => false,
    event: async () => undefined,
    meetingId: () => null,
    // Held 10 s here too: a half-written identity (a bad config) goes; the box stays unprovisioned.
    onFactoryReset: () =>
      void wipeDataDir(o.dataDir).then(
        (gone) => o.log.warn({ evt: 'factory_reset.done', removed: gone }, `factory reset: removed ${gone.length} entries`),
        (e: unknown) => o.log.error({ evt: 'factory_reset.failed', err: (e as Error).message }, 'factory reset: could not wipe the data directory'),
      ),
    ...(o.fieldHardware ? { hardware: o.fieldHardware } : {}),
  });
  const control = new ControlServer({
    path: controlSocketPath(o.dataDir, o.env),
    deviceId: null,
    log: o.log,
    handler: async (req) => {
      if (req.command === 'status') return { ok: true, result: { state: 'unprovisioned', reason, since, version: o.version, provisioned: false, ...field.status() } };
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
  await field.start();
  tv = await standbyTv(o, field.standby());
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
        field.state.changed();
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
        field.state.changed();
      }
    }
  } finally {
    await control.stop();
    await field.stop();
    await tv?.close();
  }
}
