/**
 * Link adaptation end to end (issue #4): the real box worker sends 720p30 at 1500 kbit/s
 * to a LocalHub through a user-space bottleneck (helpers/bottleneck.ts: 60 KB drop-tail
 * queue) whose capacity collapses and recovers, with adaptation on and, as the anchor, off.
 * `npm run bench -- --only adapt` runs the same scenarios and records the numbers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Resources } from './helpers/media.js';
import { describeRun, firstDownAfter, fitAfter, framesPct, maxGap, recoveredAfter, runAdaptScenario } from './helpers/adapt-run.js';

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
    const from = 20 + fitS!;
    expect(framesPct(run, from, from + 35), table).toBeGreaterThanOrEqual(95);
    expect(maxGap(run, from, from + 35, 'video')!, table).toBeLessThanOrEqual(1000);
    // Audio: level reports every 100 ms at the hub never stop for more than 400 ms once
    // the box fits the link (the overload before that is what issue #4 measures).
    expect(maxGap(run, from + 2, 85, 'audio')!, table).toBeLessThanOrEqual(400);
    const rec = recoveredAfter(run, 60, '720p30', 1500);
    expect(rec, table).not.toBeNull();
    expect(rec!, table).toBeLessThanOrEqual(20);
    expect(run.changes.filter((c) => c.tS > 60 + rec! + 0.1), table).toEqual([]);
    expect(run.restarts, table).toEqual([]);
  }, 150_000);
});
