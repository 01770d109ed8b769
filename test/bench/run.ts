/**
 * The benchmark entry: `npm run bench` (human table) or `npm run bench -- --json` (one
 * JSON object on stdout; progress goes to stderr).
 *
 * Sections are separate modules registered in SECTIONS below; each one is a list of
 * parts, and every part is a function that returns numbers or throws. A part that
 * cannot be measured leaves its fields null with the reason under `unmeasured`, and the
 * bench exits 1: it never prints a made-up number. Select with `--only media` or
 * `--only media.latency,media.startup`. To add a section:
 * write a module exporting a BenchSection and add it to SECTIONS.
 *
 * Options (defaults meet the documented minimums; the whole run takes about 8 minutes,
 * half of it the adapt section's three link scenarios):
 *   --json                      one JSON object on stdout
 *   --only LIST                 sections or section.part, comma-separated
 *   --latency-seconds N         measured seconds of our path (default 15)
 *   --reference-seconds N       measured seconds of each reference variant (default 10)
 *   --latency-variants LIST     default ours,ours-video-only,ours-node,direct,before,rtp (also: ours-opus10)
 *   --cpu-seconds N             window of each CPU run (default 20)
 *   --cpu-rounds N              rounds of worker/gst(/binding) runs (default 4)
 *   --cpu-settle-seconds N      from session start to the CPU window (default 10)
 *   --cpu-mode M                together (worker and gst-launch side by side, one window
 *                               per round; default) or alternate (one at a time)
 *   --startup-runs N            repetitions of start → first bytes (default 7)
 *   --agent-runs N              repetitions of the agent measurements (default 5)
 *   --plot-dir DIR              the adapt section writes DATE-adapt.svg there
 */
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { pickDecoder, pickEncoder } from '../../gst-pipelines/plan/codecs.js';
import { probe } from '../../gst-pipelines/probe/probe.js';
import type { Capabilities } from '../../gst-pipelines/types.js';
import { machineInfo, killTracked, MeasurementError, monoMs, round1, sourceState, type MachineInfo } from './machine.js';
import { measureCpu, type CpuResult, type CpuVariant } from './media-cpu.js';
import { LATENCY_VARIANTS, measureLatency, SRT_LATENCY_MS, type LatencyResult, type LatencyVariantId } from './media-latency.js';
import { measureStartup, type StartupResult } from './media-startup.js';
import { measureAgent, type AgentResult } from './agent.js';
import { measureAdapt, type AdaptBenchResult } from './adapt.js';

// ---- options ------------------------------------------------------------------------------

export interface BenchOptions {
  json: boolean;
  only: string[] | null;
  latencySeconds: number;
  referenceSeconds: number;
  latencyVariants: LatencyVariantId[];
  cpuSeconds: number;
  cpuRounds: number;
  cpuSettleSeconds: number;
  cpuMode: 'together' | 'alternate';
  startupRuns: number;
  agentRuns: number;
  /** Where the adapt section writes its SVG plot (none when null). */
  plotDir: string | null;
}

class UsageError extends Error {}

