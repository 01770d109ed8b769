/**
 * The agent's command throughput (issue [harden]): the real `ep run` process against a real
 * Mosquitto started here; a hub client publishes a burst of commands (QoS 1, at most
 * `window` unanswered at a time) and counts the replies on the box's reply topic.
 *
 * - commandsPerSecond: N replies ÷ (last reply − first publish), per kind of command.
 * - cpuMsPerCommand: the agent process's CPU (utime + stime, all threads) over the burst ÷ N.
 * - rssAfterMb: the agent's resident memory after every burst (the ledger full of new ids).
 *
 * Kinds: `leave` with no meeting (the command path itself: decode, ledger, reply), `logs`
 * of 20 lines (a reply of a few KiB), and a `bad_request` (an unknown field in `logs`).
 * Mosquitto runs with `max_queued_messages 10000` and `max_queued_bytes` 64 MiB, as docs/agent.md tells hubs to.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { AGENT_NODE_FLAGS } from '../../device/cli/run.js';
import { endChild, MeasurementError, monoMs, procCpuSeconds, round1, track } from './machine.js';
import { startMosquitto } from './agent.js';
import { fmt, goal, part, sectionTable, type BenchSection } from './report.js';

export interface CommandKindResult {
  kind: string;
  commands: number;
  seconds: number;
  commandsPerSecond: number;
  cpuMsPerCommand: number;
  /** Replies whose `ok`/`error.code` differed from the expectation (must be 0). */
  wrongReplies: number;
}

export interface CommandsResult {
  kinds: CommandKindResult[];
  rssAfterMb: number;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');
const DEVICE = 'bench-cmd-box';
const GROUP = 'bench';

interface Kind {
  kind: string;
  command: string;
  args: Record<string, unknown>;
  expect: (r: { ok?: boolean; error?: { code?: string } }) => boolean;
}

const KINDS: Kind[] = [
  { kind: 'leave (no meeting)', command: 'leave', args: {}, expect: (r) => r.ok === true },
  { kind: 'logs 20 lines', command: 'logs', args: { lines: 20 }, expect: (r) => r.ok === true },
  { kind: 'bad_request', command: 'logs', args: { lines: 1, nope: true }, expect: (r) => r.ok === false && r.error?.code === 'bad_request' },
];

async function rssMb(pid: number): Promise<number> {
  const t = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(t)?.[1]);
  if (!Number.isFinite(kb)) throw new MeasurementError(`commands: no VmRSS for ${pid}`);
  return round1(kb / 1024);
}

