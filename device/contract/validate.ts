/**
 * Decoding untrusted input at the edge: size cap before JSON.parse, then JSON Schema
 * validation (ajv) with every problem reported by path, e.g.
 * `args.send.url: must be an srt:// URL`, `args.foo: unknown field`.
 */
import type { ValidateFunction } from 'ajv';
import { capProblems, createAjv, describeErrors } from '../../lib/index.js';
import { LIMITS } from '../limits.js';
import { isCommandId } from './command-id.js';
import { commandArgsSchemas, commandEnvelopeSchema, type CommandName } from './schemas.js';

export { capProblems, describeErrors };

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
  const ajv = createAjv();
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
