/**
 * The simulator's own Mosquitto (when no --broker is given): one listener on 127.0.0.1,
 * anonymous, persistence in its temp dir (a restart keeps retained messages, like a
 * production broker's), no connection cap, and its file-descriptor limit raised to the
 * hard limit (one fd per box: Debian's default soft limit of 1,024 stops it at ~1,000).
 * All the simulated boxes dial it from 127.0.0.1, so they share one source address:
 * ~28,000 ephemeral ports (net.ipv4.ip_local_port_range 32768–60999), well above 5,000.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const tcpOpen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });

export class SimBroker {
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  /** The end of what it printed (errors and warnings), for a failure message. */
  private tail = '';

  private constructor(
    private readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<SimBroker> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-fleet-sim-broker-'));
    const b = new SimBroker(dir, await freePort());
    const conf = [
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      'persistence true',
      `persistence_location ${dir}/`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      // The hub's one client subscribed to every box's replies receives a whole group's
      // answers at once: at Mosquitto's default (1,000 queued per client) a join to 5,000
      // boxes lost 3,968 of its replies (measured). A production broker needs the same.
      'max_queued_messages 100000',
      '',
      `listener ${b.port} 127.0.0.1`,
      'allow_anonymous true',
      'max_connections -1',
      '',
    ].join('\n');
    await writeFile(path.join(dir, 'mosquitto.conf'), conf);
    await b.launch();
    return b;
  }

  private async launch(): Promise<void> {
    // `ulimit -n` up to the hard limit, then mosquitto in the same process (exec).
    const p = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec mosquitto -c "$1"', 'sh', path.join(this.dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = p;
    // Not left running when this process exits (the CLI exits on SIGINT/SIGTERM through process.exit).
    const orphan = (): void => void p.kill('SIGKILL');
    process.once('exit', orphan);
    p.once('exit', () => process.off('exit', orphan));
    p.stderr?.on('data', (d: Buffer) => (this.tail = (this.tail + d.toString()).slice(-4000)));
    this.exited = new Promise((resolve) => {
      p.once('exit', () => resolve());
      p.once('error', (e) => {
        this.tail += `\n${e.message}`;
        resolve();
      });
    });
    const deadline = Date.now() + 10_000;
    while (!(await tcpOpen(this.port))) {
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`mosquitto exited at start: ${this.tail.trim() || '(nothing printed; is mosquitto installed?)'}`);
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${this.port} within 10 s: ${this.tail.trim()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private async kill(signal: NodeJS.Signals): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill(signal);
    await this.exited;
  }

  /** Stops the broker (SIGTERM, as systemd would) and starts it again on the same port: every client loses its connection at once. */
  async restart(): Promise<void> {
    await this.kill('SIGTERM');
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
    await rm(this.dir, { recursive: true, force: true });
  }
}
