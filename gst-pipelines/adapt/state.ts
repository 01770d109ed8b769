/**
 * The controller's state, the samples it is fed and the decisions it returns, and the
 * bookkeeping every change and every decrease goes through (adaptStep and fastCheck alike).
 */
import { EPISODE_MS, FRAME_KBIT, PROBE_BACKOFF_MS } from './constants.js';
import { AUDIO_ONLY, rungFor } from './ladder.js';
import type { AdaptChange, AdaptConfig, AdaptReason } from '../types.js';

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
  /**
   * The link delivered nothing at all (no ACK): an outage, not a narrow link. Where the
   * box stood before it, until an ACK comes again: a worker restarted meanwhile (the
   * session stalls in an outage) resumes there, not at the outage's audio-only.
   */
  outageFrom: { rung: string; targetKbps: number } | null;
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

/** What a step returns: the new state and what to do. */
export type StepResult = { state: AdaptState; decision: AdaptDecision };

/** What a change is described with (the event and the logs). */
export interface ChangeEvidence {
  rttMs: number | null;
  rttFloorMs: number | null;
  deliveredKbps: number | null;
  lossPct: number | null;
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
    outageFrom: null,
    steps: { down: 0, up: 0 },
  };
}

export function decide(state: AdaptState, change: AdaptChange | null, congested: boolean): AdaptDecision {
  return { targetKbps: state.targetKbps, rung: state.rung, probeKbps: state.probeKbps, change, congested };
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
