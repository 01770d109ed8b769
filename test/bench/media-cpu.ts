/**
 * CPU cost of running a media session through our worker, against gst-launch-1.0.
 *
 * One box session (the plan for a box in test-source mode: 720p30 x264 send, receive +
 * avdec_h264, Opus both ways, AEC) talks to a LocalHub started fresh for every run in
 * its own child process (so none of the hub's work lands in the bench process). Runs
 * alternate, so slow drifts of a shared machine hit every variant alike:
 *
 * - worker:  the production path. MediaSupervisor (in this process, prewarmed) runs the
 *            plan's `pipeline` in a forked MediaWorker (appsink → TsPacketizer → appsrc).
 *            Counted: every direct child of this process except the hub (the worker and
 *            the supervisor's next warm worker) + this process's own CPU (the supervisor).
 * - gst:     gst-launch-1.0 running the plan's `direct` string (the identical session,
 *            with `mpegtsmux alignment=7 ! srtsink`: gst-launch cannot run the
 *            packetiser). Counted: the gst-launch process.
 * - binding: the worker running the same `direct` string (pure cost of the Node
 *            binding + worker, without the packetiser). Counted like `worker`.
 *
 * CPU = utime + stime from /proc/PID/stat over a steady-state window that opens
 * `settleSeconds` after the session was asked to start and lasts `seconds`.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, LocalHub } from '../../gst-pipelines/local-hub.js';
import { planSession } from '../../gst-pipelines/plan.js';
import { MediaSupervisor } from '../../gst-pipelines/supervisor.js';
import { forkSpawner } from '../../gst-pipelines/worker-process.js';
import { withNativePlugins } from '../../gst-pipelines/native.js';
import type { Capabilities, MediaJoinSpec, MediaSettings, SessionPlan } from '../../gst-pipelines/types.js';
import type { WorkerStats } from '../../gst-pipelines/worker-protocol.js';
import { childPids, endChild, launchArgv, track, MeasurementError, monoMs, procCpuSeconds, procThreadCpu, round1, round3, sleep, udpPortBound, waitFor } from './machine.js';

export const CPU_SRT_LATENCY_MS = 40;

/** The box's media settings in the benchmarks: test sources and sinks, production defaults otherwise. */
export const BOX_SETTINGS: MediaSettings = { source: 'test', volume: 1, micMuted: false, aec: true, statsPeriodS: 2, standbyTitle: 'Bench box' };

export function boxPlan(caps: Capabilities, spec: MediaJoinSpec): SessionPlan {
  return planSession(spec, caps, BOX_SETTINGS, { srtMode: 'caller' });
}

// ---- the hub, in a child process ------------------------------------------------------

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

// ---- CPU accounting -------------------------------------------------------------------

/** Thread names with their instance numbers folded (queue12:src → queue#:src) so runs compare. */
const threadGroup = (name: string): string => name.replace(/\d+/g, '#');

class CpuWindow {
  private readonly start = new Map<number, number>();
  private readonly threadStart = new Map<string, number>();
  private selfStart = process.cpuUsage();

  constructor(
    private readonly pids: () => number[],
    private readonly includeSelf: boolean,
  ) {}

  open(): void {
    this.start.clear();
    this.threadStart.clear();
    for (const pid of this.pids()) {
      const c = procCpuSeconds(pid);
      if (c !== null) this.start.set(pid, c);
      for (const [tid, t] of procThreadCpu(pid)) this.threadStart.set(`${pid}/${tid}`, t.seconds);
    }
    this.selfStart = process.cpuUsage();
  }

  /** CPU seconds since open() per thread group, over all counted processes, largest first. */
  threads(): Array<{ name: string; cpuSeconds: number }> {
    const by = new Map<string, number>();
    for (const pid of this.pids())
      for (const [tid, t] of procThreadCpu(pid)) {
        const d = t.seconds - (this.threadStart.get(`${pid}/${tid}`) ?? 0);
        if (d > 0) by.set(threadGroup(t.name), (by.get(threadGroup(t.name)) ?? 0) + d);
      }
    return [...by].map(([name, v]) => ({ name, cpuSeconds: round3(v) })).sort((a, b) => b.cpuSeconds - a.cpuSeconds);
  }

