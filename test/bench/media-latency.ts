/**
 * Glass-to-glass latency of the media path, frame by frame, in child processes.
 *
 * A sender process pushes 720p30 I420 frames into an appsrc, each carrying a 24-bit
 * counter drawn as 48×48-px black/white blocks in the luma plane (and the complement of
 * the counter in a second row, so a damaged read is rejected, never guessed). It runs
 * the box's own send path through the production MediaWorker: the plan's encoder chain,
 * two `mpegtsmux alignment=0` → `epframer ! srtsink` (docs/media.md). A receiver
 * process runs the box's receive path from the same plan (srtsrc listener → tsdemux →
 * h264parse → avdec_h264) into an appsink and reads the counter back from the luma.
 * Both processes stamp frames with CLOCK_MONOTONIC (shared by all processes of the
 * machine): latency = time the decoded frame reached the appsink − time it was pushed.
 *
 * The pipelines are cut out of planSession()'s output (the test camera is replaced by
 * the appsrc, the display sink by the appsink), so the bench follows the plan; when the
 * plan changes shape so that the cut no longer applies, the bench says so and fails.
 *
 * Variants (same frames, same encoder settings, same receiver unless stated):
 * - ours:            the plan's `pipeline` (alignment=0 + epframer), SRT latency 40 ms.
 * - ours-node:       the plan without epframer: FIFOs → TsMerger + TsPacketizer in the
 *                    worker → appsrc (the fallback where the element is not built).
 * - ours-video-only: the same without the audio branch (what audio costs the video; since
 *                    audio has its own muxer, nothing).
 * - ours-opus10:     the same with 10 ms audio buffers and Opus frames (a proposal;
 *                    not run by default).
 * - direct:          one `mpegtsmux alignment=7 ! srtsink` (the plan's `direct` string
 *                    without epframer: what bare gst-launch could run before it).
 * - before:          `direct`, and a receiver without the `video/x-h264,alignment=au`
 *                    caps (bare gst-launch as it was before this work).
 * - rtp:             the plan's encoder → rtph264pay → UDP, no jitter buffer: the floor of
 *                    encode + packetise + decode on this machine (no SRT receive buffer).
 *
 * The sender drives the real MediaWorker through its IPC message handler and reaches
 * into its (TypeScript-)private `pipeline` for the appsrc that stands in for the camera.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';
import { withNativePlugins } from '../../gst-pipelines/native/plugin.js';
import type { Capabilities } from '../../gst-pipelines/types.js';
import { endChild, MeasurementError, percentile, round1, sleep, track, udpPortBound, waitFor } from './machine.js';
import { CHILD_PATH, type FromChild, type ToChild } from './media-latency-child.js';
import { BITRATE_KBPS, FPS, HEIGHT, SRT_LATENCY_MS, WIDTH } from './media-latency-frames.js';
import { LATENCY_VARIANTS, latencyPipelines, type LatencyPipelines, type LatencyVariantId } from './media-latency-pipelines.js';

export { SRT_LATENCY_MS } from './media-latency-frames.js';
export { LATENCY_VARIANTS, type LatencyVariantId } from './media-latency-pipelines.js';

export interface LatencyVariantResult {
  id: LatencyVariantId;
  description: string;
  seconds: number;
  framesSent: number;
  framesReceivedValid: number;
  framesDecoded: number;
  invalidCounters: number;
  lost: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  minMs: number | null;
  maxMs: number | null;
  meanMs: number | null;
  sender: string;
  receiver: string;
}

export interface LatencyResult {
  srtLatencyMs: number;
  width: number;
  height: number;
  fps: number;
  bitrateKbps: number;
  warmupSeconds: number;
  variants: LatencyVariantResult[];
}

export interface LatencyOptions {
  caps: Capabilities;
  seconds: number;
  warmupSeconds: number;
  variants: LatencyVariantId[];
  log: (line: string) => void;
}

class Child {
  readonly proc: ChildProcess;
  private readonly waiters: Array<{ type: FromChild['type']; resolve: (m: FromChild) => void }> = [];
  failure: string | null = null;
  private onFailure: ((reason: string) => void) | null = null;

  constructor(readonly role: 'sender' | 'receiver', log: (line: string) => void) {
    this.proc = track(fork(CHILD_PATH, ['--child', role], {
      env: { ...withNativePlugins(process.env), UV_THREADPOOL_SIZE: '16' },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    }));
    let stderr = '';
    this.proc.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    this.proc.on('message', (m: FromChild) => {
      if (m.type === 'error') this.fail(`${role}: ${m.message}`);
      else if (m.type === 'warning') log(`  ${role} warning: ${m.message}`);
      for (const w of this.waiters.filter((x) => x.type === m.type)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    });
    this.proc.on('error', (e) => this.fail(`${role} process: ${e.message}`));
    this.proc.on('exit', (code, signal) => {
      if (this.waiters.length > 0 || code !== 0) this.fail(`${role} process exited (${signal ?? `code ${code}`})${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`);
    });
  }

  private fail(reason: string): void {
    if (this.failure) return;
    this.failure = reason;
    this.onFailure?.(reason);
  }

  send(m: ToChild): void {
    if (this.proc.connected) this.proc.send(m);
  }

  /** The next message of `type`; rejects on a child failure or after `timeoutMs`. */
  wait<T extends FromChild['type']>(type: T, timeoutMs: number): Promise<Extract<FromChild, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(new MeasurementError(this.failure));
      const t = setTimeout(() => reject(new MeasurementError(`${this.role}: no '${type}' after ${timeoutMs} ms`)), timeoutMs);
      this.onFailure = (reason) => {
        clearTimeout(t);
        reject(new MeasurementError(reason));
      };
      this.waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m as Extract<FromChild, { type: T }>);
        },
      });
    });
  }

  end(): Promise<void> {
    this.send({ type: 'stop' });
    return endChild(this.proc, 'SIGTERM', 3000);
  }
}

