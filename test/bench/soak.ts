/**
 * The soak (issue [proof]): the real `ep run` in one long meeting — a real Mosquitto, a
 * LocalHub in its own process as the SRT peer, media flowing both ways the whole time —
 * with the resident memory and open file descriptors of the agent and its media
 * worker(s) sampled each minute. Reported: growth from the first sample (one minute into
 * the meeting) to the last, and the least-squares slope extrapolated to a 4-hour meeting.
 * Only with `--only soak` (30 minutes by default; `--soak-minutes N` for a shorter try).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import type { Capabilities } from '../../gst-pipelines/types.js';
import { AGENT_NODE_FLAGS } from '../../device/cli/run.js';
import { startMosquitto } from './agent.js';
import { HubProcess } from './hub-process.js';
import { childPids, endChild, MeasurementError, monoMs, round1, round3, sleep, track, waitFor } from './machine.js';
import { fmt, goal, sectionTable, type BenchSection } from './report.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');
const DEVICE = 'soak-box';
const SOAK_SRT_LATENCY_MS = 120;

export interface SoakSample {
  minute: number;
  agentRssMb: number;
  agentFds: number;
  /** Summed over the agent's child processes (the worker in the meeting and the warm one). */
  workerRssMb: number;
  workerFds: number;
  workerPids: number[];
  hubReceivedFps: number | null;
}

export interface SoakResult {
  minutes: number;
  samples: SoakSample[];
  /** Agent + workers, last sample − first sample. */
  rssGrowthMb: number;
  fdGrowth: number;
  agentRssGrowthMb: number;
  workerRssGrowthMb: number;
  /** Least-squares slope of agent + workers RSS, × 4 h. */
  rssSlopeMbPer4h: number;
  fdSlopePer4h: number;
  /** Distinct worker pids seen: 2 when only the meeting's worker and one warm worker ran. */
  workerPidsSeen: number;
  minHubReceivedFps: number | null;
}

