/**
 * What one LinkSample says about the link, before anything is decided: the RTT floor
 * and the queueing delay above it, the loss, what got through, and whether (and why)
 * the link is congested.
 *
 * What saturates a rural link is capacity, not random loss (issue #4). A bottleneck shows
 * first as queueing delay — SRT's smoothed RTT rises above its floor — and then as losses
 * the receiver reports (NAKs) and packets the sender gives up on (too late). So
 * congestion = RTT above its floor by more than the delay budget, or loss *with* a rising
 * RTT, or sender drops. Loss with a flat RTT is random loss: left to SRT.
 */
import { LOSS_CONGESTED_PCT, LOSS_QUEUE_SHARE, RTT_FLOOR_WINDOW_MS } from './constants.js';
import { delayBudgetMs } from './ladder.js';
import type { AdaptState, ChangeEvidence, LinkSample } from './state.js';
import type { AdaptConfig, AdaptReason } from '../types.js';

export interface LinkReading {
  /** Queueing delay: RTT above its floor, ms (0 without an RTT). */
  queueMs: number;
  /** The previous sample's (null: it had no RTT). */
  prevQueueMs: number | null;
  /** Queueing delay budget for this SRT latency (delayBudgetMs). */
  budget: number;
  lossPct: number;
  /** What the link delivered: sent less lost, kbit/s (null without a send rate). */
  deliveredKbps: number | null;
  /** Why the link is congested; null: it is not. */
  reason: AdaptReason | null;
  /** What a change made on this sample is described with. */
  seen: ChangeEvidence;
}

const pctOf = (part: number, whole: number): number => (whole > 0 ? (100 * part) / whole : 0);

/**
 * The next state's measurement part (RTT history over RTT_FLOOR_WINDOW_MS, the queue of
 * this sample) and the reading. The state is a copy: the caller's `prev` is not touched.
 */
export function readLink(prev: AdaptState, s: LinkSample, config: AdaptConfig): { state: AdaptState; reading: LinkReading } {
  const state: AdaptState = { ...prev, rttHistory: prev.rttHistory.filter((h) => s.atMs - h.atMs <= RTT_FLOOR_WINDOW_MS), steps: { ...prev.steps } };
  if (s.rttMs !== null && s.rttMs > 0) state.rttHistory.push({ atMs: s.atMs, rttMs: s.rttMs });
  const floor = state.rttHistory.length ? Math.min(...state.rttHistory.map((h) => h.rttMs)) : null;
  const queueMs = floor !== null && s.rttMs !== null ? s.rttMs - floor : 0;
  state.lastQueueMs = s.rttMs !== null ? queueMs : null;
  const budget = delayBudgetMs(config.srtLatencyMs);
  const lossPct = pctOf(s.lostPackets, s.sentPackets);
  const deliveredKbps = s.sendKbps === null ? null : s.sendKbps * (1 - Math.min(1, lossPct / 100));

  let reason: AdaptReason | null = null;
  if (s.droppedPackets > 0) reason = 'sender-drops';
  else if (queueMs > budget) reason = 'queueing-delay';
  else if (lossPct > LOSS_CONGESTED_PCT && queueMs > budget * LOSS_QUEUE_SHARE) reason = 'loss-with-delay';

  const seen: ChangeEvidence = { rttMs: s.rttMs, rttFloorMs: floor, deliveredKbps, lossPct: Math.round(lossPct * 10) / 10 };
  return { state, reading: { queueMs, prevQueueMs: prev.lastQueueMs, budget, lossPct, deliveredKbps, reason, seen } };
}
