/**
 * The command ledger: "the same id again (QoS 1 redelivers) returns the first reply and
 * does not run twice" (CONTRACT.md), within one run and across restarts.
 *
 *   const b = ledger.begin(cmd.id, 'join');
 *   if (b.kind === 'done') return publish(b.reply);           // answered before
 *   if (b.kind === 'running') return publish(await b.done);   // same id in flight: same reply
 *   await b.started;                                          // the start mark is on disk
 *   const reply = await run(cmd);                              // errors turned into a reply too
 *   await ledger.complete(cmd.id, reply);                      // then publish it
 *
 * A command refused without running (bad request, unknown command, expired) is recorded
 * with `answer()`: its id is answered, and a later arrival of that id, whatever it
 * carries, gets that first reply again. One rule, no exceptions: an id is answered once.
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
 * ones that would kill it again (an OTA install that crashes the agent, a selftest that
 * hangs a driver): with re-run, the broker's redelivery turns such a command into a crash
 * loop; with "not run again" the hub gets a definite answer and can send it anew, under a
 * new id. Commands that matter as desired state need no re-run: the retained group
 * meeting re-joins a box by itself.
 *
 * Bounds (device/limits.ts). At most `maxIds` ids (the oldest answered ones are forgotten;
 * a running one never is). Reply bodies are kept, all together, up to `maxBodyBytes`
 * (oldest first out, large ones before small ones); a body over `diskReplyBytes` is never
 * written to disk and is kept in memory for `bigReplyMs` only. Past that an answered id
 * keeps its size and SHA-256 digest, and a duplicate of it gets a `failed` stand-in reply
 * that says so, naming the digest — and is still not run again.
 *
 * On disk: an append-only journal (journal.ts), one line per start and per answer, with
 * group commit; it is rewritten (compacted) at load and when it holds `journalSlackLines`
 * more lines than ids. The cost per command is an append, not a rewrite of the ledger.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { rename } from 'node:fs/promises';
import { CorruptFileError, cleanupTemp, isCorruptFileError } from '../../lib/index.js';
import type { Logger } from '../../lib/index.js';
import { LIMITS } from '../limits.js';
import { Journal } from './journal.js';

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

export interface StandInFacts {
  id: string;
  /** The command the id first came with. */
  command: string;
  why: StandInReason;
  /** For reply_not_kept: the first reply's size and SHA-256 (hex, first 16 digits). */
  bytes?: number;
  digest?: string;
}

export function standInMessage(f: StandInFacts): string {
  if (f.why === 'interrupted') return 'interrupted by a restart; not run again';
  return `already answered (a ${f.bytes ?? '?'}-byte reply, sha256 ${f.digest ?? '?'}…) and that reply is no longer kept; not run again`;
}

export interface CommandLedgerOptions<R extends object> {
  /** The journal file. */
  file: string;
  maxIds?: number;
  maxBodyBytes?: number;
  diskReplyBytes?: number;
  bigReplyMs?: number;
  journalSlackLines?: number;
  /** Milliseconds since the epoch, for the entries' times. Default Date.now. */
  now?: () => number;
  /**
   * Builds the reply for an id the ledger cannot answer with the command's own reply.
   * Default `{id, command, ok: false, error: {code: "failed", message}}`.
   */
  standIn?: (f: StandInFacts) => R;
  mode?: number;
  log?: Pick<Logger, 'warn'>;
}

interface Deferred<R> {
  promise: Promise<R>;
  resolve: (r: R) => void;
}

type Entry<R> =
  | { state: 'started'; at: number; command: string; done: Deferred<R> }
  /** `json` null: the body is no longer kept (bytes and digest remain). */
  | { state: 'done'; at: number; command: string; json: string | null; bytes: number; digest: string; onDisk: boolean };

/** Journal lines: a start mark, or an answer (with the body when it is kept on disk). */
type Line = { s: 'start'; id: string; at: number; c: string } | { s: 'done'; id: string; at: number; c: string; n: number; d: string; r?: Reply };

