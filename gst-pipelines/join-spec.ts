/**
 * The join spec: the args of `join` and the retained group meeting (CONTRACT.md, "Join
 * spec"). Its JSON Schema is the one source of the type the planner reads and of the
 * contract's validation (device/contract re-exports it), so the two cannot drift.
 */
import type { FromSchema } from 'json-schema-to-ts';

const srtUrl = { type: 'string', pattern: '^srt://', maxLength: 512, description: 'srt://host:port (caller mode)' } as const;

export const joinSpecSchema = {
  $id: 'join-spec',
  title: 'Join spec (the args of `join`, and the retained group meeting)',
  type: 'object',
  additionalProperties: false,
  required: ['meetingId', 'send', 'receive'],
  properties: {
    meetingId: { type: 'string', minLength: 1, maxLength: 128 },
    title: { type: 'string', maxLength: 512 },
    send: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: srtUrl,
        streamId: { type: 'string', maxLength: 512, description: '`{deviceId}` is replaced by each box with its own id (one group spec, one stream per box), e.g. publish:camlo/{deviceId}' },
        video: {
          type: 'object',
          additionalProperties: false,
          properties: {
            width: { type: 'integer', minimum: 160, maximum: 1920 },
            height: { type: 'integer', minimum: 90, maximum: 1080 },
            fps: { type: 'integer', minimum: 1, maximum: 60 },
            bitrateKbps: { type: 'integer', minimum: 64, maximum: 8000 },
          },
        },
        audio: {
          type: 'object',
          additionalProperties: false,
          properties: { bitrateKbps: { type: 'integer', minimum: 6, maximum: 128 } },
        },
        adapt: {
          type: 'object',
          additionalProperties: false,
          description: 'Link adaptation (v1 extension): the video follows the link down a ladder to audio-only and back. On unless enabled is false.',
          properties: {
            enabled: { type: 'boolean' },
            minVideoKbps: { type: 'integer', minimum: 50, maximum: 8000, description: 'Below this video bitrate the box sends audio only.' },
          },
        },
      },
    },
    receive: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: { url: srtUrl, streamId: { type: 'string', maxLength: 512 } },
    },
    srt: {
      type: 'object',
      additionalProperties: false,
      properties: {
        latencyMs: { type: 'integer', minimum: 20, maximum: 8000 },
        // libsrt accepts 10..79 characters; it never appears in a log, reply or health report.
        passphrase: { type: 'string', minLength: 10, maxLength: 79, writeOnly: true },
        pbkeylen: { enum: [16, 24, 32] },
      },
    },
    endsAt: { type: 'string', format: 'date-time', maxLength: 64 },
  },
} as const;

/** A join spec as validated at the edge (device/contract) and planned here. */
export type MediaJoinSpec = FromSchema<typeof joinSpecSchema>;
