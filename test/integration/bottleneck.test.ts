/**
 * The user-space bottleneck relay (helpers/bottleneck.ts) on real UDP: every packet is
 * accounted for (in = out + dropped + queued), it drops at the tail and never sends more
 * than its capacity allows, it follows capacity changes, keeps clients apart like a NAT,
 * and squeezes a real SRT flow (gst-launch srtsink → relay → srt-live-transmit). Exact
 * rates and queueing delays are the unit test's (test/unit/bottleneck-link.test.ts, a
 * FakeClock): here, on a shared machine, only counts and bounds that lateness cannot break.
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
  // A late wake-up at the end does not shorten the load: the rest of it goes now.
  for (const due = Math.floor((opts.ms * opts.kbps) / packetBits); sent < due; sent++) s.send(Buffer.alloc(opts.size), relay.port, LOCALHOST);
  return { sent, lastSentAt };
}

/** Link bits the relay may have sent since `t0` at `capacityKbps`, plus a full queue and one packet. */
const mostBits = (t0: number, capacityKbps: number, queueBytes = 60_000): number => (performance.now() - t0) * capacityKbps + (queueBytes + LINK_PACKET_BYTES) * 8;

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
  it('takes 2 Mbit/s of 1316-byte datagrams into a 500 kbit/s link: drops at the tail, never more out than the capacity, every packet accounted for', async () => {
    const capacityKbps = 500;
    const queueBytes = 60_000;
    const rx = await udpReceiver();
    const relay = await startRelay({ target: { host: LOCALHOST, port: rx.port }, capacityKbps, queueBytes });
    const t0 = performance.now();
    const { sent } = await blast(relay, { kbps: 2000, ms: 3000, size: TS_PACKET_BYTES });
    expect(sent).toBe(Math.floor((3000 * 2000) / (LINK_PACKET_BYTES * 8))); // the whole load was offered
    await pollUntil(() => relay.totals().inPackets === sent, 15_000, 'the relay to read every datagram');
    const atStop = relay.totals();
    const stillQueued = atStop.inPackets - atStop.outPackets - atStop.droppedPackets;
    await pollUntil(() => rx.arrivals.length === relay.totals().outPackets && relay.totals().outPackets + relay.totals().droppedPackets === sent, 15_000, 'the queue to drain');
    const totals = relay.totals();
    console.info('500 kbit/s bottleneck', { sent, received: rx.arrivals.length, stillQueued, totals, samples: brief(between(relay.samples(), 0, 3500)) });

    expect(totals.inPackets).toBe(sent);
    expect(totals.outPackets).toBe(rx.arrivals.length);
    expect(totals.droppedPackets).toBe(sent - rx.arrivals.length);
    // 4× the capacity offered: most of it dropped at the tail, the queue never past its limit.
    expect(totals.droppedPackets).toBeGreaterThan(sent / 2);
    expect(stillQueued).toBeLessThanOrEqual(Math.floor(queueBytes / LINK_PACKET_BYTES));
    expect(totals.outBytes * 8).toBeLessThanOrEqual(mostBits(t0, capacityKbps, queueBytes));
    for (const smp of relay.samples()) expect(smp.queueBytes).toBeLessThanOrEqual(queueBytes);
  }, 30_000);

  it('follows a capacity change (500 → 2000 kbit/s under 3 Mbit/s): its state changes at the scheduled time, and it never sends more than the capacities allow', async () => {
    const changeAtMs = 1500;
    const rx = await udpReceiver();
    const relay = await startRelay({ target: { host: LOCALHOST, port: rx.port }, capacityKbps: 500 });
    const t0 = performance.now();
    relay.schedule([{ atMs: changeAtMs, kbps: 2000 }]);
    const { sent } = await blast(relay, { kbps: 3000, ms: 3500, size: TS_PACKET_BYTES });
    await pollUntil(() => relay.totals().inPackets === sent && relay.totals().outPackets + relay.totals().droppedPackets === sent && rx.arrivals.length === relay.totals().outPackets, 15_000, 'the queue to drain');
    const samples = relay.samples();
    console.info('500 → 2000 kbit/s', { sent, totals: relay.totals(), samples: brief(samples) });

    expect(between(samples, 0, changeAtMs - 50).every((x) => x.capacityKbps === 500)).toBe(true);
    expect(between(samples, changeAtMs + 50, 3500).every((x) => x.capacityKbps === 2000)).toBe(true);
    expect(relay.totals().outBytes * 8).toBeLessThanOrEqual(changeAtMs * 500 + mostBits(t0 + changeAtMs, 2000));
    expect(rx.arrivals.length).toBe(relay.totals().outPackets);
  }, 30_000);

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

  it('squeezes a real SRT flow: nothing dropped at 4000 kbit/s, drops and never more than 300 kbit/s out at 300 kbit/s, the connection still delivering', async () => {
    const phaseMs = 5000;
    const [hubPort] = (await freePorts(1)) as [number];
    const rx = await udpReceiver();
    const hub = procs.spawn('srt-live-transmit (hub)', 'srt-live-transmit', ['-s:25', '-pf:json', '-f', `srt://:${hubPort}?mode=listener&latency=200`, `udp://${LOCALHOST}:${rx.port}`]);
    await waitListening(hub, hubPort);
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
    await pollUntil(() => rx.arrivals.length > 0, 30_000, 'the first TS bytes at the hub', () => (box.running() && hub.running() ? null : output()));

    await sleep(1000 + phaseMs / 2);
    const wideDrops = relay.totals().droppedPackets;
    const wideArrivals = rx.arrivals.length;

    relay.setCapacity(300);
    const narrowAt = performance.now();
    const outAtNarrow = relay.totals().outBytes;
    await sleep(1500 + phaseMs / 2);
    const narrowOutBits = (relay.totals().outBytes - outAtNarrow) * 8;
    const narrowArrivals = rx.arrivals.length - wideArrivals;
    const narrow = relay.samples().filter((x) => x.capacityKbps === 300);
    console.info('SRT through the bottleneck', { wideArrivals, wideDrops, narrowArrivals, narrowOutKbps: +(narrowOutBits / (performance.now() - narrowAt)).toFixed(1), totals: relay.totals(), narrow: brief(narrow), hub: srtReceiverStats(hub.output()) });

    expect(box.running() && hub.running(), output()).toBe(true);
    expect(wideArrivals, output()).toBeGreaterThan(0);
    expect(wideDrops).toBe(0); // 800 kbit/s of x264 through 4 Mbit/s
    expect(relay.totals().droppedPackets).toBeGreaterThan(0); // and through 300 kbit/s: squeezed
    expect(narrowOutBits).toBeLessThanOrEqual(mostBits(narrowAt, 300)); // never more than the link
    expect(narrowArrivals, output()).toBeGreaterThan(0); // not broken: the connection still delivers
  }, 60_000);
});
