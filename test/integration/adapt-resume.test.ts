/**
 * A worker restarted while the box was audio-only resumes audio-only, and the hub hears
 * it before video comes back (helpers/audio-resume.ts has the why). Checked for both
 * framings. Asserted: the order of events; how soon the hub hears it (≤ 2.5 s) is
 * measured by `npm run bench -- --only faults` (audioResumeHeardMs, audioResumeHeardMsNode).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Resources } from './helpers/media.js';
import { audioOnlyResume } from './helpers/audio-resume.js';

const res = new Resources();
afterEach(() => res.release());

describe('a worker restarted while audio-only', () => {
  for (const framing of ['epframer', 'node'] as const) {
    it(`${framing}: starts audio-only, and the hub hears the box before video comes back, with nothing lost once heard`, async () => {
      const r = await audioOnlyResume(res, framing);
      if (framing === 'epframer') expect(r.caps.elements.epframer, 'epframer built (npm run build)').toBe(true);
      const why = `box rungs ${r.boxRungs.join(' ')}; video back at ${r.videoBackMs} ms; hub: ${r.summary}`;
      expect(r.boxRungs[0], why).toBe('audio-only');
      // Heard before the box stepped up out of audio-only (if it did while watched).
      expect(r.heardMs, why).toBeLessThan(r.videoBackMs ?? Number.POSITIVE_INFINITY);
      expect(r.missingMsAfterHeard, why).toEqual(r.missingMsAfterHeard.map(() => 0));
    }, 60_000);
  }
});
