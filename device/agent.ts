/**
 * The composition root: wires config, logger, MQTT session, command router, meeting
 * state machine, media supervisor, health sampler and event outbox. No module
 * singletons: several agents run in one process (tests, the fleet simulator).
 * start() and stop() are symmetric; a failing subsystem is reported, not fatal.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createActions, type RuntimeSettings } from './actions.js';
import { createContract, type Contract } from './contract/index.js';
import { LOG_LEVELS, joinSpecSchema } from './contract/index.js';
import { topics } from './contract/index.js';
import { CommandRouter } from './mqtt/index.js';
import { MqttSession } from './mqtt/index.js';
import { MeetingController } from './meeting.js';
import { runSelftest } from './selftest.js';
import { buildReportedState, deviceFaults, deviceHealth } from './state-report.js';
import { systemClock, type Clock } from '../lib/index.js';
import { hostPaths, type HostPaths } from '../lib/index.js';
import { systemctlActions, type SystemActions } from './host/index.js';
import { sysfsLeds, type Leds } from './host/index.js';
import { LogRing } from '../lib/index.js';
import { createLogger, type Logger } from '../lib/index.js';
import { CommandLedger } from './store/index.js';
import { EventOutbox } from './store/index.js';
import { readJsonFile, writeFileAtomic } from '../lib/index.js';
import { HealthSampler, faultsFromHealth } from './health/index.js';
import { MediaSupervisor } from '../gst-pipelines/index.js';
import { AUDIO_ONLY } from '../gst-pipelines/index.js';
import { forkSpawner, type WorkerSpawner } from '../gst-pipelines/index.js';
import { planSession, planStandby } from '../gst-pipelines/index.js';
import { execRunCommand, probe } from '../gst-pipelines/index.js';
import type { AgentConfig } from './config.js';
import type { Capabilities, MediaJoinSpec, MediaSettings } from '../gst-pipelines/index.js';
import type { HealthSample, Reply } from './contract/index.js';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { MeetingSource } from './meeting.js';

export interface AgentDeps {
  config: AgentConfig;
  version: string;
  logger?: Logger;
  logRing?: LogRing;
  clock?: Clock;
  paths?: HostPaths;
  system?: SystemActions;
  leds?: Leds;
  spawner?: WorkerSpawner;
  /** Capabilities instead of probing (tests); default: probe() at start. */
  caps?: Capabilities;
  snapshotDir?: string;
  mqttConnect?: (url: string, opts: IClientOptions) => MqttClient;
  random?: () => number;
}

export class Agent {
  readonly log: Logger;
  readonly logRing: LogRing;
  readonly media: MediaSupervisor;
  readonly meeting: MeetingController;
  readonly mqtt: MqttSession;
  readonly router: CommandRouter;
  private readonly contract: Contract;
  private readonly clock: Clock;
  private readonly paths: HostPaths;
  private readonly ledger: CommandLedger;
  private readonly outbox: EventOutbox;
  private readonly sampler: HealthSampler;
  private readonly bootId: string;
  private caps: Capabilities | null = null;
  private settings: RuntimeSettings;
  private faults: string[] = [];
  private healthFaults: string[] = [];
  private lastStateJson = '';
  private lastHealth: HealthSample | null = null;
  private healthTimer: unknown = null;
  private idleWaiters: Array<() => Promise<void>> = [];
  private readonly startedAt: number;

