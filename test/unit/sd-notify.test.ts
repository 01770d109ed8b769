/**
 * lib/sd-notify.ts: what systemd's environment means (notifyPlan, pure) and the notifier
 * over a recording socket and the fake clock — READY/STATUS/STOPPING lines, pings every
 * WATCHDOG_USEC/2 while the check passes, one `watchdog.withheld` and no ping after it.
 */
import { describe, expect, it } from 'vitest';
import { notifyPlan, openNotifier, type NotifySocket, type WatchdogVerdict } from '../../lib/sd-notify.js';
import { createLogger, type Clock } from '../../lib/index.js';
import { FakeClock } from '../fakes/index.js';

const PID = 500;
const PPID = 400;

describe('notifyPlan', () => {
  it('nothing set: off', () => {
    expect(notifyPlan({}, PID, PPID)).toEqual({ kind: 'off' });
    expect(notifyPlan({ NOTIFY_SOCKET: '', WATCHDOG_USEC: '' }, PID, PPID)).toEqual({ kind: 'off' });
  });

  it('a path socket without a watchdog: notify only', () => {
    expect(notifyPlan({ NOTIFY_SOCKET: '/run/systemd/notify' }, PID, PPID)).toEqual({ kind: 'notify', socket: '/run/systemd/notify', address: '/run/systemd/notify', watchdogMs: null });
  });

  it("an abstract name: '@x' is connected to as '\\0x'", () => {
    expect(notifyPlan({ NOTIFY_SOCKET: '@/org/freedesktop/systemd1/notify' }, PID, PPID)).toMatchObject({ kind: 'notify', address: '\0/org/freedesktop/systemd1/notify' });
  });

  it('WATCHDOG_PID absent, ours or our parent\'s (the launcher, the unit\'s main PID): the watchdog is ours', () => {
    for (const WATCHDOG_PID of [undefined, String(PID), String(PPID)]) {
      expect(notifyPlan({ NOTIFY_SOCKET: '/n', WATCHDOG_USEC: '30000000', ...(WATCHDOG_PID ? { WATCHDOG_PID } : {}) }, PID, PPID)).toEqual({ kind: 'notify', socket: '/n', address: '/n', watchdogMs: 30_000 });
    }
  });

  it("another process's WATCHDOG_PID: not ours, said in a note", () => {
    const p = notifyPlan({ NOTIFY_SOCKET: '/n', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '77' }, PID, PPID);
    expect(p).toMatchObject({ kind: 'notify', watchdogMs: null });
    expect(p.kind === 'notify' && p.note).toMatch(/WATCHDOG_PID=77 is neither/);
    expect(notifyPlan({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '77' }, PID, PPID)).toMatchObject({ kind: 'off' });
  });

  it('a watchdog that cannot be fed is unusable, with the reason', () => {
    expect(notifyPlan({ WATCHDOG_USEC: '30000000' }, PID, PPID)).toMatchObject({ kind: 'unusable', problem: expect.stringMatching(/NOTIFY_SOCKET is not/) });
    expect(notifyPlan({ NOTIFY_SOCKET: '/n', WATCHDOG_USEC: 'soon' }, PID, PPID)).toMatchObject({ kind: 'unusable', problem: expect.stringMatching(/WATCHDOG_USEC="soon"/) });
    expect(notifyPlan({ NOTIFY_SOCKET: '/n', WATCHDOG_USEC: '0' }, PID, PPID)).toMatchObject({ kind: 'unusable' });
    expect(notifyPlan({ NOTIFY_SOCKET: 'relative', WATCHDOG_USEC: '30000000' }, PID, PPID)).toMatchObject({ kind: 'unusable', problem: expect.stringMatching(/neither an absolute path/) });
  });
});

/** A socket that records what it was sent; `fail` makes sends reject. */
function recordingSocket(): NotifySocket & { sent: Array<{ at: number; text: string }>; closed: boolean; fail: boolean; clock?: Clock } {
  const s = {
    sent: [] as Array<{ at: number; text: string }>,
    closed: false,
    fail: false,
    clock: undefined as Clock | undefined,
    send: async (text: string) => {
      if (s.fail) throw new Error('EAGAIN');
      s.sent.push({ at: s.clock?.now() ?? 0, text });
    },
    close: () => void (s.closed = true),
  };
  return s;
}

function logCollector(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
  return { log, lines };
}

async function notifier(usec: string | null, check?: (late: number) => WatchdogVerdict) {
  const clock = new FakeClock(0);
  let extraLate = 0;
  // now() can run ahead of the timers: a loop that was busy (the timer fires late).
  const lateClock: Clock = { ...clock, now: () => clock.now() + extraLate, setTimeout: (f, ms) => clock.setTimeout(f, ms), clearTimeout: (h) => clock.clearTimeout(h), setInterval: (f, ms) => clock.setInterval(f, ms), clearInterval: (h) => clock.clearInterval(h) };
  const sock = recordingSocket();
  sock.clock = clock;
  const { log, lines } = logCollector();
  const plan = notifyPlan({ NOTIFY_SOCKET: '/n', ...(usec ? { WATCHDOG_USEC: usec } : {}) }, PID, PPID);
  const n = (await openNotifier(plan, { clock: lateClock, log, socket: async () => sock }))!;
  const lates: number[] = [];
  if (check) n.startWatchdog((late) => (lates.push(late), check(late)));
  return { n, clock, sock, lines, lates, beLate: (ms: number) => (extraLate += ms) };
}

