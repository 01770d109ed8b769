/**
 * The first step of planning a session: the numbers (clamped to what a box can do,
 * defaults for what the spec leaves out), the codecs, and the checks that refuse what
 * cannot be planned, each naming the input at fault.
 */
import { pickDecoder, pickEncoder } from './codecs.js';
import { PlanError } from './errors.js';
import { parseSrtUrl, uncarriable } from './launch.js';
import type { Capabilities, MediaJoinSpec, MediaSettings, SessionPlan, VideoDecoderKind, VideoEncoderKind } from '../types.js';

/** Audio sample rate of the whole audio path (webrtcdsp wants 8/16/32/48 kHz). */
export const AUDIO_RATE = 48000;
/** Raw audio caps of the whole audio path (mic and speaker: AEC compares them sample by sample). */
export const AUDIO_CAPS = `audio/x-raw,format=S16LE,rate=${AUDIO_RATE},channels=1`;

export const DEFAULT_VIDEO = { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 } as const;
export const DEFAULT_AUDIO_KBPS = 32;
export const DEFAULT_SRT_LATENCY_MS = 200;

/** Elements no session can do without. */
const REQUIRED = ['srtsink', 'srtsrc', 'mpegtsmux', 'tsdemux', 'h264parse', 'opusenc', 'opusdec'];

export const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
export const even = (v: number): number => Math.max(2, Math.round(v / 2) * 2);

/** What a session is made of, before any launch string. */
export interface SessionChoice {
  video: SessionPlan['video'];
  audioKbps: number;
  latencyMs: number;
  /** `srt://host:port` of each direction, checked. */
  sendUri: string;
  recvUri: string;
  encoder: VideoEncoderKind;
  decoder: VideoDecoderKind;
  /** Echo cancellation asked for and available. */
  aec: boolean;
  /** PNG snapshots of the sent and displayed picture (settings.snapshotDir). */
  snap: boolean;
  /** Our native framer, when the build made it and the probe found it (native/plugin.ts). */
  framer: boolean;
}

function videoParams(spec: MediaJoinSpec): SessionPlan['video'] {
  const v = spec.send.video ?? {};
  return {
    width: even(clamp(v.width ?? DEFAULT_VIDEO.width, 160, 1920)),
    height: even(clamp(v.height ?? DEFAULT_VIDEO.height, 90, 1080)),
    fps: Math.round(clamp(v.fps ?? DEFAULT_VIDEO.fps, 1, 60)),
    bitrateKbps: Math.round(clamp(v.bitrateKbps ?? DEFAULT_VIDEO.bitrateKbps, 64, 8000)),
  };
}

function srtUri(url: string, path: string): string {
  try {
    const { host, port } = parseSrtUrl(url);
    return `srt://${host.includes(':') ? `[${host}]` : host}:${port}`;
  } catch (e) {
    throw new PlanError('spec', path, (e as Error).message);
  }
}

/** libsrt's longest stream id (SRTO_STREAMID), in bytes: a longer one fails at every connect. */
export const MAX_STREAM_ID_BYTES = 512;

/** A stream id goes into the launch string quoted (launch.ts `q`); refused here when it cannot work at all. */
function checkStreamId(id: string | undefined, path: string): void {
  if (id === undefined) return;
  const why = uncarriable(id);
  if (why) throw new PlanError('spec', path, why);
  const bytes = new TextEncoder().encode(id).length;
  if (bytes > MAX_STREAM_ID_BYTES) throw new PlanError('spec', path, `is ${bytes} bytes in UTF-8; SRT carries at most ${MAX_STREAM_ID_BYTES}`);
}

/**
 * Throws a PlanError: the spec's (`bad_request`) for a bad URL or stream id, then the box's
 * (`failed`) for a missing codec or required element.
 */
export function chooseSession(spec: MediaJoinSpec, caps: Capabilities, settings: MediaSettings): SessionChoice {
  const video = videoParams(spec);
  const audioKbps = Math.round(clamp(spec.send.audio?.bitrateKbps ?? DEFAULT_AUDIO_KBPS, 6, 128));
  const latencyMs = Math.round(clamp(spec.srt?.latencyMs ?? DEFAULT_SRT_LATENCY_MS, 20, 8000));
  const sendUri = srtUri(spec.send.url, 'send.url');
  const recvUri = srtUri(spec.receive.url, 'receive.url');
  checkStreamId(spec.send.streamId, 'send.streamId');
  checkStreamId(spec.receive.streamId, 'receive.streamId');
  // Never in a launch string (the worker sets it as a property), but through the same C string.
  const secret = spec.srt?.passphrase === undefined ? null : uncarriable(spec.srt.passphrase);
  if (secret) throw new PlanError('spec', 'srt.passphrase', secret);
  const encoder = pickEncoder(caps);
  const decoder = pickDecoder(caps);
  const cannot = (why: string): PlanError => new PlanError('box', 'capabilities.elements', `this box cannot run a session: ${why}`);
  if (!encoder) throw cannot('no H.264 encoder in the GStreamer registry');
  if (!decoder) throw cannot('no H.264 decoder in the GStreamer registry');
  for (const e of REQUIRED) if (caps.elements[e] === false) throw cannot(`required element ${e} is missing`);
  return {
    video,
    audioKbps,
    latencyMs,
    sendUri,
    recvUri,
    encoder,
    decoder,
    aec: settings.aec && caps.elements.webrtcdsp !== false && caps.elements.webrtcechoprobe !== false,
    snap: settings.snapshotDir !== undefined,
    framer: caps.elements.epframer === true,
  };
}
