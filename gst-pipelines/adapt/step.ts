/**
 * Link adaptation (pure): a window of srtsink statistics → the video bitrate to encode
 * at and the rung of the quality ladder. No GStreamer, no clock: the worker feeds it one
 * `LinkSample` every SAMPLE_MS and applies the decision (adapt-loop.ts,
 * worker/pipeline-adaptation.ts). Between two samples, the collapse check (collapse.ts)
 * may cut first.
 *
 * One step: read the link (reading.ts), forget an old ceiling, undo a cut nothing
 * confirmed, then cut (cut.ts) or hold and increase (recover.ts).
 */
import { CEILING_MEMORY_MS, CONFIRM_QUEUE_SHARE, VERIFY_MS } from './constants.js';
import { cutStep } from './cut.js';
import { readLink, type LinkReading } from './reading.js';
import { cleanStep } from './recover.js';
import { applyChange, decide, type AdaptState, type LinkSample, type StepResult } from './state.js';
import type { AdaptConfig } from '../types.js';

/** One step: the new state and what to do. Pure. */
export function adaptStep(prev: AdaptState, s: LinkSample, config: AdaptConfig): StepResult {
  const { state, reading: r } = readLink(prev, s, config);
  noteOutage(state, s);
  if (state.ceiling && s.atMs - state.ceiling.atMs > CEILING_MEMORY_MS) state.ceiling = null;
  if (!config.enabled) return { state, decision: decide(state, null, r.reason !== null) };
  const undone = verifyUnconfirmed(state, s, config, r);
  if (undone) return undone;
  return r.reason !== null ? cutStep(state, s, config, r) : cleanStep(state, s, config, r);
}

/**
 * An outage: a whole sample without one ACK while sending, right after a cut made on the
 * ACKs (still unconfirmed — the drops a dead link causes confirm it next). Where the box
 * stood before that cut is kept until an ACK comes again (AdaptState.outageFrom).
 */
function noteOutage(state: AdaptState, s: LinkSample): void {
  if (s.acks === undefined) return;
  if (s.acks > 0) state.outageFrom = null;
  else if (s.sentPackets > 0 && state.unconfirmed) state.outageFrom ??= { rung: state.unconfirmed.rung, targetKbps: state.unconfirmed.targetKbps };
}

/**
 * A cut made on the ACKs alone is kept once a queue, losses or sender drops confirm it;
 * with nothing after VERIFY_MS, the hub stalled and the link did not collapse: undone.
 */
function verifyUnconfirmed(state: AdaptState, s: LinkSample, config: AdaptConfig, r: LinkReading): StepResult | null {
  const unconfirmed = state.unconfirmed;
  if (!unconfirmed) return null;
  if (r.queueMs > r.budget * CONFIRM_QUEUE_SHARE || s.lostPackets > 0 || s.droppedPackets > 0) {
    state.unconfirmed = null;
    return null;
  }
  if (s.atMs - unconfirmed.atMs < VERIFY_MS) return null;
  state.unconfirmed = null;
  Object.assign(state, { probe: null, probeKbps: 0, ceiling: null, severeAt: null, lastIncreaseAt: s.atMs });
  const c = applyChange(state, config, s.atMs, { kbps: unconfirmed.targetKbps, rung: unconfirmed.rung }, 'up', 'false-alarm', r.seen);
  state.atLowestSince = null;
  return { state, decision: decide(state, c, false) };
}
