/**
 * The plugins a warm worker loads before it is needed, so a join pays only for its own
 * pipeline: the first pipeline naming x264, libav, srt, webrtcdsp… took 61–172 ms to
 * build, the next 7–15 ms (measured).
 */
import type { GstBinding } from './gst.js';

/**
 * Elements whose plugins a warm worker loads in advance (missing ones are skipped). Not
 * srtsink/srtsrc: creating one starts libsrt, whose garbage-collector thread then wakes
 * every second in the idle warm worker for the whole meeting (0.02 CPU-s per 20 s on the
 * benchmark machine, as much as all of its other threads), and the srt plugin costs the
 * session's first pipeline only ~2 ms to load (measured: 1.7–2.0 ms).
 */
export const PRELOAD_ELEMENTS = [
  'videotestsrc', 'videoconvert', 'videoscale', 'videorate', 'textoverlay', 'timeoverlay', 'clockoverlay', 'valve', 'queue', 'tee',
  'x264enc', 'h264parse', 'mpegtsmux', 'fdsink', 'appsrc', 'tsdemux', 'avdec_h264', 'appsink', 'fakesink', 'pngenc',
  'audiotestsrc', 'audioconvert', 'audioresample', 'webrtcdsp', 'webrtcechoprobe', 'level', 'volume', 'opusenc', 'opusdec',
];

/**
 * Builds (never plays) a pipeline of every PRELOAD_ELEMENTS element, or one per element
 * when one is not on this box. The pipelines die with the process like every pipeline here.
 */
export function preloadPlugins(gst: GstBinding): void {
  try {
    new gst.Pipeline(PRELOAD_ELEMENTS.join(' '));
  } catch {
    for (const e of PRELOAD_ELEMENTS) {
      try {
        new gst.Pipeline(e);
      } catch {
        // not on this box: the plan will not use it either
      }
    }
  }
}
