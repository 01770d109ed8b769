/**
 * Writes a checked provisioning plan: the agent's config and its secrets under the data
 * dir, the system settings the file asked for (timezone, Wi-Fi), and a record of what
 * was done. Nothing here decides anything: decodeProvisionFile has checked it all.
 *
 * Layout of the data dir (0700, the service user's):
 *
 *   config.json            the agent config (`ep run --config`), 0600; the broker password in it
 *   secrets/<generation>/  client certificate, key, CA, OTA keys (PEM), each 0600
 *   provisioning.json      the record: file hash, where it came from, the redacted receipt,
 *                          whether the boot partition's copy still waits for its removal
 *   provision-status.json  the last provisioning attempt, good or bad (no secret): what
 *                          `ep status` and the unprovisioned agent show
 *
 * Crash safety: each file goes temp → fsync → rename → fsync dir (lib/atomic-file.ts),
 * owner and mode set before the rename. The new secrets go to a new generation directory
 * nobody reads yet; the rename of config.json is the one commit point that switches to
 * them; older generations are removed after it. A power cut before that point leaves the
 * old config and old secrets in force (and the same file provisions again at next boot);
 * after it, the new ones. Timezone and Wi-Fi are written after the agent's check of the new
 * config and before the commit point, and are idempotent, so a repeat run converges. A config
 * the check refuses leaves nothing behind: its generation directory is removed.
 */
import { execFile } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { chown, mkdir, readdir, readFile, rename, rm, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fsyncDir, readJsonFile, writeFileAtomic } from '../lib/index.js';
import type { ProvisionPlan, RedactedPlan } from './provision-file.js';

const run = promisify(execFile);

export interface Owner {
  uid: number;
  gid: number;
}

export interface ProvisionTarget {
  dataDir: string;
  /** The OTA app root the config names (releases/, current). */
  appRoot: string;
  /** Who the written files belong to (the service user); null: whoever runs this. */
  owner: Owner | null;
  /** `/` on a box; tests: a temp tree. Timezone and Wi-Fi files go under it. */
  systemRoot: string;
  now?: () => number;
}

export const CONFIG_FILE = 'config.json';
export const RECORD_FILE = 'provisioning.json';
export const STATUS_FILE = 'provision-status.json';
export const SECRETS_DIR = 'secrets';
/** Files factory reset keeps: the OTA time floor is the box's knowledge of time, not its identity. */
export const KEEP_ON_RESET = ['clock-synced.json'] as const;

/** What provisioning.json holds. */
export interface ProvisionRecord {
  v: 1;
  sha256: string;
  /** The file on the boot partition or USB stick; null when given by hand (`ep provision FILE`). */
  source: string | null;
  at: string;
  generation: string;
  deviceId: string;
  /** The boot partition's copy (with its secrets) waits for the first broker connection to be removed. */
  pendingCleanup: boolean;
  receipt: Receipt;
}

/** The redacted receipt left for the technician (`ep-provision.done.json`). */
export interface Receipt extends RedactedPlan {
  provisionedAt: string;
  reachedBrokerAt?: string;
  version?: string;
}

/** What provision-status.json holds: the last attempt. */
export interface ProvisionStatus {
  v: 1;
  at: string;
  ok: boolean;
  /** After this attempt: is there a config in force? */
  provisioned: boolean;
  source: string | null;
  deviceId?: string;
  /** Why it failed (problems by path, no value). */
  problems?: string[];
  message: string;
}

export async function readRecord(dataDir: string): Promise<ProvisionRecord | null> {
  return readJsonFile<ProvisionRecord>(path.join(dataDir, RECORD_FILE), { maxBytes: 256 * 1024, quarantine: true });
}

export async function readStatus(dataDir: string): Promise<ProvisionStatus | null> {
  return readJsonFile<ProvisionStatus>(path.join(dataDir, STATUS_FILE), { maxBytes: 256 * 1024, quarantine: true });
}

