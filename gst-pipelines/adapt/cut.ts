/**
 * A congested sample: whether to cut now, and how deep.
 * - fast decrease: straight to a fraction of what the link delivered (sent − lost) in the
 *   last sample, never more than one decrease per DECREASE_GAP_MS (the queue must drain
 *   before the RTT says anything new);
 * - audio has priority: below the lowest video rung the box sends audio only — but only
 *   after the lowest rung had its trial (a full queue hides the capacity).
 */
import {
  ACK_PER_PACKET_RATE,
  COLLAPSE_CUT,
  COLLAPSE_SEVERITY,
  DECREASE_GAP_MS,
  DRAIN_SHARE,
  DRAINING_RTT_SHARE,
  EPISODE_COLLAPSE_GAP_SHARE,
  EPISODE_CUT,
  EPISODE_MS,
  EXTREME_LOWEST_RUNG_TRIAL_MS,
  EXTREME_QUEUE_LATENCIES,
  INCREASE_QUEUE_SHARE,
  KEEPS_UP_RATE_FACTOR,
  KEEPS_UP_SHARE,
  LIMIT_ABOVE_CUT,
  LOWEST_RUNG_TRIAL_MS,
  MILD_CUT,
  PROBE_BACKOFF_MS,
  RECENT_CUT_GAPS,
  SAME_RUNG_CUT,
  SAMPLE_MS,
  SEVERE_CUT,
  SEVERE_SEVERITY,
  SUDDEN_RISE_BUDGETS,
  SUDDEN_SEVERITY,
} from './constants.js';
import { AUDIO_ONLY, fitWire, rungFps, videoForWire, wireKbps } from './ladder.js';
import type { LinkReading } from './reading.js';
import { applyChange, decide, decrease, type AdaptState, type LinkSample, type StepResult } from './state.js';
import type { AdaptConfig } from '../types.js';

/** The congested path of adaptStep (`r.reason` is set). */
export function cutStep(state: AdaptState, s: LinkSample, config: AdaptConfig, r: LinkReading): StepResult {
  const hold = (): StepResult => ({ state, decision: decide(state, null, true) });
  state.cleanSince = null;
  if (state.probe && state.probe.startedAt > 0) {
    endProbe(state, s);
    return hold();
  }
  const severity = severityOf(r);
  const episode = state.severeAt !== null && s.atMs - state.severeAt < EPISODE_MS;
  if (state.lastDecreaseAt !== null && s.atMs - state.lastDecreaseAt < cutGapMs(severity, episode)) return hold();
  const draining = isDraining(state, s);
  state.decreaseRttMs = s.rttMs;
  if (draining) return hold();
  if (state.rung === AUDIO_ONLY) return hold();
  // Aim the WIRE rate (video + audio + TS/SRT overhead + frame-end padding) below what
  // congested the link: by more the longer the queue (a full drop-tail queue hides the
  // capacity; the sender sees no loss through it, measured), and never above what got
  // through when losses are reported. Then the best rung whose wire rate fits.
  const sent = s.sendKbps ?? wireKbps(state.targetKbps, rungFps(state.rung, config), config, state.frameKbit);
  const factor = cutFactor(r, severity, episode);
  // Within an episode the wire rate still carries the retransmissions of the first
  // overload: cut from the video target, not from what was sent.
  const wire = episode ? Infinity : Math.min(sent * factor, r.deliveredKbps === null || r.lossPct === 0 ? Infinity : r.deliveredKbps * DRAIN_SHARE);
  const fitted = keepLowestRungOnTrial(state, s, config, r, fitWire(Math.min(wire, wireKbps(state.targetKbps * factor, rungFps(state.rung, config), config, state.frameKbit)), config, state.frameKbit));
  if (fitted.rung === state.rung && fitted.kbps >= state.targetKbps) return hold();
  const to = fitted.rung === state.rung ? Math.min(fitted.kbps, state.targetKbps * SAME_RUNG_CUT) : fitted.kbps;
  // Where the link's limit probably is, as video: increases slow down near it. A mild
  // queue says "just above what we sent"; a full one says only "below": then just above
  // the new rate.
  const limit = factor >= MILD_CUT ? videoForWire(sent, rungFps(state.rung, config), config, state.frameKbit) : to * LIMIT_ABOVE_CUT;
  const c = decrease(state, s.atMs, limit, severity > COLLAPSE_SEVERITY && !episode, () =>
    applyChange(state, config, s.atMs, { kbps: to, rung: fitted.rung }, 'down', r.reason!, r.seen),
  );
  return { state, decision: decide(state, c, true) };
}

/** The probe found the limit: stop padding, try again later (longer each time). */
function endProbe(state: AdaptState, s: LinkSample): void {
  const failures = state.probe!.failures + 1;
  state.probe = { startedAt: 0, stepAt: 0, failures, nextAt: s.atMs + PROBE_BACKOFF_MS[Math.min(failures, PROBE_BACKOFF_MS.length) - 1]! };
  state.probeKbps = 0;
}

