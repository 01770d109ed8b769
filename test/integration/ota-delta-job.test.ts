/**
 * The update job's download step with a manifest that lists its files (ota/executors.ts →
 * ota/delta.ts): a box whose release holds most of the files fetches only the changed ones
 * and the release is staged at once; when the delta cannot be had (an object missing on
 * the server) it falls back to the full bundle. Real files, real packs (ota/pack.ts
 * packTree), a real HTTP server; the job runs in-process up to the switch.
 */
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialState, isStaged, runJob, writeJob, type RunnerDeps } from '../../ota/index.js';
import { packTree } from '../../ota/transfer.js';
import { jobDeps, keys, sign, startStaticServer, type StaticServer } from './helpers/ota-fixture.js';

let work: string;
let server: StaticServer;
const key = keys();

/** The library files both releases share: 200 of ~4 KiB that do not compress away (random). */
const LIB = Array.from({ length: 200 }, (_, i) => `export const v${i} = ${JSON.stringify(randomBytes(3000).toString('base64'))};\n`);

/** A small release tree: dist/device/cli/ep.js, the 200 library files, package.json. */
async function tree(dir: string, version: string, changed: string): Promise<void> {
  await mkdir(path.join(dir, 'dist', 'device', 'cli'), { recursive: true });
  await mkdir(path.join(dir, 'dist', 'lib'), { recursive: true });
  await writeFile(path.join(dir, 'dist', 'device', 'cli', 'ep.js'), `// ep ${changed}\nconsole.log('ep');\n`);
  for (let i = 0; i < 200; i++) await writeFile(path.join(dir, 'dist', 'lib', `m${i}.js`), LIB[i]!);
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'commune-endpoint', version, type: 'module' }));
  await chmod(dir, 0o755);
}

/** Packs `version` into the served directory: bundle, index, objects, signed manifest. */
async function publish(version: string, changed: string): Promise<{ manifestUrl: string; bundleBytes: number; objects: string[] }> {
  const t = path.join(work, `tree-${version}`);
  await tree(t, version, changed);
  const out = path.join(work, 'out');
  const r = await packTree({ tree: t, outDir: out, name: 'commune-endpoint', version, arch: 'x64', baseUrl: server.url('').replace(/\/$/, ''), expiresDays: 30 });
  const objects = await readdir(path.join(out, 'objects'));
  for (const o of objects) server.files.set(`objects/${o}`, await readFile(path.join(out, 'objects', o)));
  for (const f of await readdir(out)) if ((await stat(path.join(out, f))).isFile()) server.files.set(f, await readFile(path.join(out, f)));
  const manifestName = path.basename(r.manifest);
  server.files.set(`${manifestName}.sig`, sign(await readFile(r.manifest), key));
  return { manifestUrl: server.url(manifestName), bundleBytes: r.bundle.size, objects };
}

/** An app root whose committed release is 1.0.0, unpacked from its own bundle (with its .ep-index.json). */
async function boxWith10(): Promise<string> {
  const appRoot = await mkdtemp(path.join(work, 'box-'));
  const { stageRelease, switchCurrent } = await import('../../ota/index.js');
  const bundle = path.join(work, 'b10.tar.gz');
  await writeFile(bundle, server.files.get('ep-1.0.0-x64.tar.gz')!);
  await stageRelease({ appRoot }, '1.0.0', bundle, 'initial');
  await switchCurrent({ appRoot }, '1.0.0');
  await writeFile(path.join(appRoot, 'release-state.json'), JSON.stringify(initialState('1.0.0')));
  return appRoot;
}

function deps(appRoot: string, notes: Array<[string, Record<string, unknown>]>): RunnerDeps {
  return jobDeps(appRoot, key, { exec: { retries: 2, note: (evt, detail) => void notes.push([evt, detail]) } });
}

let v11: { manifestUrl: string; bundleBytes: number; objects: string[] };

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ep-ota-delta-job-'));
  server = await startStaticServer();
  await publish('1.0.0', 'one');
  v11 = await publish('1.1.0', 'two');
}, 60_000);

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

describe('the download step with a file index', () => {
  it('fetches only what the running release lacks, links the rest, and the release is staged without the bundle', async () => {
    const appRoot = await boxWith10();
    const notes: Array<[string, Record<string, unknown>]> = [];
    await writeJob(path.join(appRoot, 'job'), { manifestUrl: v11.manifestUrl, when: 'idle', force: false, commandId: 'c-1', ended: null });
    const before = server.requests.length;
    expect(await runJob(deps(appRoot, notes), 'switch')).toEqual({ paused: 'switch' });
    const asked = server.requests.slice(before);
    expect(asked.filter((r) => r.endsWith('.tar.gz')), 'the full bundle was never asked for').toEqual([]);
    const delta = notes.find(([e]) => e === 'ota.delta')![1];
    // ep.js and package.json changed; the 200 library files are linked from 1.0.0.
    expect(delta).toMatchObject({ version: '1.1.0', fetchedFiles: 2, linkedFiles: 200 });
    expect(delta.fetchedBytes as number).toBeLessThan(v11.bundleBytes * 0.2);
    const m = JSON.parse(server.files.get('ep-1.1.0-x64.manifest.json')!.toString()) as { bundle: { sha256: string } };
    expect(await isStaged({ appRoot }, '1.1.0', m.bundle.sha256)).toBe(true);
    const rel = path.join(appRoot, 'releases');
    expect((await stat(path.join(rel, '1.1.0', 'dist', 'lib', 'm7.js'))).ino).toBe((await stat(path.join(rel, '1.0.0', 'dist', 'lib', 'm7.js'))).ino);
    expect(await readFile(path.join(rel, '1.1.0', 'dist', 'device', 'cli', 'ep.js'), 'utf8')).toContain('// ep two');
    expect((await readdir(rel)).filter((n) => n.startsWith('.')), 'no staging dir left').toEqual([]);
  });

  it('an object missing on the server: the delta is dropped and the full bundle fetched instead', async () => {
    const appRoot = await boxWith10();
    const notes: Array<[string, Record<string, unknown>]> = [];
    const gone = createHash('sha256').update(await readFile(path.join(work, 'tree-1.1.0', 'dist', 'device', 'cli', 'ep.js'))).digest('hex');
    const kept = server.files.get(`objects/${gone}`)!;
    server.files.delete(`objects/${gone}`);
    try {
      await writeJob(path.join(appRoot, 'job'), { manifestUrl: v11.manifestUrl, when: 'idle', force: false, commandId: 'c-2', ended: null });
      const before = server.requests.length;
      expect(await runJob(deps(appRoot, notes), 'switch')).toEqual({ paused: 'switch' });
      expect(notes.map(([e]) => e)).toContain('ota.delta_failed');
      expect(server.requests.slice(before).filter((r) => r.endsWith('.tar.gz'))).toHaveLength(1);
      expect(await readFile(path.join(appRoot, 'releases', '1.1.0', 'dist', 'device', 'cli', 'ep.js'), 'utf8')).toContain('// ep two');
      expect((await readdir(path.join(appRoot, 'releases'))).filter((n) => n.startsWith('.'))).toEqual([]);
    } finally {
      server.files.set(`objects/${gone}`, kept);
    }
  });
});