function statusKb(pid: number, field: string): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Least-squares slope of y over x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export async function measureSoak(o: { minutes: number; caps: Capabilities; log: (l: string) => void }): Promise<SoakResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-bench-soak-'));
  const broker = await startMosquitto(dir);
  const hub = await HubProcess.start(o.caps, SOAK_SRT_LATENCY_MS);
  const client = mqtt.connect(broker.url, { clientId: `soak-hub-${process.pid}`, protocolVersion: 5, clean: true });
  let agent: ReturnType<typeof spawn> | null = null;
  try {
    await new Promise<void>((r, j) => (client.once('connect', () => r()), client.once('error', j)));
    let state = '';
    let online = false;
    client.on('message', (topic, payload) => {
      if (!payload.length) return;
      const m = JSON.parse(payload.toString()) as Record<string, unknown>;
      if (topic.endsWith('/status') && m.online === true) online = true;
      if (topic.endsWith('/state') && typeof m.state === 'string') state = m.state;
    });
    await client.subscribeAsync([`ep/v1/dev/${DEVICE}/status`, `ep/v1/dev/${DEVICE}/state`]);
    const cfg = path.join(dir, 'config.json');
    await writeFile(cfg, JSON.stringify({ deviceId: DEVICE, groupId: 'soak', name: 'Soak commune', mqtt: { url: broker.url }, dataDir: path.join(dir, 'data'), media: { source: 'test' }, health: { periodS: 30 }, log: { level: 'warn' }, field: { statusPage: { port: 0, host: '127.0.0.1' } } }));
    agent = track(spawn(process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT }));
    let stderr = '';
    agent.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    let exited: string | null = null;
    agent.once('exit', (c, s) => (exited = `the agent exited (${s ?? c}) ${stderr.trim().slice(-300)}`));
    await waitFor('the agent to be online and idle', () => {
      if (exited) throw new MeasurementError(`soak: ${exited}`);
      return online && state === 'idle';
    }, 30_000, 100);
    const pid = agent.pid!;
    await client.publishAsync(`ep/v1/dev/${DEVICE}/cmd/join`, JSON.stringify({ id: `soak-join-${Date.now()}`, args: { ...hub.joinSpec, meetingId: `soak-${Date.now()}` } }), { qos: 1 });
    const fps = async (): Promise<number | null> => (await hub.query()).stats?.receive.fps ?? null;
    await waitFor('the agent to report in_meeting', () => state === 'in_meeting', 20_000, 100).catch(() => {
      throw new MeasurementError(`soak: the agent did not reach in_meeting within 20 s of the join (state ${state})`);
    });
    const t0 = monoMs();
    while ((await fps()) === null || ((await fps()) ?? 0) < 20) {
      if (monoMs() - t0 > 20_000) throw new MeasurementError(`soak: no media at the hub 20 s after the join (agent state ${state})`);
      await sleep(1000);
    }
    o.log(`soak: in the meeting (state ${state}); sampling each minute for ${o.minutes} min …`);
    const samples: SoakSample[] = [];
    const start = monoMs();
    for (let minute = 1; minute <= o.minutes; minute++) {
      // Sample on the minute from the start: the sampling's own time does not drift the schedule.
      await sleep(Math.max(0, start + minute * 60_000 - monoMs()));
      if (exited) throw new MeasurementError(`soak: ${exited} at minute ${minute}`);
      const workers = childPids(pid);
      const s: SoakSample = {
        minute,
        agentRssMb: round1((statusKb(pid, 'VmRSS') ?? NaN) / 1024),
        agentFds: fdCount(pid),
        workerRssMb: round1(workers.reduce((a, w) => a + (statusKb(w, 'VmRSS') ?? 0), 0) / 1024),
        workerFds: workers.reduce((a, w) => a + fdCount(w), 0),
        workerPids: workers,
        hubReceivedFps: await fps(),
      };
      samples.push(s);
      o.log(`soak: minute ${minute}: agent ${s.agentRssMb} MB / ${s.agentFds} fds, workers ${s.workerRssMb} MB / ${s.workerFds} fds (${workers.length}), hub gets ${s.hubReceivedFps ?? 'no'} fps`);
    }
    return summarise(o.minutes, samples);
  } finally {
    if (agent) await endChild(agent, 'SIGTERM', 5000);
    await client.endAsync();
    await hub.stop();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export function summarise(minutes: number, samples: SoakSample[]): SoakResult {
  const first = samples[0];
  const last = samples.at(-1);
  if (!first || !last) throw new MeasurementError('soak: no samples');
  const total = (s: SoakSample): number => s.agentRssMb + s.workerRssMb;
  const fds = (s: SoakSample): number => s.agentFds + s.workerFds;
  const hours = samples.map((s) => s.minute / 60);
  const fpsSeen = samples.map((s) => s.hubReceivedFps ?? 0);
  return {
    minutes,
    samples,
    rssGrowthMb: round1(total(last) - total(first)),
    fdGrowth: fds(last) - fds(first),
    agentRssGrowthMb: round1(last.agentRssMb - first.agentRssMb),
    workerRssGrowthMb: round1(last.workerRssMb - first.workerRssMb),
    rssSlopeMbPer4h: round1(slope(hours, samples.map(total)) * 4),
    fdSlopePer4h: round3(slope(hours, samples.map(fds)) * 4),
    workerPidsSeen: new Set(samples.flatMap((s) => s.workerPids)).size,
    minHubReceivedFps: Math.min(...fpsSeen),
  };
}

export const soakSection: BenchSection = {
  name: 'soak',
  parts: ['all'],
  async run(ctx) {
    const unmeasured: Record<string, string> = {};
    let r: SoakResult | null = null;
    try {
      r = await measureSoak({ minutes: ctx.options.soakMinutes, caps: await ctx.caps(), log: ctx.log });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      for (const f of ['rssGrowthMb', 'fdGrowth']) unmeasured[f] = why;
    }
    if (r && r.minHubReceivedFps !== null && r.minHubReceivedFps < 20) unmeasured.minHubReceivedFps = `media stalled during the soak (the hub got ${r.minHubReceivedFps} fps at one sample)`;
    const data = {
      minutes: ctx.options.soakMinutes,
      rssGrowthMb: r?.rssGrowthMb ?? null,
      fdGrowth: r?.fdGrowth ?? null,
      rssSlopeMbPer4h: r?.rssSlopeMbPer4h ?? null,
      fdSlopePer4h: r?.fdSlopePer4h ?? null,
      agentRssGrowthMb: r?.agentRssGrowthMb ?? null,
      workerRssGrowthMb: r?.workerRssGrowthMb ?? null,
      workerPidsSeen: r?.workerPidsSeen ?? null,
      minHubReceivedFps: r?.minHubReceivedFps ?? null,
      samples: r?.samples ?? [],
    };
    const goals = [
      goal('rssSlopeMbPer4h', '≤ 20 MB', data.rssSlopeMbPer4h, (v) => v <= 20),
      goal('fdGrowth', '= 0', data.fdGrowth, (v) => v === 0),
    ];
    const { t, row, met } = sectionTable(`soak (ep run in a ${data.minutes}-minute meeting, samples each minute)`, goals, 36);
    row('RSS growth, agent + workers', fmt(data.rssGrowthMb, ' MB'), `(agent ${fmt(data.agentRssGrowthMb)}, workers ${fmt(data.workerRssGrowthMb)})`);
    row('RSS slope extrapolated to 4 h', fmt(data.rssSlopeMbPer4h, ' MB'), met('rssSlopeMbPer4h'));
    row('open fds growth', fmt(data.fdGrowth), met('fdGrowth'));
    row('fd slope extrapolated to 4 h', fmt(data.fdSlopePer4h));
    row('hub received, lowest sample', fmt(data.minHubReceivedFps, ' fps'), `(worker pids seen: ${fmt(data.workerPidsSeen)})`);
    for (const [f, why] of Object.entries(unmeasured)) t.push(`  NOT MEASURED ${f}: ${why}`);
    return { data, unmeasured, skipped: [], goals, table: t };
  },
};
