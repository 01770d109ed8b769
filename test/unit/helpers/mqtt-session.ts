/**
 * An MqttSession on the kit's FakeMqttClient, as the session's unit tests build it: every
 * client it makes is in `clients`, in order; `random` is its jitter.
 */
import type { MqttClient } from 'mqtt';
import { MqttSession } from '../../../device/mqtt/session.js';
import { FakeMqttClient } from '../../fakes/index.js';

export function sessionOnFakes(random: () => number): { session: MqttSession; clients: FakeMqttClient[] } {
  const clients: FakeMqttClient[] = [];
  const session = new MqttSession({
    url: 'mqtts://broker:8883',
    clientId: 'cam-thanh',
    keepaliveS: 30,
    reconnectBaseMs: 1000,
    reconnectCapMs: 8000,
    watchdogMs: 60_000,
    will: { topic: 'ep/v1/dev/cam-thanh/status', payload: () => '{"online":false}' },
    onlineStatus: { topic: 'ep/v1/dev/cam-thanh/status', payload: () => '{"online":true}' },
    subscriptions: ['ep/v1/dev/cam-thanh/cmd/+', 'ep/v1/grp/camlo/meeting'],
    random,
    connect: (_url, opts) => {
      const c = new FakeMqttClient(opts);
      clients.push(c);
      return c as unknown as MqttClient;
    },
  });
  return { session, clients };
}
