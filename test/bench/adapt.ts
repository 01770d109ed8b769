/**
 * Link adaptation benchmark (issue #4): the same scenarios as
 * test/integration/adapt.test.ts — the real box worker sending 720p30 at 1500 kbit/s to a
 * LocalHub through a user-space bottleneck (60 KB drop-tail queue, SRT latency 200 ms):
 *
 * - `on600`:  4 Mbit/s → 600 kbit/s at 20 s → 4 Mbit/s at 60 s, adaptation on;
 * - `off600`: the same collapse with adaptation off (the anchor), 45 s;
 * - `on100`:  4 Mbit/s → 100 kbit/s at 10 s → 4 Mbit/s at 40 s, adaptation on.
 *
 * Fields (seconds are from the capacity change):
 * - adaptSeconds: until the box's wire rate (srtsink, retransmissions included, as its
 *   500 ms stats report it) fits the link, two reports in a row;
 * - firstStepSeconds: until the controller's first step down;
 * - framesPctAfterCollapse: hub frames ÷ box frames over the 35 s from adaptSeconds + 2 s
 *   (once the queue built before the fit has drained);
 * - maxFreezeMsAfterAdapt: longest gap between frames at the hub in that window;
 * - recoverSeconds: back at 720p30 and 1500 kbit/s after the 4 Mbit/s recovery;
 * - framesPctFixedBitrate: the anchor's hub ÷ box frames over the same window;
 * - audioLostMsAt600 / audioLostMsAt100 / audioLostMsFixedBitrate: Opus audio the hub
 *   never got whole over the whole run (its TS audit: PTS holes + broken frames, and a
 *   silence at the end that no later frame closed), ms — "audio unbroken" is 0;
 * - audioLateMsAt600 / audioLateMsAt100: the longest wait between two Opus frames'
 *   arrivals at the hub around the collapse (audio delayed behind the queue, not lost);
 * - audioBreakAtCollapseMs: the longest pause between the hub's 100 ms level reports
 *   around the 600 kbit/s collapse (what a listener hears: late audio included);
 * - audioOnlySeconds / videoBackSeconds: the 100 kbit/s run.
 * - dropsEndSeconds: until the bottleneck stops dropping (its queue no longer overflows);
 * - queueDrainedSeconds: until the box's SRT RTT is back under 50 ms (the queue built at the
 *   collapse has drained);
 * - audioBreakAfterDrainMs: the longest pause between the hub's level reports once the
 *   queue has drained and the audio is clean again, to the end of the run (audio on time);
 * - changesAfterRecovery: steps the controller took once back at 720p30/1500 (oscillation).
 *
 * The goals of these fields (adaptSection below) are the timing goals the integration
 * test (test/integration/adapt.test.ts) leaves to the bench: it asserts only what happened.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Resources } from '../integration/helpers/media.js';
import { audioCleanFrom, drainedAfter, firstDownAfter, fitAfter, framesPct, hubAudio, maxGap, noDropsFrom, recoveredAfter, runAdaptScenario, type AdaptRun, type AdaptScenario } from '../integration/helpers/adapt-run.js';
import { AUDIO_ONLY } from '../../gst-pipelines/index.js';
import { MeasurementError } from './machine.js';
import { svgTimelines } from './plot.js';
import { fmt, goal, part, sectionTable, type BenchSection } from './report.js';

export interface AdaptBenchResult {
  adaptSeconds: number | null;
  firstStepSeconds: number | null;
  framesPctAfterCollapse: number | null;
  maxFreezeMsAfterAdapt: number | null;
  recoverSeconds: number | null;
  framesPctFixedBitrate: number | null;
  audioBreakAtCollapseMs: number | null;
  audioLostMsAt600: number;
  audioLostMsAt100: number;
  audioLostMsFixedBitrate: number;
  audioLateMsAt600: number | null;
  audioLateMsAt100: number | null;
  audioUnbrokenAfterSeconds: number | null;
  audioOnlySeconds: number | null;
  videoBackSeconds: number | null;
  dropsEndSeconds: number | null;
  queueDrainedSeconds: number | null;
  audioBreakAfterDrainMs: number | null;
  changesAfterRecovery: number | null;
  stepsDownAt600: number;
  plot: string | null;
  runs: Record<string, { scenario: AdaptScenario; timeline: AdaptRun['timeline']; sends: AdaptRun['sends']; changes: AdaptRun['changes']; restarts: AdaptRun['restarts'] }>;
}

export const SCENARIOS = {
  on600: { name: 'adaptation on: 4 Mbit/s → 600 kbit/s at 20 s → 4 Mbit/s at 60 s', steps: [{ atS: 0, kbps: 4000 }, { atS: 20, kbps: 600 }, { atS: 60, kbps: 4000 }], durationS: 85, adapt: true },
  off600: { name: 'adaptation off (anchor): 4 Mbit/s → 600 kbit/s at 20 s', steps: [{ atS: 0, kbps: 4000 }, { atS: 20, kbps: 600 }], durationS: 60, adapt: false },
  on100: { name: 'adaptation on: 4 Mbit/s → 100 kbit/s at 10 s → 4 Mbit/s at 40 s', steps: [{ atS: 0, kbps: 4000 }, { atS: 10, kbps: 100 }, { atS: 40, kbps: 4000 }], durationS: 60, adapt: true },
} satisfies Record<string, AdaptScenario>;

async function run(s: AdaptScenario, log: (l: string) => void): Promise<AdaptRun> {
  const res = new Resources();
  log(`adapt: ${s.name} (${s.durationS} s)…`);
  try {
    return await runAdaptScenario(s, res);
  } finally {
    await res.release();
  }
}

/**
 * Audio the hub did not get whole, ms: PTS holes + broken frames between received Opus
 * frames (exact, from the hub's audit), plus a silence at the end of the run that no
 * later frame closed (whole seconds whose reports counted no Opus frame).
 */
