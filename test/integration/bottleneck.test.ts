/**
 * The user-space bottleneck relay (helpers/bottleneck.ts) on real UDP: it holds the rate,
 * drops at the tail, queues for queueBytes/capacity, follows capacity changes at once,
 * keeps clients apart like a NAT, and squeezes a real SRT flow (gst-launch srtsink →
 * relay → srt-live-transmit).
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { BottleneckRelay, UDP_IP_OVERHEAD_BYTES, type RelaySample } from './helpers/bottleneck.js';
import { Resources, freePorts } from './helpers/media.js';
import { Processes, gstLaunchArgs, pollUntil, waitListening } from './helpers/processes.js';

const LOCALHOST = '127.0.0.1';
const TS_PACKET_BYTES = 1316;
const LINK_PACKET_BYTES = TS_PACKET_BYTES + UDP_IP_OVERHEAD_BYTES;
/** The link may be off by this much on a busy 2-core machine. */
const RATE_TOLERANCE = 0.15;

const res = new Resources();
const procs = new Processes();
afterEach(async () => {
  await procs.killAll();
  await res.release();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function udpSocket(what: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, LOCALHOST, () => resolve()));
  res.add(what, () => new Promise<void>((resolve) => s.close(() => resolve())));
  return s;
}

interface Arrival {
  at: number;
  bytes: number;
  /** The sender's performance.now() written into the datagram (same process). */
  sentAt: number;
}

/** A UDP receiver recording every datagram's arrival time and size. */
async function udpReceiver(): Promise<{ port: number; arrivals: Arrival[] }> {
  const s = await udpSocket('udp receiver');
  const arrivals: Arrival[] = [];
  s.on('message', (m) => arrivals.push({ at: performance.now(), bytes: m.length, sentAt: m.length >= 8 ? m.readDoubleLE(0) : NaN }));
  return { port: s.address().port, arrivals };
}

/** Sends `kbps` (link bytes) of `size`-byte datagrams to the relay for `ms`, paced in 2-ms steps with catch-up. */
async function blast(relay: BottleneckRelay, opts: { kbps: number; ms: number; size: number }): Promise<{ sent: number; lastSentAt: number }> {
  const s = await udpSocket('udp sender');
  const packetBits = (opts.size + UDP_IP_OVERHEAD_BYTES) * 8;
  const start = performance.now();
  let sent = 0;
  let lastSentAt = start;
  for (let now = start; now - start < opts.ms; now = performance.now()) {
    const due = Math.floor(((now - start) * opts.kbps) / packetBits);
    for (; sent < due; sent++) {
      const d = Buffer.alloc(opts.size);
      lastSentAt = performance.now();
      d.writeDoubleLE(lastSentAt, 0);
      s.send(d, relay.port, LOCALHOST);
    }
    await sleep(2);
  }
  return { sent, lastSentAt };
}

