/**
 * A private RabbitMQ node with its MQTT plugin, for the agent's broker tests: the
 * clusterable broker a province may already run (Debian 12's `rabbitmq-server` 3.10,
 * whose MQTT plugin speaks 3.1.1 only and closes an MQTT 5 CONNECT without a CONNACK).
 *
 * Everything in a temp dir, nothing shared with a system RabbitMQ:
 * - its own node name (`ep-<random>@127.0.0.1`, a long name: no host name lookup), Mnesia and log dirs, HOME (the Erlang
 *   cookie), rabbitmq.conf, enabled-plugins file (rabbitmq_mqtt only: no management
 *   plugin) and env file (none: /etc/rabbitmq/rabbitmq-env.conf is not read);
 * - its own ports on 127.0.0.1: MQTT, AMQP, Erlang distribution, and its own epmd
 *   (`ERL_EPMD_PORT`), which we start in the foreground as our child so that stop()
 *   can end it by its pid — an epmd started by `erl` daemonizes and would be left behind;
 * - users loaded at boot from a definitions file (SHA-256 password hashes), so no
 *   `rabbitmqctl` call (an Erlang VM start each) is needed.
 *
 * The node runs in its own process group; stop() sends SIGTERM to the group (the
 * rabbitmq-server script turns it into a clean node stop), then SIGKILL after a bound,
 * then ends epmd, and checks that no process of the node is left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../../gst-pipelines/hub/local-hub.js';
import { pollUntil, withTimeout } from './processes.js';

const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';
const EPMD = '/usr/bin/epmd';
/** Cold start on this 2-core machine takes ~9 s; generous. */
const START_GUARD_MS = 90_000;

export interface RabbitMqOptions {
  /** user → password; every user gets full permissions on the default vhost. */
  users: Record<string, string>;
}

/** RabbitMQ's rabbit_password_hashing_sha256: base64(salt ‖ SHA-256(salt ‖ password)), 4-byte salt. */
function passwordHash(password: string): string {
  const salt = randomBytes(4);
  return Buffer.concat([salt, createHash('sha256').update(Buffer.concat([salt, Buffer.from(password, 'utf8')])).digest()]).toString('base64');
}

