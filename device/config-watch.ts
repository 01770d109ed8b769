/**
 * Notices that the configuration file in force was replaced (re-provisioning by hand,
 * `ep provision FILE`) or removed (`ep factory-reset`), so the running agent restarts into
 * it without anyone touching systemd. Polls the file's identity (inode, size, mtime) every
 * few seconds: fs.watch misses a rename over the file on some filesystems, a stat does not.
 */
import { stat } from 'node:fs/promises';

export const CONFIG_WATCH_MS = 3000;

type Identity = string | null;
const identity = async (file: string): Promise<Identity> => {
  const s = await stat(file).catch(() => null);
  return s ? `${s.ino}:${s.size}:${s.mtimeMs}` : null;
};

/** Calls `onChange` once when `file` differs from what it was at the call; returns what stops the watch. */
export async function watchConfig(file: string, onChange: (how: 'replaced' | 'removed') => void, everyMs = CONFIG_WATCH_MS): Promise<() => void> {
  const first = await identity(file);
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void identity(file).then((now) => {
      busy = false;
      if (now === first) return;
      clearInterval(timer);
      onChange(now === null ? 'removed' : 'replaced');
    });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
