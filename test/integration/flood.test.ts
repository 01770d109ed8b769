/**
 * A hostile flood against the real `ep run` (built CLI, production Node flags) over a real
 * Mosquitto with TLS and the box ACL: every structure remote input can grow is fed new
 * keys (device/limits.ts), and the agent's resident memory must stay flat once the bounded
 * ones are full. Before the bounds, 1,100 × `logs {"lines": 2000}` took the agent from
 * 75 to 688 MB (issue [harden]).
 *
 * The mix, each command under a new id: `logs` of 2,000 lines (the largest reply, kept by
 * the ledger), a 60 KiB `join` with thousands of unknown keys (the longest problem list
 * and log line), an unknown command with a 10,000-character name, `leave` answered on a
 * new response topic each time, and `identify` with a wildcard response topic (refused).
 * Phase 1 fills the bounded stores (ledger ids, log ring); phase 2 sends 2,000 more.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../../device/cli/run.js';
import { LIMITS } from '../../device/limits.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Processes, withTimeout, type Proc } from './helpers/processes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');
const BOX = 'box-flood';
const GROUP = 'grp-flood';
const WINDOW = 50;
/**
 * RSS moves with V8's heap sizing: −6 to +10 MB between the phases in runs here. Unbounded,
 * phase 2's 400 `logs` replies alone kept ~600 KB each (+240 MB): 40 MB tells them apart.
 */
const FLAT_MB = 40;

const procs = new Processes();
let broker: Mosquitto;
let hub: MqttClient;
let dir: string;
let agent: Proc;

