/**
 * Logging for the box and its technician: pino JSON to stdout (journald on the box),
 * one child logger per module, stable event names in `evt`, and secrets redacted by
 * configuration here, once, not at each call site.
 */
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = Pick<PinoLogger, 'info' | 'warn' | 'error' | 'debug' | 'trace' | 'fatal' | 'child' | 'level'>;

/** Every key path that can carry a secret, wherever it appears in a log object. */
export const REDACT_PATHS = [
  'password',
  'passphrase',
  'key',
  'privateKey',
  'secrets',
  '*.password',
  '*.passphrase',
  '*.privateKey',
  '*.secrets',
  '*.*.password',
  '*.*.passphrase',
  '*.*.privateKey',
  'srt.passphrase',
  '*.srt.passphrase',
  '*.*.srt.passphrase',
  'mqtt.password',
  '*.mqtt.password',
  // the status page's PIN (config field.statusPage.pin)
  'pin',
  '*.pin',
  '*.*.pin',
  '*.*.*.pin',
];

/** Longest string a log line carries in one field; longer ones are cut (a hub can send 64 KiB of text). */
export const LOG_FIELD_CHARS = 2048;

/** Cuts long strings (and long arrays) in what is about to be logged, a few levels deep. */
export function capLogFields(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return v.length > LOG_FIELD_CHARS ? `${v.slice(0, LOG_FIELD_CHARS)}…[${v.length - LOG_FIELD_CHARS} more chars]` : v;
  if (depth >= 4 || typeof v !== 'object' || v === null || v instanceof Error || Buffer.isBuffer(v)) return v;
  if (Array.isArray(v)) {
    const head = v.slice(0, 50).map((x) => capLogFields(x, depth + 1));
    return v.length > 50 ? [...head, `…[${v.length - 50} more items]`] : head;
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = capLogFields(x, depth + 1);
  return out;
}

export function createLogger(opts: { level?: string; name?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      name: opts.name ?? 'ep',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { log: (o) => capLogFields(o) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          const [first, ...rest] = args as unknown[];
          if (typeof first === 'string' && first.length > LOG_FIELD_CHARS) return method.apply(this, [capLogFields(first), ...rest] as Parameters<typeof method>);
          if (rest.length && typeof rest[0] === 'string' && rest[0].length > LOG_FIELD_CHARS) return method.apply(this, [first, capLogFields(rest[0]), ...rest.slice(1)] as Parameters<typeof method>);
          return method.apply(this, args);
        },
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      base: { pid: process.pid },
    },
    opts.destination,
  );
}

/** A logger that drops everything (library use, tests that do not look at logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** A broker URL as it may be shown: user and password (a hand-written config may carry them) removed. */
export function withoutCredentials(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}
