/**
 * `ep logs [-f] [--since TIME] [--lines N] [--file PATH] [--json]`: the agent's log for a
 * person. The agent logs pino JSON to stdout, which systemd keeps in the journal
 * (`journalctl -u commune-endpoint -o cat` gives the JSON lines back); `--file` reads a
 * log file instead (a copy taken off the box, a test). Each JSON line goes through
 * pino-pretty; anything else (a crash's stack, GStreamer's own lines) passes as it is.
 * `--json` prints the lines untouched. `-f` follows until Ctrl-C (SIGINT) or the end of
 * the stream. Says plainly when there is no journalctl or the unit has no entries.
 */
import { spawn } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { prettyFactory } from 'pino-pretty';
import { useColor } from './status.js';

type Out = (s: string) => void;

export const SERVICE_UNIT = 'commune-endpoint';
export const DEFAULT_LINES = 200;
export const MAX_LINES = 100_000;
/** A file is read from at most its last 32 MiB (the last N lines of a huge log need no more). */
const FILE_TAIL_BYTES = 32 * 1024 * 1024;
/** How often a followed file is looked at for new lines. */
const FOLLOW_POLL_MS = 250;

export interface LogsOptions {
  /** For tests: how long before giving up on a stalled follow; default: follow until SIGINT. */
  signal?: AbortSignal;
  color?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** `--since` for a file: an ISO date/time, or a span back from now (`30s`, `10m`, `2h`, `1d`). Null: not understood. */
export function parseSince(v: string, now = Date.now()): number | null {
  const rel = /^(\d{1,6})\s*(s|m|min|h|d)$/.exec(v.trim());
  if (rel) return now - Number(rel[1]) * { s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'min' | 'h' | 'd'];
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

/** Turns one log line into what is printed: pretty for pino JSON, as it is otherwise. */
export function lineFormatter(o: { json: boolean; color: boolean }): (line: string) => string {
  if (o.json) return (l) => l;
  const pretty = prettyFactory({ colorize: o.color, translateTime: 'SYS:standard', ignore: 'pid,hostname' });
  return (l) => {
    if (!l.trimStart().startsWith('{')) return l;
    return pretty(l).replace(/\n+$/, '');
  };
}

const timeOf = (line: string): number | null => {
  if (!line.startsWith('{')) return null;
  try {
    const t = (JSON.parse(line) as { time?: unknown }).time;
    return typeof t === 'number' ? t : typeof t === 'string' ? Date.parse(t) : null;
  } catch {
    return null;
  }
};

export async function logsCommand(argv: string[], out: Out, err: Out, o: LogsOptions = {}): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      follow: { type: 'boolean', short: 'f', default: false },
      since: { type: 'string' },
      lines: { type: 'string', short: 'n' },
      file: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const lines = values.lines === undefined ? DEFAULT_LINES : Number(values.lines);
  if (!Number.isInteger(lines) || lines < 1 || lines > MAX_LINES) {
    err(`ep logs: --lines must be a whole number from 1 to ${MAX_LINES}`);
    return 2;
  }
  const format = lineFormatter({ json: values.json, color: o.color ?? useColor() });
  const stop = o.signal ?? sigint();
  if (values.file !== undefined) {
    let since: number | null = null;
    if (values.since !== undefined) {
      since = parseSince(values.since);
      if (since === null) {
        err('ep logs: --since must be a date/time (2026-12-06T08:00, 2026-12-06 08:00) or a span back from now (30s, 10m, 2h, 1d)');
        return 2;
      }
    }
    return fromFile(values.file, { lines, since, follow: values.follow, format, out, err, stop });
  }
  return fromJournal({ lines, since: values.since ?? null, follow: values.follow, format, out, err, stop, env: o.env ?? process.env });
}

/** Aborted on the first SIGINT (Ctrl-C); the listener goes with it. */
function sigint(): AbortSignal {
  const ac = new AbortController();
  const on = (): void => ac.abort();
  process.once('SIGINT', on);
  ac.signal.addEventListener('abort', () => process.off('SIGINT', on));
  return ac.signal;
}

interface Run {
  lines: number;
  follow: boolean;
  format: (l: string) => string;
  out: Out;
  err: Out;
  stop: AbortSignal;
}

async function fromJournal(r: Run & { since: string | null; env: NodeJS.ProcessEnv }): Promise<number> {
  const args = ['-u', SERVICE_UNIT, '-o', 'cat', '--no-pager', ...(r.since !== null ? ['--since', r.since] : []), ...(r.since === null || r.follow ? ['-n', String(r.lines)] : []), ...(r.follow ? ['-f'] : [])];
  const child = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'pipe'], env: r.env });
  let errText = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (errText = (errText + d).slice(-4096)));
  const spawned = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (e) => resolve(e));
  });
  if (spawned) {
    r.err(spawned.code === 'ENOENT' ? 'ep logs: journalctl is not installed here (no systemd journal); read a log file with: ep logs --file PATH' : `ep logs: cannot run journalctl: ${spawned.message}`);
    return 1;
  }
  const onStop = (): void => void child.kill('SIGTERM');
  r.stop.addEventListener('abort', onStop, { once: true });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const n = await pump(child.stdout, r);
  const code = await exited;
  r.stop.removeEventListener('abort', onStop);
  if (r.stop.aborted) return 0;
  if (code !== 0) {
    r.err(`ep logs: journalctl failed (exit ${code}): ${errText.trim() || 'no message'}`);
    return 1;
  }
  if (errText.trim()) r.err(errText.trim());
  if (n === 0) r.err(`ep logs: the journal has no entries for ${SERVICE_UNIT}${r.since !== null ? ` since ${r.since}` : ''} (is the service installed? systemctl status ${SERVICE_UNIT})`);
  return 0;
}