interface Seen {
  count: number;
  maxBytes: number;
  codes: Map<string, number>;
}
const replies = new Map<string, Seen>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ep-flood-'));
  broker = await Mosquitto.start({ devices: { [BOX]: GROUP } });
  const tls = broker.tls('hub');
  hub = mqtt.connect(broker.url, { clientId: 'hub-flood', protocolVersion: 5, clean: true, reconnectPeriod: 0, ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) });
  await withTimeout(new Promise<void>((r) => hub.once('connect', () => r())), 10_000, 'the hub to connect');
  hub.on('message', (topic, payload) => {
    if (!topic.endsWith('/reply') || payload.length === 0) return;
    const r = JSON.parse(payload.toString()) as { id: string; error?: { code: string } };
    const s = replies.get(r.id) ?? { count: 0, maxBytes: 0, codes: new Map() };
    s.count++;
    s.maxBytes = Math.max(s.maxBytes, payload.length);
    const code = r.error?.code ?? 'ok';
    s.codes.set(code, (s.codes.get(code) ?? 0) + 1);
    replies.set(r.id, s);
  });
  await hub.subscribeAsync([`ep/v1/dev/${BOX}/reply`, `ep/v1/dev/${BOX}/status`], { qos: 1 });

  const dataDir = await mkdtemp(path.join(dir, 'data-'));
  const cfg = path.join(dir, 'config.json');
  await writeFile(cfg, JSON.stringify({ deviceId: BOX, groupId: GROUP, name: 'Xã Lũ', mqtt: { url: broker.url, ...broker.tls(BOX) }, dataDir, media: { source: 'test', aec: false }, health: { periodS: 3600 }, log: { level: 'info' } }));
  const online = new Promise<void>((resolve) =>
    hub.on('message', (topic, payload) => {
      if (topic.endsWith('/status') && payload.length && (JSON.parse(payload.toString()) as { online?: boolean }).online) resolve();
    }),
  );
  // Its output is large (every command logs): keep the tail only.
  agent = procs.spawn('ep run', process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', cfg]);
  await withTimeout(online, 30_000, `${BOX} online`);
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await hub?.endAsync();
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

async function rssMb(): Promise<number> {
  const t = await readFile(`/proc/${agent.child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(t)![1]) / 1024;
}

const unknownKeysJoin = (() => {
  const args: Record<string, unknown> = { meetingId: 'm', send: { url: 'srt://hub:1' }, receive: { url: 'srt://hub:2' } };
  for (let i = 0; i < 7000; i++) args[i.toString(36)] = 1;
  return args;
})();
const longName = 'x'.repeat(10_000);

/** The i-th command of the mix: [topic, payload, MQTT 5 properties]. */
function nth(i: number, tag: string): { id: string; topic: string; payload: string; properties?: { responseTopic: string } } {
  const id = `${tag}-${i}`;
  const cmd = (name: string): string => `ep/v1/dev/${BOX}/cmd/${name}`;
  switch (i % 5) {
    case 0:
      return { id, topic: cmd('logs'), payload: JSON.stringify({ id, args: { lines: 2000 } }) };
    case 1:
      return { id, topic: cmd('join'), payload: JSON.stringify({ id, args: unknownKeysJoin }) };
    case 2:
      return { id, topic: cmd(longName), payload: JSON.stringify({ id }) };
    case 3:
      return { id, topic: cmd('leave'), payload: JSON.stringify({ id }), properties: { responseTopic: `ep/v1/dev/${BOX}/reply/${id}` } };
    default:
      return { id, topic: cmd('identify'), payload: JSON.stringify({ id, args: { seconds: 1 } }), properties: { responseTopic: `x/+/${id}` } };
  }
}

/** Sends `n` commands of the mix, at most WINDOW unanswered, and waits for every reply. */
async function flood(n: number, tag: string): Promise<void> {
  let sent = 0;
  const answered = (): number => {
    let a = 0;
    for (let i = 0; i < sent; i++) if (replies.has(`${tag}-${i}`)) a++;
    return a;
  };
  const deadline = Date.now() + 240_000; // hang guard
  while (answered() < n) {
    if (Date.now() > deadline) throw new Error(`flood ${tag}: ${answered()} of ${n} answered; agent output:\n${agent.output().slice(-3000)}`);
    if (!agent.running()) throw new Error(`the agent exited during the flood:\n${agent.output().slice(-3000)}`);
    const inFlight = sent - answered();
    const batch: Promise<unknown>[] = [];
    for (let k = 0; k < WINDOW - inFlight && sent < n; k++, sent++) {
      const c = nth(sent, tag);
      batch.push(hub.publishAsync(c.topic, c.payload, { qos: 1, ...(c.properties ? { properties: c.properties } : {}) }));
    }
    await Promise.all(batch);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a flood of hostile commands', () => {
  it('every command gets exactly one reply of at most 64 KiB, and the agent stays up with flat memory', async () => {
    await flood(1100, 'warm'); // the ledger past its id bound (1,000), the log ring full (2,000 lines: each command logs at least two)
    const rss1 = await rssMb();
    await flood(2000, 'flood');
    const rss2 = await rssMb();
    console.info(`flood: agent RSS ${rss1.toFixed(1)} MB after 1,100 commands, ${rss2.toFixed(1)} MB after 2,000 more (bound ${FLAT_MB} MB of growth)`);

    const all = [...replies.entries()].filter(([id]) => id.startsWith('warm-') || id.startsWith('flood-'));
    expect(all).toHaveLength(3100);
    expect(all.filter(([, s]) => s.count !== 1).map(([id, s]) => `${id}×${s.count}`)).toEqual([]);
    expect(Math.max(...all.map(([, s]) => s.maxBytes))).toBeLessThanOrEqual(LIMITS.replyBytes);
    const codes = (i: number): string[] => [...replies.get(`flood-${i}`)!.codes.keys()];
    expect([0, 1, 2, 3, 4].map(codes)).toEqual([['ok'], ['bad_request'], ['unknown_command'], ['ok'], ['bad_request']]);
    expect(agent.running()).toBe(true);
    expect(rss2 - rss1).toBeLessThan(FLAT_MB);
  }, 600_000);
});
