/**
 * First boot: find `ep-provision.json`, provision from it once, and — after the agent has
 * reached the broker with what it carried — take its secrets off the boot partition,
 * leaving a redacted receipt beside it.
 *
 *   boot (commune-endpoint-provision.service, before the agent)      agent (first CONNACK)
 *   ───────────────────────────────────────────────────────────     ─────────────────────────
 *   no file                → nothing changes ('none')                 record.pendingCleanup and
 *   same sha256 as the one in force → nothing changes ('unchanged')   the file still the same:
 *   a new or edited file   → decode; bad → nothing written,             write the receipt,
 *                            reason in provision-status.json            remove the file
 *                          → good → written ('provisioned')
 *
 * Until the agent reached the broker the file stays: a wrong password is fixed by editing
 * it on a laptop and rebooting (an edited file is a new file).
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fsyncDir, isCorruptFileError, readFileCapped, readJsonFile, writeFileAtomic, type Logger } from '../lib/index.js';
import { applyProvision, CONFIG_FILE, readRecord, readStatus, RECORD_FILE, writeStatus, type ProvisionRecord, type ProvisionTarget } from './apply.js';
import { decodeProvisionFile, isProvisionFileError, PROVISION_FILE_MAX_BYTES, PROVISION_FILE_NAME, RECEIPT_FILE_NAME, type DecodeProvisionOptions } from './provision-file.js';

/**
 * Where a provisioning file may be, in order: the boot partition (Raspberry Pi OS
 * bookworm mounts it at /boot/firmware, older images at /boot), then USB sticks where
 * something mounted them (udisks under /media/<user>/<label>, /run/media/…, by hand
 * under /mnt). Raspberry Pi OS Lite mounts no USB stick by itself: docs/provisioning.md.
 */
export const DEFAULT_SEARCH = ['boot/firmware', 'boot', 'media/*', 'media/*/*', 'run/media/*/*', 'mnt', 'mnt/*'];

export interface ProvisionContext extends ProvisionTarget, DecodeProvisionOptions {
  /** The agent's own config decoder (device/config.ts), run on the config before it is committed: throws with problems. */
  checkConfig: (config: unknown, baseDir: string) => Promise<void>;
  log: Logger;
}

export type ProvisionOutcome =
  | { outcome: 'provisioned'; file: string | null; record: ProvisionRecord }
  | { outcome: 'unchanged'; file: string }
  | { outcome: 'none'; provisioned: boolean }
  | { outcome: 'invalid'; file: string | null; problems: string[]; provisioned: boolean };

/** Expands `*` path segments (no other glob syntax) under `root`; sorted, existing dirs only. */
async function expand(root: string, pattern: string): Promise<string[]> {
  let dirs = [root];
  for (const seg of pattern.split('/')) {
    const next: string[] = [];
    for (const d of dirs) {
      if (seg !== '*') {
        next.push(path.join(d, seg));
        continue;
      }
      const names = await readdir(d, { withFileTypes: true }).catch(() => []);
      for (const n of names.sort((a, b) => a.name.localeCompare(b.name))) if (n.isDirectory()) next.push(path.join(d, n.name));
    }
    dirs = next;
  }
  return dirs;
}

/** The first `ep-provision.json` in the search order, or null. */
export async function findProvisionFile(root: string, search: readonly string[] = DEFAULT_SEARCH): Promise<string | null> {
  const seen = new Set<string>();
  for (const pattern of search) {
    for (const dir of await expand(root, pattern)) {
      const f = path.join(dir, PROVISION_FILE_NAME);
      if (seen.has(f)) continue;
      seen.add(f);
      const s = await stat(f).catch(() => null);
      if (s?.isFile()) return f;
    }
  }
  return null;
}

const configExists = async (dataDir: string): Promise<boolean> => (await stat(path.join(dataDir, CONFIG_FILE)).catch(() => null))?.isFile() === true;

/**
 * Provisions from `file` (`source`: the path recorded for the later cleanup, null when the
 * technician gave the file by hand). A bad file writes nothing but provision-status.json.
 */
