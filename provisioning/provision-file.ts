/**
 * `ep-provision.json`: the one file a technician drops on the SD card's boot partition (or
 * a USB stick) so that a box provisions itself on first boot. Decoding it checks
 * everything the box will rely on before anything is written: the schema (every problem
 * by path), the PEM material (a certificate, its key and that they match, the CA, the
 * OTA keys are Ed25519 public keys), the timezone, the deviceId.
 *
 * Problems name the path and the rule, never the value: the file carries a password and
 * a private key, and the problems go to the log and to `provision-status.json`.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { FromSchema } from 'json-schema-to-ts';
import type { ValidateFunction } from 'ajv';
import { capProblems, createAjv, describeErrors } from '../lib/index.js';

export const PROVISION_FILE_NAME = 'ep-provision.json';
export const RECEIPT_FILE_NAME = 'ep-provision.done.json';
/** A PEM certificate chain and a few keys fit in far less; a larger file is not ours. */
export const PROVISION_FILE_MAX_BYTES = 256 * 1024;

const ID = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{2,63}$' } as const;
/** The name's limit, the agent config's too (device/config.ts). */
const NAME_MAX_CHARS = 128;
const PEM = { type: 'string', minLength: 1, maxLength: 65536, pattern: '-----BEGIN ' } as const;

/** Where the LEDs and the button are wired: the provisioning file's `gpio`, copied into the agent config's. */
export const GPIO_PINS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  description: 'GPIO line offsets (BCM numbering) of the status LED, the fault LED and the button; absent: the board\'s own LEDs, no button',
  properties: {
    statusLed: { type: 'integer', minimum: 0, maximum: 53 },
    faultLed: { type: 'integer', minimum: 0, maximum: 53 },
    button: { type: 'integer', minimum: 0, maximum: 53 },
  },
} as const;

export const provisionFileSchema = {
  $id: 'provision-file',
  title: 'ep-provision.json: what a box needs to provision itself (docs/provisioning.md)',
  type: 'object',
  additionalProperties: false,
  required: ['v', 'groupId', 'name', 'broker'],
  properties: {
    v: { const: 1, description: 'the format version' },
    deviceId: { ...ID, description: "absent: the broker certificate's CN, else derived from the board serial (or /etc/machine-id)" },
    groupId: { ...ID, description: 'the district the box belongs to' },
    name: { type: 'string', minLength: 1, maxLength: NAME_MAX_CHARS, description: "the commune's display name (Unicode)" },
    broker: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      description: 'the district hub broker; a password, or a client certificate + key',
      properties: {
        url: { type: 'string', pattern: '^mqtts?://', maxLength: 512 },
        username: { type: 'string', minLength: 1, maxLength: 256, description: 'default: the deviceId (the contract: broker username = deviceId)' },
        password: { type: 'string', minLength: 1, maxLength: 1024, writeOnly: true },
        certificate: { ...PEM, description: 'client certificate (PEM), CN = deviceId' },
        key: { ...PEM, writeOnly: true, description: 'its private key (PEM, unencrypted)' },
        ca: { ...PEM, description: "CA certificate(s) (PEM) the broker's certificate is checked against; absent: the system CAs" },
        protocolVersion: { enum: [5, 4] },
      },
    },
    ota: {
      type: 'object',
      additionalProperties: false,
      required: ['publicKeys'],
      properties: { publicKeys: { type: 'array', minItems: 1, maxItems: 8, items: PEM, description: 'Ed25519 public keys (PEM) updates must be signed with' } },
    },
    gpio: GPIO_PINS_SCHEMA,
    timezone: { type: 'string', pattern: '^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+){0,2}$', maxLength: 64, description: 'IANA name, e.g. Asia/Ho_Chi_Minh' },
    wifi: {
      type: 'object',
      additionalProperties: false,
      required: ['ssid', 'country'],
      properties: {
        ssid: { type: 'string', minLength: 1, maxLength: 32, pattern: '^[^\\u0000-\\u001f\\u007f]+$' },
        psk: { type: 'string', minLength: 8, maxLength: 63, pattern: '^[\\u0020-\\u007e]+$', writeOnly: true, description: 'WPA2 passphrase; absent: an open network' },
        country: { type: 'string', pattern: '^[A-Z]{2}$', description: 'regulatory domain, e.g. VN' },
        hidden: { type: 'boolean' },
      },
    },
  },
} as const;

type RawProvisionFile = FromSchema<typeof provisionFileSchema>;

/** A provisioning file that cannot be used: every problem by path, no value quoted. */
export class ProvisionFileError extends Error {
  override readonly name = 'ProvisionFileError';
  constructor(readonly problems: string[]) {
    super(capProblems(problems).join('; '));
  }
}

export function isProvisionFileError(e: unknown): e is ProvisionFileError {
  return e instanceof ProvisionFileError;
}

let validator: ValidateFunction | null = null;