export async function measureCommands(o: { commands: number; window: number; log: (l: string) => void }): Promise<CommandsResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-bench-commands-'));
  const broker = await startMosquitto(dir, ['max_queued_messages 10000', 'max_queued_bytes 67108864']);
  const dataDir = await mkdtemp(path.join(dir, 'data-'));
  const cfg = path.join(dir, 'config.json');
  await writeFile(cfg, JSON.stringify({ deviceId: DEVICE, groupId: GROUP, name: 'Bench commune', mqtt: { url: broker.url }, dataDir, media: { source: 'test' }, health: { periodS: 3600 }, log: { level: 'info' } }));
  const hub = mqtt.connect(broker.url, { clientId: `bench-cmd-hub-${process.pid}`, protocolVersion: 5, clean: true });
  const agent = track(spawn(process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT }));
  let stderr = '';
  agent.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  try {
    await new Promise<void>((r, j) => (hub.once('connect', () => r()), hub.once('error', j)));
    const replies = new Map<string, { ok?: boolean; error?: { code?: string } }>();
    let onReply: (() => void) | null = null;
    let online: (() => void) | null = null;
    hub.on('message', (topic, payload) => {
      if (!payload.length) return;
      const msg = JSON.parse(payload.toString()) as Record<string, unknown>;
      if (topic.endsWith('/reply')) {
        replies.set(String(msg.id), msg as { ok?: boolean });
        onReply?.();
      } else if (topic.endsWith('/state') && msg.state === 'idle') online?.();
    });
    await hub.subscribeAsync([`ep/v1/dev/${DEVICE}/reply`, `ep/v1/dev/${DEVICE}/state`], { qos: 1 });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new MeasurementError(`commands: the agent did not report idle within 30 s: ${stderr.slice(-300)}`)), 30_000);
      online = () => (clearTimeout(t), resolve());
    });
    const kinds: CommandKindResult[] = [];
    for (const k of KINDS) {
      const ids = Array.from({ length: o.commands }, (_, i) => `b-${k.command}-${kinds.length}-${i}-${Date.now()}`);
      const answered = (): number => ids.reduce((n, id) => n + (replies.has(id) ? 1 : 0), 0);
      const cpu0 = procCpuSeconds(agent.pid!);
      const t0 = monoMs();
      let sent = 0;
      let got = 0;
      await new Promise<void>((resolve, reject) => {
        const guard = setTimeout(() => reject(new MeasurementError(`commands: ${k.kind}: ${got} of ${o.commands} replies within 120 s`)), 120_000);
        const pump = (): void => {
          got = answered();
          if (got >= o.commands) return void (clearTimeout(guard), (onReply = null), resolve());
          while (sent < o.commands && sent - got < o.window) {
            const id = ids[sent++]!;
            void hub.publishAsync(`ep/v1/dev/${DEVICE}/cmd/${k.command}`, JSON.stringify({ id, args: k.args }), { qos: 1 });
          }
        };
        onReply = pump;
        pump();
      });
      const seconds = (monoMs() - t0) / 1000;
      const cpu1 = procCpuSeconds(agent.pid!);
      if (cpu0 === null || cpu1 === null) throw new MeasurementError(`commands: the agent exited: ${stderr.slice(-300)}`);
      const wrong = ids.filter((id) => !k.expect(replies.get(id)!)).length;
      const r: CommandKindResult = {
        kind: k.kind,
        commands: o.commands,
        seconds: round1(seconds),
        commandsPerSecond: round1(o.commands / seconds),
        cpuMsPerCommand: Math.round(((cpu1 - cpu0) * 1000 * 100) / o.commands) / 100,
        wrongReplies: wrong,
      };
      o.log(`commands: ${r.kind}: ${r.commands} in ${r.seconds} s = ${r.commandsPerSecond}/s, agent CPU ${r.cpuMsPerCommand} ms each${wrong ? `, ${wrong} WRONG replies` : ''}`);
      kinds.push(r);
    }
    const rssAfterMb = await rssMb(agent.pid!);
    return { kinds, rssAfterMb };
  } finally {
    await endChild(agent, 'SIGTERM', 10_000);
    await hub.endAsync();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Goals: 5× the throughput found by the flood at 05ec585 (~45 commands/s, ~21 ms of agent CPU each). */
export const commandsSection: BenchSection = {
  name: 'commands',
  parts: ['throughput'],
  async run(ctx, parts) {
    const unmeasured: Record<string, string> = {};
    const fields = ['slowestCommandsPerSecond', 'worstCpuMsPerCommand'];
    const r = await part('throughput', parts, unmeasured, fields, () => measureCommands({ commands: ctx.options.commandBurst, window: 100, log: ctx.log }));
    const data = {
      slowestCommandsPerSecond: r ? Math.min(...r.kinds.map((k) => k.commandsPerSecond)) : null,
      worstCpuMsPerCommand: r ? Math.max(...r.kinds.map((k) => k.cpuMsPerCommand)) : null,
      wrongReplies: r ? r.kinds.reduce((n, k) => n + k.wrongReplies, 0) : null,
      rssAfterMb: r?.rssAfterMb ?? null,
      kinds: r?.kinds ?? [],
    };
    const goals = [
      goal('slowestCommandsPerSecond', '≥ 225 /s', data.slowestCommandsPerSecond, (v) => v >= 225),
      goal('worstCpuMsPerCommand', '≤ 4.2 ms', data.worstCpuMsPerCommand, (v) => v <= 4.2),
      goal('wrongReplies', '= 0', data.wrongReplies, (v) => v === 0),
    ];
    const { t, row, met } = sectionTable(`commands (ep run against Mosquitto; bursts of ${ctx.options.commandBurst}, ≤ 100 unanswered)`, goals, 36);
    row('commands/s (slowest kind)', fmt(data.slowestCommandsPerSecond, ' /s'), met('slowestCommandsPerSecond'));
    row('agent CPU per command (worst kind)', fmt(data.worstCpuMsPerCommand, ' ms'), met('worstCpuMsPerCommand'));
    row('wrong replies (all kinds)', fmt(data.wrongReplies), met('wrongReplies'));
    row('agent RSS after the bursts', fmt(data.rssAfterMb, ' MB'));
    for (const k of data.kinds) t.push(`  ${k.kind.padEnd(22)} ${String(k.commandsPerSecond).padStart(7)} /s  ${String(k.cpuMsPerCommand).padStart(6)} ms CPU each`);
    for (const [f, why] of Object.entries(unmeasured)) t.push(`  NOT MEASURED ${f}: ${why}`);
    return { data, unmeasured, skipped: [], goals, table: t };
  },
};
