/**
 * Fuzz targets of the OTA trust checks (ota/manifest.ts, ota/signature.ts): any bytes
 * decode to a manifest or to problems by path, never an exception; a decoded manifest's
 * dates are numbers and the install checks answer with one of their codes; a signed
 * manifest changed in any byte, or its signature changed to other bytes, never verifies,
 * and a signature by a key the box does not trust never does either.
 */
import fc from 'fast-check';
import { OTA_ARCHES, checkInstallable, checkSignature, decodeManifest, generateKeys, parseVersion, readPublicKey, signBytes } from '../../ota/index.js';
import { InputCounter, runProperty, type FuzzTarget } from './property.js';

const RELEASED = Date.parse('2026-12-01T00:00:00Z');
const DAY = 86_400_000;

const good = {
  name: 'commune-endpoint',
  version: '1.3.0',
  arch: ['arm64', 'x64'],
  bundle: { url: 'https://hub.example/ota/ep-1.3.0.tar.gz', sha256: 'a'.repeat(64), size: 12_345_678 },
  releasedAt: new Date(RELEASED).toISOString(),
  expiresAt: new Date(RELEASED + 30 * DAY).toISOString(),
};

const mostly = <T>(v: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 4, arbitrary: v }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });
const date = fc.oneof(fc.integer({ min: -400, max: 400 }).map((d) => new Date(RELEASED + d * DAY).toISOString()), fc.constantFrom('2016-12-31T23:59:60Z', '2026-12-01', '2026-12-01T00:00:00', 'tomorrow', ''));

/** A manifest: the contract's shape with odd values, fields dropped, extras. */
const manifestArb = fc.record(
  {
    name: mostly(fc.constantFrom('commune-endpoint', 'other', '')),
    version: mostly(fc.oneof(fc.constantFrom('1.3.0', '1.2.0', '0.0.1', '1.3.0-rc.1', '01.2.3', '1.2', '9007199254740993.0.0', `1.2.3-${'a'.repeat(70)}`), fc.tuple(fc.nat(99), fc.nat(99), fc.nat(99)).map((v) => v.join('.')))),
    arch: mostly(fc.array(fc.oneof(fc.constantFrom(...OTA_ARCHES), fc.string({ maxLength: 6 })), { maxLength: 10 })),
    bundle: mostly(
      fc.record(
        { url: mostly(fc.constantFrom('https://h/b.tgz', 'http://h/b', 'file:///etc/passwd', '')), sha256: mostly(fc.oneof(fc.constant('a'.repeat(64)), fc.string({ maxLength: 70 }))), size: mostly(fc.oneof(fc.integer(), fc.constantFrom(0, 4294967296, 4294967297, 1.5, -1))) },
        { requiredKeys: [] },
      ),
    ),
    releasedAt: mostly(date),
    expiresAt: mostly(date),
    keyId: mostly(fc.string({ maxLength: 20 })),
    files: fc.jsonValue({ maxDepth: 3 }),
  },
  { requiredKeys: [] },
);

/** Manifest bytes: JSON of a manifest, of anything, or not JSON; sometimes over the 64 KiB cap. */
const bytesArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: manifestArb.map((m) => Buffer.from(JSON.stringify(m))) },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 400 }) },
  { weight: 1, arbitrary: fc.integer({ min: 65_000, max: 66_000 }).map((n) => Buffer.from(JSON.stringify({ ...good, pad: 'x'.repeat(n) }))) },
);

const facts = { name: 'commune-endpoint', arch: 'arm64' as const, running: parseVersion('1.2.0')!, failedVersions: ['1.2.5'], systemNow: RELEASED + DAY, lastSyncedAt: RELEASED };
const CODES = new Set(['downgrade', 'expired', 'wrong_arch', 'refused_version', 'wrong_name']);

function decodes(counter: InputCounter): fc.IProperty<[Uint8Array]> {
  return fc.property(bytesArb, (bytes) => {
    counter.add();
    const d = decodeManifest(bytes);
    if (!d.ok) {
      if (d.problems.length === 0 || d.problems.length > 21 || d.problems.some((p) => typeof p !== 'string' || p.length > 200 || !/^(\S+: |… and \d+ more problems?$)/.test(p))) throw new Error(`problems not by path, or unbounded: ${JSON.stringify(d.problems).slice(0, 400)}`);
      return;
    }
    const m = d.manifest;
    if (!Number.isFinite(Date.parse(m.releasedAt)) || !Number.isFinite(Date.parse(m.expiresAt))) throw new Error(`a manifest whose dates are not numbers decoded: ${m.releasedAt} / ${m.expiresAt}`);
    const c = checkInstallable(m, d.version, facts);
    if (!c.ok && !CODES.has(c.code)) throw new Error(`an install check code outside its list: ${c.code}`);
  });
}

