export { cleanupTemp, readJsonFile, writeFileAtomic } from './atomic-file.js';
export { backoffDelay, systemClock } from './clock.js';
export type { Clock } from './clock.js';
export { hostPaths } from './host-paths.js';
export type { HostPaths } from './host-paths.js';
export { LogRing } from './log-ring.js';
export { createLogger, silentLogger } from './log.js';
export type { Logger } from './log.js';
export { distPath, readVersion } from './package-root.js';
