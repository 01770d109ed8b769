/**
 * The agent's few named errors, each with a guard, and the ONE place they become
 * reply error codes (CONTRACT.md: bad_request, unknown_command, expired, busy, failed,
 * not_provisioned).
 */
import { isDecodeError } from './contract/index.js';
import { isPlanError } from '../gst-pipelines/index.js';
import type { ErrorCode } from './contract/index.js';

export class BusyError extends Error {
  constructor(
    message: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = 'BusyError';
  }
}
export const isBusyError = (e: unknown): e is BusyError => e instanceof BusyError;

export class ExpiredError extends Error {
  constructor(expiresAt: string) {
    super(`expired at ${expiresAt}; not run`);
    this.name = 'ExpiredError';
  }
}
export const isExpiredError = (e: unknown): e is ExpiredError => e instanceof ExpiredError;

export class UnknownCommandError extends Error {
  constructor(command: string) {
    super(`unknown command ${JSON.stringify(command)}`);
    this.name = 'UnknownCommandError';
  }
}
export const isUnknownCommandError = (e: unknown): e is UnknownCommandError => e instanceof UnknownCommandError;

export class NotProvisionedError extends Error {
  constructor(message = 'this box is not provisioned') {
    super(message);
    this.name = 'NotProvisionedError';
  }
}
export const isNotProvisionedError = (e: unknown): e is NotProvisionedError => e instanceof NotProvisionedError;

/** Tried and failed; the message says why. */
export class ActionFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ActionFailedError';
  }
}

/** An update refused or failed, with its own reason code (bad_signature, downgrade, expired…): `failed` + `reason`. */
export class OtaRefusedError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(`${reason}: ${message}`);
    this.name = 'OtaRefusedError';
  }
}

export interface ReplyError {
  code: ErrorCode;
  message: string;
  retryAfterS?: number;
  /** v1 extension: the machine-readable reason of a `failed` (an update's refusal code). */
  reason?: string;
}

export function toReplyError(e: unknown): ReplyError {
  if (isDecodeError(e)) return { code: 'bad_request', message: e.message };
  // The join spec is wrong (path under args) → bad_request; this box cannot do it → failed.
  if (isPlanError(e)) return e.kind === 'spec' ? { code: 'bad_request', message: `args.${e.message}` } : { code: 'failed', message: e.message };
  if (isUnknownCommandError(e)) return { code: 'unknown_command', message: e.message };
  if (isExpiredError(e)) return { code: 'expired', message: e.message };
  if (isBusyError(e)) return { code: 'busy', message: e.message, ...(e.retryAfterS !== undefined ? { retryAfterS: e.retryAfterS } : {}) };
  if (isNotProvisionedError(e)) return { code: 'not_provisioned', message: e.message };
  if (e instanceof OtaRefusedError) return { code: 'failed', message: e.message, reason: e.reason };
  return { code: 'failed', message: e instanceof Error ? e.message : String(e) };
}
