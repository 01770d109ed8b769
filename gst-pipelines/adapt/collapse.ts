/**
 * The collapse check of link adaptation (pure), between two adaptSteps (step.ts): on
 * every srtsink reading (FAST_SAMPLE_MS apart; with epframer's link watch, on each
 * window it posts, thinned to that spacing), over the last FAST_WINDOW_MS of them. It acts
 * only on a collapse, before the bottleneck's queue is full — by then audio is lost too.
 * Measurements behind it: docs/adapt.md ("What the controller sees").
 */
import { ACK_PER_PACKET_RATE, DECREASE_GAP_MS, DRAIN_SHARE, INCREASE_QUEUE_SHARE } from './constants.js';
import { AUDIO_ONLY, delayBudgetMs, fitWire, rungFps, wireKbps } from './ladder.js';
import { applyChange, decide, decrease, type AdaptDecision, type AdaptState } from './state.js';
import type { AdaptConfig, AdaptReason } from '../types.js';

/**
 * srtsink is read this often for the collapse check (fastCheck): a 60 KB drop-tail queue
 * fills in 0.3 s at 100 kbit/s and 0.5 s at 600 kbit/s, and what is sent after that is
 * lost — audio included. (With the stock binding, each read leaks; see worker/pipeline-adaptation.ts.)
 */
export const FAST_SAMPLE_MS = 100;
/**
 * epframer's link watch reads srtsink this often: twice per FAST_SAMPLE_MS, so a ramp
 * is seen ~25 ms sooner on average (its readings come with the first buffer after the
 * period, 101–118 ms apart at 100 ms, and it then reacted a reading later than a JS
 * tick under load: docs/benchmarks.md). Its windows are thinned (thinWindow) back to
 * FAST_SAMPLE_MS spacing, so fastCheck judges the spacing it was tuned on, newest first.
 */
export const WATCH_SAMPLE_MS = FAST_SAMPLE_MS / 2;
/** The least spacing thinWindow keeps (a 100 ms timer's readings are 100–105 ms apart). */
const THIN_MS = FAST_SAMPLE_MS - 10;
/** fastCheck looks at this much history (at least two fast samples). */
const FAST_WINDOW_MS = 200;
/** Queueing delay growing at this share of real time or more: the link collapsed. */
const COLLAPSE_SLOPE = 0.15;
/** ACKs under this share of the packets sent (and under ACK_PER_PACKET_RATE): the link delivers only what they count. */
const ACK_STARVED_SHARE = 0.5;
/** ACKs under this share of the packets: nearly none, a collapse whatever came before (ackedLessThanBefore). */
const ACK_NEARLY_NONE_SHARE = 0.15;
/** ACK starvation is only judged while sending at least this many packets a second. */
const ACK_MIN_SEND_RATE = 20;
/** A queue growing at this share of real time or faster: the link carries < 20 % of what is sent. */
const SLOPE_AUDIO_ONLY = 0.8;

/**
 * When epframer takes the readings (its link watch, gst-pipelines/native/epframer-link.c), it
 * evaluates this trigger on each one and posts the window to the worker only when it
 * fires, so the worker's JavaScript does not wake 10 times a second for nothing (that
 * was a third of its CPU). The trigger is a superset of the conditions under which
 * fastCheck can act: every branch below needs ACK starvation (the first three
 * conditions of the delivery branch) or a queue above INCREASE_QUEUE_SHARE of the budget.
 * Thresholds are rounded so the trigger fires no later than fastCheck could act.
 */
export interface CollapseTrigger {
  /** fastCheck's `a`: the newest reading at least this much older than the newest. */
  spanMs: number;
  /** …in the window thinned to readings this far apart (thinWindow). */
  thinMs: number;
  /** Queueing delay (RTT − floor) above which the queue branches may act, µs (rounded down). */
  queueUs: number;
  minSendRate: number;
  maxAckRate: number;
  ackPermille: number;
}

