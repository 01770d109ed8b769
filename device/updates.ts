/**
 * Over-the-air updates as the agent sees them (docs/ota.md): the `ota` command, the job
 * that runs after its reply, the trial of a new version after the switch (self-test,
 * control loop window, broker → commit, or give up → the launcher rolls back), and the
 * report of a rollback by the version that runs after it. The steps themselves are
 * ota/'s (plan.ts, runner.ts, executors.ts); this wires them to the meeting, the broker,
 * state.ota and events.
 *
 *   ota command  → busy checks → job.json → fetch + verify the manifest → reply
 *                  (accepted, or the refusal code) → download … stage → wait idle → switch
 *                  → the agent exits 75 → the launcher starts the new version
 *   new version  → `trying` names it → self-test + window (+ broker) → commit, clean releases
 *   old version, back after a rollback → event ota_rolled_back, state.ota, that version refused
 *
 * A restart anywhere resumes from the disk: a job whose manifest was verified (its reply
 * was sent) resumes; one that was not is abandoned (the ledger answers its command as
 * interrupted); a job that switched belongs to the release state.
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Clock, Logger } from '../lib/index.js';
import { writeFileAtomic } from '../lib/index.js';
import {
  OTA_STEPS,
  cleanReleases,
  clearJob,
  currentVersion,
  decideCommit,
  loadTransfer,
  readFacts,
  readJob,
  readReleaseState,
  runJob,
  writeJob,
  writeReleaseState,
  type OtaArch,
  type OtaJob,
  type RunnerDeps,
  type Trying,
} from '../ota/index.js';
import { BusyError, OtaRefusedError } from './errors.js';
import type { SelftestReport } from './selftest.js';

/** The agent config's `ota` part, resolved (device/config.ts). */
export interface OtaSettings {
  publicKeyFiles: string[];
  appRoot: string;
  commitWindowMs: number;
  trialMs: number;
  retries: number;
  retryBaseMs: number;
  retryCapMs: number;
  caFile?: string;
}

/** state.ota (a type, not an interface: the contract's type has an index signature). */
export type OtaStatus = {
  phase: string;
  version?: string;
  progress?: number;
  from?: string;
  code?: string;
  message?: string;
};

export interface UpdateDeps {
  settings: OtaSettings | null;
  dataDir: string;
  version: string;
  clock: Clock;
  log: Logger;
  inMeeting: () => boolean;
  /** Connected to the broker at least once since start. */
  reachedBroker: () => boolean;
  selftest: () => Promise<SelftestReport>;
  setStatus: (s: OtaStatus | null) => void;
  event: (type: string, severity: 'info' | 'warn' | 'error', detail: Record<string, unknown>) => Promise<void>;
  /** Stop the agent and exit 75: the launcher starts what `current` points at. */
  restart: (why: string) => void;
  /** The command ledger's answer to a command id: 'ok', 'failed' (incl. "interrupted by a restart"), or null if unknown/running. */
  answered: (commandId: string) => 'ok' | 'failed' | null;
  env?: NodeJS.ProcessEnv;
}

/** The self-test checks a new version must pass to commit: the software's own, not the peripherals (an unplugged camera fails the old version too). */
export const COMMIT_CHECKS: ReadonlySet<string> = new Set(['encoder', 'decoder', 'disk']);

export function otaArch(arch: string = process.arch): OtaArch | null {
  return arch === 'x64' ? 'x64' : arch === 'arm64' ? 'arm64' : arch === 'arm' ? 'armhf' : null;
}

/** The last time the clock was seen synced is written at most this often. */
const SYNCED_WRITE_EVERY_MS = 10 * 60_000;
const PROGRESS_EVERY_MS = 2000;

export class UpdateController {
  private readonly dir: string;
  private job: Promise<void> | null = null;
  private commanding = false;
  private idleWaiters: Array<() => void> = [];
  private trialTimer: unknown = null;
  private lastSyncedWritten = 0;
  private lastProgressAt = 0;
  private stopped = false;
  private readonly abort = new AbortController();
  private status: OtaStatus | null = null;

