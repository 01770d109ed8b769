/**
 * The media worker: runs ONE planned pipeline in its own process and reports over IPC.
 * Started by the supervisor (supervisor/supervisor.ts) through worker/main.ts; never imported by
 * the agent. It exits when its parent goes away, so it can never outlive the agent.
 *
 * Send path: two mpegtsmux (alignment=0, video and audio apart) → epframer (our element,
 * native/plugin.ts: merged, whole 1316-byte messages flushed at every frame end) → srtsink,
 * all inside GStreamer; this process reads the framer's counters a few times a second.
 * Where epframer is not built: fdsinks → FIFOs → TsMerger + TsPacketizer here → appsrc
 * `tsin` (send-path.ts).
 *
 * This class keeps the lifecycle (prepare, start, stop), the commands and the bus; its
 * collaborators hold each concern: SendPath, ReceivePath, Snapshots, StallWatch,
 * SrtAuthWatch, AudioLevels, StatsReporter, PipelineAdaptation.
 */
import { ELEMENT_NAMES } from '../plan/index.js';
import { AudioLevels } from './audio-levels.js';
import { classifyBusError } from './errors.js';
import { newCounter } from './frame-counter.js';
import { loadGst, type BusMessage, type GstPipeline } from './gst.js';
import { PipelineAdaptation } from './pipeline-adaptation.js';
import { preloadPlugins } from './preload.js';
import { ReceivePath } from './receive-path.js';
import { SampledCounts } from './sampled-counts.js';
import { SessionScope, type WorkerChannel } from './scope.js';
import { SendPath } from './send-path.js';
import { Snapshots } from './snapshots.js';
import { SrtAuthWatch } from './srt-auth.js';
import { StallWatch } from './stall-watch.js';
import { StatsReporter } from './stats-report.js';
import { FifoPool } from './ts-fifo.js';
import type { ToWorker } from './protocol.js';
import type { SessionPlan, StandbyPlan } from '../types.js';

/** The session's periodic work: stall check every beat, link sample and stats when due. */
const BEAT_MS = 250;

export class MediaWorker {
  private pipeline: GstPipeline | null = null;
  private plan: SessionPlan | StandbyPlan | null = null;
  private readonly startedAt = Date.now();
  private playAt = 0;
  private send = newCounter(Date.now());
  private receive = newCounter(Date.now());
  private readonly scope: SessionScope;
  private readonly fifos = new FifoPool();
  /** Counts read from epframer and the received-video fakesink (sampled-counts.ts). */
  private readonly sampled = new SampledCounts();
  private readonly levels = new AudioLevels();
  private readonly reporter = new StatsReporter();
  private sendPath: SendPath | null = null;
  private receivePath: ReceivePath | null = null;
  private snapshots: Snapshots | null = null;
  private stall: StallWatch | null = null;
  private srtAuth: SrtAuthWatch | null = null;
  /** Link adaptation (pipeline-adaptation.ts), in a box session. */
  private adaptation: PipelineAdaptation | null = null;

  constructor(private readonly ch: WorkerChannel) {
    this.scope = new SessionScope(ch);
  }

  attach(): void {
    this.ch.onMessage((m) => {
      void this.handle(m).catch((e: unknown) => {
        this.ch.send({ type: 'error', cause: 'pipeline', source: 'worker', message: (e as Error).message, retryable: true });
      });
    });
    this.prepare();
    this.ch.send({ type: 'ready', pid: process.pid, gstreamer: null });
  }

  /**
   * Work a warm worker does before it is needed, so a join pays only for its own
   * pipeline: load the binding and the plugins (preload.ts) and make the FIFOs for the
   * muxers' output.
   */
  private prepare(): void {
    try {
      preloadPlugins(loadGst());
      this.fifos.fill(2);
    } catch {
      // start() reports whatever is really wrong
    }
  }

  private async handle(m: ToWorker): Promise<void> {
    switch (m.type) {
      case 'start':
        return this.start(m);
      case 'stop':
        return this.stop();
      case 'set': {
        const el = this.pipeline?.findChild(m.element);
        if (el) el[m.property] = m.value;
        return;
      }
      case 'snapshot':
        return this.snapshots?.write();
      case 'test:block-source': {
        const valve = this.pipeline?.findChild(ELEMENT_NAMES.testVideoValve);
        if (valve) valve.drop = m.blocked;
        return;
      }
    }
  }

  private start(m: Extract<ToWorker, { type: 'start' }>): void {
    if (this.pipeline) throw new Error('worker already runs a pipeline; recycle the worker instead');
    const gst = loadGst();
    this.plan = m.plan;
    const callerMode = m.plan.kind === 'session' && m.plan.pipeline.includes('mode=caller');
    this.srtAuth = new SrtAuthWatch(callerMode, (msg) => this.ch.send(msg));
    this.snapshots = new Snapshots(m.snapshotDir, this.scope);
    let p: GstPipeline;
    try {
      p = new gst.Pipeline(m.plan.pipeline);
    } catch (e) {
      const c = classifyBusError('parse', (e as Error).message);
      this.ch.send({ type: 'error', cause: c.cause, source: 'parse', message: `cannot build the pipeline: ${(e as Error).message}`, retryable: false });
      return;
    }
    this.pipeline = p;
    if (m.plan.kind === 'session') this.beforePlay(p, m.plan, m.secrets);
    p.pollBus((msg) => this.onBus(msg));
    this.playAt = Date.now();
    this.send = newCounter(this.playAt);
    this.receive = newCounter(this.playAt);
    p.play();
    // Pulls only after play(): an appsink below PAUSED answers a pull with null at once.
    if (m.plan.kind === 'session') this.afterPlay(p, m.plan, m, callerMode);
    else this.snapshots.wire(p, m.plan);
    this.ch.send({ type: 'started', atMs: Date.now() - this.startedAt });
    if (m.plan.kind === 'session') {
      // One timer for the periodic work (stall check, link sample, stats): each wake-up of
      // this process costs more than the work itself (~0.5 ms of CPU on the benchmark
      // machine; docs/benchmarks.md), and three timers woke it 6.5 times a second.
      let reportedAt = Date.now();
      this.scope.addTimer(
        setInterval(() => {
          const now = Date.now();
          this.checkStall();
          this.adaptation?.beat(now);
          if (now - reportedAt >= m.statsPeriodMs - BEAT_MS / 2) {
            reportedAt = now;
            this.reportStats();
          }
        }, BEAT_MS),
      );
    } else this.scope.addTimer(setInterval(() => this.reportStats(), m.statsPeriodMs));
  }

