/**
 * The status page's HTTP and WebSocket input fuzzed against the real server in this process
 * on an ephemeral port (docs/fuzzing.md): a sane status for every request, the page still
 * up, no PIN sent, no data before the right PIN, the client table empty once clients left.
 * Every input has a 1 s hang guard and no other time bound.
 */
import { describe, expect, it } from 'vitest';
import { fuzzSeed, statusHttpTarget, statusWsTarget, type FuzzTarget } from '../fuzz/index.js';

describe.each([statusHttpTarget, statusWsTarget])('fuzz: $name', (t: FuzzTarget) => {
  it(`${t.testRuns} runs hold every property (${t.input})`, async () => {
    const r = await t.run(t.testRuns, fuzzSeed());
    expect(r.failure).toBeNull();
  });
});
