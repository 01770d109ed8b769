/**
 * The district hub's side of the control plane, for the agent's integration tests: an
 * operator MQTT client (certificate CN `hub`) that publishes command envelopes with ids,
 * optionally with an MQTT 5 response topic and correlation data, and records everything
 * the boxes send (status, state, health, event, reply, responses) so a test can wait for
 * a reply by id, count replies per id over a grace period, and scan every payload for
 * secrets.
 *
 * Also here: `startBox`, a real Agent wired for these tests (its own temp dataDir, test
 * media sources, recording system/LED fakes, every log line and every media worker's
 * stderr captured), because every agent test needs both sides.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import mqtt, { type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { Agent, type AgentDeps } from '../../../device/agent.js';
import { FakeLeds, FakeSystemActions } from '../../fakes/index.js';
import { LogRing } from '../../../lib/log-ring.js';
import { createLogger } from '../../../lib/log.js';
import { forkSpawner, type WorkerSpawner } from '../../../gst-pipelines/supervisor/worker-process.js';
import type { AgentConfig } from '../../../device/config.js';
import type { Capabilities } from '../../../gst-pipelines/types.js';
import type { ClientTls, Mosquitto } from './mosquitto.js';
import { withTimeout } from './processes.js';

export const PREFIX = 'ep/v1';

export type Kind = 'status' | 'state' | 'health' | 'event' | 'reply' | 'response' | 'other';

export interface HubMessage {
  /** Arrival order at the hub. */
  n: number;
  at: number;
  topic: string;
  deviceId: string | null;
  kind: Kind;
  payload: Buffer;
  text: string;
  /** Parsed JSON, or undefined (empty or not JSON). */
  json: unknown;
  retain: boolean;
  correlationData?: Buffer;
}

export interface Reply {
  id: string;
  deviceId: string;
  command: string;
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string; retryAfterS?: number };
}

export interface BoxEvent {
  seq: number;
  type: string;
  severity: string;
  ts: string;
  detail?: Record<string, unknown>;
}

export interface SendOptions {
  id?: string;
  expiresAt?: string;
  /** The raw payload instead of an envelope (not JSON, oversized, wrong shape…). */
  payload?: string | Buffer;
  /** MQTT 5: ask for the reply on this box's response topic too, with this correlation data. */
  correlationData?: Buffer;
}

export type Target = { device: string } | { group: string };

let idCounter = 0;
export const newId = (prefix = 'c'): string => `${prefix}-${++idCounter}-${randomBytes(3).toString('hex')}`;

function classify(topic: string): { deviceId: string | null; kind: Kind } {
  const p = topic.split('/');
  if (p[0] !== 'ep' || p[1] !== 'v1' || p[2] !== 'dev' || !p[3]) return { deviceId: null, kind: 'other' };
  const k = p[4];
  if (p.length === 5 && (k === 'status' || k === 'state' || k === 'health' || k === 'event' || k === 'reply')) return { deviceId: p[3], kind: k };
  if (p.length === 6 && k === 'reply') return { deviceId: p[3], kind: 'response' };
  return { deviceId: p[3], kind: 'other' };
}

export class HubClient {
  readonly messages: HubMessage[] = [];
  private readonly bus = new EventEmitter();
  private n = 0;

  private constructor(
    readonly client: MqttClient,
    /** The last level of this hub's response topics: `ep/v1/dev/{deviceId}/reply/{responseKey}`. */
    readonly responseKey: string,
  ) {
    this.bus.setMaxListeners(0);
    client.on('message', (topic, payload, packet: IPublishPacket) => {
      const { deviceId, kind } = classify(topic);
      const text = payload.toString();
      let json: unknown;
      try {
        json = text ? (JSON.parse(text) as unknown) : undefined;
      } catch {
        json = undefined;
      }
      const cd = packet.properties?.correlationData;
      const m: HubMessage = { n: ++this.n, at: Date.now(), topic, deviceId, kind, payload, text, json, retain: packet.retain, ...(cd ? { correlationData: Buffer.from(cd) } : {}) };
      this.messages.push(m);
      this.bus.emit('message', m);
    });
  }

