/**
 * Link adaptation (pure): a window of srtsink statistics → the video bitrate to encode
 * at and the rung of the quality ladder. No GStreamer, no clock: the worker feeds it one
 * `LinkSample` every SAMPLE_MS and applies the decision (worker.ts).
 *
 * What saturates a rural link is capacity, not random loss (issue #4: a 1.5 Mbit/s stream
 * through a 600 kbit/s bottleneck delivered 12 % of its frames; 5–20 % random loss, SRT
 * repairs by itself). A bottleneck shows first as queueing delay — SRT's smoothed RTT
 * rises above its floor — and then as losses the receiver reports (NAKs) and packets the
 * sender gives up on (too late). So:
 * - congestion = RTT above its floor by more than the delay budget, or loss *with* a
 *   rising RTT, or sender drops. Loss with a flat RTT is random loss: left to SRT.
 * - fast decrease: straight to a fraction of what the link delivered (sent − lost) in
 *   the last sample, never more than one decrease per DECREASE_GAP (the queue must drain
 *   before the RTT says anything new).
 * - cautious increase: +30 % after the link has been clean for a while, slower near the
 *   rate that last congested it (the "ceiling", forgotten after CEILING_MEMORY_MS) —
 *   the hysteresis that keeps a steady link from see-sawing.
 * - audio has priority: below the lowest video rung the box sends audio only; it then
 *   probes the link with padding (null TS packets) in small steps and brings video back
 *   once the probe carries the lowest rung plus audio with the delay still flat.
 */
import type { SessionPlan } from './types.js';

/** Statistics interval the controller is designed for. */
export const SAMPLE_MS = 500;
/** Decreases at least this far apart: a decrease needs ~1 RTT + a frame to show. */
const DECREASE_GAP_MS = 1500;
/** Clean time needed before an increase (after a decrease: RECOVERY_HOLD_MS). */
const INCREASE_EVERY_MS = 1500;
const RECOVERY_HOLD_MS = 4000;
/** Near the last congested rate, increases wait this long instead (1 s less after each one that passed), and are smaller. */
const NEAR_CEILING_EVERY_MS = 5000;
const CEILING_MEMORY_MS = 30_000;
const INCREASE_FACTOR = 1.3;
const NEAR_CEILING_FACTOR = 1.1;
/** After congestion: this share of the delivered rate goes to media (the rest drains the queue). */
const DRAIN_SHARE = 0.8;
/** RTT floor: the minimum over this long. */
const RTT_FLOOR_WINDOW_MS = 30_000;
/** Bits per pixel a rung needs at least (x264 ultrafast/zerolatency, talking heads). */
const MIN_BITS_PER_PIXEL = 0.035;
/** A rung is entered from below only with this margin above its floor (hysteresis). */
const RUNG_UP_MARGIN = 1.2;
/** Audio-only: probe steps (padding rate over the audio's own rate) and their length. */
const PROBE_STEP_MS = SAMPLE_MS;
const PROBE_FACTOR = 1.3;
/** Wait before the next probe after 1, 2, 3+ failed ones (short: video back soon after a recovery). */
const PROBE_BACKOFF_MS = [3000, 4000, 6000];

export interface Rung {
  id: string;
  width: number;
  height: number;
  fps: number;
  /** Lowest video bitrate worth sending at this rung. */
  minKbps: number;
}

export const AUDIO_ONLY = 'audio-only';

export interface AdaptConfig {
  enabled: boolean;
  /** Top video bitrate (the join spec's). */
  maxKbps: number;
  /** Video rungs, best first (ladderFor). */
  ladder: Rung[];
  /** What the audio alone costs on the wire (Opus + TS + SRT headers), kbit/s. */
  audioWireKbps: number;
  /** SRT latency: queueing delay beyond a fraction of it makes packets late at the hub. */
  srtLatencyMs: number;
}

/** One srtsink statistics interval (deltas over the interval, rates in kbit/s). */
export interface LinkSample {
  atMs: number;
  rttMs: number | null;
  /** Wire rate sent (libsrt bytes incl. headers and retransmissions). */
  sendKbps: number | null;
  sentPackets: number;
  lostPackets: number;
  retransPackets: number;
  /** Packets the sender dropped as too late (the link cannot keep up at all). */
  droppedPackets: number;
}

