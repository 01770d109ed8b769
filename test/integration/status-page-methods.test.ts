/**
 * The status page refuses every method but GET and HEAD with a 405 — CONNECT too, which
 * Node's HTTP server hands to a `connect` listener or else drops unanswered (the
 * status-page fuzz found the dropped connection: test/fuzz/status-page.ts).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusPageServer } from '../../device/field/status-page.js';
import { silentLogger } from '../../lib/index.js';
import { FakeClock, fieldView } from '../fakes/index.js';
import { withTimeout } from './helpers/processes.js';

let server: StatusPageServer;
let port: number;

beforeAll(async () => {
  server = new StatusPageServer({ port: 0, host: '127.0.0.1', pin: null, view: () => fieldView(), health: () => null, logs: () => [], subscribe: () => () => undefined, log: silentLogger(), clock: new FakeClock() });
  await server.start();
  port = server.address()!.port;
});
afterAll(() => server.stop());

/** Sends `request` (no EOF: each asks Connection: close) and reads until the server closes the connection. */
function exchange(request: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => s.write(request));
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
  });
}

describe('status page methods', () => {
  it.each(['CONNECT hub.example:443 HTTP/1.1\r\nHost: hub.example:443\r\nConnection: close\r\n\r\n', 'CONNECT  HTTP/1.1\r\nConnection: close\r\n\r\n', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'])(
    'answers 405 with Allow: GET, HEAD to %j',
    async (request) => {
      const response = await withTimeout(exchange(request), 15_000, 'the response');
      expect(response).toMatch(/^HTTP\/1\.1 405 /);
      expect(response).toMatch(/\r\nAllow: GET, HEAD\r\n/i);
    },
  );

  it('still serves the page after them', async () => {
    expect(await withTimeout(exchange('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 15_000, 'the page')).toMatch(/^HTTP\/1\.1 200 /);
  });
});
