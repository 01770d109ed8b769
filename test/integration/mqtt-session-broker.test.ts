/**
 * The MQTT session against a real Mosquitto, below the agent (issue 13, point 1): a box
 * that publishes to a topic with a wildcard (`x/+/y`, e.g. a hub's bad MQTT 5 response
 * topic) is disconnected by the broker for a protocol error. The session must reconnect,
 * fail that publish at once, and stop() must still end: MQTT.js's `end()` waits for every
 * in-flight PUBACK (`outgoingEmpty`) and the lost publish's never comes (MQTT.js#952),
 * which is how `ep run` once kept running 90 s after SIGTERM.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { MqttSession, type MqttSessionEvents } from '../../device/mqtt/session.js';
import { createLogger } from '../../lib/log.js';
import { LineCapture } from './helpers/hub-client.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { pollUntil, withTimeout } from './helpers/processes.js';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';

const BOX = 'box-wild';
const GROUP = 'grp-wild';
const STATUS = `ep/v1/dev/${BOX}/status`;
/** Hang guards: stop() ends within ~1 s (offline status) + 2 s (grace) when it works; it never ends when it does not. */
const STOP_GUARD_MS = 20_000;
const PASSWORD = 'wild-pw-9d';

let broker: Mosquitto;
const sessions: MqttSession[] = [];
let logs: LineCapture;

beforeAll(async () => {
  broker = await Mosquitto.start({ devices: { [BOX]: GROUP }, passwords: { [BOX]: PASSWORD } });
}, 60_000);

afterAll(async () => {
  await broker?.stop();
}, 30_000);

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') {
    console.error(`--- session log ---\n${logs.lines.slice(-40).join('\n')}`);
    console.error(`--- mosquitto ---\n${broker.output().slice(-3000)}`);
  }
  // Whatever happened, do not leave a session reconnecting (a stop() that hangs is the bug: do not wait for it).
  for (const s of sessions.splice(0)) void s.stop().catch(() => undefined);
  if (broker.pid !== null) process.kill(broker.pid, 'SIGCONT');
});

function session(o: { reconnectBaseMs: number; url?: string; auth?: Partial<{ caFile: string; certFile: string; keyFile: string; username: string; password: string }> }): MqttSession {
  logs = new LineCapture();
  const s = new MqttSession({
    url: o.url ?? broker.url,
    clientId: BOX,
    ...(o.auth ?? broker.tls(BOX)),
    keepaliveS: 10,
    reconnectBaseMs: o.reconnectBaseMs,
    reconnectCapMs: Math.max(1000, o.reconnectBaseMs),
    will: { topic: STATUS, payload: () => '{"online":false,"will":true}' },
    onlineStatus: { topic: STATUS, payload: () => '{"online":true}' },
    subscriptions: [`ep/v1/dev/${BOX}/cmd/+`],
    logger: createLogger({ level: 'debug', destination: pino.multistream([{ stream: logs, level: 'debug' }]) }),
  });
  sessions.push(s);
  return s;
}

function next<K extends keyof MqttSessionEvents>(s: MqttSession, evt: K, what: string, ms = 20_000): Promise<MqttSessionEvents[K][0]> {
  return withTimeout(new Promise((resolve) => s.once(evt, ((v: MqttSessionEvents[K][0]) => resolve(v)) as never)), ms, what);
}

/** Publishes to `x/+/y` and waits for the broker to drop the box for it. */
async function provokeDisconnect(s: MqttSession): Promise<{ publish: Promise<string>; reason: string }> {
  const offline = next(s, 'offline', 'the broker to disconnect the box');
  const publish = s.publish('x/+/y', 'poison', { qos: 1 }).then(
    () => 'acknowledged',
    (e: unknown) => (e as Error).message,
  );
  const { reason } = await offline;
  // Mosquitto 2: "Client box-wild disconnected due to malformed packet." (a topic with a wildcard is not a topic name)
  expect(broker.output()).toMatch(new RegExp(`Client ${BOX} disconnected due to (malformed packet|protocol error)`));
  return { publish, reason };
}

