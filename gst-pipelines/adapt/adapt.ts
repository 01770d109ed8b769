/**
 * Link adaptation (pure): a window of srtsink statistics → the video bitrate to encode
 * at and the rung of the quality ladder. No GStreamer, no clock: the worker feeds it one
 * `LinkSample` every SAMPLE_MS and applies the decision (worker-adapt.ts). Between two
 * samples, the collapse check (adapt-collapse.ts) may cut first.
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
import type { AdaptChange, AdaptConfig, AdaptReason, Rung, SessionPlan } from '../types.js';

/** Statistics interval the controller is designed for. */
export const SAMPLE_MS = 500;
/**
 * libsrt's receiver sends a full ACK every 10 ms when new data arrived: below ~40 ACKs a
 * second it is one ACK per arriving packet (measured: ~70/s for 150 packets/s through a
 * 4 Mbit/s link, 50/s through 600 kbit/s, 10/s through 100 kbit/s). ACKs that fall far
 * below the packets sent say how many packets the link delivers — at once, while the RTT
 * (its ACKACKs cross the full queue) still shows next to nothing.
 */
export const ACK_PER_PACKET_RATE = 40;
/** A cut on ACKs alone is undone unless a queue or losses confirm it within this time. */
const VERIFY_MS = 1500;
/** ACKs per packet sent that say the link delivers all of it (libsrt ACKs ~90 % of arrivals at ~50/s). */
const KEEPS_UP_SHARE = 0.9;
/** Decreases at least this far apart: a decrease needs ~1 RTT + a frame to show. */
export const DECREASE_GAP_MS = 2000;
/** Decreases within this time of a severe one are the same congestion episode. */
const EPISODE_MS = 5000;
/** Time at the lowest video rung, still congested and not draining, before audio-only. */
const LOWEST_RUNG_TRIAL_MS = 3000;
/** Queueing delay beyond this many SRT latencies: the link is tiny (see adaptStep). */
const EXTREME_QUEUE_LATENCIES = 6;
/** Clean time needed before an increase (after a decrease: RECOVERY_HOLD_MS). */
const INCREASE_EVERY_MS = 1500;
const RECOVERY_HOLD_MS = 4000;
/** Near the last congested rate, increases wait this long instead (1 s less after each one that passed), and are smaller. */
const NEAR_CEILING_EVERY_MS = 4000;
const CEILING_MEMORY_MS = 30_000;
const INCREASE_FACTOR = 1.25;
const NEAR_CEILING_FACTOR = 1.1;
/** After congestion: this share of the delivered rate goes to media (the rest drains the queue). */
export const DRAIN_SHARE = 0.8;
/** RTT floor: the minimum over this long. */
const RTT_FLOOR_WINDOW_MS = 30_000;
/** Bits per pixel a rung needs at least (x264 ultrafast/zerolatency, talking heads). */
const MIN_BITS_PER_PIXEL = 0.035;
/** A rung is entered from below only with this margin above its floor (hysteresis). */
const RUNG_UP_MARGIN = 1.2;
/** Audio-only: probe steps (padding rate over the audio's own rate) and their length. */
const PROBE_STEP_MS = SAMPLE_MS;
const PROBE_FACTOR = 1.5;
/** Wait before the next probe after 1, 2, 3+ failed ones (short: video back soon after a recovery). */
const PROBE_BACKOFF_MS = [2500, 3000, 4000];

export const AUDIO_ONLY = 'audio-only';

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
  /** ACKs received (libsrt counts ACK packets; see ACK_PER_PACKET_RATE). */
  acks?: number;
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
  /** Queueing delay in the previous sample (a sudden jump is a collapse). */
  lastQueueMs: number | null;
  /** The first severe cut of the current congestion episode. */
  severeAt: number | null;
  /** Since when the lowest video rung is on (audio-only needs it to have failed for a while). */
  atLowestSince: number | null;
  /** Learnt wire cost per video frame beyond its bytes (FRAME_KBIT), kbit. */
  frameKbit: number;
  /** Increases since the last decrease: near the ceiling each one comes sooner. */
  upStreak: number;
  /**
   * A cut made on the ACKs alone (fastCheck), not yet confirmed by a queue or by losses: a
   * hub that stalls for ~200 ms also stops ACKing. Undone if nothing confirms it within
   * VERIFY_MS (a real collapse shows as a queue within ~1 s).
   */
  unconfirmed: { atMs: number; rung: string; targetKbps: number } | null;
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

