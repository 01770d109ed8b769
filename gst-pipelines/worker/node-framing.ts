/**
 * The send framing in this process, where epframer is not built (native/plugin.ts): the two
 * muxers' outputs arrive through FIFOs (ts-fifo.ts), TsMerger joins them,
 * TsPacketizer makes whole SRT messages flushed at every frame end, and they go into the
 * appsrc before srtsink. One read per muxed frame or audio packet, however the kernel
 * splits it; the packetiser finds frame ends in the stream itself.
 */
import type { Socket } from 'node:net';
import type { GstElement } from './gst.js';
import { TsMerger } from '../mpegts/index.js';
import { TsPacketizer } from '../mpegts/index.js';
import { countFrames, type Counter } from './frame-counter.js';

export interface NodeFramingOptions {
  video: Socket | null;
  audio: Socket | null;
  tsIn: GstElement | undefined;
  holdMs: number;
  send: Counter;
  stopping: () => boolean;
  addTimer: (t: NodeJS.Timeout) => void;
  onError: (message: string) => void;
}

export function wireNodeFraming(o: NodeFramingOptions): TsPacketizer {
  const packetizer = new TsPacketizer({ holdMs: o.holdMs, now: () => Date.now() });
  const emit = (chunks: Buffer[]): void => {
    for (const c of chunks) o.tsIn?.push?.(c);
  };
  const onTs = (buf: Buffer): void => {
    if (o.stopping()) return;
    const before = packetizer.videoFrames;
    const chunks = packetizer.push(buf);
    emit(chunks);
    const now = Date.now();
    if (chunks.length > 0) {
      if (o.send.firstAt === null) o.send.firstAt = now;
      for (const c of chunks) o.send.bytes += c.length;
    }
    countFrames(o.send, now, packetizer.videoFrames - before);
  };
  // A held audio remainder is flushed by a timer armed only while one is held: no
  // 50-a-second wakeups when every frame end flushes anyway.
  let holdTimer: NodeJS.Timeout | null = null;
  const armHold = (): void => {
    const due = packetizer.msUntilDue();
    if (due === null || holdTimer || o.stopping()) return;
    holdTimer = setTimeout(() => {
      holdTimer = null;
      emit(packetizer.flushDue());
      armHold();
    }, due);
    o.addTimer(holdTimer);
  };
  // Video and audio come from two muxers (plan/send.ts); the merger makes one stream of them.
  const merger = o.audio ? new TsMerger() : null;
  o.video?.on('data', (b: Buffer) => {
    onTs(merger ? merger.pushVideo(b) : b);
    armHold();
  });
  o.audio?.on('data', (b: Buffer) => {
    const audio = merger?.pushAudio(b);
    if (audio?.length) onTs(audio);
    armHold();
  });
  for (const pipe of [o.video, o.audio]) pipe?.on('error', (e: Error) => o.onError(`TS pipe: ${e.message}`));
  return packetizer;
}
