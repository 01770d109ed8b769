/**
 * The worker's side of link adaptation: takes srtsink statistics as often as they are
 * read (FAST_SAMPLE_MS, or SAMPLE_MS with the stock binding), runs the collapse check
 * (fastCheck) on each reading — or, when epframer takes the fast readings, on each
 * window its trigger posts — and the controller (adaptStep) on one LinkSample per
 * SAMPLE_MS, and applies what they decide through an Actuator (the pipeline's elements:
 * worker/pipeline-adaptation.ts). No GStreamer here; unit-tested with scripted readings and run for
 * real in the adaptation integration tests.
 */
import { SAMPLE_MS } from './constants.js';
import { AUDIO_ONLY } from './ladder.js';
import { initialAdapt, type AdaptState, type LinkSample } from './state.js';
import { adaptStep } from './step.js';
import { fastCheck, thinWindow, type FastSample } from './collapse.js';
import type { SrtStats } from './srt-stats.js';
import type { AdaptChange, AdaptConfig, AdaptReport, Rung } from '../types.js';

export interface Actuator {
  /** The encoder's target bitrate, kbit/s. */
  setVideoBitrate(kbps: number): void;
  /** Size and frame rate of the sent video; null = audio only. */
  setRung(rung: Rung | null): void;
  /** Null-packet padding to probe the link while audio-only, kbit/s (0 = none). */
  setPaddingKbps(kbps: number): void;
}

const CONNECT_SETTLE_MS = 2000;

/** The srtsink counters the collapse check reads (srt-stats.ts fastReadingOf). */
export type FastReading = Pick<SrtStats, 'rttMs' | 'packetsSent' | 'bytesSent' | 'acksReceived'> & Partial<Pick<SrtStats, 'packetsLost'>>;

const delta = (prev: number | null, cur: number | null): number | null => (prev === null || cur === null || cur < prev ? null : cur - prev);

export class AdaptLoop {
  private state: AdaptState;
  private prev: { st: SrtStats; at: number } | null = null;
  /** Readings of the last second, for fastCheck (same socket only). */
  private fast: FastSample[] = [];
  /** When this socket's first ACK was seen (null: none yet). */
  private ackedSince: number | null = null;
  private last: { sample: LinkSample; congested: boolean } | null = null;
  private applied: { kbps: number; rung: string; padding: number };
  /** epframer takes the fast readings (readingsFromElement). */
  private windowsFromElement = false;

  constructor(
    private readonly config: AdaptConfig,
    private readonly act: Actuator,
    private readonly onChange: (c: AdaptChange, report: AdaptReport) => void,
    from?: { rung: string; targetKbps: number } | null,
  ) {
    this.state = initialAdapt(config, from);
    // The pipeline starts at the top rung and the plan's bitrate; a restarted worker
    // resumes where the previous one left off, at once.
    const top = config.ladder[0]?.id ?? AUDIO_ONLY;
    this.applied = { kbps: config.maxKbps, rung: top, padding: 0 };
    if (this.state.rung !== top || this.state.targetKbps !== config.maxKbps) this.apply(this.state.targetKbps, this.state.rung, 0);
  }

  /**
   * Feeds one srtsink `stats` reading, at any rate: the collapse check runs on each, the
   * controller once the last LinkSample is SAMPLE_MS old. Counters that went backwards
   * (a new socket) restart the window.
   */
  sample(st: SrtStats, now: number): void {
    if (this.windowsFromElement) this.noteAcks(st.source === 'none' ? null : st, now);
    else this.fastSample(st.source === 'none' ? null : st, now);
    const prev = this.prev;
    if (prev && now - prev.at < SAMPLE_MS - 20 && st.packetsSent !== null && prev.st.packetsSent !== null && st.packetsSent >= prev.st.packetsSent) return;
    this.prev = { st, at: now };
    if (!prev || st.source === 'none' || st.packetsSent === null) return;
    const sent = delta(prev.st.packetsSent, st.packetsSent);
    const bytes = delta(prev.st.bytesSent, st.bytesSent);
    if (sent === null || bytes === null || now <= prev.at) return;
    const s: LinkSample = {
      atMs: now,
      rttMs: st.rttMs,
      sendKbps: (bytes * 8) / (now - prev.at),
      sentPackets: sent,
      lostPackets: delta(prev.st.packetsLost, st.packetsLost) ?? 0,
      retransPackets: delta(prev.st.packetsRetransmitted, st.packetsRetransmitted) ?? 0,
      droppedPackets: delta(prev.st.packetsDropped, st.packetsDropped) ?? 0,
      ...(st.acksReceived !== null && prev.st.acksReceived !== null ? { acks: Math.max(0, st.acksReceived - prev.st.acksReceived) } : {}),
    };
    const r = adaptStep(this.state, s, this.config);
    this.state = r.state;
    this.last = { sample: s, congested: r.decision.congested };
    this.apply(r.decision.targetKbps, r.decision.rung, r.decision.probeKbps);
    if (r.decision.change) this.onChange(r.decision.change, this.report());
  }

  /**
   * True when the next reading must be a whole SrtStats for sample(): a LinkSample is
   * due, or the counters went backwards (a new socket). Otherwise fastReading() with the
   * four counters the collapse check uses is enough (srtsink is read 10 times a second;
   * the whole parse at that rate was half the worker's remaining JavaScript CPU).
   */
  needsFullReading(now: number, packetsSent: number | null): boolean {
    const prev = this.prev;
    return !prev || now - prev.at >= SAMPLE_MS - 20 || packetsSent === null || prev.st.packetsSent === null || packetsSent < prev.st.packetsSent;
  }

