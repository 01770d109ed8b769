/**
 * A user-space bottleneck link for tests and benchmarks of link adaptation: this machine
 * has no netem/tc, so the narrow link between a box and its hub is modelled here, as a UDP
 * relay that behaves like a NAT in front of a slow uplink.
 *
 * - NAT: clients send to `port`; each client address:port gets its own upstream socket
 *   (ephemeral port) connected to the target, so the target's replies go back to exactly
 *   that client. A caller that restarts comes from a new port and gets a new mapping at
 *   once; a mapping idle (no packet either way) for 30 s is closed.
 * - Link: the forward direction (client → target) is one FIFO queue shared by all clients,
 *   served at `capacityKbps`. A packet departs at max(arrival, previous departure) +
 *   its size / capacity, computed in virtual time so timer granularity (1 ms) and event-loop
 *   lateness delay packets but do not change the rate. Drop-tail: a packet that would take
 *   the queue past `queueBytes` is dropped.
 * - The reverse direction is unlimited, or the same kind of link if `reverseCapacityKbps`.
 * - Impairments (impair.ts: loss, delay ± jitter, reordering, blackout) act on each
 *   direction after its capacity, as netem after tbf; none by default.
 *
 * Every byte count and rate here is in link bytes: UDP payload + 28 bytes of IPv4/UDP
 * header, what the capacity is spent on. The queue holds every packet not yet departed,
 * including the one being serialised.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { Impairment, realClock, type ImpairOptions, type ImpairTotals, type LinkClock } from './impair.js';

export type { LinkClock } from './impair.js';

/** IPv4 (20) + UDP (8) header bytes each datagram costs on the link. */
export const UDP_IP_OVERHEAD_BYTES = 28;

const DEFAULT_QUEUE_BYTES = 60_000;
const DEFAULT_SAMPLE_MS = 250;
const LISTEN_HOST = '127.0.0.1';
const MAPPING_IDLE_MS = 30_000;
const MAPPING_SWEEP_MS = 5_000;
/** Room for bursts while the event loop is busy elsewhere: kernel drops are not part of the model. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

export interface BottleneckOptions {
  target: { host: string; port: number };
  /** 0 (default): an ephemeral port. */
  listenPort?: number;
  capacityKbps: number;
  /** Drop-tail queue limit in link bytes (default 60 000), for each limited direction. */
  queueBytes?: number;
  /** null or absent: the reverse direction is unlimited. */
  reverseCapacityKbps?: number | null;
  sampleMs?: number;
  /** Loss, delay, jitter, reordering of each direction (impair.ts); none by default. */
  impair?: { forward?: ImpairOptions; reverse?: ImpairOptions };
}

/** The forward link over one sample period (rates and drops within it, queue at its end). */
export interface RelaySample {
  /** Since the relay started. */
  tMs: number;
  capacityKbps: number;
  inKbps: number;
  outKbps: number;
  droppedPackets: number;
  droppedBytes: number;
  queueBytes: number;
  /** Arrival to departure (waiting + serialisation) of the last packet that left the link. */
  queueDelayMs: number;
}

/** Forward-link counters since the relay started. */
export interface RelayTotals {
  inPackets: number;
  outPackets: number;
  droppedPackets: number;
  inBytes: number;
  outBytes: number;
}

function checkKbps(kbps: number): number {
  if (!(kbps > 0)) throw new RangeError(`capacity must be > 0 kbit/s, got ${kbps}`);
  return kbps;
}

interface Queued {
  data: Buffer;
  bytes: number;
  arrivedAt: number;
  deliver: (data: Buffer) => void;
}

/** One direction of the bottleneck: a drop-tail FIFO served at a fixed rate. */
export class Link {
  readonly totals: RelayTotals = { inPackets: 0, outPackets: 0, droppedPackets: 0, inBytes: 0, outBytes: 0 };
  capacityKbps: number;
  droppedBytes = 0;
  queuedBytes = 0;
  lastDelayMs = 0;
  private readonly queue: Queued[] = [];
  /** Virtual time at which the head of the queue leaves; the previous departure while idle. */
  private departAt = 0;
  private timer: unknown;