function lostMs(r: AdaptRun, fromS: number, toS: number): number {
  const a = hubAudio(r, fromS, toS);
  const reported = r.timeline.filter((p) => p.tS > fromS && p.tS <= toS && p.hubAudio !== null);
  let trailing = 0;
  for (let i = reported.length - 1; i >= 0 && reported[i]!.hubAudio!.frames === 0; i--) trailing++;
  return a.missingMs + trailing * 1000;
}

export async function measureAdapt(opts: { log: (l: string) => void; plotDir: string | null; date: string }): Promise<AdaptBenchResult> {
  const on600 = await run(SCENARIOS.on600, opts.log);
  const off600 = await run(SCENARIOS.off600, opts.log);
  const on100 = await run(SCENARIOS.on100, opts.log);
  if (on600.timeline.length < 80) throw new MeasurementError(`the 600 kbit/s run produced ${on600.timeline.length} s of timeline, expected 85`);

  const adaptS = fitAfter(on600, 20);
  const from = 20 + (adaptS ?? 3) + 2; // as in the test: once the queue's backlog has drained
  const audioClean = audioCleanFrom(on600, 20, 60);
  const toAudioOnly = on100.changes.find((c) => c.tS >= 10 && c.change.toRung === AUDIO_ONLY);
  const back = on100.changes.find((c) => c.tS >= 40 && c.change.fromRung === AUDIO_ONLY);
  const dropsEnd = noDropsFrom(on600, 20, 60);
  const drained = drainedAfter(on600, 20);
  const recovered = recoveredAfter(on600, 60, '720p30', 1500);
  let plot: string | null = null;
  if (opts.plotDir) {
    plot = path.join(opts.plotDir, `${opts.date}-adapt.svg`);
    // Created if missing: a run once lost three minutes of measurements to a missing directory.
    await mkdir(opts.plotDir, { recursive: true });
    await writeFile(
      plot,
      svgTimelines(
        [
          { title: SCENARIOS.on600.name, timeline: on600.timeline },
          { title: SCENARIOS.off600.name, timeline: off600.timeline },
          { title: SCENARIOS.on100.name, timeline: on100.timeline },
        ],
        `npm run bench -- --only adapt --plot-dir docs/bench · ${opts.date} · 720p30 x264 1500 kbit/s, 60 KB drop-tail bottleneck, SRT latency 200 ms`,
      ),
    );
  }
  const keep = (r: AdaptRun): AdaptBenchResult['runs'][string] => ({ scenario: r.scenario, timeline: r.timeline, sends: r.sends, changes: r.changes, restarts: r.restarts });
  return {
    adaptSeconds: adaptS,
    firstStepSeconds: firstDownAfter(on600, 20),
    framesPctAfterCollapse: adaptS === null ? null : framesPct(on600, from, from + 35),
    maxFreezeMsAfterAdapt: adaptS === null ? null : maxGap(on600, from, from + 35, 'video'),
    recoverSeconds: recovered,
    framesPctFixedBitrate: framesPct(off600, from, Math.min(60, from + 35)),
    audioBreakAtCollapseMs: maxGap(on600, 20, (audioClean ?? 30) + 1, 'audio'),
    audioLostMsAt600: lostMs(on600, 1, SCENARIOS.on600.durationS),
    audioLostMsAt100: lostMs(on100, 1, SCENARIOS.on100.durationS),
    audioLostMsFixedBitrate: lostMs(off600, 1, SCENARIOS.off600.durationS),
    audioLateMsAt600: hubAudio(on600, 19, 30).arrivalMaxGapMs,
    audioLateMsAt100: hubAudio(on100, 9, 40).arrivalMaxGapMs,
    audioUnbrokenAfterSeconds: audioClean === null ? null : audioClean - 20,
    audioOnlySeconds: toAudioOnly ? Math.round((toAudioOnly.tS - 10) * 10) / 10 : null,
    videoBackSeconds: back ? Math.round((back.tS - 40) * 10) / 10 : null,
    dropsEndSeconds: dropsEnd === null ? null : dropsEnd - 20,
    queueDrainedSeconds: drained === null ? null : drained - 20,
    audioBreakAfterDrainMs: drained === null || audioClean === null ? null : maxGap(on600, Math.max(drained, audioClean), SCENARIOS.on600.durationS, 'audio'),
    changesAfterRecovery: recovered === null ? null : on600.changes.filter((c) => c.tS > 60 + recovered + 0.1).length,
    stepsDownAt600: on600.changes.filter((c) => c.tS > (noDropsFrom(on600, 20, 60) ?? 25) && c.tS < 60 && c.change.direction === 'down').length,
    plot,
    runs: { on600: keep(on600), off600: keep(off600), on100: keep(on100) },
  };
}

