/**
 * The edges that decode untrusted input fuzzed (docs/fuzzing.md): the OTA manifest and its
 * signature, the provisioning file (through provisionFromFile, temp dirs), the status
 * page's PIN guard. Seeded: FUZZ_SEED overrides the default; a failure prints the seed,
 * the path and how to replay it.
 */
import { describe, expect, it } from 'vitest';
import { fuzzSeed, otaManifestTarget, otaSignatureTarget, pinGuardTarget, provisioningTarget, type FuzzTarget } from '../fuzz/index.js';

describe.each([otaManifestTarget, otaSignatureTarget, provisioningTarget, pinGuardTarget])('fuzz: $name', (t: FuzzTarget) => {
  it(`${t.testRuns} runs hold every property (${t.input})`, async () => {
    const r = await t.run(t.testRuns, fuzzSeed());
    expect(r.failure).toBeNull();
  });
});
