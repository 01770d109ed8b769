/**
 * The new version's own decision after a switch, pure: commit, keep waiting, or give up
 * (the launcher then rolls back at the next start). A slow link must not roll back a good
 * release (meta-mender#285): reaching the broker is required only if the version it
 * replaced could reach it, and the wait for it lasts until the trial's deadline, not a
 * fixed few seconds.
 */
import type { Trying } from './release-state.js';

export interface CommitFacts {
  now: number;
  /** When this process started (ms). */
  startedAt: number;
  /** The self-test's verdict: null while it runs. */
  selftestOk: boolean | null;
  selftestProblem?: string;
  /** Connected to the broker at least once since start. */
  reachedBroker: boolean;
  /** The control loop must have run this long (ms) before a commit. */
  commitWindowMs: number;
}

export type CommitDecision = { kind: 'wait'; why: string } | { kind: 'commit' } | { kind: 'give_up'; why: string };

export function decideCommit(t: Trying, f: CommitFacts): CommitDecision {
  if (f.selftestOk === false) return { kind: 'give_up', why: `the self-test failed: ${f.selftestProblem ?? 'no detail'}` };
  if (f.selftestOk === null) return { kind: 'wait', why: 'the self-test is running' };
  if (f.now - f.startedAt < f.commitWindowMs) return { kind: 'wait', why: `the control loop has run ${f.now - f.startedAt} of ${f.commitWindowMs} ms` };
  if (t.fromReachedBroker && !f.reachedBroker) {
    return f.now > t.deadline ? { kind: 'give_up', why: 'the broker was not reached before the deadline (the previous version could reach it)' } : { kind: 'wait', why: 'waiting to reach the broker (the previous version could)' };
  }
  return { kind: 'commit' };
}
