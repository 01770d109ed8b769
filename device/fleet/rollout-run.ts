/**
 * `ep fleet ota`: runs the waves rollout.ts plans. For each wave: the device command `ota`
 * to each box (a fresh id each, expiring with the wave, so a box that comes back after the
 * operator halted does not start the update), the replies, then the retained state of each
 * accepted box until it committed the target version or failed, or the wave's time ran out.
 * Then the wave's failure rate decides (decideWave): go on, or halt before the next wave.
 */
import type { Clock } from '../../lib/index.js';
import { topics } from '../contract/index.js';
import { boxOutcome, decideWave, otaKey, planWaves, refusalWhy, startAction, timeoutWhy, type WaveDecision } from './rollout.js';
import { envelope, newCommandId, type FleetSession } from './session.js';

export interface RolloutOptions {
  groupId: string;
  manifestUrl: string;
  /** The manifest's version: what a box must commit. */
  target: string;
  waves: readonly number[];
  maxFailurePct: number;
  waveTimeoutMs: number;
  when: 'idle' | 'now';
  clock: Clock;
  /** Called as the rollout goes (the CLI prints it). */
  progress?: (e: RolloutEvent) => void;
}

export type RolloutEvent =
  | { kind: 'wave_start'; wave: number; pct: number; boxes: string[]; alreadyAtTarget: string[] }
  | { kind: 'wave_end'; report: WaveReport };

export interface WaveReport {
  wave: number;
  pct: number;
  boxes: string[];
  committed: string[];
  failed: { id: string; why: string }[];
  /** Boxes counted committed without a command: they already ran the target version. */
  alreadyAtTarget: string[];
  decision: WaveDecision;
  /** An empty wave (its percentage added no box). */
  skipped: boolean;
}

export interface RolloutReport {
  groupId: string;
  target: string;
  manifestUrl: string;
  /** The group's online boxes the waves were planned over. */
  online: number;
  waves: WaveReport[];
  halted: boolean;
  haltedAtWave: number | null;
  /** The planned waves not run because of the halt. */
  notRun: number[];
  committed: number;
  failed: number;
}

/** Device commands sent at once (each waits for its PUBACK). */
const SEND_BATCH = 100;

interface Sent {
  cmdId: string | null;
  seq: number;
  otaKey: string | null;
}

export async function runRollout(s: FleetSession, o: RolloutOptions): Promise<RolloutReport> {
  const group = s.roster.onlineOf(o.groupId).map((b) => b.id);
  const plan = planWaves(group, o.waves);
  const waves: WaveReport[] = [];
  let haltedAtWave: number | null = null;
  for (const w of plan) {
    const r = await runWave(s, o, w.wave, w.pct, w.boxes);
    waves.push(r);
    o.progress?.({ kind: 'wave_end', report: r });
    if (r.decision.halt) {
      haltedAtWave = w.wave;
      break;
    }
  }
  const notRun = haltedAtWave === null ? [] : plan.filter((w) => w.wave > (haltedAtWave ?? 0)).map((w) => w.wave);
  return {
    groupId: o.groupId,
    target: o.target,
    manifestUrl: o.manifestUrl,
    online: group.length,
    waves,
    halted: haltedAtWave !== null,
    haltedAtWave,
    notRun,
    committed: waves.reduce((n, w) => n + w.committed.length, 0),
    failed: waves.reduce((n, w) => n + w.failed.length, 0),
  };
}

async function runWave(s: FleetSession, o: RolloutOptions, wave: number, pct: number, boxes: string[]): Promise<WaveReport> {
  const committed = new Set<string>();
  const failed = new Map<string, string>();
  const alreadyAtTarget: string[] = [];
  const sent = new Map<string, Sent>();
  for (const id of boxes) {
    const b = s.roster.get(id);
    const action = b ? startAction(b, o.target) : 'send';
    if (action === 'done') {
      alreadyAtTarget.push(id);
      committed.add(id);
    } else sent.set(id, { cmdId: action === 'send' ? newCommandId('ota', o.clock.now()) : null, seq: b?.stateSeq ?? 0, otaKey: b ? otaKey(b) : null });
  }
  o.progress?.({ kind: 'wave_start', wave, pct, boxes, alreadyAtTarget });
  const toSend = [...sent].filter(([, x]) => x.cmdId !== null);
  for (let i = 0; i < toSend.length; i += SEND_BATCH) {
    await Promise.all(
      toSend.slice(i, i + SEND_BATCH).map(([id, x]) => {
        const cmdId = x.cmdId as string;
        s.track(cmdId, id);
        const args = { manifestUrl: o.manifestUrl, when: o.when };
        return s.publish(topics.deviceCommand(id, 'ota'), envelope(cmdId, args, o.clock.now(), o.waveTimeoutMs), false);
      }),
    );
  }
  const settle = (): boolean => {
    for (const [id, x] of sent) {
      if (committed.has(id) || failed.has(id)) continue;
      const reply = x.cmdId !== null ? s.repliesTo(x.cmdId).get(id) : undefined;
      const b = s.roster.get(id);
      const out = b ? boxOutcome(b, o.target, x) : { done: false as const };
      if (out.done === 'committed') committed.add(id);
      else if (reply && !reply.ok) failed.set(id, refusalWhy({ code: reply.code ?? undefined, reason: reply.reason ?? undefined, message: reply.message ?? undefined }));
      else if (out.done === 'failed') failed.set(id, out.why);
    }
    return committed.size + failed.size === boxes.length;
  };
  await s.waitUntil(settle, o.waveTimeoutMs);
  settle();
  for (const [id, x] of sent) {
    if (committed.has(id) || failed.has(id)) continue;
    const replied = x.cmdId === null || s.repliesTo(x.cmdId).has(id);
    failed.set(id, timeoutWhy(s.roster.get(id), replied, Math.round(o.waveTimeoutMs / 1000)));
  }
  const failedList = boxes.filter((id) => failed.has(id)).map((id) => ({ id, why: failed.get(id) as string }));
  return {
    wave,
    pct,
    boxes,
    committed: boxes.filter((id) => committed.has(id)),
    failed: failedList,
    alreadyAtTarget,
    decision: decideWave(boxes.length, failedList.length, o.maxFailurePct),
    skipped: boxes.length === 0,
  };
}