export type AdaptReason = 'queueing-delay' | 'loss-with-delay' | 'sender-drops' | 'clean-link' | 'probe-ok';

export interface AdaptChange {
  direction: 'down' | 'up';
  fromKbps: number;
  toKbps: number;
  fromRung: string;
  toRung: string;
  reason: AdaptReason;
  /** The measurements behind it, for the event and the logs. */
  rttMs: number | null;
  rttFloorMs: number | null;
  deliveredKbps: number | null;
  lossPct: number | null;
}

export interface AdaptState {
  targetKbps: number;
  rung: string;
  /** Padding rate to add while probing from audio-only, kbit/s (0 = not probing). */
  probeKbps: number;
  rttHistory: Array<{ atMs: number; rttMs: number }>;
  lastDecreaseAt: number | null;
  /** RTT when we last decreased: while it falls the queue is draining, no need to cut again. */
  decreaseRttMs: number | null;
  lastIncreaseAt: number | null;
  cleanSince: number | null;
  ceiling: { kbps: number; atMs: number } | null;
  probe: { startedAt: number; stepAt: number; failures: number; nextAt: number } | null;
  /** Increases since the last decrease: near the ceiling each one comes sooner. */
  upStreak: number;
  /** Counters for reports. */
  steps: { down: number; up: number };
}

export interface AdaptDecision {
  targetKbps: number;
  rung: string;
  probeKbps: number;
  change: AdaptChange | null;
  congested: boolean;
}

/**
 * The ladder under a join spec's video: its own size and rate first, then 15 fps,
 * then ¾ and ½ the size at 15 fps (1280x720@30 → 720p15 → 540p15 → 360p15). A rung
 * needs MIN_BITS_PER_PIXEL × pixels per second; the lowest rung never asks less than
 * 100 kbit/s (below that, audio-only is the better meeting).
 */
export function ladderFor(video: SessionPlan['video']): Rung[] {
  const even = (n: number): number => Math.max(2, Math.round(n / 2) * 2);
  const lowFps = Math.min(15, video.fps);
  const specs: Array<[number, number]> = [
    [1, video.fps],
    [1, lowFps],
    [0.75, lowFps],
    [0.5, lowFps],
  ];
  const rungs: Rung[] = [];
  for (const [scale, fps] of specs) {
    const width = even(video.width * scale);
    const height = even(video.height * scale);
    if (rungs.some((r) => r.width === width && r.height === height && r.fps === fps)) continue;
    const minKbps = Math.round(Math.max(100, (width * height * fps * MIN_BITS_PER_PIXEL) / 1000));
    rungs.push({ id: `${height}p${fps}`, width, height, fps, minKbps: Math.min(minKbps, video.bitrateKbps) });
  }
  return rungs;
}

export function initialAdapt(config: AdaptConfig): AdaptState {
  return {
    targetKbps: config.maxKbps,
    rung: config.ladder[0]?.id ?? AUDIO_ONLY,
    probeKbps: 0,
    rttHistory: [],
    lastDecreaseAt: null,
    decreaseRttMs: null,
    lastIncreaseAt: null,
    cleanSince: null,
    ceiling: null,
    probe: null,
    upStreak: 0,
    steps: { down: 0, up: 0 },
  };
}

/** The rung for a target: the best whose floor it meets; moving up needs a margin. */
export function rungFor(targetKbps: number, current: string, ladder: Rung[]): string {
  const cur = ladder.findIndex((r) => r.id === current);
  for (let i = 0; i < ladder.length; i++) {
    const r = ladder[i]!;
    const margin = cur === -1 || i < cur ? RUNG_UP_MARGIN : 1;
    if (targetKbps >= r.minKbps * margin) return r.id;
  }
  return AUDIO_ONLY;
}

/** Queueing delay budget: a third of SRT's latency, within 40..150 ms. */
export function delayBudgetMs(srtLatencyMs: number): number {
  return Math.min(150, Math.max(40, srtLatencyMs / 3));
}

