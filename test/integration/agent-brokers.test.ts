/**
 * The agent's broker-level behaviours against two real brokers (issue 13, point 13):
 * Mosquitto 2 (MQTT 5) and RabbitMQ 3.10's MQTT plugin (Debian 12's `rabbitmq-server`:
 * 3.1.1 only, and it closes an MQTT 5 CONNECT instead of refusing it). For each, the real
 * `ep run` (the built CLI, a child process) with a username/password:
 *
 * - reaches the broker with the protocol version left to it: MQTT 5 on Mosquitto; on
 *   RabbitMQ two MQTT 5 attempts closed before CONNACK (each logged with its reason),
 *   then 3.1.1 for good — before the fix it retried MQTT 5 forever;
 * - publishes its retained online status, gets the group's retained meeting (published
 *   before it started) and joins it, answers a command exactly once;
 * - leaves its last will (offline, retained) when SIGKILLed;
 * - with `mqtt.protocolVersion: 4` connects at the first attempt.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../../device/cli/run.js';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Processes, pollUntil, withTimeout, type Proc } from './helpers/processes.js';
import { RabbitMq } from './helpers/rabbitmq.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');
const BOX = 'box-brk';
const GROUP = 'grp-brk';
const BOX_PASSWORD = 'box-brk-pw-7q';
const HUB_PASSWORD = 'hub-pw-3k';

/** What the test needs of a broker, whichever it is. */
interface BrokerUnderTest {
  name: string;
  /** The box's mqtt config (password authentication). */
  boxMqtt: Record<string, unknown>;
  /** Connects the hub (an operator client). */
  hub(): MqttClient;
  /** The version the box should end up on when left to choose. */
  expectVersion: 4 | 5;
  /** The CONNACK code for a wrong password. */
  authCode: number;
  output(): string;
  stop(): Promise<void>;
}

