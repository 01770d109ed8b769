/**
 * Fuzz targets of the command path (test/fuzz/box.ts: the real router, ledger, actions and
 * meeting controller): every command gets exactly one reply, schema-valid, ≤ 64 KiB, with a
 * contract error code; an id answered before gets its first reply again and never runs
 * twice; nothing throws out or hangs; no passphrase in a reply or log line; and under a
 * long flood (some of it offline) the stores stay within device/limits.ts.
 */
import fc from 'fast-check';
import { Ajv } from 'ajv';
import { MAX_PAYLOAD_BYTES, parseIncoming, readCommandId, replySchema } from '../../device/contract/index.js';
import { LIMITS } from '../../device/limits.js';
import type { IncomingMessage } from '../../device/mqtt/session.js';
import { DEVICE, GROUP, fuzzBox, type FuzzBox } from './box.js';
import { SECRET_MARK, commandMessageArb, messageArb } from './command-inputs.js';
import { HANG_MS, InputCounter, runProperty, withinMs, type FuzzTarget } from './property.js';

const replyValid = new Ajv({ strict: false }).compile(replySchema);

/** The command name a reply carries (commandLabel in device/mqtt/command-router.ts). */
const label = (n: string): string => (n.length > LIMITS.commandNameChars ? `${n.slice(0, LIMITS.commandNameChars - 1)}…` : n);

/** Why a reply breaks the contract, or null. */
function replyProblem(r: FuzzBox['replies'][number], m: IncomingMessage): string | null {
  if (!replyValid(r.reply)) return `reply fails the reply schema: ${JSON.stringify(replyValid.errors).slice(0, 300)}`;
  if (Buffer.byteLength(r.json) > LIMITS.replyBytes) return `reply of ${Buffer.byteLength(r.json)} bytes`;
  if (r.reply.deviceId !== DEVICE) return `reply deviceId ${r.reply.deviceId}`;
  const id = readCommandId(m.payload, MAX_PAYLOAD_BYTES) ?? '';
  if (r.reply.id !== id) return `reply id ${JSON.stringify(r.reply.id)} for a command whose id reads ${JSON.stringify(id)}`;
  if (r.json.includes(SECRET_MARK)) return 'a passphrase in a reply';
  return null;
}

/** Handles one message and waits for what it started, both under the hang guard; no rejection escapes. */
async function feed(box: FuzzBox, m: IncomingMessage): Promise<void> {
  await withinMs(box.handle(m), HANG_MS, `handle(${m.topic.slice(0, 80)})`);
  await withinMs(box.router.idle(), HANG_MS, `the work of ${m.topic.slice(0, 80)}`);
  // Timers due now (an identify's end, a meeting whose endsAt has passed) run too.
  await withinMs(box.clock.advance(0), HANG_MS, 'due timers');
}

/** The log lines that must never be: an internal error, a passphrase. */
function logProblem(box: FuzzBox): string | null {
  const lines = box.logRing.tail(LIMITS.logLines);
  if (lines.some((l) => l.includes(SECRET_MARK))) return 'a passphrase in a log line';
  const internal = lines.find((l) => l.includes('"evt":"command.internal"'));
  return internal ? `the router caught an internal error: ${internal.slice(0, 300)}` : null;
}

/**
 * One reply each: a run is 10–40 messages to a fresh box, one after the other; after each,
 * a command has exactly one new reply, anything else none.
 */
function oneReplyEach(counter: InputCounter): fc.IAsyncProperty<[IncomingMessage[]]> {
  return fc.asyncProperty(fc.array(messageArb, { minLength: 10, maxLength: 40, size: 'max' }), async (msgs) => {
    const box = await fuzzBox();
    try {
      const first = new Map<string, string>();
      for (const m of msgs) {
        counter.add();
        const incoming = parseIncoming(m.topic, DEVICE, GROUP);
        const id = incoming.kind === 'command' ? (readCommandId(m.payload, MAX_PAYLOAD_BYTES) ?? '') : '';
        const answeredBefore = id !== '' && box.ledger.peek(id).kind !== 'unknown';
        const runsBefore = box.runsById.get(id) ?? 0;
        const before = box.replies.length;
        await feed(box, m);
        const got = box.replies.slice(before);
        if (incoming.kind !== 'command') {
          if (got.length !== 0) throw new Error(`${got.length} replies to a message on ${m.topic}`);
          continue;
        }
        if (got.length !== 1) throw new Error(`${got.length} replies to one command (id ${JSON.stringify(id)})`);
        const r = got[0]!;
        const problem = replyProblem(r, m);
        if (problem) throw new Error(problem);
        if (answeredBefore) {
          // An id is answered once: the first reply again, or the ledger's stand-in once its body is gone; never a second run.
          if ((box.runsById.get(id) ?? 0) !== runsBefore) throw new Error(`id ${JSON.stringify(id)} ran again`);
          const f = first.get(id);
          if (f !== undefined && r.json !== f && !/no longer kept/.test(r.reply.error?.message ?? '')) throw new Error(`a duplicate of ${JSON.stringify(id)} got ${r.json.slice(0, 200)}, the first reply was ${f.slice(0, 200)}`);
        } else {
          if (r.reply.command !== label(incoming.command)) throw new Error(`reply command ${JSON.stringify(r.reply.command)} for ${JSON.stringify(label(incoming.command))}`);
          if (id !== '') first.set(id, r.json);
        }
        if ((box.runsById.get(id) ?? 0) > 1) throw new Error(`id ${JSON.stringify(id)} ran ${box.runsById.get(id)} times`);
      }
      const lp = logProblem(box);
      if (lp) throw new Error(lp);
    } finally {
      await box.stop();
    }
  });
}

