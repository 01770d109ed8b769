/**
 * Release versions: Semantic Versioning 2.0.0 (`1.3.0`, `1.4.0-rc.1`, `1.4.0+build.7`),
 * compared by semver precedence (build metadata ignored). The box refuses a manifest
 * whose version is not above the one it runs (a rollback attack), so the comparison is
 * the security boundary: no loose parsing, no leading zeros, numbers within 2^53.
 */

export interface Version {
  major: number;
  minor: number;
  patch: number;
  /** Pre-release identifiers (`rc.1` → ['rc', '1']); empty for a release. */
  pre: string[];
  text: string;
}

const NUM = '(0|[1-9]\\d*)';
const PRE_ID = '(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)';
const SEMVER = new RegExp(`^${NUM}\\.${NUM}\\.${NUM}(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$`);

/** The version, or null when `s` is not a semver 2.0.0 version (at most 64 characters). */
export function parseVersion(s: string): Version | null {
  if (s.length > 64) return null;
  const m = SEMVER.exec(s);
  if (!m) return null;
  const [major, minor, patch] = [m[1], m[2], m[3]].map(Number) as [number, number, number];
  if (![major, minor, patch].every(Number.isSafeInteger)) return null;
  return { major, minor, patch, pre: m[4] ? m[4].split('.') : [], text: s };
}

const isNum = (id: string): boolean => /^\d+$/.test(id);

/** Semver precedence: < 0 when a is older than b, 0 when equal (build ignored), > 0 when newer. */
export function compareVersions(a: Version, b: Version): number {
  for (const k of ['major', 'minor', 'patch'] as const) if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  // A release is above its pre-releases: 1.0.0-rc.1 < 1.0.0.
  if (a.pre.length === 0 || b.pre.length === 0) return a.pre.length === b.pre.length ? 0 : a.pre.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.max(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i];
    const y = b.pre[i];
    if (x === undefined) return -1; // fewer identifiers: lower
    if (y === undefined) return 1;
    if (x === y) continue;
    if (isNum(x) && isNum(y)) return Number(x) < Number(y) ? -1 : 1;
    if (isNum(x) !== isNum(y)) return isNum(x) ? -1 : 1; // numeric identifiers are lower
    return x < y ? -1 : 1;
  }
  return 0;
}
