import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CommandLedger, standInMessage, type CommandLedgerOptions, type LedgerDecision, type Reply, type StandInFacts } from '../../device/store/command-ledger.js';

let dir: string;
let file: string;
const ledgers: CommandLedger<Reply>[] = [];

async function ledger(over: Partial<CommandLedgerOptions<Reply>> = {}): Promise<CommandLedger> {
  const l = new CommandLedger({ file, now: () => 1_548_662_400_000, ...over });
  ledgers.push(l);
  await l.load();
  return l;
}

/** What the MQTT layer does with a command: run it once per id, answer every arrival. */
async function handle(l: CommandLedger, id: string, run: () => Promise<Reply>): Promise<Reply> {
  const b = l.begin(id, 'join');
  if (b.kind === 'done') return b.reply;
  if (b.kind === 'running') return b.done;
  await b.started;
  const reply = await run();
  await l.complete(id, reply);
  return reply;
}

function expectKind<K extends LedgerDecision['kind']>(d: LedgerDecision, kind: K): Extract<LedgerDecision, { kind: K }> {
  expect(d.kind).toBe(kind);
  return d as Extract<LedgerDecision, { kind: K }>;
}

/** The journal on disk, replayed: each id's last state, in first-arrival order. */
async function savedEntries(): Promise<Array<{ id: string; state: string; reply?: Reply | null }>> {
  const [header, ...lines] = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  expect(JSON.parse(header!)).toEqual({ v: 2, kind: 'command-ledger' });
  const out = new Map<string, { id: string; state: string; reply?: Reply | null }>();
  for (const l of lines.map((x) => JSON.parse(x) as { s: string; id: string; r?: Reply })) {
    out.set(l.id, l.s === 'start' ? { id: l.id, state: 'started' } : { id: l.id, state: 'done', reply: l.r ?? null });
  }
  return [...out.values()];
}

const okReply = (id: string, n = 1): Reply => ({ id, ok: true, result: { n } });

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-ledger-'));
  file = path.join(dir, 'commands.journal');
});

afterEach(async () => {
  await Promise.all(ledgers.splice(0).map((l) => l.stop()));
  await rm(dir, { recursive: true, force: true });
});

