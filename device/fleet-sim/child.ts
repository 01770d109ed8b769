/**
 * One share of a fleet spread over processes (procs.ts): started with `fork`, it runs
 * `count` boxes from global index `offset` and tells its parent each connect and each
 * command its boxes' clients receive, and its CPU and memory when asked.
 */
import { createLogger } from '../../lib/index.js';
import { SimFleet, makeFleetDir } from './fleet.js';
import type { ToChild } from './procs.js';

const send = (m: unknown): void => void process.send?.(m);

let fleet: SimFleet | null = null;

process.on('message', (m: ToChild) => {
  void (async () => {
    if (m.type === 'start') {
      const logger = createLogger({ level: m.logLevel, name: 'fleet-sim', destination: process.stderr });
      fleet = new SimFleet({ count: m.count, offset: m.offset, groupSize: m.groupSize, prefix: m.prefix, mqttUrl: m.url, dir: await makeFleetDir(), logger });
      fleet.onConnected = (id, at) => send({ type: 'connected', id, at });
      fleet.onCommand = (id, topic, at) => send({ type: 'command', id, topic, at });
      await fleet.start();
      send({ type: 'started' });
    } else if (m.type === 'usage') {
      send({ type: 'usage', ...(await fleet!.usage()) });
    } else if (m.type === 'stop') {
      await fleet?.dispose();
      send({ type: 'stopped' });
      process.disconnect();
    }
  })().catch((e: unknown) => {
    process.stderr.write(`fleet-sim child: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
});

// The parent gone (or done with us): stop the boxes, remove their directory, exit.
process.on('disconnect', () => void (fleet?.dispose() ?? Promise.resolve()).finally(() => process.exit(0)));
