/**
 * Link adaptation end to end (issue #4): the real box worker sends 720p30 at 1500 kbit/s
 * to a LocalHub through a user-space bottleneck (helpers/bottleneck.ts: 60 KB drop-tail
 * queue) whose capacity collapses and recovers, with adaptation on and, as the anchor, off.
 * `npm run bench -- --only adapt` runs the same scenarios and records the numbers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Resources } from './helpers/media.js';
import { audioCleanFrom, describeRun, firstDownAfter, fitAfter, framesPct, hubAudio, maxGap, noDropsFrom, recoveredAfter, runAdaptScenario } from './helpers/adapt-run.js';

const res = new Resources();
afterEach(() => res.release());

describe('link adaptation through a bottleneck', () => {
  it('4 Mbit/s → 600 kbit/s at 20 s → 4 Mbit/s at 60 s: fits the link within 3 s (wire rate), ≥ 95 % of frames and no freeze over 1 s for 35 s, audio unbroken throughout, full quality within 20 s, no oscillation', async () => {
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
    // Audio unbroken throughout: the hub's audit finds no Opus frame missing or broken
    // over the whole run — the collapse check cut the rate before the bottleneck's queue
    // filled. (Frames queued behind the collapse arrive late, not lost: the queue's delay
    // grows by ~0.3 s, which the hub's level reports show as one longer wait.)
    const audio = hubAudio(run, 1, 85);
    expect(audio.reports, table).toBeGreaterThan(60);
    expect(audio.frames, table).toBeGreaterThan(80 * 40);
    expect({ missingMs: audio.missingMs, broken: audio.broken, ccErrors: audio.ccErrors }, table).toEqual({ missingMs: 0, broken: 0, ccErrors: 0 });
    const clean = noDropsFrom(run, 20, 60);
    expect(clean, table).not.toBeNull();
    expect(clean! - 20, table).toBeLessThanOrEqual(5);
    // And on time again: once the queue built at the collapse has drained (RTT back under
    // the 50 ms budget), the hub's level reports (every 100 ms) never pause over 400 ms.
    const drained = run.timeline.find((p) => p.tS > 20 && p.rttMs !== null && p.rttMs < 50)?.tS;
    expect(drained, table).toBeDefined();
    expect(drained! - 20, table).toBeLessThanOrEqual(8);
    expect(maxGap(run, Math.max(drained!, audioCleanFrom(run, 20, 60)!), 85, 'audio')!, table).toBeLessThanOrEqual(400);
    const rec = recoveredAfter(run, 60, '720p30', 1500);
    expect(rec, table).not.toBeNull();
    expect(rec!, table).toBeLessThanOrEqual(20);
    expect(run.changes.filter((c) => c.tS > 60 + rec! + 0.1), table).toEqual([]);
    expect(run.restarts, table).toEqual([]);
  }, 150_000);

  it('4 Mbit/s → 100 kbit/s at 10 s → 4 Mbit/s at 40 s: audio-only within 1 s, audio at the hub unbroken, video back within 10 s', async () => {
    const run = await runAdaptScenario({ name: 'adapt on, 100 kbit/s', steps: [{ atS: 0, kbps: 4000 }, { atS: 10, kbps: 100 }, { atS: 40, kbps: 4000 }], durationS: 60, adapt: true }, res);
    const table = describeRun(run);
    console.info(table);
    const audioOnly = run.changes.find((c) => c.tS >= 10 && c.change.toRung === 'audio-only');
    expect(audioOnly, table).toBeDefined();
    expect(audioOnly!.tS - 10, table).toBeLessThanOrEqual(1);
    // Audio unbroken: no Opus frame missing or broken at the hub over the whole run. The
    // video already in the 60 KB queue (4.8 s at 100 kbit/s) when the box went audio-only
    // delays the audio behind it — the hub's level reports pause for up to ~2 s while that
    // delay builds, then the same audio plays, late, until the queue drains.
    const audio = hubAudio(run, 1, 60);
    expect(audio.reports, table).toBeGreaterThan(40);
    expect(audio.frames, table).toBeGreaterThan(55 * 40);
    expect({ missingMs: audio.missingMs, broken: audio.broken, ccErrors: audio.ccErrors }, table).toEqual({ missingMs: 0, broken: 0, ccErrors: 0 });
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
    // And the audio with it: the same audit that finds nothing missing above finds seconds
    // of it missing here — as PTS holes, or as Opus frames that never came (20 ms each).
    const audio = hubAudio(run, 10, 45);
    expect(audio.missingMs + Math.max(0, 35_000 - audio.frames * 20), table).toBeGreaterThan(1000);
  }, 100_000);
});
