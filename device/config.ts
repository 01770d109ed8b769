/**
 * The agent's configuration: one JSON file (written by provisioning, read by
 * `ep run --config FILE`). A bad file stops the agent with every problem by path.
 */
import { access, constants, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FromSchema } from 'json-schema-to-ts';
import { DecodeError, type Contract } from './contract/index.js';
import { LOG_LEVELS } from './contract/index.js';
import type { OtaSettings } from './updates.js';
import { GPIO_PINS_SCHEMA } from '../provisioning/index.js';

const ID = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{2,63}$' } as const;

export const configSchema = {
  $id: 'agent-config',
  title: 'Agent configuration file',
  type: 'object',
  additionalProperties: false,
  required: ['deviceId', 'groupId', 'name', 'mqtt', 'dataDir'],
  properties: {
    deviceId: ID,
    groupId: ID,
    name: { type: 'string', minLength: 1, maxLength: 128, description: "the commune's display name (Unicode)" },
    mqtt: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', pattern: '^mqtts?://', maxLength: 512 },
        username: { type: 'string', maxLength: 256 },
        password: { type: 'string', maxLength: 1024, writeOnly: true },
        caFile: { type: 'string' },
        certFile: { type: 'string' },
        keyFile: { type: 'string' },
        keepaliveS: { type: 'integer', minimum: 5, maximum: 600, default: 30 },
        /** Capped, jittered reconnect backoff (MQTT.js alone retries every 1 s in lockstep). */
        reconnectBaseMs: { type: 'integer', minimum: 100, maximum: 60000, default: 1000 },
        reconnectCapMs: { type: 'integer', minimum: 1000, maximum: 600000, default: 60000 },
        protocolVersion: {
          enum: [5, 4],
          description: 'MQTT 5 or 4 (3.1.1) only; absent: 5, falling back to 3.1.1 for the life of the process when the broker refuses or closes MQTT 5 (docs/agent.md)',
        },
      },
    },
    dataDir: { type: 'string', minLength: 1 },
    media: {
      type: 'object',
      additionalProperties: false,
      properties: {
        source: { enum: ['auto', 'test'], default: 'auto' },
        volume: { type: 'number', minimum: 0, maximum: 1.5, default: 1 },
        micMuted: { type: 'boolean', default: false },
        aec: { type: 'boolean', default: true },
      },
    },
    health: { type: 'object', additionalProperties: false, properties: { periodS: { type: 'integer', minimum: 5, maximum: 3600, default: 30 } } },
    log: { type: 'object', additionalProperties: false, properties: { level: { enum: LOG_LEVELS, default: 'info' } } },
    gpio: GPIO_PINS_SCHEMA,
    field: {
      type: 'object',
      additionalProperties: false,
      description: 'what the clerk and the technician see (docs/field.md)',
      properties: {
        statusPage: {
          type: 'object',
          additionalProperties: false,
          properties: {
            enabled: { type: 'boolean', default: true },
            port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
            host: { type: 'string', minLength: 1, maxLength: 64, default: '0.0.0.0', description: 'address to listen on (the LAN)' },
            pin: { type: 'string', pattern: '^[0-9]{4,8}$', writeOnly: true, description: 'asked before the page shows anything; absent: no PIN' },
          },
        },
        button: {
          type: 'object',
          additionalProperties: false,
          properties: {
            shortPress: { enum: ['raise_hand', 'mute'], default: 'raise_hand', description: 'what a short press does; held 10 s: factory reset' },
            activeLow: { type: 'boolean', default: true, description: 'pressed = line low (to ground, with the pull-up)' },
          },
        },
        leds: {
          type: 'object',
          additionalProperties: false,
          description: 'LEDs under /sys/class/leds (a gpio-leds overlay) by name; absent: gpio lines, else the board\'s ACT',
          properties: {
            status: { type: 'string', pattern: '^[A-Za-z0-9_:.-]{1,64}$' },
            fault: { type: 'string', pattern: '^[A-Za-z0-9_:.-]{1,64}$' },
          },
        },
      },
    },
    ota: {
      type: 'object',
      additionalProperties: false,
      required: ['publicKeys'],
      description: 'over-the-air updates (docs/ota.md); absent: the ota command is refused (not_enabled)',
      properties: {
        publicKeys: { type: 'array', minItems: 1, maxItems: 8, items: { type: 'string', minLength: 1 }, description: 'Ed25519 public key files (PEM) the box trusts; several for a key rotation' },
        appRoot: { type: 'string', minLength: 1, description: 'where releases/, current and release-state.json live (default /opt/commune-endpoint; the launcher sets EP_APP_ROOT)' },
        commitWindowS: { type: 'integer', minimum: 1, maximum: 3600, default: 30, description: 'a new version commits after its self-test and this long of its control loop' },
        trialS: { type: 'integer', minimum: 2, maximum: 86400, default: 120, description: 'a new version not committed within this is rolled back by the launcher' },
        retries: { type: 'integer', minimum: 0, maximum: 1000, default: 25 },
        retryBaseMs: { type: 'integer', minimum: 10, maximum: 60000, default: 500 },
        retryCapMs: { type: 'integer', minimum: 100, maximum: 600000, default: 30000 },
        caFile: { type: 'string', description: 'CA bundle for an https update server (default: the system CAs)' },
      },
    },
  },
} as const;

type RawConfig = FromSchema<typeof configSchema>;

