/**
 * Shared pieces of the media integration tests: the real capabilities of this machine,
 * a LocalHub and box supervisors that are always torn down, and event-driven waits on
 * the supervisor's 'stats' / 'status' / 'restart' / 'first-bytes' events.
 *
 * Everything here runs the real worker (dist/gst-pipelines/worker/main.js): build first.
 */
import { readFile } from 'node:fs/promises';
import { LocalHub, freePort, type LocalHubOptions } from '../../../gst-pipelines/hub/local-hub.js';
import { planSession } from '../../../gst-pipelines/plan/session.js';
import { probe } from '../../../gst-pipelines/probe/probe.js';
import type { MediaStatus, SupervisorEvents, SupervisorOptions } from '../../../gst-pipelines/supervisor/status.js';
import { MediaSupervisor } from '../../../gst-pipelines/supervisor/supervisor.js';
import { forkSpawner } from '../../../gst-pipelines/supervisor/worker-process.js';
import type { WorkerStats } from '../../../gst-pipelines/worker/protocol.js';
import type { Capabilities, MediaJoinSpec, MediaSettings, SessionPlan } from '../../../gst-pipelines/types.js';
import { withTimeout } from './processes.js';

export type Video = { width: number; height: number; fps: number; bitrateKbps: number };

/** Where resolution does not matter: light enough for a 2-core machine running two sessions. */
export const SMALL: Video = { width: 640, height: 360, fps: 15, bitrateKbps: 600 };
export const HD: Video = { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 };

/** Worker stderr (GStreamer warnings): `MEDIA_TEST_STDERR=inherit` to see it while debugging. */
const workerStderr = (): 'inherit' | 'ignore' => (process.env.MEDIA_TEST_STDERR === 'inherit' ? 'inherit' : 'ignore');

let capsOnce: Promise<Capabilities> | null = null;
/** The real probe() of this machine (once per test file). */
export function capabilities(): Promise<Capabilities> {
  capsOnce ??= probe();
  return capsOnce;
}

export function testSettings(over: Partial<MediaSettings> = {}): MediaSettings {
  return { source: 'test', volume: 1, micMuted: false, aec: false, statsPeriodS: 1, standbyTitle: 'Xã Thử — integration test', ...over };
}

/** LIFO teardown list; `release()` runs every step even when some fail, then reports them. */
export class Resources {
  private steps: Array<{ what: string; fn: () => Promise<void> | void }> = [];

  add(what: string, fn: () => Promise<void> | void): void {
    this.steps.push({ what, fn });
  }

  async release(): Promise<void> {
    const steps = this.steps.reverse();
    this.steps = [];
    const failures: string[] = [];
    for (const s of steps) {
      try {
        await withTimeout(Promise.resolve(s.fn()), 10_000, `teardown: ${s.what}`);
      } catch (e) {
        failures.push(`${s.what}: ${(e as Error).message}`);
      }
    }
    if (failures.length) throw new Error(`teardown failed: ${failures.join('; ')}`);
  }
}

/** A started LocalHub, stopped at teardown. */
export async function startHub(res: Resources, opts: Omit<LocalHubOptions, 'caps'> & { caps?: Capabilities } = {}): Promise<LocalHub> {
  const hub = await LocalHub.create({ video: SMALL, ...opts, caps: opts.caps ?? (await capabilities()) });
  res.add(`hub ${hub.ingestPort}/${hub.programPort}`, () => hub.stop());
  await hub.start();
  return hub;
}

/** A box supervisor with the real forked worker, closed at teardown. */
export function newBox(res: Resources, opts: Partial<Omit<SupervisorOptions, 'spawner'>> = {}): MediaSupervisor {
  const box = new MediaSupervisor({ spawner: forkSpawner({ stderr: workerStderr() }), statsPeriodMs: 1000, ...opts });
  res.add('box supervisor', () => box.close());
  return box;
}

/** The join spec for `hub`, sending `video`. */
export function hubSpec(hub: LocalHub, video: Video, extra: Partial<MediaJoinSpec> = {}): MediaJoinSpec {
  const spec = hub.joinSpec('it', extra);
  return { ...spec, send: { ...spec.send, video } };
}

/** A box session plan for this machine. */
export async function boxPlan(spec: MediaJoinSpec, settings: Partial<MediaSettings> = {}): Promise<SessionPlan> {
  return planSession(spec, await capabilities(), testSettings(settings));
}

/** Waits for the next `event` whose arguments satisfy `pred`. */
export function nextEvent<K extends keyof SupervisorEvents>(
  sup: MediaSupervisor,
  event: K,
  pred: (arg: SupervisorEvents[K][0]) => boolean,
  ms: number,
  what: string,
): Promise<SupervisorEvents[K][0]> {
  type Arg = SupervisorEvents[K][0];
  const on = sup.on.bind(sup) as (e: K, l: (a: Arg) => void) => void;
  const off = sup.off.bind(sup) as (e: K, l: (a: Arg) => void) => void;
  let listener: ((a: Arg) => void) | null = null;
  const p = new Promise<Arg>((resolve) => {
    listener = (a: Arg): void => {
      if (pred(a)) resolve(a);
    };
    on(event, listener);
  });
  return withTimeout(p, ms, what).finally(() => {
    if (listener) off(event, listener);
  });
}

