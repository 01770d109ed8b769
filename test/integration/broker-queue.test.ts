/**
 * Why docs/agent.md ("Broker settings a hub must use") asks for a larger
 * `max_queued_messages`: Mosquitto keeps at most that many QoS 1 messages per client
 * beyond the ones in flight (default 1000) and drops the rest, silently for the
 * publisher (the hub got its PUBACK). A box that is offline, or online but still working
 * through a burst (it acknowledges a command only once it has recorded it), loses every
 * command past that queue.
 *
 * The burst: 5,000 commands for one box whose persistent session is offline; then the box
 * reconnects and counts what it gets. A fence (one more command, published once the box
 * has received the first 1,000, when the queue has room again) marks the end: everything
 * the broker kept arrives before it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from './helpers/mosquitto.js';
import { pollUntil, withTimeout } from './helpers/processes.js';

const BOX = 'box-queue';
const GROUP = 'grp-queue';
const BURST = 5000;
const CMD = `ep/v1/dev/${BOX}/cmd`;

function client(broker: Mosquitto, name: string, clientId: string): MqttClient {
  const t = broker.tls(name);
  const c = mqtt.connect(broker.url, {
    clientId,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
    reconnectPeriod: 0,
    ca: readFileSync(t.caFile),
    cert: readFileSync(t.certFile),
    key: readFileSync(t.keyFile),
  });
  c.on('error', () => undefined);
  return c;
}

const connected = (c: MqttClient, what: string): Promise<void> => withTimeout(new Promise<void>((r) => c.once('connect', () => r())), 20_000, what);

/** Publishes the burst while the box is offline; returns how many commands the box then received before the fence. */
async function burst(broker: Mosquitto): Promise<number> {
  // The box's persistent session and subscription, then the box goes away.
  let box = client(broker, BOX, BOX);
  await connected(box, 'the box to connect');
  await box.subscribeAsync(`${CMD}/+`, { qos: 1 });
  await box.endAsync();

  const hub = client(broker, 'hub', `hub-${randomBytes(3).toString('hex')}`);
  try {
    await connected(hub, 'the hub to connect');
    const sends: Array<Promise<unknown>> = [];
    for (let i = 0; i < BURST; i++) sends.push(hub.publishAsync(`${CMD}/identify`, JSON.stringify({ id: `q-${i}`, args: { seconds: 1 } }), { qos: 1 }));
    await withTimeout(Promise.all(sends), 60_000, 'the broker to take the burst (PUBACK for each)');

    let got = 0;
    let fence = false;
    box = client(broker, BOX, BOX);
    box.on('message', (topic) => {
      if (topic.endsWith('/fence')) fence = true;
      else if (!fence) got++;
    });
    await connected(box, 'the box to reconnect');
    // Even the default keeps 1,000 (+ those in flight): once they are in, the queue has room for the fence.
    await pollUntil(() => got >= 1000, 60_000, 'the first 1,000 commands');
    await hub.publishAsync(`${CMD}/fence`, '{}', { qos: 1 });
    await pollUntil(() => fence, 60_000, 'the fence');
    await box.endAsync();
    return got;
  } finally {
    await hub.endAsync(true).catch(() => undefined);
    await box.endAsync(true).catch(() => undefined);
  }
}

describe.each([
  ['Mosquitto defaults (max_queued_messages 1000)', [] as string[], 'drops'],
  ['the settings docs/agent.md asks for', ['max_queued_messages 10000', 'max_queued_bytes 67108864', 'max_inflight_messages 20'], 'keeps'],
] as const)('a burst of 5,000 commands for an offline box, %s', (_what, extraConfig, expectation) => {
  let broker: Mosquitto;
  beforeAll(async () => {
    broker = await Mosquitto.start({ devices: { [BOX]: GROUP }, extraConfig: [...extraConfig] });
  }, 60_000);
  afterAll(async () => {
    await broker?.stop();
  }, 30_000);

  it(`${expectation} commands past the queue`, async () => {
    const got = await burst(broker);
    const dropNotice = broker.output().includes(`Outgoing messages are being dropped for client ${BOX}`);
    console.info('burst', { extraConfig, sent: BURST, received: got, lost: BURST - got, dropNotice });
    if (expectation === 'drops') {
      // 1,000 queued + at most the 20 in flight; the rest is gone, and the hub was never told.
      expect(got).toBeGreaterThanOrEqual(1000);
      expect(got).toBeLessThanOrEqual(1000 + 20);
      expect(dropNotice).toBe(true);
    } else {
      expect(got).toBe(BURST);
      expect(dropNotice).toBe(false);
    }
  }, 180_000);
});
