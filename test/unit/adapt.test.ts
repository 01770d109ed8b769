/**
 * The link-adaptation controller against a simulated bottleneck: a drop-tail queue
 * served at a capacity that follows a schedule (the integration test does the same with
 * real packets: test/integration/adapt.test.ts). The simulation is a fluid model, one
 * step per SAMPLE_MS: what the box offers enters the queue, the link serves capacity,
 * the overflow is lost, SRT's RTT is the path's base RTT plus the queueing delay.
 */
import { describe, expect, it } from 'vitest';
import { SAMPLE_MS } from '../../gst-pipelines/adapt/constants.js';
import { AUDIO_ONLY, delayBudgetMs, ladderFor, rungFor, wireKbps } from '../../gst-pipelines/adapt/ladder.js';
import { initialAdapt, type AdaptState, type LinkSample } from '../../gst-pipelines/adapt/state.js';
import { adaptStep } from '../../gst-pipelines/adapt/step.js';
import type { AdaptChange, AdaptConfig } from '../../gst-pipelines/types.js';

const VIDEO = { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 };
const CONFIG: AdaptConfig = { enabled: true, maxKbps: 1500, ladder: ladderFor(VIDEO), audioWireKbps: 80, srtLatencyMs: 200 };

interface Tick {
  t: number;
  capacity: number;
  target: number;
  rung: string;
  queueMs: number;
  lostPct: number;
  change: AdaptChange | null;
}

/** Runs the controller over `seconds` of a link whose capacity is `capacityAt(t)` kbit/s. */
function simulate(capacityAt: (tS: number) => number, seconds: number, config = CONFIG, opts: { baseRttMs?: number; randomLossPct?: number; queueBytes?: number } = {}): Tick[] {
  const base = opts.baseRttMs ?? 40;
  const queueMax = (opts.queueBytes ?? 60_000) * 8; // bits
  let state: AdaptState = initialAdapt(config);
  let queue = 0;
  let encoderKbps = config.maxKbps; // the encoder follows the target one sample late
  const ticks: Tick[] = [];
  const dt = SAMPLE_MS / 1000;
  for (let t = 0; t < seconds; t += dt) {
    const capacity = capacityAt(t);
    const fps = config.ladder.find((r) => r.id === state.rung)?.fps ?? 0;
    const offered = wireKbps(state.rung === AUDIO_ONLY ? 0 : encoderKbps, fps, config) + state.probeKbps;
    const inBits = offered * 1000 * dt;
    const served = Math.min(queue + inBits, capacity * 1000 * dt);
    let next = queue + inBits - served;
    const overflow = Math.max(0, next - queueMax);
    next -= overflow;
    queue = next;
    const queueMs = (queue / (capacity * 1000)) * 1000;
    const sent = inBits / (1316 * 8);
    const random = ((opts.randomLossPct ?? 0) / 100) * sent;
    const sample: LinkSample = {
      atMs: Math.round(t * 1000),
      rttMs: base + queueMs,
      sendKbps: offered,
      sentPackets: Math.round(sent),
      lostPackets: Math.round(overflow / (1316 * 8) + random),
      retransPackets: Math.round(overflow / (1316 * 8) + random),
      droppedPackets: queueMs > config.srtLatencyMs * 2 ? 1 : 0,
    };
    encoderKbps = state.targetKbps;
    const r = adaptStep(state, sample, config);
    state = r.state;
    ticks.push({ t, capacity, target: r.decision.targetKbps, rung: r.decision.rung, queueMs, lostPct: (100 * overflow) / Math.max(1, inBits), change: r.decision.change });
  }
  return ticks;
}

export const dump = (ticks: Tick[]): string => ticks.map((k) => `${k.t.toFixed(1)} cap=${k.capacity} tgt=${k.target} ${k.rung} q=${Math.round(k.queueMs)} loss=${k.lostPct.toFixed(0)}${k.change ? ' ' + k.change.direction + ':' + k.change.reason : ''}`).join('\n');
const between = (ticks: Tick[], from: number, to: number): Tick[] => ticks.filter((k) => k.t >= from && k.t < to);
const changes = (ticks: Tick[]): AdaptChange[] => ticks.flatMap((k) => (k.change ? [k.change] : []));

