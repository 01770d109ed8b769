/**
 * One link-adaptation scenario, as the integration test and `npm run bench` both run it:
 * a LocalHub, a box sending 1280x720@30 at 1500 kbit/s through a BottleneckRelay whose
 * capacity follows a schedule, and a timeline of what each side saw. The box is the real
 * supervised worker; only the link is modelled (this kernel has no netem).
 *
 * Frames are counted where they are real: the box's packetiser (video frames leaving for
 * the hub) and the hub's receive tap (access units after tsdemux + h264parse). Audio is
 * audited at the hub packet by packet (ts-audit.ts): every Opus frame whose PTS is
 * missing between two received ones, or that arrived broken, is audio lost; the hub's
 * `level` reports (every 100 ms) and the Opus arrival times show when it played late.
 */
import type { WorkerStats } from '../../../gst-pipelines/worker/protocol.js';
import { BottleneckRelay } from './bottleneck.js';
import type { Resources} from './media.js';
import { HD, MediaLog, SMALL, boxPlan, hubSpec, newBox, startHub, type Sample } from './media.js';
import type { AdaptChange } from '../../../gst-pipelines/types.js';

export interface AdaptScenario {
  name: string;
  /** Capacity steps, seconds from the start of the scenario; the first one at 0. */
  steps: Array<{ atS: number; kbps: number }>;
  durationS: number;
  adapt: boolean;
  /** Drop-tail queue of the bottleneck (default 60 000 bytes, as in issue #4's measurement). */
  queueBytes?: number;
  srtLatencyMs?: number;
}

export interface TimelinePoint {
  /** Seconds since the scenario started (the capacity schedule's zero). */
  tS: number;
  capacityKbps: number;
  /** Box: the controller's video target and rung, what srtsink sent on the wire. */
  targetKbps: number | null;
  rung: string | null;
  sendKbps: number | null;
  rttMs: number | null;
  /** Box frames sent and hub frames received in this interval. */
  sentFrames: number;
  hubFrames: number;
  hubMaxGapMs: number | null;
  hubAudioMaxGapMs: number | null;
  /** Packets the bottleneck dropped (queue full) in this interval. */
  relayDrops: number;
  /** The hub's audit of the box's Opus frames this interval (null: no report). */
  hubAudio: { frames: number; missingMs: number; broken: number; ccErrors: number; ptsBackwards: number; arrivalMaxGapMs: number | null } | null;
}

export interface AdaptRun {
  scenario: AdaptScenario;
  timeline: TimelinePoint[];
  /** The box's wire rate as each stats report gave it (every 500 ms), for sub-second timing. */
  sends: Array<{ tS: number; sendKbps: number }>;
  changes: Array<{ tS: number; change: AdaptChange }>;
  restarts: Array<{ tS: number; reason: string }>;
}

/**
 * Frames counted in (from, to]: the frame counter summed over consecutive samples of the
 * same worker, linearly interpolated at the bin edges (stats arrive every 0.5–1 s, not
 * on the bins' edges; without it 1 s bins alias into 0, 60, 0, 60…).
 */
function framesBetween(samples: Sample[], side: 'send' | 'receive', from: number, to: number): number {
  const cum: Array<{ at: number; n: number }> = [];
  let total = 0;
  for (let i = 0; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i]!;
    if (a && a.pid === b.pid) total += Math.max(0, b.stats[side].frames - a.stats[side].frames);
    cum.push({ at: b.at, n: total });
  }
  const at = (t: number): number => {
    const j = cum.findIndex((c) => c.at >= t);
    if (j <= 0) return j === 0 ? cum[0]!.n : (cum.at(-1)?.n ?? 0);
    const a = cum[j - 1]!;
    const b = cum[j]!;
    return a.n + ((b.n - a.n) * (t - a.at)) / Math.max(1, b.at - a.at);
  };
  return Math.round(at(to) - at(from));
}

const within = (samples: Sample[], from: number, to: number): Sample[] => samples.filter((s) => s.at > from && s.at <= to);
const maxOf = (xs: Array<number | null>): number | null => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? Math.max(...v) : null;
};