/**
 * The queue in delay budgets. A jump from a clean link to over twice the budget in one
 * sample is a collapse, even though SRT's RTT shows only the start of it (it is smoothed,
 * and its ACKACKs cross the same queue): treat it like a full queue.
 */
function severityOf(r: LinkReading): number {
  const sudden = r.prevQueueMs !== null && r.prevQueueMs < r.budget * INCREASE_QUEUE_SHARE && r.queueMs - r.prevQueueMs > SUDDEN_RISE_BUDGETS * r.budget;
  return sudden ? Math.max(r.queueMs / r.budget, SUDDEN_SEVERITY) : r.queueMs / r.budget;
}

/**
 * How long after the previous cut the next may come. Cuts wait for the previous one to
 * show (the sender's retransmissions keep the link full for a while after the encoder
 * slowed); within a severe episode a little less. Exception: a queue past
 * COLLAPSE_SEVERITY right after a mild cut is a collapse the first (lagging) RTT sample
 * understated: escalate at once.
 */
function cutGapMs(severity: number, episode: boolean): number {
  const collapse = severity > COLLAPSE_SEVERITY;
  if (episode) return collapse ? DECREASE_GAP_MS * EPISODE_COLLAPSE_GAP_SHARE : DECREASE_GAP_MS;
  return collapse ? SAMPLE_MS : DECREASE_GAP_MS;
}

/**
 * Draining after a cut (RTT falling): the cut works, wait for the queue to empty. Or,
 * after a deep cut, the link delivers at least what is now sent (one ACK per arriving
 * packet at these rates): the RTT still rises — its ACKACKs wait behind the queue built
 * before the cut — but the queue no longer grows.
 */
function isDraining(state: AdaptState, s: LinkSample): boolean {
  const sentRate = (s.sentPackets * 1000) / SAMPLE_MS;
  const recentCut = state.lastDecreaseAt !== null && s.atMs - state.lastDecreaseAt < DECREASE_GAP_MS * RECENT_CUT_GAPS;
  const keepsUp = recentCut && s.acks !== undefined && sentRate <= ACK_PER_PACKET_RATE * KEEPS_UP_RATE_FACTOR && s.acks >= s.sentPackets * KEEPS_UP_SHARE;
  return keepsUp || (state.decreaseRttMs !== null && s.rttMs !== null && s.rttMs < state.decreaseRttMs * DRAINING_RTT_SHARE);
}

/**
 * The share of the wire rate to keep. A queue beyond COLLAPSE_SEVERITY at the first cut:
 * the link collapsed (a slow drift shows as a mild queue first). Cut to COLLAPSE_CUT of
 * the wire rate at once — audio has priority, and an overcut is repaired by fast
 * increases within seconds.
 */
function cutFactor(r: LinkReading, severity: number, episode: boolean): number {
  if (episode) return EPISODE_CUT;
  if (r.reason === 'sender-drops' || severity > COLLAPSE_SEVERITY) return COLLAPSE_CUT;
  return severity > SEVERE_SEVERITY ? SEVERE_CUT : MILD_CUT;
}

/**
 * A queue many times the SRT latency means a tiny link (the same buffer drains slower
 * the thinner the link): straight to the lowest rung, and audio-only soon after.
 * Audio-only only after the lowest rung has had time to show it cannot fit: a full
 * queue hides the capacity, and a 600 kbit/s link must keep its video.
 */
function keepLowestRungOnTrial(state: AdaptState, s: LinkSample, config: AdaptConfig, r: LinkReading, fit: { rung: string; kbps: number }): { rung: string; kbps: number } {
  let fitted = fit;
  const extreme = r.queueMs > EXTREME_QUEUE_LATENCIES * config.srtLatencyMs;
  const lowest = config.ladder[config.ladder.length - 1];
  if (extreme && lowest && fitted.rung !== AUDIO_ONLY && config.ladder.findIndex((x) => x.id === fitted.rung) < config.ladder.length - 1) fitted = { rung: lowest.id, kbps: lowest.minKbps };
  if (extreme && lowest && state.rung === lowest.id) fitted = { rung: AUDIO_ONLY, kbps: 0 };
  const trial = extreme ? EXTREME_LOWEST_RUNG_TRIAL_MS : LOWEST_RUNG_TRIAL_MS;
  if (fitted.rung === AUDIO_ONLY && lowest && (state.rung !== lowest.id || s.atMs - (state.atLowestSince ?? s.atMs) < trial))
    fitted = { rung: lowest.id, kbps: Math.min(state.rung === lowest.id ? state.targetKbps : Infinity, lowest.minKbps) };
  return fitted;
}
