/**
 * The session's steps after a CONNACK — its SUBSCRIBEs and the retained online status —
 * are bounded: a client connected but never acknowledging them, or failing there, is
 * replaced (the watchdog never acts on a connected client).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MqttSession } from '../../device/mqtt/session.js';
import type { FakeMqttClient } from '../fakes/index.js';
import { sessionOnFakes } from './helpers/mqtt-session.js';

describe('MqttSession after a CONNACK (subscribe + online status, bounded)', () => {
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

  it('a client connected whose online status is never acknowledged is replaced after 20 s (else connected and silent for good: the watchdog sees it connected); the next one announces the box', async () => {
    const connected: unknown[] = [];
    session.on('connected', (e) => connected.push(e));
    clients[0]!.hangPublishes = true;
    clients[0]!.connack(true);
    await vi.advanceTimersByTimeAsync(19_900);
    expect(clients).toHaveLength(1);
    expect(connected).toEqual([]);
    await vi.advanceTimersByTimeAsync(100 + 1000); // the bound, then the backoff of attempt 1 (rnd 1: 1000 ms)
    expect(clients).toHaveLength(2);
    expect(clients[0]!.ended).toBe(true);
    clients[1]!.connack(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(connected).toEqual([{ sessionPresent: true, protocolVersion: 5 }]);
    expect(clients[1]!.published).toEqual([{ topic: 'ep/v1/dev/cam-thanh/status', payload: '{"online":true}', retain: true }]);
    expect(clients[1]!.subscribed).toHaveLength(0); // the first client's SUBSCRIBE was acknowledged and the broker kept the session
  });

  it('a client whose SUBSCRIBE fails while connected is replaced after a backoff; one that closed meanwhile is left to its reconnect', async () => {
    clients[0]!.subscribeAsync = async () => {
      throw new Error('subscribe failed');
    };
    clients[0]!.connack(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(clients).toHaveLength(2);
    clients[1]!.subscribeAsync = async () => {
      clients[1]!.connected = false;
      throw new Error('client disconnecting');
    };
    clients[1]!.connack(false);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(clients).toHaveLength(2); // its close (not emitted here) is what reconnects it
  });
});
