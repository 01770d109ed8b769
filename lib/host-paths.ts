/**
 * The one place that knows where things live on the host. Every `/sys`, `/proc`,
 * `/dev`, `/boot` or `/var/lib` path in the project comes from here, so tests point
 * the whole tree at a temp directory with one environment variable.
 *
 * EP_HOST_ROOT   prefix for every host path (tests: a fake sysfs/procfs tree)
 * EP_DATA_DIR    overrides the data directory (default /var/lib/commune-endpoint)
 */
import path from 'node:path';

export interface HostPaths {
  root: string;
  sys: (...p: string[]) => string;
  proc: (...p: string[]) => string;
  dev: (...p: string[]) => string;
  bootFirmware: (...p: string[]) => string;
  dataDir: string;
  /** `/sys/firmware/devicetree/base/model` (Pi, other ARM boards). */
  deviceTreeModel: string;
  /** `/sys/class/dmi/id/product_name` (x86). */
  dmiProductName: string;
  /** The Pi firmware's throttled flags. */
  throttled: string;
  drmClass: string;
  ledsClass: string;
  gpioClass: string;
  asoundCards: string;
  asoundPcm: string;
  video4linuxClass: string;
  /** systemd-timesyncd touches this file once the clock is synchronized (tmpfs: gone at boot). */
  timesyncSynchronized: string;
}

export function hostPaths(env: NodeJS.ProcessEnv = process.env): HostPaths {
  const root = env.EP_HOST_ROOT ? path.resolve(env.EP_HOST_ROOT) : '/';
  const at = (...p: string[]): string => path.join(root, ...p);
  const sys = (...p: string[]): string => at('sys', ...p);
  const proc = (...p: string[]): string => at('proc', ...p);
  return {
    root,
    sys,
    proc,
    dev: (...p) => at('dev', ...p),
    bootFirmware: (...p) => at('boot', 'firmware', ...p),
    dataDir: env.EP_DATA_DIR ? path.resolve(env.EP_DATA_DIR) : at('var', 'lib', 'commune-endpoint'),
    deviceTreeModel: sys('firmware', 'devicetree', 'base', 'model'),
    dmiProductName: sys('class', 'dmi', 'id', 'product_name'),
    throttled: sys('devices', 'platform', 'soc', 'soc:firmware', 'get_throttled'),
    drmClass: sys('class', 'drm'),
    ledsClass: sys('class', 'leds'),
    gpioClass: sys('class', 'gpio'),
    asoundCards: proc('asound', 'cards'),
    asoundPcm: proc('asound', 'pcm'),
    video4linuxClass: sys('class', 'video4linux'),
    timesyncSynchronized: at('run', 'systemd', 'timesync', 'synchronized'),
  };
}
