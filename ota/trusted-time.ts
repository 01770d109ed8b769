/**
 * What time it is, for judging a manifest's expiry on a box without a real-time clock.
 * A Pi boots at the last time its fake-hwclock saved (or in 1970) and only learns the
 * time from NTP later; a manifest must be neither refused because the clock is behind
 * (a fresh release on a box that has not synced yet) nor accepted as unexpired because
 * it is (a freeze attack replaying an old manifest to a box whose clock was reset).
 *
 * So: the latest of the system clock, the last time this box saw a synced clock (stored
 * on every synced health sample), and the manifest's own `releasedAt` (it cannot be
 * earlier than the release). The clock can only be pushed forward by these, never back.
 */

export interface TimeFacts {
  /** The system clock now (ms since the epoch). */
  systemNow: number;
  /** The last time the clock was known to be synced (ms), stored by the agent; null if never. */
  lastSyncedAt: number | null;
}

export function trustedNow(f: TimeFacts, releasedAt: number): { now: number; source: 'system' | 'last-synced' | 'releasedAt' } {
  let now = f.systemNow;
  let source: 'system' | 'last-synced' | 'releasedAt' = 'system';
  if (f.lastSyncedAt !== null && f.lastSyncedAt > now) [now, source] = [f.lastSyncedAt, 'last-synced'];
  if (releasedAt > now) [now, source] = [releasedAt, 'releasedAt'];
  return { now, source };
}
