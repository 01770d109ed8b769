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
];

export function createLogger(opts: { level?: string; name?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      name: opts.name ?? 'ep',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
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
