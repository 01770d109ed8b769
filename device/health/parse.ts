/**
 * Pure parsers of the files the health sampler reads (/proc, /sys, statfs results), so
 * each is tested on real file contents without a host.
 */
import type os from 'node:os';

const round1 = (v: number): number => Math.round(v * 10) / 10;

/** `/proc/uptime` → seconds since boot. */
export function parseUptime(text: string): number | null {
  const v = Number.parseFloat(text.trim().split(/\s+/)[0] ?? '');
  return Number.isFinite(v) && v >= 0 ? v : null;
}

/** First line of `/proc/stat` → busy and total jiffies (guest time is already in user). */
export function parseProcStat(text: string): { busy: number; total: number } | null {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) return null;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) return null;
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, total };
}

/** `/proc/meminfo` → used % as (MemTotal − MemAvailable) / MemTotal. */
export function parseMeminfo(text: string): number | null {
  const kb = (key: string): number | null => {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text);
    return m?.[1] ? Number(m[1]) : null;
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  if (!total || available === null || available > total) return null;
  return round1(((total - available) / total) * 100);
}

/** `/proc/net/route` → the interface of the IPv4 default route with the lowest metric. */
export function parseDefaultRoute(text: string): string | null {
  let best: { iface: string; metric: number } | null = null;
  for (const line of text.split('\n').slice(1)) {
    const [iface, dest, , flags, , , metric, mask] = line.trim().split(/\s+/);
    if (!iface || dest !== '00000000' || mask !== '00000000') continue;
    if ((Number.parseInt(flags ?? '0', 16) & 0x1) === 0) continue; // RTF_UP
    const m = Number(metric);
    if (!best || m < best.metric) best = { iface, metric: Number.isFinite(m) ? m : Infinity };
  }
  return best?.iface ?? null;
}

/** The address to report for an interface: IPv4 first, then a global IPv6. */
export function pickAddress(addrs: os.NetworkInterfaceInfo[] | undefined): string | null {
  const list = (addrs ?? []).filter((a) => !a.internal);
  const v4 = list.find((a) => a.family === 'IPv4');
  if (v4) return v4.address;
  const v6 = list.find((a) => a.family === 'IPv6' && !a.address.toLowerCase().startsWith('fe80'));
  return v6?.address ?? null;
}

/** statfs → used % the way df counts it (blocks reserved for root are not "free"). */
export function diskUsedPct(s: { blocks: number; bfree: number; bavail: number }): number | null {
  const used = s.blocks - s.bfree;
  const denom = used + s.bavail;
  if (!(s.blocks > 0) || !(denom > 0) || used < 0) return null;
  return round1((used / denom) * 100);
}

/** A thermal reading in m°C → °C; null for garbage, the -1 "unknown" and impossible values. */
export function thermalC(text: string): number | null {
  const raw = Number.parseInt(text.trim(), 10);
  if (!Number.isFinite(raw) || raw === -1) return null;
  const c = raw / 1000;
  return c > -40 && c < 150 ? round1(c) : null;
}
