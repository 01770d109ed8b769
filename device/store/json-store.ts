/**
 * Group commit for a small JSON state file: many changes in the same tick become one
 * atomic write, and nobody is told "saved" before their change is on disk.
 *
 * `write()` asks for the current state to be saved. It resolves once a write that took
 * its snapshot AFTER the call has reached the disk (so the caller's change is in it), and
 * rejects if that write failed. Calls made while a write is in flight are batched into
 * the next one; calls made in the same tick share one. Writes never overlap, so the file
 * only ever moves forward.
 */
import { writeFileAtomic } from '../../lib/index.js';

export interface CoalescedWriterOptions<S> {
  file: string;
  mode?: number;
  /** Takes the state to save, at the moment the write starts. */
  snapshot: () => S;
  encode: (s: S) => string;
  /** Called once for every snapshot that reached the disk, before the waiting callers resume. */
  written?: (s: S) => void;
}

interface Batch {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function batch(): Batch {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch nobody awaits (e.g. a best-effort save) must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export class CoalescedWriter<S> {
  private queued: Batch | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly opts: CoalescedWriterOptions<S>) {}

  write(): Promise<void> {
    if (this.queued) return this.queued.promise;
    const b = batch();
    this.queued = b;
    // Start after the current tick so that every change made in it joins this write.
    if (!this.running) void Promise.resolve().then(() => this.next());
    return b.promise;
  }

  /** Settles once nothing is being written or waiting to be. */
  async idle(): Promise<void> {
    for (;;) {
      const p = this.queued?.promise ?? this.running;
      if (!p) return;
      await p.catch(() => undefined);
    }
  }

  private next(): void {
    const b = this.queued;
    if (!b || this.running) return;
    this.queued = null;
    this.running = this.save(b).finally(() => {
      this.running = null;
      this.next();
    });
  }

  private async save(b: Batch): Promise<void> {
    try {
      const s = this.opts.snapshot();
      await writeFileAtomic(this.opts.file, this.opts.encode(s), { mode: this.opts.mode });
      this.opts.written?.(s);
      b.resolve();
    } catch (e) {
      b.reject(e);
    }
  }
}
