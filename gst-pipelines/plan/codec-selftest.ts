/**
 * The selftest's codec checks as launch strings (device/selftest.ts runs them with
 * gst-launch-1.0 in a child process): 30 test frames through the encoder this box would
 * use, and through encoder and decoder, at 640x360@30 and 800 kbit/s.
 */
import { decoderChain, encoderChain, pickDecoder, pickEncoder } from './codecs.js';
import { chain } from './launch.js';
import type { Capabilities, VideoDecoderKind, VideoEncoderKind } from '../types.js';

/** Small and short: the check must not disturb the box for long (it runs between meetings). */
const CODEC_TEST = { width: 640, height: 360, fps: 30, bitrateKbps: 800 } as const;
const TEST_FRAMES = 30;

export interface CodecSelftestPlan {
  encoder: VideoEncoderKind | null;
  decoder: VideoDecoderKind | null;
  /** Test frames → encoder → fakesink; null without an encoder. */
  encode: string | null;
  /** Test frames → encoder → decoder → fakesink; null without an encoder or a decoder. */
  decodeLoop: string | null;
}

export function planCodecSelftest(caps: Capabilities): CodecSelftestPlan {
  const encoder = pickEncoder(caps);
  const decoder = pickDecoder(caps);
  const source = chain(`videotestsrc num-buffers=${TEST_FRAMES}`, `video/x-raw,width=${CODEC_TEST.width},height=${CODEC_TEST.height},framerate=${CODEC_TEST.fps}/1`);
  const encoded = encoder ? chain(source, encoderChain(encoder, CODEC_TEST), 'h264parse') : null;
  return {
    encoder,
    decoder,
    encode: encoded ? chain(encoded, 'fakesink') : null,
    decodeLoop: encoded && decoder ? chain(encoded, decoderChain(decoder), 'fakesink') : null,
  };
}
