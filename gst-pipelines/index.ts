export { AUDIO_ONLY } from './adapt/index.js';
export { LocalHub, runLoopback, savePictures } from './hub/index.js';
export { isPlanError, planCodecSelftest, planSession, planStandby } from './plan/index.js';
export { execRunCommand, formatCapabilities, probe } from './probe/index.js';
export type { ProbeDeps } from './probe/index.js';
export { MediaSupervisor, forkSpawner } from './supervisor/index.js';
export type { MediaStatus, WorkerSpawner } from './supervisor/index.js';
export type { AdaptChange, Capabilities, MediaJoinSpec, MediaSettings, SessionPlan, StandbyPlan } from './types.js';
export { joinSpecSchema } from './join-spec.js';
