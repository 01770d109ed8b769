/**
 * Releases, bundles, signed manifests and a static update server for the OTA tests —
 * the real thing at a smaller scale: a release is the built app (a copy of dist/ and
 * package.json with its own version; node_modules a symlink to the project's, so a
 * release costs 5 MB, not 130), a bundle is its tar.gz, a manifest is signed with a key
 * made by ota/signature.ts, and the server is a node:http static server with Range.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { distPath } from '../../../lib/index.js';
import { generateKeys, signBytes, type ExecutorDeps, type KeyPair, type RunnerDeps } from '../../../ota/index.js';
import { otaExecutors } from '../../../ota/transfer.js';

const run = promisify(execFile);
/** The project root, whether this runs from the sources (tests) or from dist/ (the bench). */
export const ROOT = path.dirname(distPath(import.meta.url));

/**
 * An app tree of `version` at `dir`: dist/ (without dist/test), package.json (its version),
 * node_modules → the project's. dist/ is copied, or with `link` hard-linked where the file
 * system allows (an installed release: nothing writes into one). Never link a tree that is
 * tarred or tweaked: a tweak would write through the link into the project's dist/, and tar
 * refuses a file whose link count (ctime) another test changes while it reads it.
 */
export async function appTree(dir: string, version: string, tweak?: (dir: string) => Promise<void>, link = false): Promise<void> {
  await mkdir(dir, { recursive: true });
  const linked = link && tweak === undefined && (await run('cp', ['-al', path.join(ROOT, 'dist'), path.join(dir, 'dist')]).then(() => true, () => false));
  if (linked) await rm(path.join(dir, 'dist', 'test'), { recursive: true, force: true });
  else await cp(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true, filter: (src) => !src.includes(`${path.sep}dist${path.sep}test`) });
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(path.join(dir, 'package.json'), `${JSON.stringify({ ...pkg, version }, null, 2)}\n`);
  await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  if (tweak) await tweak(dir);
}

/** Installs `version` as the committed release of a fresh app root (what provisioning leaves). */
export async function installFirstRelease(appRoot: string, version: string): Promise<void> {
  await appTree(path.join(appRoot, 'releases', version), version, undefined, true);
  await symlink(path.join('releases', version), path.join(appRoot, 'current'));
  await writeFile(path.join(appRoot, 'release-state.json'), `${JSON.stringify({ v: 1, committed: version, previous: null, trying: null, failed: [], last: null })}\n`);
}

/** A bundle (tar.gz of an app tree) of `version`; `tweak` changes the tree first (a bad release). */
export async function makeBundle(workDir: string, version: string, tweak?: (dir: string) => Promise<void>): Promise<Buffer> {
  const tree = path.join(workDir, `tree-${version}-${Date.now()}`);
  await appTree(tree, version, tweak);
  const out = path.join(workDir, `ep-${version}.tar.gz`);
  const entries = (await readdir(tree)).sort();
  await run('tar', ['-czf', out, '--owner=0', '--group=0', '--numeric-owner', '-C', tree, ...entries]);
  return readFile(out);
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export interface ManifestOver {
  name?: string;
  version?: string;
  arch?: string[];
  releasedAt?: string;
  expiresAt?: string;
  size?: number;
  sha256?: string;
  keyId?: string;
}

export function manifestFor(version: string, bundle: Buffer, bundleUrl: string, o: ManifestOver = {}): Buffer {
  const now = Date.now();
  const m = {
    name: o.name ?? 'commune-endpoint',
    version: o.version ?? version,
    arch: o.arch ?? ['arm64', 'armhf', 'x64'],
    bundle: { url: bundleUrl, sha256: o.sha256 ?? sha256(bundle), size: o.size ?? bundle.length },
    releasedAt: o.releasedAt ?? new Date(now - 60_000).toISOString(),
    expiresAt: o.expiresAt ?? new Date(now + 30 * 86_400_000).toISOString(),
    ...(o.keyId ? { keyId: o.keyId } : {}),
  };
  return Buffer.from(`${JSON.stringify(m, null, 2)}\n`);
}

export const keys = (): KeyPair => generateKeys();
export const sign = (bytes: Buffer, k: KeyPair): Buffer => Buffer.from(signBytes(bytes, k.privateKeyPem));

/** A static server of named files, with Range (206) like nginx; `files` may change between requests. */
export interface StaticServer {
  files: Map<string, Buffer>;
  /** Send bodies in chunks of `bytes` every `everyMs` (a slow link); null: at once. */
  trickle: { bytes: number; everyMs: number } | null;
  url: (name: string) => string;
  requests: string[];
  /** Requests that asked for a Range: `name bytes=N-`. */
  ranged: string[];
  close(): Promise<void>;
}

export async function startStaticServer(): Promise<StaticServer> {
  const files = new Map<string, Buffer>();
  const requests: string[] = [];
  const ranged: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1));
    requests.push(name);
    if (req.headers.range) ranged.push(`${name} ${req.headers.range}`);
    const body = files.get(name);
    if (!body) return void res.writeHead(404).end('not found');
    const etag = `"${sha256(body).slice(0, 16)}"`;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (m && (!ifRange || ifRange === etag) && Number(m[1]) < body.length) {
      const start = Number(m[1]);
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, etag, 'accept-ranges': 'bytes' });
      return void send(res, body.subarray(start));
    }
    res.writeHead(200, { 'content-length': body.length, etag, 'accept-ranges': 'bytes' });
    send(res, body);
  });
  const send = (res: ServerResponse, body: Buffer): void => {
    const t = state.trickle;
    if (!t) return void res.end(body);
    let at = 0;
    const timer = setInterval(() => {
      if (res.destroyed) return void clearInterval(timer);
      res.write(body.subarray(at, at + t.bytes));
      at += t.bytes;
      if (at >= body.length) {
        clearInterval(timer);
        res.end();
      }
    }, t.everyMs);
    res.on('close', () => clearInterval(timer));
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const state: StaticServer = {
    files,
    trickle: null,
    requests,
    ranged,
    url: (name) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/${name}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return state;
}

/** PIDs of processes whose command line mentions `needle` (the launcher's orphans after a SIGKILL). */
export async function pidsMentioning(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    const cmd = await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(needle)) out.push(Number(d));
  }
  return out;
}

/**
 * The update job's dependencies as the agent builds them (device/updates.ts), for running
 * the real runner and executors in-process: a box at 1.0.0 on x64 trusting `key`, never in
 * a meeting, short retries; `runner` and `exec` override any part.
 */
export function jobDeps(appRoot: string, key: KeyPair, o: { runner?: Partial<RunnerDeps>; exec?: Partial<ExecutorDeps> } = {}): RunnerDeps {
  return {
    dir: path.join(appRoot, 'job'),
    appRoot,
    inMeeting: () => false,
    progress: () => undefined,
    untilIdle: async () => undefined,
    executors: otaExecutors({
      appRoot,
      name: 'commune-endpoint',
      arch: 'x64',
      runningVersion: '1.0.0',
      trustedKeys: [key.publicKeyPem],
      now: () => Date.now(),
      lastSyncedAt: async () => null,
      retries: 3,
      retryBaseMs: 20,
      retryCapMs: 50,
      progress: () => undefined,
      trial: () => ({ fromReachedBroker: true, trialMs: 60_000 }),
      ...o.exec,
    }),
    env: {},
    ...o.runner,
  };
}
