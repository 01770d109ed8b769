/**
 * systemd's notify protocol and watchdog with the real `ep run` (issue 15): the test binds
 * a Unix datagram socket as systemd would (unix-dgram, in a temp dir) and starts the built
 * CLI with NOTIFY_SOCKET, WATCHDOG_USEC=2 s (a ping every 1 s) and the fault seam
 * (EP_TEST_FAULTS=1: SIGUSR2 reads EP_TEST_FAULT_FILE). READY=1 comes once started,
 * WATCHDOG=1 every second; a blocked event loop sends none and, having been later than a
 * ping period, withholds them for good (`watchdog.withheld`, part event_loop); a wedged
 * MQTT session loop stops them for good (part mqtt) while the agent still answers commands;
 * SIGTERM sends STOPPING=1. A watchdog that cannot be fed (no NOTIFY_SOCKET, an abstract
 * name unix-dgram cannot reach) stops the agent at once with exit 69 and the reason.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS, EX_NOTIFY } from '../../device/cli/run.js';
import { HubClient } from './helpers/hub-client.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Processes, pollUntil, withTimeout, type Proc } from './helpers/processes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');
const GROUP = 'grp-wd';
const BOXES = { block: 'box-wd-block', wedge: 'box-wd-wedge', env: 'box-wd-env' } as const;
/** Hang guards only. */
const START_GUARD_MS = 30_000;
const EXIT_GUARD_MS = 20_000;

interface Datagram {
  at: number;
  text: string;
}

/** A bound notify socket, as systemd's: every datagram with its arrival time. */
class NotifySocket {
  private constructor(
    readonly path: string,
    readonly got: Datagram[],
    private readonly sock: { close(): void },
  ) {}

  static bind(file: string): NotifySocket {
    const unix = createRequire(import.meta.url)('unix-dgram') as { createSocket(t: 'unix_dgram', cb: (b: Buffer) => void): { bind(p: string): void; on(e: 'error', f: (e: Error) => void): void; close(): void } };
    const got: Datagram[] = [];
    const s = unix.createSocket('unix_dgram', (b) => got.push({ at: Date.now(), text: b.toString() }));
    let bindError: Error | null = null;
    s.on('error', (e) => (bindError = e));
    s.bind(file); // synchronous: 'error' or 'listening' fires before it returns
    if (bindError) throw bindError;
    return new NotifySocket(file, got, s);
  }

  pings(after = 0): number[] {
    return this.got.filter((d) => d.at > after && d.text.split('\n').includes('WATCHDOG=1')).map((d) => d.at);
  }

  async waitFor(line: string, ms: number, count = 1): Promise<number> {
    await pollUntil(() => this.got.filter((d) => d.text.split('\n').includes(line)).length >= count, ms, `${count}× ${line}`);
    return this.got.filter((d) => d.text.split('\n').includes(line))[count - 1]!.at;
  }

  close(): void {
    this.sock.close();
  }
}

