/**
 * The real agent under a real systemd, end to end: provisioning/install.sh lays out a box
 * in a temp root (--root R --from-checkout --no-packages), and the installed
 * commune-endpoint.service — with only its paths moved into R and the changes listed at
 * unitFor(), as the service user install.sh created (boxUser()) — runs the installed
 * launcher and `ep run` under systemd 252 as PID 1 of a PID/mount/cgroup namespace
 * (helpers/systemd-box.ts):
 *  (a) unprovisioned: only the agent's own READY=1 can make the Type=notify unit active;
 *      `ep status` over the control socket says `unprovisioned`; the unit stays active with
 *      no restart for more than two WatchdogSec= periods (the watchdog is fed);
 *  (b) `ep provision FILE` by hand (a certificate file for a real Mosquitto): the agent exits
 *      75, the launcher starts it again, the hub sees the box online (retained), and the unit
 *      never restarted (NRestarts=0: the restart was the launcher's);
 *  (c) a SIGSTOPped agent (the child of the unit's main PID) stops feeding the watchdog:
 *      systemd kills and restarts the service ("Watchdog timeout", NRestarts=1) and the box
 *      comes back online;
 *  (d) `systemctl stop`: the unit ends inactive, not failed; the agent logged STOPPING and a
 *      clean stop; the hub gets the offline status.
 * No camera here: the provisioned agent runs with media faults (as `ep provision` writes
 * the config: media source auto); that is fine for all of the above.
 * Skips, saying why on stderr, where the box cannot start (see systemd-real.test.ts) or there
 * is no /usr/local/bin/node (the unit's ExecStart).
 */
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { distPath } from '../../lib/package-root.js';
import { HubClient, type HubMessage } from './helpers/hub-client.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { startSystemdBox, SystemdBoxUnavailable, type SystemdBox } from './helpers/systemd-box.js';