export function parseArgs(argv: string[]): BenchOptions {
  const o: BenchOptions = {
    json: false,
    only: null,
    latencySeconds: 15,
    referenceSeconds: 10,
    latencyVariants: ['ours', 'ours-video-only', 'ours-node', 'direct', 'before', 'rtp'],
    cpuSeconds: 20,
    cpuRounds: 4,
    cpuSettleSeconds: 10,
    cpuMode: 'together',
    startupRuns: 7,
    agentRuns: 5,
    plotDir: null,
  };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`${flag} needs a number ≥ ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--json':
        o.json = true;
        break;
      case '--only':
        o.only = (value() ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        break;
      case '--latency-seconds':
        o.latencySeconds = num(flag, value(), 1);
        break;
      case '--reference-seconds':
        o.referenceSeconds = num(flag, value(), 1);
        break;
      case '--latency-variants': {
        const list = (value() ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        for (const v of list) if (!(v in LATENCY_VARIANTS)) throw new UsageError(`unknown latency variant ${v} (known: ${Object.keys(LATENCY_VARIANTS).join(', ')})`);
        if (!list.includes('ours')) throw new UsageError('--latency-variants must include ours');
        o.latencyVariants = list as LatencyVariantId[];
        break;
      }
      case '--cpu-seconds':
        o.cpuSeconds = num(flag, value(), 1);
        break;
      case '--cpu-rounds':
        o.cpuRounds = Math.round(num(flag, value(), 1));
        break;
      case '--cpu-settle-seconds':
        o.cpuSettleSeconds = num(flag, value(), 0);
        break;
      case '--cpu-mode': {
        const m = value();
        if (m !== 'together' && m !== 'alternate') throw new UsageError('--cpu-mode is together or alternate');
        o.cpuMode = m;
        break;
      }
      case '--startup-runs':
        o.startupRuns = Math.round(num(flag, value(), 1));
        break;
      case '--agent-runs':
        o.agentRuns = Math.round(num(flag, value(), 1));
        break;
      case '--plot-dir':
        o.plotDir = value() ?? null;
        if (!o.plotDir) throw new UsageError('--plot-dir needs a directory');
        break;
      case '--help':
      case '-h':
        throw new UsageError('usage: node dist/test/bench/run.js [--json] [--only media[.latency|.cpu|.startup],agent,adapt] [--agent-runs N] [--plot-dir DIR] [--latency-seconds N] [--reference-seconds N] [--latency-variants LIST] [--cpu-seconds N] [--cpu-rounds N] [--cpu-settle-seconds N] [--cpu-mode together|alternate] [--startup-runs N]');
      default:
        throw new UsageError(`unknown option ${a} (try --help)`);
    }
  }
  return o;
}

// ---- sections --------------------------------------------------------------------------------

export interface BenchContext {
  options: BenchOptions;
  /** Progress lines (stderr). */
  log: (line: string) => void;
  /** The probed GStreamer capabilities of this machine (probed once, on first use). */
  caps: () => Promise<Capabilities>;
}

export interface Goal {
  field: string;
  target: string;
  value: number | null;
  met: boolean | null;
}

export interface SectionReport {
  /** Headline fields first (numbers or null), then details. */
  data: Record<string, unknown>;
  /** Field → why it is null. A non-empty map makes the bench exit 1. */
  unmeasured: Record<string, string>;
  /** Parts left out by --only (not a failure). */
  skipped: string[];
  goals: Goal[];
  /** Lines for the human report. */
  table: string[];
}

export interface BenchSection {
  name: string;
  parts: readonly string[];
  run(ctx: BenchContext, parts: ReadonlySet<string>): Promise<SectionReport>;
}

const fmt = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? '—' : `${v}${unit}`);
const goal = (field: string, target: string, value: number | null, ok: (v: number) => boolean): Goal => ({ field, target, value, met: value === null ? null : ok(value) });

/** A section's human table: a title, a header, `row()`s with the goal of a field (`met()`). */
function sectionTable(title: string, goals: Goal[], width: number): { t: string[]; row: (name: string, v: string, g?: string) => void; met: (field: string) => string } {
  const t = [title, `  ${'metric'.padEnd(width)} ${'measured'.padEnd(12)} goal`];
  const row = (name: string, v: string, g = ''): void => void t.push(`  ${name.padEnd(width)} ${v.padEnd(12)} ${g}`);
  const met = (f: string): string => {
    const g = goals.find((x) => x.field === f);
    return g ? `${g.target} ${g.met === null ? '' : g.met ? '✓ met' : '✗ not met'}` : '';
  };
  return { t, row, met };
}

async function part<T>(name: string, parts: ReadonlySet<string>, unmeasured: Record<string, string>, fields: string[], fn: () => Promise<T>): Promise<T | null> {
  if (!parts.has(name)) return null;
  try {
    return await fn();
  } catch (e) {
    const reason = e instanceof MeasurementError ? e.message : `${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
    for (const f of fields) unmeasured[f] = reason;
    return null;
  }
}

