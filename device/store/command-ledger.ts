/**
 * The command ledger: "the same id again (QoS 1 redelivers) returns the first reply and
 * does not run twice" (CONTRACT.md), within one run and across restarts.
 *
 *   const b = ledger.begin(cmd.id);
 *   if (b.kind === 'done') return publish(b.reply);           // answered before
 *   if (b.kind === 'running') return publish(await b.done);   // same id in flight: same reply
 *   await b.started;                                          // the start mark is on disk
 *   const reply = await run(cmd);                              // errors turned into a reply too
 *   await ledger.complete(cmd.id, reply);                      // then publish it
 *
 * `begin` decides synchronously, so two arrivals of one id in the same tick cannot both
 * run. `complete` must be called for every `new`, with the error reply if the action
 * failed, or later arrivals of that id wait forever. An action whose effect outlives the
 * process (reboot, the OTA switch) must `complete` before that effect, so that the
 * redelivered command after the reboot finds its reply instead of rebooting again.
 *
 * Interrupted commands. A command is marked `started` on disk before it runs. If the box
 * dies before `complete` (power cut, crash, kill), the restarted ledger answers that id
 * with a `failed` reply, "interrupted by a restart; not run again", and does not run it.
 * Re-running instead was rejected because the commands that kill a box mid-run are the
 * ones that would kill it again: an OTA install that crashes the agent, a selftest that
 * hangs a driver, a command that runs the box out of memory. With re-run, the broker's
 * redelivery turns such a command into a crash loop that bricks the box until someone
 * visits; with "not run again" the hub gets a definite answer and can send the command
 * anew, under a new id, when it really wants it repeated. Commands that matter as desired
 * state need no re-run anyway: the retained group meeting re-joins a box by itself.
 *
 * Bounded by count: past `max` entries the oldest answered ones are forgotten (a command
 * still running is never forgotten). A reply whose JSON is over `maxReplyBytes` (a long
 * `logs` reply) is kept in memory but saved without its body: after a restart, that id
 * is answered with a stand-in reply saying so, and still not run again.
 */
import path from 'node:path';
import { cleanupTemp, readJsonFile } from '../../lib/index.js';
import type { Logger } from '../../lib/index.js';
import { CoalescedWriter } from './json-store.js';

/** The reply a command got: any JSON object (the agent passes its reply envelope type as R). */
export type Reply = Record<string, unknown>;

export type LedgerDecision<R extends object = Reply> =
  /** Run it. `started` settles once the start mark is on disk, or writing it failed (run anyway). */
  | { kind: 'new'; started: Promise<void> }
  /** The same id is running now: answer with its reply when it comes. */
  | { kind: 'running'; done: Promise<R> }
  /** Answered before: send this reply again. */
  | { kind: 'done'; reply: R };

/** Why the ledger answers with a stand-in reply rather than the command's own. */
export type StandInReason = 'interrupted' | 'reply_not_kept';

export const STAND_IN_MESSAGES: Readonly<Record<StandInReason, string>> = {
  interrupted: 'interrupted by a restart; not run again',
  reply_not_kept: 'already run before a restart; its reply was too large to keep, not run again',
};

export interface CommandLedgerOptions<R extends object> {
  file: string;
  /** Most ids remembered. Default 1000. */
  max?: number;
  /** Milliseconds since the epoch, for the entries' times. Default Date.now. */
  now?: () => number;
  /** Replies over this many bytes of JSON are saved without their body. Default 32 KiB. */
  maxReplyBytes?: number;
  /**
   * Builds the reply for an id the ledger cannot answer with the command's own reply.
   * Default `{id, ok: false, error: {code: "failed", message}}`; pass one that builds the
   * full reply envelope (deviceId, command) when R needs it.
   */
  standIn?: (id: string, why: StandInReason) => R;
  mode?: number;
  log?: Pick<Logger, 'warn'>;
}

interface Deferred<R> {
  promise: Promise<R>;
  resolve: (r: R) => void;
}

type Entry<R> =
  | { state: 'started'; at: number; done: Deferred<R> }
  /** `reply` null: answered before a restart with a reply too large to keep. */
  | { state: 'done'; at: number; reply: R | null; keep: boolean };

type SavedEntry = { id: string; at: number; state: 'started' } | { id: string; at: number; state: 'done'; reply: Reply | null };

interface LedgerFile {
  v: 1;
  entries: SavedEntry[];
}

const noLog: Pick<Logger, 'warn'> = { warn: () => undefined };

export class CommandLedger<R extends object = Reply> {
  private readonly max: number;
  private readonly maxReplyBytes: number;
  private readonly now: () => number;
  private readonly standIn: (id: string, why: StandInReason) => R;
  private readonly log: Pick<Logger, 'warn'>;
  private readonly writer: CoalescedWriter<LedgerFile>;
  /** In arrival order (Map keeps insertion order; updating an entry keeps its place). */
  private readonly entries = new Map<string, Entry<R>>();
  private loaded = false;

