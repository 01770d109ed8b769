/**
 * An append-only journal of JSON records, one per line, with group commit and
 * compaction: the cheap way to keep a small, often-changing state on an SD card.
 *
 *   const j = new Journal({ file, kind: 'command-ledger', maxBytes });
 *   const records = await j.load();          // [] when there is none
 *   await j.append({ ... });                  // on disk (fdatasync) when it resolves
 *   j.compactWith(() => currentRecords());    // the next flush rewrites the file atomically
 *
 * Appends made in the same tick, or while a flush is in flight, share one write and one
 * fdatasync. Compaction replaces the file (temp + fsync + rename) with the records the
 * callback returns at the moment it runs, which already hold every change whose line was
 * waiting, so those waiters are released by it. The first line is a header
 * `{"v": 2, "kind": KIND}`. A power cut can tear the last line: `load` drops a torn last
 * line (and says so), and treats anything else that does not parse as a corrupt file.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { CorruptFileError, readFileCapped, writeFileAtomic } from '../../lib/index.js';

export interface JournalOptions {
  file: string;
  /** The header's kind: a file of another kind is corrupt. */
  kind: string;
  /** A larger file is corrupt (bound the load). */
  maxBytes: number;
  mode?: number;
}

export interface JournalLoad {
  records: unknown[];
  /** The last line was torn (a power cut mid-append) and was dropped. */
  tornTail: boolean;
}

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class Journal {
  private fh: FileHandle | null = null;
  private pending: string[] = [];
  private waiters: Waiter[] = [];
  private compactor: (() => string[]) | null = null;
  private running: Promise<void> | null = null;
  private scheduled = false;
  private bytes = 0;
  private lines = 0;

  constructor(private readonly o: JournalOptions) {}

  /** Bytes and record lines in the file now (for the owner's compaction rule). */
  get size(): { bytes: number; lines: number } {
    return { bytes: this.bytes, lines: this.lines };
  }

  /** The records in the file; [] when there is none. Throws CorruptFileError. */
  async load(): Promise<JournalLoad> {
    let buf: Buffer | null;
    try {
      buf = await readFileCapped(this.o.file, this.o.maxBytes);
    } catch (e) {
      // Created, then the power went before the header was written: nothing was recorded.
      if (e instanceof CorruptFileError && e.reason === 'empty') return { records: [], tornTail: false };
      throw e;
    }
    if (buf === null) return { records: [], tornTail: false };
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
    } catch (e) {
      throw new CorruptFileError(this.o.file, 'not valid UTF-8', { cause: e });
    }
    const lines = text.split('\n');
    const complete = text.endsWith('\n');
    if (complete) lines.pop();
    const records: unknown[] = [];
    let tornTail = false;
    for (let i = 0; i < lines.length; i++) {
      const last = i === lines.length - 1;
      let v: unknown;
      try {
        v = JSON.parse(lines[i]!);
      } catch {
        if (last && i > 0) {
          tornTail = true;
          break;
        }
        throw new CorruptFileError(this.o.file, `line ${i + 1}: not JSON`);
      }
      if (last && !complete && i > 0) {
        tornTail = true; // parsed, but its newline never made it: not known to be whole
        break;
      }
      if (i === 0) {
        const h = v as { v?: unknown; kind?: unknown } | null;
        if (typeof h !== 'object' || h === null || h.v !== 2 || h.kind !== this.o.kind) throw new CorruptFileError(this.o.file, `line 1: not a ${this.o.kind} journal header`);
        continue;
      }
      records.push(v);
    }
    this.bytes = buf.length;
    this.lines = records.length;
    return { records, tornTail };
  }

  /** Adds a record (one line of JSON, no newline); resolves once it is on disk, rejects if writing failed. */
  append(line: string): Promise<void> {
    this.pending.push(`${line}\n`);
    return this.waitFlush();
  }

  /** The next flush rewrites the file with `lines()` (taken when it runs) instead of appending. */
  compactWith(lines: () => string[]): Promise<void> {
    this.compactor = lines;
    return this.waitFlush();
  }

  /** Settles once nothing is being written or waiting to be. */
  async idle(): Promise<void> {
    while (this.running || this.scheduled) await (this.running ?? Promise.resolve()).catch(() => undefined).then(() => new Promise((r) => setImmediate(r)));
  }

  async close(): Promise<void> {
    await this.idle();
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }

  private waitFlush(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    p.catch(() => undefined); // a waiter nobody awaits must not become an unhandled rejection
    if (!this.scheduled && !this.running) {
      this.scheduled = true;
      void Promise.resolve().then(() => this.next());
    }
    return p;
  }

  private next(): void {
    this.scheduled = false;
    if (this.running || (this.pending.length === 0 && this.compactor === null)) return;
    const waiters = this.waiters;
    this.waiters = [];
    this.running = this.flush().then(
      () => waiters.forEach((w) => w.resolve()),
      (e: unknown) => waiters.forEach((w) => w.reject(e)),
    ).finally(() => {
      this.running = null;
      if (this.pending.length || this.compactor) this.next();
    });
  }

  private async flush(): Promise<void> {
    const header = `${JSON.stringify({ v: 2, kind: this.o.kind })}\n`;
    const compactor = this.compactor;
    if (compactor) {
      this.compactor = null;
      this.pending = [];
      const records = compactor();
      const text = header + records.map((r) => `${r}\n`).join('');
      await this.fh?.close().catch(() => undefined);
      this.fh = null;
      await writeFileAtomic(this.o.file, text, { mode: this.o.mode });
      this.bytes = Buffer.byteLength(text);
      this.lines = records.length;
      return;
    }
    const chunk = this.pending.join('');
    this.pending = [];
    if (!this.fh) {
      this.fh = await open(this.o.file, 'a', this.o.mode ?? 0o600);
      if ((await this.fh.stat()).size === 0) {
        await this.fh.write(header);
        this.bytes = Buffer.byteLength(header);
      }
    }
    await this.fh.write(chunk);
    await this.fh.datasync();
    // Removed under us (by hand, or the data directory went): those lines are nowhere.
    if ((await this.fh.stat()).nlink === 0) {
      const fh = this.fh;
      this.fh = null;
      await fh.close().catch(() => undefined);
      throw new Error(`${this.o.file}: the journal file was removed while open`);
    }
    this.bytes += Buffer.byteLength(chunk);
    this.lines += chunk.split('\n').length - 1;
  }
}
