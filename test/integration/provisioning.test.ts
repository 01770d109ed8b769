/**
 * First-boot provisioning end to end, on real files and a real Mosquitto (TLS, client
 * certificates, a password listener, the box ACL of CONTRACT.md):
 *
 * - a temp "system root" with a boot partition (boot/firmware/ep-provision.json), an
 *   /etc/passwd holding the service user, a zoneinfo tree and a board serial;
 * - `ep provision --boot` (the compiled CLI, as the first-boot unit runs it) writes the
 *   config and secrets; a real agent started from that config reaches the broker with
 *   those credentials and the ACL lets it answer a command; then the file on the boot
 *   partition gives way to a redacted receipt;
 * - each kind of bad file writes nothing and says why by path; a wrong password keeps the
 *   file until it is fixed; a second boot is a no-op; factory reset wipes the identity.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../device/agent.js';
import { loadConfig } from '../../device/config.js';
import { createContract } from '../../device/contract/index.js';
import { distPath } from '../../lib/package-root.js';
import { LogRing } from '../../lib/log-ring.js';
import { createLogger } from '../../lib/log.js';
import type { Capabilities } from '../../gst-pipelines/types.js';
import { FakeLeds, FakeSystemActions } from '../fakes/index.js';
import { HubClient, LineCapture, capturingSpawner } from './helpers/hub-client.js';
import { capabilities } from './helpers/media.js';
import { Mosquitto } from './helpers/mosquitto.js';

const run = promisify(execFile);
const EP = distPath(import.meta.url, 'device', 'cli', 'ep.js');
const GROUP = 'camlo';
const CERT_BOX = 'cam-thanh';
const PW_BOX = 'cam-an';
const PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const SERVICE_UID = 4242;
const SERIAL = '10000000abcdef12';

let broker: Mosquitto;
let hub: HubClient;
let caps: Capabilities;
const dirs: string[] = [];

beforeAll(async () => {
  caps = await capabilities();
  broker = await Mosquitto.start({ devices: { [CERT_BOX]: GROUP, [PW_BOX]: GROUP }, passwords: { [PW_BOX]: PASSWORD } });
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
});

afterAll(async () => {
  await hub?.close();
  await broker?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Box {
  root: string;
  boot: string;
  file: string;
  dataDir: string;
}

/** A fresh "SD card": boot partition, passwd with the service user, zoneinfo, a board serial. */
async function newRoot(): Promise<Box> {
  const root = await mkdtemp(path.join(tmpdir(), 'ep-prov-'));
  dirs.push(root);
  const boot = path.join(root, 'boot', 'firmware');
  await mkdir(boot, { recursive: true });
  await mkdir(path.join(root, 'etc'), { recursive: true });
  await writeFile(path.join(root, 'etc', 'passwd'), `root:x:0:0:root:/root:/bin/bash\ncommune-endpoint:x:${SERVICE_UID}:${SERVICE_UID}::/var/lib/commune-endpoint:/usr/sbin/nologin\n`);
  await mkdir(path.join(root, 'usr', 'share', 'zoneinfo', 'Asia'), { recursive: true });
  await writeFile(path.join(root, 'usr', 'share', 'zoneinfo', 'Asia', 'Ho_Chi_Minh'), 'TZif');
  await mkdir(path.join(root, 'sys', 'firmware', 'devicetree', 'base'), { recursive: true });
  await writeFile(path.join(root, 'sys', 'firmware', 'devicetree', 'base', 'serial-number'), `${SERIAL}\0`);
  const dataDir = path.join(root, 'var', 'lib', 'commune-endpoint');
  return { root, boot, file: path.join(boot, 'ep-provision.json'), dataDir };
}

const pem = (f: string): Promise<string> => readFile(f, 'utf8');

/** No deviceId: it comes from the certificate's CN. */
async function certFile(): Promise<Record<string, unknown>> {
  const t = broker.tls(CERT_BOX);
  return { v: 1, groupId: GROUP, name: 'UBND xã Cẩm Thanh', broker: { url: broker.url, certificate: await pem(t.certFile), key: await pem(t.keyFile), ca: await pem(t.caFile) }, timezone: 'Asia/Ho_Chi_Minh' };
}

