/**
 * A real systemd (the host's /lib/systemd/systemd, as a container's PID 1) for tests that
 * need the service manager itself: Type=notify readiness, WatchdogSec=, Restart= rules.
 *
 * How: a fresh cgroup2 directory under this process's own cgroup2 path; a shell moves itself
 * into it and execs `unshare --pid --fork --mount --cgroup --uts --mount-proc`, whose child
 * (PID 1 of the new PID namespace) mounts a private tmpfs on /run, makes /proc/sys and /sys
 * read-only (systemd then leaves the host's sysctls alone, as in any container), mounts
 * cgroup2 on /sys/fs/cgroup (the new cgroup namespace's root: the box's directory), binds a
 * log file over /dev/console,
 * makes / shared and execs systemd with `container=systemd-box` and SYSTEMD_UNIT_PATH set
 * to the box's own unit directory only — so none of the host's units exist in it, only stub
 * targets (sysinit, basic, shutdown), a minimal journald and what the test writes.
 * `systemctl` and `journalctl` reach it through `nsenter -t <pid> -m -p` (its /run).
 * stop() SIGKILLs that PID 1 (the kernel kills the rest of its namespace), then removes the
 * cgroup directories and the temp dir.
 *
 * Needs root, util-linux's unshare and nsenter, systemd (systemd-journald) installed and a
 * cgroup2 mount somewhere (a hybrid host's /sys/fs/cgroup/unified will do); it does not need
 * systemd to be the host's PID 1. startSystemdBox() throws SystemdBoxUnavailable with the
 * reason when any of that is missing or systemd does not come up.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const SYSTEMD = '/lib/systemd/systemd';
const JOURNALD = '/lib/systemd/systemd-journald';
const TOOLS = ['unshare', 'nsenter', 'systemctl', 'journalctl'];
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class SystemdBoxUnavailable extends Error {}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface SystemdBox {
  /** The temp dir (units/, console.log, and room for the test's own files). */
  readonly dir: string;
  readonly unitDir: string;
  /** The box's PID 1 as the host sees it. */
  readonly pid: number;
  /** Writes (or replaces) units/<name> and runs daemon-reload. */
  writeUnit(name: string, text: string): Promise<void>;
  systemctl(...args: string[]): Promise<Run>;
  /** `systemctl start <unit>` (waits for the job, as systemctl does). */
  start(unit: string): Promise<Run>;
  /** `systemctl show -p a,b <unit>` as a record. */
  show(unit: string, props: string[]): Promise<Record<string, string>>;
  /** Polls show() until pred holds; throws with the last values after timeoutMs. */
  waitFor(unit: string, props: string[], pred: (v: Record<string, string>) => boolean, timeoutMs: number): Promise<Record<string, string>>;
  /** `journalctl -u <unit>` (the unit's output and the manager's lines about it). */
  journal(unit: string): Promise<string>;
  /** What systemd wrote to its console (its own log before journald, and any crash). */
  consoleLog(): string;
  stop(): Promise<void>;
}

function run(file: string, args: string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: { PATH: PATH_ENV, SYSTEMD_PAGER: 'cat', SYSTEMD_COLORS: '0', LANG: 'C.UTF-8' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr: err && !stderr ? String(err.message) : stderr });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function which(tool: string): boolean {
  return PATH_ENV.split(':').some((d) => {
    try {
      return statSync(path.join(d, tool)).isFile();
    } catch {
      return false;
    }
  });
}

/** This process's cgroup2 directory as a host path, or a reason why there is none. */
function ownCgroup2(): string | { reason: string } {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  // mountinfo: id parent maj:min root mountpoint opts ... - fstype source superopts
  const v2 = mounts.map((l) => l.split(' ')).find((f) => f[f.indexOf('-') + 1] === 'cgroup2');
  if (!v2 || v2[3] !== '/' || !v2[4]) return { reason: 'no cgroup2 hierarchy mounted (at its root) on this host' };
  const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
  if (line === undefined) return { reason: 'this process has no cgroup2 path in /proc/self/cgroup' };
  return path.join(v2[4].replace(/\\040/g, ' '), line.slice(3));
}