const procs = new Processes();
let broker: Mosquitto;
let hub: HubClient;
let dir: string;
const sockets: NotifySocket[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-wd-'));
  broker = await Mosquitto.start({ devices: Object.fromEntries(Object.values(BOXES).map((b) => [b, GROUP])) });
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  for (const s of sockets) s.close();
  await hub?.close();
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

/** The agent's JSON log records with this evt. */
const records = (p: Proc, evt: string): Array<Record<string, unknown>> =>
  p
    .output()
    .split('\n')
    .filter((l) => l.includes(`"evt":"${evt}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const logged = async (p: Proc, evt: string, ms: number): Promise<Record<string, unknown>> => {
  await pollUntil(() => records(p, evt).length > 0, ms, `${p.name} to log ${evt}`, () => (p.running() ? null : `${p.name} exited`));
  return records(p, evt)[0]!;
};
const timeOf = (r: Record<string, unknown>): number => Date.parse(r.time as string);

async function config(box: string): Promise<string> {
  const dataDir = await mkdtemp(path.join(dir, `data-${box}-`));
  const cfg = path.join(dir, `${box}.json`);
  await writeFile(cfg, JSON.stringify({ deviceId: box, groupId: GROUP, name: 'Xã Thử', mqtt: { url: broker.url, ...broker.tls(box), keepaliveS: 10, reconnectBaseMs: 300, reconnectCapMs: 2000 }, dataDir, media: { source: 'test', aec: false }, health: { periodS: 3600 }, log: { level: 'info' } }));
  return cfg;
}

/** `ep run` under a notify socket with a 2 s watchdog; resolves once READY=1 and two pings arrived. */
async function startAgent(box: string): Promise<{ p: Proc; sock: NotifySocket; faultFile: string }> {
  const sock = NotifySocket.bind(path.join(dir, `${box}.notify`));
  sockets.push(sock);
  const faultFile = path.join(dir, `${box}.fault`);
  const env = { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '2000000', EP_TEST_FAULTS: '1', EP_TEST_FAULT_FILE: faultFile };
  const p = procs.spawn(`ep run ${box}`, process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', await config(box)], { env });
  await sock.waitFor('READY=1', START_GUARD_MS);
  await sock.waitFor('WATCHDOG=1', 10_000, 2);
  return { p, sock, faultFile };
}

async function fault(p: Proc, faultFile: string, what: string): Promise<void> {
  await writeFile(faultFile, `${what}\n`);
  p.child.kill('SIGUSR2');
}

async function sigterm(p: Proc, sock: NotifySocket): Promise<void> {
  p.child.kill('SIGTERM');
  await sock.waitFor('STOPPING=1', EXIT_GUARD_MS);
  expect(await withTimeout(p.exited, EXIT_GUARD_MS, `${p.name} to exit after SIGTERM`)).toEqual({ code: 0, signal: null });
}

const dumpOnFailure = async (p: () => Proc | null, fn: () => Promise<void>): Promise<void> => {
  try {
    await fn();
  } catch (e) {
    console.error(`--- ${p()?.name} output (last 6000 chars) ---\n${p()?.output().slice(-6000)}`);
    throw e;
  }
};

describe.concurrent('ep run under systemd notify (WATCHDOG_USEC=2 s)', () => {
  it('READY=1, pings every second; an event loop blocked 5 s sends none from the block on and withholds for good (event_loop); SIGTERM → STOPPING=1', async () => {
    let p: Proc | null = null;
    await dumpOnFailure(
      () => p,
      async () => {
        const a = await startAgent(BOXES.block);
        p = a.p;
        // Pings from the process's start (the launcher may start it inside a running unit), READY=1 once started.
        expect(a.sock.got.map((d) => d.text).find((t) => t.startsWith('READY=1'))).toBeDefined();
        expect(a.sock.got[0]!.text.split('\n')).toEqual(['WATCHDOG=1', 'WATCHDOG_USEC=2000000']);
        expect(records(a.p, 'sd_notify.connected')[0]).toMatchObject({ pingMs: 1000 });
        await fault(a.p, a.faultFile, 'block-loop 5000');
        const blocked = timeOf(await logged(a.p, 'test.fault', 10_000));
        const unblocked = timeOf(await logged(a.p, 'test.fault_done', 15_000));
        expect(unblocked - blocked).toBeGreaterThanOrEqual(5000);
        const withheld = await logged(a.p, 'watchdog.withheld', 5000);
        expect(withheld).toMatchObject({ part: 'event_loop' });
        await new Promise((r) => setTimeout(r, 2500));
        // A ping sent just before the block may be read here a little later: 200 ms of grace.
        expect(a.sock.pings(blocked + 200), 'no ping during or after the block').toEqual([]);
        expect(a.sock.got.some((d) => d.text.startsWith('STATUS=watchdog withheld: event_loop'))).toBe(true);
        expect(a.p.running(), 'the agent itself goes on: systemd is the one to restart it').toBe(true);
        await sigterm(a.p, a.sock);
      },
    );
  }, 90_000);

  it('a wedged MQTT session loop stops the pings for good (mqtt) while the agent still answers commands; SIGTERM → STOPPING=1', async () => {
    let p: Proc | null = null;
    await dumpOnFailure(
      () => p,
      async () => {
        const a = await startAgent(BOXES.wedge);
        p = a.p;
        await fault(a.p, a.faultFile, 'wedge-mqtt');
        const wedged = timeOf(await logged(a.p, 'test.fault', 10_000));
        // Its tick runs every 5 s; stale past 5 s + the slack (1 s loop bound + 1 s).
        const withheld = await logged(a.p, 'watchdog.withheld', 15_000);
        expect(withheld).toMatchObject({ part: 'mqtt' });
        expect(timeOf(withheld) - wedged).toBeLessThan(9000);
        expect(a.sock.pings(wedged).length, 'pings went on until the tick was stale').toBeGreaterThan(0);
        const id = await hub.send({ device: BOXES.wedge }, 'identify', { seconds: 1 });
        expect((await hub.reply(id, 15_000, BOXES.wedge)).ok).toBe(true);
        await new Promise((r) => setTimeout(r, 2000));
        expect(a.sock.pings(timeOf(withheld) + 200), 'no ping after the verdict').toEqual([]);
        expect(a.p.running()).toBe(true);
        await sigterm(a.p, a.sock);
      },
    );
  }, 90_000);

  it('WATCHDOG_USEC without NOTIFY_SOCKET: exit 69 at once, with the reason', async () => {
    const p = procs.spawn('ep run (no socket)', process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', await config(BOXES.env)], { env: { NOTIFY_SOCKET: undefined, WATCHDOG_USEC: '30000000' } });
    expect(await withTimeout(p.exited, EXIT_GUARD_MS, 'ep run to exit')).toEqual({ code: EX_NOTIFY, signal: null });
    expect(records(p, 'watchdog.unusable')[0]?.msg).toMatch(/WATCHDOG_USEC=30000000 is set .* but NOTIFY_SOCKET is not/);
    expect(records(p, 'agent.started')).toEqual([]);
  }, 30_000);

  it('an abstract NOTIFY_SOCKET (@…), which unix-dgram 2.0.7 cannot address: exit 69 at once, naming why', async () => {
    const p = procs.spawn('ep run (abstract)', process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', await config(BOXES.env)], { env: { NOTIFY_SOCKET: `@ep-wd-${process.pid}`, WATCHDOG_USEC: '30000000' } });
    expect(await withTimeout(p.exited, EXIT_GUARD_MS, 'ep run to exit')).toEqual({ code: EX_NOTIFY, signal: null });
    expect(records(p, 'watchdog.unusable')[0]?.msg).toMatch(/abstract socket name/);
  }, 30_000);
});
