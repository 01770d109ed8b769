/**
 * Downloading a bundle over rural 4G: HTTP(S) with Range resume across dropped
 * connections and agent restarts, capped jittered retries, written to disk with fsync,
 * nothing in memory beyond one chunk.
 *
 * The file `dest` and its sidecar `dest.part.json` ({url, size, etag, lastModified}) are
 * the whole state: a restarted agent resumes from the file's length when the sidecar
 * matches. The pitfalls handled (docs/platform-facts.md, field reports):
 * - a server that answers a Range request with 200 sends the whole file: it is written
 *   from byte 0 (the partial file truncated), never appended (rustup#4710);
 * - a 206 whose Content-Range does not start at the local length is refused, and the
 *   download restarts from 0 (pip#14131);
 * - a file that changed on the server (ETag or Last-Modified differs from the sidecar's,
 *   or a total length other than the manifest's size) restarts from 0;
 * - the server may send more than `size`: reading stops at `size + 1` bytes (`too_large`),
 *   endless data never fills the disk.
 * The caller checks the sha256 afterwards (bundle-check.ts).
 */
import { open, readFile, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { backoffDelay } from '../lib/index.js';

export interface DownloadOptions {
  url: string;
  dest: string;
  /** The manifest's size: the file must end up exactly this long. */
  size: number;
  /** Attempts after the first before giving up (each a new connection). Default 25. */
  retries?: number;
  /** Backoff between attempts (ms): base and cap, jittered. Defaults 500 and 30 000. */
  retryBaseMs?: number;
  retryCapMs?: number;
  /** No byte for this long ends the attempt (a stalled connection). Default 30 s. */
  idleTimeoutMs?: number;
  /** Called as bytes arrive: (bytes on disk, size). */
  progress?: (have: number, size: number) => void;
  /** For tests: the wait between attempts. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** TLS trust for https (the box's CA bundle by default). */
  ca?: Buffer;
  signal?: AbortSignal;
}

export type DownloadResult =
  | { ok: true; attempts: number; restartsFromZero: number; resumed: number }
  | { ok: false; code: 'too_large' | 'download_failed' | 'aborted'; message: string; attempts: number };

interface Sidecar {
  url: string;
  size: number;
  etag: string | null;
  lastModified: string | null;
}

class Restart extends Error {}
class TooLarge extends Error {}

const sidecarOf = (dest: string): string => `${dest}.part.json`;

async function readSidecar(dest: string): Promise<Sidecar | null> {
  try {
    const v = JSON.parse(await readFile(sidecarOf(dest), 'utf8')) as Sidecar;
    return typeof v.url === 'string' && typeof v.size === 'number' ? v : null;
  } catch {
    return null;
  }
}

async function fileLength(f: string): Promise<number> {
  return stat(f).then((s) => s.size, () => 0);
}

/** One HTTP GET from `offset`; resolves with the response, whatever its status. */
function get(url: string, offset: number, o: DownloadOptions, validator: string | null): Promise<http.IncomingMessage> {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    // If-Range: the server sends 206 only if the file is the one we started (else 200, whole).
    if (validator) headers['if-range'] = validator;
  }
  return new Promise((resolve, reject) => {
    const req = lib.get(u, { headers, ...(o.ca ? { ca: o.ca } : {}), ...(o.signal ? { signal: o.signal } : {}) }, resolve);
    req.on('error', reject);
    req.setTimeout(o.idleTimeoutMs ?? 30_000, () => req.destroy(new Error(`no answer within ${o.idleTimeoutMs ?? 30_000} ms`)));
  });
}

/** Parses `bytes START-END/TOTAL`. */
function contentRange(h: string | undefined): { start: number; total: number | null } | null {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(h ?? '');
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === '*' ? null : Number(m[3]) };
}

/** One attempt: appends what the server sends to `dest`; throws Restart/TooLarge/Error. */
async function attempt(o: DownloadOptions, counters: { restartsFromZero: number; resumed: number }): Promise<void> {
  let have = await fileLength(o.dest);
  let side = await readSidecar(o.dest);
  if (!side || side.url !== o.url || side.size !== o.size || have > o.size) {
    // Not ours, or another file: start over.
    await rm(o.dest, { force: true });
    have = 0;
    side = { url: o.url, size: o.size, etag: null, lastModified: null };
  }
  if (have === o.size) return;
  const validator = side.etag ?? side.lastModified;
  // Opened before the request: between the response and pump() attaching its listeners
  // there must be no I/O wait, or a connection cut in it would go unseen (a hang) and
  // the bytes that came with it would be lost.
  const fh = await open(o.dest, have > 0 ? 'r+' : 'w');
  try {
    const res = await get(o.url, have, o, have > 0 ? validator : null);
    try {
      await receive(res, fh, have, side, o, counters);
    } finally {
      res.destroy();
    }
  } finally {
    await fh.close();
  }
}

