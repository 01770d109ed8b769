import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MqttSession } from '../../device/mqtt/session.js';
import type { MqttClient } from 'mqtt';
import { FakeMqttClient } from '../fakes/index.js';

describe('MqttSession', () => {
  let clients: FakeMqttClient[];
  let session: MqttSession;
  let rnd: number;

  beforeEach(async () => {
    vi.useFakeTimers();
    clients = [];
    rnd = 1;
    session = new MqttSession({
      url: 'mqtts://broker:8883',
      clientId: 'cam-thanh',
      keepaliveS: 30,
      reconnectBaseMs: 1000,
      reconnectCapMs: 8000,
      watchdogMs: 60_000,
      will: { topic: 'ep/v1/dev/cam-thanh/status', payload: () => '{"online":false}' },
      onlineStatus: { topic: 'ep/v1/dev/cam-thanh/status', payload: () => '{"online":true}' },
      subscriptions: ['ep/v1/dev/cam-thanh/cmd/+', 'ep/v1/grp/camlo/meeting'],
      random: () => rnd,
      connect: (_url, opts) => {
        const c = new FakeMqttClient(opts);
        clients.push(c);
        return c as unknown as MqttClient;
      },
    });
    await session.start();
  });
  afterEach(async () => {
    await session.stop();
    vi.useRealTimers();
  });

  it('connects with a persistent MQTT 5 session, a retained last will, and no MQTT.js auto-reconnect', () => {
    const o = clients[0]!.opts;
    expect(o).toMatchObject({ clientId: 'cam-thanh', clean: false, protocolVersion: 5, reconnectPeriod: 0, properties: { sessionExpiryInterval: 604800 } });
    expect(o.will).toMatchObject({ topic: 'ep/v1/dev/cam-thanh/status', qos: 1, retain: true });
  });

  it('subscribes when the broker lost the session and after each start, publishes the retained online status', async () => {
    clients[0]!.connack(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(clients[0]!.subscribed).toHaveLength(1); // first connect of this process: subscribe even to a present session
    expect(clients[0]!.published).toEqual([{ topic: 'ep/v1/dev/cam-thanh/status', payload: '{"online":true}', retain: true }]);
    clients[0]!.drop();
    await vi.advanceTimersByTimeAsync(1000);
    clients[0]!.connack(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(clients[0]!.subscribed).toHaveLength(1); // session kept: no resubscribe
    clients[0]!.drop();
    await vi.advanceTimersByTimeAsync(1000);
    clients[0]!.connack(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(clients[0]!.subscribed).toHaveLength(2); // broker lost it: resubscribe
  });

  it('reconnects with capped exponential backoff and jitter', async () => {
    clients[0]!.connack();
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      clients[0]!.drop();
      const before = clients[0]!.reconnects;
      let waited = 0;
      while (clients[0]!.reconnects === before && waited < 20_000) {
        await vi.advanceTimersByTimeAsync(50);
        waited += 50;
      }
      delays.push(waited);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 8000]);
    rnd = 0;
    clients[0]!.drop();
    await vi.advanceTimersByTimeAsync(3999);
    const r = clients[0]!.reconnects;
    await vi.advanceTimersByTimeAsync(2);
    expect(clients[0]!.reconnects).toBe(r + 1); // 50 % of the 8 s step
  });

  it('falls back to MQTT 3.1.1 when the broker refuses version 5', async () => {
    clients[0]!.emit('error', Object.assign(new Error('Unsupported Protocol Version'), { code: 132 }));
    expect(clients).toHaveLength(2);
    expect(clients[0]!.ended).toBe(true);
    expect(clients[1]!.opts.protocolVersion).toBe(4);
    expect(clients[1]!.opts.properties).toBeUndefined();
  });

  it('rebuilds a client that stays disconnected without progress (latched disconnecting)', async () => {
    clients[0]!.connack();
    clients[0]!.connected = false; // the link died but MQTT.js never emits close
    await vi.advanceTimersByTimeAsync(59_000);
    expect(clients).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(clients).toHaveLength(2);
    expect(clients[0]!.ended).toBe(true);
  });
});
