/**
 * Where a box may publish a reply besides its own reply topic: the MQTT 5 response topic
 * a command carried. A publish to a topic name with a wildcard or an empty string gets
 * the box disconnected by the broker (a protocol error), and one into the contract's own
 * namespace would answer into a command or meeting topic — of this box (one command, two
 * replies, or a loop) or another's. So a response topic is checked before anything is
 * published to it; a command that carries a bad one is refused (`bad_request`) on the
 * reply topic alone. Allowed: a topic outside `ep/v1/`, or one under the box's own reply
 * topic (`ep/v1/dev/{deviceId}/reply/…`, what the broker ACL lets a box publish to).
 */
import { PREFIX } from './topics.js';

export interface ResponseTargetLimits {
  topicBytes: number;
  correlationDataBytes: number;
}

/** The problem with the response topic / correlation data, or null when they can be used. */
export function responseTargetProblem(topic: string | undefined, correlationData: Buffer | undefined, deviceId: string, limits: ResponseTargetLimits): string | null {
  if (correlationData !== undefined && correlationData.length > limits.correlationDataBytes) return `correlationData: ${correlationData.length} bytes is over the ${limits.correlationDataBytes}-byte limit`;
  if (topic === undefined) return null;
  const bytes = Buffer.byteLength(topic);
  if (bytes === 0) return 'responseTopic: is empty';
  if (bytes > limits.topicBytes) return `responseTopic: ${bytes} bytes is over the ${limits.topicBytes}-byte limit`;
  if (/[+#]/.test(topic)) return 'responseTopic: must not contain a wildcard (+ or #)';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(topic)) return 'responseTopic: must not contain control characters';
  if (topic.startsWith('$')) return 'responseTopic: must not start with $ (broker topics)';
  if (topic.split('/').some((level) => level === '')) return 'responseTopic: must not have an empty level (a leading, trailing or double /)';
  // Under the box's own reply topic is the one place in the namespace a box may answer
  // (the broker ACL in docs/agent.md grants exactly that: ep/v1/dev/{deviceId}/reply/#).
  if (topic.startsWith(`${PREFIX}/dev/${deviceId}/reply/`)) return null;
  if (topic === PREFIX || topic.startsWith(`${PREFIX}/`)) return `responseTopic: must be outside ${PREFIX}/ or under this box's ${PREFIX}/dev/${deviceId}/reply/ (not a command, meeting or other box's topic)`;
  return null;
}
