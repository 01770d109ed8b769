/**
 * The agent's benchmarks (issue [agent]): the real `ep run` process against a real
 * Mosquitto started here, media in test-source mode.
 *
 * - startToOnlineMs: `node dist/device/cli/ep.js run` spawned → its retained
 *   `{"online":true}` status (with a new bootId) reaches an observer client.
 * - joinCommandToFirstMediaMs: a `join` command published → the first bytes of the box's
 *   stream at an SRT listener (srt-live-transmit → UDP read here; SRT latency 40 ms).
 * - rssIdleMb: the agent process's resident memory, idle (standby shown, connected),
 *   and privateIdleMb: the part of it that is the agent's own (anonymous pages in
 *   /proc/PID/smaps_rollup: heap, stacks, V8's metadata), not the Node binary's code pages,
 *   which every Node process on the box (the media workers too) shares,
 *   3 s after it reported `idle`. Its media worker is a separate process, not counted.
 * The agent runs as the systemd unit runs it: `node ${AGENT_NODE_FLAGS} …/cli.js run`.
 * - healthSampleMs: mean cost of one health sample (in this process, real host files).
 */
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';
import { execRunCommand } from '../../gst-pipelines/probe/probe.js';
import { HealthSampler } from '../../device/health/index.js';
import { hostPaths } from '../../lib/host-paths.js';
import { systemClock } from '../../lib/clock.js';
import { AGENT_NODE_FLAGS } from '../../device/cli/run.js';
import { srtLiveTransmit, STARTUP_SRT_LATENCY_MS } from './media-startup.js';
import { endChild, firstDatagram, MeasurementError, median, monoMs, percentile, round1, sleep, track, udpPortBound, waitFor } from './machine.js';

export interface AgentRun {
  startToOnlineMs: number;
  joinCommandToFirstMediaMs: number;
  rssIdleMb: number;
  privateIdleMb: number;
}


export interface AgentResult {
  repetitions: number;
  startToOnlineMs: number;
  joinCommandToFirstMediaMs: number;
  rssIdleMb: number;
  privateIdleMb: number;
  /** The Node that ran the agent (`--agent-node`; default: the bench's own). */
  agentNode: string;
  healthSampleMs: number;
  healthSampleP95Ms: number;
  runs: AgentRun[];
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');
const DEVICE = 'bench-box';
const GROUP = 'bench';

export async function startMosquitto(dir: string, extra: string[] = []): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n${extra.map((l) => `${l}\n`).join('')}`);
  const proc = track(spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let dead: string | null = null;
  proc.on('error', (e) => (dead = `mosquitto cannot run: ${e.message}`));
  proc.once('exit', (c, s) => (dead ??= `mosquitto exited (${s ?? c})`));
  const { createConnection } = await import('node:net');
  await waitFor('mosquitto to listen', () => {
    if (dead) throw new MeasurementError(`agent: ${dead}`);
    return true;
  }, 100);
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = createConnection(port, '127.0.0.1', () => (s.end(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) break;
    await sleep(50);
  }
  return { url: `mqtt://127.0.0.1:${port}`, stop: () => endChild(proc) };
}

async function privateMb(pid: number): Promise<number> {
  const t = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = Number(/^Anonymous:\s+(\d+)/m.exec(t)?.[1]);
  if (!Number.isFinite(kb)) throw new MeasurementError(`agent: no Anonymous in smaps_rollup for ${pid}`);
  return round1(kb / 1024);
}

function rssMb(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((t) => {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(t)?.[1]);
    if (!Number.isFinite(kb)) throw new MeasurementError(`agent: no VmRSS for ${pid}`);
    return round1(kb / 1024);
  });
}

