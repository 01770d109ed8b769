/**
 * Model-based fuzzing of meetings as desired state (docs/agent.md): fast-check `commands`
 * sequences — join and leave commands (device and group topic), the retained meeting set,
 * cleared or garbage, media starting to flow, time passing (`endsAt`), other commands —
 * sent through the real router to the real MeetingController (test/fuzz/box.ts). After
 * every step the box must agree with a small model of what the desired state says: which
 * meeting it is in and why, its phase, how many times media was started.
 */
import fc from 'fast-check';
import { DEVICE, GROUP, NOW, fuzzBox, type FuzzBox } from './box.js';
import { HANG_MS, InputCounter, runProperty, withinMs, type FuzzTarget } from './property.js';

const HOUR = 3_600_000;

interface Spec {
  meetingId: string;
  title: string;
  send: { url: string; streamId: string };
  receive: { url: string };
  endsAt?: string;
  srt?: { passphrase: string };
}

/** A small pool, so steps meet the same meetings again: 3 ids × 2 titles × no end / an end in 1 h or 3 h. */
const specArb: fc.Arbitrary<Spec> = fc.record({ id: fc.constantFrom('m1', 'm2', 'm3'), title: fc.constantFrom('A', 'B'), ends: fc.constantFrom(null, 1, 3), secret: fc.boolean() }).map(({ id, title, ends, secret }) => ({
  meetingId: id,
  title,
  send: { url: 'srt://hub.example:8890', streamId: `publish:${GROUP}/{deviceId}` },
  receive: { url: 'srt://hub.example:8890' },
  ...(ends !== null ? { endsAt: new Date(NOW + ends * HOUR).toISOString() } : {}),
  ...(secret ? { srt: { passphrase: 'S3cr3t-passphrase' } } : {}),
}));

type Source = 'group' | 'command';

/** What the desired state says the box is doing. */
interface Model {
  now: number;
  group: Spec | null;
  /** The group meeting this box was told to leave (it stays out until the meeting changes). */
  left: string | null;
  current: { spec: Spec; source: Source } | null;
  flowing: boolean;
  sessionStarts: number;
  lastCommand: { topic: string; payload: Buffer; reply: string } | null;
}

interface Real {
  box: FuzzBox;
  ids: number;
  /** Steps run (the target's inputs). */
  counter: InputCounter;
}

const same = (a: Spec, b: Spec): boolean => JSON.stringify(a) === JSON.stringify(b);
const over = (s: Spec, now: number): boolean => s.endsAt !== undefined && Date.parse(s.endsAt) <= now;

function join(m: Model, spec: Spec, source: Source): void {
  m.current = { spec, source };
  m.flowing = false;
  m.sessionStarts += 1;
}

/** The meeting's end passed: the box leaves it by itself. */
function ends(m: Model): void {
  if (m.current && over(m.current.spec, m.now)) m.current = null;
}

async function send(r: Real, topic: string, payload: Buffer): Promise<string | null> {
  const before = r.box.replies.length;
  await withinMs(r.box.handle({ topic, payload, retain: topic.endsWith('/meeting') }), HANG_MS, topic);
  await withinMs(r.box.router.idle(), HANG_MS, `the work of ${topic}`);
  await withinMs(r.box.clock.advance(0), HANG_MS, 'due timers');
  const got = r.box.replies.slice(before);
  if (got.length > 1) throw new Error(`${got.length} replies to one message on ${topic}`);
  return got[0]?.json ?? null;
}

const cmdTopic = (name: string, group: boolean): string => (group ? `ep/v1/grp/${GROUP}/cmd/${name}` : `ep/v1/dev/${DEVICE}/cmd/${name}`);
const envelope = (r: Real, args: unknown): Buffer => Buffer.from(JSON.stringify({ id: `c-${(r.ids += 1)}`, args }));

