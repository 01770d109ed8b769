/**
 * Health: one sample in the contract's shape (CONTRACT.md "Health sample") and the
 * faults it shows. The caller owns the cadence (every 30 s, at once on a fault change).
 */
export { HealthSampler, COMMAND_RETRY_MS } from './sampler.js';
export { faultsFromHealth, HEALTH_FAULTS } from './faults.js';
export type { FaultThresholds, HealthFault } from './faults.js';
export type { HealthSamplerDeps, SiSubset, DeviceHealth, MediaHealth, MediaHealthInput } from './sampler.js';
export { readThrottled, parseThrottled } from './power.js';
export type { ThrottledFlags, PowerDeps, RunCommand, CommandResult } from './power.js';
export { clockSynced, parseNtpSynchronized } from './clock-sync.js';
export type { ClockSyncDeps } from './clock-sync.js';
