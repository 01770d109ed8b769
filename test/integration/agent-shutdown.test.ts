/**
 * `ep run` (the built CLI, a real child process) must end on SIGTERM, cleanly, after the
 * broker has disconnected it for a protocol error (issue 13, point 1). The hub sends
 * `cmd/identify` with the MQTT 5 response topic `x/+/y`: a box that publishes there is
 * disconnected by Mosquitto (a topic name with a wildcard), its last will goes out, it
 * reconnects — and with MQTT.js's end() waiting for that publish's PUBACK, SIGTERM no
 * longer ended it. (Once the router refuses such response topics the box never
 * publishes there and this test checks a plain SIGTERM; test/integration/
 * mqtt-session-broker.test.ts provokes the disconnect below the router.)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../../device/cli/run.js';
import { HubClient, newId } from './helpers/hub-client.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Processes, withTimeout, type Proc } from './helpers/processes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');
const BOX = 'box-term';
const GROUP = 'grp-term';
/** Hang guard only: ep run bounds its own stop at 10 s (STOP_BOUND_MS); a healthy one takes well under that. */
const EXIT_GUARD_MS = 30_000;

const procs = new Processes();
let broker: Mosquitto;
let hub: HubClient;
let dir: string;
let agent: Proc | null = null;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-shutdown-'));
  broker = await Mosquitto.start({ devices: { [BOX]: GROUP } });
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
}, 60_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') {
    console.error(`--- ep run output (last 6000 chars) ---\n${agent?.output().slice(-6000)}`);
    console.error(`--- mosquitto (last 3000 chars) ---\n${broker.output().slice(-3000)}`);
  }
});

afterAll(async () => {
  await procs.killAll();
  await hub?.close();
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

/** The agent's JSON log records with this evt. */
const records = (p: Proc, evt: string): Array<Record<string, unknown>> =>
  p
    .output()
    .split('\n')
    .filter((l) => l.includes(`"evt":"${evt}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('ep run and SIGTERM', () => {
  it('after a command with the response topic x/+/y (the broker disconnects a box that publishes there), SIGTERM ends the agent cleanly', async () => {
    const dataDir = await mkdtemp(path.join(dir, 'data-'));
    const cfg = path.join(dir, 'config.json');
    const tls = broker.tls(BOX);
    await writeFile(cfg, JSON.stringify({ deviceId: BOX, groupId: GROUP, name: 'Xã Thử', mqtt: { url: broker.url, ...tls, keepaliveS: 10, reconnectBaseMs: 300, reconnectCapMs: 2000 }, dataDir, media: { source: 'test', aec: false }, health: { periodS: 3600 }, log: { level: 'info' } }));
    const since = hub.mark();
    agent = procs.spawn('ep run', process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', cfg]);
    const online = (after: number): Promise<unknown> =>
      hub.waitFor((m) => m.n > after && m.kind === 'status' && m.deviceId === BOX && (m.json as { online?: boolean })?.online === true, 30_000, `${BOX} online`);
    await online(since);

    const id = newId('identify');
    await hub.publish(`ep/v1/dev/${BOX}/cmd/identify`, JSON.stringify({ id, ts: new Date().toISOString(), args: { seconds: 1 } }), {
      qos: 1,
      properties: { responseTopic: 'x/+/y', correlationData: Buffer.from('c-1') },
    });
    const first = await hub.reply(id, 20_000, BOX);
    // A second command, answered: the box is connected and working again after whatever the first one did.
    const second = await hub.send({ device: BOX }, 'identify', { seconds: 1 });
    await hub.reply(second, 30_000, BOX);
    const disconnected = broker.output().includes(`Client ${BOX} disconnected due to`);
    console.info('wildcard response topic', { firstReply: { ok: first.ok, code: first.error?.code }, disconnectedByBroker: disconnected, connects: records(agent, 'mqtt.connected').length });

    agent.child.kill('SIGTERM');
    const exit = await withTimeout(agent.exited, EXIT_GUARD_MS, 'ep run to exit after SIGTERM (it kept running: stop() hung)');
    expect(records(agent, 'agent.stop_timeout'), 'no part of the stop overran its bound').toEqual([]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(records(agent, 'agent.stopped')).toHaveLength(1);
    // The MQTT session ended with a DISCONNECT (not forced, not a dropped socket).
    expect(records(agent, 'mqtt.end_forced')).toEqual([]);
    expect(broker.output()).toContain(`Client ${BOX} disconnected.`);
  }, 120_000);

  it('SIGTERM while the broker hangs (SIGSTOP: connection open, nothing acknowledged) ends the agent within its bound', async () => {
    const dataDir = await mkdtemp(path.join(dir, 'data-'));
    const cfg = path.join(dir, 'config-hung.json');
    await writeFile(cfg, JSON.stringify({ deviceId: BOX, groupId: GROUP, name: 'Xã Thử', mqtt: { url: broker.url, ...broker.tls(BOX), keepaliveS: 60, reconnectBaseMs: 300, reconnectCapMs: 2000 }, dataDir, media: { source: 'test', aec: false }, health: { periodS: 3600 }, log: { level: 'info' } }));
    const since = hub.mark();
    const p = procs.spawn('ep run (hung broker)', process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', cfg]);
    agent = p;
    await hub.waitFor((m) => m.n > since && m.kind === 'status' && m.deviceId === BOX && (m.json as { online?: boolean })?.online === true, 30_000, `${BOX} online`);
    await hub.waitState(BOX, (s) => s.state === 'idle', 30_000, since); // started: its state is out
    const pid = broker.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      p.child.kill('SIGTERM');
      const exit = await withTimeout(p.exited, EXIT_GUARD_MS, 'ep run to exit after SIGTERM with the broker hung (it waited forever for a PUBACK)');
      expect(records(p, 'agent.stop_timeout')).toEqual([]);
      expect(exit).toEqual({ code: 0, signal: null });
      // The offline status was never acknowledged: the clean end gave up after its grace and closed the socket.
      expect(records(p, 'mqtt.end_forced')).toEqual([expect.objectContaining({ graceMs: 2000, connected: true })]);
      expect(records(p, 'agent.stopped')).toHaveLength(1);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }, 120_000);
});