const pctOf = (part: number, whole: number): number => (whole > 0 ? (100 * part) / whole : 0);

/** One step: the new state and what to do. Pure. */
export function adaptStep(prev: AdaptState, s: LinkSample, config: AdaptConfig): { state: AdaptState; decision: AdaptDecision } {
  const state: AdaptState = { ...prev, rttHistory: prev.rttHistory.filter((h) => s.atMs - h.atMs <= RTT_FLOOR_WINDOW_MS), steps: { ...prev.steps } };
  if (s.rttMs !== null && s.rttMs > 0) state.rttHistory.push({ atMs: s.atMs, rttMs: s.rttMs });
  const floor = state.rttHistory.length ? Math.min(...state.rttHistory.map((h) => h.rttMs)) : null;
  const queueMs = floor !== null && s.rttMs !== null ? s.rttMs - floor : 0;
  const budget = delayBudgetMs(config.srtLatencyMs);
  const lossPct = pctOf(s.lostPackets, s.sentPackets);
  const delivered = s.sendKbps === null ? null : s.sendKbps * (1 - Math.min(1, lossPct / 100));

  let reason: AdaptReason | null = null;
  if (s.droppedPackets > 0) reason = 'sender-drops';
  else if (queueMs > budget) reason = 'queueing-delay';
  else if (lossPct > 2 && queueMs > budget / 2) reason = 'loss-with-delay';
  const congested = reason !== null;

  if (state.ceiling && s.atMs - state.ceiling.atMs > CEILING_MEMORY_MS) state.ceiling = null;
  if (!config.enabled) return { state, decision: decide(state, null, congested) };

  const change = (to: number, direction: 'down' | 'up', why: AdaptReason): AdaptChange => {
    const fromKbps = state.targetKbps;
    const fromRung = state.rung;
    state.targetKbps = Math.round(to);
    state.rung = rungFor(state.targetKbps, fromRung, config.ladder);
    state.steps[direction]++;
    return { direction, fromKbps, toKbps: state.targetKbps, fromRung, toRung: state.rung, reason: why, rttMs: s.rttMs, rttFloorMs: floor, deliveredKbps: delivered === null ? null : Math.round(delivered), lossPct: Math.round(lossPct * 10) / 10 };
  };

  if (congested) {
    state.cleanSince = null;
    if (state.probe && state.probe.startedAt > 0) {
      // The probe found the limit: stop padding, try again later (longer each time).
      const failures = state.probe.failures + 1;
      state.probe = { startedAt: 0, stepAt: 0, failures, nextAt: s.atMs + PROBE_BACKOFF_MS[Math.min(failures, PROBE_BACKOFF_MS.length) - 1]! };
      state.probeKbps = 0;
      return { state, decision: decide(state, null, true) };
    }
    if (state.lastDecreaseAt !== null && s.atMs - state.lastDecreaseAt < DECREASE_GAP_MS) return { state, decision: decide(state, null, true) };
    // Draining after a cut (RTT falling): the cut works, wait for the queue to empty.
    const draining = state.decreaseRttMs !== null && s.rttMs !== null && s.rttMs < state.decreaseRttMs * 0.9;
    state.decreaseRttMs = s.rttMs;
    if (draining) return { state, decision: decide(state, null, true) };
    const cut = state.targetKbps * 0.85;
    const fit = delivered === null ? cut : delivered * DRAIN_SHARE - config.audioWireKbps;
    const to = Math.max(0, Math.min(cut, fit));
    if (state.rung === AUDIO_ONLY && to >= state.targetKbps) return { state, decision: decide(state, null, true) };
    // What the link carried for video while congested: a better ceiling than the old target.
    state.ceiling = { kbps: delivered === null ? state.targetKbps : Math.min(state.targetKbps, Math.max(0, delivered - config.audioWireKbps)), atMs: s.atMs };
    state.lastDecreaseAt = s.atMs;
    state.upStreak = 0;
    const lowest = config.ladder[config.ladder.length - 1];
    const c = change(lowest && to < lowest.minKbps ? 0 : to, 'down', reason!);
    if (state.rung === AUDIO_ONLY) state.probe = { startedAt: 0, stepAt: 0, failures: 0, nextAt: s.atMs + PROBE_BACKOFF_MS[0]! };
    return { state, decision: decide(state, c, true) };
  }

  state.decreaseRttMs = null;
  state.cleanSince ??= s.atMs;
  const clean = s.atMs - state.cleanSince;

  if (state.rung === AUDIO_ONLY) return probeStep(state, s, config, delivered, change);

  if (state.targetKbps >= config.maxKbps) return { state, decision: decide(state, null, false) };
  const sinceChange = s.atMs - Math.max(state.lastIncreaseAt ?? -Infinity, state.lastDecreaseAt ?? -Infinity);
  // Just below the rate that last congested the link: small, slow steps; once past it
  // without congestion, the link has grown: fast steps again.
  const nearCeiling = state.ceiling !== null && state.targetKbps * INCREASE_FACTOR > state.ceiling.kbps * 0.9 && state.targetKbps < state.ceiling.kbps * 1.05;
  const wait = nearCeiling ? Math.max(INCREASE_EVERY_MS, NEAR_CEILING_EVERY_MS - 1000 * state.upStreak) : state.lastDecreaseAt !== null && (state.lastIncreaseAt ?? -Infinity) < state.lastDecreaseAt ? RECOVERY_HOLD_MS : INCREASE_EVERY_MS;
  if (clean < Math.min(wait, INCREASE_EVERY_MS) || sinceChange < wait) return { state, decision: decide(state, null, false) };
  state.lastIncreaseAt = s.atMs;
  state.upStreak++;
  const c = change(Math.min(config.maxKbps, state.targetKbps * (nearCeiling ? NEAR_CEILING_FACTOR : INCREASE_FACTOR)), 'up', 'clean-link');
  return { state, decision: decide(state, c, false) };
}

