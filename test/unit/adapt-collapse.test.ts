/**
 * The collapse check between controller steps (collapse.ts fastCheck), the trigger
 * epframer evaluates for it, and what adaptStep does after its cuts, with srtsink
 * readings scripted the way libsrt reports them: cumulative counters read every
 * FAST_SAMPLE_MS. The ACK rates are the ones measured through the test bottleneck
 * (docs/adapt.md): ~70 ACKs/s while 150 packets/s pass, ~50/s through 600 kbit/s,
 * ~10/s through 100 kbit/s.
 */
import { describe, expect, it } from 'vitest';
import { SAMPLE_MS } from '../../gst-pipelines/adapt/constants.js';
import { AUDIO_ONLY, delayBudgetMs } from '../../gst-pipelines/adapt/ladder.js';
import { initialAdapt, type AdaptState, type LinkSample } from '../../gst-pipelines/adapt/state.js';
import { adaptStep } from '../../gst-pipelines/adapt/step.js';
import { FAST_SAMPLE_MS, WATCH_SAMPLE_MS, collapseTrigger, collapseTriggered, fastCheck, thinWindow, type FastSample } from '../../gst-pipelines/adapt/collapse.js';
import type { AdaptChange } from '../../gst-pipelines/types.js';
import { CONFIG, clean, flat, readings } from './helpers/fast-readings.js';

/** Runs fastCheck over the readings as the loop does (last second of them); the first change. */
function firstFastChange(rs: FastSample[], state: AdaptState = initialAdapt(CONFIG), config = CONFIG): { atMs: number; change: AdaptChange; state: AdaptState } | null {
  for (let i = 0; i < rs.length; i++) {
    const now = rs[i]!.atMs;
    const r = fastCheck(state, rs.slice(0, i + 1).filter((w) => now - w.atMs <= 1000), config);
    if (r?.decision.change) return { atMs: now, change: r.decision.change, state: r.state };
  }
  return null;
}

/** Every change fastCheck makes over the readings, its state threaded through. */
function fastChanges(rs: FastSample[], config = CONFIG): Array<{ atMs: number; change: AdaptChange; state: AdaptState }> {
  let state = initialAdapt(config);
  const out: Array<{ atMs: number; change: AdaptChange; state: AdaptState }> = [];
  for (let i = 0; i < rs.length; i++) {
    const now = rs[i]!.atMs;
    const r = fastCheck(state, rs.slice(0, i + 1).filter((w) => now - w.atMs <= 1000), config);
    if (!r) continue;
    state = r.state;
    if (r.decision.change) out.push({ atMs: now, change: r.decision.change, state });
  }
  return out;
}

