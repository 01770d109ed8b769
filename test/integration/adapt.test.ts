/**
 * Link adaptation end to end (issue #4): the real box worker sends 720p30 at 1500 kbit/s
 * to a LocalHub through a user-space bottleneck (helpers/bottleneck.ts: 60 KB drop-tail
 * queue) whose capacity collapses and recovers, with adaptation on and, as the anchor, off.
 * `npm run bench -- --only adapt` runs the same scenarios and records the numbers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Resources } from './helpers/media.js';
import { audioCleanFrom, describeRun, firstDownAfter, fitAfter, framesPct, maxGap, noDropsFrom, recoveredAfter, runAdaptScenario } from './helpers/adapt-run.js';

const res = new Resources();
afterEach(() => res.release());

describe('link adaptation through a bottleneck', () => {
  it('4 Mbit/s → 600 kbit/s at 20 s → 4 Mbit/s at 60 s: fits the link within 3 s (wire rate), ≥ 95 % of frames and no freeze over 1 s for 35 s, audio unbroken once fitted, full quality within 20 s, no oscillation', async () => {
    const run = await runAdaptScenario({ name: 'adapt on, 600 kbit/s', steps: [{ atS: 0, kbps: 4000 }, { atS: 20, kbps: 600 }, { atS: 60, kbps: 4000 }], durationS: 85, adapt: true }, res);
    const table = describeRun(run);
    console.info(table);
    expect(firstDownAfter(run, 20), table).not.toBeNull();
    expect(firstDownAfter(run, 20)!, table).toBeLessThanOrEqual(1);
    const fitS = fitAfter(run, 20);
    expect(fitS, table).not.toBeNull();
    expect(fitS!, table).toBeLessThanOrEqual(3);
    // The 35 s window starts once the queue built before the fit has drained (+2 s): its
    // backlog would otherwise count frames sent before the window (over 100 %).
    const from = 20 + fitS! + 2;
    expect(framesPct(run, from, from + 35), table).toBeGreaterThanOrEqual(95);
    expect(maxGap(run, from, from + 35, 'video')!, table).toBeLessThanOrEqual(1000);
    // Audio: the hub's level reports (every 100 ms) never stop for more than 400 ms for
    // audio sent once the bottleneck stopped dropping — the overload before that (queue
    // full, ~2 s) is what no sender can undo; docs/adapt.md shows it.
    const clean = noDropsFrom(run, 20, 60);
    expect(clean, table).not.toBeNull();
    expect(clean! - 20, table).toBeLessThanOrEqual(5);
    expect(maxGap(run, audioCleanFrom(run, 20, 60)!, 85, 'audio')!, table).toBeLessThanOrEqual(400);
    const rec = recoveredAfter(run, 60, '720p30', 1500);
    expect(rec, table).not.toBeNull();
    expect(rec!, table).toBeLessThanOrEqual(20);
    expect(run.changes.filter((c) => c.tS > 60 + rec! + 0.1), table).toEqual([]);
    expect(run.restarts, table).toEqual([]);
  }, 150_000);

  it('4 Mbit/s → 100 kbit/s at 10 s → 4 Mbit/s at 40 s: audio-only, audio at the hub unbroken once the queue drained, video back within 10 s', async () => {
    const run = await runAdaptScenario({ name: 'adapt on, 100 kbit/s', steps: [{ atS: 0, kbps: 4000 }, { atS: 10, kbps: 100 }, { atS: 40, kbps: 4000 }], durationS: 60, adapt: true }, res);
    const table = describeRun(run);
    console.info(table);
    const audioOnly = run.changes.find((c) => c.tS >= 10 && c.change.toRung === 'audio-only');
    expect(audioOnly, table).toBeDefined();
    expect(audioOnly!.tS - 10, table).toBeLessThanOrEqual(5);
    // A 60 KB queue is 4.8 s at 100 kbit/s: it holds the video sent before the collapse
    // and drops audio until it has room again; from then on audio is unbroken (late by
    // the queue, which drains at the rate audio leaves free).
    const clean = noDropsFrom(run, 10, 40);
    expect(clean, table).not.toBeNull();
    expect(clean! - 10, table).toBeLessThanOrEqual(15);
    // Judged while the link stays at 100 kbit/s. Audio-only travels in 7-packet messages
    // (~140 ms of audio each), and when the 4.6 s standing delay collapses (the queue
    // drains, or the link jumps back) SRT re-times the backlog: single gaps of 483 and
    // 509 ms were seen in ~16 runs (docs/adapt.md), hence 600 ms here, 400 elsewhere.
    expect(maxGap(run, audioCleanFrom(run, 10, 40)!, 40, 'audio')!, table).toBeLessThanOrEqual(600);
    const back = run.changes.find((c) => c.tS >= 40 && c.change.fromRung === 'audio-only');
    expect(back, table).toBeDefined();
    expect(back!.tS - 40, table).toBeLessThanOrEqual(10);
    expect(run.timeline.filter((p) => p.tS > back!.tS + 2).every((p) => p.hubFrames > 0), table).toBe(true);
    expect(run.restarts, table).toEqual([]);
  }, 120_000);

  it('the anchor: the same 600 kbit/s collapse with adaptation off loses most frames', async () => {
    const run = await runAdaptScenario({ name: 'adapt off, 600 kbit/s', steps: [{ atS: 0, kbps: 4000 }, { atS: 10, kbps: 600 }], durationS: 45, adapt: false }, res);
    const table = describeRun(run);
    console.info(table);
    expect(run.changes, table).toEqual([]);
    expect(run.timeline.every((p) => p.rung === null || p.rung === '720p30'), table).toBe(true);
    // Issue #4 measured 11.9 % with bare GStreamer; what matters here: far below the 95 %.
    expect(framesPct(run, 13, 45), table).toBeLessThan(60);
  }, 100_000);
});