describe('ladderFor', () => {
  it('720p30 at 1500 kbit/s → 720p30, 720p15, 540p15, 360p15, each with a floor that fits its pixels', () => {
    const l = ladderFor(VIDEO);
    expect(l.map((r) => r.id)).toEqual(['720p30', '720p15', '540p15', '360p15']);
    expect(l.map((r) => [r.width, r.height, r.fps])).toEqual([[1280, 720, 30], [1280, 720, 15], [960, 540, 15], [640, 360, 15]]);
    // Floors fall with the pixel rate; the top floor never exceeds the spec's bitrate.
    for (let i = 1; i < l.length; i++) expect(l[i]!.minKbps).toBeLessThan(l[i - 1]!.minKbps);
    expect(l[0]!.minKbps).toBeLessThanOrEqual(1500);
    expect(l[3]!.minKbps).toBeGreaterThanOrEqual(100);
  });

  it('a 640x360@15 spec has no duplicate rungs', () => {
    expect(ladderFor({ width: 640, height: 360, fps: 15, bitrateKbps: 600 }).map((r) => r.id)).toEqual(['360p15', '270p15', '180p15']);
  });

  it('rungFor needs a margin to move up, none to stay', () => {
    const l = CONFIG.ladder;
    const floor540 = l[2]!.minKbps;
    expect(rungFor(floor540, '540p15', l)).toBe('540p15');
    expect(rungFor(floor540, '360p15', l)).toBe('360p15');
    expect(rungFor(floor540 * 1.21, '360p15', l)).toBe('540p15');
    expect(rungFor(10, '360p15', l)).toBe(AUDIO_ONLY);
  });

  it('the delay budget is a quarter of the SRT latency within 40..150 ms', () => {
    expect(delayBudgetMs(120)).toBe(40);
    expect(delayBudgetMs(200)).toBe(50);
    expect(delayBudgetMs(2000)).toBe(150);
  });
});

