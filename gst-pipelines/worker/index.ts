export { isFromWorker } from './protocol.js';
export type { FromWorker, ToWorker, WorkerErrorCause, WorkerStats } from './protocol.js';
