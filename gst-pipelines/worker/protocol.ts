/**
 * Messages between the agent (supervisor) and a media worker process, over Node's IPC
 * channel. Plain JSON; the worker never receives anything but these.
 */
import type { AdaptChange, AdaptReport, MediaPlan, SrtLinkStats } from '../types.js';
import type { TsAuditSnapshot } from '../mpegts/index.js';

export interface DirectionStats {
  fps: number | null;
  kbps: number | null;
  frames: number;
  bytes: number;
  /** Milliseconds since the last video frame (or TS data) in this direction. */
  idleMs: number | null;
  /** Longest gap between two video frames during this interval (a freeze), ms. */
  maxGapMs: number | null;
}

export interface WorkerStats {
  ts: number;
  uptimeMs: number;
  send: DirectionStats & { srt: SrtLinkStats | null; paddingPct: number | null };
  /** audit: what arrived in this interval, Opus frame by frame (test hub only: SessionRole.auditReceive). */
  receive: DirectionStats & { srt: SrtLinkStats | null; audit?: TsAuditSnapshot };
  /** RMS level in dBFS (−∞ reported as null), sent mic and received program. */
  audio: {
    micDb: number | null;
    speakerDb: number | null;
    micBuffers: number;
    speakerBuffers: number;
    /** Longest wall-clock gap between two program-audio level reports this interval (audio break), ms. */
    speakerMaxGapMs: number | null;
  };
  /** Link adaptation (sessions in caller mode; null otherwise). */
  adapt: AdaptReport | null;
  rssMb: number;
}

export type StallDirection = 'send' | 'receive';

export type WorkerErrorCause =
  | 'srt_auth' // wrong or missing passphrase
  | 'srt_connect' // peer unreachable / refused / timed out
  | 'srt_lost' // connection broke mid-session
  | 'no_camera'
  | 'no_display'
  | 'no_audio_device'
  | 'encoder'
  | 'decoder'
  | 'negotiation'
  | 'pipeline'; // anything else

/** Supervisor → worker. */
export type ToWorker =
  | {
      type: 'start';
      plan: MediaPlan;
      secrets: { passphrase?: string };
      statsPeriodMs: number;
      stallMs: number;
      snapshotDir?: string;
      /** Link adaptation state of the previous worker of this session (a restart resumes it). */
      adaptFrom?: { rung: string; targetKbps: number } | null;
    }
  | { type: 'stop' }
  | { type: 'set'; element: string; property: string; value: string | number | boolean }
  | { type: 'snapshot' }
  | { type: 'test:block-source'; blocked: boolean };

/** Worker → supervisor. */
export type FromWorker =
  | { type: 'ready'; pid: number; gstreamer: string | null }
  | { type: 'started'; atMs: number }
  | { type: 'first-bytes'; direction: StallDirection; atMs: number }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'adapt'; change: AdaptChange; report: AdaptReport }
  | { type: 'warning'; source: string; message: string }
  | { type: 'error'; cause: WorkerErrorCause; source: string; message: string; retryable: boolean }
  | { type: 'stall'; direction: StallDirection; idleMs: number }
  | { type: 'snapshot'; side: 'send' | 'receive'; path: string; bytes: number }
  | { type: 'eos' }
  | { type: 'stopped' };

export function isFromWorker(m: unknown): m is FromWorker {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

export function isToWorker(m: unknown): m is ToWorker {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}
