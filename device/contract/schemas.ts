/**
 * The hub ↔ box contract v1 (../shared/CONTRACT.md) as JSON Schemas: the single source
 * for validation (validate.ts), the TypeScript types (types.ts) and the schemas
 * published for hub implementers (docs/schemas/, written by `ep schemas`).
 * Extend, never break: fields may be added within v1, none removed or renamed.
 */

const ID_PATTERN = '^[a-z0-9][a-z0-9-]{2,63}$';
const dateTime = { type: 'string', format: 'date-time', maxLength: 64 } as const;

import { joinSpecSchema } from '../../gst-pipelines/index.js';
import { otaManifestSchema } from '../../ota/index.js';

export { joinSpecSchema, otaManifestSchema };

export const deviceIdSchema = { type: 'string', pattern: ID_PATTERN } as const;

const emptyArgs = { type: 'object', additionalProperties: false, properties: {} } as const;
const when = { enum: ['now', 'idle'] } as const;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

export const commandArgsSchemas = {
  join: joinSpecSchema,
  leave: emptyArgs,
  ota: {
    type: 'object',
    additionalProperties: false,
    required: ['manifestUrl'],
    properties: { manifestUrl: { type: 'string', pattern: '^https?://', maxLength: 2048 }, when, force: { type: 'boolean' } },
  },
  reboot: { type: 'object', additionalProperties: false, properties: { when } },
  selftest: emptyArgs,
  identify: { type: 'object', additionalProperties: false, properties: { seconds: { type: 'integer', minimum: 1, maximum: 300 } } },
  config: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: {
      healthPeriodS: { type: 'integer', minimum: 5, maximum: 3600 },
      logLevel: { enum: LOG_LEVELS },
      volume: { type: 'number', minimum: 0, maximum: 1.5 },
      micMuted: { type: 'boolean' },
    },
  },
  logs: { type: 'object', additionalProperties: false, properties: { lines: { type: 'integer', minimum: 1, maximum: 2000 } } },
} as const;

export type CommandName = keyof typeof commandArgsSchemas;
export const COMMAND_NAMES = Object.keys(commandArgsSchemas) as CommandName[];

export const commandEnvelopeSchema = {
  $id: 'command-envelope',
  title: 'Command envelope (hub → box, ep/v1/dev/{deviceId}/cmd/{command} and ep/v1/grp/{groupId}/cmd/{command})',
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 64 },
    ts: dateTime,
    expiresAt: dateTime,
    args: { type: 'object', description: 'per command; see command-args-*' },
  },
} as const;

export const ERROR_CODES = ['bad_request', 'unknown_command', 'expired', 'busy', 'failed', 'not_provisioned'] as const;

export const replySchema = {
  $id: 'reply',
  title: 'Reply (box → hub, ep/v1/dev/{deviceId}/reply, and the MQTT 5 response topic)',
  type: 'object',
  additionalProperties: false,
  required: ['id', 'deviceId', 'command', 'ok'],
  properties: {
    id: { type: 'string', maxLength: 64 },
    deviceId: deviceIdSchema,
    command: { type: 'string', maxLength: 64 },
    ok: { type: 'boolean' },
    result: { type: 'object' },
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: {
        code: { enum: ERROR_CODES },
        message: { type: 'string' },
        retryAfterS: { type: 'number' },
        reason: { type: 'string', description: 'v1 extension: the reason code of a failed ota (bad_signature, downgrade, expired, sha256_mismatch…, docs/ota.md)' },
      },
    },
  },
} as const;

export const statusSchema = {
  $id: 'status',
  title: 'Status (retained; the MQTT last will is {"online":false,"ts"})',
  type: 'object',
  additionalProperties: false,
  required: ['online', 'ts'],
  properties: {
    online: { type: 'boolean' },
    version: { type: 'string' },
    bootId: { type: 'string' },
    groupId: { type: 'string', description: 'v1 extension: the group (district) the box belongs to, for the hub\'s fleet list (ep fleet)' },
    name: { type: 'string', description: 'v1 extension: the box\'s human name (the commune office)' },
    ts: dateTime,
  },
} as const;

export const STATES = ['idle', 'joining', 'in_meeting', 'leaving', 'updating', 'fault', 'unprovisioned'] as const;
export const MEDIA_STATES = ['off', 'ok', 'starting', 'retrying', 'failed'] as const;

export const stateSchema = {
  $id: 'state',
  title: 'Reported state (retained)',
  type: 'object',
  additionalProperties: false,
  required: ['state', 'faults', 'version', 'ts'],
  properties: {
    state: { enum: STATES },
    meeting: {
      anyOf: [
        { type: 'null' },
        { type: 'object', additionalProperties: false, required: ['id', 'since'], properties: { id: { type: 'string' }, title: { type: 'string' }, since: dateTime } },
      ],
    },
    media: {
      type: 'object',
      additionalProperties: false,
      required: ['send', 'receive'],
      properties: {
        send: { enum: MEDIA_STATES },
        receive: { enum: MEDIA_STATES },
        encoder: { type: ['string', 'null'] },
        restarts: { type: 'integer' },
        lastError: { type: ['string', 'null'] },
        rung: { type: ['string', 'null'], description: 'link adaptation (v1 extension): the sent video, e.g. 720p30, 360p15, audio-only; null outside a meeting' },
      },
    },
    ota: {
      anyOf: [
        { type: 'null' },
        {
          type: 'object',
          required: ['phase'],
          properties: {
            phase: { type: 'string', description: 'checking, downloading, verifying, installing, waiting_idle, switching, restarting, trying, committed, refused, failed, rolled_back (docs/ota.md)' },
            version: { type: 'string' },
            progress: { type: 'number' },
            from: { type: 'string', description: 'v1 extension: the version the update started from' },
            code: { type: 'string', description: 'v1 extension: the reason code of a refusal or failure' },
            message: { type: 'string', description: 'v1 extension: why' },
          },
        },
      ],
    },
    faults: { type: 'array', items: { type: 'string' } },
    version: { type: 'string' },
    ts: dateTime,
  },
} as const;