export const mediaSection: BenchSection = {
  name: 'media',
  parts: ['latency', 'cpu', 'startup'],
  async run(ctx, parts) {
    const o = ctx.options;
    const caps = await ctx.caps();
    const unmeasured: Record<string, string> = {};
    const skipped = this.parts.filter((p) => !parts.has(p));

    const latency = await part('latency', parts, unmeasured, ['latencyP50Ms', 'latencyP90Ms', 'latencyP99Ms'], async (): Promise<LatencyResult> => {
      // Our path for latencySeconds, each reference for referenceSeconds.
      const ours = await measureLatency({ caps, seconds: o.latencySeconds, warmupSeconds: 1.5, variants: ['ours'], log: ctx.log });
      const refs = o.latencyVariants.filter((v) => v !== 'ours');
      const rest = refs.length ? await measureLatency({ caps, seconds: o.referenceSeconds, warmupSeconds: 1.5, variants: refs, log: ctx.log }) : null;
      return { ...ours, variants: [...ours.variants, ...(rest?.variants ?? [])] };
    });
    // With epframer the worker runs the very string gst-launch runs (plan.direct ===
    // plan.pipeline): `binding` would repeat `worker`, so the rounds go to the pair.
    const cpuVariants: CpuVariant[] = caps.elements.epframer ? ['worker', 'gst'] : ['worker', 'gst', 'binding'];
    const cpu = await part('cpu', parts, unmeasured, ['cpuRatioVsGstLaunch', 'cpuRatioBindingDirectVsGstLaunch'], (): Promise<CpuResult> =>
      measureCpu({ caps, seconds: o.cpuSeconds, settleSeconds: o.cpuSettleSeconds, rounds: o.cpuRounds, variants: cpuVariants, mode: o.cpuMode, log: ctx.log }),
    );
    const startup = await part('startup', parts, unmeasured, ['startToFirstBytesMs', 'startToFirstBytesMaxMs'], (): Promise<StartupResult> =>
      measureStartup({ caps, repetitions: o.startupRuns, log: ctx.log }),
    );

    const ours = latency?.variants.find((v) => v.id === 'ours') ?? null;
    const data = {
      srtLatencyMs: SRT_LATENCY_MS,
      latencyP50Ms: ours?.p50Ms ?? null,
      latencyP90Ms: ours?.p90Ms ?? null,
      latencyP99Ms: ours?.p99Ms ?? null,
      cpuRatioVsGstLaunch: cpu?.ratioWorkerVsGstLaunch ?? null,
      cpuRatioBindingDirectVsGstLaunch: cpu?.ratioBindingDirectVsGstLaunch ?? null,
      cpuMedianPairRatio: cpu?.medianPairRatio ?? null,
      startToFirstBytesMs: startup?.medianMs ?? null,
      startToFirstBytesMaxMs: startup?.maxMs ?? null,
      plan: { encoder: null as string | null, decoder: null as string | null },
      latency,
      cpu,
      startup,
    };
    data.plan = { encoder: pickEncoder(caps), decoder: pickDecoder(caps) };
    const goals = [
      goal('latencyP50Ms', '≤ 55 ms', data.latencyP50Ms, (v) => v <= 55),
      goal('cpuRatioVsGstLaunch', '≤ 1.05', data.cpuRatioVsGstLaunch, (v) => v <= 1.05),
      goal('startToFirstBytesMs', '≤ 300 ms (median)', data.startToFirstBytesMs, (v) => v <= 300),
    ];

    const { t, row, met } = sectionTable(`media (720p30, ${data.plan.encoder} → ${data.plan.decoder}, SRT latency ${SRT_LATENCY_MS} ms)`, goals, 36);
    row('latency p50 (our path)', fmt(data.latencyP50Ms, ' ms'), met('latencyP50Ms'));
    row('latency p90 / p99', `${fmt(data.latencyP90Ms)} / ${fmt(data.latencyP99Ms, ' ms')}`);
    row('CPU worker ÷ gst-launch', fmt(data.cpuRatioVsGstLaunch), met('cpuRatioVsGstLaunch'));
    row('CPU worker(direct) ÷ gst-launch', fmt(data.cpuRatioBindingDirectVsGstLaunch), '(binding overhead alone)');
    row('start → first bytes, median', fmt(data.startToFirstBytesMs, ' ms'), met('startToFirstBytesMs'));
    row('start → first bytes, max', fmt(data.startToFirstBytesMaxMs, ' ms'));
    if (latency) {
      t.push('', `  latency by variant (ms)       ${'p50'.padStart(7)} ${'p90'.padStart(7)} ${'p99'.padStart(7)}  frames back/sent  seconds`);
      for (const v of latency.variants) {
        t.push(`  ${v.id.padEnd(30)}${fmt(v.p50Ms).padStart(7)} ${fmt(v.p90Ms).padStart(7)} ${fmt(v.p99Ms).padStart(7)}  ${`${v.framesReceivedValid}/${v.framesSent}`.padEnd(16)}  ${v.seconds}`);
      }
    }
    if (cpu) {
      t.push('', '  CPU runs (alternated)          CPU-s   window   % of a core   hub got fps');
      for (const r of cpu.runs) t.push(`  ${`${r.order}. ${r.variant}`.padEnd(30)}${String(r.cpuSeconds).padStart(7)}  ${String(r.windowSeconds).padStart(7)}  ${String(r.cpuPercentOfOneCore).padStart(11)}   ${fmt(r.hubReceivedFps)}`);
      t.push(`  sums: worker ${cpu.sums.worker}, gst-launch ${cpu.sums.gst}, worker(direct) ${cpu.sums.binding} CPU-s; per-pair worker÷gst ${cpu.pairRatios.join(', ')} (median ${cpu.medianPairRatio})`);
    }
    if (startup) {
      t.push('', `  start → first bytes (ms): ${startup.runs.map((r) => r.startToFirstBytesMs).join(', ')}`);
    }
    for (const [f, why] of Object.entries(unmeasured)) t.push(`  NOT MEASURED ${f}: ${why}`);
    return { data, unmeasured, skipped, goals, table: t };
  },
};

