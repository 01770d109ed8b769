/**
 * The local status page (issue 16): what the clerk or the technician sees on a phone on the
 * commune's LAN — state, meeting, hub, health, faults with advice, the LED legend, the last
 * log lines, version and update — read-only, live over a WebSocket, no framework.
 *
 *   GET/HEAD /   the page (status-html.ts): a shell with no box data in it
 *   GET /ws      the WebSocket: a JSON snapshot on connect, on each change (bursts coalesced,
 *                at most one every 250 ms) and every 5 s (clock, health)
 *
 * What it serves is built from an allow-list of fields (statusSnapshot), never a whole object,
 * and log lines go through redactSecrets once more. With a PIN, the page asks for it and sends
 * it once per connection as the WebSocket's first message (never in a URL, so never in a
 * history or an access log); until it matches (constant-time compare, 5 wrong per address
 * then a minute's lock, 20 wrong a minute in all) the socket carries no data. Every bound is
 * below: clients, header size, idle times, frame size, a slow client's buffer.
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type * as WsModule from 'ws';
import type { WebSocketServer, WebSocket } from 'ws';
import type * as PageModule from './status-html.js';
import { PinGuard } from './pin-guard.js';
export { PIN_FAILURES_PER_ADDRESS, PIN_FAILURES_PER_MINUTE, PIN_LOCK_MS, PinGuard } from './pin-guard.js';
import { systemClock, type Clock, type Logger } from '../../lib/index.js';
import type { HealthSample } from '../contract/index.js';
import type { FieldView } from './model.js';
import { STATUS_LOG_LINES, statusSnapshot } from './status-snapshot.js';
export { STATUS_LOG_LINES, STATUS_LOG_LINE_CHARS, redactSecrets, statusSnapshot, type StatusHealth, type StatusSnapshot } from './status-snapshot.js';

export const STATUS_PAGE_PORT = 8080;
export const STATUS_WS_PATH = '/ws';
export const MAX_STATUS_CLIENTS = 16;
export const PUSH_EVERY_MS = 250;
export const REFRESH_MS = 5000;
/** Nothing a client may say is longer than `{"pin":"…"}`; bigger frames close the socket (1009). */
export const WS_MAX_PAYLOAD = 1024;
export const PIN_WAIT_MS = 10_000;
const PING_MS = 30_000;
const MAX_BUFFERED_BYTES = 1 << 20;
/** WebSocket close codes the page understands. */
export const CLOSE_PIN_REQUIRED = 4001;
export const CLOSE_PIN_WRONG = 4003;
export const CLOSE_PIN_LOCKED = 4029;

export interface StatusPageOptions {
  /** Default 8080; 0 = any free port (tests). */
  port?: number;
  host?: string;
  pin?: string | null;
  view: () => FieldView;
  health: () => HealthSample | null;
  /** The log ring's last n lines (already redacted by the logger). */
  logs: (n: number) => string[];
  /** Calls onChange on every change of the view; returns the unsubscribe. */
  subscribe: (onChange: () => void) => () => void;
  log: Logger;
  clock?: Clock;
  maxClients?: number;
  refreshMs?: number;
}

interface Client {
  ws: WebSocket;
  address: string;
  authed: boolean;
  alive: boolean;
  pinTimer: unknown;
}

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
} as const;

/** Checks the options a config can get wrong; the error names the field. */
function checkOptions(o: StatusPageOptions): void {
  const port = o.port ?? STATUS_PAGE_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`statusPage.port: must be an integer 0–65535, got ${JSON.stringify(o.port)}`);
  // The PIN itself is never put in the message.
  if (o.pin != null && (typeof o.pin !== 'string' || !/^[\x21-\x7e]{4,64}$/.test(o.pin))) throw new Error('statusPage.pin: must be 4–64 printable ASCII characters (or null for no PIN)');
}

/** WebSocket.OPEN (a constant of the protocol; `ws` itself loads with the first viewer). */
const WS_OPEN = 1;
let wsModule: Promise<typeof WsModule> | null = null;
const loadWs = (): Promise<typeof WsModule> => (wsModule ??= import('ws'));
let pageModule: Promise<typeof PageModule> | null = null;
const loadPage = (): Promise<typeof PageModule> => (pageModule ??= import('./status-html.js'));

