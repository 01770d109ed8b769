/**
 * Fewer bytes (ota/delta.ts): a box holding release 1.0.0 assembles 1.1.0 from its file
 * index, against a real HTTP server serving what packTree wrote (the second half of
 * `ep ota pack`), on real files. Releases are small trees built here: 300 files of 1–6 KiB,
 * two of a few MiB, a duplicate, an empty file, an executable, a symlink; 1.1.0 changes
 * three small files' content (a JS-only change) and one file's mode.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type OtaManifest, type PackTreeResult } from '../../ota/index.js';
import { assembleRelease, completeAssembled, indexedReleases, isDeltaError, packTree } from '../../ota/transfer.js';
import { startStaticServer, type StaticServer } from './helpers/ota-server.js';

const run = promisify(execFile);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const CHANGED = ['dist/device/f0.js', 'dist/ota/f1.js', 'dist/lib/f2.js'];
const RE_MODED = 'dist/device/f5.js';

let work: string;
let server: StaticServer;
let p1: PackTreeResult;
let p2: PackTreeResult;
let m2: OtaManifest;
let releases: string;
let staging: string;

/** The 1.0.0 tree. */
async function makeRelease(dir: string): Promise<void> {
  const dirs = ['dist/device', 'dist/ota', 'dist/lib', 'node_modules/a/lib', 'node_modules/b', 'node_modules/.bin', 'dist/native'];
  for (const d of dirs) await mkdir(path.join(dir, d), { recursive: true });
  for (let i = 0; i < 300; i++) await writeFile(path.join(dir, dirs[i % 5]!, `f${i}.js`), randomBytes(1024 + ((i * 997) % 5120)));
  await writeFile(path.join(dir, 'node_modules/a/big.bin'), randomBytes(3 * 1024 * 1024));
  await writeFile(path.join(dir, 'dist/native/libbig.so'), randomBytes(2 * 1024 * 1024), { mode: 0o755 });
  await chmod(path.join(dir, 'dist/native/libbig.so'), 0o755);
  const license = randomBytes(1500);
  await writeFile(path.join(dir, 'node_modules/a/LICENSE'), license);
  await writeFile(path.join(dir, 'node_modules/b/LICENSE'), license);
  await writeFile(path.join(dir, 'node_modules/b/.npmignore'), '');
  await symlink('../a/lib/f3.js', path.join(dir, 'node_modules/.bin/tool'));
  await writeFile(path.join(dir, 'package.json'), '{"name":"commune-endpoint","version":"1.0.0"}\n');
}

interface Node {
  type: string;
  mode?: number;
  sha?: string;
  target?: string;
  ino?: number;
}

/** Every entry under `dir` (but .complete): type, mode, content hash or target, inode. */
async function treeOf(dir: string): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  const walk = async (rel: string): Promise<void> => {
    for (const n of (await readdir(path.join(dir, rel))).sort()) {
      const p = rel ? `${rel}/${n}` : n;
      if (p === '.complete') continue;
      const s = await lstat(path.join(dir, p));
      if (s.isSymbolicLink()) out.set(p, { type: 'symlink', target: await readlink(path.join(dir, p)) });
      else if (s.isDirectory()) {
        out.set(p, { type: 'dir', mode: s.mode & 0o777 });
        await walk(p);
      } else out.set(p, { type: 'file', mode: s.mode & 0o777, sha: sha(await readFile(path.join(dir, p))), ino: s.ino });
    }
  };
  await walk('');
  return out;
}
const withoutIno = (t: Map<string, Node>): Array<[string, Node]> => [...t].map(([p, n]) => [p, { ...n, ino: undefined }]);

/** As stageRelease does, but with the bundle's modes whatever this process's umask. */
async function unpack(bundle: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  await run('tar', ['-xzf', bundle, '-C', dest, '--no-same-owner', '--same-permissions']);
}

