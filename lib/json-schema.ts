/**
 * JSON Schema validation for untrusted input (ajv + ajv-formats), shared by the agent's
 * contract and the OTA manifest: every problem reported by path in words a person can act
 * on (`args.send.url: must be an srt:// URL`, `args.foo: unknown field`), and capped — a
 * 64 KiB payload of unknown keys must not become a 250 KiB reply or log line.
 */
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** Problems listed, and the longest problem line; the rest are counted. */
export const PROBLEM_LINES = 20;
export const PROBLEM_CHARS = 200;

/** An ajv with every error reported and a `date-time` that must also parse to a number. */
export function createAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  // ajv-formats accepts a leap second (23:59:60Z) that Date.parse reads as NaN: an expiry
  // that never fires, an end that is always past. A time the box takes must be a number.
  const rfc3339 = ajv.formats['date-time'] as { validate: (s: string) => boolean } | undefined;
  if (!rfc3339 || typeof rfc3339.validate !== 'function') throw new Error('ajv-formats: no date-time format to build on');
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => rfc3339.validate(s) && Number.isFinite(Date.parse(s)) });
  return ajv;
}

/** At most PROBLEM_LINES lines of at most PROBLEM_CHARS each, then how many more there were. */
export function capProblems(problems: readonly string[]): string[] {
  const cut = (p: string): string => (p.length > PROBLEM_CHARS ? `${p.slice(0, PROBLEM_CHARS - 1)}…` : p);
  const shown = problems.slice(0, PROBLEM_LINES).map(cut);
  const more = problems.length - shown.length;
  return more > 0 ? [...shown, `… and ${more} more problem${more === 1 ? '' : 's'}`] : shown;
}

/** A JSON Pointer segment can be a 60 KiB key: cut each before building the path. */
const segment = (p: string): string => (p.length > 80 ? `${p.slice(0, 79)}…` : p);

function joinPath(prefix: string, instancePath: string): string {
  const parts = instancePath.split('/').filter(Boolean).map((p) => segment(p.replace(/~1/g, '/').replace(/~0/g, '~')));
  return [prefix, ...parts].filter(Boolean).join('.') || '(root)';
}

/** Turns ajv errors into `path: problem` lines a person can act on. */
export function describeErrors(errors: ErrorObject[] | null | undefined, prefix = ''): string[] {
  const out = new Set<string>();
  for (const e of errors ?? []) {
    const at = joinPath(prefix, e.instancePath);
    const p = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'additionalProperties':
        out.add(`${joinPath(prefix, `${e.instancePath}/${segment(String(p.additionalProperty))}`)}: unknown field`);
        break;
      case 'required':
        out.add(`${joinPath(prefix, `${e.instancePath}/${String(p.missingProperty)}`)}: is required`);
        break;
      case 'pattern':
        out.add(p.pattern === '^srt://' ? `${at}: must be an srt:// URL` : `${at}: must match ${String(p.pattern)}`);
        break;
      case 'format':
        out.add(p.format === 'date-time' ? `${at}: must be an RFC 3339 date-time this box can read, e.g. 2019-01-28T08:05:00Z (no leap second)` : `${at}: must be a ${String(p.format)}`);
        break;
      case 'enum':
        out.add(`${at}: must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`);
        break;
      default:
        out.add(`${at}: ${e.message ?? e.keyword}`);
    }
  }
  return [...out];
}