async function once(brokerUrl: string, dir: string, node: string, log: (l: string) => void): Promise<AgentRun> {
  const dataDir = await mkdtemp(path.join(dir, 'data-'));
  const cfg = path.join(dir, 'config.json');
  // The status page is on, as on a box (a free port here: several runs, other agents on 8080).
  await writeFile(cfg, JSON.stringify({ deviceId: DEVICE, groupId: GROUP, name: 'Bench commune', mqtt: { url: brokerUrl }, dataDir, media: { source: 'test' }, health: { periodS: 30 }, log: { level: 'warn' }, field: { statusPage: { port: 0, host: '127.0.0.1' } } }));
  const hub = mqtt.connect(brokerUrl, { clientId: `bench-hub-${process.pid}`, protocolVersion: 5, clean: true });
  await new Promise<void>((r, j) => (hub.once('connect', () => r()), hub.once('error', j)));
  await hub.publishAsync(`ep/v1/dev/${DEVICE}/status`, '', { qos: 1, retain: true });
  await hub.publishAsync(`ep/v1/dev/${DEVICE}/state`, '', { qos: 1, retain: true });
  const waiters: Array<(topic: string, msg: Record<string, unknown>, at: number) => boolean> = [];
  hub.on('message', (topic, payload) => {
    const at = monoMs();
    if (!payload.length) return;
    const msg = JSON.parse(payload.toString()) as Record<string, unknown>;
    for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i]!(topic, msg, at)) waiters.splice(i, 1);
  });
  await hub.subscribeAsync([`ep/v1/dev/${DEVICE}/#`]);
  const waitMsg = (what: string, test: (topic: string, msg: Record<string, unknown>) => boolean, ms: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new MeasurementError(`agent: ${what} did not happen within ${ms} ms`)), ms);
      waiters.push((topic, msg, at) => (test(topic, msg) ? (clearTimeout(t), resolve(at), true) : false));
    });

  const online = waitMsg('online status', (t, m) => t.endsWith('/status') && m.online === true, 20_000);
  const idle = waitMsg('idle state', (t, m) => t.endsWith('/state') && m.state === 'idle', 20_000);
  const t0 = monoMs();
  const agent = track(spawn(node, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT }));
  let stderr = '';
  agent.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  agent.once('exit', (c, s) => log(`agent exited (${s ?? c}) ${stderr.trim().slice(-300)}`));
  const lat = `latency=${STARTUP_SRT_LATENCY_MS}`;
  let ingestL: ReturnType<typeof srtLiveTransmit> | null = null;
  let programL: ReturnType<typeof srtLiveTransmit> | null = null;
  let sock: Awaited<ReturnType<typeof firstDatagram>> | null = null;
  try {
    const onlineAt = await online;
    const startToOnlineMs = round1(onlineAt - t0);
    await idle;
    await sleep(3000);
    const rssIdleMb = await rssMb(agent.pid!);
    const privateIdleMb = await privateMb(agent.pid!);
    if (realpathSync(node) !== realpathSync(process.execPath)) return { startToOnlineMs, joinCommandToFirstMediaMs: NaN, rssIdleMb, privateIdleMb };

    const ingest = await freePort();
    let program = await freePort();
    while (program === ingest) program = await freePort();
    const udpPort = await freePort();
    sock = await firstDatagram(udpPort);
    ingestL = srtLiveTransmit(`srt://127.0.0.1:${ingest}?mode=listener&${lat}`, `udp://127.0.0.1:${udpPort}`);
    programL = srtLiveTransmit(`udp://127.0.0.1:${await freePort()}`, `srt://127.0.0.1:${program}?mode=listener&${lat}`);
    await waitFor('the SRT listeners', () => udpPortBound(ingest) && udpPortBound(program), 5000);
    await sleep(500);
    const bytes = sock.arrival(10_000, 'agent: no media bytes within 10 s of the join command');
    const spec = {
      meetingId: `bench-${Date.now()}`,
      send: { url: `srt://127.0.0.1:${ingest}`, streamId: 'publish:bench/{deviceId}', video: { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 } },
      receive: { url: `srt://127.0.0.1:${program}` },
      srt: { latencyMs: STARTUP_SRT_LATENCY_MS },
    };
    const j0 = monoMs();
    await hub.publishAsync(`ep/v1/dev/${DEVICE}/cmd/join`, JSON.stringify({ id: `bench-join-${Date.now()}`, args: spec }), { qos: 1 });
    const joinCommandToFirstMediaMs = round1((await bytes) - j0);
    return { startToOnlineMs, joinCommandToFirstMediaMs, rssIdleMb, privateIdleMb };
  } finally {
    await endChild(agent, 'SIGTERM', 4000);
    if (ingestL) await endChild(ingestL.proc);
    if (programL) await endChild(programL.proc);
    sock?.close();
    await hub.endAsync();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function healthCost(samples: number): Promise<{ mean: number; p95: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-bench-health-'));
  const sampler = new HealthSampler({
    paths: hostPaths(),
    runCommand: execRunCommand(),
    clock: systemClock,
    startedAt: Date.now(),
    dataDir: dir,
    devices: () => ({ camera: true, display: true, mic: true, speaker: true }),
    media: () => null,
  });
  await sampler.sample(); // the first one starts the one-off probes (held back for 10 min after)
  await sleep(1100);
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = monoMs();
    await sampler.sample();
    times.push(monoMs() - t);
    await sleep(50);
  }
  await rm(dir, { recursive: true, force: true });
  const sorted = [...times].sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { mean: Math.round(mean * 100) / 100, p95: Math.round((percentile(sorted, 95) ?? NaN) * 100) / 100 };
}

export async function measureAgent(o: { repetitions: number; node?: string; log: (l: string) => void }): Promise<AgentResult> {
  const node = o.node ?? process.execPath;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-bench-agent-'));
  const broker = await startMosquitto(dir);
  const runs: AgentRun[] = [];
  try {
    for (let i = 0; i < o.repetitions; i++) {
      const r = await once(broker.url, dir, node, o.log);
      o.log(`agent: run ${i + 1}: start → online ${r.startToOnlineMs} ms, join → first media ${Number.isNaN(r.joinCommandToFirstMediaMs) ? 'not measured (--agent-node)' : `${r.joinCommandToFirstMediaMs} ms`}, idle RSS ${r.rssIdleMb} MB (private ${r.privateIdleMb} MB)`);
      runs.push(r);
    }
  } finally {
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const h = await healthCost(30);
  o.log(`agent: health sample mean ${h.mean} ms, p95 ${h.p95} ms`);
  return {
    repetitions: runs.length,
    startToOnlineMs: median(runs.map((r) => r.startToOnlineMs)) ?? NaN,
    joinCommandToFirstMediaMs: median(runs.map((r) => r.joinCommandToFirstMediaMs)) ?? NaN,
    rssIdleMb: Math.max(...runs.map((r) => r.rssIdleMb)),
    privateIdleMb: Math.max(...runs.map((r) => r.privateIdleMb)),
    agentNode: node,
    healthSampleMs: h.mean,
    healthSampleP95Ms: h.p95,
    runs,
  };
}
