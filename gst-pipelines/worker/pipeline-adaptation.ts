/**
 * The pipeline side of link adaptation, in the worker: samples srtsink's stats (or has
 * epframer sample them) into the controller loop (adapt/adapt-loop.ts) and applies its
 * decisions to the elements the plan names — the encoder's bitrate, the rung caps, the
 * audio-only gate, forced keyframes, null-packet padding. Runs with adaptation disabled
 * too (the loop then only reports), so congestion is visible either way.
 */
import { SAMPLE_MS } from '../adapt/index.js';
import { FAST_SAMPLE_MS, WATCH_SAMPLE_MS, collapseTrigger, type FastSample } from '../adapt/index.js';
import { bindingFreesReads, type GstElement, type GstPipeline } from './gst.js';
import { BPS, rungCaps } from '../plan/index.js';
import { fastReadingOf, srtStatsFromStructure, type SrtStats } from '../adapt/index.js';
import { PACKETS_PER_MESSAGE, SRT_MESSAGE_SIZE, nullPacket } from '../mpegts/index.js';
import type { AdaptChange, AdaptReport, Rung, SessionPlan } from '../types.js';
import { AdaptLoop } from '../adapt/index.js';

/**
 * How long audio/PSI packets may wait in the packetiser for the next video frame end to
 * ride along instead of being padded into a message of their own: one frame interval
 * (+5 ms), so at 15 fps audio does not cost 25 padded messages a second (~270 kbit/s,
 * measured through the bottleneck); audio-only fills whole messages.
 */
export const holdFor = (fps: number): number => Math.min(100, Math.ceil(1000 / Math.max(1, fps)) + 5);
const AUDIO_ONLY_HOLD_MS = 150;
const KEYFRAME_EVERY_MS = 2000;
/**
 * Whether epframer takes the collapse check's readings (its link watch, every
 * WATCH_SAMPLE_MS; the worker then wakes only when its trigger fires). It roughly halves
 * what the worker costs over gst-launch (docs/benchmarks.md). At 100 ms it acted ~0.1 s
 * later than our own 100 ms tick under load (its readings come with the first buffer
 * after the period: 101–118 ms apart) and the 600 kbit/s test lost audio at the
 * collapse; at 50 ms, thinned back to 100 ms spacing for fastCheck, its first cut comes
 * as early as the tick's (docs/adapt.md). Off: the worker reads srtsink itself.
 */
const LINK_WATCH = true;
const PAD_TICK_MS = 20;
/**
 * Video frames that must have left before the video may stop. The program tables
 * (PAT/PMT, with the audio entry merged in) come only from the video muxer, which writes
 * nothing while its input is closed: a worker restarted straight into audio-only (a
 * restart resumes the rung) sent Opus the hub could not find for as long as it stayed
 * there (seen: no audio at the hub for 4 s, until video came back). Half a second of the
 * lowest rung's video (at its floor bitrate) carries the tables many times over
 * (mpegtsmux repeats them every ~33 ms of stream time).
 */
const VIDEO_FRAMES_BEFORE_GATE = 8;
const GATE_WAIT_MAX_MS = 3000;

/** The send framing adaptation acts on: epframer's properties, or the Node packetiser. */
export type Framing =
  | { setHoldMs(ms: number): void; setPaddingKbps(kbps: number): void; ownPadTimer: false }
  | {
      setHoldMs(ms: number): void;
      /** Into the appsrc before srtsink (whole SRT messages). */
      push(message: Buffer): void;
      ownPadTimer: true;
    };

export interface AdaptationHooks {
  framing: () => Framing | null;
  /** epframer, when the plan frames in GStreamer: it can take the fast srtsink readings (its link watch). */
  linkWatch?: () => GstElement | undefined;
  /** Video frames the send path has passed so far (epframer or the Node packetiser). */
  videoFramesSent: () => number;
  onChange: (change: AdaptChange, report: AdaptReport) => void;
}

export class PipelineAdaptation {
  readonly loop: AdaptLoop;
  /** Audio only: no video frames is then no stall (SRT ACKs still watch the link). */
  audioOnly = false;
  /** The last srtsink stats read (each read leaks in the binding: reportStats reuses it). */
  lastSendStats: { st: SrtStats; at: number } | null = null;
  private stopped = false;
  /** epframer, when it takes the fast readings (startLinkWatch). */
  private watch: GstElement | null = null;
  /** The RTT floor last given to it, µs. */
  private floorUs = 0;
  /** When tick() last ran. */
  private tickedAt = 0;
  private videoOn = true;
  private sampleTimer: NodeJS.Timeout | null = null;
  private keyTimer: NodeJS.Timeout | null = null;
  private padTimer: NodeJS.Timeout | null = null;
  private gateTimer: NodeJS.Timeout | null = null;
  /** The encoder runs at the lowest rung's floor while the tables go out (not the loop's target). */
  private floorBitrate = false;
  private readonly enc: GstElement | undefined;
  private readonly gate: GstElement | undefined;
  private readonly caps: GstElement | undefined;