describe('fastCheck', () => {
  it('ACKs that fall to 10/s while 150 packets/s are sent (a 100 kbit/s link): audio-only at once, marked unconfirmed', () => {
    const hit = firstFastChange(readings([clean, { untilMs: 6000, sentPerS: 150, acksPerS: 10, rttMs: flat(2) }]));
    expect(hit).not.toBeNull();
    expect(hit!.atMs - 5000).toBeLessThanOrEqual(300);
    expect(hit!.change).toMatchObject({ direction: 'down', toRung: AUDIO_ONLY, reason: 'delivery-collapse' });
    // Delivered ≈ 10 ACKs/s × 1360 B: the event says what the link carried.
    expect(hit!.change.deliveredKbps).toBeGreaterThan(60);
    expect(hit!.change.deliveredKbps).toBeLessThan(160);
    expect(hit!.state.unconfirmed).toMatchObject({ rung: '720p30', targetKbps: 1500 });
  });

  it('ACKs held back by holes on a lossy but wide link (5 % lost, reported by NAKs, RTT flat): no delivery collapse', () => {
    // Measured (net-media.test.ts, before this rule): at 5 % loss and 100 ms RTT the ACKs fell
    // under half the packets for a moment after each loss, and the box went audio-only.
    const wide = { ...clean, lostPerS: 0, rttMs: flat(100) };
    expect(firstFastChange(readings([wide, { untilMs: 8000, sentPerS: 150, acksPerS: 10, lostPerS: 7, rttMs: flat(100) }]))).toBeNull();
    // The same starved ACKs with no loss reported: a collapse.
    expect(firstFastChange(readings([wide, { untilMs: 8000, sentPerS: 150, acksPerS: 10, lostPerS: 0, rttMs: flat(100) }]))?.change.reason).toBe('delivery-collapse');
  });

  it('ACKs in clumps on a wide link (jitter kept in order: one ACK per 10 ms covers several packets): a dip is no collapse', () => {
    // 80 packets/s with ACKs at half of them, then 300 ms at a quarter of them: the old test
    // (ACKs < 40/s and < half the packets) fired here and the box went audio-only (net-media.test).
    const jittery = { untilMs: 5000, sentPerS: 80, acksPerS: 40, rttMs: flat(55) };
    const dip = { untilMs: 5300, sentPerS: 80, acksPerS: 21, rttMs: flat(55) };
    expect(firstFastChange(readings([jittery, dip, { ...jittery, untilMs: 8000 }]))).toBeNull();
    // From the same link, ACKs that fall to nearly none: a collapse.
    expect(firstFastChange(readings([jittery, { ...dip, untilMs: 6000, acksPerS: 8 }]))?.change.reason).toBe('delivery-collapse');
  });

  it('no ACK at all (the link went down): audio-only, and where it stood kept as outageFrom until an ACK comes back', () => {
    const hit = firstFastChange(readings([clean, { untilMs: 6000, sentPerS: 150, acksPerS: 0, rttMs: flat(2) }]));
    expect(hit!.change).toMatchObject({ toRung: AUDIO_ONLY, reason: 'delivery-collapse' });
    // The next sample: not one ACK while sending (and the dead link's sender drops, which confirm the cut).
    const dead: LinkSample = { atMs: hit!.atMs + SAMPLE_MS, rttMs: 2, sendKbps: 80, sentPackets: 10, lostPackets: 0, retransPackets: 0, droppedPackets: 3, acks: 0 };
    const down = adaptStep(hit!.state, dead, CONFIG).state;
    expect(down.rung).toBe(AUDIO_ONLY);
    expect(down.outageFrom).toEqual({ rung: '720p30', targetKbps: 1500 });
    expect(adaptStep(down, { ...dead, atMs: dead.atMs + SAMPLE_MS }, CONFIG).state.outageFrom).toEqual({ rung: '720p30', targetKbps: 1500 });
    expect(adaptStep(down, { ...dead, atMs: dead.atMs + SAMPLE_MS, acks: 5, droppedPackets: 0 }, CONFIG).state.outageFrom).toBeNull();
    // A narrow link still delivers: its cut is no outage.
    const narrow = firstFastChange(readings([clean, { untilMs: 6000, sentPerS: 150, acksPerS: 10, rttMs: flat(2) }]));
    expect(adaptStep(narrow!.state, { ...dead, acks: 2 }, CONFIG).state.outageFrom).toBeNull();
  });

  it('ACKs at ~50/s (600 kbit/s): no capacity can be read from them, nothing happens on a flat RTT', () => {
    expect(firstFastChange(readings([clean, { untilMs: 8000, sentPerS: 150, acksPerS: 50, rttMs: flat(2) }]))).toBeNull();
  });

  it('few packets sent (audio only, lowest rung idle): ACKs are not judged', () => {
    expect(firstFastChange(readings([{ untilMs: 5000, sentPerS: 10, acksPerS: 3, rttMs: flat(2) }]))).toBeNull();
  });

  it('a queue growing from clean past 60 % of the budget at ≥ 15 % of real time: deep cut to a video rung, not audio-only', () => {
    const budget = delayBudgetMs(CONFIG.srtLatencyMs);
    // RTT from 2 ms rising 0.3 ms per ms (what the 600 kbit/s collapse showed) from 5 s.
    const hit = firstFastChange(readings([clean, { untilMs: 7000, sentPerS: 150, acksPerS: 50, rttMs: (t) => 2 + 0.3 * (t - 5000) }]));
    expect(hit).not.toBeNull();
    expect(2 + 0.3 * (hit!.atMs - 5000)).toBeGreaterThan(budget * 0.6);
    expect(hit!.atMs - 5000).toBeLessThanOrEqual(300);
    expect(hit!.change).toMatchObject({ direction: 'down', reason: 'queueing-delay', toRung: '360p15' });
    expect(hit!.change.toKbps).toBeLessThan(400);
    expect(hit!.state.unconfirmed).toBeNull();
  });

  it('a queue growing nearly as fast as time, ACKs uninformative (gosrt ACKs every 10 ms): audio-only on the queue alone', () => {
    // 100 kbit/s behind a hub that ACKs 100 times a second whatever arrives: only the RTT tells.
    const rs = readings([clean, { untilMs: 7000, sentPerS: 150, acksPerS: 100, rttMs: (t) => 2 + 0.9 * (t - 5000) }]);
    const all = fastChanges(rs);
    // The first reading past the threshold cuts deep; the next one, with the slope measured
    // from the queue's onset, goes audio-only (confirmed by the queue itself).
    expect(all.map((c) => [c.atMs, c.change.toRung])).toEqual([
      [5100, '360p15'],
      [5200, AUDIO_ONLY],
    ]);
    expect(all[1]!.state.unconfirmed).toBeNull();
    // The same queue growing at 0.3 of real time (600 kbit/s) never goes audio-only here.
    const mild = fastChanges(readings([clean, { untilMs: 7000, sentPerS: 150, acksPerS: 100, rttMs: (t) => 2 + 0.3 * (t - 5000) }]));
    expect(mild.map((c) => c.change.toRung)).toEqual(['360p15']);
  });

  it('a slow drift (queue growing at 5 % of real time) is left to adaptStep', () => {
    expect(firstFastChange(readings([clean, { untilMs: 9000, sentPerS: 150, acksPerS: 60, rttMs: (t) => 2 + 0.05 * (t - 5000) }]))).toBeNull();
  });

  it('does nothing when disabled, or already audio-only', () => {
    const rs = readings([clean, { untilMs: 6000, sentPerS: 150, acksPerS: 10, rttMs: flat(2) }]);
    const off = { ...CONFIG, enabled: false };
    expect(firstFastChange(rs, initialAdapt(off), off)).toBeNull();
    expect(firstFastChange(rs, { ...initialAdapt(CONFIG), rung: AUDIO_ONLY, targetKbps: 0 })).toBeNull();
  });
});

