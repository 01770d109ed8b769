/**
 * release-state.json on disk (ota/release-state.ts says what it holds): read with a size
 * cap and every problem by path, written atomically (temp + fsync + rename + fsync dir).
 * The agent's side; the launcher reads it through the same decoder.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../lib/index.js';
import { decodeReleaseState, type ReleaseState } from './release-state.js';

export const releaseStateFile = (appRoot: string): string => path.join(appRoot, 'release-state.json');

/** The state, or null when there is no file (not installed as a release); throws with the path on a bad file. */
export async function readReleaseState(appRoot: string): Promise<ReleaseState | null> {
  let text: string;
  try {
    text = await readFile(releaseStateFile(appRoot), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  if (text.length > 64 * 1024) throw new Error(`${releaseStateFile(appRoot)}: over 64 KiB`);
  try {
    return decodeReleaseState(JSON.parse(text) as unknown);
  } catch (e) {
    throw new Error(`${releaseStateFile(appRoot)}: ${(e as Error).message}`, { cause: e });
  }
}

export async function writeReleaseState(appRoot: string, s: ReleaseState): Promise<void> {
  await writeFileAtomic(releaseStateFile(appRoot), `${JSON.stringify(s)}\n`, { mode: 0o644 });
}
