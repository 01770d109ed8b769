/**
 * Is the system clock synchronized? The boxes have no RTC: until NTP syncs, the clock
 * can be days off and TLS fails, so the agent reports it (`clockSynced`) instead of
 * blaming the certificate.
 *
 * Order, cheapest first:
 *  1. `/run/systemd/timesync/synchronized` exists → true. systemd-timesyncd touches it
 *     on every successful sync; it lives on tmpfs, so it never survives a reboot.
 *     A stat, no process: the common case on Raspberry Pi OS costs nothing.
 *  2. `timedatectl show -p NTPSynchronized --value` → yes/no. The kernel's sync state
 *     as systemd-timedated sees it, whatever the NTP client (timesyncd, chrony, ntpd).
 *  3. The timesyncd runtime directory exists but the file does not → false: timesyncd
 *     runs (it is the only NTP client then) and has not synced yet.
 *  4. Otherwise null (no systemd, no timesyncd): unknown, never a guess.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { HostPaths } from '../../lib/index.js';
import type { RunCommand } from './power.js';

export interface ClockSyncDeps {
  paths: HostPaths;
  runCommand: RunCommand;
  /** Per command. Default 2000 ms. */
  timeoutMs?: number;
}

/** `yes`/`no` from `timedatectl show -p NTPSynchronized --value`; null for anything else. */
export function parseNtpSynchronized(stdout: string): boolean | null {
  const v = stdout.trim().replace(/^NTPSynchronized=/, '').toLowerCase();
  if (v === 'yes') return true;
  if (v === 'no') return false;
  return null;
}

async function exists(p: string, kind: 'file' | 'dir'): Promise<boolean> {
  try {
    const s = await stat(p);
    return kind === 'file' ? s.isFile() : s.isDirectory();
  } catch {
    return false;
  }
}

/** Never throws. */
export async function clockSynced(deps: ClockSyncDeps): Promise<boolean | null> {
  const marker = deps.paths.timesyncSynchronized;
  if (await exists(marker, 'file')) return true;
  try {
    const r = await deps.runCommand('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], deps.timeoutMs ?? 2000);
    if (r.code === 0) {
      const v = parseNtpSynchronized(r.stdout);
      if (v !== null) return v;
    }
  } catch {
    // a runner that throws is treated like a missing timedatectl
  }
  if (await exists(path.dirname(marker), 'dir')) return false;
  return null;
}