export function collapseTrigger(config: AdaptConfig): CollapseTrigger {
  return {
    spanMs: FAST_WINDOW_MS * 0.75,
    thinMs: THIN_MS,
    queueUs: Math.floor(delayBudgetMs(config.srtLatencyMs) * INCREASE_QUEUE_SHARE * 1000),
    minSendRate: ACK_MIN_SEND_RATE,
    maxAckRate: ACK_PER_PACKET_RATE,
    ackPermille: Math.round(ACK_STARVED_SHARE * 1000),
  };
}

/**
 * The trigger as epframer evaluates it (its reference semantics, like TsPacketizer is for
 * its framing), over the readings of the last second, oldest first, with the floor the
 * worker last gave it (its controller's RTT history; null: none yet). Tests hold it to
 * fastCheck: fastCheck acting on a window implies the trigger fired on it.
 */
export function collapseTriggered(window: FastSample[], historyFloorMs: number | null, t: CollapseTrigger): boolean {
  const b = window[window.length - 1];
  const thinned = thinWindow(window, t.thinMs);
  let a: FastSample | undefined;
  for (let i = thinned.length - 1; i >= 0 && !a; i--) if (b && b.atMs - thinned[i]!.atMs >= t.spanMs) a = thinned[i];
  if (!a || !b || a.acksReceived === 0 || b.packetsSent < a.packetsSent) return false;
  const dt = (b.atMs - a.atMs) / 1000;
  const sentRate = (b.packetsSent - a.packetsSent) / dt;
  const ackRate = Math.max(0, b.acksReceived - a.acksReceived) / dt;
  if (sentRate >= t.minSendRate && ackRate < t.maxAckRate && ackRate * 1000 < sentRate * t.ackPermille) return true;
  if (b.rttMs === null || b.rttMs < 0) return false;
  let floor = historyFloorMs !== null && historyFloorMs > 0 ? Math.floor(historyFloorMs * 1000) / 1000 : Infinity;
  for (const w of window) if (w.rttMs !== null && w.rttMs > 0) floor = Math.min(floor, w.rttMs);
  return Number.isFinite(floor) && (b.rttMs - floor) * 1000 > t.queueUs;
}

/**
 * The readings kept when a window is thinned to `minGapMs` (oldest first): the newest,
 * then going back, each reading at least `minGapMs` older than the one kept before it.
 */
export function thinWindow(window: FastSample[], minGapMs: number = THIN_MS): FastSample[] {
  const kept: FastSample[] = [];
  for (let i = window.length - 1; i >= 0; i--) {
    const w = window[i]!;
    const last = kept[kept.length - 1];
    if (!last || last.atMs - w.atMs >= minGapMs) kept.push(w);
  }
  return kept.reverse();
}

/** One fast reading of srtsink (cumulative counters, as libsrt reports them). */
export interface FastSample {
  atMs: number;
  rttMs: number | null;
  packetsSent: number;
  bytesSent: number;
  acksReceived: number;
  /** packets-sent-lost: packets the hub reported lost (NAKs); absent where not read. */
  lostPackets?: number;
}

/**
 * Whether the hub reported a loss within `window` (the last second of readings). A hole
 * holds the hub's ACKs back until its retransmission fills it — a round trip or more — so
 * on a lossy but wide link (rural 4G: random loss, 100 ms RTT) ACKs starve for a moment
 * after every loss although nothing queues: at 5 % loss the box went audio-only on a
 * link with room to spare (net-media.test.ts). A link that collapses delays packets
 * before it drops any: its ACKs starve with no loss reported.
 */
export function lossReported(window: FastSample[]): boolean {
  const first = window.find((w) => w.lostPackets !== undefined);
  const last = window.findLast((w) => w.lostPackets !== undefined);
  return first !== undefined && last !== undefined && last.lostPackets! > first.lostPackets!;
}