  /** A reading between two LinkSamples: the collapse check only (see needsFullReading). */
  fastReading(r: FastReading, now: number): void {
    this.fastSample(r, now);
  }

  /**
   * From now on epframer takes the fast readings (its link watch) and posts a window
   * when its trigger fires (collapse.ts collapseTriggered): sample() then only
   * steps the controller, and collapseCheck() runs the collapse check on each window.
   */
  readingsFromElement(): void {
    this.windowsFromElement = true;
    this.fast = [];
  }

  /**
   * A window epframer posted (readings oldest first, its clock, WATCH_SAMPLE_MS apart):
   * the collapse check on the readings of the same socket in its last second, thinned to
   * FAST_SAMPLE_MS spacing from the newest back, as fastSample would have run it on the
   * newest one.
   */
  collapseCheck(window: FastSample[]): void {
    const b = window[window.length - 1];
    if (!b) return;
    let from = 0;
    for (let i = 1; i < window.length; i++) {
      const w = window[i]!;
      const p = window[i - 1]!;
      if (w.packetsSent < p.packetsSent || w.acksReceived < p.acksReceived) from = i;
    }
    this.fast = thinWindow(window.slice(from).filter((w) => b.atMs - w.atMs <= 1000));
    if (this.ackedSince === null) this.ackedSince = this.fast.find((w) => w.acksReceived > 0)?.atMs ?? null;
    this.judge(b, b.atMs);
  }

  /** The controller's RTT floor (its history), ms; null before any RTT: what epframer's trigger is given. */
  historyFloorMs(): number | null {
    const h = this.state.rttHistory;
    return h.length ? Math.min(...h.map((x) => x.rttMs)) : null;
  }

  /** With readings from epframer: a new socket (counters back) restarts the settle time; the first ACK starts it. */
  private noteAcks(st: FastReading | null, now: number): void {
    if (!st || st.packetsSent === null || st.acksReceived === null) return;
    const p = this.prev?.st;
    if (p && ((p.packetsSent !== null && st.packetsSent < p.packetsSent) || (p.acksReceived !== null && st.acksReceived < p.acksReceived))) this.ackedSince = null;
    if (st.acksReceived > 0) this.ackedSince ??= now;
  }

  private fastSample(st: FastReading | null, now: number): void {
    if (!st || st.packetsSent === null || st.bytesSent === null || st.acksReceived === null) return;
    const f: FastSample = { atMs: now, rttMs: st.rttMs, packetsSent: st.packetsSent, bytesSent: st.bytesSent, acksReceived: st.acksReceived, ...(st.packetsLost != null ? { lostPackets: st.packetsLost } : {}) };
    const last = this.fast[this.fast.length - 1];
    if (last && (f.packetsSent < last.packetsSent || f.acksReceived < last.acksReceived)) {
      this.fast = [];
      this.ackedSince = null;
    }
    this.fast = [...this.fast.filter((w) => now - w.atMs <= 1000), f];
    if (f.acksReceived > 0) this.ackedSince ??= now;
    this.judge(f, now);
  }

  /** fastCheck over this.fast, whose newest reading is `st`. */
  private judge(st: FastReading, now: number): void {
    // A new connection first sends what queued while it connected, and libsrt reports a
    // default 100 ms RTT until it has measured one: no collapse is judged in its first seconds.
    if (this.ackedSince === null || now - this.ackedSince < CONNECT_SETTLE_MS) return;
    const r = fastCheck(this.state, this.fast, this.config);
    if (!r) return;
    this.state = r.state;
    this.last = { sample: { atMs: now, rttMs: st.rttMs, sendKbps: this.last?.sample.sendKbps ?? null, sentPackets: 0, lostPackets: 0, retransPackets: 0, droppedPackets: 0 }, congested: true };
    this.apply(r.decision.targetKbps, r.decision.rung, r.decision.probeKbps);
    if (r.decision.change) this.onChange(r.decision.change, this.report());
  }

  private apply(kbps: number, rung: string, padding: number): void {
    const a = this.applied;
    // Bitrate first: video coming back from audio-only starts at the new rate, not the old one.
    if (rung !== AUDIO_ONLY && kbps !== a.kbps) this.act.setVideoBitrate(kbps);
    if (rung !== a.rung) this.act.setRung(this.config.ladder.find((r) => r.id === rung) ?? null);
    if (padding !== a.padding) this.act.setPaddingKbps(padding);
    this.applied = { kbps: rung === AUDIO_ONLY ? a.kbps : kbps, rung, padding };
  }

  report(): AdaptReport {
    const s = this.last?.sample;
    const floor = this.historyFloorMs();
    const r1 = (v: number | null | undefined): number | null => (v === null || v === undefined ? null : Math.round(v * 10) / 10);
    return {
      enabled: this.config.enabled,
      rung: this.state.rung,
      targetKbps: this.state.targetKbps,
      probeKbps: this.state.probeKbps,
      sendKbps: s?.sendKbps === null || s?.sendKbps === undefined ? null : Math.round(s.sendKbps),
      rttMs: r1(s?.rttMs),
      rttFloorMs: r1(floor),
      congested: this.last?.congested ?? false,
      steps: { ...this.state.steps },
      resume: resumeFrom(this.state),
    };
  }
}

/** AdaptReport.resume: before an outage, or before a cut still unconfirmed, else where the state stands. */
function resumeFrom(s: AdaptState): { rung: string; targetKbps: number } {
  const from = s.outageFrom ?? s.unconfirmed ?? s;
  return { rung: from.rung, targetKbps: from.targetKbps };
}
