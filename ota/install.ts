/**
 * Side-by-side install: a verified bundle is unpacked into releases/<version>/ next to the
 * running release, and `current` is switched to it by one atomic rename. The running
 * release is never written to.
 *
 *   stageRelease   tar -xzf into releases/.<version>.staging-<pid>, sync, a `.complete`
 *                  marker (version + bundle sha256), then rename to releases/<version>
 *   isStaged       releases/<version>/.complete names this version and bundle
 *   switchCurrent  symlink releases/<version> as current.tmp, rename over `current`, fsync
 *                  (current.ts, with currentVersion and releaseDir: the launcher's part)
 *   cleanReleases  removes every release but the ones to keep (current + previous)
 *
 * A crash anywhere leaves either no releases/<version> (a staging dir, removed at the next
 * stage) or a complete one; `current` is always one whole symlink.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fsyncDir } from '../lib/index.js';
import { releaseDir, releasesDir, type Layout } from './current.js';

// The launcher's part of the layout lives in current.ts (it runs without node_modules); kept exported from here too.
export { currentVersion, releaseDir, switchCurrent } from './current.js';
export type { Layout } from './current.js';

const run = promisify(execFile);

export async function isStaged(l: Layout, version: string, sha256: string): Promise<boolean> {
  try {
    const m = JSON.parse(await readFile(path.join(releaseDir(l, version), '.complete'), 'utf8')) as { version?: unknown; sha256?: unknown };
    return m.version === version && m.sha256 === sha256;
  } catch {
    return false;
  }
}

export async function stageRelease(l: Layout, version: string, bundle: string, sha256: string): Promise<void> {
  const dir = releasesDir(l);
  await run('mkdir', ['-p', dir]);
  // Staging dirs of earlier, interrupted attempts go first.
  for (const n of await readdir(dir)) if (n.startsWith(`.${version}.staging-`)) await rm(path.join(dir, n), { recursive: true, force: true });
  const target = releaseDir(l, version);
  if (await isStaged(l, version, sha256)) return;
  await rm(target, { recursive: true, force: true }); // an incomplete or other release under this name
  const staging = path.join(dir, `.${version}.staging-${process.pid}`);
  await run('mkdir', ['-p', staging]);
  // GNU tar refuses members with `..` and strips leading `/`; the bundle is signed and its sha256 checked.
  await run('tar', ['-xzf', bundle, '-C', staging, '--no-same-owner', '--no-same-permissions'], { maxBuffer: 1024 * 1024 });
  await run('sync', ['-f', staging]);
  await writeFile(path.join(staging, '.complete'), `${JSON.stringify({ version, sha256 })}\n`);
  await run('sync', ['-f', staging]);
  await rename(staging, target);
  await fsyncDir(dir);
}

export async function cleanReleases(l: Layout, keep: readonly string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const n of await readdir(releasesDir(l)).catch(() => [] as string[])) {
    if (keep.includes(n)) continue;
    await rm(path.join(releasesDir(l), n), { recursive: true, force: true });
    removed.push(n);
  }
  return removed;
}
