/**
 * One operator session over a FleetBus: the roster (retained status and state of every
 * box), the replies to the commands this session sent, and waiting — until the retained
 * messages go quiet, or until a condition on what arrived holds.
 *
 * Bounded: the roster (Roster's cap), the command ids tracked (TRACKED_IDS_MAX), the
 * replies kept per id (one per box, at most the roster's cap); a reply to an id this
 * session did not send is counted and dropped.
 */
import { randomBytes } from 'node:crypto';
import type { ValidateFunction } from 'ajv';
import { systemClock, type Clock } from '../../lib/index.js';
import { createContract, replySchema, topics, type Contract, type Reply } from '../contract/index.js';
import type { FleetBus } from './client.js';
import { Roster, cleanText, parseDeviceTopic, ROSTER_MAX_BOXES } from './roster.js';

/** Command ids one session tracks (a rollout sends one per box). */
export const TRACKED_IDS_MAX = ROSTER_MAX_BOXES + 16;

const CHECK_EVERY_MS = 50;

export interface ReplyView {
  deviceId: string;
  ok: boolean;
  code: string | null;
  reason: string | null;
  message: string | null;
  result: Record<string, unknown> | null;
}

export interface SessionCounts {
  malformedReplies: number;
  /** Replies to ids this session did not send (another operator's, or stale). */
  otherReplies: number;
  /** Replies dropped because an id already had a reply from as many boxes as the roster holds. */
  repliesOverCap: number;
}

/** A fresh command id (≤ 64 characters): `fleet-join-lq3x2c-9f1e2a7b`. */
export function newCommandId(what: string, now = Date.now()): string {
  return `fleet-${what.slice(0, 24)}-${now.toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** The command envelope (CONTRACT.md): id, ts, expiresAt when given, args. */
export function envelope(id: string, args: unknown, now: number, expiresInMs?: number): string {
  return JSON.stringify({
    id,
    ts: new Date(now).toISOString(),
    ...(expiresInMs !== undefined ? { expiresAt: new Date(now + expiresInMs).toISOString() } : {}),
    args,
  });
}

export class FleetSession {
  readonly roster: Roster;
  readonly counts: SessionCounts = { malformedReplies: 0, otherReplies: 0, repliesOverCap: 0 };
  private readonly contract: Contract;
  private readonly replyValid: ValidateFunction;
  private readonly replies = new Map<string, { from: string | null; byBox: Map<string, ReplyView> }>();
  private lastRetainedAt: number;
  private readonly waiters = new Set<() => void>();
  /** The waiters are checked at most every CHECK_EVERY_MS (a check walks the group: not once per message of a 20 000-box burst). */
  private checkTimer: unknown = null;

  constructor(
    private readonly bus: FleetBus,
    private readonly clock: Clock = systemClock,
    maxBoxes = ROSTER_MAX_BOXES,
  ) {
    this.roster = new Roster(maxBoxes);
    this.contract = createContract();
    this.replyValid = this.contract.compile(replySchema);
    this.lastRetainedAt = clock.now();
  }

  /** Subscribes to every box's status, state and reply. */
  async start(): Promise<void> {
    this.bus.onMessage((t, p, r) => this.handle(t, p, r));
    this.lastRetainedAt = this.clock.now();
    await this.bus.subscribe([topics.status('+'), topics.state('+'), topics.reply('+')]);
    this.lastRetainedAt = this.clock.now();
  }

  async close(): Promise<void> {
    this.waiters.clear();
    if (this.checkTimer !== null) this.clock.clearTimeout(this.checkTimer);
    this.checkTimer = null;
    await this.bus.close();
  }

  /** Publishes (QoS 1) and resolves at the PUBACK. */
  publish(topic: string, payload: string, retain = false): Promise<void> {
    return this.bus.publish(topic, payload, retain);
  }

  /**
   * Starts collecting replies with this id (before the command goes out): from one box
   * (`from`, a device command) or from every box that answers (a group command).
   */
  track(id: string, from: string | null = null): void {
    if (this.replies.has(id)) return;
    if (this.replies.size >= TRACKED_IDS_MAX) throw new Error(`over ${TRACKED_IDS_MAX} commands tracked in one session`);
    this.replies.set(id, { from, byBox: new Map() });
  }

  /** The replies to one id, by deviceId (the first reply of each box). */
  repliesTo(id: string): ReadonlyMap<string, ReplyView> {
    return this.replies.get(id)?.byBox ?? new Map<string, ReplyView>();
  }

  /** Feeds one message in (the bus's handler; tests call it directly). */
  handle(topic: string, payload: Buffer, retain: boolean): void {
    const t = parseDeviceTopic(topic);
    if (t?.kind === 'reply') this.handleReply(t.deviceId, payload);
    else {
      this.roster.fold(topic, payload);
      if (retain) this.lastRetainedAt = this.clock.now();
    }
    if (this.waiters.size > 0 && this.checkTimer === null) {
      this.checkTimer = this.clock.setTimeout(() => {
        this.checkTimer = null;
        for (const w of [...this.waiters]) w();
      }, CHECK_EVERY_MS);
    }
  }

  private handleReply(deviceId: string, payload: Buffer): void {
    let r: Reply;
    try {
      r = this.contract.check<Reply>(this.replyValid, this.contract.parseJson(payload, 'reply'));
    } catch {
      this.counts.malformedReplies++;
      return;
    }
    const tracked = this.replies.get(r.id);
    if (!tracked || r.deviceId !== deviceId || (tracked.from !== null && tracked.from !== deviceId)) {
      this.counts.otherReplies++;
      return;
    }
    const byBox = tracked.byBox;
    if (byBox.has(deviceId)) return; // a duplicate: the first reply counts
    if (byBox.size >= this.roster.maxBoxes) {
      this.counts.repliesOverCap++;
      return;
    }
    const e = r.error;
    byBox.set(deviceId, {
      deviceId,
      ok: r.ok,
      code: e ? cleanText(e.code, 64) : null,
      reason: e?.reason !== undefined ? cleanText(e.reason, 64) : null,
      message: e ? cleanText(e.message) : null,
      result: r.ok && r.result ? (r.result as Record<string, unknown>) : null,
    });
  }

  /**
   * Waits until no retained message arrived for `quietMs`, at most `maxMs` in all: the
   * broker sends the retained messages right after the SUBSCRIBE, then nothing more.
   */
  waitQuiet(quietMs: number, maxMs: number): Promise<void> {
    const until = this.clock.now() + maxMs;
    return new Promise((resolve) => {
      const tick = (): void => {
        const now = this.clock.now();
        const quietAt = this.lastRetainedAt + quietMs;
        if (now >= quietAt || now >= until) resolve();
        else this.clock.setTimeout(tick, Math.max(1, Math.min(quietAt, until) - now));
      };
      tick();
    });
  }

  /** Waits until `done()` holds (checked now and after every message), or `timeoutMs`; true when it held. */
  waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (v: boolean): void => {
        this.waiters.delete(check);
        this.clock.clearTimeout(timer);
        resolve(v);
      };
      const check = (): void => {
        if (done()) finish(true);
      };
      const timer = this.clock.setTimeout(() => finish(done()), timeoutMs);
      this.waiters.add(check);
    });
  }
}