/** Link rate (payload + IP/UDP headers) of the datagrams that arrived in [from, to). */
function linkKbps(arrivals: Arrival[], from: number, to: number): number {
  const bytes = arrivals.filter((a) => a.at >= from && a.at < to).reduce((sum, a) => sum + a.bytes + UDP_IP_OVERHEAD_BYTES, 0);
  return (bytes * 8) / (to - from);
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function within(value: number, expected: number, tolerance: number): void {
  expect(value).toBeGreaterThanOrEqual(expected * (1 - tolerance));
  expect(value).toBeLessThanOrEqual(expected * (1 + tolerance));
}

/** One line per sample for the logs. */
const brief = (samples: RelaySample[]): string[] =>
  samples.map((s) => `${(s.tMs / 1000).toFixed(2)} s cap ${s.capacityKbps} in ${s.inKbps.toFixed(0)} out ${s.outKbps.toFixed(0)} kbit/s, dropped ${s.droppedPackets}, queue ${s.queueBytes} B / ${s.queueDelayMs.toFixed(0)} ms`);

const between = (samples: RelaySample[], fromMs: number, toMs: number): RelaySample[] => samples.filter((s) => s.tMs >= fromMs && s.tMs < toMs);

async function startRelay(opts: Parameters<typeof BottleneckRelay.start>[0]): Promise<BottleneckRelay> {
  const relay = await BottleneckRelay.start(opts);
  res.add('bottleneck relay', () => relay.close());
  return relay;
}

/** The last `-s -pf:json -f` report of srt-live-transmit's receiving socket (totals since the connection). */
function srtReceiverStats(output: string): unknown {
  const last = output.split('\n').filter((l) => l.startsWith('{"sid"')).at(-1);
  if (!last) return 'no stats report yet';
  const { link, recv } = JSON.parse(last) as { link: { rtt: number }; recv: Record<string, number> };
  return { rttMs: link.rtt, packets: recv.packets, lost: recv.packetsLost, dropped: recv.packetsDropped, retransmitted: recv.packetsRetransmitted, belated: recv.packetsBelated };
}

describe('BottleneckRelay', () => {
  it('holds 2 Mbit/s of 1316-byte datagrams to 500 kbit/s, drops at the tail and queues for queueBytes/capacity', async () => {
    const capacityKbps = 500;
    const queueBytes = 60_000;
    const rx = await udpReceiver();
    const relay = await startRelay({ target: { host: LOCALHOST, port: rx.port }, capacityKbps, queueBytes });
    const t0 = performance.now();
    const { sent, lastSentAt } = await blast(relay, { kbps: 2000, ms: 3000, size: TS_PACKET_BYTES });
    await sleep(20); // the last datagrams reach the relay
    const atStop = relay.totals();
    const stillQueued = atStop.inPackets - atStop.outPackets - atStop.droppedPackets;
    // The queue was full (within a packet) at the last send; since then the link went on serving.
    const fullPackets = Math.floor(queueBytes / LINK_PACKET_BYTES);
    const departedSince = Math.floor(((performance.now() - lastSentAt) * capacityKbps) / 8 / LINK_PACKET_BYTES) + 1;

    await pollUntil(() => rx.arrivals.length === relay.totals().outPackets && relay.totals().outPackets + relay.totals().droppedPackets === sent, 3000, 'the queue to drain');
    const totals = relay.totals();
    const received = rx.arrivals.length;
    const rateKbps = linkKbps(rx.arrivals, t0 + 500, t0 + 3000);
    const delays = rx.arrivals.filter((a) => a.at >= t0 + 1500).map((a) => a.at - a.sentAt);
    const fullQueueMs = (queueBytes * 8) / capacityKbps;
    const steady = between(relay.samples(), 1500, 3000);
    console.info('500 kbit/s bottleneck', { sent, received, stillQueued, departedSince, totals, rateKbps: +rateKbps.toFixed(1), medianDelayMs: +median(delays).toFixed(1), fullQueueMs, steady: brief(steady) });

    expect(sent * LINK_PACKET_BYTES * 8).toBeGreaterThan(0.9 * 2000 * 3000); // the load was really offered
    within(rateKbps, capacityKbps, RATE_TOLERANCE);
    expect(totals.inPackets).toBe(sent);
    expect(totals.outPackets).toBe(received);
    expect(totals.droppedPackets).toBe(sent - received);
    expect(totals.droppedPackets).toBeGreaterThan(sent / 2);
    expect(stillQueued).toBeLessThanOrEqual(fullPackets);
    expect(stillQueued).toBeGreaterThanOrEqual(fullPackets - 1 - departedSince);
    within(median(delays), fullQueueMs, RATE_TOLERANCE);
    for (const s of steady) {
      within(s.queueDelayMs, fullQueueMs, RATE_TOLERANCE);
      expect(s.droppedPackets).toBeGreaterThan(0);
    }
  }, 15_000);

  it('follows a capacity change at once, for the packets already queued too (500 → 2000 kbit/s under 3 Mbit/s)', async () => {
    const changeAtMs = 1500;
    const rx = await udpReceiver();
    const relay = await startRelay({ target: { host: LOCALHOST, port: rx.port }, capacityKbps: 500 });
    const t0 = performance.now();
    relay.schedule([{ atMs: changeAtMs, kbps: 2000 }]);
    await blast(relay, { kbps: 3000, ms: 3500, size: TS_PACKET_BYTES });

    const before = linkKbps(rx.arrivals, t0 + 500, t0 + changeAtMs);
    // The 60 kB queued at 500 kbit/s (~1 s of it) leaves in 240 ms at the new rate.
    const drainingQueue = linkKbps(rx.arrivals, t0 + changeAtMs + 50, t0 + changeAtMs + 250);
    const after = linkKbps(rx.arrivals, t0 + changeAtMs + 250, t0 + 3500);
    const samples = relay.samples();
    console.info('500 → 2000 kbit/s', { before: +before.toFixed(1), drainingQueue: +drainingQueue.toFixed(1), after: +after.toFixed(1), samples: brief(samples) });

    within(before, 500, RATE_TOLERANCE);
    within(drainingQueue, 2000, 0.25); // a 200-ms window: a single event-loop stall shows
    within(after, 2000, RATE_TOLERANCE);
    expect(between(samples, 0, changeAtMs - 50).every((s) => s.capacityKbps === 500)).toBe(true);
    expect(between(samples, changeAtMs + 50, 3500).every((s) => s.capacityKbps === 2000)).toBe(true);
    for (const s of between(samples, changeAtMs + 500, 3500)) within(s.queueDelayMs, (60_000 * 8) / 2000, 0.25);
  }, 15_000);

  it('sends the target’s replies back to the client that sent the request, also to a caller that restarted on a new port', async () => {
    const target = await udpSocket('echo target');
    const seenFrom = new Set<number>();
    target.on('message', (m, from) => {
      seenFrom.add(from.port);
      target.send(m, from.port, from.address);
    });
    const relay = await startRelay({ target: { host: LOCALHOST, port: target.address().port }, capacityKbps: 1000, reverseCapacityKbps: 1000 });

    const client = async (name: string): Promise<{ replies: string[]; ask: (n: number) => Promise<void> }> => {
      const sock = await udpSocket(name);
      const replies: string[] = [];
      sock.on('message', (m) => replies.push(m.toString()));
      const ask = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) sock.send(`${name} ${i}`, relay.port, LOCALHOST);
        await pollUntil(() => replies.length >= n, 3000, `${n} replies to ${name}`);
      };
      return { replies, ask };
    };
    const a = await client('a');
    const b = await client('b');
    await Promise.all([a.ask(20), b.ask(20)]);
    await sleep(100); // anything misrouted arrives too
    expect(a.replies.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `a ${i}`).sort());
    expect(b.replies.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `b ${i}`).sort());
    expect(seenFrom.size).toBe(2);

    // A restarted caller comes from a new port: served at once while the old mapping lingers.
    const restarted = await client('a-restarted');
    await restarted.ask(1);
    expect(restarted.replies).toEqual(['a-restarted 0']);
    expect(seenFrom.size).toBe(3);
  }, 10_000);

  it('squeezes a real SRT flow: ≈ the sent rate at 4000 kbit/s, ≤ 350 kbit/s at 300 kbit/s', async () => {
    const phaseMs = 5000;
    const [hubPort] = (await freePorts(1)) as [number];
    const rx = await udpReceiver();
    const hub = procs.spawn('srt-live-transmit (hub)', 'srt-live-transmit', ['-s:25', '-pf:json', '-f', `srt://:${hubPort}?mode=listener&latency=200`, `udp://${LOCALHOST}:${rx.port}`]);
    await waitListening(hub, hubPort);
    const t0 = performance.now(); // ≈ the relay's start, the origin of its samples
    const relay = await startRelay({ target: { host: LOCALHOST, port: hubPort }, capacityKbps: 4000 });
    const box = procs.spawn(
      'gst-launch srtsink (box)',
      'gst-launch-1.0',
      gstLaunchArgs(
        'videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=25/1' +
          ' ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=800 ! mpegtsmux alignment=7' +
          ` ! srtsink uri="srt://${LOCALHOST}:${relay.port}?mode=caller" latency=200`,
      ),
    );
    const output = (): string => `--- box ---\n${box.output().slice(-2000)}\n--- hub ---\n${hub.output().slice(-2000)}`;
    await pollUntil(() => rx.arrivals.length > 0, 10_000, 'the first TS bytes at the hub', () => (box.running() && hub.running() ? null : output()));
    const tsKbps = (from: number, to: number): number => (rx.arrivals.filter((a) => a.at >= from && a.at < to).reduce((sum, a) => sum + a.bytes, 0) * 8) / (to - from);

    const wideFrom = performance.now() + 1000;
    await sleep(1000 + phaseMs / 2);
    const wideTo = performance.now();
    const wideTs = tsKbps(wideFrom, wideTo);
    // SRT data packets carry 1316 bytes of TS in 1316 + 16 (SRT) + 28 (IP/UDP) link bytes (plus small control packets).
    const wideSentTs = (mean(between(relay.samples(), wideFrom - t0, wideTo - t0).map((s) => s.inKbps)) * TS_PACKET_BYTES) / (TS_PACKET_BYTES + 16 + UDP_IP_OVERHEAD_BYTES);
    const wideDrops = relay.totals().droppedPackets;

    relay.setCapacity(300);
    const narrowFrom = performance.now() + 1500; // the queue fills, SRT's losses set in
    await sleep(1500 + phaseMs / 2);
    const narrowTo = performance.now();
    const narrowTs = tsKbps(narrowFrom, narrowTo);
    const narrow = between(relay.samples(), narrowFrom - t0, narrowTo - t0);
    console.info('SRT through the bottleneck', {
      wideTs: +wideTs.toFixed(1),
      wideSentTs: +wideSentTs.toFixed(1),
      wideDrops,
      narrowTs: +narrowTs.toFixed(1),
      narrow: brief(narrow),
      totals: relay.totals(),
      hub: srtReceiverStats(hub.output()),
    });

    expect(box.running() && hub.running(), output()).toBe(true);
    expect(wideTs, output()).toBeGreaterThan(500); // x264 at 800 kbit/s really got through
    within(wideTs, wideSentTs, RATE_TOLERANCE);
    expect(wideDrops).toBe(0);
    expect(narrowTs).toBeLessThanOrEqual(350);
    expect(narrowTs).toBeGreaterThan(150); // squeezed, not broken: the connection still delivers
    expect(narrow.reduce((sum, s) => sum + s.droppedPackets, 0)).toBeGreaterThan(0);
    expect(mean(narrow.map((s) => s.outKbps))).toBeGreaterThan(300 * (1 - RATE_TOLERANCE));
  }, 25_000);
});
