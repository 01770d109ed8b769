/**
 * A worker restarted while the box was audio-only resumes audio-only (the supervisor
 * passes the last rung on), and the hub must hear it before video comes back: the
 * program tables (PAT/PMT, the audio entry merged in) come only from the video muxer, so
 * a worker that closed its video at once sent Opus the hub could not find. The actuator
 * lets a few frames of the lowest rung through first. Run by the integration test
 * (adapt-resume.test.ts: the order of events) and the bench (`--only faults`: how soon).
 */
import type { Capabilities, MediaSupervisor } from '../../../gst-pipelines/index.js';
import { planSession } from '../../../gst-pipelines/plan/index.js';
import type { WorkerStats } from '../../../gst-pipelines/worker/index.js';
import { capabilities, hubSpec, newBox, SMALL, startHub, testSettings, type Resources } from './media.js';
import { pollUntil } from './processes.js';

/** Makes the supervisor's next worker start as a restart after audio-only would. */
function resumeAudioOnly(box: MediaSupervisor): void {
  const s = box as unknown as { launch: () => Promise<void>; lastAdapt: { rung: string; targetKbps: number } | null };
  const launch = s.launch.bind(box);
  s.launch = async () => {
    s.lastAdapt = { rung: 'audio-only', targetKbps: 100 };
    return launch();
  };
}

export interface AudioResumeRun {
  /** The rungs the box reported, in order. */
  boxRungs: string[];
  /** ms from start() to the hub's first report with Opus frames in it. */
  heardMs: number;
  /** ms from start() to the box's first step up out of audio-only (null: none while watched). */
  videoBackMs: number | null;
  /** Opus missing at the hub in each report from the one that first heard the box, `reportsAfter` more. */
  missingMsAfterHeard: number[];
  summary: string;
}

/** `framing`: our epframer element, or the Node framing (the fallback without it). */
export async function audioOnlyResume(res: Resources, framing: 'epframer' | 'node', o: { guardMs?: number; reportsAfter?: number } = {}): Promise<AudioResumeRun & { caps: Capabilities }> {
  const guard = o.guardMs ?? 30_000;
  const real = await capabilities();
  const caps = framing === 'epframer' ? real : { ...real, elements: { ...real.elements, epframer: false } };
  const hub = await startHub(res, { caps, audit: true, speakerLevelMs: 100 });
  const box = newBox(res);
  resumeAudioOnly(box);
  const hubStats: Array<{ at: number; st: WorkerStats }> = [];
  const boxRungs: string[] = [];
  let upAt: number | null = null;
  hub.supervisor.on('stats', (st) => hubStats.push({ at: Date.now(), st }));
  box.on('stats', (st) => st.adapt && boxRungs.push(st.adapt.rung));
  box.on('adapt', (a) => {
    if (upAt === null && a.change.direction === 'up' && a.change.fromRung === 'audio-only') upAt = Date.now();
  });
  const t0 = Date.now();
  await box.start(planSession(hubSpec(hub, SMALL), caps, testSettings()));
  const summary = (): string => hubStats.map((h) => `${h.at - t0}ms: audio ${h.st.receive.audit?.audioFrames ?? '-'} video ${h.st.receive.fps}`).join('; ');
  const heardIndex = (): number => hubStats.findIndex((h) => (h.st.receive.audit?.audioFrames ?? 0) > 0);
  await pollUntil(() => heardIndex() >= 0, guard, `the hub to hear the box (${summary()})`);
  const i = heardIndex();
  const reportsAfter = o.reportsAfter ?? 2;
  await pollUntil(() => hubStats.length > i + reportsAfter, guard, `${reportsAfter} more hub reports`);
  return {
    caps,
    boxRungs,
    heardMs: hubStats[i]!.at - t0,
    videoBackMs: upAt === null ? null : upAt - t0,
    missingMsAfterHeard: hubStats.slice(i, i + reportsAfter + 1).map((h) => h.st.receive.audit?.audioMissingMs ?? 0),
    summary: summary(),
  };
}
