/**
 * A LocalHub in a child process (the same hub as the demo and the tests), for the CPU
 * bench and the profiler: none of the hub's work lands in the measuring process. The
 * parent forks this file.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LocalHub } from '../../gst-pipelines/hub/local-hub.js';
import type { Capabilities, MediaJoinSpec } from '../../gst-pipelines/types.js';
import type { WorkerStats } from '../../gst-pipelines/worker/protocol.js';
import { endChild, MeasurementError, track, udpPortBound, waitFor } from './machine.js';

type ToHub = { type: 'config'; caps: Capabilities; latencyMs: number } | { type: 'query' } | { type: 'stop' };
type FromHub =
  | { type: 'ready'; joinSpec: MediaJoinSpec; ingestPort: number; programPort: number }
  | { type: 'stats'; stats: WorkerStats | null; restarts: number }
  | { type: 'error'; message: string };

const SELF = fileURLToPath(import.meta.url);

/** A LocalHub in a child process (the same hub as the demo and the tests). */
export class HubProcess {
  private constructor(
    private readonly proc: ChildProcess,
    readonly joinSpec: MediaJoinSpec,
    readonly ports: { ingest: number; program: number },
  ) {}

  static async start(caps: Capabilities, latencyMs: number): Promise<HubProcess> {
    const proc = track(fork(SELF, ['--child', 'hub'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], serialization: 'json', env: { ...process.env, UV_THREADPOOL_SIZE: '16' } }));
    try {
      const ready = await new Promise<Extract<FromHub, { type: 'ready' }>>((resolve, reject) => {
        const t = setTimeout(() => reject(new MeasurementError('hub: not ready after 15 s')), 15_000);
        proc.on('message', (m: FromHub) => {
          if (m.type === 'ready') {
            clearTimeout(t);
            resolve(m);
          } else if (m.type === 'error') reject(new MeasurementError(`hub: ${m.message}`));
        });
        proc.once('exit', (code, signal) => reject(new MeasurementError(`hub process exited (${signal ?? `code ${code}`})`)));
        proc.on('error', (e) => reject(new MeasurementError(`hub process: ${e.message}`)));
        proc.send({ type: 'config', caps, latencyMs } satisfies ToHub);
      });
      await waitFor('the hub to listen', () => udpPortBound(ready.ingestPort) && udpPortBound(ready.programPort), 10_000);
      return new HubProcess(proc, ready.joinSpec, { ingest: ready.ingestPort, program: ready.programPort });
    } catch (e) {
      await endChild(proc);
      throw e;
    }
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** The hub worker's latest stats (what it received from the box). */
  query(): Promise<Extract<FromHub, { type: 'stats' }>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new MeasurementError('hub: no answer to a stats query')), 5000);
      const on = (m: FromHub): void => {
        if (m.type !== 'stats') return;
        clearTimeout(t);
        this.proc.off('message', on);
        resolve(m);
      };
      this.proc.on('message', on);
      this.proc.send({ type: 'query' } satisfies ToHub);
    });
  }

  stop(): Promise<void> {
    if (this.proc.connected) this.proc.send({ type: 'stop' } satisfies ToHub);
    return endChild(this.proc, 'SIGTERM', 4000);
  }
}

async function hubChild(cfg: Extract<ToHub, { type: 'config' }>): Promise<void> {
  const hub = await LocalHub.create({ caps: cfg.caps, latencyMs: cfg.latencyMs, title: 'Bench hub' });
  await hub.start();
  const send = (m: FromHub): void => {
    if (process.connected) process.send?.(m);
  };
  process.on('message', (m: ToHub) => {
    if (m.type === 'query') {
      const st = hub.supervisor.status();
      send({ type: 'stats', stats: st.stats, restarts: st.restarts });
    } else if (m.type === 'stop') {
      void hub.stop().finally(() => process.exit(0));
    }
  });
  send({ type: 'ready', joinSpec: hub.joinSpec('bench'), ingestPort: hub.ingestPort, programPort: hub.programPort });
}

if (process.argv[1] === SELF && process.argv[2] === '--child' && process.argv[3] === 'hub') {
  process.on('disconnect', () => process.exit(0));
  process.once('message', (m: ToHub) => {
    if (m.type !== 'config') return;
    hubChild(m).catch((e: unknown) => {
      if (process.connected) process.send?.({ type: 'error', message: (e as Error).message } satisfies FromHub);
      setTimeout(() => process.exit(1), 100);
    });
  });
}