/** JSON with the size cap; like the contract's parser it never echoes the input (V8 quotes it around the error). */
function parse(bytes: Buffer, what: string): unknown {
  if (bytes.length > PROVISION_FILE_MAX_BYTES) throw new ProvisionFileError([`${what}: ${bytes.length} bytes is over the ${PROVISION_FILE_MAX_BYTES}-byte limit`]);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ProvisionFileError([`${what}: not UTF-8 text`]);
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, '')) as unknown;
  } catch (e) {
    const at = /at position (\d+)/.exec((e as Error).message)?.[1];
    throw new ProvisionFileError([`${what}: not JSON${at ? ` (error at position ${at})` : ''}`]);
  }
}

/** Where the deviceId came from (the receipt and the log say). */
export type DeviceIdSource = 'file' | 'certificate' | 'serial' | 'machine-id';

/** A checked provisioning file, ready to be written; secrets kept apart from the rest. */
export interface ProvisionPlan {
  deviceId: string;
  deviceIdSource: DeviceIdSource;
  groupId: string;
  name: string;
  broker: { url: string; username: string; protocolVersion?: 4 | 5; auth: 'password' | 'certificate' };
  /** The secret and PEM material, written 0600 and never logged. */
  secrets: { password?: string; certificate?: string; key?: string; ca?: string };
  otaPublicKeys: string[];
  gpio: { statusLed?: number; faultLed?: number; button?: number } | null;
  timezone: string | null;
  wifi: { ssid: string; psk?: string; country: string; hidden: boolean } | null;
  /** sha256 of the file's bytes: the same file twice is a no-op; a new one re-provisions. */
  sha256: string;
  /** What may be shown: no secret, fingerprints instead of keys (the receipt, the log). */
  redacted: RedactedPlan;
}

export interface RedactedPlan {
  deviceId: string;
  deviceIdSource: DeviceIdSource;
  groupId: string;
  name: string;
  broker: { url: string; username: string; auth: 'password' | 'certificate'; certificate?: PemSummary; ca?: PemSummary[] };
  otaKeys: string[];
  gpio: ProvisionPlan['gpio'];
  timezone: string | null;
  wifi: { ssid: string; country: string; secured: boolean } | null;
  sha256: string;
  warnings: string[];
}

export interface PemSummary {
  subject: string;
  sha256: string;
  validTo: string;
}

export interface DecodeProvisionOptions {
  /** Derives the deviceId when neither the file nor the certificate gives one. */
  deriveDeviceId: () => Promise<{ id: string; source: 'serial' | 'machine-id' }>;
  /** Where IANA zones live (default /usr/share/zoneinfo). */
  zoneinfoDir?: string;
}

const certsOf = (pem: string): string[] => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
const summary = (c: X509Certificate): PemSummary => ({ subject: c.subject.replace(/\n/g, ', '), sha256: c.fingerprint256, validTo: new Date(c.validTo).toISOString() });
const cnOf = (c: X509Certificate): string | null => /^CN=(.*)$/m.exec(c.subject)?.[1]?.trim() ?? null;
const keyFingerprint = (pem: string): string => `sha256:${createHash('sha256').update(createPublicKey(pem).export({ type: 'spki', format: 'der' })).digest('base64')}`;

/**
 * Parses and checks a provisioning file's bytes; throws DecodeError listing every problem
 * by path (`broker.key: does not match broker.certificate`). `what` names the file.
 */
