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
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';
import { withNativePlugins } from '../../gst-pipelines/native/plugin.js';
import { pickEndpoints } from '../../gst-pipelines/plan/endpoints.js';
import { ELEMENT_NAMES } from '../../gst-pipelines/plan/names.js';
import { planSession } from '../../gst-pipelines/plan/session.js';
import type { GstPipeline } from '../../gst-pipelines/worker/gst.js';
import type { Capabilities, MediaJoinSpec, MediaSettings, SessionPlan } from '../../gst-pipelines/types.js';
import type { ToWorker } from '../../gst-pipelines/worker/protocol.js';
import { endChild, MeasurementError, monoMs, percentile, round1, sleep, track, udpPortBound, waitFor } from './machine.js';

export const WIDTH = 1280;
export const HEIGHT = 720;
export const FPS = 30;
export const BITRATE_KBPS = 1500;
export const SRT_LATENCY_MS = 40;
const CAMERA_SRC = 'camsrc';
const LATENCY_SINK = 'latsink';

// ---- the counter in the picture ------------------------------------------------------

export const COUNTER_BITS = 24;
const BLOCK = 48;
const X0 = 64; // block columns start on a macroblock boundary
const Y0 = 48;
const FRAME_BYTES = (WIDTH * HEIGHT * 3) / 2;

/** Draws `counter` (row 1) and its complement (row 2) as 48×48 luma blocks. */
export function drawCounter(y: Buffer, counter: number, width = WIDTH): void {
  for (let row = 0; row < 2; row++) {
    for (let bit = 0; bit < COUNTER_BITS; bit++) {
      const one = ((counter >>> (COUNTER_BITS - 1 - bit)) & 1) === 1;
      const v = (row === 0 ? one : !one) ? 235 : 16;
      const x = X0 + bit * BLOCK;
      for (let dy = 0; dy < BLOCK; dy++) {
        const o = (Y0 + row * BLOCK + dy) * width + x;
        y.fill(v, o, o + BLOCK);
      }
    }
  }
}

/** Reads the counter back; null when any block is ambiguous or the complement disagrees. */
export function readCounter(y: Buffer, width = WIDTH): number | null {
  const rows = [0, 0];
  const margin = BLOCK / 4;
  for (let row = 0; row < 2; row++) {
    for (let bit = 0; bit < COUNTER_BITS; bit++) {
      let sum = 0;
      let n = 0;
      const x = X0 + bit * BLOCK;
      for (let dy = margin; dy < BLOCK - margin; dy += 2) {
        const o = (Y0 + row * BLOCK + dy) * width + x;
        for (let dx = margin; dx < BLOCK - margin; dx += 2) {
          sum += y[o + dx] ?? 0;
          n++;
        }
      }
      const mean = sum / n;
      if (mean > 96 && mean < 160) return null; // neither black nor white: do not guess
      rows[row] = ((rows[row] ?? 0) << 1) | (mean >= 128 ? 1 : 0);
    }
  }
  const mask = (1 << COUNTER_BITS) - 1;
  const value = (rows[0] ?? 0) & mask;
  return ((rows[1] ?? 0) & mask) === (~value & mask) ? value : null;
}

/**
 * Camera-like frames: a scrolling textured background (motion the encoder must code), a
 * band of fresh noise (so the rate control spends its whole budget, as a real camera
 * does at 1.5 Mbit/s), neutral chroma, and the counter.
 */
export class FrameMaker {
  private readonly texture: Buffer;
  private readonly noise = randomBytes(4 * 1024 * 1024);

  constructor() {
    const tex = Buffer.alloc(WIDTH * HEIGHT * 2);
    const cells = randomBytes((WIDTH / 16) * ((HEIGHT * 2) / 16));
    for (let row = 0; row < HEIGHT * 2; row++) {
      for (let x = 0; x < WIDTH; x++) {
        const cell = cells[Math.floor(row / 16) * (WIDTH / 16) + Math.floor(x / 16)] ?? 128;
        tex[row * WIDTH + x] = 40 + ((cell * 175) >> 8) + ((x + row) & 7);
      }
    }
    this.texture = tex;
  }

  /** One buffer, reused: appsrc push() copies it, so it is free again when push returns. */
  private readonly out = Buffer.alloc(FRAME_BYTES);

