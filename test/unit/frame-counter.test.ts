/** The media worker's frame counters (gst-pipelines/worker/frame-counter.ts): the rates a stats report takes. */
import { describe, expect, it } from 'vitest';
import { countArrival, countFrames, newCounter, takeRate } from '../../gst-pipelines/worker/frame-counter.js';

describe('takeRate (a stats report from a frame counter)', () => {
  it('fps and kbps since the last mark, the longest gap between frames, then moves the mark', () => {
    const c = newCounter(0);
    for (let t = 100; t <= 2000; t += 100) countArrival(c, t, 1250);
    countArrival(c, 2500, 1250); // one 500 ms gap
    expect(takeRate(c, 2500)).toEqual({ fps: 8.4, kbps: 84, maxGapMs: 500 });
    // The next report starts from here: nothing new → 0 fps, and the gap still open counts.
    expect(takeRate(c, 3500)).toEqual({ fps: 0, kbps: 0, maxGapMs: 1000 });
    countFrames(c, 3600, 3);
    expect(takeRate(c, 4000)).toEqual({ fps: 6, kbps: 0, maxGapMs: 1100 });
  });

  it('no frame yet: no gap; no time since the mark: no rates', () => {
    const c = newCounter(1000);
    expect(takeRate(c, 2000)).toEqual({ fps: 0, kbps: 0, maxGapMs: null });
    expect(takeRate(c, 2000)).toEqual({ fps: null, kbps: null, maxGapMs: null });
  });
});
