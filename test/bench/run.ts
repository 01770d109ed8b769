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
 * Sections: media (latency, cpu, startup, loopback, framer), agent, adapt, faults (hub-away,
 * kill, kill-at-hub, stall, orphan, audio-resume, auth), commands (throughput), ota (bundle, delta),
 * compare (ffmpeg, chromium: side by side), soak (only with --only soak: a 30-minute meeting), fuzz (only with
 * --only fuzz: every test/fuzz target at its full size, ~2.5 minutes). The timing goals the integration
 * tests leave to the bench are fields of adapt, faults, media.loopback and media.framer.
 *
 * Options (defaults meet the documented minimums; the whole run takes about 14 minutes,
 * a quarter of it the adapt section's three link scenarios, 3 the compare section):
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
 *   --agent-node PATH           the Node that runs the agent (default: the bench's own)
 *   --command-burst N           commands per kind in the commands section (default 2000)
 *   --ota-runs N                updates with the 50 MB bundle in the ota section (default 3)
 *   --plot-dir DIR              the adapt section writes DATE-adapt.svg there
 *   --compare-seconds N         compare: measured seconds per side and round (default 20)
 *   --compare-settle-seconds N  compare: from start to the window (default 6)
 *   --compare-rounds N          compare: rounds of each comparison (default 2)
 *   --soak-minutes N            soak: the meeting's length (default 30)
 */
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { probe } from '../../gst-pipelines/probe/probe.js';
import type { Capabilities } from '../../gst-pipelines/types.js';
import { adaptSection } from './adapt.js';
import { machineInfo, killTracked, monoMs, round1, sourceState, type MachineInfo } from './machine.js';
import { parseArgs, UsageError, type BenchOptions } from './options.js';
import { faultsSection } from './faults.js';
import { commandsSection } from './commands.js';
import { otaSection } from './ota.js';
import { compareSection } from './compare.js';
import { soakSection } from './soak.js';
import { fuzzSection } from './fuzz.js';
import { fleetSection } from './fleet.js';
import type { BenchContext, BenchSection, SectionReport } from './report.js';
import { agentSection, mediaSection } from './sections.js';

export { parseArgs } from './options.js';
export type { BenchContext, BenchSection, Goal, SectionReport } from './report.js';

/** Every section the bench knows, in run order. */
export const SECTIONS: readonly BenchSection[] = [mediaSection, agentSection, commandsSection, otaSection, compareSection, adaptSection, faultsSection, soakSection, fuzzSection, fleetSection];

/** Sections that run only when --only names them (the soak takes 30 minutes, the fuzz about 2.5, the fleet about 4). */
const OPT_IN: ReadonlySet<string> = new Set(['soak', 'fuzz', 'fleet']);

// ---- main -----------------------------------------------------------------------------------

function selection(only: string[] | null): Map<BenchSection, Set<string>> {
  const chosen = new Map<BenchSection, Set<string>>();
  for (const s of SECTIONS) {
    if (!only) {
      if (!OPT_IN.has(s.name)) chosen.set(s, new Set(s.parts));
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
  // An opt-in section left out says so, as a skipped part does.
  if (!options.only) for (const s of SECTIONS) if (OPT_IN.has(s.name)) out[s.name] = { skipped: s.parts, notRun: `only with --only ${s.name}` };
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
