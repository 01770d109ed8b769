/**
 * Crash-safe state files for a box whose power gets cut (docs/platform-facts.md: SD cards corrupt
 * on power cuts). The one helper for atomic, fsynced writes:
 *
 *   write `${file}.tmp-<pid>-<rand>` → fsync it → rename over `file` → fsync the directory
 *
 * The rename makes the switch atomic (a reader sees the old bytes or the new ones, never
 * half of each); the file fsync makes the new bytes durable before the rename can be;
 * the directory fsync makes the rename itself durable. Node's `flush` option and the
 * write-file-atomic package both skip that last step, which is why this exists.
 *
 * Reading is the other half: `readJsonFile` caps the size before `JSON.parse`, tells a
 * missing file (null) from a corrupt one (a named error with the path), and can move a
 * corrupt file aside so a bad state file never stops the box from starting.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/** A state file exists but cannot be used: too large, not UTF-8, not JSON, or the wrong shape. */
export class CorruptFileError extends Error {
  override readonly name = 'CorruptFileError';
  constructor(
    readonly path: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${reason}`, options);
  }
}

export function isCorruptFileError(e: unknown): e is CorruptFileError {
  return e instanceof CorruptFileError;
}

export interface WriteFileAtomicOptions {
  /** File mode, applied exactly (not through the umask). Default: 0o666 minus the umask, like fs.writeFile. */
  mode?: number;
  /** Owner set on the temp file before the rename, so no reader ever sees the file with the wrong owner (needs root). */
  owner?: { uid: number; gid: number } | null;
}

/**
 * Replaces `file` with `data` so that after a crash or power cut at any moment `file`
 * holds either its previous content or `data`, whole. Resolves once both the data and
 * the rename are on disk. Concurrent calls for the same file are safe (each has its own
 * temp file; the last rename wins) but their order is the caller's business.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, opts: WriteFileAtomicOptions = {}): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx', opts.mode ?? 0o666);
    try {
      if (opts.mode !== undefined) await fh.chmod(opts.mode);
      if (opts.owner) await fh.chown(opts.owner.uid, opts.owner.gid);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    renamed = true;
    await fsyncDir(path.dirname(file));
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Makes the directory entries of `dir` (a rename, a new file) durable: open the directory
 * read-only, fsync, close. Filesystems that cannot fsync a directory answer EINVAL (or
 * EBADF / ENOTSUP); like PostgreSQL's fsync_fname, that is not treated as a failure,
 * because there is nothing more the caller could do about it.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EBADF' && code !== 'ENOTSUP') throw e;
  } finally {
    await dh.close();
  }
}

export interface ReadJsonFileOptions<T> {
  /** Larger files are corrupt (checked before reading them whole and before JSON.parse). */
  maxBytes: number;
  /** Checks the parsed value and returns it typed; throwing makes the file corrupt. Without it the value is returned as is. */
  decode?: (value: unknown) => T;
  /**
   * Move a corrupt file to `${file}.corrupt-<ms>` and return null instead of throwing, so
   * the caller starts afresh and the bad file stays for the technician to look at.
   */
  quarantine?: boolean;
  /** Told about each quarantined file (for the log). */
  onQuarantine?: (err: CorruptFileError, movedTo: string) => void;
  /** Milliseconds for the quarantine name. Default Date.now. */
  now?: () => number;
}

/**
 * Reads a JSON state file. Returns null when it does not exist; throws CorruptFileError
 * (or, with `quarantine`, moves it aside and returns null) when it is unusable. Other
 * errors (permissions, I/O) are thrown as they are: moving the file would not help.
 */
export async function readJsonFile<T = unknown>(file: string, opts: ReadJsonFileOptions<T>): Promise<T | null> {
  let text: string;
  try {
    const bytes = await readFileCapped(file, opts.maxBytes);
    if (bytes === null) return null;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (e) {
      throw new CorruptFileError(file, 'not valid UTF-8', { cause: e });
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new CorruptFileError(file, `not JSON (${(e as Error).message})`, { cause: e });
    }
    if (!opts.decode) return value as T;
    try {
      return opts.decode(value);
    } catch (e) {
      throw new CorruptFileError(file, `unexpected content (${(e as Error).message})`, { cause: e });
    }
  } catch (e) {
    if (!isCorruptFileError(e) || !opts.quarantine) throw e;
    const movedTo = `${file}.corrupt-${(opts.now ?? Date.now)()}`;
    await rename(file, movedTo);
    await fsyncDir(path.dirname(file));
    opts.onQuarantine?.(e, movedTo);
    return null;
  }
}

/** The file's bytes, null when it does not exist, CorruptFileError when over `maxBytes` (read no further). */
export async function readFileCapped(file: string, maxBytes: number): Promise<Buffer | null> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const st = await fh.stat();
    // Not corruption, a setup problem that moving the path aside would not fix.
    if (!st.isFile()) throw Object.assign(new Error(`${file}: not a regular file`), { code: st.isDirectory() ? 'EISDIR' : 'EINVAL', path: file });
    const size = st.size;
    if (size > maxBytes) throw new CorruptFileError(file, `${size} bytes, more than the ${maxBytes} allowed`);
    if (size === 0) throw new CorruptFileError(file, 'empty');
    // The size can change between stat and read; read at most one byte past the cap to notice.
    const buf = Buffer.alloc(Math.min(maxBytes + 1, size + 1));
    let got = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got === buf.length) break;
    }
    if (got > maxBytes) throw new CorruptFileError(file, `more than the ${maxBytes} bytes allowed`);
    if (got === 0) throw new CorruptFileError(file, 'empty');
    return buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

/**
 * Removes temp files that a crash left behind for `dir/prefix` (`prefix.tmp-*`), and
 * returns their names. Call it before the first write of the store that owns `prefix`
 * (its `load()`): a temp file of a write in flight would be removed too, and pids repeat
 * across boots, so the pid in the name cannot tell a live write from a dead one.
 */
export async function cleanupTemp(dir: string, prefix: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const stale = names.filter((n) => n.startsWith(`${prefix}.tmp-`));
  for (const n of stale) await unlink(path.join(dir, n)).catch(() => undefined);
  return stale;
}
