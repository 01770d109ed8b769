/**
 * The executors of the update's steps (plan.ts): each does its one step, leaves its fact
 * on disk in the job directory (runner.ts lists the files), or throws an OtaRefusal with
 * its code. They know nothing of MQTT or meetings: the agent passes in what they need.
 *
 *   fetch-manifest   GET the manifest (≤ 64 KiB: a 10 MB one is refused after 64 KiB + 1
 *                    bytes) and its .sig (≤ 1 KiB); saved byte for byte
 *   verify-manifest  decode (every problem by path), signature against the provisioned
 *                    keys, name, arch, newer than the running version, not rolled back
 *                    here before, not expired by the trusted clock, free space ≥ 2 × size
 *   download         only the files the box's releases lack, when the manifest lists them
 *                    (delta.ts: the release is then staged at once), else — or when that
 *                    fails — the bundle with Range resume (download.ts); progress reported
 *   verify-bundle    size and sha256 (streaming); a bad bundle is deleted
 *   stage            unpacked beside the running release (install.ts), then the bundle deleted;
 *                    one that is not a release of this app is refused (bad_bundle) with
 *                    what it unpacked and the bundle removed
 *   switch           release-state.json gets `trying`, then `current` is switched
 * (wait-idle is the runner's: it waits for the agent's idle signal.)
 */
