/**
 * Every bound on what remote input can make the agent keep, in one place. A box has
 * 1–4 GB, runs for months, and nobody restarts it: each map, queue, buffer and log that a
 * hub (or anyone on the broker) can grow is capped here, and test/integration/flood.test.ts
 * floods each one with new keys and checks the agent's memory stays flat.
 *
 * docs/agent.md "Limits" explains each one and what a message past it gets.
 */
import { LOG_FIELD_CHARS, LOG_LINE_CHARS, LOG_RING_LINES, PROBLEM_CHARS, PROBLEM_LINES } from '../lib/index.js';

const KiB = 1024;

export const LIMITS = {
  /** A command or retained meeting payload; a bigger one is answered `bad_request` unread. */
  payloadBytes: 64 * KiB,
  /** A reply's JSON; `logs` trims its oldest lines to fit and says so, anything else is `failed`. */
  replyBytes: 64 * KiB,
  /** Validation problems listed in one reply or log line, the rest counted (lib/json-schema.ts); one problem line (a path can be as long as a 64 KiB payload's key). */
  problems: PROBLEM_LINES,
  problemChars: PROBLEM_CHARS,
  /** A string field of a log line (lib/log.ts cuts longer ones), and a line kept for `logs` (lib/log-ring.ts). */
  logFieldChars: LOG_FIELD_CHARS,
  logLineChars: LOG_LINE_CHARS,
  /** Lines kept for `logs` (≤ logLines × logLineChars in memory). */
  logLines: LOG_RING_LINES,
  /** Command ids remembered for duplicate detection (running ones are never forgotten). */
  ledgerIds: 1000,
  /** Reply bodies kept for duplicates, all together (memory; the journal holds the small ones). */
  ledgerBodyBytes: 512 * KiB,
  /** A reply body up to this size is kept on disk too; a larger one only in memory, for ledgerBigReplyMs. */
  ledgerDiskReplyBytes: 4 * KiB,
  ledgerBigReplyMs: 60_000,
  /** The ledger's journal is rewritten when it holds this many more lines than ids… */
  ledgerJournalSlackLines: 2000,
  /**
   * Commands running at once (each holds its decoded args, ≤ payloadBytes); more are
   * answered `busy` with retryAfterS. Above a hub's normal burst window (the bench keeps 100
   * unanswered), so only a flood meets it.
   */
  runningCommands: 128,
  /** Replies kept while offline, sent on reconnect (oldest dropped past it: the ledger still answers a redelivery). */
  unsentReplies: 200,
  /** MQTT 5 response topic (bytes) and correlation data (bytes) a command may carry. */
  responseTopicBytes: 256,
  correlationDataBytes: 256,
  /** Actions deferred until the box is idle (`reboot {"when": "idle"}`): one per kind. */
  idleActions: 4,
  /** The command name echoed in a reply or log line (an unknown name can be 64 KiB). */
  commandNameChars: 64,
} as const;
