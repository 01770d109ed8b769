/**
 * H.264 codecs: which encoder and decoder a box uses (hardware first), their launch
 * sections, and how the encoder takes a new bitrate while playing.
 */
import { ELEMENT_NAMES } from './names.js';
import { chain, h264Level } from './launch.js';
import type { Capabilities, SessionPlan, VideoDecoderKind, VideoEncoderKind } from '../types.js';

export const ENCODER_PREFERENCE: readonly VideoEncoderKind[] = ['v4l2h264enc', 'vah264enc', 'x264enc', 'openh264enc'];
export const DECODER_PREFERENCE: readonly VideoDecoderKind[] = ['v4l2h264dec', 'vah264dec', 'avdec_h264', 'openh264dec'];

export function pickEncoder(caps: Capabilities): VideoEncoderKind | null {
  return ENCODER_PREFERENCE.find((e) => caps.elements[e]) ?? null;
}

export function pickDecoder(caps: Capabilities): VideoDecoderKind | null {
  return DECODER_PREFERENCE.find((e) => caps.elements[e]) ?? null;
}

/** Placeholder for bits per second in an encoder's control structure. */
export const BPS = '{bps}';

/** v4l2h264enc's `extra-controls` (GstStructure), bitrate left as BPS. */
function v4l2Controls(gop: number): string {
  return `controls,repeat_sequence_header=1,video_bitrate=${BPS},h264_i_frame_period=${gop}`;
}

const gopFor = (v: SessionPlan['video']): number => Math.max(1, Math.round(v.fps * 2)); // a keyframe at least every ~2 s

/** Encoder section: raw video in (any format) → H.264 byte-stream out, named `venc`. */
export function encoderChain(kind: VideoEncoderKind, v: SessionPlan['video']): string {
  const gop = gopFor(v);
  const name = ELEMENT_NAMES.encoder;
  switch (kind) {
    case 'v4l2h264enc':
      return chain(
        'videoconvert',
        'video/x-raw,format=I420',
        `v4l2h264enc name=${name} extra-controls="${v4l2Controls(gop).replace(BPS, String(v.bitrateKbps * 1000))}"`,
        `video/x-h264,level=(string)${h264Level(v.width, v.height, v.fps)}`,
      );
    case 'vah264enc':
      return chain(
        'videoconvert',
        'video/x-raw,format=NV12',
        `vah264enc name=${name} rate-control=cbr bitrate=${v.bitrateKbps} key-int-max=${gop} b-frames=0`,
        'video/x-h264,profile=(string)main',
      );
    case 'x264enc':
      // I420 forced: letting x264 negotiate Y444 doubles the CPU (measured, issue #2).
      return chain(
        'videoconvert',
        'video/x-raw,format=I420',
        // vbv-buf-capacity 200 ms (default 600): a bitrate set while playing (link adaptation)
        // settles in ~0.15 s down / 0.3 s up instead of 0.5 / 1.5 s (measured).
        `x264enc name=${name} tune=zerolatency speed-preset=ultrafast bitrate=${v.bitrateKbps} vbv-buf-capacity=200 key-int-max=${gop} bframes=0`,
        'video/x-h264,profile=(string)constrained-baseline',
      );
    case 'openh264enc':
      return chain(
        'videoconvert',
        'video/x-raw,format=I420',
        // qp-min: with the default 0, openh264 sent 3.8–4.0 Mbit/s for a 1.5 Mbit/s target (measured).
        `openh264enc name=${name} bitrate=${v.bitrateKbps * 1000} gop-size=${gop} complexity=low rate-control=bitrate qp-min=10`,
      );
  }
}

export function decoderChain(kind: VideoDecoderKind): string {
  switch (kind) {
    case 'v4l2h264dec':
      return 'v4l2h264dec ! videoconvert';
    case 'vah264dec':
      return 'vah264dec ! videoconvert';
    case 'avdec_h264':
      return 'avdec_h264 ! videoconvert';
    case 'openh264dec':
      return 'openh264dec ! videoconvert';
  }
}

/**
 * The encoder property that takes a bitrate while playing, through this binding (JS
 * numbers arrive as floats; whole kbit/s values are exact). v4l2h264enc keeps its bitrate
 * in the `extra-controls` structure: set whole, from a string, which only the patched
 * binding can do (scripts/patch-binding.mjs; gstv4l2object applies new extra-controls to
 * an open device at once). With the stock binding the worker skips it, and a Pi 4
 * adapts by rung (size, frame rate) and audio-only alone.
 */
export function runtimeBitrate(kind: VideoEncoderKind, v: SessionPlan['video']): SessionPlan['adapt']['bitrate'] {
  switch (kind) {
    case 'x264enc':
    case 'vah264enc':
      return { element: ELEMENT_NAMES.encoder, property: 'bitrate', perKbps: 1 };
    case 'openh264enc':
      return { element: ELEMENT_NAMES.encoder, property: 'bitrate', perKbps: 1000 };
    case 'v4l2h264enc':
      return { element: ELEMENT_NAMES.encoder, property: 'extra-controls', perKbps: 1000, structure: v4l2Controls(gopFor(v)) };
  }
}
