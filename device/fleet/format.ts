/**
 * What `ep fleet` prints: plain-text tables and the --json objects, pure functions of the
 * roster and the reports. Every string a box sent was cleaned (no control characters, cut)
 * when it entered the roster.
 */
import type { MeetingReport } from './commands.js';
import type { RolloutEvent, RolloutReport, WaveReport } from './rollout-run.js';
import { countBoxes, type BoxView, type FleetCounts } from './roster.js';

/** Columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max([...h].length, ...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - [...c].length)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const dash = (v: string | null | undefined): string => (v === null || v === undefined || v === '' ? '-' : v);

/** One box as `ep fleet list --json` shows it. */
export function boxJson(b: BoxView): Record<string, unknown> {
  return {
    id: b.id,
    name: b.name,
    group: b.group,
    online: b.online,
    state: b.state,
    version: b.statusVersion ?? b.stateVersion,
    meetingId: b.meetingId,
    ota: b.ota,
    faults: b.faults,
  };
}

export interface ListIgnored {
  malformed: number;
  overCapBoxes: number;
}

export function listJson(boxes: readonly BoxView[], ignored: ListIgnored): { boxes: Record<string, unknown>[]; counts: FleetCounts; ignored: ListIgnored } {
  return { boxes: boxes.map(boxJson), counts: countBoxes(boxes), ignored };
}

function otaCell(b: BoxView): string {
  const o = b.ota;
  if (!o) return '-';
  const pct = o.phase === 'downloading' && o.progress !== null ? ` ${Math.round(o.progress * 100)}%` : '';
  return `${o.phase}${o.version ? ` ${o.version}` : ''}${pct}${o.code ? ` (${o.code})` : ''}`;
}

export function listText(boxes: readonly BoxView[], ignored: ListIgnored): string {
  const rows = boxes.map((b) => [
    b.id,
    dash(b.name),
    dash(b.group),
    b.online === true ? 'yes' : b.online === false ? 'no' : '?',
    dash(b.state),
    dash(b.statusVersion ?? b.stateVersion),
    dash(b.meetingId),
    otaCell(b),
    b.faults.length ? b.faults.join(',') : '-',
  ]);
  const c = countBoxes(boxes);
  const states = Object.entries(c.byState)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const lines = [
    boxes.length ? table(['id', 'name', 'group', 'online', 'state', 'version', 'meeting', 'ota', 'faults'], rows) : 'no boxes',
    `${boxes.length} box${boxes.length === 1 ? '' : 'es'}: ${c.online} online, ${c.offline} offline${states ? `; ${states}` : ''}`,
  ];
  const notes = [ignored.malformed ? `${ignored.malformed} malformed message(s)` : '', ignored.overCapBoxes ? `${ignored.overCapBoxes} box(es) over the roster's cap` : ''].filter(Boolean);
  if (notes.length) lines.push(`ignored: ${notes.join(', ')}`);
  return lines.join('\n');
}

export function meetingText(r: MeetingReport): string {
  const what = r.command === 'join' ? `join ${r.meetingId ?? ''}` : 'leave';
  const goal = r.command === 'join' ? 'in the meeting' : 'out of the meeting';
  const rows = r.boxes.map((b) => [
    b.id,
    dash(b.name),
    b.reply === 'refused' ? `refused ${dash(b.code)}${b.reason ? ` (${b.reason})` : ''}: ${b.message ?? ''}` : b.reply === 'ok' ? 'ok' : 'no reply',
    `${dash(b.state)}${b.meetingId && r.command !== 'leave' ? ` ${b.meetingId}` : ''}`,
    b.done ? 'yes' : 'NO',
  ]);
  const s = r.summary;
  const lines = [
    `${what} → group ${r.groupId}: ${s.boxes} box${s.boxes === 1 ? '' : 'es'} (command ${r.commandId})`,
    ...(rows.length ? [table(['id', 'name', 'reply', 'state', goal], rows)] : [`no online box of group ${r.groupId} is known (the retained meeting is set for boxes that come later)`]),
    `summary: replied ok ${s.repliedOk}, refused ${s.refused}, no reply ${s.noReply}; ${goal} ${s.done}, not ${s.notDone}`,
  ];
  if (r.notDone.length) lines.push(`NOT ${goal}: ${r.notDone.join(', ')}`);
  return lines.join('\n');
}

/** One progress line (or a few) per rollout event. */
export function rolloutEventText(e: RolloutEvent, maxFailurePct: number): string {
  if (e.kind === 'wave_start') {
    if (!e.boxes.length) return `wave ${e.wave} (${e.pct} %): no box (the earlier waves already hold ${e.pct} %)`;
    const already = e.alreadyAtTarget.length ? `, ${e.alreadyAtTarget.length} already at the target version` : '';
    return `wave ${e.wave} (${e.pct} %): ${e.boxes.length} box${e.boxes.length === 1 ? '' : 'es'}${already}: ${e.boxes.join(' ')}`;
  }
  return waveEndText(e.report, maxFailurePct);
}

function waveEndText(w: WaveReport, maxFailurePct: number): string {
  if (w.skipped) return `wave ${w.wave}: nothing to do`;
  const d = w.decision;
  const lines = [`wave ${w.wave} done: committed ${w.committed.length}, failed ${w.failed.length} of ${w.boxes.length} (${d.failurePct.toFixed(1)} %, limit ${maxFailurePct} %)`];
  for (const f of w.failed) lines.push(`  failed ${f.id}: ${f.why}`);
  return lines.join('\n');
}

export function rolloutSummaryText(r: RolloutReport, maxFailurePct: number): string {
  const lines: string[] = [];
  if (r.halted) {
    const w = r.waves[r.waves.length - 1];
    const d = w?.decision;
    lines.push(`HALTED at wave ${r.haltedAtWave}: ${d?.failed ?? 0} of ${d?.size ?? 0} failed (${(d?.failurePct ?? 0).toFixed(1)} % > ${maxFailurePct} %)${r.notRun.length ? `; wave${r.notRun.length === 1 ? '' : 's'} ${r.notRun.join(', ')} not run` : ''}`);
    for (const f of w?.failed ?? []) lines.push(`  ${f.id}: ${f.why}`);
  } else lines.push(`done: ${r.target} on group ${r.groupId}`);
  const planned = r.waves.reduce((n, w) => n + w.boxes.length, 0);
  lines.push(`summary: ${r.online} online boxes, ${planned} in the waves run, committed ${r.committed}, failed ${r.failed}`);
  return lines.join('\n');
}

/** `ep fleet ota --json`. */
export function rolloutJson(r: RolloutReport): Record<string, unknown> {
  return {
    groupId: r.groupId,
    target: r.target,
    manifestUrl: r.manifestUrl,
    online: r.online,
    waves: r.waves.map((w) => ({
      wave: w.wave,
      pct: w.pct,
      boxes: w.boxes,
      committed: w.committed,
      failed: w.failed,
      alreadyAtTarget: w.alreadyAtTarget,
      failurePct: w.decision.failurePct,
    })),
    halted: r.halted,
    haltedAtWave: r.haltedAtWave,
    notRun: r.notRun,
    committed: r.committed,
    failed: r.failed,
  };
}