/** Checks the answer's headers and writes its body; synchronous up to pump() (see attempt). */
async function receive(res: http.IncomingMessage, fh: FileHandle, have: number, side: Sidecar, o: DownloadOptions, counters: { restartsFromZero: number; resumed: number }): Promise<void> {
  {
    if (res.statusCode !== 200 && res.statusCode !== 206) throw new Error(`HTTP ${res.statusCode ?? '?'} from the server`);
    const etag = (res.headers.etag as string | undefined) ?? null;
    const lastModified = (res.headers['last-modified'] as string | undefined) ?? null;
    let from = 0;
    if (res.statusCode === 206) {
      const cr = contentRange(res.headers['content-range'] as string | undefined);
      if (!cr || cr.start !== have) throw new Restart(`Content-Range ${String(res.headers['content-range'])} does not start at the ${have} bytes on disk`);
      if (cr.total !== null && cr.total !== o.size) throw new TooLarge(`the server's file is ${cr.total} bytes; the manifest says ${o.size}`);
      if ((side.etag && etag && side.etag !== etag) || (!side.etag && side.lastModified && lastModified && side.lastModified !== lastModified)) throw new Restart('the file changed on the server (ETag / Last-Modified)');
      from = have;
      if (have > 0) counters.resumed++;
    } else {
      // 200: the whole file from byte 0, whatever we asked for.
      if (have > 0) counters.restartsFromZero++;
      const len = Number(res.headers['content-length']);
      if (Number.isFinite(len) && len > o.size) throw new TooLarge(`the server announces ${len} bytes; the manifest says ${o.size}`);
    }
    const sidecar = JSON.stringify({ url: o.url, size: o.size, etag, lastModified } satisfies Sidecar);
    const pos = await pump(res, fh, from, o, async () => {
      if (from === 0) await fh.truncate(0);
      await writeFile(sidecarOf(o.dest), sidecar);
    });
    await fh.datasync();
    if (pos < o.size) throw new Error(`the connection ended at ${pos} of ${o.size} bytes`);
  }
}

/**
 * Writes the body to `fh` from `from`, one chunk at a time (the response paused while a
 * chunk is written), and resolves with the length on disk when the body ends or the
 * connection breaks — every byte that arrived is kept, for the next attempt to resume from.
 */
function pump(res: http.IncomingMessage, fh: FileHandle, from: number, o: DownloadOptions, first: () => Promise<void>): Promise<number> {
  return new Promise((resolve, reject) => {
    let pos = from;
    let sinceSync = 0;
    let failure: Error | null = null;
    let chain = first().catch((e: unknown) => void (failure = e as Error));
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      void chain.then(() => (failure ? reject(failure) : resolve(pos)));
    };
    res.on('data', (chunk: Buffer) => {
      res.pause();
      chain = chain
        .then(async () => {
          if (failure) return;
          if (pos + chunk.length > o.size) {
            await fh.write(chunk, 0, o.size - pos, pos);
            pos = o.size;
            throw new TooLarge(`the server sent more than the ${o.size} bytes the manifest declares`);
          }
          await fh.write(chunk, 0, chunk.length, pos);
          pos += chunk.length;
          sinceSync += chunk.length;
          if (sinceSync >= 4 * 1024 * 1024) {
            await fh.datasync();
            sinceSync = 0;
          }
          o.progress?.(pos, o.size);
        })
        .then(
          () => void (failure || res.resume()),
          (e: unknown) => {
            failure = e as Error;
            res.destroy();
            finish();
          },
        );
    });
    res.on('end', finish);
    res.on('close', finish); // a connection cut: what arrived is on disk (or being written)
    res.on('error', finish);
  });
}

export async function download(o: DownloadOptions): Promise<DownloadResult> {
  const retries = o.retries ?? 25;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const counters = { restartsFromZero: 0, resumed: 0 };
  let last = '';
  for (let i = 0; i <= retries; i++) {
    if (o.signal?.aborted) return { ok: false, code: 'aborted', message: 'aborted', attempts: i };
    try {
      await attempt(o, counters);
      await rm(sidecarOf(o.dest), { force: true });
      return { ok: true, attempts: i + 1, ...counters };
    } catch (e) {
      if (e instanceof TooLarge) {
        await rm(o.dest, { force: true });
        await rm(sidecarOf(o.dest), { force: true });
        return { ok: false, code: 'too_large', message: e.message, attempts: i + 1 };
      }
      if (e instanceof Restart) {
        await rm(o.dest, { force: true });
        await rm(sidecarOf(o.dest), { force: true });
        counters.restartsFromZero++;
      }
      last = (e as Error).message;
    }
    if (i < retries) await sleep(backoffDelay(i + 1, o.retryBaseMs ?? 500, o.retryCapMs ?? 30_000, o.random));
  }
  return { ok: false, code: 'download_failed', message: `gave up after ${retries + 1} attempts; the last: ${last}`, attempts: retries + 1 };
}
