/**
 * provisioning/install.sh as a technician (or an image build) runs it, into a temp root:
 * from a snapshot of this built checkout (npm run build first), then from a bundle that
 * `ep ota pack` made of the same snapshot and that installs itself. No apt, no Node download
 * (--root skips both). What lands where, the units as systemd-analyze reads them, the boot
 * config's lines added once, and a second run that changes nothing (a listing of the whole
 * tree: path, type, mode, owner, size, sha256 or link target; no mtimes).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machineArch } from '../../ota/transfer.js';
import { snapshotRoot } from '../bench/ota-delta.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ARCH = machineArch()!;
const BUNDLE_V = '1.2.0';
const UNIT_DIR = 'usr/local/lib/systemd/system';
const UNITS = ['commune-endpoint.service', 'commune-endpoint-provision.service', 'commune-endpoint-provision-finish.path', 'commune-endpoint-provision-finish.service'];
const isRoot = process.getuid?.() === 0;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
function sh(file: string, args: string[], cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** One line per entry of `dir`: path, type, mode, owner, then size and sha256 (files) or target (links). */
async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const n of (await readdir(path.join(dir, rel))).sort()) {
      const p = rel ? `${rel}/${n}` : n;
      const s = await lstat(path.join(dir, p));
      const head = `${p} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}`;
      if (s.isSymbolicLink()) out.push(`${head} -> ${await readlink(path.join(dir, p))}`);
      else if (s.isDirectory()) {
        out.push(`${head} dir`);
        await walk(p);
      } else out.push(`${head} ${s.size} ${createHash('sha256').update(await readFile(path.join(dir, p))).digest('hex')}`);
    }
  };
  await walk('');
  return out;
}

const exists = (f: string): Promise<boolean> => lstat(f).then(() => true, () => false);
const json = async (f: string): Promise<unknown> => JSON.parse(await readFile(f, 'utf8')) as unknown;
const PI_CONFIG = '# Raspberry Pi OS\n[pi4]\narm_boost=1\n\n[all]\ncamera_auto_detect=1\n';