export class StatusPageServer {
  /** The listener from start(); node:http loads with its first connection (httpServer()). */
  private server: net.Server | null = null;
  private http: Promise<http.Server> | null = null;
  private statusCodes: Record<number, string | undefined> = {};
  private wss: WebSocketServer | null = null;
  private readonly clients = new Set<Client>();
  private readonly clock: Clock;
  private readonly guard: PinGuard | null;
  private unsubscribe: (() => void) | null = null;
  private pushTimer: unknown = null;
  private refreshTimer: unknown = null;
  private pingTimer: unknown = null;
  private lastPush = -Infinity;

  constructor(private readonly o: StatusPageOptions) {
    checkOptions(o);
    this.clock = o.clock ?? systemClock;
    this.guard = o.pin == null ? null : new PinGuard(o.pin, this.clock);
  }

  address(): { host: string; port: number } | null {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
  }

  async start(): Promise<void> {
    if (this.server) return;
    // A plain TCP listener: an idle box (nobody looking) does not carry node:http (the agent's idle memory).
    const server = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
    server.maxConnections = 4 * (this.o.maxClients ?? MAX_STATUS_CLIENTS);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port ?? STATUS_PAGE_PORT, this.o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.o.log.warn({ evt: 'status_page.error', err: e.message }, 'status page server error'));
    this.server = server;
    this.unsubscribe = this.o.subscribe(() => this.changed());
    this.refreshTimer = this.clock.setInterval(() => this.pushAll(), this.o.refreshMs ?? REFRESH_MS);
    this.pingTimer = this.clock.setInterval(() => this.heartbeat(), PING_MS);
    const a = this.address();
    this.o.log.info({ evt: 'status_page.listening', host: a?.host, port: a?.port, pin: this.guard !== null }, `status page on port ${a?.port}`);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    for (const t of [this.pushTimer]) if (t !== null) this.clock.clearTimeout(t);
    for (const t of [this.refreshTimer, this.pingTimer]) if (t !== null) this.clock.clearInterval(t);
    this.pushTimer = this.refreshTimer = this.pingTimer = null;
    for (const c of this.clients) {
      if (c.pinTimer !== null) this.clock.clearTimeout(c.pinTimer);
      c.ws.terminate();
    }
    this.clients.clear();
    this.wss?.close();
    this.wss = null;
    const closed = new Promise<void>((r) => server.close(() => r()));
    const h = await this.http?.catch(() => null);
    this.http = null;
    if (h) {
      h.close();
      h.closeAllConnections();
    }
    await closed;
  }

  /** A connection to the listener: handed to the HTTP server (made with the first one). */
  private accept(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    void this.httpServer().then(
      (h) => {
        if (!this.server || socket.destroyed) return socket.destroy();
        h.emit('connection', socket);
        socket.resume();
      },
      () => socket.destroy(),
    );
  }

  private httpServer(): Promise<http.Server> {
    this.http ??= import('node:http').then(({ default: http }) => {
      const h = http.createServer({ maxHeaderSize: 8192, headersTimeout: 10_000, requestTimeout: 15_000, keepAliveTimeout: 5000 }, (req, res) => this.onRequest(req, res));
      h.maxHeadersCount = 64;
      h.timeout = 30_000;
      h.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
      // CONNECT is a method like the others the page refuses: without a listener Node drops the connection unanswered.
      h.on('connect', (_req, socket: Duplex) => {
        socket.on('error', () => socket.destroy());
        socket.once('finish', () => socket.destroy());
        socket.end('HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      });
      h.on('error', (e) => this.o.log.warn({ evt: 'status_page.error', err: e.message }, 'status page server error'));
      // Its connections come from our listener, so it never listens itself: 'listening' starts
      // the checks that enforce headersTimeout/requestTimeout (Node's http server does that on it).
      h.emit('listening');
      this.statusCodes = http.STATUS_CODES;
      return h;
    });
    return this.http;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...SECURITY_HEADERS, Allow: 'GET, HEAD', Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('405: this page is read-only (GET, HEAD)\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/' && path !== '/index.html') {
      res.writeHead(404, { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('404\n');
      return;
    }
    void loadPage().then(
      (page) => this.sendPage(req, res, page.renderStatusHtml),
      (e: unknown) => {
        this.o.log.error({ evt: 'status_page.load_failed', err: (e as Error).message }, 'status page: cannot load the page');
        res.writeHead(500, SECURITY_HEADERS).end();
      },
    );
  }

  private sendPage(req: http.IncomingMessage, res: http.ServerResponse, render: (o: { nonce: string; pinRequired: boolean }) => string): void {
    const nonce = randomBytes(16).toString('base64');
    const body = render({ nonce, pinRequired: this.guard !== null });
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Content-Security-Policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (code: number): void => {
      socket.once('finish', () => socket.destroy());
      socket.end(`HTTP/1.1 ${code} ${this.statusCodes[code] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    socket.on('error', () => socket.destroy());
    if ((req.url ?? '').split('?')[0] !== STATUS_WS_PATH) return refuse(404);
    // Another site's page in the clerk's browser may not read the box (cross-site WebSocket).
    const origin = req.headers.origin;
    if (origin !== undefined && !sameHost(origin, req.headers.host)) return refuse(403);
    if (this.clients.size >= (this.o.maxClients ?? MAX_STATUS_CLIENTS) || !this.server) {
      this.o.log.debug({ evt: 'status_page.refused', clients: this.clients.size }, 'status page: too many clients');
      return refuse(503);
    }
    // `ws` loads with the first viewer: a box nobody looks at does not carry it (the agent's idle memory).
    void loadWs().then(
      ({ WebSocketServer }) => {
        if (!this.server || socket.destroyed) return socket.destroy();
        this.wss ??= new WebSocketServer({ noServer: true, maxPayload: WS_MAX_PAYLOAD, perMessageDeflate: false, clientTracking: false });
        this.wss.handleUpgrade(req, socket, head, (ws) => this.onClient(ws, req.socket.remoteAddress ?? '?'));
      },
      () => refuse(500),
    );
  }

  private onClient(ws: WebSocket, address: string): void {
    const c: Client = { ws, address, authed: this.guard === null, alive: true, pinTimer: null };
    this.clients.add(c);
    ws.on('close', () => {
      if (c.pinTimer !== null) this.clock.clearTimeout(c.pinTimer);
      this.clients.delete(c);
    });
    ws.on('error', () => ws.terminate());
    ws.on('pong', () => (c.alive = true));
    ws.on('message', (data: Buffer) => this.onMessage(c, data));
    if (c.authed) this.send(c, this.snapshotJson());
    else c.pinTimer = this.clock.setTimeout(() => ws.close(CLOSE_PIN_REQUIRED, 'PIN required'), PIN_WAIT_MS);
  }

  /** The page is read-only: the one message a client may send is its PIN, first. */
  private onMessage(c: Client, data: Buffer): void {
    if (c.authed || !this.guard || c.pinTimer === null) return;
    this.clock.clearTimeout(c.pinTimer);
    c.pinTimer = null;
    let pin = '';
    try {
      const m = JSON.parse(data.toString('utf8')) as unknown;
      const o = typeof m === 'object' && m !== null ? (m as Record<string, unknown>) : {};
      if (typeof o.pin === 'string') pin = o.pin;
    } catch {
      // not JSON: a wrong PIN like any other
    }
    const verdict = this.guard.check(c.address, pin);
    if (verdict === 'ok') {
      c.authed = true;
      this.send(c, this.snapshotJson());
      return;
    }
    this.o.log.warn({ evt: 'status_page.pin_refused', address: c.address, verdict }, 'status page: wrong PIN');
    if (verdict === 'locked') c.ws.close(CLOSE_PIN_LOCKED, 'too many wrong PINs: wait a minute');
    else c.ws.close(CLOSE_PIN_WRONG, 'wrong PIN');
  }

  private snapshotJson(): string | null {
    try {
      return JSON.stringify(statusSnapshot(this.o.view(), this.o.health(), this.o.logs(STATUS_LOG_LINES)));
    } catch (e) {
      this.o.log.warn({ evt: 'status_page.snapshot_failed', err: (e as Error).message }, 'status page: could not build the snapshot');
      return null;
    }
  }

  private send(c: Client, json: string | null): void {
    if (json === null || c.ws.readyState !== WS_OPEN) return;
    // A client that does not read (a phone gone to sleep on a slow link) is cut, not buffered.
    if (c.ws.bufferedAmount > MAX_BUFFERED_BYTES) return void c.ws.terminate();
    c.ws.send(json);
  }

  /** Bursts of changes become one push, at most one every PUSH_EVERY_MS. */
  private changed(): void {
    if (this.pushTimer !== null || !this.server) return;
    const wait = Math.max(0, this.lastPush + PUSH_EVERY_MS - this.clock.now());
    this.pushTimer = this.clock.setTimeout(() => {
      this.pushTimer = null;
      this.pushAll();
    }, wait);
  }

  private pushAll(): void {
    this.lastPush = this.clock.now();
    const authed = [...this.clients].filter((c) => c.authed);
    if (authed.length === 0) return;
    const json = this.snapshotJson();
    for (const c of authed) this.send(c, json);
  }

  private heartbeat(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }
}

function sameHost(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}
