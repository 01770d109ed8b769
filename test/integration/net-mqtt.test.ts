/**
 * Network faults on the MQTT link (issue 17), made in user space: the box dials the
 * broker through a TCP relay (helpers/tcp-relay.ts) that can swallow every byte without
 * closing anything (a half-open link: a dead path, no FIN, no RST) or reset every
 * connection. The real agent (TLS through the relay: the broker's certificate names IP
 * 127.0.0.1, the relay's address too) on a real Mosquitto; the media worker is the fake,
 * because what is tested is the control plane: the box is in a meeting so that the link's
 * faults must not touch it, and so that a worker the test kills raises events while the
 * link is down. Time is real: every wait is a hang guard, except the one bound on how
 * soon a half-open link is noticed (justified where it is checked).
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeSpawner, piCaps, type FakeWorker } from '../fakes/index.js';
import { HubClient, TestBox, type BoxEvent, type HubMessage } from './helpers/hub-client.js';
import { Resources, nextEvent } from './helpers/media.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { pollUntil, withTimeout } from './helpers/processes.js';
import { TcpRelay } from './helpers/tcp-relay.js';

const BOX = 'box-net';
const GROUP = 'grp-net';
const KEEPALIVE_S = 5;
const GUARD_MS = 30_000;
/** Collect replies this long after the first: "exactly one" means none arrives meanwhile. */
const GRACE_MS = 750;
const MEETING = { meetingId: 'mtg-net', send: { url: 'srt://127.0.0.1:9', streamId: 'publish:grp-net/{deviceId}' }, receive: { url: 'srt://127.0.0.1:9' } };

const res = new Resources();
const spawner = new FakeSpawner();
/** Every MQTT client the box made, in order (the last is its current one). */
const clients: MqttClient[] = [];
let broker: Mosquitto;
let relay: TcpRelay;
let hub: HubClient;
let box: TestBox;

const isOnline = (m: HubMessage): boolean => m.kind === 'status' && m.deviceId === BOX && (m.json as { online?: boolean } | undefined)?.online === true;
/** The box's retained status says online again, published after message `since`. */
const backOnline = (since: number, what: string): Promise<HubMessage> => hub.waitFor((m) => m.n > since && isOnline(m), GUARD_MS, what);
const lostOnce = (what: string): Promise<void> => withTimeout(new Promise<void>((r) => box.agent.mqtt.once('offline', () => r())), GUARD_MS, what);
const lostRecords = (): Array<Record<string, unknown>> => box.logs.records('mqtt.connection_lost');
const current = (): MqttClient => clients.at(-1)!;

/** Kills the meeting's (fake) worker and waits for the supervisor to have restarted it: one media_restart event. */
async function killWorker(): Promise<void> {
  const w = spawner.running.filter((x) => !x.exited).at(-1);
  expect(w, 'a running (fake) media worker').toBeDefined();
  const restarted = nextEvent(box.agent.media, 'restart', () => true, GUARD_MS, 'a media restart');
  w!.die(1, null);
  await restarted;
}

/** The fake workers play a running session: media flowing both ways as soon as one starts, a stats sample every 500 ms (the supervisor's sign of life). */
function playWorkers(): () => void {
  const flowing = new Set<FakeWorker>();
  const dir = { fps: 15, kbps: 600, frames: 1, bytes: 1000, idleMs: 10, maxGapMs: 70 };
  const t = setInterval(() => {
    for (const w of spawner.running.filter((x) => !x.exited)) {
      if (!flowing.has(w)) {
        flowing.add(w);
        w.emit({ type: 'first-bytes', direction: 'send', atMs: 5 });
        w.emit({ type: 'first-bytes', direction: 'receive', atMs: 5 });
      }
      w.emit({ type: 'stats', stats: { ts: Date.now(), uptimeMs: 1000, send: { ...dir, srt: null, paddingPct: 0 }, receive: { ...dir, srt: null }, audio: { micDb: -20, speakerDb: -20, micBuffers: 1, speakerBuffers: 1, speakerMaxGapMs: 20 }, adapt: null, rssMb: 50 } });
    }
  }, 500);
  return () => clearInterval(t);
}

