/**
 * The event outbox: a bounded queue of events on disk, delivered to the hub one at a
 * time, in order, after any reconnect or restart.
 *
 * MQTT.js keeps its offline queue in memory (docs/platform-facts.md), so an event raised while the
 * link is down would die with the process. Here `add()` gives the event its `seq` and
 * `ts`, writes the whole queue atomically (temp file, fsync, rename, directory fsync) and
 * only then resolves; an event is handed to `publish` only once it is on disk. The pump
 * sends the oldest event, waits for `publish` to resolve (the broker's PUBACK), removes
 * the event and saves that removal, and only then sends the next. The first failure
 * pauses the pump until `resume()` (the MQTT layer calls it on reconnect).
 *
 * `seq` is per box, starts at 1 and never goes back: the next value is saved with the
 * queue, so it continues across restarts even when the queue is empty. Events reach the
 * hub in increasing `seq`, and the hub keeps the highest `seq` it has seen and drops any
 * event at or below it. That makes the one duplicate the outbox can produce harmless:
 *
 *   Duplicate window: the box crashes after the PUBACK of event N but before the save
 *   that removes N reaches the disk. After the restart N is still first in the queue and
 *   is sent again, with the same seq; the hub has seen N and drops it. The pump sends
 *   nothing else until the removal is saved, so this is at most one event per crash.
 *   That head is sent again as it is: an overflow after the restart never folds it into
 *   an events_dropped marker (the hub would drop the marker for its seen seq, and with
 *   it the count of lost events; `resentHead`).
 *   (A publish that failed on the box but reached the broker, e.g. a PUBACK lost with the
 *   link, is resent the same way after resume() and dropped the same way.)
 *
 * Bounded: past `max` events the oldest undelivered ones are replaced by one marker,
 * `{type: "events_dropped", severity: "warn", detail: {count, firstSeq, lastSeq}}`, that
 * takes the seq of the first event it replaces, so the queue stays in seq order with no
 * unexplained gap and the hub learns how many events it missed. Later drops grow the same
 * marker. The event being published is never dropped.
 *
 * `stream` (saved with the queue) is a random id made when the queue file is first
 * created (new box, re-flashed SD card, quarantined file); seq restarts at 1 only
 * together with a new stream id, so a hub that keys its seq watermark by it can tell a
 * reset box from replays.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { cleanupTemp, readJsonFile } from '../../lib/index.js';
import { systemClock, type Clock } from '../../lib/index.js';
import type { Logger } from '../../lib/index.js';
import { CoalescedWriter } from './json-store.js';

export type Severity = 'info' | 'warn' | 'error';

export interface EventInput {
  type: string;
  severity: Severity;
  detail?: Record<string, unknown>;
}

/** An event as queued and published: the contract's event plus `seq`. */
export interface OutboxEvent {
  readonly seq: number;
  readonly type: string;
  readonly severity: Severity;
  /** ISO 8601, from the box's clock when the event was added (may be off before NTP sync). */
  readonly ts: string;
  readonly detail?: Record<string, unknown>;
}

export const EVENTS_DROPPED = 'events_dropped';

export interface EventOutboxOptions {
  file: string;
  /** Most events kept (the marker counts as one). Default 500, at least 2. */
  max?: number;
  /** Milliseconds since the epoch for `ts`. Default: the clock's. */
  now?: () => number;
  /** Timers (the retry of a failed save). Default the system clock. */
  clock?: Clock;
  /** Resolves on PUBACK; rejects when offline or failed (the pump then waits for resume()). */
  publish: (event: OutboxEvent) => Promise<void>;
  /** A failed save is retried after this long. Default 5000 ms. */
  retryMs?: number;
  /** An event whose JSON is larger is refused. Default 16 KiB. */
  maxEventBytes?: number;
  mode?: number;
  log?: Pick<Logger, 'warn'>;
}

interface OutboxFile {
  v: 1;
  stream: string;
  nextSeq: number;
  events: OutboxEvent[];
}

const SEVERITIES: readonly string[] = ['info', 'warn', 'error'];
const noLog: Pick<Logger, 'warn'> = { warn: () => undefined };

export class EventOutbox {
  private readonly max: number;
  private readonly maxEventBytes: number;
  private readonly clock: Clock;
  private readonly now: () => number;
  private readonly log: Pick<Logger, 'warn'>;
  private readonly writer: CoalescedWriter<OutboxFile>;
  /** Event objects (immutable) that are in a save that reached the disk: only these are sent. */
  private readonly durable = new WeakSet<OutboxEvent>();
  private queue: OutboxEvent[] = [];
  private nextSeq = 1;
  private streamId = '';
  private loaded = false;
  private stopped = false;
  private paused = false;
  private pumping = false;
  private inFlight: OutboxEvent | null = null;
  /**
   * The head found on disk at load: it may already have reached the hub (a crash between
   * its PUBACK and the save of its removal). It is sent again as it is, never folded into
   * an events_dropped marker first: a marker with an already-seen seq is dropped by the hub,
   * and the events it says were lost would go unreported (found by the power-cut test).
   */
  private resentHead: OutboxEvent | null = null;
  private retryTimer: unknown = null;

