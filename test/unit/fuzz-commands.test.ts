/**
 * The command path fuzzed (docs/fuzzing.md): every command one reply with a contract code,
 * bounded stores under a flood, and model-based meeting sequences — through the real
 * router, ledger, actions and meeting controller (test/fuzz/box.ts). Seeded: FUZZ_SEED
 * overrides the default; a failure prints the seed, the path and how to replay it.
 */
import { describe, expect, it } from 'vitest';
import { commandsTarget, floodTarget, fuzzSeed, meetingTarget, type FuzzTarget } from '../fuzz/index.js';

describe.each([commandsTarget, floodTarget, meetingTarget])('fuzz: $name', (t: FuzzTarget) => {
  it(`${t.testRuns} runs hold every property (${t.input})`, async () => {
    const r = await t.run(t.testRuns, fuzzSeed());
    expect(r.failure).toBeNull();
  });
});