/**
 * Whether ACKs per packet sent fell, in the newest FAST_WINDOW_MS, under ACK_STARVED_SHARE
 * of what they were in the rest of the window (from its first reading to `a`). libsrt
 * ACKs at most once per 10 ms, so on a link that delivers in clumps — jitter kept in
 * order, a mobile link's scheduler — one ACK covers several packets and ACKs run at a
 * third of the packets with nothing wrong (net-media.test: the box went audio-only on
 * such a link). A collapse is a fall from there — or ACKs nearly gone (under
 * ACK_NEARLY_NONE_SHARE: a link down, a 100 kbit/s one under 1.5 Mbit/s), which no clumping
 * makes. Without a baseline (a window shorter than FAST_WINDOW_MS more), the absolute test
 * above decides alone.
 */
function ackedLessThanBefore(window: FastSample[], a: FastSample, recentRatio: number): boolean {
  if (recentRatio < ACK_NEARLY_NONE_SHARE) return true;
  const first = window[0]!;
  const packets = a.packetsSent - first.packetsSent;
  if (a.atMs - first.atMs < FAST_WINDOW_MS || packets < ACK_MIN_SEND_RATE * (FAST_WINDOW_MS / 1000)) return true;
  return recentRatio < ((a.acksReceived - first.acksReceived) / packets) * ACK_STARVED_SHARE;
}

/**
 * The collapse check, between two adaptSteps, over the last FAST_WINDOW_MS of fast
 * samples (oldest first). It acts only on a collapse, when waiting for the next
 * SAMPLE_MS would let the bottleneck's queue fill and drop audio:
 * - delivery collapse: ACKs fell far below the packets sent, and below what they were
 *   earlier in the window (ackedLessThanBefore), with no loss reported in the window
 *   (lossReported: then a hole holds the ACKs back, not the link). They then count
 *   the packets the link delivers, so its capacity is known: straight to what fits in
 *   DRAIN_SHARE of it — audio-only at once if no video rung does (no trial at the lowest rung).
 * - queue collapse: the queueing delay went from clean past 60 % of the budget while
 *   growing at COLLAPSE_SLOPE of real time or faster — the deep cut adaptStep makes for a sudden
 *   jump, a few hundred ms earlier. A slow drift is left to adaptStep's mild cuts.
 * Returns null when it does nothing (adaptStep then decides as before).
 */