async function mosquitto(): Promise<BrokerUnderTest> {
  const b = await Mosquitto.start({ devices: { [BOX]: GROUP }, passwords: { [BOX]: BOX_PASSWORD } });
  return {
    name: 'mosquitto',
    boxMqtt: { url: b.passwordUrl, username: BOX, password: BOX_PASSWORD, caFile: b.caFile },
    hub: () => {
      const t = b.tls('hub');
      return mqtt.connect(b.url, { protocolVersion: 5, clientId: `hub-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 250, ca: readFileSync(t.caFile), cert: readFileSync(t.certFile), key: readFileSync(t.keyFile) });
    },
    expectVersion: 5,
    authCode: 135, // Mosquitto 2.0.11: "not authorized" (MQTT 5)
    output: () => b.output(),
    stop: () => b.stop(),
  };
}

async function rabbitmq(): Promise<BrokerUnderTest> {
  const b = await RabbitMq.start({ users: { [BOX]: BOX_PASSWORD, hub: HUB_PASSWORD } });
  return {
    name: 'rabbitmq',
    boxMqtt: { url: b.url, username: BOX, password: BOX_PASSWORD },
    hub: () => mqtt.connect(b.url, { protocolVersion: 4, clientId: `hub-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 250, username: 'hub', password: HUB_PASSWORD }),
    expectVersion: 4,
    authCode: 4, // 3.1.1: bad user name or password
    output: () => b.output(),
    stop: async () => {
      await b.stop();
      expect(await b.leftovers(), 'no RabbitMQ process outlives its stop').toEqual([]);
    },
  };
}

interface Msg {
  n: number;
  topic: string;
  json: Record<string, unknown> | null;
  retain: boolean;
}

/** The hub's side: everything the box publishes, in arrival order. */
class Hub {
  readonly msgs: Msg[] = [];
  private n = 0;
  constructor(readonly client: MqttClient) {
    client.on('error', () => undefined);
    client.on('message', (topic, payload, packet) => {
      let json: Record<string, unknown> | null;
      try {
        json = payload.length ? (JSON.parse(payload.toString()) as Record<string, unknown>) : null;
      } catch {
        json = null;
      }
      this.msgs.push({ n: ++this.n, topic, json, retain: packet.retain });
    });
  }
  static async connect(b: BrokerUnderTest): Promise<Hub> {
    const h = new Hub(b.hub());
    await withTimeout(new Promise<void>((r) => h.client.once('connect', () => r())), 20_000, `the hub to connect to ${b.name}`);
    const granted = await h.client.subscribeAsync(['status', 'state', 'reply', 'event'].map((k) => `ep/v1/dev/${BOX}/${k}`), { qos: 1 });
    expect(granted.every((g) => g.qos < 128), 'hub subscriptions granted').toBe(true);
    return h;
  }
  mark(): number {
    return this.n;
  }
  async waitFor(pred: (m: Msg) => boolean, what: string, ms = 30_000): Promise<Msg> {
    let found: Msg | undefined;
    await pollUntil(() => (found = this.msgs.find(pred)) !== undefined, ms, what);
    return found!;
  }
}

const meetingSpec = async (id: string): Promise<object> => ({
  meetingId: id,
  title: 'Giao ban',
  // Nobody listens there: this test is about the broker delivering the meeting, not media.
  send: { url: `srt://127.0.0.1:${await freePort()}`, streamId: 'publish:brk/{deviceId}', video: { width: 320, height: 180, fps: 15, bitrateKbps: 300 }, audio: { bitrateKbps: 32 } },
  receive: { url: `srt://127.0.0.1:${await freePort()}`, streamId: 'read:brk/program' },
});

const records = (p: Proc, evt: string): Array<Record<string, unknown>> =>
  p
    .output()
    .split('\n')
    .filter((l) => l.includes(`"evt":"${evt}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe.each([
  ['mosquitto', mosquitto],
  ['rabbitmq', rabbitmq],
])('the agent on %s', (_name, startBroker) => {
  const procs = new Processes();
  let broker: BrokerUnderTest;
  let hub: Hub;
  let dir: string;
  let agent: Proc | null = null;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ep-brokers-'));
    broker = await startBroker();
    hub = await Hub.connect(broker);
  }, 120_000);

  afterEach((ctx) => {
    if (ctx.task.result?.state !== 'fail') return;
    console.error(`--- ep run (last 6000 chars) ---\n${agent?.output().slice(-6000)}`);
    console.error(`--- ${broker.name} (last 4000 chars) ---\n${broker.output().slice(-4000)}`);
  });

  afterAll(async () => {
    await procs.killAll();
    await hub?.client.endAsync(true).catch(() => undefined);
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  }, 90_000);

  async function startAgent(extra: Record<string, unknown> = {}): Promise<Proc> {
    const dataDir = await mkdtemp(path.join(dir, 'data-'));
    const cfg = path.join(dir, `config-${Date.now()}.json`);
    const mqttCfg = { ...broker.boxMqtt, keepaliveS: 10, reconnectBaseMs: 300, reconnectCapMs: 2000, ...extra };
    await writeFile(cfg, JSON.stringify({ deviceId: BOX, groupId: GROUP, name: 'Xã Thử', mqtt: mqttCfg, dataDir, media: { source: 'test', aec: false }, health: { periodS: 3600 }, log: { level: 'info' } }));
    agent = procs.spawn(`ep run (${broker.name})`, process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', cfg]);
    return agent;
  }

  const online = (since: number): Promise<Msg> => hub.waitFor((m) => m.n > since && m.topic.endsWith('/status') && m.json?.online === true, `${BOX} online`, 60_000);

  it('finds its protocol version, goes online, joins the retained group meeting, answers a command exactly once', async () => {
    await hub.client.publishAsync(`ep/v1/grp/${GROUP}/meeting`, JSON.stringify(await meetingSpec('brk-mtg-1')), { qos: 1, retain: true });
    const since = hub.mark();
    const p = await startAgent();
    await online(since);
    const connected = records(p, 'mqtt.connected');
    expect(connected).toHaveLength(1);
    expect(connected[0]).toMatchObject({ protocolVersion: broker.expectVersion });
    const failed = records(p, 'mqtt.connect_failed');
    if (broker.expectVersion === 4) {
      // RabbitMQ 3.10: each MQTT 5 CONNECT closed without a CONNACK (a clean close; a reset would count the same), said so, then 3.1.1.
      expect(failed).toHaveLength(2);
      for (const r of failed) expect(r).toMatchObject({ reason: expect.stringMatching(/^(closed_before_connack|network)$/), protocolVersion: 5 });
      expect(records(p, 'mqtt.fallback_311')).toHaveLength(1);
    } else {
      expect(failed).toEqual([]);
      expect(records(p, 'mqtt.fallback_311')).toEqual([]);
    }
    expect(p.output()).not.toContain(BOX_PASSWORD);

    // The retained meeting, published before the box started, reached it.
    await hub.waitFor((m) => m.n > since && m.topic.endsWith('/state') && (m.json?.meeting as { id?: string } | null)?.id === 'brk-mtg-1', 'the box to take up the retained meeting');
    expect(records(p, 'meeting.join_failed')).toEqual([]);

    const id = `brk-identify-${Date.now()}`;
    await hub.client.publishAsync(`ep/v1/dev/${BOX}/cmd/identify`, JSON.stringify({ id, ts: new Date().toISOString(), args: { seconds: 1 } }), { qos: 1 });
    const reply = await hub.waitFor((m) => m.topic.endsWith('/reply') && m.json?.id === id, `a reply to ${id}`);
    expect(reply.json).toMatchObject({ id, ok: true, command: 'identify' });
    // "Exactly one": a negative window after the first, which can only miss a late duplicate.
    await new Promise((r) => setTimeout(r, 750));
    expect(hub.msgs.filter((m) => m.topic.endsWith('/reply') && m.json?.id === id)).toHaveLength(1);

    await hub.client.publishAsync(`ep/v1/grp/${GROUP}/meeting`, '', { qos: 1, retain: true });
    await hub.waitFor((m) => m.n > reply.n && m.topic.endsWith('/state') && m.json?.meeting === null, 'the box to leave the cleared meeting');
  }, 180_000);

  it('SIGKILLed, it leaves its last will: offline, retained', async () => {
    const p = agent!;
    expect(p.running()).toBe(true);
    const since = hub.mark();
    p.child.kill('SIGKILL');
    await withTimeout(p.exited, 15_000, 'ep run to die');
    const will = await hub.waitFor((m) => m.n > since && m.topic.endsWith('/status') && m.json?.online === false, 'the last will');
    expect(will.json).toMatchObject({ online: false });
    // Retained: a client subscribing now gets it.
    const late = broker.hub();
    try {
      const got = new Promise<Record<string, unknown>>((resolve) => late.on('message', (_t, payload, packet) => packet.retain && resolve(JSON.parse(payload.toString()) as Record<string, unknown>)));
      late.on('error', () => undefined);
      await withTimeout(new Promise<void>((r) => late.once('connect', () => r())), 20_000, 'a second hub client to connect');
      await late.subscribeAsync(`ep/v1/dev/${BOX}/status`, { qos: 1 });
      expect(await withTimeout(got, 20_000, 'the retained status')).toMatchObject({ online: false });
    } finally {
      await late.endAsync(true).catch(() => undefined);
    }
  }, 60_000);

  it('with mqtt.protocolVersion 4 in its config, connects at the first attempt and stops cleanly on SIGTERM', async () => {
    const since = hub.mark();
    const p = await startAgent({ protocolVersion: 4 });
    await online(since);
    expect(records(p, 'mqtt.connected')).toEqual([expect.objectContaining({ protocolVersion: 4 })]);
    expect(records(p, 'mqtt.connect_failed')).toEqual([]);
    p.child.kill('SIGTERM');
    expect(await withTimeout(p.exited, 30_000, 'ep run to exit after SIGTERM')).toEqual({ code: 0, signal: null });
    expect(records(p, 'agent.stop_timeout')).toEqual([]);
    await hub.waitFor((m) => m.n > since && m.topic.endsWith('/status') && m.json?.online === false, 'the offline status');
  }, 120_000);

  it('with a wrong password, logs each failed attempt as auth (never the password) and still stops on SIGTERM', async () => {
    const p = await startAgent({ password: 'not-the-password-x1' });
    await pollUntil(() => records(p, 'mqtt.connect_failed').some((r) => r.reason === 'auth'), 60_000, 'an auth failure to be logged', () => (p.running() ? null : 'ep run exited'));
    const auth = records(p, 'mqtt.connect_failed').filter((r) => r.reason === 'auth');
    expect(auth[0]).toMatchObject({ code: broker.authCode, protocolVersion: broker.expectVersion });
    expect(p.output()).not.toContain('not-the-password-x1');
    p.child.kill('SIGTERM');
    expect(await withTimeout(p.exited, 30_000, 'ep run to exit after SIGTERM')).toEqual({ code: 0, signal: null });
  }, 120_000);
});
