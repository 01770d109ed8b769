/**
 * The TCP relay itself (helpers/tcp-relay.ts), against a plain TCP server: what passes,
 * what a blackhole swallows (both ways, nothing closed, nothing replayed after `pass`),
 * connections accepted during a blackhole, and resets. Every wait is a hang guard; the
 * one sleep is a negative window (a FIN that must not cross), which can only miss one.
 */
import net, { type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TcpRelay } from './helpers/tcp-relay.js';
import { pollUntil, withTimeout } from './helpers/processes.js';

const GUARD_MS = 10_000;

/** A target that records what each accepted connection sent and how it ended. */
class Target {
  readonly conns: Array<{ s: Socket; data: string; ended: boolean; error: string | null }> = [];
  private constructor(readonly server: net.Server) {}
  static async start(): Promise<Target> {
    const server = net.createServer({ allowHalfOpen: true });
    const t = new Target(server);
    server.on('connection', (s) => {
      const c = { s, data: '', ended: false, error: null as string | null };
      t.conns.push(c);
      s.on('data', (d: Buffer) => (c.data += d.toString()));
      s.on('end', () => (c.ended = true));
      s.on('error', (e: Error & { code?: string }) => (c.error = e.code ?? e.message));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return t;
  }
  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }
  async close(): Promise<void> {
    for (const c of this.conns) c.s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A client of the relay that records what it received and how it ended. */
async function dial(port: number): Promise<{ s: Socket; data: () => string; ended: () => boolean; error: () => string | null }> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let data = '';
  let ended = false;
  let error: string | null = null;
  s.on('data', (d: Buffer) => (data += d.toString()));
  s.on('end', () => (ended = true));
  s.on('error', (e: Error & { code?: string }) => (error = e.code ?? e.message));
  await withTimeout(new Promise<void>((r) => s.once('connect', () => r())), GUARD_MS, 'the relay to accept');
  return { s, data: () => data, ended: () => ended, error: () => error };
}

let target: Target;
let relay: TcpRelay;
const clients: Socket[] = [];
const open = async (): Promise<Awaited<ReturnType<typeof dial>>> => {
  const c = await dial(relay.port);
  clients.push(c.s);
  return c;
};

beforeEach(async () => {
  target = await Target.start();
  relay = await TcpRelay.start({ host: '127.0.0.1', port: target.port });
});

afterEach(async () => {
  for (const s of clients.splice(0)) s.destroy();
  await relay.close();
  await target.close();
});

describe('TcpRelay', () => {
  it('passes bytes both ways; a blackhole swallows both ways without closing; pass replays nothing and the dead connection stays dead', async () => {
    const a = await open();
    a.s.write('hello');
    await pollUntil(() => target.conns[0]?.data === 'hello', GUARD_MS, 'hello at the target');
    target.conns[0]!.s.write('back');
    await pollUntil(() => a.data() === 'back', GUARD_MS, 'back at the client');
    expect(relay.stats()).toMatchObject({ open: 1, accepted: 1, bytesUp: 5, bytesDown: 4, bytesDropped: 0 });

    relay.setMode('blackhole');
    expect(relay.mode).toBe('blackhole');
    a.s.write('lost-up');
    target.conns[0]!.s.write('lost-down');
    await pollUntil(() => relay.stats().bytesDropped === 16, GUARD_MS, 'both writes discarded');
    // A new connection during the blackhole: accepted (the client's connect succeeded), swallowed, no target connection.
    const b = await open();
    b.s.write('never');
    await pollUntil(() => relay.stats().bytesDropped === 21, GUARD_MS, "the new connection's bytes discarded");
    expect(target.conns).toHaveLength(1);
    // A half-close does not cross a blackhole either (the negative window can only miss a FIN).
    a.s.end();
    await new Promise((r) => setTimeout(r, 300));
    expect(target.conns[0]).toMatchObject({ data: 'hello', ended: false, error: null });
    expect(a.data()).toBe('back');
    expect(a.error()).toBeNull();
    // a has given up (its FIN), b is open.
    expect(relay.stats()).toMatchObject({ open: 1, accepted: 2, bytesUp: 5, bytesDown: 4 });

    relay.setMode('pass');
    // Dead connections stay dead (nothing replayed, nothing new forwarded); a new one passes.
    target.conns[0]!.s.write('still-lost');
    b.s.write('still-never');
    await pollUntil(() => relay.stats().bytesDropped === 21 + 10 + 11, GUARD_MS, 'writes on dead connections discarded after pass');
    const c = await open();
    c.s.write('fresh');
    await pollUntil(() => target.conns[1]?.data === 'fresh', GUARD_MS, 'a new connection to pass');
    expect(target.conns).toHaveLength(2);
    expect(target.conns[0]).toMatchObject({ data: 'hello', ended: false });
    expect(a.data()).toBe('back');
    expect(b.data()).toBe('');
    expect(relay.stats()).toMatchObject({ accepted: 3, bytesUp: 10, bytesDown: 4 });

    // The client gives up (its FIN): no longer open; nothing crosses, nothing answers it.
    expect(relay.stats().open).toBe(2);
    b.s.destroy();
    await pollUntil(() => relay.stats().open === 1, GUARD_MS, 'the closed client to leave the count');
  });

  it('a passing pair closes end to end: a FIN crosses, and a close of one side closes the other', async () => {
    const a = await open();
    a.s.write('x');
    await pollUntil(() => target.conns[0]?.data === 'x', GUARD_MS, 'x at the target');
    a.s.end();
    await pollUntil(() => target.conns[0]!.ended, GUARD_MS, 'the FIN at the target');
    target.conns[0]!.s.end();
    await pollUntil(() => a.ended(), GUARD_MS, "the target's FIN at the client");
    await pollUntil(() => relay.stats().open === 0, GUARD_MS, 'the pair gone');
  });

  it('resetAll resets every connection on both sides', async () => {
    const a = await open();
    const b = await open();
    a.s.write('1');
    b.s.write('2');
    await pollUntil(() => target.conns.length === 2 && target.conns.every((c) => c.data !== ''), GUARD_MS, 'both connections at the target');
    relay.resetAll();
    await pollUntil(() => a.error() === 'ECONNRESET' && b.error() === 'ECONNRESET', GUARD_MS, 'RST at both clients');
    await pollUntil(() => target.conns.every((c) => c.error === 'ECONNRESET'), GUARD_MS, 'RST at the target');
    expect(relay.stats()).toMatchObject({ open: 0, accepted: 2 });
  });
});
