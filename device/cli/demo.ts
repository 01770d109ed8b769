/**
 * `ep demo` / `npm run demo`: a whole district on this machine. An embedded hub — an
 * MQTT broker (aedes, in-process) and an SRT hub (GStreamer) that publishes a program
 * and receives the box's stream — and a commune box agent with test sources. The hub
 * announces a group meeting; the box joins by itself; we print its state and health as
 * they arrive, end the meeting, save a picture each side received, and exit 0.
 */
import { createServer, type AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { Agent } from '../agent.js';
import { readVersion } from '../../lib/index.js';
import { logOnlyLeds, logOnlySystemActions } from '../host/index.js';
import { createLogger } from '../../lib/index.js';
import { topics } from '../contract/index.js';
import { LocalHub } from '../../gst-pipelines/index.js';
import { savePictures } from '../../gst-pipelines/index.js';
import { probe } from '../../gst-pipelines/index.js';
import type { AgentConfig } from '../config.js';

export interface DemoOptions {
  outDir: string;
  seconds: number;
  out: (line: string) => void;
}

interface Observed {
  states: string[];
  healthCount: number;
  events: string[];
}

export async function runDemo(o: DemoOptions): Promise<{ ok: boolean; problems: string[]; files: string[] }> {
  const t0 = Date.now();
  const say = (s: string): void => o.out(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${s}`);
  await mkdir(o.outDir, { recursive: true });
  const hubDir = path.join(o.outDir, 'hub');
  const boxDir = path.join(o.outDir, 'box');
  await mkdir(hubDir, { recursive: true });
  await mkdir(boxDir, { recursive: true });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ep-demo-'));
  const problems: string[] = [];
  const files: string[] = [];
  const seen: Observed = { states: [], healthCount: 0, events: [] };

  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  say(`hub: MQTT broker (aedes) on mqtt://127.0.0.1:${port}`);
  const caps = await probe();
  const hub = await LocalHub.create({ caps, snapshotDir: hubDir, latencyMs: 120 });
  await hub.start();
  say(`hub: SRT program on srt://127.0.0.1:${hub.programPort}, ingest on srt://127.0.0.1:${hub.ingestPort}`);

  const config: AgentConfig = {
    deviceId: 'cam-thanh',
    groupId: 'camlo',
    name: 'Xã Cẩm Thanh',
    mqtt: { url: `mqtt://127.0.0.1:${port}`, keepaliveS: 30, reconnectBaseMs: 500, reconnectCapMs: 5000 },
    dataDir,
    media: { source: 'test', volume: 1, micMuted: false, aec: true },
    health: { periodS: 5 },
    log: { level: 'info' },
    // The local status page on a free port of this machine (a box serves it on the LAN, 8080).
    field: { statusPage: { enabled: true, port: 0, host: '127.0.0.1' }, button: { shortPress: 'raise_hand', activeLow: true }, leds: {} },
  };
  const logFile = path.join(o.outDir, 'agent.log');
  const agent = new Agent({
    config,
    version: await readVersion(),
    logger: createLogger({ level: 'info', destination: createWriteStream(logFile) }),
    caps,
    snapshotDir: boxDir,
    system: logOnlySystemActions(say),
    leds: logOnlyLeds(say),
  });

  const ops = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'district-operator', protocolVersion: 4 });
  await new Promise<void>((r) => ops.once('connect', () => r()));
  await ops.subscribeAsync(['ep/v1/dev/+/status', 'ep/v1/dev/+/state', 'ep/v1/dev/+/health', 'ep/v1/dev/+/event', 'ep/v1/dev/+/reply']);
  let lastState = '';
  const waiters: Array<{ want: string; resolve: () => void }> = [];
  ops.on('message', (topic, payload) => {
    if (payload.length === 0) return;
    const kind = topic.split('/')[4];
    const msg = JSON.parse(payload.toString()) as Record<string, unknown>;
    if (kind === 'status') say(`box ${msg.online ? 'online' : 'offline'} (version ${String(msg.version ?? '?')})`);
    if (kind === 'state') {
      const media = msg.media as { send: string; receive: string; encoder: string | null };
      const line = `state ${String(msg.state)}${msg.meeting ? ` in ${(msg.meeting as { id: string }).id}` : ''} · media send ${media.send} / receive ${media.receive}${media.encoder ? ` (${media.encoder})` : ''} · faults [${(msg.faults as string[]).join(', ')}]`;
      if (line !== lastState) say(line);
      lastState = line;
      seen.states.push(String(msg.state));
      for (const w of waiters.filter((x) => x.want === msg.state)) w.resolve();
    }
    if (kind === 'health') {
      seen.healthCount++;
      const h = msg as { cpu: { loadPct: number | null }; mem: { usedPct: number | null }; media: { send?: { fps: number | null; kbps: number | null; rttMs: number | null }; receive?: { fps: number | null } } };
      const f = (v: number | null | undefined, u = ''): string => (v === null || v === undefined ? '–' : `${Math.round(v)}${u}`);
      say(`health cpu ${f(h.cpu.loadPct, '%')} mem ${f(h.mem.usedPct, '%')} · sent ${f(h.media.send?.fps, 'fps')} ${f(h.media.send?.kbps, 'kbps')} rtt ${h.media.send?.rttMs ?? '–'}ms · received ${f(h.media.receive?.fps, 'fps')}`);
    }
    if (kind === 'event') {
      seen.events.push(String(msg.type));
      say(`event ${String(msg.type)} ${JSON.stringify(msg.detail ?? {})}`);
    }
  });
  const waitState = (want: string, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      if (seen.states.at(-1) === want) return resolve(true);
      const t = setTimeout(() => resolve(false), ms);
      waiters.push({ want, resolve: () => (clearTimeout(t), resolve(true)) });
    });

  try {
    await agent.start();
    await waitState('idle', 10_000);
    const page = agent.field.statusPageAddress;
    if (page) say(`box: status page on http://127.0.0.1:${page.port}/ (open it in a browser while the demo runs)`);
    const spec = hub.joinSpec('camlo-2026-11-22', { title: 'Hội nghị trực tuyến — demo', srt: { latencyMs: 120 } });
    // The hub announces the meeting first: the TV's standby screen shows it (a picture of it).
    const startsAt = new Date(Date.now() + 60_000).toISOString();
    say(`hub: announcing the next meeting on ${topics.next('camlo')}: "${spec.title}" at ${startsAt}`);
    await ops.publishAsync(topics.next('camlo'), JSON.stringify({ meetingId: spec.meetingId, title: spec.title, startsAt }), { qos: 1, retain: true });
    const standby = await standbyPicture(agent, boxDir);
    if (standby) files.push(standby);
    else problems.push('the standby screen did not show the announced meeting (no picture)');
    say(`hub: announcing group meeting ${spec.meetingId} (retained on ${topics.meeting('camlo')})`);
    await ops.publishAsync(topics.meeting('camlo'), JSON.stringify(spec), { qos: 1, retain: true });
    if (!(await waitState('in_meeting', 15_000))) problems.push('the box did not reach in_meeting within 15 s');
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    const saved = await savePictures(hub.supervisor, agent.media, o.outDir);
    files.push(...saved.files);
    problems.push(...saved.problems);
    const hubStats = hub.supervisor.status().stats;
    if (!hubStats || (hubStats.receive.fps ?? 0) < 25) problems.push(`the hub receives ${hubStats?.receive.fps ?? 0} fps from the box`);
    say('hub: ending the meeting (empty retained payload)');
    await ops.publishAsync(topics.meeting('camlo'), '', { qos: 1, retain: true });
    if (!(await waitState('idle', 10_000))) problems.push('the box did not go back to idle when the meeting ended');
    if (seen.healthCount === 0) problems.push('no health sample arrived');
  } finally {
    await agent.stop().catch(() => undefined);
    await hub.stop();
    await ops.endAsync();
    await new Promise<void>((r) => broker.close(() => r()));
    server.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  say(`agent log (JSON, as journald would keep it): ${logFile}`);
  return { ok: problems.length === 0, problems, files };
}

/** The TV between meetings, once it shows the announced meeting: `box/standby.png`. */
async function standbyPicture(agent: Agent, boxDir: string): Promise<string | null> {
  const end = Date.now() + 10_000;
  while (agent.field.view.nextMeeting === null && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  // The standby pipeline's PNG branch takes a frame a second: one drawn after the change.
  await new Promise((r) => setTimeout(r, 2500));
  const written = await agent.media.snapshot(5000);
  const png = written.find((f) => f.endsWith('received.png'));
  if (!png || agent.field.view.nextMeeting === null) return null;
  const file = path.join(boxDir, 'standby.png');
  await rename(png, file);
  return file;
}