  constructor(private readonly opts: EventOutboxOptions) {
    this.max = opts.max ?? 500;
    if (!Number.isInteger(this.max) || this.max < 2) throw new RangeError(`EventOutbox max must be an integer ≥ 2, got ${opts.max}`);
    this.maxEventBytes = opts.maxEventBytes ?? 16 * 1024;
    this.clock = opts.clock ?? systemClock;
    this.now = opts.now ?? (() => this.clock.now());
    this.log = opts.log ?? noLog;
    this.writer = new CoalescedWriter<OutboxFile>({
      file: opts.file,
      mode: opts.mode,
      snapshot: () => ({ v: 1, stream: this.streamId, nextSeq: this.nextSeq, events: [...this.queue] }),
      encode: (s) => JSON.stringify(s),
      written: (s) => {
        for (const e of s.events) this.durable.add(e);
        this.kick();
      },
    });
  }

  /** The id of this box's seq counter (see the module comment). */
  get stream(): string {
    return this.streamId;
  }

  /** Reads the queue (a corrupt file is moved aside, the queue starts empty) and starts delivering. */
  async load(): Promise<void> {
    if (this.loaded) throw new Error('EventOutbox.load() called twice');
    const file = this.opts.file;
    await cleanupTemp(path.dirname(file), path.basename(file));
    const saved = await readJsonFile(file, {
      maxBytes: this.max * (this.maxEventBytes + 256) + 4096,
      decode: decodeOutboxFile,
      quarantine: true,
      now: this.now,
      onQuarantine: (err, movedTo) =>
        this.log.warn({ evt: 'outbox_quarantined', file, movedTo, reason: err.reason }, 'event outbox file was corrupt; moved aside, starting empty'),
    });
    if (saved) {
      this.streamId = saved.stream;
      this.nextSeq = saved.nextSeq;
      this.queue = saved.events.map((e) => Object.freeze(e));
      for (const e of this.queue) this.durable.add(e);
      this.resentHead = this.queue[0] ?? null;
    } else {
      this.streamId = randomBytes(8).toString('hex');
    }
    this.loaded = true;
    if (this.enforceMax() > 0) this.save().catch(() => undefined);
    this.kick();
  }

  /**
   * Queues an event. Resolves with it (seq and ts assigned) once it is on disk. Rejects
   * when the event is invalid (nothing queued) or when the save failed: then the event
   * is queued in memory only, saved by the next successful save (retried every
   * `retryMs`), and sent only after that; a crash before then loses it.
   */
  async add(input: EventInput): Promise<OutboxEvent> {
    if (!this.loaded) throw new Error('EventOutbox: load() before add()');
    const event = this.makeEvent(input);
    this.queue.push(event);
    this.nextSeq += 1;
    this.enforceMax();
    await this.save();
    return event;
  }

  /** Events waiting (the events_dropped marker counts as one). */
  pending(): number {
    return this.queue.length;
  }

  /** Delivery failed earlier and waits for resume(). */
  isPaused(): boolean {
    return this.paused;
  }

  /** The link is back: send what is waiting. */
  resume(): void {
    if (!this.loaded || this.stopped) return;
    this.paused = false;
    this.kick();
  }

  /**
   * Stops delivering and cancels the save retry, then waits for saves in flight. A
   * publish in flight is not waited for. add() still saves after stop(), so events
   * raised during shutdown are sent after the next start.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.writer.idle();
  }

  private makeEvent(input: EventInput): OutboxEvent {
    if (typeof input !== 'object' || input === null) throw new TypeError('event: must be an object');
    const { type, severity, detail } = input;
    if (typeof type !== 'string' || type.length === 0 || type.length > 64) throw new TypeError('event.type: must be a string of 1..64 characters');
    if (type === EVENTS_DROPPED) throw new TypeError(`event.type: "${EVENTS_DROPPED}" is reserved for the outbox`);
    if (!SEVERITIES.includes(severity)) throw new TypeError('event.severity: must be info, warn or error');
    if (detail !== undefined && !isPlainObject(detail)) throw new TypeError('event.detail: must be an object');
    const event: OutboxEvent = { seq: this.nextSeq, type, severity, ts: new Date(this.now()).toISOString() };
    // A JSON copy: what is queued is exactly what will be saved and sent, and the caller
    // cannot change it afterwards.
    const full = detail === undefined ? event : { ...event, detail: JSON.parse(JSON.stringify(detail)) as Record<string, unknown> };
    const bytes = Buffer.byteLength(JSON.stringify(full));
    if (bytes > this.maxEventBytes) throw new RangeError(`event "${type}": ${bytes} bytes of JSON, more than the ${this.maxEventBytes} allowed`);
    return Object.freeze(full);
  }

  /** Drops the oldest undelivered events into one marker until the queue fits; returns how many were dropped. */
  private enforceMax(): number {
    let dropped = 0;
    while (this.queue.length > this.max) {
      const head = this.queue[0];
      const i = head !== undefined && (head === this.inFlight || head === this.resentHead) ? 1 : 0;
      const first = this.queue[i];
      const victim = this.queue[i + 1];
      if (!first || !victim) break; // cannot happen with max ≥ 2
      const range = droppedRange(first);
      if (!range) {
        // Turn the oldest event into a marker for itself (same length), then merge the next one into it.
        this.queue[i] = marker(first.seq, first.seq, 1, new Date(this.now()).toISOString());
        dropped += 1;
        continue;
      }
      const v = droppedRange(victim) ?? { count: 1, firstSeq: victim.seq, lastSeq: victim.seq };
      this.queue.splice(i, 2, marker(range.firstSeq, v.lastSeq, range.count + v.count, first.ts));
      dropped += v.count;
    }
    if (dropped > 0) this.log.warn({ evt: 'events_dropped', count: dropped, max: this.max }, 'event outbox full: oldest events dropped');
    return dropped;
  }