  constructor(
    capacityKbps: number,
    private readonly queueLimit: number,
    private readonly clock: LinkClock = realClock,
  ) {
    this.capacityKbps = checkKbps(capacityKbps);
  }

  enqueue(data: Buffer, deliver: (data: Buffer) => void): void {
    const bytes = data.length + UDP_IP_OVERHEAD_BYTES;
    this.totals.inPackets++;
    this.totals.inBytes += bytes;
    if (this.queuedBytes + bytes > this.queueLimit) {
      this.totals.droppedPackets++;
      this.droppedBytes += bytes;
      return;
    }
    const now = this.clock.now();
    this.queue.push({ data, bytes, arrivedAt: now, deliver });
    this.queuedBytes += bytes;
    if (this.queue.length === 1) {
      this.departAt = Math.max(now, this.departAt) + this.serialisationMs(bytes);
      this.arm(now);
    }
  }

  /** Takes effect at once: the rest of the packet on the wire and all queued ones go at the new rate. */
  setCapacity(kbps: number): void {
    checkKbps(kbps);
    const now = this.clock.now();
    if (this.queue.length > 0 && this.departAt > now) {
      this.departAt = now + ((this.departAt - now) * this.capacityKbps) / kbps;
      this.arm(now);
    }
    this.capacityKbps = kbps;
  }

  close(): void {
    this.clock.clearTimeout(this.timer);
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  /** kbit/s is bits per millisecond. */
  private serialisationMs(bytes: number): number {
    return (bytes * 8) / this.capacityKbps;
  }

  private arm(now: number): void {
    this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => this.serve(), Math.ceil(this.departAt - now));
  }

  /** Sends every packet whose departure time has passed; the next departs back to back in virtual time. */
  private serve(): void {
    const now = this.clock.now();
    let head = this.queue[0];
    while (head && this.departAt <= now) {
      this.queue.shift();
      this.queuedBytes -= head.bytes;
      this.totals.outPackets++;
      this.totals.outBytes += head.bytes;
      this.lastDelayMs = this.departAt - head.arrivedAt;
      head.deliver(head.data);
      head = this.queue[0];
      if (head) this.departAt = Math.max(head.arrivedAt, this.departAt) + this.serialisationMs(head.bytes);
    }
    if (head) this.arm(now);
  }
}

interface Mapping {
  upstream: dgram.Socket;
  lastSeenAt: number;
}

export class BottleneckRelay {
  private readonly mappings = new Map<string, Mapping>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sampled: RelaySample[] = [];
  private readonly startedAt = performance.now();
  private lastSample = { at: this.startedAt, inBytes: 0, outBytes: 0, droppedPackets: 0, droppedBytes: 0 };

  private constructor(
    private readonly socket: dgram.Socket,
    readonly port: number,
    private readonly target: { host: string; port: number },
    private readonly forward: Link,
    private readonly reverse: Link | null,
    sampleMs: number,
    private readonly impairs: { forward: Impairment; reverse: Impairment },
  ) {
    socket.on('message', (data, from) => this.fromClient(data, from));
    this.every(sampleMs, () => this.sample());
    this.every(MAPPING_SWEEP_MS, () => this.expireMappings());
  }

