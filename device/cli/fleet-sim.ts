/**
 * `ep fleet-sim --count N [--broker URL] [--group-size G] [--json]`: N simulated boxes (the
 * real agent's control plane, media off) on one broker, measured (device/fleet-sim/).
 * `--serve`: start them and keep them up until Ctrl-C (to try `ep fleet` against them).
 * Exit 0 whenever it measured (the numbers say how it went); 1 only when it could not.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '../../lib/index.js';
import { MAX_SIM_BOXES, SimBroker, SimFleet, makeFleetDir, runFleetSim } from '../fleet-sim/index.js';

type Out = (s: string) => void;

const USAGE = `usage: ep fleet-sim --count N [--broker URL] [--group-size G] [--procs P] [--prefix X] [--json] [--serve] [--log-level L]
  --count N        boxes to simulate (1–${MAX_SIM_BOXES})
  --broker URL     an MQTT broker to use (mqtt://…, anonymous); absent: our own Mosquitto,
                   restarted once to measure the reconnect storm
  --group-size G   boxes per group (default 200, a province hub's)
  --procs P        run the boxes in P child processes (one per core of a bigger machine);
                   default: in this process
  --prefix X       the boxes' ids X-00001…, groups X-g001… (default sim): one per machine
                   when several machines run their share against one --broker
  --json           one JSON object: {"n","connectS","p50ReplyMs","p99ReplyMs","reconnectAllS","leftBehind",…}
  --serve          no measurement: start the boxes, print the broker URL, run until Ctrl-C
  --log-level L    the boxes' log level on stderr (default warn)`;

export async function fleetSimCommand(argv: string[], out: Out, err: Out): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { count: { type: 'string' }, broker: { type: 'string' }, 'group-size': { type: 'string' }, procs: { type: 'string' }, prefix: { type: 'string' }, json: { type: 'boolean', default: false }, serve: { type: 'boolean', default: false }, 'log-level': { type: 'string', default: 'warn' } },
      strict: true,
    }));
  } catch (e) {
    err(`ep fleet-sim: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const count = Number(values.count);
  const groupSize = values['group-size'] === undefined ? 200 : Number(values['group-size']);
  const procs = values.procs === undefined ? 0 : Number(values.procs);
  const problems = [
    ...(Number.isInteger(count) && count >= 1 && count <= MAX_SIM_BOXES ? [] : [`--count: an integer from 1 to ${MAX_SIM_BOXES} is required, got ${JSON.stringify(values.count ?? null)}`]),
    ...(Number.isInteger(groupSize) && groupSize >= 1 ? [] : [`--group-size: a positive integer, got ${JSON.stringify(values['group-size'])}`]),
    ...(values.prefix === undefined || /^[a-z0-9][a-z0-9-]{0,40}$/.test(values.prefix) ? [] : ['--prefix: 1–41 of a-z, 0-9 and -, starting with a letter or digit (it begins every deviceId)']),
    ...(Number.isInteger(procs) && procs >= 0 && procs <= 256 ? [] : [`--procs: an integer from 0 to 256, got ${JSON.stringify(values.procs)}`]),
    ...(values.broker === undefined || /^mqtts?:\/\/./.test(values.broker) ? [] : ['--broker: an mqtt:// or mqtts:// URL']),
    ...(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(values['log-level']!) ? [] : ['--log-level: fatal, error, warn, info, debug or trace']),
  ];
  if (problems.length) {
    err(`ep fleet-sim: ${problems.join('; ')}\n${USAGE}`);
    return 2;
  }
  const need = count * FDS_PER_BOX + 1024;
  const limit = openFilesLimit();
  if (limit !== null && limit < need && process.env.EP_FLEET_SIM_FDS === undefined) return again(need);
  if (limit !== null && limit < need) err(`ep fleet-sim: ${limit} open files allowed, ${need} wanted (${FDS_PER_BOX} per box): a join may fail with EMFILE (raise it: ulimit -n ${need})`);
  const logger = createLogger({ level: values['log-level'], name: 'fleet-sim', destination: process.stderr });
  // Ctrl-C or a TERM mid-measurement: exit through process.exit, so the broker we started goes too (broker.ts).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) if (!values.serve) process.once(sig, () => process.exit(130));
  if (values.serve) return serve(count, groupSize, values.broker, logger, out, values.prefix);
  const r = await runFleetSim({ count, groupSize, procs, logLevel: values['log-level']!, logger, ...(values.prefix ? { prefix: values.prefix } : {}), ...(values.broker ? { brokerUrl: values.broker } : {}), say: values.json ? err : out });
  if (values.json) out(JSON.stringify(r));
  else {
    out(`n ${r.n}: connected ${r.connected} in ${r.connectS ?? '—'} s; group join p50 ${r.p50ReplyMs ?? '—'} ms, p99 ${r.p99ReplyMs ?? '—'} ms (${r.replies} replies)`);
    out(`reconnect storm: ${r.broker === 'given' ? 'not measured (a given broker is not restarted)' : `all back in ${r.reconnectAllS ?? '—'} s, peak ${r.reconnectPeakPerS ?? '—'}/s, left behind ${r.leftBehind}`}; rss ${r.rssMb} MB`);
    for (const p of r.problems) out(`problem: ${p}`);
  }
  // It could not measure: no box ever connected.
  return r.connected > 0 ? 0 : 1;
}

/**
 * Files a box may hold open at once: its socket, and at a join the temp file and directory
 * of each atomic write (meeting, outbox, state) and its journal. Measured: 5,000 boxes
 * under the 20,000 of this machine's limit failed joins with EMFILE.
 */
const FDS_PER_BOX = 8;

/** This process's soft limit of open files (null where /proc says nothing). */
function openFilesLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Runs this same command again under a shell that raises the limit (up to the hard limit; root raises that too). */
function again(need: number): Promise<number> {
  const script = `ulimit -n ${need} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`;
  const child = spawn('sh', ['-c', script, process.execPath, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, EP_FLEET_SIM_FDS: String(need) } });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

async function serve(count: number, groupSize: number, brokerUrl: string | undefined, logger: ReturnType<typeof createLogger>, out: Out, prefix?: string): Promise<number> {
  const broker = brokerUrl ? null : await SimBroker.start();
  const url = brokerUrl ?? broker!.url;
  const fleet = new SimFleet({ count, groupSize, mqttUrl: url, dir: await makeFleetDir(), logger, ...(prefix ? { prefix } : {}) });
  const t0 = Date.now();
  await fleet.start();
  const missing = await fleet.allConnectedSince(t0, 300_000);
  out(`fleet-sim: ${count - missing.length}/${count} boxes connected to ${url} in ${((Date.now() - t0) / 1000).toFixed(1)} s; groups ${[...fleet.groups.keys()].join(', ')}`);
  out('try: ep fleet list --broker ' + url + '   (Ctrl-C stops the boxes)');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await fleet.dispose();
  await broker?.stop();
  return 0;
}
