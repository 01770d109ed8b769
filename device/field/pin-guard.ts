/**
 * The status page's PIN (status-page.ts): a few wrong tries per address, then a lock for a
 * while; a cap over all addresses; constant-time comparison. Bounded memory.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../lib/index.js';

export const PIN_FAILURES_PER_ADDRESS = 5;
export const PIN_FAILURES_PER_MINUTE = 20;
export const PIN_LOCK_MS = 60_000;
const PIN_ADDRESSES = 256;

/** Wrong PINs: a few per address, then a lock; and a cap over all addresses. Bounded memory. */
export class PinGuard {
  private readonly digest: Buffer;
  private readonly byAddress = new Map<string, { failures: number; last: number; lockedUntil: number }>();
  private recent: number[] = [];

  constructor(
    pin: string,
    private readonly clock: Pick<Clock, 'now'>,
  ) {
    this.digest = createHash('sha256').update(pin).digest();
  }

  check(address: string, given: string): 'ok' | 'wrong' | 'locked' {
    const now = this.clock.now();
    this.recent = this.recent.filter((t) => now - t < 60_000);
    let e = this.byAddress.get(address);
    if (e && now - e.last >= PIN_LOCK_MS && now >= e.lockedUntil) e = undefined;
    if ((e && now < e.lockedUntil) || this.recent.length >= PIN_FAILURES_PER_MINUTE) return 'locked';
    if (timingSafeEqual(createHash('sha256').update(given).digest(), this.digest)) {
      this.byAddress.delete(address);
      return 'ok';
    }
    this.recent.push(now);
    e ??= { failures: 0, last: now, lockedUntil: 0 };
    e.failures++;
    e.last = now;
    if (e.failures >= PIN_FAILURES_PER_ADDRESS) e = { failures: 0, last: now, lockedUntil: now + PIN_LOCK_MS };
    this.byAddress.delete(address);
    if (this.byAddress.size >= PIN_ADDRESSES) this.byAddress.delete(this.byAddress.keys().next().value!);
    this.byAddress.set(address, e);
    return 'wrong';
  }
}