  constructor(private readonly d: UpdateDeps) {
    this.dir = path.join(d.dataDir, 'ota');
    this.ready = new Promise<void>((resolve) => (this.markReady = resolve));
  }

  private get appRoot(): string {
    return this.d.env?.EP_APP_ROOT ?? process.env.EP_APP_ROOT ?? this.d.settings?.appRoot ?? '/opt/commune-endpoint';
  }

  /** Settles when start() has run: an `ota` command that arrives while the agent is still starting waits for it (start() would otherwise take its fresh job for an interrupted one). */
  private readonly ready: Promise<void>;
  private markReady: () => void = () => undefined;

  /** At agent start: a trial to finish, a rollback to report, a job to resume or abandon. */
  async start(): Promise<void> {
    try {
      await this.startOnce();
    } finally {
      this.markReady();
    }
  }

  private async startOnce(): Promise<void> {
    if (!this.d.settings) return;
    const state = await readReleaseState(this.appRoot).catch((e: unknown) => {
      this.d.log.error({ evt: 'ota.state_unreadable', err: (e as Error).message }, 'release-state.json unreadable');
      return null;
    });
    if (state?.trying?.version === this.d.version) this.beginTrial(state.trying);
    if (state?.last && !state.last.reported) {
      const l = state.last;
      if (l.outcome === 'rolled_back') {
        this.setStatus({ phase: 'rolled_back', version: l.version, from: this.d.version, message: l.reason });
        await this.d.event('ota_rolled_back', 'error', { version: l.version, runningVersion: this.d.version, reason: l.reason, refused: true });
        this.d.log.error({ evt: 'ota.rolled_back', version: l.version, reason: l.reason }, `update to ${l.version} was rolled back: ${l.reason}`);
      }
      await writeReleaseState(this.appRoot, { ...state, last: { ...l, reported: true } });
      // The rolled-back release is refused from now on: its files go (an SD card has no room for dead releases).
      const removed = await cleanReleases({ appRoot: this.appRoot }, [state.committed, ...(state.previous ? [state.previous] : [])]);
      if (removed.length) this.d.log.info({ evt: 'ota.cleaned', removed }, `removed releases ${removed.join(', ')}`);
    }
    const job = await readJob(this.dir);
    if (!job) return;
    const version = await this.jobVersion();
    const done = state && version !== null && (state.committed === version || state.trying?.version === version || state.failed.includes(version));
    if (job.ended || done || (await exists(path.join(this.dir, 'switched')))) {
      if (job.ended) this.setStatus({ phase: 'failed', ...(version ? { version } : {}), code: job.ended.code, message: job.ended.message });
      await clearJob(this.dir);
      return;
    }
    const facts = await readFacts(await this.runnerDeps());
    const answer = job.commandId === null ? 'ok' : this.d.answered(job.commandId);
    if (!facts.manifestVerified || answer !== 'ok') {
      // Its command was never answered "accepted" (the ledger answers it "interrupted by a restart; not run again"): abandon cleanly, as that reply says.
      this.d.log.warn({ evt: 'ota.abandoned', manifestUrl: job.manifestUrl, commandId: job.commandId }, 'an update interrupted before its command was answered: abandoned');
      await clearJob(this.dir);
      return;
    }
    this.d.log.info({ evt: 'ota.resumed', version }, `resuming the update to ${version ?? '?'}`);
    this.setStatus({ phase: 'resuming', ...(version ? { version } : {}), from: this.d.version });
    this.background(job);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.markReady();
    if (this.trialTimer !== null) this.d.clock.clearTimeout(this.trialTimer);
    for (const w of this.idleWaiters.splice(0)) w();
    await this.job?.catch(() => undefined);
  }