const linkSample = (atMs: number, rttMs: number, extra: Partial<LinkSample> = {}): LinkSample => ({ atMs, rttMs, sendKbps: 90, sentPackets: 4, lostPackets: 0, retransPackets: 0, droppedPackets: 0, ...extra });

describe("epframer's collapse trigger (collapseTriggered, the reference of its C)", () => {
  it.each([
    ['its readings every WATCH_SAMPLE_MS, 0–9 ms late as epframer takes them', WATCH_SAMPLE_MS, 9],
    ['readings every FAST_SAMPLE_MS', FAST_SAMPLE_MS, 0],
  ])('fires on every window fastCheck acts on (thinned as the worker thins it): 3000 random links, RTT histories and rungs, %s', (_, stepMs, lateMs) => {
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const pick = <T,>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    let acted = 0;
    let fired = 0;
    let windows = 0;
    for (let n = 0; n < 3000; n++) {
      const base = 1 + rnd() * 80;
      const slope = pick([0, 0.05, 0.2, 0.5, 1]) * rnd();
      const step = rnd() < 0.3 ? rnd() * 150 : 0;
      const onset = 1000 + Math.floor(rnd() * 10) * 100;
      const rtt = (t: number): number => base + (t >= onset ? step + (t - onset) * slope : 0) + rnd() * 3;
      const rs = readings(
        [
          { untilMs: onset, sentPerS: 150, acksPerS: 70, rttMs: rtt },
          { untilMs: onset + 1000, sentPerS: rnd() * 400, acksPerS: rnd() * 120, rttMs: rtt },
        ],
        stepMs,
      ).map((r) => ({ ...r, atMs: r.atMs + Math.floor(rnd() * (lateMs + 1)) }));
      const history = Array.from({ length: Math.floor(rnd() * 4) }, (_, i) => ({ atMs: i * 500, rttMs: base * (0.5 + rnd()) }));
      const rung = pick(CONFIG.ladder).id;
      const state: AdaptState = { ...initialAdapt(CONFIG), rung, rttHistory: history };
      const floor = history.length ? Math.min(...history.map((h) => h.rttMs)) : null;
      for (let i = 1; i < rs.length; i++) {
        const now = rs[i]!.atMs;
        // epframer's ring holds 1.2 s; the worker judges the last second of it, thinned.
        const ring = rs.slice(0, i + 1).filter((w) => now - w.atMs <= 1200);
        const acts = fastCheck(state, thinWindow(ring.filter((w) => now - w.atMs <= 1000)), CONFIG) !== null;
        const trig = collapseTriggered(ring, floor, collapseTrigger(CONFIG));
        windows++;
        if (acts) acted++;
        if (trig) fired++;
        if (acts && !trig) expect.fail(`fastCheck acted where the trigger did not fire (case ${n}, t=${now}): ${JSON.stringify(ring.slice(-3))}, floor ${floor}`);
      }
    }
    // The random links do exercise it, and the trigger is not simply always on.
    expect(acted).toBeGreaterThan(100);
    expect(fired).toBeLessThan(windows * 0.5);
  });

  it('thinWindow keeps the newest reading, then each one at least 90 ms older than the last kept', () => {
    const at = (...ts: number[]): FastSample[] => ts.map((atMs) => ({ atMs, rttMs: 1, packetsSent: atMs, bytesSent: atMs, acksReceived: atMs }));
    expect(thinWindow(at(0, 55, 104, 158, 213, 262)).map((w) => w.atMs)).toEqual([55, 158, 262]);
    expect(thinWindow(at(0, 100, 200, 300)).map((w) => w.atMs)).toEqual([0, 100, 200, 300]);
    expect(thinWindow(at(0, 89, 178)).map((w) => w.atMs)).toEqual([0, 178]);
    expect(thinWindow([])).toEqual([]);
  });

  it('stays quiet on a clean link, and on a queue that stays under 60 % of the budget', () => {
    const t = collapseTrigger(CONFIG);
    const calm = readings([{ untilMs: 3000, sentPerS: 150, acksPerS: 70, rttMs: flat(30) }]);
    expect(calm.some((_, i) => collapseTriggered(calm.slice(0, i + 1), 30, t))).toBe(false);
    const budget = delayBudgetMs(CONFIG.srtLatencyMs);
    const under = readings([{ untilMs: 3000, sentPerS: 150, acksPerS: 70, rttMs: (ms) => 30 + Math.min(ms / 10, budget * 0.55) }]);
    expect(under.some((_, i) => collapseTriggered(under.slice(0, i + 1), 30, t))).toBe(false);
    const over = readings([{ untilMs: 3000, sentPerS: 150, acksPerS: 70, rttMs: (ms) => 30 + Math.min(ms / 10, budget * 0.65) }]);
    expect(over.some((_, i) => collapseTriggered(over.slice(0, i + 1), 30, t))).toBe(true);
  });
});

