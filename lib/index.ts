export { CorruptFileError, cleanupTemp, isCorruptFileError, readFileCapped, readJsonFile, writeFileAtomic } from './atomic-file.js';
export { backoffDelay, systemClock } from './clock.js';
export type { Clock } from './clock.js';
export { hostPaths } from './host-paths.js';
export type { HostPaths } from './host-paths.js';
export { LOG_LINE_CHARS, LOG_RING_LINES, LogRing } from './log-ring.js';
export { LOG_FIELD_CHARS, capLogFields, createLogger, silentLogger } from './log.js';
export type { Logger } from './log.js';
export { distPath, readVersion } from './package-root.js';
