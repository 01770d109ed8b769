/**
 * Fewer bytes on rural 4G: a release assembled from its file index (`.ep-index.json`,
 * written by `ep ota pack`) instead of the whole bundle. Every file is content addressed
 * (`objectsUrl + sha256`); a file one of the box's releases already holds is hard-linked
 * from it (copied across file systems, or when its mode differs: a link shares the
 * inode, and the running release is never written to), the rest are fetched with
 * download() (Range resume, retries) and checked. Nothing outside `stagingDir` is written;
 * no whole file is held in memory. Whether the staging dir becomes releases/<v>/ is the
 * caller's business (completeAssembled below does it the way stageRelease does for a bundle).
 *
 * Index: `{v: 1, files: [{path, type: 'file', mode, size, sha256} | {path, type: 'symlink',
 * target} | {path, type: 'dir', mode}]}`, sorted by path, every entry of the release but
 * the index itself. Refused (DeltaError 'bad_index', naming the path): absolute paths,
 * `..`/`.`/empty segments, an entry whose parent is not a directory listed before it (so no
 * path goes through a symlink), symlink targets other than `../…` followed by plain names
 * or leaving the release, modes above 0777.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, link, lstat, mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { fsyncDir } from '../lib/index.js';
import { checkBundleFile } from './bundle-check.js';
import { download, type DownloadOptions } from './download.js';

export const INDEX_FILE = '.ep-index.json';
/** The index (and its gzip) is at most this long: ~100 000 files. */
export const INDEX_MAX_BYTES = 16 * 1024 * 1024;
const MAX_ENTRIES = 200_000;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const FETCH_DIR = '.ep-fetch';
const RESERVED = new Set([INDEX_FILE, '.complete', FETCH_DIR]);

export type IndexEntry =
  | { path: string; type: 'file'; mode: number; size: number; sha256: string }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'dir'; mode: number };
export interface FileIndex {
  v: 1;
  files: IndexEntry[];
}
type FileEntry = Extract<IndexEntry, { type: 'file' }>;

export type DeltaCode = 'bad_index' | 'sha256_mismatch' | 'too_large' | 'download_failed' | 'aborted';

/** Assembly failed; the caller falls back to the full bundle. */
export class DeltaError extends Error {
  constructor(
    readonly code: DeltaCode,
    message: string,
  ) {
    super(message);
    this.name = 'DeltaError';
  }
}
export const isDeltaError = (e: unknown): e is DeltaError => e instanceof DeltaError;

const bad = (m: string): DeltaError => new DeltaError('bad_index', m);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isMode = (m: unknown): m is number => Number.isInteger(m) && (m as number) >= 0 && (m as number) <= 0o777;

function checkPath(p: string): void {
  if (p.length === 0 || p.length > 4096 || p.includes('\0')) throw bad(`index: ${JSON.stringify(p.slice(0, 200))}: not a usable path`);
  if (p.startsWith('/')) throw bad(`index: ${p}: an absolute path`);
  const segs = p.split('/');
  if (segs.includes('..')) throw bad(`index: ${p}: a '..' segment`);
  if (segs.some((s) => s === '' || s === '.')) throw bad(`index: ${p}: an empty or '.' segment`);
  if (RESERVED.has(p)) throw bad(`index: ${p}: a reserved name`);
}

/** `../` as often as the link's depth allows, then plain names: it resolves inside the release. */
function checkTarget(p: string, t: unknown): void {
  if (typeof t !== 'string' || t.length === 0 || t.length > 4096 || t.includes('\0')) throw bad(`index: ${p}: no usable symlink target`);
  if (t.startsWith('/')) throw bad(`index: ${p}: symlink to the absolute path ${t}`);
  const segs = t.split('/');
  let ups = 0;
  while (segs[ups] === '..') ups++;
  if (ups > p.split('/').length - 1) throw bad(`index: ${p}: symlink target ${t} leaves the release`);
  if (segs.slice(ups).some((s) => s === '' || s === '.' || s === '..')) throw bad(`index: ${p}: symlink target ${t} is not ../… followed by plain names`);
}

