/**
 * A bundle file against its manifest: read once, streaming (a buffer, never the file in
 * memory), hashed with SHA-256, and stopped at `size + 1` bytes — a file that goes on
 * past its declared size is refused without reading the rest (endless data).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

export type BundleCheck = { ok: true } | { ok: false; code: 'too_large' | 'size_mismatch' | 'sha256_mismatch' | 'unreadable'; message: string };

export async function checkBundleFile(file: string, want: { sha256: string; size: number }): Promise<BundleCheck> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    return { ok: false, code: 'unreadable', message: `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  try {
    const hash = createHash('sha256');
    const buf = Buffer.alloc(256 * 1024);
    let total = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, want.size + 1 - total), total);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > want.size) return { ok: false, code: 'too_large', message: `the bundle is larger than the ${want.size} bytes the manifest declares` };
      hash.update(buf.subarray(0, bytesRead));
    }
    if (total !== want.size) return { ok: false, code: 'size_mismatch', message: `the bundle is ${total} bytes; the manifest declares ${want.size}` };
    const got = hash.digest('hex');
    if (got !== want.sha256) return { ok: false, code: 'sha256_mismatch', message: `the bundle's sha256 is ${got}; the manifest declares ${want.sha256}` };
    return { ok: true };
  } finally {
    await fh.close();
  }
}
