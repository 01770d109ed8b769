/**
 * The composition root: wires config, logger, MQTT session, command router, meeting
 * state machine, media supervisor, health sampler and event outbox. No module
 * singletons: several agents run in one process (tests, the fleet simulator).
 * start() and stop() are symmetric; a failing subsystem is reported, not fatal.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { IClientOptions, MqttClient } from 'mqtt';
import { LogRing, createLogger, hostPaths, readJsonFile, systemClock, writeFileAtomic, type Clock, type HostPaths, type Logger, withoutCredentials } from '../lib/index.js';
import { AUDIO_ONLY, MediaSupervisor, execRunCommand, forkSpawner, planSession, planStandby, probe, type WorkerSpawner } from '../gst-pipelines/index.js';
import type { AdaptChange, Capabilities, MediaJoinSpec, MediaSettings } from '../gst-pipelines/index.js';
import { createActions } from './actions.js';
import type { AgentConfig } from './config.js';
import { createContract, topics, type Contract, type HealthSample, type Reply } from './contract/index.js';
import { HealthSampler } from './health/index.js';
import { sysfsLeds, systemctlActions, type Leds, type SystemActions } from './host/index.js';
import { MeetingController, type MeetingSource } from './meeting.js';
import { CommandRouter, MqttSession } from './mqtt/index.js';
import { oneAtATime, runSelftest, type SelftestReport } from './selftest.js';
import { UpdateController } from './updates.js';
import { SettingsStore, type RuntimeSettings } from './settings.js';
import { deviceHealth } from './state-report.js';
import { StateReporter, type Severity } from './state-reporter.js';
import { CommandLedger, EventOutbox, standInMessage } from './store/index.js';
import { LIMITS } from './limits.js';
import { FieldState } from './field/field-state.js';
import { ledFor, problemsOf, type FieldView } from './field/model.js';

/** How far back in the log ring `recentErrors` looks. */
const LOG_SCAN_LINES = 500;

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
  /** The button held 10 s: wipe identity, config and secrets once the agent has stopped, then restart unprovisioned (ep run). */
  factoryReset?: (why: string) => void;
  /** Stop and exit 75 so the launcher starts what `current` points at (after an update's switch, or to roll one back). */
  restart?: (why: string) => void;
  env?: NodeJS.ProcessEnv;
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
  private readonly settings: SettingsStore;
  private readonly reporter: StateReporter;
  readonly updates: UpdateController;
  /** What the clerk and the technician see (LEDs, TV standby screen, status page, `ep status`). */
  readonly field: FieldState;
  private reachedBroker = false;
  /** One selftest at a time, whoever asks (the hub's command, `ep selftest`, an update's trial). */
  private readonly selftestOnce = oneAtATime(() => this.selftest());
  /** When the broker connection was last lost (or the agent started), null while connected. */
  private hubDownSince: number | null;
  private caps: Capabilities | null = null;
  private idleWaiters = new Map<string, () => Promise<void>>();
  private readonly startedAt: number;
  /** Undoes what start() registered, in reverse order (stop()). */
  private readonly undo: Array<() => void> = [];

  constructor(private readonly d: AgentDeps) {
    const c = d.config;
    this.clock = d.clock ?? systemClock;
    this.paths = d.paths ?? hostPaths();
    this.logRing = d.logRing ?? new LogRing();
    this.log = (d.logger ?? createLogger({ level: c.log.level })).child({ deviceId: c.deviceId });
    this.contract = createContract();
    this.startedAt = this.clock.now();
    this.hubDownSince = this.startedAt;
    this.bootId = randomUUID();
    this.settings = new SettingsStore(this.contract, c.dataDir, { healthPeriodS: c.health.periodS, logLevel: c.log.level as RuntimeSettings['logLevel'], volume: c.media.volume, micMuted: c.media.micMuted });
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
    this.ledger = new CommandLedger<Record<string, unknown>>({
      file: path.join(c.dataDir, 'commands.journal'),
      now: () => this.clock.now(),
      log: this.log.child({ module: 'ledger' }),
      standIn: (f) => ({ id: f.id, deviceId: c.deviceId, command: f.command, ok: false, error: { code: 'failed', message: standInMessage(f) } }),
    });
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
      media: () => this.reporter.mediaHealth(),
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
      ...(c.mqtt.protocolVersion ? { protocolVersion: c.mqtt.protocolVersion } : {}),
      will: { topic: topics.status(c.deviceId), payload: () => JSON.stringify({ online: false, ts: this.iso() }) },
      onlineStatus: { topic: topics.status(c.deviceId), payload: () => JSON.stringify({ online: true, version: d.version, bootId: this.bootId, ts: this.iso() }) },
      subscriptions: topics.subscriptions(c.deviceId, c.groupId),
      clock: this.clock,
      logger: this.log,
      ...(d.random ? { random: d.random } : {}),
      ...(d.mqttConnect ? { connect: d.mqttConnect } : {}),
    });
    const system = d.system ?? systemctlActions();
    this.updates = new UpdateController({
      settings: c.ota ?? null,
      dataDir: c.dataDir,
      version: d.version,
      clock: this.clock,
      log: this.log.child({ module: 'ota' }),
      inMeeting: () => this.meeting.meeting !== null,
      reachedBroker: () => this.reachedBroker,
      selftest: () => this.selftestOnce(),
      setStatus: (s) => this.reporter.setOta(s),
      event: (type, severity, detail) => this.event(type, severity, detail),
      answered: (id) => {
        const k = this.ledger.peek(id);
        return k.kind === 'done' ? ((k.reply as { ok?: unknown }).ok === true ? 'ok' : 'failed') : null;
      },
      restart: (why) => (d.restart ? d.restart(why) : this.log.error({ evt: 'agent.restart_unavailable', why }, 'a restart is needed but this agent has no launcher to restart it')),
      ...(d.env ? { env: d.env } : {}),
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
        system,
        leds: d.leds ?? sysfsLeds(this.paths),
        logRing: this.logRing,
        logger: this.log,
        settings: () => this.settings.value,
        applySettings: (p) => this.applySettings(p),
        selftest: () => this.selftestOnce(),
        ota: (args, id) => this.updates.command(args, id),
        whenIdle: (kind, fn) => this.whenIdle(kind, fn),
        setTimer: (fn, ms) => this.clock.setTimeout(fn, ms),
        identified: (ms) => this.field.identifyFor(ms),
      }),
      publishReply: (reply, to) => this.publishReply(reply, to),
      onMeeting: (spec) => this.onGroupMeeting(spec),
      onBadMeeting: (problems) => this.event('bad_meeting', 'error', { problems }),
      onNext: (next) => this.field.setNextMeeting(next),
    });
    this.reporter = new StateReporter({
      deviceId: c.deviceId,
      version: d.version,
      clock: this.clock,
      log: this.log,
      mqtt: this.mqtt,
      media: this.media,
      meeting: this.meeting,
      caps: () => this.caps,
      testSources: c.media.source === 'test',
      sample: async () => {
        const s = await this.sampler.sample();
        if (s.clockSynced === true) this.updates.noteClockSynced(this.clock.now());
        return s;
      },
      healthPeriodMs: () => this.settings.value.healthPeriodS * 1000,
      event: (type, severity, detail) => this.event(type, severity, detail),
    });
    this.field = new FieldState({ clock: this.clock, base: () => this.fieldBase() });
  }

  get config(): AgentConfig {
    return this.d.config;
  }

  async start(): Promise<void> {
    const c = this.d.config;
    await mkdir(c.dataDir, { recursive: true, mode: 0o700 });
    await Promise.all([this.ledger.load(), this.outbox.load(), this.updates.load()]);
    this.log.level = (await this.settings.load()).logLevel;
    this.caps = this.d.caps ?? (await probe().catch((e: unknown) => {
      this.log.error({ evt: 'probe.failed', err: (e as Error).message }, 'probe failed; media unavailable');
      return null;
    }));
    const refresh = (): void => {
      this.reporter.refresh();
      this.field.changed();
    };
    const onRestart = (r: { reason: string; attempt: number; delayMs: number }): void => void this.event('media_restart', 'warn', { ...r });
    const onAdapt = ({ change }: { change: AdaptChange }): void => this.onAdapt(change);
    const onMeetingChange = (): void => {
      refresh();
      if (this.meeting.meeting === null) {
        // A raised hand belongs to the meeting it was raised in.
        if (this.field.handRaised) this.field.setHandRaised(false);
        void this.runIdleWaiters();
        this.updates.onIdle();
      }
    };
    const onMeetingEvent = (e: { type: string; severity: Severity; detail: Record<string, unknown> }): void => void this.event(e.type, e.severity, e.detail);
    const onConnected = (): void => {
      // The first broker connection proves the provisioning file's credentials: its copy on
      // the boot partition (secrets in it) gives way to a redacted receipt (provisioning/boot.ts).
      if (!this.reachedBroker)
        void import('../provisioning/index.js')
          .then((p) => p.noteBrokerReached(c.dataDir, this.log, { version: this.d.version }))
          .catch((e: unknown) => this.log.error({ evt: 'provision.cleanup_failed', err: (e as Error).message }, 'could not replace the provisioning file by its receipt'));
      this.reachedBroker = true;
      this.hubDownSince = null;
      this.field.changed();
      this.reporter.onConnected();
      void this.router.flush();
      this.outbox.resume();
    };
    this.media.on('status', refresh).on('restart', onRestart).on('adapt', onAdapt);
    this.meeting.on('change', onMeetingChange).on('event', onMeetingEvent);
    const onOffline = (): void => {
      this.hubDownSince ??= this.clock.now();
      this.field.changed();
    };
    this.mqtt.on('connected', onConnected).on('offline', onOffline);
    this.undo.push(
      () => this.media.off('status', refresh).off('restart', onRestart).off('adapt', onAdapt),
      () => this.meeting.off('change', onMeetingChange).off('event', onMeetingEvent),
      () => this.mqtt.off('connected', onConnected).off('offline', onOffline),
      this.mqtt.onMessage((m) => this.router.handle(m)),
    );
    void this.media.prewarm().catch((e: unknown) => this.log.error({ evt: 'media.prewarm_failed', err: (e as Error).message }, 'cannot start a media worker'));
    // Online first: the standby screen (a worker starting GStreamer) must not delay the
    // box's retained online status; the meeting queue orders what arrives meanwhile.
    const meetingReady = this.meeting.start().catch((e: unknown) => this.log.error({ evt: 'meeting.start_failed', err: (e as Error).message }, 'standby/restore failed'));
    await this.mqtt.start();
    await meetingReady;
    // After the broker: a new version's trial needs to know whether it reached it; a rollback's report goes out as an event.
    await this.updates.start().catch((e: unknown) => this.log.error({ evt: 'ota.start_failed', err: (e as Error).message }, 'update state could not be read'));
    this.reporter.start();
    this.field.start();
    this.undo.push(() => this.field.stop());
    this.log.info({ evt: 'agent.started', version: this.d.version, groupId: c.groupId }, `agent ${c.deviceId} started`);
  }

  /** The part stop() is waiting for while it runs (`ep run` names it when a stop overruns its bound). */
  stopStep: string | null = null;

  async stop(): Promise<void> {
    this.reporter.stop();
    this.stopStep = 'updates';
    await this.updates.stop();
    this.stopStep = 'meeting';
    await this.meeting.stop();
    this.stopStep = 'router';
    await this.router.idle();
    this.stopStep = 'outbox';
    await this.outbox.stop();
    this.stopStep = 'ledger';
    await this.ledger.stop();
    this.stopStep = 'mqtt';
    await this.mqtt.stop(JSON.stringify({ online: false, ts: this.iso() }));
    this.stopStep = 'media';
    await this.media.close();
    this.stopStep = null;
    for (const undo of this.undo.splice(0).reverse()) undo();
    this.log.info({ evt: 'agent.stopped' }, 'agent stopped');
  }

  /** The last health sample (status page, tests). */
  get health(): HealthSample | null {
    return this.reporter.health;
  }

  /** What `ep status` shows (the local control socket): the reported state, the hub link, the last health sample. */
  localStatus(): Record<string, unknown> {
    const c = this.d.config;
    const field = this.field.view;
    return {
      provisioned: true,
      deviceId: c.deviceId,
      groupId: c.groupId,
      name: c.name,
      hub: { url: withoutCredentials(c.mqtt.url), connected: this.mqtt.connected, reachedSinceStart: this.reachedBroker },
      ...this.reporter.snapshot(),
      health: this.reporter.health,
      field,
      led: ledFor(field),
      problems: problemsOf(field),
      recentErrors: this.recentErrors(),
    };
  }

  /** The button's short press: raise (or lower) the hand, or toggle the microphone, as configured. */
  async buttonPress(): Promise<void> {
    const how = this.d.config.field?.button.shortPress ?? 'raise_hand';
    if (how === 'mute') {
      const muted = !this.settings.value.micMuted;
      await this.applySettings({ micMuted: muted });
      this.log.info({ evt: 'button.mute', muted }, muted ? 'button: microphone muted' : 'button: microphone on');
      this.field.changed();
      return void this.event('mic_muted', 'info', { muted, by: 'button' });
    }
    const raised = !this.field.handRaised;
    this.field.setHandRaised(raised);
    this.log.info({ evt: 'button.hand', raised }, raised ? 'button: hand raised' : 'button: hand lowered');
    await this.event('hand_raised', 'info', { raised, meetingId: this.meeting.meeting?.id ?? null });
  }

  /** The button held past the warning (LEDs flicker) or released before the reset. */
  buttonWarning(on: boolean): void {
    this.field.setResetWarning(on);
  }

  /** The button held 10 s: the box forgets who it is (after the agent stops) and comes back unprovisioned. */
  buttonFactoryReset(): void {
    this.log.warn({ evt: 'button.factory_reset' }, 'button held 10 s: factory reset');
    if (!this.d.factoryReset) return void this.log.error({ evt: 'button.factory_reset_unavailable' }, 'a factory reset was asked but this agent cannot restart (no launcher)');
    this.d.factoryReset('button held 10 s');
  }

  /** The last few error lines of the log (already redacted by the logger): `ep status`, the status page. */
  recentErrors(n = 5): string[] {
    const out: string[] = [];
    for (const line of this.logRing.tail(LOG_SCAN_LINES).reverse()) {
      if (out.length >= n) break;
      if (/"level":(5|6)\d/.test(line)) out.push(line);
    }
    return out.reverse();
  }

  /** The same report the `selftest` command replies with (`ep selftest` over the local socket). */
  runSelftest(): Promise<SelftestReport> {
    return this.selftestOnce();
  }

  /** What the field view is built from, fresh on each build (field/field-state.ts). */
  private fieldBase(): Omit<FieldView, 'identify' | 'handRaised' | 'resetWarning' | 'nextMeeting' | 'now'> {
    const c = this.d.config;
    const s = this.reporter.snapshot();
    const h = this.reporter.health;
    const connected = this.mqtt.connected;
    return {
      name: c.name,
      deviceId: c.deviceId,
      groupId: c.groupId,
      version: this.d.version,
      state: s.state,
      unprovisionedReason: null,
      hub: { connected, url: withoutCredentials(c.mqtt.url), downForMs: connected || this.hubDownSince === null ? 0 : this.clock.now() - this.hubDownSince },
      // Reaching the broker proves a network; otherwise the last health sample's default route and address.
      network: connected ? true : h ? h.net.iface !== null && h.net.ip !== null : null,
      meeting: s.meeting ? { id: s.meeting.id, title: s.meeting.title ?? null, since: s.meeting.since } : null,
      faults: [...s.faults],
      ota: s.ota ? { phase: s.ota.phase, ...(s.ota.version ? { version: s.ota.version } : {}), ...(typeof s.ota.progress === 'number' ? { progress: s.ota.progress } : {}) } : null,
      micMuted: this.settings.value.micMuted,
    };
  }

  /** A step of the ladder (size, frame rate, audio-only) is an event; a bitrate change
   * within a rung is only logged (it happens every few seconds while the link moves). */
  private onAdapt(c: AdaptChange): void {
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
  }

  private iso(): string {
    return new Date(this.clock.now()).toISOString();
  }

  private selftest(): Promise<SelftestReport> {
    const c = this.d.config;
    return runSelftest({
      caps: async () => this.capsOrThrow(),
      testSources: c.media.source === 'test',
      inMeeting: () => this.meeting.meeting !== null,
      mqttConnected: () => this.mqtt.connected,
      dataDir: c.dataDir,
    });
  }

  private capsOrThrow(): Capabilities {
    if (!this.caps) throw new Error('media capabilities unknown (probe failed)');
    return this.caps;
  }

  private mediaSettings(): MediaSettings {
    return {
      source: this.d.config.media.source,
      volume: this.settings.value.volume,
      micMuted: this.settings.value.micMuted,
      aec: this.d.config.media.aec,
      statsPeriodS: 2,
      standbyTitle: this.d.config.name,
      ...(this.d.snapshotDir ? { snapshotDir: this.d.snapshotDir } : {}),
    };
  }

  private async onGroupMeeting(spec: MediaJoinSpec | null): Promise<void> {
    await this.meeting.onGroupMeeting(spec).catch(async (e: unknown) => {
      this.log.error({ evt: 'meeting.join_failed', err: (e as Error).message }, 'could not join the group meeting');
      if (spec) await this.event('join_failed', 'error', { meetingId: spec.meetingId, message: (e as Error).message });
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

  private async applySettings(p: Partial<RuntimeSettings>): Promise<RuntimeSettings> {
    const next = await this.settings.apply(p);
    if (p.logLevel) this.log.level = p.logLevel;
    if (p.volume !== undefined) this.media.setVolume(p.volume);
    if (p.micMuted !== undefined) this.media.setMicMuted(p.micMuted);
    if (p.healthPeriodS !== undefined) this.reporter.reschedule();
    return next;
  }

  /** Deferred until no meeting, one per kind: a flood of `reboot {"when":"idle"}` is one reboot, not thousands of closures. */
  private whenIdle(kind: string, fn: () => Promise<void>): void {
    if (this.idleWaiters.has(kind)) return;
    if (this.idleWaiters.size >= LIMITS.idleActions) throw new Error(`idle actions: more than ${LIMITS.idleActions} kinds`); // a programming error: kinds are a closed list
    this.idleWaiters.set(kind, fn);
  }

  private async runIdleWaiters(): Promise<void> {
    const w = [...this.idleWaiters.values()];
    this.idleWaiters.clear();
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
