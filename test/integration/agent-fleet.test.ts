/**
 * A district's boxes on one real Mosquitto (TLS, client certificates, ACL): three real
 * agents in one process join on one group command and on the retained group meeting;
 * a restarted box rejoins the meeting that is on by itself; and the broker's ACL
 * confines each box's certificate to its own topics and its group's.
 *
 * What proves "joined" here: the hub's retained state says in_meeting, the box decodes
 * the hub's program (receive fps from its own media worker), and the hub decodes a
 * stream from every box. The box's `send: "ok"` alone proves nothing (agent-commands:
 * it is reported with no SRT link at all).
 *
 * One group meeting has ONE send URL for every box, but a LocalHub's ingest (an srtsrc
 * listener) takes one caller. So the boxes send to a UDP fan-in that gives each new
 * SRT flow (one box's socket) its own LocalHub ingest, like a hub that takes many
 * publishers (MediaMTX) would; the program comes from one LocalHub whose srtsink
 * listener serves every box.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LocalHub } from '../../gst-pipelines/hub/local-hub.js';
import type { Capabilities, MediaJoinSpec } from '../../gst-pipelines/types.js';
import { HubClient, TestBox, newId, type Reply } from './helpers/hub-client.js';
import { Resources, SMALL, capabilities, nextEvent, startHub } from './helpers/media.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { withTimeout } from './helpers/processes.js';

const GROUP = 'grp-one';
const IDS = ['box-a', 'box-b', 'box-c'];
const GRACE_MS = 750;
const MIN_FPS = SMALL.fps * 0.6;

const res = new Resources();
let caps: Capabilities;
let broker: Mosquitto;
let hub: HubClient;
let srtHub: LocalHub;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The group's meeting: the program from `srtHub`, the boxes' streams to `ingest` (a fan-in port). */
function spec(meetingId: string, ingest?: UdpFanIn): MediaJoinSpec {
  const s = srtHub.joinSpec(meetingId, { title: `Giao ban ${meetingId}` });
  return { ...s, send: { ...s.send, ...(ingest ? { url: `srt://127.0.0.1:${ingest.port}` } : {}), video: SMALL } };
}

/**
 * A UDP front port that hands every new flow (source address:port — one box's SRT
 * socket) to the next unused backend port, and relays both ways. SRT works through
 * such a NAT-like relay unchanged.
 */
class UdpFanIn {
  private readonly flows = new Map<string, { sock: Socket; backend: number }>();
  private constructor(
    private readonly front: Socket,
    readonly port: number,
    private readonly backends: number[],
  ) {
    front.on('message', (msg, from) => {
      const key = `${from.address}:${from.port}`;
      let flow = this.flows.get(key);
      if (!flow) {
        const backend = this.backends[this.flows.size];
        if (backend === undefined) return; // more flows than backends: drop (the test will say so)
        const sock = createSocket('udp4');
        sock.on('message', (back) => front.send(back, from.port, from.address));
        sock.on('error', () => undefined);
        flow = { sock, backend };
        this.flows.set(key, flow);
      }
      flow.sock.send(msg, flow.backend, '127.0.0.1');
    });
  }

  static async start(backends: number[]): Promise<UdpFanIn> {
    const front = createSocket('udp4');
    front.on('error', () => undefined);
    await new Promise<void>((r) => front.bind(0, '127.0.0.1', () => r()));
    return new UdpFanIn(front, front.address().port, backends);
  }

  /** Flows seen so far. */
  get size(): number {
    return this.flows.size;
  }

  close(): void {
    for (const f of this.flows.values()) f.sock.close();
    this.front.close();
  }
}

/** `n` LocalHubs to take the boxes' streams (their own program tiny: nobody watches it), behind one fan-in. */
async function ingestHubs(n: number, scope: Resources): Promise<{ hubs: LocalHub[]; fanIn: UdpFanIn }> {
  const hubs: LocalHub[] = [];
  for (let i = 0; i < n; i++) hubs.push(await startHub(scope, { video: { width: 160, height: 90, fps: 5, bitrateKbps: 64 } }));
  const fanIn = await UdpFanIn.start(hubs.map((h) => h.ingestPort));
  scope.add('fan-in', () => fanIn.close());
  return { hubs, fanIn };
}

/** Every hub decodes a box's stream at ≥ 60 % of its frame rate. */
async function hubsReceive(hubs: LocalHub[]): Promise<number[]> {
  const st = await Promise.all(hubs.map((h, i) => nextEvent(h.supervisor, 'stats', (s) => (s.receive.fps ?? 0) >= MIN_FPS, 20_000, `ingest hub ${i} to decode a box`)));
  return st.map((s) => s.receive.fps ?? 0);
}