  /** The frame for `counter`; valid until the next call. */
  frame(counter: number): Buffer {
    const f = this.out;
    const scroll = (counter * 4) % HEIGHT;
    this.texture.copy(f, 0, scroll * WIDTH, (scroll + HEIGHT) * WIDTH);
    const bandRows = 64;
    const bandAt = 560 * WIDTH;
    const from = (counter * 7919 * 64) % (this.noise.length - bandRows * WIDTH);
    this.noise.copy(f, bandAt, from, from + bandRows * WIDTH);
    f.fill(128, WIDTH * HEIGHT);
    drawCounter(f, counter);
    return f;
  }
}

// ---- pipelines cut out of the plan ----------------------------------------------------

export type LatencyVariantId = 'ours' | 'ours-video-only' | 'ours-node' | 'ours-opus10' | 'direct' | 'before' | 'rtp';

export const LATENCY_VARIANTS: Record<LatencyVariantId, string> = {
  ours: 'our path: two mpegtsmux alignment=0 → epframer where built, else the Node packetiser (1316-byte messages flushed at each frame end) → srtsink',
  'ours-node': 'our path framed in Node instead of epframer: fdsink FIFOs → TsMerger + TsPacketizer → appsrc → srtsink (the fallback)',
  'ours-video-only': 'our path without the audio branch (audio is muxed apart: it should cost the video nothing)',
  'ours-opus10': 'our path with 10 ms audio (audiotestsrc samplesperbuffer=480, opusenc frame-size=10): a proposed change, not the plan',
  direct: 'one mpegtsmux alignment=7 → srtsink (what bare gst-launch could run without epframer)',
  before: 'direct, and a receiver without video/x-h264,alignment=au after tsdemux (bare gst-launch before this work)',
  rtp: 'reference floor: same encoder → rtph264pay → UDP → rtph264depay → decoder, no jitter buffer, no SRT buffer',
};

const BENCH_SETTINGS: MediaSettings = {
  source: 'test',
  volume: 1,
  micMuted: false,
  // The latency sender and receiver are halves of a session in two processes: the echo
  // probe lives in the receive half, so webrtcdsp cannot be used in the send half.
  aec: false,
  statsPeriodS: 2,
  standbyTitle: 'latency bench',
};

function benchSpec(sendPort: number, receivePort: number): MediaJoinSpec {
  return {
    meetingId: 'bench',
    title: 'latency bench',
    send: { url: `srt://127.0.0.1:${sendPort}`, streamId: 'publish:bench/box', video: { width: WIDTH, height: HEIGHT, fps: FPS, bitrateKbps: BITRATE_KBPS }, audio: { bitrateKbps: 32 } },
    receive: { url: `srt://127.0.0.1:${receivePort}`, streamId: 'read:bench/program' },
    srt: { latencyMs: SRT_LATENCY_MS },
  };
}

function cutError(what: string): MeasurementError {
  return new MeasurementError(`latency bench: cannot cut ${what} out of planSession()'s output; the plan changed shape, update test/bench/media-latency.ts`);
}

const appsrcCamera = `appsrc name=${CAMERA_SRC} is-live=true do-timestamp=true format=time caps=video/x-raw,format=I420,width=${WIDTH},height=${HEIGHT},framerate=${FPS}/1`;

/** The plan's branches (they are joined by two spaces, see launch.ts `branches`). */
const piecesOf = (launch: string): string[] => launch.split('  ');
const isReceivePiece = (p: string): boolean => p.includes(`name=${ELEMENT_NAMES.srtSrc} `) || p.startsWith('demux.') || p.startsWith('rxtee.');

export interface LatencyPipelines {
  sender: string;
  receiver: string;
  /** The sender plan handed to the MediaWorker (its `pipeline` is `sender`). */
  senderPlan: SessionPlan;
  /** UDP port the receiver binds (SRT listener or RTP udpsrc). */
  port: number;
}

