/**
 * The service manager itself, not a reading of unit files: a real systemd as PID 1 of a
 * PID/mount/cgroup namespace (helpers/systemd-box.ts) loads units like the agent's
 * (Type=notify, NotifyAccess=all, WatchdogSec=, Restart=on-failure,
 * RestartPreventExitStatus=78) and runs a small Node probe under them:
 *  - READY=1 makes a Type=notify unit active, and WATCHDOG=1 keeps it so; a unit that never
 *    says READY=1 fails with Result=timeout;
 *  - a service that stops sending WATCHDOG=1 is killed and restarted (NRestarts, the
 *    manager's "Watchdog timeout" line);
 *  - exit 78 leaves the unit failed with no restart, where exit 1 is restarted.
 * The probe sends its notifications with the project's own notifier (lib/sd-notify.ts:
 * openNotifier/notifyPlan/SdNotifier over one unix-dgram socket, as `ep run` does), so
 * this also shows that systemd takes its datagrams. (It used systemd-notify before: a
 * short-lived child, whose messages systemd may fail to attribute to the unit once it has
 * exited — systemd#2739 — and which tested nothing of ours.)
 * Skips, saying why on stderr, where the box cannot start (not root, no unshare/nsenter,
 * no systemd installed, no cgroup2, systemd refusing to come up).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { distPath } from '../../lib/package-root.js';
import { startSystemdBox, SystemdBoxUnavailable, type SystemdBox } from './helpers/systemd-box.js';

// The project's notifier (lib/sd-notify.ts, compiled: npm run build), as `ep run` uses it.
const LIB = distPath(import.meta.url, 'lib', 'index.js');

// modes: ready (READY=1, then WATCHDOG=1 every half period while WATCHDOG_USEC is set),
// never (says nothing), stall <marker> (READY=1 and three pings on its first run, then its
// liveness check fails: watchdog.withheld, no more pings; every later run pings on),
// exit <code>.
const PROBE = `import { existsSync, writeFileSync } from 'node:fs';
import { createLogger, notifyPlan, openNotifier, systemClock } from ${JSON.stringify(pathToFileURL(LIB).href)};
const [mode, arg] = process.argv.slice(2);
const log = createLogger({ name: 'probe' });
console.log('probe: ' + mode + ' pid ' + process.pid + ' watchdog ' + Number(process.env.WATCHDOG_USEC ?? 0) / 1000 + ' ms');
setInterval(() => undefined, 1 << 30);
if (mode === 'exit') process.exit(Number(arg));
const notifier = mode === 'never' ? null : await openNotifier(notifyPlan(process.env, process.pid, process.ppid), { clock: systemClock, log });
if (mode === 'ready') {
  await notifier.ready('probe ready');
  notifier.startWatchdog(() => ({ alive: true }));
}
if (mode === 'stall') {
  const first = !existsSync(arg);
  writeFileSync(arg, 'ran\\n', { flag: 'a' });
  await notifier.ready('probe stall');
  let n = 0;
  notifier.startWatchdog(() => (first && ++n > 3 ? { alive: false, part: 'probe', detail: 'stalled on purpose' } : { alive: true }));
}
`;

const service = (probe: string, lines: string[]): string =>
  ['[Unit]', 'StartLimitIntervalSec=0', '', '[Service]', `ExecStart=${process.execPath} ${probe}`, 'LimitCORE=0', ...lines, ''].join('\n');
const NOTIFY = ['Type=notify', 'NotifyAccess=all'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('systemd-real: units under a real systemd', () => {
  let box: SystemdBox | undefined;
  let why = '';
  let probe = '';

  beforeAll(async () => {
    try {
      box = await startSystemdBox();
    } catch (err) {
      if (!(err instanceof SystemdBoxUnavailable)) throw err;
      why = err.message;
      process.stderr.write(`systemd-real: skipped: ${why}\n`);
      return;
    }
    probe = path.join(box.dir, 'probe.mjs');
    await writeFile(probe, PROBE);
  });
  afterAll(async () => {
    await box?.stop();
  });
  beforeEach((ctx) => {
    if (!box) ctx.skip();
  });

  it('Type=notify: READY=1 makes the unit active and WATCHDOG=1 keeps it; no READY=1 is a start timeout', async () => {
    const b = box!;
    await b.writeUnit('ready.service', service(`${probe} ready`, [...NOTIFY, 'WatchdogSec=1s', 'Restart=on-failure', 'RestartSec=200ms']));
    await b.writeUnit('never.service', service(`${probe} never`, [...NOTIFY, 'TimeoutStartSec=2s']));

    const started = await b.start('ready.service');
    expect(started.code, started.stderr).toBe(0);
    expect(await b.show('ready.service', ['ActiveState', 'SubState', 'StatusText'])).toEqual({ ActiveState: 'active', SubState: 'running', StatusText: 'probe ready' });
    await sleep(2500); // two and a half watchdog periods, pinged every half
    expect(await b.show('ready.service', ['ActiveState', 'NRestarts', 'Result'])).toEqual({ ActiveState: 'active', NRestarts: '0', Result: 'success' });

    const t0 = Date.now();
    const never = await b.start('never.service');
    expect(never.code).not.toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(await b.show('never.service', ['ActiveState', 'Result'])).toEqual({ ActiveState: 'failed', Result: 'timeout' });
    expect(await b.journal('never.service')).toMatch(/start operation timed out/i);
    await b.systemctl('stop', 'ready.service');
  });

  it('WatchdogSec=: a service that stops sending WATCHDOG=1 is killed and restarted', async () => {
    const b = box!;
    const marker = path.join(b.dir, 'stall.runs');
    await b.writeUnit('stall.service', service(`${probe} stall ${marker}`, [...NOTIFY, 'WatchdogSec=2s', 'Restart=on-failure', 'RestartSec=200ms']));
    const started = await b.start('stall.service');
    expect(started.code, started.stderr).toBe(0);
    const after = await b.waitFor('stall.service', ['NRestarts', 'ActiveState', 'SubState'], (v) => v.NRestarts === '1' && v.SubState === 'running', 10_000);
    expect(after).toEqual({ NRestarts: '1', ActiveState: 'active', SubState: 'running' });
    const journal = await b.journal('stall.service');
    expect(journal).toMatch(/"evt":"watchdog\.withheld","part":"probe"/);
    expect(journal).toMatch(/stall\.service: Watchdog timeout/);
    expect(journal).toMatch(/stall\.service: Failed with result 'watchdog'/);
    await b.systemctl('stop', 'stall.service');
  });

  it('RestartPreventExitStatus=78: exit 78 leaves the unit failed with no restart; exit 1 is restarted', async () => {
    const b = box!;
    const lines = [...NOTIFY, 'Restart=on-failure', 'RestartSec=200ms', 'RestartPreventExitStatus=78'];
    await b.writeUnit('config-error.service', service(`${probe} exit 78`, lines));
    await b.writeUnit('crash.service', service(`${probe} exit 1`, lines));

    expect((await b.start('config-error.service')).code).not.toBe(0);
    await sleep(1000); // five RestartSec= periods
    expect(await b.show('config-error.service', ['ActiveState', 'Result', 'NRestarts', 'ExecMainStatus'])).toEqual({
      ActiveState: 'failed',
      Result: 'exit-code',
      NRestarts: '0',
      ExecMainStatus: '78',
    });

    // The control: the same unit, exit 1, is restarted (so the 0 above is the rule, not a dead Restart=).
    await b.systemctl('start', '--no-block', 'crash.service');
    await b.waitFor('crash.service', ['NRestarts'], (v) => Number(v.NRestarts) >= 2, 10_000);
    await b.systemctl('stop', 'crash.service');
  });
});
