/**
 * A box in a meeting over a bad link (issue [proof], network faults): the real agent and
 * its media worker, a real Mosquitto, a LocalHub auditing what it receives, and user-space
 * relays between them (this kernel has no netem): helpers/bottleneck.ts + impair.ts on
 * each SRT connection, helpers/tcp-relay.ts in front of the broker.
 *
 * - 5 % random loss with 50 ± 20 ms delay on the box's uplink for 60 s at SRT latency
 *   200 ms: ≥ 99 % of the video frames reach the hub whole, no hole in the picture over
 *   300 ms, the audio unbroken — no hole a listener hears as a break (over 100 ms: Opus
 *   conceals a shorter one) and at most 0.5 % of it lost (none in 3 runs of 4 here) — and
 *   MQTT stays up.
 * - The link down for 30 s (every packet of both SRT connections and of MQTT vanishes,
 *   nothing is closed), then up: media both ways back ≤ 5 s after, with no hub command —
 *   the box's video at the hub, the program at the box (its receive leg connected; the
 *   picture waits for the hub's next keyframe: printed, not bounded); MQTT back; the events the box raised
 *   meanwhile delivered once each, in order.
 *
 * The hub counts frames by PTS in the TS it receives (gst-pipelines/mpegts/audit.ts):
 * whole, broken, or missing as a hole — exact, whatever the machine's load. The 5 s is a
 * bound the issue sets on the box's reconnection; what makes it up is SRT's connect
 * timeout and the supervisor's retry pace, not CPU (see the comment at the assertion).
 */
import { describe, expect, it } from 'vitest';
import type { BoxEvent } from './helpers/hub-client.js';
import { Resources, type MediaLog, type Sample } from './helpers/media.js';
import { hubAudit, startNetBox, type NetBox, type NetBoxOptions } from './helpers/net-box.js';
import { withTimeout } from './helpers/processes.js';
import { TcpRelay } from './helpers/tcp-relay.js';

const GROUP = 'grp-net';
const SRT_LATENCY_MS = 200;
/**
 * netem's `loss 5% delay 50ms 20ms` on the box's uplink, its jitter in order (a pfifo
 * child; a mobile link's scheduler varies the delay, it does not reorder a flow).
 */
const LOSSY = { lossPct: 5, delayMs: 50, jitterMs: 20, inOrder: true };
const LOSSY_S = 60;
const DOWN_S = 30;
/** An audio hole longer than this is a break a listener hears; Opus's loss concealment covers a shorter one. */
const AUDIO_BREAK_MS = 100;

/**
 * One scenario on its own broker, hub, relays and box (the two scenarios run at once:
 * describe.concurrent), released after it; on a failure, what the box logged.
 */