export interface Sample {
  /** Test-side wall clock at the event. */
  at: number;
  /** The worker that produced the sample (frame counters restart with each worker). */
  pid: number | null;
  stats: WorkerStats;
}

/**
 * Every 'stats' event of a supervisor, with the worker pid, plus every status change,
 * restart and first-bytes event, each stamped with the test's clock.
 */
export class MediaLog {
  readonly samples: Sample[] = [];
  readonly statuses: Array<{ at: number; status: MediaStatus }> = [];
  readonly restarts: Array<{ at: number; reason: string; attempt: number; delayMs: number }> = [];
  readonly firstBytes: Array<{ at: number; pid: number | null; direction: 'send' | 'receive' }> = [];
  private waiters = new Set<(s: Sample) => void>();

  constructor(readonly sup: MediaSupervisor) {
    sup.on('stats', (stats) => {
      const s: Sample = { at: Date.now(), pid: sup.status().workerPid, stats };
      this.samples.push(s);
      for (const w of [...this.waiters]) w(s);
    });
    sup.on('status', (status) => this.statuses.push({ at: Date.now(), status }));
    sup.on('restart', (r) => this.restarts.push({ at: Date.now(), ...r }));
    sup.on('first-bytes', (f) => this.firstBytes.push({ at: Date.now(), pid: sup.status().workerPid, direction: f.direction }));
  }

  /** The next sample satisfying `pred`; `abort` fails the wait early with its reason. */
  nextSample(pred: (s: Sample) => boolean, ms: number, what: string, abort?: (s: Sample) => string | null): Promise<Sample> {
    let w: ((s: Sample) => void) | null = null;
    const p = new Promise<Sample>((resolve, reject) => {
      w = (s: Sample): void => {
        if (pred(s)) resolve(s);
        else {
          const why = abort?.(s);
          if (why) reject(new Error(`${what}: ${why}`));
        }
      };
      this.waiters.add(w);
    });
    return withTimeout(p, ms, what).finally(() => {
      if (w) this.waiters.delete(w);
    });
  }

  /**
   * Frame rate in one direction over a steady window: starts at the first sample after
   * frames have flowed for at least one stats period, ends at the first sample ≥ windowMs
   * later, and fails if the worker changes in between. fps = Δframes / Δworker-time.
   */
  async steadyFps(side: 'send' | 'receive', windowMs: number, ms: number): Promise<{ fps: number; frames: number; windowMs: number; pid: number | null }> {
    const flowing = await this.nextSample((s) => s.stats[side].frames > 0, ms, `${side} frames to flow`);
    const a = await this.nextSample((s) => s.pid === flowing.pid && s.stats.uptimeMs > flowing.stats.uptimeMs, ms, `a steady ${side} sample`, (s) =>
      s.pid !== flowing.pid ? `the worker changed (${flowing.pid} → ${s.pid})` : null,
    );
    const b = await this.nextSample((s) => s.pid === a.pid && s.stats.ts - a.stats.ts >= windowMs, windowMs + ms, `a ${windowMs} ms ${side} window`, (s) =>
      s.pid !== a.pid ? `the worker changed during the window (${a.pid} → ${s.pid})` : null,
    );
    const frames = b.stats[side].frames - a.stats[side].frames;
    const dt = b.stats.ts - a.stats.ts;
    return { fps: (frames * 1000) / dt, frames, windowMs: dt, pid: a.pid };
  }

  last(): Sample | undefined {
    return this.samples[this.samples.length - 1];
  }

  /** A short history for assertion messages. */
  describe(): string {
    const st = this.statuses.map((s) => `${s.status.send}/${s.status.receive}${s.status.lastError ? ` [${s.status.lastError.cause}: ${s.status.lastError.message}]` : ''}`);
    const rs = this.restarts.map((r) => `${r.reason}#${r.attempt}`);
    return `statuses: ${st.join(' → ')}; restarts: ${rs.join(', ') || 'none'}`;
  }
}

/** `n` distinct ports free for both TCP and UDP on 127.0.0.1. */
export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const p = await freePort();
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** Width and height from a PNG's IHDR chunk (proves a decoded picture was written). */
export async function pngSize(file: string): Promise<{ width: number; height: number }> {
  const b = await readFile(file);
  if (b.length < 24 || b.toString('latin1', 1, 4) !== 'PNG' || b.toString('latin1', 12, 16) !== 'IHDR') throw new Error(`${file} is not a PNG`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}
