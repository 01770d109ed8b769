/**
 * ota/'s public entry. The parts that move bytes — HTTP downloads, the file-by-file delta,
 * the executors that use them, `ep ota pack` — are behind `loadTransfer()`: node:http and
 * node:https alone cost the agent ~7 MB of resident memory, and an idle box (its whole
 * life but for an update) never needs them. Their types are exported here as usual.
 */
import type * as Transfer from './transfer.js';

export const loadTransfer = (): Promise<typeof Transfer> => import('./transfer.js');
export { compareVersions, parseVersion } from './version.js';
export type { Version } from './version.js';
export { checkSignature, generateKeys, keyIdOf, readPublicKey, signBytes } from './signature.js';
export type { KeyPair, SignatureCheck } from './signature.js';
export { trustedNow } from './trusted-time.js';
export type { TimeFacts } from './trusted-time.js';
export { MANIFEST_MAX_BYTES, OTA_ARCHES, checkInstallable, decodeManifest, otaManifestSchema } from './manifest.js';
export type { InstallCheck, InstallFacts, ManifestDecode, OtaArch, OtaManifest, RefusalCode } from './manifest.js';
export { checkBundleFile } from './bundle-check.js';
export type { BundleCheck } from './bundle-check.js';
export type { DownloadOptions, DownloadResult } from './download.js';
export { FAILED_VERSIONS_KEPT, decodeReleaseState, initialState } from './release-state.js';
export type { Outcome, ReleaseState, Trying } from './release-state.js';
export { decideLaunch } from './launch-decision.js';
export type { LaunchDecision, LaunchOptions } from './launch-decision.js';
export { decideCommit } from './commit-decision.js';
export type { CommitDecision, CommitFacts } from './commit-decision.js';
export { OTA_STEPS, PHASE_OF, nextOtaStep } from './plan.js';
export type { Next, OtaFacts, OtaJob, OtaStep } from './plan.js';
export { cleanReleases, isStaged, stageRelease } from './install.js';
export { currentVersion, releaseDir, switchCurrent } from './current.js';
export type { Layout } from './current.js';
export { LAUNCHER_ENTRY, installLauncher, launcherClosure } from './launcher-install.js';
export { OtaRefusal, clearJob, markFile, readFacts, readJob, runJob, writeJob } from './runner.js';
export type { RunOutcome, RunnerDeps } from './runner.js';
export type { ExecutorDeps } from './executors.js';
export { readReleaseState, releaseStateFile, writeReleaseState } from './release-file.js';
export type { PackOptions, PackResult, PackTreeOptions, PackTreeResult } from './pack.js';
export type { AssembleOptions, AssembleResult, DeltaCode, FileIndex, IndexEntry } from './delta.js';
