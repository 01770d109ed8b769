import { describe, expect, it } from 'vitest';
import { boxOutcome, cumulativeCount, decideWave, otaKey, parseWaves, planWaves, startAction, type BoxView } from '../../device/fleet/index.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `box-${String(i).padStart(4, '0')}`);

describe('wave planning', () => {
  it('1,10,50,100 over 200 boxes: 2, 18, 80, 100 — disjoint, in id order, every box once', () => {
    const shuffled = ids(200).reverse();
    const plan = planWaves(shuffled, [1, 10, 50, 100]);
    expect(plan.map((w) => [w.wave, w.pct, w.boxes.length])).toEqual([
      [1, 1, 2],
      [2, 10, 18],
      [3, 50, 80],
      [4, 100, 100],
    ]);
    expect(plan.flatMap((w) => w.boxes)).toEqual(ids(200));
    expect(plan[0]?.boxes).toEqual(['box-0000', 'box-0001']);
  });

  it('1,10,50,100 over 3 boxes: 1, none, 1, 1 (ceil of 3 %, 30 %, 150 %, 300 % of a box)', () => {
    const plan = planWaves(['c-box', 'a-box', 'b-box'], [1, 10, 50, 100]);
    expect(plan.map((w) => w.boxes)).toEqual([['a-box'], [], ['b-box'], ['c-box']]);
  });

  it('a last wave under 100 % leaves the rest untouched; duplicates count once; no boxes, no waves with boxes', () => {
    expect(planWaves(ids(10), [10, 50]).map((w) => w.boxes.length)).toEqual([1, 4]);
    expect(planWaves(['aaa', 'aaa', 'bbb'], [100])[0]?.boxes).toEqual(['aaa', 'bbb']);
    expect(planWaves([], [1, 100]).map((w) => w.boxes)).toEqual([[], []]);
  });

  it('whole percentages are exact (no 7.000000000000001 → 8)', () => {
    expect(cumulativeCount(7, 100)).toBe(7);
    expect(cumulativeCount(10, 200)).toBe(20);
    expect(cumulativeCount(0.5, 20000)).toBe(100);
    expect(cumulativeCount(33, 10)).toBe(4);
    expect(cumulativeCount(100, 3)).toBe(3);
  });

  it('--waves: rising percentages in (0, 100]', () => {
    expect(parseWaves('1,10,50,100')).toEqual({ ok: true, waves: [1, 10, 50, 100] });
    expect(parseWaves(' 5 , 100')).toEqual({ ok: true, waves: [5, 100] });
    expect(parseWaves('0.5,100')).toEqual({ ok: true, waves: [0.5, 100] });
    for (const bad of ['', '0,100', '10,5', '10,10', '101', '-1,5', 'a,b', '1e2', '50,,100']) expect(parseWaves(bad).ok, bad).toBe(false);
  });
});

describe('the halt decision', () => {
  it('halts when the failure rate is strictly over the limit', () => {
    expect(decideWave(2, 1, 10)).toMatchObject({ failurePct: 50, halt: true });
    expect(decideWave(18, 1, 10).halt).toBe(false);
    expect(decideWave(100, 10, 10)).toMatchObject({ failurePct: 10, halt: false });
    expect(decideWave(100, 11, 10).halt).toBe(true);
    expect(decideWave(5, 0, 0).halt).toBe(false);
    expect(decideWave(5, 1, 0).halt).toBe(true);
    expect(decideWave(0, 0, 10)).toMatchObject({ failurePct: 0, halt: false });
    expect(decideWave(3, 3, 100).halt).toBe(false);
  });
});

const box = (over: Partial<BoxView> = {}): BoxView => ({
  id: 'box-a',
  name: null,
  group: 'g1',
  online: true,
  statusVersion: '1.2.0',
  state: 'idle',
  stateVersion: '1.2.0',
  meetingId: null,
  ota: null,
  faults: [],
  stateSeq: 1,
  statusSeq: 1,
  ...over,
});
const ota = (phase: string, version: string | null, extra: { code?: string; message?: string } = {}): BoxView['ota'] => ({
  phase,
  version,
  progress: null,
  from: '1.2.0',
  code: extra.code ?? null,
  message: extra.message ?? null,
});

describe('a box and the update', () => {
  it('starts: done when it runs the target, watch when an update to the target is running, else send', () => {
    expect(startAction(box({ statusVersion: '1.3.0' }), '1.3.0')).toBe('done');
    expect(startAction(box({ ota: ota('committed', '1.3.0') }), '1.3.0')).toBe('done');
    expect(startAction(box({ ota: ota('downloading', '1.3.0') }), '1.3.0')).toBe('watch');
    expect(startAction(box({ ota: ota('rolled_back', '1.3.0') }), '1.3.0')).toBe('send');
    expect(startAction(box({ ota: ota('committed', '1.2.0') }), '1.3.0')).toBe('send');
    expect(startAction(box(), '1.3.0')).toBe('send');
  });

  it('commits with the target version only', () => {
    const sent = { seq: 1, otaKey: null };
    expect(boxOutcome(box({ ota: ota('committed', '1.3.0') }), '1.3.0', sent)).toEqual({ done: 'committed' });
    expect(boxOutcome(box({ ota: ota('committed', '1.2.0') }), '1.3.0', sent)).toEqual({ done: false });
    expect(boxOutcome(box({ ota: ota('committed', null), statusVersion: '1.3.0' }), '1.3.0', sent)).toEqual({ done: 'committed' });
    expect(boxOutcome(box({ ota: ota('trying', '1.3.0'), statusVersion: '1.3.0' }), '1.3.0', sent)).toEqual({ done: false });
    expect(boxOutcome(box(), '1.3.0', sent)).toEqual({ done: false });
  });

  it('fails on rolled_back / failed / refused reported after the command, not on the one retained before', () => {
    const before = box({ ota: ota('rolled_back', '1.3.0', { code: 'self_test', message: 'encoder' }), stateSeq: 4 });
    const sent = { seq: before.stateSeq, otaKey: otaKey(before) };
    expect(boxOutcome(before, '1.3.0', sent)).toEqual({ done: false });
    // The same retained report published again (a fault changed): still the old failure.
    expect(boxOutcome({ ...before, stateSeq: 5 }, '1.3.0', sent)).toEqual({ done: false });
    const now = box({ ota: ota('failed', '1.3.0', { code: 'sha256_mismatch', message: 'bundle hash' }), stateSeq: 7 });
    expect(boxOutcome(now, '1.3.0', sent)).toEqual({ done: 'failed', why: 'phase failed, code sha256_mismatch, message bundle hash' });
    expect(boxOutcome(box({ ota: ota('refused', null, { code: 'downgrade' }), stateSeq: 7 }), '1.3.0', sent)).toMatchObject({ done: 'failed' });
    // A failure of another version is not this rollout's.
    expect(boxOutcome(box({ ota: ota('failed', '1.2.5'), stateSeq: 7 }), '1.3.0', sent)).toEqual({ done: false });
  });
});
