/**
 * N simulated boxes in one process (box.ts): ids `<prefix>-00001`…, in groups of
 * `groupSize` (`<prefix>-g001`…, a province hub's 100–200 boxes), each with its own
 * directory under `dir`. Started a batch at a time (the disk work of an agent's start);
 * their broker connections are not paced: every box dials as soon as it starts, and
 * after a loss with its own capped, jittered backoff (device/mqtt/session.ts).
 */
import { access, constants, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../../lib/index.js';
import { SimBox, type SimBoxOptions } from './box.js';

export interface SimFleetOptions {
  count: number;
  /** The global index of this fleet's first box (a share of a fleet spread over processes, procs.ts); default 0. */
  offset?: number;
  mqttUrl: string;
  dir: string;
  logger: Logger;
  prefix?: string;
  groupSize?: number;
  baseVersion?: string;
  otaKeyFiles?: string[];
  /** Boxes whose self-test fails under any version but the base one. */
  failSelftest?: ReadonlySet<string>;
  /** Agents started at once (default 64). */
  startBatch?: number;
  box?: Partial<Pick<SimBoxOptions, 'reconnectBaseMs' | 'reconnectCapMs' | 'keepaliveS' | 'healthPeriodS' | 'commitWindowS' | 'trialS' | 'restartMs'>>;
}

/** At most this many boxes in one process: each is a whole agent (~1 MB) and a socket. */
export const MAX_SIM_BOXES = 20_000;

export const simId = (prefix: string, i: number): string => `${prefix}-${String(i + 1).padStart(5, '0')}`;
export const simGroup = (prefix: string, i: number, groupSize: number): string => `${prefix}-g${String(Math.floor(i / groupSize) + 1).padStart(3, '0')}`;

/**
 * A new directory for a fleet's boxes, in RAM (/dev/shm) where there is one. Each box
 * syncs its journal, ledger and state files to disk as a real box does to its own SD
 * card; 5,000 of them on this machine's one disk would measure that disk's fsyncs (and
 * libuv's four threads waiting on them: replies 5 s late at N = 200), not the broker.
 */
export async function makeFleetDir(): Promise<string> {
  const shm = await access('/dev/shm', constants.W_OK).then(
    () => '/dev/shm',
    () => os.tmpdir(),
  );
  return mkdtemp(path.join(shm, 'ep-fleet-sim-'));
}

/** Runs `fn` over `items`, `n` at a time. */
export async function inBatches<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

/** What the measurement needs of a fleet: in this process (SimFleet) or spread over child processes (procs.ts). */
export interface FleetHandle {
  readonly groups: Map<string, string[]>;
  start(): Promise<void>;
  allConnectedSince(since: number, timeoutMs: number): Promise<string[]>;
  connectedSince(since: number): Map<string, number>;
  commandReceivedAt(deviceId: string, topic: string): number | null;
  /** CPU (user + system, ms) and resident memory (MB) of the processes the boxes run in. */
  usage(): Promise<{ cpuMs: number; rssMb: number }>;
  dispose(): Promise<void>;
}

export class SimFleet implements FleetHandle {
  readonly boxes: SimBox[];
  /** Connects and commands as the boxes' clients saw them. */
  readonly log = new FleetLog();
  /** Told of each connect and each command received (a child process passes them to its parent). */
  onConnected: ((id: string, at: number) => void) | null = null;
  onCommand: ((id: string, topic: string, at: number) => void) | null = null;

  constructor(private readonly o: SimFleetOptions) {
    if (!Number.isInteger(o.count) || o.count < 1 || o.count > MAX_SIM_BOXES) throw new RangeError(`count: must be an integer from 1 to ${MAX_SIM_BOXES}, got ${o.count}`);
    const prefix = o.prefix ?? 'sim';
    const groupSize = o.groupSize ?? 200;
    const offset = o.offset ?? 0;
    this.boxes = Array.from({ length: o.count }, (_, k) => {
      const i = offset + k;
      const deviceId = simId(prefix, i);
      return new SimBox({
        deviceId,
        groupId: simGroup(prefix, i, groupSize),
        name: `Xã mô phỏng ${i + 1}`,
        mqttUrl: o.mqttUrl,
        dir: path.join(o.dir, deviceId),
        baseVersion: o.baseVersion ?? '1.0.0',
        logger: o.logger,
        failSelftest: o.failSelftest?.has(deviceId) ?? false,
        ...(o.otaKeyFiles ? { otaKeyFiles: o.otaKeyFiles } : {}),
        ...o.box,
        onConnected: (id, at) => {
          this.log.connected(id, at);
          this.onConnected?.(id, at);
        },
        onCommand: (id, topic, at) => {
          this.log.command(id, topic, at);
          this.onCommand?.(id, topic, at);
        },
      });
    });
  }

  /** The groups and their boxes' ids, in order. */
  get groups(): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const b of this.boxes) {
      const ids = m.get(b.o.groupId) ?? [];
      ids.push(b.deviceId);
      m.set(b.o.groupId, ids);
    }
    return m;
  }

  box(id: string): SimBox | undefined {
    return this.boxes.find((b) => b.deviceId === id);
  }

  async start(): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    await inBatches(this.boxes, this.o.startBatch ?? 64, (b) => b.start());
  }

  async stop(): Promise<void> {
    await inBatches(this.boxes, 256, (b) => b.stop());
  }

  /** Stops every box and removes the fleet's directory. */
  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.o.dir, { recursive: true, force: true });
  }

  commandReceivedAt(deviceId: string, topic: string): number | null {
    return this.log.commandReceivedAt(deviceId, topic);
  }

  async usage(): Promise<{ cpuMs: number; rssMb: number }> {
    const c = process.cpuUsage();
    return { cpuMs: (c.user + c.system) / 1000, rssMb: process.memoryUsage().rss / 2 ** 20 };
  }

  /** Boxes whose session is connected now. */
  connectedNow(): number {
    return this.boxes.filter((b) => b.agent?.mqtt.connected === true).length;
  }

  connectedSince(since: number): Map<string, number> {
    return this.log.connectedSince(since);
  }

  allConnectedSince(since: number, timeoutMs: number): Promise<string[]> {
    return this.log.allConnectedSince(this.boxes.map((b) => b.deviceId), since, timeoutMs);
  }
}

