import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay } from '../../lib/clock.js';
import { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import type { SessionPlan } from '../../gst-pipelines/types.js';
import type { WorkerStats } from '../../gst-pipelines/worker/protocol.js';
import { FakeSpawner } from '../fakes/index.js';

const plan: SessionPlan = {
  kind: 'session',
  pipeline: 'videotestsrc ! fakesink',
  direct: 'videotestsrc ! fakesink',
  choices: { encoder: 'x264enc', decoder: 'avdec_h264', camera: 'test', display: 'fakesink', mic: 'test', speaker: 'fakesink', aec: true },
  names: { tsOut: 'tsout', tsIn: 'tsin', srtSink: 'srtout', srtSrc: 'srtin', rxVideoTap: 'rxvtap', encoder: 'venc', snapshotSend: null, snapshotReceive: null },
  video: { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 },
  audio: { bitrateKbps: 32 },
  adapt: {
    enabled: true,
    maxKbps: 1500,
    ladder: [],
    audioWireKbps: 80,
    srtLatencyMs: 200,
    bitrate: null,
    elements: { gate: 'vgate', parser: 'vparse', rate: 'vrate', scale: 'vcaps' },
  },
  env: {},
};

function stats(over: Partial<WorkerStats> = {}): WorkerStats {
  const dir = { fps: 30, kbps: 1500, frames: 100, bytes: 1000, idleMs: 10, maxGapMs: 40 };
  return {
    ts: 0,
    uptimeMs: 1000,
    send: { ...dir, srt: null, paddingPct: 5 },
    receive: { ...dir, srt: null },
    audio: { micDb: -20, speakerDb: -20, micBuffers: 1, speakerBuffers: 1, speakerMaxGapMs: 1000 },
    adapt: null,
    rssMb: 50,
    ...over,
  };
}

describe('MediaSupervisor', () => {
  let spawner: FakeSpawner;
  let sup: MediaSupervisor;

  beforeEach(() => {
    vi.useFakeTimers();
    spawner = new FakeSpawner();
    sup = new MediaSupervisor({ spawner, random: () => 1, backoffBaseMs: 250, backoffCapMs: 4000, statsPeriodMs: 1000, stableMs: 10_000 });
  });
  afterEach(async () => {
    const closing = sup.close();
    await vi.advanceTimersByTimeAsync(5000);
    await closing;
    vi.useRealTimers();
  });

  async function startSession(passphrase?: string): Promise<void> {
    const p = sup.start(plan, passphrase ? { passphrase } : {});
    await vi.advanceTimersByTimeAsync(1);
    await p;
  }

  it('runs the session in a prewarmed worker and warms the next one', async () => {
    const warming = sup.prewarm();
    await vi.advanceTimersByTimeAsync(1);
    await warming;
    expect(spawner.workers).toHaveLength(1);
    await startSession('s3cret-pass');
    const w = spawner.workers[0]!;
    const start = w.received.find((m) => m.type === 'start');
    expect(start).toMatchObject({ type: 'start', plan: { pipeline: plan.pipeline }, secrets: { passphrase: 's3cret-pass' } });
    expect(spawner.workers).toHaveLength(2);
    expect(spawner.workers[1]!.started).toBe(false);
    expect(sup.status()).toMatchObject({ running: true, send: 'starting', receive: 'starting', workerPid: w.pid });
    expect(JSON.stringify(sup.status())).not.toContain('s3cret');
    w.emit({ type: 'first-bytes', direction: 'send', atMs: 40 });
    w.emit({ type: 'first-bytes', direction: 'receive', atMs: 90 });
    expect(sup.status()).toMatchObject({ send: 'ok', receive: 'ok' });
  });

  it('restarts a crashed worker after a jittered backoff, in a fresh process', async () => {
    await startSession();
    const first = spawner.running[0]!;
    const restarts: Array<{ reason: string; delayMs: number }> = [];
    sup.on('restart', (r) => restarts.push(r));
    first.die(null, 'SIGSEGV');
    expect(restarts).toEqual([{ reason: 'crash', attempt: 1, delayMs: 250 }]);
    expect(sup.status()).toMatchObject({ send: 'retrying', receive: 'retrying', restarts: 1, lastError: { cause: 'crash' } });
    await vi.advanceTimersByTimeAsync(249);
    expect(spawner.running).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(spawner.running).toHaveLength(2);
    expect(spawner.running[1]!.pid).not.toBe(first.pid);
  });

  it('backs off exponentially up to the cap, with jitter between 50 % and 100 %', async () => {
    await startSession();
    const delays: number[] = [];
    sup.on('restart', (r) => delays.push(r.delayMs));
    for (let i = 0; i < 6; i++) {
      const w = spawner.running.at(-1)!;
      w.emit({ type: 'error', cause: 'encoder', source: 'venc', message: 'encoder failed', retryable: true });
      await vi.advanceTimersByTimeAsync(5000);
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 4000]);
    expect(backoffDelay(3, 250, 4000, () => 0)).toBe(500);
    expect(backoffDelay(30, 250, 4000, () => 0.5)).toBe(3000);
  });

  it('retries the link (stall, no connection, connection lost) at most every linkBackoffCapMs (2 s): media back within seconds of the link', async () => {
    await startSession();
    const delays: Array<[string, number]> = [];
    sup.on('restart', (r) => delays.push([r.reason, r.delayMs]));
    const failures = [
      { type: 'stall', direction: 'receive', idleMs: 5000 },
      { type: 'error', cause: 'srt_connect', source: 'srtout', message: 'SRT send: cannot reach the hub', retryable: true },
      { type: 'error', cause: 'srt_lost', source: 'srtin', message: 'SRT receive: connection lost', retryable: true },
      { type: 'stall', direction: 'send', idleMs: 10_000 },
      { type: 'stall', direction: 'receive', idleMs: 5000 },
      { type: 'stall', direction: 'receive', idleMs: 5000 },
    ] as const;
    for (const f of failures) {
      spawner.running.at(-1)!.emit(f);
      await vi.advanceTimersByTimeAsync(5000);
    }
    expect(delays).toEqual([['stall', 250], ['srt_connect', 500], ['srt_lost', 1000], ['stall', 2000], ['stall', 2000], ['stall', 2000]]);
  });

  it('starts a restarted worker where the adaptation says to resume (before an outage), not where it stood', async () => {
    await startSession();
    const report = { enabled: true, rung: 'audio-only', targetKbps: 0, probeKbps: 0, sendKbps: 80, rttMs: 2, rttFloorMs: 2, congested: true, steps: { down: 1, up: 0 } };
    spawner.running.at(-1)!.emit({ type: 'stats', stats: stats({ adapt: { ...report, resume: { rung: '720p30', targetKbps: 1500 } } }) });
    spawner.running.at(-1)!.emit({ type: 'stall', direction: 'receive', idleMs: 5000 });
    await vi.advanceTimersByTimeAsync(5000);
    expect(spawner.running.at(-1)!.received.find((m) => m.type === 'start')).toMatchObject({ adaptFrom: { rung: '720p30', targetKbps: 1500 } });
    // A report without `resume` (an older worker): where it stood.
    spawner.running.at(-1)!.emit({ type: 'stats', stats: stats({ adapt: report }) });
    spawner.running.at(-1)!.emit({ type: 'stall', direction: 'receive', idleMs: 5000 });
    await vi.advanceTimersByTimeAsync(5000);
    expect(spawner.running.at(-1)!.received.find((m) => m.type === 'start')).toMatchObject({ adaptFrom: { rung: 'audio-only', targetKbps: 0 } });
  });

  it('rebuilds the session on a stall reported by the worker', async () => {
    await startSession();
    const reasons: string[] = [];
    sup.on('restart', (r) => reasons.push(r.reason));
    spawner.running[0]!.emit({ type: 'stall', direction: 'send', idleMs: 2600 });
    expect(reasons).toEqual(['stall']);
    expect(sup.status().lastError?.message).toContain('no send media for 2600 ms');
    await vi.advanceTimersByTimeAsync(300);
    expect(spawner.running).toHaveLength(2);
  });

  it('reports an error that retrying fast cannot fix (wrong passphrase) as failed and retries only at the cap', async () => {
    await startSession();
    spawner.running[0]!.emit({ type: 'error', cause: 'srt_auth', source: 'srtout', message: 'SRT send: the hub rejected the encryption passphrase', retryable: false });
    expect(sup.status()).toMatchObject({ send: 'failed', receive: 'failed', lastError: { cause: 'srt_auth', message: expect.stringContaining('passphrase') } });
    await vi.advanceTimersByTimeAsync(3999);
    expect(spawner.running).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(spawner.running).toHaveLength(2);
  });

  it('kills and replaces a worker that stops reporting (hung process)', async () => {
    await startSession();
    const w = spawner.running[0]!;
    w.honoursStop = false;
    const reasons: string[] = [];
    sup.on('restart', (r) => reasons.push(r.reason));
    await vi.advanceTimersByTimeAsync(4000);
    expect(reasons).toEqual([]);
    await vi.advanceTimersByTimeAsync(3000);
    expect(reasons).toEqual(['hung']);
    await vi.advanceTimersByTimeAsync(1600);
    expect(w.exited).toBe(true);
    expect(spawner.running).toHaveLength(2);
  });

  it('keeps a worker that reports, however long; no timer fires while it does (the watchdog is re-armed by each message)', async () => {
    await startSession();
    const w = spawner.running[0]!;
    const reasons: string[] = [];
    sup.on('restart', (r) => reasons.push(r.reason));
    // Stats every 4 s, under the 5 s limit (3 stats periods of 1 s here, at least 5 s).
    for (let i = 0; i < 30; i++) {
      await vi.advanceTimersByTimeAsync(4000);
      w.emit({ type: 'stats', stats: stats() });
    }
    expect(reasons).toEqual([]);
    // Then it goes silent. The next timer to fire is the watchdog's, 5 s after the last
    // message (a poll would fire within 1 s), and it finds the worker hung.
    const t0 = Date.now();
    await vi.advanceTimersToNextTimerAsync();
    expect(Date.now() - t0).toBe(5001);
    expect(reasons).toEqual(['hung']);
  });

  it('stops cleanly within 2 s, SIGKILLing a worker that ignores stop', async () => {
    await startSession();
    const w = spawner.running[0]!;
    w.honoursStop = false;
    let done = false;
    const stopping = sup.stop().then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(1499);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(2);
    await stopping;
    expect(done).toBe(true);
    expect(w.exited).toBe(true);
    expect(sup.status()).toMatchObject({ running: false, send: 'off', receive: 'off' });
  });

  it('a stop during a pending retry cancels it; recycled workers never run twice', async () => {
    await startSession();
    spawner.running[0]!.die(1, null);
    const stopping = sup.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    await stopping;
    expect(spawner.running).toHaveLength(1);
    for (const w of spawner.workers) expect(w.received.filter((m) => m.type === 'start').length).toBeLessThanOrEqual(1);
  });

  it('resets the retry counter once the session has been healthy for the stable period', async () => {
    await startSession();
    spawner.running[0]!.die(null, 'SIGKILL');
    await vi.advanceTimersByTimeAsync(300);
    expect(sup.status().attempt).toBe(1);
    const w2 = spawner.running[1]!;
    for (let t = 0; t < 11; t++) {
      w2.emit({ type: 'stats', stats: stats() });
      await vi.advanceTimersByTimeAsync(1000);
    }
    expect(sup.status().attempt).toBe(0);
    expect(sup.status().restarts).toBe(1);
  });

  it('link adaptation: reports the rung in its status and events, and a restarted worker resumes it', async () => {
    await startSession();
    const w = spawner.running[0]!;
    expect((w.received.find((m) => m.type === 'start') as { adaptFrom?: unknown }).adaptFrom).toBeNull();
    const seen: string[] = [];
    sup.on('adapt', (a) => seen.push(`${a.change.direction} ${a.change.toRung}`));
    const report = { enabled: true, rung: '360p15', targetKbps: 180, probeKbps: 0, sendKbps: 400, rttMs: 700, rttFloorMs: 4, congested: true, steps: { down: 2, up: 0 } };
    const change = { direction: 'down' as const, fromKbps: 1500, toKbps: 180, fromRung: '720p30', toRung: '360p15', reason: 'queueing-delay' as const, rttMs: 700, rttFloorMs: 4, deliveredKbps: null, lossPct: 0 };
    w.emit({ type: 'adapt', change, report });
    expect(seen).toEqual(['down 360p15']);
    expect(sup.status().link).toEqual({ rung: '360p15', targetKbps: 180, adaptive: true });
    // The worker crashes: the next one starts where the link was, not at full rate.
    w.die(null, 'SIGSEGV');
    await vi.advanceTimersByTimeAsync(300);
    const next = spawner.running[1]!;
    expect(next.received.find((m) => m.type === 'start')).toMatchObject({ adaptFrom: { rung: '360p15', targetKbps: 180 } });
    // A new session starts from the top again, and stopping clears the link.
    const stopping = sup.stop();
    await vi.advanceTimersByTimeAsync(2000);
    await stopping;
    expect(sup.status().link).toBeNull();
    await startSession();
    expect(spawner.running.at(-1)!.received.find((m) => m.type === 'start')).toMatchObject({ adaptFrom: null });
  });

  it('a spawn failure is retried with backoff, not thrown at the caller', async () => {
    spawner.failNext = 1;
    const p = sup.start(plan);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(sup.status()).toMatchObject({ send: 'retrying', lastError: { cause: 'crash' } });
    await vi.advanceTimersByTimeAsync(300);
    expect(spawner.running).toHaveLength(1);
  });
});
