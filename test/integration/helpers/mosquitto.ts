/**
 * A real Mosquitto 2 broker for the agent's integration tests, configured the way a
 * district hub would run it (CONTRACT.md § Identity):
 *
 * - TLS only, with a CA made for the test; every box has a client certificate whose
 *   CN is its deviceId (`require_certificate true`, `use_identity_as_username true`),
 *   and so has each operator (the `hub`);
 * - optionally a second TLS listener that authenticates by username/password
 *   (`password_file`, server certificate only), for boxes provisioned with a password;
 * - one ACL file for both listeners (see `aclText`): a box reads only its own commands
 *   and its group's commands and meeting, writes only its own status, state, health,
 *   event and reply topics; an operator reads and writes everything;
 * - `message_size_limit` above 64 KiB, so an oversized command reaches the box and the
 *   box's own limit is what rejects it;
 * - persistence in the temp dir, saved on every change (`autosave_on_changes`), so a
 *   broker killed with SIGKILL and restarted on the same port keeps its sessions,
 *   subscriptions, queued QoS 1 messages and retained messages.
 *
 * Started as root, Mosquitto 2 drops to the `mosquitto` user and then cannot read files
 * in a 0700 temp dir (docs/platform-facts.md): the config says `user root` when we are root.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../../gst-pipelines/hub/local-hub.js';
import { withTimeout } from './processes.js';

const run = promisify(execFile);

/** What a client needs for mutual TLS with this broker (paths). */
export interface ClientTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface MosquittoOptions {
  /** Boxes: deviceId → groupId. Each gets a client certificate and the box ACL. */
  devices: Record<string, string>;
  /** Operators with full access, each with a client certificate. Default ['hub']. */
  operators?: string[];
  /** Adds a username/password TLS listener (no client certificate) with these users. */
  passwords?: Record<string, string>;
  /** Default 256 KiB: above the box's own 64 KiB limit. */
  messageSizeLimit?: number;
  /** More global lines for mosquitto.conf (e.g. `max_queued_messages 10000`). */
  extraConfig?: string[];
}

export const PREFIX = 'ep/v1';

/**
 * The ACL, Mosquitto syntax. `pattern` lines apply to every user with %u replaced by
 * the user name (the certificate CN = the deviceId); `user` sections add topics for one
 * user. A box may publish to `…/reply/#` so that an MQTT 5 response topic under its own
 * reply topic works (a shared response topic would let a box forge another's replies).
 */
