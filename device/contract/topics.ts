/**
 * MQTT topic names of contract v1. The only place a topic string is built or parsed.
 */
import { COMMAND_NAMES, type CommandName } from './schemas.js';

export const PREFIX = 'ep/v1';

export const topics = {
  status: (deviceId: string): string => `${PREFIX}/dev/${deviceId}/status`,
  state: (deviceId: string): string => `${PREFIX}/dev/${deviceId}/state`,
  health: (deviceId: string): string => `${PREFIX}/dev/${deviceId}/health`,
  event: (deviceId: string): string => `${PREFIX}/dev/${deviceId}/event`,
  reply: (deviceId: string): string => `${PREFIX}/dev/${deviceId}/reply`,
  deviceCommand: (deviceId: string, command: string): string => `${PREFIX}/dev/${deviceId}/cmd/${command}`,
  groupCommand: (groupId: string, command: string): string => `${PREFIX}/grp/${groupId}/cmd/${command}`,
  meeting: (groupId: string): string => `${PREFIX}/grp/${groupId}/meeting`,
  /** The next meeting the hub announces (a v1 extension: schemas.ts nextMeetingSchema). */
  next: (groupId: string): string => `${PREFIX}/grp/${groupId}/next`,
  /** What a box subscribes to. */
  subscriptions: (deviceId: string, groupId: string): string[] => [
    `${PREFIX}/dev/${deviceId}/cmd/+`,
    `${PREFIX}/grp/${groupId}/cmd/+`,
    `${PREFIX}/grp/${groupId}/meeting`,
  ],
  /** The contract extensions a box listens to when the hub's ACL allows (a SUBSCRIBE of their own). */
  optionalSubscriptions: (groupId: string): string[] => [`${PREFIX}/grp/${groupId}/next`],
};

export type Incoming =
  | { kind: 'command'; scope: 'device' | 'group'; command: string; known: boolean }
  | { kind: 'meeting' }
  | { kind: 'next' }
  | { kind: 'other' };

export function isCommandName(s: string): s is CommandName {
  return (COMMAND_NAMES as string[]).includes(s);
}

/** Classifies an incoming topic for this box. */
export function parseIncoming(topic: string, deviceId: string, groupId: string): Incoming {
  const dev = `${PREFIX}/dev/${deviceId}/cmd/`;
  const grp = `${PREFIX}/grp/${groupId}/cmd/`;
  for (const [prefix, scope] of [[dev, 'device'], [grp, 'group']] as const) {
    if (topic.startsWith(prefix)) {
      const command = topic.slice(prefix.length);
      // The empty name too (…/cmd/ matches cmd/+): an unknown command, answered like any other.
      if (!command.includes('/')) return { kind: 'command', scope, command, known: isCommandName(command) };
    }
  }
  if (topic === topics.meeting(groupId)) return { kind: 'meeting' };
  if (topic === topics.next(groupId)) return { kind: 'next' };
  return { kind: 'other' };
}