  constructor(private readonly d: AgentDeps) {
    const c = d.config;
    this.clock = d.clock ?? systemClock;
    this.paths = d.paths ?? hostPaths();
    this.logRing = d.logRing ?? new LogRing();
    this.log = (d.logger ?? createLogger({ level: c.log.level })).child({ deviceId: c.deviceId });
    this.contract = createContract();
    this.startedAt = this.clock.now();
    this.bootId = randomUUID();
    this.settings = { healthPeriodS: c.health.periodS, logLevel: c.log.level, volume: c.media.volume, micMuted: c.media.micMuted };
    this.media = new MediaSupervisor({ spawner: d.spawner ?? forkSpawner(), clock: this.clock, logger: this.log, ...(d.snapshotDir ? { snapshotDir: d.snapshotDir } : {}) });
    const meetingFile = path.join(c.dataDir, 'meeting.json');
    this.meeting = new MeetingController({
      media: this.media,
      clock: this.clock,
      logger: this.log,
      planSession: (spec) => planSession(withDeviceId(spec, c.deviceId), this.capsOrThrow(), this.mediaSettings()),
      planStandby: () => (this.caps ? planStandby(this.caps, this.mediaSettings()) : null),
      store: {
        load: () => readJsonFile<{ spec: MediaJoinSpec; source: MeetingSource }>(meetingFile, { maxBytes: 65536, quarantine: true }),
        save: (v) => writeFileAtomic(meetingFile, JSON.stringify(v), { mode: 0o600 }),
      },
    });
    this.ledger = new CommandLedger({ file: path.join(c.dataDir, 'commands.json'), now: () => this.clock.now(), log: this.log.child({ module: 'ledger' }) });
    this.outbox = new EventOutbox({
      file: path.join(c.dataDir, 'outbox.json'),
      now: () => this.clock.now(),
      log: this.log.child({ module: 'outbox' }),
      publish: (ev) => this.mqtt.publish(topics.event(c.deviceId), JSON.stringify(ev), { qos: 1 }),
    });
    this.sampler = new HealthSampler({
      paths: this.paths,
      runCommand: execRunCommand(),
      startedAt: this.startedAt,
      clock: this.clock,
      dataDir: c.dataDir,
      devices: () => deviceHealth(this.caps, c.media.source === 'test'),
      media: () => this.mediaHealth(),
    });
    this.mqtt = new MqttSession({
      url: c.mqtt.url,
      clientId: c.deviceId,
      ...(c.mqtt.username !== undefined ? { username: c.mqtt.username } : {}),
      ...(c.mqtt.password !== undefined ? { password: c.mqtt.password } : {}),
      ...(c.mqtt.caFile ? { caFile: c.mqtt.caFile } : {}),
      ...(c.mqtt.certFile ? { certFile: c.mqtt.certFile } : {}),
      ...(c.mqtt.keyFile ? { keyFile: c.mqtt.keyFile } : {}),
      keepaliveS: c.mqtt.keepaliveS,
      reconnectBaseMs: c.mqtt.reconnectBaseMs,
      reconnectCapMs: c.mqtt.reconnectCapMs,
      will: { topic: topics.status(c.deviceId), payload: () => JSON.stringify({ online: false, ts: this.iso() }) },
      onlineStatus: { topic: topics.status(c.deviceId), payload: () => JSON.stringify({ online: true, version: d.version, bootId: this.bootId, ts: this.iso() }) },
      subscriptions: topics.subscriptions(c.deviceId, c.groupId),
      clock: this.clock,
      logger: this.log,
      ...(d.random ? { random: d.random } : {}),
      ...(d.mqttConnect ? { connect: d.mqttConnect } : {}),
    });
    this.router = new CommandRouter({
      deviceId: c.deviceId,
      groupId: c.groupId,
      contract: this.contract,
      ledger: this.ledger,
      clock: this.clock,
      logger: this.log,
      run: createActions({
        name: c.name,
        meeting: this.meeting,
        media: this.media,
        system: d.system ?? systemctlActions(),
        leds: d.leds ?? sysfsLeds(this.paths),
        logRing: this.logRing,
        logger: this.log,
        settings: () => this.settings,
        applySettings: (p) => this.applySettings(p),
        selftest: () =>
          runSelftest({
            caps: async () => this.capsOrThrow(),
            testSources: c.media.source === 'test',
            inMeeting: () => this.meeting.meeting !== null,
            mqttConnected: () => this.mqtt.connected,
            dataDir: c.dataDir,
          }),
        whenIdle: (fn) => this.idleWaiters.push(fn),
        setTimer: (fn, ms) => this.clock.setTimeout(fn, ms),
      }),
      publishReply: (reply, to) => this.publishReply(reply, to),
      onMeeting: (payload) => this.onMeetingMessage(payload),
    });
  }