describe('a cut on ACKs alone', () => {
  const starved = (): AdaptState => firstFastChange(readings([clean, { untilMs: 6000, sentPerS: 150, acksPerS: 10, rttMs: flat(2) }]))!.state;

  it('is undone (false-alarm) when no queue or loss confirms it within 1.5 s: a hub that stalled', () => {
    let s = starved();
    const at = s.lastDecreaseAt!;
    let change: AdaptChange | null = null;
    for (let t = at + SAMPLE_MS; t <= at + 2000 && !change; t += SAMPLE_MS) {
      const r = adaptStep(s, linkSample(t, 2), CONFIG);
      s = r.state;
      change = r.decision.change;
      if (change) expect(t - at).toBeGreaterThanOrEqual(1500);
    }
    expect(change).toMatchObject({ direction: 'up', reason: 'false-alarm', toRung: '720p30', toKbps: 1500 });
    expect(s.unconfirmed).toBeNull();
    expect(s.probeKbps).toBe(0);
  });

  it('stands once the queue shows (a real collapse): no false alarm afterwards', () => {
    let s = starved();
    const at = s.lastDecreaseAt!;
    const changes: AdaptChange[] = [];
    for (let t = at + SAMPLE_MS; t <= at + 3000; t += SAMPLE_MS) {
      const r = adaptStep(s, linkSample(t, t - at < 1000 ? 2 + (t - at) : 1200), CONFIG);
      s = r.state;
      if (r.decision.change) changes.push(r.decision.change);
    }
    expect(changes).toEqual([]);
    expect(s.rung).toBe(AUDIO_ONLY);
    expect(s.unconfirmed).toBeNull();
  });
});

