/**
 * epframer's timing, which its integration tests (native-framer*.test.ts) leave to the
 * bench: they check what the element made of the readings and buffers it got, this
 * measures when it got them. Real srtsink to a real SRT peer (srtsrc), under
 * gst-launch-1.0, with dist/native's plugin.
 * - Link watch at the worker's settings (watch-ms = WATCH_SAMPLE_MS, collapseTrigger's
 *   span and thinning) with the queue trigger firing on every reading once it can
 *   (trigger-queue-us=0, rtt-floor-us=1), so every reading is posted: the spacing of
 *   consecutive readings (a reading comes with the first buffer after watch-ms; the
 *   worker thins them to ≥ 90 ms, fastCheck was tuned on 100 ms) and the first
 *   trigger's delay after the first reading with ACKs (200 ms at exact 50 ms readings:
 *   `a` is then the thinned chain's reading 200 ms back). `runs` senders, pooled.
 * - Quiet link: 100 kbit/s (libsrt ACKs nearly every packet) with all of the worker's
 *   thresholds for `quietSeconds`: triggers counted (each one wakes the worker's JS).
 * - pad-kbps=400 on a live audio-only run of 5 s: the null messages ÷ 400 kbit/s × 5 s.
 */
import { spawn } from 'node:child_process';
import { collapseTrigger, WATCH_SAMPLE_MS } from '../../gst-pipelines/adapt/collapse.js';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';
import { SRT_MESSAGE_SIZE } from '../../gst-pipelines/mpegts/packetizer.js';
import { withNativePlugins } from '../../gst-pipelines/native/plugin.js';
import type { AdaptConfig } from '../../gst-pipelines/types.js';
import { endChild, launchArgv, MeasurementError, median, monoMs, percentile, round1, sleep, track, udpPortBound, waitFor } from './machine.js';

export interface FramerResult {
  watchMs: number;
  /** Consecutive readings of the link watch, ms apart: p50, p95 and max, all runs pooled. */
  watchSpacingP50Ms: number;
  watchSpacingP95Ms: number;
  watchSpacingMaxMs: number;
  /** Spacings measured. */
  watchIntervals: number;
  /** First reading with ACKs → first trigger (median of the runs), ms, and each run's. */
  firstTriggerMs: number;
  firstTriggerRunsMs: number[];
  quietSeconds: number;
  quietReadings: number;
  quietTriggers: number;
  /** pad-kbps's null messages over a 5 s live run, % of 400 kbit/s × 5 s. */
  padRatePct: number;
}

const SRT_LATENCY_MS = 40;
const QUIET_KBPS = 100;
type Reading = { atMs: number; packets: number; acks: number };

function gstLaunch(description: string): { stdout: () => string; exited: () => boolean; stop: () => Promise<string> } {
  const child = track(spawn('gst-launch-1.0', ['-e', '-m', ...launchArgv(description)], { env: withNativePlugins(process.env), stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  let exited = false;
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-1000)));
  child.once('exit', () => (exited = true));
  return {
    stdout: () => out,
    exited: () => exited,
    stop: async () => {
      await endChild(child, 'SIGINT', 10_000);
      if (!/epframer-stats/.test(out)) throw new MeasurementError(`gst-launch-1.0 gave no epframer-stats: ${err.trim() || out.slice(-500)}`);
      return out;
    },
  };
}

const stat = (out: string, name: string): number => Number(new RegExp(`${name}=\\(\\w+\\)(\\d+)`).exec(out)?.[1] ?? NaN);

/** Each `epframer-link` window's readings (time, packets, ACKs), oldest first. */
function windows(out: string): Reading[][] {
  return [...out.matchAll(/epframer-link, reason=\(string\)\w+, window=\(string\)"((?:[^"\\]|\\.)*)"/g)].map((m) =>
    m[1]!.replace(/\\(.)/g, '$1').split(';').map((r) => {
      const f = r.split(' ').map(Number);
      return { atMs: f[0]!, packets: f[2]!, acks: f[4]! };
    }),
  );
}

