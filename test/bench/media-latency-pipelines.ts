/**
 * The latency bench's variants (media-latency.ts has what each one is): the sender and
 * receiver pipelines of each, cut out of planSession()'s output so the bench follows the
 * plan — when the plan changes shape so that the cut no longer applies, the bench says so.
 */
import { pickEndpoints } from '../../gst-pipelines/plan/endpoints.js';
import { ELEMENT_NAMES } from '../../gst-pipelines/plan/names.js';
import { planSession } from '../../gst-pipelines/plan/session.js';
import type { Capabilities, MediaJoinSpec, MediaSettings, SessionPlan } from '../../gst-pipelines/types.js';
import { MeasurementError } from './machine.js';
import { BITRATE_KBPS, CAMERA_SRC, FPS, HEIGHT, LATENCY_SINK, SRT_LATENCY_MS, WIDTH } from './media-latency-frames.js';

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
