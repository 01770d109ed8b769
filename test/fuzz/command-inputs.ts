/**
 * Generated MQTT messages for the command path: commands on every topic the box
 * subscribes to (its own and its group's `cmd/{name}`, the retained meeting and next
 * meeting) and on ones it must ignore; well-formed envelopes with odd args, wrong JSON
 * types, garbage bytes, payloads around and over the 64 KiB cap, deep nesting, ids from a
 * small pool (duplicates), MQTT 5 response topics and correlation data good and bad.
 */
import fc from 'fast-check';
import { COMMAND_NAMES } from '../../device/contract/index.js';
import type { IncomingMessage } from '../../device/mqtt/session.js';
import { DEVICE, GROUP, NOW } from './box.js';

/** Every passphrase generated starts with this: no reply or log line may ever carry one. */
export const SECRET_MARK = 'S3cr3t-';

const iso = (ms: number): string => new Date(ms).toISOString();
const HOUR = 3_600_000;

/** A date-time the contract takes (2 days either side of the box's clock), one it refuses (a leap second, no zone), or not a string. */
const goodDate = fc.integer({ min: -48, max: 48 }).map((h) => iso(NOW + h * HOUR));
const dateLike = fc.oneof(
  goodDate,
  fc.constantFrom('2016-12-31T23:59:60Z', '2026-11-22T08:00:00', '2026-13-01T00:00:00Z', '', 'now'),
  fc.integer(),
);

const oddString = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('{deviceId}', '🙂'.repeat(70), 'x'.repeat(3000), '\u0000', '../../etc/passwd'));
const anyJson = fc.jsonValue({ maxDepth: 3 });

/** A value of the right type most of the time, otherwise anything. */
const mostly = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: anyJson });

const srtUrl = fc.oneof(fc.constantFrom('srt://hub.example:8890', 'srt://10.0.0.1:9000', 'srt://[::1]:1'), fc.constantFrom('http://x', 'srt://', 'srt://h:99999', 'udp://h:1'), oddString);

export const secretArb = fc.string({ minLength: 3, maxLength: 60, unit: 'grapheme-ascii' }).map((s) => `${SECRET_MARK}${s.replace(/[^\x21-\x7e]/g, 'x')}`);

/** A join spec with odd values in any field, fields missing, extras. */
const oddJoinSpec: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    meetingId: mostly(fc.constantFrom('m1', 'm2', 'camlo-2019-01-28', '', 'M 1')),
    title: mostly(oddString),
    send: mostly(
      fc.record(
        {
          url: mostly(srtUrl),
          streamId: mostly(fc.constantFrom('publish:camlo/{deviceId}', 'publish:x', '')),
          video: mostly(fc.record({ width: mostly(fc.integer({ min: -10, max: 5000 })), height: mostly(fc.integer({ min: -10, max: 5000 })), fps: mostly(fc.integer({ min: 0, max: 120 })), bitrateKbps: mostly(fc.integer({ min: 0, max: 100_000 })) }, { requiredKeys: [] })),
          audio: mostly(fc.record({ bitrateKbps: mostly(fc.integer({ min: 0, max: 1000 })) }, { requiredKeys: [] })),
          adapt: mostly(fc.record({ enabled: fc.boolean(), minVideoKbps: fc.integer({ min: 0, max: 5000 }) }, { requiredKeys: [] })),
        },
        { requiredKeys: ['url'] },
      ),
    ),
    receive: mostly(fc.record({ url: mostly(srtUrl), streamId: mostly(fc.constantFrom('read:camlo/program', '')) }, { requiredKeys: ['url'] })),
    srt: mostly(fc.record({ latencyMs: mostly(fc.integer({ min: -1, max: 10_000 })), passphrase: secretArb, pbkeylen: mostly(fc.constantFrom(16, 24, 32, 17)) }, { requiredKeys: [] })),
    endsAt: dateLike,
    extra: anyJson,
  },
  { requiredKeys: ['meetingId', 'send', 'receive'] },
);