import { readFile, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { backoffDelay, writeFileAtomic } from '../lib/index.js';
import { checkBundleFile } from './bundle-check.js';
import { INDEX_MAX_BYTES, assembleRelease, completeAssembled, indexedReleases } from './delta.js';
import { download } from './download.js';
import { releaseDir, stageRelease, switchCurrent } from './install.js';
import { MANIFEST_MAX_BYTES, checkInstallable, decodeManifest, type OtaArch, type OtaManifest } from './manifest.js';
import type { OtaJob, OtaStep } from './plan.js';
import { readReleaseState, writeReleaseState } from './release-file.js';
import { initialState } from './release-state.js';
import { OtaRefusal, markFile } from './runner.js';
import { checkSignature, readPublicKey } from './signature.js';
import { parseVersion } from './version.js';

export const SIG_MAX_BYTES = 1024;

export interface ExecutorDeps {
  appRoot: string;
  /** What this box is and runs. */
  name: string;
  arch: OtaArch;
  runningVersion: string;
  /** The provisioned public keys (PEM texts, several for rotation). */
  trustedKeys: readonly string[];
  now: () => number;
  /** The box's time floor (ms): the latest of the last synced clock it saw and the releasedAt of every manifest it accepted; null if none. */
  lastSyncedAt: () => Promise<number | null>;
  /** Raises that floor to a manifest's releasedAt once the manifest passed every check (it is signed: a trusted time). */
  raiseTimeFloor?: (ms: number) => Promise<void>;
  /** Attempts after the first, for the manifest and the bundle. Default 25. */
  retries?: number;
  retryBaseMs?: number;
  retryCapMs?: number;
  idleTimeoutMs?: number;
  ca?: Buffer;
  /** Download progress, 0..1. */
  progress: (fraction: number) => void;
  /** The switch's facts: could this version reach the broker; how long the new one gets to commit. */
  trial: () => { fromReachedBroker: boolean; trialMs: number };
  signal?: AbortSignal;
  /** Free bytes for the job's files (default: statfs of `dir`, the blocks an unprivileged writer may use). */
  freeBytes?: (dir: string) => Promise<number>;
  /** Fetch only the files the box's releases lack when the manifest lists them (default true); false: always the full bundle. */
  delta?: boolean;
  /** What happened that the caller may log or report (the delta's bytes, its fallback). */
  note?: (evt: string, detail: Record<string, unknown>) => void;
}

/**
 * The delta (ota/delta.ts): the manifest's file index, then only the files no release on the
 * box holds, assembled into releases/<version> (staged: the planner goes on to the switch).
 * Any failure falls back to the full bundle (false), after removing the partial tree.
 */
async function fetchDelta(d: ExecutorDeps, m: OtaManifest, dir: string): Promise<boolean> {
  const files = m.files!;
  const releases = path.join(d.appRoot, 'releases');
  const have = await indexedReleases(releases);
  if (have.length === 0) return false;
  const staging = path.join(releases, `.${m.version}.delta`);
  try {
    const idx = await fetchCapped(files.index.url, Math.min(files.index.size, INDEX_MAX_BYTES), d);
    if (idx.status !== 200) throw new Error(`${files.index.url}: HTTP ${idx.status}`);
    const r = await assembleRelease({
      index: idx.body,
      indexSha256: files.index.sha256,
      objectsUrl: files.objectsUrl,
      haveDirs: have,
      stagingDir: staging,
      ...(d.retries !== undefined ? { retries: d.retries } : {}),
      ...(d.retryBaseMs !== undefined ? { retryBaseMs: d.retryBaseMs } : {}),
      ...(d.retryCapMs !== undefined ? { retryCapMs: d.retryCapMs } : {}),
      ...(d.ca ? { ca: d.ca } : {}),
      ...(d.signal ? { signal: d.signal } : {}),
      progress: (got, total) => d.progress(total > 0 ? got / total : 1),
    });
    if (!(await exists(path.join(staging, 'dist', 'device', 'cli', 'ep.js')))) throw new Error('the index has no dist/device/cli/ep.js: not a release of this app');
    await completeAssembled(staging, releaseDir({ appRoot: d.appRoot }, m.version), { version: m.version, sha256: m.bundle.sha256 });
    await writeFile(file(dir, 'delta.json'), `${JSON.stringify({ ...r, indexBytes: idx.body.length, bundleBytes: m.bundle.size })}\n`);
    d.note?.('ota.delta', { version: m.version, fetchedBytes: r.fetchedBytes + idx.body.length, bundleBytes: m.bundle.size, fetchedFiles: r.fetchedFiles, linkedFiles: r.linkedFiles, files: r.files });
    return true;
  } catch (e) {
    if (d.signal?.aborted) throw e;
    await rm(staging, { recursive: true, force: true });
    d.note?.('ota.delta_failed', { version: m.version, err: (e as Error).message });
    return false;
  }
}

/** One small GET, capped: the status and at most `max + 1` bytes. Retries network errors and 5xx. */
export async function fetchCapped(url: string, max: number, d: Pick<ExecutorDeps, 'retries' | 'retryBaseMs' | 'retryCapMs' | 'idleTimeoutMs' | 'ca' | 'signal'>): Promise<{ status: number; body: Buffer }> {
  const retries = d.retries ?? 25;
  let last = '';
  for (let i = 0; i <= retries; i++) {
    try {
      const r = await getOnce(url, max, d);
      if (r.status < 500) return r;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (d.signal?.aborted) throw new OtaRefusal('aborted', `${url}: aborted (the agent is stopping)`);
    if (i < retries) await new Promise((r) => setTimeout(r, backoffDelay(i + 1, d.retryBaseMs ?? 500, d.retryCapMs ?? 30_000)));
  }
  throw new OtaRefusal('download_failed', `${url}: gave up after ${retries + 1} attempts; the last: ${last}`);
}

function getOnce(url: string, max: number, d: Pick<ExecutorDeps, 'idleTimeoutMs' | 'ca' | 'signal'>): Promise<{ status: number; body: Buffer }> {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.get(u, { headers: { 'accept-encoding': 'identity' }, ...(d.ca ? { ca: d.ca } : {}), ...(d.signal ? { signal: d.signal } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        if (n > max) return;
        chunks.push(c);
        n += c.length;
        // Past the cap: stop reading (a 10 MB manifest is never held in memory).
        if (n > max) {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).subarray(0, max + 1) });
          req.destroy();
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(d.idleTimeoutMs ?? 30_000, () => req.destroy(new Error(`no answer within ${d.idleTimeoutMs ?? 30_000} ms`)));
  });
}

const file = (dir: string, n: string): string => path.join(dir, n);

async function statfsFree(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}
const exists = (f: string): Promise<boolean> => stat(f).then(() => true, () => false);

/** Why a command failed: its stderr's first line (tar: "gzip: stdin: not in gzip format"), else the error's. */
function firstLine(e: unknown): string {
  const err = e as Error & { stderr?: unknown };
  const text = `${typeof err.stderr === 'string' ? err.stderr : ''}\n${err.message}`;
  return text.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown error';
}

/** The saved manifest, decoded (after verify-manifest it is known good). */
export async function savedManifest(dir: string): Promise<OtaManifest> {
  const d = decodeManifest(await readFile(file(dir, 'manifest.json')));
  if (!d.ok) throw new OtaRefusal('bad_manifest', d.problems.join('; '));
  return d.manifest;
}

export function otaExecutors(d: ExecutorDeps): Record<OtaStep, (job: OtaJob, dir: string) => Promise<void>> {
  const trusted = d.trustedKeys.map((pem, i) => readPublicKey(pem, `ota.publicKeys[${i}]`));
  return {
    async 'fetch-manifest'(job, dir) {
      const m = await fetchCapped(job.manifestUrl, MANIFEST_MAX_BYTES, d);
      if (m.status !== 200) throw new OtaRefusal('manifest_unavailable', `${job.manifestUrl}: HTTP ${m.status}`);
      if (m.body.length > MANIFEST_MAX_BYTES) throw new OtaRefusal('bad_manifest', `manifest: over the ${MANIFEST_MAX_BYTES}-byte limit (reading stopped there)`);
      const s = await fetchCapped(`${job.manifestUrl}.sig`, SIG_MAX_BYTES, d);
      if (s.status === 404 || s.status === 410) throw new OtaRefusal('missing_signature', `${job.manifestUrl}.sig: HTTP ${s.status}; an unsigned manifest is refused`);
      if (s.status !== 200) throw new OtaRefusal('manifest_unavailable', `${job.manifestUrl}.sig: HTTP ${s.status}`);
      if (s.body.length > SIG_MAX_BYTES) throw new OtaRefusal('bad_signature', `the signature is over ${SIG_MAX_BYTES} bytes`);
      await writeFileAtomic(file(dir, 'manifest.json.sig'), s.body, { mode: 0o600 });
      await writeFileAtomic(file(dir, 'manifest.json'), m.body, { mode: 0o600 });
    },

    async 'verify-manifest'(_job, dir) {
      const bytes = await readFile(file(dir, 'manifest.json'));
      const dec = decodeManifest(bytes);
      if (!dec.ok) throw new OtaRefusal('bad_manifest', dec.problems.join('; '));
      const sig = checkSignature(bytes, await readFile(file(dir, 'manifest.json.sig'), 'utf8'), trusted, dec.manifest.keyId);
      if (!sig.ok) throw new OtaRefusal(sig.code, sig.message);
      const running = parseVersion(d.runningVersion);
      if (!running) throw new OtaRefusal('failed', `the running version ${JSON.stringify(d.runningVersion)} is not a semantic version`);
      const state = await readReleaseState(d.appRoot);
      const check = checkInstallable(dec.manifest, dec.version, {
        name: d.name,
        arch: d.arch,
        running,
        failedVersions: state?.failed ?? [],
        systemNow: d.now(),
        lastSyncedAt: await d.lastSyncedAt(),
      });
      if (!check.ok) throw new OtaRefusal(check.code, check.message);
      const free = await (d.freeBytes ?? statfsFree)(dir);
      if (free < 2 * dec.manifest.bundle.size)
        throw new OtaRefusal('no_space', `${free} bytes free; the ${dec.manifest.bundle.size}-byte bundle needs twice that (the bundle and its unpacked release)`);
      await d.raiseTimeFloor?.(Date.parse(dec.manifest.releasedAt));
      await markFile(dir, 'verified');
    },

    async download(_job, dir) {
      const m = await savedManifest(dir);
      if (m.files && d.delta !== false && (await fetchDelta(d, m, dir))) return;
      const r = await download({
        url: m.bundle.url,
        dest: file(dir, 'bundle'),
        size: m.bundle.size,
        ...(d.retries !== undefined ? { retries: d.retries } : {}),
        ...(d.retryBaseMs !== undefined ? { retryBaseMs: d.retryBaseMs } : {}),
        ...(d.retryCapMs !== undefined ? { retryCapMs: d.retryCapMs } : {}),
        ...(d.idleTimeoutMs !== undefined ? { idleTimeoutMs: d.idleTimeoutMs } : {}),
        ...(d.ca ? { ca: d.ca } : {}),
        ...(d.signal ? { signal: d.signal } : {}),
        progress: (have, size) => d.progress(have / size),
      });
      if (!r.ok) throw new OtaRefusal(r.code, r.message);
    },

    async 'verify-bundle'(_job, dir) {
      const m = await savedManifest(dir);
      const c = await checkBundleFile(file(dir, 'bundle'), m.bundle);
      if (!c.ok) {
        await rm(file(dir, 'bundle'), { force: true });
        throw new OtaRefusal(c.code, c.message);
      }
      await markFile(dir, 'bundle.ok');
    },

    async stage(_job, dir) {
      const m = await savedManifest(dir);
      const target = releaseDir({ appRoot: d.appRoot }, m.version);
      // Not a release of this app: whatever it unpacked (the release, or install.ts's staging
      // dir when tar failed) goes, and the bundle too, as verify-bundle deletes a bad one.
      const badBundle = async (why: string): Promise<OtaRefusal> => {
        const releases = path.dirname(target);
        for (const n of await readdir(releases).catch(() => [] as string[])) if (n.startsWith(`.${m.version}.staging-`)) await rm(path.join(releases, n), { recursive: true, force: true });
        await rm(target, { recursive: true, force: true });
        await rm(file(dir, 'bundle'), { force: true });
        await rm(file(dir, 'bundle.ok'), { force: true });
        return new OtaRefusal('bad_bundle', why);
      };
      try {
        await stageRelease({ appRoot: d.appRoot }, m.version, file(dir, 'bundle'), m.bundle.sha256);
      } catch (e) {
        throw await badBundle(`the bundle does not unpack: ${firstLine(e)}`);
      }
      if (!(await exists(path.join(target, 'dist', 'device', 'cli', 'ep.js')))) throw await badBundle('the bundle has no dist/device/cli/ep.js: not a release of this app');
      await rm(file(dir, 'bundle'), { force: true });
      await rm(file(dir, 'bundle.ok'), { force: true });
    },

    'wait-idle': async () => {
      throw new Error('wait-idle is the runner’s step');
    },

    async switch(job, dir) {
      const m = await savedManifest(dir);
      const state = (await readReleaseState(d.appRoot)) ?? initialState(d.runningVersion);
      const t = d.trial();
      const now = d.now();
      // The record first, then the symlink: a crash between the two leaves `trying` with the
      // old `current`, and the launcher then switches `current` itself.
      await writeReleaseState(d.appRoot, {
        ...state,
        trying: { version: m.version, from: d.runningVersion, since: now, deadline: now + t.trialMs, starts: 0, fromReachedBroker: t.fromReachedBroker, commandId: job.commandId },
      });
      await switchCurrent({ appRoot: d.appRoot }, m.version);
      await writeFile(file(dir, 'switched'), `${m.version}\n`);
    },
  };
}
