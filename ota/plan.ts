/**
 * The update as a pure planner (STYLE.md 4): from what is on disk and what the box is
 * doing, the next step. Executors (one small function per step) do the step and nothing
 * else; after any crash or restart the facts are read again from disk and the planner
 * picks up where the disk says the update is — so a kill at any step ends in a resumed
 * or a cleanly abandoned update, never a half-applied one. The running version is touched
 * only by `switch`, the last step, which is one atomic symlink rename plus the release
 * state's `trying` record (release-state.ts).
 *
 * OTA_STEPS is the list the crash tests are generated from: a new step cannot go untested.
 */

export const OTA_STEPS = ['fetch-manifest', 'verify-manifest', 'download', 'verify-bundle', 'stage', 'wait-idle', 'switch'] as const;
export type OtaStep = (typeof OTA_STEPS)[number];

export interface OtaJob {
  manifestUrl: string;
  when: 'now' | 'idle';
  force: boolean;
  commandId: string | null;
  /** Set when the job ended without a switch (refused, failed): the planner stops. */
  ended: null | { code: string; message: string };
}

/** What the disk (and the box) say now; each read by a small function, none kept in memory across a restart. */
export interface OtaFacts {
  /** The manifest and its .sig are saved in the job's directory. */
  manifestSaved: boolean;
  /** They passed every check (signature, name, arch, version, expiry) and the free space is enough. */
  manifestVerified: boolean;
  /** The bundle file is complete (its length is the manifest's size). */
  bundleComplete: boolean;
  /** Its sha256 matched. */
  bundleVerified: boolean;
  /** releases/<version>/ is unpacked, fsynced and marked complete. */
  staged: boolean;
  inMeeting: boolean;
}

export type Next = { step: OtaStep; why: string } | { step: null; why: string };

export function nextOtaStep(job: OtaJob, f: OtaFacts): Next {
  if (job.ended) return { step: null, why: `ended: ${job.ended.code}` };
  if (!f.manifestSaved) return { step: 'fetch-manifest', why: 'no manifest on disk yet' };
  if (!f.manifestVerified) return { step: 'verify-manifest', why: 'the manifest is not verified' };
  // A staged release needs its bundle no more (it is deleted after staging, to free the space).
  if (!f.staged) {
    if (!f.bundleComplete) return { step: 'download', why: 'the bundle is not complete on disk' };
    if (!f.bundleVerified) return { step: 'verify-bundle', why: "the bundle's sha256 is not checked" };
    return { step: 'stage', why: 'the release is not unpacked' };
  }
  // A meeting never breaks for an update without force; `now` without force was answered busy at the command.
  if (f.inMeeting && !(job.when === 'now' && job.force)) return { step: 'wait-idle', why: 'a meeting is on' };
  return { step: 'switch', why: 'everything is in place' };
}

/** The phase the agent reports in `state.ota.phase` for a step. */
export const PHASE_OF: Readonly<Record<OtaStep, string>> = {
  'fetch-manifest': 'checking',
  'verify-manifest': 'checking',
  download: 'downloading',
  'verify-bundle': 'verifying',
  stage: 'installing',
  'wait-idle': 'waiting_idle',
  switch: 'switching',
};
