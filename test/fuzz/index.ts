/**
 * The fuzz targets (docs/fuzzing.md), in the order the bench runs them. The tests
 * (test/unit/fuzz-*.test.ts, test/integration/fuzz-status-page.test.ts) run each at its
 * `testRuns`, the bench's `fuzz` section (test/bench/fuzz.ts) at its `benchRuns`.
 */
import { commandsTarget, floodTarget } from './commands.js';
import { meetingTarget } from './meeting-model.js';
import { otaManifestTarget, otaSignatureTarget } from './ota.js';
import { provisioningTarget } from './provisioning.js';
import { pinGuardTarget, statusHttpTarget, statusWsTarget } from './status-page.js';
import type { FuzzTarget } from './property.js';

export { DEFAULT_SEED, fuzzSeed } from './property.js';
export type { FuzzOutcome, FuzzTarget } from './property.js';
export { commandsTarget, floodTarget, meetingTarget, otaManifestTarget, otaSignatureTarget, pinGuardTarget, provisioningTarget, statusHttpTarget, statusWsTarget };

export const FUZZ_TARGETS: readonly FuzzTarget[] = [commandsTarget, floodTarget, meetingTarget, otaManifestTarget, otaSignatureTarget, provisioningTarget, statusHttpTarget, statusWsTarget, pinGuardTarget];
