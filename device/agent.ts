/**
 * The composition root: wires config, logger, MQTT session, command router, meeting
 * state machine, media supervisor, health sampler and event outbox. No module
 * singletons: several agents run in one process (tests, the fleet simulator).
 * start() and stop() are symmetric; a failing subsystem is reported, not fatal.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { LogRing, createLogger, hostPaths, readJsonFile, systemClock, writeFileAtomic, type Clock, type HostPaths, type Logger, withoutCredentials } from '../lib/index.js';
import { MediaSupervisor, execRunCommand, forkSpawner, planSession, planStandby, probe } from '../gst-pipelines/index.js';
import type { AdaptChange, Capabilities, MediaJoinSpec, MediaSettings } from '../gst-pipelines/index.js';
import { createActions } from './actions.js';
import type { AgentConfig } from './config.js';
import { createContract, topics, type Contract, type HealthSample, type Reply } from './contract/index.js';
import { HealthSampler } from './health/index.js';
import { systemctlActions } from './host/index.js';
import { MeetingController, withDeviceId, type MeetingSource } from './meeting.js';
import { CommandRouter, MqttSession } from './mqtt/index.js';
import { oneAtATime, runSelftest, type SelftestReport } from './selftest.js';
import { UpdateController } from './updates.js';
import { SettingsStore, type RuntimeSettings } from './settings.js';
import { adaptEvent, deviceHealth, fieldBaseOf } from './state-report.js';
import { IdleActions } from './idle-actions.js';
import { StateReporter, type Severity } from './state-reporter.js';
import { CommandLedger, EventOutbox, standInMessage } from './store/index.js';
import { AgentField } from './field/index.js';
import type { AgentDeps } from './agent-deps.js';

export type { AgentDeps } from './agent-deps.js';

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
  readonly field: AgentField;
  private reachedBroker = false;
  /** One selftest at a time, whoever asks (the hub's command, `ep selftest`, an update's trial). */
  private readonly selftestOnce = oneAtATime(() => this.selftest());
  /** When the broker connection was last lost (or the agent started), null while connected. */
  private hubDownSince: number | null;
  private caps: Capabilities | null = null;
  private readonly startedAt: number;
  private readonly idle: IdleActions;
  /** Undoes what start() registered, in reverse order (stop()). */
  private readonly undo: Array<() => void> = [];

  constructor(private readonly d: AgentDeps) {
    const c = d.config;
    this.clock = d.clock ?? systemClock;
    this.paths = d.paths ?? hostPaths();
    this.logRing = d.logRing ?? new LogRing();
    this.log = (d.logger ?? createLogger({ level: c.log.level })).child({ deviceId: c.deviceId });
    this.contract = d.contract ?? createContract();
    this.startedAt = this.clock.now();
    this.hubDownSince = this.startedAt;
    this.idle = new IdleActions(this.log);
    this.bootId = randomUUID();
    this.settings = new SettingsStore(this.contract, c.dataDir, { healthPeriodS: c.health.periodS, logLevel: c.log.level as RuntimeSettings['logLevel'], volume: c.media.volume, micMuted: c.media.micMuted });
    this.media = new MediaSupervisor({ spawner: d.spawner ?? forkSpawner(), clock: this.clock, logger: this.log, ...(d.snapshotDir ? { snapshotDir: d.snapshotDir } : {}) });
    const meetingFile = path.join(c.dataDir, 'meeting.json');
    this.meeting = new MeetingController({
      media: this.media,
      clock: this.clock,
      logger: this.log,
      planSession: (spec) => planSession(withDeviceId(spec, c.deviceId), this.capsOrThrow(), this.mediaSettings()),
      planStandby: () => (this.caps ? planStandby(this.caps, this.mediaSettings(), undefined, this.field.standby()) : null),
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
      ...d.hostReads,
    });
    this.mqtt = new MqttSession({
      // url, credentials, TLS files, keepalive, backoff, protocol: the config's `mqtt` as decoded (config.ts).
      ...c.mqtt,
      clientId: c.deviceId,
      will: { topic: topics.status(c.deviceId), payload: () => JSON.stringify({ online: false, ts: this.iso() }) },
      onlineStatus: { topic: topics.status(c.deviceId), payload: () => JSON.stringify({ online: true, version: d.version, bootId: this.bootId, groupId: c.groupId, name: c.name, ts: this.iso() }) },
      subscriptions: topics.subscriptions(c.deviceId, c.groupId),
      optionalSubscriptions: topics.optionalSubscriptions(c.groupId),
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
        leds: d.leds ?? { blink: async () => ({ leds: this.field.ledNames }) },
        logRing: this.logRing,
        logger: this.log,
        settings: () => this.settings.value,
        applySettings: (p) => this.applySettings(p),
        selftest: () => this.selftestOnce(),
        ota: (args, id) => this.updates.command(args, id),
        whenIdle: (kind, fn) => this.idle.add(kind, fn),
        setTimer: (fn, ms) => this.clock.setTimeout(fn, ms),
        identified: (ms) => this.field.state.identifyFor(ms),
      }),
      publishReply: (reply, to) => this.publishReply(reply, to),
      onMeeting: (spec) => this.onGroupMeeting(spec),
      onBadMeeting: (problems) => this.event('bad_meeting', 'error', { problems }),
      onNext: (next) => this.field.state.setNextMeeting(next),
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
    this.field = new AgentField({
      config: c,
      paths: this.paths,
      clock: this.clock,
      log: this.log.child({ module: 'field' }),
      base: () => fieldBaseOf({ ...c, version: d.version, url: withoutCredentials(c.mqtt.url), state: this.reporter.snapshot(), health: this.reporter.health, connected: this.mqtt.connected, hubDownSince: this.hubDownSince, now: this.clock.now(), micMuted: this.settings.value.micMuted }),
      health: () => this.reporter.health,
      logs: (n) => this.logRing.tail(n),
      showStandby: (texts) => this.media.updateStandby(texts),
      toggleMute: async () => (await this.applySettings({ micMuted: !this.settings.value.micMuted })).micMuted,
      event: (type, severity, detail) => this.event(type, severity, detail),
      meetingId: () => this.meeting.meeting?.id ?? null,
      onFactoryReset: () => (d.factoryReset ? d.factoryReset('button held 10 s') : this.log.error({ evt: 'button.factory_reset_unavailable' }, 'a factory reset was asked but this agent cannot restart')),
      ...(d.fieldHardware ? { hardware: d.fieldHardware } : {}),
    });
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
      this.field.state.changed();
    };
    const onRestart = (r: { reason: string; attempt: number; delayMs: number }): void => void this.event('media_restart', 'warn', { ...r });
    const onAdapt = ({ change }: { change: AdaptChange }): void => {
      const e = adaptEvent(change);
      if (e) void this.event('media_adapted', e.severity, e.detail);
    };
    const onMeetingChange = (): void => {
      refresh();
      if (this.meeting.meeting === null) {
        // A raised hand belongs to the meeting it was raised in.
        this.field.meetingEnded();
        void this.idle.run();
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
      this.field.state.changed();
      this.reporter.onConnected();
      void this.router.flush();
      this.outbox.resume();
    };
    this.media.on('status', refresh).on('restart', onRestart).on('adapt', onAdapt);
    this.meeting.on('change', onMeetingChange).on('event', onMeetingEvent);
    const onOffline = (): void => {
      this.hubDownSince ??= this.clock.now();
      this.field.state.changed();
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
    await this.field.start();
    this.log.info({ evt: 'agent.started', version: this.d.version, groupId: c.groupId }, `agent ${c.deviceId} started`);
  }

  /** The part stop() is waiting for while it runs (`ep run` names it when a stop overruns its bound). */
  stopStep: string | null = null;

  async stop(): Promise<void> {
    this.reporter.stop();
    this.stopStep = 'field';
    await this.field.stop();
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
    return {
      provisioned: true,
      deviceId: c.deviceId,
      groupId: c.groupId,
      name: c.name,
      hub: { url: withoutCredentials(c.mqtt.url), connected: this.mqtt.connected, reachedSinceStart: this.reachedBroker },
      ...this.reporter.snapshot(),
      health: this.reporter.health,
      ...this.field.status(),
      recentErrors: this.logRing.errors(5),
    };
  }

  /** The same report the `selftest` command replies with (`ep selftest` over the local socket). */
  runSelftest(): Promise<SelftestReport> {
    return this.selftestOnce();
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
      health: () => this.reporter.health,
      micLevelDb: () => this.reporter.health?.media?.audio?.micDb ?? null,
      srtTarget: () => this.meeting.hubMedia,
      ...(this.d.gstLaunch ? { gstLaunch: this.d.gstLaunch } : {}),
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
}
