/**
 * A scriptable fake of the media worker process (the process boundary of the media
 * supervisor). It answers asynchronously like the real one (`ready` on spawn, `started`
 * on `start`, `stopped` + exit on `stop`) and records everything it was asked.
 */
import type { FromWorker, ToWorker } from '../../gst-pipelines/worker/index.js';
import type { WorkerHandle, WorkerSpawner } from '../../gst-pipelines/supervisor/worker-process.js';

let nextPid = 1000;

export class FakeWorker implements WorkerHandle {
  readonly pid = nextPid++;
  readonly received: ToWorker[] = [];
  exited = false;
  /** When false, the worker ignores `stop` (a hung process): only SIGKILL ends it. */
  honoursStop = true;
  private msgCbs: Array<(m: FromWorker) => void> = [];
  private exitCbs: Array<(code: number | null, signal: string | null) => void> = [];

  constructor(readonly env: Record<string, string>) {
    setTimeout(() => this.emit({ type: 'ready', pid: this.pid, gstreamer: '1.22.0' }), 0);
  }

  send(msg: ToWorker): void {
    if (this.exited) return;
    this.received.push(msg);
    if (msg.type === 'start') setTimeout(() => this.emit({ type: 'started', atMs: 5 }), 0);
    if (msg.type === 'stop' && this.honoursStop)
      setTimeout(() => {
        this.emit({ type: 'stopped' });
        this.die(0, null);
      }, 0);
  }

  onMessage(cb: (msg: FromWorker) => void): void {
    this.msgCbs.push(cb);
  }

  onExit(cb: (code: number | null, signal: string | null) => void): void {
    if (this.exited) cb(0, null);
    else this.exitCbs.push(cb);
  }

  kill(signal: NodeJS.Signals): void {
    this.die(null, signal);
  }

  /** Script: the worker says something. */
  emit(msg: FromWorker): void {
    if (!this.exited) for (const cb of this.msgCbs) cb(msg);
  }

  /** Script: the process dies (crash, segfault, OOM kill). */
  die(code: number | null, signal: string | null): void {
    if (this.exited) return;
    this.exited = true;
    for (const cb of this.exitCbs) cb(code, signal);
  }

  get started(): boolean {
    return this.received.some((m) => m.type === 'start');
  }
}

export class FakeSpawner implements WorkerSpawner {
  readonly workers: FakeWorker[] = [];
  failNext = 0;
  spawn(env: Record<string, string>): FakeWorker {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('spawn ENOMEM');
    }
    const w = new FakeWorker(env);
    this.workers.push(w);
    return w;
  }
  /** Workers that were given a session to run, in order. */
  get running(): FakeWorker[] {
    return this.workers.filter((w) => w.started);
  }
}
