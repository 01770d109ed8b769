import type * as fsp from 'node:fs/promises';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanupTemp, CorruptFileError, isCorruptFileError, readJsonFile, writeFileAtomic } from '../../lib/atomic-file.js';

// Record the order of the durability steps (open, fsync, rename) while still doing them for real.
const ops = vi.hoisted(() => ({ log: [] as string[] }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof fsp>();
  const open: typeof real.open = async (p, flags, mode) => {
    const h = await real.open(p, flags, mode);
    ops.log.push(`open ${String(p)} ${String(flags)}`);
    const sync = h.sync.bind(h);
    h.sync = async () => {
      ops.log.push(`sync ${String(p)}`);
      return sync();
    };
    return h;
  };
  const rename: typeof real.rename = async (from, to) => {
    ops.log.push(`rename ${String(from)} ${String(to)}`);
    return real.rename(from, to);
  };
  return { ...real, default: { ...real, open, rename }, open, rename };
});

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-atomic-'));
  ops.log.length = 0;
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('writes a temp file, fsyncs it, renames it over the target, then fsyncs the directory', async () => {
    const file = path.join(dir, 'state.json');
    await writeFileAtomic(file, '{"a":1}');
    expect(await readFile(file, 'utf8')).toBe('{"a":1}');
    const tmp = /^open (.*\.tmp-\d+-[0-9a-f]+) wx$/.exec(ops.log[0] ?? '')?.[1];
    expect(tmp, ops.log.join('\n')).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.tmp-${process.pid}-`));
    expect(ops.log).toEqual([`open ${tmp} wx`, `sync ${tmp}`, `rename ${tmp} ${file}`, `open ${dir} r`, `sync ${dir}`]);
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('replaces an existing file whole', async () => {
    const file = path.join(dir, 'state.json');
    await writeFileAtomic(file, 'x'.repeat(1000));
    await writeFileAtomic(file, Buffer.from('short'));
    expect(await readFile(file, 'utf8')).toBe('short');
  });

  it('applies the mode exactly, whatever the umask', async () => {
    const file = path.join(dir, 'secret.json');
    const old = process.umask(0o077);
    try {
      await writeFileAtomic(file, '{}', { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    expect((await stat(file)).mode & 0o777).toBe(0o644);
  });

  it('rejects and leaves no temp file behind when the rename fails', async () => {
    const file = path.join(dir, 'target');
    await mkdir(file); // renaming a file over a directory fails with EISDIR
    await expect(writeFileAtomic(file, 'data')).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['target']);
  });

  it('rejects when the directory does not exist', async () => {
    await expect(writeFileAtomic(path.join(dir, 'nope', 'state.json'), '{}')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('readJsonFile', () => {
  it('returns null for a missing file', async () => {
    expect(await readJsonFile(path.join(dir, 'missing.json'), { maxBytes: 100 })).toBeNull();
  });

  it('returns the parsed value, through decode when given', async () => {
    const file = path.join(dir, 's.json');
    await writeFile(file, '{"n":3}');
    expect(await readJsonFile(file, { maxBytes: 100 })).toEqual({ n: 3 });
    const decoded = await readJsonFile(file, { maxBytes: 100, decode: (v) => (v as { n: number }).n * 2 });
    expect(decoded).toBe(6);
  });

  it.each([
    ['half-written JSON', '{"events":[{"seq":1', /not JSON/],
    ['an empty file', '', /empty/],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /UTF-8/],
    ['a file over maxBytes', JSON.stringify({ pad: 'x'.repeat(200) }), /more than the 100 allowed/],
  ])('throws a CorruptFileError naming the path for %s', async (_what, content, reason) => {
    const file = path.join(dir, 'bad.json');
    await writeFile(file, content);
    const err: unknown = await readJsonFile(file, { maxBytes: 100 }).catch((e: unknown) => e);
    expect(isCorruptFileError(err)).toBe(true);
    expect(err).toBeInstanceOf(CorruptFileError);
    expect((err as CorruptFileError).path).toBe(file);
    expect((err as CorruptFileError).message).toContain(file);
    expect((err as CorruptFileError).reason).toMatch(reason);
  });

  it('treats a decode failure as corruption', async () => {
    const file = path.join(dir, 's.json');
    await writeFile(file, '[]');
    const decode = (v: unknown): object => {
      if (!Array.isArray(v) || v.length === 0) throw new Error('entries: empty');
      return v;
    };
    await expect(readJsonFile(file, { maxBytes: 100, decode })).rejects.toThrow(/s\.json: unexpected content \(entries: empty\)/);
  });

  it('quarantines a corrupt file: moves it aside, reports it and returns null', async () => {
    const file = path.join(dir, 'outbox.json');
    await writeFile(file, 'garbage');
    const seen: string[] = [];
    const value = await readJsonFile(file, {
      maxBytes: 100,
      quarantine: true,
      now: () => 1234,
      onQuarantine: (e, movedTo) => seen.push(`${e.reason} -> ${path.basename(movedTo)}`),
    });
    expect(value).toBeNull();
    expect(await readdir(dir)).toEqual(['outbox.json.corrupt-1234']);
    expect(await readFile(path.join(dir, 'outbox.json.corrupt-1234'), 'utf8')).toBe('garbage');
    expect(seen).toEqual([expect.stringMatching(/^not JSON .* -> outbox\.json\.corrupt-1234$/)]);
  });

  it('does not quarantine a file it cannot read for other reasons', async () => {
    const file = path.join(dir, 'adir.json');
    await mkdir(file);
    await expect(readJsonFile(file, { maxBytes: 100, quarantine: true })).rejects.toMatchObject({ code: 'EISDIR' });
    expect(await readdir(dir)).toEqual(['adir.json']);
  });
});

describe('cleanupTemp', () => {
  it('removes the temp files a crash left for that prefix, and nothing else', async () => {
    for (const n of ['outbox.json', 'outbox.json.tmp-12-abc', 'outbox.json.tmp-99-def', 'ledger.json.tmp-12-abc', 'outbox.json.corrupt-5']) {
      await writeFile(path.join(dir, n), 'x');
    }
    const removed = await cleanupTemp(dir, 'outbox.json');
    expect(removed.sort()).toEqual(['outbox.json.tmp-12-abc', 'outbox.json.tmp-99-def']);
    expect((await readdir(dir)).sort()).toEqual(['ledger.json.tmp-12-abc', 'outbox.json', 'outbox.json.corrupt-5']);
  });

  it('is quiet about a missing directory', async () => {
    expect(await cleanupTemp(path.join(dir, 'none'), 'x')).toEqual([]);
  });
});
