/**
 * The box's MQTT session: TLS with CA / client certificate or username/password;
 * MQTT 5 with a fall back to 3.1.1; last will + retained online status; a persistent
 * session (clean: false) with resubscription when the broker lost it; our own
 * reconnect with capped, jittered exponential backoff (MQTT.js alone retries every 1 s
 * in lockstep); and a watchdog that rebuilds the client if it stays disconnected past
 * a bound (the latched-`disconnecting` bug, MQTT.js#1897).
 *
 * Incoming publishes are acknowledged (PUBACK) only once the handler has accepted
 * them, so a command the agent never recorded is redelivered by the broker.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { backoffDelay, systemClock, type Clock } from '../../lib/index.js';
import { silentLogger, type Logger } from '../../lib/index.js';

export interface MqttSessionOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  keepaliveS: number;
  reconnectBaseMs: number;
  reconnectCapMs: number;
  /** Rebuild the client when disconnected this long without progress. */
  watchdogMs?: number;
  will: { topic: string; payload: () => string };
  /** Published retained on every connect. */
  onlineStatus: { topic: string; payload: () => string };
  subscriptions: string[];
  clock?: Clock;
  logger?: Logger;
  random?: () => number;
  /** Test hook: a factory for the client (default: mqtt.connect). */
  connect?: (url: string, opts: IClientOptions) => MqttClient;
}

export interface IncomingMessage {
  topic: string;
  payload: Buffer;
  responseTopic?: string;
  correlationData?: Buffer;
  retain: boolean;
}

export interface MqttSessionEvents {
  connected: [{ sessionPresent: boolean; protocolVersion: 4 | 5 }];
  offline: [{ reason: string }];
  rebuilt: [];
}

export type MessageHandler = (m: IncomingMessage) => Promise<void>;

const SESSION_EXPIRY_S = 7 * 24 * 3600;
const PUBLISH_TIMEOUT_MS = 30_000;

export class MqttSession extends EventEmitter<MqttSessionEvents> {
  private client: MqttClient | null = null;
  private protocolVersion: 4 | 5 = 5;
  private attempt = 0;
  private reconnectTimer: unknown = null;
  private watchdog: unknown = null;
  private lastProgress = 0;
  private stopped = true;
  /** Subscribed since start(): a new process must subscribe once even to a present session, or it never gets the retained meeting. */
  private subscribedSinceStart = false;
  private tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  private handler: MessageHandler = async () => undefined;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(private readonly o: MqttSessionOptions) {
    super();
    this.clock = o.clock ?? systemClock;
    this.log = (o.logger ?? silentLogger()).child({ module: 'mqtt' });
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  get version(): 4 | 5 {
    return this.protocolVersion;
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
    this.watchdog = this.clock.setInterval(() => this.checkWatchdog(bound), Math.min(5000, bound / 4));
  }

  /** Publishes the offline status (best effort) and closes the session. */
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
      await Promise.race([
        c.publishAsync(this.o.will.topic, offlinePayload, { qos: 1, retain: true }).catch(() => undefined),
        new Promise((r) => setTimeout(r, 1000)),
      ]);
    }
    await new Promise<void>((resolve) => c.end(false, {}, () => resolve()));
    c.removeAllListeners();
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
    const opts: IClientOptions = {
      clientId: o.clientId,
      clean: false,
      protocolVersion: this.protocolVersion,
      keepalive: o.keepaliveS,
      reconnectPeriod: 0, // we reconnect ourselves, with backoff and jitter
      connectTimeout: 15_000,
      resubscribe: false,
      queueQoSZero: false,
      rejectUnauthorized: true,
      will: { topic: o.will.topic, payload: Buffer.from(o.will.payload()), qos: 1, retain: true },
      ...(this.protocolVersion === 5 ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_S } } : {}),
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...this.tls,
    };
    const connect = o.connect ?? ((url: string, co: IClientOptions) => mqtt.connect(url, co));
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
      this.attempt = 0;
      this.lastProgress = this.clock.now();
      const sessionPresent = connack.sessionPresent === true;
      this.log.info({ evt: 'mqtt.connected', sessionPresent, protocolVersion: this.protocolVersion }, 'connected to the broker');
      void this.afterConnect(c, sessionPresent);
    });
    c.on('error', (err: Error & { code?: number | string }) => {
      if (this.client !== c) return;
      if ((err.code === 1 || err.code === 132) && this.protocolVersion === 5) {
        this.log.warn({ evt: 'mqtt.fallback_311' }, 'broker refused MQTT 5; falling back to 3.1.1');
        this.protocolVersion = 4;
        this.rebuild('protocol fallback', 0);
        return;
      }
      this.log.warn({ evt: 'mqtt.error', code: err.code, err: err.message }, 'mqtt error');
    });
    c.on('close', () => {
      if (this.client !== c || this.stopped) return;
      this.emit('offline', { reason: 'closed' });
      this.scheduleReconnect();
    });
  }

  private async afterConnect(c: MqttClient, sessionPresent: boolean): Promise<void> {
    try {
      // A present session keeps the subscriptions but the broker sends retained messages
      // only on SUBSCRIBE: after a restart, subscribe again to get the group meeting.
      if (!sessionPresent || !this.subscribedSinceStart) {
        const granted = await c.subscribeAsync(Object.fromEntries(this.o.subscriptions.map((t) => [t, { qos: 1 as const }])));
        this.subscribedSinceStart = true;
        // 0x80 (3.1.1) and every MQTT 5 reason code from 0x80 up mean refused.
        const refused = granted.filter((g) => g.qos >= 128);
        if (refused.length) this.log.error({ evt: 'mqtt.subscribe_refused', topics: refused.map((g) => g.topic) }, 'the broker refused a subscription (ACL?)');
      }
      await c.publishAsync(this.o.onlineStatus.topic, this.o.onlineStatus.payload(), { qos: 1, retain: true });
      if (this.client === c) this.emit('connected', { sessionPresent, protocolVersion: this.protocolVersion });
    } catch (e) {
      this.log.warn({ evt: 'mqtt.after_connect_failed', err: (e as Error).message }, 'subscribe/status after connect failed');
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    this.attempt++;
    const delay = backoffDelay(this.attempt, this.o.reconnectBaseMs, this.o.reconnectCapMs, this.o.random);
    this.log.info({ evt: 'mqtt.reconnect_scheduled', attempt: this.attempt, delayMs: delay }, `reconnecting in ${delay} ms`);
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = null;
      const c = this.client;
      if (!c || this.stopped) return;
      this.lastProgress = this.clock.now();
      c.reconnect();
    }, delay);
  }

  private rebuild(reason: string, delayMs: number): void {
    const old = this.client;
    this.client = null;
    if (old) {
      old.removeAllListeners();
      old.on('error', () => undefined);
      old.end(true);
    }
    this.emit('rebuilt');
    this.log.warn({ evt: 'mqtt.rebuild', reason }, 'rebuilding the MQTT client');
    const go = (): void => {
      if (!this.stopped) this.build();
    };
    if (delayMs > 0) this.reconnectTimer = this.clock.setTimeout(() => ((this.reconnectTimer = null), go()), delayMs);
    else go();
  }

  private checkWatchdog(bound: number): void {
    if (this.stopped || this.connected) {
      this.lastProgress = this.clock.now();
      return;
    }
    if (this.clock.now() - this.lastProgress > bound) {
      this.lastProgress = this.clock.now();
      if (this.reconnectTimer) this.clock.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.rebuild(`disconnected for more than ${bound} ms`, 0);
    }
  }
}
