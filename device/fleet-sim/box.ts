/**
 * One simulated box: the real agent (device/agent.ts: the same MQTT session, command
 * router, ledger, meeting state, reporter, update controller) with its own identity,
 * data directory and release tree, and media off (worker.ts). Only the boundaries are
 * the simulator's: the media worker, the self-test's GStreamer runs, systemctl, the
 * LEDs, the host's /sys and /proc (an empty tree: every health field it cannot read is
 * null) — and the launcher, which is in-process here: the agent's "restart" (after an
 * update's switch, or to roll one back) stops it and starts the version the launcher's
 * own decision (ota/launch-decision.ts) names, from the same release-state.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import path from 'node:path';
import { hostPaths, type Logger } from '../../lib/index.js';
import type { Capabilities } from '../../gst-pipelines/index.js';
import { currentVersion, decideLaunch, initialState, readReleaseState, releaseDir, switchCurrent, writeReleaseState } from '../../ota/index.js';
import { Agent } from '../agent.js';
import type { AgentConfig } from '../config.js';
import { createContract, type Contract } from '../contract/index.js';
import type { GstLauncher } from '../selftest.js';
import { simSpawner } from './worker.js';

/** A software-only x64/arm64 board with every element the planner asks for: plans succeed, nothing runs them. */
export function simCaps(arch: string = process.arch): Capabilities {
  const elements = ['srtsink', 'srtsrc', 'mpegtsmux', 'tsdemux', 'h264parse', 'opusenc', 'opusdec', 'x264enc', 'avdec_h264', 'textoverlay', 'webrtcdsp', 'webrtcechoprobe', 'level', 'fakesink', 'pngenc'];
  return { board: { model: 'fleet-sim', kind: 'x86', arch }, gstreamerVersion: null, elements: Object.fromEntries(elements.map((e) => [e, true])), cameras: [], displays: [], audio: { capture: [], playback: [] }, headless: true };
}

/** One compiled contract for every simulated box of the process. */
let shared: Contract | null = null;
const sharedContract = (): Contract => (shared ??= createContract());

export interface SimBoxOptions {
  deviceId: string;
  groupId: string;
  name: string;
  mqttUrl: string;
  /** This box's directory: data/, app/ (releases, current, release-state.json), host/ (an empty /sys, /proc). */
  dir: string;
  /** The version installed at the start (releases/<v>). */
  baseVersion: string;
  /** Ed25519 public key files the box trusts; absent: updates not enabled. */
  otaKeyFiles?: string[];
  /** Its self-test's encoder and decoder fail under any version but baseVersion (a release that breaks this box). */
  failSelftest?: boolean;
  logger: Logger;
  reconnectBaseMs?: number;
  reconnectCapMs?: number;
  keepaliveS?: number;
  healthPeriodS?: number;
  commitWindowS?: number;
  trialS?: number;
  /** The launcher's pause between a stop and the next start (its EP_LAUNCH_RESTART_MS; default 2000). */
  restartMs?: number;
  /** Each command (a message on a …/cmd/… topic) as this box's MQTT client receives it, before the agent sees it. */
  onCommand?: (deviceId: string, topic: string, at: number) => void;
  /** Each time this box's MQTT session (re)connects. */
  onConnected?: (deviceId: string, at: number) => void;
}

export class SimBox {
  agent: Agent | null = null;
  /** Agent starts, the first included (a restart after an update, a rollback, a reboot). */
  starts = 0;
  private stopped = false;
  private cycling: Promise<void> | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private readonly appRoot: string;
  private readonly dataDir: string;
  private running = '';

  constructor(readonly o: SimBoxOptions) {
    this.appRoot = path.join(o.dir, 'app');
    this.dataDir = path.join(o.dir, 'data');
  }

  get deviceId(): string {
    return this.o.deviceId;
  }

  /** The version running now (null between a stop and the next start). */
  get version(): string | null {
    return this.agent ? this.running : null;
  }

  /** Lays out the release tree (first time) and starts the version the launcher decides. */
  async start(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    if ((await currentVersion({ appRoot: this.appRoot })) === null) {
      const cli = path.join(releaseDir({ appRoot: this.appRoot }, this.o.baseVersion), 'dist', 'device', 'cli');
      await mkdir(cli, { recursive: true });
      await writeFile(path.join(cli, 'ep.js'), '// fleet-sim: the release tree of a simulated box\n');
      await switchCurrent({ appRoot: this.appRoot }, this.o.baseVersion);
      await writeReleaseState(this.appRoot, initialState(this.o.baseVersion));
    }
    await this.launch();
  }

