/**
 * Installs the launcher (launcher.ts) outside any release: its import closure, found by
 * reading the built modules' imports from ota/launcher.js, copied from `distDir` into
 * `appRoot/launcher/` with the same relative paths, plus a package.json that makes them ES
 * modules. It runs with no node_modules, so the closure may hold only relative imports and
 * node: builtins; anything else is refused here, at install time, not at the box's boot.
 *
 *   appRoot/launcher/package.json           {"type":"module"}
 *   appRoot/launcher/ota/launcher.js        node appRoot/launcher/ota/launcher.js --config …
 *   appRoot/launcher/ota/launch-decision.js, release-state.js, current.js
 *   appRoot/launcher/lib/atomic-file.js
 *
 * Atomic: copied and fsynced into appRoot/.launcher.tmp-<pid>, then renamed to launcher/.
 * Replacing an installed launcher moves the old one aside first (a directory cannot be
 * renamed over a non-empty one): a crash between those two renames leaves no launcher/
 * but a whole .launcher.old-<pid>/, and installing again puts a whole one in place.
 * Provisioning calls it once; the OTA tests too.
 */
import { isBuiltin } from 'node:module';
import { copyFile, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from '../lib/index.js';

/** The launcher's entry, relative to dist/ and to appRoot/launcher/. */
export const LAUNCHER_ENTRY = 'ota/launcher.js';

const IMPORT_RES = [
  /^\s*(?:import|export)\s[^;'"]*?\bfrom\s*(['"])([^'"]+)\1/gm, // import … from '…', export … from '…'
  /^\s*import\s*(['"])([^'"]+)\1/gm, // import '…'
  /\bimport\s*\(\s*(['"])([^'"]+)\1\s*\)/g, // import('…')
];

/** The module specifiers a built ES module imports (statically, or dynamically with a literal), pure. */
export function importsOf(js: string): string[] {
  const found = new Set<string>();
  for (const re of IMPORT_RES) for (const m of js.matchAll(re)) found.add(m[2]!);
  return [...found];
}

/**
 * The files (relative to `distDir`, the entry first) the launcher imports, transitively.
 * Throws when one imports a package (it would need node_modules) or a file that is missing.
 */
export async function launcherClosure(distDir: string, entry: string = LAUNCHER_ENTRY): Promise<string[]> {
  const seen: string[] = [];
  const todo = [path.posix.normalize(entry)];
  while (todo.length) {
    const rel = todo.shift()!;
    if (seen.includes(rel)) continue;
    seen.push(rel);
    let js: string;
    try {
      js = await readFile(path.join(distDir, rel), 'utf8');
    } catch (e) {
      throw new Error(`the launcher's closure: cannot read ${rel} in ${distDir} (${(e as Error).message}); run npm run build`, { cause: e });
    }
    for (const spec of importsOf(js)) {
      if (spec.startsWith('./') || spec.startsWith('../')) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec));
        if (target.startsWith('../')) throw new Error(`the launcher's closure: ${rel} imports ${spec}, outside ${distDir}`);
        todo.push(target);
      } else if (!isBuiltin(spec)) {
        throw new Error(`the launcher's closure: ${rel} imports ${spec}, which would need node_modules (the launcher runs without them)`);
      }
    }
  }
  return seen;
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

/** Copies the launcher's closure from `distDir` (the build's dist/) into `appRoot/launcher/`, atomically. */
export async function installLauncher(appRoot: string, distDir: string): Promise<{ dir: string; files: string[] }> {
  const files = await launcherClosure(distDir);
  const dir = path.join(appRoot, 'launcher');
  const tmp = path.join(appRoot, `.launcher.tmp-${process.pid}`);
  await mkdir(appRoot, { recursive: true });
  await rm(tmp, { recursive: true, force: true });
  const dirs = new Set<string>([tmp]);
  for (const rel of files) {
    const to = path.join(tmp, rel);
    await mkdir(path.dirname(to), { recursive: true });
    for (let d = path.dirname(to); d !== tmp; d = path.dirname(d)) dirs.add(d);
    await copyFile(path.join(distDir, rel), to);
    await fsyncFile(to);
  }
  await writeFile(path.join(tmp, 'package.json'), `${JSON.stringify({ type: 'module' })}\n`, { flush: true });
  for (const d of dirs) await fsyncDir(d);
  if (await exists(dir)) {
    const old = path.join(appRoot, `.launcher.old-${process.pid}`);
    await rm(old, { recursive: true, force: true });
    await rename(dir, old);
    await rename(tmp, dir);
    await fsyncDir(appRoot);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(tmp, dir);
    await fsyncDir(appRoot);
  }
  return { dir, files: ['package.json', ...files] };
}
