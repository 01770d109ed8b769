/**
 * A staged OTA rollout, decided by pure functions (STYLE.md 4): which boxes each wave
 * holds, where a box stands with the update, and whether a finished wave halts the rollout.
 * The executor (rollout-run.ts) only sends, waits and asks these.
 */
import type { BoxView } from './roster.js';

/** Parses `--waves 1,10,50,100`: cumulative percentages, each in (0, 100], strictly rising. */
export function parseWaves(s: string): { ok: true; waves: number[] } | { ok: false; problem: string } {
  const parts = s.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.length > 100) return { ok: false, problem: '--waves: 1 to 100 comma-separated percentages, e.g. 1,10,50,100' };
  const waves: number[] = [];
  for (const p of parts) {
    const n = /^\d+(\.\d+)?$/.test(p) ? Number(p) : NaN;
    if (!(n > 0 && n <= 100)) return { ok: false, problem: `--waves: ${JSON.stringify(p)} is not a percentage in (0, 100]` };
    const prev = waves[waves.length - 1];
    if (prev !== undefined && n <= prev) return { ok: false, problem: `--waves: ${p} is not above ${prev} (the percentages are cumulative)` };
    waves.push(n);
  }
  return { ok: true, waves };
}

export interface PlannedWave {
  /** 1-based, as the operator numbered them. */
  wave: number;
  pct: number;
  boxes: string[];
}

/** How many of `n` boxes the first `pct` % are: ceil(pct × n / 100), exact for whole percentages. */
export function cumulativeCount(pct: number, n: number): number {
  // pct × n / 100 in floating point is 7.000000000000001 for 7 % of 100: round to 1e-9 first.
  const x = Math.round(((pct * n) / 100) * 1e9) / 1e9;
  return Math.min(n, Math.ceil(x));
}

/**
 * The waves over `deviceIds` (sorted here by id for a reproducible order): wave k holds the
 * first cumulativeCount(p_k, N) boxes minus those of earlier waves. A wave can come out
 * empty (1 % and 10 % of 3 boxes are both 1 box); it is kept in the plan, with no boxes, and
 * skipped when run. A last percentage under 100 leaves the rest of the group untouched.
 */
export function planWaves(deviceIds: readonly string[], pcts: readonly number[]): PlannedWave[] {
  const ids = [...new Set(deviceIds)].sort();
  let done = 0;
  return pcts.map((pct, i) => {
    const upTo = Math.max(done, cumulativeCount(pct, ids.length));
    const boxes = ids.slice(done, upTo);
    done = upTo;
    return { wave: i + 1, pct, boxes };
  });
}

/** Where one box stands with the update. */
export type BoxOutcome = { done: 'committed' } | { done: 'failed'; why: string } | { done: false };

/** Phases that end a job without the new version running. */
export const FAILED_PHASES = ['rolled_back', 'failed', 'refused'] as const;

/** Phases of a job that is still running. */
const running = (phase: string): boolean => phase !== 'committed' && !(FAILED_PHASES as readonly string[]).includes(phase);

/**
 * What to do with a box when its wave starts: `done` — it already runs the target version
 * (counted committed without a command); `watch` — an update to the target is already
 * running on it (a command would be answered busy), so wait for its end; `send` — send it.
 */
export function startAction(b: BoxView, target: string): 'done' | 'watch' | 'send' {
  const job = b.ota !== null && b.ota.version === target && running(b.ota.phase);
  if (job) return 'watch';
  return b.statusVersion === target || (b.ota?.phase === 'committed' && b.ota.version === target) ? 'done' : 'send';
}

/**
 * A box's outcome from its retained state, after its command was accepted.
 * - committed: `state.ota.phase` committed for the target version (or with no version in
 *   `ota`, when status or state reports the target version);
 * - failed: rolled_back / failed / refused for the target version (or for no version),
 *   seen in a state that arrived after the command was sent (`sentAtSeq`: the box's state
 *   count then) and that is not the state retained then — a stale failure from an earlier
 *   rollout must not fail this one.
 */
export function boxOutcome(b: BoxView, target: string, sent: { seq: number; otaKey: string | null }): BoxOutcome {
  const ota = b.ota;
  if (!ota) return { done: false };
  const forTarget = ota.version === target || ota.version === null;
  if (ota.phase === 'committed') {
    if (ota.version === target) return { done: 'committed' };
    if (ota.version === null && (b.statusVersion === target || b.stateVersion === target)) return { done: 'committed' };
    return { done: false };
  }
  if ((FAILED_PHASES as readonly string[]).includes(ota.phase) && forTarget && b.stateSeq > sent.seq && otaKey(b) !== sent.otaKey) {
    return { done: 'failed', why: failureWhy(b) };
  }
  return { done: false };
}

/** What identifies the retained ota report, to tell a new one from the one there before. */
export function otaKey(b: BoxView): string | null {
  const o = b.ota;
  return o ? JSON.stringify([o.phase, o.version, o.code, o.message]) : null;
}

/** `phase rolled_back, code self_test, message …`. */
export function failureWhy(b: BoxView): string {
  const o = b.ota;
  if (!o) return 'no update reported';
  return [`phase ${o.phase}`, o.code ? `code ${o.code}` : '', o.message ? `message ${o.message}` : ''].filter(Boolean).join(', ');
}

/** A refusal reply (`ok:false`) in words: `refused: failed (downgrade): downgrade: 1.1.0 is not newer…`. */
export function refusalWhy(e: { code?: unknown; reason?: unknown; message?: unknown } | undefined): string {
  if (!e) return 'refused';
  const code = typeof e.code === 'string' ? e.code : '?';
  const reason = typeof e.reason === 'string' ? ` (${e.reason})` : '';
  const msg = typeof e.message === 'string' ? `: ${e.message}` : '';
  return `refused: ${code}${reason}${msg}`.slice(0, 400);
}

/** The box never got to a result within the wave's time. */
export function timeoutWhy(b: BoxView | undefined, replied: boolean, timeoutS: number): string {
  const last = b?.ota ? `, last phase ${b.ota.phase}${b.ota.code ? ` (${b.ota.code})` : ''}` : '';
  const off = b?.online === false ? ', offline' : '';
  return `no commit within ${timeoutS} s${replied ? '' : ' and no reply'}${last}${off}`;
}

export interface WaveDecision {
  failed: number;
  size: number;
  /** failed / size × 100 (0 for an empty wave). */
  failurePct: number;
  halt: boolean;
}

/** After a wave: halt when its failure rate is over maxFailurePct (strictly). */
export function decideWave(size: number, failed: number, maxFailurePct: number): WaveDecision {
  const failurePct = size === 0 ? 0 : (failed / size) * 100;
  return { failed, size, failurePct, halt: failed > 0 && failurePct > maxFailurePct };
}
