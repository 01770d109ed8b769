/**
 * Run with `node --expose-gc binding-reads.mjs PORT` (a child of binding-patch.test.ts):
 * loads the project's gstreamer-superficial, reads a connected srtsink's `stats` N times
 * and sets/reads a GstStructure property, and prints one JSON line with what it saw.
 * A peer (SRT listener on PORT) must be running.
 */
/* global console, process, setTimeout */
import { createRequire } from 'node:module';

const N = 20_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const gst = createRequire(import.meta.url)('gstreamer-superficial');
const rss = () => {
  globalThis.gc?.();
  globalThis.gc?.();
  return process.memoryUsage().rss;
};

const p = new gst.Pipeline(`audiotestsrc is-live=true ! opusenc ! mpegtsmux alignment=7 ! srtsink name=s uri="srt://127.0.0.1:${process.argv[2]}?mode=caller" wait-for-connection=false`);
p.play();
await sleep(1500);
const s = p.findChild('s');
for (let i = 0; i < 500; i++) void s.stats; // warm-up: allocator pools
const before = rss();
let connected = 0;
for (let i = 0; i < N; i++) if (String(s.stats).includes('bytes-sent=')) connected++;
const after = rss();

// v4l2src's extra-controls is the same GstV4l2Object property as v4l2h264enc's; an
// element that is not played opens no device.
const v = new gst.Pipeline('v4l2src name=v ! fakesink').findChild('v');
const structure = {};
try {
  v['extra-controls'] = 'controls,video_bitrate=800000,h264_i_frame_period=60';
  structure.readBack = String(v['extra-controls']);
} catch (e) {
  structure.setError = String(e);
}
try {
  v['extra-controls'] = 'not a , valid = structure ,,';
  structure.invalid = 'accepted';
} catch (e) {
  structure.invalid = e instanceof TypeError ? 'TypeError' : String(e);
  structure.keptAfterInvalid = String(v['extra-controls']);
}
p.stop();
console.log(JSON.stringify({ freed: gst.propertyReadsFreed === true, reads: N, connected, bytesPerRead: (after - before) / N, structure }));
process.exit(0);
