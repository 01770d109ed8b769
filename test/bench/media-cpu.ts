/**
 * CPU cost of running a media session through our worker, against gst-launch-1.0.
 *
 * One box session (the plan for a box in test-source mode: 720p30 x264 send, receive +
 * avdec_h264, Opus both ways, AEC) talks to a LocalHub started fresh for every run in
 * its own child process (so none of the hub's work lands in the bench process). By
 * default each round runs `worker` and `gst` side by side, each with its own hub, over
 * one window (the first started alternates): the shared machine's noise then hits both
 * alike (one at a time, pairs 20 s apart differed by up to ±10 % on this machine).
 * `--cpu-mode alternate` runs one variant at a time, as `binding` needs:
 *
 * - worker:  the production path. MediaSupervisor (in this process, prewarmed) runs the
 *            plan's `pipeline` in a forked MediaWorker. Counted: every direct child of
 *            this process except hubs and gst-launch (the worker and the supervisor's
 *            next warm worker) + this process's own CPU (the supervisor).
 * - gst:     gst-launch-1.0 running the plan's `direct` string: with epframer the very
 *            string the worker runs; without it (Node framing) `mpegtsmux alignment=7 !
 *            srtsink`, as gst-launch cannot run the Node packetiser. Counted: gst-launch.
 * - binding: the worker running the `direct` string (the cost of the Node binding and
 *            worker alone), only without epframer. Counted like `worker`.
 *
 * CPU = utime + stime from /proc/PID/stat over a steady-state window that opens
 * `settleSeconds` (default 10: the warm worker's start-up and first idle GCs are over;
 * a meeting runs for hours) after the last session was asked to start and lasts `seconds`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';
import { planSession } from '../../gst-pipelines/plan/session.js';
import { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import { forkSpawner } from '../../gst-pipelines/supervisor/worker-process.js';
import { withNativePlugins } from '../../gst-pipelines/native/plugin.js';
import type { Capabilities, MediaJoinSpec, MediaSettings, SessionPlan } from '../../gst-pipelines/types.js';
import { HubProcess } from './hub-process.js';
import { childPids, endChild, launchArgv, track, MeasurementError, monoMs, procCpuSeconds, procThreadCpu, round1, round3, sleep } from './machine.js';

export const CPU_SRT_LATENCY_MS = 40;

/** The box's media settings in the benchmarks: test sources and sinks, production defaults otherwise. */
export const BOX_SETTINGS: MediaSettings = { source: 'test', volume: 1, micMuted: false, aec: true, statsPeriodS: 2, standbyTitle: 'Bench box' };

export function boxPlan(caps: Capabilities, spec: MediaJoinSpec): SessionPlan {
  return planSession(spec, caps, BOX_SETTINGS, { srtMode: 'caller' });
}

// ---- CPU accounting -------------------------------------------------------------------

/** Thread names with their instance numbers folded (queue12:src → queue#:src) so runs compare. */
const threadGroup = (name: string): string => name.replace(/\d+/g, '#');

class CpuWindow {
  private readonly start = new Map<number, number>();
  private readonly threadStart = new Map<string, number>();

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

