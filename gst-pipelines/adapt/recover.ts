/**
 * A sample that is not congested: hold while a queue forms, otherwise increase.
 * - cautious increase: +25 % after the link has been clean for a while, slower near the
 *   rate that last congested it (the "ceiling", forgotten after CEILING_MEMORY_MS) —
 *   the hysteresis that keeps a steady link from see-sawing;
 * - from audio-only: probe the link with padding (null TS packets) in small steps and
 *   bring video back once the probe carries the lowest rung plus audio with the delay
 *   still flat.
 */
import {
  FRAME_COST_KEEP,
  FRAME_COST_NEW,
  FRAME_COST_STEADY_MS,
  FRAME_KBIT_MAX,
  FRAME_KBIT_MIN,
  INCREASE_EVERY_MS,
  INCREASE_FACTOR,
  INCREASE_QUEUE_SHARE,
  NEAR_CEILING_EVERY_MS,
  NEAR_CEILING_FACTOR,
  NEAR_CEILING_HIGH,
  NEAR_CEILING_LOW,
  NEAR_CEILING_STREAK_MS,
  PROBE_FACTOR,
  PROBE_MIN_KBPS,
  PROBE_OK_EXTRA_KBPS,
  PROBE_STEP_MS,
  QUEUE_RISE_SHARE,
  RECOVERY_HOLD_MS,
  RUNG_UP_MARGIN,
  VIDEO_OVERHEAD,
} from './constants.js';
import { AUDIO_ONLY, rungFps, wireKbps } from './ladder.js';
import type { LinkReading } from './reading.js';
import { applyChange, decide, type AdaptState, type LinkSample, type StepResult } from './state.js';
import type { AdaptConfig } from '../types.js';

/** The clean path of adaptStep (`r.reason` is null). */
export function cleanStep(state: AdaptState, s: LinkSample, config: AdaptConfig, r: LinkReading): StepResult {
  const hold = (): StepResult => ({ state, decision: decide(state, null, false) });
  state.decreaseRttMs = null;
  const rising = r.prevQueueMs !== null && r.queueMs - r.prevQueueMs > r.budget * QUEUE_RISE_SHARE;
  if (r.queueMs > r.budget * INCREASE_QUEUE_SHARE || rising) {
    // Not congested, not clean either (a queue forming, or growing): hold.
    state.cleanSince = null;
    return hold();
  }
  state.cleanSince ??= s.atMs;
  const clean = s.atMs - state.cleanSince;
  learnFrameCost(state, s, config);

  if (state.rung === AUDIO_ONLY) return probeStep(state, s, config, r);
  if (state.targetKbps >= config.maxKbps) return hold();
  return increaseStep(state, s, config, r, clean) ?? hold();
}

/** An increase once the link has been clean long enough (null: not yet). */
function increaseStep(state: AdaptState, s: LinkSample, config: AdaptConfig, r: LinkReading, clean: number): StepResult | null {
  const sinceChange = s.atMs - Math.max(state.lastIncreaseAt ?? -Infinity, state.lastDecreaseAt ?? -Infinity);
  // Around the rate that last congested the link (−25 %…+10 %): small steps, slow at first; well past it
  // without congestion, the link has grown: fast steps again.
  const nearCeiling = state.ceiling !== null && state.targetKbps * INCREASE_FACTOR > state.ceiling.kbps * NEAR_CEILING_LOW && state.targetKbps < state.ceiling.kbps * NEAR_CEILING_HIGH;
  const afterDecrease = state.lastDecreaseAt !== null && (state.lastIncreaseAt ?? -Infinity) < state.lastDecreaseAt;
  const wait = nearCeiling ? Math.max(INCREASE_EVERY_MS, NEAR_CEILING_EVERY_MS - NEAR_CEILING_STREAK_MS * state.upStreak) : afterDecrease ? RECOVERY_HOLD_MS : INCREASE_EVERY_MS;
  if (clean < Math.min(wait, INCREASE_EVERY_MS) || sinceChange < wait) return null;
  state.lastIncreaseAt = s.atMs;
  state.upStreak++;
  const to = Math.min(config.maxKbps, state.targetKbps * (nearCeiling ? NEAR_CEILING_FACTOR : INCREASE_FACTOR));
  const c = applyChange(state, config, s.atMs, { kbps: to }, 'up', 'clean-link', r.seen);
  return { state, decision: decide(state, c, false) };
}

/**
 * Audio-only: padding steps of PROBE_FACTOR over what is sent, one per PROBE_STEP_MS,
 * while the delay stays flat; video returns (lowest rung) once a step carried the
 * lowest rung's floor plus the audio. A congested step ends the probe (cutStep).
 */
function probeStep(state: AdaptState, s: LinkSample, config: AdaptConfig, r: LinkReading): StepResult {
  const hold = (): StepResult => ({ state, decision: decide(state, null, false) });
  const lowest = config.ladder[config.ladder.length - 1];
  if (!lowest) return hold();
  const need = wireKbps(lowest.minKbps * RUNG_UP_MARGIN, lowest.fps, config, state.frameKbit);
  const probe = state.probe ?? { startedAt: 0, stepAt: 0, failures: 0, nextAt: s.atMs };
  state.probe = probe;
  if (probe.startedAt === 0) {
    if (s.atMs < probe.nextAt) return hold();
    state.probe = { ...probe, startedAt: s.atMs, stepAt: s.atMs };
    state.probeKbps = Math.max(config.audioWireKbps * (PROBE_FACTOR - 1), PROBE_MIN_KBPS);
    return hold();
  }
  if (s.atMs - probe.stepAt < PROBE_STEP_MS) return hold();
  const carried = r.deliveredKbps ?? config.audioWireKbps + state.probeKbps;
  if (carried >= need) {
    state.probe = null;
    state.probeKbps = 0;
    state.lastIncreaseAt = s.atMs;
    const c = applyChange(state, config, s.atMs, { kbps: Math.ceil(lowest.minKbps * RUNG_UP_MARGIN) + PROBE_OK_EXTRA_KBPS }, 'up', 'probe-ok', r.seen);
    return { state, decision: decide(state, c, false) };
  }
  state.probe = { ...probe, stepAt: s.atMs };
  state.probeKbps = Math.round((config.audioWireKbps + state.probeKbps) * PROBE_FACTOR - config.audioWireKbps);
  return hold();
}

/**
 * Steady and clean (FRAME_COST_STEADY_MS since the last change): what srtsink sent
 * beyond the video and audio, per frame, into a slow average (bounded: an encoder
 * undershooting a static scene must not teach the controller that frames are free).
 */
function learnFrameCost(state: AdaptState, s: LinkSample, config: AdaptConfig): void {
  const fps = rungFps(state.rung, config);
  const lastChange = Math.max(state.lastIncreaseAt ?? -Infinity, state.lastDecreaseAt ?? -Infinity);
  if (fps <= 0 || s.sendKbps === null || s.atMs - lastChange < FRAME_COST_STEADY_MS || s.atMs - (state.cleanSince ?? s.atMs) < FRAME_COST_STEADY_MS) return;
  const perFrame = (s.sendKbps - state.targetKbps * (1 + VIDEO_OVERHEAD) - config.audioWireKbps) / fps;
  const bounded = Math.min(FRAME_KBIT_MAX, Math.max(FRAME_KBIT_MIN, perFrame));
  state.frameKbit = Math.round((state.frameKbit * FRAME_COST_KEEP + bounded * FRAME_COST_NEW) * 10) / 10;
}
