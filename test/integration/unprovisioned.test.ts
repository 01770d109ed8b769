/**
 * A box without a configuration, as the service runs it (`ep run`, the built CLI, a real
 * child process): it says why in its log and on its local control socket (`ep status`),
 * answers every contract command `not_provisioned`, and restarts into the provisioned agent
 * (exit 75, the launcher's "start me again") as soon as provisioning writes a configuration.
 * A provisioned agent that is factory-reset under its feet restarts the same way and comes
 * back unprovisioned.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { AGENT_NODE_FLAGS } from '../../device/cli/run.js';
import { controlRequest } from '../../device/control-socket.js';
import { distPath } from '../../lib/package-root.js';
import { HubClient } from './helpers/hub-client.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Processes, withTimeout, type Proc } from './helpers/processes.js';

const run = promisify(execFile);
const CLI = distPath(import.meta.url, 'device', 'cli', 'ep.js');
const BOX = 'cam-unprov';
const GROUP = 'camlo';
/** Hang guards only. */
const GUARD_MS = 30_000;

const procs = new Processes();
let broker: Mosquitto;
let hub: HubClient;
let dir: string;
let agent: Proc | null = null;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-unprov-'));
  broker = await Mosquitto.start({ devices: { [BOX]: GROUP } });
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
});

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(`--- ep run output (last 6000 chars) ---\n${agent?.output().slice(-6000)}`);
});

afterAll(async () => {
  await procs.killAll();
  await hub?.close();
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Box {
  root: string;
  dataDir: string;
  config: string;
  socket: string;
}

async function newBox(name: string): Promise<Box> {
  const root = path.join(dir, name);
  const dataDir = path.join(root, 'var', 'lib', 'commune-endpoint');
  await mkdir(path.join(root, 'boot', 'firmware'), { recursive: true });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  return { root, dataDir, config: path.join(dataDir, 'config.json'), socket: path.join(dataDir, 'control.sock') };
}

const ep = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const r = await run(process.execPath, [CLI, ...args], { timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
};

const startAgent = (b: Box): Proc =>
  (agent = procs.spawn('ep run', process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', b.config], { env: { EP_CONTROL_SOCKET: '', RUNTIME_DIRECTORY: '', NOTIFY_SOCKET: '', WATCHDOG_USEC: '', EP_STATUS_PAGE_PORT: '0' } }));

const until = async (pred: () => boolean | Promise<boolean>, what: string, ms = GUARD_MS): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
const answers = (socket: string): Promise<boolean> => controlRequest(socket, 'status', {}, 2000).then(() => true, () => false);

/** A raw line to the socket → the reply line. */
const raw = (socket: string, line: string): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    const s = net.connect(socket, () => s.write(`${line}\n`));
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\n')) {
        s.end();
        resolve(JSON.parse(buf.slice(0, buf.indexOf('\n'))) as Record<string, unknown>);
      }
    });
    s.on('error', reject);
  });

const passwordlessFile = (): Promise<string> =>
  Promise.all([readFile(broker.tls(BOX).certFile, 'utf8'), readFile(broker.tls(BOX).keyFile, 'utf8'), readFile(broker.caFile, 'utf8')]).then(([certificate, key, ca]) =>
    JSON.stringify({ v: 1, groupId: GROUP, name: 'UBND xã Thử', broker: { url: broker.url, certificate, key, ca } }),
  );

