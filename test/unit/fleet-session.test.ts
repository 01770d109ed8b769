/**
 * The fleet's executors (join, leave, the rollout) over a scripted FleetBus and the fake
 * clock: what they publish, in which order, and what they conclude from the replies and
 * retained states the "boxes" send back.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock, settle } from '../fakes/index.js';
import { topics } from '../../device/contract/index.js';
import { openFleet, runJoin, runLeave, runRollout, type FleetBus, type FleetSession, type MessageHandler, type RolloutEvent } from '../../device/fleet/index.js';

const TS = '2026-03-01T08:00:00Z';

interface Published {
  topic: string;
  payload: string;
  retain: boolean;
}

/** A broker with boxes behind it: `respond` is called for each publish and returns what the boxes send back. */
class ScriptedBus implements FleetBus {
  readonly published: Published[] = [];
  readonly subscribed: string[] = [];
  private handler: MessageHandler | null = null;
  closed = false;
  constructor(
    private readonly retained: Array<[string, string]>,
    private readonly respond: (p: Published) => Array<[string, string]> = () => [],
  ) {}
  async subscribe(filters: string[]): Promise<void> {
    this.subscribed.push(...filters);
    await settle();
    for (const [t, p] of this.retained) this.handler?.(t, Buffer.from(p), true);
  }
  async publish(topic: string, payload: string, retain: boolean): Promise<void> {
    const p = { topic, payload, retain };
    this.published.push(p);
    const back = this.respond(p);
    setImmediate(() => {
      for (const [t, m] of back) this.handler?.(t, Buffer.from(m), false);
    });
  }
  onMessage(h: MessageHandler): void {
    this.handler = h;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const online = (id: string, group: string, version = '1.2.0'): [string, string] => [topics.status(id), JSON.stringify({ online: true, version, bootId: 'b', groupId: group, name: `name of ${id}`, ts: TS })];
const stateMsg = (id: string, over: Record<string, unknown> = {}): [string, string] => [topics.state(id), JSON.stringify({ state: 'idle', meeting: null, faults: [], version: '1.2.0', ts: TS, ...over })];
const reply = (id: string, cmdId: string, command: string, ok: boolean, error?: Record<string, unknown>): [string, string] => [
  topics.reply(id),
  JSON.stringify({ id: cmdId, deviceId: id, command, ok, ...(ok ? { result: {} } : { error }) }),
];

/** Drives the fake clock until the promise settles (bounded). */
async function drive<T>(clock: FakeClock, p: Promise<T>, stepMs = 50, maxSteps = 100_000): Promise<T> {
  let done = false;
  const q = p.finally(() => {
    done = true;
  });
  for (let i = 0; i < maxSteps && !done; i++) await clock.advance(stepMs);
  if (!done) throw new Error('did not settle');
  return q;
}

async function open(bus: ScriptedBus, clock: FakeClock): Promise<FleetSession> {
  return drive(clock, openFleet({ connect: { url: 'mqtt://unused' }, bus, clock, waitMs: 3000 }));
}

const spec = { meetingId: 'camlo-2026-03-01', send: { url: 'srt://hub.example:8890', streamId: 'publish:camlo/{deviceId}' }, receive: { url: 'srt://hub.example:8890' } };

describe('join and leave', () => {
  it('sets the retained meeting, then sends join to the group; reports who is in and who refused', async () => {
    const clock = new FakeClock();
    const retained = [online('cam-a', 'camlo'), online('cam-b', 'camlo'), online('cam-c', 'camlo'), online('oth-a', 'other'), stateMsg('cam-a'), stateMsg('cam-b'), stateMsg('cam-c')];
    const bus = new ScriptedBus(retained, (p) => {
      if (p.topic !== topics.groupCommand('camlo', 'join')) return [];
      const id = (JSON.parse(p.payload) as { id: string }).id;
      const inMeeting = { state: 'in_meeting', meeting: { id: spec.meetingId, since: TS } };
      return [reply('cam-a', id, 'join', true), stateMsg('cam-a', inMeeting), reply('cam-b', id, 'join', true), stateMsg('cam-b', inMeeting), reply('cam-c', id, 'join', false, { code: 'busy', message: 'updating' })];
    });
    const s = await open(bus, clock);
    expect(bus.subscribed).toEqual(['ep/v1/dev/+/status', 'ep/v1/dev/+/state', 'ep/v1/dev/+/reply']);
    const r = await drive(clock, runJoin(s, spec, { groupId: 'camlo', timeoutMs: 60_000, clock }));
    expect(bus.published.map((p) => [p.topic, p.retain])).toEqual([
      ['ep/v1/grp/camlo/meeting', true],
      ['ep/v1/grp/camlo/cmd/join', false],
    ]);
    expect(JSON.parse(bus.published[0]?.payload ?? '')).toEqual(spec);
    const env = JSON.parse(bus.published[1]?.payload ?? '') as { id: string; args: unknown; expiresAt: string; ts: string };
    expect(env.args).toEqual(spec);
    expect(env.id.length).toBeLessThanOrEqual(64);
    expect(Date.parse(env.expiresAt) - Date.parse(env.ts)).toBe(60_000);
    expect(r.boxes.map((b) => [b.id, b.reply, b.done])).toEqual([
      ['cam-a', 'ok', true],
      ['cam-b', 'ok', true],
      ['cam-c', 'refused', false],
    ]);
    expect(r.summary).toEqual({ boxes: 3, repliedOk: 2, refused: 1, noReply: 0, done: 2, notDone: 1 });
    expect(r.notDone).toEqual(['cam-c']);
    expect(r.ok).toBe(false);
    // Settled early: the refusal and the two in_meeting states, not the 60 s timeout.
    expect(clock.now() - Date.parse(TS)).toBeLessThan(10_000);
    await s.close();
    expect(bus.closed).toBe(true);
  });

  it('a box that never answers is waited for until the timeout, then named', async () => {
    const clock = new FakeClock();
    const bus = new ScriptedBus([online('cam-a', 'camlo'), stateMsg('cam-a', { state: 'in_meeting', meeting: { id: 'old', since: TS } })]);
    const s = await open(bus, clock);
    const t0 = clock.now();
    const r = await drive(clock, runLeave(s, { groupId: 'camlo', timeoutMs: 5000, clock }));
    expect(clock.now() - t0).toBeGreaterThanOrEqual(5000);
    expect(bus.published.map((p) => [p.topic, p.payload, p.retain])).toEqual([
      ['ep/v1/grp/camlo/meeting', '', true],
      expect.arrayContaining(['ep/v1/grp/camlo/cmd/leave']),
    ]);
    expect(r.boxes).toEqual([expect.objectContaining({ id: 'cam-a', reply: 'none', state: 'in_meeting', done: false })]);
    expect(r.ok).toBe(false);
  });
});

const MANIFEST = 'https://hub.example/ota/ep-1.3.0.manifest.json';

/** Boxes that take the update: `fate[id]` says what each does with an ota command. */
function otaBoxes(fate: Record<string, 'commit' | 'rollback' | 'refuse' | 'silent'>): (p: Published) => Array<[string, string]> {
  return (p) => {
    const m = /^ep\/v1\/dev\/([^/]+)\/cmd\/ota$/.exec(p.topic);
    if (!m?.[1]) return [];
    const id = m[1];
    const env = JSON.parse(p.payload) as { id: string; args: { manifestUrl: string; when: string } };
    expect(env.args).toEqual({ manifestUrl: MANIFEST, when: 'idle' });
    switch (fate[id]) {
      case 'commit':
        return [stateMsg(id, { state: 'updating', ota: { phase: 'checking' } }), reply(id, env.id, 'ota', true), stateMsg(id, { ota: { phase: 'committed', version: '1.3.0' }, version: '1.3.0' })];
      case 'rollback':
        return [reply(id, env.id, 'ota', true), stateMsg(id, { ota: { phase: 'rolled_back', version: '1.3.0', code: 'self_test', message: 'encoder check failed' } })];
      case 'refuse':
        return [reply(id, env.id, 'ota', false, { code: 'failed', reason: 'downgrade', message: 'downgrade: 1.3.0 is not newer than the running 1.4.0' })];
      default:
        return [];
    }
  };
}

const otaTargets = (bus: ScriptedBus): string[] => bus.published.filter((p) => p.topic.endsWith('/cmd/ota')).map((p) => p.topic.split('/')[3] ?? '');

describe('the rollout', () => {
  it('runs every wave when the failures stay under the limit; a box at the target gets no command', async () => {
    const clock = new FakeClock();
    const ids = ['b-00', 'b-01', 'b-02', 'b-03', 'b-04', 'b-05', 'b-06', 'b-07', 'b-08', 'b-09'];
    const retained = ids.flatMap((id) => [online(id, 'camlo', id === 'b-05' ? '1.3.0' : '1.2.0'), stateMsg(id)]);
    retained.push(online('x-00', 'other'));
    const fate = Object.fromEntries(ids.map((id) => [id, id === 'b-07' ? 'rollback' : 'commit'])) as Record<string, 'commit' | 'rollback'>;
    const bus = new ScriptedBus(retained, otaBoxes(fate));
    const s = await open(bus, clock);
    const events: RolloutEvent[] = [];
    const r = await drive(clock, runRollout(s, { groupId: 'camlo', manifestUrl: MANIFEST, target: '1.3.0', waves: [10, 50, 100], maxFailurePct: 20, waveTimeoutMs: 600_000, when: 'idle', clock, progress: (e) => events.push(e) }));
    expect(r.waves.map((w) => [w.wave, w.boxes.length, w.committed.length, w.failed.length])).toEqual([
      [1, 1, 1, 0],
      [2, 4, 4, 0],
      [3, 5, 4, 1],
    ]);
    expect(r.waves[2]?.alreadyAtTarget).toEqual(['b-05']);
    expect(r.waves[2]?.failed).toEqual([{ id: 'b-07', why: 'phase rolled_back, code self_test, message encoder check failed' }]);
    expect(r).toMatchObject({ halted: false, haltedAtWave: null, committed: 9, failed: 1, online: 10 });
    expect(otaTargets(bus)).toEqual(ids.filter((id) => id !== 'b-05'));
    expect(events.map((e) => e.kind)).toEqual(['wave_start', 'wave_end', 'wave_start', 'wave_end', 'wave_start', 'wave_end']);
    const cmdIds = bus.published.map((p) => (JSON.parse(p.payload) as { id: string }).id);
    expect(new Set(cmdIds).size).toBe(cmdIds.length);
  });

  it('halts after a wave over the limit: later waves get nothing; refusals and silence are failures', async () => {
    const clock = new FakeClock();
    const ids = ['b-0', 'b-1', 'b-2', 'b-3', 'b-4'].map((x) => `${x}00`);
    const bus = new ScriptedBus(
      ids.flatMap((id) => [online(id, 'camlo'), stateMsg(id)]),
      otaBoxes({ 'b-000': 'commit', 'b-100': 'refuse', 'b-200': 'silent', 'b-300': 'commit', 'b-400': 'commit' }),
    );
    const s = await open(bus, clock);
    const t0 = clock.now();
    const r = await drive(clock, runRollout(s, { groupId: 'camlo', manifestUrl: MANIFEST, target: '1.3.0', waves: [20, 60, 100], maxFailurePct: 10, waveTimeoutMs: 30_000, when: 'idle', clock }));
    expect(r.waves.map((w) => w.boxes)).toEqual([['b-000'], ['b-100', 'b-200']]);
    expect(r.waves[1]?.failed).toEqual([
      { id: 'b-100', why: 'refused: failed (downgrade): downgrade: 1.3.0 is not newer than the running 1.4.0' },
      { id: 'b-200', why: 'no commit within 30 s and no reply' },
    ]);
    expect(r).toMatchObject({ halted: true, haltedAtWave: 2, notRun: [3], committed: 1, failed: 2 });
    expect(otaTargets(bus)).toEqual(['b-000', 'b-100', 'b-200']);
    // The silent box held the wave for its whole time, no longer.
    expect(clock.now() - t0).toBeGreaterThanOrEqual(30_000);
    expect(clock.now() - t0).toBeLessThan(31_000);
  });

  it('a failure retained before the command is not this rollout’s', async () => {
    const clock = new FakeClock();
    const old = stateMsg('b-000', { ota: { phase: 'failed', version: '1.3.0', code: 'download_failed', message: 'HTTP 503' } });
    const bus = new ScriptedBus([online('b-000', 'camlo'), old], otaBoxes({ 'b-000': 'commit' }));
    const s = await open(bus, clock);
    const r = await drive(clock, runRollout(s, { groupId: 'camlo', manifestUrl: MANIFEST, target: '1.3.0', waves: [100], maxFailurePct: 0, waveTimeoutMs: 60_000, when: 'idle', clock }));
    expect(r).toMatchObject({ halted: false, committed: 1, failed: 0 });
  });
});

describe('replies', () => {
  it('keeps the first reply per box to an id it sent; counts the rest', async () => {
    const clock = new FakeClock();
    const s = await open(new ScriptedBus([]), clock);
    s.track('c-dev', 'box-a');
    s.track('c-grp');
    const feed = ([t, p]: [string, string]): void => s.handle(t, Buffer.from(p), false);
    feed(reply('box-a', 'c-dev', 'ota', true));
    feed(reply('box-a', 'c-dev', 'ota', false, { code: 'busy', message: 'again' }));
    feed(reply('box-b', 'c-dev', 'ota', true)); // another box answering a device command's id
    feed(reply('box-b', 'c-grp', 'join', true));
    feed(reply('box-c', 'c-grp', 'join', false, { code: 'bad_request', message: 'x' }));
    feed(reply('box-c', 'c-unknown', 'join', true));
    feed([topics.reply('box-c'), JSON.stringify({ id: 'c-grp', deviceId: 'box-d', command: 'join', ok: true })]); // deviceId ≠ topic
    feed([topics.reply('box-c'), 'not json']);
    feed([topics.reply('box-c'), JSON.stringify({ id: 'c-grp' })]);
    expect([...s.repliesTo('c-dev').values()].map((r) => [r.deviceId, r.ok])).toEqual([['box-a', true]]);
    expect([...s.repliesTo('c-grp').values()].map((r) => [r.deviceId, r.ok, r.code])).toEqual([
      ['box-b', true, null],
      ['box-c', false, 'bad_request'],
    ]);
    expect(s.counts).toEqual({ malformedReplies: 2, otherReplies: 3, repliesOverCap: 0 });
  });
});
