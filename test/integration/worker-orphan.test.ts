/**
 * No media worker outlives its agent: an agent killed with SIGKILL (or by the OOM
 * killer) runs no cleanup, and a worker left behind would hold the camera and the
 * display. Both guards of worker/main.ts, with a real agent process and its real forked
 * worker. Asserted: the worker ends (within a generous hang guard); how soon — under
 * 500 ms by the parent-death signal, 1.5 s by the watcher thread — is measured by
 * `npm run bench -- --only faults` (orphanEndMsDeathSignal, orphanEndMsThread).
 */
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { agentWithWorker, alive, goneWithin, type AgentWithWorker } from './helpers/orphan.js';

const GUARD_MS = 15_000;
const started: AgentWithWorker[] = [];
afterEach(() => {
  for (const a of started.splice(0)) a.cleanup();
});

describe('a media worker whose agent is SIGKILLed', () => {
  it.skipIf(!existsSync('/usr/bin/setpriv') && !existsSync('/bin/setpriv'))('ends by the parent-death signal even when it cannot run (started through setpriv, no watcher thread)', async () => {
    const a = await agentWithWorker('death-signal');
    started.push(a);
    expect(a.cmdline).toContain('worker/main.js');
    expect(alive(a.worker)).toBe(true);
    // A worker whose main thread cannot run (stopped here; blocked in a GStreamer call in
    // the field) never sees the IPC channel close: only the kernel's signal ends it.
    process.kill(a.worker, 'SIGSTOP');
    process.kill(a.agent, 'SIGKILL');
    expect(await goneWithin(a.worker, GUARD_MS), `worker still running ${GUARD_MS} ms after its agent was killed`).not.toBeNull();
  });

  // Here the worker's main thread is free, so the IPC channel closing ends it as well as
  // the watcher thread would: this checks the fallback path starts and ends cleanly.
  it('ends without setpriv (watcher thread, IPC disconnect)', async () => {
    const a = await agentWithWorker('thread');
    started.push(a);
    expect(alive(a.worker)).toBe(true);
    process.kill(a.agent, 'SIGKILL');
    expect(await goneWithin(a.worker, GUARD_MS), `worker still running ${GUARD_MS} ms after its agent was killed`).not.toBeNull();
  });
});