/** The box agrees with the model: meeting, source, phase, media starts. */
function agree(m: Model, r: Real): void {
  const real = r.box.meeting.meeting;
  const want = m.current ? { id: m.current.spec.meetingId, source: m.current.source } : null;
  const got = real ? { id: real.id, source: real.source } : null;
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`in meeting ${JSON.stringify(got)}, the model says ${JSON.stringify(want)}`);
  const phase = m.current ? (m.flowing ? 'in_meeting' : 'joining') : 'idle';
  if (r.box.meeting.phase !== phase) throw new Error(`phase ${r.box.meeting.phase}, the model says ${phase}`);
  const starts = r.box.media.calls.filter((c) => c.startsWith('start ') && c !== 'start standby').length;
  if (starts !== m.sessionStarts) throw new Error(`media started ${starts} sessions, the model says ${m.sessionStarts}`);
}

const check = (m: Model, r: Real, reply: string | null, want: Record<string, unknown> | null): void => {
  if (want === null) {
    if (reply !== null) throw new Error(`a reply to a retained message: ${reply}`);
  } else {
    if (reply === null) throw new Error('no reply to a command');
    const got = JSON.parse(reply) as { ok: boolean; result?: Record<string, unknown> };
    for (const [k, v] of Object.entries(want)) if (JSON.stringify(got.result?.[k]) !== JSON.stringify(v)) throw new Error(`reply ${reply.slice(0, 200)}: ${k} should be ${JSON.stringify(v)}`);
    if (reply.includes('S3cr3t')) throw new Error('a passphrase in a reply');
  }
  agree(m, r);
};

type Step = fc.AsyncCommand<Model, Real>;

class JoinCommand implements Step {
  constructor(readonly spec: Spec, readonly group: boolean) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.counter.add();
    const payload = envelope(r, this.spec);
    const reply = await send(r, cmdTopic('join', this.group), payload);
    const already = m.current !== null && same(m.current.spec, this.spec);
    if (!already) join(m, this.spec, 'command');
    ends(m);
    m.lastCommand = { topic: cmdTopic('join', this.group), payload, reply: reply ?? '' };
    check(m, r, reply, { meetingId: this.spec.meetingId, state: already ? 'already_in_meeting' : 'joining' });
  }
  toString = (): string => `join(${JSON.stringify(this.spec)}${this.group ? ', group topic' : ''})`;
}

class LeaveCommand implements Step {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.counter.add();
    const payload = envelope(r, {});
    const reply = await send(r, cmdTopic('leave', false), payload);
    const id = m.current?.spec.meetingId ?? null;
    if (id !== null && m.group?.meetingId === id) m.left = id;
    m.current = null;
    m.lastCommand = { topic: cmdTopic('leave', false), payload, reply: reply ?? '' };
    check(m, r, reply, { left: id });
  }
  toString = (): string => 'leave';
}

class RetainedMeeting implements Step {
  constructor(readonly spec: Spec | null) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.counter.add();
    const reply = await send(r, `ep/v1/grp/${GROUP}/meeting`, this.spec ? Buffer.from(JSON.stringify(this.spec)) : Buffer.alloc(0));
    const prev = m.group;
    m.group = this.spec && !over(this.spec, m.now) ? this.spec : null;
    if (!m.group) {
      m.left = null;
      if (m.current && m.current.source !== 'command') m.current = null;
    } else {
      if (prev?.meetingId !== m.group.meetingId) m.left = null;
      const inIt = m.current !== null && same(m.current.spec, m.group);
      if (m.left !== m.group.meetingId && !inIt) join(m, m.group, 'group');
    }
    check(m, r, reply, null);
  }
  toString = (): string => (this.spec ? `retained meeting ${JSON.stringify(this.spec)}` : 'retained meeting cleared');
}

/** A retained meeting that fails validation changes nothing. */
class BadRetainedMeeting implements Step {
  constructor(readonly payload: string) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.counter.add();
    check(m, r, await send(r, `ep/v1/grp/${GROUP}/meeting`, Buffer.from(this.payload)), null);
  }
  toString = (): string => `bad retained meeting ${JSON.stringify(this.payload)}`;
}

