/**
 * `ep ota pack` as a release engineer runs it: the built CLI in real processes, on a
 * snapshot of this project's built tree (package.json, dist/, node_modules/; `npm run
 * build` first) so that a build beside the test cannot change what is packed. The bundle
 * unpacks to an app that runs with its production node_modules only, signs and verifies,
 * and packs the same twice.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OTA_ARCHES, type OtaManifest } from '../../ota/index.js';
import { decodeIndex, machineArch } from '../../ota/transfer.js';
import { snapshotRoot } from '../bench/ota-delta.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);
const ARCH = machineArch()!;
const V = '1.4.0';

function ep(root: string, args: string[], cwd = root): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'dist', 'device', 'cli', 'ep.js'), ...args], { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let work: string;
let snap: string;
let packs: Array<{ code: number; stdout: string; stderr: string; out: string; manifest: OtaManifest }>;
let tree: string;
const name = `ep-${V}-${ARCH}`;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ep-ota-pack-'));
  snap = path.join(work, 'root');
  await snapshotRoot(ROOT, snap);
  const t0 = Date.now();
  packs = await Promise.all(
    ['out-a', 'out-b'].map(async (o) => {
      const out = path.join(work, o);
      const r = await ep(snap, ['ota', 'pack', '--version', V, '--arch', ARCH, '--out', out, '--base-url', 'https://hub.example/ota/'], work);
      const manifest = r.code === 0 ? (JSON.parse(await readFile(path.join(out, `${name}.manifest.json`), 'utf8')) as OtaManifest) : (null as unknown as OtaManifest);
      return { ...r, out, manifest };
    }),
  );
  process.stderr.write(`ota-pack: two packs side by side in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  tree = path.join(work, 'unpacked');
  await mkdir(tree);
  if (packs[0]!.code === 0) await run('tar', ['-xzf', path.join(packs[0]!.out, `${name}.tar.gz`), '-C', tree]);
}, 120_000);
afterAll(async () => rm(work, { recursive: true, force: true }));

const exists = (f: string): Promise<boolean> => lstat(f).then(() => true, () => false);

describe('ep ota pack', () => {
  it('writes the bundle, the manifest (unsigned), the index and the objects, and says what to run next', async () => {
    const [a] = packs;
    expect([a!.code, a!.stderr]).toEqual([0, '']);
    expect(a!.stdout).toMatch(new RegExp(`ep ota sign --key \\S+ \\S*${name}\\.manifest\\.json`));
    expect(a!.stdout).toMatch(new RegExp(`ep ota verify --pubkey \\S+ \\S*${name}\\.manifest\\.json \\S*${name}\\.tar\\.gz`));
    expect((await readdir(a!.out)).sort()).toEqual([`${name}.index.json`, `${name}.index.json.gz`, `${name}.manifest.json`, `${name}.tar.gz`, 'objects']);
    const m = a!.manifest;
    expect(m).toMatchObject({ name: 'commune-endpoint', version: V, arch: [ARCH], bundle: { url: `https://hub.example/ota/${name}.tar.gz` } });
    expect(Date.parse(m.expiresAt) - Date.parse(m.releasedAt)).toBe(90 * 86_400_000);
    const gz = await readFile(path.join(a!.out, `${name}.index.json.gz`));
    expect(m.files).toEqual({ index: { url: `https://hub.example/ota/${name}.index.json.gz`, sha256: createHash('sha256').update(gz).digest('hex'), size: gz.length }, objectsUrl: 'https://hub.example/ota/objects/' });
    const json = await readFile(path.join(a!.out, `${name}.index.json`));
    expect(gunzipSync(gz)).toEqual(json);
    expect(await readFile(path.join(tree, '.ep-index.json'))).toEqual(json);
    // Every distinct non-empty file is an object, named by its sha256.
    const { index } = decodeIndex(json);
    const shas = new Set(index.files.flatMap((e) => (e.type === 'file' && e.size > 0 ? [e.sha256] : [])));
    expect((await readdir(path.join(a!.out, 'objects'))).sort()).toEqual([...shas].sort());
    const some = index.files.find((e) => e.path === 'dist/device/cli/ep.js');
    expect(some?.type === 'file' && (await readFile(path.join(a!.out, 'objects', some.sha256)))).toEqual(await readFile(path.join(tree, 'dist/device/cli/ep.js')));
  });

  it('the bundle is the app as a box runs it: version V, production node_modules only, the native parts built', async () => {
    expect((await readdir(tree)).sort()).toEqual(['.ep-index.json', 'dist', 'node_modules', 'package.json']);
    const version = await run(process.execPath, ['--input-type=module', '-e', "const { readVersion } = await import('./dist/lib/index.js'); console.log(await readVersion())"], { cwd: tree });
    expect(version.stdout.trim()).toBe(V);
    const help = await ep(tree, ['help']);
    expect([help.code, help.stdout]).toEqual([0, expect.stringMatching(/^usage: ep <command>/)]);
    for (const dev of ['vitest', 'typescript', 'eslint', 'tsx', '@vitest', '.vite']) expect([dev, await exists(path.join(tree, 'node_modules', dev))]).toEqual([dev, false]);
    expect(await exists(path.join(tree, 'dist', 'test'))).toBe(false);
    expect(await exists(path.join(tree, 'dist/native/libgstepframer.so'))).toBe(true);
    expect(await exists(path.join(tree, 'node_modules/gstreamer-superficial/build/Release/gstreamer-superficial.node'))).toBe(true);
    // The addon loads from the bundle with its production dependencies alone.
    const gst = await run(process.execPath, ['-e', "console.log(typeof require('gstreamer-superficial').Pipeline)"], { cwd: tree });
    expect(gst.stdout.trim()).toBe('function');
  });

  it('ep ota sign, then ep ota verify with the bundle: exit 0', async () => {
    const out = packs[0]!.out;
    expect((await ep(snap, ['ota', 'keygen', '--out', path.join(work, 'keys')])).code).toBe(0);
    const manifest = path.join(out, `${name}.manifest.json`);
    const s = await ep(snap, ['ota', 'sign', '--key', path.join(work, 'keys', 'ota-key.pem'), manifest]);
    expect([s.code, s.stderr]).toEqual([0, '']);
    const v = await ep(snap, ['ota', 'verify', '--pubkey', path.join(work, 'keys', 'ota-key.pub.pem'), manifest, path.join(out, `${name}.tar.gz`)]);
    expect([v.code, v.stderr]).toEqual([0, '']);
    expect(v.stdout).toMatch(/^OK: commune-endpoint 1\.4\.0 signed by key [0-9a-f]{16}, expires .*, sha256 matches/);
  });

  it('two packs of the same tree: the same bundle sha256 and the same index', async () => {
    const [a, b] = packs;
    expect(b!.code).toBe(0);
    expect(b!.manifest.bundle).toEqual({ ...a!.manifest.bundle });
    expect(b!.manifest.files).toEqual(a!.manifest.files);
  });

  it('an --arch other than this machine’s is refused (exit 1, nothing written): the native addons are this machine’s', async () => {
    const other = OTA_ARCHES.find((a) => a !== ARCH)!;
    const out = path.join(work, 'out-other');
    const r = await ep(snap, ['ota', 'pack', '--version', V, '--arch', other, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^ep ota pack: --arch ${other}: this machine is ${ARCH}, .*native addons.*Pack on a ${other} machine`));
    expect(await exists(out)).toBe(false);
  });

  it('a tree without the built epframer: refused, run npm run build first; usage errors exit 2', async () => {
    const bare = path.join(work, 'bare');
    await mkdir(bare);
    await cp(path.join(snap, 'package.json'), path.join(bare, 'package.json'));
    await cp(path.join(snap, 'dist'), path.join(bare, 'dist'), { recursive: true, filter: (f) => !f.endsWith('libgstepframer.so') });
    await symlink(path.join(snap, 'node_modules'), path.join(bare, 'node_modules')); // the CLI's own imports; the pack stops before copying
    const r = await ep(bare, ['ota', 'pack', '--version', V, '--arch', ARCH, '--out', path.join(work, 'out-bare')]);
    expect([r.code, r.stderr]).toEqual([1, expect.stringMatching(/libgstepframer\.so is missing: run npm run build first/)]);
    expect((await ep(snap, ['ota', 'pack', '--version', V, '--arch', ARCH])).code).toBe(2);
    expect((await ep(snap, ['ota', 'pack', '--version', 'one', '--arch', ARCH, '--out', path.join(work, 'x')])).stderr).toMatch(/--version "one" is not a semantic version/);
  });
});
