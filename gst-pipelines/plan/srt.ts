/**
 * The two SRT elements of a session: srtsink (send) and srtsrc (receive), with the
 * latency, key length and stream ids of the join spec. The passphrase itself never goes
 * into a launch string: the worker sets it on both elements (worker/media-worker.ts).
 */
import { ELEMENT_NAMES } from './names.js';
import { q } from './launch.js';
import type { MediaJoinSpec } from '../types.js';

/** Who dials: `caller` for a box (CONTRACT.md); `listener` for the local test hub, which binds the ports. */
export type SrtMode = 'caller' | 'listener';

/** Properties both SRT elements share. */
export function srtCommon(spec: MediaJoinSpec, latencyMs: number): string {
  const pbkeylen = spec.srt?.passphrase ? ` pbkeylen=${spec.srt.pbkeylen ?? 16}` : '';
  return `latency=${latencyMs}${pbkeylen}`;
}

// Checked by choose.ts (bad_request with its path); `q` carries any other value exactly.
const streamId = (id: string | undefined, path: string): string => (id ? ` streamid=${q(id, path)}` : '');

// The mode goes in the URI: srtsink/srtsrc 1.22 re-derive it from the URI, and a
// separate `mode=listener` property after a plain URI did not listen (seen here).

export function srtSinkElement(uri: string, mode: SrtMode, common: string, id: string | undefined): string {
  // maxbw=0 + oheadbw=50: SRT's total send rate (retransmissions included) is capped at
  // 150 % of the measured input rate. With libsrt's default (no cap), a congested link
  // got twice the encoder's rate in retransmissions and stayed saturated for seconds
  // after the encoder slowed down (measured through the bottleneck, issue #4). At 25 %
  // the pacing held a keyframe's burst and the retransmissions behind it past the
  // latency: at 5 % loss and 200 ms, 1–3 % of the frames came broken and 0.2–0.7 % of the
  // audio was lost; at 50 %, whole (net-media.test.ts, docs/testing.md).
  const sendOpts = mode === 'caller' ? '&maxbw=0&oheadbw=50' : '';
  return `srtsink name=${ELEMENT_NAMES.srtSink} uri=${q(`${uri}?mode=${mode}${sendOpts}`)} ${common}${streamId(id, 'send.streamId')} wait-for-connection=false sync=false async=false`;
}

export function srtSrcElement(uri: string, mode: SrtMode, common: string, id: string | undefined): string {
  // keep-listening: a listener (the local hub) takes the next caller when one leaves; without it
  // srtsrc 1.22 serves one caller, then EOSes this branch for good (seen here).
  return `srtsrc name=${ELEMENT_NAMES.srtSrc} uri=${q(`${uri}?mode=${mode}`)} ${common}${streamId(id, 'receive.streamId')}${mode === 'listener' ? ' keep-listening=true' : ''}`;
}