/** A change to a signed manifest's bytes: flip, insert, delete, truncate, append. */
const mutation = fc.oneof(
  fc.tuple(fc.constant('flip' as const), fc.nat(), fc.integer({ min: 1, max: 255 })),
  fc.tuple(fc.constant('insert' as const), fc.nat(), fc.integer({ min: 0, max: 255 })),
  fc.tuple(fc.constant('delete' as const), fc.nat(), fc.constant(0)),
  fc.tuple(fc.constant('truncate' as const), fc.nat(), fc.constant(0)),
  fc.tuple(fc.constant('append' as const), fc.constant(0), fc.integer({ min: 0, max: 255 })),
);

function mutate(b: Buffer, [kind, at, v]: [string, number, number]): Buffer {
  const i = at % b.length;
  if (kind === 'flip') return Buffer.concat([b.subarray(0, i), Buffer.from([b[i]! ^ v]), b.subarray(i + 1)]);
  if (kind === 'insert') return Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
  if (kind === 'delete') return Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
  if (kind === 'truncate') return b.subarray(0, i);
  return Buffer.concat([b, Buffer.from([v])]);
}

function signatures(counter: InputCounter): fc.IProperty<[unknown, [string, number, number], string, number, boolean]> {
  const key = generateKeys();
  const stranger = generateKeys();
  const trusted = [readPublicKey(key.publicKeyPem, 'key')];
  const codes = new Set(['missing_signature', 'bad_signature', 'unknown_key']);
  return fc.property(manifestArb, mutation, fc.string({ maxLength: 100, unit: 'binary-ascii' }), fc.nat(), fc.boolean(), (m, mut, junkSig, sigAt, named) => {
    counter.add(4);
    const bytes = Buffer.from(JSON.stringify(m));
    const sig = signBytes(bytes, key.privateKeyPem);
    const keyId = named ? key.keyId : undefined;
    const ok = checkSignature(bytes, sig, trusted, keyId);
    if (!ok.ok) throw new Error(`a good signature refused: ${ok.message}`);
    // The bytes changed: never verifies.
    const changed = mutate(bytes, mut);
    if (!changed.equals(bytes) && checkSignature(changed, sig, trusted, keyId).ok) throw new Error(`a changed manifest verified (${mut[0]} at ${mut[1] % bytes.length})`);
    // The signature text changed: verifies only if it still decodes to the very same 64 bytes.
    const s = sig.trim();
    const i = sigAt % s.length;
    const sigChanged = `${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
    const r = checkSignature(bytes, sigChanged, trusted, keyId);
    if (r.ok && !Buffer.from(sigChanged, 'base64').equals(Buffer.from(s, 'base64'))) throw new Error('a changed signature verified');
    // Any text as the signature, and the stranger's: refused with one of the codes.
    for (const t of [junkSig, signBytes(bytes, stranger.privateKeyPem)]) {
      const x = checkSignature(bytes, t, trusted, named ? stranger.keyId : undefined);
      if (x.ok || !codes.has(x.code)) throw new Error(`a signature not by a trusted key: ${JSON.stringify(x)}`);
    }
  });
}

export const otaManifestTarget: FuzzTarget = {
  name: 'ota-manifest',
  input: 'manifest bytes (a manifest with odd values, any JSON, any bytes, over the cap) decoded and checked for install',
  testRuns: 10_000,
  benchRuns: 100_000,
  run: async (runs, seed) => {
    const counter = new InputCounter();
    return runProperty('ota-manifest', decodes(counter), runs, seed, counter);
  },
};

export const otaSignatureTarget: FuzzTarget = {
  name: 'ota-signature',
  input: 'a signature check (the signed manifest, a changed byte, a changed signature, junk and a stranger’s signature: 4 per run)',
  testRuns: 2_500,
  benchRuns: 25_000,
  run: async (runs, seed) => {
    const counter = new InputCounter();
    return runProperty('ota-signature', signatures(counter), runs, seed, counter);
  },
};