  get config(): AgentConfig {
    return this.d.config;
  }

  async start(): Promise<void> {
    const c = this.d.config;
    await mkdir(c.dataDir, { recursive: true, mode: 0o700 });
    await Promise.all([this.ledger.load(), this.outbox.load()]);
    // Settings changed by the `config` command survive a restart.
    const saved = await readJsonFile<Partial<RuntimeSettings>>(path.join(c.dataDir, 'settings.json'), { maxBytes: 4096, quarantine: true }).catch(() => null);
    if (saved) this.settings = { ...this.settings, ...pickSettings(saved) };
    this.log.level = this.settings.logLevel;
    this.caps = this.d.caps ?? (await probe().catch((e: unknown) => {
      this.log.error({ evt: 'probe.failed', err: (e as Error).message }, 'probe failed; media unavailable');
      return null;
    }));
    this.media.on('status', () => this.refresh());
    this.media.on('restart', (r) => void this.event('media_restart', 'warn', { ...r }));
    // A step of the ladder (size, frame rate, audio-only) is an event; a bitrate change
    // within a rung is only logged (it happens every few seconds while the link moves).
    this.media.on('adapt', ({ change: c }) => {
      if (c.fromRung === c.toRung) return;
      const severity = c.direction === 'up' ? 'info' : c.toRung === AUDIO_ONLY ? 'warn' : 'info';
      void this.event('media_adapted', severity, {
        direction: c.direction,
        from: { rung: c.fromRung, kbps: c.fromKbps },
        to: { rung: c.toRung, kbps: c.toKbps },
        reason: c.reason,
        rttMs: c.rttMs,
        rttFloorMs: c.rttFloorMs,
      });
    });
    this.meeting.on('change', () => {
      this.refresh();
      if (this.meeting.meeting === null) void this.runIdleWaiters();
    });
    this.meeting.on('event', (e) => void this.event(e.type, e.severity, e.detail));
    this.mqtt.onMessage((m) => this.router.handle(m));
    this.mqtt.on('connected', () => {
      this.lastStateJson = '';
      this.refresh();
      void this.router.flush();
      this.outbox.resume();
      void this.publishHealth();
    });
    void this.media.prewarm().catch((e: unknown) => this.log.error({ evt: 'media.prewarm_failed', err: (e as Error).message }, 'cannot start a media worker'));
    // Online first: the standby screen (a worker starting GStreamer) must not delay the
    // box's retained online status; the meeting queue orders what arrives meanwhile.
    const meetingReady = this.meeting.start().catch((e: unknown) => this.log.error({ evt: 'meeting.start_failed', err: (e as Error).message }, 'standby/restore failed'));
    await this.mqtt.start();
    await meetingReady;
    this.scheduleHealth();
    this.log.info({ evt: 'agent.started', version: this.d.version, groupId: c.groupId }, `agent ${c.deviceId} started`);
  }

  async stop(): Promise<void> {
    if (this.healthTimer) this.clock.clearTimeout(this.healthTimer);
    this.healthTimer = null;
    await this.meeting.stop();
    await this.router.idle();
    await this.outbox.stop();
    await this.ledger.stop();
    await this.mqtt.stop(JSON.stringify({ online: false, ts: this.iso() }));
    await this.media.close();
    this.media.removeAllListeners();
    this.meeting.removeAllListeners();
    this.log.info({ evt: 'agent.stopped' }, 'agent stopped');
  }

  /** The last health sample (status page, tests). */
  get health(): HealthSample | null {
    return this.lastHealth;
  }

  private iso(): string {
    return new Date(this.clock.now()).toISOString();
  }

  private capsOrThrow(): Capabilities {
    if (!this.caps) throw new Error('media capabilities unknown (probe failed)');
    return this.caps;
  }