/** Each box's connects (the last 16) and the commands its client received (by topic): bounded by the boxes × the topics a hub uses. */
export class FleetLog {
  private readonly connects = new Map<string, number[]>();
  private readonly commandAt = new Map<string, number>();
  private readonly listeners = new Set<(id: string, at: number) => void>();

  connected(id: string, at: number): void {
    const times = this.connects.get(id) ?? [];
    times.push(at);
    if (times.length > 16) times.shift();
    this.connects.set(id, times);
    for (const l of this.listeners) l(id, at);
  }

  command(id: string, topic: string, at: number): void {
    this.commandAt.set(`${id} ${topic}`, at);
  }

  /** When this box's client last received a command on this topic (null: never). */
  commandReceivedAt(deviceId: string, topic: string): number | null {
    return this.commandAt.get(`${deviceId} ${topic}`) ?? null;
  }

  /** When each box first connected at or after `since` (boxes not yet: absent). */
  connectedSince(since: number): Map<string, number> {
    const m = new Map<string, number>();
    for (const [id, times] of this.connects) {
      const t = times.find((x) => x >= since);
      if (t !== undefined) m.set(id, t);
    }
    return m;
  }

  /** Resolves when every one of `ids` has connected at or after `since`, or at `timeoutMs`; those that had not. */
  async allConnectedSince(ids: readonly string[], since: number, timeoutMs: number): Promise<string[]> {
    const missing = (): string[] => {
      const seen = this.connectedSince(since);
      return ids.filter((id) => !seen.has(id));
    };
    let left = missing();
    if (left.length === 0) return left;
    return new Promise((resolve) => {
      const pending = new Set(left);
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(on);
        left = missing();
        resolve(left);
      };
      const on = (id: string, at: number): void => {
        if (at >= since) pending.delete(id);
        if (pending.size === 0) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.listeners.add(on);
    });
  }
}
