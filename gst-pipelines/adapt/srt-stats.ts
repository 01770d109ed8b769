import type { SrtLinkStats } from '../types.js';
/**
 * SRT statistics from srtsink/srtsrc (pure).
 *
 * The Node binding returns the elements' `stats` property (a GstStructure) as its
 * serialized string. Captured on GStreamer 1.22 / libsrt 1.5.1 (see
 * test/unit/fixtures/srt-stats-*.txt):
 * - caller mode: the socket's counters are top-level fields;
 * - listener mode (srtsink and srtsrc): the top level holds only
 *   `bytes-sent-total`/`bytes-received-total`; each connected peer is one element of
 *   `callers=(GValueArray)< "…escaped structure…", … >`;
 * - before a connection: `application/x-srt-statistics, bytes-sent-total=(guint64)0;`.
 * 1.22 has no `packets-received-retransmitted` / `packets-received-dropped` (later
 * versions add them): such a field comes back as null, never as a made-up number.
 * libsrt's byte counters (`bytes-sent`, `bytes-received`) include 44 bytes of
 * IP/UDP/SRT headers per packet; `bytes-*-total` counts the element's payload only.
 */

export class GstStructureParseError extends Error {
  readonly position: number;
  constructor(message: string, position: number) {
    super(`${message} at ${position}`);
    this.name = 'GstStructureParseError';
    this.position = position;
  }
}

export function isGstStructureParseError(e: unknown): e is GstStructureParseError {
  return e instanceof GstStructureParseError;
}

export interface GstStructureValue {
  name: string;
  fields: Record<string, unknown>;
}

const INT_TYPES = new Set(['int', 'uint', 'gint', 'guint', 'int64', 'uint64', 'gint64', 'guint64', 'long', 'ulong', 'glong', 'gulong', 'gint8', 'guint8', 'gint16', 'guint16']);
const FLOAT_TYPES = new Set(['double', 'float', 'gdouble', 'gfloat']);
const BOOL_TYPES = new Set(['boolean', 'gboolean', 'bool']);
const STRING_TYPES = new Set(['string', 'gchararray', 'str', 's']);
const STRUCTURE_TYPES = new Set(['structure', 'gststructure']);
const LOOKS_LIKE_STRUCTURE = /^[A-Za-z][\w\-/.+:]*\s*(,\s*[A-Za-z][\w\-/.+:]*\s*=|;?\s*$)/;

class Reader {
  pos = 0;
  constructor(readonly src: string) {}

  get ch(): string | undefined {
    return this.src[this.pos];
  }

  skipWs(): void {
    while (this.ch !== undefined && /\s/.test(this.ch)) this.pos++;
  }

  fail(message: string): never {
    throw new GstStructureParseError(message, this.pos);
  }

  expect(c: string): void {
    if (this.ch !== c) this.fail(`expected '${c}'`);
    this.pos++;
  }

  /** Characters up to one of `stops` at this level, backslash escapes resolved. */
  until(stops: string): string {
    let out = '';
    while (this.ch !== undefined && !stops.includes(this.ch)) {
      if (this.ch === '\\') this.pos++;
      if (this.ch === undefined) break;
      out += this.ch;
      this.pos++;
    }
    return out;
  }

  /** A quoted string; octal escapes are bytes of UTF-8 (GStreamer escapes all non-ASCII). */
  quoted(): string {
    this.expect('"');
    let out = '';
    let bytes = false;
    for (;;) {
      const c = this.ch;
      if (c === undefined) this.fail('unterminated string');
      this.pos++;
      if (c === '"') return bytes ? Buffer.from(out, 'latin1').toString('utf8') : out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const octal = /^[0-7]{3}/.exec(this.src.slice(this.pos, this.pos + 3));
      if (octal) {
        out += String.fromCharCode(parseInt(octal[0], 8) & 0xff);
        bytes = true;
        this.pos += 3;
      } else if (this.ch !== undefined) {
        out += this.ch;
        this.pos++;
      }
    }
  }
}

