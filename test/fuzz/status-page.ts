/**
 * The status page's input fuzzed against the real server (device/field/status-page.ts) on an
 * ephemeral port in this process: raw HTTP requests (any method, path, version, headers,
 * body, or bytes that are no request at all) and WebSocket sessions (PIN guesses, the right
 * PIN, JSON of any shape, binary, frames over the 1 KiB limit). The server stays up, answers
 * each complete request with a status it means, never sends the PIN, sends no data on a
 * socket before the right PIN, and its client table empties when the clients are gone. The
 * PIN guard alone (pin-guard.ts) gets sequences of guesses from many addresses over time.
 */
import net from 'node:net';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { PinGuard, StatusPageServer } from '../../device/field/status-page.js';
import { silentLogger } from '../../lib/index.js';
import { FakeClock, fieldView } from '../fakes/index.js';
import { HANG_MS, InputCounter, runProperty, withinMs, type FuzzTarget } from './property.js';

/** Digits only, as the config allows; 8 of them do not turn up by chance in a page or a nonce. */
const PIN = '48213957';
const SANE = new Set([100, 101, 200, 400, 403, 404, 405, 408, 413, 414, 431, 501, 503, 505]);

async function startPage(clock: FakeClock): Promise<{ server: StatusPageServer; port: number }> {
  const server = new StatusPageServer({ port: 0, host: '127.0.0.1', pin: PIN, view: () => fieldView(), health: () => null, logs: () => ['{"evt":"x","pin":"48213957"}'], subscribe: () => () => undefined, log: silentLogger(), clock });
  await server.start();
  return { server, port: server.address()!.port };
}

/** The server's client table (private: read for the bound only). */
const clientsOf = (s: StatusPageServer): number => (s as unknown as { clients: Set<unknown> }).clients.size;

const token = fc.oneof(fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'PATCH', 'get', 'G T'), fc.string({ minLength: 1, maxLength: 12, unit: 'binary-ascii' }));
const target = fc.oneof(fc.constantFrom('/', '/index.html', '/ws', '/ws?x=1', '/?a', '/../etc/passwd', '/%00', '*', 'http://evil/', `/${'x'.repeat(9000)}`, ''), fc.webPath(), fc.string({ maxLength: 30 }));
const header = fc.oneof(
  fc.constantFrom('Host: 127.0.0.1', 'Connection: close', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Origin: http://evil.example', 'Origin: http://127.0.0.1', 'Transfer-Encoding: chunked', 'Content-Length: 5', 'Content-Length: -1', 'Content-Length: 99999999999', `X-Big: ${'y'.repeat(9000)}`, 'Expect: 100-continue'),
  fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 })).map(([k, v]) => `${k}: ${v}`),
);

interface Req {
  bytes: Buffer;
  /** A whole request the server can answer at once (sent without EOF): it must get a status. */
  complete: boolean;
  head: boolean;
}

/** The request's body is all there: no chunked encoding, no Content-Length other than the body's. */
function bodyWhole(headers: string[], body: Uint8Array): boolean {
  const h = headers.map((x) => x.toLowerCase());
  if (h.some((x) => x.startsWith('transfer-encoding:'))) return false;
  return h.filter((x) => x.startsWith('content-length:')).every((x) => x.slice(15).trim() === String(body.length));
}

/**
 * A request: mostly HTTP/1.x with odd parts, else any bytes. A whole request goes without
 * EOF (Node's server drops the answer of a request whose client half-closed before it was
 * written); the rest ends with EOF, so the server cannot wait for more.
 */
const requestArb: fc.Arbitrary<Req> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ m: token, t: target, v: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1 '), h: fc.array(header, { maxLength: 8 }), body: fc.uint8Array({ maxLength: 200 }) }).map(({ m, t, v, h, body }) => ({
      bytes: Buffer.concat([Buffer.from(`${m} ${t} ${v}\r\n${['Connection: close', ...h].join('\r\n')}\r\n\r\n`, 'latin1'), Buffer.from(body)]),
      complete: bodyWhole(h, body),
      head: m === 'HEAD',
    })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((b) => ({ bytes: Buffer.from(b), complete: false, head: false })) },
);

