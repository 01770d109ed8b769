import type * as fsp from 'node:fs/promises';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventOutbox, type EventOutboxOptions, type OutboxEvent } from '../../device/store/outbox.js';
import { FakeClock, settle } from '../fakes/index.js';

// Count the atomic saves (each ends in one rename over the file), still doing them for real.
const saves = vi.hoisted(() => ({ renames: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof fsp>();
  const rename: typeof real.rename = async (from, to) => {
    saves.renames += 1;
    return real.rename(from, to);
  };
  return { ...real, default: { ...real, rename }, rename };
});

/**
 * A scriptable MQTT publish: 'ok' resolves at once, 'offline' rejects, 'hold' waits for
 * release(). Records every attempt and every success (PUBACK), and what was on disk when
 * each publish started.
 */
class Publisher {
  mode: 'ok' | 'offline' | 'hold' = 'ok';
  attempts: number[] = [];
  delivered: OutboxEvent[] = [];
  onDiskAtPublish: boolean[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private held: Array<() => void> = [];
  constructor(private readonly file: string) {}

  publish = async (e: OutboxEvent): Promise<void> => {
    this.attempts.push(e.seq);
    const onDisk = (JSON.parse(readFileSync(this.file, 'utf8')) as { events: OutboxEvent[] }).events;
    this.onDiskAtPublish.push(onDisk.some((d) => d.seq === e.seq && d.type === e.type));
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.mode === 'offline') throw new Error('offline');
      if (this.mode === 'hold') await new Promise<void>((r) => this.held.push(r));
      this.delivered.push(e);
    } finally {
      this.inFlight -= 1;
    }
  };

  release(): void {
    const h = this.held.shift();
    if (!h) throw new Error('nothing held');
    h();
  }

  seqs(): number[] {
    return this.delivered.map((e) => e.seq);
  }
}

let dir: string;
let file: string;
let clock: FakeClock;
const outboxes: EventOutbox[] = [];

function outbox(pub: Publisher, over: Partial<EventOutboxOptions> = {}): EventOutbox {
  const o = new EventOutbox({ file, clock, publish: pub.publish, ...over });
  outboxes.push(o);
  return o;
}

async function onDisk(): Promise<{ stream: string; nextSeq: number; events: OutboxEvent[] }> {
  return JSON.parse(await readFile(file, 'utf8')) as { stream: string; nextSeq: number; events: OutboxEvent[] };
}

/** Waits until `cond` holds, letting the file system and promises run (no sleeping on a fixed guess). */
async function until(cond: () => boolean, what: string): Promise<void> {
  await vi.waitFor(() => {
    if (!cond()) throw new Error(`still waiting for ${what}`);
  }, { timeout: 5000, interval: 2 });
}

const ev = (type: string) => ({ type, severity: 'info' as const });

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-outbox-'));
  file = path.join(dir, 'outbox.json');
  clock = new FakeClock('2019-01-28T08:00:00Z');
});

afterEach(async () => {
  await Promise.all(outboxes.splice(0).map((o) => o.stop()));
  await rm(dir, { recursive: true, force: true });
});

