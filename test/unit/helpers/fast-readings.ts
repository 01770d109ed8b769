/**
 * srtsink readings scripted the way libsrt reports them (cumulative counters, read every
 * FAST_SAMPLE_MS) for the link-adaptation tests adapt-collapse and adapt-loop.
 */
import { FAST_SAMPLE_MS, type FastSample } from '../../../gst-pipelines/adapt/collapse.js';
import { ladderFor } from '../../../gst-pipelines/adapt/ladder.js';
import type { AdaptConfig } from '../../../gst-pipelines/types.js';

const VIDEO = { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 };
export const CONFIG: AdaptConfig = { enabled: true, maxKbps: 1500, ladder: ladderFor(VIDEO), audioWireKbps: 80, srtLatencyMs: 200 };
const BYTES_PER_PACKET = 1360;

/** A link as srtsink sees it: per-second rates of packets sent and ACKs, and the RTT, over time. */
export interface Phase {
  untilMs: number;
  sentPerS: number;
  acksPerS: number;
  rttMs: (tMs: number) => number;
  /** Packets the hub reports lost (NAKs) per second; absent in every phase: readings without the counter. */
  lostPerS?: number;
}

export function readings(phases: Phase[], stepMs = FAST_SAMPLE_MS): FastSample[] {
  const out: FastSample[] = [];
  let sent = 0;
  let acks = 0;
  let lost = 0;
  let t = 0;
  const withLoss = phases.some((p) => p.lostPerS !== undefined);
  for (const p of phases) {
    for (; t < p.untilMs; t += stepMs) {
      sent += (p.sentPerS * stepMs) / 1000;
      acks += (p.acksPerS * stepMs) / 1000;
      lost += ((p.lostPerS ?? 0) * stepMs) / 1000;
      out.push({ atMs: t, rttMs: p.rttMs(t), packetsSent: Math.floor(sent), bytesSent: Math.floor(sent) * BYTES_PER_PACKET, acksReceived: Math.floor(acks), ...(withLoss ? { lostPackets: Math.floor(lost) } : {}) });
    }
  }
  return out;
}

export const flat = (ms: number) => (): number => ms;
export const clean: Phase = { untilMs: 5000, sentPerS: 150, acksPerS: 70, rttMs: flat(2) };
