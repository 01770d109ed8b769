/**
 * The receive side as this process sees it: the received-video tap (a box samples its
 * fakesink's count; the test hub pulls every frame for exact arrival times) and, at the
 * test hub (SessionRole.auditReceive), every received TS packet through a FIFO into the
 * audit (mpegts/audit.ts).
 */
import { TsAudit } from '../mpegts/index.js';
import { countArrival, type Counter } from './frame-counter.js';
import type { GstPipeline } from './gst.js';
import type { SampledCounts } from './sampled-counts.js';
import type { SessionScope } from './scope.js';
import type { FifoPool } from './ts-fifo.js';
import type { Socket } from 'node:net';
import type { SessionPlan } from '../types.js';

export class ReceivePath {
  /** The receive audit (test hub only). */
  readonly audit: TsAudit | null = null;
  private readonly pipe: Socket | null;

  /** Before play: the audit's fdsink onto a FIFO. */
  constructor(p: GstPipeline, plan: SessionPlan, fifos: FifoPool, scope: SessionScope) {
    this.pipe = fifos.openSink(p, plan.names.rxTsOut);
    if (this.pipe) {
      const audit = new TsAudit();
      this.audit = audit;
      this.pipe.on('data', (b: Buffer) => audit.push(b, Date.now()));
      this.pipe.on('error', (e: Error) => scope.send({ type: 'error', cause: 'pipeline', source: 'rxtsout', message: `receive audit pipe: ${e.message}`, retryable: true }));
    }
  }

  /** After play: the received video tap counts into `receive` (pulled frame by frame, or sampled). */
  wireTap(p: GstPipeline, plan: SessionPlan, receive: Counter, sampled: SampledCounts, scope: SessionScope, playAt: number): void {
    const tap = p.findChild(plan.names.rxVideoTap);
    if (tap && !tap.pull) sampled.rxTap = tap;
    if (!tap?.pull) return;
    const pull = tap.pull.bind(tap);
    const onFrame = (buf: Buffer | null): void => {
      if (scope.stopping) return;
      if (!buf) return scope.retryPull(() => pull(onFrame));
      const now = Date.now();
      if (receive.firstAt === null) {
        receive.firstAt = now;
        scope.send({ type: 'first-bytes', direction: 'receive', atMs: now - playAt });
      }
      countArrival(receive, now, buf.length);
      pull(onFrame);
    };
    pull(onFrame);
  }

  destroy(): void {
    this.pipe?.destroy();
  }
}
