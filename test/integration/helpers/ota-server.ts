/**
 * A real HTTP server for OTA tests that serves one file and misbehaves on cue, the way
 * servers and links in the field do: it cuts connections mid-body, answers 500, ignores
 * Range (200 with the whole file), sends a Content-Range that does not start where asked,
 * changes the file under a download, sends more than it should, or trickles.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

export interface Faults {
  /** Cut the connection after this many body bytes, for the first `cuts` requests. */
  cutAfterBytes?: number;
  cuts?: number;
  /** Answer 500 to every n-th request (2: every second one). */
  error500Every?: number;
  /** Ignore Range: always 200 with the whole body. */
  ignoreRange?: boolean;
  /** Answer 206 with a Content-Range starting this many bytes off the asked start (once). */
  wrongRangeOffset?: number;
  /** Endless data: keep sending zeros after the file. */
  endless?: boolean;
  /** Send the body in chunks of this size with this many ms between them. */
  trickle?: { bytes: number; everyMs: number };
}

export interface OtaServer {
  url: (name?: string) => string;
  /** Replace the served file (a new ETag). */
  setBody(body: Buffer): void;
  faults: Faults;
  requests: Array<{ range: string | null; ifRange: string | null; status: number }>;
  close(): Promise<void>;
}

export async function startOtaServer(body: Buffer, faults: Faults = {}): Promise<OtaServer> {
  let file = body;
  let etag = `"v1-${file.length}"`;
  let served = 0;
  const state: OtaServer = {
    url: (name = 'bundle.tar.gz') => `http://127.0.0.1:${(server.address() as AddressInfo).port}/${name}`,
    setBody(b) {
      file = b;
      etag = `"v${Date.now()}-${b.length}"`;
    },
    faults,
    requests: [],
    close: () => new Promise((r) => server.close(() => r())),
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    served++;
    const f = state.faults;
    const range = req.headers.range ?? null;
    const ifRange = (req.headers['if-range'] as string | undefined) ?? null;
    const log = (status: number): void => void state.requests.push({ range, ifRange, status });
    if (f.error500Every && served % f.error500Every === 0) {
      log(500);
      res.writeHead(500).end('boom');
      return;
    }
    let start = 0;
    let status = 200;
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (m && !f.ignoreRange && (ifRange === null || ifRange === etag)) {
      start = Number(m[1]);
      status = 206;
    }
    let sendFrom = start;
    if (status === 206 && f.wrongRangeOffset) {
      sendFrom = start + f.wrongRangeOffset;
      f.wrongRangeOffset = 0;
    }
    const headers: Record<string, string | number> = { etag, 'content-type': 'application/octet-stream' };
    if (status === 206) headers['content-range'] = `bytes ${sendFrom}-${file.length - 1}/${file.length}`;
    if (!f.endless) headers['content-length'] = file.length - sendFrom;
    log(status);
    res.writeHead(status, headers);
    let out = file.subarray(sendFrom);
    const cut = f.cuts && f.cuts > 0 && f.cutAfterBytes !== undefined;
    if (cut) {
      f.cuts! -= 1;
      res.write(out.subarray(0, f.cutAfterBytes), () => res.destroy());
      return;
    }
    if (f.endless) {
      res.write(out);
      const zeros = Buffer.alloc(64 * 1024);
      const more = (): void => {
        if (res.destroyed) return;
        if (res.write(zeros)) setImmediate(more);
        else res.once('drain', more);
      };
      more();
      return;
    }
    if (f.trickle) {
      const t = f.trickle;
      const step = (): void => {
        if (res.destroyed) return;
        if (out.length === 0) return void res.end();
        res.write(out.subarray(0, t.bytes));
        out = out.subarray(t.bytes);
        setTimeout(step, t.everyMs);
      };
      step();
      return;
    }
    res.end(out);
  };
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return state;
}

export interface StaticServer {
  /** The base URL of the served dir (no trailing slash). */
  url: string;
  /** Every request: its path, status and the body bytes sent. */
  requests: Array<{ path: string; status: number; bytes: number }>;
  close(): Promise<void>;
}

/**
 * A plain static file server for a directory, the way nginx or caddy serve a pack's out
 * dir: GET with an ETag, `Range: bytes=N-` answered 206 (If-Range honoured), 404 for what
 * is not there. Files are read from disk at each request (a test may corrupt one).
 */
export async function startStaticServer(dir: string): Promise<StaticServer> {
  const requests: StaticServer['requests'] = [];
  const server = createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.join(dir, path.normalize(rel));
    const entry = { path: rel, status: 404, bytes: 0 };
    requests.push(entry);
    if (!file.startsWith(dir + path.sep)) return void res.writeHead(404).end();
    stat(file).then(
      (s) => {
        if (!s.isFile()) return void res.writeHead(404).end();
        const etag = `"${s.size.toString(16)}-${Math.floor(s.mtimeMs).toString(16)}"`;
        const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        const ifRange = req.headers['if-range'];
        const start = m && (ifRange === undefined || ifRange === etag) ? Math.min(Number(m[1]), s.size) : 0;
        const headers: Record<string, string | number> = { etag, 'accept-ranges': 'bytes', 'content-length': s.size - start, 'content-type': 'application/octet-stream' };
        if (m && start > 0) headers['content-range'] = `bytes ${start}-${s.size - 1}/${s.size}`;
        entry.status = m && start > 0 ? 206 : 200;
        res.writeHead(entry.status, headers);
        if (s.size - start === 0) return void res.end();
        const body = createReadStream(file, { start });
        body.on('data', (c) => void (entry.bytes += c.length));
        body.pipe(res);
      },
      () => void res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
