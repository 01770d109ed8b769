/**
 * Ending an MQTT.js client whatever its state, and failing what it can no longer
 * deliver. MQTT.js's `end()` (without force) waits for every in-flight QoS 1 message to
 * be acknowledged (`outgoingEmpty`) and never calls back when one never will be
 * (MQTT.js#952): a publish the broker answered by disconnecting (a wildcard topic), a
 * connection that died under it. That is how `ep run` once ignored SIGTERM (issue 13).
 */
import type { MqttClient } from 'mqtt';
import type { Clock, Logger } from '../../lib/index.js';

/**
 * Fails every message still waiting for its acknowledgement (on a close). The session's
 * reconnect() gives MQTT.js fresh stores, so nothing in flight is ever resent or
 * acknowledged: left there, each entry would hold its caller until its timeout, keep its
 * message id, and make `end()` wait forever. Events are retried by the outbox, replies
 * by the router.
 */
export function dropInflight(c: MqttClient, log: Logger): void {
  const out = (c as Partial<MqttClient>).outgoing;
  if (!out || typeof c.removeOutgoingMessage !== 'function') return;
  const ids = Object.keys(out).map(Number);
  for (const id of ids) c.removeOutgoingMessage(id);
  if (ids.length) log.info({ evt: 'mqtt.inflight_failed', count: ids.length }, `${ids.length} message(s) in flight failed with the connection`);
}

/**
 * Ends the client: a clean DISCONNECT when connected (within `graceMs`), at once
 * otherwise; past the grace its socket is destroyed (`mqtt.end_forced`). Resolves
 * within about `graceMs` whatever the client does.
 */
export async function endClient(c: MqttClient, graceMs: number, clock: Clock, log: Logger): Promise<void> {
  // A clean DISCONNECT only on a live connection; otherwise there is nothing to wait for.
  const clean = c.connected;
  let t: unknown = null;
  const ended = await Promise.race([
    new Promise<boolean>((resolve) => {
      try {
        c.end(!clean, {}, () => resolve(true));
      } catch {
        resolve(false);
      }
    }),
    new Promise<boolean>((resolve) => (t = clock.setTimeout(() => resolve(false), graceMs))),
  ]);
  clock.clearTimeout(t);
  if (!ended) {
    const inflight = Object.keys((c as Partial<MqttClient>).outgoing ?? {}).length;
    log.warn({ evt: 'mqtt.end_forced', graceMs, connected: c.connected, disconnecting: c.disconnecting, inflight }, `the MQTT client did not end within ${graceMs} ms; closing its socket`);
    (c as Partial<MqttClient>).stream?.destroy();
  }
  c.removeAllListeners();
  c.on('error', () => undefined);
}

/**
 * Drops a client for good (a rebuild): none of our listeners left, its socket closed at
 * once. `end(true)` alone returns without touching the socket when an `end()` is already
 * pending (a client ended on a dead link), so the socket is destroyed too.
 */
export function discardClient(c: MqttClient): void {
  c.removeAllListeners();
  c.on('error', () => undefined);
  c.end(true);
  (c as Partial<MqttClient>).stream?.destroy();
}
