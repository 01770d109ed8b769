/**
 * The worker's loop that feeds the link adaptation (adapt-loop.ts AdaptLoop): whole
 * readings, the worker's light readings and epframer's triggered windows decide alike,
 * and the loop's own timing rules, with srtsink readings scripted the way libsrt reports
 * them (cumulative counters read every FAST_SAMPLE_MS; rates from docs/adapt.md).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { SAMPLE_MS } from '../../gst-pipelines/adapt/constants.js';
import { AUDIO_ONLY } from '../../gst-pipelines/adapt/ladder.js';
import { initialAdapt } from '../../gst-pipelines/adapt/state.js';
import { FAST_SAMPLE_MS, WATCH_SAMPLE_MS, collapseTrigger, collapseTriggered, fastCheck, type FastSample } from '../../gst-pipelines/adapt/collapse.js';
import { fastReadingOf, srtStatsFromStructure, type SrtStats } from '../../gst-pipelines/adapt/srt-stats.js';
import { AdaptLoop, type Actuator } from '../../gst-pipelines/adapt/adapt-loop.js';
import type { AdaptChange } from '../../gst-pipelines/types.js';
import { CONFIG, clean, flat, readings, type Phase } from './helpers/fast-readings.js';

describe('AdaptLoop', () => {
  const stats = (o: Partial<SrtStats>): SrtStats => ({
    side: 'send',
    source: 'socket',
    peers: 0,
    rttMs: 2,
    sendRateMbps: null,
    receiveRateMbps: null,
    bandwidthMbps: null,
    negotiatedLatencyMs: 200,
    packetsSent: 0,
    packetsReceived: null,
    packetsLost: 0,
    packetsRetransmitted: 0,
    packetsDropped: 0,
    acksReceived: 0,
    bytesSent: 0,
    bytesReceived: null,
    elementBytes: null,
    ...o,
  });

  /** A recorded caller-mode srtsink string (test/unit/fixtures) carrying this reading's counters. */
  const recorded = readFileSync(new URL('./fixtures/srt-stats-send-caller.txt', import.meta.url), 'utf8').split('\n').filter(Boolean).at(-1)!;
  const asString = (r: FastSample): string =>
    recorded
      .replace(/packets-sent=\(gint64\)\d+/, `packets-sent=(gint64)${r.packetsSent}`)
      .replace(/bytes-sent=\(guint64\)\d+/, `bytes-sent=(guint64)${r.bytesSent}`)
      .replace(/packet-ack-received=\(int\)\d+/, `packet-ack-received=(int)${r.acksReceived}`)
      .replace(/rtt-ms=\(double\)[\d.]+/, `rtt-ms=(double)${r.rttMs}`);

  /**
   * `full`: every reading parsed whole and fed to sample(). `worker`: as the worker's
   * tick does it (worker-actuator.ts) — the recorded string, the four counters only
   * (fastReadingOf → fastReading) unless needsFullReading says a LinkSample is due.
   */
  function drive(rs: FastSample[], mode: 'full' | 'worker' | 'element' = 'full'): { calls: string[]; changes: Array<{ atMs: number; c: AdaptChange }>; loop: AdaptLoop; light: number; windows: number; firstWindowAt: number | null } {
    const calls: string[] = [];
    const act: Actuator = {
      setVideoBitrate: (k) => calls.push(`bitrate ${k}`),
      setRung: (r) => calls.push(`rung ${r?.id ?? AUDIO_ONLY}`),
      setPaddingKbps: (k) => calls.push(`padding ${k}`),
    };
    const changes: Array<{ atMs: number; c: AdaptChange }> = [];
    let now = 0;
    const loop = new AdaptLoop(CONFIG, act, (c) => changes.push({ atMs: now, c }));
    let light = 0;
    let windows = 0;
    let firstWindowAt: number | null = null;
    if (mode === 'element') loop.readingsFromElement();
    /** epframer's ring: the last 1.2 s of readings of one socket. */
    let ring: FastSample[] = [];
    for (const r of rs) {
      now = r.atMs;
      if (mode === 'element') {
        // As epframer does on its streaming thread: the reading, then its trigger…
        const last = ring[ring.length - 1];
        if (last && (r.packetsSent < last.packetsSent || r.acksReceived < last.acksReceived)) ring = [];
        ring = [...ring.filter((w) => r.atMs - w.atMs <= 1200), r];
        if (collapseTriggered(ring, loop.historyFloorMs(), collapseTrigger(CONFIG))) {
          windows++;
          firstWindowAt ??= r.atMs;
          loop.collapseCheck(ring);
        }
        // …and the worker's own tick, once per SAMPLE_MS.
        if (r.atMs % SAMPLE_MS === 0) loop.sample(stats({ rttMs: r.rttMs, packetsSent: r.packetsSent, bytesSent: r.bytesSent, acksReceived: r.acksReceived }), r.atMs);
        continue;
      }
      if (mode === 'full') {
        loop.sample(stats({ rttMs: r.rttMs, packetsSent: r.packetsSent, bytesSent: r.bytesSent, acksReceived: r.acksReceived }), r.atMs);
        continue;
      }
      const raw = asString(r);
      const f = fastReadingOf(raw);
      if (f && !loop.needsFullReading(now, f.packetsSent)) {
        light++;
        loop.fastReading(f, now);
      } else loop.sample(srtStatsFromStructure(raw, 'send'), now);
    }
    return { calls, changes, loop, light, windows, firstWindowAt };
  }

  it("the worker's light readings (4 counters between LinkSamples), and epframer's triggered windows, decide exactly as whole readings do", () => {
    const scenarios: Record<string, FastSample[]> = {
      'collapse to 100 kbit/s': readings([clean, { untilMs: 9000, sentPerS: 150, acksPerS: 10, rttMs: flat(2) }]),
      'queue collapse (RTT climbing)': readings([clean, { untilMs: 9000, sentPerS: 150, acksPerS: 50, rttMs: (t) => 2 + (t - 5000) * 0.5 }]),
      'clean link': readings([{ untilMs: 10_000, sentPerS: 150, acksPerS: 70, rttMs: flat(2) }]),
      'new socket': [
        ...readings([{ untilMs: 3000, sentPerS: 150, acksPerS: 70, rttMs: flat(2) }]),
        ...readings([{ untilMs: 3000, sentPerS: 150, acksPerS: 70, rttMs: flat(2) }]).map((r) => ({ ...r, atMs: r.atMs + 3000 })),
      ],
    };
    for (const [name, rs] of Object.entries(scenarios)) {
      const full = drive(rs, 'full');
      const worker = drive(rs, 'worker');
      const element = drive(rs, 'element');
      expect(element.changes, `${name}: epframer's windows`).toEqual(full.changes);
      expect(element.calls, name).toEqual(full.calls);
      expect(element.loop.report(), name).toEqual(full.loop.report());
      // The worker wakes for a window only once the link went bad (clean for 5 s here).
      if (name === 'clean link' || name === 'new socket') expect(element.windows, `${name}: no window posted`).toBe(0);
      else expect(element.firstWindowAt, `${name}: windows only after the collapse`).toBeGreaterThanOrEqual(5000);
      expect(worker.light, `${name}: most readings are light`).toBeGreaterThan(rs.length / 2);
      expect(worker.changes, name).toEqual(full.changes);
      expect(worker.calls, name).toEqual(full.calls);
      expect(worker.loop.report(), name).toEqual(full.loop.report());
    }
    // The scenarios do exercise the collapse check.
    const collapse = drive(scenarios['collapse to 100 kbit/s']!, 'worker').changes;
    expect(collapse[0]).toMatchObject({ atMs: expect.any(Number), c: { toRung: AUDIO_ONLY } });
    expect(drive(scenarios['queue collapse (RTT climbing)']!, 'worker').changes.length).toBeGreaterThan(0);
  });

  it("epframer's windows from its readings every WATCH_SAMPLE_MS: the same changes as readings every FAST_SAMPLE_MS, none later, the collapse seen sooner", () => {
    const scenarios: Record<string, Phase[]> = {
      'collapse to 100 kbit/s': [clean, { untilMs: 9000, sentPerS: 150, acksPerS: 10, rttMs: flat(2) }],
      'queue collapse (RTT climbing)': [clean, { untilMs: 9000, sentPerS: 150, acksPerS: 50, rttMs: (t) => 2 + (t - 5000) * 0.5 }],
      'queue collapse, steeper': [clean, { untilMs: 9000, sentPerS: 150, acksPerS: 50, rttMs: (t) => 2 + (t - 5030) * 0.9 }],
      'clean link': [{ untilMs: 10_000, sentPerS: 150, acksPerS: 70, rttMs: flat(2) }],
    };
    let sooner = 0;
    for (const [name, phases] of Object.entries(scenarios)) {
      const every50 = readings(phases, WATCH_SAMPLE_MS);
      const full = drive(
        every50.filter((r) => r.atMs % FAST_SAMPLE_MS === 0),
        'full',
      );
      const element = drive(every50, 'element');
      const what = (cs: typeof full.changes): unknown[] => cs.map(({ c }) => [c.fromRung, c.toRung, c.reason]);
      expect(what(element.changes), name).toEqual(what(full.changes));
      element.changes.forEach((e, i) => {
        const f = full.changes[i]!;
        expect(e.atMs, `${name}: change ${i}`).toBeLessThanOrEqual(f.atMs);
        expect(e.atMs, `${name}: change ${i}`).toBeGreaterThanOrEqual(f.atMs - WATCH_SAMPLE_MS);
        if (e.atMs < f.atMs) sooner++;
      });
      if (name === 'clean link') expect(element.windows, `${name}: no window posted`).toBe(0);
    }
    expect(sooner).toBeGreaterThan(0);
  });

  it('fed every 100 ms: a 100 kbit/s collapse goes audio-only within 300 ms, and the actuator closes the video', () => {
    const { calls, changes, loop } = drive(readings([clean, { untilMs: 5400, sentPerS: 150, acksPerS: 10, rttMs: flat(2) }]));
    expect(changes).toHaveLength(1);
    expect(changes[0]!.atMs - 5000).toBeLessThanOrEqual(300);
    expect(changes[0]!.c.toRung).toBe(AUDIO_ONLY);
    expect(calls).toEqual([`rung ${AUDIO_ONLY}`]);
    expect(loop.report()).toMatchObject({ rung: AUDIO_ONLY, congested: true, steps: { down: 1, up: 0 } });
  });

  it('fed every 100 ms on a clean link: the controller still steps once per SAMPLE_MS (no change, rates over 500 ms)', () => {
    const { calls, changes, loop } = drive(readings([{ untilMs: 10_000, sentPerS: 150, acksPerS: 70, rttMs: flat(2) }]));
    expect(changes).toEqual([]);
    expect(calls).toEqual([]);
    // 150 packets/s × 1360 B = 1632 kbit/s, measured over a SAMPLE_MS window, not 100 ms.
    expect(loop.report().sendKbps).toBeGreaterThan(1500);
    expect(loop.report().sendKbps).toBeLessThan(1750);
  });

  it('a connection in its first 2 s (queued data leaving, few ACKs yet) is not judged', () => {
    // 150 packets/s from the start, ACKs trickling in at 10/s for the first 1.5 s.
    const { changes } = drive(readings([{ untilMs: 1500, sentPerS: 150, acksPerS: 10, rttMs: flat(100) }, { untilMs: 6000, sentPerS: 150, acksPerS: 70, rttMs: flat(2) }]));
    expect(changes).toEqual([]);
    // fastCheck itself: a window that starts before the first ACK says nothing.
    const rs = readings([{ untilMs: 300, sentPerS: 150, acksPerS: 0, rttMs: flat(100) }, { untilMs: 600, sentPerS: 150, acksPerS: 10, rttMs: flat(2) }]);
    expect(fastCheck(initialAdapt(CONFIG), rs.slice(2, 5), CONFIG)).toBeNull();
  });

  it('a new socket (counters back to zero) restarts the windows instead of reading a collapse', () => {
    const before = readings([{ untilMs: 3000, sentPerS: 150, acksPerS: 70, rttMs: flat(2) }]);
    const after = readings([{ untilMs: 3000, sentPerS: 150, acksPerS: 70, rttMs: flat(2) }]).map((r) => ({ ...r, atMs: r.atMs + 3000 }));
    expect(drive([...before, ...after]).changes).toEqual([]);
  });
});
