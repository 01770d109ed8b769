/**
 * The local control socket's bounds (device/control-socket.ts): a real Unix socket in a
 * temp dir; each request one reply; bad lines answered; clients, line size and a flood
 * bounded; mode 0660; a stale socket file from a killed agent does not stop a new one.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlServer, MAX_CONTROL_CLIENTS, controlRequest, controlSocketPath, parseControlLine } from '../../device/control-socket.js';
import { silentLogger } from '../../lib/index.js';

let dir: string;
let server: ControlServer;
let sock: string;
let slow: () => void = () => undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ep-ctl-'));
  sock = path.join(dir, 'control.sock');
  await writeFile(sock, 'left by a killed agent');
  server = new ControlServer({
    path: sock,
    deviceId: 'cam-thanh',
    log: silentLogger(),
    handler: async (req) => {
      if (req.command === 'slow') await new Promise<void>((r) => (slow = r));
      if (req.command === 'boom') throw new Error('it broke');
      return { ok: true, result: { echo: req.args } };
    },
  });
  await server.start();
});

afterAll(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

const connect = (): Promise<net.Socket> => new Promise((resolve, reject) => {
  const s = net.connect(sock, () => resolve(s));
  s.on('error', reject);
});
const lines = (s: net.Socket, n: number): Promise<Array<Record<string, unknown>>> =>
  new Promise((resolve) => {
    let buf = '';
    const got: Array<Record<string, unknown>> = [];
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        got.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
      if (got.length >= n) resolve(got);
    });
    s.on('close', () => resolve(got));
  });

describe('the control socket', () => {
  it('replaces a stale socket file, is 0660, answers in the contract envelope', async () => {
    expect((await stat(sock)).mode & 0o777).toBe(0o660);
    expect(await controlRequest(sock, 'status', { a: 1 })).toEqual({ id: expect.stringMatching(/^local-/), deviceId: 'cam-thanh', command: 'status', ok: true, result: { echo: { a: 1 } } });
  });

  it('one reply per line, in order; bad lines get bad_request; a throwing handler is failed', async () => {
    const s = await connect();
    const got = lines(s, 4);
    s.write('{"id":"a","command":"x"}\nnot json\n{"id":"b","command":"boom"}\n{"command":"x"}\n');
    expect(await got).toEqual([
      expect.objectContaining({ id: 'a', ok: true }),
      expect.objectContaining({ id: null, ok: false, error: { code: 'bad_request', message: 'not JSON' } }),
      expect.objectContaining({ id: 'b', ok: false, error: { code: 'failed', message: 'it broke' } }),
      expect.objectContaining({ id: null, ok: false, error: expect.objectContaining({ code: 'bad_request' }) }),
    ]);
    s.destroy();
  });

  it('a line over 64 KiB is refused and the client closed', async () => {
    const s = await connect();
    const got = lines(s, 1);
    s.write('x'.repeat(70_000));
    expect(await got).toEqual([expect.objectContaining({ ok: false, error: expect.objectContaining({ code: 'bad_request' }) })]);
  });

  it('a client that floods while its request waits is cut off, not buffered', async () => {
    const s = await connect();
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.write('{"id":"s","command":"slow"}\n');
    s.write(Array.from({ length: 40 }, (_, i) => `{"id":"f${i}","command":"x"}`).join('\n') + '\n');
    await closed;
    slow();
  });

  it(`at most ${MAX_CONTROL_CLIENTS} clients at once; the next is closed; the socket still answers after`, async () => {
    const held = await Promise.all(Array.from({ length: MAX_CONTROL_CLIENTS }, () => connect()));
    const extra = await connect();
    await new Promise<void>((r) => extra.on('close', () => r()));
    for (const h of held) h.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect((await controlRequest(sock, 'status')).ok).toBe(true);
  });

  it('parseControlLine and where the socket lives', () => {
    expect(parseControlLine('{"id":"x y","command":"c"}')).toEqual({ bad: 'id: must be 1–64 printable ASCII characters', id: null });
    expect(parseControlLine('[1]')).toEqual({ bad: 'must be an object', id: null });
    expect(parseControlLine('{"id":"i","command":"status"}')).toEqual({ id: 'i', command: 'status', args: {} });
    expect(controlSocketPath('/d', {})).toBe('/d/control.sock');
    expect(controlSocketPath('/d', { RUNTIME_DIRECTORY: '/run/commune-endpoint' })).toBe('/run/commune-endpoint/control.sock');
    expect(controlSocketPath('/d', { RUNTIME_DIRECTORY: '/run/x', EP_CONTROL_SOCKET: '/tmp/s.sock' })).toBe('/tmp/s.sock');
  });
});