  /** The meeting ended: an update waiting for idle proceeds. */
  onIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** A health sample saw a synced clock: stored (at most every 10 min) for judging manifest expiry after a reboot. */
  noteClockSynced(now: number): void {
    if (!this.d.settings || now - this.lastSyncedWritten < SYNCED_WRITE_EVERY_MS) return;
    this.lastSyncedWritten = now;
    void this.raiseTimeFloor(now).catch((e: unknown) => this.d.log.warn({ evt: 'ota.clock_note_failed', err: (e as Error).message }, 'could not store the synced time'));
  }

  /**
   * The time floor (`dataDir/clock-synced.json`, `{"at": ms}`): only ever raised — by a synced
   * clock, and by the releasedAt of a manifest that passed every check. A box whose clock is
   * back in 1970 after a power cut judges expiry by it (ota/trusted-time.ts).
   */
  private async raiseTimeFloor(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms <= ((await this.lastSyncedAt()) ?? 0)) return;
    await mkdir(this.d.dataDir, { recursive: true });
    await writeFileAtomic(path.join(this.d.dataDir, 'clock-synced.json'), `${JSON.stringify({ at: ms })}\n`, { mode: 0o600 });
  }

  /** The `ota` command: replies once the manifest is fetched and verified (or refused); the rest runs after the reply. */
  async command(args: { manifestUrl: string; when?: 'now' | 'idle'; force?: boolean }, commandId: string | null): Promise<Record<string, unknown>> {
    await this.ready;
    if (!this.d.settings) throw new OtaRefusedError('not_enabled', 'updates are not enabled on this box: no trusted public keys provisioned (config ota.publicKeys)');
    if (!(await this.installedAsRelease())) throw new OtaRefusedError('not_installed', `this agent does not run from an installed release (${this.appRoot}/current): updates need the launcher's layout (docs/ota.md)`);
    const when = args.when ?? 'idle';
    const force = args.force === true;
    const state = await readReleaseState(this.appRoot);
    if (state?.trying) throw new BusyError(`version ${state.trying.version} is on trial (it commits or is rolled back within ${Math.ceil(this.d.settings.trialMs / 1000)} s)`, Math.ceil(this.d.settings.trialMs / 1000));
    if (this.commanding) throw new BusyError('another ota command is being checked', 5);
    if (this.job) {
      const running = await readJob(this.dir);
      if (running && running.manifestUrl === args.manifestUrl) return { accepted: true, already: true, version: await this.jobVersion(), from: this.d.version, phase: this.status?.phase ?? null };
      throw new BusyError(`an update is already running (${running?.manifestUrl ?? 'unknown'})`, 60);
    }
    if (when === 'now' && !force && this.d.inMeeting()) throw new BusyError('in a meeting: an update now needs force: true (or when: idle, which waits for the meeting to end)');
    this.commanding = true;
    try {
      await clearJob(this.dir);
      const job: OtaJob = { manifestUrl: args.manifestUrl, when, force, commandId, ended: null };
      await writeJob(this.dir, job);
      this.setStatus({ phase: 'checking' });
      const r = await runJob(await this.runnerDeps(), 'download');
      if (r !== 'switched' && 'paused' in r && OTA_STEPS.indexOf(r.paused) < OTA_STEPS.indexOf('download')) {
        // Stopped before the manifest was checked: nothing was accepted, nothing is left to resume.
        await clearJob(this.dir);
        throw new OtaRefusedError('aborted', 'the agent is stopping; send the command again once it is back');
      }
      if (r !== 'switched' && 'ended' in r) {
        await clearJob(this.dir);
        this.setStatus({ phase: 'refused', code: r.ended, message: r.message });
        throw new OtaRefusedError(r.ended, r.message);
      }
      const version = await this.jobVersion();
      this.d.log.info({ evt: 'ota.accepted', version, when, force }, `update to ${version ?? '?'} accepted`);
      this.setStatus({ phase: 'accepted', ...(version ? { version } : {}), from: this.d.version });
      this.background(job);
      return { accepted: true, version, from: this.d.version, when, force };
    } finally {
      this.commanding = false;
    }
  }

  private background(job: OtaJob): void {
    const run = async (): Promise<void> => {
      const version = await this.jobVersion();
      const r = await runJob(await this.runnerDeps());
      if (this.stopped) return;
      if (r === 'switched') {
        this.setStatus({ phase: 'restarting', ...(version ? { version } : {}), from: this.d.version });
        this.d.log.info({ evt: 'ota.switched', version }, `switched to ${version ?? '?'}; restarting into it`);
        await this.d.event('ota_switched', 'info', { version, from: this.d.version, commandId: job.commandId });
        this.d.restart(`switched to ${version ?? '?'}`);
        return;
      }
      if ('paused' in r) return;
      this.setStatus({ phase: 'failed', ...(version ? { version } : {}), code: r.ended, message: r.message });
      this.d.log.error({ evt: 'ota.failed', version, code: r.ended, err: r.message }, `update to ${version ?? '?'} failed: ${r.ended}`);
      await this.d.event('ota_failed', 'error', { version, code: r.ended, message: r.message, commandId: job.commandId });
      await clearJob(this.dir);
    };
    this.job = run()
      .catch((e: unknown) => this.d.log.error({ evt: 'ota.job_crashed', err: (e as Error).message }, 'the update job failed unexpectedly'))
      .finally(() => (this.job = null));
  }

  /** The job's dependencies; the executors (HTTP, tar) are loaded here, when an update runs, not at agent start. */
  private async runnerDeps(): Promise<RunnerDeps> {
    const s = this.d.settings!;
    const { otaExecutors } = await loadTransfer();
    return {
      dir: this.dir,
      appRoot: this.appRoot,
      inMeeting: this.d.inMeeting,
      progress: (phase) => this.setStatus({ phase, ...(this.status?.version ? { version: this.status.version } : {}), from: this.d.version }),
      untilIdle: () => (this.d.inMeeting() && !this.stopped ? new Promise<void>((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve()),
      signal: this.abort.signal,
      executors: otaExecutors({
        appRoot: this.appRoot,
        name: 'commune-endpoint',
        arch: otaArch() ?? 'x64',
        runningVersion: this.d.version,
        trustedKeys: this.keyTexts,
        now: () => this.d.clock.now(),
        lastSyncedAt: () => this.lastSyncedAt(),
        raiseTimeFloor: (ms) => this.raiseTimeFloor(ms),
        retries: s.retries,
        retryBaseMs: s.retryBaseMs,
        retryCapMs: s.retryCapMs,
        ...(this.ca ? { ca: this.ca } : {}),
        progress: (p) => this.onProgress(p),
        trial: () => ({ fromReachedBroker: this.d.reachedBroker(), trialMs: s.trialMs }),
        signal: this.abort.signal,
        note: (evt, detail) =>
          evt === 'ota.delta'
            ? this.d.log.info({ evt, ...detail }, `fetched ${String(detail.fetchedBytes)} of the bundle's ${String(detail.bundleBytes)} bytes (only the files the releases here lack)`)
            : this.d.log.warn({ evt, ...detail }, 'the file-by-file update failed; fetching the full bundle'),
      }),
      ...(this.d.env ? { env: this.d.env } : {}),
    };
  }

  private keyTexts: string[] = [];
  private ca: Buffer | undefined;

  /** Reads the trusted keys and CA (at agent start: a missing key file is a config error then, not at update time). */
  async load(): Promise<void> {
    if (!this.d.settings) return;
    this.keyTexts = await Promise.all(this.d.settings.publicKeyFiles.map((f) => readFile(f, 'utf8')));
    if (this.d.settings.caFile) this.ca = await readFile(this.d.settings.caFile);
  }

  private onProgress(p: number): void {
    const now = this.d.clock.now();
    if (p < 1 && now - this.lastProgressAt < PROGRESS_EVERY_MS) return;
    this.lastProgressAt = now;
    this.setStatus({ phase: 'downloading', ...(this.status?.version ? { version: this.status.version } : {}), from: this.d.version, progress: Math.round(p * 100) / 100 });
  }

  private setStatus(s: OtaStatus | null): void {
    this.status = s;
    this.d.setStatus(s);
  }

  private async lastSyncedAt(): Promise<number | null> {
    try {
      const v = JSON.parse(await readFile(path.join(this.d.dataDir, 'clock-synced.json'), 'utf8')) as { at?: unknown };
      return typeof v.at === 'number' && Number.isFinite(v.at) ? v.at : null;
    } catch {
      return null;
    }
  }

  private async jobVersion(): Promise<string | null> {
    try {
      const m = JSON.parse(await readFile(path.join(this.dir, 'manifest.json'), 'utf8')) as { version?: unknown };
      return typeof m.version === 'string' ? m.version.slice(0, 64) : null;
    } catch {
      return null;
    }
  }

  private async installedAsRelease(): Promise<boolean> {
    return (await currentVersion({ appRoot: this.appRoot })) !== null;
  }

  // ── the trial of a new version ──────────────────────────────────────────────
  private beginTrial(t: Trying): void {
    const s = this.d.settings!;
    const startedAt = this.d.clock.now();
    let selftest: { ok: boolean | null; problem?: string } = { ok: null };
    this.setStatus({ phase: 'trying', version: t.version, from: t.from });
    this.d.log.info({ evt: 'ota.trial', version: t.version, from: t.from, deadline: new Date(t.deadline).toISOString() }, `trying ${t.version}: self-test, then commit`);
    void this.d
      .selftest()
      .then((r) => {
        const bad = r.checks.filter((c) => COMMIT_CHECKS.has(c.check) && !c.ok && !c.skipped);
        selftest = bad.length === 0 ? { ok: true } : { ok: false, problem: bad.map((c) => `${c.check}: ${c.detail}`).join('; ') };
      })
      .catch((e: unknown) => (selftest = { ok: false, problem: (e as Error).message }));
    const tick = async (): Promise<void> => {
      this.trialTimer = null;
      if (this.stopped) return;
      const d = decideCommit(t, { now: this.d.clock.now(), startedAt, selftestOk: selftest.ok, ...(selftest.problem ? { selftestProblem: selftest.problem } : {}), reachedBroker: this.d.reachedBroker(), commitWindowMs: s.commitWindowMs });
      if (d.kind === 'wait') {
        this.trialTimer = this.d.clock.setTimeout(() => void tick(), 500);
        return;
      }
      const state = await readReleaseState(this.appRoot);
      if (!state || state.trying?.version !== t.version) return; // the launcher decided meanwhile
      if (d.kind === 'commit') {
        await writeReleaseState(this.appRoot, {
          ...state,
          committed: t.version,
          previous: t.from,
          trying: null,
          failed: state.failed.filter((v) => v !== t.version),
          last: { version: t.version, outcome: 'committed', reason: 'self-test passed, control loop ran its window', at: this.d.clock.now(), reported: true },
        });
        const removed = await cleanReleases({ appRoot: this.appRoot }, [t.version, t.from]);
        await clearJob(this.dir);
        this.setStatus({ phase: 'committed', version: t.version, from: t.from });
        this.d.log.info({ evt: 'ota.committed', version: t.version, from: t.from, removed }, `committed ${t.version}`);
        await this.d.event('ota_committed', 'info', { version: t.version, from: t.from, commandId: t.commandId });
        return;
      }
      await writeReleaseState(this.appRoot, { ...state, trying: { ...t, gaveUp: d.why } });
      this.d.log.error({ evt: 'ota.gave_up', version: t.version, why: d.why }, `${t.version} cannot commit: ${d.why}; restarting for the rollback`);
      this.d.restart(`gave up on ${t.version}: ${d.why}`);
    };
    this.trialTimer = this.d.clock.setTimeout(() => void tick(), 500);
  }
}

const exists = (f: string): Promise<boolean> => readFile(f).then(() => true, () => false);
