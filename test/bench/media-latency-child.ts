/**
 * The latency bench's child processes (media-latency.ts forks this file): the sender runs
 * the box's send path in the production MediaWorker and pushes counter frames into the
 * appsrc standing in for the camera; the receiver decodes into an appsink and reads the
 * counters back. Both stamp frames with CLOCK_MONOTONIC.
 */
import { fileURLToPath } from 'node:url';
import type { GstPipeline } from '../../gst-pipelines/worker/gst.js';
import type { SessionPlan } from '../../gst-pipelines/types.js';
import type { ToWorker } from '../../gst-pipelines/worker/protocol.js';
import { monoMs, sleep } from './machine.js';
import { CAMERA_SRC, FPS, FrameMaker, HEIGHT, LATENCY_SINK, WIDTH, readCounter } from './media-latency-frames.js';

/** This file, as the parent forks it. */
export const CHILD_PATH = fileURLToPath(import.meta.url);

export type FromChild =
  | { type: 'ready' }
  | { type: 'started' }
  | { type: 'sent'; times: number[] }
  | { type: 'received'; frames: Array<[number, number]>; decoded: number; invalid: number }
  | { type: 'error'; message: string }
  | { type: 'warning'; message: string };

export type ToChild =
  | { type: 'config'; role: 'sender'; plan: SessionPlan; frames: number; startDelayMs: number }
  | { type: 'config'; role: 'receiver'; launch: string }
  | { type: 'stop' };

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