  private mediaSettings(): MediaSettings {
    return {
      source: this.d.config.media.source,
      volume: this.settings.volume,
      micMuted: this.settings.micMuted,
      aec: this.d.config.media.aec,
      statsPeriodS: 2,
      standbyTitle: this.d.config.name,
      ...(this.d.snapshotDir ? { snapshotDir: this.d.snapshotDir } : {}),
    };
  }

  private async onMeetingMessage(payload: Buffer): Promise<void> {
    if (payload.length === 0) return this.meeting.onGroupMeeting(null);
    let spec: MediaJoinSpec;
    try {
      spec = this.contract.check<MediaJoinSpec>(this.contract.compile(joinSpecSchema), this.contract.parseJson(payload, 'meeting'), 'meeting');
    } catch (e) {
      this.log.warn({ evt: 'meeting.bad_retained', problems: (e as Error).message }, 'ignored an invalid retained group meeting');
      await this.event('bad_meeting', 'error', { problems: (e as Error).message });
      return;
    }
    await this.meeting.onGroupMeeting(spec).catch(async (e: unknown) => {
      this.log.error({ evt: 'meeting.join_failed', err: (e as Error).message }, 'could not join the group meeting');
      await this.event('join_failed', 'error', { meetingId: spec.meetingId, message: (e as Error).message });
    });
  }

  private async publishReply(reply: Reply, to: { responseTopic?: string; correlationData?: Buffer }): Promise<void> {
    const body = JSON.stringify(reply);
    await this.mqtt.publish(topics.reply(this.d.config.deviceId), body, { qos: 1 });
    // The response topic is best effort: the reply topic already has the answer, and a
    // response topic the broker refuses must not turn into a second reply on reconnect.
    if (to.responseTopic)
      await this.mqtt
        .publish(to.responseTopic, body, { qos: 1, ...(to.correlationData ? { correlationData: to.correlationData } : {}) })
        .catch((e: unknown) => this.log.warn({ evt: 'command.response_topic_failed', id: reply.id, err: (e as Error).message }, 'could not publish to the response topic'));
    if (!reply.ok) void this.event('command_failed', 'warn', { id: reply.id, command: reply.command, code: reply.error?.code, message: reply.error?.message });
  }

  private async event(type: string, severity: 'info' | 'warn' | 'error', detail: Record<string, unknown>): Promise<void> {
    try {
      await this.outbox.add({ type, severity, detail });
    } catch (e) {
      this.log.error({ evt: 'outbox.failed', err: (e as Error).message }, 'could not record an event');
    }
  }

  /** Recomputes faults and the reported state; publishes what changed. */
  private refresh(): void {
    const media = this.media.status();
    const faults = [...new Set([...deviceFaults(this.caps, this.d.config.media.source === 'test', media), ...this.healthFaults])].sort();
    const changed = faults.join() !== this.faults.join();
    if (changed) {
      for (const f of faults.filter((x) => !this.faults.includes(x))) void this.event('fault_raised', f === 'media_failing' ? 'error' : 'warn', { fault: f });
      for (const f of this.faults.filter((x) => !faults.includes(x))) void this.event('fault_cleared', 'info', { fault: f });
      this.faults = faults;
    }
    const state = buildReportedState({ phase: this.meeting.phase, meeting: this.meeting.meeting, media, faults, version: this.d.version, now: this.clock.now() });
    const json = JSON.stringify({ ...state, ts: undefined });
    if (json !== this.lastStateJson && this.mqtt.connected) {
      this.lastStateJson = json;
      this.mqtt.publish(topics.state(this.d.config.deviceId), JSON.stringify(state), { qos: 1, retain: true }).catch(() => (this.lastStateJson = ''));
    }
    if (changed) void this.publishHealth();
  }