export interface AgentConfig {
  deviceId: string;
  groupId: string;
  name: string;
  mqtt: {
    url: string;
    username?: string;
    password?: string;
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    keepaliveS: number;
    reconnectBaseMs: number;
    reconnectCapMs: number;
    /** Absent: MQTT 5 with the fall back to 3.1.1. */
    protocolVersion?: 4 | 5;
  };
  dataDir: string;
  media: { source: 'auto' | 'test'; volume: number; micMuted: boolean; aec: boolean };
  health: { periodS: number };
  log: { level: (typeof LOG_LEVELS)[number] };
  /** Absent or null: updates not enabled. */
  ota?: OtaSettings | null;
  /** GPIO lines from provisioning; absent: the board's defaults. */
  gpio?: { statusLed?: number; faultLed?: number; button?: number };
  /** Status page, button, LED names (docs/field.md). Absent (tests that build a config by hand): no status page. */
  field?: FieldConfig;
}

export interface FieldConfig {
  statusPage: { enabled: boolean; port: number; host: string; pin?: string };
  button: { shortPress: 'raise_hand' | 'mute'; activeLow: boolean };
  leds: { status?: string; fault?: string };
}

/** Validates a parsed config object; relative paths are resolved against `baseDir`. */
export async function decodeConfig(contract: Contract, raw: unknown, baseDir: string): Promise<AgentConfig> {
  const c = contract.check<RawConfig>(contract.compile(configSchema), raw);
  const problems: string[] = [];
  const abs = (p: string | undefined): string | undefined => (p === undefined ? undefined : path.resolve(baseDir, p));
  const m = c.mqtt;
  const files = { caFile: abs(m.caFile), certFile: abs(m.certFile), keyFile: abs(m.keyFile) };
  for (const [k, f] of Object.entries(files)) {
    if (f === undefined) continue;
    try {
      await access(f, constants.R_OK);
    } catch (e) {
      problems.push(`mqtt.${k}: cannot read ${f} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  const otaFiles = { publicKeys: (c.ota?.publicKeys ?? []).map((f) => abs(f)!), caFile: abs(c.ota?.caFile) };
  for (const [i, f] of [...otaFiles.publicKeys.map((f, i) => [`publicKeys[${i}]`, f] as const), ...(otaFiles.caFile ? [['caFile', otaFiles.caFile] as const] : [])]) {
    try {
      await access(f, constants.R_OK);
    } catch (e) {
      problems.push(`ota.${i}: cannot read ${f} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) problems.push('mqtt.certFile/mqtt.keyFile: a client certificate needs both');
  if ((m.username === undefined) !== (m.password === undefined) && m.password !== undefined) problems.push('mqtt.username: a password needs a username');
  if (m.reconnectBaseMs !== undefined && m.reconnectCapMs !== undefined && m.reconnectCapMs < m.reconnectBaseMs) problems.push('mqtt.reconnectCapMs: must be ≥ mqtt.reconnectBaseMs');
  if (problems.length) throw new DecodeError(problems);
  return {
    deviceId: c.deviceId,
    groupId: c.groupId,
    name: c.name,
    mqtt: {
      url: m.url,
      ...(m.username !== undefined ? { username: m.username } : {}),
      ...(m.password !== undefined ? { password: m.password } : {}),
      ...(files.caFile ? { caFile: files.caFile } : {}),
      ...(files.certFile ? { certFile: files.certFile } : {}),
      ...(files.keyFile ? { keyFile: files.keyFile } : {}),
      keepaliveS: m.keepaliveS ?? 30,
      reconnectBaseMs: m.reconnectBaseMs ?? 1000,
      reconnectCapMs: m.reconnectCapMs ?? 60000,
      ...(m.protocolVersion !== undefined ? { protocolVersion: m.protocolVersion } : {}),
    },
    dataDir: path.resolve(baseDir, c.dataDir),
    media: { source: c.media?.source ?? 'auto', volume: c.media?.volume ?? 1, micMuted: c.media?.micMuted ?? false, aec: c.media?.aec ?? true },
    health: { periodS: c.health?.periodS ?? 30 },
    log: { level: c.log?.level ?? 'info' },
    ...(c.gpio ? { gpio: { ...c.gpio } } : {}),
    field: {
      statusPage: {
        enabled: c.field?.statusPage?.enabled ?? true,
        port: c.field?.statusPage?.port ?? 8080,
        host: c.field?.statusPage?.host ?? '0.0.0.0',
        ...(c.field?.statusPage?.pin !== undefined ? { pin: c.field.statusPage.pin } : {}),
      },
      button: { shortPress: c.field?.button?.shortPress ?? 'raise_hand', activeLow: c.field?.button?.activeLow ?? true },
      leds: { ...(c.field?.leds ?? {}) },
    },
    ota: c.ota
      ? {
          publicKeyFiles: otaFiles.publicKeys,
          appRoot: c.ota.appRoot ? path.resolve(baseDir, c.ota.appRoot) : '/opt/commune-endpoint',
          commitWindowMs: (c.ota.commitWindowS ?? 30) * 1000,
          trialMs: (c.ota.trialS ?? 120) * 1000,
          retries: c.ota.retries ?? 25,
          retryBaseMs: c.ota.retryBaseMs ?? 500,
          retryCapMs: c.ota.retryCapMs ?? 30000,
          ...(otaFiles.caFile ? { caFile: otaFiles.caFile } : {}),
        }
      : null,
  };
}

export async function loadConfig(contract: Contract, file: string): Promise<AgentConfig> {
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (e) {
    throw new DecodeError([`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`]);
  }
  const raw = contract.parseJson(text, file);
  return decodeConfig(contract, raw, path.dirname(path.resolve(file)));
}
