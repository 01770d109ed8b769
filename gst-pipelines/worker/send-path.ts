/**
 * The send side's framing, as the plan built it: epframer in GStreamer (this process
 * only reads its counters), or where it is not built, the two muxers' FIFOs → TsMerger +
 * TsPacketizer here (node-framing.ts) → appsrc `tsin`.
 */
import { wireNodeFraming } from './node-framing.js';
import { holdFor, type Framing } from './pipeline-adaptation.js';
import type { Counter } from './frame-counter.js';
import type { GstElement, GstPipeline } from './gst.js';
import type { SampledCounts } from './sampled-counts.js';
import type { SessionScope } from './scope.js';
import type { FifoPool } from './ts-fifo.js';
import type { TsPacketizer } from '../mpegts/index.js';
import type { Socket } from 'node:net';
import type { SessionPlan } from '../types.js';

export class SendPath {
  /** epframer, when the plan frames in GStreamer. */
  readonly framer: GstElement | undefined;
  private readonly video: Socket | null;
  private readonly audio: Socket | null;
  private packetizer: TsPacketizer | null = null;
  private tsIn: GstElement | undefined;

  /** Before play: the muxers' fdsinks onto FIFOs (no epframer), epframer's hold time. */
  constructor(p: GstPipeline, plan: SessionPlan, fifos: FifoPool) {
    this.video = fifos.openSink(p, plan.names.tsOut);
    this.audio = fifos.openSink(p, plan.names.tsAudioOut);
    this.framer = plan.names.framer ? p.findChild(plan.names.framer) : undefined;
    if (this.framer) this.framer['hold-ms'] = holdFor(plan.video.fps);
  }

  /** After play, without epframer: the framing in this process, from the FIFOs into the appsrc. */
  wire(p: GstPipeline, plan: SessionPlan, send: Counter, scope: SessionScope): void {
    if (this.framer) return;
    this.tsIn = plan.names.tsIn ? p.findChild(plan.names.tsIn) : undefined;
    this.packetizer = wireNodeFraming({
      video: this.video,
      audio: this.audio,
      tsIn: this.tsIn,
      holdMs: holdFor(plan.video.fps),
      send,
      stopping: () => scope.stopping,
      addTimer: (t) => scope.addTimer(t),
      onError: (message) => scope.send({ type: 'error', cause: 'pipeline', source: 'tsout', message, retryable: true }),
    });
  }

  /** What adaptation changes in the framing: the hold time and null padding (a probe). */
  framing(): Framing | null {
    const f = this.framer;
    if (f) return { setHoldMs: (ms) => (f['hold-ms'] = ms), setPaddingKbps: (kbps) => (f['pad-kbps'] = kbps), ownPadTimer: false };
    const pk = this.packetizer;
    if (!pk) return null;
    return { setHoldMs: (ms) => pk.setHoldMs(ms), push: (message) => this.tsIn?.push?.(message), ownPadTimer: true };
  }

  videoFramesSent(): number {
    return this.framer ? Number(this.framer['video-frames'] ?? 0) : (this.packetizer?.videoFrames ?? 0);
  }

  /** Share of what was sent that is frame-end padding, % (null before any output). */
  paddingPct(sampled: SampledCounts): number | null {
    if (this.framer) return sampled.paddingPct();
    const pk = this.packetizer?.stats();
    return pk && pk.bytesOut > 0 ? Math.round((pk.paddingBytes / pk.bytesOut) * 1000) / 10 : null;
  }

  destroy(): void {
    this.video?.destroy();
    this.audio?.destroy();
  }
}