/** Why a box cannot be tried here at all (before starting one), or null. */
export function systemdBoxPrecheck(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root (a PID/mount/cgroup namespace and a cgroup2 directory need root)';
  for (const t of TOOLS) if (!which(t)) return `no ${t} on PATH`;
  for (const f of [SYSTEMD, JOURNALD]) {
    try {
      statSync(f);
    } catch {
      return `no ${f} (systemd not installed)`;
    }
  }
  const cg = ownCgroup2();
  if (typeof cg !== 'string') return cg.reason;
  return null;
}

const STUB = (what: string): string => `[Unit]\nDescription=${what} (systemd-box stub)\nDefaultDependencies=no\n`;

const BASE_UNITS: Record<string, string> = {
  'box.target': '[Unit]\nDescription=systemd-box\nDefaultDependencies=no\nWants=systemd-journald.socket systemd-journald.service\n',
  'sysinit.target': STUB('sysinit'),
  'basic.target': STUB('basic'),
  'shutdown.target': STUB('shutdown'),
  'sockets.target': STUB('sockets'),
  'systemd-journald.socket':
    '[Unit]\nDescription=Journal Socket\nDefaultDependencies=no\n\n[Socket]\nListenDatagram=/run/systemd/journal/socket\nListenStream=/run/systemd/journal/stdout\n' +
    'PassCredentials=yes\nPassSecurity=yes\nSocketMode=0666\nService=systemd-journald.service\n',
  'systemd-journald.service':
    '[Unit]\nDescription=Journal Service\nDefaultDependencies=no\nRequires=systemd-journald.socket\nAfter=systemd-journald.socket\n\n' +
    `[Service]\nType=notify\nExecStart=${JOURNALD}\nSockets=systemd-journald.socket\nRestart=always\nRestartSec=0\nRuntimeDirectory=systemd/journal\nRuntimeDirectoryPreserve=yes\nStandardOutput=null\n`,
};

// Runs as PID 1 of the new namespaces, then becomes systemd. $1 unit dir, $2 console log.
const INNER = `set -e
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mkdir -p /run/systemd/journald.conf.d
printf '[Journal]\\nStorage=volatile\\nRateLimitBurst=0\\n' > /run/systemd/journald.conf.d/box.conf
if [ -e /dev/console ]; then mount --bind "$2" /dev/console; fi
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
mount --bind /sys /sys && mount -o remount,bind,ro /sys
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
mount --make-rshared /
exec env -i container=systemd-box SYSTEMD_UNIT_PATH="$1" PATH=${PATH_ENV} LANG=C.UTF-8 \\
  ${SYSTEMD} --system --unit=box.target --log-target=journal --log-level=info --show-status=no
`;

/** Children of pid (per /proc/<pid>/task/<pid>/children), or [] once it is gone. */
function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function exeOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
  } catch {
    return '';
  }
}

