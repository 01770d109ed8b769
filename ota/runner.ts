/**
 * Runs an update job: asks the planner for the next step, runs that step's executor,
 * reads the facts again, and so on until the switch or an end. Every fact is read from
 * disk (the job directory and releases/), never carried in memory, so the same loop
 * resumes a job after a crash or a restart (`resume()` at agent start).
 *
 *   dataDir/ota/job.json            the job (manifest URL, when, force, command id, end)
 *   dataDir/ota/manifest.json(.sig) the manifest as fetched, byte for byte
 *   dataDir/ota/verified            written when the manifest passed every check
 *   dataDir/ota/bundle              the download (+ bundle.part.json while resuming)
 *   dataDir/ota/bundle.ok           written when its sha256 matched
 *
 * Crash points for tests: EP_OTA_CRASH=<step>:<before|after> kills the process at that
 * point (only when EP_OTA_CRASH is set; test/integration/ota-agent.test.ts).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../lib/index.js';
import { OTA_STEPS, nextOtaStep, PHASE_OF, type OtaFacts, type OtaJob, type OtaStep } from './plan.js';
import { isStaged } from './install.js';

export interface RunnerDeps {
  dir: string;
  appRoot: string;
  inMeeting: () => boolean;
  /** One executor per step: does the step, leaves its fact on disk, or throws OtaRefusal / an Error. */
  executors: Record<OtaStep, (job: OtaJob, dir: string) => Promise<void>>;
  progress: (phase: string, progress: number | null) => void;
  /** Waits until the box is idle (resolves at once when it is, or when `signal` aborts). */
  untilIdle: () => Promise<void>;
  /** Aborted when the agent stops: the runner returns `paused`, leaving the job to resume. */
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

/** A refusal with its code (downgrade, expired, bad_signature…): the job ends, nothing retried. */
export class OtaRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'OtaRefusal';
  }
}

const exists = (f: string): Promise<boolean> => stat(f).then(() => true, () => false);

export async function readJob(dir: string): Promise<OtaJob | null> {
  try {
    return JSON.parse(await readFile(path.join(dir, 'job.json'), 'utf8')) as OtaJob;
  } catch {
    return null;
  }
}

export async function writeJob(dir: string, job: OtaJob): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path.join(dir, 'job.json'), `${JSON.stringify(job)}\n`, { mode: 0o600 });
}

export async function readFacts(d: RunnerDeps): Promise<OtaFacts> {
  const dir = d.dir;
  let version: string | null = null;
  let sha256: string | null = null;
  let size = -1;
  try {
    const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as { version: string; bundle: { sha256: string; size: number } };
    [version, sha256, size] = [m.version, m.bundle.sha256, m.bundle.size];
  } catch {
    // no manifest yet
  }
  const bundleSize = await stat(path.join(dir, 'bundle')).then((s) => s.size, () => -1);
  return {
    manifestSaved: (await exists(path.join(dir, 'manifest.json'))) && (await exists(path.join(dir, 'manifest.json.sig'))),
    manifestVerified: await exists(path.join(dir, 'verified')),
    bundleComplete: bundleSize === size && !(await exists(path.join(dir, 'bundle.part.json'))),
    bundleVerified: await exists(path.join(dir, 'bundle.ok')),
    staged: version !== null && sha256 !== null && (await isStaged({ appRoot: d.appRoot }, version, sha256)),
    inMeeting: d.inMeeting(),
  };
}

/**
 * A test's crash point: EP_OTA_CRASH=<step>:<before|after> kills the process there with
 * SIGKILL (no cleanup, like a power cut); with EP_OTA_CRASH_ONCE=<file> only the first time
 * (the file marks it), so the restarted agent goes on.
 */
function crashPoint(env: NodeJS.ProcessEnv, step: OtaStep, when: 'before' | 'after'): void {
  if (env.EP_OTA_CRASH !== `${step}:${when}`) return;
  if (env.EP_OTA_CRASH_ONCE) {
    if (existsSync(env.EP_OTA_CRASH_ONCE)) return;
    writeFileSync(env.EP_OTA_CRASH_ONCE, `${step}:${when}\n`);
  }
  process.kill(process.pid, 'SIGKILL');
}

export type RunOutcome = 'switched' | { paused: OtaStep } | { ended: string; message: string };

/**
 * Runs the job to its switch ('switched'), its end (the end code and why), or — with
 * `pauseBefore` — until that step is next (the `ota` command runs the manifest's steps,
 * replies, then runs the rest).
 */
export async function runJob(d: RunnerDeps, pauseBefore?: OtaStep): Promise<RunOutcome> {
  const env = d.env ?? process.env;
  for (;;) {
    const job = await readJob(d.dir);
    if (!job) return { ended: 'no_job', message: 'no update job' };
    const next = nextOtaStep(job, await readFacts(d));
    if (next.step === null) return { ended: job.ended?.code ?? 'ended', message: job.ended?.message ?? '' };
    if (pauseBefore !== undefined && OTA_STEPS.indexOf(next.step) >= OTA_STEPS.indexOf(pauseBefore)) return { paused: next.step };
    // The agent is stopping: the job stays on disk as it is, to resume at the next start.
    if (d.signal?.aborted) return { paused: next.step };
    d.progress(PHASE_OF[next.step], null);
    crashPoint(env, next.step, 'before');
    try {
      if (next.step === 'wait-idle') await d.untilIdle();
      else await d.executors[next.step](job, d.dir);
    } catch (e) {
      // Stopped mid-step (a download aborted by the agent's stop) is not an end: it resumes.
      if (d.signal?.aborted) return { paused: next.step };
      const code = e instanceof OtaRefusal ? e.code : 'failed';
      const message = (e as Error).message;
      await writeJob(d.dir, { ...job, ended: { code, message } });
      return { ended: code, message };
    }
    crashPoint(env, next.step, 'after');
    if (next.step === 'switch') return 'switched';
  }
}

/** Removes the job's files (after a commit, a rollback report or an end was reported). */
export async function clearJob(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function markFile(dir: string, name: 'verified' | 'bundle.ok' | 'switched'): Promise<void> {
  await writeFile(path.join(dir, name), `${new Date().toISOString()}\n`);
}