export const adaptSection: BenchSection = {
  name: 'adapt',
  parts: ['all'],
  async run(ctx) {
    const unmeasured: Record<string, string> = {};
    const fields = ['adaptSeconds', 'framesPctAfterCollapse', 'maxFreezeMsAfterAdapt', 'recoverSeconds', 'framesPctFixedBitrate'];
    const date = new Date().toISOString().slice(0, 10);
    const r = await part('all', new Set(['all']), unmeasured, fields, (): Promise<AdaptBenchResult> => measureAdapt({ log: ctx.log, plotDir: ctx.options.plotDir, date }));
    const r1 = (v: number | null | undefined): number | null => (v === null || v === undefined ? null : Math.round(v * 10) / 10);
    const data = {
      adaptSeconds: r1(r?.adaptSeconds),
      framesPctAfterCollapse: r1(r?.framesPctAfterCollapse),
      maxFreezeMsAfterAdapt: r1(r?.maxFreezeMsAfterAdapt),
      recoverSeconds: r1(r?.recoverSeconds),
      framesPctFixedBitrate: r1(r?.framesPctFixedBitrate),
      firstStepSeconds: r1(r?.firstStepSeconds),
      audioLostMsAt600: r?.audioLostMsAt600 ?? null,
      audioLostMsAt100: r?.audioLostMsAt100 ?? null,
      audioLostMsFixedBitrate: r?.audioLostMsFixedBitrate ?? null,
      audioLateMsAt600: r1(r?.audioLateMsAt600),
      audioLateMsAt100: r1(r?.audioLateMsAt100),
      audioBreakAtCollapseMs: r1(r?.audioBreakAtCollapseMs),
      audioUnbrokenAfterSeconds: r1(r?.audioUnbrokenAfterSeconds),
      audioOnlySeconds: r1(r?.audioOnlySeconds),
      videoBackSeconds: r1(r?.videoBackSeconds),
      dropsEndSeconds: r1(r?.dropsEndSeconds),
      queueDrainedSeconds: r1(r?.queueDrainedSeconds),
      audioBreakAfterDrainMs: r1(r?.audioBreakAfterDrainMs),
      changesAfterRecovery: r?.changesAfterRecovery ?? null,
      stepsDownAt600: r?.stepsDownAt600 ?? null,
      plot: r?.plot ?? null,
      runs: r?.runs ?? {},
    };
    const goals = [
      goal('firstStepSeconds', '≤ 1 s', data.firstStepSeconds, (v) => v <= 1),
      goal('adaptSeconds', '≤ 3 s', data.adaptSeconds, (v) => v <= 3),
      goal('dropsEndSeconds', '≤ 5 s', data.dropsEndSeconds, (v) => v <= 5),
      goal('queueDrainedSeconds', '≤ 8 s', data.queueDrainedSeconds, (v) => v <= 8),
      goal('audioBreakAfterDrainMs', '≤ 400 ms', data.audioBreakAfterDrainMs, (v) => v <= 400),
      goal('framesPctAfterCollapse', '≥ 95 %', data.framesPctAfterCollapse, (v) => v >= 95),
      goal('maxFreezeMsAfterAdapt', '≤ 1000 ms', data.maxFreezeMsAfterAdapt, (v) => v <= 1000),
      goal('recoverSeconds', '≤ 20 s', data.recoverSeconds, (v) => v <= 20),
      goal('changesAfterRecovery', '0', data.changesAfterRecovery, (v) => v === 0),
      goal('audioOnlySeconds', '≤ 1 s', data.audioOnlySeconds, (v) => v <= 1),
      goal('videoBackSeconds', '≤ 10 s', data.videoBackSeconds, (v) => v <= 10),
      goal('audioLostMsAt600', '0 ms', data.audioLostMsAt600, (v) => v === 0),
      goal('audioLostMsAt100', '0 ms', data.audioLostMsAt100, (v) => v === 0),
    ];
    const { t, row, met } = sectionTable('adapt (720p30 1500 kbit/s through a 60 KB drop-tail bottleneck, SRT latency 200 ms)', goals, 44);
    row('600k collapse → wire rate fits the link', fmt(data.adaptSeconds, ' s'), met('adaptSeconds'));
    row('600k collapse → first step down', fmt(data.firstStepSeconds, ' s'), met('firstStepSeconds'));
    row('600k collapse → bottleneck stops dropping', fmt(data.dropsEndSeconds, ' s'), met('dropsEndSeconds'));
    row('600k collapse → queue drained (RTT < 50 ms)', fmt(data.queueDrainedSeconds, ' s'), met('queueDrainedSeconds'));
    row('frames at the hub, 35 s after adapting', fmt(data.framesPctAfterCollapse, ' %'), met('framesPctAfterCollapse'));
    row('longest freeze in those 35 s', fmt(data.maxFreezeMsAfterAdapt, ' ms'), met('maxFreezeMsAfterAdapt'));
    row('back at 720p30/1500 after 4 Mbit/s returns', fmt(data.recoverSeconds, ' s'), met('recoverSeconds'));
    row('steps after that (oscillation)', fmt(data.changesAfterRecovery), met('changesAfterRecovery'));
    row('anchor: frames at the hub, adaptation off', fmt(data.framesPctFixedBitrate, ' %'));
    row('audio lost at the hub, 600k run (Opus audit)', fmt(data.audioLostMsAt600, ' ms'), met('audioLostMsAt600'));
    row('audio lost at the hub, 100k run', fmt(data.audioLostMsAt100, ' ms'), met('audioLostMsAt100'));
    row('anchor: audio lost, adaptation off', fmt(data.audioLostMsFixedBitrate, ' ms'));
    row('600k: longest wait between Opus frames', fmt(data.audioLateMsAt600, ' ms'));
    row('100k: longest wait between Opus frames', fmt(data.audioLateMsAt100, ' ms'));
    row('600k: longest pause in hub level reports', fmt(data.audioBreakAtCollapseMs, ' ms'));
    row('600k: same, once drained, to the end', fmt(data.audioBreakAfterDrainMs, ' ms'), met('audioBreakAfterDrainMs'));
    row('100k collapse → audio-only', fmt(data.audioOnlySeconds, ' s'), met('audioOnlySeconds'));
    row('100k → 4 Mbit/s: video back', fmt(data.videoBackSeconds, ' s'), met('videoBackSeconds'));
    row('steps down at a steady 600 kbit/s (probes)', fmt(data.stepsDownAt600));
    if (data.plot) t.push(`  plot: ${data.plot}`);
    for (const [f, why] of Object.entries(unmeasured)) t.push(`  NOT MEASURED ${f}: ${why}`);
    return { data, unmeasured, skipped: [], goals, table: t };
  },
};