  /** CPU seconds since open(); throws when a counted process ended inside the window. */
  close(): { processes: number; processSeconds: number; selfSeconds: number; pids: number[] } {
    const self = process.cpuUsage(this.selfStart);
    let total = 0;
    const seen: number[] = [];
    for (const pid of this.pids()) {
      const c = procCpuSeconds(pid);
      if (c === null) continue;
      seen.push(pid);
      total += c - (this.start.get(pid) ?? 0);
    }
    for (const pid of this.start.keys()) {
      if (!seen.includes(pid)) throw new MeasurementError(`cpu: process ${pid} ended inside the measurement window (its CPU would be lost)`);
    }
    return { processes: seen.length, processSeconds: total, selfSeconds: this.includeSelf ? (self.user + self.system) / 1e6 : 0, pids: seen };
  }
}

// ---- the runs -----------------------------------------------------------------------------

export type CpuVariant = 'worker' | 'gst' | 'binding';

export interface CpuRun {
  variant: CpuVariant;
  order: number;
  windowSeconds: number;
  cpuSeconds: number;
  /** Of which the bench process itself (the supervisor), for worker/binding. */
  supervisorCpuSeconds: number;
  processes: number;
  cpuPercentOfOneCore: number;
  hubReceivedFps: number | null;
  boxSentFps: number | null;
  boxReceivedFps: number | null;
  boxReceivedAudioEvidence: number | null;
  /** Where the CPU went: per thread (instance numbers folded), counted processes only, bench process excluded. */
  threads: Array<{ name: string; cpuSeconds: number }>;
}

export interface CpuResult {
  seconds: number;
  settleSeconds: number;
  srtLatencyMs: number;
  runs: CpuRun[];
  sums: Record<CpuVariant, number>;
  /** worker ÷ gst-launch (sums over the alternated runs). */
  ratioWorkerVsGstLaunch: number;
  /** worker running the `direct` string ÷ gst-launch running it: the binding's own cost. */
  ratioBindingDirectVsGstLaunch: number | null;
  pairRatios: number[];
  /** Median of pairRatios: one noisy pair moves it less than the ratio of sums. */
  medianPairRatio: number;
  launch: { pipeline: string; direct: string };
}

export interface CpuOptions {
  caps: Capabilities;
  seconds: number;
  settleSeconds: number;
  rounds: number;
  variants: CpuVariant[];
  log: (line: string) => void;
}

