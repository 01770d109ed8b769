/**
 * `ep fleet-sim --count N [--broker URL] [--group-size G] [--json]`: N simulated boxes (the
 * real agent's control plane, media off) on one broker, measured (device/fleet-sim/).
 * `--serve`: start them and keep them up until Ctrl-C (to try `ep fleet` against them).
 * Exit 0 whenever it measured (the numbers say how it went); 1 only when it could not.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../../lib/index.js';
import { MAX_SIM_BOXES, SimBroker, SimFleet, makeFleetDir, runFleetSim } from '../fleet-sim/index.js';

type Out = (s: string) => void;

const USAGE = `usage: ep fleet-sim --count N [--broker URL] [--group-size G] [--json] [--serve] [--log-level L]
  --count N        boxes to simulate (1–${MAX_SIM_BOXES})
  --broker URL     an MQTT broker to use (mqtt://…, anonymous); absent: our own Mosquitto,
                   restarted once to measure the reconnect storm
  --group-size G   boxes per group (default 200, a province hub's)
  --json           one JSON object: {"n","connectS","p50ReplyMs","p99ReplyMs","reconnectAllS","leftBehind",…}
  --serve          no measurement: start the boxes, print the broker URL, run until Ctrl-C
  --log-level L    the boxes' log level on stderr (default warn)`;

export async function fleetSimCommand(argv: string[], out: Out, err: Out): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { count: { type: 'string' }, broker: { type: 'string' }, 'group-size': { type: 'string' }, json: { type: 'boolean', default: false }, serve: { type: 'boolean', default: false }, 'log-level': { type: 'string', default: 'warn' } },
      strict: true,
    }));
  } catch (e) {
    err(`ep fleet-sim: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const count = Number(values.count);
  const groupSize = values['group-size'] === undefined ? 200 : Number(values['group-size']);
  const problems = [
    ...(Number.isInteger(count) && count >= 1 && count <= MAX_SIM_BOXES ? [] : [`--count: an integer from 1 to ${MAX_SIM_BOXES} is required, got ${JSON.stringify(values.count ?? null)}`]),
    ...(Number.isInteger(groupSize) && groupSize >= 1 ? [] : [`--group-size: a positive integer, got ${JSON.stringify(values['group-size'])}`]),
    ...(values.broker === undefined || /^mqtts?:\/\/./.test(values.broker) ? [] : ['--broker: an mqtt:// or mqtts:// URL']),
    ...(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(values['log-level']!) ? [] : ['--log-level: fatal, error, warn, info, debug or trace']),
  ];
  if (problems.length) {
    err(`ep fleet-sim: ${problems.join('; ')}\n${USAGE}`);
    return 2;
  }
  const logger = createLogger({ level: values['log-level'], name: 'fleet-sim', destination: process.stderr });
  if (values.serve) return serve(count, groupSize, values.broker, logger, out);
  const r = await runFleetSim({ count, groupSize, logger, ...(values.broker ? { brokerUrl: values.broker } : {}), say: values.json ? err : out });
  if (values.json) out(JSON.stringify(r));
  else {
    out(`n ${r.n}: connected ${r.connected} in ${r.connectS ?? '—'} s; group join p50 ${r.p50ReplyMs ?? '—'} ms, p99 ${r.p99ReplyMs ?? '—'} ms (${r.replies} replies)`);
    out(`reconnect storm: ${r.broker === 'given' ? 'not measured (a given broker is not restarted)' : `all back in ${r.reconnectAllS ?? '—'} s, peak ${r.reconnectPeakPerS ?? '—'}/s, left behind ${r.leftBehind}`}; rss ${r.rssMb} MB`);
    for (const p of r.problems) out(`problem: ${p}`);
  }
  // It could not measure: no box ever connected.
  return r.connected > 0 ? 0 : 1;
}

async function serve(count: number, groupSize: number, brokerUrl: string | undefined, logger: ReturnType<typeof createLogger>, out: Out): Promise<number> {
  const broker = brokerUrl ? null : await SimBroker.start();
  const url = brokerUrl ?? broker!.url;
  const fleet = new SimFleet({ count, groupSize, mqttUrl: url, dir: await makeFleetDir(), logger });
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
