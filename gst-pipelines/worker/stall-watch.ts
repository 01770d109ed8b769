/**
 * Stalls: a direction with no frames for stallMs (a camera unplug may post no error), a
 * send side that never connects, and a hub that stopped acknowledging what we send.
 * Each is reported once (as a `stall` message) until the direction moves again; the
 * supervisor rebuilds the session.
 */
import { srtStatsFromStructure, type SrtStats } from '../adapt/index.js';
import type { Counter } from './frame-counter.js';
import type { GstPipeline } from './gst.js';
import type { StallDirection } from './protocol.js';
import type { SessionScope } from './scope.js';
import type { SessionPlan } from '../types.js';

/** How long the SRT send side may take to connect before it counts as stalled. */
export const SEND_CONNECT_GRACE_MS = 10_000;
/** Grace before the first frame: SRT handshake plus waiting for the hub's next keyframe. */
const FIRST_FRAME_GRACE_MS = 5000;
/** How often the send side's first ACK is looked for. */
const CONFIRM_POLL_MS = 50;

export class StallWatch {
  private stalled = new Set<StallDirection>();
  /** Last time the hub's ACK count moved (null until SRT confirmed a connection). */
  private srtSendProgress: { acks: number; at: number } | null = null;

  constructor(
    private readonly scope: SessionScope,
    private readonly stallMs: number,
    /** When the pipeline was set playing. */
    private readonly playAt: number,
  ) {}

  /**
   * "Sending" is reported only once the hub has acknowledged SRT packets: the
   * packetiser producing data proves nothing when the hub refuses the handshake (seen:
   * a wrong passphrase showed send ok while the hub decoded nothing). Polled fast until
   * confirmed; property reads leak in the binding, so this stops once it has its answer.
   */
  confirmDelivery(p: GstPipeline, plan: SessionPlan): void {
    const sink = p.findChild(plan.names.srtSink);
    const t = setInterval(() => {
      if (this.scope.stopping || !sink) return clearInterval(t);
      const st = srtStatsFromStructure(String(sink.stats ?? ''), 'send');
      if ((st.acksReceived ?? 0) > 0) {
        clearInterval(t);
        this.srtSendProgress = { acks: st.acksReceived ?? 0, at: Date.now() };
        this.scope.send({ type: 'first-bytes', direction: 'send', atMs: Date.now() - this.playAt });
      } else if (Date.now() - this.playAt > SEND_CONNECT_GRACE_MS) {
        // Never connected (hub ingest unreachable, or refusing us): a send stall, so the
        // supervisor rebuilds with backoff and the box reports media_failing after a few.
        clearInterval(t);
        this.stalled.add('send');
        this.scope.send({ type: 'stall', direction: 'send', idleMs: Date.now() - this.playAt });
      }
    }, CONFIRM_POLL_MS);
    this.scope.addTimer(t);
  }

  /** The hub stopped acknowledging what we send: the link or the hub is gone (send stall). */
  checkSrtSendProgress(st: SrtStats | null, now: number): void {
    const prog = this.srtSendProgress;
    if (!prog || !st || st.acksReceived === null) return;
    if (st.acksReceived > prog.acks) {
      this.srtSendProgress = { acks: st.acksReceived, at: now };
      this.stalled.delete('send');
    } else if (now - prog.at >= this.stallMs && !this.stalled.has('send')) {
      this.stalled.add('send');
      this.scope.send({ type: 'stall', direction: 'send', idleMs: now - prog.at });
    }
  }

  /** No frames in a direction for stallMs; audio-only sends no video, which is no stall. */
  checkFrames(now: number, counters: { send: Counter; receive: Counter }, audioOnly: boolean): void {
    const stallMs = this.stallMs;
    const grace = Math.max(stallMs, FIRST_FRAME_GRACE_MS);
    for (const [dir, c] of [['send', counters.send], ['receive', counters.receive]] as const) {
      if (dir === 'send' && audioOnly) {
        c.lastAt = now; // video resumes with a fresh grace
        continue;
      }
      const idle = c.lastAt === null ? now - this.playAt - grace + stallMs : now - c.lastAt;
      if (idle >= stallMs && !this.stalled.has(dir)) {
        this.stalled.add(dir);
        this.scope.send({ type: 'stall', direction: dir, idleMs: c.lastAt === null ? now - this.playAt : idle });
      } else if (idle < stallMs) this.stalled.delete(dir);
    }
  }
}
