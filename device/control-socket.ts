/**
 * The agent's local control socket: how `ep status` (and, later, the technician's other
 * local commands) talk to the running agent without the hub. A Unix stream socket, mode
 * 0660 (the service's group may talk to it), one JSON request per line, one reply per
 * request in the contract's reply envelope:
 *
 *   → {"id":"s-1","command":"status"}
 *   ← {"id":"s-1","deviceId":"cam-thanh","command":"status","ok":true,"result":{…}}
 *
 * Everything remote input could grow is bounded: clients (8), a request line (64 KiB,
 * the contract's payload cap), one request in flight per client, an idle client closed
 * after 30 s. A line that is not a request still gets its one reply (`bad_request`).
 *
 * Where: `$RUNTIME_DIRECTORY/control.sock` under systemd (RuntimeDirectory=, /run: gone at
 * reboot, never on the SD card), else `EP_CONTROL_SOCKET`, else `<dataDir>/control.sock`.
 */
import { chmod, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { COMMAND_NAMES, MAX_PAYLOAD_BYTES } from './contract/index.js';
import type { Logger } from '../lib/index.js';

export const CONTROL_SOCKET_NAME = 'control.sock';
export const MAX_CONTROL_CLIENTS = 8;
export const CONTROL_IDLE_MS = 30_000;
/** The system path `ep status` tries first (RuntimeDirectory=commune-endpoint). */
export const SYSTEM_CONTROL_SOCKET = '/run/commune-endpoint/control.sock';

export function controlSocketPath(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.EP_CONTROL_SOCKET) return path.resolve(env.EP_CONTROL_SOCKET);
  if (env.RUNTIME_DIRECTORY) return path.join(env.RUNTIME_DIRECTORY.split(':')[0]!, CONTROL_SOCKET_NAME);
  return path.join(dataDir, CONTROL_SOCKET_NAME);
}

export interface ControlRequest {
  id: string;
  command: string;
  args: unknown;
}

export type ControlReply = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

/** Answers one request (never throws: an exception is replied as `failed`). */
export type ControlHandler = (req: ControlRequest) => Promise<ControlReply>;

const ID = /^[\x21-\x7e]{1,64}$/;

/** Parses one request line; a reply for a bad one. */
export function parseControlLine(line: string): ControlRequest | { bad: string; id: string | null } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { bad: 'not JSON', id: null };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { bad: 'must be an object', id: null };
  const o = v as Record<string, unknown>;
  const id = typeof o.id === 'string' && ID.test(o.id) ? o.id : null;
  if (id === null) return { bad: 'id: must be 1–64 printable ASCII characters', id: null };
  if (typeof o.command !== 'string' || o.command.length > 64) return { bad: 'command: must be a string', id };
  return { id, command: o.command, args: o.args ?? {} };
}

/** True for the contract's commands (CONTRACT.md § Commands). */
export const isContractCommand = (c: string): boolean => (COMMAND_NAMES as readonly string[]).includes(c);

export class ControlServer {
  private server: net.Server | null = null;
  private readonly clients = new Set<net.Socket>();

  constructor(
    private readonly o: { path: string; deviceId: string | null; handler: ControlHandler; log: Logger },
  ) {}

  get path(): string {
    return this.o.path;
  }

  async start(): Promise<void> {
    // A socket file left by a killed agent would make listen() fail with EADDRINUSE.
    await unlink(this.o.path).catch(() => undefined);
    const server = net.createServer((s) => this.accept(s));
    server.maxConnections = MAX_CONTROL_CLIENTS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.o.log.warn({ evt: 'control.error', err: e.message }, 'control socket error'));
    await chmod(this.o.path, 0o660);
    this.server = server;
    this.o.log.info({ evt: 'control.listening', path: this.o.path }, `local control socket at ${this.o.path}`);
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
    await unlink(this.o.path).catch(() => undefined);
  }

  private accept(sock: net.Socket): void {
    this.clients.add(sock);
    sock.setTimeout(CONTROL_IDLE_MS, () => sock.destroy());
    sock.on('close', () => this.clients.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    let busy = false;
    const queue: string[] = [];
    const send = (id: string | null, command: string, r: ControlReply): void => {
      if (!sock.writable) return;
      sock.write(`${JSON.stringify({ id, deviceId: this.o.deviceId, command, ...r })}\n`);
    };
    const next = async (): Promise<void> => {
      if (busy) return;
      const line = queue.shift();
      if (line === undefined) return;
      busy = true;
      // Idle means no request: a long one (a selftest: up to a minute) is not cut while it runs.
      sock.setTimeout(0);
      const req = parseControlLine(line);
      if ('bad' in req) send(req.id, '', { ok: false, error: { code: 'bad_request', message: req.bad } });
      else {
        let r: ControlReply;
        try {
          r = await this.o.handler(req);
        } catch (e) {
          r = { ok: false, error: { code: 'failed', message: (e as Error).message } };
        }
        send(req.id, req.command, r);
      }
      busy = false;
      sock.setTimeout(CONTROL_IDLE_MS);
      void next();
    };
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_PAYLOAD_BYTES && !buf.includes('\n')) {
        send(null, '', { ok: false, error: { code: 'bad_request', message: `request over ${MAX_PAYLOAD_BYTES} bytes` } });
        sock.end();
        sock.pause();
        return;
      }
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        // One in flight and a few waiting; a client that floods is cut off, not buffered.
        if (line && queue.length >= 16) {
          sock.destroy();
          return;
        }
        if (line) queue.push(line);
      }
      void next();
    });
  }
}

/** One request to the agent over its socket: the reply, or an Error whose `code` says why (ENOENT, ECONNREFUSED: not running). */
export function controlRequest(socketPath: string, command: string, args: unknown = {}, timeoutMs = 10_000): Promise<{ ok: boolean; result?: unknown; error?: { code: string; message: string }; deviceId?: string | null }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(Object.assign(new Error(`no answer from the agent within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify({ id: `local-${process.pid}-${Date.now()}`, command, args })}\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i < 0) return;
      clearTimeout(timer);
      sock.end();
      try {
        resolve(JSON.parse(buf.slice(0, i)) as { ok: boolean });
      } catch (e) {
        reject(e as Error);
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // Closed by the agent without an answer (it stopped, or cut the connection): say so now, not at the timeout.
    sock.on('close', () => {
      clearTimeout(timer);
      reject(Object.assign(new Error('the agent closed the connection without an answer'), { code: 'ECONNRESET' }));
    });
  });
}
