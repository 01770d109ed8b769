/**
 * The OTA trust checks that decide before anything is downloaded or touched: versions
 * (semver precedence), Ed25519 signatures with several trusted keys, the manifest's shape,
 * and expiry judged on a box without a real-time clock.
 */
import { describe, expect, it } from 'vitest';
import { checkInstallable, checkSignature, compareVersions, decodeManifest, generateKeys, parseVersion, readPublicKey, signBytes, type InstallFacts, type OtaManifest } from '../../ota/index.js';

const v = (s: string) => {
  const x = parseVersion(s);
  if (!x) throw new Error(`not a version: ${s}`);
  return x;
};
const DAY = 86_400_000;
const RELEASED = Date.parse('2026-12-01T00:00:00Z');

const manifest = (over: Partial<OtaManifest> = {}): OtaManifest => ({
  name: 'commune-endpoint',
  version: '1.3.0',
  arch: ['arm64', 'x64'],
  bundle: { url: 'https://hub.example/ota/ep-1.3.0.tar.gz', sha256: 'a'.repeat(64), size: 12_345_678 },
  releasedAt: new Date(RELEASED).toISOString(),
  expiresAt: new Date(RELEASED + 30 * DAY).toISOString(),
  ...over,
});

const facts = (over: Partial<InstallFacts> = {}): InstallFacts => ({ name: 'commune-endpoint', arch: 'arm64', running: v('1.2.0'), failedVersions: [], systemNow: RELEASED + DAY, lastSyncedAt: RELEASED + DAY, ...over });

describe('versions', () => {
  it.each([
    ['1.2.3', '1.2.4', -1],
    ['1.10.0', '1.9.9', 1],
    ['2.0.0', '10.0.0', -1],
    ['1.0.0-rc.1', '1.0.0', -1],
    ['1.0.0-alpha', '1.0.0-alpha.1', -1],
    ['1.0.0-alpha.1', '1.0.0-alpha.beta', -1],
    ['1.0.0-beta.2', '1.0.0-beta.11', -1],
    ['1.0.0-rc.1', '1.0.0-beta.11', 1],
    ['1.0.0+build.1', '1.0.0+build.2', 0],
  ])('%s vs %s → %i (semver precedence)', (a, b, want) => {
    expect(Math.sign(compareVersions(v(a), v(b)))).toBe(want);
    expect(Math.sign(compareVersions(v(b), v(a)))).toBe(-want || 0);
  });

  it.each(['1.2', '01.2.3', '1.2.3.4', 'v1.2.3', '1.2.3-', '1.2.3-01', '', `1.2.3-${'a'.repeat(70)}`, '9007199254740993.0.0'])('refuses %j', (s) => {
    expect(parseVersion(s)).toBeNull();
  });
});

describe('signatures (Ed25519 over the manifest bytes, several trusted keys)', () => {
  const a = generateKeys();
  const b = generateKeys();
  const stranger = generateKeys();
  const trusted = [readPublicKey(a.publicKeyPem, 'key a'), readPublicKey(b.publicKeyPem, 'key b')];
  const bytes = Buffer.from(JSON.stringify(manifest()));

  it('verifies with any trusted key (rotation), and names the key that did', () => {
    expect(checkSignature(bytes, signBytes(bytes, b.privateKeyPem), trusted)).toEqual({ ok: true, keyId: b.keyId });
    expect(checkSignature(bytes, signBytes(bytes, a.privateKeyPem), trusted, a.keyId)).toEqual({ ok: true, keyId: a.keyId });
  });

  it('refuses, each with its own code: missing, not base64, wrong length, tampered bytes, an untrusted key', () => {
    const sig = signBytes(bytes, a.privateKeyPem);
    expect(checkSignature(bytes, null, trusted)).toMatchObject({ ok: false, code: 'missing_signature' });
    expect(checkSignature(bytes, 'not base64!', trusted)).toMatchObject({ ok: false, code: 'bad_signature' });
    expect(checkSignature(bytes, Buffer.alloc(32).toString('base64'), trusted)).toMatchObject({ ok: false, code: 'bad_signature', message: /32 bytes/ });
    const flipped = Buffer.from(bytes);
    flipped[10] = flipped[10]! ^ 1;
    expect(checkSignature(flipped, sig, trusted)).toMatchObject({ ok: false, code: 'bad_signature' });
    expect(checkSignature(bytes, signBytes(bytes, stranger.privateKeyPem), trusted)).toMatchObject({ ok: false, code: 'bad_signature' });
    expect(checkSignature(bytes, signBytes(bytes, stranger.privateKeyPem), trusted, stranger.keyId)).toMatchObject({ ok: false, code: 'unknown_key' });
  });

  it('a trusted key must be an Ed25519 public key', () => {
    expect(() => readPublicKey('garbage', 'keys[0]')).toThrow(/keys\[0\]: not a public key/);
  });
});