  /** The passphrase on both SRT elements, the FIFOs onto the fdsinks, epframer found. */
  private beforePlay(p: GstPipeline, plan: SessionPlan, secrets: { passphrase?: string }): void {
    if (secrets.passphrase) {
      const sink = p.findChild(plan.names.srtSink);
      const src = p.findChild(plan.names.srtSrc);
      if (sink) sink.passphrase = secrets.passphrase;
      if (src) src.passphrase = secrets.passphrase;
    }
    this.sendPath = new SendPath(p, plan, this.fifos);
    this.receivePath = new ReceivePath(p, plan, this.fifos, this.scope);
    this.sampled.framer = this.sendPath.framer;
  }

  /** Taps, snapshots, Node framing, the send side's delivery watch and, for a caller, link adaptation. */
  private afterPlay(p: GstPipeline, plan: SessionPlan, m: Extract<ToWorker, { type: 'start' }>, callerMode: boolean): void {
    const sendPath = this.sendPath!;
    this.receivePath!.wireTap(p, plan, this.receive, this.sampled, this.scope, this.playAt);
    this.snapshots!.wire(p, plan);
    sendPath.wire(p, plan, this.send, this.scope);
    this.stall = new StallWatch(this.scope, m.stallMs, this.playAt);
    this.stall.confirmDelivery(p, plan);
    if (callerMode)
      this.adaptation = PipelineAdaptation.start(
        p,
        plan,
        {
          framing: () => sendPath.framing(),
          linkWatch: () => sendPath.framer,
          videoFramesSent: () => sendPath.videoFramesSent(),
          onChange: (change, report) => this.ch.send({ type: 'adapt', change, report }),
        },
        m.adaptFrom ?? null,
      );
  }

  private onBus(msg: BusMessage): void {
    const source = msg._src_element_name ?? 'pipeline';
    if (msg.type === 'error') {
      const c = classifyBusError(source, String(msg.message ?? ''), String(msg.debug ?? ''));
      this.ch.send({ type: 'error', cause: c.cause, source, message: c.message, retryable: c.retryable });
    } else if (msg.type === 'warning') {
      // gstreamer-superficial 1.7.4 parses the GError text of errors only: a warning arrives
      // with no `message`, just `debug` (file:line, function, element path).
      const text = typeof msg.message === 'string' ? msg.message : '';
      this.ch.send({ type: 'warning', source, message: text || String(msg.debug ?? msg.name ?? 'warning') });
      this.srtAuth?.onWarning(source, text);
    } else if (msg.type === 'eos') {
      this.ch.send({ type: 'eos' });
    } else if (msg.type === 'element' && msg.name === 'epframer-link') {
      this.adaptation?.linkWindow(String(msg.window ?? ''));
    } else if (msg.type === 'element' && msg.name === 'level') {
      this.levels.onLevel(source, msg.rms);
    }
  }

  /** Every beat: the sampled counts, then a stall in either direction. */
  private checkStall(): void {
    const now = Date.now();
    if (!this.scope.stopping) {
      this.sampled.readSend(this.send, now);
      if (this.sampled.readReceive(this.receive, now)) this.ch.send({ type: 'first-bytes', direction: 'receive', atMs: now - this.playAt });
    }
    this.stall?.checkFrames(now, { send: this.send, receive: this.receive }, this.adaptation?.audioOnly === true);
  }

  private reportStats(): void {
    const now = Date.now();
    const p = this.pipeline;
    const plan = this.plan;
    if (!p || !plan) return;
    const { stats, sendSrt } = this.reporter.take(now, {
      startedAt: this.startedAt,
      pipeline: p,
      plan,
      send: this.send,
      receive: this.receive,
      sampled: this.sampled,
      sendPath: this.sendPath,
      receivePath: this.receivePath,
      levels: this.levels,
      adaptation: this.adaptation,
    });
    this.stall?.checkSrtSendProgress(sendSrt, now);
    this.ch.send({ type: 'stats', stats });
  }

  stop(): void {
    if (this.scope.stopping) return;
    this.scope.stopping = true;
    this.scope.clearTimers();
    this.adaptation?.stop();
    try {
      this.sendPath?.destroy();
      this.receivePath?.destroy();
      this.pipeline?.stop();
    } finally {
      this.ch.send({ type: 'stopped' });
      // The binding never frees a pipeline: the process ends with the session.
      this.ch.exit(0);
    }
  }
}