function passwordFile(password = PASSWORD): Record<string, unknown> {
  return { v: 1, deviceId: PW_BOX, groupId: GROUP, name: 'UBND xã Cẩm An', broker: { url: broker.passwordUrl, password }, wifi: { ssid: 'UBND-CamAn', psk: 'wifi-secret-123', country: 'VN' } };
}

async function withCa(f: Record<string, unknown>): Promise<Record<string, unknown>> {
  const b = f.broker as Record<string, unknown>;
  return { ...f, broker: { ...b, ca: await pem(broker.caFile) } };
}

/** `ep provision …` as the first-boot unit runs it (compiled CLI, as root). */
async function ep(box: Box, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [EP, ...args, '--root', box.root, '--data-dir', box.dataDir, '--app-root', path.join(box.root, 'opt', 'commune-endpoint')], { timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/** Every file under `dir`: path → mode, uid, bytes (a snapshot to compare). */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      const s = await stat(p);
      if (e.isDirectory()) {
        out[path.relative(dir, p) + '/'] = `${(s.mode & 0o7777).toString(8)} ${s.uid}`;
        await walk(p);
      } else out[path.relative(dir, p)] = `${(s.mode & 0o7777).toString(8)} ${s.uid} ${(await readFile(p)).toString('base64')}`;
    }
  };
  await walk(dir);
  return out;
}

/** A real agent from the provisioned config (media from test sources: no camera here). */
async function startAgent(box: Box): Promise<{ agent: Agent; logs: LineCapture; stop: () => Promise<void> }> {
  const config = await loadConfig(createContract(), path.join(box.dataDir, 'config.json'));
  config.media = { ...config.media, source: 'test', aec: false };
  const logs = new LineCapture();
  const ring = new LogRing();
  const logger = createLogger({ level: 'info', destination: pino.multistream([{ stream: logs, level: 'trace' }, { stream: ring, level: 'trace' }]) });
  const agent = new Agent({ config, version: '0.1.0-test', logger, logRing: ring, caps, system: new FakeSystemActions(), leds: new FakeLeds(), spawner: capturingSpawner(new LineCapture()) });
  await agent.start();
  return { agent, logs, stop: () => agent.stop() };
}