/** Prints each line of a stream as it comes; resolves with how many at its end. */
async function pump(stream: Readable, r: Pick<Run, 'format' | 'out'>, keep: (l: string) => boolean = () => true): Promise<number> {
  let n = 0;
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  for await (const l of rl) {
    if (!keep(l)) continue;
    n++;
    r.out(r.format(l));
  }
  return n;
}

async function fromFile(file: string, r: Run & { since: number | null }): Promise<number> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    r.err(code === 'ENOENT' ? `ep logs: no such log file: ${file}` : `ep logs: cannot read ${file}: ${(e as Error).message}`);
    return 1;
  }
  try {
    const size = (await fh.stat()).size;
    const from = Math.max(0, size - FILE_TAIL_BYTES);
    const buf = Buffer.alloc(size - from);
    await fh.read(buf, 0, buf.length, from);
    let all = buf.toString('utf8').split('\n');
    if (from > 0) all = all.slice(1); // a cut first line
    if (all.at(-1) === '') all.pop();
    const kept = r.since === null ? all : all.filter((l) => (timeOf(l) ?? Infinity) >= r.since!);
    const shown = kept.slice(-r.lines);
    for (const l of shown) r.out(r.format(l));
    if (shown.length === 0 && !r.follow) r.err(`ep logs: ${file} has no entries${r.since !== null ? ` since ${new Date(r.since).toISOString()}` : ''}`);
    if (!r.follow) return 0;
    // Follow: new bytes after the end, whole lines only; a truncated file starts over.
    let offset = size;
    let partial = '';
    while (!r.stop.aborted) {
      // One listener per wait, removed with it (adding one each poll grew without bound).
      await new Promise<void>((resolve) => {
        const onAbort = (): void => (clearTimeout(t), resolve());
        const t = setTimeout(() => (r.stop.removeEventListener('abort', onAbort), resolve()), FOLLOW_POLL_MS);
        r.stop.addEventListener('abort', onAbort, { once: true });
      });
      const now = (await stat(file).catch(() => null))?.size ?? offset;
      if (now < offset) offset = 0;
      if (now === offset) continue;
      const chunk = Buffer.alloc(Math.min(now - offset, FILE_TAIL_BYTES));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, offset);
      offset += bytesRead;
      const parts = (partial + chunk.subarray(0, bytesRead).toString('utf8')).split('\n');
      partial = parts.pop()!.slice(-65_536);
      for (const l of parts) if (r.since === null || (timeOf(l) ?? Infinity) >= r.since) r.out(r.format(l));
    }
    return 0;
  } finally {
    await fh.close();
  }
}
