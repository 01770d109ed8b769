/**
 * One health sample in the contract's shape (CONTRACT.md "Health sample", healthSchema).
 *
 * Rules:
 * - A field the platform cannot read is null, never a made-up number.
 * - Every sub-read is isolated and bounded: one failing or hanging read nulls its own
 *   fields and nothing else. A read that is still hanging from an earlier sample is
 *   not started again (a stuck statfs on a dying SD card must not eat the libuv pool).
 * - Cheap: files through hostPaths instead of processes. Per sample this is a handful
 *   of small reads of /proc and /sys plus one statfs; processes only where no file
 *   exists (`vcgencmd` without the sysfs throttled file, `timedatectl` before timesyncd
 *   has synced). A command that fails is not spawned again for 10 minutes.
 * - Rates (CPU load, network kbps) are computed by the sampler between its own samples,
 *   so the first sample has them null. A window shorter than `minRateWindowMs` repeats
 *   the previous rate instead of measuring noise.
 *
 * Why not systeminformation for everything: `si.currentLoad()` runs
 * `execSync('cat /proc/stat | grep cpu')` (blocks the event loop 7–16 ms here, more on
 * a Pi), waits 500 ms on its first call, and keeps its baseline in a module global that
 * several agents in one process would share; `si.networkInterfaces()` spawns per
 * interface (≈280 ms here); `si.cpuTemperature()` spawns 2–3 shells. They stay as
 * injectable fallbacks where no file answers (`cpuTemperature`, `mem`,
 * `networkInterfaceDefault`), loaded lazily.
 */
import { readdir, readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { HealthSample } from '../contract/index.js';
import type { Clock } from '../../lib/index.js';
import type { HostPaths } from '../../lib/index.js';
import { clockSynced } from './clock-sync.js';
import { readThrottled, type CommandResult, type RunCommand } from './power.js';
import { diskUsedPct, parseDefaultRoute, parseMeminfo, parseProcStat, parseUptime, pickAddress, thermalC } from './parse.js';

/** The systeminformation functions the sampler may fall back to (all optional). */
export interface SiSubset {
  cpuTemperature?: () => Promise<{ main: number | null }>;
  mem?: () => Promise<{ total: number; available: number }>;
  networkInterfaceDefault?: () => Promise<string>;
}

export interface DeviceHealth { camera: boolean | null; display: boolean | null; mic: boolean | null; speaker: boolean | null }
export interface MediaHealth {
  send: { fps: number | null; kbps: number | null; rttMs: number | null; lossPct: number | null; retransPct: number | null };
  receive: { fps: number | null; kbps: number | null; lossPct: number | null };
  audio: { micDb: number | null; speakerDb: number | null };
  link: LinkHealth | null;
}
export interface LinkHealth {
  adaptive: boolean;
  rung: string;
  targetKbps: number;
  sendKbps: number | null;
  rttMs: number | null;
  rttFloorMs: number | null;
  congested: boolean;
  stepsDown: number;
  stepsUp: number;
}
/** What a media provider may return: any part may be missing (→ null). */
export interface MediaHealthInput {
  send?: Partial<MediaHealth['send']> | null;
  receive?: Partial<MediaHealth['receive']> | null;
  audio?: Partial<MediaHealth['audio']> | null;
  link?: LinkHealth | null;
}

type MaybePromise<T> = T | Promise<T>;
type NetInterfaces = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

export interface HealthSamplerDeps {
  paths: HostPaths;
  runCommand: RunCommand;
  clock: Clock;
  /** Agent start, `clock.now()` ms. Only used when /proc/uptime is unreadable. */
  startedAt: number;
  /** From the device probe; null (or a throwing provider) → all four null. */
  devices: () => MaybePromise<Partial<DeviceHealth> | null>;
  /** From the media worker; null when there is no session → all media fields null. */
  media: () => MaybePromise<MediaHealthInput | null>;
  /** systeminformation fallbacks. Default: the real module, imported on first use. Pass `{}` for none. */
  si?: SiSubset;
  /** Default `os.networkInterfaces` (getifaddrs, no process). */
  interfaceAddresses?: () => NetInterfaces;
  /** Default `process.memoryUsage.rss`. */
  rssBytes?: () => number;
  /** The filesystem whose fullness is reported. Default `paths.dataDir`. */
  dataDir?: string;
  /** Bound for each sub-read and command. Default 2000 ms. */
  timeoutMs?: number;
  /** How long the default interface is trusted. Default 60 s. */
  ifaceCacheMs?: number;
  /** Shortest window a rate is measured over. Default 1000 ms. */
  minRateWindowMs?: number;
  /** Told about each read that failed or timed out (for a debug log). */
  onReadError?: (field: string, error: unknown) => void;
}

const DEFAULT_TIMEOUT_MS = 2000;
const DEFAULT_IFACE_CACHE_MS = 60_000;
const DEFAULT_MIN_RATE_WINDOW_MS = 1000;
/** A command that failed (missing, no permission, no systemd) is not spawned again for this long. */
export const COMMAND_RETRY_MS = 10 * 60_000;
/** si.cpuTemperature (2–3 shells) is retried this rarely when it found nothing. */
const SI_TEMP_RETRY_MS = 10 * 60_000;
/** Thermal zone types that are the SoC/CPU, best first (Pi: cpu-thermal; x86: x86_pkg_temp). */
const CPU_ZONE_TYPES = ['cpu-thermal', 'cpu_thermal', 'x86_pkg_temp', 'soc-thermal', 'soc_thermal', 'cpu'];

const round1 = (v: number): number => Math.round(v * 10) / 10;
const finite = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const bool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null);