/** Builds the sender and receiver of one variant from planSession(). */
export function latencyPipelines(variant: LatencyVariantId, caps: Capabilities, port: number): LatencyPipelines {
  const sendPlan = planSession(benchSpec(port, port + 1), caps, BENCH_SETTINGS, { srtMode: 'caller' });
  // Without epframer: the Node-framed fallback and the alignment=7 `direct` reference.
  const nodePlan = planSession(benchSpec(port, port + 1), { ...caps, elements: { ...caps.elements, epframer: false } }, BENCH_SETTINGS, { srtMode: 'caller' });
  const recvPlan = planSession(benchSpec(port + 1, port), caps, BENCH_SETTINGS, { srtMode: 'listener' });
  const camera = pickEndpoints(caps, BENCH_SETTINGS, sendPlan.video, BENCH_SETTINGS.standbyTitle ?? '').camera.chain;
  const display = pickEndpoints(caps, BENCH_SETTINGS, recvPlan.video, BENCH_SETTINGS.standbyTitle ?? '').display.sink;

  const senderFrom = (launch: string): string => {
    const pieces = piecesOf(launch).filter((p) => !isReceivePiece(p));
    const video = pieces.findIndex((p) => p.startsWith(`${camera} ! `));
    if (video < 0) throw cutError('the camera chain');
    pieces[video] = `${appsrcCamera}${pieces[video]!.slice(camera.length)}`;
    return pieces.join('  ');
  };

  // Receiver: the plan's receive branches; the display sink becomes the latency appsink.
  const recvPieces = piecesOf(recvPlan.pipeline).filter(isReceivePiece);
  const vIdx = recvPieces.findIndex((p) => p.startsWith('demux.') && p.includes('video/x-h264'));
  const vPiece = recvPieces[vIdx];
  if (vIdx < 0 || !vPiece || !vPiece.endsWith(` ! ${display}`)) throw cutError('the receive video branch');
  const appsink = `video/x-raw,format=I420 ! appsink name=${LATENCY_SINK} sync=false async=false max-buffers=30 drop=false`;
  recvPieces[vIdx] = `${vPiece.slice(0, -display.length)}${appsink}`;
  const ourReceiver = recvPieces.join('  ');

  let sender: string;
  let receiver = ourReceiver;
  switch (variant) {
    case 'ours':
      sender = senderFrom(sendPlan.pipeline);
      break;
    case 'ours-node':
      sender = senderFrom(nodePlan.pipeline);
      break;
    case 'ours-video-only': {
      const pieces = piecesOf(senderFrom(sendPlan.pipeline));
      const audio = pieces.findIndex((x) => x.includes('opusenc'));
      if (audio < 0) throw cutError('the audio branch');
      pieces.splice(audio, 1);
      sender = pieces.join('  ');
      break;
    }
    case 'ours-opus10': {
      sender = senderFrom(sendPlan.pipeline);
      const mic = 'audiotestsrc is-live=true';
      if (!sender.includes(mic) || !sender.includes(' frame-size=20')) throw cutError('the test microphone and the Opus frame size');
      sender = sender.replace(mic, `${mic} samplesperbuffer=480`).replace(' frame-size=20', ' frame-size=10');
      break;
    }
    case 'direct':
      sender = senderFrom(nodePlan.direct);
      break;
    case 'before': {
      sender = senderFrom(nodePlan.direct);
      const au = ' ! video/x-h264,alignment=au';
      if (!ourReceiver.includes(au)) throw cutError('the alignment=au caps of the receiver');
      receiver = ourReceiver.replace(au, '');
      break;
    }
    case 'rtp': {
      const video = senderFrom(nodePlan.direct)
        .split('  ')
        .find((p) => p.startsWith(appsrcCamera));
      const muxPad = video ? / ! mux\.(sink_\d+)?$/.exec(video) : null;
      if (!video || !muxPad) throw cutError('the send video branch');
      sender = `${video.slice(0, muxPad.index)} ! rtph264pay config-interval=-1 pt=96 aggregate-mode=zero-latency mtu=1400 ! udpsink host=127.0.0.1 port=${port} sync=false async=false`;
      const rx = vPiece.slice(vPiece.indexOf('video/x-h264,alignment=au'), -display.length);
      receiver = `udpsrc address=127.0.0.1 port=${port} caps="application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)H264,payload=(int)96" ! rtph264depay ! ${rx}${appsink}`;
      break;
    }
  }
  const base = variant === 'ours-node' ? nodePlan : sendPlan;
  return { sender, receiver, port, senderPlan: { ...base, pipeline: sender, direct: sender } };
}

// ---- the measurement (bench process) ---------------------------------------------------

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

type FromChild =
  | { type: 'ready' }
  | { type: 'started' }
  | { type: 'sent'; times: number[] }
  | { type: 'received'; frames: Array<[number, number]>; decoded: number; invalid: number }
  | { type: 'error'; message: string }
  | { type: 'warning'; message: string };

type ToChild =
  | { type: 'config'; role: 'sender'; plan: SessionPlan; frames: number; startDelayMs: number }
  | { type: 'config'; role: 'receiver'; launch: string }
  | { type: 'stop' };

