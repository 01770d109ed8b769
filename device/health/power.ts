/**
 * The Raspberry Pi firmware's throttled flags: under-voltage (cheap supplies), frequency
 * capping and throttling, now and since boot. Read from the firmware's sysfs file (a
 * file read, no process) and only when that is missing from `vcgencmd get_throttled`.
 * Anything unreadable is null, never a guess: a box without the Pi firmware has no
 * such flags.
 *
 * Bits (Raspberry Pi documentation, `vcgencmd get_throttled`):
 *   0 under-voltage now       16 under-voltage has occurred since boot
 *   1 ARM frequency capped    17 ARM frequency capping has occurred
 *   2 throttled now           18 throttling has occurred
 *   3 soft temperature limit  19 soft temperature limit has occurred
 *
 * The sysfs file prints the value as bare hex (`50005`, kernel `sprintf("%x\n")`);
 * vcgencmd prints `throttled=0x50005`. `parseThrottled` takes both.
 */
import { readFile } from 'node:fs/promises';
import type { HostPaths } from '../../lib/index.js';

export interface CommandResult {
  /** Exit status; null when the binary is missing, timed out or died on a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command and never throws (same shape as gst-pipelines' `execRunCommand`, so the
 * composition root passes one runner to both).
 */
export type RunCommand = (cmd: string, args: string[], timeoutMs: number) => Promise<CommandResult>;

export interface ThrottledFlags {
  /** Bit 0: the supply is below ~4.63 V right now. */
  underVoltage: boolean;
  /** Bit 16: under-voltage happened at least once since boot (sticky). */
  underVoltageSinceBoot: boolean;
  /** Bit 2: the SoC is throttled right now. */
  throttled: boolean;
  /** Bit 1: the ARM frequency is capped right now. */
  armFreqCapped: boolean;
  /** Bit 18: throttling happened at least once since boot. */
  throttledSinceBoot: boolean;
  /** Bit 3: the soft temperature limit is active right now. */
  softTempLimit: boolean;
  /** The whole word, for logs (`0x${raw.toString(16)}`). */
  raw: number;
}

export interface PowerDeps {
  paths: HostPaths;
  runCommand: RunCommand;
  /** Per read / per command. Default 2000 ms. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 2000;
const bit = (v: number, n: number): boolean => ((v >>> n) & 1) === 1;

/**
 * Parses `50005`, `0x50005`, `throttled=0x50005` (any case, surrounding whitespace).
 * Returns null for anything else: an empty file, an error message, a value over 32 bits.
 */
export function parseThrottled(text: string): ThrottledFlags | null {
  const m = /^\s*(?:throttled=)?(?:0x)?([0-9a-f]{1,8})\s*$/i.exec(text);
  if (!m?.[1]) return null;
  const raw = Number.parseInt(m[1], 16);
  if (!Number.isInteger(raw) || raw < 0) return null;
  return {
    underVoltage: bit(raw, 0),
    armFreqCapped: bit(raw, 1),
    throttled: bit(raw, 2),
    softTempLimit: bit(raw, 3),
    underVoltageSinceBoot: bit(raw, 16),
    throttledSinceBoot: bit(raw, 18),
    raw,
  };
}

/** sysfs first (a file read), then `vcgencmd get_throttled`, else null. Never throws. */
export async function readThrottled(deps: PowerDeps): Promise<ThrottledFlags | null> {
  const timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  try {
    const fromSysfs = parseThrottled(await readFile(deps.paths.throttled, 'utf8'));
    if (fromSysfs) return fromSysfs;
  } catch {
    // not a Pi, or a kernel without the file: ask the firmware through vcgencmd
  }
  try {
    const r = await deps.runCommand('vcgencmd', ['get_throttled'], timeoutMs);
    return r.code === 0 ? parseThrottled(r.stdout) : null;
  } catch {
    return null;
  }
}
