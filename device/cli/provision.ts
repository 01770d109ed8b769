/**
 * `ep provision FILE | --boot` and `ep factory-reset`: the box's identity, by hand or on
 * first boot (docs/provisioning.md). Paths come from /etc/commune-endpoint/install.json
 * (written by provisioning/install.sh) unless given; `--root` points everything at a
 * temp tree (tests, or preparing a mounted SD card image).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs, promisify } from 'node:util';
import { decodeConfig } from '../config.js';
import { createContract, isDecodeError } from '../contract/index.js';
import { createLogger, hostPaths } from '../../lib/index.js';
import { ProvisionFileError, deriveDeviceId, findProvisionFile, finishProvisioning, lookupUser, provisionFromBoot, provisionFromFile, wipeDataDir, PROVISION_FILE_NAME, type ProvisionContext } from '../../provisioning/index.js';

type Out = (s: string) => void;
const run = promisify(execFile);

/** The service user install.sh creates. */
export const SERVICE_USER = 'commune-endpoint';
export const SERVICE_UNIT = 'commune-endpoint.service';
/** Exit code for a provisioning file that is not valid (EX_DATAERR). */
export const EX_DATAERR = 65;

interface InstallInfo {
  appRoot?: string;
  dataDir?: string;
  user?: string;
}

async function installInfo(root: string): Promise<InstallInfo> {
  try {
    return JSON.parse(await readFile(path.join(root, 'etc', 'commune-endpoint', 'install.json'), 'utf8')) as InstallInfo;
  } catch {
    return {};
  }
}

const COMMON = {
  root: { type: 'string' },
  'data-dir': { type: 'string' },
  'app-root': { type: 'string' },
  user: { type: 'string' },
} as const;

async function context(values: { root?: string | undefined; 'data-dir'?: string | undefined; 'app-root'?: string | undefined; user?: string | undefined }, err: Out): Promise<ProvisionContext> {
  const hp = hostPaths();
  const root = values.root ? path.resolve(values.root) : hp.root;
  const info = await installInfo(root);
  const dataDir = values['data-dir'] ? path.resolve(values['data-dir']) : process.env.EP_DATA_DIR ? hp.dataDir : info.dataDir ? path.join(root, info.dataDir) : hp.dataDir;
  const appRoot = values['app-root'] ? path.resolve(values['app-root']) : info.appRoot ?? '/opt/commune-endpoint';
  const user = values.user ?? info.user ?? SERVICE_USER;
  // Files belong to the service user when we can give them (root) and it exists.
  let owner = null;
  if (process.getuid?.() === 0) {
    owner = await lookupUser(user, root);
    if (owner === null && values.user) throw new Error(`--user ${user}: no such user in ${path.join(root, 'etc', 'passwd')}`);
    if (owner === null) err(`ep provision: no user ${user} (not installed with provisioning/install.sh?); files stay root's`);
  }
  const contract = createContract();
  return {
    checkConfig: async (config, baseDir) => {
      try {
        await decodeConfig(contract, config, baseDir);
      } catch (e) {
        // The config made from a checked file must load; if it does not, that is the file's problem too.
        if (isDecodeError(e)) throw new ProvisionFileError(e.problems.map((p) => `(the agent config made from it) ${p}`));
        throw e;
      }
    },
    log: createLogger({ level: 'info', destination: process.stderr }),
    dataDir,
    appRoot,
    owner,
    systemRoot: root,
    zoneinfoDir: path.join(root, 'usr', 'share', 'zoneinfo'),
    deriveDeviceId: () => deriveDeviceId({ root }),
  };
}

/** Restarts the agent if systemd runs it (re-provisioning by hand); quiet when there is no systemd. */
async function tryRestart(out: Out): Promise<void> {
  try {
    await run('systemctl', ['try-restart', SERVICE_UNIT], { timeout: 30_000 });
    out(`restarted ${SERVICE_UNIT} (if it was running)`);
  } catch {
    out(`(could not ask systemd to restart ${SERVICE_UNIT}; a running agent notices the new configuration within seconds by itself)`);
  }
}

export async function provisionCommand(argv: string[], out: Out, err: Out): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { ...COMMON, boot: { type: 'boolean', default: false }, finish: { type: 'boolean', default: false }, 'no-restart': { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
  if ([values.boot, values.finish, positionals.length === 1].filter(Boolean).length !== 1 || positionals.length > 1) {
    err(`usage: ep provision FILE | --boot | --finish   [--root DIR] [--data-dir DIR] [--app-root DIR] [--user NAME] [--no-restart]`);
    return 2;
  }
  const ctx = await context(values, err);
  if (values.finish) {
    // Root's half of the cleanup (commune-endpoint-provision-finish.service): see provisioning/boot.ts.
    const r = await finishProvisioning(ctx.dataDir, ctx.log);
    out(r === 'cleaned' ? 'the provisioning file gave way to its receipt' : r === 'changed' ? 'the provisioning file was edited since; left for the next boot' : 'nothing to finish');
    return 0;
  }
  const r = values.boot ? await provisionFromBoot(ctx) : await provisionFromFile(ctx, path.resolve(positionals[0]!), null);
  switch (r.outcome) {
    case 'provisioned':
      out(`provisioned as ${r.record.deviceId} (${r.record.receipt.deviceIdSource}), group ${r.record.receipt.groupId}, broker ${r.record.receipt.broker.url} (${r.record.receipt.broker.auth})`);
      if (r.record.pendingCleanup) out(`${r.file} stays until the box has reached the broker once; then it is replaced by ep-provision.done.json`);
      if (!values.boot && !values['no-restart'] && !values.root) await tryRestart(out);
      return 0;
    case 'unchanged':
      out(`already provisioned from ${r.file}; nothing to do`);
      return 0;
    case 'none':
      out(r.provisioned ? 'no new provisioning file; the box stays as it is' : `no ${PROVISION_FILE_NAME} found; the box stays unprovisioned`);
      return 0;
    case 'invalid':
      err(`ep provision: ${r.file ?? 'the file'} is not valid (${r.provisioned ? 'the configuration in force is unchanged' : 'nothing was written'}):`);
      for (const p of r.problems) err(`  - ${p}`);
      return EX_DATAERR;
  }
}

export async function factoryResetCommand(argv: string[], out: Out, err: Out, input: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...COMMON, yes: { type: 'boolean', default: false }, 'no-restart': { type: 'boolean', default: false } }, strict: true });
  const ctx = await context(values, err);
  if (!values.yes) {
    if (!input.isTTY) {
      err('ep factory-reset: wipes this box\'s identity, configuration and secrets; confirm with --yes (no terminal to ask on)');
      return 2;
    }
    const rl = createInterface({ input, output: process.stdout });
    const answer = await rl.question(`This wipes the box's identity, configuration and secrets in ${ctx.dataDir} (installed releases stay).\nType RESET to confirm: `);
    rl.close();
    if (answer.trim() !== 'RESET') {
      out('not confirmed; nothing changed');
      return 1;
    }
  }
  const gone = await wipeDataDir(ctx.dataDir);
  out(`factory reset: removed ${gone.length ? gone.join(', ') : 'nothing (already empty)'} from ${ctx.dataDir}; the box is unprovisioned`);
  const left = await findProvisionFile(ctx.systemRoot);
  if (left) out(`note: ${left} is present: the box provisions from it again at the next boot`);
  if (!values['no-restart'] && !values.root) await tryRestart(out);
  return 0;
}
