/**
 * applyProvision (provisioning/apply.ts) when the agent's own check refuses the config it
 * made: nothing of the file stays — no secrets generation, no /etc/localtime, no Wi-Fi
 * keyfile, no config — and the refusal reaches the caller unchanged.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProvisionFileError, applyProvision, decodeProvisionFile } from '../../provisioning/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ep-provapply-'));
  await mkdir(path.join(dir, 'zoneinfo', 'Asia'), { recursive: true });
  await writeFile(path.join(dir, 'zoneinfo', 'Asia', 'Ho_Chi_Minh'), 'TZif');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const files = async (root: string): Promise<string[]> =>
  (await readdir(root, { withFileTypes: true, recursive: true }).catch(() => [])).filter((e) => !e.isDirectory()).map((e) => path.relative(root, path.join(e.parentPath, e.name)));

describe('applyProvision', () => {
  it('a config the agent check refuses leaves no secrets, no timezone, no Wi-Fi behind', async () => {
    const file = { v: 1, deviceId: 'cam-an', groupId: 'camlo', name: 'UBND xã Cẩm An', broker: { url: 'mqtts://hub:8883', password: 'correct-horse-battery' }, ota: { publicKeys: ['-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n'] }, timezone: 'Asia/Ho_Chi_Minh', wifi: { ssid: 'UBND', psk: 'wifi-pass-1', country: 'VN' } };
    const plan = await decodeProvisionFile(Buffer.from(JSON.stringify(file)), 'ep-provision.json', { deriveDeviceId: async () => ({ id: 'x', source: 'serial' }), zoneinfoDir: path.join(dir, 'zoneinfo') });
    const target = { dataDir: path.join(dir, 'data'), appRoot: path.join(dir, 'app'), owner: null, systemRoot: path.join(dir, 'sys') };
    const refusal = new ProvisionFileError(['(the agent config made from it) name: must NOT have more than 128 characters']);
    let checked: unknown = null;
    await expect(
      applyProvision(plan, target, null, async (config) => {
        checked = config;
        throw refusal;
      }),
    ).rejects.toBe(refusal);
    expect(checked).toMatchObject({ deviceId: 'cam-an', ota: { publicKeys: [expect.stringContaining('ota-0.pub.pem')] } });
    expect(await files(target.dataDir)).toEqual([]);
    expect(await files(target.systemRoot)).toEqual([]);
  });
});
