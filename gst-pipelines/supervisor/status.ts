/** What the media supervisor reports (status, events), what it is configured with, and two rules it keeps. */
import type { Clock, Logger } from '../../lib/index.js';
import type { WorkerErrorCause, WorkerStats } from '../worker/index.js';
import type { WorkerSpawner } from './worker-process.js';
import type { AdaptChange, AdaptReport, MediaPlan, PlanChoices } from '../types.js';

export type DirectionState = 'off' | 'starting' | 'ok' | 'retrying' | 'failed';
export type FailureCause = WorkerErrorCause | 'crash' | 'stall' | 'hung';

/** Failures of the link, not of the box: retried at most every linkBackoffCapMs. */
export const LINK_CAUSES: ReadonlySet<FailureCause> = new Set(['stall', 'srt_connect', 'srt_lost']);

/** Where the next worker of the session starts its link adaptation (AdaptReport.resume). */
export const resumeOf = (r: AdaptReport): { rung: string; targetKbps: number } => r.resume ?? { rung: r.rung, targetKbps: r.targetKbps };


export interface MediaStatus {
  running: boolean;
  plan: MediaPlan['kind'] | null;
  send: DirectionState;
  receive: DirectionState;
  restarts: number;
  attempt: number;
  lastError: { cause: FailureCause; message: string; at: number } | null;
  choices: Partial<PlanChoices> | null;
  stats: WorkerStats | null;
  workerPid: number | null;
  /** Link adaptation: where the sent video stands (null outside a box session). */
  link: { rung: string; targetKbps: number; adaptive: boolean } | null;
}

export interface SupervisorOptions {
  spawner: WorkerSpawner;
  clock?: Clock;
  logger?: Logger;
  random?: () => number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** The cap for failures of the link (stall, srt_connect, srt_lost): see supervisor.ts fail(). */
  linkBackoffCapMs?: number;
  statsPeriodMs?: number;
  /** No buffer for this long in a direction = stall (a camera unplug may post no error). */
  stallMs?: number;
  /** Healthy this long → the retry counter resets. */
  stableMs?: number;
  stopTimeoutMs?: number;
  snapshotDir?: string;
}

export interface SupervisorEvents {
  status: [MediaStatus];
  stats: [WorkerStats];
  restart: [{ reason: string; attempt: number; delayMs: number }];
  'first-bytes': [{ direction: 'send' | 'receive'; atMs: number }];
  snapshot: [{ side: 'send' | 'receive'; path: string }];
  /** Link adaptation stepped down or up (adapt/). */
  adapt: [{ change: AdaptChange; report: AdaptReport }];
}
