/**
 * What the link adaptation (adapt/) is given with a session plan: its ladder of rungs,
 * the wire cost of audio, and the elements and encoder property it acts on.
 */
import { ladderFor } from '../adapt/index.js';
import { runtimeBitrate } from './codecs.js';
import { even, type SessionChoice } from './choose.js';
import { ELEMENT_NAMES } from './names.js';
import type { MediaJoinSpec, Rung, SessionPlan } from '../types.js';

/**
 * What audio alone costs on the wire: one 188-byte TS packet per 20 ms Opus frame (up to
 * ~64 kbit/s Opus) in 7-packet SRT messages, + 44 bytes of SRT/UDP/IP per message ≈ 78
 * kbit/s; the controller keeps this much free for it.
 */
export const AUDIO_WIRE_KBPS = 80;

/** The caps string of a rung (even sizes: an odd one stops x264 and the whole pipeline). */
export function rungCaps(r: Pick<Rung, 'width' | 'height' | 'fps'>): string {
  return `video/x-raw,width=${even(r.width)},height=${even(r.height)},pixel-aspect-ratio=1/1,framerate=${r.fps}/1`;
}

/** The rungs under the spec's video, none asking less than the spec's minVideoKbps. */
export function adaptLadder(spec: MediaJoinSpec, v: SessionPlan['video']): Rung[] {
  return ladderFor(v).map((r) => ({ ...r, minKbps: Math.max(r.minKbps, spec.send.adapt?.minVideoKbps ?? 0) }));
}

/** The caps the rung filter starts with: the top rung (the spec's own video when there is none). */
export function topRungCaps(ladder: Rung[], v: SessionPlan['video']): string {
  return rungCaps(ladder[0] ?? { ...v, id: 'top', minKbps: 0 });
}

export function adaptPlan(spec: MediaJoinSpec, c: SessionChoice, ladder: Rung[]): SessionPlan['adapt'] {
  const n = ELEMENT_NAMES;
  return {
    enabled: spec.send.adapt?.enabled !== false,
    maxKbps: c.video.bitrateKbps,
    ladder,
    audioWireKbps: AUDIO_WIRE_KBPS,
    srtLatencyMs: c.latencyMs,
    bitrate: runtimeBitrate(c.encoder, c.video),
    elements: { gate: n.videoGate, parser: n.videoParser, rate: n.videoRate, scale: n.videoCaps },
  };
}
