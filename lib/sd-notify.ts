/**
 * systemd's notify protocol (sd_notify(3)) for a process that is not the unit's main PID:
 * `ep run` runs under the launcher (ota/launcher.ts, the main PID), so the unit uses
 * `NotifyAccess=all` and the agent sends its own datagrams — READY=1, STATUS=…,
 * WATCHDOG=1, STOPPING=1 — over one long-lived socket (a `systemd-notify` child races:
 * systemd may look up its cgroup after it exited and drop the message, systemd#2739).
 * Node has no Unix datagram sockets (nodejs/node#29339): the socket is the `unix-dgram`
 * addon, loaded only when NOTIFY_SOCKET is set, so an agent outside systemd never pays
 * for it.
 *
 * The watchdog pings every WATCHDOG_USEC/2 (systemd's advice), each only when the
 * caller's liveness check passes; the first check that fails is logged once
 * (`watchdog.withheld`) and the pings stop for good, so systemd restarts the service.
 * The check also gets how late the ping's own timer fired (the event loop's lag).
 */
import { createRequire } from 'node:module';
import type { Clock } from './clock.js';
import type { Logger } from './log.js';

/** What systemd's environment asks of this process (notifyPlan). */
export type NotifyPlan =
  | { kind: 'off'; note?: string }
  | { kind: 'notify'; /** NOTIFY_SOCKET as given */ socket: string; /** what to connect to ('@x' → '\0x') */ address: string; /** ping every half of it; null: no watchdog for us */ watchdogMs: number | null; note?: string }
  | { kind: 'unusable'; problem: string };

/** The environment variables systemd sets for this protocol (removed from the agent's own env so its children do not ping for it). */
export const NOTIFY_ENV = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

/**
 * Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (pure). The watchdog is ours when
 * WATCHDOG_PID is absent, our pid, or our parent's: systemd sets it to the unit's main
 * PID, the launcher, whose child `ep run` inherits it (the launcher never pings). A
 * WATCHDOG_PID naming another process means the watchdog is that process's: not ours.
 * A watchdog that is ours but cannot be fed (no NOTIFY_SOCKET, an address that is neither
 * a path nor abstract, a WATCHDOG_USEC that is not a positive integer) is 'unusable': the
 * agent must say so and exit, not be killed by systemd every WatchdogSec in silence.
 */
export function notifyPlan(env: NodeJS.ProcessEnv, pid: number, ppid: number): NotifyPlan {
  const socket = env.NOTIFY_SOCKET || null;
  const usecRaw = env.WATCHDOG_USEC || null;
  const wdPid = env.WATCHDOG_PID || null;
  const ours = usecRaw !== null && (wdPid === null || wdPid === String(pid) || wdPid === String(ppid));
  const note = usecRaw !== null && !ours ? `WATCHDOG_PID=${wdPid} is neither this process (${pid}) nor its parent (${ppid}): the watchdog is that process's, not pinged here` : undefined;
  let watchdogMs: number | null = null;
  if (ours) {
    const usec = /^\d{1,15}$/.test(usecRaw) ? Number(usecRaw) : NaN;
    if (!(usec >= 1000)) return { kind: 'unusable', problem: `WATCHDOG_USEC=${JSON.stringify(usecRaw)} is not a number of microseconds ≥ 1000` };
    watchdogMs = usec / 1000;
  }
  if (socket === null) {
    if (watchdogMs !== null) return { kind: 'unusable', problem: `WATCHDOG_USEC=${usecRaw} is set (systemd's WatchdogSec=) but NOTIFY_SOCKET is not: the watchdog could never be fed and systemd would kill the service every ${watchdogMs / 1000} s (the unit needs Type=notify and NotifyAccess=all)` };
    return note ? { kind: 'off', note } : { kind: 'off' };
  }
  if (!socket.startsWith('/') && !socket.startsWith('@')) return { kind: 'unusable', problem: `NOTIFY_SOCKET=${JSON.stringify(socket)} is neither an absolute path nor an abstract name (@…)` };
  const address = socket.startsWith('@') ? `\0${socket.slice(1)}` : socket;
  return { kind: 'notify', socket, address, watchdogMs, ...(note ? { note } : {}) };
}

/** A connected datagram socket to systemd. */
export interface NotifySocket {
  /** Sends one datagram; rejects when the kernel refused it. */
  send(message: string): Promise<void>;
  close(): void;
}

export type NotifySocketFactory = (address: string) => Promise<NotifySocket>;

/** The part of the `unix-dgram` addon used here (it ships no types). */
interface UnixDgramSocket {
  on(evt: 'error', fn: (e: Error) => void): void;
  once(evt: 'connect', fn: () => void): void;
  once(evt: 'error', fn: (e: Error) => void): void;
  removeAllListeners(evt?: string): void;
  connect(path: string): void;
  send(buf: Buffer, cb: (err?: Error) => void): void;
  close(): void;
}

/**
 * The real socket: `unix-dgram`, required here and only here (a native addon, ~0.5 MB
 * resident). Its connect() and send() are synchronous system calls; their events fire
 * before they return. unix-dgram 2.0.7 copies the address with strncpy and passes the full
 * sockaddr_un length, so an abstract name ('\0…') cannot be reached with it (connect:
 * ECONNREFUSED); the error says so, and the agent exits on it like on any connect failure.
 */