describe('SdNotifier', () => {
  it('READY=1 with a STATUS line; STATUS one line; STOPPING=1', async () => {
    const { n, sock } = await notifier(null);
    await n.ready('running\nbox-1');
    await n.status('x');
    await n.stopping('stopping (SIGTERM)');
    expect(sock.sent.map((s) => s.text)).toEqual(['READY=1\nSTATUS=running box-1', 'STATUS=x', 'STOPPING=1\nSTATUS=stopping (SIGTERM)']);
    expect(n.pingMs).toBeNull();
  });

  it('no watchdog: startWatchdog sends nothing', async () => {
    const { clock, sock } = await notifier(null, () => ({ alive: true }));
    await clock.advance(60_000);
    expect(sock.sent).toEqual([]);
  });

  it('pings at once and every WATCHDOG_USEC/2 while the check passes, with each timer\'s lateness', async () => {
    const { clock, sock, lates } = await notifier('2000000', () => ({ alive: true }));
    await clock.advance(5000);
    // The first also sets the unit's own timeout again (after a predecessor's extendWatchdog).
    expect(sock.sent.map((s) => [s.at, s.text])).toEqual([0, 1000, 2000, 3000, 4000, 5000].map((t) => [t, t === 0 ? 'WATCHDOG=1\nWATCHDOG_USEC=2000000' : 'WATCHDOG=1']));
    expect(lates).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('a failing check: logged once with its part, STATUS says why, no ping ever again', async () => {
    let alive = true;
    const { n, clock, sock, lines } = await notifier('2000000', () => (alive ? { alive: true } : { alive: false, part: 'mqtt', detail: 'its loop has not ticked' }));
    await clock.advance(2000);
    alive = false;
    await clock.advance(1000);
    alive = true;
    await clock.advance(10_000);
    expect(sock.sent.map((s) => s.text)).toEqual(['WATCHDOG=1\nWATCHDOG_USEC=2000000', 'WATCHDOG=1', 'WATCHDOG=1', 'STATUS=watchdog withheld: mqtt not alive (its loop has not ticked)']);
    expect(lines.filter((l) => l.evt === 'watchdog.withheld')).toEqual([expect.objectContaining({ part: 'mqtt', detail: 'its loop has not ticked', level: 50 })]);
    expect(n.withheldBy).toMatchObject({ part: 'mqtt' });
    expect(clock.pending).toBe(0);
  });

  it('extendWatchdog: one ping with a longer WATCHDOG_USEC (never shorter than the unit\'s), then no more pings; the next process\'s first ping restores it', async () => {
    const { n, clock, sock } = await notifier('2000000', () => ({ alive: true }));
    await clock.advance(1000);
    await n.extendWatchdog(60_000);
    await clock.advance(10_000);
    expect(sock.sent.map((s) => [s.at, s.text])).toEqual([[0, 'WATCHDOG=1\nWATCHDOG_USEC=2000000'], [1000, 'WATCHDOG=1'], [1000, 'WATCHDOG_USEC=60000000\nWATCHDOG=1']]);
    expect(clock.pending).toBe(0);
    const short = await notifier('2000000', () => ({ alive: true }));
    await short.n.extendWatchdog(500);
    expect(short.sock.sent.map((s) => s.text).at(-1)).toBe('WATCHDOG_USEC=2000000\nWATCHDOG=1');
  });

  it('the check gets how late the timer fired', async () => {
    const { clock, lates, beLate } = await notifier('2000000', () => ({ alive: true }));
    await clock.advance(1000);
    beLate(4000);
    await clock.advance(1000);
    expect(lates).toEqual([0, 0, 4000]);
  });

  it('STOPPING=1 and close() end the pings; a send that fails is logged once per streak and the pings go on', async () => {
    const { n, clock, sock, lines } = await notifier('2000000', () => ({ alive: true }));
    sock.fail = true;
    await clock.advance(3000);
    sock.fail = false;
    await clock.advance(1000);
    expect(lines.filter((l) => l.evt === 'sd_notify.send_failed')).toHaveLength(1);
    expect(lines.filter((l) => l.evt === 'sd_notify.send_ok')).toHaveLength(1);
    await n.stopping();
    await clock.advance(5000);
    expect(sock.sent.map((s) => [s.at, s.text])).toEqual([[0, 'WATCHDOG=1\nWATCHDOG_USEC=2000000'], [4000, 'WATCHDOG=1'], [4000, 'STOPPING=1']]);
    n.close();
    expect(sock.closed).toBe(true);
    expect(clock.pending).toBe(0);
  });

  it("'off' opens nothing; 'unusable' throws its problem", async () => {
    const { log } = logCollector();
    let opened = 0;
    const socket = async () => (opened++, recordingSocket());
    expect(await openNotifier({ kind: 'off' }, { clock: new FakeClock(0), log, socket })).toBeNull();
    await expect(openNotifier({ kind: 'unusable', problem: 'no socket' }, { clock: new FakeClock(0), log, socket })).rejects.toThrow('no socket');
    expect(opened).toBe(0);
  });
});
