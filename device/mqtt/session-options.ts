/**
 * What an MqttSession (session.ts) is given and emits, and its bounds.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Clock, Logger } from '../../lib/index.js';
import type { FailureReason } from './failure.js';

export interface MqttSessionOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  keepaliveS: number;
  reconnectBaseMs: number;
  reconnectCapMs: number;
  /** Rebuild the client when disconnected this long without progress. */
  watchdogMs?: number;
  /** Rebuild a client whose subscribe + online status after a CONNACK are not acknowledged within this (default 20 000). */
  afterConnectMs?: number;
  /**
   * 5 or 4 (3.1.1): that version only. Absent: MQTT 5, falling back to 3.1.1 for the
   * process's life when the broker refuses 5 or twice closes a v5 CONNECT before its CONNACK.
   */
  protocolVersion?: 4 | 5;
  /** How long stop() lets the client end cleanly before destroying its socket (default 2000). */
  stopGraceMs?: number;
  will: { topic: string; payload: () => string };
  /** Published retained on every connect. */
  onlineStatus: { topic: string; payload: () => string };
  subscriptions: string[];
  /** Contract extensions (the next meeting): a SUBSCRIBE of their own; one refused is said once and not asked again. */
  optionalSubscriptions?: string[];
  clock?: Clock;
  logger?: Logger;
  random?: () => number;
  /** Test hook: a factory for the client (default: mqtt.connect). */
  connect?: (url: string, opts: IClientOptions) => MqttClient;
}

export interface IncomingMessage {
  topic: string;
  payload: Buffer;
  responseTopic?: string;
  correlationData?: Buffer;
  retain: boolean;
}

export interface MqttSessionEvents {
  connected: [{ sessionPresent: boolean; protocolVersion: 4 | 5 }];
  offline: [{ reason: FailureReason }];
  rebuilt: [];
}

export type MessageHandler = (m: IncomingMessage) => Promise<void>;

export const SESSION_EXPIRY_S = 7 * 24 * 3600;
export const PUBLISH_TIMEOUT_MS = 30_000;
export const CONNECT_TIMEOUT_MS = 15_000;
export const AFTER_CONNECT_MS = 20_000;
export const OFFLINE_PUBLISH_MS = 1000;
export const STOP_GRACE_MS = 2000;
/** A single close before CONNACK is common (a broker restarting, a drop mid-handshake); a 3.1.1-only broker closes every v5 attempt. */
export const CLOSES_BEFORE_FALLBACK = 2;
