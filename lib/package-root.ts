/**
 * Where the installed package lives, found from a module's own location, so the same
 * code works from the TypeScript sources (tests: `<root>/gst-pipelines/…`) and from the
 * build (`<root>/dist/gst-pipelines/…`, what runs on the box).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory that holds the project's package.json, walking up from `moduleUrl`. */
export function packageRoot(moduleUrl: string): string {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  for (;;) {
    if (path.basename(dir) !== 'dist' && existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(moduleUrl)}`);
    dir = up;
  }
}

/** A path inside the build output (`dist/`), whether the caller runs from sources or from dist. */
export function distPath(moduleUrl: string, ...parts: string[]): string {
  return path.join(packageRoot(moduleUrl), 'dist', ...parts);
}

/** The version in the project's package.json ('0.0.0' when it cannot be read). */
export async function readVersion(moduleUrl: string = import.meta.url): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(path.join(packageRoot(moduleUrl), 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