async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export class RabbitMq {
  private node: ChildProcess | null = null;
  private epmd: ChildProcess | null = null;
  private out = '';
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly nodeName: string,
    readonly mqttPort: number,
    private readonly amqpPort: number,
    private readonly distPort: number,
    private readonly epmdPort: number,
  ) {}

  static async start(o: RabbitMqOptions): Promise<RabbitMq> {
    const dir = await mkdtemp(path.join(tmpdir(), 'ep-rabbitmq-'));
    const [mqttPort, amqpPort, distPort, epmdPort] = await distinctPorts(4);
    const r = new RabbitMq(dir, `ep-${randomBytes(4).toString('hex')}@127.0.0.1`, mqttPort!, amqpPort!, distPort!, epmdPort!);
    try {
      await r.writeFiles(o);
      await r.launch();
      return r;
    } catch (e) {
      await r.stop().catch(() => undefined);
      throw e;
    }
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.mqttPort}`;
  }

  /** The node's console log so far. */
  output(): string {
    return this.out;
  }

  running(): boolean {
    return this.node !== null && this.node.exitCode === null && this.node.signalCode === null;
  }

  /** Stops the node and its epmd, checks nothing of it is left, removes the temp dir. */
  async stop(): Promise<void> {
    const node = this.node;
    if (node?.pid && this.running()) {
      process.kill(-node.pid, 'SIGTERM');
      try {
        await withTimeout(this.exited, 30_000, 'rabbitmq to stop after SIGTERM');
      } catch {
        process.kill(-node.pid, 'SIGKILL');
        await withTimeout(this.exited, 10_000, 'rabbitmq to die after SIGKILL');
      }
    }
    // The VM's helpers (erl_child_setup, inet_gethost) leave their group; they end with the VM.
    await pollUntil(async () => (await this.leftovers()).length === 0, 15_000, `the processes of ${this.nodeName} to end`).catch(async () => {
      for (const pid of await this.leftovers()) process.kill(pid, 'SIGKILL');
    });
    const epmd = this.epmd;
    if (epmd && epmd.exitCode === null && epmd.signalCode === null) {
      const gone = new Promise((r) => epmd.once('exit', r));
      epmd.kill('SIGKILL');
      await withTimeout(gone, 10_000, 'epmd to exit');
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Processes whose command line names this node (the VM) — none must outlive stop(). */
  async leftovers(): Promise<number[]> {
    const pids: number[] = [];
    for (const e of await readdir('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
      if (cmd.includes(this.nodeName) || cmd.includes(this.dir)) pids.push(Number(e));
    }
    return pids;
  }

  private async writeFiles(o: RabbitMqOptions): Promise<void> {
    const d = this.dir;
    const definitions = {
      vhosts: [{ name: '/' }],
      users: Object.entries(o.users).map(([name, pw]) => ({ name, password_hash: passwordHash(pw), hashing_algorithm: 'rabbit_password_hashing_sha256', tags: [] as string[] })),
      permissions: Object.keys(o.users).map((user) => ({ user, vhost: '/', configure: '.*', write: '.*', read: '.*' })),
    };
    await writeFile(path.join(d, 'definitions.json'), JSON.stringify(definitions), { mode: 0o600 });
    const conf = [
      `listeners.tcp.default = 127.0.0.1:${this.amqpPort}`,
      `mqtt.listeners.tcp.default = 127.0.0.1:${this.mqttPort}`,
      'mqtt.allow_anonymous = false',
      'mqtt.vhost = /',
      'mqtt.exchange = amq.topic',
      `load_definitions = ${path.join(d, 'definitions.json')}`,
      'log.console = true',
      'log.console.level = info',
      'log.file = false',
      // A shared test machine: never block publishers for memory or disk alarms.
      'vm_memory_high_watermark.relative = 0.95',
      'disk_free_limit.absolute = 1MB',
    ];
    await writeFile(path.join(d, 'rabbitmq.conf'), `${conf.join('\n')}\n`);
    await writeFile(path.join(d, 'enabled_plugins'), '[rabbitmq_mqtt].\n');
  }

  private env(): NodeJS.ProcessEnv {
    const d = this.dir;
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: 'C.UTF-8',
      HOME: d,
      RABBITMQ_CONF_ENV_FILE: path.join(d, 'rabbitmq-env.conf'),
      RABBITMQ_CONFIG_FILE: path.join(d, 'rabbitmq.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: path.join(d, 'advanced.config'),
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(d, 'enabled_plugins'),
      RABBITMQ_MNESIA_BASE: path.join(d, 'mnesia'),
      RABBITMQ_LOG_BASE: path.join(d, 'log'),
      RABBITMQ_PID_FILE: path.join(d, 'rabbitmq.pid'),
      RABBITMQ_NODENAME: this.nodeName,
      // A long name on 127.0.0.1: the node never looks up a host name (a fresh debootstrap root has no /etc/hosts, and 'localhost' is then NXDOMAIN).
      RABBITMQ_USE_LONGNAME: 'true',
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(this.amqpPort),
      RABBITMQ_DIST_PORT: String(this.distPort),
      ERL_EPMD_PORT: String(this.epmdPort),
      // No busy-waiting schedulers: this machine is shared with media tests.
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '+sbwt none +sbwtdcpu none +sbwtdio none',
    };
  }

  private async launch(): Promise<void> {
    const keep = (d: Buffer): void => {
      this.out += d.toString();
      if (this.out.length > 400_000) this.out = this.out.slice(-200_000);
    };
    const epmd = spawn(EPMD, ['-port', String(this.epmdPort), '-address', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env() });
    this.epmd = epmd;
    epmd.stderr?.on('data', keep);
    const node = spawn(SERVER, [], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env(), detached: true });
    this.node = node;
    node.stdout?.on('data', keep);
    node.stderr?.on('data', keep);
    this.exited = new Promise<void>((resolve) => {
      node.once('exit', () => resolve());
      node.once('error', (e) => {
        this.out += `spawn error: ${e.message}\n`;
        resolve();
      });
    });
    await pollUntil(() => this.out.includes('Server startup complete'), START_GUARD_MS, `rabbitmq ${this.nodeName} to start`, () => (this.running() ? null : `it exited: ${this.out.slice(-3000)}`));
    if (!this.out.includes(`started MQTT TCP listener on 127.0.0.1:${this.mqttPort}`)) throw new Error(`rabbitmq started without its MQTT listener: ${this.out.slice(-3000)}`);
  }
}
