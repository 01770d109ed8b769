import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Writable } from 'node:stream';
import { MqttSession } from '../../device/mqtt/session.js';
import type { IClientOptions, MqttClient } from 'mqtt';
import { createLogger } from '../../lib/log.js';
import { FakeMqttClient } from '../fakes/index.js';
import { sessionOnFakes } from './helpers/mqtt-session.js';

describe('MqttSession', () => {
  let clients: FakeMqttClient[];
  let session: MqttSession;
  let rnd: number;

  beforeEach(async () => {
    vi.useFakeTimers();
    rnd = 1;
    ({ session, clients } = sessionOnFakes(() => rnd));
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

  it("an extension's topic in a SUBSCRIBE of its own: refused by an older ACL, said once at warn and not asked again", async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    const made: FakeMqttClient[] = [];
    const s = new MqttSession({
      url: 'mqtts://broker:8883',
      clientId: 'cam-ext',
      keepaliveS: 30,
      reconnectBaseMs: 1000,
      reconnectCapMs: 8000,
      will: { topic: 'w', payload: () => 'off' },
      onlineStatus: { topic: 'w', payload: () => 'on' },
      subscriptions: ['ep/v1/grp/camlo/meeting'],
      optionalSubscriptions: ['ep/v1/grp/camlo/next'],
      logger,
      connect: (_url, opts) => {
        const c = new FakeMqttClient(opts);
        c.refuse.add('ep/v1/grp/camlo/next');
        made.push(c);
        return c as unknown as MqttClient;
      },
    });
    await s.start();
    made[0]!.connack(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(made[0]!.subscribed).toEqual([['ep/v1/grp/camlo/meeting'], ['ep/v1/grp/camlo/next']]);
    made[0]!.drop();
    await vi.advanceTimersByTimeAsync(1000);
    made[0]!.connack(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(made[0]!.subscribed.slice(2)).toEqual([['ep/v1/grp/camlo/meeting']]);
    const refusals = lines.filter((l) => l.includes('mqtt.optional_subscribe_refused'));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toContain('"level":40');
    expect(lines.some((l) => l.includes('mqtt.subscribe_refused'))).toBe(false);
    await s.stop();
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

  it('rebuilds at its next tick a client ended under it on a dead link (MQTT.js defers every reconnect until that end() finishes), its socket destroyed', async () => {
    clients[0]!.connack();
    let destroyed = false;
    // end() sent DISCONNECT and a FIN into a dead link: still `connected`, no close will come.
    Object.assign(clients[0]!, { disconnecting: true, stream: { destroy: () => (destroyed = true) } });
    await vi.advanceTimersByTimeAsync(5000); // one watchdog tick, far inside the 60 s bound
    expect(clients).toHaveLength(2);
    expect(destroyed).toBe(true);
    clients[1]!.connack();
    expect(session.connected).toBe(true);
  });
});

/** A client whose end() never calls back (MQTT.js waiting for a PUBACK that never comes) and whose socket can be destroyed. */
class HangingEndClient extends FakeMqttClient {
  destroyed = false;
  endForce: boolean | undefined;
  readonly stream = { destroy: (): void => void (this.destroyed = true) };
  override end(force?: boolean): void {
    this.endForce = force;
  }
}

/** A client with MQTT.js's in-flight table (`outgoing`) and its public removeOutgoingMessage(). */
class InflightClient extends FakeMqttClient {
  outgoing: Record<number, { cb: (e?: Error) => void }> = {};
  removed: number[] = [];
  removeOutgoingMessage(id: number): this {
    const e = this.outgoing[id];
    delete this.outgoing[id];
    this.removed.push(id);
    e?.cb(new Error('Message removed'));
    return this;
  }
}

describe('MqttSession: protocol version, failed attempts, stop', () => {
  let clients: FakeMqttClient[];
  let lines: string[];
  let session: MqttSession | null;
  const records = (evt: string): Array<Record<string, unknown>> => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.evt === evt);

  function make(o: { protocolVersion?: 4 | 5; client?: new (opts: IClientOptions) => FakeMqttClient; password?: string } = {}): MqttSession {
    const Client = o.client ?? FakeMqttClient;
    session = new MqttSession({
      url: 'mqtt://broker:1883',
      clientId: 'cam-thanh',
      ...(o.password ? { username: 'cam-thanh', password: o.password } : {}),
      keepaliveS: 30,
      reconnectBaseMs: 1000,
      reconnectCapMs: 8000,
      watchdogMs: 600_000,
      ...(o.protocolVersion ? { protocolVersion: o.protocolVersion } : {}),
      will: { topic: 'ep/v1/dev/cam-thanh/status', payload: () => '{"online":false}' },
      onlineStatus: { topic: 'ep/v1/dev/cam-thanh/status', payload: () => '{"online":true}' },
      subscriptions: ['ep/v1/dev/cam-thanh/cmd/+'],
      random: () => 1,
      logger: createLogger({ level: 'debug', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(...c.toString().split('\n').filter(Boolean)), cb()) }) }),
      connect: (_url, opts) => {
        const c = new Client(opts);
        clients.push(c);
        return c as unknown as MqttClient;
      },
    });
    return session;
  }

  /** The current client closes before sending a CONNACK; then the backoff runs out. */
  async function closeBeforeConnack(): Promise<void> {
    clients.at(-1)!.emit('close');
    await vi.advanceTimersByTimeAsync(8000);
  }

  beforeEach(() => {
    vi.useFakeTimers();
    clients = [];
    lines = [];
    session = null;
  });
  afterEach(async () => {
    await session?.stop();
    vi.useRealTimers();
  });

  it('falls back to 3.1.1 after two closes before CONNACK on MQTT 5 (not one), and keeps 3.1.1 once it connects', async () => {
    await make().start();
    await closeBeforeConnack();
    expect(clients).toHaveLength(1); // one close: a retry on v5, same client
    expect(clients[0]!.reconnects).toBe(1);
    await closeBeforeConnack();
    expect(clients).toHaveLength(2);
    expect(clients[1]!.opts.protocolVersion).toBe(4);
    expect(clients[1]!.opts.properties).toBeUndefined();
    expect(records('mqtt.fallback_311')).toEqual([expect.objectContaining({ reason: 'closed_before_connack' })]);
    const failed = records('mqtt.connect_failed');
    expect(failed.map((r) => [r.reason, r.protocolVersion])).toEqual([
      ['closed_before_connack', 5],
      ['closed_before_connack', 5],
    ]);
    clients[1]!.connack();
    await vi.advanceTimersByTimeAsync(1);
    expect(session!.version).toBe(4);
    // Confirmed: later closes before CONNACK (a broker restarting) do not flip the version again.
    clients[1]!.drop();
    for (let i = 0; i < 4; i++) await closeBeforeConnack();
    expect(clients).toHaveLength(2);
    expect(records('mqtt.fallback_311')).toHaveLength(1);
  });

  it('counts a reset before CONNACK like a close; two in a row (a refused port in between starts again)', async () => {
    await make().start();
    const reset = (): boolean => clients.at(-1)!.emit('error', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    reset();
    await closeBeforeConnack();
    clients[0]!.emit('error', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1883'), { code: 'ECONNREFUSED' }));
    await closeBeforeConnack();
    reset();
    await closeBeforeConnack();
    expect(clients).toHaveLength(1); // reset, refused, reset: not two in a row
    reset();
    await closeBeforeConnack();
    expect(clients).toHaveLength(2);
    expect(clients[1]!.opts.protocolVersion).toBe(4);
  });

  it('goes back to MQTT 5 when 3.1.1 is closed before CONNACK too (not a version problem)', async () => {
    await make().start();
    await closeBeforeConnack();
    await closeBeforeConnack();
    expect(clients[1]!.opts.protocolVersion).toBe(4);
    await closeBeforeConnack();
    expect(clients).toHaveLength(3);
    expect(clients[2]!.opts.protocolVersion).toBe(5);
    expect(records('mqtt.fallback_undone')).toHaveLength(1);
  });

  it('does not fall back on closes once MQTT 5 has connected in this process', async () => {
    await make().start();
    clients[0]!.connack();
    await vi.advanceTimersByTimeAsync(1);
    clients[0]!.drop();
    for (let i = 0; i < 4; i++) await closeBeforeConnack();
    expect(clients).toHaveLength(1);
    expect(records('mqtt.fallback_311')).toEqual([]);
  });

  it('protocolVersion 5 never falls back; 4 starts on 3.1.1', async () => {
    await make({ protocolVersion: 5 }).start();
    clients[0]!.emit('error', Object.assign(new Error('Connection refused: Unsupported Protocol Version'), { code: 132 }));
    await closeBeforeConnack();
    await closeBeforeConnack();
    expect(clients).toHaveLength(1);
    expect(records('mqtt.fallback_311')).toEqual([]);
    expect(records('mqtt.connect_failed')[0]).toMatchObject({ reason: 'refused', code: 132, detail: expect.stringContaining('unsupported protocol version') });
    await session!.stop();
    clients = [];
    await make({ protocolVersion: 4 }).start();
    expect(clients[0]!.opts.protocolVersion).toBe(4);
    expect(clients[0]!.opts.properties).toBeUndefined();
  });

  it('logs why each attempt failed (refusal and its meaning, auth, DNS, refused port, TLS, close, timeout), never the password', async () => {
    await make({ password: 's3cret-pw' }).start();
    const fail = async (err: Error | null, afterMs = 0): Promise<void> => {
      if (err) clients[0]!.emit('error', err);
      await vi.advanceTimersByTimeAsync(afterMs);
      clients[0]!.emit('close');
      await vi.advanceTimersByTimeAsync(8000);
    };
    const e = (message: string, code: string | number): Error => Object.assign(new Error(message), { code });
    await fail(e('Connection refused: Bad User Name or Password', 134));
    await fail(e('Connection refused: Server unavailable', 136));
    await fail(e('getaddrinfo ENOTFOUND hub.example', 'ENOTFOUND'));
    await fail(e('connect ECONNREFUSED 127.0.0.1:8883', 'ECONNREFUSED'));
    await fail(e('unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'));
    await fail(null, 15_000); // MQTT.js's connect timeout closes without an error
    const failed = records('mqtt.connect_failed');
    expect(failed.map((r) => [r.reason, r.code])).toEqual([
      ['auth', 134],
      ['refused', 136],
      ['dns', 'ENOTFOUND'],
      ['connection_refused', 'ECONNREFUSED'],
      ['tls', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
      ['connack_timeout', undefined],
    ]);
    expect(failed[0]!.detail).toContain('bad user name or password');
    expect(failed[1]!.detail).toContain('server unavailable');
    // The reconnect line says why too.
    expect(records('mqtt.reconnect_scheduled').map((r) => r.reason)).toEqual(['auth', 'refused', 'dns', 'connection_refused', 'tls', 'connack_timeout']);
    expect(lines.join('\n')).not.toContain('s3cret-pw');
  });

  it('names a lost connection and the MQTT 5 DISCONNECT reason the broker gave', async () => {
    await make().start();
    clients[0]!.connack();
    await vi.advanceTimersByTimeAsync(1);
    clients[0]!.emit('disconnect', { cmd: 'disconnect', reasonCode: 142 });
    clients[0]!.drop();
    expect(records('mqtt.connection_lost')).toEqual([expect.objectContaining({ reason: 'connection_lost', code: 142, detail: expect.stringContaining('session taken over') })]);
  });

  it('fails the messages in flight when the connection closes (nothing resends them after our reconnect)', async () => {
    await make({ client: InflightClient }).start();
    const c = clients[0] as InflightClient;
    c.connack();
    await vi.advanceTimersByTimeAsync(1);
    const errors: string[] = [];
    c.outgoing = { 7: { cb: (e) => errors.push(e!.message) }, 8: { cb: (e) => errors.push(e!.message) } };
    c.drop();
    expect(c.removed).toEqual([7, 8]);
    expect(errors).toEqual(['Message removed', 'Message removed']);
    expect(records('mqtt.inflight_failed')).toEqual([expect.objectContaining({ count: 2 })]);
  });

  it('stop() ends within its grace when the client never ends (destroys the socket, says so)', async () => {
    await make({ client: HangingEndClient }).start();
    const c = clients[0] as HangingEndClient;
    c.connack();
    await vi.advanceTimersByTimeAsync(1);
    let done = false;
    const stopping = session!.stop('{"online":false}').then(() => (done = true));
    await vi.advanceTimersByTimeAsync(1999);
    expect(done).toBe(false);
    expect(c.endForce).toBe(false); // connected: a clean DISCONNECT was asked for
    await vi.advanceTimersByTimeAsync(2);
    await stopping;
    expect(c.destroyed).toBe(true);
    expect(records('mqtt.end_forced')).toEqual([expect.objectContaining({ graceMs: 2000, connected: true })]);
    session = null;
  });

  it('stop() while disconnected does not wait for a clean DISCONNECT (end with force)', async () => {
    await make({ client: HangingEndClient }).start();
    const c = clients[0] as HangingEndClient;
    const stopping = session!.stop('{"online":false}');
    await vi.advanceTimersByTimeAsync(2001);
    await stopping;
    expect(c.endForce).toBe(true);
    expect(c.published).toEqual([]); // no offline status on a dead connection
    session = null;
  });
});