  /**
   * CPU seconds since open(); throws when a counted process ended inside the window.
   * `selfSeconds`: this process's CPU over the window (the supervisor), taken by the
   * caller around its sleep only, so the /proc reads of open() and close() are not in it.
   */
  close(selfSeconds: number): { processes: number; processSeconds: number; selfSeconds: number; pids: number[] } {
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
    return { processes: seen.length, processSeconds: total, selfSeconds: this.includeSelf ? selfSeconds : 0, pids: seen };
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
  /** together: worker and gst-launch side by side in each round's window; alternate: one at a time. */
  mode: 'together' | 'alternate';
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
  /** Side by side in one window (default), or one at a time. */
  mode: 'together' | 'alternate';
  log: (line: string) => void;
}

/** One variant's session, started and running (runs: `measure` and `stop`). */
interface Running {
  variant: CpuVariant;
  hub: HubProcess;
  supervisor: MediaSupervisor | null;
  gst: ChildProcess | null;
  levelMessages: () => number;
  gstExit: () => string | null;
  /** gst-launch's stdout (its -m messages), removed at stop. */
  outFile?: string;
}

async function startVariant(variant: CpuVariant, o: CpuOptions, launch: { pipeline: string; direct: string }): Promise<Running> {
  const hub = await HubProcess.start(o.caps, CPU_SRT_LATENCY_MS);
  const plan = boxPlan(o.caps, hub.joinSpec);
  launch.pipeline = plan.pipeline;
  launch.direct = plan.direct;
  let gstExit: string | null = null;
  const r: Running = { variant, hub, supervisor: null, gst: null, levelMessages: () => 0, gstExit: () => gstExit };
  try {
    if (variant === 'gst') {
      // gst-launch's -m output goes to a file, counted when asked: read through a pipe, it
      // cost the bench process (counted as the worker's supervisor in a pair) ~15 ms a
      // window (perf).
      const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'ep-bench-gst-')), 'messages.txt');
      const fd = openSync(out, 'w');
      const gst = track(spawn('gst-launch-1.0', ['-m', ...launchArgv(plan.direct)], { stdio: ['ignore', fd, 'pipe'], env: withNativePlugins(process.env) }));
      closeSync(fd);
      r.gst = gst;
      r.outFile = out;
      r.levelMessages = () => (readFileSync(out, 'utf8').match(/from element "rxlevel"/g) ?? []).length;
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
      r.supervisor = new MediaSupervisor({ spawner: forkSpawner({ stderr: 'ignore' }), ...(variant === 'binding' ? { stallMs: 1e9 } : {}) });
      await r.supervisor.prewarm();
      await sleep(300);
      await r.supervisor.start(variant === 'worker' ? plan : { ...plan, pipeline: plan.direct });
    }
    return r;
  } catch (e) {
    await stopVariant(r);
    throw e;
  }
}

async function stopVariant(r: Running): Promise<void> {
  if (r.supervisor) await r.supervisor.close();
  if (r.gst) await endChild(r.gst, 'SIGINT', 3000);
  if (r.outFile) rmSync(path.dirname(r.outFile), { recursive: true, force: true });
  await r.hub.stop();
}

/** The processes a variant's CPU is counted over (the bench process itself is added for the supervisor). */
function countedPids(r: Running, all: Running[]): () => number[] {
  if (r.gst) {
    const pid = r.gst.pid;
    return () => (pid === undefined ? [] : [pid]);
  }
  // The worker and the supervisor's next warm worker: our children that are no hub and no gst-launch.
  return () => {
    const others = new Set(all.flatMap((x) => [x.hub.pid, x.gst?.pid]));
    return childPids(process.pid).filter((p) => !others.has(p));
  };
}

async function checkRun(r: Running, o: CpuOptions, levelAtOpen: number): Promise<Pick<CpuRun, 'hubReceivedFps' | 'boxSentFps' | 'boxReceivedFps' | 'boxReceivedAudioEvidence'>> {
  const variant = r.variant;
  const gstExit = r.gstExit();
  if (gstExit) throw new MeasurementError(`cpu ${variant}: ${gstExit}`);
  const hubStats = await r.hub.query();
  const st = r.supervisor?.status();
  if (st && (st.restarts > 0 || st.lastError)) throw new MeasurementError(`cpu ${variant}: the box session restarted during the run (${st.lastError?.cause}: ${st.lastError?.message})`);
  const hubFps = hubStats.stats?.receive.fps ?? null;
  if (hubFps === null || hubFps < 20) throw new MeasurementError(`cpu ${variant}: the hub received ${hubFps ?? 'no'} fps from the box; the session did not run`);
  const boxRecv = st?.stats?.receive.fps ?? null;
  if (r.supervisor && (boxRecv === null || boxRecv < 20)) throw new MeasurementError(`cpu ${variant}: the box received ${boxRecv ?? 'no'} fps from the hub`);
  const levels = r.levelMessages() - levelAtOpen;
  if (variant === 'gst' && levels < o.seconds / 2) throw new MeasurementError(`cpu gst: gst-launch-1.0 reported ${levels} program audio level messages in ${o.seconds} s; it received nothing`);
  return {
    hubReceivedFps: hubFps,
    boxSentFps: variant === 'worker' ? (st?.stats?.send.fps ?? null) : null,
    boxReceivedFps: boxRecv,
    boxReceivedAudioEvidence: variant === 'gst' ? levels : (st?.stats?.audio.speakerBuffers ?? null),
  };
}

