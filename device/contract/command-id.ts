/**
 * Reading a command's `id` from a payload we may not be able to decode, so that even a
 * refused command is answered with its own id (CONTRACT.md: every command gets exactly one
 * reply). One rule for what an id is: a string of 1–64 characters counted as Unicode code
 * points, the way the envelope schema counts them (ajv's maxLength), so 64 emoji are an id.
 *
 * A payload that parses gives its `id` as JSON.parse sees it (the last of duplicate keys).
 * One that does not (not JSON, cut short, or over the size cap) is scanned: the top-level
 * object's keys are walked without building the value, and the last `"id"` key whose value
 * is a whole string is taken. The scan is linear in the payload and allocates only the id.
 */

export const ID_MAX_CODE_POINTS = 64;

/** A string of 1–64 code points. */
export function isCommandId(v: unknown): v is string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 2 * ID_MAX_CODE_POINTS) return false;
  let n = 0;
  for (const _ of v) if (++n > ID_MAX_CODE_POINTS) return false;
  return true;
}

/** The command id in `payload`, or null when none can be read. */
export function readCommandId(payload: Buffer, parseUpTo: number): string | null {
  if (payload.length <= parseUpTo) {
    try {
      const v = JSON.parse(payload.toString()) as { id?: unknown } | null;
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return isCommandId(v.id) ? v.id : null;
      return null;
    } catch {
      // not JSON: scan what is there
    }
  }
  return scanId(payload);
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** Index just past the string that starts at `i` (a `"`), or -1 when it never ends. */
function stringEnd(b: Buffer, i: number): number {
  for (let j = i + 1; j < b.length; j++) {
    const c = b[j];
    if (c === 0x5c) j++; // backslash: skip the escaped character
    else if (c === 0x22) return j + 1;
  }
  return -1;
}

/** Index just past the value that starts at `i`, or -1. */
function valueEnd(b: Buffer, i: number): number {
  if (b[i] === 0x22) return stringEnd(b, i);
  let depth = 0;
  for (let j = i; j < b.length; j++) {
    const c = b[j];
    if (c === 0x22) {
      j = stringEnd(b, j) - 1;
      if (j < 0) return -1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (depth === 0) return j; // the enclosing object ends: a scalar ended before it
      if (--depth === 0) return j + 1;
    } else if (c === 0x2c && depth === 0) return j;
  }
  return -1;
}

function scanId(b: Buffer): string | null {
  let i = 0;
  const ws = (): void => {
    while (i < b.length && WS.has(b[i]!)) i++;
  };
  ws();
  if (b[i] !== 0x7b) return null;
  i++;
  let found: string | null = null;
  for (;;) {
    ws();
    if (b[i] !== 0x22) return found;
    const keyEnd = stringEnd(b, i);
    if (keyEnd < 0) return found;
    let key: unknown;
    try {
      key = JSON.parse(b.toString('utf8', i, keyEnd));
    } catch {
      return found;
    }
    i = keyEnd;
    ws();
    if (b[i] !== 0x3a) return found;
    i++;
    ws();
    const end = valueEnd(b, i);
    if (end < 0) return found;
    if (key === 'id' && b[i] === 0x22) {
      try {
        const v = JSON.parse(b.toString('utf8', i, end)) as unknown;
        found = isCommandId(v) ? v : null;
      } catch {
        found = null;
      }
    }
    i = end;
    ws();
    if (b[i] !== 0x2c) return found;
    i++;
  }
}