export function aclText(devices: Record<string, string>, operators: string[]): string {
  const lines = [
    '# every box: its own commands in, its own reports out',
    `pattern read ${PREFIX}/dev/%u/cmd/#`,
    `pattern write ${PREFIX}/dev/%u/status`,
    `pattern write ${PREFIX}/dev/%u/state`,
    `pattern write ${PREFIX}/dev/%u/health`,
    `pattern write ${PREFIX}/dev/%u/event`,
    `pattern write ${PREFIX}/dev/%u/reply/#`,
    '',
  ];
  for (const [deviceId, groupId] of Object.entries(devices)) {
    lines.push(`# ${deviceId}: its group's commands and meeting`, `user ${deviceId}`, `topic read ${PREFIX}/grp/${groupId}/cmd/#`, `topic read ${PREFIX}/grp/${groupId}/meeting`, `topic read ${PREFIX}/grp/${groupId}/next`, '');
  }
  for (const op of operators) lines.push(`# operator ${op}: everything`, `user ${op}`, 'topic readwrite #', '');
  return lines.join('\n');
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 30_000 });
  } catch (e) {
    throw new Error(`openssl ${args.join(' ')}: ${(e as Error & { stderr?: string }).stderr ?? (e as Error).message}`, { cause: e });
  }
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A CA, a server certificate for 127.0.0.1/localhost and one client certificate per name (CN = name). */
async function makePki(dir: string, clients: string[]): Promise<void> {
  await writeFile(path.join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  await writeFile(path.join(dir, 'server.ext'), 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await writeFile(path.join(dir, 'client.ext'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  await openssl(dir, ['req', ...EC, '-keyout', 'ca.key', '-out', 'ca.csr', '-subj', '/CN=ep-test-ca']);
  await openssl(dir, ['x509', '-req', '-in', 'ca.csr', '-signkey', 'ca.key', '-out', 'ca.crt', '-days', '2', '-extfile', 'ca.ext']);
  const sign = async (name: string, subject: string, ext: string): Promise<void> => {
    await openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    const serial = `0x${randomBytes(8).toString('hex')}`;
    await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial, '-out', `${name}.crt`, '-days', '2', '-extfile', ext]);
  };
  await Promise.all([sign('server', '/CN=localhost', 'server.ext'), ...clients.map((c) => sign(`client-${c}`, `/CN=${c}`, 'client.ext'))]);
}

export class Mosquitto {
  private proc: ChildProcess | null = null;
  private out = '';
  private exited: Promise<void> = Promise.resolve();
  /** How many times the broker process was started. */
  starts = 0;

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly passwordPort: number | null,
    readonly clients: string[],
  ) {}

  /** Generates the PKI, ACL and config in a temp dir and starts the broker. */
  static async start(o: MosquittoOptions): Promise<Mosquitto> {
    const dir = await mkdtemp(path.join(tmpdir(), 'ep-mosquitto-'));
    try {
      const operators = o.operators ?? ['hub'];
      const clients = [...Object.keys(o.devices), ...operators];
      await makePki(dir, clients);
      await writeFile(path.join(dir, 'acl'), aclText(o.devices, operators));
      const port = await freePort();
      let passwordPort: number | null = null;
      if (o.passwords) {
        passwordPort = await freePort();
        while (passwordPort === port) passwordPort = await freePort();
        const pw = path.join(dir, 'passwords');
        await writeFile(pw, '');
        for (const [user, pass] of Object.entries(o.passwords)) await run('mosquitto_passwd', ['-b', pw, user, pass], { timeout: 10_000 });
      }
      await writeFile(path.join(dir, 'mosquitto.conf'), configText(dir, port, passwordPort, o.messageSizeLimit ?? 256 * 1024, o.extraConfig ?? []));
      const m = new Mosquitto(dir, port, passwordPort, clients);
      await m.launch();
      return m;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** The certificate-authenticated listener. */
  get url(): string {
    return `mqtts://127.0.0.1:${this.port}`;
  }

  /** The password listener (only with `passwords`). */
  get passwordUrl(): string {
    if (this.passwordPort === null) throw new Error('this broker has no password listener');
    return `mqtts://127.0.0.1:${this.passwordPort}`;
  }

  get caFile(): string {
    return path.join(this.dir, 'ca.crt');
  }

  /** The CA, certificate and key of a box or operator (CN = name). */
  tls(name: string): ClientTls {
    if (!this.clients.includes(name)) throw new Error(`no client certificate for ${name}`);
    return { caFile: this.caFile, certFile: path.join(this.dir, `client-${name}.crt`), keyFile: path.join(this.dir, `client-${name}.key`) };
  }

  /** The PEM texts of every private key and certificate the test PKI holds (for secret scans). */
  async secretTexts(): Promise<string[]> {
    const names = ['ca', 'server', ...this.clients.map((c) => `client-${c}`)];
    const out: string[] = [];
    for (const n of names) {
      for (const ext of ['key', 'crt']) {
        const pem = await readFile(path.join(this.dir, `${n}.${ext}`), 'utf8').catch(() => '');
        // The base64 body, one line at a time: a line of it anywhere is a leak.
        for (const line of pem.split('\n')) if (line && !line.startsWith('-----')) out.push(line);
      }
    }
    return out;
  }

  /** The broker's pid while it runs (a test may SIGSTOP/SIGCONT it: a hung broker with its connections open). */
  get pid(): number | null {
    return this.running() ? (this.proc?.pid ?? null) : null;
  }

  running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The broker's log so far (stdout + stderr, all starts). */
  output(): string {
    return this.out;
  }

  /** Kills the broker process (SIGKILL: no clean shutdown, no last save). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    if (!p || !this.running()) return;
    p.kill(signal);
    await withTimeout(this.exited, 10_000, `mosquitto to exit after ${signal}`);
  }

  /** Starts the broker again on the same ports, with the same config and persistence file. */
  async restart(): Promise<void> {
    if (this.running()) throw new Error('mosquitto is still running');
    await this.launch();
  }

  /** Stops the broker and removes its temp dir. */
  async stop(): Promise<void> {
    await this.kill('SIGTERM').catch(() => this.kill('SIGKILL'));
    await rm(this.dir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    this.starts++;
    const mark = `--- start ${this.starts} ---\n`;
    this.out += mark;
    const p = spawn('mosquitto', ['-c', path.join(this.dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = p;
    const keep = (d: Buffer): void => {
      this.out += d.toString();
      if (this.out.length > 400_000) this.out = this.out.slice(-200_000);
    };
    p.stdout?.on('data', keep);
    p.stderr?.on('data', keep);
    this.exited = new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.once('error', (e) => {
        this.out += `spawn error: ${e.message}\n`;
        resolve();
      });
    });
    const deadline = Date.now() + 10_000;
    for (const port of [this.port, this.passwordPort]) {
      if (port === null) continue;
      for (;;) {
        if (!this.running()) throw new Error(`mosquitto exited at start: ${this.out.slice(this.out.lastIndexOf(mark))}`);
        if (await tcpOpen(port)) break;
        if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${this.out.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }
}

function configText(dir: string, port: number, passwordPort: number | null, messageSizeLimit: number, extra: string[]): string {
  const tls = [`cafile ${path.join(dir, 'ca.crt')}`, `certfile ${path.join(dir, 'server.crt')}`, `keyfile ${path.join(dir, 'server.key')}`];
  const lines = [
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    'per_listener_settings true',
    `message_size_limit ${messageSizeLimit}`,
    'persistence true',
    `persistence_location ${dir}/`,
    'persistence_file mosquitto.db',
    // Save after every change: a SIGKILLed broker comes back with what it had.
    'autosave_on_changes true',
    'autosave_interval 1',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'log_type subscribe',
    'log_timestamp_format %H:%M:%S',
    'connection_messages true',
    ...extra,
    '',
    `listener ${port} 127.0.0.1`,
    ...tls,
    'require_certificate true',
    'use_identity_as_username true',
    // The client id is the certificate's CN too: a box cannot take over another box's session.
    'use_username_as_clientid true',
    'allow_anonymous false',
    `acl_file ${path.join(dir, 'acl')}`,
  ];
  if (passwordPort !== null) {
    lines.push('', `listener ${passwordPort} 127.0.0.1`, ...tls, 'require_certificate false', 'use_username_as_clientid true', `password_file ${path.join(dir, 'passwords')}`, 'allow_anonymous false', `acl_file ${path.join(dir, 'acl')}`);
  }
  return `${lines.join('\n')}\n`;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