describe('CommandLedger', () => {
  it('runs a command once when the same id arrives twice in the same tick; both get the first reply', async () => {
    const l = await ledger();
    const run = vi.fn(async () => okReply('c-1'));
    const [a, b] = await Promise.all([handle(l, 'c-1', run), handle(l, 'c-1', run)]);
    expect(run).toHaveBeenCalledTimes(1);
    expect(a).toEqual(okReply('c-1'));
    expect(b).toEqual(okReply('c-1'));
  });

  it('decides synchronously: the second begin() of a running id is "running" and resolves with the reply', async () => {
    const l = await ledger();
    expectKind(l.begin('c-1', 'join'), 'new');
    const second = expectKind(l.begin('c-1', 'join'), 'running');
    await l.complete('c-1', okReply('c-1', 7));
    await expect(second.done).resolves.toEqual(okReply('c-1', 7));
  });

  it('answers an id that completed with its first reply, without running it again', async () => {
    const l = await ledger();
    const run = vi.fn(async () => okReply('c-1', run.mock.calls.length));
    expect(await handle(l, 'c-1', run)).toEqual(okReply('c-1', 1));
    expect(await handle(l, 'c-1', run)).toEqual(okReply('c-1', 1));
    expect(run).toHaveBeenCalledTimes(1);
    expect(expectKind(l.begin('c-1', 'join'), 'done').reply).toEqual(okReply('c-1', 1));
  });

  it('keeps the first reply when an id is completed twice', async () => {
    const l = await ledger();
    l.begin('c-1', 'join');
    await l.complete('c-1', okReply('c-1', 1));
    await l.complete('c-1', okReply('c-1', 2));
    expect(expectKind(l.begin('c-1', 'join'), 'done').reply).toEqual(okReply('c-1', 1));
  });

  it('stores a copy: changing the reply object afterwards changes nothing', async () => {
    const l = await ledger();
    l.begin('c-1', 'join');
    const r = okReply('c-1');
    await l.complete('c-1', r);
    r.ok = false;
    expect(expectKind(l.begin('c-1', 'join'), 'done').reply).toEqual(okReply('c-1'));
  });

  it('has the reply on disk when complete() resolves, and answers it after a restart', async () => {
    const l = await ledger();
    l.begin('c-1', 'join');
    await l.complete('c-1', okReply('c-1', 3));
    expect(await savedEntries()).toEqual([expect.objectContaining({ id: 'c-1', state: 'done', reply: okReply('c-1', 3) })]);
    await l.stop();
    const after = await ledger();
    const run = vi.fn(async () => okReply('c-1', 99));
    expect(await handle(after, 'c-1', run)).toEqual(okReply('c-1', 3));
    expect(run).not.toHaveBeenCalled();
  });

  it('marks a command started on disk before it runs', async () => {
    const l = await ledger();
    const b = expectKind(l.begin('c-1', 'join'), 'new');
    await b.started;
    expect(await savedEntries()).toEqual([expect.objectContaining({ id: 'c-1', state: 'started' })]);
  });

  it('answers a command interrupted by a restart as failed, and does not run it again', async () => {
    const warn = vi.fn();
    const l = await ledger();
    await expectKind(l.begin('c-ota', 'join'), 'new').started;
    await l.stop(); // the box dies here: no complete()

    const after = await ledger({ log: { warn } });
    const run = vi.fn(async () => okReply('c-ota'));
    const interrupted = { id: 'c-ota', command: 'join', ok: false, error: { code: 'failed', message: 'interrupted by a restart; not run again' } };
    expect(await handle(after, 'c-ota', run)).toEqual(interrupted);
    expect(run).not.toHaveBeenCalled();
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ evt: 'commands_interrupted', count: 1 }), expect.any(String));
    // The answer is saved, so it stays the same after yet another restart.
    await after.stop();
    expect(await savedEntries()).toEqual([expect.objectContaining({ id: 'c-ota', state: 'done', reply: interrupted })]);
    const third = await ledger();
    expect(expectKind(third.begin('c-ota', 'join'), 'done').reply).toEqual(interrupted);
  });

  it('builds stand-in replies with the given factory', async () => {
    const l = await ledger();
    await expectKind(l.begin('c-1', 'join'), 'new').started;
    await l.stop();
    const standIn = (f: StandInFacts): Reply => ({ id: f.id, deviceId: 'camlo-cam-thanh', command: f.command, ok: false, error: { code: 'failed', message: f.why } });
    const after = await ledger({ standIn });
    expect(expectKind(after.begin('c-1', 'join'), 'done').reply).toEqual({ id: 'c-1', deviceId: 'camlo-cam-thanh', command: 'join', ok: false, error: { code: 'failed', message: 'interrupted' } });
  });

  it('forgets the oldest answered ids past max, in memory and on disk', async () => {
    const l = await ledger({ maxIds: 3 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) {
      l.begin(id, 'join');
      await l.complete(id, okReply(id));
    }
    expect(l.size()).toBe(3);
    await l.stop();
    const after = await ledger({ maxIds: 3 });
    expect((await savedEntries()).map((e) => e.id)).toEqual(['c', 'd', 'e']); // compacted at load
    // (begin() of a new id records it, so ask about the remembered ones first.)
    expect(['c', 'd', 'e', 'a', 'b'].map((id) => after.begin(id, 'join').kind)).toEqual(['done', 'done', 'done', 'new', 'new']);
  });

  it('never forgets a command that is still running', async () => {
    const l = await ledger({ maxIds: 2 });
    expectKind(l.begin('slow', 'join'), 'new');
    for (const id of ['b', 'c', 'd']) {
      l.begin(id, 'join');
      await l.complete(id, okReply(id));
    }
    expect(l.begin('slow', 'join').kind).toBe('running');
    expect(l.begin('b', 'join').kind).toBe('new');
  });

  it('trims to a smaller max on load', async () => {
    const l = await ledger({ maxIds: 10 });
    for (const id of ['a', 'b', 'c']) {
      l.begin(id, 'join');
      await l.complete(id, okReply(id));
    }
    await l.stop();
    const after = await ledger({ maxIds: 2 });
    expect(after.size()).toBe(2);
    expect(after.begin('a', 'join').kind).toBe('new');
  });

  it('keeps a large reply in memory only, for bigReplyMs; then (and after a restart) a stand-in with its digest, still not run again', async () => {
    let now = 1_548_662_400_000;
    const l = await ledger({ diskReplyBytes: 100, bigReplyMs: 60_000, now: () => now });
    l.begin('c-logs', 'logs');
    const big = { id: 'c-logs', ok: true, result: { lines: Array.from({ length: 20 }, (_, i) => `line ${i}`) } };
    await l.complete('c-logs', big);
    expect(expectKind(l.begin('c-logs', 'logs'), 'done').reply).toEqual(big);
    expect(await savedEntries()).toEqual([expect.objectContaining({ id: 'c-logs', state: 'done', reply: null })]);
    const json = JSON.stringify(big);
    const facts = { id: 'c-logs', command: 'logs', why: 'reply_not_kept' as const, bytes: Buffer.byteLength(json), digest: createHash('sha256').update(json).digest('hex').slice(0, 16) };
    const standIn = { id: 'c-logs', command: 'logs', ok: false, error: { code: 'failed', message: standInMessage(facts) } };
    now += 60_001;
    expect(expectKind(l.begin('c-logs', 'join'), 'done').reply).toEqual(standIn);
    expect(l.keptBodyBytes()).toBe(0);
    await l.stop();
    const after = await ledger({ diskReplyBytes: 100 });
    expect(expectKind(after.begin('c-logs', 'logs'), 'done').reply).toEqual(standIn);
    expect(standIn.error.message).toMatch(/^already answered \(a \d+-byte reply, sha256 [0-9a-f]{16}…\) and that reply is no longer kept; not run again$/);
  });

  it('keeps reply bodies within maxBodyBytes: large ones go first, then the oldest; every id is still answered', async () => {
    const l = await ledger({ maxBodyBytes: 2000, diskReplyBytes: 300 });
    const small = (id: string): Reply => ({ id, ok: true, result: { pad: 'x'.repeat(100) } });
    const large = (id: string): Reply => ({ id, ok: true, result: { pad: 'y'.repeat(600) } });
    for (let i = 0; i < 30; i++) {
      const id = `c-${i}`;
      l.begin(id, 'logs');
      await l.complete(id, i % 3 === 0 ? large(id) : small(id));
      expect(l.keptBodyBytes()).toBeLessThanOrEqual(2000);
    }
    // The newest small replies are whole; the old ones are stand-ins; none runs again.
    expect(expectKind(l.begin('c-29', 'logs'), 'done').reply).toEqual(small('c-29'));
    expect(expectKind(l.begin('c-1', 'logs'), 'done').reply).toMatchObject({ ok: false, error: { code: 'failed' } });
    expect(l.size()).toBe(30);
  });

  it('records a refused command with answer(): the id keeps that first reply, whatever arrives under it later', async () => {
    const l = await ledger();
    const bad = { id: 'c-1', command: 'join', ok: false, error: { code: 'bad_request', message: 'args.send: is required' } };
    const first = l.answer('c-1', 'join', bad);
    expect('reply' in first && first.reply).toEqual(bad);
    if ('saved' in first) await first.saved;
    expect(expectKind(l.begin('c-1', 'join'), 'done').reply).toEqual(bad);
    const again = l.answer('c-1', 'leave', { id: 'c-1', command: 'leave', ok: false, error: { code: 'bad_request', message: 'other' } });
    expect('reply' in again && again.reply).toEqual(bad);
    await l.stop();
    const after = await ledger();
    expect(expectKind(after.begin('c-1', 'leave'), 'done').reply).toEqual(bad);
  });

  it('appends one line per start and per answer, and compacts the journal past the slack', async () => {
    const l = await ledger({ maxIds: 5, journalSlackLines: 10 });
    for (let i = 0; i < 40; i++) {
      l.begin(`c-${i}`, 'leave');
      await l.complete(`c-${i}`, okReply(`c-${i}`));
    }
    const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean).length - 1;
    expect(lines).toBeLessThanOrEqual(5 + 10 + 2);
    expect((await savedEntries()).map((e) => e.id).slice(-5)).toEqual(['c-35', 'c-36', 'c-37', 'c-38', 'c-39']);
  });

  it('drops a torn last line (power cut mid-append) and keeps everything before it', async () => {
    const l = await ledger();
    l.begin('c-1', 'join');
    await l.complete('c-1', okReply('c-1'));
    await l.stop();
    await writeFile(file, `${await readFile(file, 'utf8')}{"s":"done","id":"c-2","at":1,"c":"jo`);
    const warn = vi.fn();
    const after = await ledger({ log: { warn } });
    expect(expectKind(after.begin('c-1', 'join'), 'done').reply).toEqual(okReply('c-1'));
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ evt: 'ledger_torn_tail' }), expect.any(String));
    expect((await savedEntries()).map((e) => e.id)).toEqual(['c-1']); // compacted at load: the torn bytes are gone
  });

  it('still completes when the disk fails: the reply holds for this run and the failure is logged', async () => {
    const warn = vi.fn();
    const l = await ledger({ log: { warn } });
    const running = expectKind(l.begin('c-1', 'join'), 'new');
    await running.started;
    await rm(dir, { recursive: true }); // the data directory vanishes: saves fail
    await expect(l.complete('c-1', okReply('c-1'))).resolves.toBeUndefined();
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ evt: 'ledger_save_failed' }), expect.any(String));
    expect(expectKind(l.begin('c-1', 'join'), 'done').reply).toEqual(okReply('c-1'));
    // begin() of a new id does not throw either; its start mark just is not saved.
    await expect(expectKind(l.begin('c-2', 'join'), 'new').started).resolves.toBeUndefined();
  });

  it('moves a corrupt ledger aside and starts empty', async () => {
    await writeFile(file, '{"v":2,"kind":"command-ledger"}\n{"s":"done","id":"c-1"\n{"s":"start","id":"c-2","at":1,"c":"join"}\n');
    const warn = vi.fn();
    const l = await ledger({ log: { warn } });
    expect(l.size()).toBe(0);
    expect(l.begin('c-1', 'join').kind).toBe('new');
    expect((await readdir(dir)).some((n) => n.startsWith('commands.journal.corrupt-'))).toBe(true);
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ evt: 'ledger_quarantined' }), expect.any(String));
  });

  it('refuses to be used before load()', () => {
    const l = new CommandLedger({ file });
    expect(() => l.begin('x', 'join')).toThrow(/load\(\)/);
  });
});
