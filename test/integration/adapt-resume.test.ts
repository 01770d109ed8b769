/**
 * A worker restarted while the box was audio-only resumes audio-only (the supervisor
 * passes the last rung on). The program tables (PAT/PMT, the audio entry merged in) come
 * only from the video muxer, so a worker that closed its video at once sent Opus the hub
 * could not find: no audio at the hub until the link let video back (seen: ~4 s on a
 * clean link; for as long as the link stays down on a real one). The actuator now lets
 * a few frames of the lowest rung through first. Checked for both framings.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LocalHub } from '../../gst-pipelines/hub/local-hub.js';
import type { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import type { WorkerStats } from '../../gst-pipelines/worker/protocol.js';
import { capabilities, hubSpec, newBox, Resources, SMALL, startHub, testSettings } from './helpers/media.js';
import { planSession } from '../../gst-pipelines/plan/session.js';

const res = new Resources();
afterEach(() => res.release());

/** Makes the supervisor's next worker start as a restart after audio-only would. */
function resumeAudioOnly(box: MediaSupervisor): void {
  const s = box as unknown as { launch: () => Promise<void>; lastAdapt: { rung: string; targetKbps: number } | null };
  const launch = s.launch.bind(box);
  s.launch = async () => {
    s.lastAdapt = { rung: 'audio-only', targetKbps: 100 };
    return launch();
  };
}

describe('a worker restarted while audio-only', () => {
  for (const framing of ['epframer', 'node'] as const) {
    it(`${framing}: the hub hears the box within 2.5 s, before video comes back`, async () => {
      const real = await capabilities();
      if (framing === 'epframer') expect(real.elements.epframer, 'epframer built (npm run build)').toBe(true);
      const caps = framing === 'epframer' ? real : { ...real, elements: { ...real.elements, epframer: false } };
      const hub: LocalHub = await startHub(res, { caps, audit: true, speakerLevelMs: 100 });
      const box = newBox(res);
      resumeAudioOnly(box);
      const hubStats: Array<{ at: number; st: WorkerStats }> = [];
      const boxRungs: string[] = [];
      hub.supervisor.on('stats', (st) => hubStats.push({ at: Date.now(), st }));
      box.on('stats', (st) => st.adapt && boxRungs.push(st.adapt.rung));
      const t0 = Date.now();
      await box.start(planSession(hubSpec(hub, SMALL), caps, testSettings()));
      await new Promise((r) => setTimeout(r, 3500));

      expect(boxRungs[0], `box rungs ${boxRungs.join(' ')}`).toBe('audio-only');
      const heard = hubStats.find((h) => (h.st.receive.audit?.audioFrames ?? 0) > 0);
      const summary = hubStats.map((h) => `${h.at - t0}ms: audio ${h.st.receive.audit?.audioFrames ?? '-'} video ${h.st.receive.fps}`).join('; ');
      expect(heard, summary).toBeDefined();
      expect(heard!.at - t0, summary).toBeLessThanOrEqual(2500);
      // Nothing lost once heard.
      for (const h of hubStats.filter((x) => x.at >= heard!.at)) expect(h.st.receive.audit?.audioMissingMs ?? 0, summary).toBe(0);
    }, 30_000);
  }
});
