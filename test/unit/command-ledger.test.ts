import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CommandLedger, STAND_IN_MESSAGES, type CommandLedgerOptions, type LedgerDecision, type Reply } from '../../device/store/command-ledger.js';

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
  const b = l.begin(id);
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

async function savedEntries(): Promise<Array<{ id: string; state: string; reply?: Reply | null }>> {
  return (JSON.parse(await readFile(file, 'utf8')) as { entries: Array<{ id: string; state: string; reply?: Reply | null }> }).entries;
}

const okReply = (id: string, n = 1): Reply => ({ id, ok: true, result: { n } });

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-ledger-'));
  file = path.join(dir, 'commands.json');
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
    expectKind(l.begin('c-1'), 'new');
    const second = expectKind(l.begin('c-1'), 'running');
    await l.complete('c-1', okReply('c-1', 7));
    await expect(second.done).resolves.toEqual(okReply('c-1', 7));
  });

  it('answers an id that completed with its first reply, without running it again', async () => {
    const l = await ledger();
    const run = vi.fn(async () => okReply('c-1', run.mock.calls.length));
    expect(await handle(l, 'c-1', run)).toEqual(okReply('c-1', 1));
    expect(await handle(l, 'c-1', run)).toEqual(okReply('c-1', 1));
    expect(run).toHaveBeenCalledTimes(1);
    expect(expectKind(l.begin('c-1'), 'done').reply).toEqual(okReply('c-1', 1));
  });

  it('keeps the first reply when an id is completed twice', async () => {
    const l = await ledger();
    l.begin('c-1');
    await l.complete('c-1', okReply('c-1', 1));
    await l.complete('c-1', okReply('c-1', 2));
    expect(expectKind(l.begin('c-1'), 'done').reply).toEqual(okReply('c-1', 1));
  });

  it('stores a copy: changing the reply object afterwards changes nothing', async () => {
    const l = await ledger();
    l.begin('c-1');
    const r = okReply('c-1');
    await l.complete('c-1', r);
    r.ok = false;
    expect(expectKind(l.begin('c-1'), 'done').reply).toEqual(okReply('c-1'));
  });

  it('has the reply on disk when complete() resolves, and answers it after a restart', async () => {
    const l = await ledger();
    l.begin('c-1');
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
    const b = expectKind(l.begin('c-1'), 'new');
    await b.started;
    expect(await savedEntries()).toEqual([expect.objectContaining({ id: 'c-1', state: 'started' })]);
  });

  it('answers a command interrupted by a restart as failed, and does not run it again', async () => {
    const warn = vi.fn();
    const l = await ledger();
    await expectKind(l.begin('c-ota'), 'new').started;
    await l.stop(); // the box dies here: no complete()

    const after = await ledger({ log: { warn } });
    const run = vi.fn(async () => okReply('c-ota'));
    const interrupted = { id: 'c-ota', ok: false, error: { code: 'failed', message: 'interrupted by a restart; not run again' } };
    expect(await handle(after, 'c-ota', run)).toEqual(interrupted);
    expect(run).not.toHaveBeenCalled();
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ evt: 'commands_interrupted', count: 1 }), expect.any(String));
    // The answer is saved, so it stays the same after yet another restart.
    await after.stop();
    expect(await savedEntries()).toEqual([expect.objectContaining({ id: 'c-ota', state: 'done', reply: interrupted })]);
    const third = await ledger();
    expect(expectKind(third.begin('c-ota'), 'done').reply).toEqual(interrupted);
  });

  it('builds stand-in replies with the given factory', async () => {
    const l = await ledger();
    await expectKind(l.begin('c-1'), 'new').started;
    await l.stop();
    const standIn = (id: string, why: string): Reply => ({ id, deviceId: 'camlo-cam-thanh', command: 'ota', ok: false, error: { code: 'failed', message: why } });
    const after = await ledger({ standIn });
    expect(expectKind(after.begin('c-1'), 'done').reply).toEqual(standIn('c-1', 'interrupted'));
  });

  it('forgets the oldest answered ids past max, in memory and on disk', async () => {
    const l = await ledger({ max: 3 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) {
      l.begin(id);
      await l.complete(id, okReply(id));
    }
    expect(l.size()).toBe(3);
    expect((await savedEntries()).map((e) => e.id)).toEqual(['c', 'd', 'e']);
    await l.stop();
    const after = await ledger({ max: 3 });
    // (begin() of a new id records it, so ask about the remembered ones first.)
    expect(['c', 'd', 'e', 'a', 'b'].map((id) => after.begin(id).kind)).toEqual(['done', 'done', 'done', 'new', 'new']);
  });

  it('never forgets a command that is still running', async () => {
    const l = await ledger({ max: 2 });
    expectKind(l.begin('slow'), 'new');
    for (const id of ['b', 'c', 'd']) {
      l.begin(id);
      await l.complete(id, okReply(id));
    }
    expect(l.begin('slow').kind).toBe('running');
    expect(l.begin('b').kind).toBe('new');
  });

  it('trims to a smaller max on load', async () => {
    const l = await ledger({ max: 10 });
    for (const id of ['a', 'b', 'c']) {
      l.begin(id);
      await l.complete(id, okReply(id));
    }
    await l.stop();
    const after = await ledger({ max: 2 });
    expect(after.size()).toBe(2);
    expect(after.begin('a').kind).toBe('new');
  });

  it('keeps a too-large reply in memory only; after a restart the id is still not run again', async () => {
    const l = await ledger({ maxReplyBytes: 100 });
    l.begin('c-logs');
    const big = { id: 'c-logs', ok: true, result: { lines: Array.from({ length: 20 }, (_, i) => `line ${i}`) } };
    await l.complete('c-logs', big);
    expect(expectKind(l.begin('c-logs'), 'done').reply).toEqual(big);
    expect(await savedEntries()).toEqual([expect.objectContaining({ id: 'c-logs', state: 'done', reply: null })]);
    await l.stop();
    const after = await ledger({ maxReplyBytes: 100 });
    expect(expectKind(after.begin('c-logs'), 'done').reply).toEqual({
      id: 'c-logs',
      ok: false,
      error: { code: 'failed', message: STAND_IN_MESSAGES.reply_not_kept },
    });
  });

  it('still completes when the disk fails: the reply holds for this run and the failure is logged', async () => {
    const warn = vi.fn();
    const l = await ledger({ log: { warn } });
    const running = expectKind(l.begin('c-1'), 'new');
    await running.started;
    await rm(dir, { recursive: true }); // the data directory vanishes: saves fail
    await expect(l.complete('c-1', okReply('c-1'))).resolves.toBeUndefined();
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ evt: 'ledger_save_failed' }), expect.any(String));
    expect(expectKind(l.begin('c-1'), 'done').reply).toEqual(okReply('c-1'));
    // begin() of a new id does not throw either; its start mark just is not saved.
    await expect(expectKind(l.begin('c-2'), 'new').started).resolves.toBeUndefined();
  });

  it('moves a corrupt ledger aside and starts empty', async () => {
    await writeFile(file, '{"v":1,"entries":[{"id":"c-1","st');
    const warn = vi.fn();
    const l = await ledger({ log: { warn } });
    expect(l.size()).toBe(0);
    expect(l.begin('c-1').kind).toBe('new');
    expect((await readdir(dir)).some((n) => n.startsWith('commands.json.corrupt-'))).toBe(true);
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ evt: 'ledger_quarantined' }), expect.any(String));
  });

  it('refuses to be used before load()', () => {
    const l = new CommandLedger({ file });
    expect(() => l.begin('x')).toThrow(/load\(\)/);
  });
});