async function readText(file: string): Promise<string> {
  return readFile(file, 'utf8');
}

interface Counter { at: number; a: number; b: number }


export class HealthSampler {
  private readonly timeoutMs: number;
  private readonly inflight = new Set<string>();
  private readonly commandRetryAt = new Map<string, number>();
  private pending: Promise<HealthSample> | null = null;
  private si: SiSubset | null;
  private iface: { name: string | null; until: number } | null = null;
  private thermalZone: string | null | undefined = undefined;
  private siTempRetryAt = 0;
  private cpuBase: Counter | null = null;
  private cpuLast: number | null = null;
  private netBase: (Counter & { iface: string }) | null = null;
  private netLast: { iface: string; rx: number; tx: number } | null = null;

  constructor(private readonly deps: HealthSamplerDeps) {
    this.timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.si = deps.si ?? null;
  }

  /** Never rejects. Concurrent callers share one sample. */
  sample(): Promise<HealthSample> {
    this.pending ??= this.take().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  private async take(): Promise<HealthSample> {
    const { paths } = this.deps;
    const run = this.gatedRunner();
    const [uptime, load, temp, power, mem, disk, synced, net, devices, media] = await Promise.all([
      this.read('uptime', async () => parseUptime(await readText(paths.proc('uptime'))), null),
      this.read('cpu.load', () => this.cpuLoad(), null),
      this.read('cpu.temp', () => this.temperature(), null),
      this.read('power', () => readThrottled({ paths, runCommand: run, timeoutMs: this.timeoutMs }), null),
      this.read('mem', () => this.memUsedPct(), null),
      this.read('disk', () => this.diskUsedPct(), null),
      this.read('clock', () => clockSynced({ paths, runCommand: run, timeoutMs: this.timeoutMs }), null),
      this.read('net', () => this.net(), { iface: null, ip: null, rxKbps: null, txKbps: null }),
      this.read('devices', async () => (await this.deps.devices()) ?? null, null),
      this.read('media', async () => (await this.deps.media()) ?? null, null),
    ]);
    let rss: number | null = null;
    try {
      rss = finite((this.deps.rssBytes ?? process.memoryUsage.rss)());
    } catch (e) {
      this.deps.onReadError?.('mem.rss', e);
    }
    const now = this.deps.clock.now();
    return {
      ts: new Date(now).toISOString(),
      uptimeS: Math.floor(uptime ?? Math.max(0, (now - this.deps.startedAt) / 1000)),
      cpu: { loadPct: load, tempC: temp },
      power: {
        underVoltage: power?.underVoltage ?? null,
        underVoltageSinceBoot: power?.underVoltageSinceBoot ?? null,
        throttled: power?.throttled ?? null,
      },
      mem: { usedPct: mem, agentRssMb: rss === null ? null : round1(rss / 1024 / 1024) },
      disk: { usedPct: disk },
      clockSynced: synced,
      net,
      devices: {
        camera: bool(devices?.camera),
        display: bool(devices?.display),
        mic: bool(devices?.mic),
        speaker: bool(devices?.speaker),
      },
      media: {
        send: {
          fps: finite(media?.send?.fps),
          kbps: finite(media?.send?.kbps),
          rttMs: finite(media?.send?.rttMs),
          lossPct: finite(media?.send?.lossPct),
          retransPct: finite(media?.send?.retransPct),
        },
        receive: { fps: finite(media?.receive?.fps), kbps: finite(media?.receive?.kbps), lossPct: finite(media?.receive?.lossPct) },
        audio: { micDb: finite(media?.audio?.micDb), speakerDb: finite(media?.audio?.speakerDb) },
        link: media?.link ? { ...media.link, sendKbps: finite(media.link.sendKbps), rttMs: finite(media.link.rttMs), rttFloorMs: finite(media.link.rttFloorMs) } : null,
      },
    };
  }

  /** Runs one sub-read with a timeout; any failure gives `fallback`. */
  private async read<T>(field: string, fn: () => Promise<T>, fallback: T): Promise<T> {
    if (this.inflight.has(field)) return fallback; // still hanging from an earlier sample
    this.inflight.add(field);
    const work = (async () => fn())().finally(() => this.inflight.delete(field));
    const { clock } = this.deps;
    let timer: unknown;
    const timeout = new Promise<T>((resolve) => {
      timer = clock.setTimeout(() => {
        this.deps.onReadError?.(field, new Error(`timed out after ${this.timeoutMs} ms`));
        resolve(fallback);
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([
        work.catch((e: unknown) => {
          this.deps.onReadError?.(field, e);
          return fallback;
        }),
        timeout,
      ]);
    } finally {
      clock.clearTimeout(timer);
    }
  }

  /** The injected runner, minus commands that failed recently (no respawn every sample). */
  private gatedRunner(): RunCommand {
    return async (cmd, args, timeoutMs): Promise<CommandResult> => {
      const key = [cmd, ...args].join(' ');
      const now = this.deps.clock.now();
      if ((this.commandRetryAt.get(key) ?? 0) > now) return { code: null, stdout: '', stderr: 'skipped: failed recently' };
      const r = await this.deps.runCommand(cmd, args, timeoutMs);
      if (r.code === 0) this.commandRetryAt.delete(key);
      else this.commandRetryAt.set(key, this.deps.clock.now() + COMMAND_RETRY_MS);
      return r;
    };
  }

  private async loadSi(): Promise<SiSubset> {
    if (!this.si) {
      const mod = (await import('systeminformation')).default;
      this.si = { cpuTemperature: mod.cpuTemperature, mem: mod.mem, networkInterfaceDefault: mod.networkInterfaceDefault };
    }
    return this.si;
  }

  private async cpuLoad(): Promise<number | null> {
    const cur = parseProcStat(await readText(this.deps.paths.proc('stat')));
    if (!cur) return null;
    const at = this.deps.clock.now();
    const base = this.cpuBase;
    if (!base || cur.total < base.b) {
      this.cpuBase = { at, a: cur.busy, b: cur.total };
      this.cpuLast = null;
      return null;
    }
    if (at - base.at < (this.deps.minRateWindowMs ?? DEFAULT_MIN_RATE_WINDOW_MS) || cur.total === base.b) return this.cpuLast;
    const pct = ((cur.busy - base.a) / (cur.total - base.b)) * 100;
    this.cpuBase = { at, a: cur.busy, b: cur.total };
    this.cpuLast = round1(Math.min(100, Math.max(0, pct)));
    return this.cpuLast;
  }

  private async temperature(): Promise<number | null> {
    const zone = await this.findThermalZone();
    if (zone) {
      try {
        return thermalC(await readText(path.join(zone, 'temp')));
      } catch {
        this.thermalZone = undefined; // look again next time
        return null;
      }
    }
    const now = this.deps.clock.now();
    if (now < this.siTempRetryAt) return null;
    const si = await this.loadSi();
    if (!si.cpuTemperature) return null;
    const main = finite((await si.cpuTemperature()).main);
    const c = main === null || main === -1 || main <= -40 || main >= 150 ? null : round1(main);
    if (c === null) this.siTempRetryAt = now + SI_TEMP_RETRY_MS;
    return c;
  }

  /** The CPU's thermal zone (by type), else thermal_zone0; looked up once. */
  private async findThermalZone(): Promise<string | null> {
    if (this.thermalZone !== undefined) return this.thermalZone;
    const dir = this.deps.paths.sys('class', 'thermal');
    const zones = (await readdir(dir).catch(() => []))
      .filter((z) => /^thermal_zone\d+$/.test(z))
      .sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
    const typed = await Promise.all(
      zones.map(async (z) => ({ z, type: (await readText(path.join(dir, z, 'type')).catch(() => '')).trim().toLowerCase() })),
    );
    const rank = (t: string): number => {
      const i = CPU_ZONE_TYPES.indexOf(t);
      return i === -1 ? Infinity : i;
    };
    const best = [...typed].sort((x, y) => rank(x.type) - rank(y.type))[0];
    const pick = best && rank(best.type) !== Infinity ? best.z : zones.includes('thermal_zone0') ? 'thermal_zone0' : null;
    this.thermalZone = pick ? path.join(dir, pick) : null;
    return this.thermalZone;
  }

  private async memUsedPct(): Promise<number | null> {
    try {
      const pct = parseMeminfo(await readText(this.deps.paths.proc('meminfo')));
      if (pct !== null) return pct;
    } catch {
      // fall back to systeminformation
    }
    const si = await this.loadSi();
    if (!si.mem) return null;
    const m = await si.mem();
    if (!(m.total > 0) || !(m.available >= 0) || m.available > m.total) return null;
    return round1(((m.total - m.available) / m.total) * 100);
  }

  private async diskUsedPct(): Promise<number | null> {
    // The filesystem that will hold dataDir: walk up while it does not exist yet.
    let dir = path.resolve(this.deps.dataDir ?? this.deps.paths.dataDir);
    for (;;) {
      try {
        return diskUsedPct(await statfs(dir));
      } catch (e) {
        const parent = path.dirname(dir);
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) throw e;
        dir = parent;
      }
    }
  }

  private async defaultIface(): Promise<string | null> {
    const now = this.deps.clock.now();
    if (this.iface && now < this.iface.until) return this.iface.name;
    let name = parseDefaultRoute(await readText(this.deps.paths.proc('net', 'route')).catch(() => ''));
    if (!name) {
      // No IPv4 default route in /proc (IPv6-only, or not Linux): ask systeminformation.
      const si = await this.loadSi();
      const v = si.networkInterfaceDefault ? await si.networkInterfaceDefault() : '';
      name = typeof v === 'string' && v.trim() ? v.trim() : null;
    }
    this.iface = { name, until: now + (this.deps.ifaceCacheMs ?? DEFAULT_IFACE_CACHE_MS) };
    return name;
  }

  private async net(): Promise<HealthSample['net']> {
    const iface = await this.defaultIface();
    if (!iface) {
      this.netBase = null;
      this.netLast = null;
      return { iface: null, ip: null, rxKbps: null, txKbps: null };
    }
    let ip: string | null = null;
    try {
      ip = pickAddress((this.deps.interfaceAddresses ?? os.networkInterfaces)()[iface]);
    } catch (e) {
      this.deps.onReadError?.('net.ip', e);
    }
    return { iface, ip, ...(await this.netRates(iface)) };
  }

  private async netRates(iface: string): Promise<{ rxKbps: number | null; txKbps: number | null }> {
    const none = { rxKbps: null, txKbps: null };
    const stat = (f: string): Promise<string> => readText(this.deps.paths.sys('class', 'net', iface, 'statistics', f));
    let rx: number;
    let tx: number;
    try {
      [rx, tx] = (await Promise.all([stat('rx_bytes'), stat('tx_bytes')])).map((t) => Number(t.trim())) as [number, number];
    } catch (e) {
      this.deps.onReadError?.('net.rates', e);
      this.netBase = null;
      return none;
    }
    if (!Number.isFinite(rx) || !Number.isFinite(tx)) return none;
    const at = this.deps.clock.now();
    const base = this.netBase;
    // First sample, another interface, or counters that went backwards (interface reset,
    // 32-bit wrap on armhf): start a new window rather than report a bogus rate.
    if (!base || base.iface !== iface || rx < base.a || tx < base.b || at < base.at) {
      this.netBase = { iface, at, a: rx, b: tx };
      this.netLast = null;
      return none;
    }
    if (at - base.at < (this.deps.minRateWindowMs ?? DEFAULT_MIN_RATE_WINDOW_MS)) {
      return this.netLast?.iface === iface ? { rxKbps: this.netLast.rx, txKbps: this.netLast.tx } : none;
    }
    const s = (at - base.at) / 1000;
    const rates = { rxKbps: round1(((rx - base.a) * 8) / 1000 / s), txKbps: round1(((tx - base.b) * 8) / 1000 / s) };
    this.netBase = { iface, at, a: rx, b: tx };
    this.netLast = { iface, rx: rates.rxKbps, tx: rates.txKbps };
    return rates;
  }
}