let work: string;
let snap: string;
let box: string;
let first: Run;
let second: Run;
let listed: [string[], string[]];

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ep-install-'));
  // A snapshot, so that a build beside the test cannot change what is installed between runs.
  snap = path.join(work, 'checkout');
  await snapshotRoot(ROOT, snap);
  await mkdir(path.join(snap, 'provisioning'));
  for (const p of ['install.sh', 'systemd']) await cp(path.join(ROOT, 'provisioning', p), path.join(snap, 'provisioning', p), { recursive: true, verbatimSymlinks: true });
  box = path.join(work, 'box');
  await mkdir(path.join(box, 'boot', 'firmware'), { recursive: true });
  await mkdir(path.join(box, 'etc'));
  await writeFile(path.join(box, 'boot', 'firmware', 'config.txt'), PI_CONFIG);
  await writeFile(path.join(box, 'etc', 'fstab'), 'PARTUUID=1234-02  /  ext4  defaults  0  1\n');
  const t0 = Date.now();
  first = await sh(path.join(snap, 'provisioning', 'install.sh'), ['--root', box, '--sd', 'yes', '--from-checkout']);
  const l1 = await listing(box);
  second = await sh(path.join(snap, 'provisioning', 'install.sh'), ['--root', box, '--sd', 'yes']);
  listed = [l1, await listing(box)];
  process.stderr.write(`install: two runs from the checkout in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}, 120_000);
afterAll(async () => rm(work, { recursive: true, force: true }));

describe('provisioning/install.sh from the checkout, into a temp root', () => {
  it('installs the release, current, release-state.json, the launcher, install.json and the data dir', async () => {
    expect([first.code, first.stderr]).toEqual([0, expect.stringContaining("Creating user 'commune-endpoint'")]);
    expect(first.stdout).toMatch(/skipped: apt packages .* and Node 24\.\d+\.\d+ in \/usr\/local\/bin\/node \(--root\)/);
    const { version } = (await json(path.join(snap, 'package.json'))) as { version: string };
    const app = path.join(box, 'opt/commune-endpoint');
    expect(await readlink(path.join(app, 'current'))).toBe(`releases/${version}`);
    expect(await readFile(path.join(app, 'release-state.json'), 'utf8')).toBe(`{"v":1,"committed":"${version}","previous":null,"trying":null,"failed":[],"last":null}\n`);
    const rel = path.join(app, 'releases', version);
    for (const f of ['dist/device/cli/ep.js', 'dist/native/libgstepframer.so', 'package.json', '.ep-index.json', '.complete', 'provisioning/install.sh', 'provisioning/systemd/commune-endpoint.service']) expect([f, await exists(path.join(rel, f))]).toEqual([f, true]);
    // The tree ep ota pack would bundle: no tests, no dev packages.
    for (const f of ['dist/test', 'node_modules/vitest', 'node_modules/typescript', 'node_modules/.vite', 'package-lock.json']) expect([f, await exists(path.join(rel, f))]).toEqual([f, false]);
    expect(await readFile(path.join(app, 'launcher/ota/launcher.js'))).toEqual(await readFile(path.join(snap, 'dist/ota/launcher.js')));
    expect(await readFile(path.join(app, 'launcher/package.json'), 'utf8')).toBe('{"type":"module"}\n');
    expect(await json(path.join(box, 'etc/commune-endpoint/install.json'))).toEqual({ appRoot: '/opt/commune-endpoint', dataDir: '/var/lib/commune-endpoint', user: 'commune-endpoint', version, bootDirs: ['/boot/firmware', '/boot'] });
    const floor = (await json(path.join(box, 'var/lib/commune-endpoint/clock-synced.json'))) as { at: number };
    expect(floor.at).toBe(Math.floor((await lstat(path.join(snap, 'dist/device/cli/ep.js'))).mtimeMs / 1000) * 1000);

    // The service user, from sysusers.d, in the hardware groups; it owns what OTA writes and the data dir.
    const passwd = await readFile(path.join(box, 'etc/passwd'), 'utf8');
    const user = passwd.split('\n').find((l) => l.startsWith('commune-endpoint:'))!.split(':');
    expect(user.slice(4)).toEqual(['Commune conferencing endpoint agent', '/var/lib/commune-endpoint', '/usr/sbin/nologin']);
    const group = await readFile(path.join(box, 'etc/group'), 'utf8');
    for (const g of ['video', 'audio', 'render', 'gpio']) expect(group).toMatch(new RegExp(`^${g}:x:\\d+:commune-endpoint$`, 'm'));
    const mode = async (f: string): Promise<string> => {
      const s = await lstat(path.join(box, f));
      return `${(s.mode & 0o777).toString(8)} ${isRoot ? `${s.uid}:${s.gid}` : 'any'}`;
    };
    const svc = isRoot ? `${user[2]}:${user[3]}` : 'any';
    const rootOwned = isRoot ? '0:0' : 'any';
    expect(await mode('var/lib/commune-endpoint')).toBe(`700 ${svc}`);
    expect(await mode('var/lib/commune-endpoint/clock-synced.json')).toBe(`600 ${svc}`);
    expect(await mode('opt/commune-endpoint')).toBe(`755 ${svc}`);
    expect(await mode(`opt/commune-endpoint/releases/${version}/dist/device/cli/ep.js`)).toBe(`644 ${svc}`);
    expect(await mode('opt/commune-endpoint/release-state.json')).toBe(`644 ${svc}`);
    expect(await mode('opt/commune-endpoint/launcher/ota/launcher.js')).toBe(`644 ${rootOwned}`);
    expect(await mode('etc/commune-endpoint')).toBe(`755 ${rootOwned}`);
    expect(await mode('etc/commune-endpoint/install.json')).toBe(`644 ${rootOwned}`);
  });

  it('installs the units (enabled), the sysusers file, the polkit rule and the SD card journald drop-in', async () => {
    for (const u of UNITS) {
      expect(await readFile(path.join(box, UNIT_DIR, u))).toEqual(await readFile(path.join(ROOT, 'provisioning/systemd', u)));
      // The finish service is started by its .path unit, not enabled itself.
      if (u !== 'commune-endpoint-provision-finish.service') expect(await readlink(path.join(box, 'etc/systemd/system/multi-user.target.wants', u))).toBe(`/${UNIT_DIR}/${u}`);
    }
    expect(await readFile(path.join(box, 'usr/local/lib/sysusers.d/commune-endpoint.conf'))).toEqual(await readFile(path.join(ROOT, 'provisioning/systemd/commune-endpoint.sysusers.conf')));
    expect(await readFile(path.join(box, 'etc/polkit-1/rules.d/50-commune-endpoint.rules'), 'utf8')).toContain('"org.freedesktop.login1.reboot"');
    expect(await exists(path.join(box, 'etc/polkit-1/localauthority'))).toBe(false); // no polkit 0.105 in this root: no .pkla
    // LEDs and GPIO lines for the service's group (the agent is not root)
    expect(await readFile(path.join(box, 'etc/udev/rules.d/60-commune-endpoint.rules'), 'utf8')).toMatch(/SUBSYSTEM=="leds".*chgrp gpio/);
    const journald = await readFile(path.join(box, 'etc/systemd/journald.conf.d/commune-endpoint.conf'), 'utf8');
    expect(journald.split('\n')).toEqual(expect.arrayContaining(['Storage=volatile', 'RuntimeMaxUse=48M']));
    expect(first.stderr).toMatch(/WARNING: \/ is on an SD card without noatime: in \/etc\/fstab, add noatime/);
  });

  it('the units: the ExecStart lines the layout needs, and systemd-analyze verify has nothing to say', async (ctx) => {
    const agent = await readFile(path.join(box, UNIT_DIR, 'commune-endpoint.service'), 'utf8');
    expect(agent.split('\n')).toEqual(expect.arrayContaining([
      'ExecStart=/usr/local/bin/node /opt/commune-endpoint/launcher/ota/launcher.js --config /var/lib/commune-endpoint/config.json',
      'Type=notify', 'NotifyAccess=all', 'WatchdogSec=30s', 'User=commune-endpoint', 'StartLimitIntervalSec=0', 'RestartPreventExitStatus=78 69',
    ]));
    const provision = await readFile(path.join(box, UNIT_DIR, 'commune-endpoint-provision.service'), 'utf8');
    expect(provision).toContain('\nExecStart=/usr/local/bin/node /opt/commune-endpoint/current/dist/device/cli/ep.js provision --boot\n');
    // verify checks ExecStart's binary on this machine; --root= would need all of systemd's units in the temp root.
    const which = await sh('sh', ['-c', 'command -v systemd-analyze && test -x /usr/local/bin/node']);
    if (which.code !== 0) {
      process.stderr.write('install: systemd-analyze verify skipped: no systemd-analyze, or no /usr/local/bin/node to check ExecStart against\n');
      ctx.skip();
    }
    const v = await sh('systemd-analyze', ['verify', '--man=no', ...UNITS.map((u) => path.join(box, UNIT_DIR, u))]);
    // Exit 0 even for an unknown key ("ignoring"): the output must be empty too.
    expect([v.code, v.stdout + v.stderr]).toEqual([0, '']);
    expect(first.stderr).not.toMatch(/systemd-analyze/);
  });

  it('the boot config gets its missing lines once, in a marked block; what was there stays', async () => {
    const text = await readFile(path.join(box, 'boot/firmware/config.txt'), 'utf8');
    expect(text).toBe(`${PI_CONFIG}# BEGIN commune-endpoint (provisioning/install.sh)\n[all]\nhdmi_force_hotplug=1\ndtoverlay=vc4-kms-v3d\n# END commune-endpoint\n`);
  });

  it('a second run changes nothing', () => {
    expect([second.code, second.stdout]).toEqual([0, expect.not.stringMatching(/wrote|installed|committed|current ->|boot config/)]);
    expect(listed[1]).toEqual(listed[0]);
    expect(listed[0].length).toBeGreaterThan(1000);
  });

  it('installs Node from the same pinned build as scripts/setup.sh', async () => {
    const pins = (f: string): Promise<string[]> => readFile(path.join(ROOT, f), 'utf8').then((t) => t.split('\n').filter((l) => /^NODE_VERSION=|^\s+\[(x64|arm64)\]=sha512-/.test(l)));
    const ours = await pins('provisioning/install.sh');
    expect(ours).toHaveLength(3);
    expect(ours).toEqual(await pins('scripts/setup.sh'));
  });

  it('usage errors exit 2', async () => {
    for (const args of [['--sd', 'maybe'], ['--bogus'], ['--from', path.join(work, 'none.tar.gz')]]) expect([args, (await sh(path.join(snap, 'provisioning/install.sh'), args)).code]).toEqual([args, 2]);
  });
});

