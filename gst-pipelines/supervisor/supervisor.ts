/**
 * The media supervisor (agent side): one worker process per media session. It keeps a
 * warm worker ready so a join only pays for building the pipeline, restarts a worker
 * that crashed, errored, stalled or stopped talking (capped, jittered backoff), and
 * recycles the process on every stop so the binding's leaks never accumulate.
 */
import { EventEmitter } from 'node:events';
import { backoffDelay, systemClock, type Clock } from '../../lib/index.js';
import { silentLogger, type Logger } from '../../lib/index.js';
import { ELEMENT_NAMES, overlayText } from '../plan/index.js';
import { ScreenTexts } from './screen-texts.js';
import type { FromWorker, WorkerStats } from '../worker/index.js';
import { LINK_CAUSES, resumeOf, type FailureCause, type MediaStatus, type SupervisorEvents, type SupervisorOptions } from './status.js';
import type { WorkerHandle } from './worker-process.js';
import type { MediaPlan, StandbyTexts } from '../types.js';

export class MediaSupervisor extends EventEmitter<SupervisorEvents> {
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly o: Required<Omit<SupervisorOptions, 'clock' | 'logger' | 'snapshotDir' | 'spawner' | 'random'>>;
  private warm: { handle: WorkerHandle; ready: Promise<void> } | null = null;
  private current: WorkerHandle | null = null;
  private desired: { plan: MediaPlan; secrets: { passphrase?: string } } | null = null;
  private retryTimer: unknown = null;
  private watchdog: unknown = null;
  /** The worker the watchdog watches. */
  private watched: WorkerHandle | null = null;
  private lastHeard = 0;
  /** When the current launch began (liveness(): a launch waiting on a worker that never gets ready). */
  private launchStartedAt = 0;
  private sessionStartAt = 0;
  /** Where link adaptation stood in this session: a restarted worker resumes there, not at full rate. */
  private lastAdapt: { rung: string; targetKbps: number } | null = null;
  /** What the TV's texts must say (updateStandby), kept across plans: screen-texts.ts. */
  private readonly screen = new ScreenTexts();
  private st: MediaStatus = {
    running: false,
    plan: null,
    send: 'off',
    receive: 'off',
    restarts: 0,
    attempt: 0,
    lastError: null,
    choices: null,
    stats: null,
    workerPid: null,
    link: null,
  };

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.clock = opts.clock ?? systemClock;
    this.log = (opts.logger ?? silentLogger()).child({ module: 'media' });
    this.o = {
      backoffBaseMs: opts.backoffBaseMs ?? 250,
      backoffCapMs: opts.backoffCapMs ?? 30_000,
      linkBackoffCapMs: opts.linkBackoffCapMs ?? 2000,
      statsPeriodMs: opts.statsPeriodMs ?? 2000,
      stallMs: opts.stallMs ?? 2500,
      stableMs: opts.stableMs ?? 20_000,
      stopTimeoutMs: opts.stopTimeoutMs ?? 1500,
    };
  }

  status(): MediaStatus {
    return { ...this.st };
  }

  /**
   * Read-only, for the systemd watchdog (device/liveness.ts): what the supervisor is doing
   * and since when. 'idle': no session wanted; 'watching': a worker runs under its
   * watchdog (armed: a timer that kills it past `boundMs` of silence; `since` = when it
   * was last heard); 'relaunch_scheduled': a restart is waiting its backoff;
   * 'launching': a worker is being started (`since` = when the launch began).
   */
  liveness(): { phase: 'idle' | 'watching' | 'relaunch_scheduled' | 'launching'; since: number; boundMs: number; watchdogArmed: boolean } {
    const boundMs = this.hangLimitMs;
    const watchdogArmed = this.watchdog !== null;
    if (!this.desired) return { phase: 'idle', since: 0, boundMs, watchdogArmed };
    if (this.current) return { phase: 'watching', since: this.lastHeard, boundMs, watchdogArmed: watchdogArmed && this.watched === this.current };
    if (this.retryTimer) return { phase: 'relaunch_scheduled', since: 0, boundMs, watchdogArmed };
    return { phase: 'launching', since: this.launchStartedAt, boundMs, watchdogArmed };
  }

  /** A worker silent this long is hung (3 stats periods, ≥ 5 s). */
  private get hangLimitMs(): number {
    return Math.max(3 * this.o.statsPeriodMs, 5000);
  }

  /** Spawns a worker in advance so the next start skips process and GStreamer start-up. */
  prewarm(): Promise<void> {
    if (!this.warm) {
      const handle = this.opts.spawner.spawn({});
      const ready = new Promise<void>((resolve, reject) => {
        handle.onMessage((m) => m.type === 'ready' && resolve());
        handle.onExit((code, signal) => {
          if (this.warm?.handle === handle) this.warm = null;
          reject(new Error(`warm worker exited (${signal ?? code})`));
        });
      });
      ready.catch(() => undefined);
      this.warm = { handle, ready };
    }
    return this.warm.ready;
  }

  /** Runs `plan` until stop(); restarts it as needed. Resolves once a worker has started it. */
  async start(plan: MediaPlan, secrets: { passphrase?: string } = {}): Promise<void> {
    await this.stop();
    this.desired = { plan, secrets };
    this.lastAdapt = null;
    this.update({ running: true, plan: plan.kind, attempt: 0, restarts: 0, lastError: null, choices: plan.choices, stats: null, link: null });
    await this.launch();
  }

  /** Stops the session cleanly (≤ stopTimeoutMs, then SIGKILL) and keeps a warm worker ready. */
  async stop(): Promise<void> {
    // The standby screen has nothing to flush: end it at once so the next session
    // (which may need the same DRM display) starts without waiting.
    const immediate = this.desired?.plan.kind === 'standby';
    this.desired = null;
    this.screen.stopped();
    this.clearTimers();
    const h = this.current;
    this.current = null;
    if (h) await this.terminate(h, immediate);
    if (this.st.running || this.st.send !== 'off') this.update({ running: false, plan: null, send: 'off', receive: 'off', workerPid: null, link: null });
  }

  /** Stops everything including the warm worker (agent shutdown). */
  async close(): Promise<void> {
    await this.stop();
    const w = this.warm;
    this.warm = null;
    if (w) await this.terminate(w.handle);
  }

  /** Speaker volume of the running session (0..1; 1.5 at most, as the planner clamps it). */
  setVolume(volume: number): void {
    this.set(ELEMENT_NAMES.speakerVolume, 'volume', volume);
  }

  /** Mutes or unmutes the microphone in the running session. */
  setMicMuted(muted: boolean): void {
    this.set(ELEMENT_NAMES.micVolume, 'mute', muted);
  }

  /** Shows `text` over the TV picture (session or standby) until hideText(); plain text (markup escaped). */
  showText(text: string): void {
    this.set(ELEMENT_NAMES.osd, 'text', overlayText(text));
    this.set(ELEMENT_NAMES.osd, 'silent', false);
  }

  hideText(): void {
    this.set(ELEMENT_NAMES.osd, 'silent', true);
  }

  /** The TV's texts, live, only what changed: all of them on the standby screen, the badges over a meeting's program. */
  updateStandby(texts: StandbyTexts): void {
    for (const s of this.screen.update(texts)) this.set(s.element, s.property, s.value);
  }

  /** Changes an element property in the running session. */
  private set(element: string, property: string, value: string | number | boolean): void {
    this.current?.send({ type: 'set', element, property, value });
  }

  /** Asks the worker to write its latest PNGs; resolves with the files written. */
  snapshot(timeoutMs = 2000): Promise<string[]> {
    const h = this.current;
    if (!h || !this.opts.snapshotDir) return Promise.resolve([]);
    return new Promise((resolve) => {
      const files: string[] = [];
      const done = (): void => {
        this.off('snapshot', onSnap);
        resolve(files);
      };
      const expected = this.desired?.plan.kind === 'standby' ? 1 : 2; // standby: the displayed picture only
      const onSnap = (s: { path: string }): void => {
        files.push(s.path);
        if (files.length === expected) done();
      };
      this.on('snapshot', onSnap);
      this.clock.setTimeout(done, timeoutMs);
      h.send({ type: 'snapshot' });
    });
  }

  /** Test hook at the camera boundary: the test source stops producing (like an unplug). */
  blockTestSource(blocked: boolean): void {
    this.current?.send({ type: 'test:block-source', blocked });
  }

  private async launch(): Promise<void> {
    const want = this.desired;
    if (!want) return;
    this.launchStartedAt = this.clock.now();
    let handle: WorkerHandle;
    try {
      const env = want.plan.env;
      if (Object.keys(env).length === 0) {
        await this.prewarm();
        handle = this.warm!.handle;
        this.warm = null;
      } else {
        handle = this.opts.spawner.spawn(env);
      }
    } catch (e) {
      this.warm = null;
      this.fail('crash', `cannot start a media worker: ${(e as Error).message}`, true);
      return;
    }
    if (this.desired !== want) {
      await this.terminate(handle);
      return;
    }
    this.current = handle;
    this.sessionStartAt = this.clock.now();
    this.lastHeard = this.clock.now();
    this.update({ send: want.plan.kind === 'session' ? 'starting' : 'off', receive: want.plan.kind === 'session' ? 'starting' : 'off', workerPid: handle.pid ?? null });
    const started = new Promise<void>((resolve) => {
      handle.onMessage((m) => {
        if (m.type === 'started' || m.type === 'error') resolve();
      });
      handle.onExit(() => resolve());
    });
    handle.onMessage((m) => this.onWorker(handle, m));
    handle.onExit((code, signal) => this.onExit(handle, code, signal));
    handle.send({
      type: 'start',
      adaptFrom: this.lastAdapt,
      plan: want.plan,
      secrets: want.secrets,
      statsPeriodMs: this.o.statsPeriodMs,
      stallMs: this.o.stallMs,
      ...(this.opts.snapshotDir ? { snapshotDir: this.opts.snapshotDir } : {}),
    });
    // A plan holds the texts it started with; updateStandby's since then follow.
    for (const s of this.screen.launched(want.plan)) handle.send({ type: 'set', element: s.element, property: s.property, value: s.value });
    this.startWatchdog(handle);
    // The next session (or restart) gets a warm worker too.
    void this.prewarm().catch(() => undefined);
    await started;
  }

  /**
   * A worker silent for 3 stats periods (≥ 5 s) is hung. One timeout, re-armed by every
   * message (armWatchdog), not a 1 s poll: the agent does not wake up for nothing
   * (each wake-up cost ~0.5–1 ms of CPU on the benchmark machine; docs/benchmarks.md).
   */
  private startWatchdog(handle: WorkerHandle): void {
    this.watched = handle;
    this.armWatchdog();
  }

  private armWatchdog(): void {
    if (this.watchdog) this.clock.clearTimeout(this.watchdog);
    this.watchdog = null;
    const handle = this.watched;
    if (!handle || this.current !== handle) return;
    const limit = this.hangLimitMs;
    this.watchdog = this.clock.setTimeout(() => {
      this.watchdog = null;
      const silentMs = this.clock.now() - this.lastHeard;
      if (this.current !== handle) return;
      if (silentMs <= limit) return this.armWatchdog();
      this.log.warn({ evt: 'media.worker_hung', pid: handle.pid, silentMs }, 'media worker stopped reporting; killing it');
      this.restart(handle, 'hung', `worker silent for ${silentMs} ms`, true);
    }, limit + 1 - (this.clock.now() - this.lastHeard));
  }

  private onWorker(handle: WorkerHandle, m: FromWorker): void {
    if (handle !== this.current) return;
    this.lastHeard = this.clock.now();
    this.armWatchdog();
    switch (m.type) {
      case 'first-bytes':
        this.log.info({ evt: 'media.first_bytes', direction: m.direction, atMs: m.atMs }, `${m.direction} media flowing`);
        this.update(m.direction === 'send' ? { send: 'ok' } : { receive: 'ok' });
        this.emit('first-bytes', { direction: m.direction, atMs: m.atMs });
        break;
      case 'stats':
        this.onStats(m.stats);
        break;
      case 'warning':
        this.log.warn({ evt: 'media.warning', source: m.source, msg2: m.message }, 'media warning');
        break;
      case 'error':
        this.log.error({ evt: 'media.error', cause: m.cause, source: m.source, retryable: m.retryable }, m.message);
        this.restart(handle, m.cause, m.message, m.retryable);
        break;
      case 'stall':
        this.log.warn({ evt: 'media.stall', direction: m.direction, idleMs: m.idleMs }, `no ${m.direction} media for ${m.idleMs} ms; rebuilding`);
        this.restart(handle, 'stall', `no ${m.direction} media for ${m.idleMs} ms`, true);
        break;
      case 'eos':
        this.restart(handle, 'pipeline', 'end of stream from the hub or a source', true);
        break;
      case 'snapshot':
        this.emit('snapshot', { side: m.side, path: m.path });
        break;
      case 'adapt': {
        const c = m.change;
        if (m.report.enabled) this.lastAdapt = resumeOf(m.report);
        this.update({ link: { rung: m.report.rung, targetKbps: m.report.targetKbps, adaptive: m.report.enabled } });
        this.log.info({ evt: 'media.adapt', ...c }, `link ${c.direction === 'down' ? 'congested' : 'clear'}: video ${c.fromRung} ${c.fromKbps} → ${c.toRung} ${c.toKbps} kbit/s (${c.reason})`);
        this.emit('adapt', { change: c, report: m.report });
        break;
      }
      default:
        break;
    }
  }

  private onStats(stats: WorkerStats): void {
    const patch: Partial<MediaStatus> = { stats };
    if (stats.adapt?.enabled) this.lastAdapt = resumeOf(stats.adapt);
    if (stats.adapt && (this.st.link?.rung !== stats.adapt.rung || this.st.link.adaptive !== stats.adapt.enabled))
      this.update({ link: { rung: stats.adapt.rung, targetKbps: stats.adapt.targetKbps, adaptive: stats.adapt.enabled } });
    if (this.st.attempt > 0 && this.clock.now() - this.sessionStartAt > this.o.stableMs && stats.send.idleMs !== null && stats.receive.idleMs !== null) {
      patch.attempt = 0;
    }
    this.st = { ...this.st, ...patch };
    this.emit('stats', stats);
  }

  private onExit(handle: WorkerHandle, code: number | null, signal: string | null): void {
    if (handle !== this.current) return;
    this.log.error({ evt: 'media.worker_exit', pid: handle.pid, code, signal }, 'media worker died');
    this.restart(handle, 'crash', `worker exited (${signal ?? `code ${code}`})`, true);
  }

  private restart(handle: WorkerHandle, cause: FailureCause, message: string, retryable: boolean): void {
    if (handle !== this.current) return;
    this.current = null;
    void this.terminate(handle);
    this.fail(cause, message, retryable);
  }

  private fail(cause: FailureCause, message: string, retryable: boolean): void {
    if (!this.desired) return;
    const attempt = this.st.attempt + 1;
    const lastError = { cause, message, at: this.clock.now() };
    if (!retryable) {
      // Retrying fast cannot fix it (the hub refuses our passphrase or stream id): report
      // `failed` and try again only at the slowest pace, in case the hub side is fixed.
      this.update({ attempt, restarts: this.st.restarts + 1, lastError, send: 'failed', receive: 'failed', workerPid: null });
      this.log.error({ evt: 'media.failed', cause }, `media failed; next try in ${this.o.backoffCapMs} ms: ${message}`);
      this.emit('restart', { reason: cause, attempt, delayMs: this.o.backoffCapMs });
      this.scheduleRelaunch(this.o.backoffCapMs);
      return;
    }
    // The link (no frames, no or a lost connection) is retried at most every linkBackoffCapMs: media
    // back within seconds of the link, a worker start is cheap next to that. A crash loop backs off.
    const cap = LINK_CAUSES.has(cause) ? Math.min(this.o.linkBackoffCapMs, this.o.backoffCapMs) : this.o.backoffCapMs;
    const delayMs = backoffDelay(attempt, this.o.backoffBaseMs, cap, this.opts.random);
    // One pipeline carries both directions (AEC needs it), so both restart together.
    this.update({ attempt, restarts: this.st.restarts + 1, lastError, send: 'retrying', receive: 'retrying', workerPid: null });
    this.log.warn({ evt: 'media.restart', cause, attempt, delayMs }, `restarting media in ${delayMs} ms`);
    this.emit('restart', { reason: cause, attempt, delayMs });
    this.scheduleRelaunch(delayMs);
  }

  private scheduleRelaunch(delayMs: number): void {
    if (this.retryTimer) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      void this.launch();
    }, delayMs);
  }

  private terminate(h: WorkerHandle, immediate = false): Promise<void> {
    if (h.exited) return Promise.resolve();
    return new Promise((resolve) => {
      let t: unknown = null;
      h.onExit(() => {
        if (t) this.clock.clearTimeout(t);
        resolve();
      });
      if (immediate) return h.kill('SIGKILL');
      h.send({ type: 'stop' });
      t = this.clock.setTimeout(() => h.kill('SIGKILL'), this.o.stopTimeoutMs);
    });
  }

  private clearTimers(): void {
    if (this.retryTimer) this.clock.clearTimeout(this.retryTimer);
    if (this.watchdog) this.clock.clearTimeout(this.watchdog);
    this.retryTimer = null;
    this.watchdog = null;
    this.watched = null;
  }

  private update(patch: Partial<MediaStatus>): void {
    const next = { ...this.st, ...patch };
    const changed = (Object.keys(patch) as Array<keyof MediaStatus>).some((k) => k !== 'stats' && next[k] !== this.st[k]);
    this.st = next;
    if (changed) this.emit('status', this.status());
  }
}
