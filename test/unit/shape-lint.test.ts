/**
 * The lint rules that keep the house's shape (scripts/eslint-shape.mjs), run through
 * ESLint itself on real files of this repository with code that breaks them.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
// @ts-expect-error the rule module is plain JavaScript without types
import { cycles, requiredEntry } from '../../scripts/eslint-shape.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function lint(file: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: ROOT });
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId?.startsWith('shape/')).map((m) => `${m.ruleId}: ${m.message}`);
}

describe('shape/boundaries', () => {
  it('device/ reaches gst-pipelines only through gst-pipelines/index.ts', async () => {
    expect(await lint('device/meeting.ts', "import { planSession } from '../gst-pipelines/plan/index.js';\nvoid planSession;\n")).toEqual([
      'shape/boundaries: import gst-pipelines/plan/index.ts through gst-pipelines/index.ts, the folder\'s public entry',
    ]);
    expect(await lint('device/meeting.ts', "import { planSession } from '../gst-pipelines/index.js';\nvoid planSession;\n")).toEqual([]);
  });

  it('a sibling subfolder is entered through its index.ts; the own folder directly', async () => {
    expect(await lint('gst-pipelines/hub/local-hub.ts', "import { MediaSupervisor } from '../supervisor/supervisor.js';\nvoid MediaSupervisor;\n")).toEqual([
      'shape/boundaries: import gst-pipelines/supervisor/supervisor.ts through gst-pipelines/supervisor/index.ts, the folder\'s public entry',
    ]);
    expect(await lint('gst-pipelines/supervisor/supervisor.ts', "import { forkSpawner } from './worker-process.js';\nvoid forkSpawner;\n")).toEqual([]);
  });

  it('lower layers do not import upper ones', async () => {
    expect(await lint('lib/clock.ts', "import { topics } from '../device/contract/index.js';\nvoid topics;\n")).toEqual([
      'shape/boundaries: lib/ may not import device/ (allowed: lib)',
    ]);
    expect(await lint('gst-pipelines/types.ts', "import type { Agent } from '../device/agent.js';\nexport type A = Agent;\n")).toEqual([
      'shape/boundaries: gst-pipelines/ may not import device/ (allowed: lib, gst-pipelines)',
    ]);
  });

  it('tests may import internals', async () => {
    expect(await lint('test/unit/x.test.ts', "import { fastCheck } from '../../gst-pipelines/adapt/collapse.js';\nvoid fastCheck;\n")).toEqual([]);
    expect(requiredEntry('test/unit/x.test.ts', 'gst-pipelines/adapt/collapse.ts')).toBe('gst-pipelines/index.ts');
  });
});

describe('shape/no-cycle', () => {
  it('finds every module of a cycle and nothing else', () => {
    const g = new Map<string, Set<string>>([
      ['a', new Set(['b'])],
      ['b', new Set(['c'])],
      ['c', new Set(['a', 'd'])],
      ['d', new Set()],
      ['e', new Set(['d'])],
    ]);
    const found = cycles(g) as Map<string, string[]>;
    expect([...found.keys()].sort()).toEqual(['a', 'b', 'c']);
    expect([...(found.get('a') ?? [])].sort()).toEqual(['a', 'b', 'c']);
  });

  it('the repository has none', async () => {
    const eslint = new ESLint({ cwd: ROOT });
    const results = await eslint.lintFiles(['lib', 'gst-pipelines', 'device']);
    const cyc = results.flatMap((r) => r.messages.filter((m) => m.ruleId === 'shape/no-cycle').map((m) => `${r.filePath}: ${m.message}`));
    expect(cyc).toEqual([]);
  });
});
