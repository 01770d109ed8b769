/**
 * TypeScript types of the contract, derived from the JSON Schemas (one source).
 */
import type { FromSchema } from 'json-schema-to-ts';
import type { commandArgsSchemas, eventSchema, healthSchema, nextMeetingSchema, replySchema, stateSchema, statusSchema } from './schemas.js';

export type { MediaJoinSpec as JoinSpec } from '../../gst-pipelines/index.js';
export type Reply = FromSchema<typeof replySchema>;
export type StatusMessage = FromSchema<typeof statusSchema>;
export type ReportedState = FromSchema<typeof stateSchema>;
export type HealthSample = FromSchema<typeof healthSchema>;
export type EventMessage = FromSchema<typeof eventSchema>;
export type NextMeeting = FromSchema<typeof nextMeetingSchema>;
export type ErrorCode = NonNullable<Reply['error']>['code'];

export type CommandArgs = {
  [K in keyof typeof commandArgsSchemas]: FromSchema<(typeof commandArgsSchemas)[K]>;
};
