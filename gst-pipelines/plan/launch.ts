/**
 * Small helpers to write gst-launch syntax safely. Every value that comes from the
 * outside (titles, stream ids, device names) goes through `q()`, so no value can break
 * or inject into a pipeline description; what no launch string can carry is refused.
 */
import { PlanError } from './errors.js';

/**
 * Why no launch string can carry `value`, or null: the description is a C string (a NUL
 * ends it) in UTF-8 (a lone surrogate has no encoding; the binding would send U+FFFD).
 */
export function uncarriable(value: string): string | null {
  if (value.includes('\u0000')) return 'contains a NUL character';
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)) return 'is not well-formed Unicode (a lone surrogate)';
  return null;
}

/** Text for the screen from any source: what no launch string can carry is dropped (NUL) or replaced (U+FFFD). */
export function displayText(value: string): string {
  return value.replaceAll('\u0000', '').replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** GST_ASCII_IS_STRING (gstvalue.c): the bytes gst_string_unwrap copies as they are. */
const PLAIN_BYTE = /^[A-Za-z0-9_\-+/:.]$/;

/**
 * `value` in GStreamer's own serialised-string form (gst_string_wrap, always wrapped):
 * `"…"` with each byte outside PLAIN_BYTE escaped, `\ooo` (octal) below 0x20 and from
 * 0x7f, `\c` otherwise. gst_value_deserialize_string unwraps it exactly.
 */
function gstStringWrap(value: string): string {
  let out = '"';
  for (const byte of new TextEncoder().encode(value)) {
    const c = String.fromCharCode(byte);
    if (PLAIN_BYTE.test(c)) out += c;
    else if (byte < 0x20 || byte >= 0x7f) out += `\\${byte.toString(8).padStart(3, '0')}`;
    else out += `\\${c}`;
  }
  return `${out}"`;
}

/**
 * A property value for a launch string that GStreamer 1.22's parser reads back as exactly
 * `value` (checked with the real parser: test/integration/plan-fuzz.test.ts). Three
 * steps of gst_parse_launch act on it (docs/media.md, "Outside text in launch strings"):
 *
 * 1. the lexer (parse.l) reads a quoted value as `"([^"]|\\")*"`, the longest match: a
 *    backslash escapes nothing but a quote. So every inner `"` is written `\"`, and the
 *    closing quote must not follow a backslash: `"a\\"` runs on through it to the next
 *    quote of the description (issue 13: a stream id ending in a backslash broke the
 *    whole session);
 * 2. gst_parse_split_assignment strips the quotes and gst_parse_unescape turns every
 *    `\X` into `X` (no unescaped `"` is left to switch it off): so `\` and `"` are
 *    written `\\` and `\"`;
 * 3. gst_value_deserialize_string reads `NULL` as no string at all and unwraps a value
 *    that starts with `"` (failing when it is not a valid wrapped string).
 *
 * So a value that is `NULL`, starts with `"` or ends with a backslash goes in wrapped
 * (gstStringWrap: it ends in `"`, and unwraps to the value); any other value as it is.
 * Both then get step 2's escapes. Throws a PlanError (the box's) for what no launch
 * string can carry (`uncarriable`); the planner refuses the hub's values before this,
 * naming their path (choose.ts).
 */
export function q(value: string, path = 'launch string value'): string {
  const why = uncarriable(value);
  if (why) throw new PlanError('box', path, why);
  const v = value === 'NULL' || value.startsWith('"') || value.endsWith('\\') ? gstStringWrap(value) : value;
  return `"${v.replace(/[\\"]/g, '\\$&')}"`;
}

/** `a ! b ! c`, skipping empty parts. */
export function chain(...parts: Array<string | false | null | undefined>): string {
  return parts.filter((p): p is string => typeof p === 'string' && p.length > 0).join(' ! ');
}

/** Join independent branches of one pipeline description. */
export function branches(...parts: Array<string | false | null | undefined>): string {
  return parts.filter((p): p is string => typeof p === 'string' && p.length > 0).join('  ');
}

export interface SrtEndpoint {
  host: string;
  port: number;
}

const SRT_HOST = /^[A-Za-z0-9_.-]{1,253}$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;

/** Parses `srt://host:port[?…]`; throws an Error naming the problem. */
export function parseSrtUrl(url: string): SrtEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'srt:') throw new Error('must be an srt:// URL');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new Error('srt:// URL has no host');
  // Nothing else resolves (libsrt takes a DNS name or an address), and the host goes into the launch string's uri.
  if (!SRT_HOST.test(host) && !IPV6.test(host)) throw new Error('srt:// URL host must be a DNS name or an IP address (letters, digits, ".", "-", "_"; IPv6 in brackets)');
  const port = Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('srt:// URL needs a port 1..65535');
  return { host, port };
}

/**
 * The H.264 level that fits width × height × fps (Table A-1 of the spec). The Pi 4's
 * v4l2h264enc refuses to negotiate without a level in its src caps (docs/platform-facts.md, "v4l2h264enc needs a level in its caps").
 */
export function h264Level(width: number, height: number, fps: number): string {
  const mbs = Math.ceil(width / 16) * Math.ceil(height / 16);
  const mbps = mbs * fps;
  const levels: Array<[string, number, number]> = [
    ['3', 1620, 40500],
    ['3.1', 3600, 108000],
    ['3.2', 5120, 216000],
    ['4', 8192, 245760],
    ['4.2', 8704, 522240],
    ['5.1', 36864, 983040],
  ];
  for (const [level, maxFs, maxMbps] of levels) if (mbs <= maxFs && mbps <= maxMbps) return level;
  return '5.1';
}
