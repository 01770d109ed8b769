/**
 * Transport only translates: an incoming command is size-capped, parsed,
 * validated, deduplicated by id, checked for expiry, handed to ONE action, and answered
 * with exactly one reply — on the box's reply topic and, for MQTT 5, on the command's
 * response topic with its correlation data. Actions know nothing of topics.
 */
import { systemClock, type Clock } from '../../lib/index.js';
import { silentLogger, type Logger } from '../../lib/index.js';
import { MAX_PAYLOAD_BYTES, type Contract } from '../contract/index.js';
import { joinSpecSchema, parseIncoming, type CommandName } from '../contract/index.js';
import { ExpiredError, UnknownCommandError, toReplyError } from '../errors.js';
import type { JoinSpec, Reply } from '../contract/index.js';
import type { IncomingMessage } from './session.js';

export interface CommandLedgerLike {
  begin(id: string): { kind: 'new'; started: Promise<void> } | { kind: 'running'; done: Promise<Record<string, unknown>> } | { kind: 'done'; reply: Record<string, unknown> };
  complete(id: string, reply: Record<string, unknown>): Promise<void>;
}

export type ActionRunner = (command: CommandName, args: unknown) => Promise<Record<string, unknown>>;

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
  clock?: Clock;
  logger?: Logger;
}

interface Outgoing {
  reply: Reply;
  to: { responseTopic?: string; correlationData?: Buffer };
}

/** Reads `id` from a payload we could not decode, so even a bad command is answered. */
function looseId(payload: Buffer): string {
  if (payload.length > MAX_PAYLOAD_BYTES) return '';
  try {
    const v = JSON.parse(payload.toString()) as { id?: unknown };
    return typeof v?.id === 'string' && v.id.length <= 64 ? v.id : '';
  } catch {
    return '';
  }
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

  /** Resolves once the message is accepted (safe to PUBACK); the action may still run. */
  async handle(m: IncomingMessage): Promise<void> {
    const incoming = parseIncoming(m.topic, this.d.deviceId, this.d.groupId);
    if (incoming.kind === 'meeting') return this.meeting(m.payload);
    if (incoming.kind !== 'command') {
      this.log.debug({ evt: 'mqtt.ignored', topic: m.topic }, 'ignored a message on an unexpected topic');
      return;
    }
    const to = { ...(m.responseTopic ? { responseTopic: m.responseTopic } : {}), ...(m.correlationData ? { correlationData: m.correlationData } : {}) };
    const command = incoming.command;
    // Replies are never awaited here: handle() runs inside MQTT.js's handleMessage, which
    // holds every later incoming packet (the reply's own PUBACK too) until it resolves.
    const fail = (id: string, e: unknown): void => this.track(this.send({ reply: this.errorReply(id, command, e), to }));
    if (!incoming.known) return fail(looseId(m.payload), new UnknownCommandError(command));
    let decoded;
    try {
      decoded = this.d.contract.decodeCommand(incoming.command as CommandName, m.payload);
    } catch (e) {
      const id = (e as { id?: string | null }).id ?? looseId(m.payload);
      this.log.warn({ evt: 'command.bad_request', command, id, problems: (e as Error).message }, 'rejected a malformed command');
      return fail(id, e);
    }
    const { id } = decoded;
    const seen = this.d.ledger.begin(id);
    // A stand-in reply (interrupted by a restart) carries only the id: complete the envelope.
    const envelope = (r: Record<string, unknown>): Reply => ({ ...(r as unknown as Reply), id, deviceId: this.d.deviceId, command });
    if (seen.kind === 'done') {
      this.log.info({ evt: 'command.duplicate', command, id }, 'duplicate command id: sending the first reply again');
      return this.track(this.send({ reply: envelope(seen.reply), to }));
    }
    if (seen.kind === 'running') {
      this.track(seen.done.then((reply) => this.send({ reply: envelope(reply), to })));
      return;
    }
    // The start mark is on disk before the PUBACK: a crash from here on is answered
    // "interrupted" on redelivery instead of running the command twice.
    await seen.started;
    if (decoded.expiresAt && Date.parse(decoded.expiresAt) <= this.clock.now()) {
      const reply = this.errorReply(id, command, new ExpiredError(decoded.expiresAt));
      await this.d.ledger.complete(id, reply);
      return this.track(this.send({ reply, to }));
    }
    this.log.info({ evt: 'command.run', command, id, scope: incoming.scope }, `running ${command}`);
    this.track(this.execute(id, incoming.command as CommandName, decoded.args, to));
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
      const result = await this.d.run(command, args);
      reply = { id, deviceId: this.d.deviceId, command, ok: true, result };
    } catch (e) {
      reply = this.errorReply(id, command, e);
      this.log.warn({ evt: 'command.failed', command, id, code: reply.error?.code, msg2: reply.error?.message }, `${command} failed`);
    }
    await this.d.ledger.complete(id, reply as unknown as Record<string, unknown>);
    await this.send({ reply, to });
  }

  private errorReply(id: string, command: string, e: unknown): Reply {
    return { id, deviceId: this.d.deviceId, command, ok: false, error: toReplyError(e) };
  }

  private async send(o: Outgoing): Promise<void> {
    try {
      await this.d.publishReply(o.reply, o.to);
    } catch (e) {
      this.log.warn({ evt: 'command.reply_deferred', id: o.reply.id, err: (e as Error).message }, 'reply kept until reconnect');
      this.unsent.push(o);
    }
  }

  private track(p: Promise<void>): void {
    const t = p.catch((e: unknown) => this.log.error({ evt: 'command.internal', err: (e as Error).message }, 'command handling failed')).finally(() => this.inflight.delete(t));
    this.inflight.add(t);
  }
}