export const unixDgramSocket: NotifySocketFactory = async (address) => {
  const unix = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: 'unix_dgram'): UnixDgramSocket };
  const s = unix.createSocket('unix_dgram');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.once('connect', resolve);
      s.connect(address);
    });
  } catch (e) {
    s.close();
    const abstract = address.startsWith('\0') ? ' (an abstract socket name: unix-dgram 2.0.7 cannot address those; use a path)' : '';
    throw new Error(`cannot connect to ${address.replace('\0', '@')}${abstract}: ${(e as Error).message}`, { cause: e });
  }
  s.removeAllListeners('error');
  s.on('error', () => undefined); // send errors go to send()'s callback
  let open = true;
  return {
    send: (message) => new Promise<void>((resolve, reject) => (open ? s.send(Buffer.from(message), (err) => (err ? reject(err) : resolve())) : reject(new Error('closed')))),
    close: () => {
      if (open) s.close();
      open = false;
    },
  };
};

/** A liveness check's answer: `part` names what is not alive. */
export type WatchdogVerdict = { alive: true } | { alive: false; part: string; detail: string };

/**
 * Connects to NOTIFY_SOCKET; null when the plan is 'off'. Throws when the plan is
 * 'unusable' or the socket cannot be had (the addon does not load, connect fails).
 */
export async function openNotifier(plan: NotifyPlan, o: { clock: Clock; log: Logger; socket?: NotifySocketFactory }): Promise<SdNotifier | null> {
  if (plan.kind === 'off') return null;
  if (plan.kind === 'unusable') throw new Error(plan.problem);
  const sock = await (o.socket ?? unixDgramSocket)(plan.address);
  return new SdNotifier(plan, sock, o.clock, o.log);
}

export class SdNotifier {
  private timer: unknown = null;
  private dueAt = 0;
  private withheld: WatchdogVerdict | null = null;
  private sendFailing = false;
  private closed = false;
  /** Datagrams sent (tests and logs). */
  sent = 0;
  /** The first ping of this process also sets the unit's own WATCHDOG_USEC again (see extendWatchdog). */
  private restored = false;

  constructor(
    readonly plan: Extract<NotifyPlan, { kind: 'notify' }>,
    private readonly sock: NotifySocket,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** The ping period (half of WATCHDOG_USEC), or null without a watchdog. */
  get pingMs(): number | null {
    return this.plan.watchdogMs === null ? null : this.plan.watchdogMs / 2;
  }

  /** READY=1 (with a STATUS line when given). */
  ready(status?: string): Promise<void> {
    return this.send(['READY=1', ...(status !== undefined ? [statusLine(status)] : [])]);
  }

  status(text: string): Promise<void> {
    return this.send([statusLine(text)]);
  }

  /** STOPPING=1: the stop has begun; the watchdog stops (systemd no longer expects pings). */
  stopping(status?: string): Promise<void> {
    this.stopWatchdog();
    return this.send(['STOPPING=1', ...(status !== undefined ? [statusLine(status)] : [])]);
  }

  /**
   * Pings now and every pingMs while `check` passes. `check` gets how late this ping's
   * timer fired (ms; 0 for the first). The first failing verdict is logged once, put in
   * STATUS, and no ping is sent again.
   */
  startWatchdog(check: (loopLateMs: number) => WatchdogVerdict): void {
    const every = this.pingMs;
    if (every === null || this.timer !== null || this.withheld !== null || this.closed) return;
    const tick = (late: number): void => {
      this.timer = null;
      const v = check(late);
      if (!v.alive) {
        this.withheld = v;
        this.log.error({ evt: 'watchdog.withheld', part: v.part, detail: v.detail, lateMs: late }, `not alive (${v.part}: ${v.detail}); no more watchdog pings, systemd will restart the service`);
        void this.send([statusLine(`watchdog withheld: ${v.part} not alive (${v.detail})`)]);
        return;
      }
      void this.send(['WATCHDOG=1', ...(this.restored ? [] : [`WATCHDOG_USEC=${Math.round(every * 2 * 1000)}`])]);
      this.restored = true;
      this.dueAt = this.clock.now() + every;
      this.timer = this.clock.setTimeout(() => tick(Math.max(0, this.clock.now() - this.dueAt)), every);
    };
    tick(0);
  }

  /** The verdict that stopped the pings, or null while they go on. */
  get withheldBy(): WatchdogVerdict | null {
    return this.withheld;
  }

  /**
   * A last ping that gives the unit a longer watchdog (WATCHDOG_USEC=, systemd ≥ 236) for a
   * gap no process of ours can ping through: the agent's exit, the launcher's pause, the
   * next agent's start. That agent's first ping sets the unit's own timeout again. Stops
   * this process's pings.
   */
  extendWatchdog(ms: number): Promise<void> {
    this.stopWatchdog();
    if (this.pingMs === null || this.withheld !== null) return Promise.resolve();
    return this.send([`WATCHDOG_USEC=${Math.round(Math.max(ms, this.pingMs * 2) * 1000)}`, 'WATCHDOG=1']);
  }

  stopWatchdog(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  close(): void {
    this.stopWatchdog();
    if (!this.closed) this.sock.close();
    this.closed = true;
  }

  private async send(lines: string[]): Promise<void> {
    if (this.closed) return;
    try {
      await this.sock.send(lines.join('\n'));
      this.sent++;
      if (this.sendFailing) this.log.info({ evt: 'sd_notify.send_ok' }, 'systemd notification sent again');
      this.sendFailing = false;
    } catch (e) {
      // Logged once per streak: a full socket buffer (systemd busy) drops a datagram, the next ping goes on.
      if (!this.sendFailing) this.log.warn({ evt: 'sd_notify.send_failed', what: lines[0]?.split('=')[0], err: (e as Error).message }, `cannot notify systemd: ${(e as Error).message}`);
      this.sendFailing = true;
    }
  }
}

/** STATUS= takes one line. */
function statusLine(text: string): string {
  return `STATUS=${text.replace(/[\r\n]+/g, ' ').slice(0, 200)}`;
}
