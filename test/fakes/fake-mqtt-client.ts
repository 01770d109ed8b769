/**
 * A scriptable fake of MQTT.js's client (the network boundary of device/mqtt/session.ts),
 * recording what it was asked: connack, drop and reconnect on cue.
 */
import { EventEmitter } from 'node:events';
import type { IClientOptions } from 'mqtt';

export class FakeMqttClient extends EventEmitter {
  connected = false;
  reconnects = 0;
  ended = false;
  subscribed: string[][] = [];
  published: Array<{ topic: string; payload: string; retain: boolean }> = [];
  handleMessage: unknown;
  constructor(readonly opts: IClientOptions) {
    super();
  }
  connack(sessionPresent = false): void {
    this.connected = true;
    this.emit('connect', { sessionPresent });
  }
  drop(): void {
    this.connected = false;
    this.emit('close');
  }
  reconnect(): void {
    this.reconnects++;
  }
  end(_force?: boolean, _o?: unknown, cb?: () => void): void {
    this.ended = true;
    cb?.();
  }
  /** Topics the broker's ACL refuses (granted 128, as Mosquitto answers a denied SUBSCRIBE). */
  readonly refuse = new Set<string>();
  async subscribeAsync(map: Record<string, unknown>): Promise<Array<{ topic: string; qos: number }>> {
    this.subscribed.push(Object.keys(map));
    return Object.keys(map).map((topic) => ({ topic, qos: this.refuse.has(topic) ? 128 : 1 }));
  }
  /** Publishes sent but never acknowledged (a PUBACK that never comes: a stuck MQTT.js store). */
  hangPublishes = false;
  async publishAsync(topic: string, payload: string, o: { retain?: boolean }): Promise<void> {
    this.published.push({ topic, payload: String(payload), retain: o.retain === true });
    if (this.hangPublishes) await new Promise<never>(() => undefined);
  }
}