/** Sends one request on a new connection and reads until the server closes it or the response is whole. */
function exchange(port: number, r: Req): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1');
    const whole = (): boolean => {
      const b = Buffer.concat(chunks);
      const end = b.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const h = b.subarray(0, end).toString('latin1');
      if (/^HTTP\/1\.1 101 /.test(h) || r.head) return true;
      const cl = /\r\ncontent-length: *(\d+)/i.exec(h);
      return cl !== null && b.length - end - 4 >= Number(cl[1]);
    };
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      if (whole()) s.destroy();
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('connect', () => (r.complete ? s.write(r.bytes) : s.end(r.bytes)));
    s.setTimeout(HANG_MS * 2, () => reject(new Error('no end to the exchange')));
  });
}

function http(counter: InputCounter, port: number, pageUp: () => Promise<void>): fc.IAsyncProperty<[Req[]]> {
  return fc.asyncProperty(fc.array(requestArb, { minLength: 1, maxLength: 10 }), async (reqs) => {
    for (const r of reqs) {
      counter.add();
      const got = await withinMs(exchange(port, r), HANG_MS, 'an HTTP exchange');
      const text = got.toString('latin1');
      if (text.includes(PIN)) throw new Error('the PIN in a response');
      if (got.length === 0 && !r.complete) continue;
      const status = /^HTTP\/1\.[01] (\d{3}) /.exec(text);
      if (!status) throw new Error(`no status line for a request (${r.bytes.subarray(0, 80).toString('latin1')}): ${JSON.stringify(text.slice(0, 80))}`);
      if (!SANE.has(Number(status[1]))) throw new Error(`status ${status[1]} for ${JSON.stringify(r.bytes.subarray(0, 120).toString('latin1'))}`);
    }
    await pageUp();
  });
}

interface Session {
  origin: string | null;
  messages: Array<{ data: Buffer | string; binary: boolean }>;
}

const guess = fc.oneof(fc.constant(PIN), fc.constantFrom('0000', '4821395', '48213957 ', ''), fc.string({ maxLength: 12 }));
const message = fc.oneof(
  guess.map((g) => ({ data: JSON.stringify({ pin: g }), binary: false })),
  fc.jsonValue({ maxDepth: 2 }).map((v) => ({ data: JSON.stringify(v) ?? 'null', binary: false })),
  fc.uint8Array({ maxLength: 64 }).map((b) => ({ data: Buffer.from(b), binary: true })),
  fc.integer({ min: 1025, max: 4000 }).map((n) => ({ data: JSON.stringify({ pin: 'x'.repeat(n) }), binary: false })),
);
const sessionArb: fc.Arbitrary<Session> = fc.record({ origin: fc.constantFrom(null, 'http://127.0.0.1', 'http://evil.example'), messages: fc.array(message, { maxLength: 4 }) });

/** One WebSocket session: what it received, how it closed. */
function wsSession(port: number, s: Session): Promise<{ data: string[]; code: number | null; reason: string; opened: boolean }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, s.origin ? { origin: s.origin } : {});
    const out = { data: [] as string[], code: null as number | null, reason: '', opened: false };
    ws.on('open', () => {
      out.opened = true;
      for (const m of s.messages) ws.send(m.data, { binary: m.binary });
      // Long enough for the server to answer what it was sent; then the client leaves.
      setTimeout(() => ws.close(), 30);
    });
    ws.on('message', (d: Buffer) => out.data.push(d.toString()));
    ws.on('unexpected-response', (_req, res) => ((out.code = res.statusCode ?? null), ws.terminate()));
    ws.on('error', () => undefined);
    ws.on('close', (code: number, reason: Buffer) => {
      out.code ??= code;
      out.reason = reason.toString();
      resolve(out);
    });
  });
}