export async function decodeProvisionFile(bytes: Buffer, what: string, o: DecodeProvisionOptions): Promise<ProvisionPlan> {
  const raw = parse(bytes, what);
  if (!validator) {
    const { $id: _drop, ...schema } = provisionFileSchema;
    validator = createAjv().compile(schema);
  }
  if (!validator(raw)) throw new ProvisionFileError(describeErrors(validator.errors));
  const f = raw as RawProvisionFile;
  const problems: string[] = [];
  const warnings: string[] = [];
  const b = f.broker;

  // Broker credentials: one way to authenticate, whole.
  const hasCert = b.certificate !== undefined || b.key !== undefined;
  if (b.password !== undefined && hasCert) problems.push('broker: a password or a certificate + key, not both');
  if (b.password === undefined && !hasCert) problems.push('broker: needs a password, or a certificate + key');
  if (hasCert && (b.certificate === undefined || b.key === undefined)) problems.push(`broker.${b.certificate === undefined ? 'certificate' : 'key'}: a client certificate needs both certificate and key`);
  if (b.url.startsWith('mqtt://') && b.password !== undefined) warnings.push('broker.url: mqtt:// sends the password in clear; use mqtts://');
  // The URL is shown (receipt, log, ep status): credentials have their own fields.
  let url: URL | null = null;
  try {
    url = new URL(b.url);
  } catch {
    problems.push('broker.url: not a URL');
  }
  if (url && (url.username || url.password)) problems.push('broker.url: no credentials in the URL (they would be shown); use broker.username and broker.password');
  if (url && !url.hostname) problems.push('broker.url: has no host');
  // The box keeps the name in NFC, which makes some characters two (U+0958 → U+0915 U+093C).
  if ([...f.name.normalize('NFC')].length > NAME_MAX_CHARS) problems.push(`name: over ${NAME_MAX_CHARS} characters once in Unicode NFC`);

  let cert: X509Certificate | null = null;
  if (b.certificate !== undefined) {
    const blocks = certsOf(b.certificate);
    try {
      if (blocks.length === 0) throw new Error('no block');
      cert = new X509Certificate(blocks[0]!);
    } catch {
      problems.push('broker.certificate: not a PEM certificate');
    }
  }
  if (b.key !== undefined) {
    try {
      const k = createPrivateKey(b.key);
      if (cert && !cert.checkPrivateKey(k)) problems.push('broker.key: does not match broker.certificate');
    } catch (e) {
      const enc = /passphrase|encrypted/i.test((e as Error).message) || /ENCRYPTED/.test(b.key);
      problems.push(enc ? 'broker.key: is encrypted (the box needs it unencrypted, readable only by the service)' : 'broker.key: not a PEM private key');
    }
  }
  const ca: X509Certificate[] = [];
  if (b.ca !== undefined) {
    const blocks = certsOf(b.ca);
    if (blocks.length === 0) problems.push('broker.ca: not a PEM certificate');
    blocks.forEach((pem, i) => {
      try {
        ca.push(new X509Certificate(pem));
      } catch {
        problems.push(`broker.ca: certificate ${i + 1} is not a valid PEM certificate`);
      }
    });
  }
  const otaKeys: string[] = [];
  (f.ota?.publicKeys ?? []).forEach((pem, i) => {
    try {
      const k = createPublicKey(pem);
      if (k.asymmetricKeyType !== 'ed25519') problems.push(`ota.publicKeys[${i}]: an ${k.asymmetricKeyType ?? 'unknown'} key; updates are signed with Ed25519`);
      else otaKeys.push(keyFingerprint(pem));
    } catch {
      problems.push(`ota.publicKeys[${i}]: not a PEM public key`);
    }
  });
  if (f.timezone !== undefined) {
    // A zone is a file: `Asia` (a directory of zones) would make /etc/localtime a link to a directory.
    const zone = await stat(path.join(o.zoneinfoDir ?? '/usr/share/zoneinfo', f.timezone)).catch(() => null);
    if (!zone?.isFile()) problems.push(`timezone: unknown zone ${JSON.stringify(f.timezone)}`);
  }

  // The identity: the file's, else the certificate's CN, else the board's.
  let deviceId: string;
  let source: DeviceIdSource;
  const cn = cert ? cnOf(cert) : null;
  if (f.deviceId !== undefined) {
    deviceId = f.deviceId;
    source = 'file';
  } else if (cn !== null && /^[a-z0-9][a-z0-9-]{2,63}$/.test(cn)) {
    deviceId = cn;
    source = 'certificate';
  } else {
    try {
      const d = await o.deriveDeviceId();
      deviceId = d.id;
      source = d.source;
    } catch (e) {
      throw new ProvisionFileError([...problems, `deviceId: ${(e as Error).message}`]);
    }
  }
  if (cert && cn !== deviceId) problems.push(`broker.certificate: its CN is ${JSON.stringify(cn ?? '')} but the deviceId is ${JSON.stringify(deviceId)} (the broker's ACL knows a box by its CN)`);
  if (problems.length) throw new ProvisionFileError(problems);

  const username = b.username ?? deviceId;
  const auth = b.password !== undefined ? 'password' : 'certificate';
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const wifi = f.wifi ? { ssid: f.wifi.ssid, ...(f.wifi.psk !== undefined ? { psk: f.wifi.psk } : {}), country: f.wifi.country, hidden: f.wifi.hidden ?? false } : null;
  return {
    deviceId,
    deviceIdSource: source,
    groupId: f.groupId,
    name: f.name.normalize('NFC'),
    broker: { url: b.url, username, auth, ...(b.protocolVersion !== undefined ? { protocolVersion: b.protocolVersion } : {}) },
    secrets: {
      ...(b.password !== undefined ? { password: b.password } : {}),
      ...(b.certificate !== undefined ? { certificate: b.certificate } : {}),
      ...(b.key !== undefined ? { key: b.key } : {}),
      ...(b.ca !== undefined ? { ca: b.ca } : {}),
    },
    otaPublicKeys: f.ota?.publicKeys ?? [],
    gpio: f.gpio ?? null,
    timezone: f.timezone ?? null,
    wifi,
    sha256,
    redacted: {
      deviceId,
      deviceIdSource: source,
      groupId: f.groupId,
      name: f.name.normalize('NFC'),
      broker: { url: b.url, username, auth, ...(cert ? { certificate: summary(cert) } : {}), ...(ca.length ? { ca: ca.map(summary) } : {}) },
      otaKeys,
      gpio: f.gpio ?? null,
      timezone: f.timezone ?? null,
      wifi: wifi ? { ssid: wifi.ssid, country: wifi.country, secured: wifi.psk !== undefined } : null,
      sha256,
      warnings,
    },
  };
}