const noLog: Pick<Logger, 'warn'> = { warn: () => undefined };
/** A journal line is at most a kept body plus its envelope; the file is compacted well before this. */
const lineOverhead = 256;

export class CommandLedger<R extends object = Reply> {
  private readonly max: number;
  private readonly maxBodyBytes: number;
  private readonly diskReplyBytes: number;
  private readonly bigReplyMs: number;
  private readonly slack: number;
  private readonly now: () => number;
  private readonly standIn: (f: StandInFacts) => R;
  private readonly log: Pick<Logger, 'warn'>;
  private readonly journal: Journal;
  /** In arrival order (Map keeps insertion order; updating an entry keeps its place). */
  private readonly entries = new Map<string, Entry<R>>();
  private bodyBytes = 0;
  private loaded = false;

  constructor(private readonly opts: CommandLedgerOptions<R>) {
    this.max = opts.maxIds ?? LIMITS.ledgerIds;
    if (!Number.isInteger(this.max) || this.max < 1) throw new RangeError(`CommandLedger maxIds must be a positive integer, got ${opts.maxIds}`);
    this.maxBodyBytes = opts.maxBodyBytes ?? LIMITS.ledgerBodyBytes;
    this.diskReplyBytes = opts.diskReplyBytes ?? LIMITS.ledgerDiskReplyBytes;
    this.bigReplyMs = opts.bigReplyMs ?? LIMITS.ledgerBigReplyMs;
    this.slack = opts.journalSlackLines ?? LIMITS.ledgerJournalSlackLines;
    this.now = opts.now ?? Date.now;
    this.standIn = opts.standIn ?? ((f) => ({ id: f.id, command: f.command, ok: false, error: { code: 'failed', message: standInMessage(f) } }) as unknown as R);
    this.log = opts.log ?? noLog;
    const maxBytes = (this.max + this.slack) * (this.diskReplyBytes + lineOverhead) + 4096;
    this.journal = new Journal({ file: opts.file, kind: 'command-ledger', maxBytes, ...(opts.mode !== undefined ? { mode: opts.mode } : {}) });
  }

  /** Reads the journal; ids that started but never completed become answered "interrupted". */
  async load(): Promise<void> {
    if (this.loaded) throw new Error('CommandLedger.load() called twice');
    const file = this.opts.file;
    await cleanupTemp(path.dirname(file), path.basename(file));
    let lines: Line[] = [];
    try {
      const r = await this.journal.load();
      try {
        lines = r.records.map((l, i) => decodeLine(l, i + 2));
      } catch (e) {
        throw new CorruptFileError(file, (e as Error).message);
      }
      if (r.tornTail) this.log.warn({ evt: 'ledger_torn_tail', file }, 'the command ledger ended in a torn line (power cut mid-write); dropped it');
    } catch (e) {
      if (!isCorruptFileError(e)) throw e;
      const movedTo = `${file}.corrupt-${this.now()}`;
      await rename(file, movedTo);
      this.log.warn({ evt: 'ledger_quarantined', file, movedTo, reason: e.reason }, 'command ledger was corrupt; moved aside, starting empty (a redelivered command may run again)');
    }
    for (const l of lines) this.replay(l);
    let interrupted = 0;
    for (const [id, e] of this.entries) {
      if (e.state !== 'started') continue;
      interrupted += 1;
      this.entries.delete(id); // re-added at its place below: Map.set on an existing key keeps the order
      this.setDone(id, e.at, e.command, this.standIn({ id, command: e.command, why: 'interrupted' }));
    }
    this.loaded = true;
    this.evict();
    if (interrupted > 0) this.log.warn({ evt: 'commands_interrupted', count: interrupted }, 'commands interrupted by a restart will be answered failed, not run again');
    // Always start from a compact journal: it also drops a torn tail before the next append.
    await this.journal.compactWith(() => this.snapshot()).catch((e: unknown) => this.saveFailed(e));
  }