beforeAll(async () => {
  res.add('fake workers', playWorkers());
  broker = await Mosquitto.start({ devices: { [BOX]: GROUP } });
  res.add('mosquitto', () => broker.stop());
  relay = await TcpRelay.start({ host: '127.0.0.1', port: broker.port });
  res.add('relay', () => relay.close());
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
  res.add('hub client', () => hub.close());
  const caps = piCaps({ elements: { x264enc: true, avdec_h264: true }, displays: [] });
  const mqttConnect = (url: string, opts: mqtt.IClientOptions): MqttClient => {
    const c = mqtt.connect(url, opts);
    clients.push(c);
    return c;
  };
  box = await TestBox.start({ deviceId: BOX, groupId: GROUP, broker, caps, mqtt: { keepaliveS: KEEPALIVE_S, reconnectBaseMs: 500, reconnectCapMs: 2000 }, via: { mqttUrl: `mqtts://127.0.0.1:${relay.port}`, deps: { spawner, mqttConnect } } });
  res.add(BOX, () => box.dispose());
  await backOnline(0, 'the box online through the relay');
  const id = await hub.send({ device: BOX }, 'join', MEETING);
  expect(await hub.reply(id, GUARD_MS)).toMatchObject({ ok: true });
  await hub.waitState(BOX, (s) => s.state === 'in_meeting', GUARD_MS);
}, 60_000);

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  console.error(`--- ${BOX} log (last 60) ---\n${box.logs.lines.slice(-60).join('\n')}`);
  console.error(`--- relay ---\n${JSON.stringify(relay.stats())}`);
  console.error(`--- mosquitto (last 3000 chars) ---\n${broker.output().slice(-3000)}`);
});

afterAll(() => res.release(), 60_000);

describe('a half-open MQTT link (the relay swallows everything, closes nothing)', () => {
  it('is noticed within 2 × keepalive, three times in a row, and each time the box reconnects; events raised meanwhile arrive once, in order', async () => {
    const eventsBefore = hub.events(BOX).length;
    const noticed: number[] = [];
    for (let cycle = 1; cycle <= 3; cycle++) {
      const accepted = relay.stats().accepted;
      const lostBefore = lostRecords().length;
      const lost = lostOnce(`cycle ${cycle}: the box to notice the dead link`);
      const tBlack = Date.now();
      relay.setMode('blackhole');
      // While the link is dead the meeting's worker dies: an event the box cannot deliver yet.
      await killWorker();
      await lost;
      const rec = lostRecords()[lostBefore]!;
      // The bound, measured with the box's own timestamp (its connection_lost line; the box
      // runs in this process, one clock): MQTT.js 5's keepalive timer counts from the last
      // packet the box received, which was before the blackhole; it sends PINGREQ at
      // 1 × keepalive and gives the connection up at 1.5 ×. That is a protocol timer, not CPU
      // work: the other 0.5 × keepalive (2.5 s) is slack for a late event loop on this shared
      // machine, where the agent's own watchdog already calls a loop late by 10 s a fault.
      // TCP alone would never notice (the relay's kernel acknowledges everything), so a miss
      // is a box that does not keep its keepalive, not a slow machine. Typical: ~7.5 s.
      const noticedMs = Date.parse(rec.time as string) - tBlack;
      noticed.push(noticedMs);
      expect(noticedMs, `cycle ${cycle}: noticed after ${noticedMs} ms`).toBeLessThanOrEqual(2 * KEEPALIVE_S * 1000);
      expect(rec).toMatchObject({ reason: 'connection_lost' });
      const since = hub.mark();
      relay.setMode('pass');
      await backOnline(since, `cycle ${cycle}: the box back online`);
      expect(relay.stats().accepted, `cycle ${cycle}: a new connection through the relay`).toBeGreaterThan(accepted);
    }
    // The meeting never dropped; each killed worker's event arrived once, in seq order, after its reconnect.
    await hub.waitFor(() => hub.events(BOX).slice(eventsBefore).filter((e) => e.type === 'media_restart').length >= 3, GUARD_MS, 'three media_restart events');
    await new Promise((r) => setTimeout(r, GRACE_MS));
    const events = hub.events(BOX);
    const seqs = events.map((e: BoxEvent) => e.seq);
    seqs.forEach((s, i) => i > 0 && expect(s, `seqs ${seqs.join(',')}`).toBe(seqs[i - 1]! + 1));
    expect(events.slice(eventsBefore).filter((e) => e.type === 'media_restart')).toHaveLength(3);
    expect(box.agent.meeting.meeting?.id).toBe(MEETING.meetingId);
    console.info('half-open noticed after (ms)', noticed);
  }, 120_000);

  it("the box's client ended while its socket is dead (MQTT.js waits for a close or PUBACK that never comes) does not strand it, with or without messages in flight", async () => {
    const restartsBefore = hub.events(BOX).filter((e) => e.type === 'media_restart').length;
    for (const inflight of [false, true]) {
      const what = inflight ? 'with an event in flight' : 'with nothing in flight';
      const accepted = relay.stats().accepted;
      const rebuilds = box.logs.records('mqtt.rebuild').length;
      const c = current();
      // Nothing in flight: end() sends DISCONNECT and a FIN into the dead link and stays `connected`, waiting for the broker's close.
      await pollUntil(() => Object.keys(c.outgoing).length === 0, GUARD_MS, 'the box with nothing in flight');
      const since = hub.mark();
      relay.setMode('blackhole');
      // In flight: end() waits for its PUBACK; MQTT.js then defers every reconnect() until that wait is over.
      if (inflight) {
        await killWorker();
        await pollUntil(() => Object.keys(c.outgoing).length > 0, GUARD_MS, 'the media_restart event in flight');
      }
      c.end();
      relay.setMode('pass'); // the ended connection stays dead; a new one would pass
      await backOnline(since, `the box back online after its client was ended on a dead link ${what}`);
      expect(relay.stats().accepted, what).toBeGreaterThan(accepted);
      expect(current(), what).not.toBe(c);
      expect(box.logs.records('mqtt.rebuild').slice(rebuilds), what).toMatchObject([{ reason: expect.stringContaining('ended under the session') }]);
      const id = await hub.send({ device: BOX }, 'identify', { seconds: 1 });
      expect(await hub.repliesAfterGrace(id, { ms: GUARD_MS, graceMs: GRACE_MS }), what).toHaveLength(1);
    }
    const restarts = (): number => hub.events(BOX).filter((e) => e.type === 'media_restart').length;
    await hub.waitFor(() => restarts() > restartsBefore, GUARD_MS, 'the media_restart event raised with the link dead');
    await new Promise((r) => setTimeout(r, GRACE_MS));
    expect(restarts(), 'the event raised with the link dead, delivered once').toBe(restartsBefore + 1);
    const seqs = hub.events(BOX).map((e) => e.seq);
    seqs.forEach((q, i) => i > 0 && expect(q, `seqs ${seqs.join(',')}`).toBe(seqs[i - 1]! + 1));
  }, 120_000);
});