  private mediaHealth(): HealthSample['media'] | null {
    const s = this.media.status();
    if (s.plan !== 'session' || !s.stats) return null;
    const st = s.stats;
    return {
      send: { fps: st.send.fps, kbps: st.send.kbps, rttMs: st.send.srt?.rttMs ?? null, lossPct: st.send.srt?.lossPct ?? null, retransPct: st.send.srt?.retransPct ?? null },
      receive: { fps: st.receive.fps, kbps: st.receive.kbps, lossPct: st.receive.srt?.lossPct ?? null },
      audio: { micDb: st.audio.micDb, speakerDb: st.audio.speakerDb },
      link: st.adapt
        ? {
            adaptive: st.adapt.enabled,
            rung: st.adapt.rung,
            targetKbps: st.adapt.targetKbps,
            sendKbps: st.adapt.sendKbps,
            rttMs: st.adapt.rttMs,
            rttFloorMs: st.adapt.rttFloorMs,
            congested: st.adapt.congested,
            stepsDown: st.adapt.steps.down,
            stepsUp: st.adapt.steps.up,
          }
        : null,
    };
  }

  private scheduleHealth(): void {
    this.healthTimer = this.clock.setTimeout(() => {
      void this.publishHealth().finally(() => {
        if (this.healthTimer !== null) this.scheduleHealth();
      });
    }, this.settings.healthPeriodS * 1000);
  }

  private async publishHealth(): Promise<void> {
    try {
      const sample = await this.sampler.sample();
      this.lastHealth = sample;
      const hf = faultsFromHealth(sample);
      if (hf.join() !== this.healthFaults.join()) {
        this.healthFaults = hf;
        this.refresh();
      }
      const withFaults = { ...sample, faults: this.faults };
      if (this.mqtt.connected) await this.mqtt.publish(topics.health(this.d.config.deviceId), JSON.stringify(withFaults), { qos: 0 });
    } catch (e) {
      this.log.warn({ evt: 'health.failed', err: (e as Error).message }, 'health sample failed');
    }
  }

  private async applySettings(p: Partial<RuntimeSettings>): Promise<RuntimeSettings> {
    this.settings = { ...this.settings, ...p };
    if (p.logLevel) this.log.level = p.logLevel;
    if (p.volume !== undefined) this.media.setVolume(p.volume);
    if (p.micMuted !== undefined) this.media.setMicMuted(p.micMuted);
    if (p.healthPeriodS !== undefined && this.healthTimer) {
      this.clock.clearTimeout(this.healthTimer);
      this.scheduleHealth();
    }
    await writeFileAtomic(path.join(this.d.config.dataDir, 'settings.json'), JSON.stringify(this.settings));
    return this.settings;
  }

  private async runIdleWaiters(): Promise<void> {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const fn of w) await fn().catch((e: unknown) => this.log.error({ evt: 'system.idle_action_failed', err: (e as Error).message }, 'deferred action failed'));
  }
}

/**
 * A group meeting has one spec for every box, but each box must publish its own
 * stream: `{deviceId}` in `send.streamId` (and `send.url`) becomes this box's id, e.g.
 * `publish:camlo/{deviceId}`. An extension of contract v1: a spec without it is unchanged.
 */
export function withDeviceId(spec: MediaJoinSpec, deviceId: string): MediaJoinSpec {
  const sub = (s: string): string => s.split('{deviceId}').join(deviceId);
  return { ...spec, send: { ...spec.send, url: sub(spec.send.url), ...(spec.send.streamId ? { streamId: sub(spec.send.streamId) } : {}) } };
}

function pickSettings(v: Partial<RuntimeSettings>): Partial<RuntimeSettings> {
  const out: Partial<RuntimeSettings> = {};
  if (typeof v.healthPeriodS === 'number' && v.healthPeriodS >= 5 && v.healthPeriodS <= 3600) out.healthPeriodS = v.healthPeriodS;
  if (typeof v.logLevel === 'string' && (LOG_LEVELS as readonly string[]).includes(v.logLevel)) out.logLevel = v.logLevel;
  if (typeof v.volume === 'number' && v.volume >= 0 && v.volume <= 1.5) out.volume = v.volume;
  if (typeof v.micMuted === 'boolean') out.micMuted = v.micMuted;
  return out;
}
