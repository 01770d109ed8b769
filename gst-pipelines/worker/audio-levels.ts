/**
 * The audio levels the worker reports: the `level` elements' RMS on the mic and on the
 * program (speaker) path, and the longest wall-clock gap between two program-audio
 * reports in a stats interval (an audio break).
 */
import { ELEMENT_NAMES } from '../plan/index.js';
import type { WorkerStats } from './protocol.js';

/** Parses a `level` element's `rms` field, e.g. "< -31.178265 >", into dBFS (null for silence). */
export function parseLevelDb(value: unknown): number | null {
  const nums = String(value ?? '')
    .match(/-?\d+(\.\d+)?(e-?\d+)?|-?inf/gi)
    ?.map((s) => (/inf/i.test(s) ? -Infinity : Number(s)));
  if (!nums || nums.length === 0) return null;
  const max = Math.max(...nums);
  return Number.isFinite(max) ? Math.round(max * 10) / 10 : null;
}

export class AudioLevels {
  private audio = { micDb: null as number | null, speakerDb: null as number | null, micBuffers: 0, speakerBuffers: 0 };
  private speakerLevelAt: number | null = null;
  private speakerMaxGapMs: number | null = null;

  /** A `level` element message from `source` with its `rms` field. */
  onLevel(source: string, rms: unknown): void {
    const db = parseLevelDb(rms);
    if (source === ELEMENT_NAMES.micLevel) {
      this.audio.micDb = db;
      this.audio.micBuffers++;
    } else if (source === ELEMENT_NAMES.speakerLevel) {
      this.audio.speakerDb = db;
      this.audio.speakerBuffers++;
      const now = Date.now();
      if (this.speakerLevelAt !== null) this.speakerMaxGapMs = Math.max(this.speakerMaxGapMs ?? 0, now - this.speakerLevelAt);
      this.speakerLevelAt = now;
    }
  }

  /** A stats report's audio: the last levels and the longest gap since the last report (a gap still open counts). */
  take(now: number): WorkerStats['audio'] {
    const audio = { ...this.audio, speakerMaxGapMs: this.speakerLevelAt === null ? null : Math.max(this.speakerMaxGapMs ?? 0, now - this.speakerLevelAt) };
    this.speakerMaxGapMs = null;
    return audio;
  }
}
