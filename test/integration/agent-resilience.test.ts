/**
 * The hub's broker dies (SIGKILL, no clean shutdown) for 15 s and comes back on the same
 * port with its persistence file. Three real agents must:
 * - reconnect by themselves, with jittered backoff (no lockstep: their delays differ),
 *   to the persistent sessions the broker kept (sessionPresent);
 * - run exactly once each command the hub published for them while they were still
 *   offline (queued by the broker for their sessions), each with exactly one reply;
 * - deliver the events raised while the link was down (media worker killed meanwhile)
 *   after the reconnect, in order, none twice (seq strictly increasing).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Capabilities } from '../../gst-pipelines/types.js';
import { HubClient, TestBox, type BoxEvent } from './helpers/hub-client.js';
import { Resources, capabilities, nextEvent } from './helpers/media.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { withTimeout } from './helpers/processes.js';

const GROUP = 'grp-one';
const IDS = ['box-a', 'box-b', 'box-c'];
const BASE_MS = 1000;
const CAP_MS = 8000;
const OUTAGE_MS = 15_000;
const GRACE_MS = 1000;

const res = new Resources();
const boxes: TestBox[] = [];
let caps: Capabilities;
let broker: Mosquitto;
let hub: HubClient;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const byId = (id: string): TestBox => boxes.find((b) => b.deviceId === id)!;

beforeAll(async () => {
  caps = await capabilities();
  broker = await Mosquitto.start({ devices: Object.fromEntries(IDS.map((id) => [id, GROUP])) });
  res.add('mosquitto', () => broker.stop());
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
  res.add('hub client', () => hub.close());
  const since = hub.mark();
  for (const id of IDS) {
    const b = await TestBox.start({ deviceId: id, groupId: GROUP, broker, caps, mqtt: { reconnectBaseMs: BASE_MS, reconnectCapMs: CAP_MS } });
    boxes.push(b);
    res.add(id, () => b.dispose());
  }
  await Promise.all(IDS.map((id) => hub.waitState(id, (s) => s.state === 'idle', 20_000, since)));
}, 60_000);

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  for (const b of boxes) console.error(`--- ${b.deviceId} log (last 40) ---\n${b.logs.lines.slice(-40).join('\n')}`);
  console.error(`--- mosquitto (last 3000 chars) ---\n${broker.output().slice(-3000)}`);
});

afterAll(() => res.release(), 60_000);

/** Kills the box's current media worker and waits until the supervisor has a new one running. */
async function killWorker(b: TestBox): Promise<void> {
  const pid = b.agent.media.status().workerPid;
  expect(pid, `${b.deviceId} has a media worker`).not.toBeNull();
  const restarted = nextEvent(b.agent.media, 'restart', () => true, 10_000, `${b.deviceId} media restart`);
  const running = nextEvent(b.agent.media, 'status', (s) => s.running && s.workerPid !== null && s.workerPid !== pid, 20_000, `${b.deviceId} new media worker`);
  process.kill(pid!, 'SIGKILL');
  await restarted;
  await running;
}

