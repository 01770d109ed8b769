/**
 * `ep run --config FILE`: the long-running agent. A bad config stops it with every
 * problem listed by path (exit 78, EX_CONFIG, so systemd does not restart-loop on it).
 * SIGTERM/SIGINT stop it cleanly: offline status published, media stopped.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Agent } from '../agent.js';
import { readVersion } from '../../lib/index.js';
import { loadConfig } from '../config.js';
import { createContract, isDecodeError } from '../contract/index.js';
import { createLogger } from '../../lib/index.js';
import { LogRing } from '../../lib/index.js';

type Out = (s: string) => void;

export const EX_CONFIG = 78;

/**
 * Node flags the box runs the agent with (device/systemd/commune-endpoint.service, and
 * the benchmark). The agent idles most of its life and does little JS work (media runs
 * in worker processes): a 1 MB young generation and no optimising compiler keep its
 * resident memory near 65 MB instead of ~90 MB (measured, docs/benchmarks.md).
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--lite-mode'] as const;

export async function runAgentCommand(argv: string[], _out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } }, strict: true });
  if (!values.config) {
    err('usage: ep run --config FILE');
    return 2;
  }
  let config;
  try {
    config = await loadConfig(createContract(), values.config);
  } catch (e) {
    if (!isDecodeError(e)) throw e;
    err(`ep run: the configuration ${values.config} is not valid:`);
    for (const p of e.problems) err(`  - ${p}`);
    return EX_CONFIG;
  }
  const ring = new LogRing();
  const logger = createLogger({ level: config.log.level, destination: pino.multistream([{ stream: process.stdout, level: 'trace' }, { stream: ring, level: 'trace' }]) });
  const agent = new Agent({ config, version: await readVersion(), logger, logRing: ring });
  await agent.start();
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      agent.log.info({ evt: 'agent.signal', sig }, `received ${sig}, stopping`);
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await agent.stop();
  return 0;
}