/** The box's own media worker decodes the hub's program at ≥ 60 % of its frame rate. */
async function receivesProgram(b: TestBox, ms = 20_000): Promise<number> {
  const s = await nextEvent(b.agent.media, 'stats', (x) => (x.receive.fps ?? 0) >= MIN_FPS, ms, `${b.deviceId} to decode the program`);
  return s.receive.fps ?? 0;
}

function dump(boxes: TestBox[]): void {
  for (const b of boxes) console.error(`--- ${b.deviceId} log (last 30) ---\n${b.logs.lines.slice(-30).join('\n')}`);
  console.error(`--- hub saw (last 30) ---\n${hub.messages.slice(-30).map((m) => `${m.topic} ${m.text.slice(0, 160)}`).join('\n')}`);
  console.error(`--- mosquitto (last 2000 chars) ---\n${broker.output().slice(-2000)}`);
}

beforeAll(async () => {
  caps = await capabilities();
  broker = await Mosquitto.start({ devices: { ...Object.fromEntries(IDS.map((id) => [id, GROUP])), 'box-x': 'grp-two' } });
  res.add('mosquitto', () => broker.stop());
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
  res.add('hub client', () => hub.close());
  srtHub = await startHub(res, { video: SMALL });
}, 60_000);

afterAll(() => res.release(), 60_000);

describe('three boxes of one group', () => {
  const boxes: TestBox[] = [];
  const fleet = new Resources();

  beforeAll(async () => {
    const since = hub.mark();
    for (const id of IDS) {
      const b = await TestBox.start({ deviceId: id, groupId: GROUP, broker, caps });
      boxes.push(b);
      fleet.add(id, () => boxes.find((x) => x.deviceId === id)?.dispose());
    }
    await Promise.all(IDS.map((id) => hub.waitState(id, (s) => s.state === 'idle', 20_000, since)));
  }, 60_000);

  /** The ingest hubs and fan-in of one test. */
  const phase = new Resources();

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') dump(boxes);
    await phase.release();
  }, 60_000);

  afterAll(async () => {
    await hub.setMeeting(GROUP, null).catch(() => undefined);
    await fleet.release();
  }, 60_000);

  it('one group join command: every box replies once, reaches in_meeting and decodes the program; group leave brings all back', async () => {
    const { hubs, fanIn } = await ingestHubs(IDS.length, phase);
    const since = hub.mark();
    const t0 = Date.now();
    const id = await hub.send({ group: GROUP }, 'join', spec('grp-cmd-1', fanIn) as unknown as Record<string, unknown>);
    await Promise.all(IDS.map((d) => hub.reply(id, 20_000, d)));
    await sleep(GRACE_MS);
    for (const d of IDS) {
      const rs = hub.replies(id, d);
      expect(rs, `${d}: ${JSON.stringify(rs)}`).toHaveLength(1);
      expect(rs[0]).toMatchObject({ id, deviceId: d, command: 'join', ok: true, result: { meetingId: 'grp-cmd-1', state: 'joining' } });
    }
    const states = await Promise.all(IDS.map((d) => hub.waitState(d, (s) => s.state === 'in_meeting', 20_000, since)));
    const inMeetingMs = Date.now() - t0;
    for (const s of states) expect(s).toMatchObject({ meeting: { id: 'grp-cmd-1' }, media: { send: 'ok' } });
    const [fps, ingestFps] = await Promise.all([Promise.all(boxes.map((b) => receivesProgram(b))), hubsReceive(hubs)]);
    expect(fanIn.size, 'one SRT flow per box').toBe(IDS.length);
    console.info('group join', { inMeetingMs, boxReceiveFps: fps, hubIngestFps: ingestFps });

    const leaveSince = hub.mark();
    const leave = await hub.send({ group: GROUP }, 'leave');
    await Promise.all(IDS.map((d) => hub.reply(leave, 15_000, d)));
    await sleep(GRACE_MS);
    for (const d of IDS) expect(hub.replies(leave, d).map((r) => r.result)).toEqual([{ left: 'grp-cmd-1' }]);
    await Promise.all(IDS.map((d) => hub.waitState(d, (s) => s.state === 'idle' && s.meeting === null, 15_000, leaveSince)));
  }, 90_000);

  it('the retained group meeting: every box joins by itself; a restarted box rejoins it; clearing it ends it everywhere', async () => {
    // Three boxes now, and box-b again after its restart: four flows.
    const { hubs, fanIn } = await ingestHubs(IDS.length + 1, phase);
    const since = hub.mark();
    const t0 = Date.now();
    await hub.setMeeting(GROUP, spec('grp-retained-1', fanIn));
    await Promise.all(IDS.map((d) => hub.waitState(d, (s) => s.state === 'in_meeting' && (s.meeting as { id?: string } | null)?.id === 'grp-retained-1', 20_000, since)));
    const joinMs = Date.now() - t0;
    await Promise.all([Promise.all(boxes.map((b) => receivesProgram(b))), hubsReceive(hubs.slice(0, IDS.length))]);
    for (const d of IDS) expect(hub.events(d).filter((e) => e.type === 'meeting_join' && e.detail?.meetingId === 'grp-retained-1').map((e) => e.detail?.source)).toEqual(['group']);

    // A reboot of box-b: stop(), a new Agent on the same config and dataDir, start().
    const i = boxes.findIndex((b) => b.deviceId === 'box-b');
    const old = boxes[i]!;
    const oldBoot = (hub.of('status', 'box-b').at(-1)?.json as { bootId?: string } | undefined)?.bootId;
    const restartSince = hub.mark();
    const r0 = Date.now();
    const fresh = await old.restart(caps);
    boxes[i] = fresh;
    const startedMs = Date.now() - r0;
    const online = await hub.waitFor((m) => m.n > restartSince && m.kind === 'status' && m.deviceId === 'box-b' && (m.json as { online?: boolean })?.online === true, 15_000, 'box-b online again');
    expect((online.json as { bootId: string }).bootId).not.toBe(oldBoot);
    await hub.waitState('box-b', (s) => s.state === 'in_meeting' && (s.meeting as { id?: string } | null)?.id === 'grp-retained-1', 20_000, restartSince);
    const rejoinMs = Date.now() - r0;
    const [rejoinFps, [ingestFps]] = await Promise.all([receivesProgram(fresh), hubsReceive(hubs.slice(IDS.length))]);
    const decodingMs = Date.now() - r0;
    expect(fanIn.size).toBe(IDS.length + 1);
    // It rejoined from the retained message (the group meeting is not kept on disk), once.
    const rejoined = hub.events('box-b').filter((e) => e.type === 'meeting_join' && e.detail?.meetingId === 'grp-retained-1');
    expect(rejoined.map((e) => e.detail?.source)).toEqual(['group', 'group']);
    expect(fresh.logs.records('meeting.restore')).toEqual([]);
    // The other boxes did not notice.
    for (const b of boxes.filter((x) => x !== fresh)) expect(b.agent.meeting.phase).toBe('in_meeting');
    console.info('retained meeting', { joinMs, restart: { startedMs, rejoinMs, decodingMs, rejoinFps, hubIngestFps: ingestFps } });

    const clearSince = hub.mark();
    await hub.setMeeting(GROUP, null);
    await Promise.all(IDS.map((d) => hub.waitState(d, (s) => s.state === 'idle' && s.meeting === null, 15_000, clearSince)));
  }, 120_000);
});

