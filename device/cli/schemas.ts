/**
 * `ep schemas [--out DIR] [--check]`: writes the contract's JSON Schemas (the same
 * objects the agent validates with) for hub implementers; `--check` fails when the
 * published files differ from the source (CI keeps docs/schemas true).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PUBLISHED_SCHEMAS } from '../contract/index.js';
import { configSchema } from '../config.js';
import { provisionFileSchema } from '../../provisioning/index.js';

type Out = (s: string) => void;

export function renderSchemas(): Record<string, string> {
  const all: Record<string, object> = { ...PUBLISHED_SCHEMAS, 'agent-config': configSchema, 'provision-file': provisionFileSchema };
  const files: Record<string, string> = {};
  for (const [name, schema] of Object.entries(all)) {
    files[`${name}.schema.json`] = `${JSON.stringify({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...schema, $id: `https://commune-endpoint.invalid/ep/v1/${name}` }, null, 2)}\n`;
  }
  return files;
}

export async function schemasCommand(argv: string[], out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { out: { type: 'string', default: 'docs/schemas' }, check: { type: 'boolean', default: false } }, strict: true });
  const dir = path.resolve(values.out ?? 'docs/schemas');
  const files = renderSchemas();
  if (values.check) {
    const stale: string[] = [];
    for (const [f, text] of Object.entries(files)) {
      const have = await readFile(path.join(dir, f), 'utf8').catch(() => null);
      if (have !== text) stale.push(f);
    }
    if (stale.length) {
      err(`ep schemas --check: ${stale.length} file(s) in ${dir} differ from the source: ${stale.join(', ')} (run: ep schemas)`);
      return 1;
    }
    out(`ep schemas --check: ${Object.keys(files).length} schemas up to date`);
    return 0;
  }
  await mkdir(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) await writeFile(path.join(dir, f), text);
  out(`wrote ${Object.keys(files).length} schemas to ${dir}`);
  return 0;
}