  static async start(opts: BottleneckOptions): Promise<BottleneckRelay> {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(opts.listenPort ?? 0, LISTEN_HOST, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const queueBytes = opts.queueBytes ?? DEFAULT_QUEUE_BYTES;
    const reverse = opts.reverseCapacityKbps == null ? null : new Link(opts.reverseCapacityKbps, queueBytes);
    const impairs = { forward: new Impairment(opts.impair?.forward, realClock), reverse: new Impairment({ seed: 2, ...opts.impair?.reverse }, realClock) };
    return new BottleneckRelay(socket, socket.address().port, opts.target, new Link(opts.capacityKbps, queueBytes), reverse, opts.sampleMs ?? DEFAULT_SAMPLE_MS, impairs);
  }

  /** The link down both ways (every packet vanishes, nothing is closed), or up again. */
  blackout(on: boolean): void {
    this.impairs.forward.blackout(on);
    this.impairs.reverse.blackout(on);
  }

  impairTotals(): { forward: ImpairTotals; reverse: ImpairTotals } {
    return { forward: { ...this.impairs.forward.totals }, reverse: { ...this.impairs.reverse.totals } };
  }

  setCapacity(kbps: number): void {
    this.forward.setCapacity(kbps);
  }

  /** Capacity changes at times (ms) relative to this call; cancelled by close(). */
  schedule(steps: { atMs: number; kbps: number }[]): void {
    for (const step of steps) checkKbps(step.kbps);
    for (const step of steps) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.setCapacity(step.kbps);
      }, step.atMs);
      this.timers.add(t);
    }
  }

  samples(): RelaySample[] {
    return [...this.sampled];
  }

  totals(): RelayTotals {
    return { ...this.forward.totals };
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.forward.close();
    this.reverse?.close();
    this.impairs.forward.close();
    this.impairs.reverse.close();
    const sockets = [this.socket, ...[...this.mappings.values()].map((m) => m.upstream)];
    this.mappings.clear();
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private fromClient(data: Buffer, from: dgram.RemoteInfo): void {
    const mapping = this.mappingFor(from);
    mapping.lastSeenAt = performance.now();
    this.forward.enqueue(data, (d) => this.impairs.forward.pass(d, (x) => mapping.upstream.send(x)));
  }

  private mappingFor(client: dgram.RemoteInfo): Mapping {
    const key = `${client.address}:${client.port}`;
    const existing = this.mappings.get(key);
    if (existing) return existing;
    const upstream = dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
    const mapping: Mapping = { upstream, lastSeenAt: performance.now() };
    const toClient = (d: Buffer): void => this.impairs.reverse.pass(d, (x) => this.socket.send(x, client.port, client.address));
    upstream.on('message', (data) => {
      mapping.lastSeenAt = performance.now();
      if (this.reverse) this.reverse.enqueue(data, toClient);
      else toClient(data);
    });
    // ICMP port unreachable while the target is down surfaces here; the packet is lost, as on a real link.
    upstream.on('error', () => undefined);
    upstream.connect(this.target.port, this.target.host);
    this.mappings.set(key, mapping);
    return mapping;
  }

  private expireMappings(): void {
    const idleSince = performance.now() - MAPPING_IDLE_MS;
    for (const [key, mapping] of this.mappings) {
      if (mapping.lastSeenAt >= idleSince) continue;
      this.mappings.delete(key);
      mapping.upstream.close();
    }
  }

  private sample(): void {
    const now = performance.now();
    const { totals } = this.forward;
    const last = this.lastSample;
    const dtMs = now - last.at;
    this.sampled.push({
      tMs: now - this.startedAt,
      capacityKbps: this.forward.capacityKbps,
      inKbps: ((totals.inBytes - last.inBytes) * 8) / dtMs,
      outKbps: ((totals.outBytes - last.outBytes) * 8) / dtMs,
      droppedPackets: totals.droppedPackets - last.droppedPackets,
      droppedBytes: this.forward.droppedBytes - last.droppedBytes,
      queueBytes: this.forward.queuedBytes,
      queueDelayMs: this.forward.lastDelayMs,
    });
    this.lastSample = { at: now, inBytes: totals.inBytes, outBytes: totals.outBytes, droppedPackets: totals.droppedPackets, droppedBytes: this.forward.droppedBytes };
  }

  private every(ms: number, fn: () => void): void {
    this.timers.add(setInterval(fn, ms));
  }
}