/**
 * Runs `variants` side by side (each with its own hub) and measures them over one
 * window, opened `settleSeconds` after the last started: the shared machine's noise
 * then hits each alike. At most one variant with a supervisor (the bench process's own
 * CPU is counted to it).
 */
async function runTogether(variants: CpuVariant[], firstOrder: number, o: CpuOptions, launch: { pipeline: string; direct: string }): Promise<CpuRun[]> {
  if (variants.filter((v) => v !== 'gst').length > 1) throw new Error('cpu: one supervised variant per run (its CPU includes the bench process)');
  const running: Running[] = [];
  try {
    for (const v of variants) running.push(await startVariant(v, o, launch));
    await sleep(o.settleSeconds * 1000);
    const windows = running.map((r) => new CpuWindow(countedPids(r, running), r.variant !== 'gst'));
    const levelsAtOpen = running.map((r) => r.levelMessages());
    for (const w of windows) w.open();
    const t0 = monoMs();
    const self0 = process.cpuUsage();
    await sleep(o.seconds * 1000);
    const self = process.cpuUsage(self0);
    const windowSeconds = (monoMs() - t0) / 1000;
    const closed = windows.map((w) => ({ threads: w.threads(), used: w.close((self.user + self.system) / 1e6) }));
    const runs: CpuRun[] = [];
    for (let i = 0; i < running.length; i++) {
      const r = running[i]!;
      const { threads, used } = closed[i]!;
      const checks = await checkRun(r, o, levelsAtOpen[i]!);
      const cpuSeconds = used.processSeconds + used.selfSeconds;
      runs.push({
        variant: r.variant,
        order: firstOrder + i,
        windowSeconds: round3(windowSeconds),
        cpuSeconds: round3(cpuSeconds),
        supervisorCpuSeconds: round3(used.selfSeconds),
        processes: used.processes,
        cpuPercentOfOneCore: round1((cpuSeconds / windowSeconds) * 100),
        ...checks,
        threads,
      });
    }
    return runs;
  } finally {
    for (const r of running) await stopVariant(r);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * `together` (default): each round runs worker and gst-launch side by side over one
 * window, the first started alternating between rounds. `alternate`: one variant at a
 * time (worker, gst, binding, worker, …), which a supervised `binding` run needs.
 */
export async function measureCpu(o: CpuOptions): Promise<CpuResult> {
  const runs: CpuRun[] = [];
  const launch = { pipeline: '', direct: '' };
  let order = 0;
  const together = o.mode === 'together' && !o.variants.includes('binding');
  for (let round = 0; round < o.rounds; round++) {
    const groups = together ? [round % 2 ? [...o.variants].reverse() : o.variants] : o.variants.map((v) => [v]);
    for (const g of groups) {
      o.log(`cpu: run ${order + 1} ${g.join(' + ')} (${o.settleSeconds} s settle + ${o.seconds} s) …`);
      const rs = await runTogether(g, order + 1, o, launch);
      order += rs.length;
      for (const r of rs) o.log(`cpu: run ${r.order} ${r.variant}: ${r.cpuSeconds} CPU-s in ${r.windowSeconds} s (${r.cpuPercentOfOneCore} % of a core), hub got ${r.hubReceivedFps} fps`);
      runs.push(...rs);
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
    mode: together ? 'together' : 'alternate',
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

export { HubProcess };