  constructor(private readonly opts: CommandLedgerOptions<R>) {
    this.max = opts.max ?? 1000;
    if (!Number.isInteger(this.max) || this.max < 1) throw new RangeError(`CommandLedger max must be a positive integer, got ${opts.max}`);
    this.maxReplyBytes = opts.maxReplyBytes ?? 32 * 1024;
    this.now = opts.now ?? Date.now;
    // The default is the contract's reply minus deviceId/command; R = Reply accepts it.
    this.standIn = opts.standIn ?? ((id, why) => ({ id, ok: false, error: { code: 'failed', message: STAND_IN_MESSAGES[why] } }) as unknown as R);
    this.log = opts.log ?? noLog;
    this.writer = new CoalescedWriter<LedgerFile>({
      file: opts.file,
      mode: opts.mode,
      snapshot: () => ({ v: 1, entries: [...this.entries].map(([id, e]) => saved(id, e)) }),
      encode: (s) => JSON.stringify(s),
    });
  }

  /** Reads the ledger; ids that started but never completed become answered "interrupted". */
  async load(): Promise<void> {
    if (this.loaded) throw new Error('CommandLedger.load() called twice');
    const file = this.opts.file;
    await cleanupTemp(path.dirname(file), path.basename(file));
    const data = await readJsonFile(file, {
      maxBytes: this.max * (this.maxReplyBytes + 256) + 4096,
      decode: decodeLedgerFile,
      quarantine: true,
      onQuarantine: (err, movedTo) =>
        this.log.warn({ evt: 'ledger_quarantined', file, movedTo, reason: err.reason }, 'command ledger was corrupt; moved aside, starting empty (a redelivered command may run again)'),
    });
    let interrupted = 0;
    for (const e of data?.entries ?? []) {
      if (e.state === 'started') {
        interrupted += 1;
        this.entries.set(e.id, { state: 'done', at: e.at, reply: this.standIn(e.id, 'interrupted'), keep: true });
      } else {
        this.entries.set(e.id, { state: 'done', at: e.at, reply: e.reply as R | null, keep: e.reply !== null });
      }
    }
    this.loaded = true;
    this.evict();
    if (interrupted > 0) {
      this.log.warn({ evt: 'commands_interrupted', count: interrupted }, 'commands interrupted by a restart will be answered failed, not run again');
      await this.writer.write().catch((e: unknown) => this.saveFailed(e));
    }
  }

  begin(id: string): LedgerDecision<R> {
    if (!this.loaded) throw new Error('CommandLedger: load() before begin()');
    const e = this.entries.get(id);
    if (e?.state === 'done') return { kind: 'done', reply: e.reply ?? this.standIn(id, 'reply_not_kept') };
    if (e?.state === 'started') return { kind: 'running', done: e.done.promise };
    this.entries.set(id, { state: 'started', at: this.now(), done: deferred<R>() });
    this.evict();
    return { kind: 'new', started: this.writer.write().catch((err: unknown) => this.saveFailed(err)) };
  }

  /**
   * Records the reply of `id` and resolves once it is on disk; whoever waits on the same
   * id gets it at once. The first reply wins: completing an answered id changes nothing.
   * Never rejects: when the save fails (logged), the reply still holds in memory for this
   * run, and the caller must publish it all the same (every command gets its reply).
   */
  async complete(id: string, reply: R): Promise<void> {
    if (!this.loaded) throw new Error('CommandLedger: load() before complete()');
    const e = this.entries.get(id);
    if (e?.state === 'done') return;
    const json = JSON.stringify(reply);
    const copy = JSON.parse(json) as R;
    this.entries.set(id, { state: 'done', at: e?.at ?? this.now(), reply: copy, keep: Buffer.byteLength(json) <= this.maxReplyBytes });
    if (!e) this.evict();
    e?.done.resolve(copy);
    await this.writer.write().catch((err: unknown) => this.saveFailed(err));
  }

  /** Ids remembered (running and answered). */
  size(): number {
    return this.entries.size;
  }

  /** Waits for saves in flight (the ledger has no timers). */
  async stop(): Promise<void> {
    await this.writer.idle();
  }

  private evict(): void {
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.max) return;
      if (e.state === 'done') this.entries.delete(id);
    }
  }

  private saveFailed(e: unknown): void {
    this.log.warn({ evt: 'ledger_save_failed', file: this.opts.file, err: e }, 'could not save the command ledger');
  }
}

function deferred<R>(): Deferred<R> {
  let resolve!: (r: R) => void;
  const promise = new Promise<R>((res) => (resolve = res));
  return { promise, resolve };
}

function saved<R extends object>(id: string, e: Entry<R>): SavedEntry {
  if (e.state === 'started') return { id, at: e.at, state: 'started' };
  return { id, at: e.at, state: 'done', reply: e.keep ? (e.reply as Reply | null) : null };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeLedgerFile(v: unknown): LedgerFile {
  if (!isObject(v)) throw new Error('not an object');
  if (v.v !== 1) throw new Error(`v: unknown version ${JSON.stringify(v.v)}`);
  if (!Array.isArray(v.entries)) throw new Error('entries: not an array');
  const entries = v.entries.map((e: unknown, i: number): SavedEntry => {
    const at = `entries[${i}]`;
    if (!isObject(e)) throw new Error(`${at}: not an object`);
    if (typeof e.id !== 'string' || e.id.length === 0) throw new Error(`${at}.id: not a string`);
    if (typeof e.at !== 'number' || !Number.isFinite(e.at)) throw new Error(`${at}.at: not a number`);
    if (e.state === 'started') return { id: e.id, at: e.at, state: 'started' };
    if (e.state !== 'done') throw new Error(`${at}.state: not started or done`);
    if (e.reply !== null && !isObject(e.reply)) throw new Error(`${at}.reply: not an object or null`);
    return { id: e.id, at: e.at, state: 'done', reply: e.reply };
  });
  return { v: 1, entries };
}