function audioOf(samples: Sample[]): TimelinePoint['hubAudio'] {
  const audits = samples.flatMap((x) => (x.stats.receive.audit ? [x.stats.receive.audit] : []));
  if (audits.length === 0) return null;
  const sum = (f: (a: (typeof audits)[number]) => number): number => audits.reduce((t, a) => t + f(a), 0);
  return {
    frames: sum((a) => a.audioFrames),
    missingMs: Math.round(sum((a) => a.audioMissingMs)),
    broken: sum((a) => a.audioBroken),
    ccErrors: sum((a) => a.audioCcErrors),
    ptsBackwards: sum((a) => a.audioPtsBackwards),
    arrivalMaxGapMs: maxOf(audits.map((a) => a.audioArrivalMaxGapMs)),
  };
}

/**
 * The hub's audio over (fromS, toS]: Opus frames received whole, milliseconds of audio
 * missing (PTS holes + broken frames), continuity errors, frames whose PTS went backwards
 * (out of order), and the longest wait between two frames' arrivals (late audio: the
 * queue's delay growing, not audio lost).
 */
export function hubAudio(run: AdaptRun, fromS: number, toS: number): { frames: number; missingMs: number; broken: number; ccErrors: number; ptsBackwards: number; arrivalMaxGapMs: number | null; reports: number } {
  const pts = run.timeline.filter((p) => p.tS > fromS && p.tS <= toS && p.hubAudio !== null).map((p) => p.hubAudio!);
  return {
    frames: pts.reduce((a, p) => a + p.frames, 0),
    missingMs: pts.reduce((a, p) => a + p.missingMs, 0),
    broken: pts.reduce((a, p) => a + p.broken, 0),
    ccErrors: pts.reduce((a, p) => a + p.ccErrors, 0),
    ptsBackwards: pts.reduce((a, p) => a + p.ptsBackwards, 0),
    arrivalMaxGapMs: maxOf(pts.map((p) => p.arrivalMaxGapMs)),
    reports: pts.length,
  };
}