const waitUntil = async (pred: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
const exists = async (f: string): Promise<boolean> => (await stat(f).catch(() => null)) !== null;

describe('a valid file', () => {
  it('certificate variant: writes config and secrets 0600 for the service user, the box reaches the broker with them and its ACL, then the file gives way to a redacted receipt', async () => {
    const box = await newRoot();
    const text = JSON.stringify(await certFile());
    await writeFile(box.file, text);
    const r = await ep(box, 'provision', '--boot');
    expect(r.stderr + r.stdout).toContain(`provisioned as ${CERT_BOX}`);
    expect(r.code).toBe(0);

    // Modes and owner: the data dir 0700, every file 0600, all the service user's.
    const snap = await snapshot(box.dataDir);
    for (const [p, v] of Object.entries(snap)) {
      const [mode, uid] = v.split(' ');
      expect({ p, mode, uid }).toEqual({ p, mode: p.endsWith('/') ? '700' : '600', uid: String(SERVICE_UID) });
    }
    expect((await stat(box.dataDir)).mode & 0o777).toBe(0o700);
    const config = JSON.parse(await readFile(path.join(box.dataDir, 'config.json'), 'utf8')) as { deviceId: string; mqtt: Record<string, string> };
    expect(config.deviceId).toBe(CERT_BOX);
    expect(Object.keys(config.mqtt).sort()).toEqual(['caFile', 'certFile', 'keyFile', 'url']);
    expect(await readFile(path.join(box.root, 'etc', 'timezone'), 'utf8')).toBe('Asia/Ho_Chi_Minh\n');

    const a = await startAgent(box);
    try {
      await hub.waitFor((m) => m.kind === 'status' && m.deviceId === CERT_BOX && (m.json as { online?: boolean })?.online === true, 15_000, 'the box online');
      const id = await hub.send({ device: CERT_BOX }, 'logs', { lines: 5 });
      expect((await hub.reply(id)).ok).toBe(true);
      await waitUntil(() => exists(path.join(box.boot, 'ep-provision.done.json')), 10_000, 'the receipt');
      expect(await exists(box.file)).toBe(false);
      const receipt = await readFile(path.join(box.boot, 'ep-provision.done.json'), 'utf8');
      const keyPem = await pem(broker.tls(CERT_BOX).keyFile);
      expect(receipt).not.toContain('PRIVATE KEY');
      expect(receipt).not.toContain(keyPem.split('\n')[1]);
      expect(receipt).not.toContain('BEGIN CERTIFICATE');
      const rj = JSON.parse(receipt) as { deviceId: string; reachedBrokerAt?: string; broker: { certificate?: { sha256: string } } };
      expect(rj.deviceId).toBe(CERT_BOX);
      expect(rj.reachedBrokerAt).toBeTruthy();
      expect(rj.broker.certificate?.sha256).toMatch(/^[0-9A-F:]+$/);
      expect(a.logs.text()).not.toContain(keyPem.split('\n')[1]);
    } finally {
      await a.stop();
    }
    // A second boot: the file is gone, the box stays as it is.
    const before = await snapshot(box.dataDir);
    expect((await ep(box, 'provision', '--boot')).code).toBe(0);
    expect(await snapshot(box.dataDir)).toEqual(before);
  });

  it('password variant: reaches the password listener as its deviceId; Wi-Fi written for NetworkManager, 0600; a second boot before the first connection is a no-op', async () => {
    const box = await newRoot();
    await writeFile(box.file, JSON.stringify(await withCa(passwordFile())));
    expect((await ep(box, 'provision', '--boot')).code).toBe(0);
    const nm = path.join(box.root, 'etc', 'NetworkManager', 'system-connections', 'commune-endpoint-wifi.nmconnection');
    expect((await stat(nm)).mode & 0o777).toBe(0o600);
    expect(await readFile(nm, 'utf8')).toContain('ssid=UBND-CamAn');
    // Second boot, same file: nothing changes.
    const before = await snapshot(box.dataDir);
    const again = await ep(box, 'provision', '--boot');
    expect(again.stdout).toContain('already provisioned');
    expect(await snapshot(box.dataDir)).toEqual(before);

    const a = await startAgent(box);
    try {
      await hub.waitFor((m) => m.kind === 'status' && m.deviceId === PW_BOX && (m.json as { online?: boolean })?.online === true, 15_000, 'the box online');
      const id = await hub.send({ device: PW_BOX }, 'logs', { lines: 5 });
      expect((await hub.reply(id)).ok).toBe(true);
      await waitUntil(async () => !(await exists(box.file)), 10_000, 'the file removed');
      const receipt = await readFile(path.join(box.boot, 'ep-provision.done.json'), 'utf8');
      expect(receipt).not.toContain(PASSWORD);
      expect(receipt).not.toContain('wifi-secret-123');
      expect(JSON.parse(receipt)).toMatchObject({ deviceId: PW_BOX, broker: { auth: 'password', username: PW_BOX }, wifi: { ssid: 'UBND-CamAn', secured: true } });
      expect(a.logs.text()).not.toContain(PASSWORD);
    } finally {
      await a.stop();
    }
  });

  it('a wrong password keeps the file (no receipt) until it is fixed; the fixed file provisions again and then goes', async () => {
    const box = await newRoot();
    await writeFile(box.file, JSON.stringify(await withCa(passwordFile('wrong-password'))));
    expect((await ep(box, 'provision', '--boot')).code).toBe(0);
    let a = await startAgent(box);
    try {
      await waitUntil(() => a.logs.text().includes('"evt":"mqtt.connect_failed","reason":"auth"'), 15_000, 'the broker refusing the password');
      await new Promise((r) => setTimeout(r, 500));
      expect(await exists(box.file)).toBe(true);
      expect(await exists(path.join(box.boot, 'ep-provision.done.json'))).toBe(false);
      expect(a.logs.text()).not.toContain('wrong-password');
    } finally {
      await a.stop();
    }
    // The technician edits the file on a laptop; the next boot provisions from it.
    await writeFile(box.file, JSON.stringify(await withCa(passwordFile())));
    const r = await ep(box, 'provision', '--boot');
    expect(r.stdout).toContain(`provisioned as ${PW_BOX}`);
    a = await startAgent(box);
    try {
      await waitUntil(() => exists(path.join(box.boot, 'ep-provision.done.json')), 15_000, 'the receipt');
      expect(await exists(box.file)).toBe(false);
    } finally {
      await a.stop();
    }
  });

  it('deviceId: from the file, else the certificate CN, else the board serial — stable across a factory reset and provisioning again', async () => {
    const box = await newRoot();
    const f = await withCa(passwordFile());
    delete f.deviceId;
    delete f.wifi;
    await writeFile(box.file, JSON.stringify(f));
    expect((await ep(box, 'provision', '--boot')).code).toBe(0);
    const id1 = (JSON.parse(await readFile(path.join(box.dataDir, 'config.json'), 'utf8')) as { deviceId: string }).deviceId;
    expect(id1).toBe(`ep-${SERIAL}`);
    expect((await ep(box, 'factory-reset', '--yes')).code).toBe(0);
    expect((await ep(box, 'provision', '--boot')).code).toBe(0);
    expect((JSON.parse(await readFile(path.join(box.dataDir, 'config.json'), 'utf8')) as { deviceId: string }).deviceId).toBe(id1);
  });
});

describe('the boot partition is out of the agent\'s reach', () => {
  it('the agent cannot remove the file (read-only to it: ProtectSystem=strict; on a Pi also FAT mounted for root): it leaves a note, and root\'s finish step (the .path unit\'s oneshot) swaps the file for the receipt', async (ctx) => {
    const box = await newRoot();
    await writeFile(box.file, JSON.stringify(await withCa(passwordFile())));
    expect((await ep(box, 'provision', '--boot')).code).toBe(0);
    // The agent's half where it cannot write the boot partition: in a mount namespace where
    // it is read-only — what the agent's unit (ProtectSystem=strict) gives it, EROFS — or,
    // where a namespace cannot change propagation (a chroot: / is no mount point), with the
    // directory immutable (chattr +i: EPERM even for root).
    const script = `import { noteBrokerReached } from ${JSON.stringify(pathToFileURL(distPath(import.meta.url, 'provisioning', 'index.js')).href)};
      import { silentLogger } from ${JSON.stringify(pathToFileURL(distPath(import.meta.url, 'lib', 'index.js')).href)};
      console.log(await noteBrokerReached(${JSON.stringify(box.dataDir)}, silentLogger(), { version: '9.9.9' }));`;
    const q = (a: string): string => `'${a.replace(/'/g, "'\\''")}'`;
    const inNs = `mount --bind ${q(box.boot)} ${q(box.boot)} && mount -o remount,bind,ro ${q(box.boot)} && exec ${q(process.execPath)} --input-type=module -e ${q(script)}`;
    let asAgent = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', inNs], { timeout: 30_000 }).catch((e: { stderr?: string }) => ({ stdout: '', stderr: e.stderr ?? String(e) }));
    if (asAgent.stdout === '') {
      const immutable = await run('chattr', ['+i', box.boot]).then(() => true, () => false);
      if (!immutable) {
        process.stderr.write(`provisioning: the read-only boot partition case skipped: neither a mount namespace (${asAgent.stderr.trim()}) nor chattr +i here\n`);
        ctx.skip();
      }
      try {
        asAgent = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 });
      } finally {
        await run('chattr', ['-i', box.boot]);
      }
    }
    expect(asAgent.stdout.trim()).toBe('left-for-root');
    expect(await exists(box.file)).toBe(true);
    expect(await exists(path.join(box.dataDir, 'broker-reached.json'))).toBe(true);

    const fin = await ep(box, 'provision', '--finish');
    expect(fin.stdout).toContain('gave way to its receipt');
    expect(await exists(box.file)).toBe(false);
    expect(JSON.parse(await readFile(path.join(box.boot, 'ep-provision.done.json'), 'utf8'))).toMatchObject({ deviceId: PW_BOX, version: '9.9.9' });
    expect(await exists(path.join(box.dataDir, 'broker-reached.json'))).toBe(false);
    // The record stays the service user's.
    expect((await stat(path.join(box.dataDir, 'provisioning.json'))).uid).toBe(SERVICE_UID);
    // Finishing again: nothing to do.
    expect((await ep(box, 'provision', '--finish')).stdout).toContain('nothing to finish');
  });
});