describe('adaptStep on a simulated bottleneck', () => {
  it('4 Mbit/s → 600 kbit/s at 20 s → 4 Mbit/s at 60 s: down within 3 s, settles without see-saw, full quality within 20 s of recovery', () => {
    const ticks = simulate((t) => (t >= 20 && t < 60 ? 600 : 4000), 90);
    if (process.env.DUMP) console.log(dump(ticks));
    // Untouched while the link is wide.
    expect(changes(between(ticks, 0, 20))).toEqual([]);
    const firstDown = between(ticks, 20, 90).find((k) => k.change?.direction === 'down');
    expect(firstDown?.t).toBeLessThanOrEqual(23);
    // After the collapse: what the box offers fits the link — the queue drains within a few
    // seconds, and the probes near the link's rate cost a little delay, below the SRT
    // latency (200 ms, so nothing arrives late), and no loss, for the rest of the 40 s.
    const drained = between(ticks, 20, 60).find((k) => k.queueMs === 0)!;
    expect(drained.t).toBeLessThanOrEqual(30);
    const settled = between(ticks, drained.t, 60);
    expect(Math.max(...settled.map((k) => k.queueMs))).toBeLessThan(200);
    expect(Math.max(...settled.map((k) => k.lostPct))).toBe(0);
    // Video all along (the lowest rung at worst), never audio-only for a 600 kbit/s link.
    expect(settled.every((k) => k.rung !== AUDIO_ONLY && k.target >= 100)).toBe(true);
    // Hysteresis: slow, small probes near the rate that congested the link, so at most one
    // probe-and-back every ~15 s while the link stays at 600 kbit/s.
    expect(changes(settled).filter((c) => c.direction === "down").length).toBeLessThanOrEqual(3);
    // Recovery: full rate and top rung within 20 s, and no step down after.
    const full = between(ticks, 60, 90).find((k) => k.target >= 1500 && k.rung === '720p30');
    expect(full?.t).toBeLessThanOrEqual(80);
    expect(changes(between(ticks, full!.t + 0.1, 90))).toEqual([]);
  });

  it('4 Mbit/s → 100 kbit/s → 4 Mbit/s: audio-only within 3 s, audio never starved, video back within 10 s', () => {
    const ticks = simulate((t) => (t >= 15 && t < 45 ? 100 : 4000), 80);
    if (process.env.DUMP) console.log(dump(ticks));
    const audioOnly = between(ticks, 15, 45).find((k) => k.rung === AUDIO_ONLY);
    expect(audioOnly?.t).toBeLessThanOrEqual(18);
    // The 60 KB queue filled in the first second holds 4.8 s at 100 kbit/s and drains at
    // what audio leaves free (physics, not policy). Once drained it stays short: probes
    // stop at the first sign of delay.
    const drained = between(ticks, 17, 45).find((k) => k.queueMs === 0)!;
    expect(drained).toBeDefined();
    const during = between(ticks, drained.t, 45);
    expect(during.every((k) => k.rung === AUDIO_ONLY)).toBe(true);
    expect(Math.max(...during.map((k) => k.queueMs))).toBeLessThan(200);
    expect(Math.max(...during.map((k) => k.lostPct))).toBe(0);
    const back = between(ticks, 45, 80).find((k) => k.rung !== AUDIO_ONLY);
    expect(back?.t).toBeLessThanOrEqual(55);
    expect(between(ticks, 45, 80).find((k) => k.rung === '720p30' && k.target >= 1500)?.t).toBeLessThanOrEqual(75);
  });

  it('rides random loss (10 %, flat RTT) without stepping down', () => {
    const ticks = simulate(() => 4000, 30, CONFIG, { randomLossPct: 10 });
    expect(changes(ticks)).toEqual([]);
  });

  it('treats RTT above its floor by more than the budget as congestion, even before any loss', () => {
    let s = initialAdapt(CONFIG);
    const sample = (atMs: number, rttMs: number): LinkSample => ({ atMs, rttMs, sendKbps: 1600, sentPackets: 70, lostPackets: 0, retransPackets: 0, droppedPackets: 0 });
    for (let t = 0; t < 5000; t += SAMPLE_MS) s = adaptStep(s, sample(t, 50), CONFIG).state;
    const r = adaptStep(s, sample(5000, 50 + delayBudgetMs(200) + 5), CONFIG);
    expect(r.decision.congested).toBe(true);
    expect(r.decision.change).toMatchObject({ direction: 'down', reason: 'queueing-delay', fromKbps: 1500, rttFloorMs: 50 });
    expect(r.decision.targetKbps).toBeLessThan(1500);
  });

  it('a jump from a clean link past the budget in one sample is a collapse (deep cut); a slow drift is not (mild cut)', () => {
    const sample = (atMs: number, rttMs: number): LinkSample => ({ atMs, rttMs, sendKbps: 1900, sentPackets: 90, lostPackets: 0, retransPackets: 0, droppedPackets: 0 });
    let s = initialAdapt(CONFIG);
    for (let t = 0; t < 5000; t += SAMPLE_MS) s = adaptStep(s, sample(t, 10), CONFIG).state;
    const jump = adaptStep(s, sample(5000, 10 + delayBudgetMs(200) * 2.5), CONFIG).decision;
    expect(jump.change?.direction).toBe('down');
    expect(jump.targetKbps).toBeLessThan(600); // wire cut to 25 %
    // A probe that overshoots a little (queue 1.5× the budget in one sample) is not a collapse.
    const bump = adaptStep(s, sample(5000, 10 + delayBudgetMs(200) * 1.5), CONFIG).decision;
    expect(bump.change?.direction).toBe('down');
    expect(bump.targetKbps).toBeGreaterThan(1000);
    let d = initialAdapt(CONFIG);
    for (let t = 0; t < 5000; t += SAMPLE_MS) d = adaptStep(d, sample(t, 10), CONFIG).state;
    let cut: AdaptChange | null = null;
    for (let i = 1; i <= 12 && !cut; i++) {
      const r = adaptStep(d, sample(5000 + i * SAMPLE_MS, 10 + i * 6), CONFIG);
      d = r.state;
      cut = r.decision.change;
    }
    expect(cut?.direction).toBe('down');
    expect(cut!.toKbps).toBeGreaterThan(1000); // cut to 85 %
  });

  it('adaptation disabled: reports congestion, never changes the target', () => {
    const ticks = simulate((t) => (t >= 5 ? 600 : 4000), 20, { ...CONFIG, enabled: false });
    expect(changes(ticks)).toEqual([]);
    expect(ticks.every((k) => k.target === 1500 && k.rung === '720p30')).toBe(true);
  });
});
