/**
 * A plain SVG of link-adaptation timelines (no dependency): one panel per run, time on x,
 * kbit/s on a log scale on the left (link capacity, the box's video target and its wire
 * rate), frames per second arriving at the hub on the right (bars), audio lost (red) or
 * only late (amber) marked.
 */
import { AUDIO_ONLY } from '../../gst-pipelines/adapt/ladder.js';
import type { TimelinePoint } from '../integration/helpers/adapt-run.js';

export interface PlotRun {
  title: string;
  timeline: TimelinePoint[];
}

const W = 900;
const PANEL_H = 230;
const M = { left: 62, right: 52, top: 30, bottom: 34 };
const KBPS_MIN = 50;
const KBPS_MAX = 5000;
const FPS_MAX = 32;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function panel(run: PlotRun, y0: number, tMax: number): string {
  const iw = W - M.left - M.right;
  const ih = PANEL_H - M.top - M.bottom;
  const x = (t: number): number => M.left + (t / tMax) * iw;
  const yK = (k: number): number => y0 + M.top + ih - ((Math.log10(Math.min(KBPS_MAX, Math.max(KBPS_MIN, k))) - Math.log10(KBPS_MIN)) / (Math.log10(KBPS_MAX) - Math.log10(KBPS_MIN))) * ih;
  const yF = (f: number): number => y0 + M.top + ih - (Math.min(FPS_MAX, f) / FPS_MAX) * ih;
  const out: string[] = [];
  out.push(`<text x="${M.left}" y="${y0 + 18}" font-size="14" font-weight="bold">${esc(run.title)}</text>`);
  // Axes and grid.
  for (const k of [100, 300, 1000, 3000]) {
    out.push(`<line x1="${M.left}" x2="${M.left + iw}" y1="${yK(k)}" y2="${yK(k)}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${yK(k) + 4}" font-size="11" text-anchor="end">${k >= 1000 ? `${k / 1000}M` : `${k}k`}</text>`);
  }
  for (const f of [0, 15, 30]) out.push(`<text x="${M.left + iw + 6}" y="${yF(f) + 4}" font-size="11">${f}</text>`);
  for (let t = 0; t <= tMax; t += 10) {
    out.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${y0 + M.top}" y2="${y0 + M.top + ih}" stroke="#eee"/>`);
    out.push(`<text x="${x(t)}" y="${y0 + M.top + ih + 16}" font-size="11" text-anchor="middle">${t}s</text>`);
  }
  out.push(`<rect x="${M.left}" y="${y0 + M.top}" width="${iw}" height="${ih}" fill="none" stroke="#999"/>`);
  out.push(`<text x="14" y="${y0 + M.top + ih / 2}" font-size="11" transform="rotate(-90 14 ${y0 + M.top + ih / 2})" text-anchor="middle">kbit/s (log)</text>`);
  out.push(`<text x="${W - 12}" y="${y0 + M.top + ih / 2}" font-size="11" transform="rotate(90 ${W - 12} ${y0 + M.top + ih / 2})" text-anchor="middle">frames/s at the hub</text>`);
  const bw = Math.max(1, iw / tMax - 1);
  for (const p of run.timeline) {
    out.push(`<rect x="${x(p.tS - 1)}" y="${yF(p.hubFrames)}" width="${bw}" height="${yF(0) - yF(p.hubFrames)}" fill="#b7d7f0"/>`);
    // Audio lost (the hub's Opus audit: frames missing or broken) in red; audio only late
    // (a pause over 400 ms in the hub's level reports, nothing missing) in amber.
    const lost = p.hubAudio ? p.hubAudio.missingMs > 0 : (p.hubAudioMaxGapMs ?? 0) > 400;
    const late = !lost && (p.hubAudioMaxGapMs ?? 0) > 400;
    if (lost || late) out.push(`<rect x="${x(p.tS - 1)}" y="${y0 + M.top + ih - 6}" width="${bw}" height="6" fill="${lost ? '#d9534f' : '#f0ad4e'}"/>`);
  }
  const line = (pts: Array<[number, number]>, color: string, dash = '', step = false): void => {
    if (pts.length === 0) return;
    let d = `M${x(pts[0]![0])},${pts[0]![1]}`;
    for (let i = 1; i < pts.length; i++) d += step ? ` H${x(pts[i]![0])} V${pts[i]![1]}` : ` L${x(pts[i]![0])},${pts[i]![1]}`;
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
  };
  line(run.timeline.map((p) => [p.tS - 1, yK(p.capacityKbps)]), '#333', '6 3', true);
  line(run.timeline.filter((p) => p.sendKbps !== null).map((p) => [p.tS - 0.5, yK(p.sendKbps!)]), '#e08a00');
  line(run.timeline.filter((p) => p.targetKbps !== null).map((p) => [p.tS - 0.5, yK(p.rung === AUDIO_ONLY ? KBPS_MIN : p.targetKbps!)]), '#2a7d2a');
  return out.join('\n');
}

function legend(y: number): string {
  const items: Array<[string, string, number]> = [
    ['#333', 'link capacity', 0],
    ['#2a7d2a', 'video target (bottom: audio-only)', 105],
    ['#e08a00', 'wire rate sent', 315],
    ['#b7d7f0', 'frames/s at the hub', 425],
    ['#d9534f', 'audio lost at the hub', 565],
    ['#f0ad4e', 'audio late', 705],
  ];
  return items.map(([c, label, dx]) => `<rect x="${M.left + dx}" y="${y}" width="14" height="10" fill="${c}"/><text x="${M.left + dx + 18}" y="${y + 9}" font-size="11">${esc(label)}</text>`).join('\n');
}

export function svgTimelines(runs: PlotRun[], caption: string): string {
  const tMax = Math.max(10, ...runs.flatMap((r) => r.timeline.map((p) => p.tS)));
  const h = runs.length * PANEL_H + 50;
  const body = runs.map((r, i) => panel(r, i * PANEL_H, Math.ceil(tMax / 10) * 10)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${body}
${legend(runs.length * PANEL_H + 6)}
<text x="${M.left}" y="${runs.length * PANEL_H + 36}" font-size="11" fill="#555">${esc(caption)}</text>
</svg>
`;
}
