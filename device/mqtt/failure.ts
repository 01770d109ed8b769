/**
 * Why a connection attempt to the broker failed, as one word a technician can grep for
 * (`reason`) and a sentence (`detail`). Used by the session to log every failed attempt:
 * a box that only says "reconnecting in N ms" cannot be fixed from its log.
 *
 * Nothing here sees the configuration: no URL (it may carry a user:password), no
 * password; only the error's code and the first 200 characters of its message.
 */

export type FailureReason =
  /** CONNACK with a refusal code (not an authentication one). */
  | 'refused'
  /** CONNACK: bad user name or password, or not authorized. */
  | 'auth'
  /** The broker closed the connection before its CONNACK (a 3.1.1-only broker on MQTT 5, a proxy with no backend). */
  | 'closed_before_connack'
  /** No CONNACK within the connect timeout. */
  | 'connack_timeout'
  | 'tls'
  | 'dns'
  | 'connection_refused'
  | 'network'
  /** The connection was up and was lost (with the server's DISCONNECT reason when MQTT 5 sent one). */
  | 'connection_lost'
  | 'error';

export interface Failure {
  reason: FailureReason;
  /** The CONNACK/DISCONNECT reason code or the system/TLS error code, when there is one. */
  code?: number | string;
  detail: string;
}

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
const CONNACK_311: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'client identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

/** MQTT 5 CONNACK/DISCONNECT reason codes from 0x80 (§3.2.2.2, §3.14.2.1). */
const REASON_5: Record<number, string> = {
  128: 'unspecified error',
  129: 'malformed packet',
  130: 'protocol error',
  131: 'implementation specific error',
  132: 'unsupported protocol version',
  133: 'client identifier not valid',
  134: 'bad user name or password',
  135: 'not authorized',
  136: 'server unavailable',
  137: 'server busy',
  138: 'banned',
  139: 'server shutting down',
  140: 'bad authentication method',
  141: 'keep alive timeout',
  142: 'session taken over',
  143: 'topic filter invalid',
  144: 'topic name invalid',
  147: 'receive maximum exceeded',
  148: 'topic alias invalid',
  149: 'packet too large',
  150: 'message rate too high',
  151: 'quota exceeded',
  152: 'administrative action',
  153: 'payload format invalid',
  154: 'retain not supported',
  155: 'QoS not supported',
  156: 'use another server',
  157: 'server moved',
  158: 'shared subscriptions not supported',
  159: 'connection rate exceeded',
  160: 'maximum connect time',
  161: 'subscription identifiers not supported',
  162: 'wildcard subscriptions not supported',
};

const AUTH_CODES = new Set([4, 5, 134, 135, 140]);
const DNS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME']);
const NETWORK = new Set(['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** The meaning of a CONNACK code for this protocol version. */
export function connackMeaning(code: number, version: 4 | 5): string {
  return (version === 5 ? REASON_5[code] : CONNACK_311[code]) ?? `code ${code}`;
}

/** The meaning of an MQTT 5 DISCONNECT reason code sent by the server. */
export function disconnectMeaning(code: number): string {
  return code === 0 ? 'normal disconnection' : (REASON_5[code] ?? `code ${code}`);
}

const isTlsCode = (code: string): boolean =>
  /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|INVALID_CA|INVALID_PURPOSE|UNABLE_TO_VERIFY)/.test(code) || code === 'EPROTO';

const short = (s: string): string => (s.length > 200 ? `${s.slice(0, 200)}…` : s);

/**
 * Classifies an 'error' event of MQTT.js during a connection attempt. `connackPending`:
 * no CONNACK yet on this attempt (a numeric code is then a CONNACK refusal).
 */
export function classifyError(err: Error & { code?: number | string }, version: 4 | 5, connackPending: boolean): Failure {
  const code = err.code;
  if (typeof code === 'number') {
    // Before a CONNACK, MQTT.js's only errors with a numeric code are CONNACK refusals.
    if (connackPending) {
      const meaning = connackMeaning(code, version);
      return { reason: AUTH_CODES.has(code) ? 'auth' : 'refused', code, detail: `the broker refused the connection: ${meaning} (CONNACK ${code})` };
    }
    return { reason: 'error', code, detail: short(err.message) };
  }
  if (typeof code === 'string') {
    if (DNS.has(code)) return { reason: 'dns', code, detail: `the broker's name does not resolve (${code})` };
    if (code === 'ECONNREFUSED') return { reason: 'connection_refused', code, detail: 'nothing listens on the broker port (ECONNREFUSED)' };
    if (isTlsCode(code)) return { reason: 'tls', code, detail: `TLS: ${short(err.message)}` };
    if (NETWORK.has(code)) return { reason: 'network', code, detail: short(err.message) };
    return { reason: 'error', code, detail: short(err.message) };
  }
  // Some TLS failures (an alert from the server about our certificate) come without a code.
  if (/ssl|tls|certificate/i.test(err.message)) return { reason: 'tls', detail: `TLS: ${short(err.message)}` };
  return { reason: 'error', detail: short(err.message) };
}