/** rmdir a cgroup tree depth-first; true when it is gone. */
function removeCgroup(dir: string): boolean {
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroup(path.join(dir, e.name));
    rmdirSync(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

const live = new Set<() => void>();
let exitHook = false;

export async function startSystemdBox(opts: { readyTimeoutMs?: number } = {}): Promise<SystemdBox> {
  const why = systemdBoxPrecheck();
  if (why) throw new SystemdBoxUnavailable(why);
  const cgParent = ownCgroup2() as string;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'systemd-box-'));
  const unitDir = path.join(dir, 'units');
  const consolePath = path.join(dir, 'console.log');
  const cg = path.join(cgParent, `systemd-box-${process.pid}-${path.basename(dir).slice('systemd-box-'.length)}`);
  await mkdir(unitDir);
  for (const [n, t] of Object.entries(BASE_UNITS)) await writeFile(path.join(unitDir, n), t);
  await writeFile(consolePath, '');
  await writeFile(path.join(dir, 'inner.sh'), INNER);
  try {
    await mkdir(cg);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new SystemdBoxUnavailable(`cannot create a cgroup2 directory ${cg}: ${(err as Error).message}`);
  }

  const outFd = openSync(path.join(dir, 'unshare.log'), 'a');
  const child: ChildProcess = spawn(
    'sh',
    ['-c', 'echo $$ > "$1/cgroup.procs" && exec unshare --pid --fork --mount --cgroup --uts --propagation private --mount-proc sh "$2/inner.sh" "$2/units" "$2/console.log"', 'sh', cg, dir],
    { stdio: ['ignore', outFd, outFd], env: { PATH: PATH_ENV } },
  );
  closeSync(outFd);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const unsharePid = child.pid!;
  let pid1 = 0;

  const killNow = (): void => {
    const target = pid1 || children(unsharePid)[0];
    try {
      if (target) process.kill(target, 'SIGKILL');
    } catch {
      /* gone */
    }
    try {
      process.kill(unsharePid, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  live.add(killNow);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const k of live) k();
    });
  }

  const nsenter = (tool: string, args: string[], timeoutMs?: number): Promise<Run> => run('nsenter', ['-t', String(pid1), '-m', '-p', tool, ...args], timeoutMs);
  const systemctl = (...args: string[]): Promise<Run> => nsenter('systemctl', ['--no-pager', ...args]);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    killNow();
    for (let i = 0; i < 100 && !exited; i++) await sleep(50);
    let gone = false;
    for (let i = 0; i < 100 && !(gone = removeCgroup(cg)); i++) await sleep(50);
    live.delete(killNow);
    await rm(dir, { recursive: true, force: true });
    if (!gone) throw new Error(`systemd-box: cgroup ${cg} still busy after stop`);
  };

  const consoleLog = (): string => {
    try {
      return readFileSync(consolePath, 'utf8');
    } catch {
      return '';
    }
  };

  // Up: PID 1 is systemd, and it says running (or degraded).
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  let last = '';
  while (Date.now() < deadline) {
    if (exited) break;
    const c = children(unsharePid)[0];
    if (c && exeOf(c) === SYSTEMD) {
      pid1 = c;
      const r = await systemctl('is-system-running');
      last = (r.stdout + r.stderr).trim();
      if (r.stdout.trim() === 'running' || r.stdout.trim() === 'degraded') break;
    }
    await sleep(100);
  }
  const state = pid1 ? (await systemctl('is-system-running')).stdout.trim() : '';
  if (state !== 'running' && state !== 'degraded') {
    let unshareLog = '';
    try {
      unshareLog = await readFile(path.join(dir, 'unshare.log'), 'utf8');
    } catch {
      /* none */
    }
    const tail = (unshareLog + consoleLog()).trim().split('\n').slice(-8).join(' | ');
    await stop().catch(() => undefined);
    throw new SystemdBoxUnavailable(`systemd did not come up as a namespace's PID 1 (${pid1 ? `is-system-running: ${last || state}` : 'no systemd process'}${tail ? `; ${tail}` : ''})`);
  }

  const show = async (unit: string, props: string[]): Promise<Record<string, string>> => {
    const r = await systemctl('show', '-p', props.join(','), unit);
    if (r.code !== 0) throw new Error(`systemctl show ${unit}: ${r.stderr.trim()}`);
    const out: Record<string, string> = {};
    for (const l of r.stdout.split('\n')) {
      const i = l.indexOf('=');
      if (i > 0) out[l.slice(0, i)] = l.slice(i + 1);
    }
    return out;
  };

  return {
    dir,
    unitDir,
    pid: pid1,
    async writeUnit(name, text) {
      await writeFile(path.join(unitDir, name), text);
      const r = await systemctl('daemon-reload');
      if (r.code !== 0) throw new Error(`daemon-reload: ${r.stderr.trim()}`);
    },
    systemctl,
    start: (unit) => systemctl('start', unit),
    show,
    async waitFor(unit, props, pred, timeoutMs) {
      const end = Date.now() + timeoutMs;
      let v = await show(unit, props);
      while (!pred(v)) {
        if (Date.now() > end) throw new Error(`systemd-box: ${unit} never matched; last ${JSON.stringify(v)}`);
        await sleep(100);
        v = await show(unit, props);
      }
      return v;
    },
    async journal(unit) {
      const r = await nsenter('journalctl', ['--no-pager', '-o', 'short-monotonic', '-u', unit]);
      return r.stdout + r.stderr;
    },
    consoleLog,
    stop,
  };
}