  /**
   * Connects as an operator with a persistent session (clean: false), so what the boxes
   * publish while the hub is reconnecting after a broker restart is queued for it.
   */
  static async connect(o: { url: string; tls: ClientTls; clientId?: string; protocolVersion?: 4 | 5 }): Promise<HubClient> {
    const clientId = o.clientId ?? `hub-${randomBytes(3).toString('hex')}`;
    const v = o.protocolVersion ?? 5;
    const client = mqtt.connect(o.url, {
      clientId,
      protocolVersion: v,
      clean: false,
      ...(v === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
      reconnectPeriod: 250,
      connectTimeout: 5000,
      ca: readFileSync(o.tls.caFile),
      cert: readFileSync(o.tls.certFile),
      key: readFileSync(o.tls.keyFile),
    });
    client.on('error', () => undefined);
    const hub = new HubClient(client, clientId);
    await withTimeout(new Promise<void>((resolve) => client.once('connect', () => resolve())), 10_000, `hub ${clientId} to connect`);
    const topics = ['status', 'state', 'health', 'event', 'reply'].map((k) => `${PREFIX}/dev/+/${k}`);
    // Not `reply/#`: it would overlap `reply`, and Mosquitto 2 delivers one copy per matching subscription.
    topics.push(`${PREFIX}/dev/+/reply/${clientId}`);
    const granted = await client.subscribeAsync(Object.fromEntries(topics.map((t) => [t, { qos: 1 as const }])));
    const refused = granted.filter((g) => g.qos >= 128);
    if (refused.length) throw new Error(`hub subscriptions refused: ${refused.map((g) => g.topic).join(', ')}`);
    return hub;
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Resolves at the next (re)connection of the hub's client. */
  nextConnect(ms: number): Promise<void> {
    return withTimeout(new Promise<void>((resolve) => this.client.once('connect', () => resolve())), ms, 'the hub to reconnect');
  }

  responseTopic(deviceId: string): string {
    return `${PREFIX}/dev/${deviceId}/reply/${this.responseKey}`;
  }

  /** Publishes a command (QoS 1) and returns its id once the broker has it (PUBACK). */
  async send(to: Target, command: string, args: Record<string, unknown> = {}, o: SendOptions = {}): Promise<string> {
    const id = o.id ?? newId(command);
    const topic = 'device' in to ? `${PREFIX}/dev/${to.device}/cmd/${command}` : `${PREFIX}/grp/${to.group}/cmd/${command}`;
    const payload = o.payload ?? JSON.stringify({ id, ts: new Date().toISOString(), ...(o.expiresAt ? { expiresAt: o.expiresAt } : {}), args });
    const opts: IClientPublishOptions = { qos: 1 };
    if (o.correlationData) {
      if (!('device' in to)) throw new Error('a response topic is per box: send to a device');
      opts.properties = { responseTopic: this.responseTopic(to.device), correlationData: o.correlationData };
    }
    await this.client.publishAsync(topic, payload, opts);
    return id;
  }

  async publish(topic: string, payload: string | Buffer, opts: IClientPublishOptions = { qos: 1 }): Promise<void> {
    await this.client.publishAsync(topic, payload, opts);
  }

  /** Announces (or with null, clears) the group's retained meeting. */
  async setMeeting(groupId: string, spec: object | null): Promise<void> {
    await this.client.publishAsync(`${PREFIX}/grp/${groupId}/meeting`, spec ? JSON.stringify(spec) : '', { qos: 1, retain: true });
  }

  of(kind: Kind, deviceId?: string): HubMessage[] {
    return this.messages.filter((m) => m.kind === kind && (deviceId === undefined || m.deviceId === deviceId));
  }

  /** Replies (on the reply topic) with this command id, in arrival order. */
  replies(id: string, deviceId?: string): Reply[] {
    return this.of('reply', deviceId)
      .map((m) => m.json as Reply)
      .filter((r) => r?.id === id);
  }

  /** Messages on this hub's response topics carrying this correlation data. */
  responses(correlationData: Buffer): HubMessage[] {
    return this.of('response').filter((m) => m.correlationData?.equals(correlationData));
  }

  events(deviceId: string): BoxEvent[] {
    return this.of('event', deviceId).map((m) => m.json as BoxEvent);
  }

  states(deviceId: string): Array<Record<string, unknown>> {
    return this.of('state', deviceId)
      .map((m) => m.json as Record<string, unknown>)
      .filter(Boolean);
  }

  /** The first message (already here or arriving within `ms`) that satisfies `pred`. */
  waitFor(pred: (m: HubMessage) => boolean, ms: number, what: string): Promise<HubMessage> {
    const have = this.messages.find(pred);
    if (have) return Promise.resolve(have);
    let listener: ((m: HubMessage) => void) | null = null;
    const p = new Promise<HubMessage>((resolve) => {
      listener = (m: HubMessage): void => {
        if (pred(m)) resolve(m);
      };
      this.bus.on('message', listener);
    });
    return withTimeout(p, ms, what).finally(() => {
      if (listener) this.bus.off('message', listener);
    });
  }

  /** The next message satisfying `pred` that arrives after this call. */
  next(pred: (m: HubMessage) => boolean, ms: number, what: string): Promise<HubMessage> {
    const after = this.n;
    return this.waitFor((m) => m.n > after && pred(m), ms, what);
  }

  async reply(id: string, ms = 15_000, deviceId?: string): Promise<Reply> {
    const m = await this.waitFor((x) => x.kind === 'reply' && (x.json as Reply | undefined)?.id === id && (deviceId === undefined || x.deviceId === deviceId), ms, `a reply to ${id}`);
    return m.json as Reply;
  }

  /**
   * Every reply to `id` that arrives until `graceMs` after the first (the first within
   * `ms`). "Exactly one reply" means this returns one element.
   */
  async repliesAfterGrace(id: string, o: { ms?: number; graceMs?: number; deviceId?: string } = {}): Promise<Reply[]> {
    await this.reply(id, o.ms ?? 15_000, o.deviceId);
    await new Promise((r) => setTimeout(r, o.graceMs ?? 750));
    return this.replies(id, o.deviceId);
  }

  /** Waits for a retained/live state of `deviceId` satisfying `pred` (arrived after message number `since`). */
  async waitState(deviceId: string, pred: (s: Record<string, unknown>) => boolean, ms: number, since = 0): Promise<Record<string, unknown>> {
    const m = await this.waitFor((x) => x.n > since && x.kind === 'state' && x.deviceId === deviceId && x.json !== undefined && pred(x.json as Record<string, unknown>), ms, `state of ${deviceId}`);
    return m.json as Record<string, unknown>;
  }

  /** The message number of the last message so far (for `since`). */
  mark(): number {
    return this.n;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }
}

// ───────────────────────────── boxes ─────────────────────────────

/** A Writable that keeps every line written to it (pino's JSON lines). */
export class LineCapture extends Writable {
  readonly lines: string[] = [];
  private partial = '';

  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const parts = (this.partial + chunk.toString()).split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) if (p) this.lines.push(p);
    cb();
  }

