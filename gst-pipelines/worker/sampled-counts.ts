/**
 * Frame and byte counts read from element properties every 250 ms (with the worker's
 * stall check), so no frame passes through this process: epframer's `video-frames` and
 * `bytes-out` for what is sent, the received-video fakesink's `rendered` for what is
 * received (plan/receive.ts). Gaps between frames are seen at that resolution.
 */
import type { GstElement } from './gst.js';
import { countFrames, type Counter } from './frame-counter.js';
import { TS_PACKET_SIZE } from '../mpegts/index.js';

export class SampledCounts {
  /** epframer, when the plan frames in GStreamer. */
  framer: GstElement | undefined;
  /** The received-video fakesink (a box; the test hub's audit pulls each frame instead). */
  rxTap: GstElement | undefined;
  private seen = { frames: 0, bytes: 0, padding: 0, rendered: 0 };

  /** epframer's counters → `c` (the send counter). */
  readSend(c: Counter, now: number): void {
    const f = this.framer;
    if (!f) return;
    const frames = Number(f['video-frames'] ?? 0);
    const bytes = Number(f['bytes-out'] ?? 0);
    if (bytes > this.seen.bytes) {
      if (c.firstAt === null) c.firstAt = now;
      c.bytes += bytes - this.seen.bytes;
    }
    countFrames(c, now, frames - this.seen.frames);
    this.seen = { ...this.seen, frames, bytes, padding: Number(f['padding-packets'] ?? 0) };
  }

  /** The fakesink's `rendered` count → `c` (the receive counter); true when these are the first frames. */
  readReceive(c: Counter, now: number): boolean {
    const tap = this.rxTap;
    if (!tap) return false;
    const m = /rendered=\(g?u?int64\)(\d+)/.exec(String(tap.stats ?? ''));
    const rendered = m ? Number(m[1]) : this.seen.rendered;
    if (rendered <= this.seen.rendered) return false;
    const first = c.firstAt === null;
    if (first) c.firstAt = now;
    countFrames(c, now, rendered - this.seen.rendered);
    this.seen = { ...this.seen, rendered };
    return first;
  }

  /** Share of epframer's output that is frame-end padding, % (null before any output). */
  paddingPct(): number | null {
    const { bytes, padding } = this.seen;
    return bytes > 0 ? Math.round(((padding * TS_PACKET_SIZE) / bytes) * 1000) / 10 : null;
  }
}
