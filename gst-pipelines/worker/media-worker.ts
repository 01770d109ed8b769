/**
 * The media worker: runs ONE planned pipeline in its own process and reports over IPC.
 * Started by the supervisor (supervisor/supervisor.ts) through worker/main.ts; never imported by
 * the agent. It exits when its parent goes away, so it can never outlive the agent.
 *
 * Send path: two mpegtsmux (alignment=0, video and audio apart) → epframer (our element,
 * native.ts: merged, whole 1316-byte messages flushed at every frame end) → srtsink, all
 * inside GStreamer; this process reads the framer's counters a few times a second. Where
 * epframer is not built: fdsinks → FIFOs → TsMerger + TsPacketizer here → appsrc `tsin`.
 */
import { writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import path from 'node:path';
import { countArrival, makeTsFifo, newCounter, parseLevelDb, PRELOAD_ELEMENTS, SEND_CONNECT_GRACE_MS, takeRate } from './parts.js';
import { loadGst, type BusMessage, type GstElement, type GstPipeline } from './gst.js';
import { ELEMENT_NAMES } from '../plan/index.js';
import type { TsPacketizer } from '../mpegts/index.js';
import { wireNodeFraming } from './node-framing.js';
import { SampledCounts } from './counters.js';
import { PipelineAdaptation, holdFor, type Framing } from './pipeline-adaptation.js';
import { TsAudit } from '../mpegts/index.js';
import { srtLinkStats, srtStatsFromStructure, type SrtStats } from '../adapt/index.js';

/** The session's periodic work: stall check every beat, link sample and stats when due. */
const BEAT_MS = 250;
import { classifyBusError } from './errors.js';
import type { FromWorker, StallDirection, ToWorker, WorkerStats } from './protocol.js';
import type { SessionPlan, StandbyPlan } from '../types.js';

export interface WorkerChannel {
  send(msg: FromWorker): void;
  onMessage(cb: (msg: ToWorker) => void): void;
  exit(code: number): void;
}

export class MediaWorker {
  private pipeline: GstPipeline | null = null;
  private plan: SessionPlan | StandbyPlan | null = null;
  private readonly startedAt = Date.now();
  private playAt = 0;
  private send = newCounter(Date.now());
  private receive = newCounter(Date.now());
  private packetizer: TsPacketizer | null = null;
  private tsIn: GstElement | undefined;
  /** epframer, when the plan frames in GStreamer. */
  private framer: GstElement | undefined;
  /** Counts read from epframer and the received-video fakesink (worker-counters.ts). */
  private readonly sampled = new SampledCounts();
  private tsPipe: Socket | null = null;
  private tsAudioPipe: Socket | null = null;
  /** The test hub's receive audit (SessionRole.auditReceive): its FIFO and the auditor. */
  private rxTsPipe: Socket | null = null;
  private audit: TsAudit | null = null;
  private fifos: Array<{ wfd: number; rfd: number }> = [];
  private timers: NodeJS.Timeout[] = [];
  private stalled = new Set<StallDirection>();
  private audio = { micDb: null as number | null, speakerDb: null as number | null, micBuffers: 0, speakerBuffers: 0 };
  private lastSrt: { send: SrtStats | null; receive: SrtStats | null; at: number } = { send: null, receive: null, at: Date.now() };
  private snapshots: { send: Buffer | null; receive: Buffer | null } = { send: null, receive: null };
  private snapshotDir: string | undefined;
  private stopping = false;
  private srtWarnings = new Map<string, number[]>();
  /** Last time the hub's ACK count moved (null until SRT confirmed a connection). */
  private srtSendProgress: { acks: number; at: number } | null = null;
  private stallMs = 2500;
  private authReported = false;
  private callerMode = false;
  private speakerLevelAt: number | null = null;
  /** Link adaptation (worker-actuator.ts), in a box session. */
  private adaptation: PipelineAdaptation | null = null;
  private speakerMaxGapMs: number | null = null;

  constructor(private readonly ch: WorkerChannel) {}

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
   * pipeline: load the binding and the plugins (the first pipeline naming x264, libav,
   * srt, webrtcdsp… took 61–172 ms to build, the next 7–15 ms; measured) and make the
   * FIFO for the muxer's output. The preload pipeline is built, never played, and dies
   * with the process like every pipeline here.
   */
  private prepare(): void {
    try {
      const gst = loadGst();
      try {
        new gst.Pipeline(PRELOAD_ELEMENTS.join(' '));
      } catch {
        for (const e of PRELOAD_ELEMENTS) {
          try {
            new gst.Pipeline(e);
          } catch {
            // not on this box: the plan will not use it either
          }
        }
      }
      this.fifos = [makeTsFifo(), makeTsFifo()];
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
        return this.writeSnapshots();
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
    this.callerMode = m.plan.kind === 'session' && m.plan.pipeline.includes('mode=caller');
    this.snapshotDir = m.snapshotDir;
    const launch = m.plan.pipeline;
    let p: GstPipeline;
    try {
      p = new gst.Pipeline(launch);
    } catch (e) {
      const c = classifyBusError('parse', (e as Error).message);
      this.ch.send({ type: 'error', cause: c.cause, source: 'parse', message: `cannot build the pipeline: ${(e as Error).message}`, retryable: false });
      return;
    }
    this.pipeline = p;
    if (m.plan.kind === 'session') {
      if (m.secrets.passphrase) {
        const sink = p.findChild(m.plan.names.srtSink);
        const src = p.findChild(m.plan.names.srtSrc);
        if (sink) sink.passphrase = m.secrets.passphrase;
        if (src) src.passphrase = m.secrets.passphrase;
      }
    }
    if (m.plan.kind === 'session') {
      this.openTsPipe(p, m.plan);
      this.framer = m.plan.names.framer ? p.findChild(m.plan.names.framer) : undefined;
      if (this.framer) this.framer['hold-ms'] = holdFor(m.plan.video.fps);
      this.sampled.framer = this.framer;
    }
    p.pollBus((msg) => this.onBus(msg));
    this.playAt = Date.now();
    this.send = newCounter(this.playAt);
    this.receive = newCounter(this.playAt);
    p.play();
    // Pulls only after play(): an appsink below PAUSED answers a pull with null at once.
    if (m.plan.kind === 'session') {
      this.wireSession(p, m.plan);
      this.confirmDelivery(p, m.plan);
      if (this.callerMode)
        this.adaptation = PipelineAdaptation.start(
          p,
          m.plan,
          {
            framing: () => this.framing(),
            linkWatch: () => this.framer,
            videoFramesSent: () => (this.framer ? Number(this.framer['video-frames'] ?? 0) : (this.packetizer?.videoFrames ?? 0)),
            onChange: (change, report) => this.ch.send({ type: 'adapt', change, report }),
          },
          m.adaptFrom ?? null,
        );
    }
    this.ch.send({ type: 'started', atMs: Date.now() - this.startedAt });
    this.stallMs = m.stallMs;
    if (m.plan.kind === 'session') {
      // One timer for the periodic work (stall check, link sample, stats): each wake-up of
      // this process costs more than the work itself (~0.5 ms of CPU on the benchmark
      // machine; docs/benchmarks.md), and three timers woke it 6.5 times a second.
      let reportedAt = Date.now();
      this.timers.push(
        setInterval(() => {
          const now = Date.now();
          this.checkStall(m.stallMs);
          this.adaptation?.beat(now);
          if (now - reportedAt >= m.statsPeriodMs - BEAT_MS / 2) {
            reportedAt = now;
            this.reportStats();
          }
        }, BEAT_MS),
      );
    } else this.timers.push(setInterval(() => this.reportStats(), m.statsPeriodMs));
  }

  /**
   * mpegtsmux (alignment=0) → fdsink writes each muxed frame with one writev into a FIFO
   * that this process reads as a stream. An appsink would hand every 188-byte TS packet
   * over as its own sample — a threadpool round trip and a JS callback per packet, ~1000
   * a second, which cost a third more CPU than gst-launch (measured, docs/benchmarks.md).
   * Both ends are opened here and the name unlinked at once; the write end is blocking,
   * so a slow reader back-pressures the muxer instead of losing data.
   */
  private openTsPipe(p: GstPipeline, plan: SessionPlan): void {
    const open = (name: string | undefined): Socket | null => {
      const sink = name ? p.findChild(name) : undefined;
      if (!sink) return null; // a `direct` description: mpegtsmux feeds srtsink itself
      const { wfd, rfd } = this.fifos.shift() ?? makeTsFifo();
      sink.fd = wfd;
      return new Socket({ fd: rfd, readable: true, writable: false });
    };
    this.tsPipe = open(plan.names.tsOut);
    this.tsAudioPipe = open(plan.names.tsAudioOut);
    this.rxTsPipe = open(plan.names.rxTsOut);
    if (this.rxTsPipe) {
      const audit = new TsAudit();
      this.audit = audit;
      this.rxTsPipe.on('data', (b: Buffer) => audit.push(b, Date.now()));
      this.rxTsPipe.on('error', (e: Error) => this.ch.send({ type: 'error', cause: 'pipeline', source: 'rxtsout', message: `receive audit pipe: ${e.message}`, retryable: true }));
    }
  }

  /** What adaptation changes in the framing: the hold time and null padding (a probe). */
  private framing(): Framing | null {
    const f = this.framer;
    if (f) return { setHoldMs: (ms) => (f['hold-ms'] = ms), setPaddingKbps: (kbps) => (f['pad-kbps'] = kbps), ownPadTimer: false };
    const pk = this.packetizer;
    if (!pk) return null;
    return { setHoldMs: (ms) => pk.setHoldMs(ms), push: (message) => this.tsIn?.push?.(message), ownPadTimer: true };
  }

  private wireSession(p: GstPipeline, plan: SessionPlan): void {
    this.wireReceive(p, plan);
    if (this.framer) return;
    this.tsIn = plan.names.tsIn ? p.findChild(plan.names.tsIn) : undefined;
    this.packetizer = wireNodeFraming({
      video: this.tsPipe,
      audio: this.tsAudioPipe,
      tsIn: this.tsIn,
      holdMs: holdFor(plan.video.fps),
      send: this.send,
      stopping: () => this.stopping,
      addTimer: (t) => this.timers.push(t),
      onError: (message) => this.ch.send({ type: 'error', cause: 'pipeline', source: 'tsout', message, retryable: true }),
    });
  }

  /** The received video tap (frame counting, stall) and the snapshot sinks. */
  private wireReceive(p: GstPipeline, plan: SessionPlan): void {
    const tap = p.findChild(plan.names.rxVideoTap);
    if (tap && !tap.pull) this.sampled.rxTap = tap;
    if (tap?.pull) {
      const pull = tap.pull.bind(tap);
      const onFrame = (buf: Buffer | null): void => {
        if (this.stopping) return;
        if (!buf) return this.retryPull(() => pull(onFrame));
        const now = Date.now();
        if (this.receive.firstAt === null) {
          this.receive.firstAt = now;
          this.ch.send({ type: 'first-bytes', direction: 'receive', atMs: now - this.playAt });
        }
        countArrival(this.receive, now, buf.length);
        pull(onFrame);
      };
      pull(onFrame);
    }
    for (const side of ['send', 'receive'] as const) {
      const name = side === 'send' ? plan.names.snapshotSend : plan.names.snapshotReceive;
      const sink = name ? p.findChild(name) : undefined;
      if (!sink?.pull) continue;
      const pull = sink.pull.bind(sink);
      const onPng = (buf: Buffer | null): void => {
        if (this.stopping) return;
        if (!buf) return this.retryPull(() => pull(onPng));
        this.snapshots[side] = Buffer.from(buf);
        pull(onPng);
      };
      pull(onPng);
    }
  }

  /**
   * "Sending" is reported only once the hub has acknowledged SRT packets: the
   * packetiser producing data proves nothing when the hub refuses the handshake (seen:
   * a wrong passphrase showed send ok while the hub decoded nothing). Polled fast until
   * confirmed; property reads leak in the binding, so this stops once it has its answer.
   */
  private confirmDelivery(p: GstPipeline, plan: SessionPlan): void {
    const sink = p.findChild(plan.names.srtSink);
    const t = setInterval(() => {
      if (this.stopping || !sink) return clearInterval(t);
      const st = srtStatsFromStructure(String(sink.stats ?? ''), 'send');
      if ((st.acksReceived ?? 0) > 0) {
        clearInterval(t);
        this.srtSendProgress = { acks: st.acksReceived ?? 0, at: Date.now() };
        this.ch.send({ type: 'first-bytes', direction: 'send', atMs: Date.now() - this.playAt });
      } else if (Date.now() - this.playAt > SEND_CONNECT_GRACE_MS) {
        // Never connected (hub ingest unreachable, or refusing us): a send stall, so the
        // supervisor rebuilds with backoff and the box reports media_failing after a few.
        clearInterval(t);
        this.stalled.add('send');
        this.ch.send({ type: 'stall', direction: 'send', idleMs: Date.now() - this.playAt });
      }
    }, 50);
    this.timers.push(t);
  }

  /** A pull answered null (not yet playing, or EOS): ask again shortly, never spin. */
  private retryPull(again: () => void): void {
    const t = setTimeout(() => {
      this.timers = this.timers.filter((x) => x !== t);
      if (!this.stopping) again();
    }, 50);
    this.timers.push(t);
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
      this.onSrtWarning(source, text);
    } else if (msg.type === 'eos') {
      this.ch.send({ type: 'eos' });
    } else if (msg.type === 'element' && msg.name === 'epframer-link') {
      this.adaptation?.linkWindow(String(msg.window ?? ''));
    } else if (msg.type === 'element' && msg.name === 'level') {
      const db = parseLevelDb(msg.rms);
      if (source === ELEMENT_NAMES.micLevel) {
        this.audio.micDb = db;
        this.audio.micBuffers++;
      } else if (source === ELEMENT_NAMES.speakerLevel) {
        this.audio.speakerDb = db;
        this.audio.speakerBuffers++;
        const now = Date.now();
        if (this.speakerLevelAt !== null) this.speakerMaxGapMs = Math.max(this.speakerMaxGapMs ?? 0, now - this.speakerLevelAt);
        this.speakerLevelAt = now;
      }
    }
  }

  /**
   * A caller whose handshake the hub refuses (wrong, missing or unexpected passphrase)
   * retries at once: srtsrc/srtsink 1.22 post "Failed to authenticate: … Trying to
   * reconnect" warnings about 100 times a second, and never an error. An unreachable hub
   * warns once per connect timeout (~3 s). So a burst of SRT warnings = refused handshake.
   */
  private onSrtWarning(source: string, text: string): void {
    if (this.authReported || !this.callerMode) return;
    if (source !== ELEMENT_NAMES.srtSink && source !== ELEMENT_NAMES.srtSrc) return;
    const c = text ? classifyBusError(source, text) : null;
    const now = Date.now();
    const recent = (this.srtWarnings.get(source) ?? []).filter((t) => now - t < 2000);
    recent.push(now);
    this.srtWarnings.set(source, recent);
    if (c?.cause !== 'srt_auth' && recent.length < 20) return;
    this.authReported = true;
    const dir = source === ELEMENT_NAMES.srtSrc ? 'receive' : 'send';
    this.ch.send({
      type: 'error',
      cause: 'srt_auth',
      source,
      message: c?.message ?? `SRT ${dir}: the hub refuses the connection at the handshake (${recent.length} attempts in 2 s): wrong or missing passphrase/pbkeylen, or a refused stream id`,
      retryable: false,
    });
  }

  /** The hub stopped acknowledging what we send: the link or the hub is gone (send stall). */
  private checkSrtSendProgress(st: SrtStats | null, now: number): void {
    const prog = this.srtSendProgress;
    if (!prog || !st || st.acksReceived === null) return;
    if (st.acksReceived > prog.acks) {
      this.srtSendProgress = { acks: st.acksReceived, at: now };
      this.stalled.delete('send');
    } else if (now - prog.at >= this.stallMs && !this.stalled.has('send')) {
      this.stalled.add('send');
      this.ch.send({ type: 'stall', direction: 'send', idleMs: now - prog.at });
    }
  }

  private checkStall(stallMs: number): void {
    const now = Date.now();
    if (!this.stopping) {
      this.sampled.readSend(this.send, now);
      if (this.sampled.readReceive(this.receive, now)) this.ch.send({ type: 'first-bytes', direction: 'receive', atMs: now - this.playAt });
    }
    // Grace before the first frame: SRT handshake plus waiting for the hub's next keyframe.
    const grace = Math.max(stallMs, 5000);
    for (const [dir, c] of [['send', this.send], ['receive', this.receive]] as const) {
      if (dir === 'send' && this.adaptation?.audioOnly) {
        c.lastAt = now; // video resumes with a fresh grace
        continue;
      }
      const idle = c.lastAt === null ? now - this.playAt - grace + stallMs : now - c.lastAt;
      if (idle >= stallMs && !this.stalled.has(dir)) {
        this.stalled.add(dir);
        this.ch.send({ type: 'stall', direction: dir, idleMs: c.lastAt === null ? now - this.playAt : idle });
      } else if (idle < stallMs) this.stalled.delete(dir);
    }
  }

  private reportStats(): void {
    const now = Date.now();
    const p = this.pipeline;
    const plan = this.plan;
    if (!p || !plan) return;
    let sendSrt: SrtStats | null = null;
    let recvSrt: SrtStats | null = null;
    if (plan.kind === 'session') {
      const cached = this.adaptation?.lastSendStats;
      sendSrt = cached && now - cached.at < 1000 ? cached.st : srtStatsFromStructure(String(p.findChild(plan.names.srtSink)?.stats ?? ''), 'send');
      recvSrt = srtStatsFromStructure(String(p.findChild(plan.names.srtSrc)?.stats ?? ''), 'receive');
      // Sampled frame counts: the received bytes are srtsrc's payload bytes (TS, audio included).
      if (this.sampled.rxTap && recvSrt.elementBytes !== null) this.receive.bytes = recvSrt.elementBytes;
    }
    const dtMs = now - this.lastSrt.at;
    const pk = this.packetizer?.stats();
    const paddingPct = this.framer
      ? this.sampled.paddingPct()
      : pk && pk.bytesOut > 0 ? Math.round((pk.paddingBytes / pk.bytesOut) * 1000) / 10 : null;
    const stats: WorkerStats = {
      ts: now,
      uptimeMs: now - this.startedAt,
      send: {
        ...takeRate(this.send, now),
        frames: this.send.frames,
        bytes: this.send.bytes,
        idleMs: this.send.lastAt === null ? null : now - this.send.lastAt,
        srt: srtLinkStats(this.lastSrt.send, sendSrt, dtMs),
        paddingPct,
      },
      receive: {
        ...takeRate(this.receive, now),
        frames: this.receive.frames,
        bytes: this.receive.bytes,
        idleMs: this.receive.lastAt === null ? null : now - this.receive.lastAt,
        srt: srtLinkStats(this.lastSrt.receive, recvSrt, dtMs),
        ...(this.audit ? { audit: this.audit.takeInterval() } : {}),
      },
      audio: { ...this.audio, speakerMaxGapMs: this.speakerLevelAt === null ? null : Math.max(this.speakerMaxGapMs ?? 0, now - this.speakerLevelAt) },
      adapt: this.adaptation?.loop.report() ?? null,
      rssMb: Math.round(process.memoryUsage.rss() / 1048576),
    };
    this.lastSrt = { send: sendSrt, receive: recvSrt, at: now };
    this.speakerMaxGapMs = null;
    this.checkSrtSendProgress(sendSrt, now);
    this.ch.send({ type: 'stats', stats });
  }

  private async writeSnapshots(): Promise<void> {
    if (!this.snapshotDir) return;
    for (const side of ['send', 'receive'] as const) {
      const png = this.snapshots[side];
      if (!png) continue;
      const file = path.join(this.snapshotDir, `${side === 'send' ? 'sent' : 'received'}.png`);
      await writeFile(file, png);
      this.ch.send({ type: 'snapshot', side, path: file, bytes: png.length });
    }
  }

  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.adaptation?.stop();
    try {
      this.tsPipe?.destroy();
      this.tsAudioPipe?.destroy();
      this.rxTsPipe?.destroy();
      this.pipeline?.stop();
    } finally {
      this.ch.send({ type: 'stopped' });
      // The binding never frees a pipeline: the process ends with the session.
      this.ch.exit(0);
    }
  }
}
