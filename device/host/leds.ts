/**
 * The on-board LEDs (ACT, PWR under /sys/class/leds, no wiring needed): blinking to
 * identify a box. Behind an interface: sysfs on the box, a log-only dry run for the demo
 * (test/fakes has the scriptable fake the tests use).
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { HostPaths } from '../../lib/index.js';

export interface Leds {
  /** Blinks every LED found for `ms`, then restores what each was doing. */
  blink(ms: number): Promise<{ leds: string[] }>;
}

export function sysfsLeds(paths: HostPaths, setTimer: (fn: () => void, ms: number) => unknown = setTimeout): Leds {
  return {
    async blink(ms) {
      let names: string[];
      try {
        names = (await readdir(paths.ledsClass)).filter((n) => /^(ACT|PWR|led0|led1)$/i.test(n));
      } catch {
        return { leds: [] };
      }
      const saved: Array<[string, string]> = [];
      for (const n of names) {
        const trig = path.join(paths.ledsClass, n, 'trigger');
        try {
          const cur = (await readFile(trig, 'utf8')).match(/\[([^\]]+)\]/)?.[1] ?? 'none';
          await writeFile(trig, 'timer');
          await writeFile(path.join(paths.ledsClass, n, 'delay_on'), '100').catch(() => undefined);
          await writeFile(path.join(paths.ledsClass, n, 'delay_off'), '100').catch(() => undefined);
          saved.push([trig, cur]);
        } catch {
          // not writable (not root, or no such LED): skip it
        }
      }
      setTimer(() => {
        for (const [trig, cur] of saved) void writeFile(trig, cur).catch(() => undefined);
      }, ms);
      return { leds: saved.map(([t]) => path.basename(path.dirname(t))) };
    },
  };
}

/** A dry run (the demo on a laptop): says what it would blink, touches nothing, blinks nothing. */
export function logOnlyLeds(log: (line: string) => void): Leds {
  return {
    async blink(ms) {
      log(`dry run: would blink the LEDs for ${ms} ms`);
      return { leds: [] };
    },
  };
}