export async function runAdaptScenario(s: AdaptScenario, res: Resources): Promise<AdaptRun> {
  const latency = s.srtLatencyMs ?? 200;
  const hub = await startHub(res, { video: SMALL, latencyMs: latency, speakerLevelMs: 100, audit: true });
  const relay = await BottleneckRelay.start({ target: { host: '127.0.0.1', port: hub.ingestPort }, capacityKbps: s.steps[0]!.kbps, queueBytes: s.queueBytes ?? 60_000 });
  res.add('bottleneck relay', () => relay.close());
  const spec = hubSpec(hub, HD, { srt: { latencyMs: latency } });
  spec.send = { ...spec.send, url: `srt://127.0.0.1:${relay.port}`, adapt: { enabled: s.adapt } };
  const box = newBox(res, { statsPeriodMs: 500 });
  const boxLog = new MediaLog(box);
  const hubLog = new MediaLog(hub.supervisor);
  const changes: Array<{ at: number; change: AdaptChange }> = [];
  box.on('adapt', (a) => changes.push({ at: Date.now(), change: a.change }));
  const restarts: Array<{ at: number; reason: string }> = [];
  box.on('restart', (r) => restarts.push({ at: Date.now(), reason: r.reason }));

  await box.start(await boxPlan(spec));
  await hubLog.nextSample((x) => x.stats.receive.frames >= 30 && x.stats.audio.speakerBuffers > 0, 20_000, `${s.name}: the hub to decode the box's video and audio`);
  const t0 = Date.now();
  relay.schedule(s.steps.filter((x) => x.atS > 0).map((x) => ({ atMs: x.atS * 1000, kbps: x.kbps })));
  const relayT0 = relay.samples().at(-1)?.tMs ?? 0;
  await new Promise((r) => setTimeout(r, s.durationS * 1000));
  const end = Date.now();
  const relaySamples = relay.samples().map((x) => ({ ...x, tS: (x.tMs - relayT0) / 1000 }));

  const capacityAt = (tS: number): number => [...s.steps].reverse().find((x) => x.atS <= tS)?.kbps ?? s.steps[0]!.kbps;
  const timeline: TimelinePoint[] = [];
  // Whole seconds only, and not the last one: its stats may not have arrived yet.
  for (let tS = 1; t0 + tS * 1000 <= end - 1000; tS++) {
    const from = t0 + (tS - 1) * 1000;
    const to = t0 + tS * 1000;
    const boxIn = within(boxLog.samples, from, to);
    const hubIn = within(hubLog.samples, from, to);
    const lastBox: WorkerStats | undefined = boxIn[boxIn.length - 1]?.stats;
    timeline.push({
      tS,
      capacityKbps: capacityAt(tS - 0.5),
      targetKbps: lastBox?.adapt?.targetKbps ?? null,
      rung: lastBox?.adapt?.rung ?? null,
      sendKbps: maxOf(boxIn.map((x) => x.stats.adapt?.sendKbps ?? null)),
      rttMs: maxOf(boxIn.map((x) => x.stats.adapt?.rttMs ?? null)),
      sentFrames: framesBetween(boxLog.samples, 'send', from, to),
      hubFrames: framesBetween(hubLog.samples, 'receive', from, to),
      hubMaxGapMs: maxOf(hubIn.map((x) => x.stats.receive.maxGapMs)),
      hubAudioMaxGapMs: maxOf(hubIn.map((x) => x.stats.audio.speakerMaxGapMs)),
      relayDrops: relaySamples.filter((x) => x.tS > tS - 1 && x.tS <= tS).reduce((a, x) => a + x.droppedPackets, 0),
      hubAudio: audioOf(hubIn),
    });
  }
  const sends = boxLog.samples
    .filter((x) => x.at > t0 && x.at <= end && x.stats.adapt?.sendKbps != null)
    .map((x) => ({ tS: Math.round((x.at - t0) / 100) / 10, sendKbps: x.stats.adapt!.sendKbps! }));
  return {
    scenario: s,
    timeline,
    sends,
    changes: changes.map((c) => ({ tS: (c.at - t0) / 1000, change: c.change })),
    restarts: restarts.map((r) => ({ tS: (r.at - t0) / 1000, reason: r.reason })),
  };
}

/** Seconds from `atS` to the first step down (null: none). */
export function firstDownAfter(run: AdaptRun, atS: number): number | null {
  const c = run.changes.find((x) => x.tS >= atS && x.change.direction === 'down');
  return c ? c.tS - atS : null;
}

/**
 * Seconds from `atS` until the box's wire rate (srtsink, retransmissions included) is
 * within the link's capacity again, i.e. the bottleneck queue stops growing (null: never).
 */
export function fitAfter(run: AdaptRun, atS: number): number | null {
  const cap = (tS: number): number => [...run.scenario.steps].reverse().find((x) => x.atS <= tS)?.kbps ?? 0;
  // The first 500 ms report (a rate over the 500 ms before it) within capacity, the next one too.
  const i = run.sends.findIndex((x, k) => x.tS > atS && x.sendKbps <= cap(x.tS) && (run.sends[k + 1]?.sendKbps ?? 0) <= cap(x.tS));
  return i < 0 ? null : Math.round((run.sends[i]!.tS - atS) * 10) / 10;
}

/** The first second from which the bottleneck dropped nothing until `toS` (null: it kept dropping). */
export function noDropsFrom(run: AdaptRun, fromS: number, toS: number): number | null {
  const pts = run.timeline.filter((p) => p.tS > fromS && p.tS <= toS);
  const lastDrop = [...pts].reverse().find((p) => p.relayDrops > 0);
  if (!lastDrop) return fromS;
  return lastDrop.tS < toS ? lastDrop.tS : null;
}

/**
 * From when the hub's audio should be unbroken: audio sent once the bottleneck stopped
 * dropping (noDropsFrom) reaches the hub one queueing delay later — the largest SRT RTT
 * the box saw in the next 5 s (SRT smooths it, so it lags), rounded up to the second,
 * + 1 s of timeline binning.
 */