describe('adaptStep after a deep cut', () => {
  it('does not cut again while ACKs show the link delivering what is now sent, though the RTT still rises', () => {
    const cutAt = (): AdaptState => firstFastChange(readings([clean, { untilMs: 7000, sentPerS: 150, acksPerS: 50, rttMs: (t) => 2 + 0.3 * (t - 5000) }]))!.state;
    const run = (acks: number | undefined): AdaptChange[] => {
      let s = cutAt();
      const at = s.lastDecreaseAt!;
      const out: AdaptChange[] = [];
      for (let t = at + SAMPLE_MS; t <= at + 2500; t += SAMPLE_MS) {
        // 24 packets per sample (48/s), the RTT still climbing behind the old queue.
        const r = adaptStep(s, linkSample(t, 100 + (t - at) / 4, { sendKbps: 520, sentPackets: 24, ...(acks === undefined ? {} : { acks }) }), CONFIG);
        s = r.state;
        if (r.decision.change) out.push(r.decision.change);
      }
      return out;
    };
    expect(run(25)).toEqual([]);
    // Without ACK counts (or too few of them) the rising RTT reads as a cut that did not work.
    expect(run(undefined).map((c) => c.direction)).toEqual(['down']);
    expect(run(12).map((c) => c.direction)).toEqual(['down']);
  });
});

describe('adaptStep after a mild cut (a probe that overshot)', () => {
  const afterMildCut = (): AdaptState => {
    let s = { ...initialAdapt(CONFIG), targetKbps: 490, rung: '540p15' };
    for (let t = 0; t < 5000; t += SAMPLE_MS) s = adaptStep(s, linkSample(t, 10, { sendKbps: 580, sentPackets: 27, acks: 27 }), CONFIG).state;
    const r = adaptStep(s, linkSample(5000, 10 + delayBudgetMs(200) * 1.5, { sendKbps: 650, sentPackets: 30, acks: 27 }), CONFIG);
    expect(r.decision.change).toMatchObject({ direction: 'down', toRung: '540p15' });
    return r.state;
  };

  it('no deeper cut while the ACKs show the link delivering what is now sent, though the RTT catches up', () => {
    const r = adaptStep(afterMildCut(), linkSample(5500, 10 + delayBudgetMs(200) * 4.2, { sendKbps: 520, sentPackets: 24, acks: 24 }), CONFIG);
    expect(r.decision.change).toBeNull();
  });

  it('a deeper cut (no ACK evidence) keeps the limit the mild one found: increases from there are fast until near it', () => {
    const mild = afterMildCut();
    const r = adaptStep(mild, linkSample(5500, 10 + delayBudgetMs(200) * 4.2, { sendKbps: 520, sentPackets: 24 }), CONFIG);
    expect(r.decision.change?.direction).toBe('down');
    expect(r.state.targetKbps).toBeLessThan(200);
    expect(r.state.ceiling?.kbps).toBe(mild.ceiling?.kbps);
  });
});