/** Index bytes (plain JSON or its gzip) → the index and its plain JSON bytes; DeltaError 'bad_index' otherwise. */
export function decodeIndex(bytes: Uint8Array): { index: FileIndex; json: Buffer } {
  let json = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (json[0] === 0x1f && json[1] === 0x8b) {
    try {
      json = gunzipSync(json, { maxOutputLength: INDEX_MAX_BYTES });
    } catch (e) {
      throw bad(`index: not a gzip of at most ${INDEX_MAX_BYTES} bytes (${(e as Error).message})`);
    }
  }
  if (json.length > INDEX_MAX_BYTES) throw bad(`index: ${json.length} bytes is over the ${INDEX_MAX_BYTES}-byte limit`);
  let v: unknown;
  try {
    v = JSON.parse(json.toString('utf8'));
  } catch {
    throw bad('index: not JSON');
  }
  if (!isObj(v) || v.v !== 1 || !Array.isArray(v.files)) throw bad('index: not {"v": 1, "files": […]}');
  if (v.files.length > MAX_ENTRIES) throw bad(`index: ${v.files.length} entries is over the ${MAX_ENTRIES} limit`);
  const seen = new Map<string, IndexEntry['type']>();
  const files: IndexEntry[] = [];
  for (const [i, e] of (v.files as unknown[]).entries()) {
    if (!isObj(e) || typeof e.path !== 'string') throw bad(`index.files[${i}]: no path`);
    const p = e.path;
    checkPath(p);
    if (seen.has(p)) throw bad(`index: ${p}: listed twice`);
    const parent = path.posix.dirname(p);
    if (parent !== '.' && seen.get(parent) !== 'dir') throw bad(`index: ${p}: its parent ${parent} is not a directory listed before it`);
    if (e.type === 'file') {
      if (!isMode(e.mode) || !Number.isSafeInteger(e.size) || (e.size as number) < 0 || typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) throw bad(`index: ${p}: a file needs mode (≤ 0777), size and sha256`);
      if (e.size === 0 && e.sha256 !== EMPTY_SHA256) throw bad(`index: ${p}: an empty file with the sha256 of a non-empty one`);
      files.push({ path: p, type: 'file', mode: e.mode, size: e.size as number, sha256: e.sha256 });
    } else if (e.type === 'dir') {
      if (!isMode(e.mode)) throw bad(`index: ${p}: a dir needs a mode (≤ 0777)`);
      files.push({ path: p, type: 'dir', mode: e.mode });
    } else if (e.type === 'symlink') {
      checkTarget(p, e.target);
      files.push({ path: p, type: 'symlink', target: e.target as string });
    } else throw bad(`index: ${p}: type ${JSON.stringify(e.type)} is not file, dir or symlink`);
    seen.set(p, e.type);
  }
  return { index: { v: 1, files }, json };
}

/** Streams a file through SHA-256. */
export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

interface Local {
  file: string;
  size: number;
}

/** sha256 → the files the given releases hold, from their own indexes (a dir without a readable index is skipped). */
async function localFiles(haveDirs: readonly string[]): Promise<Map<string, Local[]>> {
  const bySha = new Map<string, Local[]>();
  for (const dir of haveDirs) {
    let index: FileIndex;
    try {
      if ((await stat(path.join(dir, INDEX_FILE))).size > INDEX_MAX_BYTES) continue;
      index = decodeIndex(await readFile(path.join(dir, INDEX_FILE))).index;
    } catch {
      continue;
    }
    for (const e of index.files) {
      if (e.type !== 'file' || e.size === 0) continue;
      const list = bySha.get(e.sha256) ?? [];
      list.push({ file: path.join(dir, e.path), size: e.size });
      bySha.set(e.sha256, list);
    }
  }
  return bySha;
}

export interface AssembleOptions extends Pick<DownloadOptions, 'retries' | 'retryBaseMs' | 'retryCapMs' | 'idleTimeoutMs' | 'sleep' | 'random' | 'ca' | 'signal'> {
  /** The index as fetched (gzip or plain JSON). */
  index: Uint8Array;
  /** When given, the index bytes must have this sha256 (the manifest's files.index.sha256). */
  indexSha256?: string;
  /** Where objects are: objectsUrl + sha256. */
  objectsUrl: string;
  /** Release dirs already on the box (each with its own .ep-index.json): sources to link from. */
  haveDirs: readonly string[];
  /** Created if missing. A re-run over the same dir keeps what is in place and resumes partial objects. */
  stagingDir: string;
  /** Objects fetched at the same time. Default 4. */
  parallel?: number;
  /** Called as objects arrive: (bytes fetched, bytes to fetch). */
  progress?: (fetched: number, total: number) => void;
}

export interface AssembleResult {
  files: number;
  /** Files hard-linked from a release on the box. */
  linkedFiles: number;
  /** Files copied from a release on the box (another file system, or another mode). */
  copiedFiles: number;
  /** Files already in the staging dir (a re-run). */
  keptFiles: number;
  fetchedFiles: number;
  fetchedBytes: number;
}

type Source = { kind: 'kept' } | { kind: 'local'; file: string; sameMode: boolean } | { kind: 'fetch' } | { kind: 'empty' };