describe('the broker ACL confines each certificate', () => {
  let boxA: TestBox;
  const raw: MqttClient[] = [];
  const local = new Resources();

  beforeAll(async () => {
    const since = hub.mark();
    boxA = await TestBox.start({ deviceId: 'box-a', groupId: GROUP, broker, caps });
    local.add('box-a', () => boxA.dispose());
    await hub.waitState('box-a', (s) => s.state === 'idle', 20_000, since);
  }, 60_000);

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') dump([boxA]);
  });

  afterAll(async () => {
    await Promise.all(raw.map((c) => c.endAsync(true).catch(() => undefined)));
    await local.release();
  }, 30_000);

  /** A raw MQTT client holding `cert`'s certificate and key. */
  async function client(cert: string, o: Partial<IClientOptions> = {}): Promise<MqttClient> {
    const t = broker.tls(cert);
    const c = mqtt.connect(broker.url, { clientId: cert, protocolVersion: 5, reconnectPeriod: 0, ca: readFileSync(t.caFile), cert: readFileSync(t.certFile), key: readFileSync(t.keyFile), ...o });
    raw.push(c);
    c.on('error', () => undefined);
    await withTimeout(new Promise<void>((r) => c.once('connect', () => r())), 10_000, `${cert} to connect`);
    return c;
  }

  it("box-b's certificate receives none of box-a's commands nor another group's meeting; box-a gets them", async () => {
    const b = await client('box-b');
    const got: string[] = [];
    b.on('message', (topic) => got.push(topic));
    const granted = await b.subscribeAsync({ 'ep/v1/dev/box-a/cmd/#': { qos: 1 }, 'ep/v1/grp/grp-two/#': { qos: 1 }, 'ep/v1/dev/box-b/cmd/#': { qos: 1 } });
    // Mosquitto 2.0 grants the subscription (its ACL filters on delivery, not on SUBSCRIBE).
    console.info('SUBACK for box-b', granted.map((g) => `${g.topic}: ${g.qos}`));
    const id = await hub.send({ device: 'box-a' }, 'identify', { seconds: 1 });
    await hub.publish('ep/v1/grp/grp-two/meeting', JSON.stringify(spec('grp-two-secret-meeting')), { qos: 1, retain: true });
    // Positive control on the same client: its own commands do arrive.
    await hub.publish('ep/v1/dev/box-b/cmd/identify', JSON.stringify({ id: newId(), args: {} }), { qos: 1 });
    await withTimeout(
      new Promise<void>((r) => b.on('message', (t) => t === 'ep/v1/dev/box-b/cmd/identify' && r())),
      10_000,
      "box-b's own command",
    );
    const reply = await hub.reply(id, 15_000, 'box-a');
    expect(reply.ok).toBe(true);
    expect(boxA.leds.blinks).toEqual([1000]);
    await sleep(GRACE_MS);
    expect(got).toEqual(['ep/v1/dev/box-b/cmd/identify']);
    await hub.publish('ep/v1/grp/grp-two/meeting', '', { qos: 1, retain: true });
  });

  it("box-b's certificate cannot publish box-a's status, reply, or the group meeting (MQTT 5: refused; 3.1.1: silently dropped)", async () => {
    const mark = hub.mark();
    const v5 = await client('box-b');
    const refused: Array<{ topic: string; code: number | undefined }> = [];
    const forged = [
      { topic: 'ep/v1/dev/box-a/status', payload: JSON.stringify({ online: false, ts: new Date().toISOString() }), retain: true },
      { topic: 'ep/v1/dev/box-a/reply', payload: JSON.stringify({ id: 'forged', deviceId: 'box-a', command: 'leave', ok: true }), retain: false },
      { topic: 'ep/v1/grp/grp-one/meeting', payload: JSON.stringify(spec('hijacked')), retain: true },
    ];
    for (const f of forged) {
      const err = await v5.publishAsync(f.topic, f.payload, { qos: 1, retain: f.retain }).then(
        () => null,
        (e: Error & { code?: number }) => e,
      );
      refused.push({ topic: f.topic, code: err?.code });
    }
    expect(refused).toEqual(forged.map((f) => ({ topic: f.topic, code: 135 })));
    await v5.endAsync(true);
    const v4 = await client('box-b', { protocolVersion: 4 });
    for (const f of forged) await v4.publishAsync(f.topic, f.payload, { qos: 1, retain: f.retain });
    // Positive control: box-b's own event does get through, after the forged ones.
    await v4.publishAsync('ep/v1/dev/box-b/event', JSON.stringify({ type: 'control', severity: 'info', ts: new Date().toISOString() }), { qos: 1 });
    await hub.waitFor((m) => m.n > mark && m.topic === 'ep/v1/dev/box-b/event', 10_000, "box-b's own event");
    await sleep(GRACE_MS);
    const seen = hub.messages.filter((m) => m.n > mark).map((m) => m.topic);
    expect(seen.filter((t) => t.startsWith('ep/v1/dev/box-a/'))).toEqual([]);
    expect(boxA.agent.meeting.phase).toBe('idle'); // the hijacked meeting never reached box-a
    // A fresh subscriber sees box-a's own retained status, not the forged one.
    const probe = await HubClient.connect({ url: broker.url, tls: broker.tls('hub'), clientId: 'hub-probe' });
    try {
      const st = await probe.waitFor((m) => m.kind === 'status' && m.deviceId === 'box-a', 10_000, "box-a's retained status");
      expect(st.json).toMatchObject({ online: true, version: '0.1.0-test' });
    } finally {
      await probe.close();
    }
  });

  it("box-b's certificate claiming client id box-a does not take over box-a's session", async () => {
    const reconnects = boxA.logs.records('mqtt.reconnect_scheduled').length;
    const impostor = await client('box-b', { clientId: 'box-a', clean: false, properties: { sessionExpiryInterval: 3600 } });
    const got: string[] = [];
    impostor.on('message', (t) => got.push(t));
    const id = await hub.send({ device: 'box-a' }, 'identify', { seconds: 2 });
    const reply: Reply = await hub.reply(id, 15_000, 'box-a');
    expect(reply.ok).toBe(true);
    expect(boxA.leds.blinks.at(-1)).toBe(2000);
    await sleep(GRACE_MS);
    expect(boxA.agent.mqtt.connected).toBe(true);
    expect(boxA.logs.records('mqtt.reconnect_scheduled')).toHaveLength(reconnects);
    expect(got).toEqual([]);
  });
});
