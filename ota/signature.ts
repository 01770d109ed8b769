/**
 * Ed25519 signatures over a manifest's exact bytes (CONTRACT.md: `<manifest>.sig` holds
 * the base64 of the signature). node:crypto only. A box trusts the public keys it was
 * provisioned with — several, so a release key can be rotated: the new key is provisioned
 * (or shipped in a release signed by the old one) before the old one is retired.
 *
 * Key ids: the first 16 hex digits of the SHA-256 of the key's DER (SubjectPublicKeyInfo).
 * A manifest may name its key (`"keyId"`, an extension of contract v1): then a signature
 * by a key the box does not trust is `unknown_key`, and a bad signature by a trusted one
 * `bad_signature`. Without it the box tries every trusted key; none verifying is
 * `bad_signature`.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

export interface KeyPair {
  keyId: string;
  publicKeyPem: string;
  privateKeyPem: string;
}

export function keyIdOf(key: KeyObject): string {
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function generateKeys(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** A trusted public key from its PEM text; throws with the reason when it is not an Ed25519 public key. */
export function readPublicKey(pem: string, where: string): { keyId: string; key: KeyObject } {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new Error(`${where}: not a public key (${(e as Error).message})`, { cause: e });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${where}: an ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return { keyId: keyIdOf(key), key };
}

/** The `.sig` text: base64 of the Ed25519 signature over `bytes`. */
export function signBytes(bytes: Uint8Array, privateKeyPem: string): string {
  const key = createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`the signing key is ${key.asymmetricKeyType ?? 'unknown'}, not Ed25519`);
  return `${sign(null, bytes, key).toString('base64')}\n`;
}

export type SignatureCheck = { ok: true; keyId: string } | { ok: false; code: 'missing_signature' | 'bad_signature' | 'unknown_key'; message: string };

/** Checks `sigText` over `bytes` against the trusted keys (and the key the manifest names, if any). */
export function checkSignature(bytes: Uint8Array, sigText: string | null, trusted: ReadonlyArray<{ keyId: string; key: KeyObject }>, namedKeyId?: string): SignatureCheck {
  if (sigText === null || sigText.trim() === '') return { ok: false, code: 'missing_signature', message: 'the manifest has no signature (.sig)' };
  const b64 = sigText.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return { ok: false, code: 'bad_signature', message: 'the signature is not base64' };
  const sig = Buffer.from(b64, 'base64');
  if (sig.length !== 64) return { ok: false, code: 'bad_signature', message: `the signature is ${sig.length} bytes, not the 64 of Ed25519` };
  const candidates = namedKeyId === undefined ? trusted : trusted.filter((k) => k.keyId === namedKeyId);
  if (namedKeyId !== undefined && candidates.length === 0) return { ok: false, code: 'unknown_key', message: `signed with key ${namedKeyId}, which this box does not trust` };
  for (const k of candidates) if (verify(null, bytes, k.key, sig)) return { ok: true, keyId: k.keyId };
  return { ok: false, code: 'bad_signature', message: namedKeyId ? `the signature does not verify with key ${namedKeyId}` : `the signature verifies with none of the ${trusted.length} trusted keys` };
}
