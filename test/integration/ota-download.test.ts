/**
 * The bundle download against a real HTTP server that misbehaves on cue
 * (helpers/ota-server.ts), to real files: every fault ends in either the exact file or a
 * clean failure with nothing left half-written, and resuming never appends a wrong byte.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DownloadOptions } from '../../ota/index.js';
import { download } from '../../ota/transfer.js';
import { startOtaServer, type OtaServer } from './helpers/ota-server.js';

const BODY = randomBytes(1024 * 1024 + 123);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
let dir: string;
let server: OtaServer | null = null;
const noWait = async (): Promise<void> => undefined;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-ota-dl-'));
});
afterEach(async () => {
  await server?.close();
  server = null;
  await rm(dir, { recursive: true, force: true });
});

async function run(faults: Parameters<typeof startOtaServer>[1], over: Partial<DownloadOptions> = {}) {
  server = await startOtaServer(BODY, faults);
  const dest = path.join(dir, 'bundle.tar.gz');
  const r = await download({ url: server.url(), dest, size: BODY.length, sleep: noWait, ...over });
  return { r, dest };
}

const exists = (f: string): Promise<boolean> => stat(f).then(() => true, () => false);

describe('downloading a bundle', () => {
  it('a clean server: the exact file, one attempt, no sidecar left', async () => {
    const { r, dest } = await run({});
    expect(r).toMatchObject({ ok: true, attempts: 1 });
    expect(sha(await readFile(dest))).toBe(sha(BODY));
    expect(await exists(`${dest}.part.json`)).toBe(false);
  });

  it('the connection cut mid-bundle 20 times: succeeds with 25 retries, resuming with Range each time', async () => {
    const { r, dest } = await run({ cutAfterBytes: 40_000, cuts: 20 }, { retries: 25 });
    expect(r).toMatchObject({ ok: true, attempts: 21, resumed: 20, restartsFromZero: 0 });
    expect(sha(await readFile(dest))).toBe(sha(BODY));
    expect(server!.requests.slice(1).every((q) => q.range !== null && q.status === 206)).toBe(true);
  });

  it('the connection cut 20 times: fails cleanly with 18 retries, the partial file kept for a resume', async () => {
    const { r, dest } = await run({ cutAfterBytes: 40_000, cuts: 20 }, { retries: 18 });
    expect(r).toMatchObject({ ok: false, code: 'download_failed', attempts: 19 });
    expect((await stat(dest)).size).toBe(19 * 40_000);
    // A later attempt (an agent restart), on a link that holds now, resumes from there.
    server!.faults.cuts = 0;
    const again = await download({ url: server!.url(), dest, size: BODY.length, sleep: noWait });
    expect(again).toMatchObject({ ok: true, attempts: 1, resumed: 1 });
    expect(server!.requests.at(-1)!.range).toBe(`bytes=${19 * 40_000}-`);
    expect(sha(await readFile(dest))).toBe(sha(BODY));
  });

  it('HTTP 500 on every second request', async () => {
    const { r, dest } = await run({ error500Every: 2, cutAfterBytes: 300_000, cuts: 3 });
    expect(r.ok).toBe(true);
    expect(sha(await readFile(dest))).toBe(sha(BODY));
    expect(server!.requests.filter((q) => q.status === 500).length).toBeGreaterThan(0);
  });

  it('a server that ignores Range (200 to a Range request): the file is rewritten from byte 0, never appended', async () => {
    const { r, dest } = await run({ ignoreRange: true, cutAfterBytes: 300_000, cuts: 2 });
    expect(r).toMatchObject({ ok: true, resumed: 0, restartsFromZero: 2 });
    expect(sha(await readFile(dest))).toBe(sha(BODY));
  });

  it('a Content-Range that does not start at the local length: refused, restarted from 0, the file exact', async () => {
    const { r, dest } = await run({ cutAfterBytes: 300_000, cuts: 1, wrongRangeOffset: 1000 });
    expect(r).toMatchObject({ ok: true, restartsFromZero: 1 });
    expect(sha(await readFile(dest))).toBe(sha(BODY));
  });

  it('the file changed on the server between attempts (a new ETag): If-Range gets the whole new file', async () => {
    server = await startOtaServer(BODY, { cutAfterBytes: 300_000, cuts: 1 });
    const dest = path.join(dir, 'bundle.tar.gz');
    const first = await download({ url: server.url(), dest, size: BODY.length, retries: 0, sleep: noWait });
    expect(first.ok).toBe(false);
    const changed = randomBytes(BODY.length);
    server.setBody(changed);
    const r = await download({ url: server.url(), dest, size: BODY.length, sleep: noWait });
    expect(r.ok).toBe(true);
    expect(sha(await readFile(dest))).toBe(sha(changed)); // the caller's sha256 check then refuses it
    expect(server.requests.at(-1)).toMatchObject({ ifRange: expect.stringMatching(/^"v1-/), status: 200 });
  });

  it('endless data: stops at size + 1 bytes, too_large, nothing left on disk', async () => {
    const { r, dest } = await run({ endless: true });
    expect(r).toMatchObject({ ok: false, code: 'too_large' });
    expect(await exists(dest)).toBe(false);
    expect(await exists(`${dest}.part.json`)).toBe(false);
  });

  it('a slow server (trickling 64 KiB every 5 ms) still completes, reporting progress', async () => {
    const seen: number[] = [];
    const { r, dest } = await run({ trickle: { bytes: 64 * 1024, everyMs: 5 } }, { progress: (have) => seen.push(have) });
    expect(r.ok).toBe(true);
    expect(sha(await readFile(dest))).toBe(sha(BODY));
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.at(-1)).toBe(BODY.length);
  });

  it('a partial file of another download (the sidecar names another URL) is not resumed', async () => {
    const dest = path.join(dir, 'bundle.tar.gz');
    await writeFile(dest, randomBytes(5000));
    await writeFile(`${dest}.part.json`, JSON.stringify({ url: 'http://elsewhere/x', size: BODY.length, etag: null, lastModified: null }));
    server = await startOtaServer(BODY);
    const r = await download({ url: server.url(), dest, size: BODY.length, sleep: noWait });
    expect(r).toMatchObject({ ok: true, resumed: 0 });
    expect(server.requests[0]!.range).toBeNull();
    expect(sha(await readFile(dest))).toBe(sha(BODY));
  });
});
