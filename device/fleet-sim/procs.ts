/**
 * A fleet spread over P child processes (`ep fleet-sim --procs P`): each runs its share of
 * the boxes (child.ts) and reports each connect and each command its boxes' clients
 * receive; this process keeps the same log (FleetLog) and measures as for a fleet of its
 * own. One process runs every box's work in series on one core; P processes use P cores
 * (a many-core machine, or the boxes' own work kept off the hub's client).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FleetLog, simGroup, simId, type FleetHandle } from './fleet.js';

export type ToChild =
  | { type: 'start'; url: string; count: number; offset: number; groupSize: number; prefix: string; logLevel: string }
  | { type: 'usage' }
  | { type: 'stop' };

type FromChild =
  | { type: 'started' }
  | { type: 'connected'; id: string; at: number }
  | { type: 'command'; id: string; topic: string; at: number }
  | { type: 'usage'; cpuMs: number; rssMb: number }
  | { type: 'stopped' };

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url));

export class ChildFleets implements FleetHandle {
  readonly log = new FleetLog();
  readonly groups = new Map<string, string[]>();
  private readonly ids: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly waiting = new Map<ChildProcess, Array<(m: FromChild) => void>>();

  constructor(private readonly o: { count: number; procs: number; url: string; groupSize: number; prefix: string; logLevel: string }) {
    for (let i = 0; i < o.count; i++) {
      const id = simId(o.prefix, i);
      const g = simGroup(o.prefix, i, o.groupSize);
      this.ids.push(id);
      const ids = this.groups.get(g) ?? [];
      ids.push(id);
      this.groups.set(g, ids);
    }
  }

  async start(): Promise<void> {
    const per = Math.ceil(this.o.count / this.o.procs);
    const started: Array<Promise<FromChild>> = [];
    for (let offset = 0; offset < this.o.count; offset += per) {
      const c = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      this.children.push(c);
      c.on('message', (m: FromChild) => this.onMessage(c, m));
      started.push(this.next(c, 'started'));
      c.send({ type: 'start', url: this.o.url, count: Math.min(per, this.o.count - offset), offset, groupSize: this.o.groupSize, prefix: this.o.prefix, logLevel: this.o.logLevel } satisfies ToChild);
    }
    await Promise.all(started);
  }

  allConnectedSince(since: number, timeoutMs: number): Promise<string[]> {
    return this.log.allConnectedSince(this.ids, since, timeoutMs);
  }

  connectedSince(since: number): Map<string, number> {
    return this.log.connectedSince(since);
  }

  commandReceivedAt(deviceId: string, topic: string): number | null {
    return this.log.commandReceivedAt(deviceId, topic);
  }

  /** The children's CPU and memory together (this process's are the hub's, not the boxes'). */
  async usage(): Promise<{ cpuMs: number; rssMb: number }> {
    const all = await Promise.all(this.children.map((c) => (c.send({ type: 'usage' } satisfies ToChild), this.next(c, 'usage'))));
    return all.reduce((a, u) => (u.type === 'usage' ? { cpuMs: a.cpuMs + u.cpuMs, rssMb: a.rssMb + u.rssMb } : a), { cpuMs: 0, rssMb: 0 });
  }

  async dispose(): Promise<void> {
    await Promise.all(
      this.children.map(async (c) => {
        if (c.exitCode !== null || !c.connected) return;
        const exited = new Promise((r) => c.once('exit', r));
        c.send({ type: 'stop' } satisfies ToChild);
        const t = setTimeout(() => c.kill('SIGKILL'), 60_000);
        await exited;
        clearTimeout(t);
      }),
    );
  }

  private onMessage(c: ChildProcess, m: FromChild): void {
    if (m.type === 'connected') this.log.connected(m.id, m.at);
    else if (m.type === 'command') this.log.command(m.id, m.topic, m.at);
    else this.waiting.get(c)?.shift()?.(m);
  }

  /** The child's next answer (started, usage, stopped), or a rejection when it exits first. */
  private next(c: ChildProcess, what: FromChild['type']): Promise<FromChild> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`fleet-sim child ${c.pid} exited (${code}) before '${what}'`));
      c.once('exit', onExit);
      const q = this.waiting.get(c) ?? [];
      q.push((m) => {
        c.off('exit', onExit);
        resolve(m);
      });
      this.waiting.set(c, q);
    });
  }
}