export function audioCleanFrom(run: AdaptRun, fromS: number, toS: number): number | null {
  const clean = noDropsFrom(run, fromS, toS);
  if (clean === null) return null;
  const rtt = maxOf(run.timeline.filter((p) => p.tS >= clean && p.tS <= clean + 5).map((p) => p.rttMs)) ?? 0;
  return clean + Math.ceil(rtt / 1000) + 1;
}

/**
 * The first second after `atS` from which the queue built at `atS` has drained: once the
 * box's largest SRT RTT in a second has risen to `underMs` or more, the first second back
 * under it (the first second after `atS` when it never rose: nothing queued). Null: it
 * rose and never came back.
 */
export function drainedAfter(run: AdaptRun, atS: number, underMs = 50): number | null {
  const after = run.timeline.filter((p) => p.tS > atS && p.rttMs !== null);
  const built = after.findIndex((p) => p.rttMs! >= underMs);
  if (built < 0) return after[0]?.tS ?? null;
  return after.slice(built).find((p) => p.rttMs! < underMs)?.tS ?? null;
}

/** Hub frames received ÷ box frames sent over [fromS, toS), in percent. */
export function framesPct(run: AdaptRun, fromS: number, toS: number): number {
  const pts = run.timeline.filter((p) => p.tS > fromS && p.tS <= toS);
  const sent = pts.reduce((a, p) => a + p.sentFrames, 0);
  const got = pts.reduce((a, p) => a + p.hubFrames, 0);
  return sent > 0 ? Math.round((1000 * got) / sent) / 10 : 0;
}

export function maxGap(run: AdaptRun, fromS: number, toS: number, which: 'video' | 'audio'): number | null {
  return maxOf(run.timeline.filter((p) => p.tS > fromS && p.tS <= toS).map((p) => (which === 'video' ? p.hubMaxGapMs : p.hubAudioMaxGapMs)));
}

/** Seconds from `atS` until the box is back at the top rung and the full bitrate (null: never). */
export function recoveredAfter(run: AdaptRun, atS: number, topRung: string, maxKbps: number): number | null {
  const c = run.changes.find((x) => x.tS >= atS && x.change.toRung === topRung && x.change.toKbps >= maxKbps);
  return c ? c.tS - atS : null;
}

/** Text table of a run, for logs and assertion messages. */
export function describeRun(run: AdaptRun): string {
  const rows = run.timeline.map(
    (p) =>
      `${String(p.tS).padStart(3)}s cap ${String(p.capacityKbps).padStart(4)} | tgt ${String(p.targetKbps ?? '-').padStart(4)} ${(p.rung ?? '-').padEnd(10)} send ${String(p.sendKbps ?? '-').padStart(5)} rtt ${String(p.rttMs ?? '-').padStart(6)} | frames ${String(p.sentFrames).padStart(2)}→${String(p.hubFrames).padStart(2)} gap ${p.hubMaxGapMs ?? '-'} | opus ${p.hubAudio ? `${p.hubAudio.frames} lost ${p.hubAudio.missingMs}ms${p.hubAudio.broken ? ` broken ${p.hubAudio.broken}` : ''} wait ${p.hubAudio.arrivalMaxGapMs ?? '-'}` : '-'} level gap ${p.hubAudioMaxGapMs ?? '-'} | drops ${p.relayDrops}`,
  );
  const ch = run.changes.map((c) => `${c.tS.toFixed(2)}s ${c.change.direction} ${c.change.fromRung}/${c.change.fromKbps} → ${c.change.toRung}/${c.change.toKbps} (${c.change.reason}, rtt ${c.change.rttMs} floor ${c.change.rttFloorMs})`);
  return [`${run.scenario.name}`, ...rows, 'changes:', ...ch, `restarts: ${run.restarts.map((r) => `${r.tS.toFixed(1)}s ${r.reason}`).join(', ') || 'none'}`].join('\n');
}