  /** Parsed log records with this `evt`. */
  records(evt: string): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const l of this.lines) {
      if (!l.includes(evt)) continue;
      try {
        const r = JSON.parse(l) as Record<string, unknown>;
        if (r.evt === evt) out.push(r);
      } catch {
        // not JSON: not a record
      }
    }
    return out;
  }

  text(): string {
    return this.lines.join('\n') + (this.partial ? `\n${this.partial}` : '');
  }
}

/**
 * The real media worker, forked by forkSpawner() with its stderr captured: on a box it
 * goes to journald like any log line.
 */
export function capturingSpawner(stderr: LineCapture): WorkerSpawner {
  return forkSpawner({ stderr: 'pipe', onStderr: (d) => stderr.write(d) });
}

export interface BoxOptions {
  deviceId: string;
  groupId: string;
  broker: Mosquitto;
  caps: Capabilities;
  /** Reuse a dataDir (a restarted box); default a new temp dir. */
  dataDir?: string;
  /** Authenticate with username (= deviceId) and password on the password listener instead of a certificate. */
  password?: string;
  mqtt?: Partial<Pick<AgentConfig['mqtt'], 'keepaliveS' | 'reconnectBaseMs' | 'reconnectCapMs'>>;
  healthPeriodS?: number;
  /** Dial this instead of the broker (a relay in front of it; `mqtts://127.0.0.1:…` verifies: the certificate names IP 127.0.0.1), and these boundaries instead of the real worker / mqtt.connect. */
  via?: { mqttUrl?: string; deps?: Pick<AgentDeps, 'spawner' | 'mqttConnect'> };
}

