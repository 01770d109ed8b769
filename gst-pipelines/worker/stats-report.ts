/**
 * The periodic stats report: frame rates and gaps per direction, SRT figures per side
 * (over the interval since the last report), padding, the receive audit, audio levels,
 * link adaptation and the process's memory.
 */
import { srtLinkStats, srtStatsFromStructure, type SrtStats } from '../adapt/index.js';
import { takeRate, type Counter } from './frame-counter.js';
import type { AudioLevels } from './audio-levels.js';
import type { GstPipeline } from './gst.js';
import type { PipelineAdaptation } from './pipeline-adaptation.js';
import type { WorkerStats } from './protocol.js';
import type { ReceivePath } from './receive-path.js';
import type { SampledCounts } from './sampled-counts.js';
import type { SendPath } from './send-path.js';
import type { MediaPlan } from '../types.js';

/** What a report is read from. */
export interface StatsSources {
  startedAt: number;
  pipeline: GstPipeline;
  plan: MediaPlan;
  send: Counter;
  receive: Counter;
  sampled: SampledCounts;
  sendPath: SendPath | null;
  receivePath: ReceivePath | null;
  levels: AudioLevels;
  adaptation: PipelineAdaptation | null;
}

/** A srtsink reading this recent (the adaptation's) is reused: each read leaks in the stock binding. */
const REUSE_SEND_STATS_MS = 1000;

export class StatsReporter {
  private lastSrt: { send: SrtStats | null; receive: SrtStats | null; at: number } = { send: null, receive: null, at: Date.now() };

  /** The report for the interval since the last one, and the srtsink reading it used (stall watch). */
  take(now: number, src: StatsSources): { stats: WorkerStats; sendSrt: SrtStats | null } {
    const { pipeline: p, plan } = src;
    let sendSrt: SrtStats | null = null;
    let recvSrt: SrtStats | null = null;
    if (plan.kind === 'session') {
      const cached = src.adaptation?.lastSendStats;
      sendSrt = cached && now - cached.at < REUSE_SEND_STATS_MS ? cached.st : srtStatsFromStructure(String(p.findChild(plan.names.srtSink)?.stats ?? ''), 'send');
      recvSrt = srtStatsFromStructure(String(p.findChild(plan.names.srtSrc)?.stats ?? ''), 'receive');
      // Sampled frame counts: the received bytes are srtsrc's payload bytes (TS, audio included).
      if (src.sampled.rxTap && recvSrt.elementBytes !== null) src.receive.bytes = recvSrt.elementBytes;
    }
    const dtMs = now - this.lastSrt.at;
    const audit = src.receivePath?.audit;
    const stats: WorkerStats = {
      ts: now,
      uptimeMs: now - src.startedAt,
      send: {
        ...takeRate(src.send, now),
        frames: src.send.frames,
        bytes: src.send.bytes,
        idleMs: src.send.lastAt === null ? null : now - src.send.lastAt,
        srt: srtLinkStats(this.lastSrt.send, sendSrt, dtMs),
        paddingPct: src.sendPath?.paddingPct(src.sampled) ?? null,
      },
      receive: {
        ...takeRate(src.receive, now),
        frames: src.receive.frames,
        bytes: src.receive.bytes,
        idleMs: src.receive.lastAt === null ? null : now - src.receive.lastAt,
        srt: srtLinkStats(this.lastSrt.receive, recvSrt, dtMs),
        ...(audit ? { audit: audit.takeInterval() } : {}),
      },
      audio: src.levels.take(now),
      adapt: src.adaptation?.loop.report() ?? null,
      rssMb: Math.round(process.memoryUsage.rss() / 1048576),
    };
    this.lastSrt = { send: sendSrt, receive: recvSrt, at: now };
    return { stats, sendSrt };
  }
}
