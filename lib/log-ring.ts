/**
 * Keeps the last log lines in memory for the `logs` command. It receives pino's
 * output, so every line it holds was already redacted by the logger's configuration.
 */
import { Writable } from 'node:stream';

export class LogRing extends Writable {
  private lines: string[] = [];
  private partial = '';

  constructor(private readonly max = 2000) {
    super();
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) if (p) this.lines.push(p);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
    cb();
  }

  tail(n: number): string[] {
    return this.lines.slice(-Math.max(0, n));
  }
}
