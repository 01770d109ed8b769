/**
 * What the box knows of its releases, shared by the launcher (which starts `current`)
 * and the agent (which installs, switches and commits): one small JSON file next to
 * `releases/`, written atomically (temp + fsync + rename + fsync dir).
 *
 *   /opt/commune-endpoint/            (host-paths: appRoot)
 *     launcher/ota/launcher.js        installed once by provisioning (installLauncher); updates never replace it
 *     releases/<version>/             one full app each: dist/, node_modules/, package.json
 *     current -> releases/<version>   the symlink the launcher starts, switched atomically
 *     release-state.json              this file
 *
 * A version is `committed` once it has run its self-test and its control loop for the
 * commit window; until then it is `trying`, and the launcher counts its starts. The
 * running version is never modified in place; `committed` and `previous` are kept,
 * the rest cleaned after a commit.
 */

export interface Trying {
  version: string;
  /** The version that ran before (what a rollback returns to). */
  from: string;
  /** When the switch happened (ms) and when the trial ends without a commit (ms). */
  since: number;
  deadline: number;
  /** Starts of `version` by the launcher so far. */
  starts: number;
  /** Could `from` reach the broker? Then the new version must too before it commits. */
  fromReachedBroker: boolean;
  /** The `ota` command that asked for it (its reply was sent before the switch). */
  commandId: string | null;
  /** Set by the trial version when it cannot commit (its self-test failed…): the launcher rolls back at the next start, with this reason. */
  gaveUp?: string;
}

export interface Outcome {
  version: string;
  outcome: 'committed' | 'rolled_back';
  reason: string;
  at: number;
  /** Reported to the hub (an event) by the version that runs after it. */
  reported: boolean;
}

export interface ReleaseState {
  v: 1;
  committed: string;
  previous: string | null;
  trying: Trying | null;
  /** Versions rolled back on this box: refused until a newer one is offered (bounded, newest kept). */
  failed: string[];
  last: Outcome | null;
}

export const FAILED_VERSIONS_KEPT = 20;

export function initialState(version: string): ReleaseState {
  return { v: 1, committed: version, previous: null, trying: null, failed: [], last: null };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown, at: string): string => {
  if (typeof v !== 'string' || v === '') throw new Error(`${at}: not a string`);
  return v;
};
const num = (v: unknown, at: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${at}: not a number`);
  return v;
};

/** Decodes the file's JSON, every problem by path (the launcher falls back to `current` on a bad file). */
export function decodeReleaseState(v: unknown): ReleaseState {
  if (!isObj(v)) throw new Error('(root): not an object');
  if (v.v !== 1) throw new Error(`v: unknown version ${JSON.stringify(v.v)}`);
  const t = v.trying;
  let trying: Trying | null = null;
  if (t !== null && t !== undefined) {
    if (!isObj(t)) throw new Error('trying: not an object');
    trying = {
      version: str(t.version, 'trying.version'),
      from: str(t.from, 'trying.from'),
      since: num(t.since, 'trying.since'),
      deadline: num(t.deadline, 'trying.deadline'),
      starts: num(t.starts, 'trying.starts'),
      fromReachedBroker: t.fromReachedBroker === true,
      commandId: typeof t.commandId === 'string' ? t.commandId : null,
      ...(typeof t.gaveUp === 'string' ? { gaveUp: t.gaveUp } : {}),
    };
  }
  if (!Array.isArray(v.failed) || !v.failed.every((x) => typeof x === 'string')) throw new Error('failed: not a list of versions');
  const l = v.last;
  let last: Outcome | null = null;
  if (l !== null && l !== undefined) {
    if (!isObj(l)) throw new Error('last: not an object');
    if (l.outcome !== 'committed' && l.outcome !== 'rolled_back') throw new Error('last.outcome: not committed or rolled_back');
    last = { version: str(l.version, 'last.version'), outcome: l.outcome, reason: typeof l.reason === 'string' ? l.reason : '', at: num(l.at, 'last.at'), reported: l.reported === true };
  }
  return {
    v: 1,
    committed: str(v.committed, 'committed'),
    previous: v.previous === null || v.previous === undefined ? null : str(v.previous, 'previous'),
    trying,
    failed: (v.failed as string[]).slice(-FAILED_VERSIONS_KEPT),
    last,
  };
}
