/**
 * `ep selftest [--json] [--socket PATH]`: asks the running agent to test itself (camera
 * frames, codecs, TV, microphone level, speaker, hub over MQTT and SRT, disk, clock,
 * power: device/selftest.ts) over its local control socket, and prints a pass/fail table
 * with what to do about each failure in Vietnamese and English. The report is the same as
 * the hub's `selftest` command gets. Exit 0 all passed, 1 something failed, 3 the agent
 * is not running, 4 no permission.
 */
import { parseArgs } from 'node:util';
import { displayString } from '../field/index.js';
import { askAgent, paint, socketOf, useColor } from './status.js';

type Out = (s: string) => void;

/** The selftest runs short gst-launch captures, an SRT handshake and a disk write: allow a minute. */
export const SELFTEST_WAIT_MS = 60_000;

interface Check {
  check: string;
  ok: boolean;
  detail: string;
  skipped?: boolean;
  advice?: { vi?: string; en?: string };
}

const asChecks = (r: unknown): Check[] | null => {
  const checks = (r as { checks?: unknown } | null)?.checks;
  if (!Array.isArray(checks)) return null;
  return checks
    .filter((c): c is Record<string, unknown> => typeof c === 'object' && c !== null)
    .map((c) => ({
      check: typeof c.check === 'string' ? c.check : '?',
      ok: c.ok === true,
      detail: typeof c.detail === 'string' ? c.detail : '',
      ...(c.skipped === true ? { skipped: true } : {}),
      ...(typeof c.advice === 'object' && c.advice !== null ? { advice: c.advice as Check['advice'] } : {}),
    }));
};

/** The table: one row per check (PASS, FAIL, SKIP), advice under each failure. Pure. */
export function formatSelftest(report: unknown, o: { color: boolean }): string {
  const checks = asChecks(report);
  if (!checks) return 'the agent answered without a checks table';
  const w = Math.max(8, ...checks.map((c) => c.check.length));
  const lines: string[] = [];
  for (const c of checks) {
    const mark = c.skipped ? paint(o.color, 'warn', 'SKIP') : c.ok ? paint(o.color, 'ok', 'PASS') : paint(o.color, 'fault', 'FAIL');
    lines.push(`${mark}  ${c.check.padEnd(w)}  ${displayString(c.detail, 400)}`);
    if (!c.ok && !c.skipped && c.advice) {
      if (c.advice.vi) lines.push(`${' '.repeat(w + 8)}${displayString(c.advice.vi, 400)}`);
      if (c.advice.en) lines.push(`${' '.repeat(w + 8)}${displayString(c.advice.en, 400)}`);
    }
  }
  const failed = checks.filter((c) => !c.ok && !c.skipped).length;
  lines.push('');
  lines.push(failed === 0 ? paint(o.color, 'ok', `all ${checks.length} checks passed (${checks.filter((c) => c.skipped).length} skipped)`) : paint(o.color, 'fault', `${failed} of ${checks.length} checks FAILED`));
  return lines.join('\n');
}

export async function selftestCommand(argv: string[], out: Out, err: Out, o: { color?: boolean; timeoutMs?: number } = {}): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, socket: { type: 'string' } }, strict: true });
  const r = await askAgent('selftest', socketOf(values.socket), 'selftest', err, o.timeoutMs ?? SELFTEST_WAIT_MS);
  if (typeof r === 'number') return r;
  if (!r.ok) {
    err(`ep selftest: the agent answered ${r.error?.code ?? 'an error'}: ${r.error?.message ?? ''}`);
    return 1;
  }
  const checks = asChecks(r.result);
  if (values.json) out(JSON.stringify(r.result, null, 2));
  else out(formatSelftest(r.result, { color: o.color ?? useColor() }));
  if (!checks) return 1;
  return (r.result as { ok?: unknown }).ok === true && checks.every((c) => c.ok) ? 0 : 1;
}
