/**
 * The rollout's target version: the manifest fetched once (GET, http or https, at most
 * MANIFEST_MAX_BYTES read) and decoded with the boxes' own decoder. The boxes check the
 * signature themselves; the operator only needs the version, and a manifest it cannot
 * read is refused here, before anything is sent.
 */
import { MANIFEST_MAX_BYTES, decodeManifest } from '../../ota/index.js';
import { FleetUsageError } from './client.js';
import { cleanText } from './roster.js';

export interface TargetManifest {
  name: string;
  version: string;
}

export interface FetchOptions {
  timeoutMs?: number;
  /** Test hook. */
  fetch?: typeof fetch;
}

/** The same rule as the `ota` command's args: http(s), at most 2048 characters. */
export function checkManifestUrl(url: string): void {
  if (url.length > 2048) throw new FleetUsageError('--manifest: over 2048 characters');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FleetUsageError('--manifest: not a URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new FleetUsageError(`--manifest: ${u.protocol}// is not supported (http:// or https://)`);
  if (!/^https?:\/\//.test(url)) throw new FleetUsageError('--manifest: must start with http:// or https://');
}

/** Reads at most max + 1 bytes of a body (more means too big). */
async function readCapped(body: ReadableStream<Uint8Array> | null, max: number): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
      size += value.length;
      if (size > max) break;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, max + 1);
}

/** GETs and decodes the manifest; FleetUsageError (exit 2) when it cannot be read. */
export async function fetchTargetManifest(url: string, o: FetchOptions = {}): Promise<TargetManifest> {
  checkManifestUrl(url);
  const f = o.fetch ?? fetch;
  let bytes: Buffer;
  try {
    const res = await f(url, { redirect: 'follow', signal: AbortSignal.timeout(o.timeoutMs ?? 15_000) });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw new FleetUsageError(`manifest ${url}: HTTP ${res.status}`);
    }
    bytes = await readCapped(res.body, MANIFEST_MAX_BYTES);
  } catch (e) {
    if (e instanceof FleetUsageError) throw e;
    const err = e as Error & { cause?: { code?: string; message?: string } };
    const why = err.cause?.code ?? err.cause?.message ?? err.message;
    throw new FleetUsageError(`manifest ${url}: cannot fetch it (${cleanText(String(why))})`);
  }
  const d = decodeManifest(bytes);
  if (!d.ok) throw new FleetUsageError(`manifest ${url} cannot be read:\n  ${d.problems.map((p) => cleanText(p)).join('\n  ')}`);
  return { name: cleanText(d.manifest.name, 64), version: d.manifest.version };
}
