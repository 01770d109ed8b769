/**
 * How the supervisor starts a worker: the real spawner forks worker/main.js with an
 * IPC channel. Behind an interface so supervisor tests can also drive a scripted fake.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { distPath } from '../../lib/index.js';
import { withNativePlugins } from '../native/index.js';
import { isFromWorker, type FromWorker, type ToWorker } from '../worker/index.js';

export interface WorkerHandle {
  readonly pid: number | undefined;
  send(msg: ToWorker): void;
  onMessage(cb: (msg: FromWorker) => void): void;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  kill(signal: NodeJS.Signals): void;
  readonly exited: boolean;
}

export interface WorkerSpawner {
  spawn(env: Record<string, string>): WorkerHandle;
}

/** dist/gst-pipelines/worker/main.js, also when this module runs from TypeScript sources (tests). */
export function defaultWorkerPath(): string {
  return distPath(import.meta.url, 'gst-pipelines', 'worker', 'main.js');
}

class ForkedWorker implements WorkerHandle {
  private done = false;
  constructor(private readonly child: ChildProcess) {
    child.once('exit', () => {
      this.done = true;
    });
    // A send racing the child's death must not throw into the agent.
    child.on('error', () => undefined);
  }
  get pid(): number | undefined {
    return this.child.pid;
  }
  get exited(): boolean {
    return this.done;
  }
  send(msg: ToWorker): void {
    if (!this.done && this.child.connected) this.child.send(msg);
  }
  onMessage(cb: (msg: FromWorker) => void): void {
    this.child.on('message', (m: unknown) => {
      if (isFromWorker(m)) cb(m);
    });
  }
  onExit(cb: (code: number | null, signal: string | null) => void): void {
    if (this.done) cb(this.child.exitCode, this.child.signalCode);
    else this.child.once('exit', (code, signal) => cb(code, signal));
  }
  kill(signal: NodeJS.Signals): void {
    if (!this.done) this.child.kill(signal);
  }
}

export interface ForkSpawnerOptions {
  workerPath?: string;
  /** Where the worker's stderr goes (GStreamer warnings); default: inherited. */
  stderr?: 'inherit' | 'ignore' | 'pipe';
  /** With `stderr: 'pipe'`: receives what the worker writes there (tests capture it). */
  onStderr?: (chunk: Buffer) => void;
  threadpoolSize?: number;
  /** How a worker ends with its agent: the parent-death signal (default, when setpriv exists) or its own watcher thread. */
  orphanGuard?: 'death-signal' | 'thread';
}

/** util-linux's setpriv (Debian and Raspberry Pi OS have it): exec with a parent-death signal set. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;

/**
 * How the worker learns that its agent died (worker/main.ts): with setpriv, the kernel
 * sends it SIGKILL when the agent does (PR_SET_PDEATHSIG), whatever its main thread is
 * doing; `EP_AGENT_PID` lets it check it was not orphaned before that took effect.
 * Without setpriv, worker/main.ts watches its parent pid from a thread of its own (a second
 * V8 isolate: ~1–2 ms of CPU a second per worker, measured: docs/benchmarks.md).
 */
function deathSignalArgs(guard: ForkSpawnerOptions['orphanGuard']): { execPath?: string; execArgv?: string[]; env: Record<string, string> } {
  if (!SETPRIV || guard === 'thread') return { env: {} };
  return { execPath: SETPRIV, execArgv: ['--pdeathsig', 'KILL', process.execPath, ...process.execArgv], env: { EP_AGENT_PID: String(process.pid) } };
}

export function forkSpawner(opts: ForkSpawnerOptions = {}): WorkerSpawner {
  const workerPath = opts.workerPath ?? defaultWorkerPath();
  return {
    spawn(env) {
      if (!existsSync(workerPath)) throw new Error(`media worker not built: ${workerPath} is missing (run npm run build)`);
      const death = deathSignalArgs(opts.orphanGuard);
      const child = fork(workerPath, [], {
        ...(death.execPath ? { execPath: death.execPath, execArgv: death.execArgv } : {}),
        env: { ...withNativePlugins({ ...process.env, ...env }), ...death.env, UV_THREADPOOL_SIZE: String(opts.threadpoolSize ?? 16) },
        stdio: ['ignore', 'ignore', opts.stderr ?? 'inherit', 'ipc'],
        serialization: 'json',
      });
      if (opts.onStderr) child.stderr?.on('data', opts.onStderr);
      return new ForkedWorker(child);
    },
  };
}
