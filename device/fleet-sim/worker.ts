/**
 * Media off: the fleet simulator's stand-in for the media worker process. It speaks the
 * worker protocol like the real one (gst-pipelines/worker/protocol.ts) — `ready` on
 * spawn, `started` and both directions' first bytes on `start`, a stats report every
 * period, `stopped` and an exit on `stop` — so the agent's supervisor, meeting state and
 * reported state run unchanged, without a process or a pipeline per box.
 */
import type { FromWorker, ToWorker, WorkerHandle, WorkerSpawner, WorkerStats } from '../../gst-pipelines/index.js';

/** Stats every 2 s: the supervisor calls a worker silent for ≥ 5 s hung. */
const STATS_EVERY_MS = 2000;

let nextPid = 1;

function quietStats(uptimeMs: number): WorkerStats {
  const dir = { fps: null, kbps: null, frames: 0, bytes: 0, idleMs: null, maxGapMs: null, srt: null };
  return {
    ts: Date.now(),
    uptimeMs,
    send: { ...dir, paddingPct: null },
    receive: { ...dir },
    audio: { micDb: null, speakerDb: null, micBuffers: 0, speakerBuffers: 0, speakerMaxGapMs: null },
    adapt: null,
    rssMb: 0,
  };
}

class SimWorker implements WorkerHandle {
  readonly pid = nextPid++;
  exited = false;
  private readonly msgCbs: Array<(m: FromWorker) => void> = [];
  private readonly exitCbs: Array<(code: number | null, signal: string | null) => void> = [];
  private stats: NodeJS.Timeout | null = null;
  private startedAt = 0;

  constructor() {
    setImmediate(() => this.emit({ type: 'ready', pid: this.pid, gstreamer: null }));
  }

  send(msg: ToWorker): void {
    if (this.exited) return;
    if (msg.type === 'start') {
      this.startedAt = Date.now();
      setImmediate(() => {
        this.emit({ type: 'started', atMs: 1 });
        if (msg.plan.kind === 'session') for (const direction of ['send', 'receive'] as const) this.emit({ type: 'first-bytes', direction, atMs: 1 });
      });
      // Spread over the period: 5,000 boxes must not report in the same millisecond.
      const first = setTimeout(() => {
        this.tick();
        this.stats = setInterval(() => this.tick(), STATS_EVERY_MS);
        this.stats.unref();
      }, Math.floor(Math.random() * STATS_EVERY_MS));
      first.unref();
      this.stats = first;
    } else if (msg.type === 'stop') setImmediate(() => {
      this.emit({ type: 'stopped' });
      this.die(0, null);
    });
  }

  onMessage(cb: (msg: FromWorker) => void): void {
    this.msgCbs.push(cb);
  }

  onExit(cb: (code: number | null, signal: string | null) => void): void {
    if (this.exited) cb(0, null);
    else this.exitCbs.push(cb);
  }

  kill(signal: NodeJS.Signals): void {
    setImmediate(() => this.die(null, signal));
  }

  private tick(): void {
    this.emit({ type: 'stats', stats: quietStats(Date.now() - this.startedAt) });
  }

  private emit(msg: FromWorker): void {
    if (!this.exited) for (const cb of this.msgCbs) cb(msg);
  }

  private die(code: number | null, signal: string | null): void {
    if (this.exited) return;
    this.exited = true;
    if (this.stats) clearTimeout(this.stats);
    this.stats = null;
    for (const cb of this.exitCbs.splice(0)) cb(code, signal);
  }
}

/** A spawner whose workers are SimWorkers (media off). */
export const simSpawner = (): WorkerSpawner => ({ spawn: () => new SimWorker() });
