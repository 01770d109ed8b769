/**
 * The hub side's operator tool (`ep fleet`): the fleet's roster from the retained status
 * and state, the group meeting, and staged OTA rollouts, over the same MQTT contract as
 * the boxes. docs/fleet-operator.md.
 */
export { FleetConnectError, FleetUsageError, checkBrokerUrl, connectFleet, describeConnectError, isFleetConnectError, isFleetUsageError } from './client.js';
export type { ConnectOptions, FleetBus, MessageHandler } from './client.js';
export { inMeeting, meetingReport, outOfMeeting, runJoin, runLeave } from './commands.js';
export type { MeetingBoxResult, MeetingOptions, MeetingReport } from './commands.js';
export { checkManifestUrl, fetchTargetManifest } from './manifest.js';
export type { TargetManifest } from './manifest.js';
export { DEFAULT_WAIT_MS, QUIET_MS, openFleet } from './open.js';
export type { OpenOptions } from './open.js';
export { FIELD_CHARS, ROSTER_MAX_BOXES, Roster, cleanText, countBoxes, parseDeviceTopic } from './roster.js';
export type { BoxView, FleetCounts, FoldResult, OtaView } from './roster.js';
export { FAILED_PHASES, boxOutcome, cumulativeCount, decideWave, failureWhy, otaKey, parseWaves, planWaves, refusalWhy, startAction, timeoutWhy } from './rollout.js';
export type { BoxOutcome, PlannedWave, WaveDecision } from './rollout.js';
export { runRollout } from './rollout-run.js';
export type { RolloutEvent, RolloutOptions, RolloutReport, WaveReport } from './rollout-run.js';
export { FleetSession, TRACKED_IDS_MAX, envelope, newCommandId } from './session.js';
export type { ReplyView, SessionCounts } from './session.js';
export { boxJson, listJson, listText, meetingText, rolloutEventText, rolloutJson, rolloutSummaryText, table } from './format.js';
export type { ListIgnored } from './format.js';
