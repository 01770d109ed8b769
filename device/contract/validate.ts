/**
 * Decoding untrusted input at the edge: size cap before JSON.parse, then JSON Schema
 * validation (ajv) with every problem reported by path, e.g.
 * `args.send.url: must be an srt:// URL`, `args.foo: unknown field`.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { LIMITS } from '../limits.js';
import { isCommandId } from './command-id.js';
import { commandArgsSchemas, commandEnvelopeSchema, type CommandName } from './schemas.js';

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

export const MAX_PAYLOAD_BYTES = LIMITS.payloadBytes;

export class DecodeError extends Error {
  constructor(
    readonly problems: string[],
    /** The command id when it could be read, so even a bad command gets its reply. */
    readonly id: string | null = null,
  ) {
    super(capProblems(problems).join('; '));
    this.name = 'DecodeError';
  }
}

export function isDecodeError(e: unknown): e is DecodeError {
  return e instanceof DecodeError;
}

/** At most LIMITS.problems lines of at most LIMITS.problemChars each, then how many more there were. */
export function capProblems(problems: readonly string[]): string[] {
  const cut = (p: string): string => (p.length > LIMITS.problemChars ? `${p.slice(0, LIMITS.problemChars - 1)}…` : p);
  const shown = problems.slice(0, LIMITS.problems).map(cut);
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

export interface Decoded<T> {
  id: string;
  ts?: string;
  expiresAt?: string;
  args: T;
}

export interface Contract {
  /** Validates a value against a compiled schema; throws DecodeError with paths. */
  check<T>(validate: ValidateFunction, value: unknown, prefix?: string): T;
  compile(schema: object): ValidateFunction;
  /** Decodes a command payload (bytes from MQTT) for a known command. */
  decodeCommand(command: CommandName, payload: Buffer | string): Decoded<unknown>;
  /** Parses JSON with the size cap; DecodeError on failure. */
  parseJson(payload: Buffer | string, what: string, maxBytes?: number): unknown;
}

export function createContract(): Contract {
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  // ajv-formats accepts a leap second (23:59:60Z) that Date.parse reads as NaN: an expiry
  // that never fires, an end that is always past. A time the box takes must be a number.
  const rfc3339 = ajv.formats['date-time'] as { validate: (s: string) => boolean } | undefined;
  if (!rfc3339 || typeof rfc3339.validate !== 'function') throw new Error('ajv-formats: no date-time format to build on');
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => rfc3339.validate(s) && Number.isFinite(Date.parse(s)) });
  const cache = new Map<object, ValidateFunction>();
  const compile = (schema: object): ValidateFunction => {
    let v = cache.get(schema);
    if (!v) {
      const { $id: _drop, ...rest } = schema as { $id?: string };
      v = ajv.compile(rest);
      cache.set(schema, v);
    }
    return v;
  };
  const parseJson = (payload: Buffer | string, what: string, maxBytes = MAX_PAYLOAD_BYTES): unknown => {
    const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    if (size > maxBytes) throw new DecodeError([`${what}: ${size} bytes is over the ${maxBytes}-byte limit`]);
    try {
      return JSON.parse(payload.toString()) as unknown;
    } catch (e) {
      // Never echo the input: V8's message quotes ~10 characters around the error, which
      // can be part of a passphrase. Keep only the position when there is one.
      const at = /at position (\d+)/.exec((e as Error).message)?.[1];
      throw new DecodeError([`${what}: not JSON${at ? ` (error at position ${at})` : ''}`]);
    }
  };
  const check = <T>(validate: ValidateFunction, value: unknown, prefix = ''): T => {
    if (!validate(value)) throw new DecodeError(describeErrors(validate.errors, prefix));
    return value as T;
  };
  const envelope = compile(commandEnvelopeSchema);
  return {
    compile,
    check,
    parseJson,
    decodeCommand(command, payload) {
      const raw = parseJson(payload, 'payload');
      const id = typeof raw === 'object' && raw !== null && isCommandId((raw as { id?: unknown }).id) ? (raw as { id: string }).id : null;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new DecodeError(['(root): must be a JSON object'], id);
      const problems: string[] = [];
      if (!envelope(raw)) problems.push(...describeErrors(envelope.errors));
      const args = (raw as { args?: unknown }).args ?? {};
      const argsValidate = compile(commandArgsSchemas[command]);
      if (typeof args === 'object' && args !== null && !argsValidate(args)) problems.push(...describeErrors(argsValidate.errors, 'args'));
      if (problems.length) throw new DecodeError(problems, id);
      const env = raw as { id: string; ts?: string; expiresAt?: string };
      return { id: env.id, ...(env.ts ? { ts: env.ts } : {}), ...(env.expiresAt ? { expiresAt: env.expiresAt } : {}), args };
    },
  };
}