export async function writeStatus(t: Pick<ProvisionTarget, 'dataDir' | 'owner'>, s: ProvisionStatus): Promise<void> {
  await ensureDir(t.dataDir, 0o700, t.owner);
  await writeFileAtomic(path.join(t.dataDir, STATUS_FILE), `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600, owner: t.owner });
}

/** `dir` with `mode` (its missing parents with the default mode: only the leaf is private). */
async function ensureDir(dir: string, mode: number, owner: Owner | null): Promise<void> {
  await mkdir(path.dirname(dir), { recursive: true });
  await mkdir(dir, { mode }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  if (owner) await chown(dir, owner.uid, owner.gid);
}

/** The uid/gid of `user` in `systemRoot`/etc/passwd; null when there is no such user. */
export async function lookupUser(user: string, systemRoot = '/'): Promise<Owner | null> {
  const passwd = await readFile(path.join(systemRoot, 'etc', 'passwd'), 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === user && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return null;
}

/** The agent config the plan makes (paths into the generation's secrets). */
export function agentConfigOf(plan: ProvisionPlan, t: ProvisionTarget, secretsDir: string): Record<string, unknown> {
  const s = plan.secrets;
  const file = (n: string): string => path.join(secretsDir, n);
  return {
    deviceId: plan.deviceId,
    groupId: plan.groupId,
    name: plan.name,
    mqtt: {
      url: plan.broker.url,
      ...(plan.broker.auth === 'password' ? { username: plan.broker.username, password: s.password } : {}),
      ...(s.ca !== undefined ? { caFile: file('ca.pem') } : {}),
      ...(s.certificate !== undefined ? { certFile: file('client.crt'), keyFile: file('client.key') } : {}),
      ...(plan.broker.protocolVersion !== undefined ? { protocolVersion: plan.broker.protocolVersion } : {}),
    },
    dataDir: t.dataDir,
    ...(plan.gpio ? { gpio: plan.gpio } : {}),
    ...(plan.otaPublicKeys.length ? { ota: { publicKeys: plan.otaPublicKeys.map((_, i) => file(`ota-${i}.pub.pem`)), appRoot: t.appRoot } } : {}),
  };
}

/**
 * Writes the plan (see the top of this file for the order). `check` validates the config
 * about to be committed (the agent's own decoder), before the commit point.
 */
export async function applyProvision(plan: ProvisionPlan, t: ProvisionTarget, source: string | null, check: (config: unknown, baseDir: string) => Promise<void>): Promise<ProvisionRecord> {
  const now = t.now ?? Date.now;
  const at = new Date(now()).toISOString();
  await ensureDir(t.dataDir, 0o700, t.owner);
  const secretsRoot = path.join(t.dataDir, SECRETS_DIR);
  await ensureDir(secretsRoot, 0o700, t.owner);
  const generation = `g${now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const gen = path.join(secretsRoot, generation);
  await ensureDir(gen, 0o700, t.owner);
  const put = (name: string, text: string): Promise<void> => writeFileAtomic(path.join(gen, name), text.endsWith('\n') ? text : `${text}\n`, { mode: 0o600, owner: t.owner });
  const s = plan.secrets;
  if (s.ca !== undefined) await put('ca.pem', s.ca);
  if (s.certificate !== undefined) await put('client.crt', s.certificate);
  if (s.key !== undefined) await put('client.key', s.key);
  for (const [i, k] of plan.otaPublicKeys.entries()) await put(`ota-${i}.pub.pem`, k);
  await fsyncDir(secretsRoot);

  const config = agentConfigOf(plan, t, gen);
  try {
    await check(config, t.dataDir);
  } catch (e) {
    // Refused: nothing of it stays (the secrets were written only for the check to read).
    await rm(gen, { recursive: true, force: true });
    throw e;
  }
  if (plan.timezone !== null) await applyTimezone(plan.timezone, t.systemRoot);
  if (plan.wifi !== null) await applyWifi(plan.wifi, t.systemRoot);
  // The commit point.
  await writeFileAtomic(path.join(t.dataDir, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, owner: t.owner });

  const record: ProvisionRecord = { v: 1, sha256: plan.sha256, source, at, generation, deviceId: plan.deviceId, pendingCleanup: source !== null, receipt: { ...plan.redacted, provisionedAt: at } };
  await writeFileAtomic(path.join(t.dataDir, RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600, owner: t.owner });
  for (const old of await readdir(secretsRoot)) if (old !== generation) await rm(path.join(secretsRoot, old), { recursive: true, force: true });
  await fsyncDir(secretsRoot);
  await writeStatus(t, { v: 1, at, ok: true, provisioned: true, source, deviceId: plan.deviceId, message: `provisioned as ${plan.deviceId} (group ${plan.groupId}) from ${source ?? 'a file given by hand'}` });
  return record;
}

/** /etc/localtime → the zone, and /etc/timezone (what timedatectl set-timezone writes). */
async function applyTimezone(tz: string, root: string): Promise<void> {
  const etc = path.join(root, 'etc');
  await mkdir(etc, { recursive: true });
  const link = path.join(etc, 'localtime');
  const tmp = `${link}.tmp-${process.pid}`;
  await unlink(tmp).catch(() => undefined);
  await symlink(path.join('/usr/share/zoneinfo', tz), tmp);
  await rename(tmp, link);
  await writeFileAtomic(path.join(etc, 'timezone'), `${tz}\n`, { mode: 0o644 });
}

/**
 * A NetworkManager keyfile (Raspberry Pi OS bookworm and Debian 12 desktop use NM; 0600,
 * root's, as NM requires). The regulatory country is set with raspi-config where it exists.
 */
async function applyWifi(w: NonNullable<ProvisionPlan['wifi']>, root: string): Promise<void> {
  const dir = path.join(root, 'etc', 'NetworkManager', 'system-connections');
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const uuid = createHash('sha256').update(`commune-endpoint-wifi:${w.ssid}`).digest('hex');
  const u = `${uuid.slice(0, 8)}-${uuid.slice(8, 12)}-4${uuid.slice(13, 16)}-a${uuid.slice(17, 20)}-${uuid.slice(20, 32)}`;
  const lines = [
    '[connection]',
    'id=commune-endpoint-wifi',
    `uuid=${u}`,
    'type=wifi',
    'autoconnect=true',
    '',
    '[wifi]',
    'mode=infrastructure',
    `ssid=${w.ssid}`,
    `hidden=${w.hidden}`,
    '',
    ...(w.psk !== undefined ? ['[wifi-security]', 'key-mgmt=wpa-psk', `psk=${w.psk}`, ''] : []),
    '[ipv4]',
    'method=auto',
    '',
    '[ipv6]',
    'method=auto',
    '',
  ];
  await writeFileAtomic(path.join(dir, 'commune-endpoint-wifi.nmconnection'), lines.join('\n'), { mode: 0o600 });
  if (root === '/') {
    await run('raspi-config', ['nonint', 'do_wifi_country', w.country]).catch(() => undefined);
    await run('nmcli', ['connection', 'reload']).catch(() => undefined);
  }
}

/**
 * Factory reset: identity, config, secrets, records and the agent's stores go; the
 * installed releases (in the app root) and the OTA time floor stay. Returns what went.
 */
export async function wipeDataDir(dataDir: string): Promise<string[]> {
  const gone: string[] = [];
  let names: string[];
  try {
    names = await readdir(dataDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return gone;
    throw e;
  }
  // The config first: from this moment the box is unprovisioned, whatever else a power cut spares.
  const ordered = [...names.filter((n) => n === CONFIG_FILE), ...names.filter((n) => n !== CONFIG_FILE)];
  for (const n of ordered) {
    if ((KEEP_ON_RESET as readonly string[]).includes(n)) continue;
    await rm(path.join(dataDir, n), { recursive: true, force: true });
    if (n === CONFIG_FILE) await fsyncDir(dataDir);
    gone.push(n);
  }
  await fsyncDir(dataDir);
  return gone;
}