describe('MqttSession and a publish to a wildcard topic (real Mosquitto)', () => {
  it('is disconnected by the broker, reconnects, fails that publish, and stop() ends cleanly afterwards', async () => {
    const s = session({ reconnectBaseMs: 300 });
    const up = next(s, 'connected', 'the first connection');
    await s.start();
    await up;
    const back = next(s, 'connected', 'the reconnection');
    const { publish, reason } = await provokeDisconnect(s);
    await back;
    expect(s.connected).toBe(true);
    await withTimeout(s.stop('{"online":false,"clean":true}'), STOP_GUARD_MS, 'stop() to end after the disconnect (it hung: end() waited for a PUBACK that never comes)');
    expect(reason).toBe('connection_lost');
    // Nothing in flight survives our reconnect (fresh stores): the publish failed, it was not left waiting for its 30 s timeout.
    expect(await withTimeout(publish, 10_000, 'the wildcard publish to settle')).not.toBe('acknowledged');
    expect(logs.records('mqtt.inflight_failed').length).toBeGreaterThanOrEqual(1);
    // A clean end: the DISCONNECT went out, nothing had to be forced.
    expect(logs.records('mqtt.end_forced')).toEqual([]);
    await withTimeout(
      (async () => {
        while (!broker.output().includes(`Client ${BOX} disconnected.`)) await new Promise((r) => setTimeout(r, 50));
      })(),
      10_000,
      'mosquitto to log the clean disconnect',
    );
  }, 60_000);

  it('stop() while disconnected with that publish in flight ends at once', async () => {
    // A long backoff: stop() runs while the session is offline, before any reconnect.
    const s = session({ reconnectBaseMs: 30_000 });
    const up = next(s, 'connected', 'the first connection');
    await s.start();
    await up;
    const { publish } = await provokeDisconnect(s);
    expect(s.connected).toBe(false);
    await withTimeout(s.stop('{"online":false}'), STOP_GUARD_MS, 'stop() to end while disconnected (it hung: end() waited for the lost PUBACK)');
    expect(await withTimeout(publish, 10_000, 'the wildcard publish to settle')).not.toBe('acknowledged');
    expect(logs.records('mqtt.end_forced')).toEqual([]);
  }, 60_000);

  it('stop() against a hung broker (SIGSTOP, connection open, no PUBACK) ends within its grace, forcing the socket closed', async () => {
    const s = session({ reconnectBaseMs: 1000 });
    const up = next(s, 'connected', 'the first connection');
    await s.start();
    await up;
    const pid = broker.pid;
    expect(pid).not.toBeNull();
    process.kill(pid!, 'SIGSTOP');
    try {
      const publish = s.publish(`ep/v1/dev/${BOX}/event`, '{"seq":1}', { qos: 1 }).then(
        () => 'acknowledged',
        (e: unknown) => (e as Error).message,
      );
      expect(s.connected).toBe(true); // the TCP connection is open; the broker just does not answer
      await withTimeout(s.stop('{"online":false}'), STOP_GUARD_MS, 'stop() to end against a hung broker');
      const forced = logs.records('mqtt.end_forced');
      expect(forced).toHaveLength(1);
      expect(forced[0]).toMatchObject({ graceMs: 2000, inflight: 2 }); // the event and the offline status, neither acknowledged
      void publish;
    } finally {
      process.kill(pid!, 'SIGCONT');
    }
  }, 60_000);

  it('a failed attempt says why, from the real failures: refused port, unknown name, untrusted certificate, wrong password', async () => {
    const tls = broker.tls(BOX);
    const cases = [
      { url: `mqtts://127.0.0.1:${await freePort()}`, auth: tls, reason: 'connection_refused', code: 'ECONNREFUSED' },
      { url: 'mqtts://no-such-hub.invalid:8883', auth: tls, reason: 'dns' },
      // The box's own certificate as the CA: the broker's certificate does not verify.
      { url: broker.url, auth: { ...tls, caFile: tls.certFile }, reason: 'tls' },
      // Mosquitto 2.0.11 answers a wrong password with 0x87 "not authorized" (not 0x86).
      { url: broker.passwordUrl, auth: { caFile: broker.caFile, username: BOX, password: 'not-the-password' }, reason: 'auth', code: 135 },
    ];
    for (const c of cases) {
      const s = session({ reconnectBaseMs: 60_000, url: c.url, auth: c.auth });
      await s.start();
      await pollUntil(() => logs.records('mqtt.connect_failed').length > 0, 30_000, `a failed attempt to be logged (${c.reason})`);
      await withTimeout(s.stop(), STOP_GUARD_MS, 'stop()');
      const [failed] = logs.records('mqtt.connect_failed');
      expect(failed, c.reason).toMatchObject({ reason: c.reason, protocolVersion: 5, ...(c.code !== undefined ? { code: c.code } : {}) });
      expect(logs.records('mqtt.reconnect_scheduled')[0]).toMatchObject({ reason: c.reason });
      expect(logs.text()).not.toContain('not-the-password');
    }
  }, 120_000);
});
