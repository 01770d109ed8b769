/**
 * Keeps the last log lines in memory for the `logs` command. It receives pino's
 * output, so every line it holds was already redacted by the logger's configuration.
 */
import { Writable } from 'node:stream';

/** Lines kept by default, and the longest line kept whole (longer ones are cut and say so). */
export const LOG_RING_LINES = 2000;
export const LOG_LINE_CHARS = 8192;

const cut = (line: string): string => (line.length > LOG_LINE_CHARS ? `${line.slice(0, LOG_LINE_CHARS)}…[cut ${line.length - LOG_LINE_CHARS} chars]` : line);

export class LogRing extends Writable {
  private lines: string[] = [];
  private partial = '';

  constructor(private readonly max = LOG_RING_LINES) {
    super();
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    // A line that never ends must not grow without bound either.
    this.partial = cut(parts.pop() ?? '');
    for (const p of parts) if (p) this.lines.push(cut(p));
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
    cb();
  }

  tail(n: number): string[] {
    return this.lines.slice(-Math.max(0, n));
  }

  /** The last `n` lines at level error or fatal (pino's 50, 60), oldest first: `ep status`'s "last errors". */
  errors(n: number): string[] {
    const out: string[] = [];
    for (let i = this.lines.length - 1; i >= 0 && out.length < n; i--) if (/"level":[56]\d\b/.test(this.lines[i]!)) out.push(this.lines[i]!);
    return out.reverse();
  }
}