/** A join spec this box can join (the schema's fields, good values), sometimes with a passphrase and an end. */
const goodJoinSpec: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    meetingId: fc.constantFrom('m1', 'm2', 'camlo-2019-01-28'),
    title: fc.string({ maxLength: 40 }),
    send: fc.record({ url: fc.constantFrom('srt://hub.example:8890', 'srt://10.0.0.1:9000'), streamId: fc.constantFrom('publish:camlo/{deviceId}', 'publish:x') }, { requiredKeys: ['url'] }),
    receive: fc.record({ url: fc.constant('srt://hub.example:8890'), streamId: fc.constant('read:camlo/program') }, { requiredKeys: ['url'] }),
    srt: fc.record({ latencyMs: fc.integer({ min: 20, max: 2000 }), passphrase: secretArb }, { requiredKeys: [] }),
    endsAt: fc.integer({ min: -48, max: 48 }).map((h) => iso(NOW + h * HOUR)),
  },
  { requiredKeys: ['meetingId', 'send', 'receive'] },
);

/** A join spec: a good one, a good one with one field replaced by anything, or odd throughout. */
export const joinSpecArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  goodJoinSpec,
  fc.tuple(goodJoinSpec, fc.constantFrom('meetingId', 'title', 'send', 'receive', 'srt', 'endsAt', 'extra'), anyJson).map(([j, k, v]) => ({ ...j, [k]: v })),
  oddJoinSpec,
);

/** Args for each command of the contract, mostly its shape. */
const argsFor: Record<string, fc.Arbitrary<unknown>> = {
  join: joinSpecArb,
  leave: mostly(fc.constant({})),
  ota: mostly(fc.record({ manifestUrl: mostly(fc.constantFrom('https://hub.example/ota/m.json', 'ftp://x', '')), when: mostly(fc.constantFrom('now', 'idle', 'later')), force: mostly(fc.boolean()) }, { requiredKeys: [] })),
  reboot: mostly(fc.record({ when: mostly(fc.constantFrom('now', 'idle', 'soon')) }, { requiredKeys: [] })),
  selftest: mostly(fc.constant({})),
  identify: mostly(fc.record({ seconds: mostly(fc.integer({ min: -1, max: 400 })) }, { requiredKeys: [] })),
  config: mostly(
    fc.record(
      { healthPeriodS: mostly(fc.integer({ min: 0, max: 4000 })), logLevel: mostly(fc.constantFrom('info', 'debug', 'warn', 'loud')), volume: mostly(fc.double({ min: -1, max: 2, noNaN: true })), micMuted: mostly(fc.boolean()) },
      { requiredKeys: [] },
    ),
  ),
  logs: mostly(fc.record({ lines: mostly(fc.integer({ min: -1, max: 2500 })) }, { requiredKeys: [] })),
};

/** Ids: a small pool (duplicates across a run), fresh ones, and the edges of the id rule. */
export const idArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 15 }).map((i) => `dup-${i}`) },
  { weight: 4, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.constantFrom('', 'x'.repeat(64), 'x'.repeat(65), '🙂'.repeat(64), '🙂'.repeat(65), 'a/b', ' ') },
  { weight: 1, arbitrary: anyJson },
);

/** An envelope: mostly the contract's (times it reads, past or future), else with odd times and an unknown field. */
const envelope = (name: string): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ id: idArb, ts: goodDate, expiresAt: goodDate, args: argsFor[name] ?? anyJson }, { requiredKeys: ['id'] }) },
    { weight: 1, arbitrary: fc.record({ id: idArb, ts: dateLike, expiresAt: dateLike, args: argsFor[name] ?? anyJson, junk: anyJson }, { requiredKeys: ['id'] }) },
  );

const name = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...COMMAND_NAMES) }, { weight: 1, arbitrary: fc.oneof(fc.constantFrom('', 'dance', 'JOIN', 'join ', 'x'.repeat(10_000)), fc.string({ maxLength: 30 })) });

const bytesOf = (v: unknown): Buffer => Buffer.from(JSON.stringify(v) ?? 'null');