function convert(type: string | null, raw: string, quoted: boolean): unknown {
  const t = type?.toLowerCase() ?? null;
  if (!quoted && raw === 'NULL' && (t === null || !INT_TYPES.has(t))) return null;
  if (t !== null && INT_TYPES.has(t)) {
    const n = Number(raw.trim());
    return Number.isFinite(n) ? n : raw;
  }
  if (t !== null && FLOAT_TYPES.has(t)) {
    const n = Number(raw.trim());
    return Number.isNaN(n) ? raw : n;
  }
  if (t !== null && BOOL_TYPES.has(t)) return /^(true|yes|t|1)$/i.test(raw.trim());
  if (t !== null && STRING_TYPES.has(t)) return raw;
  if ((t === null || STRUCTURE_TYPES.has(t)) && quoted && LOOKS_LIKE_STRUCTURE.test(raw) && raw.includes('=(')) {
    return parseGstStructureWithName(raw).fields;
  }
  return raw;
}

const isScalarType = (t: string): boolean =>
  [INT_TYPES, FLOAT_TYPES, BOOL_TYPES, STRING_TYPES, STRUCTURE_TYPES].some((set) => set.has(t.toLowerCase()));

/** One value; `inherited` is the type of the enclosing list, which its items share. */
function readValue(r: Reader, inherited: string | null = null): unknown {
  r.skipWs();
  let type = inherited;
  if (r.ch === '(') {
    r.pos++;
    type = r.until(')').trim();
    r.expect(')');
    r.skipWs();
  }
  const open = r.ch;
  if (open === '"') return convert(type, r.quoted(), true);
  if (open === '<' || open === '{') {
    const close = open === '<' ? '>' : '}';
    r.pos++;
    const items: unknown[] = [];
    for (;;) {
      r.skipWs();
      if (r.ch === close) break;
      items.push(readValue(r, type !== null && isScalarType(type) ? type : null));
      r.skipWs();
      if (r.ch === ',') r.pos++;
      else if (r.ch !== close) r.fail(`expected ',' or '${close}'`);
    }
    r.pos++;
    return items;
  }
  if (open === '[') {
    const start = r.pos;
    r.until(']');
    r.expect(']');
    return r.src.slice(start, r.pos);
  }
  return convert(type, r.until(',;>}').trim(), false);
}

const FLAT_FIELD = /^\s*([A-Za-z][\w\-/.+:]*)=\(([\w-]+)\)([^,;]*)$/;

/**
 * The common case, fast: a flat structure of typed scalars (srtsink/srtsrc in caller
 * mode, read 10 times a second by link adaptation): no quotes, escapes or nesting. Null
 * when the string is anything else; then the full reader below parses it. Same values
 * as the reader (same `convert`), checked on every fixture (test/unit/srt-stats.test.ts).
 */
