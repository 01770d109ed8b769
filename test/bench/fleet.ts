/**
 * The fleet at national scale (docs/scale.md): `ep fleet-sim --count N --procs CORES --json`
 * — the compiled CLI in a child process, its own Mosquitto — at N = 1,000 and 5,000. Only with
 * `--only fleet` (about 4 minutes, both cores busy): the default run stays under 15 minutes.
 * Goals at 5,000 (issue 18): group-join reply p99 ≤ 1 s, every box back within 60 s of a
 * broker restart, no box left behind.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetSimResult } from '../../device/fleet-sim/index.js';
import { fmt, goal, sectionTable, type BenchSection } from './report.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'device', 'cli', 'ep.js');

/** The boxes in one child process per core (--procs): the hub's client and the broker keep this one. */
const PROCS = os.availableParallelism();

function fleetSim(n: number): Promise<FleetSimResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, 'fleet-sim', '--count', String(n), '--procs', String(PROCS), '--json'], { timeout: 15 * 60_000, maxBuffer: 64 * 2 ** 20 }, (err, stdout, stderr) => {
      const line = String(stdout).trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as FleetSimResult);
      } catch {
        reject(new Error(`ep fleet-sim --count ${n}: ${err?.message ?? 'no JSON'}: ${String(stderr).slice(-1000)}`));
      }
    });
  });
}

export const fleetSection: BenchSection = {
  name: 'fleet',
  parts: ['n1000', 'n5000'],
  async run(ctx, parts) {
    const runs: Record<string, FleetSimResult> = {};
    const unmeasured: Record<string, string> = {};
    for (const n of [1000, 5000]) {
      if (!parts.has(`n${n}`)) continue;
      ctx.log(`fleet: ep fleet-sim --count ${n} --procs ${PROCS} --json`);
      try {
        runs[`n${n}`] = await fleetSim(n);
      } catch (e) {
        unmeasured[`n${n}`] = (e as Error).message;
      }
    }
    const at = runs.n5000 ?? null;
    const data = {
      fleet5000P99ReplyMs: at?.p99ReplyMs ?? null,
      fleet5000ReconnectAllS: at?.reconnectAllS ?? null,
      fleet5000LeftBehind: at ? at.leftBehind : null,
      runs,
    };
    const goals = [
      goal('fleet5000P99ReplyMs', '≤ 1000 ms', data.fleet5000P99ReplyMs, (v) => v <= 1000),
      goal('fleet5000ReconnectAllS', '≤ 60 s', data.fleet5000ReconnectAllS, (v) => v <= 60),
      goal('fleet5000LeftBehind', '= 0', data.fleet5000LeftBehind, (v) => v === 0),
    ];
    const { t, row, met } = sectionTable(`Fleet (ep fleet-sim: N agents, media off, in ${PROCS} processes; its own Mosquitto)`, goals, 30);
    for (const [k, r] of Object.entries(runs)) {
      const five = k === 'n5000';
      row(`${r.n}: connect all`, fmt(r.connectS, ' s'));
      row(`${r.n}: join reply p50 / p99`, `${fmt(r.p50ReplyMs)} / ${fmt(r.p99ReplyMs)} ms`, five ? met('fleet5000P99ReplyMs') : '');
      row(`${r.n}: delivered p50 / p99`, `${fmt(r.p50DeliverMs)} / ${fmt(r.p99DeliverMs)} ms`, `publish → each box's client; CPU ${fmt(r.cpuMsPerJoin)} ms per box join`);
      row(`${r.n}: storm all back`, fmt(r.reconnectAllS, ' s'), five ? met('fleet5000ReconnectAllS') : `peak ${fmt(r.reconnectPeakPerS)}/s`);
      row(`${r.n}: left behind`, fmt(r.leftBehind), five ? met('fleet5000LeftBehind') : '');
      row(`${r.n}: memory`, fmt(r.rssMb, ' MB'), `${Math.round((r.rssMb * 1024) / r.n)} KB per box (rss of the whole process)`);
    }
    return { data, unmeasured, skipped: this.parts.filter((p) => !parts.has(p)), goals, table: t };
  },
};
