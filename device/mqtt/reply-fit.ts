/**
 * Every reply fits in LIMITS.replyBytes of JSON (an MQTT packet a 1 GB box builds without
 * a second thought, and a hub can read). `logs` is the one reply that can legitimately be
 * larger: it keeps its newest lines that fit and says how many it left out
 * (`result.truncated`). Any other reply over the limit — a bug, not a request — becomes a
 * `failed` reply that says so, rather than a packet the broker refuses.
 */
import type { Reply } from '../contract/index.js';

/** Room left for the `truncated` note, the envelope's own growth and rounding. */
const SLACK = 256;

export function fitReply(reply: Reply, maxBytes: number): Reply {
  const size = Buffer.byteLength(JSON.stringify(reply));
  if (size <= maxBytes) return reply;
  const lines = (reply.result as { lines?: unknown } | undefined)?.lines;
  if (reply.ok && Array.isArray(lines) && lines.every((l) => typeof l === 'string')) {
    // Bytes each line adds to the JSON (its quoted form and a comma); keep the newest.
    const cost = (lines as string[]).map((l) => Buffer.byteLength(JSON.stringify(l)) + 1);
    const fixed = size - cost.reduce((a, b) => a + b, 0);
    let room = maxBytes - fixed - SLACK;
    let keep = 0;
    for (let i = cost.length - 1; i >= 0 && cost[i]! <= room; i--, keep++) room -= cost[i]!;
    const kept = (lines as string[]).slice(lines.length - keep);
    const omitted = lines.length - kept.length;
    return {
      ...reply,
      result: { ...reply.result, lines: kept, count: kept.length, truncated: { omittedLines: omitted, why: `the reply is limited to ${maxBytes} bytes: the oldest ${omitted} lines were left out` } },
    };
  }
  return {
    id: reply.id,
    deviceId: reply.deviceId,
    command: reply.command,
    ok: false,
    error: { code: 'failed', message: `the reply (${size} bytes) is over the ${maxBytes}-byte limit; not sent` },
  };
}
