/**
 * FIFOs between an fdsink and this process. mpegtsmux (alignment=0) → fdsink writes each
 * muxed frame with one writev into a FIFO that this process reads as a stream. An appsink
 * would hand every 188-byte TS packet over as its own sample — a threadpool round trip
 * and a JS callback per packet, ~1000 a second, which cost a third more CPU than
 * gst-launch (measured, docs/benchmarks.md).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, openSync, unlinkSync } from 'node:fs';
import { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { GstPipeline } from './gst.js';

/** Both ends of a FIFO, opened; the name is unlinked at once. Write end blocking. */
export function makeTsFifo(): { wfd: number; rfd: number } {
  const fifo = path.join(os.tmpdir(), `ep-ts-${process.pid}-${randomBytes(4).toString('hex')}`);
  execFileSync('mkfifo', ['-m', '600', fifo]);
  try {
    const wfd = openSync(fifo, fsConstants.O_RDWR);
    const rfd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    return { wfd, rfd };
  } finally {
    unlinkSync(fifo);
  }
}

/** FIFOs made in advance (by a warm worker), handed out in order; more are made when they run out. */
export class FifoPool {
  private fifos: Array<{ wfd: number; rfd: number }> = [];

  fill(n: number): void {
    this.fifos = Array.from({ length: n }, () => makeTsFifo());
  }

  /**
   * Points the fdsink `name` at a FIFO and returns its read end as a stream; null when
   * the pipeline has no such sink (a `direct` description: mpegtsmux feeds srtsink
   * itself). The write end is blocking, so a slow reader back-pressures the muxer
   * instead of losing data.
   */
  openSink(p: GstPipeline, name: string | undefined): Socket | null {
    const sink = name ? p.findChild(name) : undefined;
    if (!sink) return null;
    const { wfd, rfd } = this.fifos.shift() ?? makeTsFifo();
    sink.fd = wfd;
    return new Socket({ fd: rfd, readable: true, writable: false });
  }
}