const execFileP = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const EP = distPath(import.meta.url, 'device', 'cli', 'ep.js');
const NODE = '/usr/local/bin/node';
const UNIT = 'commune-endpoint.service';
const BOX_ID = 'cam-systemd';
const GROUP = 'camsd';
const WATCHDOG_S = 6;
/** Hang guards only. */
const GUARD_MS = 25_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
async function sh(file: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  try {
    const r = await execFileP(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string; message?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? x.message ?? '' };
  }
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The uid and gid of `user` in R/etc/passwd. */
async function idsOf(root: string, user: string): Promise<{ uid: number; gid: number }> {
  const line = (await readFile(path.join(root, 'etc', 'passwd'), 'utf8')).split('\n').find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no ${user} in ${root}/etc/passwd`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * The installed unit with its paths moved into R, nothing else changed but:
 *  - WatchdogSec= 30 s → 6 s, so a watchdog kill fits the test's time;
 *  - Environment=EP_CONTROL_SOCKET: in the data dir (ReadWritePaths=), a path this test can
 *    reach — the default, RuntimeDirectory=, is in the box's private /run.
 * Every other line stays as installed, hardening included (PrivateTmp= is why R is not under
 * /tmp; ProtectHome= why it is not under a home), and User=/Group= too: see boxUser().
 */
function unitFor(installed: string, root: string, socket: string): string {
  const inRoot = (l: string): string => l.replaceAll('/opt/commune-endpoint', `${root}/opt/commune-endpoint`).replaceAll('/var/lib/commune-endpoint', `${root}/var/lib/commune-endpoint`);
  const seen = new Set<string>();
  const out = installed.split('\n').map((l) => {
    const key = l.startsWith('Environment=') ? l.slice(0, l.indexOf('=', 'Environment='.length)) : l.split('=')[0]!;
    seen.add(key);
    if (key === 'ExecStart' || key === 'ReadWritePaths' || key === 'Environment=EP_APP_ROOT') return inRoot(l);
    if (key === 'WatchdogSec') return `WatchdogSec=${WATCHDOG_S}s`;
    if (key === 'Environment=NODE_ENV') return `${l}\nEnvironment=EP_CONTROL_SOCKET=${socket}`;
    return l;
  });
  for (const k of ['ExecStart', 'ReadWritePaths', 'Environment=EP_APP_ROOT', 'WatchdogSec', 'Environment=NODE_ENV', 'User', 'Group', 'PrivateTmp']) if (!seen.has(k)) throw new Error(`the installed unit has no ${k} line to adapt: unitFor() is out of date`);
  return out.join('\n');
}

/**
 * There is no user commune-endpoint on this host: install.sh created it in R/etc/passwd
 * only (and gave it R's app root and 0700 data dir). Rather than drop the unit's
 * User=/Group= — as root under the unit's empty CapabilityBoundingSet= (no
 * CAP_DAC_OVERRIDE) the agent cannot even enter that data dir (tried: its control socket
 * fails with EACCES) — the box gets the user: this host's passwd and group files plus R's
 * commune-endpoint lines, bind-mounted over /etc/passwd and /etc/group in the box's own
 * mount namespace only (systemd 252 refuses a numeric User= with no passwd entry: 217/USER).
 * The supplementary groups of R/etc/group (video, audio, render, gpio) are left out: no
 * such hardware here.
 */
async function boxUser(box: SystemdBox, root: string): Promise<void> {
  for (const f of ['passwd', 'group']) {
    const mine = (await readFile(path.join(root, 'etc', f), 'utf8')).split('\n').filter((l) => l.startsWith('commune-endpoint:'));
    if (mine.length !== 1) throw new Error(`${root}/etc/${f}: ${mine.length} commune-endpoint lines`);
    const host = (await readFile(path.join('/etc', f), 'utf8')).replace(/\n*$/, '\n');
    if (host.split('\n').some((l) => l.startsWith('commune-endpoint:'))) throw new Error(`this host has a commune-endpoint in /etc/${f} already`);
    const merged = path.join(box.dir, f);
    await writeFile(merged, `${host}${mine[0]}\n`, { mode: 0o644 });
    const r = await sh('nsenter', ['-t', String(box.pid), '-m', 'mount', '--bind', merged, `/etc/${f}`]);
    if (r.code !== 0) throw new Error(`bind-mounting ${merged} over the box's /etc/${f}: ${r.stderr}`);
  }
}

