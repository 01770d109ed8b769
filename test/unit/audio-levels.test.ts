/** The media worker's audio levels (gst-pipelines/worker/audio-levels.ts): the `level` parser and the gap between program-audio reports. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AudioLevels, parseLevelDb } from '../../gst-pipelines/worker/audio-levels.js';

describe('parseLevelDb', () => {
  it('the loudest channel in dBFS, one decimal; silence (−inf) and garbage are null', () => {
    expect(parseLevelDb('< -31.178265 >')).toBe(-31.2);
    expect(parseLevelDb('< -40.5, -12.04 >')).toBe(-12);
    expect(parseLevelDb('< -inf >')).toBeNull();
    expect(parseLevelDb(undefined)).toBeNull();
    expect(parseLevelDb('< 1.5e-3 >')).toBe(0);
  });
});

describe('AudioLevels', () => {
  afterEach(() => vi.useRealTimers());

  it('mic and speaker by element name; the longest gap between speaker reports, a gap still open counting, then the next interval', () => {
    vi.useFakeTimers({ now: 10_000 });
    const l = new AudioLevels();
    expect(l.take(10_000)).toEqual({ micDb: null, speakerDb: null, micBuffers: 0, speakerBuffers: 0, speakerMaxGapMs: null });
    l.onLevel('txlevel', '< -20 >');
    l.onLevel('rxlevel', '< -30 >');
    vi.setSystemTime(10_100);
    l.onLevel('rxlevel', '< -31 >');
    vi.setSystemTime(10_500);
    l.onLevel('rxlevel', '< -32 >');
    l.onLevel('somewhere-else', '< -1 >');
    expect(l.take(10_600)).toEqual({ micDb: -20, speakerDb: -32, micBuffers: 1, speakerBuffers: 3, speakerMaxGapMs: 400 });
    // Nothing since: the open gap is the interval's longest.
    expect(l.take(11_700)).toMatchObject({ speakerMaxGapMs: 1200, speakerBuffers: 3 });
  });
});