  private constructor(
    private readonly p: GstPipeline,
    private readonly plan: SessionPlan,
    private readonly sink: GstElement,
    private readonly hooks: AdaptationHooks,
    from: { rung: string; targetKbps: number } | null,
  ) {
    const a = plan.adapt;
    this.enc = a.bitrate ? p.findChild(a.bitrate.element) : undefined;
    this.gate = p.findChild(a.elements.gate);
    this.caps = a.elements.scale ? p.findChild(a.elements.scale) : undefined;
    this.loop = new AdaptLoop(
      a,
      { setVideoBitrate: (kbps) => this.setVideoBitrate(kbps), setRung: (rung) => this.setRung(rung), setPaddingKbps: (kbps) => this.setPadding(kbps) },
      hooks.onChange,
      from,
    );
  }

  /** Starts sampling a playing session (null when the plan has no srtsink to read). */
  static start(p: GstPipeline, plan: SessionPlan, hooks: AdaptationHooks, from: { rung: string; targetKbps: number } | null): PipelineAdaptation | null {
    const sink = p.findChild(plan.names.srtSink);
    if (!sink) return null;
    const a = new PipelineAdaptation(p, plan, sink, hooks, from);
    a.watch = a.startLinkWatch(hooks.linkWatch?.());
    // With epframer's link watch the worker's beat drives the tick (beat()); otherwise
    // our own timer at FAST_SAMPLE_MS.
    if (!a.watch) a.sampleTimer = setTimeout(() => a.tick(), a.sampleMs());
    return a;
  }

  /** The worker's periodic beat: a link sample once SAMPLE_MS has passed (link watch only). */
  beat(now: number): void {
    if (!this.watch || this.stopped || now - this.tickedAt < SAMPLE_MS - 20) return;
    this.tick();
  }

  /**
   * Hands the fast readings to epframer (right before srtsink): it reads srtsink every
   * WATCH_SAMPLE_MS on its streaming thread and posts `epframer-link` with the last
   * 1.2 s of readings only when the collapse trigger fires (adapt/collapse.ts), which
   * this worker then judges, thinned (linkWindow → AdaptLoop.collapseCheck). Our tick is
   * left with one reading per SAMPLE_MS. Null (we read at FAST_SAMPLE_MS ourselves)
   * without such an epframer.
   */
  private startLinkWatch(framer: GstElement | undefined): GstElement | null {
    // An older plugin without trigger-thin-ms would judge unthinned windows: not a superset of fastCheck.
    if (!LINK_WATCH || !framer || framer['watch-ms'] === undefined || framer['trigger-thin-ms'] === undefined) return null;
    const t = collapseTrigger(this.plan.adapt);
    framer['trigger-span-ms'] = t.spanMs;
    framer['trigger-thin-ms'] = t.thinMs;
    framer['trigger-queue-us'] = t.queueUs;
    framer['trigger-min-rate'] = t.minSendRate;
    framer['trigger-ack-rate'] = t.maxAckRate;
    framer['trigger-ack-permille'] = t.ackPermille;
    framer['watch-ms'] = WATCH_SAMPLE_MS;
    this.loop.readingsFromElement();
    return framer;
  }

  /** An `epframer-link` message's window (`T RTT PKTS BYTES ACKS LOST;…`, oldest first; LOST absent from an older plugin). */
  linkWindow(text: string): void {
    if (this.stopped || !this.watch) return;
    const window: FastSample[] = [];
    for (const part of text.split(';')) {
      const [t, rtt, pkts, bytes, acks, lost] = part.trim().split(' ').map(Number);
      if (t === undefined || rtt === undefined || pkts === undefined || bytes === undefined || acks === undefined) continue;
      if (![t, rtt, pkts, bytes, acks].every(Number.isFinite)) continue;
      window.push({ atMs: t, rttMs: rtt < 0 ? null : rtt, packetsSent: pkts, bytesSent: bytes, acksReceived: acks, ...(lost !== undefined && Number.isFinite(lost) ? { lostPackets: lost } : {}) });
    }
    this.loop.collapseCheck(window);
  }

  stop(): void {
    this.stopped = true;
    for (const t of [this.sampleTimer, this.keyTimer, this.padTimer, this.gateTimer]) if (t) clearTimeout(t);
  }

  /**
   * srtsink is read every FAST_SAMPLE_MS: a collapse must be seen before the bottleneck's
   * queue fills (0.3–0.5 s). epframer does that in C when it can (startLinkWatch), and
   * the worker's beat then has us read every SAMPLE_MS (beat). With the stock binding each of our reads leaks ~2 KB
   * (measured, connected socket) — 288 MB over a 4-hour meeting at that rate — so without
   * our patch (gst.ts bindingFreesReads) we read every SAMPLE_MS (~57 MB) and react later.
   */
  private sampleMs(): number {
    return bindingFreesReads() ? FAST_SAMPLE_MS : SAMPLE_MS;
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    this.tickedAt = now;
    const raw = String(this.sink.stats ?? '');
    if (!this.watch) this.sampleTimer = setTimeout(() => this.tick(), this.sampleMs());
    const light = this.watch ? null : fastReadingOf(raw);
    if (light && !this.loop.needsFullReading(now, light.packetsSent)) return this.loop.fastReading(light, now);
    const st = srtStatsFromStructure(raw, 'send');
    this.lastSendStats = { st, at: now };
    this.loop.sample(st, now);
    const floor = this.loop.historyFloorMs();
    const floorUs = floor === null ? 0 : Math.floor(floor * 1000);
    if (this.watch && floorUs !== this.floorUs) this.watch['rtt-floor-us'] = this.floorUs = floorUs;
  }