function websocket(counter: InputCounter, port: number, clock: FakeClock, server: StatusPageServer): fc.IAsyncProperty<[Session[], boolean]> {
  return fc.asyncProperty(fc.array(sessionArb, { minLength: 1, maxLength: 5 }), fc.boolean(), async (sessions, later) => {
    // Sometimes a minute passes first: the PIN guard's locks and its per-minute cap end.
    if (later) await clock.advance(61_000);
    const results = await withinMs(Promise.all(sessions.map((s) => (counter.add(), wsSession(port, s)))), HANG_MS, 'WebSocket sessions');
    results.forEach((r, i) => {
      const s = sessions[i]!;
      if (r.data.some((d) => d.includes(PIN)) || r.reason.includes(PIN)) throw new Error('the PIN sent to a client');
      const first = s.messages[0];
      const rightPinFirst = first !== undefined && !first.binary && first.data === JSON.stringify({ pin: PIN });
      if (r.data.length > 0 && !rightPinFirst) throw new Error(`data before the right PIN (session ${JSON.stringify(s).slice(0, 200)})`);
      if (s.origin === 'http://evil.example' && (r.opened || r.code !== 403)) throw new Error(`a cross-site WebSocket ${r.opened ? 'opened' : `got ${r.code}`}`);
    });
    // Every client gone: the table empties.
    await withinMs(
      (async () => {
        while (clientsOf(server) > 0) await new Promise((r) => setTimeout(r, 5));
      })(),
      HANG_MS,
      'the client table to empty',
    );
  });
}

export const statusHttpTarget: FuzzTarget = {
  name: 'status-http',
  input: 'an HTTP request (or bytes) on its own connection to the status page',
  testRuns: 1_000,
  benchRuns: 2_000,
  run: async (runs, seed) => {
    const clock = new FakeClock();
    const { server, port } = await startPage(clock);
    const pageUp = async (): Promise<void> => {
      const r = (await withinMs(exchange(port, { bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), complete: true, head: false }), HANG_MS, 'the page')).toString();
      if (!r.startsWith('HTTP/1.1 200 ')) throw new Error(`the page is down: ${r.slice(0, 80)}`);
    };
    try {
      const counter = new InputCounter();
      return await runProperty('status-http', http(counter, port, pageUp), runs, seed, counter);
    } finally {
      await server.stop();
    }
  },
};

export const statusWsTarget: FuzzTarget = {
  name: 'status-ws',
  input: 'a WebSocket session (0–4 messages: PIN guesses, the PIN, JSON, binary, over 1 KiB)',
  testRuns: 500,
  benchRuns: 3_500,
  run: async (runs, seed) => {
    const clock = new FakeClock();
    const { server, port } = await startPage(clock);
    try {
      const counter = new InputCounter();
      return await runProperty('status-ws', websocket(counter, port, clock, server), runs, seed, counter);
    } finally {
      await server.stop();
    }
  },
};

/** The PIN guard alone: guesses from many addresses, time passing. */
function pinGuard(counter: InputCounter): fc.IProperty<[Array<{ address: number; right: boolean; advanceS: number }>]> {
  const step = fc.record({ address: fc.nat(400), right: fc.boolean(), advanceS: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 90 })) });
  return fc.property(fc.array(step, { minLength: 1, maxLength: 100 }), (steps) => {
    let now = 0;
    const g = new PinGuard(PIN, { now: () => now });
    const inside = g as unknown as { byAddress: Map<string, unknown>; recent: number[] };
    for (const s of steps) {
      counter.add();
      now += s.advanceS * 1000;
      const v = g.check(`10.0.${s.address >> 8}.${s.address & 255}`, s.right ? PIN : `${PIN.slice(0, 7)}${s.address % 10}x`);
      if (!s.right && v === 'ok') throw new Error('a wrong PIN accepted');
      if (inside.byAddress.size > 256 || inside.recent.length > 20) throw new Error(`guard tables ${inside.byAddress.size} addresses, ${inside.recent.length} recent`);
    }
    // A minute and more of quiet: the right PIN opens from any address.
    now += 61_000;
    if (g.check('10.0.0.1', PIN) !== 'ok') throw new Error('the right PIN refused after a quiet minute');
  });
}

export const pinGuardTarget: FuzzTarget = {
  name: 'pin-guard',
  input: 'a PIN check (address, right or wrong, time passing)',
  testRuns: 2_000,
  benchRuns: 20_000,
  run: async (runs, seed) => {
    const counter = new InputCounter();
    return runProperty('pin-guard', pinGuard(counter), runs, seed, counter);
  },
};