  private save(): Promise<void> {
    return this.writer.write().catch((e: unknown) => {
      this.scheduleRetry(e);
      throw e;
    });
  }

  private scheduleRetry(e: unknown): void {
    if (this.retryTimer !== null || this.stopped) return;
    const retryMs = this.opts.retryMs ?? 5000;
    this.log.warn({ evt: 'outbox_save_failed', file: this.opts.file, err: e, retryMs }, 'could not save the event outbox; retrying');
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      this.save().catch(() => undefined);
    }, retryMs);
  }

  private kick(): void {
    if (!this.pumping && this.loaded) void this.pump();
  }

  /** Sends the oldest saved event, waits for its PUBACK, saves its removal, repeats. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (!this.paused && !this.stopped) {
        const head = this.queue[0];
        if (!head || !this.durable.has(head)) return; // the save that writes it kicks us again
        this.inFlight = head;
        try {
          await this.opts.publish(head);
        } catch {
          this.paused = true;
          return;
        } finally {
          this.inFlight = null;
        }
        const i = this.queue.indexOf(head);
        if (i >= 0) this.queue.splice(i, 1);
        if (head === this.resentHead) this.resentHead = null;
        // A crash before this save completes resends `head` after the restart: the only duplicate.
        await this.save().catch(() => undefined);
      }
    } finally {
      this.pumping = false;
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function marker(firstSeq: number, lastSeq: number, count: number, ts: string): OutboxEvent {
  return Object.freeze({ seq: firstSeq, type: EVENTS_DROPPED, severity: 'warn', ts, detail: { count, firstSeq, lastSeq } });
}

function droppedRange(e: OutboxEvent): { count: number; firstSeq: number; lastSeq: number } | null {
  if (e.type !== EVENTS_DROPPED || !e.detail) return null;
  const { count, firstSeq, lastSeq } = e.detail;
  if (typeof count !== 'number' || typeof firstSeq !== 'number' || typeof lastSeq !== 'number') return null;
  return { count, firstSeq, lastSeq };
}

/** The last seq an entry accounts for (a marker covers a range). */
function lastSeqOf(e: OutboxEvent): number {
  return droppedRange(e)?.lastSeq ?? e.seq;
}

function decodeOutboxFile(v: unknown): OutboxFile {
  if (!isPlainObject(v)) throw new Error('not an object');
  if (v.v !== 1) throw new Error(`v: unknown version ${JSON.stringify(v.v)}`);
  if (typeof v.stream !== 'string' || !/^[0-9a-f]{1,64}$/.test(v.stream)) throw new Error('stream: not a hex id');
  const nextSeq = v.nextSeq;
  if (typeof nextSeq !== 'number' || !Number.isSafeInteger(nextSeq) || nextSeq < 1) throw new Error('nextSeq: not a positive integer');
  if (!Array.isArray(v.events)) throw new Error('events: not an array');
  const events: OutboxEvent[] = [];
  let after = 0;
  v.events.forEach((e: unknown, i: number) => {
    const at = `events[${i}]`;
    if (!isPlainObject(e)) throw new Error(`${at}: not an object`);
    const { seq, type, severity, ts, detail } = e;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= after) throw new Error(`${at}.seq: not an integer above ${after}`);
    if (typeof type !== 'string' || type.length === 0) throw new Error(`${at}.type: not a string`);
    if (typeof severity !== 'string' || !SEVERITIES.includes(severity)) throw new Error(`${at}.severity: not info, warn or error`);
    if (typeof ts !== 'string') throw new Error(`${at}.ts: not a string`);
    if (detail !== undefined && !isPlainObject(detail)) throw new Error(`${at}.detail: not an object`);
    const event: OutboxEvent = { seq, type, severity: severity as Severity, ts, ...(detail === undefined ? {} : { detail }) };
    if (type === EVENTS_DROPPED && !droppedRange(event)) throw new Error(`${at}.detail: not an events_dropped range`);
    after = lastSeqOf(event);
    events.push(event);
  });
  if (after >= nextSeq) throw new Error(`nextSeq: ${nextSeq} is not above the last queued seq ${after}`);
  return { v: 1, stream: v.stream, nextSeq, events };
}
