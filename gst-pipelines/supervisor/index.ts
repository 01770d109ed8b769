export { MediaSupervisor } from './supervisor.js';
export type { MediaStatus } from './status.js';
export { forkSpawner } from './worker-process.js';
export type { WorkerHandle, WorkerSpawner } from './worker-process.js';
