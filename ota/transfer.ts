/**
 * The parts of ota/ that move bytes, loaded when an update runs or a release is packed
 * (`loadTransfer()` in index.ts): downloads, the file-by-file delta, the step executors, pack.
 */
export { download } from './download.js';
export { fetchCapped, otaExecutors, savedManifest } from './executors.js';
export { DEFAULT_BASE_URL, DEFAULT_EXPIRES_DAYS, PackError, buildIndex, indexJson, isPackError, machineArch, pack, packTree } from './pack.js';
export { DeltaError, INDEX_FILE, INDEX_MAX_BYTES, assembleRelease, completeAssembled, decodeIndex, indexedReleases, isDeltaError, sha256File } from './delta.js';
