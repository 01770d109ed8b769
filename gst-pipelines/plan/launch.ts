/**
 * Small helpers to write gst-launch syntax safely. Every value that comes from the
 * outside (titles, stream ids, device names) goes through `q()`, so a quote in a
 * commune's name cannot break or inject into a pipeline description.
 */

/** A double-quoted launch-string value. */
export function q(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** `a ! b ! c`, skipping empty parts. */
export function chain(...parts: Array<string | false | null | undefined>): string {
  return parts.filter((p): p is string => typeof p === 'string' && p.length > 0).join(' ! ');
}

/** Join independent branches of one pipeline description. */
export function branches(...parts: Array<string | false | null | undefined>): string {
  return parts.filter((p): p is string => typeof p === 'string' && p.length > 0).join('  ');
}

export interface SrtEndpoint {
  host: string;
  port: number;
}

/** Parses `srt://host:port[?…]`; throws an Error naming the problem. */
export function parseSrtUrl(url: string): SrtEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'srt:') throw new Error('must be an srt:// URL');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new Error('srt:// URL has no host');
  const port = Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('srt:// URL needs a port 1..65535');
  return { host, port };
}

/**
 * The H.264 level that fits width × height × fps (Table A-1 of the spec). The Pi 4's
 * v4l2h264enc refuses to negotiate without a level in its src caps (docs/platform-facts.md, "v4l2h264enc needs a level in its caps").
 */
export function h264Level(width: number, height: number, fps: number): string {
  const mbs = Math.ceil(width / 16) * Math.ceil(height / 16);
  const mbps = mbs * fps;
  const levels: Array<[string, number, number]> = [
    ['3', 1620, 40500],
    ['3.1', 3600, 108000],
    ['3.2', 5120, 216000],
    ['4', 8192, 245760],
    ['4.2', 8704, 522240],
    ['5.1', 36864, 983040],
  ];
  for (const [level, maxFs, maxMbps] of levels) if (mbs <= maxFs && mbps <= maxMbps) return level;
  return '5.1';
}