describe('the broker is killed for 15 s and restarted', () => {
  it('agents reconnect with jittered backoff; queued commands run once; events raised offline arrive in order, once', async () => {
    for (const b of boxes) expect(b.agent.mqtt.connected).toBe(true);
    const eventsBefore = Object.fromEntries(IDS.map((id) => [id, hub.events(id).length]));
    const offline = IDS.map((id) => withTimeout(new Promise<void>((r) => byId(id).agent.mqtt.once('offline', () => r())), 10_000, `${id} to see the broker go`));

    const tKill = Date.now();
    await broker.kill('SIGKILL');
    await Promise.all(offline);

    // While the broker is down: the media workers of box-a (twice) and box-b die.
    await killWorker(byId('box-a'));
    await killWorker(byId('box-a'));
    await killWorker(byId('box-b'));
    for (const b of boxes) expect(b.agent.mqtt.connected).toBe(false);

    // The outage itself is the scenario: OUTAGE_MS, or longer if the kills took longer (they
    // must all happen while the broker is down, however slow the machine).
    await sleep(OUTAGE_MS - (Date.now() - tKill));
    const hubBack = hub.nextConnect(15_000);
    const tUp = Date.now();
    await broker.restart();
    await hubBack;
    const hubReconnectMs = Date.now() - tUp;
    const mark = hub.mark();

    // The hub publishes at once; boxes still in their backoff get them from their persistent session.
    const sent: Array<{ device: string; id: string; seconds: number; boxOffline: boolean }> = [];
    for (const device of IDS) {
      for (const seconds of [1, 2, 3]) {
        const boxOffline = !byId(device).agent.mqtt.connected;
        const id = await hub.send({ device }, 'identify', { seconds });
        sent.push({ device, id, seconds, boxOffline });
      }
    }
    const queuedForOffline = sent.filter((s) => s.boxOffline).length;
    expect(queuedForOffline, 'commands published while their box was offline').toBeGreaterThan(0);

    const online = await Promise.all(
      IDS.map((id) => hub.waitFor((m) => m.n > mark && m.kind === 'status' && m.deviceId === id && (m.json as { online?: boolean })?.online === true, 20_000, `${id} back online`)),
    );
    const reconnectMs = Object.fromEntries(online.map((m, i) => [IDS[i], m.at - tUp]));
    await Promise.all(sent.map((s) => hub.reply(s.id, 20_000, s.device)));
    await sleep(GRACE_MS);

    // Exactly one reply per command, and each ran once.
    for (const s of sent) {
      const rs = hub.replies(s.id, s.device);
      expect(rs, `${s.device} ${s.id}`).toHaveLength(1);
      expect(rs[0]).toMatchObject({ ok: true, result: { seconds: s.seconds } });
    }
    for (const id of IDS) expect([...byId(id).leds.blinks].sort(), id).toEqual([1000, 2000, 3000]);

    // Reconnected to the sessions the broker kept through the kill.
    for (const b of boxes) {
      const after = b.logs.records('mqtt.connected').filter((r) => Date.parse(r.time as string) >= tUp);
      expect(after.length, `${b.deviceId} reconnected once`).toBe(1);
      expect(after[0]).toMatchObject({ sessionPresent: true });
    }

    // Jittered backoff: each delay within [50 %, 100 %] of its capped exponential step, and no two boxes in lockstep.
    const delays = Object.fromEntries(
      boxes.map((b) => [b.deviceId, b.logs.records('mqtt.reconnect_scheduled').filter((r) => Date.parse(r.time as string) >= tKill).map((r) => ({ attempt: r.attempt as number, delayMs: r.delayMs as number }))]),
    );
    for (const [id, ds] of Object.entries(delays)) {
      expect(ds.length, `${id} retried`).toBeGreaterThanOrEqual(3);
      ds.forEach((d, i) => {
        expect(d.attempt).toBe(i + 1);
        const step = Math.min(CAP_MS, BASE_MS * 2 ** (d.attempt - 1));
        expect(d.delayMs, `${id} attempt ${d.attempt}`).toBeGreaterThanOrEqual(step * 0.5);
        expect(d.delayMs, `${id} attempt ${d.attempt}`).toBeLessThanOrEqual(step);
      });
    }
    // Lockstep = the same sequence of delays. Two of three boxes drawing the same first delay
    // (501 values) happens about once in 170 runs and is not lockstep: CI once failed on
    // "983, 609, 983". Whole sequences of ≥ 3 draws colliding is ~1 in 10^7.
    const sequences = IDS.map((id) => delays[id]!.map((d) => d.delayMs).join(','));
    expect(new Set(sequences).size, `delay sequences ${sequences.join(' | ')}`).toBe(IDS.length);
    const firstDelays = IDS.map((id) => delays[id]![0]!.delayMs);
    expect(new Set(firstDelays).size, `first delays ${firstDelays.join(', ')}`).toBeGreaterThan(1);

    // Events raised while offline: delivered after the reconnect, in order, none twice.
    await hub.waitFor((m) => m.n > mark && m.kind === 'event' && m.deviceId === 'box-b' && (m.json as BoxEvent).type === 'media_restart', 15_000, "box-b's media_restart event");
    await hub.waitFor(() => hub.events('box-a').filter((e) => e.type === 'media_restart').length >= 2, 15_000, "box-a's two media_restart events");
    await sleep(GRACE_MS);
    for (const id of IDS) {
      const all = hub.events(id);
      const seqs = all.map((e) => e.seq);
      expect(seqs, `${id} seqs`).toEqual([...seqs].sort((x, y) => x - y));
      expect(new Set(seqs).size, `${id} seqs unique`).toBe(seqs.length);
      seqs.forEach((s, i) => i > 0 && expect(s, `${id} no gap`).toBe(seqs[i - 1]! + 1));
    }
    for (const [id, n] of [['box-a', 2], ['box-b', 1], ['box-c', 0]] as const) {
      const raisedOffline = hub.events(id).slice(eventsBefore[id]).filter((e) => e.type === 'media_restart');
      expect(raisedOffline, id).toHaveLength(n);
      for (const e of raisedOffline) {
        expect(Date.parse(e.ts)).toBeGreaterThanOrEqual(tKill);
        expect(Date.parse(e.ts)).toBeLessThan(tUp);
      }
      const arrived = hub.of('event', id).filter((m) => (m.json as BoxEvent).type === 'media_restart' && m.n > mark);
      expect(arrived, `${id}: delivered after the reconnect`).toHaveLength(n);
    }

    console.info('broker outage', {
      outageMs: tUp - tKill,
      hubReconnectMs,
      reconnectMs,
      delays: Object.fromEntries(Object.entries(delays).map(([id, ds]) => [id, ds.map((d) => d.delayMs)])),
      commands: sent.length,
      queuedForOffline,
      events: Object.fromEntries(IDS.map((id) => [id, hub.events(id).map((e) => `${e.seq}:${e.type}`)])),
    });
  }, 120_000);
});