async function measureVariant(id: LatencyVariantId, o: LatencyOptions): Promise<LatencyVariantResult> {
  const port = await freePort();
  const p = latencyPipelines(id, o.caps, port);
  const warmupFrames = Math.round(o.warmupSeconds * FPS);
  const frames = warmupFrames + Math.round(o.seconds * FPS);
  const receiver = new Child('receiver', o.log);
  let sender: Child | null = null;
  try {
    receiver.send({ type: 'config', role: 'receiver', launch: p.receiver });
    await receiver.wait('ready', 10_000);
    await waitFor(`the receiver to bind UDP port ${port}`, () => udpPortBound(port), 5000);
    sender = new Child('sender', o.log);
    sender.send({ type: 'config', role: 'sender', plan: p.senderPlan, frames, startDelayMs: 300 });
    await sender.wait('started', 10_000);
    const sent = await sender.wait('sent', (frames / FPS) * 1000 + 15_000);
    await sleep(1000); // the last frames' way through
    const gotP = receiver.wait('received', 10_000);
    receiver.send({ type: 'stop' });
    const got = await gotP;
    return summarize(id, p, sent.times, got, warmupFrames, o.seconds);
  } finally {
    await Promise.all([receiver.end(), sender?.end()]);
  }
}

function summarize(
  id: LatencyVariantId,
  p: LatencyPipelines,
  sentTimes: number[],
  got: Extract<FromChild, { type: 'received' }>,
  warmupFrames: number,
  seconds: number,
): LatencyVariantResult {
  const first = new Map<number, number>();
  let invalid = got.invalid;
  for (const [counter, t] of got.frames) {
    if (counter < 1 || counter > sentTimes.length) invalid++;
    else if (!first.has(counter)) first.set(counter, t);
  }
  const lat: number[] = [];
  let sent = 0;
  for (let c = warmupFrames + 1; c <= sentTimes.length; c++) {
    const at = sentTimes[c - 1];
    if (at === undefined || at < 0) continue;
    sent++;
    const r = first.get(c);
    if (r !== undefined) lat.push(r - at);
  }
  lat.sort((a, b) => a - b);
  const r = (v: number | null): number | null => (v === null ? null : round1(v));
  return {
    id,
    description: LATENCY_VARIANTS[id],
    seconds,
    framesSent: sent,
    framesReceivedValid: lat.length,
    framesDecoded: got.decoded,
    invalidCounters: invalid,
    lost: sent - lat.length,
    p50Ms: r(percentile(lat, 50)),
    p90Ms: r(percentile(lat, 90)),
    p99Ms: r(percentile(lat, 99)),
    minMs: r(lat[0] ?? null),
    maxMs: r(lat[lat.length - 1] ?? null),
    meanMs: lat.length ? round1(lat.reduce((a, b) => a + b, 0) / lat.length) : null,
    sender: p.sender,
    receiver: p.receiver,
  };
}

/** Runs every variant in turn; throws MeasurementError when one cannot be measured. */
export async function measureLatency(o: LatencyOptions): Promise<LatencyResult> {
  const variants: LatencyVariantResult[] = [];
  for (const id of o.variants) {
    o.log(`latency: ${id} (${o.seconds} s + ${o.warmupSeconds} s warm-up) …`);
    const v = await measureVariant(id, o);
    if (v.framesReceivedValid < v.framesSent * 0.5) {
      throw new MeasurementError(`latency ${id}: only ${v.framesReceivedValid} of ${v.framesSent} frames came back with a valid counter (${v.framesDecoded} decoded, ${v.invalidCounters} invalid)`);
    }
    o.log(`latency: ${id} p50 ${v.p50Ms} ms, p90 ${v.p90Ms} ms, p99 ${v.p99Ms} ms (${v.framesReceivedValid}/${v.framesSent} frames)`);
    variants.push(v);
  }
  return { srtLatencyMs: SRT_LATENCY_MS, width: WIDTH, height: HEIGHT, fps: FPS, bitrateKbps: BITRATE_KBPS, warmupSeconds: o.warmupSeconds, variants };
}
