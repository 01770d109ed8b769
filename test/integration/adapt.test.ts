/**
 * Link adaptation end to end (issue #4): the real box worker sends 720p30 at 1500 kbit/s
 * to a LocalHub through a user-space bottleneck (helpers/bottleneck.ts: 60 KB drop-tail
 * queue) whose capacity collapses and recovers, with adaptation on and, as the anchor, off.
 *
 * This file asserts what happened: the box fitted the narrow link while it lasted (so the
 * bottleneck stopped dropping), the hub kept receiving frames, the audio arrived in order
 * and lost nothing the link did not take, and the box climbed back when the link
 * returned. How fast —
 * first cut ≤ 1 s, fit ≤ 3 s, drops over ≤ 5 s, queue drained ≤ 8 s, ≥ 95 % of frames and
 * no freeze over 1 s, audio unbroken and on time, full quality ≤ 20 s after the link
 * returns, audio-only ≤ 1 s, video back ≤ 10 s — is `npm run bench -- --only adapt`'s job
 * (test/bench/adapt.ts: the same collapses, each from 4 Mbit/s in a run of its own, each
 * goal a field), on a machine the bench has to itself: here the deadlines are the
 * scenario's own length, and one run walks both collapses.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Resources } from './helpers/media.js';
import { describeRun, drainedAfter, fitAfter, framesPct, hubAudio, runAdaptScenario, type AdaptRun } from './helpers/adapt-run.js';

const res = new Resources();
afterEach(() => res.release());

/**
 * The hub loses no Opus frame the link did not take. A packet the bottleneck drops is one
 * SRT message, at most 7 TS packets, each at most one 20 ms Opus frame: 140 ms of audio
 * (SRT may still retransmit it in time). And on this shared machine a starved hub lets
 * SRT drop a few packets that arrive later than its 200 ms latency — recorded at load 11:
 * 80 ms of Opus lost with the bottleneck dropping nothing — so 200 ms more. How many
 * packets the link drops is the adaptation's speed (how soon it cuts; a loaded machine
 * cuts later, and recorded flapping on a 4 Mbit/s link under load) and the bench's goal:
 * 0 ms lost (audioLostMsAt600, audioLostMsAt100). A box that drops its own audio — when it
 * changes rung, in its framing — loses it with nothing dropped on the link, and fails here.
 */
const OPUS_MS_PER_DROPPED_PACKET = 7 * 20;
const SRT_LATE_DROP_ALLOWANCE_MS = 200;

/** "The hub kept receiving": at least this share of the frames the box sent (adaptation off: ~15 %; the bench's goal: 95 %). */
const MOST_FRAMES_PCT = 50;

/** The hub's audio over a run: it arrived (counts, not timing: a late frame still counts), in order, and whole but for what the link took. */
function expectAudioArrived(run: AdaptRun, table: string): void {
  const a = hubAudio(run, 1, run.scenario.durationS);
  const linkDrops = run.timeline.reduce((n, p) => n + p.relayDrops, 0);
  expect(a.reports, table).toBeGreaterThan(0.7 * run.scenario.durationS);
  expect(a.frames, table).toBeGreaterThan(0.65 * 50 * run.scenario.durationS);
  expect(a.ptsBackwards, table).toBe(0);
  expect(a.missingMs, `${table}\nlink drops: ${linkDrops}`).toBeLessThanOrEqual(linkDrops * OPUS_MS_PER_DROPPED_PACKET + SRT_LATE_DROP_ALLOWANCE_MS);
}