function parseFlatStructure(s: string): GstStructureValue | null {
  if (/["\\<>{}[\]]/.test(s)) return null;
  const parts = s.replace(/;\s*$/, '').split(',');
  const name = (parts[0] ?? '').trim();
  if (!/^[A-Za-z][\w\-/.+:]*$/.test(name)) return null;
  const fields: Record<string, unknown> = {};
  for (let i = 1; i < parts.length; i++) {
    const m = FLAT_FIELD.exec(parts[i]!);
    if (!m || !isScalarType(m[2]!)) return null;
    fields[m[1]!] = convert(m[2]!, m[3]!.trim(), false);
  }
  return { name, fields };
}

/** Parse a serialized GstStructure (`name, key=(type)value, …;`) with its name. */
export function parseGstStructureWithName(s: string): GstStructureValue {
  return parseFlatStructure(s.trim()) ?? readGstStructure(s);
}

/** The full reader (quotes, escapes, lists, nested structures); exported for its tests. */
export function readGstStructure(s: string): GstStructureValue {
  const r = new Reader(s.trim());
  const name = r.until(',;').trim();
  if (!/^[A-Za-z][\w\-/.+:]*$/.test(name)) r.fail('bad structure name');
  const fields: Record<string, unknown> = {};
  for (;;) {
    r.skipWs();
    if (r.ch === undefined || r.ch === ';') break;
    r.expect(',');
    r.skipWs();
    if (r.ch === undefined || r.ch === ';') break;
    const key = r.until('=').trim();
    if (!/^[A-Za-z][\w\-/.+:]*$/.test(key)) r.fail(`bad field name '${key}'`);
    r.expect('=');
    fields[key] = readValue(r);
  }
  return { name, fields };
}

/** Fields of a serialized GstStructure; nested structures become field records too. */
export function parseGstStructure(s: string): Record<string, unknown> {
  return parseGstStructureWithName(s).fields;
}

export type SrtSide = 'send' | 'receive';

export interface SrtStats {
  side: SrtSide;
  /** Where the socket counters came from: top level (caller), `callers` (listener), none yet. */
  source: 'socket' | 'callers' | 'none';
  /** Connected peers listed in `callers` (listener mode); 0 in caller mode. */
  peers: number;
  rttMs: number | null;
  sendRateMbps: number | null;
  receiveRateMbps: number | null;
  bandwidthMbps: number | null;
  negotiatedLatencyMs: number | null;
  packetsSent: number | null;
  packetsReceived: number | null;
  /** send: packets-sent-lost (NAK-reported); receive: packets-received-lost. */
  packetsLost: number | null;
  /** send: packets-retransmitted; receive: packets-received-retransmitted (absent in 1.22). */
  packetsRetransmitted: number | null;
  /** send: packets-sent-dropped; receive: packets-received-dropped (absent in 1.22). */
  packetsDropped: number | null;
  /** ACKs received from the peer (send side): proof the other end takes our packets. */
  acksReceived: number | null;
  /** libsrt byte counters, headers included. */
  bytesSent: number | null;
  bytesReceived: number | null;
  /** Payload bytes through the element (bytes-sent-total / bytes-received-total). */
  elementBytes: number | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

type Combine = 'sum' | 'max' | 'min';

/** One field over all peers: null unless every peer has it. */
function over(peers: Record<string, unknown>[], key: string, how: Combine): number | null {
  const vs = peers.map((p) => num(p[key]));
  if (vs.length === 0 || vs.some((v) => v === null)) return null;
  const ns = vs as number[];
  return how === 'sum' ? ns.reduce((a, b) => a + b, 0) : how === 'max' ? Math.max(...ns) : Math.min(...ns);
}

/**
 * Typed SRT stats from the `stats` string of srtsink (`send`) or srtsrc (`receive`).
 * In listener mode with several peers, counters and rates are summed, rttMs and
 * negotiatedLatencyMs are the worst peer's, bandwidthMbps the narrowest. A string that
 * does not parse gives all-null stats.
 */
export function srtStatsFromStructure(s: string, side: SrtSide): SrtStats {
  let top: Record<string, unknown> = {};
  try {
    top = parseGstStructure(s);
  } catch (e) {
    if (!isGstStructureParseError(e)) throw e;
  }
  const callers = Array.isArray(top['callers'])
    ? top['callers'].filter((c): c is Record<string, unknown> => typeof c === 'object' && c !== null)
    : [];
  const socketLevel = 'packets-sent' in top || 'rtt-ms' in top;
  const peers = socketLevel ? [top] : callers;
  const f = (key: string, how: Combine = 'sum'): number | null => over(peers, key, how);
  const send = side === 'send';
  return {
    side,
    source: socketLevel ? 'socket' : callers.length > 0 ? 'callers' : 'none',
    peers: callers.length,
    rttMs: f('rtt-ms', 'max'),
    sendRateMbps: f('send-rate-mbps'),
    receiveRateMbps: f('receive-rate-mbps'),
    bandwidthMbps: f('bandwidth-mbps', 'min'),
    negotiatedLatencyMs: f('negotiated-latency-ms', 'max'),
    packetsSent: f('packets-sent'),
    packetsReceived: f('packets-received'),
    packetsLost: f(send ? 'packets-sent-lost' : 'packets-received-lost'),
    packetsRetransmitted: f(send ? 'packets-retransmitted' : 'packets-received-retransmitted'),
    packetsDropped: f(send ? 'packets-sent-dropped' : 'packets-received-dropped'),
    acksReceived: f('packet-ack-received'),
    bytesSent: f('bytes-sent'),
    bytesReceived: f('bytes-received'),
    elementBytes: num(top[send ? 'bytes-sent-total' : 'bytes-received-total']),
  };
}

export interface SrtRates {
  /** Wire rate (libsrt bytes, headers included) over the interval, kbit/s. */
  kbps: number | null;
  /** send: lost / sent; receive: lost / (received + lost); percent over the interval. */
  lossPct: number | null;
  /** Retransmitted / sent (send) or / received (receive), percent over the interval. */
  retransPct: number | null;
}

/** A counter's increase, or null when either sample lacks it or it went backwards (new socket). */
function delta(prev: number | null, cur: number | null): number | null {
  if (prev === null || cur === null || cur < prev) return null;
  return cur - prev;
}

const pct = (part: number | null, whole: number | null): number | null =>
  part === null || whole === null || whole <= 0 ? null : (100 * part) / whole;

/** Rates between two samples of the same side taken `dtMs` apart. */
export function srtRatesBetween(prev: SrtStats, cur: SrtStats, dtMs: number): SrtRates {
  const send = cur.side === 'send';
  const bytes = send ? delta(prev.bytesSent, cur.bytesSent) : delta(prev.bytesReceived, cur.bytesReceived);
  const packets = send ? delta(prev.packetsSent, cur.packetsSent) : delta(prev.packetsReceived, cur.packetsReceived);
  const lost = delta(prev.packetsLost, cur.packetsLost);
  const retrans = delta(prev.packetsRetransmitted, cur.packetsRetransmitted);
  const lossBase = send || packets === null || lost === null ? packets : packets + lost;
  return {
    kbps: bytes === null || !(dtMs > 0) ? null : (bytes * 8) / dtMs,
    lossPct: pct(lost, lossBase),
    retransPct: pct(retrans, packets),
  };
}

/** What a stats report carries about one SRT side: `cur`, with loss and retransmission rates since `prev` (null: none before). */
export function srtLinkStats(prev: SrtStats | null, cur: SrtStats | null, dtMs: number): SrtLinkStats | null {
  if (!cur) return null;
  const rates = prev ? srtRatesBetween(prev, cur, dtMs) : null;
  return {
    rttMs: cur.rttMs,
    lossPct: rates?.lossPct ?? null,
    retransPct: rates?.retransPct ?? null,
    bandwidthMbps: cur.bandwidthMbps,
    sendRateMbps: cur.sendRateMbps,
  };
}

const FAST_KEYS = { packetsSent: 'packets-sent', bytesSent: 'bytes-sent', acksReceived: 'packet-ack-received', rttMs: 'rtt-ms', packetsLost: 'packets-sent-lost' } as const;
const FAST_PATTERNS = Object.fromEntries(
  Object.entries(FAST_KEYS).map(([k, key]) => [k, new RegExp(`(?:^|,)\\s*${key.replace(/-/g, '\\-')}=\\((?:g?u?int(?:64)?|double|float)\\)([^,;]*)`)]),
) as Record<keyof typeof FAST_KEYS, RegExp>;

/**
 * The five send counters link adaptation's collapse check reads 10 times a second, from
 * a caller-mode srtsink `stats` string without parsing the other 18 fields: the same
 * values srtStatsFromStructure gives (checked on the recorded strings). Null for a
 * string that is not one flat structure (listener mode, nested callers): use
 * srtStatsFromStructure then.
 */
export function fastReadingOf(s: string): Pick<SrtStats, 'rttMs' | 'packetsSent' | 'bytesSent' | 'acksReceived' | 'packetsLost'> | null {
  if (/["\\<>{}]/.test(s) || !s.includes('packets-sent=')) return null;
  const n = (k: keyof typeof FAST_KEYS): number | null => {
    const m = FAST_PATTERNS[k].exec(s);
    if (!m) return null;
    const v = Number(m[1]!.trim());
    return Number.isFinite(v) ? v : null;
  };
  return { packetsSent: n('packetsSent'), bytesSent: n('bytesSent'), acksReceived: n('acksReceived'), rttMs: n('rttMs'), packetsLost: n('packetsLost') };
}