export const agentSection: BenchSection = {
  name: 'agent',
  parts: ['all'],
  async run(ctx) {
    const unmeasured: Record<string, string> = {};
    const fields = ['startToOnlineMs', 'joinCommandToFirstMediaMs', 'rssIdleMb', 'healthSampleMs'];
    const r = await part('all', new Set(['all']), unmeasured, fields, (): Promise<AgentResult> => measureAgent({ repetitions: ctx.options.agentRuns, log: ctx.log }));
    const data = {
      startToOnlineMs: r?.startToOnlineMs ?? null,
      joinCommandToFirstMediaMs: r?.joinCommandToFirstMediaMs ?? null,
      rssIdleMb: r?.rssIdleMb ?? null,
      healthSampleMs: r?.healthSampleMs ?? null,
      healthSampleP95Ms: r?.healthSampleP95Ms ?? null,
      runs: r?.runs ?? [],
    };
    const goals = [
      goal('joinCommandToFirstMediaMs', '≤ 300 ms', data.joinCommandToFirstMediaMs, (v) => v <= 300),
      goal('startToOnlineMs', '≤ 1500 ms', data.startToOnlineMs, (v) => v <= 1500),
      goal('rssIdleMb', '≤ 70 MB', data.rssIdleMb, (v) => v <= 70),
    ];
    const { t, row, met } = sectionTable('agent (ep run against Mosquitto, media in test-source mode)', goals, 36);
    row('process start → online (median)', fmt(data.startToOnlineMs, ' ms'), met('startToOnlineMs'));
    row('join command → first media (median)', fmt(data.joinCommandToFirstMediaMs, ' ms'), met('joinCommandToFirstMediaMs'));
    row('RSS idle (max of runs)', fmt(data.rssIdleMb, ' MB'), met('rssIdleMb'));
    row('health sample (mean / p95)', `${fmt(data.healthSampleMs)} / ${fmt(data.healthSampleP95Ms, ' ms')}`);
    if (r) t.push(`  runs: ${r.runs.map((x) => `${x.startToOnlineMs}/${x.joinCommandToFirstMediaMs}/${x.rssIdleMb}`).join(', ')} (online ms / join ms / MB)`);
    for (const [f, why] of Object.entries(unmeasured)) t.push(`  NOT MEASURED ${f}: ${why}`);
    return { data, unmeasured, skipped: [], goals, table: t };
  },
};

