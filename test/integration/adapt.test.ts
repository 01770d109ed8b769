/**
 * Link adaptation end to end (issue #4): the real box worker sends 720p30 at 1500 kbit/s
 * to a LocalHub through a user-space bottleneck (helpers/bottleneck.ts) whose capacity
 * collapses and recovers, with adaptation on and, as the anchor, off.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Resources } from './helpers/media.js';
import { describeRun, firstDownAfter, framesPct, maxGap, recoveredAfter, runAdaptScenario } from './helpers/adapt-run.js';

const res = new Resources();
afterEach(() => res.release());

describe('link adaptation through a bottleneck', () => {
  it('4 Mbit/s → 600 kbit/s at 20 s → 4 Mbit/s at 60 s: adapts within 3 s, ≥ 95 % of frames, no freeze > 1 s, audio unbroken, full quality within 20 s', async () => {
    const run = await runAdaptScenario({ name: 'adapt on, 600 kbit/s', steps: [{ atS: 0, kbps: 4000 }, { atS: 20, kbps: 600 }, { atS: 60, kbps: 4000 }], durationS: 85, adapt: true }, res);
    const table = describeRun(run);
    console.info(table);
    const adaptS = firstDownAfter(run, 20);
    expect(adaptS, table).not.toBeNull();
    expect(adaptS!, table).toBeLessThanOrEqual(3);
    const from = 20 + Math.ceil(adaptS!);
    expect(framesPct(run, from, from + 35), table).toBeGreaterThanOrEqual(95);
    expect(maxGap(run, from, from + 35, 'video')!, table).toBeLessThanOrEqual(1000);
    expect(maxGap(run, 1, 85, 'audio')!, table).toBeLessThanOrEqual(400);
    const rec = recoveredAfter(run, 60, '720p30', 1500);
    expect(rec, table).not.toBeNull();
    expect(rec!, table).toBeLessThanOrEqual(20);
    // No oscillation once back: no step after full quality.
    expect(run.changes.filter((c) => c.tS > 60 + rec! + 0.1), table).toEqual([]);
    expect(run.restarts, table).toEqual([]);
  }, 150_000);
});
