/**
 * The "fewer bytes" goal of updates (issue 14): the bytes a box fetches for a JS-only
 * change through the file index (ota/delta.ts), against the full bundle. Goal ≤ 5 %.
 *
 * On the real app: a snapshot of this project's built tree (package.json, dist/,
 * node_modules/: `npm run build` first) is packed as 1.0.0 with `pack()` (what
 * `ep ota pack` runs); one dist/*.js gets a comment appended and the tree is packed as
 * 1.0.1 into the same out dir. A box holding 1.0.0 (its bundle unpacked, as
 * stageRelease does) assembles 1.0.1 from a real HTTP server serving the out dir.
 * deltaBytes is what the server sent: the gzipped index plus the fetched objects (the
 * manifest and its .sig, fetched either way, are left out of both sides).
 *
 * `measureDelta()` is called by the bench's `ota` section; alone:
 *   npm run build && node dist/test/bench/ota-delta.js
 */
import { execFile } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { distPath } from '../../lib/index.js';
import { type OtaManifest } from '../../ota/index.js';
import { assembleRelease, indexedReleases, machineArch, pack } from '../../ota/transfer.js';
import { startStaticServer } from '../integration/helpers/ota-server.js';

const run = promisify(execFile);

export interface DeltaMeasurement {
  /** The full bundle (ep-1.0.1-A.tar.gz). */
  bundleBytes: number;
  /** What the box fetched instead: the gzipped index + the objects it lacked. */
  deltaBytes: number;
  /** deltaBytes / bundleBytes (goal ≤ 0.05). */
  ratio: number;
  /** Files in the release. */
  files: number;
  fetchedFiles: number;
  indexBytes: number;
  objectBytes: number;
  /** The file whose content changed. */
  changed: string;
  /** Seconds of one `pack()` of the real app. */
  packSeconds: number;
}

/** A copy of a built project root (package.json, package-lock.json, dist/, node_modules/) at `dest`: packing it is safe while others build. */
export async function snapshotRoot(root: string, dest: string): Promise<void> {
  await mkdir(path.join(dest, 'node_modules'), { recursive: true });
  const have = new Set(await readdir(root));
  const names = ['package.json', 'package-lock.json', 'dist'].filter((n) => have.has(n));
  await run('cp', ['-a', '-H', '--reflink=auto', ...names.map((n) => path.join(root, n)), dest]);
  // node_modules without the tools' caches (.vite…), which a test run may be rewriting meanwhile.
  const modules = (await readdir(path.join(root, 'node_modules'))).filter((n) => !n.startsWith('.') || n === '.bin' || n === '.package-lock.json');
  await run('cp', ['-a', '--reflink=auto', ...modules.map((n) => path.join(root, 'node_modules', n)), path.join(dest, 'node_modules')]);
}

export async function measureDelta(o: { root?: string; log?: (s: string) => void } = {}): Promise<DeltaMeasurement> {
  const root = o.root ?? path.dirname(distPath(import.meta.url));
  const log = o.log ?? ((): void => undefined);
  const arch = machineArch();
  if (!arch) throw new Error(`no OTA arch for ${process.arch}`);
  const work = await mkdtemp(path.join(os.tmpdir(), 'ep-bench-delta-'));
  const hub = path.join(work, 'hub');
  const server = await startStaticServer(hub);
  try {
    const snap = path.join(work, 'root');
    await snapshotRoot(root, snap);
    const t0 = Date.now();
    const p1 = await pack({ root: snap, version: '1.0.0', arch, outDir: hub, baseUrl: server.url });
    const packSeconds = (Date.now() - t0) / 1000;
    log(`packed 1.0.0 in ${packSeconds.toFixed(1)} s: ${p1.bundle.size} bytes`);
    const changed = 'dist/device/agent.js';
    await appendFile(path.join(snap, changed), '\n// a JS-only change\n');
    const p2 = await pack({ root: snap, version: '1.0.1', arch, outDir: hub, baseUrl: server.url });

    const releases = path.join(work, 'box', 'releases');
    await mkdir(path.join(releases, '1.0.0'), { recursive: true });
    await run('tar', ['-xzf', p1.bundle.file, '-C', path.join(releases, '1.0.0'), '--no-same-owner', '--no-same-permissions']);
    await writeFile(path.join(releases, '1.0.0', '.complete'), `${JSON.stringify({ version: '1.0.0', sha256: p1.bundle.sha256 })}\n`);

    const m = JSON.parse(await readFile(p2.manifest, 'utf8')) as OtaManifest;
    server.requests.length = 0;
    const index = Buffer.from(await (await fetch(m.files!.index.url)).arrayBuffer());
    const r = await assembleRelease({ index, indexSha256: m.files!.index.sha256, objectsUrl: m.files!.objectsUrl, haveDirs: await indexedReleases(releases), stagingDir: path.join(releases, '.1.0.1.staging') });
    const sent = server.requests.reduce((n, q) => n + q.bytes, 0);
    const indexBytes = server.requests.filter((q) => !q.path.startsWith('/objects/')).reduce((n, q) => n + q.bytes, 0);
    const result: DeltaMeasurement = {
      bundleBytes: p2.bundle.size,
      deltaBytes: sent,
      ratio: sent / p2.bundle.size,
      files: r.files,
      fetchedFiles: r.fetchedFiles,
      indexBytes,
      objectBytes: sent - indexBytes,
      changed,
      packSeconds,
    };
    log(`delta: ${result.deltaBytes} of ${result.bundleBytes} bytes (${(result.ratio * 100).toFixed(2)} %), ${result.fetchedFiles} of ${result.files} files fetched`);
    return result;
  } finally {
    await server.close();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  measureDelta({ log: (s) => process.stderr.write(`${s}\n`) }).then(
    (r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