describe('EventOutbox', () => {
  it('delivers events in seq order, one at a time, each only after it is on disk', async () => {
    const pub = new Publisher(file);
    pub.mode = 'hold';
    const o = outbox(pub);
    await o.load();
    const added = await Promise.all(['a', 'b', 'c', 'd'].map((t) => o.add(ev(t))));
    expect(added.map((e) => [e.seq, e.type, e.ts])).toEqual([1, 2, 3, 4].map((s, i) => [s, 'abcd'[i], '2019-01-28T08:00:00.000Z']));
    for (let i = 1; i <= 4; i++) {
      await until(() => pub.attempts.length === i, `publish #${i}`);
      pub.release();
    }
    await until(() => o.pending() === 0, 'the queue to drain');
    expect(pub.seqs()).toEqual([1, 2, 3, 4]);
    expect(pub.maxInFlight).toBe(1);
    expect(pub.onDiskAtPublish).toEqual([true, true, true, true]);
    await o.stop(); // waits for the save of the last removal
    expect((await onDisk()).events).toEqual([]);
  });

  it('resolves add() only once the event is in the file', async () => {
    const pub = new Publisher(file);
    pub.mode = 'offline';
    const o = outbox(pub);
    await o.load();
    const many = Array.from({ length: 20 }, (_, i) => o.add({ type: `e${i}`, severity: 'warn', detail: { i } }));
    for (const p of many) {
      const e = await p;
      expect((await onDisk()).events.find((d) => d.seq === e.seq)).toEqual(e);
    }
    const saved = await onDisk();
    expect(saved.events.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(saved.nextSeq).toBe(21);
  });

  it('stops at the first failed publish and sends again, in order, on resume()', async () => {
    const pub = new Publisher(file);
    pub.mode = 'offline';
    const o = outbox(pub);
    await o.load();
    await o.add(ev('a'));
    await until(() => o.isPaused(), 'the pump to pause');
    await o.add(ev('b'));
    await o.add(ev('c'));
    expect(pub.attempts).toEqual([1]); // nothing more is tried while paused
    pub.mode = 'ok';
    o.resume();
    await until(() => o.pending() === 0, 'the queue to drain');
    expect(pub.attempts).toEqual([1, 1, 2, 3]);
    expect(pub.seqs()).toEqual([1, 2, 3]);
  });

  it('never delivers an event twice in normal operation, across pauses and a restart', async () => {
    const pub = new Publisher(file);
    const o = outbox(pub);
    await o.load();
    for (let round = 0; round < 5; round++) {
      pub.mode = round % 2 ? 'offline' : 'ok';
      await Promise.all(Array.from({ length: 7 }, (_, i) => o.add(ev(`r${round}-${i}`))));
      pub.mode = 'ok';
      o.resume();
    }
    await until(() => o.pending() === 0, 'the queue to drain');
    await o.stop();
    const again = outbox(pub);
    await again.load();
    await again.add(ev('after-restart'));
    await until(() => again.pending() === 0, 'the last event');
    expect(pub.seqs()).toEqual(Array.from({ length: 36 }, (_, i) => i + 1));
  });

  it('delivers what is left after a restart, in order, and seq continues', async () => {
    const offline = new Publisher(file);
    offline.mode = 'offline';
    const first = outbox(offline);
    await first.load();
    for (const t of ['a', 'b', 'c']) await first.add(ev(t));
    await first.stop();
    const stream = (await onDisk()).stream;

    const pub = new Publisher(file);
    const second = outbox(pub);
    await second.load();
    expect(second.stream).toBe(stream);
    const d = await second.add(ev('d'));
    expect(d.seq).toBe(4);
    await until(() => second.pending() === 0, 'the queue to drain');
    expect(pub.delivered.map((e) => `${e.seq}${e.type}`)).toEqual(['1a', '2b', '3c', '4d']);
    await second.stop();

    // An empty queue still remembers where seq is.
    const third = outbox(pub);
    await third.load();
    expect((await third.add(ev('e'))).seq).toBe(5);
  });

  it('drops the oldest past max and tells the hub with one events_dropped marker', async () => {
    const pub = new Publisher(file);
    pub.mode = 'offline';
    const warn = vi.fn();
    const o = outbox(pub, { max: 5, log: { warn } });
    await o.load();
    for (let i = 1; i <= 12; i++) await o.add(ev(`e${i}`));
    expect(o.pending()).toBe(5);
    const saved = await onDisk();
    expect(saved.events.map((e) => (e.type === 'events_dropped' ? e.detail : e.seq))).toEqual([{ count: 8, firstSeq: 1, lastSeq: 8 }, 9, 10, 11, 12]);
    expect(saved.events[0]).toMatchObject({ seq: 1, type: 'events_dropped', severity: 'warn' });
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ evt: 'events_dropped' }), expect.any(String));
    pub.mode = 'ok';
    o.resume();
    await until(() => o.pending() === 0, 'the queue to drain');
    expect(pub.delivered.map((e) => `${e.seq}:${e.type}`)).toEqual(['1:events_dropped', '9:e9', '10:e10', '11:e11', '12:e12']);
    expect(pub.delivered[0]?.detail).toEqual({ count: 8, firstSeq: 1, lastSeq: 8 });
  });

  it('never drops the event being published', async () => {
    const pub = new Publisher(file);
    pub.mode = 'hold';
    const o = outbox(pub, { max: 3 });
    await o.load();
    await o.add(ev('e1'));
    await until(() => pub.attempts.length === 1, 'e1 in flight');
    for (let i = 2; i <= 6; i++) await o.add(ev(`e${i}`));
    pub.mode = 'ok';
    pub.release();
    await until(() => o.pending() === 0, 'the queue to drain');
    expect(pub.delivered.map((e) => (e.type === 'events_dropped' ? e.detail : e.seq))).toEqual([1, { count: 4, firstSeq: 2, lastSeq: 5 }, 6]);
  });

  it('after a restart, sends the head found on disk as it is before folding anything into a marker (it may already be at the hub)', async () => {
    // A first run queued e1..e3 and crashed after e1's PUBACK, before the removal was saved.
    const offline = new Publisher(file);
    offline.mode = 'offline';
    const first = outbox(offline, { max: 4 });
    await first.load();
    for (const t of ['e1', 'e2', 'e3']) await first.add(ev(t));
    await first.stop();
    // The restart: still offline, and a burst overflows the queue before e1 goes again.
    const pub = new Publisher(file);
    pub.mode = 'offline';
    const second = outbox(pub, { max: 4 });
    await second.load();
    for (let i = 4; i <= 9; i++) await second.add(ev(`e${i}`));
    const saved = await onDisk();
    // e1 stays itself: a marker with seq 1 would be dropped by a hub that has seen seq 1,
    // and the drops it reports with it.
    expect(saved.events.map((e) => (e.type === 'events_dropped' ? e.detail : `${e.seq}${e.type}`))).toEqual(['1e1', { count: 6, firstSeq: 2, lastSeq: 7 }, '8e8', '9e9']);
    pub.mode = 'ok';
    second.resume();
    await until(() => second.pending() === 0, 'the queue to drain');
    expect(pub.delivered[0]).toMatchObject({ seq: 1, type: 'e1' });
    expect(pub.delivered.map((e) => e.seq)).toEqual([1, 2, 8, 9]);
  });

  it('moves a corrupt file aside and starts empty', async () => {
    await writeFile(file, '{"v":1,"stream":"ab","nextSeq":9,"events":[{"seq":3,');
    const warn = vi.fn();
    const pub = new Publisher(file);
    const o = outbox(pub, { log: { warn } });
    await o.load();
    expect(o.pending()).toBe(0);
    expect((await readdir(dir)).filter((n) => n.startsWith('outbox.json.corrupt-'))).toHaveLength(1);
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ evt: 'outbox_quarantined' }), expect.any(String));
    expect((await o.add(ev('x'))).seq).toBe(1);
    expect(o.stream).not.toBe('ab');
  });

  it('treats a file whose seqs go backwards as corrupt', async () => {
    const e = (seq: number) => ({ seq, type: 't', severity: 'info', ts: '2019-01-28T08:00:00Z' });
    await writeFile(file, JSON.stringify({ v: 1, stream: 'ab', nextSeq: 9, events: [e(4), e(3)] }));
    const o = outbox(new Publisher(file));
    await o.load();
    expect(o.pending()).toBe(0);
    expect((await readdir(dir)).some((n) => n.startsWith('outbox.json.corrupt-'))).toBe(true);
  });

  it('removes temp files a crash left behind', async () => {
    await writeFile(`${file}.tmp-4242-deadbeef`, '{"half');
    const o = outbox(new Publisher(file));
    await o.load();
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses invalid events without using a seq', async () => {
    const o = outbox(new Publisher(file), { maxEventBytes: 200 });
    await o.load();
    await expect(o.add({ type: 'events_dropped', severity: 'warn' })).rejects.toThrow(/reserved/);
    await expect(o.add({ type: 'x', severity: 'fatal' as 'error' })).rejects.toThrow(/severity/);
    await expect(o.add({ type: '', severity: 'info' })).rejects.toThrow(/type/);
    await expect(o.add({ type: 'big', severity: 'info', detail: { s: 'x'.repeat(300) } })).rejects.toThrow(/more than the 200/);
    expect((await o.add(ev('ok'))).seq).toBe(1);
  });

  it('keeps an event whose save failed, retries the save, and sends it only once saved', async () => {
    const pub = new Publisher(file);
    const o = outbox(pub, { retryMs: 1000 });
    await o.load();
    await o.add(ev('a'));
    await until(() => o.pending() === 0, 'a delivered');
    await rm(dir, { recursive: true, maxRetries: 10, retryDelay: 10 }); // the data directory vanishes: saves fail (retries: a removal save may still be writing its temp file)
    await expect(o.add(ev('b'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(clock.pending).toBe(1);
    expect(pub.attempts).toEqual([1]); // not sent while not on disk
    await mkdir(dir);
    await clock.next(); // the save's retry timer
    await until(() => o.pending() === 0, 'b delivered after the retry');
    expect(pub.seqs()).toEqual([1, 2]);
    expect(pub.onDiskAtPublish).toEqual([true, true]);
  });

  it('stop() cancels the retry timer and delivery', async () => {
    const pub = new Publisher(file);
    pub.mode = 'offline';
    const o = outbox(pub);
    await o.load();
    await o.add(ev('a'));
    await rm(dir, { recursive: true, maxRetries: 10, retryDelay: 10 });
    await expect(o.add(ev('b'))).rejects.toThrow();
    expect(clock.pending).toBe(1);
    await o.stop();
    expect(clock.pending).toBe(0);
    pub.mode = 'ok';
    o.resume();
    // No timer left to fire, and a stopped outbox starts no delivery of its own: resume()
    // returns before kicking the pump, so one turn of the event loop would show an attempt.
    expect(await clock.next()).toBe(false);
    await settle();
    expect(pub.attempts).toEqual([1]);
    expect(pub.delivered).toEqual([]);
  });

  it('coalesces the saves of adds made in the same tick into one write', async () => {
    const pub = new Publisher(file);
    pub.mode = 'offline';
    const o = outbox(pub);
    await o.load();
    saves.renames = 0;
    await Promise.all(Array.from({ length: 50 }, (_, i) => o.add(ev(`e${i}`))));
    expect(saves.renames).toBe(1);
    expect((await onDisk()).events).toHaveLength(50);
    // Adds awaited one by one each wait for their own write.
    await o.add(ev('x'));
    await o.add(ev('y'));
    expect(saves.renames).toBe(3);
  });
});