  /** What the launcher does: decide, write the decision, point `current`, start that version. */
  private async launch(): Promise<void> {
    const state = (await readReleaseState(this.appRoot)) ?? initialState(this.o.baseVersion);
    const d = decideLaunch(state, Date.now());
    if (d.state !== state) await writeReleaseState(this.appRoot, d.state);
    if ((await currentVersion({ appRoot: this.appRoot })) !== d.run) await switchCurrent({ appRoot: this.appRoot }, d.run);
    if (d.run !== state.committed || d.state.trying === null) this.o.logger.info({ evt: 'sim.launch', deviceId: this.deviceId, run: d.run }, d.why);
    this.running = d.run;
    this.agent = this.newAgent(d.run);
    const onConnected = this.o.onConnected;
    if (onConnected) this.agent.mqtt.on('connected', () => onConnected(this.deviceId, Date.now()));
    this.starts++;
    await this.agent.start();
    // The launcher stops a trial version that has not committed by its deadline.
    const t = d.state.trying;
    if (t && t.version === d.run) {
      this.deadline = setTimeout(() => void this.checkDeadline(d.run), Math.max(0, t.deadline - Date.now()) + 10);
      this.deadline.unref();
    }
  }

  private async checkDeadline(run: string): Promise<void> {
    this.deadline = null;
    const s = await readReleaseState(this.appRoot).catch(() => null);
    if (s?.trying?.version === run) this.restart(`${run} did not commit within its window`);
  }

  private newAgent(version: string): Agent {
    const o = this.o;
    const config: AgentConfig = {
      deviceId: o.deviceId,
      groupId: o.groupId,
      name: o.name,
      mqtt: { url: o.mqttUrl, keepaliveS: o.keepaliveS ?? 30, reconnectBaseMs: o.reconnectBaseMs ?? 1000, reconnectCapMs: o.reconnectCapMs ?? 60_000 },
      dataDir: this.dataDir,
      media: { source: 'test', volume: 1, micMuted: false, aec: false },
      health: { periodS: o.healthPeriodS ?? 30 },
      log: { level: o.logger.level as AgentConfig['log']['level'] },
      field: { statusPage: { enabled: false, port: 0, host: '127.0.0.1' }, button: { shortPress: 'raise_hand', activeLow: true }, leds: {} },
      ota: o.otaKeyFiles
        ? { publicKeyFiles: o.otaKeyFiles, appRoot: this.appRoot, commitWindowMs: (o.commitWindowS ?? 5) * 1000, trialMs: (o.trialS ?? 120) * 1000, retries: 5, retryBaseMs: 500, retryCapMs: 5000 }
        : null,
    };
    const failing = o.failSelftest === true && version !== o.baseVersion;
    const gstLaunch: GstLauncher = async () => (failing ? { ok: false, detail: 'fleet-sim: this box fails its self-test under this version' } : { ok: true, detail: 'fleet-sim: media off' });
    return new Agent({
      config,
      version,
      logger: o.logger,
      caps: simCaps(),
      contract: sharedContract(),
      spawner: simSpawner(),
      gstLaunch,
      paths: hostPaths({ EP_HOST_ROOT: path.join(o.dir, 'host') }),
      // No host: no process to run, no systeminformation fallback (each spawns shells) — those fields are null.
      hostReads: { runCommand: async () => ({ code: null, stdout: '', stderr: 'fleet-sim: no host commands' }), si: {} },
      system: { reboot: async () => this.restart('reboot'), restartService: async () => this.restart('restart of the service') },
      leds: { blink: async () => ({ leds: [] }) },
      restart: (why) => this.restart(why),
      mqttConnect: (url, opts) => {
        const c = mqtt.connect(url, opts);
        const onCommand = o.onCommand;
        if (onCommand) c.on('message', (topic) => topic.includes('/cmd/') && onCommand(o.deviceId, topic, Date.now()));
        return c;
      },
      env: { EP_APP_ROOT: this.appRoot },
    });
  }

  /** The agent exits (75) and the launcher starts what it decides, after its pause. */
  restart(why: string): void {
    if (this.stopped || this.cycling) return;
    this.o.logger.info({ evt: 'sim.restart', deviceId: this.deviceId, why }, `restarting: ${why}`);
    this.cycling = (async () => {
      if (this.deadline) clearTimeout(this.deadline);
      await this.agent?.stop();
      this.agent = null;
      await new Promise((r) => setTimeout(r, this.o.restartMs ?? 2000));
      if (!this.stopped) await this.launch();
    })()
      .catch((e: unknown) => this.o.logger.error({ evt: 'sim.restart_failed', deviceId: this.deviceId, err: (e as Error).message }, 'the simulated launcher could not start the box'))
      .finally(() => (this.cycling = null));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.deadline) clearTimeout(this.deadline);
    await this.cycling;
    await this.agent?.stop();
    this.agent = null;
  }
}
