/**
 * `ep ota pack`: the built app as it runs on a box, bundled for an update.
 *
 * The release tree is package.json (its "version" set to the release's: the app reads its
 * version there), dist/ (the tsc output without dist/test, and dist/native/libgstepframer.so),
 * provisioning/install.sh with provisioning/systemd/ (a bundle installs itself on a new box)
 * and the production node_modules/ — the project's own copied and `npm prune --omit=dev`d
 * offline, so the native addons built here (gstreamer-superficial, epoll) go as they are and
 * nothing is compiled on the box. That is why a pack is for the arch of the machine it runs on.
 *
 * Written to the out dir (a hub serves it as static files):
 *   ep-V-A.tar.gz          the tree plus its .ep-index.json; sorted entries, owner 0, mtime 0,
 *                          gzip without a timestamp: the same tree packs to the same sha256
 *   ep-V-A.index.json      the file index (ota/delta.ts), and .gz of it (what the manifest names)
 *   objects/<sha256>       each distinct file's bytes (shared by the releases packed into the dir)
 *   ep-V-A.manifest.json   the manifest of CONTRACT.md, with files {index, objectsUrl}; unsigned
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, createWriteStream, existsSync } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip, gzipSync } from 'node:zlib';
import { INDEX_FILE, INDEX_MAX_BYTES, decodeIndex, sha256File, type IndexEntry } from './delta.js';
import { OTA_ARCHES, decodeManifest, type OtaArch, type OtaManifest } from './manifest.js';
import { parseVersion } from './version.js';

const run = promisify(execFile);

/** A pack refused or failed, with what to do about it. */
export class PackError extends Error {
  override name = 'PackError';
}
export const isPackError = (e: unknown): e is PackError => e instanceof PackError;

/** The OTA arch of a Node arch (process.arch), or null. */
export function machineArch(nodeArch: string = process.arch): OtaArch | null {
  return ({ x64: 'x64', arm64: 'arm64', arm: 'armhf' } as Record<string, OtaArch>)[nodeArch] ?? null;
}

export const DEFAULT_BASE_URL = 'https://ota.invalid/ep';
export const DEFAULT_EXPIRES_DAYS = 90;

export interface PackOptions {
  /** The project root: package.json, dist/, node_modules/. */
  root: string;
  version: string;
  arch: string;
  outDir: string;
  /** Where outDir is served; default DEFAULT_BASE_URL (to be replaced before signing). */
  baseUrl?: string;
  expiresDays?: number;
  now?: number;
  /** For tests: the machine's process.arch. */
  nodeArch?: string;
}

export interface PackResult {
  bundle: { file: string; size: number; sha256: string };
  manifest: string;
  index: { file: string; gzFile: string; size: number; gzSize: number; entries: number };
  objects: { dir: string; files: number; bytes: number; added: number };
  /** Bytes of the release's files (unpacked). */
  treeBytes: number;
  /** A stale MANIFEST.sig removed (the manifest was rewritten). */
  removedSig: string | null;
  ms: number;
}

const exists = (f: string): Promise<boolean> => stat(f).then(() => true, () => false);

/** npm beside the node that runs us (the official build's layout), else the PATH's. */
const npmCommand = (): string => {
  const beside = path.join(path.dirname(process.execPath), 'npm');
  return existsSync(beside) ? beside : 'npm';
};

