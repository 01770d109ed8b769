/**
 * The `current` symlink and where releases live: what the launcher needs of the install
 * layout, and nothing more, so it can run outside any release without node_modules
 * (it imports only node: builtins and lib/atomic-file.js; launcher-install.ts copies it).
 *
 *   /opt/commune-endpoint/releases/<version>/   one full app each
 *   /opt/commune-endpoint/current -> releases/<version>
 *
 * `switchCurrent` writes the new link as current.tmp-<pid>, renames it over `current`
 * (one atomic step: a reader sees the old link or the new one) and fsyncs the directory.
 */
import { readlink, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
// eslint-disable-next-line shape/boundaries -- the launcher runs this outside any release, without node_modules: lib/index.js would pull pino and ajv
import { fsyncDir } from '../lib/atomic-file.js';

export interface Layout {
  /** /opt/commune-endpoint (host-paths). */
  appRoot: string;
}

export const releasesDir = (l: Layout): string => path.join(l.appRoot, 'releases');
export const releaseDir = (l: Layout, version: string): string => path.join(releasesDir(l), version);

/** The version `current` points at (releases/<version>), or null. */
export async function currentVersion(l: Layout): Promise<string | null> {
  try {
    return path.basename(await readlink(path.join(l.appRoot, 'current')));
  } catch {
    return null;
  }
}

export async function switchCurrent(l: Layout, version: string): Promise<void> {
  const tmp = path.join(l.appRoot, `current.tmp-${process.pid}`);
  await rm(tmp, { force: true });
  await symlink(path.join('releases', version), tmp);
  await rename(tmp, path.join(l.appRoot, 'current'));
  await fsyncDir(l.appRoot);
}