/** The payload: an envelope as JSON, or not quite JSON, or not JSON at all. */
const payloadFor = (cmdName: string): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { weight: 16, arbitrary: envelope(cmdName).map(bytesOf) },
    { weight: 1, arbitrary: anyJson.map(bytesOf) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
    // Around the 64 KiB cap, the id first so it can still be read.
    { weight: 1, arbitrary: fc.tuple(idArb, fc.integer({ min: 65_400, max: 65_700 })).map(([id, n]) => Buffer.from(`{"id":${JSON.stringify(id) ?? 'null'},"pad":"${'x'.repeat(n)}"}`)) },
    // Deep nesting (JSON.parse's recursion) and a cut-off envelope.
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 20_000 }), fc.boolean()).map(([d, obj]) => Buffer.from(obj ? `{"id":"deep","args":${'{"a":'.repeat(d)}1${'}'.repeat(d)}}` : `${'['.repeat(d)}${']'.repeat(d)}`)) },
    { weight: 1, arbitrary: fc.tuple(envelope(cmdName).map(bytesOf), fc.nat()).map(([b, cut]) => b.subarray(0, cut % (b.length + 1))) },
  );

/** MQTT 5 properties on one command in six: response topics good and bad, correlation data up to past its 256 bytes. */
const sometimes = <T>(v: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: v });
const responseTopic = sometimes(fc.oneof(fc.constantFrom('hub/replies/7', `ep/v1/dev/${DEVICE}/reply/k`, 'x/+/y', 'hub/#', '$SYS/x', `ep/v1/dev/${DEVICE}/cmd/leave`, 'a//b', 'r'.repeat(300)), fc.string({ maxLength: 40 })));
const correlation = sometimes(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)));

const props = (m: IncomingMessage, rt: string | undefined, cd: Buffer | undefined): IncomingMessage => ({ ...m, ...(rt !== undefined ? { responseTopic: rt } : {}), ...(cd ? { correlationData: cd } : {}) });

/** A command message on the box's own or its group's command topic. */
export const commandMessageArb: fc.Arbitrary<IncomingMessage> = fc
  .tuple(name, fc.boolean())
  .chain(([n, group]) => fc.tuple(fc.constant(group ? `ep/v1/grp/${GROUP}/cmd/${n}` : `ep/v1/dev/${DEVICE}/cmd/${n}`), payloadFor(COMMAND_NAMES.includes(n as never) ? n : 'leave'), responseTopic, correlation))
  .map(([topic, payload, rt, cd]) => props({ topic, payload, retain: false }, rt, cd));

/** The retained meeting (a spec, cleared, garbage), the next meeting, and topics the box must ignore. */
export const otherMessageArb: fc.Arbitrary<IncomingMessage> = fc.oneof(
  fc.oneof(joinSpecArb.map(bytesOf), fc.constant(Buffer.alloc(0)), anyJson.map(bytesOf), fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b))).map((payload) => ({ topic: `ep/v1/grp/${GROUP}/meeting`, payload, retain: true })),
  fc.oneof(fc.record({ title: oddString, startsAt: dateLike }).map(bytesOf), fc.constant(Buffer.alloc(0)), anyJson.map(bytesOf)).map((payload) => ({ topic: `ep/v1/grp/${GROUP}/next`, payload, retain: true })),
  fc
    .tuple(fc.constantFrom(`ep/v1/dev/other-box/cmd/leave`, `ep/v1/dev/${DEVICE}/cmd/a/b`, `ep/v1/grp/other/meeting`, `ep/v1/dev/${DEVICE}/reply`), fc.string({ maxLength: 20 }))
    .map(([topic, s]) => ({ topic, payload: Buffer.from(`{"id":${JSON.stringify(s)}}`), retain: false })),
);

/** What the box gets from the broker: mostly commands, some of the rest. */
export const messageArb: fc.Arbitrary<IncomingMessage> = fc.oneof({ weight: 9, arbitrary: commandMessageArb }, { weight: 1, arbitrary: otherMessageArb });
