/**
 * The pure decisions of an update: the agent's next step from the facts on disk, the
 * launcher's choice of version (with its crash-loop and deadline rollbacks), and the new
 * version's commit. Plain objects, no I/O.
 */
import { describe, expect, it } from 'vitest';
import { OTA_STEPS, decideCommit, decideLaunch, decodeReleaseState, initialState, nextOtaStep, type OtaFacts, type OtaJob, type ReleaseState, type Trying } from '../../ota/index.js';

const job = (over: Partial<OtaJob> = {}): OtaJob => ({ manifestUrl: 'https://hub/m.json', when: 'idle', force: false, commandId: 'c-1', ended: null, ...over });
const none: OtaFacts = { manifestSaved: false, manifestVerified: false, bundleComplete: false, bundleVerified: false, staged: false, inMeeting: false };

describe('nextOtaStep', () => {
  it('walks the steps in order as the facts on disk come true, and every step is reachable', () => {
    const seen: string[] = [];
    let f = { ...none };
    const order: Array<keyof OtaFacts> = ['manifestSaved', 'manifestVerified', 'bundleComplete', 'bundleVerified', 'staged'];
    for (const k of order) {
      seen.push(nextOtaStep(job(), f).step!);
      f = { ...f, [k]: true };
    }
    seen.push(nextOtaStep(job(), { ...f, inMeeting: true }).step!);
    seen.push(nextOtaStep(job(), f).step!);
    expect(seen).toEqual([...OTA_STEPS]);
  });

  it('a meeting holds the switch unless the update was asked for now with force', () => {
    const ready = { ...none, manifestSaved: true, manifestVerified: true, bundleComplete: true, bundleVerified: true, staged: true, inMeeting: true };
    expect(nextOtaStep(job({ when: 'idle', force: true }), ready).step).toBe('wait-idle');
    expect(nextOtaStep(job({ when: 'now', force: false }), ready).step).toBe('wait-idle');
    expect(nextOtaStep(job({ when: 'now', force: true }), ready).step).toBe('switch');
  });

  it('a staged release needs no bundle (it is deleted after staging): straight to the switch', () => {
    expect(nextOtaStep(job(), { ...none, manifestSaved: true, manifestVerified: true, staged: true }).step).toBe('switch');
  });

  it('an ended job has no next step', () => {
    expect(nextOtaStep(job({ ended: { code: 'downgrade', message: 'x' } }), none)).toEqual({ step: null, why: 'ended: downgrade' });
  });
});

const trying = (over: Partial<Trying> = {}): Trying => ({ version: '1.1.0', from: '1.0.0', since: 1000, deadline: 121_000, starts: 0, fromReachedBroker: true, commandId: 'c-1', ...over });
const withTrying = (t: Trying): ReleaseState => ({ ...initialState('1.0.0'), trying: t });

describe('decideLaunch (the launcher)', () => {
  it('nothing trying: the committed version', () => {
    expect(decideLaunch(initialState('1.0.0'), 5000)).toMatchObject({ run: '1.0.0' });
  });

  it('a trial version is started up to 3 times, counting', () => {
    let s = withTrying(trying());
    const runs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const d = decideLaunch(s, 2000);
      runs.push(d.run);
      s = d.state;
    }
    expect(runs).toEqual(['1.1.0', '1.1.0', '1.1.0']);
    expect(s.trying?.starts).toBe(3);
    // The 4th start: it crash-looped. Back to 1.0.0, 1.1.0 refused from now on, the outcome kept for the report.
    const d = decideLaunch(s, 3000);
    expect(d.run).toBe('1.0.0');
    expect(d.state).toMatchObject({ committed: '1.0.0', trying: null, failed: ['1.1.0'], last: { version: '1.1.0', outcome: 'rolled_back', reported: false } });
    expect(d.state.last?.reason).toMatch(/did not commit after 3 starts/);
  });

  it('a trial that gave up (its self-test failed) is rolled back at the next start, with its reason', () => {
    const d = decideLaunch(withTrying(trying({ starts: 1, gaveUp: 'the self-test failed: encoder' })), 5000);
    expect(d.run).toBe('1.0.0');
    expect(d.state.last).toMatchObject({ version: '1.1.0', outcome: 'rolled_back', reason: '1.1.0 gave up: the self-test failed: encoder' });
  });

  it('a trial past its deadline is rolled back at the next start, however few starts it had', () => {
    const d = decideLaunch(withTrying(trying({ starts: 1 })), 121_001);
    expect(d.run).toBe('1.0.0');
    expect(d.state.last?.reason).toMatch(/within its window/);
  });

  it('keeps at most 20 failed versions, the newest', () => {
    const s = { ...withTrying(trying({ starts: 3 })), failed: Array.from({ length: 20 }, (_, i) => `0.0.${i}`) };
    const d = decideLaunch(s, 2000);
    expect(d.state.failed).toHaveLength(20);
    expect(d.state.failed.at(-1)).toBe('1.1.0');
    expect(d.state.failed[0]).toBe('0.0.1');
  });
});

describe('decideCommit (the new version)', () => {
  const facts = { now: 50_000, startedAt: 1000, selftestOk: true, reachedBroker: true, commitWindowMs: 30_000 };

  it('commits after a passed self-test, the window, and the broker when the old version reached it', () => {
    expect(decideCommit(trying(), facts)).toEqual({ kind: 'commit' });
  });

  it('waits for the self-test, then for the window', () => {
    expect(decideCommit(trying(), { ...facts, selftestOk: null }).kind).toBe('wait');
    expect(decideCommit(trying(), { ...facts, now: 10_000 }).kind).toBe('wait');
  });

  it('a slow link is not a failure: it waits for the broker until the deadline, then gives up', () => {
    expect(decideCommit(trying(), { ...facts, reachedBroker: false })).toMatchObject({ kind: 'wait' });
    expect(decideCommit(trying(), { ...facts, reachedBroker: false, now: 121_001 })).toMatchObject({ kind: 'give_up' });
  });

  it('the broker is not required when the old version could not reach it either', () => {
    expect(decideCommit(trying({ fromReachedBroker: false }), { ...facts, reachedBroker: false })).toEqual({ kind: 'commit' });
  });

  it('a failed self-test gives up at once, with its reason', () => {
    expect(decideCommit(trying(), { ...facts, selftestOk: false, selftestProblem: 'encoder: no frames' })).toEqual({ kind: 'give_up', why: 'the self-test failed: encoder: no frames' });
  });
});

describe('the release state file', () => {
  it('round-trips, and names the path of a problem', () => {
    const s = withTrying(trying());
    expect(decodeReleaseState(JSON.parse(JSON.stringify(s)))).toEqual(s);
    expect(() => decodeReleaseState({ v: 1, committed: '', failed: [] })).toThrow(/^committed: not a string/);
    expect(() => decodeReleaseState({ v: 1, committed: '1.0.0', failed: [], trying: { version: '1.1.0' } })).toThrow(/trying\.from: not a string/);
    expect(() => decodeReleaseState({ v: 2 })).toThrow(/v: unknown version 2/);
  });
});