describe('decoding a manifest', () => {
  it('accepts the contract example shape', () => {
    const r = decodeManifest(Buffer.from(JSON.stringify(manifest())));
    expect(r.ok && r.version.text).toBe('1.3.0');
  });

  it.each([
    ['garbage JSON', Buffer.from('{"name": '), /manifest: not JSON/],
    ['10 MB', Buffer.alloc(10 * 1024 * 1024, 0x20), /over the 65536-byte limit/],
    ['a bad sha256 and a missing size', Buffer.from(JSON.stringify({ ...manifest(), bundle: { url: 'https://x/y', sha256: 'XYZ' } })), /manifest\.bundle\.size: is required.*manifest\.bundle\.sha256: must match/],
    ['a leap-second expiry', Buffer.from(JSON.stringify(manifest({ expiresAt: '2016-12-31T23:59:60Z' }))), /manifest\.expiresAt: must be an RFC 3339 date-time/],
    ['a non-semver version', Buffer.from(JSON.stringify(manifest({ version: '1.3.0.1' }))), /manifest\.version: "1\.3\.0\.1" is not a semantic version/],
    ['an unknown arch', Buffer.from(JSON.stringify(manifest({ arch: ['mips'] as never }))), /manifest\.arch\.0: must be one of/],
  ])('refuses %s, with the path', (_what, bytes, problem) => {
    const r = decodeManifest(bytes);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problems.join('; ')).toMatch(problem);
  });
});

describe('may this box install it (before anything is touched)', () => {
  const check = (m: OtaManifest, f: InstallFacts) => checkInstallable(m, v(m.version), f);

  it('a newer, unexpired release for this arch: yes', () => {
    expect(check(manifest(), facts())).toEqual({ ok: true });
  });

  it.each([
    ['the same version', manifest({ version: '1.2.0' }), facts(), 'downgrade'],
    ['a lower version (rollback attack)', manifest({ version: '1.1.9' }), facts(), 'downgrade'],
    ['another arch', manifest({ arch: ['armhf'] }), facts(), 'wrong_arch'],
    ['another product', manifest({ name: 'other' }), facts(), 'wrong_name'],
    ['a version that failed here before', manifest(), facts({ failedVersions: ['1.3.0'] }), 'refused_version'],
    ['an expired manifest', manifest(), facts({ systemNow: RELEASED + 31 * DAY, lastSyncedAt: RELEASED + 31 * DAY }), 'expired'],
    // Freeze attack on a box whose clock was reset: the last synced time it saw still says expired.
    ['an expired manifest, the clock reset to 1970', manifest(), facts({ systemNow: 0, lastSyncedAt: RELEASED + 31 * DAY }), 'expired'],
  ])('%s: refused (%s)', (_what, m, f, code) => {
    expect(check(m, f)).toMatchObject({ ok: false, code });
  });

  it('a fresh manifest on a box whose clock is in 1970 and never synced: accepted (releasedAt is the floor)', () => {
    expect(check(manifest(), facts({ systemNow: 0, lastSyncedAt: null }))).toEqual({ ok: true });
  });

  it('a newer version that failed before is accepted once a newer one is offered', () => {
    expect(check(manifest({ version: '1.3.1' }), facts({ failedVersions: ['1.3.0'] }))).toEqual({ ok: true });
  });
});