async function checkInputs(o: PackOptions): Promise<{ arch: OtaArch; baseUrl: string; expiresDays: number }> {
  if (!parseVersion(o.version)) throw new PackError(`--version ${JSON.stringify(o.version)} is not a semantic version (1.2.3, 1.2.3-rc.1)`);
  if (!(OTA_ARCHES as readonly string[]).includes(o.arch)) throw new PackError(`--arch ${JSON.stringify(o.arch)}: one of ${OTA_ARCHES.join(', ')}`);
  const own = machineArch(o.nodeArch ?? process.arch);
  if (o.arch !== own) {
    throw new PackError(
      `--arch ${o.arch}: this machine is ${own ?? o.nodeArch ?? process.arch}, and a bundle carries the native addons of the machine that packs it (node_modules/*/build/Release/*.node, dist/native/libgstepframer.so). Pack on a ${o.arch} machine (or in a ${o.arch} root, e.g. scripts/fresh-check.sh), after npm install and npm run build there`,
    );
  }
  const baseUrl = (o.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(baseUrl) || baseUrl.length > 1900) throw new PackError(`--base-url ${JSON.stringify(o.baseUrl)}: an http:// or https:// URL (where the out dir is served)`);
  const expiresDays = o.expiresDays ?? DEFAULT_EXPIRES_DAYS;
  if (!Number.isInteger(expiresDays) || expiresDays < 1 || expiresDays > 3650) throw new PackError(`--expires-days ${String(o.expiresDays)}: a whole number of days from 1 to 3650`);
  for (const [f, hint] of [
    ['package.json', 'is this the project root?'],
    ['dist', 'run npm run build first'],
    [path.join('dist', 'native', 'libgstepframer.so'), 'run npm run build first (it builds epframer with scripts/build-native.sh; see its errors)'],
    ['node_modules', 'run npm install (scripts/setup.sh) and npm run build first'],
  ] as const) {
    if (!(await exists(path.join(o.root, f)))) throw new PackError(`${path.join(o.root, f)} is missing: ${hint}`);
  }
  return { arch: o.arch as OtaArch, baseUrl, expiresDays };
}

/** Every entry under `tree`, sorted by path, files hashed (streaming). */
export async function buildIndex(tree: string): Promise<IndexEntry[]> {
  const out: IndexEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const n of await readdir(path.join(tree, rel))) {
      const p = rel ? `${rel}/${n}` : n;
      if (p === INDEX_FILE) continue;
      const abs = path.join(tree, p);
      const s = await lstat(abs);
      if (s.isSymbolicLink()) out.push({ path: p, type: 'symlink', target: await readlink(abs) });
      else if (s.isDirectory()) {
        out.push({ path: p, type: 'dir', mode: s.mode & 0o777 });
        await walk(p);
      } else if (s.isFile()) out.push({ path: p, type: 'file', mode: s.mode & 0o777, size: s.size, sha256: await sha256File(abs) });
      else throw new PackError(`${p}: neither a file, a directory nor a symlink; a release holds only those`);
    }
  };
  await walk('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** One entry a line: readable, and gzip makes it small. */
export const indexJson = (entries: readonly IndexEntry[]): Buffer => Buffer.from(`{"v":1,"files":[\n${entries.map((e) => JSON.stringify(e)).join(',\n')}\n]}\n`);

/** Every package with a binding.gyp must carry its built addon: nothing is compiled on the box. */
function checkAddons(entries: readonly IndexEntry[]): void {
  const paths = entries.map((e) => e.path);
  for (const p of paths) {
    if (!p.endsWith('/binding.gyp')) continue;
    const pkg = p.slice(0, -'/binding.gyp'.length);
    if (!/(^|\/)node_modules\/(@[^/]+\/)?[^/]+$/.test(pkg)) continue;
    if (!paths.some((q) => q.startsWith(`${pkg}/build/Release/`) && q.endsWith('.node'))) throw new PackError(`${pkg} has no built addon (build/Release/*.node): run npm install (or npm rebuild) on this machine first`);
  }
}

/** The production node_modules in `tree`: npm prune --omit=dev, offline, no scripts. */
async function prune(root: string, tree: string): Promise<void> {
  if (await exists(path.join(root, 'package-lock.json'))) await copyFile(path.join(root, 'package-lock.json'), path.join(tree, 'package-lock.json'));
  try {
    await run(npmCommand(), ['prune', '--omit=dev', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: tree, maxBuffer: 16 * 1024 * 1024 });
  } catch (e) {
    throw new PackError(`npm prune --omit=dev failed in the staging copy: ${String((e as { stderr?: string }).stderr ?? (e as Error).message).trim().slice(-2000)}`);
  }
  await rm(path.join(tree, 'package-lock.json'), { force: true });
  // npm's hidden lockfile: only npm reads it (never run on the box), and it names the release's version,
  // so it would change in every release.
  await rm(path.join(tree, 'node_modules', '.package-lock.json'), { force: true });
  const nm = path.join(tree, 'node_modules');
  for (const n of await readdir(nm)) {
    // Tools' caches (.vite of vitest, .cache) are no packages, and change as tests run.
    if (n.startsWith('.') && n !== '.bin') await rm(path.join(nm, n), { recursive: true, force: true });
    // prune leaves the scope dirs and .bin of what it removed: empty ones go.
    if (!n.startsWith('@') && n !== '.bin') continue;
    if ((await readdir(path.join(nm, n)).catch(() => ['?'])).length === 0) await rmdir(path.join(nm, n));
  }
}

/** tar (GNU) of `names` in `tree`, deterministic, gzipped here (no timestamp in the header) and hashed as written. */
async function tarGz(tree: string, names: string[], dest: string): Promise<{ size: number; sha256: string }> {
  const args = ['--sort=name', '--format=gnu', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--hard-dereference', '-C', tree, '-cf', '-', '--', ...names];
  const tar = spawn('tar', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  tar.stderr.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number>((resolve, reject) => {
    tar.on('error', reject);
    tar.on('close', (code) => resolve(code ?? 1));
  });
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    tar.stdout,
    createGzip({ level: 9 }),
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const c of chunks) {
        hash.update(c);
        size += c.length;
        yield c;
      }
    },
    createWriteStream(dest, { mode: 0o644 }),
  );
  const code = await exited;
  if (code !== 0) throw new PackError(`tar exited with ${code}: ${stderr.trim()}`);
  return { size, sha256: hash.digest('hex') };
}