const modeOf = async (f: string): Promise<number> => (await lstat(f)).mode & 0o777;
const linkFallback = (e: unknown): boolean => ['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP'].includes((e as NodeJS.ErrnoException).code ?? '');

/** Copies `src` to `dest` through a temp file, hashing as it goes; false if the bytes are not `sha256`. */
async function copyChecked(src: string, dest: string, tmpDir: string, e: FileEntry): Promise<boolean> {
  const tmp = path.join(tmpDir, `copy-${e.sha256}-${process.pid}`);
  const h = createHash('sha256');
  await pipeline(createReadStream(src, { highWaterMark: 256 * 1024 }), async function* (chunks: AsyncIterable<Buffer>) {
    for await (const c of chunks) {
      h.update(c);
      yield c;
    }
  }, createWriteStream(tmp, { mode: 0o600 }));
  if (h.digest('hex') !== e.sha256) {
    await rm(tmp, { force: true });
    return false;
  }
  await chmod(tmp, e.mode);
  await rename(tmp, dest);
  return true;
}

/** Hard-links `src` (same mode) or copies it; false when a copy found other bytes than the index says. */
async function linkOrCopy(src: string, dest: string, tmpDir: string, e: FileEntry, sameMode: boolean): Promise<'linked' | 'copied' | false> {
  await rm(dest, { recursive: true, force: true });
  if (sameMode) {
    try {
      await link(src, dest);
      return 'linked';
    } catch (err) {
      if (!linkFallback(err)) throw err;
    }
  }
  return (await copyChecked(src, dest, tmpDir, e)) ? 'copied' : false;
}

/** Decides, per file, where its bytes come from: verified bytes already here, or the server. */
async function planSources(files: FileEntry[], stagingDir: string, local: Map<string, Local[]>): Promise<Source[]> {
  const verified = new Map<string, Promise<boolean>>();
  const check = (file: string, e: FileEntry): Promise<boolean> => {
    let p = verified.get(file);
    if (!p) {
      p = lstat(file).then(
        async (s) => s.isFile() && s.size === e.size && (await sha256File(file)) === e.sha256,
        () => false,
      );
      verified.set(file, p);
    }
    return p;
  };
  const out: Source[] = [];
  for (const e of files) {
    const dest = path.join(stagingDir, e.path);
    if (e.size === 0) out.push({ kind: 'empty' });
    else if ((await check(dest, e)) && (await modeOf(dest)) === e.mode) out.push({ kind: 'kept' });
    else {
      const ok: Local[] = [];
      for (const c of local.get(e.sha256) ?? []) if (c.size === e.size && (await check(c.file, e))) ok.push(c);
      const modes = await Promise.all(ok.map((c) => modeOf(c.file)));
      const same = ok.findIndex((_, i) => modes[i] === e.mode);
      if (ok.length === 0) out.push({ kind: 'fetch' });
      else out.push({ kind: 'local', file: ok[Math.max(same, 0)]!.file, sameMode: same >= 0 });
    }
  }
  return out;
}

/** Builds the release described by `index` in `stagingDir`; throws DeltaError (or an I/O error). */
export async function assembleRelease(o: AssembleOptions): Promise<AssembleResult> {
  if (o.indexSha256 && createHash('sha256').update(o.index).digest('hex') !== o.indexSha256) throw new DeltaError('sha256_mismatch', `the index's sha256 is not the manifest's ${o.indexSha256}`);
  const { index, json } = decodeIndex(o.index);
  const staging = path.resolve(o.stagingDir);
  const tmpDir = path.join(staging, FETCH_DIR);
  const at = (p: string): string => path.join(staging, p);
  await mkdir(tmpDir, { recursive: true });
  const r: AssembleResult = { files: 0, linkedFiles: 0, copiedFiles: 0, keptFiles: 0, fetchedFiles: 0, fetchedBytes: 0 };

  for (const e of index.files) {
    if (e.type !== 'dir') continue;
    const s = await lstat(at(e.path)).catch(() => null);
    if (s && !s.isDirectory()) await rm(at(e.path), { recursive: true, force: true });
    await mkdir(at(e.path), { recursive: true });
    await chmod(at(e.path), e.mode | 0o700); // writable until the end
  }

  const files = index.files.filter((e): e is FileEntry => e.type === 'file');
  r.files = files.length;
  const sources = await planSources(files, staging, await localFiles(o.haveDirs));
  /** The first placed path of each sha256 fetched in this run: the others link from it. */
  const toFetch = new Map<string, FileEntry[]>();
  for (const [i, e] of files.entries()) {
    const s = sources[i]!;
    if (s.kind === 'kept') r.keptFiles++;
    else if (s.kind === 'empty') {
      await rm(at(e.path), { recursive: true, force: true });
      await writeFile(at(e.path), '', { mode: e.mode });
      await chmod(at(e.path), e.mode);
    } else if (s.kind === 'local') {
      const how = await linkOrCopy(s.file, at(e.path), tmpDir, e, s.sameMode);
      if (how === 'linked') r.linkedFiles++;
      else if (how === 'copied') r.copiedFiles++;
      else toFetch.set(e.sha256, [...(toFetch.get(e.sha256) ?? []), e]); // changed under us: fetch it
    } else toFetch.set(e.sha256, [...(toFetch.get(e.sha256) ?? []), e]);
  }

  await fetchAll(o, [...toFetch.values()], staging, tmpDir, r);

  for (const e of index.files) {
    if (e.type !== 'symlink') continue;
    await rm(at(e.path), { force: true, recursive: true });
    await symlink(e.target, at(e.path));
  }
  for (const e of [...index.files].reverse()) if (e.type === 'dir') await chmod(at(e.path), e.mode);
  await writeFile(at(INDEX_FILE), json, { mode: 0o644 });
  await rm(tmpDir, { recursive: true, force: true });
  return r;
}