describe('link adaptation through a bottleneck', () => {
  // One run walks both collapses (the bench runs them apart, each from 4 Mbit/s): 600 kbit/s
  // for 20 s, then 100 kbit/s for 15 s, then the link back. One box start and one recovery
  // instead of two: 80 s of the suite's time.
  it('4 Mbit/s → 600 kbit/s at 8 s → 100 kbit/s at 28 s → 4 Mbit/s at 43 s: fits the 600 link, audio-only at 100, the audio arrives, video and rate back after', async () => {
    const run = await runAdaptScenario({ name: 'adapt on, 600 then 100 kbit/s', steps: [{ atS: 0, kbps: 4000 }, { atS: 8, kbps: 600 }, { atS: 28, kbps: 100 }, { atS: 43, kbps: 4000 }], durationS: 62, adapt: true }, res);
    const table = describeRun(run);
    console.info(table);
    // Adapted to 600: the wire rate within the link while it was narrow (with 4 s left of
    // it; a box at its full 1500 kbit/s never fits 600), and the queue the collapse built
    // drained before the next step. (When it cut, and whether it then held still — on a
    // starved machine the controller can take a false alarm — are the bench's:
    // adaptSeconds, dropsEndSeconds, queueDrainedSeconds.)
    const fitS = fitAfter(run, 8);
    expect(fitS, table).not.toBeNull();
    expect(8 + fitS!, table).toBeLessThan(24);
    expect(drainedAfter(run, 8), table).not.toBeNull();
    expect(drainedAfter(run, 8)!, table).toBeLessThan(28);
    // The hub kept receiving: most frames sent once the box fitted arrived while the link
    // was at 600 — at least half (adaptation off: ~15 %; the bench's goal is 95 %). The
    // window starts once the queue built before the fit has drained (+2 s): its backlog
    // would otherwise count frames sent before the window.
    expect(framesPct(run, 8 + fitS! + 2, 28), table).toBeGreaterThanOrEqual(MOST_FRAMES_PCT);
    // Audio-only while the link was at 100 kbit/s: the last change before it came back.
    const lastBefore43 = [...run.changes].reverse().find((c) => c.tS <= 43);
    expect(lastBefore43?.change.toRung, table).toBe('audio-only');
    // The video already in the 60 KB queue (4.8 s at 100 kbit/s) when the box went
    // audio-only delays the audio behind it: late, not lost (the bench measures how late).
    expectAudioArrived(run, table);
    // Video back once the link returned, with room left in the run to see it at the hub,
    // and the rate climbing past where the 600 kbit/s link had held it.
    const back = run.changes.find((c) => c.tS >= 43 && c.change.fromRung === 'audio-only');
    expect(back, table).toBeDefined();
    expect(back!.tS, table).toBeLessThan(57);
    expect(framesPct(run, back!.tS + 2, 62), table).toBeGreaterThanOrEqual(MOST_FRAMES_PCT);
    const targetAt28 = run.timeline.find((p) => p.tS === 28)?.targetKbps ?? Number.NaN;
    const highestAfter = Math.max(...run.changes.filter((c) => c.tS > 43 && c.change.direction === 'up').map((c) => c.change.toKbps));
    expect(highestAfter, table).toBeGreaterThan(targetAt28);
    expect(run.restarts, table).toEqual([]);
  }, 150_000);

  it('the anchor: the same 600 kbit/s collapse with adaptation off loses most frames', async () => {
    const run = await runAdaptScenario({ name: 'adapt off, 600 kbit/s', steps: [{ atS: 0, kbps: 4000 }, { atS: 5, kbps: 600 }], durationS: 20, adapt: false }, res);
    const table = describeRun(run);
    console.info(table);
    expect(run.changes, table).toEqual([]);
    expect(run.timeline.every((p) => p.rung === null || p.rung === '720p30'), table).toBe(true);
    // Issue #4 measured 11.9 % with bare GStreamer; what matters here: far below the 95 %.
    expect(framesPct(run, 8, 20), table).toBeLessThan(60);
    // And the audio with it: the same audit that finds nothing missing above finds seconds
    // of it missing here — as PTS holes, or as Opus frames that never came (20 ms each).
    const audio = hubAudio(run, 5, 20);
    expect(audio.missingMs + Math.max(0, 15_000 - audio.frames * 20), table).toBeGreaterThan(1000);
  }, 100_000);
});
