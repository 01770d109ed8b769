/**
 * Where a box session's CPU goes, per process and thread: the bench's box session (the
 * same HubProcess, plan and prewarmed MediaSupervisor as the CPU benchmark's `worker`
 * variant, or gst-launch-1.0 on the same string) runs for a while, and the threads' CPU
 * from /proc is printed for one window. The pids are printed at once, so a profiler
 * can be attached meanwhile:
 *
 *   node dist/test/bench/profile-session.js [--variant worker|gst] [--from 25] [--to 45]
 *   perf record -F 999 -g -p <pids it printed> -- sleep 20     # from another shell
 *
 * With NODE_OPTIONS=--perf-basic-prof the workers write /tmp/perf-PID.map, so perf names
 * JavaScript functions. Not a benchmark (no ratio, no goal): the numbers it prints are
 * for finding what to change; `npm run bench` measures the result.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import { forkSpawner } from '../../gst-pipelines/supervisor/worker-process.js';
import { withNativePlugins } from '../../gst-pipelines/native/plugin.js';
import { probe } from '../../gst-pipelines/probe/probe.js';
import { HubProcess, boxPlan, CPU_SRT_LATENCY_MS } from './media-cpu.js';
import { childPids, endChild, launchArgv, procThreadCpu, sleep } from './machine.js';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const variant = option('variant', 'worker');
const from = Number(option('from', '25'));
const to = Number(option('to', '45'));
if (!['worker', 'gst'].includes(variant) || !(from >= 0) || !(to > from)) {
  console.error('usage: profile-session.js [--variant worker|gst] [--from SECONDS] [--to SECONDS]');
  process.exit(2);
}

const caps = await probe();
const hub = await HubProcess.start(caps, CPU_SRT_LATENCY_MS);
const plan = boxPlan(caps, hub.joinSpec);
let supervisor: MediaSupervisor | null = null;
let gst: ChildProcess | null = null;
const t0 = Date.now();
if (variant === 'gst') {
  gst = spawn('gst-launch-1.0', launchArgv(plan.direct), { stdio: 'ignore', env: withNativePlugins(process.env) });
} else {
  supervisor = new MediaSupervisor({ spawner: forkSpawner({ stderr: 'ignore' }) });
  await supervisor.prewarm();
  await supervisor.start(plan);
}
const pids = (): Array<{ role: string; pid: number }> =>
  gst?.pid
    ? [{ role: 'gst-launch', pid: gst.pid }]
    : [{ role: 'supervisor', pid: process.pid }, ...childPids(process.pid).filter((p) => p !== hub.pid).map((pid, i) => ({ role: i === 0 ? 'worker' : 'warm worker', pid }))];
await sleep(1000);
console.log(JSON.stringify({ pids: pids(), hub: hub.pid }));

const snap = (): Map<string, { role: string; name: string; seconds: number }> => {
  const m = new Map<string, { role: string; name: string; seconds: number }>();
  for (const { role, pid } of pids()) for (const [tid, t] of procThreadCpu(pid)) m.set(`${pid}/${tid}`, { role, name: t.name, seconds: t.seconds });
  return m;
};
await sleep(Math.max(0, from * 1000 - (Date.now() - t0)));
const a = snap();
await sleep((to - from) * 1000);
const b = snap();
const rows = [...b].map(([key, t]) => ({ role: t.role, thread: `${t.name} (${key})`, cpuSeconds: Math.round((t.seconds - (a.get(key)?.seconds ?? 0)) * 100) / 100 }));
console.log(JSON.stringify({ windowSeconds: [from, to], threads: rows.filter((r) => r.cpuSeconds > 0).sort((x, y) => y.cpuSeconds - x.cpuSeconds) }, null, 1));

if (supervisor) await supervisor.close();
if (gst) await endChild(gst, 'SIGINT', 3000);
await hub.stop();
process.exit(0);
