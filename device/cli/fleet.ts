/**
 * `ep fleet list|join|leave|ota`: the district's operator tool over the hub ↔ box MQTT
 * contract (docs/fleet-operator.md). Argument parsing, printing and exit codes only; the
 * work is in device/fleet/.
 *
 * Exit codes: 0 done; 1 not every box got there (join, leave) or the rollout halted;
 * 2 bad options or input (nothing was published); 3 the broker could not be reached or
 * refused us. The password comes from EP_FLEET_PASSWORD only and is never printed.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CorruptFileError, readFileCapped, systemClock } from '../../lib/index.js';
import { DecodeError, MAX_PAYLOAD_BYTES, createContract, joinSpecSchema, type JoinSpec } from '../contract/index.js';
import {
  DEFAULT_WAIT_MS,
  FleetUsageError,
  checkBrokerUrl,
  checkManifestUrl,
  fetchTargetManifest,
  isFleetConnectError,
  isFleetUsageError,
  listJson,
  listText,
  meetingText,
  openFleet,
  parseWaves,
  rolloutEventText,
  rolloutJson,
  rolloutSummaryText,
  runJoin,
  runLeave,
  runRollout,
  type FleetSession,
  type OpenOptions,
} from '../fleet/index.js';

type Out = (s: string) => void;

export const EX_NOT_DONE = 1;
export const EX_USAGE = 2;
export const EX_CONNECT = 3;

export const FLEET_USAGE = `usage: ep fleet <list|join|leave|ota> --broker URL [options]

  list  [--group G] [--json] [--wait-ms N]
        every box from its retained status and state: id, name, group, online, state,
        version, meeting, ota phase, faults (sorted by id)
  join  --group G --spec FILE [--timeout-s N] [--json]
        set the group's retained meeting, send join, wait until every online box of the
        group is in the meeting (exit 1 naming those that are not)
  leave --group G [--timeout-s N] [--json]
        clear the retained meeting, send leave, wait until the boxes are out of it
  ota   --group G --manifest URL --waves 1,10,50,100 [--max-failure-pct 10]
        [--wave-timeout-s 600] [--when idle|now] [--json]
        a staged rollout over the group's online boxes; halts when a wave's failure rate
        is over --max-failure-pct

connection (every subcommand):
  --broker mqtt://host:1883 | mqtts://host:8883   (required)
  --username U        the password from the environment variable EP_FLEET_PASSWORD
  --ca FILE --cert FILE --key FILE                  TLS (CA, client certificate and key)
  --wait-ms N         how long to collect the retained messages at most (default ${DEFAULT_WAIT_MS})

exit codes: 0 done; 1 not every box got there, or the rollout halted; 2 bad options or
input (nothing published); 3 the broker could not be reached or refused us`;

const ID_RE = /^[a-z0-9][a-z0-9-]{2,63}$/;

const COMMON = {
  broker: { type: 'string' },
  username: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  json: { type: 'boolean', default: false },
  'wait-ms': { type: 'string' },
  group: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

const SPECIFIC = {
  list: {},
  join: { spec: { type: 'string' }, 'timeout-s': { type: 'string' } },
  leave: { 'timeout-s': { type: 'string' } },
  ota: {
    manifest: { type: 'string' },
    waves: { type: 'string' },
    'max-failure-pct': { type: 'string' },
    'wave-timeout-s': { type: 'string' },
    when: { type: 'string' },
  },
} as const satisfies Record<string, ParseArgsConfig['options']>;

type Sub = keyof typeof SPECIFIC;
type Values = Record<string, string | boolean | undefined>;

/** A number option in [min, max], or its default. */
function numberOption(v: Values, name: string, def: number, min: number, max: number): number {
  const raw = v[name];
  if (raw === undefined) return def;
  const n = typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) throw new FleetUsageError(`--${name}: a number from ${min} to ${max}`);
  return n;
}

function groupOption(v: Values, required: boolean): string | undefined {
  const g = v.group;
  if (g === undefined) {
    if (required) throw new FleetUsageError('--group is required');
    return undefined;
  }
  if (typeof g !== 'string' || !ID_RE.test(g)) throw new FleetUsageError('--group: a group id (a-z, 0-9 and -, 3 to 64 characters)');
  return g;
}

function openOptions(v: Values, env: NodeJS.ProcessEnv): OpenOptions {
  const broker = v.broker;
  if (typeof broker !== 'string') throw new FleetUsageError('--broker is required (mqtt://host:1883 or mqtts://host:8883)');
  checkBrokerUrl(broker);
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const password = env.EP_FLEET_PASSWORD;
  return {
    connect: {
      url: broker,
      ...(str('username') !== undefined ? { username: str('username') } : {}),
      ...(password ? { password } : {}),
      ...(str('ca') !== undefined ? { caFile: str('ca') } : {}),
      ...(str('cert') !== undefined ? { certFile: str('cert') } : {}),
      ...(str('key') !== undefined ? { keyFile: str('key') } : {}),
    },
    waitMs: numberOption(v, 'wait-ms', DEFAULT_WAIT_MS, 0, 600_000),
  };
}