const CHILD_PATH = fileURLToPath(import.meta.url);

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

// ---- child processes ---------------------------------------------------------------------

function toParent(m: FromChild): void {
  if (process.connected) process.send?.(m);
}

async function runSender(cfg: Extract<ToChild, { role: 'sender' }>): Promise<void> {
  const { MediaWorker } = await import('../../gst-pipelines/worker/media-worker.js');
  type Handler = (m: ToWorker) => void;
  let handler: Handler | null = null;
  const worker = new MediaWorker({
    send: (msg) => {
      if (msg.type === 'error') toParent({ type: 'error', message: `${msg.source}: ${msg.message}` });
      else if (msg.type === 'warning') toParent({ type: 'warning', message: `${msg.source}: ${msg.message}` });
    },
    onMessage: (cb) => {
      handler = cb;
    },
    exit: (code) => setImmediate(() => process.exit(code)),
  });
  worker.attach();
  process.on('message', (m: ToChild) => {
    if (m.type === 'stop') worker.stop();
  });
  const start = handler as Handler | null;
  if (!start) throw new Error('MediaWorker.attach() did not subscribe to messages');
  start({ type: 'start', plan: cfg.plan, secrets: {}, statsPeriodMs: 2000, stallMs: 1e9 });
  // The worker keeps its pipeline private; the bench needs the appsrc standing in for the camera.
  const pipeline = (worker as unknown as { pipeline: GstPipeline | null }).pipeline;
  const cam = pipeline?.findChild(CAMERA_SRC);
  if (!cam?.push) throw new Error(`no appsrc '${CAMERA_SRC}' in the running pipeline (MediaWorker.pipeline renamed?)`);
  const push = cam.push.bind(cam);
  toParent({ type: 'started' });
  const maker = new FrameMaker();
  await sleep(cfg.startDelayMs);
  const times: number[] = new Array<number>(cfg.frames).fill(-1);
  const period = 1000 / FPS;
  const t0 = monoMs();
  for (let k = 0; k < cfg.frames; k++) {
    const due = t0 + k * period;
    const wait = due - monoMs();
    if (wait > 1) await sleep(wait);
    const frame = maker.frame(k + 1);
    times[k] = monoMs();
    push(frame);
  }
  toParent({ type: 'sent', times });
}

async function runReceiver(cfg: Extract<ToChild, { role: 'receiver' }>): Promise<void> {
  const { loadGst } = await import('../../gst-pipelines/worker/gst.js');
  const gst = loadGst();
  const p = new gst.Pipeline(cfg.launch);
  const frames: Array<[number, number]> = [];
  let decoded = 0;
  let invalid = 0;
  let stopping = false;
  p.pollBus((msg) => {
    if (msg.type === 'error') toParent({ type: 'error', message: `${msg._src_element_name ?? 'pipeline'}: ${String(msg.message ?? '')}` });
  });
  p.play();
  const sink = p.findChild(LATENCY_SINK);
  if (!sink?.pull) throw new Error(`no appsink '${LATENCY_SINK}' in the receiver`);
  const pull = sink.pull.bind(sink);
  const onFrame = (buf: Buffer | null): void => {
    const t = monoMs();
    if (stopping) return;
    if (!buf) {
      setTimeout(() => pull(onFrame), 20);
      return;
    }
    pull(onFrame); // the next pull is pending while this frame is read
    decoded++;
    const c = buf.length >= WIDTH * HEIGHT ? readCounter(buf) : null;
    if (c === null) invalid++;
    else frames.push([c, t]);
  };
  pull(onFrame);
  process.on('message', (m: ToChild) => {
    if (m.type !== 'stop' || stopping) return;
    stopping = true;
    toParent({ type: 'received', frames, decoded, invalid });
    setTimeout(() => {
      try {
        p.stop();
      } finally {
        process.exit(0);
      }
    }, 50);
  });
  toParent({ type: 'ready' });
}

if (process.argv[1] === CHILD_PATH && process.argv[2] === '--child') {
  process.on('disconnect', () => process.exit(0));
  process.once('message', (m: ToChild) => {
    if (m.type !== 'config') return;
    const job = m.role === 'sender' ? runSender(m) : runReceiver(m);
    job.catch((e: unknown) => {
      toParent({ type: 'error', message: (e as Error).message });
      setTimeout(() => process.exit(1), 100);
    });
  });
}