async function runOnce(variant: CpuVariant, order: number, o: CpuOptions, launch: { pipeline: string; direct: string }): Promise<CpuRun> {
  const hub = await HubProcess.start(o.caps, CPU_SRT_LATENCY_MS);
  const plan = boxPlan(o.caps, hub.joinSpec);
  launch.pipeline = plan.pipeline;
  launch.direct = plan.direct;
  const boxPids = (): number[] => childPids(process.pid).filter((p) => p !== hub.pid);
  let supervisor: MediaSupervisor | null = null;
  let gst: ChildProcess | null = null;
  let levelMessages = 0;
  let gstExit: string | null = null;
  try {
    if (variant === 'gst') {
      gst = track(spawn('gst-launch-1.0', ['-m', ...launchArgv(plan.direct)], { stdio: ['ignore', 'pipe', 'pipe'], env: withNativePlugins(process.env) }));
      gst.stdout?.on('data', (d: Buffer) => {
        levelMessages += (d.toString().match(/from element "rxlevel"/g) ?? []).length;
      });
      let err = '';
      gst.stderr?.on('data', (d: Buffer) => {
        err = (err + d.toString()).slice(-1000);
      });
      gst.on('error', (e) => {
        gstExit = `gst-launch-1.0 cannot run: ${e.message} (package gstreamer1.0-tools)`;
      });
      gst.once('exit', (code, signal) => {
        gstExit = `gst-launch-1.0 exited (${signal ?? `code ${code}`}) ${err.trim()}`;
      });
    } else {
      // Production supervisor settings. Running `direct`, the worker sees no TS output of its
      // own (no packetiser) and would call the send direction stalled: no stall rebuilds then.
      supervisor = new MediaSupervisor({ spawner: forkSpawner({ stderr: 'ignore' }), ...(variant === 'binding' ? { stallMs: 1e9 } : {}) });
      await supervisor.prewarm();
      await sleep(300);
      await supervisor.start(variant === 'worker' ? plan : { ...plan, pipeline: plan.direct });
    }
    await sleep(o.settleSeconds * 1000);
    const win = new CpuWindow(boxPids, variant !== 'gst');
    const levelAtOpen = levelMessages;
    const t0 = monoMs();
    win.open();
    await sleep(o.seconds * 1000);
    const threads = win.threads();
    const used = win.close();
    const windowSeconds = (monoMs() - t0) / 1000;
    if (gstExit) throw new MeasurementError(`cpu ${variant}: ${gstExit}`);
    const hubStats = await hub.query();
    const st = supervisor?.status();
    if (st && (st.restarts > 0 || st.lastError)) throw new MeasurementError(`cpu ${variant}: the box session restarted during the run (${st.lastError?.cause}: ${st.lastError?.message})`);
    const hubFps = hubStats.stats?.receive.fps ?? null;
    if (hubFps === null || hubFps < 20) throw new MeasurementError(`cpu ${variant}: the hub received ${hubFps ?? 'no'} fps from the box; the session did not run`);
    const boxRecv = st?.stats?.receive.fps ?? null;
    if (supervisor && (boxRecv === null || boxRecv < 20)) throw new MeasurementError(`cpu ${variant}: the box received ${boxRecv ?? 'no'} fps from the hub`);
    const audioEvidence = variant === 'gst' ? levelMessages - levelAtOpen : (st?.stats?.audio.speakerBuffers ?? null);
    if (variant === 'gst' && levelMessages - levelAtOpen < o.seconds / 2) throw new MeasurementError(`cpu gst: gst-launch-1.0 reported ${levelMessages - levelAtOpen} program audio level messages in ${o.seconds} s; it received nothing`);
    const cpuSeconds = used.processSeconds + used.selfSeconds;
    return {
      variant,
      order,
      windowSeconds: round3(windowSeconds),
      cpuSeconds: round3(cpuSeconds),
      supervisorCpuSeconds: round3(used.selfSeconds),
      processes: used.processes,
      cpuPercentOfOneCore: round1((cpuSeconds / windowSeconds) * 100),
      hubReceivedFps: hubFps,
      boxSentFps: variant === 'worker' ? (st?.stats?.send.fps ?? null) : null,
      boxReceivedFps: boxRecv,
      boxReceivedAudioEvidence: audioEvidence,
      threads,
    };
  } finally {
    if (supervisor) await supervisor.close();
    if (gst) await endChild(gst, 'SIGINT', 3000);
    await hub.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Alternated runs (e.g. worker, gst, binding, worker, gst, binding). */
export async function measureCpu(o: CpuOptions): Promise<CpuResult> {
  const runs: CpuRun[] = [];
  const launch = { pipeline: '', direct: '' };
  let order = 0;
  for (let round = 0; round < o.rounds; round++) {
    for (const v of o.variants) {
      order++;
      o.log(`cpu: run ${order} ${v} (${o.settleSeconds} s settle + ${o.seconds} s) …`);
      const r = await runOnce(v, order, o, launch);
      o.log(`cpu: run ${order} ${v}: ${r.cpuSeconds} CPU-s in ${r.windowSeconds} s (${r.cpuPercentOfOneCore} % of a core), hub got ${r.hubReceivedFps} fps`);
      runs.push(r);
    }
  }
  const sum = (v: CpuVariant): number => runs.filter((r) => r.variant === v).reduce((a, r) => a + r.cpuSeconds, 0);
  const sums = { worker: round3(sum('worker')), gst: round3(sum('gst')), binding: round3(sum('binding')) };
  if (!(sums.gst > 0) || !(sums.worker > 0)) throw new MeasurementError('cpu: the worker and gst-launch runs are both needed for the ratio');
  const pairRatios: number[] = [];
  const ws = runs.filter((r) => r.variant === 'worker');
  const gs = runs.filter((r) => r.variant === 'gst');
  for (let i = 0; i < Math.min(ws.length, gs.length); i++) pairRatios.push(round3(ws[i]!.cpuSeconds / gs[i]!.cpuSeconds));
  return {
    seconds: o.seconds,
    settleSeconds: o.settleSeconds,
    srtLatencyMs: CPU_SRT_LATENCY_MS,
    runs,
    sums,
    ratioWorkerVsGstLaunch: round3(sums.worker / sums.gst),
    ratioBindingDirectVsGstLaunch: sums.binding > 0 ? round3(sums.binding / sums.gst) : null,
    pairRatios,
    medianPairRatio: round3(median(pairRatios)),
    launch,
  };
}

export { freePort };

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