  private setVideoBitrate(kbps: number): void {
    const b = this.plan.adapt.bitrate;
    if (!this.enc || !b) return;
    const value = Math.max(1, Math.round(kbps * b.perKbps));
    if (b.structure === undefined) this.enc[b.property] = value;
    // The stock binding cannot set a structure (it prints a warning and leaves it).
    else if (bindingFreesReads()) this.enc[b.property] = b.structure.replace(BPS, String(value));
  }

  private setRung(rung: Rung | null): void {
    const framing = this.hooks.framing();
    if (this.gateTimer) clearInterval(this.gateTimer);
    this.gateTimer = null;
    if (rung === null) {
      this.closeGateOnceTablesSent();
      this.videoOn = false;
      this.audioOnly = true;
      // Audio alone: fill whole 7-packet messages instead of padding every 40 ms.
      framing?.setHoldMs(AUDIO_ONLY_HOLD_MS);
      this.keyframesEvery(null);
      return;
    }
    if (this.caps) this.caps.caps = rungCaps(rung);
    if (this.floorBitrate) {
      // The loop set no bitrate if its target did not change: restore it here.
      this.floorBitrate = false;
      this.setVideoBitrate(this.loop.report().targetKbps);
    }
    framing?.setHoldMs(holdFor(rung.fps));
    this.audioOnly = false;
    if (!this.videoOn) {
      if (this.gate) this.gate.drop = false;
      this.videoOn = true;
      // The hub may have lost what came before the gap: start on a keyframe.
      this.p.forceKeyUnit(this.plan.adapt.elements.parser, 1);
    }
    this.keyframesEvery(rung);
  }

  /** Closes the video gate, after VIDEO_FRAMES_BEFORE_GATE frames if fewer have left yet. */
  private closeGateOnceTablesSent(): void {
    const gate = this.gate;
    if (!gate) return;
    if (this.hooks.videoFramesSent() >= VIDEO_FRAMES_BEFORE_GATE) {
      gate.drop = true;
      return;
    }
    // Until then, the least the link has to carry: the lowest rung at its floor.
    const low = this.plan.adapt.ladder.at(-1);
    if (low) {
      if (this.caps) this.caps.caps = rungCaps(low);
      this.setVideoBitrate(low.minKbps);
      this.floorBitrate = true;
    }
    const since = Date.now();
    this.gateTimer = setInterval(() => {
      if (this.stopped || this.videoOn) return;
      if (this.hooks.videoFramesSent() < VIDEO_FRAMES_BEFORE_GATE && Date.now() - since < GATE_WAIT_MAX_MS) return;
      gate.drop = true;
      if (this.gateTimer) clearInterval(this.gateTimer);
      this.gateTimer = null;
    }, 50);
  }

  /**
   * The encoder's GOP is counted in frames and cannot change while playing: below the
   * plan's frame rate, a keyframe is forced every KEYFRAME_EVERY_MS so a hub or viewer
   * joining mid-stream still decodes within ~2 s. (Each rung change starts with one.)
   */
  private keyframesEvery(rung: Rung | null): void {
    if (this.keyTimer) clearInterval(this.keyTimer);
    this.keyTimer = null;
    if (!rung || rung.fps >= this.plan.video.fps) return;
    this.keyTimer = setInterval(() => {
      if (!this.stopped) this.p.forceKeyUnit(this.plan.adapt.elements.parser, 1);
    }, KEYFRAME_EVERY_MS);
  }

  /**
   * Null-packet padding straight into srtsink (whole messages): the audio-only probe.
   * epframer pads itself (its `pad-kbps`, paced by the audio it passes every 20 ms);
   * with the Node packetiser a timer pushes into the appsrc.
   */
  private setPadding(kbps: number): void {
    if (this.padTimer) clearInterval(this.padTimer);
    this.padTimer = null;
    const framing = this.hooks.framing();
    if (!framing) return;
    if (!framing.ownPadTimer) return framing.setPaddingKbps(Math.max(0, Math.round(kbps)));
    if (kbps <= 0) return;
    const message = Buffer.concat(Array.from({ length: PACKETS_PER_MESSAGE }, () => nullPacket()));
    let credit = 0;
    let last = Date.now();
    this.padTimer = setInterval(() => {
      const now = Date.now();
      credit += (kbps * (now - last)) / 8; // kbit/s × ms / 8 = bytes
      last = now;
      for (; credit >= SRT_MESSAGE_SIZE && !this.stopped; credit -= SRT_MESSAGE_SIZE) framing.push(message);
    }, PAD_TICK_MS);
  }
}
