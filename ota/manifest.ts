/**
 * The OTA manifest (CONTRACT.md § OTA manifest): its JSON Schema — the single source for
 * the box's decoding and the schema published for the hub side (device/contract re-exports
 * it into docs/schemas/) — and the checks that decide whether a box may install it, each
 * with its own reason code, all made before the running version is touched.
 */
import type { ValidateFunction } from 'ajv';
import { capProblems, createAjv, describeErrors } from '../lib/index.js';
import { compareVersions, parseVersion, type Version } from './version.js';
import { trustedNow, type TimeFacts } from './trusted-time.js';

export const OTA_ARCHES = ['arm64', 'armhf', 'x64'] as const;
export type OtaArch = (typeof OTA_ARCHES)[number];

const dateTime = { type: 'string', format: 'date-time', maxLength: 64 } as const;

export const otaManifestSchema = {
  $id: 'ota-manifest',
  title: 'OTA manifest (beside its detached Ed25519 signature <manifest>.sig)',
  type: 'object',
  additionalProperties: true,
  required: ['name', 'version', 'arch', 'bundle', 'releasedAt', 'expiresAt'],
  properties: {
    name: { type: 'string', maxLength: 64 },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+', maxLength: 64 },
    arch: { type: 'array', items: { enum: OTA_ARCHES }, minItems: 1, maxItems: 8 },
    bundle: {
      type: 'object',
      required: ['url', 'sha256', 'size'],
      properties: {
        url: { type: 'string', pattern: '^https?://', maxLength: 2048 },
        sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
        size: { type: 'integer', minimum: 1, maximum: 4294967296 },
      },
    },
    releasedAt: dateTime,
    expiresAt: dateTime,
    keyId: { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'v1 extension: the signing key (first 16 hex digits of the SHA-256 of its DER SubjectPublicKeyInfo)' },
    files: {
      type: 'object',
      description: "v1 extension: the release's file index (gzipped JSON) and where its content-addressed files are (objectsUrl + sha256), so a box fetches only the files its releases lack (docs/ota.md)",
      required: ['index', 'objectsUrl'],
      properties: {
        index: {
          type: 'object',
          required: ['url', 'sha256', 'size'],
          properties: {
            url: { type: 'string', pattern: '^https?://', maxLength: 2048 },
            sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            size: { type: 'integer', minimum: 1, maximum: 16777216 },
          },
        },
        objectsUrl: { type: 'string', pattern: '^https?://', maxLength: 2048 },
      },
    },
  },
} as const;

export interface OtaManifest {
  name: string;
  version: string;
  arch: OtaArch[];
  bundle: { url: string; sha256: string; size: number };
  releasedAt: string;
  expiresAt: string;
  keyId?: string;
  /** v1 extension: the file index and the content-addressed files (ota/delta.ts). */
  files?: { index: { url: string; sha256: string; size: number }; objectsUrl: string };
}

/** A manifest is small; a 10 MB one is refused before it is parsed. */
export const MANIFEST_MAX_BYTES = 64 * 1024;

export type ManifestDecode = { ok: true; manifest: OtaManifest; version: Version } | { ok: false; problems: string[] };

let validate: ValidateFunction | null = null;

/** Decodes manifest bytes: size cap, JSON, schema (every problem by path), a semver version. */
export function decodeManifest(bytes: Uint8Array): ManifestDecode {
  if (bytes.length > MANIFEST_MAX_BYTES) return { ok: false, problems: [`manifest: ${bytes.length} bytes is over the ${MANIFEST_MAX_BYTES}-byte limit`] };
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { ok: false, problems: ['manifest: not JSON'] };
  }
  validate ??= createAjv().compile(otaManifestSchema);
  if (!validate(value)) return { ok: false, problems: capProblems(describeErrors(validate.errors, 'manifest')) };
  const manifest = value as OtaManifest;
  const version = parseVersion(manifest.version);
  if (!version) return { ok: false, problems: [`manifest.version: ${JSON.stringify(manifest.version.slice(0, 64))} is not a semantic version (1.2.3, 1.2.3-rc.1)`] };
  return { ok: true, manifest, version };
}

export type RefusalCode = 'downgrade' | 'expired' | 'wrong_arch' | 'refused_version' | 'wrong_name';

export interface InstallFacts extends TimeFacts {
  /** What this box is and runs. */
  name: string;
  arch: OtaArch;
  running: Version;
  /** Versions that failed on this box (rolled back): refused until a newer one is offered. */
  failedVersions: readonly string[];
}

export type InstallCheck = { ok: true } | { ok: false; code: RefusalCode; message: string };

/** The checks on a decoded (and signature-checked) manifest, in a fixed order; the first that fails is the answer. */
export function checkInstallable(m: OtaManifest, version: Version, f: InstallFacts): InstallCheck {
  if (m.name !== f.name) return { ok: false, code: 'wrong_name', message: `the manifest is for ${JSON.stringify(m.name)}, this box runs ${JSON.stringify(f.name)}` };
  if (!m.arch.includes(f.arch)) return { ok: false, code: 'wrong_arch', message: `the release is for ${m.arch.join(', ')}; this box is ${f.arch}` };
  if (compareVersions(version, f.running) <= 0) return { ok: false, code: 'downgrade', message: `${version.text} is not newer than the running ${f.running.text}` };
  if (f.failedVersions.includes(version.text)) return { ok: false, code: 'refused_version', message: `${version.text} failed on this box before (rolled back); it is refused until a newer version is offered` };
  const t = trustedNow(f, Date.parse(m.releasedAt));
  if (Date.parse(m.expiresAt) <= t.now) return { ok: false, code: 'expired', message: `the manifest expired at ${m.expiresAt} (now is at least ${new Date(t.now).toISOString()} by the ${t.source} clock)` };
  return { ok: true };
}
