/**
 * The box's MQTT session: TLS with CA / client certificate or username/password;
 * MQTT 5 with a fall back to 3.1.1 (on a CONNACK refusal of the version, or two closes
 * before CONNACK: a 3.1.1-only broker such as RabbitMQ 3.10 closes an MQTT 5 CONNECT
 * without a word), or one version fixed by the config; the reason of every failed
 * attempt logged (failure.ts); last will + retained online status; a persistent
 * session (clean: false) with resubscription when the broker lost it; our own
 * reconnect with capped, jittered exponential backoff (MQTT.js alone retries every 1 s
 * in lockstep); and a watchdog that rebuilds the client if it stays disconnected past
 * a bound (the latched-`disconnecting` bug, MQTT.js#1897); a stop() that ends within a
 * bound whatever the client's state.
 *
 * Incoming publishes are acknowledged (PUBACK) only once the handler has accepted
 * them, so a command the agent never recorded is redelivered by the broker.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { backoffDelay, systemClock, type Clock } from '../../lib/index.js';
import { silentLogger, type Logger } from '../../lib/index.js';
import { discardClient, dropInflight, endClient } from './client-end.js';
import { subscribeAll } from './subscribe.js';
import { AFTER_CONNECT_MS, CLOSES_BEFORE_FALLBACK, CONNECT_TIMEOUT_MS, OFFLINE_PUBLISH_MS, PUBLISH_TIMEOUT_MS, SESSION_EXPIRY_S, STOP_GRACE_MS } from './session-options.js';
import type { IncomingMessage, MessageHandler, MqttSessionEvents, MqttSessionOptions } from './session-options.js';
import { classifyError, disconnectMeaning, type Failure } from './failure.js';

export type { IncomingMessage, MessageHandler, MqttSessionEvents, MqttSessionOptions } from './session-options.js';

export class MqttSession extends EventEmitter<MqttSessionEvents> {
  private client: MqttClient | null = null;
  private protocolVersion: 4 | 5;
  /** On 3.1.1 because MQTT 5 failed; confirmed by a 3.1.1 CONNACK (or a refusal of v5), then kept. */
  private fallback = false;
  private fallbackConfirmed = false;
  /** MQTT 5 reached a CONNACK once: later closes are not the version's fault. */
  private v5Connected = false;
  private closesBeforeConnack = 0;
  private attempt = 0;
  private reconnectTimer: unknown = null;
  private watchdog: unknown = null;
  private lastProgress = 0;
  /** The watchdog's period and rebuild bound, and when it last ran (liveness()). */
  private wd = { tickMs: 0, boundMs: 0, lastTickAt: 0 };
  private stopped = true;
  /** Subscribed since start(): a new process must subscribe once even to a present session, or it never gets the retained meeting. */
  private subscribedSinceStart = false;
  private readonly refusedOptional = new Set<string>();
  private tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  private handler: MessageHandler = async () => undefined;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(private readonly o: MqttSessionOptions) {
    super();
    this.clock = o.clock ?? systemClock;
    this.log = (o.logger ?? silentLogger()).child({ module: 'mqtt' });
    this.protocolVersion = o.protocolVersion ?? 5;
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  get version(): 4 | 5 {
    return this.protocolVersion;
  }

  /**
   * Read-only, for the systemd watchdog (device/liveness.ts): whether the session runs,
   * when its own watchdog last ticked (every `tickMs`), and when it last made progress
   * (connected, or an attempt / rebuild began; the watchdog rebuilds past `boundMs`).
   */
  liveness(): { running: boolean; connected: boolean; lastTickAt: number; tickMs: number; lastProgressAt: number; boundMs: number } {
    return { running: !this.stopped, connected: this.connected, lastTickAt: this.wd.lastTickAt, tickMs: this.wd.tickMs, lastProgressAt: this.lastProgress, boundMs: this.wd.boundMs };
  }

  /** Fault injection (device/cli/run.ts, EP_TEST_FAULTS=1 only): the watchdog's tick stops, as if its loop were wedged; the connection is left alone. */
  wedgeForTest(): void {
    if (this.watchdog) this.clock.clearInterval(this.watchdog);
    this.watchdog = null;
  }

  /** Sets the one message handler; returns what removes it again. */
  onMessage(handler: MessageHandler): () => void {
    this.handler = handler;
    return () => {
      if (this.handler === handler) this.handler = async () => undefined;
    };
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.subscribedSinceStart = false;
    const read = async (f: string | undefined): Promise<Buffer | undefined> => (f ? readFile(f) : undefined);
    const [ca, cert, key] = await Promise.all([read(this.o.caFile), read(this.o.certFile), read(this.o.keyFile)]);
    this.tls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
    this.lastProgress = this.clock.now();
    this.build();
    const bound = this.o.watchdogMs ?? Math.max(2 * this.o.reconnectCapMs, 60_000);
    this.wd = { tickMs: Math.min(5000, bound / 4), boundMs: bound, lastTickAt: this.clock.now() };
    this.watchdog = this.clock.setInterval(() => this.checkWatchdog(bound), this.wd.tickMs);
  }

  /**
   * Publishes the offline status (best effort, ≤ 1 s) and closes the session, within
   * about `stopGraceMs` more whatever state the client is in. MQTT.js's `end()` waits
   * for every in-flight QoS 1 message to be acknowledged (`outgoingEmpty`) and never
   * calls back when one never will be (MQTT.js#952: a publish the broker answered by
   * disconnecting, a connection that died under it); past the grace the socket is
   * destroyed and the stop goes on (`mqtt.end_forced`).
   */
  async stop(offlinePayload?: string): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.reconnectTimer) this.clock.clearTimeout(this.reconnectTimer);
    if (this.watchdog) this.clock.clearInterval(this.watchdog);
    this.reconnectTimer = this.watchdog = null;
    const c = this.client;
    this.client = null;
    if (!c) return;
    if (c.connected && offlinePayload) {
      let t: unknown = null;
      await Promise.race([
        c.publishAsync(this.o.will.topic, offlinePayload, { qos: 1, retain: true }).catch(() => undefined),
        new Promise((r) => (t = this.clock.setTimeout(() => r(undefined), OFFLINE_PUBLISH_MS))),
      ]);
      this.clock.clearTimeout(t);
    }
    await endClient(c, this.o.stopGraceMs ?? STOP_GRACE_MS, this.clock, this.log);
  }

  /** Resolves on PUBACK (QoS 1) or when written (QoS 0); rejects when not connected. */
  async publish(topic: string, payload: string | Buffer, opts: { qos?: 0 | 1; retain?: boolean; correlationData?: Buffer } = {}): Promise<void> {
    const c = this.client;
    if (!c || !c.connected) throw new Error('mqtt: not connected');
    const properties = opts.correlationData && this.protocolVersion === 5 ? { correlationData: opts.correlationData } : undefined;
    // A PUBACK that never comes (connection died mid-flight, client latched) must not
    // hold the caller forever: the outbox retries the event after a reconnect.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('mqtt: no PUBACK within 30 s')), PUBLISH_TIMEOUT_MS);
    });
    try {
      await Promise.race([c.publishAsync(topic, payload, { qos: opts.qos ?? 1, retain: opts.retain ?? false, ...(properties ? { properties } : {}) }), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private build(): void {
    const o = this.o;
    const v = this.protocolVersion;
    const opts: IClientOptions = {
      clientId: o.clientId,
      clean: false,
      protocolVersion: v,
      keepalive: o.keepaliveS,
      reconnectPeriod: 0, // we reconnect ourselves, with backoff and jitter
      connectTimeout: CONNECT_TIMEOUT_MS,
      resubscribe: false,
      queueQoSZero: false,
      rejectUnauthorized: true,
      will: { topic: o.will.topic, payload: Buffer.from(o.will.payload()), qos: 1, retain: true },
      ...(v === 5 ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_S } } : {}),
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...this.tls,
    };
    const connect = o.connect ?? ((url: string, co: IClientOptions) => mqtt.connect(url, co));
    this.newAttempt();
    const c = connect(o.url, opts);
    this.client = c;
    c.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void) => {
      const props = packet.properties;
      const m: IncomingMessage = {
        topic: packet.topic,
        payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
        retain: packet.retain === true,
        ...(props?.responseTopic ? { responseTopic: props.responseTopic } : {}),
        ...(props?.correlationData ? { correlationData: Buffer.from(props.correlationData) } : {}),
      };
      this.handler(m).then(
        () => done(),
        (e: unknown) => {
          this.log.error({ evt: 'mqtt.handler_failed', topic: m.topic, err: (e as Error).message }, 'message handler failed');
          done();
        },
      );
    };
    c.on('connect', (connack) => {
      if (this.client !== c) return;
      this.att.connacked = true;
      this.attempt = 0;
      this.closesBeforeConnack = 0;
      if (v === 5) this.v5Connected = true;
      else if (this.fallback) this.fallbackConfirmed = true;
      this.lastProgress = this.clock.now();
      const sessionPresent = connack.sessionPresent === true;
      this.log.info({ evt: 'mqtt.connected', sessionPresent, protocolVersion: v }, 'connected to the broker');
      void this.afterConnect(c, sessionPresent);
    });
    c.on('error', (err: Error & { code?: number | string }) => {
      if (this.client !== c) return;
      const f = classifyError(err, v, !this.att.connacked);
      if (f.reason === 'refused' && (f.code === 1 || f.code === 132) && v === 5 && this.o.protocolVersion === undefined) {
        this.logFailure(f);
        this.fallBack(f, true);
        return;
      }
      if (this.att.connacked) this.log.warn({ evt: 'mqtt.error', reason: f.reason, code: f.code, err: f.detail }, 'mqtt error');
      this.att.failure ??= f;
    });
    c.on('disconnect', (packet: { reasonCode?: number }) => {
      // MQTT 5: the server says why it ends the connection.
      if (this.client === c && packet.reasonCode !== undefined) this.att.serverReason = packet.reasonCode;
    });
    c.on('close', () => {
      if (this.client !== c || this.stopped) return;
      dropInflight(c, this.log);
      const f = this.attemptFailure(v);
      this.logFailure(f);
      this.emit('offline', { reason: f.reason });
      // A 3.1.1-only broker (RabbitMQ 3.10) closes an MQTT 5 CONNECT instead of refusing it
      // (a reset instead of a clean close is the same answer).
      const hungUp = f.reason === 'closed_before_connack' || (f.reason === 'network' && (f.code === 'ECONNRESET' || f.code === 'EPIPE'));
      if (!hungUp) this.closesBeforeConnack = 0; // "two in a row"
      if (hungUp && !this.att.connacked && this.o.protocolVersion === undefined) {
        if (v === 5 && !this.v5Connected && ++this.closesBeforeConnack >= CLOSES_BEFORE_FALLBACK) return this.fallBack(f, false);
        if (v === 4 && !this.fallbackConfirmed) return this.undoFallback();
      }
      this.scheduleReconnect(f);
    });
  }

  /** Per connection attempt: what happened so far (for the log line of a failed attempt). */
  private att: { startedAt: number; connacked: boolean; failure: Failure | null; serverReason: number | null } = { startedAt: 0, connacked: false, failure: null, serverReason: null };

  private newAttempt(): void {
    this.att = { startedAt: this.clock.now(), connacked: false, failure: null, serverReason: null };
  }

  private attemptFailure(v: 4 | 5): Failure {
    const a = this.att;
    if (a.connacked) {
      if (a.serverReason !== null) return { reason: 'connection_lost', code: a.serverReason, detail: `the broker disconnected us: ${disconnectMeaning(a.serverReason)}` };
      return a.failure ? { ...a.failure, reason: 'connection_lost', detail: `connection lost: ${a.failure.detail}` } : { reason: 'connection_lost', detail: 'the connection closed' };
    }
    if (a.failure) return a.failure;
    if (this.clock.now() - a.startedAt >= CONNECT_TIMEOUT_MS - 500) return { reason: 'connack_timeout', detail: `no CONNACK within ${CONNECT_TIMEOUT_MS / 1000} s` };
    return { reason: 'closed_before_connack', detail: `the broker closed the connection before its CONNACK (MQTT ${v === 5 ? '5' : '3.1.1'})` };
  }

  private logFailure(f: Failure): void {
    const fields = { reason: f.reason, ...(f.code !== undefined ? { code: f.code } : {}), protocolVersion: this.protocolVersion, detail: f.detail };
    if (f.reason === 'connection_lost') this.log.warn({ evt: 'mqtt.connection_lost', ...fields }, f.detail);
    else this.log.warn({ evt: 'mqtt.connect_failed', ...fields }, `cannot connect to the broker: ${f.detail}`);
  }

  /** MQTT 3.1.1 from now on (for this process's life once a 3.1.1 CONNACK confirms it). */
  private fallBack(f: Failure, confirmed: boolean): void {
    this.protocolVersion = 4;
    this.fallback = true;
    this.fallbackConfirmed = confirmed;
    this.closesBeforeConnack = 0;
    this.log.warn({ evt: 'mqtt.fallback_311', reason: f.reason, ...(f.code !== undefined ? { code: f.code } : {}) }, `the broker does not take MQTT 5 (${f.detail}); falling back to 3.1.1`);
    this.rebuild('protocol fallback', 0);
  }

  /** 3.1.1 was closed before its CONNACK too: it was not the version; MQTT 5 again, with backoff. */
  private undoFallback(): void {
    this.protocolVersion = 5;
    this.fallback = false;
    this.log.warn({ evt: 'mqtt.fallback_undone' }, 'MQTT 3.1.1 was closed before CONNACK too: not a version problem; back to MQTT 5');
    this.attempt++;
    this.rebuild('protocol fallback undone', backoffDelay(this.attempt, this.o.reconnectBaseMs, this.o.reconnectCapMs, this.o.random));
  }

  /**
   * Subscribes (unless the broker kept this start's subscriptions) and publishes the online
   * status; then the session is `connected` for the agent. Bounded: a client connected but
   * never acknowledged here, or failing here, would leave the box connected and unheard for
   * good (no online status, no replies flushed) — the watchdog, seeing it connected, never
   * acts — so it is replaced by a new one after a backoff. Not seen happen; the bound
   * closes the gap (every other publish has its own, PUBLISH_TIMEOUT_MS).
   */
  private async afterConnect(c: MqttClient, sessionPresent: boolean): Promise<void> {
    const bound = this.o.afterConnectMs ?? AFTER_CONNECT_MS;
    let timer: unknown = null;
    const stalled = new Promise<Error>((resolve) => (timer = this.clock.setTimeout(() => resolve(new Error(`not acknowledged within ${bound} ms`)), bound)));
    const announce = async (): Promise<null> => {
      // A present session keeps the subscriptions but the broker sends retained messages
      // only on SUBSCRIBE: after a restart, subscribe again to get the group meeting.
      if (!sessionPresent || !this.subscribedSinceStart) {
        await subscribeAll(c, this.o, this.refusedOptional, this.log);
        this.subscribedSinceStart = true;
      }
      await c.publishAsync(this.o.onlineStatus.topic, this.o.onlineStatus.payload(), { qos: 1, retain: true });
      return null;
    };
    try {
      const stuck = await Promise.race([announce(), stalled]);
      if (stuck) throw stuck;
      if (this.client === c) this.emit('connected', { sessionPresent, protocolVersion: this.protocolVersion });
    } catch (e) {
      // Only a client still connected: a closed one is already on its way back (scheduleReconnect).
      if (this.client !== c || this.stopped || !c.connected) return this.log.warn({ evt: 'mqtt.after_connect_failed', err: (e as Error).message }, 'subscribe/status after connect failed');
      this.log.warn({ evt: 'mqtt.after_connect_failed', err: (e as Error).message, rebuild: true }, 'subscribe/status after connect failed; a new client');
      if (this.reconnectTimer) this.clock.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.attempt++;
      this.rebuild('subscribe/status after connect failed', backoffDelay(this.attempt, this.o.reconnectBaseMs, this.o.reconnectCapMs, this.o.random));
    } finally {
      this.clock.clearTimeout(timer as ReturnType<Clock['setTimeout']>);
    }
  }

  private scheduleReconnect(f: Failure): void {
    if (this.stopped || this.reconnectTimer) return;
    this.attempt++;
    const delay = backoffDelay(this.attempt, this.o.reconnectBaseMs, this.o.reconnectCapMs, this.o.random);
    this.log.info({ evt: 'mqtt.reconnect_scheduled', attempt: this.attempt, delayMs: delay, reason: f.reason }, `reconnecting in ${delay} ms (${f.reason})`);
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = null;
      const c = this.client;
      if (!c || this.stopped) return;
      this.lastProgress = this.clock.now();
      this.newAttempt();
      c.reconnect();
    }, delay);
  }

  private rebuild(reason: string, delayMs: number): void {
    const old = this.client;
    this.client = null;
    if (old) discardClient(old);
    this.emit('rebuilt');
    this.log.warn({ evt: 'mqtt.rebuild', reason }, 'rebuilding the MQTT client');
    const go = (): void => {
      if (!this.stopped) this.build();
    };
    if (delayMs > 0) this.reconnectTimer = this.clock.setTimeout(() => ((this.reconnectTimer = null), go()), delayMs);
    else go();
  }

  private checkWatchdog(bound: number): void {
    this.wd.lastTickAt = this.clock.now();
    // A client ended under the session waits, on a dead link, for a close or a PUBACK that never comes, and MQTT.js defers every reconnect() until then (still `connected` if it sent its DISCONNECT): replaced at once.
    const ended = !this.stopped && this.client?.disconnecting === true;
    if (!ended && (this.stopped || this.connected)) {
      this.lastProgress = this.clock.now();
      return;
    }
    if (ended || this.clock.now() - this.lastProgress > bound) {
      this.lastProgress = this.clock.now();
      if (this.reconnectTimer) this.clock.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.rebuild(ended ? 'the client was ended under the session (its end() waits on a dead link)' : `disconnected for more than ${bound} ms`, 0);
    }
  }
}