describe('a bad file changes nothing and says why by path', () => {
  const cases: Array<[string, (f: Record<string, unknown>) => Promise<string | Record<string, unknown>>, RegExp]> = [
    ['bad JSON', async () => '{"v": 1, "groupId": "camlo", ', /not JSON/],
    ['missing broker', async (f) => ({ ...f, broker: undefined }), /broker: is required/],
    ['bad PEM', async (f) => ({ ...f, broker: { ...(f.broker as object), certificate: '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n' } }), /broker\.certificate: not a PEM certificate/],
    ['key not matching the certificate', async (f) => ({ ...f, broker: { ...(f.broker as object), key: await pem(broker.tls(PW_BOX).keyFile) } }), /broker\.key: does not match broker\.certificate/],
    ['unknown field', async (f) => ({ ...f, brokr: {} }), /brokr: unknown field/],
    ['deviceId out of pattern', async (f) => ({ ...f, deviceId: 'Cam_Thanh!' }), /deviceId: must match/],
  ];
  for (const [name, mutate, problem] of cases) {
    it(name, async () => {
      const box = await newRoot();
      // Already provisioned (password box): a bad new file must leave that config as it is.
      await writeFile(box.file, JSON.stringify(await withCa(passwordFile())));
      expect((await ep(box, 'provision', '--boot')).code).toBe(0);
      const before = await snapshot(box.dataDir);
      const bad = await mutate(await certFile());
      await writeFile(box.file, typeof bad === 'string' ? bad : JSON.stringify(bad));
      const r = await ep(box, 'provision', '--boot');
      expect(r.code).toBe(65);
      expect(r.stderr).toMatch(problem);
      expect(r.stderr).not.toContain('PRIVATE KEY');
      const after = await snapshot(box.dataDir);
      const status = JSON.parse(await readFile(path.join(box.dataDir, 'provision-status.json'), 'utf8')) as { ok: boolean; provisioned: boolean; problems: string[] };
      expect(status).toMatchObject({ ok: false, provisioned: true });
      expect(status.problems.join('\n')).toMatch(problem);
      delete before['provision-status.json'];
      delete after['provision-status.json'];
      expect(after).toEqual(before);
      expect(await exists(box.file)).toBe(true);

      // On a fresh box the same file writes nothing but the status.
      const fresh = await newRoot();
      await writeFile(fresh.file, typeof bad === 'string' ? bad : JSON.stringify(bad));
      expect((await ep(fresh, 'provision', '--boot')).code).toBe(65);
      expect(Object.keys(await snapshot(fresh.dataDir))).toEqual(['provision-status.json']);
    });
  }
});

describe('factory reset', () => {
  it('asks for confirmation without --yes, then wipes identity, config and secrets but keeps the OTA time floor', async () => {
    const box = await newRoot();
    await writeFile(box.file, JSON.stringify(await withCa(passwordFile())));
    expect((await ep(box, 'provision', '--boot')).code).toBe(0);
    await writeFile(path.join(box.dataDir, 'clock-synced.json'), '{"at": 1765000000000}\n');
    await chmod(path.join(box.dataDir, 'clock-synced.json'), 0o600);
    const refused = await ep(box, 'factory-reset');
    expect(refused.code).toBe(2);
    expect(await exists(path.join(box.dataDir, 'config.json'))).toBe(true);
    const r = await ep(box, 'factory-reset', '--yes');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('unprovisioned');
    expect(await readdir(box.dataDir)).toEqual(['clock-synced.json']);
    // The provisioning file is still on the boot partition (the box never connected): said so.
    expect(r.stdout).toContain('provisions from it again at the next boot');
  });
});