/** Fetches each sha256 once (`parallel` at a time), checks it, places it, links its other paths to it. */
async function fetchAll(o: AssembleOptions, groups: FileEntry[][], staging: string, tmpDir: string, r: AssembleResult): Promise<void> {
  const total = groups.reduce((n, g) => n + g[0]!.size, 0);
  const stop = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  const base = o.objectsUrl.endsWith('/') ? o.objectsUrl : `${o.objectsUrl}/`;
  let next = 0;
  let failure: unknown = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < groups.length) {
      const group = groups[next++]!;
      const e = group[0]!;
      const tmp = path.join(tmpDir, e.sha256);
      const url = base + e.sha256;
      try {
        const done = r.fetchedBytes;
        const d = await download({ retries: o.retries, retryBaseMs: o.retryBaseMs, retryCapMs: o.retryCapMs, idleTimeoutMs: o.idleTimeoutMs, sleep: o.sleep, random: o.random, ca: o.ca, url, dest: tmp, size: e.size, signal, progress: (have) => o.progress?.(done + have, total) });
        if (!d.ok) throw new DeltaError(d.code, `${e.path}: ${url}: ${d.message}`);
        const c = await checkBundleFile(tmp, e);
        if (!c.ok) {
          await rm(tmp, { force: true });
          throw new DeltaError(c.code === 'sha256_mismatch' ? 'sha256_mismatch' : 'download_failed', `${e.path}: ${url} is not the file the index names (${c.code})`);
        }
        await chmod(tmp, e.mode);
        await rm(path.join(staging, e.path), { recursive: true, force: true });
        await rename(tmp, path.join(staging, e.path));
        r.fetchedFiles++;
        r.fetchedBytes += e.size;
        o.progress?.(r.fetchedBytes, total);
        for (const other of group.slice(1)) {
          if (!(await linkOrCopy(path.join(staging, e.path), path.join(staging, other.path), tmpDir, other, other.mode === e.mode))) throw new Error(`${e.path} changed while it was placed`);
        }
      } catch (err) {
        failure ??= err;
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.parallel ?? 4, groups.length)) }, worker));
  if (failure !== null) throw failure;
}

const run = promisify(execFile);

/**
 * For the caller: the assembled staging dir becomes `target` the way stageRelease makes a
 * bundle's — synced, a `.complete` marker ({version, sha256} of the release's bundle, so
 * isStaged holds), one rename, the parent dir fsynced.
 */
export async function completeAssembled(stagingDir: string, target: string, complete: { version: string; sha256: string }): Promise<void> {
  await run('sync', ['-f', stagingDir]);
  await writeFile(path.join(stagingDir, '.complete'), `${JSON.stringify(complete)}\n`);
  await run('sync', ['-f', stagingDir]);
  await rm(target, { recursive: true, force: true });
  await rename(stagingDir, target);
  await fsyncDir(path.dirname(target));
}

/** The complete releases (a `.complete` marker) under `releasesDir` that carry an index: assembleRelease's haveDirs. */
export async function indexedReleases(releasesDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of (await readdir(releasesDir).catch(() => [] as string[])).sort()) {
    if (n.startsWith('.')) continue;
    const dir = path.join(releasesDir, n);
    const ok = await Promise.all([stat(path.join(dir, '.complete')), stat(path.join(dir, INDEX_FILE))]).then(() => true, () => false);
    if (ok) out.push(dir);
  }
  return out;
}