export function fastCheck(prev: AdaptState, window: FastSample[], config: AdaptConfig): { state: AdaptState; decision: AdaptDecision } | null {
  const b = window[window.length - 1];
  const a = b && [...window].reverse().find((w) => b.atMs - w.atMs >= FAST_WINDOW_MS * 0.75);
  // ACKs from the window's start: a socket still connecting (or just reconnected) has none yet.
  if (!config.enabled || !a || !b || prev.rung === AUDIO_ONLY || b.packetsSent < a.packetsSent || a.acksReceived === 0) return null;
  const dt = (b.atMs - a.atMs) / 1000;
  const sentRate = (b.packetsSent - a.packetsSent) / dt;
  const ackRate = Math.max(0, b.acksReceived - a.acksReceived) / dt;
  const bytesPerPacket = b.packetsSent > a.packetsSent ? (b.bytesSent - a.bytesSent) / (b.packetsSent - a.packetsSent) : 0;
  const sentKbps = ((b.bytesSent - a.bytesSent) * 8) / (dt * 1000);
  const floor = Math.min(...prev.rttHistory.map((h) => h.rttMs), ...window.flatMap((w) => (w.rttMs !== null && w.rttMs > 0 ? [w.rttMs] : [])));
  const budget = delayBudgetMs(config.srtLatencyMs);
  const qOf = (w: FastSample): number => (w.rttMs !== null && Number.isFinite(floor) ? w.rttMs - floor : 0);
  const queueB = qOf(b);
  const queueA = qOf(a);
  const since = prev.lastDecreaseAt === null ? Infinity : b.atMs - prev.lastDecreaseAt;

  const state: AdaptState = { ...prev, steps: { ...prev.steps } };
  const fps = rungFps(state.rung, config);
  const cut = (to: { rung: string; kbps: number }, reason: AdaptReason, severe: boolean, limit: number, delivered: number | null): { state: AdaptState; decision: AdaptDecision } => {
    const seen = { rttMs: b.rttMs, rttFloorMs: Number.isFinite(floor) ? floor : null, deliveredKbps: delivered, lossPct: null };
    const c = decrease(state, b.atMs, limit, severe, () => applyChange(state, config, b.atMs, to, 'down', reason, seen));
    state.decreaseRttMs = b.rttMs;
    state.lastQueueMs = queueB;
    return { state, decision: decide(state, c, true) };
  };

  if (sentRate >= ACK_MIN_SEND_RATE && ackRate < ACK_PER_PACKET_RATE && ackRate < sentRate * ACK_STARVED_SHARE && since >= FAST_WINDOW_MS * 2 && !lossReported(window) && ackedLessThanBefore(window, a, ackRate / sentRate)) {
    const capacity = (ackRate * bytesPerPacket * 8) / 1000;
    const fitted = fitWire(capacity * DRAIN_SHARE, config, state.frameKbit);
    const lower = fitted.rung !== state.rung ? config.ladder.findIndex((r) => r.id === fitted.rung) > config.ladder.findIndex((r) => r.id === state.rung) || fitted.rung === AUDIO_ONLY : fitted.kbps < state.targetKbps * 0.85;
    if (lower) {
      const undo = { atMs: b.atMs, rung: state.rung, targetKbps: state.targetKbps };
      const r = cut(fitted, 'delivery-collapse', true, fitted.rung === AUDIO_ONLY ? 0 : fitted.kbps * 1.25, capacity);
      r.state.unconfirmed = prev.unconfirmed ?? undo;
      return r;
    }
  }

  const slope = (queueB - queueA) / (dt * 1000);
  // A queue growing at a share `slope` of real time means the link carries about
  // (1 − slope) of what is sent. libsrt's smoothing understates the slope at first (so
  // this overstates the capacity: safe); the deep cut applies whichever is lower.
  const carried = sentKbps * Math.max(0, 1 - slope);
  const lowest = config.ladder[config.ladder.length - 1];
  // Audio-only on the queue alone needs it growing nearly as fast as time since its onset
  // (the last clean reading, at least two readings back — not a window straddling the
  // collapse): a hub whose ACKs say nothing (gosrt ACKs every 10 ms whatever arrived).
  const onsetAt = window.findLastIndex((w) => qOf(w) <= budget * 0.2);
  const onset = onsetAt >= 0 && onsetAt <= window.length - 3 ? window[onsetAt]! : null;
  const onsetSlope = onset ? (queueB - qOf(onset)) / (b.atMs - onset.atMs) : 0;
  const lowestWire = lowest ? wireKbps(lowest.minKbps, lowest.fps, config, state.frameKbit) : 0;
  const audioOnlyNow = onsetSlope >= SLOPE_AUDIO_ONLY && queueB > budget * INCREASE_QUEUE_SHARE && sentKbps * (1 - onsetSlope) * DRAIN_SHARE < lowestWire;
  if (audioOnlyNow && since >= FAST_WINDOW_MS / 2) return cut({ rung: AUDIO_ONLY, kbps: 0 }, 'queueing-delay', true, 0, sentKbps * (1 - onsetSlope));

  if (queueB > budget * INCREASE_QUEUE_SHARE && queueA < budget * INCREASE_QUEUE_SHARE && slope >= COLLAPSE_SLOPE && since >= DECREASE_GAP_MS) {
    const wire = Math.min(Math.min(sentKbps, wireKbps(state.targetKbps, fps, config, state.frameKbit)) * 0.25, carried * DRAIN_SHARE);
    let fitted = fitWire(wire, config, state.frameKbit);
    // Audio-only needs the lowest rung to have failed (adaptStep), the ACKs (above) or a steep queue to say so.
    if (fitted.rung === AUDIO_ONLY && lowest) fitted = { rung: lowest.id, kbps: lowest.minKbps };
    if (fitted.rung === state.rung && fitted.kbps >= state.targetKbps) return null;
    return cut(fitted, 'queueing-delay', true, fitted.kbps * 1.25, carried);
  }
  return null;
}
