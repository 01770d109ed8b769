/**
 * Opening a fleet session: connect, subscribe to every box's status, state and reply, and
 * collect the retained messages until they go quiet (no new one for `quietMs`), at most
 * `waitMs` — the roster every subcommand starts from.
 */
import { systemClock, type Clock } from '../../lib/index.js';
import { connectFleet, type ConnectOptions, type FleetBus } from './client.js';
import { ROSTER_MAX_BOXES } from './roster.js';
import { FleetSession } from './session.js';

/** No new retained message for this long: the broker has sent them all. */
export const QUIET_MS = 500;
export const DEFAULT_WAIT_MS = 3000;

export interface OpenOptions {
  connect: ConnectOptions;
  waitMs?: number;
  quietMs?: number;
  maxBoxes?: number;
  clock?: Clock;
  /** Test hook: a bus instead of a broker connection. */
  bus?: FleetBus;
}

export async function openFleet(o: OpenOptions): Promise<FleetSession> {
  const bus = o.bus ?? (await connectFleet(o.connect));
  const s = new FleetSession(bus, o.clock ?? systemClock, o.maxBoxes ?? ROSTER_MAX_BOXES);
  try {
    await s.start();
    await s.waitQuiet(o.quietMs ?? QUIET_MS, o.waitMs ?? DEFAULT_WAIT_MS);
  } catch (e) {
    await s.close();
    throw e;
  }
  return s;
}