export async function provisionFromFile(ctx: ProvisionContext, file: string, source: string | null): Promise<ProvisionOutcome> {
  const fail = async (problems: string[]): Promise<ProvisionOutcome> => {
    const provisioned = await configExists(ctx.dataDir);
    ctx.log.error({ evt: 'provision.invalid', file, problems }, `provisioning file ${file} not used: ${problems.join('; ')}`);
    await writeStatus(ctx, {
      v: 1,
      at: new Date((ctx.now ?? Date.now)()).toISOString(),
      ok: false,
      provisioned,
      source: file,
      problems,
      message: `${file} is not valid; ${provisioned ? 'the configuration in force is unchanged' : 'the box stays unprovisioned'}`,
    });
    return { outcome: 'invalid', file, problems, provisioned };
  };
  let bytes: Buffer | null;
  try {
    bytes = await readFileCapped(file, PROVISION_FILE_MAX_BYTES);
  } catch (e) {
    return fail([isCorruptFileError(e) ? `${path.basename(file)}: ${e.reason}` : `${path.basename(file)}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  if (bytes === null) return fail([`${file}: no such file`]);
  try {
    const plan = await decodeProvisionFile(bytes, path.basename(file), ctx);
    const record = await applyProvision(plan, ctx, source, ctx.checkConfig);
    ctx.log.info({ evt: 'provision.done', file, deviceId: plan.deviceId, deviceIdSource: plan.deviceIdSource, groupId: plan.groupId, auth: plan.broker.auth, warnings: plan.redacted.warnings }, `provisioned as ${plan.deviceId} from ${file}`);
    for (const w of plan.redacted.warnings) ctx.log.warn({ evt: 'provision.warning', warning: w }, w);
    return { outcome: 'provisioned', file, record };
  } catch (e) {
    if (isProvisionFileError(e)) return fail(e.problems);
    throw e;
  }
}

/** The first-boot step: see the top of this file. */
export async function provisionFromBoot(ctx: ProvisionContext, search: readonly string[] = DEFAULT_SEARCH): Promise<ProvisionOutcome> {
  const file = await findProvisionFile(ctx.systemRoot, search);
  const provisioned = await configExists(ctx.dataDir);
  if (file === null) {
    if (!provisioned) {
      const message = `no ${PROVISION_FILE_NAME} on the boot partition (/boot/firmware, /boot) or a USB stick; the box stays unprovisioned`;
      ctx.log.warn({ evt: 'provision.none' }, message);
      await writeStatus(ctx, { v: 1, at: new Date((ctx.now ?? Date.now)()).toISOString(), ok: false, provisioned: false, source: null, message });
    } else ctx.log.info({ evt: 'provision.none' }, 'already provisioned; no new provisioning file');
    return { outcome: 'none', provisioned };
  }
  const bytes = await readFileCapped(file, PROVISION_FILE_MAX_BYTES).catch(() => null);
  const sha = bytes ? createHash('sha256').update(bytes).digest('hex') : null;
  const record = await readRecord(ctx.dataDir);
  if (provisioned && record !== null && sha !== null && record.sha256 === sha) {
    ctx.log.info({ evt: 'provision.unchanged', file }, `already provisioned from this ${PROVISION_FILE_NAME}; nothing to do`);
    return { outcome: 'unchanged', file };
  }
  return provisionFromFile(ctx, file, file);
}

/** The agent's note that it reached the broker with the provisioned credentials (root finishes from it). */
export const REACHED_FILE = 'broker-reached.json';

/**
 * The agent, once it has reached the broker: notes it in the data dir (`broker-reached.json`),
 * then tries to finish itself. On a Raspberry Pi the boot partition is FAT mounted for root
 * only, so the service user cannot remove the file: the note triggers
 * commune-endpoint-provision-finish.path, whose oneshot (`ep provision --finish`, root) does.
 */
export async function noteBrokerReached(dataDir: string, log: Logger, extra: { version?: string; now?: () => number } = {}): Promise<'cleaned' | 'nothing' | 'changed' | 'left-for-root'> {
  const record = await readRecord(dataDir).catch(() => null);
  if (!record?.pendingCleanup || record.source === null) return 'nothing';
  const at = new Date((extra.now ?? Date.now)()).toISOString();
  await writeFileAtomic(path.join(dataDir, REACHED_FILE), `${JSON.stringify({ at, ...(extra.version ? { version: extra.version } : {}) })}\n`, { mode: 0o600 });
  try {
    return await finishProvisioning(dataDir, log);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw e;
    log.info({ evt: 'provision.cleanup_deferred', file: record.source, code }, `cannot remove ${record.source} as this user (${code}); commune-endpoint-provision-finish (root) does`);
    return 'left-for-root';
  }
}

/**
 * Replaces the boot partition's copy of the file the box was provisioned from by the
 * redacted receipt — only once `broker-reached.json` says the box reached the broker with
 * it, and only if the file is unchanged (an edited file is a fix on its way: it provisions
 * at the next boot). The note is consumed either way.
 */
export async function finishProvisioning(dataDir: string, log: Logger): Promise<'cleaned' | 'nothing' | 'changed'> {
  const reachedFile = path.join(dataDir, REACHED_FILE);
  const reached = await readJsonFile<{ at?: string; version?: string }>(reachedFile, { maxBytes: 4096, quarantine: true }).catch(() => null);
  const consume = async (): Promise<void> => {
    await unlink(reachedFile).catch(() => undefined);
  };
  const record = await readRecord(dataDir).catch(() => null);
  if (reached === null || !record?.pendingCleanup || record.source === null) {
    await consume();
    return 'nothing';
  }
  const done = async (): Promise<void> => {
    await writeFileAtomic(path.join(dataDir, RECORD_FILE), `${JSON.stringify({ ...record, pendingCleanup: false }, null, 2)}\n`, { mode: 0o600, owner: await ownerOf(dataDir) });
    await consume();
  };
  const bytes = await readFileCapped(record.source, PROVISION_FILE_MAX_BYTES).catch(() => null);
  if (bytes === null) {
    await done();
    return 'nothing';
  }
  if (createHash('sha256').update(bytes).digest('hex') !== record.sha256) {
    log.warn({ evt: 'provision.file_changed', file: record.source }, `${record.source} changed since it was used; left for the next boot to provision from`);
    await consume();
    return 'changed';
  }
  const receipt = { ...record.receipt, reachedBrokerAt: reached.at ?? null, ...(reached.version ? { version: reached.version } : {}) };
  const dir = path.dirname(record.source);
  await writeFileAtomic(path.join(dir, RECEIPT_FILE_NAME), `${JSON.stringify(receipt, null, 2)}\n`, { mode: 0o644 });
  await unlink(record.source);
  await fsyncDir(dir);
  await done();
  log.info({ evt: 'provision.cleaned', file: record.source, receipt: path.join(dir, RECEIPT_FILE_NAME) }, `reached the broker: removed ${record.source} (it held the secrets), left ${RECEIPT_FILE_NAME}`);
  return 'cleaned';
}

/** Files in the data dir keep its owner (root finishing for the service user). */
async function ownerOf(dir: string): Promise<{ uid: number; gid: number } | null> {
  const s = await stat(dir).catch(() => null);
  return s && process.getuid?.() === 0 ? { uid: s.uid, gid: s.gid } : null;
}

/** Why the box is unprovisioned, for the log and the state (the last attempt's message). */
export async function unprovisionedReason(dataDir: string): Promise<string> {
  const s = await readStatus(dataDir).catch(() => null);
  if (s && !s.provisioned) return s.problems?.length ? `${s.message}: ${s.problems.join('; ')}` : s.message;
  return `no configuration (${path.join(dataDir, CONFIG_FILE)}): put ${PROVISION_FILE_NAME} on the boot partition and restart, or run ep provision FILE`;
}