/** The commands of a batch short of a reply, by id (a failure's message). */
function unanswered(msgs: IncomingMessage[], replies: FuzzBox['replies']): string {
  const left = new Map<string, number>();
  for (const r of replies) left.set(r.reply.id, (left.get(r.reply.id) ?? 0) + 1);
  const short: string[] = [];
  for (const m of msgs) {
    const id = readCommandId(m.payload, MAX_PAYLOAD_BYTES) ?? '';
    const n = left.get(id) ?? 0;
    if (n > 0) left.set(id, n - 1);
    else short.push(`${m.topic.slice(0, 60)} ${m.payload.subarray(0, 200).toString()}`);
  }
  return short.join(' | ') || '(each id has its replies)';
}

/**
 * A flood: one box, many batches of up to 160 commands at once (more than the 128 that may
 * run), some sent while offline; after each batch the stores are within their bounds, and
 * every command of the batch is answered once the box is back online (the offline replies
 * past the 200 kept are dropped: a redelivery gets them from the ledger).
 */
function boundedFlood(counter: InputCounter, batches: number): fc.IAsyncProperty<[Array<{ msgs: IncomingMessage[]; offline: boolean }>]> {
  const batch = fc.record({ msgs: fc.array(commandMessageArb, { minLength: 40, maxLength: 160, size: 'max' }), offline: fc.boolean() });
  return fc.asyncProperty(fc.array(batch, { minLength: batches, maxLength: batches }), async (plan) => {
    const box = await fuzzBox();
    try {
      for (const { msgs, offline } of plan) {
        counter.add(msgs.length);
        box.offline = offline;
        const before = box.replies.length;
        await withinMs(Promise.all(msgs.map((m) => box.handle(m))), HANG_MS * 5, `a batch of ${msgs.length} commands`);
        await withinMs(box.router.idle(), HANG_MS * 5, 'the batch to be answered');
        box.offline = false;
        await withinMs(box.router.flush(), HANG_MS * 5, 'the offline replies to be sent');
        const got = box.replies.length - before;
        // A name with a `/` is another topic (cmd/+ would not deliver it): no reply.
        const commands = msgs.filter((m) => parseIncoming(m.topic, DEVICE, GROUP).kind === 'command');
        const want = offline ? Math.min(commands.length, LIMITS.unsentReplies) : commands.length;
        if (got !== want) throw new Error(`${got} replies to a batch of ${commands.length} commands (${offline ? 'offline' : 'online'}; want ${want}): ${unanswered(commands, box.replies.slice(before))}`);
        for (const r of box.replies.slice(before)) if (!replyValid(r.reply) || Buffer.byteLength(r.json) > LIMITS.replyBytes) throw new Error(`a bad reply in a flood: ${r.json.slice(0, 200)}`);
        if (box.ledger.size() > LIMITS.ledgerIds) throw new Error(`the ledger holds ${box.ledger.size()} ids (bound ${LIMITS.ledgerIds})`);
        if (box.ledger.keptBodyBytes() > LIMITS.ledgerBodyBytes) throw new Error(`the ledger keeps ${box.ledger.keptBodyBytes()} bytes of replies (bound ${LIMITS.ledgerBodyBytes})`);
        if (box.running.max > LIMITS.runningCommands) throw new Error(`${box.running.max} actions ran at once (bound ${LIMITS.runningCommands})`);
        if (box.logRing.tail(LIMITS.logLines + 1).length > LIMITS.logLines) throw new Error('the log ring is over its bound');
      }
      const lp = logProblem(box);
      if (lp) throw new Error(lp);
    } finally {
      await box.stop();
    }
  });
}

export const commandsTarget: FuzzTarget = {
  name: 'commands',
  input: 'an MQTT message to the command path (a command on any topic, the retained meeting, other topics)',
  testRuns: 250,
  benchRuns: 1_000,
  run: async (runs, seed) => {
    const counter = new InputCounter();
    return runProperty('commands', oneReplyEach(counter), runs, seed, counter);
  },
};

/** Batches per flood run: 30 × ~100 commands ≈ 3,000 per run, past the ledger's 1,000 ids. */
const FLOOD_BATCHES = 30;

export const floodTarget: FuzzTarget = {
  name: 'commands-flood',
  input: 'a command in a concurrent batch to one long-lived box',
  testRuns: 2,
  benchRuns: 12,
  run: async (runs, seed) => {
    const counter = new InputCounter();
    return runProperty('commands-flood', boundedFlood(counter, FLOOD_BATCHES), runs, seed, counter, { shrink: false });
  },
};
