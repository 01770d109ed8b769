/**
 * Transport only translates: an incoming command is size-capped, parsed,
 * validated, deduplicated by id, checked for expiry, handed to ONE action, and answered
 * with exactly one reply — on the box's reply topic and, for MQTT 5, on the command's
 * response topic with its correlation data. Actions know nothing of topics.
 */
import { systemClock, type Clock } from '../../lib/index.js';
import { silentLogger, type Logger } from '../../lib/index.js';
import { DecodeError, MAX_PAYLOAD_BYTES, readCommandId, responseTargetProblem, type Contract } from '../contract/index.js';
import { joinSpecSchema, nextMeetingSchema, parseIncoming, type CommandName } from '../contract/index.js';
import { BusyError, ExpiredError, UnknownCommandError, toReplyError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { fitReply } from './reply-fit.js';
import type { JoinSpec, NextMeeting, Reply } from '../contract/index.js';
import type { IncomingMessage } from './session.js';

/** The part of CommandLedger the router uses (device/store/command-ledger.ts says how). */
export interface CommandLedgerLike {
  peek(id: string): { kind: 'unknown' } | { kind: 'running'; done: Promise<Record<string, unknown>> } | { kind: 'done'; reply: Record<string, unknown> };
  begin(id: string, command: string): { kind: 'new'; started: Promise<void> } | { kind: 'running'; done: Promise<Record<string, unknown>> } | { kind: 'done'; reply: Record<string, unknown> };
  complete(id: string, reply: Record<string, unknown>): Promise<void>;
  answer(id: string, command: string, reply: Record<string, unknown>): { reply: Record<string, unknown>; saved: Promise<void> } | { running: Promise<Record<string, unknown>> };
}

export type ActionRunner = (command: CommandName, args: unknown, id?: string) => Promise<Record<string, unknown>>;

export interface RouterDeps {
  deviceId: string;
  groupId: string;
  contract: Contract;
  ledger: CommandLedgerLike;
  run: ActionRunner;
  /** Publishes a reply; rejects when offline (the router keeps it for later). */
  publishReply: (reply: Reply, to: { responseTopic?: string; correlationData?: Buffer }) => Promise<void>;
  /** The retained group meeting, decoded and validated (null: the meeting ended). */
  onMeeting: (spec: JoinSpec | null) => Promise<void>;
  /** A retained meeting that failed validation, with every problem by path. */
  onBadMeeting: (problems: string) => Promise<void>;
  /** The retained next-meeting announcement, validated (null: none); a bad one is logged and ignored. Absent: ignored. */
  onNext?: (next: NextMeeting | null) => void;
  clock?: Clock;
  logger?: Logger;
}

interface Outgoing {
  reply: Reply;
  to: { responseTopic?: string; correlationData?: Buffer };
}

/** The command name as a reply or log line may carry it (an unknown one can be 64 KiB). */
export function commandLabel(name: string): string {
  return name.length > LIMITS.commandNameChars ? `${name.slice(0, LIMITS.commandNameChars - 1)}…` : name;
}

export class CommandRouter {
  private readonly clock: Clock;
  private readonly log: Logger;
  private unsent: Outgoing[] = [];
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly d: RouterDeps) {
    this.clock = d.clock ?? systemClock;
    this.log = (d.logger ?? silentLogger()).child({ module: 'commands' });
  }

  /** The next-meeting announcement: shown, never acted on, so a bad one is only logged. */
  private next(payload: Buffer): void {
    if (!this.d.onNext) return;
    if (payload.length === 0) return this.d.onNext(null);
    try {
      this.d.onNext(this.d.contract.check<NextMeeting>(this.d.contract.compile(nextMeetingSchema), this.d.contract.parseJson(payload, 'next'), 'next'));
    } catch (e) {
      this.log.warn({ evt: 'next.bad_retained', problems: (e as Error).message }, 'ignored an invalid next-meeting announcement');
    }
  }

  /** Decodes the retained group meeting at the edge; the meeting controller gets a typed spec. */
  private async meeting(payload: Buffer): Promise<void> {
    if (payload.length === 0) return this.d.onMeeting(null);
    let spec: JoinSpec;
    try {
      spec = this.d.contract.check<JoinSpec>(this.d.contract.compile(joinSpecSchema), this.d.contract.parseJson(payload, 'meeting'), 'meeting');
    } catch (e) {
      this.log.warn({ evt: 'meeting.bad_retained', problems: (e as Error).message }, 'ignored an invalid retained group meeting');
      return this.d.onBadMeeting((e as Error).message);
    }
    return this.d.onMeeting(spec);
  }

  /**
   * Resolves once the message is accepted (safe to PUBACK); the action may still run.
   * One rule for ids: an id is answered once. Whatever a later arrival of it carries (the
   * same command redelivered, another command, a bad payload) gets the first reply again,
   * unchanged, and nothing runs twice. A payload whose id cannot be read is answered with
   * id "" and not recorded.
   */
  async handle(m: IncomingMessage): Promise<void> {
    const incoming = parseIncoming(m.topic, this.d.deviceId, this.d.groupId);
    if (incoming.kind === 'meeting') return this.meeting(m.payload);
    if (incoming.kind === 'next') return this.next(m.payload);
    if (incoming.kind !== 'command') {
      this.log.debug({ evt: 'mqtt.ignored', topic: m.topic.slice(0, 200) }, 'ignored a message on an unexpected topic');
      return;
    }
    const command = commandLabel(incoming.command);
    const targetProblem = responseTargetProblem(m.responseTopic, m.correlationData, this.d.deviceId, { topicBytes: LIMITS.responseTopicBytes, correlationDataBytes: LIMITS.correlationDataBytes });
    // A response topic we refuse is never published to: the reply goes to the reply topic only.
    const to = targetProblem ? {} : { ...(m.responseTopic ? { responseTopic: m.responseTopic } : {}), ...(m.correlationData ? { correlationData: m.correlationData } : {}) };
    const id = readCommandId(m.payload, MAX_PAYLOAD_BYTES) ?? '';
    // Replies are never awaited here: handle() runs inside MQTT.js's handleMessage, which
    // holds every later incoming packet (the reply's own PUBACK too) until it resolves.
    if (id && this.answeredBefore(id, command, to)) return;

    let decoded;
    let refusal: unknown = null;
    if (!incoming.known) refusal = new UnknownCommandError(command);
    else if (targetProblem) refusal = new DecodeError([`(MQTT 5 property) ${targetProblem}`], id || null);
    else {
      try {
        decoded = this.d.contract.decodeCommand(incoming.command as CommandName, m.payload);
      } catch (e) {
        refusal = e;
      }
    }
    if (refusal === null && this.inflight.size >= LIMITS.runningCommands) refusal = new BusyError(`${this.inflight.size} commands are running; try again later`, 5);
    if (refusal !== null || !decoded) return this.refuse(id, command, refusal, to);

    const seen = this.d.ledger.begin(id, command);
    if (seen.kind !== 'new') return void this.answeredBefore(id, command, to); // cannot happen: peeked above, nothing awaited since
    // The start mark is on disk before the PUBACK: a crash from here on is answered
    // "interrupted" on redelivery instead of running the command twice.
    await seen.started;
    if (decoded.expiresAt && !(Date.parse(decoded.expiresAt) > this.clock.now())) {
      const reply = this.errorReply(id, command, new ExpiredError(decoded.expiresAt));
      await this.d.ledger.complete(id, reply);
      return this.track(this.send({ reply, to }));
    }
    this.log.info({ evt: 'command.run', command, id, scope: incoming.scope }, `running ${command}`);
    this.track(this.execute(id, incoming.command as CommandName, decoded.args, to));
  }

  /** Sends the first reply again when `id` was answered (or is running); false when it is new. */
  private answeredBefore(id: string, command: string, to: Outgoing['to']): boolean {
    const seen = this.d.ledger.peek(id);
    if (seen.kind === 'unknown') return false;
    if (seen.kind === 'done') {
      this.log.info({ evt: 'command.duplicate', command, id }, 'an id answered before: sending its first reply again');
      this.track(this.send({ reply: seen.reply as unknown as Reply, to }));
    } else {
      this.log.info({ evt: 'command.duplicate_running', command, id }, 'an id still running: it gets the reply when it ends');
      this.track(seen.done.then((reply) => this.send({ reply: reply as unknown as Reply, to })));
    }
    return true;
  }

  /** A command not run: its reply is recorded under its id (when it has one) and sent. */
  private refuse(id: string, command: string, e: unknown, to: Outgoing['to']): void {
    const reply = this.errorReply(id, command, e);
    this.log.warn({ evt: `command.${reply.error?.code ?? 'refused'}`, command, id, problems: reply.error?.message }, `refused a command (${reply.error?.code})`);
    if (!id) return this.track(this.send({ reply, to }));
    const r = this.d.ledger.answer(id, command, reply as unknown as Record<string, unknown>);
    if ('running' in r) return this.track(r.running.then((first) => this.send({ reply: first as unknown as Reply, to })));
    this.track(r.saved.then(() => this.send({ reply: r.reply as unknown as Reply, to })));
  }

  /** Sends replies kept while offline (called on reconnect). */
  async flush(): Promise<void> {
    const pending = this.unsent;
    this.unsent = [];
    for (const o of pending) await this.send(o);
  }

  /** Waits for running commands (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  private async execute(id: string, command: CommandName, args: unknown, to: Outgoing['to']): Promise<void> {
    let reply: Reply;
    try {
      const result = await this.d.run(command, args, id);
      reply = fitReply({ id, deviceId: this.d.deviceId, command, ok: true, result }, LIMITS.replyBytes);
    } catch (e) {
      reply = this.errorReply(id, command, e);
      this.log.warn({ evt: 'command.failed', command, id, code: reply.error?.code, msg2: reply.error?.message }, `${command} failed`);
    }
    await this.d.ledger.complete(id, reply as unknown as Record<string, unknown>);
    await this.send({ reply, to });
  }

  private errorReply(id: string, command: string, e: unknown): Reply {
    return fitReply({ id, deviceId: this.d.deviceId, command, ok: false, error: toReplyError(e) }, LIMITS.replyBytes);
  }

  private async send(o: Outgoing): Promise<void> {
    try {
      await this.d.publishReply(o.reply, o.to);
    } catch (e) {
      this.log.warn({ evt: 'command.reply_deferred', id: o.reply.id, err: (e as Error).message }, 'reply kept until reconnect');
      this.unsent.push(o);
      // Past the bound the oldest go: a redelivered command still gets its reply from the ledger.
      if (this.unsent.length > LIMITS.unsentReplies) {
        const dropped = this.unsent.splice(0, this.unsent.length - LIMITS.unsentReplies);
        this.log.warn({ evt: 'command.replies_dropped', count: dropped.length, max: LIMITS.unsentReplies }, 'too many replies kept while offline: dropped the oldest');
      }
    }
  }

  private track(p: Promise<void>): void {
    const t = p.catch((e: unknown) => this.log.error({ evt: 'command.internal', err: (e as Error).message }, 'command handling failed')).finally(() => this.inflight.delete(t));
    this.inflight.add(t);
  }
}
