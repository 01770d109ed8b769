/**
 * The send half of a session: camera → rung filter → encoder → video muxer, mic → echo
 * canceller → Opus → audio muxer, and how the two muxers' outputs reach srtsink (inside
 * GStreamer through epframer, or through the worker's FIFOs and appsrc).
 */
import { encoderChain } from './codecs.js';
import { AUDIO_CAPS, type SessionChoice } from './choose.js';
import { ELEMENT_NAMES } from './names.js';
import { branches, chain, q } from './launch.js';
import type { MediaSettings } from '../types.js';

/** Camera → H.264 into the video muxer (`mux`, PID 65). `rungCaps`: the top rung's caps. */
export function videoSendBranch(c: SessionChoice, camera: string, rungCaps: string): string {
  const n = ELEMENT_NAMES;
  return chain(
    camera,
    c.snap ? 'tee name=sendtee' : null,
    'queue max-size-buffers=2 leaky=downstream',
    // Link adaptation acts here while playing (worker/pipeline-adaptation.ts): a rung is one
    // caps string (size + frame rate) on vcaps — the binding sets caps properties from strings;
    // videorate/videoscale pass frames untouched at the top rung. The audio-only gate
    // comes after them: closed before videorate, videorate let every frame through for
    // seconds after it reopened (30 fps at a 15 fps rung, twice the bitrate; seen here).
    `videorate name=${n.videoRate} drop-only=true`,
    'videoscale',
    // caps-change-mode=delayed: a frame already on its way in the old rung's caps passes while
    // videoscale renegotiates; `immediate` (the default) refused it, not-negotiated, and the
    // worker restarted (seen once in adapt.test.ts, leaving audio-only for 360p15).
    `capsfilter name=${n.videoCaps} caps=${q(rungCaps)} caps-change-mode=delayed`,
    `valve name=${n.videoGate} drop=false`,
    encoderChain(c.encoder, c.video),
    `h264parse name=${n.videoParser} config-interval=-1`,
    'queue max-size-time=500000000',
    // Fixed PIDs (video 65, audio 66): the two muxers of a session must never collide.
    'mux.sink_65',
  );
}

/** Mic → (echo canceller) → mute → level → Opus; the caller links it to a muxer's sink_66. */
export function audioSendBranch(c: SessionChoice, mic: string, settings: MediaSettings): string {
  const n = ELEMENT_NAMES;
  return chain(
    mic,
    'audioconvert',
    'audioresample',
    AUDIO_CAPS,
    c.aec
      ? `webrtcdsp probe=${n.echoProbe} echo-cancel=true noise-suppression=true gain-control=true`
      : null,
    `volume name=${n.micVolume} mute=${settings.micMuted}`,
    `level name=${n.micLevel} interval=1000000000`,
    'audioconvert',
    `opusenc audio-type=voice bitrate=${c.audioKbps * 1000} inband-fec=true frame-size=20`,
    'queue max-size-time=500000000',
  );
}

/**
 * The whole session: both send branches, their muxers and srtsink, then `receive`.
 * Audio in its own muxer (PID 66): in one muxer every video frame waited for the Opus
 * packet covering its timestamp (~20 ms). The two outputs become one stream of whole
 * SRT messages, flushed at every video frame end: inside GStreamer by our epframer
 * element where it is built (native/plugin.ts), else in the worker (mpegts/merger.ts +
 * mpegts/packetizer.ts) between fdsinks it reads and an appsrc it feeds. `direct` is
 * what gst-launch-1.0 can run (benchmarks): with epframer, the pipeline itself.
 */
export function sessionPipelines(framer: boolean, videoSend: string, audioSend: string, srtSink: string, receive: string): { pipeline: string; direct: string } {
  const n = ELEMENT_NAMES;
  const pipeline = framer
    ? branches(
        videoSend,
        chain(audioSend, `${n.audioMux}.sink_66`),
        chain('mpegtsmux name=mux alignment=0', `${n.framer}.video`),
        chain(`mpegtsmux name=${n.audioMux} alignment=0`, `${n.framer}.audio`),
        chain(`epframer name=${n.framer}`, srtSink),
        receive,
      )
    : branches(
        videoSend,
        chain(audioSend, `${n.audioMux}.sink_66`),
        // fdsinks: the worker points their fds at pipes it reads (worker/send-path.ts).
        chain('mpegtsmux name=mux alignment=0', `fdsink name=${n.tsOut} sync=false async=false`),
        chain(`mpegtsmux name=${n.audioMux} alignment=0`, `fdsink name=${n.tsAudioOut} sync=false async=false`),
        chain(`appsrc name=${n.tsIn} is-live=true format=time do-timestamp=true caps=video/mpegts,systemstream=true,packetsize=188`, srtSink),
        receive,
      );
  const direct = framer ? pipeline : branches(videoSend, chain(audioSend, 'mux.sink_66'), chain('mpegtsmux name=mux alignment=7', srtSink), receive);
  return { pipeline, direct };
}
