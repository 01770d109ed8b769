/**
 * How every fuzz target runs its properties: fast-check with a fixed seed (FUZZ_SEED
 * overrides it), and on failure fast-check's own report — the counterexample, shrunk, with
 * its seed and path — plus the command that replays exactly that case. The same runs serve
 * `npm test` (a size that fits) and the bench's `fuzz` section (the full size).
 */
import fc from 'fast-check';

/** The seed of every run unless FUZZ_SEED says otherwise (the issue's number: any fixed value would do). */
export const DEFAULT_SEED = 17;

/** A target's name, its sizes and the run itself (test/fuzz/index.ts lists them). */
export interface FuzzTarget {
  name: string;
  /** What one input is, for the report ("a command message", "an HTTP request"). */
  input: string;
  /** fast-check runs in `npm test` and in the bench (an input count follows from them: see `run`). */
  testRuns: number;
  benchRuns: number;
  run(runs: number, seed: number): Promise<FuzzOutcome>;
}

export interface FuzzOutcome {
  /** fast-check runs made (shrinking not counted). */
  runs: number;
  /** Inputs the code under test was given (a run can carry a sequence of them). */
  inputs: number;
  /** null, or fast-check's report with the replay command. */
  failure: string | null;
}

/** The seed of this process: FUZZ_SEED (a 32-bit integer) or DEFAULT_SEED. */
export function fuzzSeed(env: NodeJS.ProcessEnv = process.env): number {
  const s = env.FUZZ_SEED;
  if (s === undefined || s.trim() === '') return DEFAULT_SEED;
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new Error(`FUZZ_SEED must be an integer, got ${JSON.stringify(s)}`);
  return n | 0;
}

/** Counts the inputs a property hands to the code under test (the outcome's `inputs`). */
export class InputCounter {
  n = 0;
  add(k = 1): void {
    this.n += k;
  }
}

/**
 * Runs `prop` `runs` times from `seed`. FUZZ_PATH (with FUZZ_TARGET naming this target)
 * replays the one failing case fast-check reported, without the runs before it. `shrink:
 * false` reports the first failing case as it was generated (a flood of thousands of
 * commands against one box shrinks for many minutes).
 */
export async function runProperty<T>(target: string, prop: fc.IAsyncProperty<T> | fc.IProperty<T>, runs: number, seed: number, counter: InputCounter, o: { shrink?: boolean } = {}): Promise<FuzzOutcome> {
  const replay = process.env.FUZZ_PATH && process.env.FUZZ_TARGET === target ? process.env.FUZZ_PATH : undefined;
  const details = await fc.check(prop as fc.IAsyncProperty<T>, { seed, numRuns: runs, endOnFailure: o.shrink === false, ...(replay ? { path: replay } : {}) });
  // numRuns: the runs up to the failure (shrinking not counted); `inputs` counts shrinking's too.
  if (!details.failed) return { runs: details.numRuns, inputs: counter.n, failure: null };
  const err = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  const report = fc.defaultReportMessage(details) ?? 'failed without a report';
  const replayPath = /replayPath="([^"]*)"/.exec(report)?.[1];
  const how = `replay: FUZZ_SEED=${details.seed} FUZZ_TARGET=${target} FUZZ_PATH=${JSON.stringify(details.counterexamplePath ?? '')}${replayPath ? ` FUZZ_REPLAY_PATH=${JSON.stringify(replayPath)}` : ''} npx vitest run <the target's test file> (docs/fuzzing.md)`;
  // The error and the replay first: a counterexample can be thousands of commands.
  const shown = report.length > REPORT_CHARS ? `${report.slice(0, REPORT_CHARS)}… [${report.length - REPORT_CHARS} more chars]` : report;
  return { runs: details.numRuns, inputs: counter.n, failure: `${target}: ${err}\n${how}\n${shown}` };
}

/** How much of fast-check's report a failure carries. */
const REPORT_CHARS = 6000;

/** Settles `p` or fails with what was awaited after `ms` of real time: a hang guard, never a timing check. */
export async function withinMs<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: ${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** The hang guard of one input: in-process work takes ~1 ms, so 1 s is a ~1000× margin. */
export const HANG_MS = 1000;