export const adaptSection: BenchSection = {
  name: 'adapt',
  parts: ['all'],
  async run(ctx) {
    const unmeasured: Record<string, string> = {};
    const fields = ['adaptSeconds', 'framesPctAfterCollapse', 'maxFreezeMsAfterAdapt', 'recoverSeconds', 'framesPctFixedBitrate'];
    const date = new Date().toISOString().slice(0, 10);
    const r = await part('all', new Set(['all']), unmeasured, fields, (): Promise<AdaptBenchResult> => measureAdapt({ log: ctx.log, plotDir: ctx.options.plotDir, date }));
    const r1 = (v: number | null | undefined): number | null => (v === null || v === undefined ? null : Math.round(v * 10) / 10);
    const data = {
      adaptSeconds: r1(r?.adaptSeconds),
      framesPctAfterCollapse: r1(r?.framesPctAfterCollapse),
      maxFreezeMsAfterAdapt: r1(r?.maxFreezeMsAfterAdapt),
      recoverSeconds: r1(r?.recoverSeconds),
      framesPctFixedBitrate: r1(r?.framesPctFixedBitrate),
      firstStepSeconds: r1(r?.firstStepSeconds),
      audioLostMsAt600: r?.audioLostMsAt600 ?? null,
      audioLostMsAt100: r?.audioLostMsAt100 ?? null,
      audioLostMsFixedBitrate: r?.audioLostMsFixedBitrate ?? null,
      audioLateMsAt600: r1(r?.audioLateMsAt600),
      audioLateMsAt100: r1(r?.audioLateMsAt100),
      audioBreakAtCollapseMs: r1(r?.audioBreakAtCollapseMs),
      audioUnbrokenAfterSeconds: r1(r?.audioUnbrokenAfterSeconds),
      audioOnlySeconds: r1(r?.audioOnlySeconds),
      videoBackSeconds: r1(r?.videoBackSeconds),
      stepsDownAt600: r?.stepsDownAt600 ?? null,
      plot: r?.plot ?? null,
      runs: r?.runs ?? {},
    };
    const goals = [
      goal('adaptSeconds', '≤ 3 s', data.adaptSeconds, (v) => v <= 3),
      goal('framesPctAfterCollapse', '≥ 95 %', data.framesPctAfterCollapse, (v) => v >= 95),
      goal('maxFreezeMsAfterAdapt', '≤ 1000 ms', data.maxFreezeMsAfterAdapt, (v) => v <= 1000),
      goal('recoverSeconds', '≤ 20 s', data.recoverSeconds, (v) => v <= 20),
      goal('videoBackSeconds', '≤ 10 s', data.videoBackSeconds, (v) => v <= 10),
      goal('audioLostMsAt600', '0 ms', data.audioLostMsAt600, (v) => v === 0),
      goal('audioLostMsAt100', '0 ms', data.audioLostMsAt100, (v) => v === 0),
    ];
    const { t, row, met } = sectionTable('adapt (720p30 1500 kbit/s through a 60 KB drop-tail bottleneck, SRT latency 200 ms)', goals, 44);
    row('600k collapse → wire rate fits the link', fmt(data.adaptSeconds, ' s'), met('adaptSeconds'));
    row('600k collapse → first step down', fmt(data.firstStepSeconds, ' s'));
    row('frames at the hub, 35 s after adapting', fmt(data.framesPctAfterCollapse, ' %'), met('framesPctAfterCollapse'));
    row('longest freeze in those 35 s', fmt(data.maxFreezeMsAfterAdapt, ' ms'), met('maxFreezeMsAfterAdapt'));
    row('back at 720p30/1500 after 4 Mbit/s returns', fmt(data.recoverSeconds, ' s'), met('recoverSeconds'));
    row('anchor: frames at the hub, adaptation off', fmt(data.framesPctFixedBitrate, ' %'));
    row('audio lost at the hub, 600k run (Opus audit)', fmt(data.audioLostMsAt600, ' ms'), met('audioLostMsAt600'));
    row('audio lost at the hub, 100k run', fmt(data.audioLostMsAt100, ' ms'), met('audioLostMsAt100'));
    row('anchor: audio lost, adaptation off', fmt(data.audioLostMsFixedBitrate, ' ms'));
    row('600k: longest wait between Opus frames', fmt(data.audioLateMsAt600, ' ms'));
    row('100k: longest wait between Opus frames', fmt(data.audioLateMsAt100, ' ms'));
    row('600k: longest pause in hub level reports', fmt(data.audioBreakAtCollapseMs, ' ms'));
    row('100k collapse → audio-only', fmt(data.audioOnlySeconds, ' s'));
    row('100k → 4 Mbit/s: video back', fmt(data.videoBackSeconds, ' s'), met('videoBackSeconds'));
    row('steps down at a steady 600 kbit/s (probes)', fmt(data.stepsDownAt600));
    if (data.plot) t.push(`  plot: ${data.plot}`);
    for (const [f, why] of Object.entries(unmeasured)) t.push(`  NOT MEASURED ${f}: ${why}`);
    return { data, unmeasured, skipped: [], goals, table: t };
  },
};

/** Every section the bench knows, in run order. */
export const SECTIONS: readonly BenchSection[] = [mediaSection, agentSection, adaptSection];

// ---- main -----------------------------------------------------------------------------------

function selection(only: string[] | null): Map<BenchSection, Set<string>> {
  const chosen = new Map<BenchSection, Set<string>>();
  for (const s of SECTIONS) {
    if (!only) {
      chosen.set(s, new Set(s.parts));
      continue;
    }
    const parts = new Set<string>();
    for (const item of only) {
      const [sec, p] = item.split('.');
      if (sec !== s.name) continue;
      if (p === undefined) s.parts.forEach((x) => parts.add(x));
      else if (s.parts.includes(p)) parts.add(p);
      else throw new UsageError(`unknown part ${item} (known: ${s.parts.map((x) => `${s.name}.${x}`).join(', ')})`);
    }
    if (parts.size > 0) chosen.set(s, parts);
  }
  for (const item of only ?? []) {
    if (!SECTIONS.some((s) => s.name === item.split('.')[0])) throw new UsageError(`unknown section ${item} (known: ${SECTIONS.map((s) => s.name).join(', ')})`);
  }
  return chosen;
}