/** Live 320×240 video at `kbps` + audio → epframer `props` → srtsink, to srtsrc, for `seconds` once data flows. */
async function srtRun(props: string, kbps: number, seconds: number): Promise<string> {
  const port = await freePort();
  const peer = gstLaunch(`srtsrc uri=srt://:${port}?mode=listener latency=${SRT_LATENCY_MS} ! fakesink`);
  try {
    await waitFor(`srtsrc listening on ${port}`, () => udpPortBound(port) || peer.exited(), 15_000);
    const send = gstLaunch(
      `videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=${kbps} ! h264parse ! mux.sink_65 mpegtsmux name=mux alignment=0 ! f.video ` +
        `audiotestsrc is-live=true ! opusenc ! amux.sink_66 mpegtsmux name=amux alignment=0 ! f.audio ` +
        `epframer name=f ${props} ! srtsink uri=srt://127.0.0.1:${port}?mode=caller latency=${SRT_LATENCY_MS} sync=false`,
    );
    await waitFor('the sender PLAYING', () => send.stdout().includes('Setting pipeline to PLAYING') || send.exited(), 15_000);
    await sleep(seconds * 1000);
    return await send.stop();
  } finally {
    await peer.stop().catch(() => undefined);
  }
}

export async function measureFramer(o: { runs: number; seconds: number; quietSeconds: number; log: (l: string) => void }): Promise<FramerResult> {
  const t = collapseTrigger({ srtLatencyMs: SRT_LATENCY_MS } as AdaptConfig);
  const watch = `watch-ms=${WATCH_SAMPLE_MS} trigger-span-ms=${t.spanMs} trigger-thin-ms=${t.thinMs}`;
  const spacing: number[] = [];
  const firsts: number[] = [];
  for (let i = 0; i < o.runs; i++) {
    o.log(`media: epframer link watch, run ${i + 1}/${o.runs}…`);
    const out = await srtRun(`${watch} trigger-queue-us=0 rtt-floor-us=1 trigger-ack-rate=0`, QUIET_KBPS, o.seconds);
    const posted = windows(out);
    const first = posted[0];
    if (!first) throw new MeasurementError('the link watch posted no window (is dist/native built?)');
    const acked = first.find((r) => r.acks > 0)!;
    firsts.push(first.at(-1)!.atMs - acked.atMs);
    // Every reading once the trigger can fire is a window's newest: their spacing.
    const ends = [...new Set(posted.map((w) => w.at(-1)!.atMs))].sort((a, b) => a - b);
    for (let k = 1; k < ends.length; k++) spacing.push(ends[k]! - ends[k - 1]!);
  }
  o.log(`media: epframer quiet link, ${o.quietSeconds} s…`);
  const quiet = await srtRun(
    `${watch} trigger-queue-us=${t.queueUs} trigger-min-rate=${t.minSendRate} trigger-ack-rate=${t.maxAckRate} trigger-ack-permille=${t.ackPermille}`,
    QUIET_KBPS,
    o.quietSeconds,
  );
  o.log('media: epframer pad-kbps=400, 5 s…');
  const pad = gstLaunch(
    'audiotestsrc is-live=true num-buffers=250 samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 ! mpegtsmux alignment=0 ! f.audio epframer name=f pad-kbps=400 ! fakesink sync=false',
  );
  const t0 = monoMs();
  await waitFor('the pad-kbps run to end', () => pad.exited(), 30_000);
  const padOut = await pad.stop();
  o.log(`media: pad-kbps run took ${Math.round(monoMs() - t0)} ms`);
  spacing.sort((a, b) => a - b);
  return {
    watchMs: WATCH_SAMPLE_MS,
    watchSpacingP50Ms: percentile(spacing, 50)!,
    watchSpacingP95Ms: percentile(spacing, 95)!,
    watchSpacingMaxMs: spacing.at(-1)!,
    watchIntervals: spacing.length,
    firstTriggerMs: median(firsts)!,
    firstTriggerRunsMs: firsts,
    quietSeconds: o.quietSeconds,
    quietReadings: stat(quiet, 'link-readings'),
    quietTriggers: stat(quiet, 'link-triggers'),
    padRatePct: round1((stat(padOut, 'pad-messages') * SRT_MESSAGE_SIZE * 8 * 100) / (400 * 5000)),
  };
}