let full2: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ep-ota-delta-'));
  const hub = path.join(work, 'hub');
  server = await startStaticServer(hub);
  const t1 = path.join(work, 'src-1.0.0');
  const t2 = path.join(work, 'src-1.1.0');
  await makeRelease(t1);
  await run('cp', ['-a', t1, t2]);
  for (const f of CHANGED) await appendFile(path.join(t2, f), '\n// 1.1.0\n');
  await writeFile(path.join(t2, 'package.json'), '{"name":"commune-endpoint","version":"1.1.0"}\n');
  await chmod(path.join(t2, RE_MODED), 0o755);
  const common = { outDir: hub, name: 'commune-endpoint', arch: 'x64' as const, baseUrl: server.url, expiresDays: 30 };
  p1 = await packTree({ ...common, tree: t1, version: '1.0.0' });
  p2 = await packTree({ ...common, tree: t2, version: '1.1.0' });
  m2 = JSON.parse(await readFile(p2.manifest, 'utf8')) as OtaManifest;
  full2 = path.join(work, 'full-1.1.0');
  await unpack(p2.bundle.file, full2);
});
afterAll(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

beforeEach(async () => {
  const box = await mkdtemp(path.join(work, 'box-'));
  releases = path.join(box, 'releases');
  await unpack(p1.bundle.file, path.join(releases, '1.0.0'));
  await writeFile(path.join(releases, '1.0.0', '.complete'), `${JSON.stringify({ version: '1.0.0', sha256: p1.bundle.sha256 })}\n`);
  staging = path.join(releases, '.1.1.0.staging');
  server.requests.length = 0;
});

const indexBytes = async (): Promise<Buffer> => Buffer.from(await (await fetch(m2.files!.index.url)).arrayBuffer());
const assemble = async (over: Partial<Parameters<typeof assembleRelease>[0]> = {}) =>
  assembleRelease({ index: await indexBytes(), indexSha256: m2.files!.index.sha256, objectsUrl: m2.files!.objectsUrl, haveDirs: await indexedReleases(releases), stagingDir: staging, retries: 1, sleep: async () => undefined, ...over });

describe('assembling a release from its file index', () => {
  it('a JS-only change: only the 3 changed files and package.json are fetched, the rest linked, the tree is the bundle’s', async () => {
    const before = await treeOf(path.join(releases, '1.0.0'));
    const r = await assemble();
    const want = await treeOf(full2);
    const got = await treeOf(staging);
    expect(withoutIno(got)).toEqual(withoutIno(want));

    const fetched = [...CHANGED, 'package.json'];
    const sizes = await Promise.all(fetched.map(async (f) => (await lstat(path.join(staging, f))).size));
    const objects = server.requests.filter((q) => q.path.startsWith('/objects/'));
    expect(objects.map((q) => q.path).sort()).toEqual(fetched.map((f) => `/objects/${got.get(f)!.sha}`).sort());
    expect(objects.every((q) => q.status === 200)).toBe(true);
    const files = [...got].filter(([p, n]) => n.type === 'file' && p !== '.ep-index.json');
    expect(r).toEqual({ files: files.length, fetchedFiles: 4, fetchedBytes: sizes.reduce((a, b) => a + b, 0), copiedFiles: 1, keptFiles: 0, linkedFiles: files.length - 4 - 1 - 1 });
    expect(objects.reduce((n, q) => n + q.bytes, 0)).toBe(r.fetchedBytes);

    // Unchanged files share an inode of the running release (the duplicate LICENSEs: the same one);
    // the mode change is a copy; the running release is untouched.
    const oldInodes = new Map<string, Set<number>>();
    for (const n of before.values()) if (n.type === 'file') oldInodes.set(n.sha!, (oldInodes.get(n.sha!) ?? new Set()).add(n.ino!));
    for (const [p, n] of files) {
      const old = before.get(p)!;
      const same = old.sha === n.sha && old.mode === n.mode && n.sha !== sha(Buffer.alloc(0));
      expect([p, oldInodes.get(n.sha!)?.has(n.ino!) ?? false]).toEqual([p, same]);
    }
    expect(got.get('node_modules/b/LICENSE')!.ino).toBe(got.get('node_modules/a/LICENSE')!.ino);
    expect(got.get(RE_MODED)!.mode).toBe(0o755);
    expect(await treeOf(path.join(releases, '1.0.0'))).toEqual(before);

    await completeAssembled(staging, path.join(releases, '1.1.0'), { version: '1.1.0', sha256: p2.bundle.sha256 });
    expect(await indexedReleases(releases)).toEqual([path.join(releases, '1.0.0'), path.join(releases, '1.1.0')]);
    expect(JSON.parse(await readFile(path.join(releases, '1.1.0', '.complete'), 'utf8'))).toEqual({ version: '1.1.0', sha256: p2.bundle.sha256 });
  });

  it('a corrupted object on the server: sha256_mismatch naming the file, nothing placed outside the staging dir; fixed, a re-run completes', async () => {
    const object = path.join(work, 'hub', 'objects', sha(await readFile(path.join(work, 'src-1.1.0', CHANGED[1]!))));
    const good = await readFile(object);
    const before = await treeOf(path.join(releases, '1.0.0'));
    await writeFile(object, Buffer.from(good.map((b, i) => (i === 100 ? b ^ 1 : b))));
    try {
      const e = await assemble().catch((err: unknown) => err);
      expect(isDeltaError(e) && e.code).toBe('sha256_mismatch');
      expect((e as Error).message).toContain(CHANGED[1]);
    } finally {
      await writeFile(object, good);
    }
    expect((await readdir(releases)).sort()).toEqual(['.1.1.0.staging', '1.0.0']);
    expect(await treeOf(path.join(releases, '1.0.0'))).toEqual(before);
    await expect(lstat(path.join(staging, CHANGED[1]!))).rejects.toThrow(/ENOENT/);

    const r = await assemble();
    expect(r.fetchedFiles).toBeGreaterThanOrEqual(1);
    expect(r.fetchedFiles + r.keptFiles).toBeGreaterThanOrEqual(4);
    expect(withoutIno(await treeOf(staging))).toEqual(withoutIno(await treeOf(full2)));
  });

  it('a corrupted file in the running release is fetched, not linked', async () => {
    const victim = 'node_modules/a/lib/f8.js';
    const local = path.join(releases, '1.0.0', victim);
    const bytes = await readFile(local);
    await writeFile(local, Buffer.from(bytes.map((b, i) => (i === 0 ? b ^ 0xff : b))));
    const r = await assemble();
    expect(r.fetchedFiles).toBe(5);
    expect(server.requests.some((q) => q.path === `/objects/${sha(bytes)}`)).toBe(true);
    expect(await readFile(path.join(staging, victim))).toEqual(bytes);
    expect((await lstat(path.join(staging, victim))).ino).not.toBe((await lstat(local)).ino);
  });

  const dir = { path: 'a', type: 'dir', mode: 0o755 };
  const file = (p: string) => ({ path: p, type: 'file', mode: 0o644, size: 3, sha256: sha(Buffer.from('abc')) });
  it.each([
    ['../x', [file('../x')], /index: \.\.\/x: a '\.\.' segment/],
    ['/etc/x', [file('/etc/x')], /index: \/etc\/x: an absolute path/],
    ['a/l → ../../..', [dir, { path: 'a/l', type: 'symlink', target: '../../..' }], /index: a\/l: symlink target \.\.\/\.\.\/\.\. leaves the release/],
    ['a/l → /etc', [dir, { path: 'a/l', type: 'symlink', target: '/etc' }], /index: a\/l: symlink to the absolute path \/etc/],
    ['a/l/x under a symlink', [dir, { path: 'a/l', type: 'symlink', target: '..' }, file('a/l/x')], /index: a\/l\/x: its parent a\/l is not a directory/],
  ])('an index with %s is refused with the path, before anything is written', async (_what, files, message) => {
    const index = Buffer.from(JSON.stringify({ v: 1, files }));
    const e = await assemble({ index, indexSha256: undefined }).catch((err: unknown) => err);
    expect(isDeltaError(e) && e.code).toBe('bad_index');
    expect((e as Error).message).toMatch(message);
    await expect(lstat(staging)).rejects.toThrow(/ENOENT/);
    expect(server.requests.filter((q) => q.path.startsWith('/objects/'))).toEqual([]);
  });

  it('index bytes that are not the manifest’s: refused before anything is written', async () => {
    const e = await assemble({ indexSha256: '0'.repeat(64) }).catch((err: unknown) => err);
    expect(isDeltaError(e) && e.code).toBe('sha256_mismatch');
    await expect(lstat(staging)).rejects.toThrow(/ENOENT/);
  });
});