async function scenario(options: (res: Resources) => NetBoxOptions, body: (net: NetBox) => Promise<void>): Promise<void> {
  const res = new Resources();
  let net: NetBox | null = null;
  try {
    net = await startNetBox(res, options(res));
    await body(net);
  } catch (e) {
    if (net) {
      console.error(`--- ${net.box.deviceId} log (last 60) ---\n${net.box.logs.lines.slice(-60).join('\n')}`);
      console.error(`--- box media: ${net.boxLog.describe()}\n--- hub media: ${net.hubLog.describe()}`);
    }
    throw e;
  } finally {
    await res.release();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The first sample, already logged or still to come (30 s hang guard), that satisfies `pred`. */
function firstSample(log: MediaLog, pred: (s: Sample) => boolean, what: string): Promise<Sample> {
  const seen = log.samples.find(pred);
  return seen ? Promise.resolve(seen) : log.nextSample(pred, 30_000, what);
}

// Each scenario waits on the link most of its time (60 s, 30 s): together they take the longer one's.
describe.concurrent('a box in a meeting over a bad link', () => {
  it(`5 % loss, 50 ± 20 ms on the uplink for ${LOSSY_S} s at SRT latency ${SRT_LATENCY_MS} ms: ≥ 99 % of the frames whole at the hub, no hole over 300 ms, no audio break, MQTT up`, async () => {
    // The link is bad from the start, as a box on rural 4G joins over it (SRT measures its RTT at the handshake).
    await scenario(() => ({ deviceId: 'box-lossy', groupId: GROUP, srtLatencyMs: SRT_LATENCY_MS, impair: LOSSY }), async ({ box, hub, sendLink, receiveLink, hubLog }) => {
      const offline: number[] = [];
      box.agent.mqtt.on('offline', () => offline.push(Date.now()));
      const mark = hub.mark();
      const workerPid = box.agent.media.status().workerPid;

      const t0 = Date.now();
      await sleep(LOSSY_S * 1000);
      const t1 = Date.now();
      const a = hubAudit(hubLog.samples, t0, t1);
      const lost = sendLink.impairTotals();
      const table = JSON.stringify({ audit: a, sendLink: lost, receiveLink: receiveLink.impairTotals() });
      console.info('lossy link', table);
      // The relay did lose ~5 % (SRT's own recovery is what is on trial).
      expect(lost.forward.lostPackets / lost.forward.inPackets, table).toBeGreaterThan(0.035);
      expect(a.reports, table).toBeGreaterThanOrEqual(LOSSY_S - 5);
      expect(a.videoPct, table).toBeGreaterThanOrEqual(99);
      expect(a.videoLongestHoleMs, table).toBeLessThanOrEqual(300);
      expect(a.audioFrames, table).toBeGreaterThan(0.9 * 50 * (LOSSY_S - 1));
      expect(a.audioMissingMs + 20 * a.audioBroken, table).toBeLessThanOrEqual(0.005 * LOSSY_S * 1000);
      expect(a.audioLongestHoleMs, table).toBeLessThanOrEqual(AUDIO_BREAK_MS);
      expect(a.audioPtsBackwards, table).toBe(0);
      // One session the whole time: no worker restart, MQTT never dropped, and still answering.
      expect(box.agent.media.status().workerPid, table).toBe(workerPid);
      expect(offline, 'the box saw MQTT go offline').toEqual([]);
      expect(hub.of('status', box.deviceId).filter((m) => m.n > mark), 'status changes at the hub').toEqual([]);
      const id = await hub.send({ device: box.deviceId }, 'identify', { seconds: 1 });
      expect(await hub.reply(id, 15_000, box.deviceId)).toMatchObject({ ok: true });
    });
  }, 150_000);

  it(`the link down for ${DOWN_S} s, then up: media both ways back ≤ 5 s after, MQTT back, the events raised meanwhile delivered once, in order`, async () => {
    const mqttRelay: { tcp?: TcpRelay } = {};
    const options = (res: Resources): NetBoxOptions => ({
      deviceId: 'box-down',
      groupId: GROUP,
      srtLatencyMs: SRT_LATENCY_MS,
      mqtt: { keepaliveS: 5, reconnectBaseMs: 500, reconnectCapMs: 4000 },
      mqttVia: async (broker) => {
        const r = await TcpRelay.start({ host: '127.0.0.1', port: broker.port });
        res.add('mqtt relay', () => r.close());
        mqttRelay.tcp = r;
        return `mqtts://127.0.0.1:${r.port}`;
      },
    });
    await scenario(options, async ({ box, hub, sendLink, receiveLink, hubLog, boxLog }) => {
      const tcp = mqttRelay.tcp;
      if (!tcp) throw new Error('the MQTT relay did not start');
      const eventsBefore = hub.events(box.deviceId).length;
      const pidBefore = box.agent.media.status().workerPid;

      const offline = withTimeout(new Promise<void>((r) => box.agent.mqtt.once('offline', () => r())), 30_000, 'the box to notice MQTT is gone');
      const tDown = Date.now();
      sendLink.blackout(true);
      receiveLink.blackout(true);
      tcp.setMode('blackhole');
      await offline;
      await sleep(DOWN_S * 1000 - (Date.now() - tDown));
      const mark = hub.mark();
      const tUp = Date.now();
      sendLink.blackout(false);
      receiveLink.blackout(false);
      tcp.setMode('pass');

      // Media back: the hub receives the box's video again; the box receives the program again
      // (its receive leg connected, in a worker started during the outage) and decodes it once
      // the hub's next keyframe comes (every 2 s: the hub's GOP, not the box's to shorten).
      const hubBack = await firstSample(hubLog, (s) => s.at > tUp && (s.stats.receive.audit?.videoFrames ?? 0) > 0, "the hub to receive the box's video again");
      const boxReceives = await firstSample(boxLog, (s) => s.at > tUp && s.pid !== pidBefore && (s.stats.receive.srt?.rttMs ?? null) !== null, "the box's receive leg to connect again");
      const boxSees = await firstSample(boxLog, (s) => s.at > tUp && s.stats.receive.fps !== null && s.stats.receive.fps > 0, "the box to decode the hub's program video again");
      const online = await hub.waitFor((m) => m.n > mark && m.kind === 'status' && m.deviceId === box.deviceId && (m.json as { online?: boolean }).online === true, 30_000, 'the box back online');
      const took = { hubReceivingMs: hubBack.at - tUp, boxReceivingMs: boxReceives.at - tUp, boxSeesMs: boxSees.at - tUp, mqttOnlineMs: online.at - tUp };
      console.info('link down and up', took, boxLog.describe());
      // ≤ 5 s: with the link back, the worker whose SRT callers are mid-connect (libsrt retries
      // a connect every ~1 s within its 3 s timeout; a new worker starts within the link's 2 s
      // backoff cap) gets through at the next try; the stats report that shows it comes ≤ 1 s later.
      expect(took.hubReceivingMs, boxLog.describe()).toBeLessThanOrEqual(5000);
      expect(took.boxReceivingMs, boxLog.describe()).toBeLessThanOrEqual(5000);
      expect(hub.states(box.deviceId).at(-1)?.state).toBe('in_meeting');

      // The events raised while the link was down: delivered after it came back, once, in order.
      await sleep(1000);
      const all = hub.events(box.deviceId);
      const seqs = all.map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      seqs.forEach((s, i) => i > 0 && expect(s, 'no seq twice, none skipped').toBe(seqs[i - 1]! + 1));
      const raisedDown = all.slice(eventsBefore).filter((e: BoxEvent) => Date.parse(e.ts) >= tDown && Date.parse(e.ts) < tUp);
      expect(raisedDown.length, 'events raised while the link was down').toBeGreaterThan(0);
      const arrivedAfter = hub.of('event', box.deviceId).filter((m) => m.n > mark).map((m) => (m.json as BoxEvent).seq);
      for (const e of raisedDown) expect(arrivedAfter.filter((s) => s === e.seq), `event ${e.seq} ${e.type} delivered once after the link came back`).toHaveLength(1);
      const id = await hub.send({ device: box.deviceId }, 'identify', { seconds: 1 });
      expect(await hub.reply(id, 15_000, box.deviceId)).toMatchObject({ ok: true });
    });
  }, 150_000);
});