describe('an unprovisioned box', () => {
  it('says why (log, ep status), answers not_provisioned, and restarts into the agent once provisioned', async () => {
    const b = await newBox('fresh');
    // First boot with a bad file: the reason is recorded.
    await writeFile(path.join(b.root, 'boot', 'firmware', 'ep-provision.json'), JSON.stringify({ v: 1, groupId: GROUP, name: 'x' }));
    expect((await ep('provision', '--boot', '--root', b.root, '--data-dir', b.dataDir)).code).toBe(65);

    const a = startAgent(b);
    await until(() => answers(b.socket), 'the control socket');
    expect(a.output()).toContain('"evt":"agent.unprovisioned"');
    expect(a.output()).toContain('broker: is required');

    const st = await ep('status', '--socket', b.socket);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/^state\s+unprovisioned\b/m);
    expect(st.stdout).toContain('broker: is required');
    const js = JSON.parse((await ep('status', '--json', '--socket', b.socket)).stdout) as Record<string, unknown>;
    expect(js).toMatchObject({ state: 'unprovisioned', provisioned: false, led: { code: 'unprovisioned' }, problems: [{ code: 'unprovisioned' }] });
    // The status page says it too (a technician's phone on the LAN): the page, then its live data.
    const port = (js.statusPage as { port: number }).port;
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const snapshot = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      ws.once('message', (d) => {
        ws.close();
        resolve(String(d));
      });
      ws.once('error', reject);
    });
    expect(snapshot).toContain('broker: is required');
    expect(JSON.parse(snapshot)).toMatchObject({ t: 'snapshot', state: 'unprovisioned', led: 'unprovisioned' });

    // Every contract command: not_provisioned, with the reason; anything else its own code.
    for (const command of ['join', 'leave', 'ota', 'selftest', 'reboot', 'identify', 'config', 'logs']) {
      const r = await raw(b.socket, JSON.stringify({ id: `c-${command}`, command, args: {} }));
      expect(r).toMatchObject({ id: `c-${command}`, command, ok: false, error: { code: 'not_provisioned' } });
    }
    expect(await raw(b.socket, JSON.stringify({ id: 'c-x', command: 'dance' }))).toMatchObject({ ok: false, error: { code: 'unknown_command' } });
    expect(await raw(b.socket, '{not json')).toMatchObject({ ok: false, error: { code: 'bad_request' } });

    // Provisioned by hand: the agent notices, exits 75 (the launcher starts it again).
    await writeFile(path.join(dir, 'good.json'), await passwordlessFile());
    const p = await ep('provision', path.join(dir, 'good.json'), '--root', b.root, '--data-dir', b.dataDir, '--no-restart');
    expect(p.code).toBe(0);
    const exit = await withTimeout(a.exited, GUARD_MS, 'the unprovisioned agent to restart');
    expect(exit.code).toBe(75);
    expect(a.output()).toContain('"evt":"agent.provisioned"');

    // Started again (as the launcher would): a provisioned box, online, ep status says so.
    const since = hub.mark();
    const a2 = startAgent(b);
    await hub.waitFor((m) => m.n > since && m.kind === 'status' && m.deviceId === BOX && (m.json as { online?: boolean })?.online === true, GUARD_MS, 'the box online');
    await until(() => answers(b.socket), 'the control socket');
    const js2 = JSON.parse((await ep('status', '--json', '--socket', b.socket)).stdout) as Record<string, unknown>;
    expect(js2).toMatchObject({ provisioned: true, deviceId: BOX, state: 'idle', hub: { connected: true } });

    // Factory reset under its feet: it restarts and comes back unprovisioned.
    expect((await ep('factory-reset', '--yes', '--root', b.root, '--data-dir', b.dataDir, '--no-restart')).code).toBe(0);
    expect((await withTimeout(a2.exited, GUARD_MS, 'the agent to restart after the reset')).code).toBe(75);
    const a3 = startAgent(b);
    await until(() => answers(b.socket), 'the control socket');
    expect(JSON.parse((await ep('status', '--json', '--socket', b.socket)).stdout)).toMatchObject({ state: 'unprovisioned' });
    a3.child.kill('SIGTERM');
    expect((await withTimeout(a3.exited, GUARD_MS, 'the agent to stop')).code).toBe(0);
  });

  it('ep status says plainly when the agent is not running', async () => {
    const r = await ep('status', '--socket', path.join(dir, 'nothing.sock'));
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('the agent is not running');
  });
});