describe('the MQTT connection reset (RST both ways)', () => {
  it('three resets: the box reconnects each time; every command sent before, between and after them gets exactly one reply', async () => {
    const ids: string[] = [];
    const blinks = box.leds.blinks.length;
    for (let i = 1; i <= 3; i++) {
      const accepted = relay.stats().accepted;
      const lostBefore = lostRecords().length;
      const first = await hub.send({ device: BOX }, 'identify', { seconds: 1 });
      ids.push(first);
      await hub.reply(first, GUARD_MS);
      // Nothing of the box's in flight at the reset: a reply whose PUBACK the reset cut off
      // would be sent again (QoS 1 is at least once; the hub keys replies by id).
      await pollUntil(() => Object.keys(current().outgoing).length === 0, GUARD_MS, 'the box with nothing in flight');
      const since = hub.mark();
      const lost = lostOnce(`reset ${i}: the box to see it`);
      relay.resetAll();
      // Sent while the box is away: the broker keeps it for the box's session.
      ids.push(await hub.send({ device: BOX }, 'identify', { seconds: 1 }));
      await lost;
      // The RST, read (ECONNRESET) or met by a write of the box's (EPIPE).
      expect(lostRecords()[lostBefore], `reset ${i}`).toMatchObject({ reason: 'connection_lost', code: expect.stringMatching(/^(ECONNRESET|EPIPE)$/) });
      await backOnline(since, `reset ${i}: the box back online`);
      expect(relay.stats().accepted, `reset ${i}: a new connection`).toBeGreaterThan(accepted);
    }
    ids.push(await hub.send({ device: BOX }, 'identify', { seconds: 1 }));
    await Promise.all(ids.map((id) => hub.reply(id, GUARD_MS)));
    await new Promise((r) => setTimeout(r, GRACE_MS));
    for (const id of ids) expect(hub.replies(id), id).toHaveLength(1);
    expect(box.leds.blinks.length - blinks, 'each command ran once').toBe(ids.length);
    expect(box.agent.meeting.meeting?.id).toBe(MEETING.meetingId);
  }, 120_000);
});
