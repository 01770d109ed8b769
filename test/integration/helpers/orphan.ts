/**
 * A real agent process (a Node script using the built forkSpawner) with its real forked
 * media worker, for what happens to the worker when the agent is SIGKILLed: the
 * integration test (worker-orphan.test.ts) asserts that it ends, the bench
 * (`--only faults`) how soon.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { distPath } from '../../../lib/index.js';

/** The built spawner, from the sources (tests) or from dist/ (the bench). */
const SPAWNER = distPath(import.meta.url, 'gst-pipelines/supervisor/worker-process.js');

/** Alive and not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export interface AgentWithWorker {
  agent: number;
  worker: number;
  cmdline: string;
  /** SIGKILLs whatever is left and removes the script's directory. */
  cleanup(): void;
}

/** Starts an agent that forks one worker; resolves with both pids once the worker runs (`guardMs`: hang guard). */
export async function agentWithWorker(guard: 'death-signal' | 'thread', guardMs = 30_000): Promise<AgentWithWorker> {
  const script = `
    import { forkSpawner } from ${JSON.stringify(SPAWNER)};
    const w = forkSpawner({ stderr: 'ignore', orphanGuard: ${JSON.stringify(guard)} }).spawn({});
    setTimeout(() => console.log('WORKER ' + w.pid), 1500);
    setInterval(() => {}, 1000);`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ep-orphan-'));
  writeFileSync(path.join(dir, 'agent.mjs'), script);
  const agent = spawn(process.execPath, [path.join(dir, 'agent.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pids: number[] = [agent.pid!];
  const cleanup = (): void => {
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const worker = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the agent did not report its worker within ${guardMs} ms`)), guardMs);
      agent.stdout!.on('data', (d: Buffer) => {
        const m = /WORKER (\d+)/.exec(d.toString());
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
    });
    pids.push(worker);
    const cmdline = readFileSync(`/proc/${worker}/cmdline`, 'utf8').split('\0').join(' ');
    return { agent: agent.pid!, worker, cmdline, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** ms until `pid` is gone (null: still there after `ms`). */
export async function goneWithin(pid: number, ms: number): Promise<number | null> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (!alive(pid)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}
