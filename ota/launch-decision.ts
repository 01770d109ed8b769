/**
 * The launcher's one decision, pure: given the release state and the time, which version
 * to start, and the state to write before starting it. The launcher (systemd's ExecStart,
 * never replaced by an update) reads the state, calls this, writes the new state, points
 * `current` where it says and starts it. A crash-looping or never-committing release is
 * rolled back here, without the new version's cooperation.
 *
 *   trying, starts < maxStarts, before the deadline  → start it again (starts + 1)
 *   trying, starts ≥ maxStarts                        → roll back: start `from` (crash loop)
 *   trying, past the deadline                         → roll back: start `from` (no commit in time)
 *   trying, gave up (its self-test failed)            → roll back: start `from`
 *   nothing trying                                    → start `committed`
 */
import type { ReleaseState } from './release-state.js';
import { FAILED_VERSIONS_KEPT } from './release-state.js';

export interface LaunchOptions {
  /** Starts a trial version gets (the third failed start rolls back). Default 3. */
  maxStarts?: number;
}

export interface LaunchDecision {
  /** The version to start (`current` must point at releases/<run>). */
  run: string;
  state: ReleaseState;
  /** Why, for the launcher's log line. */
  why: string;
}

export function decideLaunch(s: ReleaseState, now: number, o: LaunchOptions = {}): LaunchDecision {
  const maxStarts = o.maxStarts ?? 3;
  const t = s.trying;
  if (!t) return { run: s.committed, state: s, why: `starting ${s.committed} (committed)` };
  const reason = t.gaveUp !== undefined ? `${t.version} gave up: ${t.gaveUp}` : t.starts >= maxStarts ? `${t.version} did not commit after ${t.starts} starts (a crash loop)` : now > t.deadline ? `${t.version} did not commit within its window (deadline ${new Date(t.deadline).toISOString()})` : null;
  if (reason === null) {
    return { run: t.version, state: { ...s, trying: { ...t, starts: t.starts + 1 } }, why: `trying ${t.version}, start ${t.starts + 1} of ${maxStarts}` };
  }
  const failed = [...s.failed.filter((v) => v !== t.version), t.version].slice(-FAILED_VERSIONS_KEPT);
  return {
    run: t.from,
    state: { ...s, committed: t.from, trying: null, failed, last: { version: t.version, outcome: 'rolled_back', reason, at: now, reported: false } },
    why: `rolling back to ${t.from}: ${reason}`,
  };
}