/** Reads and validates the join spec: FleetUsageError with the path of every problem. */
export async function readJoinSpec(file: string): Promise<JoinSpec> {
  let bytes: Buffer | null;
  try {
    bytes = await readFileCapped(file, MAX_PAYLOAD_BYTES);
  } catch (e) {
    if (e instanceof CorruptFileError) throw new FleetUsageError(`--spec ${file}: ${e.message}`);
    throw new FleetUsageError(`--spec ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (bytes === null) throw new FleetUsageError(`--spec ${file}: no such file`);
  const c = createContract();
  try {
    return c.check<JoinSpec>(c.compile(joinSpecSchema), c.parseJson(bytes, 'spec'), 'spec');
  } catch (e) {
    if (e instanceof DecodeError) throw new FleetUsageError(`the join spec ${file} is not valid:\n  ${e.problems.join('\n  ')}`);
    throw e;
  }
}

async function withSession<T>(o: OpenOptions, f: (s: FleetSession) => Promise<T>): Promise<T> {
  const s = await openFleet(o);
  try {
    return await f(s);
  } finally {
    await s.close();
  }
}

async function list(v: Values, env: NodeJS.ProcessEnv, out: Out): Promise<number> {
  const group = groupOption(v, false);
  const o = openOptions(v, env);
  return withSession(o, async (s) => {
    const boxes = s.roster.list().filter((b) => group === undefined || b.group === group);
    const ignored = { malformed: s.roster.counts.malformed, overCapBoxes: s.roster.overCapBoxes };
    out(v.json ? JSON.stringify(listJson(boxes, ignored)) : listText(boxes, ignored));
    return 0;
  });
}

async function meeting(sub: 'join' | 'leave', v: Values, env: NodeJS.ProcessEnv, out: Out, err: Out): Promise<number> {
  const groupId = groupOption(v, true) as string;
  const timeoutMs = numberOption(v, 'timeout-s', 60, 1, 86_400) * 1000;
  let spec: JoinSpec | null = null;
  if (sub === 'join') {
    if (typeof v.spec !== 'string') throw new FleetUsageError('--spec FILE is required');
    spec = await readJoinSpec(v.spec);
  }
  const o = openOptions(v, env);
  const r = await withSession(o, (s) => (spec ? runJoin(s, spec, { groupId, timeoutMs, clock: systemClock }) : runLeave(s, { groupId, timeoutMs, clock: systemClock })));
  out(v.json ? JSON.stringify(r) : meetingText(r));
  if (!r.ok) err(`ep fleet ${sub}: ${r.notDone.length} box${r.notDone.length === 1 ? '' : 'es'} not ${sub === 'join' ? 'in' : 'out of'} the meeting: ${r.notDone.join(', ')}`);
  return r.ok ? 0 : EX_NOT_DONE;
}

async function ota(v: Values, env: NodeJS.ProcessEnv, out: Out): Promise<number> {
  const groupId = groupOption(v, true) as string;
  if (typeof v.manifest !== 'string') throw new FleetUsageError('--manifest URL is required');
  checkManifestUrl(v.manifest);
  if (typeof v.waves !== 'string') throw new FleetUsageError('--waves is required, e.g. --waves 1,10,50,100');
  const waves = parseWaves(v.waves);
  if (!waves.ok) throw new FleetUsageError(waves.problem);
  const maxFailurePct = numberOption(v, 'max-failure-pct', 10, 0, 100);
  const waveTimeoutMs = numberOption(v, 'wave-timeout-s', 600, 1, 86_400) * 1000;
  const when = v.when ?? 'idle';
  if (when !== 'idle' && when !== 'now') throw new FleetUsageError('--when: idle or now');
  const o = openOptions(v, env);
  const manifest = await fetchTargetManifest(v.manifest);
  const json = v.json === true;
  if (!json) out(`target: ${manifest.name} ${manifest.version} (${v.manifest}); waves ${waves.waves.join(', ')} %; halt over ${maxFailurePct} % failed`);
  const r = await withSession(o, (s) => {
    if (!json) out(`group ${groupId}: ${s.roster.onlineOf(groupId).length} online boxes`);
    return runRollout(s, {
      groupId,
      manifestUrl: v.manifest as string,
      target: manifest.version,
      waves: waves.waves,
      maxFailurePct,
      waveTimeoutMs,
      when,
      clock: systemClock,
      ...(json ? {} : { progress: (e) => out(rolloutEventText(e, maxFailurePct)) }),
    });
  });
  out(json ? JSON.stringify(rolloutJson(r)) : rolloutSummaryText(r, maxFailurePct));
  return r.halted ? EX_NOT_DONE : 0;
}

export async function fleetCommand(argv: string[], out: Out, err: Out, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    out(FLEET_USAGE);
    return sub === undefined ? EX_USAGE : 0;
  }
  if (!(sub in SPECIFIC)) {
    err(`ep fleet: unknown subcommand ${JSON.stringify(sub)}\n${FLEET_USAGE}`);
    return EX_USAGE;
  }
  let values: Values;
  try {
    values = parseArgs({ args: rest, options: { ...COMMON, ...SPECIFIC[sub as Sub] }, strict: true, allowPositionals: false }).values as Values;
  } catch (e) {
    err(`ep fleet ${sub}: ${(e as Error).message}`);
    return EX_USAGE;
  }
  if (values.help) {
    out(FLEET_USAGE);
    return 0;
  }
  try {
    if (sub === 'list') return await list(values, env, out);
    if (sub === 'join' || sub === 'leave') return await meeting(sub, values, env, out, err);
    return await ota(values, env, out);
  } catch (e) {
    const secret = env.EP_FLEET_PASSWORD;
    const msg = (m: string): string => (secret ? m.split(secret).join('***') : m);
    if (isFleetUsageError(e)) {
      err(`ep fleet ${sub}: ${msg(e.message)}`);
      return EX_USAGE;
    }
    if (isFleetConnectError(e)) {
      err(`ep fleet ${sub}: ${msg(e.message)}`);
      return EX_CONNECT;
    }
    err(`ep fleet ${sub}: ${msg((e as Error).message)}`);
    return EX_NOT_DONE;
  }
}