describe('systemd-agent: the installed agent under a real systemd', () => {
  let box: SystemdBox | undefined;
  let broker: Mosquitto | undefined;
  let hub: HubClient | undefined;
  let root = '';
  let dataDir = '';
  let socket = '';
  let stateDirExisted = true;
  const skip = (why: string): void => void process.stderr.write(`systemd-agent: skipped: ${why}\n`);

  beforeAll(async () => {
    if (!existsSync(NODE)) return skip(`no ${NODE} (the unit's ExecStart; install.sh or scripts/setup.sh installs it)`);
    try {
      box = await startSystemdBox();
    } catch (err) {
      if (!(err instanceof SystemdBoxUnavailable)) throw err;
      return skip(err.message);
    }
    // Not under /tmp or /var/tmp (the unit's PrivateTmp=: a clone under /tmp, as CI makes
    // one, fails with 226/NAMESPACE) nor a home (ProtectHome=): /var/lib, removed afterwards.
    root = await mkdtemp('/var/lib/ep-systemd-agent-');
    await chmod(root, 0o755); // the service user walks through it
    dataDir = path.join(root, 'var', 'lib', 'commune-endpoint');
    socket = path.join(dataDir, 'control.sock');
    const inst = await sh('bash', [path.join(REPO, 'provisioning', 'install.sh'), '--root', root, '--from-checkout', '--no-packages', '--sd', 'no']);
    expect(inst.code, inst.stderr + inst.stdout).toBe(0);
    const installed = await readFile(path.join(root, 'usr', 'local', 'lib', 'systemd', 'system', UNIT), 'utf8');
    // StateDirectory=commune-endpoint is /var/lib/commune-endpoint of this machine (the box
    // shares its file system), also the service user's home (GStreamer's registry cache goes
    // there, as on a box); removed afterwards if the test made it.
    stateDirExisted = existsSync('/var/lib/commune-endpoint');
    await boxUser(box, root);
    // The manager's debug lines name the sender of every notification it takes ("Got
    // notification message from PID …"): the agent's own READY=1, WATCHDOG=1 and STOPPING=1.
    const lv = await box.systemctl('log-level', 'debug');
    expect(lv.code, lv.stderr).toBe(0);
    await box.writeUnit(UNIT, unitFor(installed, root, socket));
    broker = await Mosquitto.start({ devices: { [BOX_ID]: GROUP } });
    hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
    // A hang guard: install.sh copies the app and a systemd boots; beside ota-agent's eight
    // boxes on this 2-core machine that passed the default 60 s in 5 of 8 runs.
  }, 180_000);

  afterAll(async () => {
    if (box) {
      const j = await box.journal(UNIT).catch(() => '');
      if (process.env.EP_SYSTEMD_AGENT_JOURNAL) process.stderr.write(`--- journal of ${UNIT} ---\n${j}\n`);
    }
    await box?.stop();
    await hub?.close();
    await broker?.stop();
    if (root) await rm(root, { recursive: true, force: true });
    if (!stateDirExisted) await rm('/var/lib/commune-endpoint', { recursive: true, force: true });
  });

  beforeEach((ctx) => {
    if (!box) ctx.skip();
  });

  const status = async (): Promise<Record<string, unknown>> => {
    const r = await sh(process.execPath, [EP, 'status', '--json', '--socket', socket], 15_000);
    if (r.code !== 0) throw new Error(`ep status: exit ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  const untilStatus = async (pred: (s: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> => {
    const end = Date.now() + GUARD_MS;
    let last: unknown;
    for (;;) {
      try {
        const s = await status();
        if (pred(s)) return s;
        last = s;
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() > end) throw new Error(`ep status never showed ${what}; last ${JSON.stringify(last)}`);
      await sleep(200);
    }
  };
  const isStatus = (online: boolean, after: number) => (m: HubMessage) => m.n > after && m.kind === 'status' && m.deviceId === BOX_ID && (m.json as { online?: boolean } | undefined)?.online === online;
  /** `cmd` run inside the box (its PID namespace and /proc). */
  const inBox = (cmd: string): Promise<Run> => sh('nsenter', ['-t', String(box!.pid), '-m', '-p', 'sh', '-c', cmd], 15_000);
  /** The unit's main PID (the launcher) and its child (`ep run`), as PIDs of the box. */
  const pids = async (): Promise<{ main: number; agent: number; cmdline: string }> => {
    const main = Number((await box!.show(UNIT, ['MainPID'])).MainPID);
    if (!(main > 0)) throw new Error(`${UNIT} has no main PID`);
    const kids = (await inBox(`cat /proc/${main}/task/*/children`)).stdout.trim().split(/\s+/).filter(Boolean).map(Number);
    if (kids.length !== 1) throw new Error(`the launcher (${main}) has ${kids.length} children: ${kids.join(' ')}`);
    const cmdline = (await inBox(`tr '\\0' ' ' < /proc/${kids[0]}/cmdline`)).stdout.trim();
    return { main, agent: kids[0]!, cmdline };
  };

  it('(a) unprovisioned: READY=1 makes it active, ep status says so, and the watchdog is fed', async () => {
    const b = box!;
    const started = await b.start(UNIT);
    // From READY=1 (systemctl start returns on it): a start slowed by a loaded machine must
    // not eat into the periods whose pings are counted below (it did: 3 of 4 seen).
    const t0 = Date.now();
    expect(started.code, `${started.stderr}\n${await b.journal(UNIT)}`).toBe(0);
    // systemctl start returns once the job is done: for Type=notify, on READY=1 — the agent's
    // (the launcher never sends it).
    expect(await b.show(UNIT, ['ActiveState', 'SubState', 'StatusText'])).toMatchObject({ ActiveState: 'active', SubState: 'running', StatusText: expect.stringMatching(/^unprovisioned: /) });
    const p = await pids();
    // The launcher's child is `ep run` from the installed release, with the rewritten --config.
    expect(p.cmdline).toMatch(new RegExp(`/dist/device/cli/ep\\.js run --config ${dataDir}/config\\.json$`));
    expect(p.cmdline).toContain(`${root}/opt/commune-endpoint/releases/`);
    expect(await status()).toMatchObject({ state: 'unprovisioned', provisioned: false });
    // More than two watchdog periods after READY=1: still active, never restarted.
    await sleep(Math.max(0, 2 * WATCHDOG_S * 1000 + 1500 - (Date.now() - t0)));
    expect(await b.show(UNIT, ['ActiveState', 'SubState', 'NRestarts', 'Result', 'MainPID'])).toEqual({ ActiveState: 'active', SubState: 'running', NRestarts: '0', Result: 'success', MainPID: String(p.main) });
    expect((await pids()).agent).toBe(p.agent);
    const journal = await b.journal(UNIT);
    expect(journal).toContain('"evt":"sd_notify.connected"');
    expect(journal).toContain('"evt":"agent.unprovisioned"');
    // From the agent (the launcher's child), not the launcher: READY=1 once, a WATCHDOG=1 every 3 s.
    const from = (pid: number): string[] => [...journal.matchAll(new RegExp(`Got notification message from PID ${pid} \\((.*)\\)$`, 'gm'))].map((m) => m[1]!);
    expect(from(p.agent)[0]).toMatch(/^READY=1, STATUS=unprovisioned: no configuration/);
    expect(from(p.agent).filter((m) => m === 'WATCHDOG=1').length).toBeGreaterThanOrEqual(4);
    expect(from(p.main)).toEqual([]);
    expect(journal).not.toMatch(/Watchdog timeout|watchdog\.withheld|watchdog\.unusable/);
  });

  it('(b) provisioned by hand: the agent exits 75, the launcher starts it again, the box is online, systemd saw no restart', async () => {
    const b = box!;
    const before = await pids();
    const t = broker!.tls(BOX_ID);
    const [certificate, key, ca] = await Promise.all([readFile(t.certFile, 'utf8'), readFile(t.keyFile, 'utf8'), readFile(broker!.caFile, 'utf8')]);
    const file = path.join(b.dir, 'ep-provision.json');
    await writeFile(file, JSON.stringify({ v: 1, groupId: GROUP, name: 'UBND xã Thử', broker: { url: broker!.url, certificate, key, ca } }));
    const since = hub!.mark();
    const p = await sh(process.execPath, [EP, 'provision', file, '--root', root, '--data-dir', dataDir, '--app-root', path.join(root, 'opt', 'commune-endpoint'), '--no-restart']);
    expect(p.code, p.stderr).toBe(0);
    expect(statSync(path.join(dataDir, 'config.json')).uid).toBe((await idsOf(root, 'commune-endpoint')).uid);

    await hub!.waitFor(isStatus(true, since), GUARD_MS, 'the box online');
    // Retained: a hub that subscribes now gets it too.
    const late = await HubClient.connect({ url: broker!.url, tls: broker!.tls('hub') });
    try {
      const m = await late.waitFor(isStatus(true, 0), GUARD_MS, 'the retained online status');
      expect(m.retain).toBe(true);
    } finally {
      await late.close();
    }
    expect(await untilStatus((s) => s.provisioned === true, 'provisioned')).toMatchObject({ provisioned: true, deviceId: BOX_ID, hub: { connected: true } });

    const after = await pids();
    expect(after.main).toBe(before.main);
    expect(after.agent).not.toBe(before.agent);
    // READY=1 carries the new agent's STATUS= (sent once its start resolved, not after the online status).
    await b.waitFor(UNIT, ['StatusText'], (v) => v.StatusText === `running ${BOX_ID}`, GUARD_MS);
    expect(await b.show(UNIT, ['ActiveState', 'SubState', 'NRestarts'])).toEqual({ ActiveState: 'active', SubState: 'running', NRestarts: '0' });
    const journal = await b.journal(UNIT);
    expect(journal).toContain('"evt":"agent.provisioned"');
    expect(journal).toMatch(/"evt":"launcher\.child_exit".*"code":75/);
    expect(journal).not.toMatch(/Watchdog timeout/);
  });

  it('(c) a stopped agent starves the watchdog: systemd kills and restarts the service, and the box comes back', async () => {
    const b = box!;
    const before = await pids();
    const since = hub!.mark();
    const stopped = await inBox(`kill -STOP ${before.agent}`);
    expect(stopped.code, stopped.stderr).toBe(0);
    const t0 = Date.now();
    await b.waitFor(UNIT, ['NRestarts'], (v) => v.NRestarts === '1', GUARD_MS);
    // Killed no sooner than a watchdog period after its last ping (at most half a period before the stop).
    expect(Date.now() - t0).toBeGreaterThanOrEqual((WATCHDOG_S / 2) * 1000 - 500);
    const journal = await b.journal(UNIT);
    expect(journal).toMatch(/commune-endpoint\.service: Watchdog timeout/);
    expect(journal).toMatch(/commune-endpoint\.service: Failed with result 'watchdog'/);

    await hub!.waitFor(isStatus(false, since), GUARD_MS, 'the offline status (the broker-side will) of the killed box');
    await b.waitFor(UNIT, ['ActiveState', 'SubState'], (v) => v.ActiveState === 'active' && v.SubState === 'running', GUARD_MS);
    const back = await hub!.waitFor(isStatus(true, since), GUARD_MS, 'the box online again');
    expect(back.json).toMatchObject({ online: true });
    const after = await pids();
    expect(after.main).not.toBe(before.main);
    await b.waitFor(UNIT, ['StatusText'], (v) => v.StatusText === `running ${BOX_ID}`, GUARD_MS);
    expect(await b.show(UNIT, ['ActiveState', 'NRestarts'])).toEqual({ ActiveState: 'active', NRestarts: '1' });
  });

  it('(d) systemctl stop: STOPPING and a clean stop, the unit inactive (not failed), the box offline', async () => {
    const b = box!;
    const { agent } = await pids();
    const since = hub!.mark();
    const stopped = await b.systemctl('stop', UNIT);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(await b.show(UNIT, ['ActiveState', 'SubState', 'Result', 'ExecMainStatus'])).toEqual({ ActiveState: 'inactive', SubState: 'dead', Result: 'success', ExecMainStatus: '0' });
    const off = await hub!.waitFor(isStatus(false, since), GUARD_MS, 'the offline status');
    expect(off.json).toMatchObject({ online: false });
    const journal = await b.journal(UNIT);
    const tail = journal.slice(journal.lastIndexOf('"evt":"launcher.start"'));
    expect(tail).toMatch(/"evt":"launcher\.signal".*received SIGTERM/);
    expect(tail).toMatch(/"evt":"agent\.signal".*"sig":"SIGTERM"/);
    expect(tail).toContain(`Got notification message from PID ${agent} (STOPPING=1, STATUS=stopping (SIGTERM))`);
    expect(tail).toContain('"evt":"agent.stopped"');
    expect(tail).toMatch(/"evt":"launcher\.child_exit".*"code":0/);
    expect(tail).not.toMatch(/agent\.stop_timeout|agent\.signal_again|agent\.exit_forced/);
  });
});