  /** What the ledger knows of `id`, changing nothing. */
  peek(id: string): Exclude<LedgerDecision<R>, { kind: 'new' }> | { kind: 'unknown' } {
    this.mustBeLoaded();
    const e = this.entries.get(id);
    if (!e) return { kind: 'unknown' };
    if (e.state === 'started') return { kind: 'running', done: e.done.promise };
    return { kind: 'done', reply: this.replyOf(id, e) };
  }

  begin(id: string, command: string): LedgerDecision<R> {
    const known = this.peek(id);
    if (known.kind !== 'unknown') return known;
    const at = this.now();
    this.entries.set(id, { state: 'started', at, command, done: deferred<R>() });
    this.evict();
    return { kind: 'new', started: this.append({ s: 'start', id, at, c: command }) };
  }

  /**
   * Records the reply of `id` and resolves once it is on disk; whoever waits on the same
   * id gets it at once. The first reply wins: completing an answered id changes nothing.
   * Never rejects: when the save fails (logged), the reply still holds in memory for this
   * run, and the caller must publish it all the same (every command gets its reply).
   */
  async complete(id: string, reply: R): Promise<void> {
    this.mustBeLoaded();
    const e = this.entries.get(id);
    if (e?.state === 'done') return;
    const copy = this.setDone(id, e?.at ?? this.now(), e?.command ?? String((reply as { command?: unknown }).command ?? ''), reply);
    if (!e) this.evict();
    if (e?.state === 'started') e.done.resolve(copy.reply);
    await copy.saved;
  }

  /**
   * An id answered without running (refused). Returns the reply to send: this one, or the
   * first reply when the id was answered before (or the running command's, when it ends).
   */
  answer(id: string, command: string, reply: R): { reply: R; saved: Promise<void> } | { running: Promise<R> } {
    const known = this.peek(id);
    if (known.kind === 'done') return { reply: known.reply, saved: Promise.resolve() };
    if (known.kind === 'running') return { running: known.done };
    const r = this.setDone(id, this.now(), command, reply);
    this.evict();
    return r;
  }

  /** Ids remembered (running and answered), and the bytes of reply bodies kept. */
  size(): number {
    return this.entries.size;
  }

  keptBodyBytes(): number {
    return this.bodyBytes;
  }

  /** Waits for saves in flight (the ledger has no timers). */
  async stop(): Promise<void> {
    await this.journal.close();
  }

  private setDone(id: string, at: number, command: string, reply: R): { reply: R; saved: Promise<void> } {
    const json = JSON.stringify(reply);
    const bytes = Buffer.byteLength(json);
    const digest = createHash('sha256').update(json).digest('hex').slice(0, 16);
    const onDisk = bytes <= this.diskReplyBytes;
    const old = this.entries.get(id);
    if (old?.state === 'done' && old.json !== null) this.bodyBytes -= old.json.length;
    this.entries.set(id, { state: 'done', at, command, json, bytes, digest, onDisk });
    this.bodyBytes += json.length;
    this.trimBodies();
    const line = `{"s":"done","id":${JSON.stringify(id)},"at":${at},"c":${JSON.stringify(command)},"n":${bytes},"d":"${digest}"${onDisk ? `,"r":${json}` : ''}}`;
    return { reply: JSON.parse(json) as R, saved: this.appendRaw(line) };
  }

  private replyOf(id: string, e: Extract<Entry<R>, { state: 'done' }>): R {
    if (e.json !== null && !e.onDisk && this.now() - e.at > this.bigReplyMs) this.dropBody(e);
    if (e.json !== null) return JSON.parse(e.json) as R;
    return this.standIn({ id, command: e.command, why: 'reply_not_kept', bytes: e.bytes, digest: e.digest });
  }

  private dropBody(e: Extract<Entry<R>, { state: 'done' }>): void {
    if (e.json === null) return;
    this.bodyBytes -= e.json.length;
    e.json = null;
    e.onDisk = false;
  }

