/**
 * The provisioning file's checks (provisioning/provision-file.ts) and the deviceId from
 * the board (provisioning/device-id.ts), on keys and certificates made by openssl for
 * the test and on temp sysfs/procfs trees.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeProvisionFile, deriveDeviceId, isProvisionFileError, type ProvisionPlan } from '../../provisioning/index.js';

let dir: string;
const pem: Record<string, string> = {};

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ep-provfile-'));
  const sh = (...a: string[]): void => void execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  sh('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'a.key');
  sh('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'b.key');
  sh('req', '-x509', '-key', 'a.key', '-subj', '/CN=cam-thanh', '-days', '3650', '-out', 'cn.crt');
  sh('req', '-x509', '-key', 'a.key', '-subj', '/CN=Not An Id', '-days', '3650', '-out', 'badcn.crt');
  sh('pkey', '-in', 'a.key', '-aes128', '-passout', 'pass:x', '-out', 'enc.key');
  for (const f of ['a.key', 'b.key', 'cn.crt', 'badcn.crt', 'enc.key']) pem[f] = await readFile(path.join(dir, f), 'utf8');
  pem.ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  pem.rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await mkdir(path.join(dir, 'zoneinfo', 'Asia'), { recursive: true });
  await writeFile(path.join(dir, 'zoneinfo', 'Asia', 'Ho_Chi_Minh'), 'TZif');
});

afterAll(() => rm(dir, { recursive: true, force: true }));

const PASSWORD = 'correct-horse-battery';
const base = (): Record<string, unknown> => ({ v: 1, deviceId: 'cam-an', groupId: 'camlo', name: 'UBND xã Cẩm An', broker: { url: 'mqtts://hub:8883', password: PASSWORD } });
const decode = (f: unknown, derive = async (): Promise<{ id: string; source: 'serial' }> => ({ id: 'ep-1234abcd', source: 'serial' })): Promise<ProvisionPlan> =>
  decodeProvisionFile(Buffer.from(typeof f === 'string' ? f : JSON.stringify(f)), 'ep-provision.json', { deriveDeviceId: derive, zoneinfoDir: path.join(dir, 'zoneinfo') });
const problems = async (f: unknown): Promise<string[]> => {
  try {
    await decode(f);
  } catch (e) {
    if (isProvisionFileError(e)) return e.problems;
    throw e;
  }
  throw new Error('decoded without a problem');
};

describe('decodeProvisionFile', () => {
  it('a password file: the plan, and a redacted view with no secret', async () => {
    const p = await decode({ ...base(), timezone: 'Asia/Ho_Chi_Minh', wifi: { ssid: 'UBND', psk: 'wifi-pass-1', country: 'VN' }, ota: { publicKeys: [pem.ed] } });
    expect(p).toMatchObject({ deviceId: 'cam-an', deviceIdSource: 'file', broker: { username: 'cam-an', auth: 'password' }, secrets: { password: PASSWORD }, timezone: 'Asia/Ho_Chi_Minh' });
    const shown = JSON.stringify(p.redacted);
    for (const secret of [PASSWORD, 'wifi-pass-1', 'BEGIN']) expect(shown).not.toContain(secret);
    expect(p.redacted.otaKeys).toEqual([expect.stringMatching(/^sha256:/)]);
    expect(p.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a certificate file without deviceId takes the CN; the receipt has its fingerprint', async () => {
    const p = await decode({ ...base(), deviceId: undefined, broker: { url: 'mqtts://hub:8883', certificate: pem['cn.crt'], key: pem['a.key'] } });
    expect(p).toMatchObject({ deviceId: 'cam-thanh', deviceIdSource: 'certificate', broker: { auth: 'certificate' } });
    expect(p.redacted.broker.certificate?.subject).toContain('CN=cam-thanh');
    expect(JSON.stringify(p.redacted)).not.toContain('PRIVATE KEY');
  });

  it('a CN that is not an id, and no deviceId: derived from the board — and then the CN does not match', async () => {
    expect(await problems({ ...base(), deviceId: undefined, broker: { url: 'mqtts://h', certificate: pem['badcn.crt'], key: pem['a.key'] } })).toEqual([
      'broker.certificate: its CN is "Not An Id" but the deviceId is "ep-1234abcd" (the broker\'s ACL knows a box by its CN)',
    ]);
  });

  it('every problem at once, by path, never quoting a value', async () => {
    const p = await problems({ ...base(), deviceId: 'BAD', extra: 1, broker: { url: 'http://x', password: PASSWORD, certificate: pem['cn.crt'] }, timezone: 'Mars/Base' });
    expect(p).toEqual(expect.arrayContaining(['deviceId: must match ^[a-z0-9][a-z0-9-]{2,63}$', 'extra: unknown field', 'broker.url: must match ^mqtts?://']));
    expect(p.join('\n')).not.toContain(PASSWORD);
  });

  it('credentials: none, both, half a certificate, an encrypted key, a key of another certificate, garbage PEM', async () => {
    const b = { url: 'mqtts://h' };
    expect(await problems({ ...base(), broker: b })).toEqual(['broker: needs a password, or a certificate + key']);
    expect(await problems({ ...base(), deviceId: 'cam-thanh', broker: { ...b, password: 'x', certificate: pem['cn.crt'], key: pem['a.key'] } })).toEqual(['broker: a password or a certificate + key, not both']);
    expect(await problems({ ...base(), deviceId: 'cam-thanh', broker: { ...b, certificate: pem['cn.crt'] } })).toEqual(['broker.key: a client certificate needs both certificate and key']);
    expect(await problems({ ...base(), deviceId: 'cam-thanh', broker: { ...b, certificate: pem['cn.crt'], key: pem['enc.key'] } })).toEqual([expect.stringMatching(/^broker\.key: is encrypted/)]);
    expect(await problems({ ...base(), deviceId: 'cam-thanh', broker: { ...b, certificate: pem['cn.crt'], key: pem['b.key'] } })).toEqual(['broker.key: does not match broker.certificate']);
    expect(await problems({ ...base(), deviceId: 'cam-thanh', broker: { ...b, certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----' } })).toEqual([
      'broker.certificate: not a PEM certificate',
      'broker.key: not a PEM private key',
    ]);
    expect(await problems({ ...base(), broker: { ...b, password: 'x', ca: '-----BEGIN nothing' } })).toEqual(['broker.ca: not a PEM certificate']);
  });

  it('no credentials in the broker URL (it is shown in the receipt and ep status)', async () => {
    expect(await problems({ ...base(), broker: { url: `mqtts://cam-an:${PASSWORD}@hub:8883`, password: PASSWORD } })).toEqual([
      'broker.url: no credentials in the URL (they would be shown); use broker.username and broker.password',
    ]);
  });

  it('OTA keys must be Ed25519 public keys; the timezone must exist', async () => {
    expect(await problems({ ...base(), ota: { publicKeys: [pem.rsa, '-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----'] }, timezone: 'Asia/Atlantis' })).toEqual([
      'ota.publicKeys[0]: an rsa key; updates are signed with Ed25519',
      'ota.publicKeys[1]: not a PEM public key',
      'timezone: unknown zone "Asia/Atlantis"',
    ]);
  });

  it('a directory of zones (Asia) is not a timezone', async () => {
    expect(await problems({ ...base(), timezone: 'Asia' })).toEqual(['timezone: unknown zone "Asia"']);
  });

  it('a name NFC makes longer than 128 characters is refused by the file check, not by the agent config after it', async () => {
    // U+0958 is one character in the file and two in NFC (a composition exclusion): 100 of them are 200.
    expect(await problems({ ...base(), name: '\u0958'.repeat(100) })).toEqual(['name: over 128 characters once in Unicode NFC']);
    expect((await decode({ ...base(), name: '\u0958'.repeat(64) })).name).toHaveLength(128);
  });

  it('not JSON (never echoed), not UTF-8, too large, a BOM is fine', async () => {
    expect(await problems(`{"password": "${PASSWORD}" oops}`)).toEqual([expect.stringMatching(/^ep-provision\.json: not JSON/)]);
    expect((await problems(`{"password": "${PASSWORD}" oops}`)).join()).not.toContain(PASSWORD);
    await expect(decodeProvisionFile(Buffer.from([0xff, 0xfe, 0x7b]), 'f', { deriveDeviceId: async () => ({ id: 'x', source: 'serial' }) })).rejects.toMatchObject({ problems: ['f: not UTF-8 text'] });
    await expect(decodeProvisionFile(Buffer.alloc(300_000, 32), 'f', { deriveDeviceId: async () => ({ id: 'x', source: 'serial' }) })).rejects.toMatchObject({ problems: [expect.stringMatching(/over the 262144-byte limit/)] });
    expect((await decode(`\uFEFF${JSON.stringify(base())}`)).deviceId).toBe('cam-an');
  });

  it('no deviceId anywhere: the derivation error is a problem too', async () => {
    const f = { ...base(), deviceId: undefined };
    await expect(decode(f, async () => Promise.reject(new Error('no serial')))).rejects.toMatchObject({ problems: ['deviceId: no serial'] });
  });
});

describe('deriveDeviceId', () => {
  const tree = async (files: Record<string, string>): Promise<string> => {
    const root = await mkdtemp(path.join(dir, 'root-'));
    for (const [f, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, f)), { recursive: true });
      await writeFile(path.join(root, f), text);
    }
    return root;
  };

  it('the device tree serial first, then /proc/cpuinfo, then /etc/machine-id; stable', async () => {
    const all = { 'sys/firmware/devicetree/base/serial-number': '10000000ABCDEF12\0', 'proc/cpuinfo': 'Hardware\t: BCM2835\nSerial\t\t: 00000000deadbeef\n', 'etc/machine-id': 'c0ffee00c0ffee00c0ffee00c0ffee00\n' };
    const root = await tree(all);
    expect(await deriveDeviceId({ root })).toEqual({ id: 'ep-10000000abcdef12', source: 'serial' });
    expect(await deriveDeviceId({ root })).toEqual({ id: 'ep-10000000abcdef12', source: 'serial' });
    expect(await deriveDeviceId({ root: await tree({ 'proc/cpuinfo': all['proc/cpuinfo'], 'etc/machine-id': all['etc/machine-id'] }) })).toEqual({ id: 'ep-00000000deadbeef', source: 'serial' });
    expect(await deriveDeviceId({ root: await tree({ 'proc/cpuinfo': 'Serial\t\t: 0000000000000000\n', 'etc/machine-id': all['etc/machine-id'] }) })).toEqual({ id: 'ep-m-c0ffee00c0ffee00', source: 'machine-id' });
    await expect(deriveDeviceId({ root: await tree({ 'proc/cpuinfo': 'model name: x86\n' }) })).rejects.toThrow(/put "deviceId" in the provisioning file/);
    for (const id of ['ep-10000000abcdef12', 'ep-m-c0ffee00c0ffee00']) expect(id).toMatch(/^[a-z0-9][a-z0-9-]{2,63}$/);
  });
});