/** A real agent on the test broker: test media sources, the kit's fakes for LEDs and systemctl, everything it logs captured. */
export class TestBox {
  readonly logs = new LineCapture();
  readonly workerStderr = new LineCapture();
  readonly system = new FakeSystemActions();
  readonly leds = new FakeLeds();
  readonly agent: Agent;
  private stopped = false;

  private constructor(
    readonly config: AgentConfig,
    caps: Capabilities,
    private ownsDataDir: boolean,
    private readonly via: BoxOptions['via'] = {},
  ) {
    const ring = new LogRing();
    const logger = createLogger({
      level: config.log.level,
      destination: pino.multistream([
        { stream: this.logs, level: 'trace' },
        { stream: ring, level: 'trace' },
      ]),
    });
    this.agent = new Agent({ config, version: '0.1.0-test', logger, logRing: ring, caps, system: this.system, leds: this.leds, spawner: capturingSpawner(this.workerStderr), ...via?.deps });
  }

  get deviceId(): string {
    return this.config.deviceId;
  }

  /** Builds and starts a box (its own temp dataDir unless one is given). */
  static async start(o: BoxOptions): Promise<TestBox> {
    const dataDir = o.dataDir ?? (await mkdtemp(path.join(tmpdir(), `ep-box-${o.deviceId}-`)));
    const tls = o.broker.tls(o.deviceId);
    const config: AgentConfig = {
      deviceId: o.deviceId,
      groupId: o.groupId,
      name: `Xã ${o.deviceId}`,
      mqtt: {
        url: o.via?.mqttUrl ?? (o.password ? o.broker.passwordUrl : o.broker.url),
        ...(o.password ? { username: o.deviceId, password: o.password, caFile: tls.caFile } : tls),
        keepaliveS: o.mqtt?.keepaliveS ?? 10,
        reconnectBaseMs: o.mqtt?.reconnectBaseMs ?? 500,
        reconnectCapMs: o.mqtt?.reconnectCapMs ?? 4000,
      },
      dataDir,
      media: { source: 'test', volume: 1, micMuted: false, aec: false },
      health: { periodS: o.healthPeriodS ?? 30 },
      log: { level: 'info' },
    };
    const box = new TestBox(config, o.caps, o.dataDir === undefined, o.via);
    await box.agent.start();
    return box;
  }

  /** The same box started again: a new Agent on the same config and dataDir (a reboot). */
  async restart(caps: Capabilities): Promise<TestBox> {
    await this.stop();
    const next = new TestBox(this.config, caps, this.ownsDataDir, this.via);
    this.ownsDataDir = false;
    await next.agent.start();
    return next;
  }

  /** Stops the agent (idempotent). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.agent.stop();
  }

  /** Stops the agent and removes its dataDir if this box made it (and did not hand it on). */
  async dispose(): Promise<void> {
    await this.stop();
    if (this.ownsDataDir) await rm(this.config.dataDir, { recursive: true, force: true });
  }
}