class MediaFlows implements Step {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.counter.add();
    r.box.media.flowing();
    if (m.current) m.flowing = true;
    agree(m, r);
  }
  toString = (): string => 'media flows';
}

class TimePasses implements Step {
  constructor(readonly minutes: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.counter.add();
    await withinMs(r.box.clock.advance(this.minutes * 60_000), HANG_MS, 'the clock');
    m.now += this.minutes * 60_000;
    ends(m);
    agree(m, r);
  }
  toString = (): string => `${this.minutes} minutes pass`;
}

/** A command that must not touch the meeting (identify, selftest, logs, config). */
class OtherCommand implements Step {
  constructor(readonly name: string, readonly args: unknown) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.counter.add();
    const reply = await send(r, cmdTopic(this.name, false), envelope(r, this.args));
    check(m, r, reply, {});
  }
  toString = (): string => `${this.name} ${JSON.stringify(this.args)}`;
}

/** The last command again under its id (a QoS 1 redelivery): its first reply, nothing changes. */
class Redelivery implements Step {
  check = (m: Readonly<Model>): boolean => m.lastCommand !== null;
  async run(m: Model, r: Real): Promise<void> {
    r.counter.add();
    const last = m.lastCommand!;
    const reply = await send(r, last.topic, last.payload);
    if (reply !== last.reply) throw new Error(`a redelivery got ${reply?.slice(0, 200)}, the first reply was ${last.reply.slice(0, 200)}`);
    agree(m, r);
  }
  toString = (): string => 'redelivery of the last command';
}

const steps = [
  fc.tuple(specArb, fc.boolean()).map(([s, g]) => new JoinCommand(s, g)),
  fc.constant(new LeaveCommand()),
  specArb.map((s) => new RetainedMeeting(s)),
  fc.constant(new RetainedMeeting(null)),
  fc.constantFrom('{', '{"meetingId":"m1"}', '[]', '{"meetingId":"m1","send":{"url":"http://x"},"receive":{"url":"srt://h:1"}}').map((p) => new BadRetainedMeeting(p)),
  fc.constant(new MediaFlows()),
  fc.integer({ min: 0, max: 150 }).map((n) => new TimePasses(n)),
  fc.constantFrom<[string, unknown]>(['identify', { seconds: 5 }], ['selftest', {}], ['logs', { lines: 5 }], ['config', { volume: 0.5 }]).map(([n, a]) => new OtherCommand(n, a)),
  fc.constant(new Redelivery()),
];

function meetingModel(counter: InputCounter): fc.IAsyncProperty<[Iterable<Step>]> {
  // FUZZ_REPLAY_PATH: the `replayPath` of a failure's report, so a replay shrinks the steps as the failure did.
  const replayPath = process.env.FUZZ_REPLAY_PATH;
  return fc.asyncProperty(fc.commands(steps, { maxCommands: 40, size: 'max', ...(replayPath ? { replayPath } : {}) }), async (cmds) => {
    const box = await fuzzBox();
    try {
      const model: Model = { now: NOW, group: null, left: null, current: null, flowing: false, sessionStarts: 0, lastCommand: null };
      const real: Real = { box, ids: 0, counter };
      await fc.asyncModelRun(() => ({ model, real }), cmds);
    } finally {
      await box.stop();
    }
  });
}

export const meetingTarget: FuzzTarget = {
  name: 'meeting-model',
  input: 'a step of a model-based sequence (join, leave, retained meeting set/cleared/bad, media flows, time passes, other commands, redelivery)',
  testRuns: 250,
  benchRuns: 600,
  run: async (runs, seed) => {
    const counter = new InputCounter();
    return runProperty('meeting-model', meetingModel(counter), runs, seed, counter);
  },
};