/** objects/<sha256> for each distinct non-empty file (a good one already there is kept). */
async function writeObjects(tree: string, entries: readonly IndexEntry[], dir: string): Promise<PackResult['objects']> {
  await mkdir(dir, { recursive: true });
  const r = { dir, files: 0, bytes: 0, added: 0 };
  const seen = new Set<string>();
  for (const e of entries) {
    if (e.type !== 'file' || e.size === 0 || seen.has(e.sha256)) continue;
    seen.add(e.sha256);
    r.files++;
    r.bytes += e.size;
    const dest = path.join(dir, e.sha256);
    const have = await lstat(dest).catch(() => null);
    if (have?.isFile() && have.size === e.size && (await sha256File(dest)) === e.sha256) continue;
    const tmp = path.join(dir, `.${e.sha256}.tmp-${process.pid}`);
    await rm(tmp, { force: true });
    await copyFile(path.join(tree, e.path), tmp, constants.COPYFILE_FICLONE);
    await chmod(tmp, 0o644);
    await rename(tmp, dest);
    r.added++;
  }
  return r;
}

async function writeAtomic(file: string, bytes: Buffer | string): Promise<void> {
  await writeFile(`${file}.tmp-${process.pid}`, bytes, { mode: 0o644 });
  await rename(`${file}.tmp-${process.pid}`, file);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export interface PackTreeOptions {
  /** A release tree: what a box runs (its .ep-index.json is written here). */
  tree: string;
  outDir: string;
  name: string;
  version: string;
  arch: OtaArch;
  baseUrl: string;
  expiresDays: number;
  now?: number;
}

export type PackTreeResult = Omit<PackResult, 'ms'>;

/** Indexes a release tree and writes the bundle, the index, the objects and the manifest (pack's second half). */
export async function packTree(o: PackTreeOptions): Promise<PackTreeResult> {
  const { tree } = o;
  const outDir = path.resolve(o.outDir);
  await mkdir(outDir, { recursive: true });
  const entries = await buildIndex(tree);
  checkAddons(entries);
  const json = indexJson(entries);
  try {
    decodeIndex(json); // what a box would refuse is not packed
  } catch (e) {
    throw new PackError(`the release tree cannot be indexed: ${(e as Error).message}`);
  }
  const gz = gzipSync(json, { level: 9 });
  if (gz.length > INDEX_MAX_BYTES) throw new PackError(`the file index is ${gz.length} bytes gzipped, over the ${INDEX_MAX_BYTES}-byte limit`);
  await writeFile(path.join(tree, INDEX_FILE), json, { mode: 0o644 });

  const name = `ep-${o.version}-${o.arch}`;
  const bundleFile = path.join(outDir, `${name}.tar.gz`);
  const bundleTmp = `${bundleFile}.tmp-${process.pid}`;
  const bundle = await tarGz(tree, (await readdir(tree)).sort(), bundleTmp);
  const objects = await writeObjects(tree, entries, path.join(outDir, 'objects'));
  const indexFile = path.join(outDir, `${name}.index.json`);
  await writeAtomic(indexFile, json);
  await writeAtomic(`${indexFile}.gz`, gz);
  await rename(bundleTmp, bundleFile);

  const now = o.now ?? Date.now();
  const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const manifest: OtaManifest = {
    name: o.name,
    version: o.version,
    arch: [o.arch],
    bundle: { url: `${o.baseUrl}/${name}.tar.gz`, sha256: bundle.sha256, size: bundle.size },
    releasedAt: iso(now),
    expiresAt: iso(now + o.expiresDays * 86_400_000),
    files: { index: { url: `${o.baseUrl}/${name}.index.json.gz`, sha256: sha256(gz), size: gz.length }, objectsUrl: `${o.baseUrl}/objects/` },
  };
  const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  const decoded = decodeManifest(bytes);
  if (!decoded.ok) throw new PackError(`the manifest would be invalid: ${decoded.problems.join('; ')}`);
  const manifestFile = path.join(outDir, `${name}.manifest.json`);
  const sig = `${manifestFile}.sig`;
  const removedSig = (await exists(sig)) ? sig : null;
  if (removedSig) await rm(sig);
  await writeAtomic(manifestFile, bytes); // last: it names everything above
  return {
    bundle: { file: bundleFile, ...bundle },
    manifest: manifestFile,
    index: { file: indexFile, gzFile: `${indexFile}.gz`, size: json.length, gzSize: gz.length, entries: entries.length },
    objects,
    treeBytes: entries.reduce((n, e) => n + (e.type === 'file' ? e.size : 0), 0),
    removedSig,
  };
}

/** `ep ota pack`: the built app in `root` as a release for this machine's arch. */
export async function pack(o: PackOptions): Promise<PackResult> {
  const t0 = Date.now();
  const { arch, baseUrl, expiresDays } = await checkInputs(o);
  const root = path.resolve(o.root);
  const outDir = path.resolve(o.outDir);
  const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { name?: unknown; version?: string };
  if (typeof pkg.name !== 'string') throw new PackError(`${path.join(root, 'package.json')} has no name`);
  await mkdir(outDir, { recursive: true });
  const work = await mkdtemp(path.join(outDir, '.ep-pack-'));
  try {
    const tree = path.join(work, 'tree');
    await mkdir(tree);
    await run('cp', ['-a', '-H', '--reflink=auto', path.join(root, 'node_modules'), path.join(root, 'dist'), tree]);
    await rm(path.join(tree, 'dist', 'test'), { recursive: true, force: true }); // tests and benchmarks: not for the box
    // The installer and its units, so a bundle can install itself on a new box (docs/provisioning.md).
    // Optional: a tree without them (a test's snapshot of dist/ and node_modules/) packs as before.
    if (await exists(path.join(root, 'provisioning', 'install.sh'))) {
      await mkdir(path.join(tree, 'provisioning'));
      await run('cp', ['-a', '--reflink=auto', path.join(root, 'provisioning', 'install.sh'), path.join(root, 'provisioning', 'systemd'), path.join(tree, 'provisioning')]);
    }
    await writeFile(path.join(tree, 'package.json'), `${JSON.stringify({ ...pkg, version: o.version }, null, 2)}\n`, { mode: 0o644 });
    await prune(root, tree);
    const r = await packTree({ tree, outDir, name: pkg.name, version: o.version, arch, baseUrl, expiresDays, now: o.now });
    return { ...r, ms: Date.now() - t0 };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