export async function main(argv: string[]): Promise<number> {
  let options: BenchOptions;
  let chosen: Map<BenchSection, Set<string>>;
  try {
    options = parseArgs(argv);
    chosen = selection(options.only);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  const t0 = monoMs();
  const date = new Date().toISOString();
  const log = (line: string): void => void process.stderr.write(`[bench ${round1((monoMs() - t0) / 1000)}s] ${line}\n`);
  let capsP: Promise<Capabilities> | null = null;
  const ctx: BenchContext = { options, log, caps: () => (capsP ??= probe()) };
  const machine: MachineInfo = await machineInfo();
  log(`machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryMb} MB, ${machine.os}, node ${machine.node}, GStreamer ${machine.gstreamer}; load ${machine.loadAverageAtStart.join(' ')}`);

  // Other work on the machine inflates tails and start-up times: sample the load throughout.
  let maxLoad = loadavg()[0] ?? 0;
  const loadTimer = setInterval(() => {
    maxLoad = Math.max(maxLoad, loadavg()[0] ?? 0);
  }, 2000);
  loadTimer.unref();
  // The sources change under a running bench when someone rebuilds dist/: say what ran.
  const source = await sourceState();
  const out: Record<string, unknown> = { date, command: `node dist/test/bench/run.js ${argv.join(' ')}`.trim(), machine, source };
  const problems: string[] = [];
  const tables: string[] = [];
  for (const [section, parts] of chosen) {
    let report: SectionReport;
    try {
      report = await section.run(ctx, parts);
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      report = { data: {}, unmeasured: { [section.name]: reason }, skipped: [], goals: [], table: [`${section.name}: NOT MEASURED: ${reason}`] };
    }
    out[section.name] = { ...report.data, goals: report.goals, unmeasured: report.unmeasured, ...(report.skipped.length ? { skipped: report.skipped } : {}) };
    for (const [f, why] of Object.entries(report.unmeasured)) problems.push(`${section.name}.${f}: ${why}`);
    tables.push(...report.table, '');
  }
  clearInterval(loadTimer);
  out.loadAverageAtEnd = loadavg().map((l) => Math.round(l * 100) / 100);
  maxLoad = Math.max(maxLoad, loadavg()[0] ?? 0);
  out.loadAverage1mMax = Math.round(maxLoad * 100) / 100;
  const warnings: string[] = [];
  if (maxLoad > machine.cores) {
    warnings.push(
      `the 1-minute load average reached ${out.loadAverage1mMax} on ${machine.cores} cores during the run: other processes competed for the CPU, so latency tails, start-up times and CPU percentages are inflated; compare runs on a quiet machine`,
    );
  }
  out.warnings = warnings;
  out.durationSeconds = round1((monoMs() - t0) / 1000);
  out.ok = problems.length === 0;
  out.problems = problems;

  if (options.json) {
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    const m = machine;
    console.log(`Benchmark ${date}  (${out.durationSeconds} s)`);
    console.log(`machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryMb} MB RAM, ${m.os} (kernel ${m.kernel}, ${m.arch}${m.virtualization ? `, ${m.virtualization}` : ''}), node ${m.node}, GStreamer ${m.gstreamer}, ${m.binding}`);
    if (source) console.log(`source: commit ${source.commit ?? '?'}${source.changed.length ? `, changed: ${source.changed.join(' ')}` : ', no local changes'}`);
    console.log(`load average at start ${m.loadAverageAtStart.join(' ')}, at end ${(out.loadAverageAtEnd as number[]).join(' ')}, 1-minute max ${String(out.loadAverage1mMax)}`);
    for (const w of warnings) console.log(`WARNING: ${w}`);
    console.log('');
    for (const line of tables) console.log(line);
  }
  if (problems.length > 0) {
    console.error(`bench: ${problems.length} measurement(s) could not be taken:`);
    for (const p of problems) console.error(`  - ${p}`);
    return 1;
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.on('exit', killTracked);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      killTracked();
      process.exit(130);
    });
  }
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exit(1);
    },
  );
}
