/**
 * The full fuzz run (docs/fuzzing.md): every target of test/fuzz at its bench size (at least
 * 10,000 inputs each, 100,000 for the manifest decoder), from the seed FUZZ_SEED gives
 * (default 17). The goal is no failure; each target's runs, inputs, wall and CPU seconds
 * are reported, and a failure with fast-check's report and the command that replays it.
 * Only with `--only fuzz` (about 2.5 minutes): the default run stays under 15 minutes.
 * FUZZ_SIZE=test runs each target at its `npm test` size instead (what docs/fuzzing.md's
 * `npm test` column was measured with).
 */
import { FUZZ_TARGETS, fuzzSeed } from '../fuzz/index.js';
import { monoMs, round1 } from './machine.js';
import { fmt, goal, sectionTable, type BenchSection } from './report.js';

export interface FuzzTargetResult {
  runs: number;
  inputs: number;
  seconds: number;
  cpuSeconds: number;
  failure: string | null;
}

const cpuSeconds = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1e6;

export const fuzzSection: BenchSection = {
  name: 'fuzz',
  parts: FUZZ_TARGETS.map((t) => t.name),
  async run(ctx, parts) {
    const seed = fuzzSeed();
    const size = process.env.FUZZ_SIZE === 'test' ? 'test' : 'bench';
    const targets: Record<string, FuzzTargetResult> = {};
    for (const t of FUZZ_TARGETS) {
      if (!parts.has(t.name)) continue;
      const runs = size === 'test' ? t.testRuns : t.benchRuns;
      ctx.log(`fuzz ${t.name}: ${runs} runs from seed ${seed}`);
      const t0 = monoMs();
      const c0 = process.cpuUsage();
      const r = await t.run(runs, seed);
      targets[t.name] = { runs: r.runs, inputs: r.inputs, seconds: round1((monoMs() - t0) / 1000), cpuSeconds: round1(cpuSeconds(process.cpuUsage(c0))), failure: r.failure };
      ctx.log(`fuzz ${t.name}: ${r.inputs} inputs, ${r.failure === null ? 'no failure' : `FAILED: ${r.failure.split('\n')[0]}`}`);
    }
    const ran = Object.values(targets);
    const data = {
      fuzzFailures: ran.filter((r) => r.failure !== null).length,
      fuzzMinInputs: ran.length ? Math.min(...ran.map((r) => r.inputs)) : null,
      fuzzInputs: ran.reduce((n, r) => n + r.inputs, 0),
      seed,
      size,
      targets,
    };
    // The inputs goal is the full run's; the npm-test size is smaller by design (docs/fuzzing.md).
    const goals = [goal('fuzzFailures', '= 0', data.fuzzFailures, (v) => v === 0), ...(size === 'bench' ? [goal('fuzzMinInputs', '≥ 10000 per target', data.fuzzMinInputs, (v) => v >= 10_000)] : [])];
    const { t, row, met } = sectionTable(`Fuzz (seed ${seed}; FUZZ_SEED=N to change it${size === 'test' ? '; the npm test size' : ''})`, goals, 28);
    row('failures', fmt(data.fuzzFailures), met('fuzzFailures'));
    row('fewest inputs of a target', fmt(data.fuzzMinInputs), met('fuzzMinInputs'));
    for (const [name, r] of Object.entries(targets)) row(`  ${name}`, `${r.inputs}`, `${r.runs} runs, ${r.seconds} s (${r.cpuSeconds} s CPU)${r.failure ? ' FAILED' : ''}`);
    for (const r of ran) if (r.failure) t.push(...r.failure.split('\n').slice(0, 3).map((l) => `  ${l.slice(0, 300)}`));
    return { data, unmeasured: {}, skipped: this.parts.filter((p) => !parts.has(p)), goals, table: t };
  },
};