describe('provisioning/install.sh from a bundle (ep ota pack), over the checkout install', () => {
  let bundle: string;
  let runs: Run[];
  let listings: string[][];
  beforeAll(async () => {
    const out = path.join(work, 'hub');
    const t0 = Date.now();
    const p = await sh(process.execPath, [path.join(snap, 'dist/device/cli/ep.js'), 'ota', 'pack', '--version', BUNDLE_V, '--arch', ARCH, '--out', out], snap);
    expect([p.code, p.stderr]).toEqual([0, '']);
    bundle = path.join(out, `ep-${BUNDLE_V}-${ARCH}.tar.gz`);
    // A bundle installs itself: its own install.sh, out of the bundle.
    const from = path.join(work, 'from-bundle');
    await mkdir(from);
    expect((await sh('tar', ['-xzf', bundle, '-C', from, 'provisioning'])).code).toBe(0);
    runs = [];
    listings = [];
    for (let i = 0; i < 2; i++) {
      runs.push(await sh(path.join(from, 'provisioning/install.sh'), ['--root', box, '--from', bundle, '--sd', 'no']));
      listings.push(await listing(box));
    }
    process.stderr.write(`install: pack and two runs from the bundle in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }, 120_000);

  it('stages the release as an update would, commits it with the checkout release as previous, and switches current', async () => {
    expect([runs[0]!.code, runs[0]!.stderr]).toEqual([0, '']);
    const app = path.join(box, 'opt/commune-endpoint');
    const { version: before } = (await json(path.join(snap, 'package.json'))) as { version: string };
    expect(await readlink(path.join(app, 'current'))).toBe(`releases/${BUNDLE_V}`);
    expect(await json(path.join(app, 'release-state.json'))).toEqual({ v: 1, committed: BUNDLE_V, previous: before, trying: null, failed: [], last: null });
    const sha = createHash('sha256').update(await readFile(bundle)).digest('hex');
    expect(await readFile(path.join(app, 'releases', BUNDLE_V, '.complete'), 'utf8')).toBe(`${JSON.stringify({ version: BUNDLE_V, sha256: sha })}\n`);
    expect(((await json(path.join(app, 'releases', BUNDLE_V, 'package.json'))) as { version: string }).version).toBe(BUNDLE_V);
    expect(await exists(path.join(app, 'releases', BUNDLE_V, 'provisioning/systemd/commune-endpoint.service'))).toBe(true);
    expect(((await json(path.join(box, 'etc/commune-endpoint/install.json'))) as { version: string }).version).toBe(BUNDLE_V);
    // Not an SD card: a persistent journal, capped.
    expect((await readFile(path.join(box, 'etc/systemd/journald.conf.d/commune-endpoint.conf'), 'utf8')).split('\n')).toEqual(expect.arrayContaining(['Storage=persistent', 'SystemMaxUse=256M']));
  });

  it('a second run changes nothing', () => {
    expect([runs[1]!.code, runs[1]!.stdout]).toEqual([0, expect.not.stringMatching(/wrote|installed|committed|current ->|boot config/)]);
    expect(listings[1]).toEqual(listings[0]);
  });
});
