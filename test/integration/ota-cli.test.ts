/**
 * The release side of updates as a release engineer runs it: the built `ep ota` in real
 * processes, real key files, a manifest and a bundle on disk. `verify` exits 0 only when
 * everything holds, and names the failing check otherwise.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');

function ep(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
const bundle = Buffer.from('a bundle: pretend this is a tar.gz of the release\n');
const manifestOf = (over: Record<string, unknown> = {}): string =>
  JSON.stringify({
    name: 'commune-endpoint',
    version: '1.3.0',
    arch: ['arm64', 'x64'],
    bundle: { url: 'https://hub.example/ota/ep-1.3.0.tar.gz', sha256: createHash('sha256').update(bundle).digest('hex'), size: bundle.length },
    releasedAt: new Date(Date.now() - 3600_000).toISOString(),
    expiresAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
    ...over,
  });

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-ota-cli-'));
  await writeFile(path.join(dir, 'bundle.tar.gz'), bundle);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('ep ota keygen | sign | verify', () => {
  it('keygen writes a private key only its owner reads and a public key; it never overwrites', async () => {
    const r = await ep(['ota', 'keygen', '--out', path.join(dir, 'keys')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^key [0-9a-f]{16}: private /);
    expect((await stat(path.join(dir, 'keys', 'ota-key.pem'))).mode & 0o777).toBe(0o600);
    expect(await readFile(path.join(dir, 'keys', 'ota-key.pub.pem'), 'utf8')).toMatch(/BEGIN PUBLIC KEY/);
    const again = await ep(['ota', 'keygen', '--out', path.join(dir, 'keys')]);
    expect([again.code, again.stderr]).toEqual([1, expect.stringMatching(/exists; not overwritten/)]);
    expect((await ep(['ota', 'keygen', '--out', path.join(dir, 'other')])).code).toBe(0);
  });

  it('sign + verify: exit 0 with the key id, the expiry and the bundle check', async () => {
    const m = path.join(dir, 'ok.json');
    await writeFile(m, manifestOf());
    expect((await ep(['ota', 'sign', '--key', path.join(dir, 'keys', 'ota-key.pem'), m])).code).toBe(0);
    const r = await ep(['ota', 'verify', '--pubkey', path.join(dir, 'other', 'ota-key.pub.pem'), '--pubkey', path.join(dir, 'keys', 'ota-key.pub.pem'), m, path.join(dir, 'bundle.tar.gz')]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(/^OK: commune-endpoint 1\.3\.0 signed by key [0-9a-f]{16}, expires .*, bundle \d+ bytes, sha256 matches/);
  });

  const spoils: Array<[string, string, (m: string) => Promise<void>]> = [
    ['a byte of the manifest changed after signing', 'bad_signature', async (m) => writeFile(m, (await readFile(m, 'utf8')).replace('1.3.0', '1.3.1'))],
    ['no .sig beside the manifest', 'missing_signature', async (m) => rm(`${m}.sig`)],
    ['a bundle one byte longer', 'too_large', async () => writeFile(path.join(dir, 'bundle.tar.gz'), Buffer.concat([bundle, Buffer.from('x')]))],
    ['a bundle with one bit flipped', 'sha256_mismatch', async () => writeFile(path.join(dir, 'bundle.tar.gz'), Buffer.from(bundle.map((b, i) => (i === 3 ? b ^ 1 : b))))],
    ['a truncated bundle', 'size_mismatch', async () => writeFile(path.join(dir, 'bundle.tar.gz'), bundle.subarray(0, 10))],
  ];
  it.each(spoils)('%s: exit 1, FAILED %s', async (_what, code, spoil) => {
    const m = path.join(dir, `case-${code}.json`);
    await writeFile(m, manifestOf());
    await writeFile(path.join(dir, 'bundle.tar.gz'), bundle);
    expect((await ep(['ota', 'sign', '--key', path.join(dir, 'keys', 'ota-key.pem'), m])).code).toBe(0);
    await spoil(m);
    const r = await ep(['ota', 'verify', '--pubkey', path.join(dir, 'keys', 'ota-key.pub.pem'), m, path.join(dir, 'bundle.tar.gz')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^FAILED ${code}: `));
  });

  it('an expired manifest, and one signed by a key not given: refused', async () => {
    const m = path.join(dir, 'expired.json');
    await writeFile(m, manifestOf({ releasedAt: '2020-01-01T00:00:00Z', expiresAt: '2020-02-01T00:00:00Z' }));
    await ep(['ota', 'sign', '--key', path.join(dir, 'keys', 'ota-key.pem'), m]);
    expect((await ep(['ota', 'verify', '--pubkey', path.join(dir, 'keys', 'ota-key.pub.pem'), m])).stderr).toMatch(/^FAILED expired/);
    expect((await ep(['ota', 'verify', '--pubkey', path.join(dir, 'other', 'ota-key.pub.pem'), m])).stderr).toMatch(/^FAILED bad_signature/);
  });

  it('sign refuses an invalid manifest, with the path of every problem', async () => {
    const m = path.join(dir, 'bad.json');
    await writeFile(m, JSON.stringify({ name: 'commune-endpoint', version: 'one', arch: [] }));
    const r = await ep(['ota', 'sign', '--key', path.join(dir, 'keys', 'ota-key.pem'), m]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/manifest\.bundle: is required/);
    expect(r.stderr).toMatch(/manifest\.arch: must NOT have fewer than 1 items/);
    await expect(stat(`${m}.sig`)).rejects.toThrow();
  });
});
