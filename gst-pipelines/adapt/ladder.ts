/**
 * The quality ladder (rungs of size and frame rate, then audio-only) and what each rung
 * costs on the wire: pure arithmetic the controller and the collapse check share.
 */
import { DELAY_BUDGET_MAX_MS, DELAY_BUDGET_MIN_MS, DELAY_BUDGET_SHARE, FRAME_KBIT, LOW_RUNG_FPS, MIN_BITS_PER_PIXEL, MIN_RUNG_KBPS, RUNG_UP_MARGIN, VIDEO_OVERHEAD } from './constants.js';
import type { AdaptConfig, Rung, SessionPlan } from '../types.js';

/** The rung id of sending audio alone. */
export const AUDIO_ONLY = 'audio-only';

/** Sizes of the rungs, as a share of the spec's, and whether they run at LOW_RUNG_FPS. */
const RUNG_SHAPES: ReadonlyArray<[scale: number, low: boolean]> = [
  [1, false],
  [1, true],
  [0.75, true],
  [0.5, true],
];

/**
 * The ladder under a join spec's video: its own size and rate first, then 15 fps,
 * then ¾ and ½ the size at 15 fps (1280x720@30 → 720p15 → 540p15 → 360p15). A rung
 * needs MIN_BITS_PER_PIXEL × pixels per second; the lowest rung never asks less than
 * MIN_RUNG_KBPS (below that, audio-only is the better meeting).
 */
export function ladderFor(video: SessionPlan['video']): Rung[] {
  const even = (n: number): number => Math.max(2, Math.round(n / 2) * 2);
  const lowFps = Math.min(LOW_RUNG_FPS, video.fps);
  const rungs: Rung[] = [];
  for (const [scale, low] of RUNG_SHAPES) {
    const fps = low ? lowFps : video.fps;
    const width = even(video.width * scale);
    const height = even(video.height * scale);
    if (rungs.some((r) => r.width === width && r.height === height && r.fps === fps)) continue;
    const minKbps = Math.round(Math.max(MIN_RUNG_KBPS, (width * height * fps * MIN_BITS_PER_PIXEL) / 1000));
    rungs.push({ id: `${height}p${fps}`, width, height, fps, minKbps: Math.min(minKbps, video.bitrateKbps) });
  }
  return rungs;
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

export function rungFps(rung: string, config: AdaptConfig): number {
  return config.ladder.find((r) => r.id === rung)?.fps ?? 0;
}

/** Queueing delay budget: a quarter of SRT's latency, within 40..150 ms. */
export function delayBudgetMs(srtLatencyMs: number): number {
  return Math.min(DELAY_BUDGET_MAX_MS, Math.max(DELAY_BUDGET_MIN_MS, srtLatencyMs * DELAY_BUDGET_SHARE));
}

/** What `videoKbps` of video at `fps`, plus the audio, costs on the wire (kbit/s). */
export function wireKbps(videoKbps: number, fps: number, config: Pick<AdaptConfig, 'audioWireKbps'>, frameKbit = FRAME_KBIT): number {
  return videoKbps > 0 ? videoKbps * (1 + VIDEO_OVERHEAD) + fps * frameKbit + config.audioWireKbps : config.audioWireKbps;
}

/** The video bitrate whose wire rate (with the audio) is `wire` kbit/s. */
export function videoForWire(wire: number, fps: number, config: Pick<AdaptConfig, 'audioWireKbps'>, frameKbit: number): number {
  return (wire - config.audioWireKbps - fps * frameKbit) / (1 + VIDEO_OVERHEAD);
}

/** The best rung, and its video bitrate, whose wire rate fits in `wire` kbit/s. */
export function fitWire(wire: number, config: AdaptConfig, frameKbit = FRAME_KBIT): { rung: string; kbps: number } {
  for (const r of config.ladder) {
    const kbps = Math.min(config.maxKbps, videoForWire(wire, r.fps, config, frameKbit));
    if (kbps >= r.minKbps) return { rung: r.id, kbps: Math.round(kbps) };
  }
  return { rung: AUDIO_ONLY, kbps: 0 };
}
