/**
 * The box's SUBSCRIBEs after a CONNACK: its topics, then the contract's extensions in a
 * SUBSCRIBE of their own (an ACL older than an extension refuses it: said once at warn and
 * not asked again, `refusedOptional`). A refused topic of its own is an error in the log
 * (the broker's ACL), not a reason to stay off the broker.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../../lib/index.js';

export async function subscribeAll(c: MqttClient, o: { subscriptions: string[]; optionalSubscriptions?: string[] }, refusedOptional: Set<string>, log: Logger): Promise<void> {
  const granted = o.subscriptions.length ? await c.subscribeAsync(Object.fromEntries(o.subscriptions.map((t) => [t, { qos: 1 as const }]))) : [];
  // 0x80 (3.1.1) and every MQTT 5 reason code from 0x80 up mean refused.
  const refused = granted.filter((g) => g.qos >= 128);
  if (refused.length) log.error({ evt: 'mqtt.subscribe_refused', topics: refused.map((g) => g.topic) }, 'the broker refused a subscription (ACL?)');
  const optional = (o.optionalSubscriptions ?? []).filter((t) => !refusedOptional.has(t));
  const got = optional.length ? await c.subscribeAsync(Object.fromEntries(optional.map((t) => [t, { qos: 1 as const }]))) : [];
  for (const g of got.filter((x) => x.qos >= 128 && !refusedOptional.has(x.topic))) {
    refusedOptional.add(g.topic);
    log.warn({ evt: 'mqtt.optional_subscribe_refused', topic: g.topic }, `the broker refused ${g.topic} (an ACL older than this extension): not asked again`);
  }
}
