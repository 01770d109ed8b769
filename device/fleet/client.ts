/**
 * The operator's MQTT client (the `mqtt` package, MQTT 5, clean session, QoS 1) behind a
 * small interface, `FleetBus`, so the rest of device/fleet/ is tested with a fake bus.
 *
 * Secrets: the password comes from the caller (the CLI reads EP_FLEET_PASSWORD), never
 * from the URL; no error message carries it or the URL's user part.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export type MessageHandler = (topic: string, payload: Buffer, retain: boolean) => void;

/** What the fleet logic needs of a broker connection. */
export interface FleetBus {
  subscribe(filters: string[]): Promise<void>;
  /** QoS 1; resolves at the broker's PUBACK. */
  publish(topic: string, payload: string, retain: boolean): Promise<void>;
  onMessage(h: MessageHandler): void;
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** mqtt:// or mqtts:// (ws and others are refused). */
  url: string;
  username?: string;
  password?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  connectTimeoutMs?: number;
  /** Test hook. */
  connect?: (url: string, o: IClientOptions) => MqttClient;
}

/** The broker could not be reached or refused us (the CLI's exit 3). */
export class FleetConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FleetConnectError';
  }
}

export function isFleetConnectError(e: unknown): e is FleetConnectError {
  return e instanceof FleetConnectError;
}

/** Bad options before any connection (the CLI's exit 2). */
export class FleetUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FleetUsageError';
  }
}

export function isFleetUsageError(e: unknown): e is FleetUsageError {
  return e instanceof FleetUsageError;
}

/** Checks a broker URL: mqtt:// or mqtts://, a host, no credentials in it. */
export function checkBrokerUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FleetUsageError('--broker: not a URL (mqtt://host:1883 or mqtts://host:8883)');
  }
  if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') throw new FleetUsageError(`--broker: ${u.protocol}// is not supported (mqtt:// or mqtts://)`);
  if (!u.hostname) throw new FleetUsageError('--broker: no host');
  if (u.username || u.password) throw new FleetUsageError('--broker: no user or password in the URL; use --username and EP_FLEET_PASSWORD');
  return u;
}

/** CONNACK reason codes (3.1.1 and 5) worth a word. */
const REFUSALS: Record<number, string> = {
  4: 'bad user name or password',
  5: 'not authorized',
  134: 'bad user name or password',
  135: 'not authorized',
  136: 'server unavailable',
  137: 'server busy',
  138: 'banned',
};

/** One line about a connection error, with no secret in it. */
export function describeConnectError(e: Error & { code?: unknown }, secrets: readonly string[]): string {
  const code = e.code;
  const words = typeof code === 'number' ? REFUSALS[code] : undefined;
  let msg = words ? `refused by the broker: ${words} (${code})` : `${typeof code === 'string' && !e.message.includes(code) ? `${code}: ` : ''}${e.message}`;
  for (const s of secrets) if (s) msg = msg.split(s).join('***');
  return msg.slice(0, 300);
}

async function readTls(o: ConnectOptions): Promise<Partial<Record<'ca' | 'cert' | 'key', Buffer>>> {
  const read = async (what: string, f?: string): Promise<Buffer | undefined> => {
    if (f === undefined) return undefined;
    try {
      return await readFile(f);
    } catch (e) {
      throw new FleetUsageError(`--${what} ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const [ca, cert, key] = await Promise.all([read('ca', o.caFile), read('cert', o.certFile), read('key', o.keyFile)]);
  if ((cert === undefined) !== (key === undefined)) throw new FleetUsageError('--cert and --key go together');
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

/** Connects (one attempt, no reconnect); FleetConnectError when it cannot. */
export async function connectFleet(o: ConnectOptions): Promise<FleetBus> {
  checkBrokerUrl(o.url);
  const tls = await readTls(o);
  const opts: IClientOptions = {
    clientId: `ep-fleet-${randomBytes(6).toString('hex')}`,
    protocolVersion: 5,
    clean: true,
    keepalive: 30,
    reconnectPeriod: 0,
    connectTimeout: o.connectTimeoutMs ?? 10_000,
    rejectUnauthorized: true,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...tls,
  };
  const secrets = [o.password ?? ''];
  const connect = o.connect ?? ((url: string, co: IClientOptions) => mqtt.connect(url, co));
  const c = connect(o.url, opts);
  await new Promise<void>((resolve, reject) => {
    const fail = (e: Error): void => {
      cleanup();
      c.end(true);
      reject(new FleetConnectError(`cannot connect to ${o.url}: ${describeConnectError(e, secrets)}`));
    };
    const onConnect = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => fail(new Error('the connection closed before the broker answered'));
    const timer = setTimeout(() => fail(new Error(`no answer within ${opts.connectTimeout} ms`)), (opts.connectTimeout ?? 10_000) + 1000);
    const cleanup = (): void => {
      clearTimeout(timer);
      c.off('connect', onConnect);
      c.off('error', fail);
      c.off('close', onClose);
    };
    c.on('connect', onConnect);
    c.on('error', fail);
    c.on('close', onClose);
  });
  return new MqttFleetBus(c, o.url, secrets);
}

class MqttFleetBus implements FleetBus {
  private lost: string | null = null;

  constructor(
    private readonly c: MqttClient,
    private readonly url: string,
    private readonly secrets: string[],
  ) {
    c.on('error', (e) => {
      this.lost = describeConnectError(e, secrets);
    });
    c.on('close', () => {
      this.lost ??= 'the connection closed';
    });
  }

  private check(): void {
    if (this.lost !== null || !this.c.connected) throw new FleetConnectError(`lost the connection to ${this.url}: ${this.lost ?? 'not connected'}`);
  }

  async subscribe(filters: string[]): Promise<void> {
    this.check();
    const granted = await this.c.subscribeAsync(filters, { qos: 1 });
    const refused = granted.filter((g) => g.qos >= 128).map((g) => g.topic);
    if (refused.length) throw new FleetConnectError(`the broker refused the subscription to ${refused.join(', ')} (not authorized?)`);
  }

  async publish(topic: string, payload: string, retain: boolean): Promise<void> {
    this.check();
    try {
      await this.c.publishAsync(topic, payload, { qos: 1, retain });
    } catch (e) {
      throw new FleetConnectError(`publishing to ${topic} failed: ${describeConnectError(e as Error, this.secrets)}`);
    }
  }

  onMessage(h: MessageHandler): void {
    this.c.on('message', (topic, payload, packet) => h(topic, payload, packet.retain === true));
  }

  async close(): Promise<void> {
    this.c.removeAllListeners('message');
    await this.c.endAsync().catch(() => undefined);
  }
}