const nullableNumber = { type: ['number', 'null'] } as const;
const nullableBool = { type: ['boolean', 'null'] } as const;

export const healthSchema = {
  $id: 'health',
  title: 'Health sample (QoS 0, not retained). A field the platform cannot read is null.',
  type: 'object',
  additionalProperties: false,
  required: ['ts', 'uptimeS', 'cpu', 'power', 'mem', 'disk', 'clockSynced', 'net', 'devices', 'media'],
  properties: {
    ts: dateTime,
    uptimeS: { type: 'number' },
    cpu: { type: 'object', additionalProperties: false, properties: { loadPct: nullableNumber, tempC: nullableNumber } },
    power: { type: 'object', additionalProperties: false, properties: { underVoltage: nullableBool, underVoltageSinceBoot: nullableBool, throttled: nullableBool } },
    mem: { type: 'object', additionalProperties: false, properties: { usedPct: nullableNumber, agentRssMb: nullableNumber } },
    disk: { type: 'object', additionalProperties: false, properties: { usedPct: nullableNumber } },
    clockSynced: nullableBool,
    net: {
      type: 'object',
      additionalProperties: false,
      properties: { iface: { type: ['string', 'null'] }, ip: { type: ['string', 'null'] }, rxKbps: nullableNumber, txKbps: nullableNumber },
    },
    devices: { type: 'object', additionalProperties: false, properties: { camera: nullableBool, display: nullableBool, mic: nullableBool, speaker: nullableBool } },
    media: {
      type: 'object',
      additionalProperties: false,
      properties: {
        send: {
          type: 'object',
          additionalProperties: false,
          properties: { fps: nullableNumber, kbps: nullableNumber, rttMs: nullableNumber, lossPct: nullableNumber, retransPct: nullableNumber },
        },
        receive: { type: 'object', additionalProperties: false, properties: { fps: nullableNumber, kbps: nullableNumber, lossPct: nullableNumber } },
        audio: { type: 'object', additionalProperties: false, properties: { micDb: nullableNumber, speakerDb: nullableNumber } },
        link: {
          description: 'link adaptation (v1 extension): rung and target of the sent video, wire rate, SRT RTT and its floor; null outside a meeting',
          anyOf: [
            { type: 'null' },
            {
              type: 'object',
              additionalProperties: false,
              required: ['adaptive', 'rung', 'targetKbps', 'sendKbps', 'rttMs', 'rttFloorMs', 'congested', 'stepsDown', 'stepsUp'],
              properties: {
                adaptive: { type: 'boolean' },
                rung: { type: 'string' },
                targetKbps: { type: 'number' },
                sendKbps: nullableNumber,
                rttMs: nullableNumber,
                rttFloorMs: nullableNumber,
                congested: { type: 'boolean' },
                stepsDown: { type: 'integer' },
                stepsUp: { type: 'integer' },
              },
            },
          ],
        },
      },
    },
    faults: { type: 'array', items: { type: 'string' } },
  },
} as const;

export const eventSchema = {
  $id: 'event',
  title: 'Event (box → hub, QoS 1, not retained)',
  type: 'object',
  additionalProperties: false,
  required: ['type', 'severity', 'ts'],
  properties: {
    type: { type: 'string', maxLength: 64 },
    severity: { enum: ['info', 'warn', 'error'] },
    ts: dateTime,
    seq: { type: 'integer', description: 'per-box sequence number: events arrive in order, none twice' },
    detail: { type: 'object' },
  },
} as const;

/**
 * The next meeting the hub announces to a group (a v1 extension): `ep/v1/grp/{groupId}/next`,
 * retained, an empty payload clears it. The box only shows it (TV standby screen, status
 * page, `ep status`); joining is still the retained `meeting` topic's business.
 */
export const nextMeetingSchema = {
  $id: 'next-meeting',
  title: 'Next meeting (hub → group, ep/v1/grp/{groupId}/next, retained; empty payload: none announced)',
  type: 'object',
  additionalProperties: false,
  required: ['title', 'startsAt'],
  properties: {
    meetingId: { type: 'string', minLength: 1, maxLength: 128 },
    title: { type: 'string', minLength: 1, maxLength: 512, description: 'shown on the TV (Unicode; NFC-normalised by the box)' },
    startsAt: dateTime,
  },
} as const;

/** Every schema published for the hub side, by file name. */
export const PUBLISHED_SCHEMAS = {
  'command-envelope': commandEnvelopeSchema,
  ...Object.fromEntries(Object.entries(commandArgsSchemas).map(([k, v]) => [`command-args-${k}`, v])),
  reply: replySchema,
  status: statusSchema,
  state: stateSchema,
  health: healthSchema,
  event: eventSchema,
  'join-spec': joinSpecSchema,
  'ota-manifest': otaManifestSchema,
  'next-meeting': nextMeetingSchema,
} as Record<string, object>;