  /** Keeps the bodies within the budget: expired big ones, then big ones, then the oldest. */
  private trimBodies(): void {
    if (this.bodyBytes <= this.maxBodyBytes) return;
    const now = this.now();
    for (const pass of ['expired', 'big', 'any'] as const) {
      for (const e of this.entries.values()) {
        if (this.bodyBytes <= this.maxBodyBytes) return;
        if (e.state !== 'done' || e.json === null) continue;
        if (pass === 'expired' && (e.onDisk || now - e.at <= this.bigReplyMs)) continue;
        if (pass === 'big' && e.onDisk) continue;
        this.dropBody(e);
      }
    }
  }

  private evict(): void {
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.max) return;
      if (e.state !== 'done') continue;
      this.dropBody(e);
      this.entries.delete(id);
    }
  }

  private replay(l: Line): void {
    if (l.s === 'start') {
      this.entries.set(l.id, { state: 'started', at: l.at, command: l.c, done: deferred<R>() });
      return;
    }
    const json = l.r === undefined ? null : JSON.stringify(l.r);
    const old = this.entries.get(l.id);
    if (old?.state === 'done' && old.json !== null) this.bodyBytes -= old.json.length;
    this.entries.set(l.id, { state: 'done', at: l.at, command: l.c, json, bytes: l.n, digest: l.d, onDisk: json !== null });
    if (json !== null) this.bodyBytes += json.length;
    this.trimBodies();
  }

  private snapshot(): string[] {
    const out: string[] = [];
    for (const [id, e] of this.entries) {
      if (e.state === 'started') out.push(JSON.stringify({ s: 'start', id, at: e.at, c: e.command }));
      else out.push(`{"s":"done","id":${JSON.stringify(id)},"at":${e.at},"c":${JSON.stringify(e.command)},"n":${e.bytes},"d":"${e.digest}"${e.onDisk && e.json !== null ? `,"r":${e.json}` : ''}}`);
    }
    return out;
  }

  private append(l: Line): Promise<void> {
    return this.appendRaw(JSON.stringify(l));
  }

  private appendRaw(line: string): Promise<void> {
    const saved = this.journal.append(line).catch((e: unknown) => this.saveFailed(e));
    if (this.journal.size.lines > this.entries.size + this.slack) void this.journal.compactWith(() => this.snapshot()).catch((e: unknown) => this.saveFailed(e));
    return saved;
  }

  private mustBeLoaded(): void {
    if (!this.loaded) throw new Error('CommandLedger: load() before use');
  }

  private saveFailed(e: unknown): void {
    // The next save rewrites the whole ledger: lines lost with a failed append come back.
    if (this.loaded) void this.journal.compactWith(() => this.snapshot()).catch(() => undefined);
    this.log.warn({ evt: 'ledger_save_failed', file: this.opts.file, err: e }, 'could not save the command ledger');
  }
}

function deferred<R>(): Deferred<R> {
  let resolve!: (r: R) => void;
  const promise = new Promise<R>((res) => (resolve = res));
  return { promise, resolve };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeLine(v: unknown, lineNo: number): Line {
  const at = `line ${lineNo}`;
  if (!isObject(v)) throw new Error(`${at}: not an object`);
  if (typeof v.id !== 'string' || v.id.length === 0) throw new Error(`${at}.id: not a string`);
  if (typeof v.at !== 'number' || !Number.isFinite(v.at)) throw new Error(`${at}.at: not a number`);
  if (typeof v.c !== 'string') throw new Error(`${at}.c: not a string`);
  if (v.s === 'start') return { s: 'start', id: v.id, at: v.at, c: v.c };
  if (v.s !== 'done') throw new Error(`${at}.s: not start or done`);
  if (typeof v.n !== 'number' || typeof v.d !== 'string') throw new Error(`${at}: no size or digest`);
  if (v.r !== undefined && !isObject(v.r)) throw new Error(`${at}.r: not an object`);
  return { s: 'done', id: v.id, at: v.at, c: v.c, n: v.n, d: v.d, ...(v.r !== undefined ? { r: v.r } : {}) };
}