/** The starting state: the top rung, or where a previous worker of the same session left off. */
export function initialAdapt(config: AdaptConfig, from?: { rung: string; targetKbps: number } | null): AdaptState {
  const known = from && config.enabled && (from.rung === AUDIO_ONLY || config.ladder.some((r) => r.id === from.rung));
  return {
    targetKbps: known ? Math.min(config.maxKbps, Math.max(0, Math.round(from.targetKbps))) : config.maxKbps,
    rung: known ? from.rung : (config.ladder[0]?.id ?? AUDIO_ONLY),
    probeKbps: 0,
    rttHistory: [],
    lastDecreaseAt: null,
    decreaseRttMs: null,
    lastIncreaseAt: null,
    cleanSince: null,
    ceiling: null,
    probe: null,
    atLowestSince: null,
    severeAt: null,
    lastQueueMs: null,
    frameKbit: FRAME_KBIT,
    upStreak: 0,
    unconfirmed: null,
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

/** Queueing delay budget: a quarter of SRT's latency, within 40..150 ms. */
export function delayBudgetMs(srtLatencyMs: number): number {
  return Math.min(150, Math.max(40, srtLatencyMs / 4));
}

/** An increase needs the queue under this share of the budget: a queue already forming says "at capacity". */
export const INCREASE_QUEUE_SHARE = 0.6;
/** …or the queue grew by more than this share of the budget since the last sample. */
const QUEUE_RISE_SHARE = 0.2;

const pctOf = (part: number, whole: number): number => (whole > 0 ? (100 * part) / whole : 0);

/** TS + PES + SRT/UDP/IP headers on video (4/188 + ~14 per PES + 44 per 1316). */
const VIDEO_OVERHEAD = 0.05;
/**
 * Wire cost per video frame beyond its bytes: the null padding that closes its last
 * 1316-byte message, and audio flushed with it. Starting value measured through the
 * bottleneck (~11 kbit a frame at 30 and at 15 fps); the controller then learns it from
 * what srtsink sends (AdaptState.frameKbit).
 */
export const FRAME_KBIT = 11;

/** What `videoKbps` of video at `fps`, plus the audio, costs on the wire (kbit/s). */
export function wireKbps(videoKbps: number, fps: number, config: Pick<AdaptConfig, 'audioWireKbps'>, frameKbit = FRAME_KBIT): number {
  return videoKbps > 0 ? videoKbps * (1 + VIDEO_OVERHEAD) + fps * frameKbit + config.audioWireKbps : config.audioWireKbps;
}

function videoForWire(wire: number, fps: number, config: Pick<AdaptConfig, 'audioWireKbps'>, frameKbit: number): number {
  return (wire - config.audioWireKbps - fps * frameKbit) / (1 + VIDEO_OVERHEAD);
}

export function rungFps(rung: string, config: AdaptConfig): number {
  return config.ladder.find((r) => r.id === rung)?.fps ?? 0;
}

/** The best rung, and its video bitrate, whose wire rate fits in `wire` kbit/s. */
export function fitWire(wire: number, config: AdaptConfig, frameKbit = FRAME_KBIT): { rung: string; kbps: number } {
  for (const r of config.ladder) {
    const kbps = Math.min(config.maxKbps, videoForWire(wire, r.fps, config, frameKbit));
    if (kbps >= r.minKbps) return { rung: r.id, kbps: Math.round(kbps) };
  }
  return { rung: AUDIO_ONLY, kbps: 0 };
}

/** One step: the new state and what to do. Pure. */
export function adaptStep(prev: AdaptState, s: LinkSample, config: AdaptConfig): { state: AdaptState; decision: AdaptDecision } {
  const state: AdaptState = { ...prev, rttHistory: prev.rttHistory.filter((h) => s.atMs - h.atMs <= RTT_FLOOR_WINDOW_MS), steps: { ...prev.steps } };
  if (s.rttMs !== null && s.rttMs > 0) state.rttHistory.push({ atMs: s.atMs, rttMs: s.rttMs });
  const floor = state.rttHistory.length ? Math.min(...state.rttHistory.map((h) => h.rttMs)) : null;
  const queueMs = floor !== null && s.rttMs !== null ? s.rttMs - floor : 0;
  const prevQueueMs = prev.lastQueueMs;
  state.lastQueueMs = s.rttMs !== null ? queueMs : null;
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
  const seen: ChangeEvidence = { rttMs: s.rttMs, rttFloorMs: floor, deliveredKbps: delivered, lossPct: Math.round(lossPct * 10) / 10 };
  const unconfirmed = state.unconfirmed;
  if (unconfirmed && (queueMs > budget / 2 || s.lostPackets > 0 || s.droppedPackets > 0)) state.unconfirmed = null;
  else if (unconfirmed && s.atMs - unconfirmed.atMs >= VERIFY_MS) {
    // Nothing confirmed the ACK starvation: the hub stalled, the link did not collapse.
    state.unconfirmed = null;
    Object.assign(state, { probe: null, probeKbps: 0, ceiling: null, severeAt: null, lastIncreaseAt: s.atMs });
    const c = applyChange(state, config, s.atMs, { kbps: unconfirmed.targetKbps, rung: unconfirmed.rung }, 'up', 'false-alarm', seen);
    state.atLowestSince = null;
    return { state, decision: decide(state, c, false) };
  }

  const change = (to: number, direction: 'down' | 'up', why: AdaptReason, rung?: string): AdaptChange =>
    applyChange(state, config, s.atMs, rung === undefined ? { kbps: to } : { kbps: to, rung }, direction, why, seen);

  if (congested) {
    state.cleanSince = null;
    if (state.probe && state.probe.startedAt > 0) {
      // The probe found the limit: stop padding, try again later (longer each time).
      const failures = state.probe.failures + 1;
      state.probe = { startedAt: 0, stepAt: 0, failures, nextAt: s.atMs + PROBE_BACKOFF_MS[Math.min(failures, PROBE_BACKOFF_MS.length) - 1]! };
      state.probeKbps = 0;
      return { state, decision: decide(state, null, true) };
    }
    // A jump from a clean link to over twice the budget in one sample is a collapse, even
    // though SRT's RTT shows only the start of it (it is smoothed, and its ACKACKs cross
    // the same queue): treat it like a full queue.
    const sudden = prevQueueMs !== null && prevQueueMs < budget * INCREASE_QUEUE_SHARE && queueMs - prevQueueMs > 2 * budget;
    const severity = sudden ? Math.max(queueMs / budget, 4.01) : queueMs / budget;
    // Cuts wait for the previous one to show (the sender's retransmissions keep the link
    // full for a while after the encoder slowed); within a severe episode a little less.
    const episode = state.severeAt !== null && s.atMs - state.severeAt < EPISODE_MS;
    // Exception: a queue past 4× the budget right after a mild cut is a collapse the first
    // (lagging) RTT sample understated: escalate at once.
    const gap = episode ? (severity > 4 ? DECREASE_GAP_MS * 0.75 : DECREASE_GAP_MS) : severity > 4 ? SAMPLE_MS : DECREASE_GAP_MS;
    if (state.lastDecreaseAt !== null && s.atMs - state.lastDecreaseAt < gap) return { state, decision: decide(state, null, true) };
    // Draining after a cut (RTT falling): the cut works, wait for the queue to empty.
    // Or, after a deep cut, the link delivers at least what is now sent (one ACK per
    // arriving packet at these rates): the RTT still rises — its ACKACKs wait behind the
    // queue built before the cut — but the queue no longer grows.
    const sentRate = (s.sentPackets * 1000) / SAMPLE_MS;
    const recentCut = state.lastDecreaseAt !== null && s.atMs - state.lastDecreaseAt < DECREASE_GAP_MS * 1.5;
    const keepsUp = recentCut && s.acks !== undefined && sentRate <= ACK_PER_PACKET_RATE * 1.5 && s.acks >= s.sentPackets * KEEPS_UP_SHARE;
    const draining = keepsUp || (state.decreaseRttMs !== null && s.rttMs !== null && s.rttMs < state.decreaseRttMs * 0.9);
    state.decreaseRttMs = s.rttMs;
    if (draining) return { state, decision: decide(state, null, true) };
    if (state.rung === AUDIO_ONLY) return { state, decision: decide(state, null, true) };
    // Aim the WIRE rate (video + audio + TS/SRT overhead + frame-end padding) below what
    // congested the link: by more the longer the queue (a full drop-tail queue hides the
    // capacity; the sender sees no loss through it, measured), and never above what got
    // through when losses are reported. Then the best rung whose wire rate fits.
    const sent = s.sendKbps ?? wireKbps(state.targetKbps, rungFps(state.rung, config), config, state.frameKbit);
    // A queue beyond 4× the budget at the first cut: the link collapsed (a slow drift shows
    // as a mild queue first). Cut to 25 % of the wire rate at once — audio has priority,
    // and an overcut is repaired by fast increases within seconds.
    const factor = episode ? 0.5 : reason === 'sender-drops' || severity > 4 ? 0.25 : severity > 2 ? 0.7 : 0.85;
    // Within an episode the wire rate still carries the retransmissions of the first
    // overload: cut from the video target, not from what was sent.
    const wire = episode ? Infinity : Math.min(sent * factor, delivered === null || lossPct === 0 ? Infinity : delivered * DRAIN_SHARE);
    let fitted = fitWire(Math.min(wire, wireKbps(state.targetKbps * factor, rungFps(state.rung, config), config, state.frameKbit)), config, state.frameKbit);
    // A queue many times the SRT latency means a tiny link (the same buffer drains slower
    // the thinner the link): straight to the lowest rung, and audio-only soon after.
    const extreme = queueMs > EXTREME_QUEUE_LATENCIES * config.srtLatencyMs;
    // Audio-only only after the lowest rung has had time to show it cannot fit: a full
    // queue hides the capacity, and a 600 kbit/s link must keep its video.
    const lowest = config.ladder[config.ladder.length - 1];
    if (extreme && lowest && fitted.rung !== AUDIO_ONLY && config.ladder.findIndex((r) => r.id === fitted.rung) < config.ladder.length - 1) fitted = { rung: lowest.id, kbps: lowest.minKbps };
    if (extreme && lowest && state.rung === lowest.id) fitted = { rung: AUDIO_ONLY, kbps: 0 };
    const trial = extreme ? LOWEST_RUNG_TRIAL_MS / 3 : LOWEST_RUNG_TRIAL_MS;
    if (fitted.rung === AUDIO_ONLY && lowest && (state.rung !== lowest.id || s.atMs - (state.atLowestSince ?? s.atMs) < trial))
      fitted = { rung: lowest.id, kbps: Math.min(state.rung === lowest.id ? state.targetKbps : Infinity, lowest.minKbps) };
    if (fitted.rung === state.rung && fitted.kbps >= state.targetKbps) return { state, decision: decide(state, null, true) };
    const same = fitted.rung === state.rung;
    const to = same ? Math.min(fitted.kbps, state.targetKbps * 0.85) : fitted.kbps;
    // Where the link's limit probably is, as video: increases slow down near it. A mild
    // queue says "just above what we sent"; a full one says only "below": then just above
    // the new rate.
    const limit = factor >= 0.85 ? videoForWire(sent, rungFps(state.rung, config), config, state.frameKbit) : to * 1.25;
    const c = decrease(state, s.atMs, limit, severity > 4 && !episode, () => change(to, 'down', reason!, fitted.rung));
    return { state, decision: decide(state, c, true) };
  }

  state.decreaseRttMs = null;
  const rising = prevQueueMs !== null && queueMs - prevQueueMs > budget * QUEUE_RISE_SHARE;
  if (queueMs > budget * INCREASE_QUEUE_SHARE || rising) {
    // Not congested, not clean either (a queue forming, or growing): hold.
    state.cleanSince = null;
    return { state, decision: decide(state, null, false) };
  }
  state.cleanSince ??= s.atMs;
  const clean = s.atMs - state.cleanSince;
  learnFrameCost(state, s, config);

  if (state.rung === AUDIO_ONLY) return probeStep(state, s, config, delivered, change);

  if (state.targetKbps >= config.maxKbps) return { state, decision: decide(state, null, false) };
  const sinceChange = s.atMs - Math.max(state.lastIncreaseAt ?? -Infinity, state.lastDecreaseAt ?? -Infinity);
  // Around the rate that last congested the link (−25 %…+10 %): small steps, slow at first; well past it
  // without congestion, the link has grown: fast steps again.
  const nearCeiling = state.ceiling !== null && state.targetKbps * INCREASE_FACTOR > state.ceiling.kbps * 0.9 && state.targetKbps < state.ceiling.kbps * 1.1;
  const wait = nearCeiling ? Math.max(INCREASE_EVERY_MS, NEAR_CEILING_EVERY_MS - 1000 * state.upStreak) : state.lastDecreaseAt !== null && (state.lastIncreaseAt ?? -Infinity) < state.lastDecreaseAt ? RECOVERY_HOLD_MS : INCREASE_EVERY_MS;
  if (clean < Math.min(wait, INCREASE_EVERY_MS) || sinceChange < wait) return { state, decision: decide(state, null, false) };
  state.lastIncreaseAt = s.atMs;
  state.upStreak++;
  const c = change(Math.min(config.maxKbps, state.targetKbps * (nearCeiling ? NEAR_CEILING_FACTOR : INCREASE_FACTOR)), 'up', 'clean-link');
  return { state, decision: decide(state, c, false) };
}

/** What a change is described with (the event and the logs). */
export interface ChangeEvidence {
  rttMs: number | null;
  rttFloorMs: number | null;
  deliveredKbps: number | null;
  lossPct: number | null;
}

/**
 * Every change of target or rung goes through here: moves the state, counts the step,
 * describes it. No rung given: the best the target reaches (rungFor).
 */
export function applyChange(state: AdaptState, config: AdaptConfig, atMs: number, to: { kbps: number; rung?: string }, direction: 'down' | 'up', reason: AdaptReason, seen: ChangeEvidence): AdaptChange {
  const fromKbps = state.targetKbps;
  const fromRung = state.rung;
  state.targetKbps = Math.round(to.kbps);
  state.rung = to.rung ?? rungFor(state.targetKbps, fromRung, config.ladder);
  if (state.rung !== fromRung) state.atLowestSince = state.rung === config.ladder[config.ladder.length - 1]?.id ? atMs : null;
  state.steps[direction]++;
  const { deliveredKbps, ...rest } = seen;
  return { direction, fromKbps, toKbps: state.targetKbps, fromRung, toRung: state.rung, reason, ...rest, deliveredKbps: deliveredKbps === null ? null : Math.round(deliveredKbps) };
}

/** The bookkeeping of every decrease (slow or fast path); `apply` makes the change itself. */
export function decrease(state: AdaptState, atMs: number, limitKbps: number, severe: boolean, apply: () => AdaptChange): AdaptChange {
  // A deeper cut right after another does not lower the limit the first one found (the
  // second is the RTT catching up with the same overload, not a narrower link).
  const known = state.ceiling && atMs - state.ceiling.atMs < EPISODE_MS ? state.ceiling.kbps : 0;
  state.ceiling = { kbps: Math.max(known, Math.max(0, Math.min(state.targetKbps, limitKbps))), atMs };
  state.lastDecreaseAt = atMs;
  if (severe) state.severeAt = atMs;
  state.upStreak = 0;
  const c = apply();
  if (state.rung === AUDIO_ONLY) state.probe = { startedAt: 0, stepAt: 0, failures: 0, nextAt: atMs + PROBE_BACKOFF_MS[0]! };
  return c;
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
  const need = wireKbps(lowest.minKbps * RUNG_UP_MARGIN, lowest.fps, config, state.frameKbit);
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

/**
 * Steady and clean (≥ 3 s since the last change): what srtsink sent beyond the video and
 * audio, per frame, into a slow average (bounded: an encoder undershooting a static scene
 * must not teach the controller that frames are free).
 */
function learnFrameCost(state: AdaptState, s: LinkSample, config: AdaptConfig): void {
  const fps = rungFps(state.rung, config);
  const lastChange = Math.max(state.lastIncreaseAt ?? -Infinity, state.lastDecreaseAt ?? -Infinity);
  if (fps <= 0 || s.sendKbps === null || s.atMs - lastChange < 3000 || s.atMs - (state.cleanSince ?? s.atMs) < 3000) return;
  const perFrame = (s.sendKbps - state.targetKbps * (1 + VIDEO_OVERHEAD) - config.audioWireKbps) / fps;
  const bounded = Math.min(30, Math.max(4, perFrame));
  state.frameKbit = Math.round((state.frameKbit * 0.9 + bounded * 0.1) * 10) / 10;
}

export function decide(state: AdaptState, change: AdaptChange | null, congested: boolean): AdaptDecision {
  return { targetKbps: state.targetKbps, rung: state.rung, probeKbps: state.probeKbps, change, congested };
}
