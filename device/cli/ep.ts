#!/usr/bin/env node
/**
 * `ep`: the technician's and the service's command line. Each subcommand is a small
 * function returning an exit code; nothing runs at import except the dispatch below.
 */
import { parseArgs } from 'node:util';
import path from 'node:path';
// Subcommands are imported when used: `ep run` on the box must not carry the demo's
// broker, the local hub or the benchmark helpers in its memory.

const USAGE = `usage: ep <command> [options]

commands:
  run --config FILE                   the long-running agent (systemd starts this on the box)
  demo [--seconds N] [--out DIR]      a district hub and a commune box on this machine: the box
                                      joins the hub's meeting by itself; writes PNGs
  schemas [--out DIR] [--check]       write the contract's JSON Schemas (docs/schemas)
  probe [--json]                      what this box has: codecs, cameras, displays, audio
  media loopback [--seconds N] [--out DIR] [--passphrase P]
                                      a box and a local SRT hub exchange media; writes PNGs
  ota keygen|pack|sign|verify …       release side of updates: keys, bundles, signing, checking (ep ota)
  provision FILE | --boot             provision this box from an ep-provision.json (by hand, or
                                      the first-boot search of the boot partition and USB sticks)
  factory-reset [--yes]               wipe identity, configuration and secrets (releases stay)
  status [--json|--leds] [--socket P] the running agent's state (over its local control socket); --leds: the blink codes
  logs [-f] [--since TIME] [--lines N] [--file PATH] [--json]
                                      the agent's log, readable (journal of commune-endpoint, or a file)
  selftest [--json] [--socket PATH]   the running agent tests camera, codecs, TV, audio, hub, disk,
                                      clock, power: a pass/fail table with advice (exit 1: a failure)
  fleet-sim --count N [--broker URL] [--json] [--serve]
                                      N simulated boxes (the agent's control plane, media off) on
                                      one broker: connect time, group-join reply p50/p99, the
                                      reconnect storm after a broker restart
  fleet list|join|leave|ota --broker URL …
                                      the hub side's operator tool: the fleet's boxes, the group
                                      meeting, staged OTA rollouts (ep fleet help)
  help                                this text
`;

type Out = (s: string) => void;

async function mediaCommand(argv: string[], out: Out, err: Out): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'loopback') {
    err(`ep media: unknown subcommand ${JSON.stringify(sub ?? '')}\n${USAGE}`);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: { seconds: { type: 'string', default: '10' }, out: { type: 'string', default: 'out/loopback' }, passphrase: { type: 'string' } },
    strict: true,
  });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds < 3 || seconds > 3600) {
    err('ep media loopback: --seconds must be a number from 3 to 3600');
    return 2;
  }
  const outDir = path.resolve(values.out ?? 'out/loopback');
  out(`loopback: ${seconds} s, pictures in ${outDir}`);
  const { runLoopback } = await import('../../gst-pipelines/index.js');
  const r = await runLoopback({ seconds, outDir, out, ...(values.passphrase ? { passphrase: values.passphrase } : {}) });
  for (const f of r.files) out(`wrote ${f}`);
  if (r.ok) {
    out(`OK: the hub received ${r.hubReceivedFps.toFixed(1)} fps, the box displayed ${r.boxDisplayedFps.toFixed(1)} fps`);
    return 0;
  }
  for (const p of r.problems) err(`FAILED: ${p}`);
  return 1;
}

async function demoCommand(argv: string[], out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { seconds: { type: 'string', default: '8' }, out: { type: 'string', default: 'out/demo' } }, strict: true });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds < 2 || seconds > 600) {
    err('ep demo: --seconds must be a number from 2 to 600');
    return 2;
  }
  const { runDemo } = await import('./demo.js');
  const r = await runDemo({ outDir: path.resolve(values.out ?? 'out/demo'), seconds, out });
  for (const f of r.files) out(`wrote ${f}`);
  if (r.ok) {
    out('OK: the box joined the meeting by itself, media flowed both ways, and it left when the meeting ended');
    return 0;
  }
  for (const p of r.problems) err(`FAILED: ${p}`);
  return 1;
}

export async function main(argv: string[], out: Out = (s) => process.stdout.write(`${s}\n`), err: Out = (s) => process.stderr.write(`${s}\n`)): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'probe': {
        const p = await import('./probe.js');
        return await p.probeCommand(rest, out, {}, p.fieldProbe);
      }
      case 'run':
        return await (await import('./run.js')).runAgentCommand(rest, out, err);
      case 'demo':
        return await demoCommand(rest, out, err);
      case 'schemas':
        return await (await import('./schemas.js')).schemasCommand(rest, out, err);
      case 'media':
        return await mediaCommand(rest, out, err);
      case 'ota':
        return await (await import('./ota.js')).otaCommand(rest, out, err);
      case 'provision':
        return await (await import('./provision.js')).provisionCommand(rest, out, err);
      case 'status':
        return await (await import('./status.js')).statusCommand(rest, out, err);
      case 'logs':
        return await (await import('./logs.js')).logsCommand(rest, out, err);
      case 'selftest':
        return await (await import('./selftest.js')).selftestCommand(rest, out, err);
      case 'fleet':
        return await (await import('./fleet.js')).fleetCommand(rest, out, err);
      case 'factory-reset':
        return await (await import('./provision.js')).factoryResetCommand(rest, out, err);
      case 'fleet-sim':
        return await (await import('./fleet-sim.js')).fleetSimCommand(rest, out, err);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        err(`ep: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    err(`ep ${cmd}: ${(e as Error).message}`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  },
);