/**
 * Audio-only: padding steps of PROBE_FACTOR over what is sent, one per PROBE_STEP_MS,
 * while the delay stays flat; video returns (lowest rung) once a step carried the
 * lowest rung's floor plus the audio. A congested step ends the probe (adaptStep).
 */
function probeStep(
  state: AdaptState,
  s: LinkSample,
  config: AdaptConfig,
  delivered: number | null,
  change: (to: number, direction: 'down' | 'up', why: AdaptReason) => AdaptChange,
): { state: AdaptState; decision: AdaptDecision } {
  const lowest = config.ladder[config.ladder.length - 1];
  if (!lowest) return { state, decision: decide(state, null, false) };
  const need = lowest.minKbps * RUNG_UP_MARGIN + config.audioWireKbps;
  const probe = state.probe ?? { startedAt: 0, stepAt: 0, failures: 0, nextAt: s.atMs };
  state.probe = probe;
  if (probe.startedAt === 0) {
    if (s.atMs < probe.nextAt) return { state, decision: decide(state, null, false) };
    state.probe = { ...probe, startedAt: s.atMs, stepAt: s.atMs };
    state.probeKbps = Math.max(config.audioWireKbps * (PROBE_FACTOR - 1), 10);
    return { state, decision: decide(state, null, false) };
  }
  if (s.atMs - probe.stepAt < PROBE_STEP_MS) return { state, decision: decide(state, null, false) };
  const carried = delivered ?? config.audioWireKbps + state.probeKbps;
  if (carried >= need) {
    state.probe = null;
    state.probeKbps = 0;
    state.lastIncreaseAt = s.atMs;
    const c = change(Math.ceil(lowest.minKbps * RUNG_UP_MARGIN) + 1, 'up', 'probe-ok');
    return { state, decision: decide(state, c, false) };
  }
  state.probe = { ...probe, stepAt: s.atMs };
  state.probeKbps = Math.round((config.audioWireKbps + state.probeKbps) * PROBE_FACTOR - config.audioWireKbps);
  return { state, decision: decide(state, null, false) };
}

function decide(state: AdaptState, change: AdaptChange | null, congested: boolean): AdaptDecision {
  return { targetKbps: state.targetKbps, rung: state.rung, probeKbps: state.probeKbps, change, congested };
}
