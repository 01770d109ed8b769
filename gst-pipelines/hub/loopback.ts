/**
 * `ep media loopback`: a box and a district hub on this machine, talking MPEG-TS over
 * SRT both ways. Shows fps/kbps/RTT as they go, writes a PNG of a frame the hub
 * received and of a frame the box displayed, and judges the run.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { LocalHub } from './local-hub.js';
import { planSession } from '../plan/index.js';
import { probe } from '../probe/index.js';
import { MediaSupervisor } from '../supervisor/index.js';
import { forkSpawner } from '../supervisor/index.js';
import type { WorkerStats } from '../worker/index.js';

export interface LoopbackOptions {
  seconds: number;
  outDir: string;
  passphrase?: string;
  out: (line: string) => void;
}

export interface LoopbackResult {
  ok: boolean;
  problems: string[];
  hubReceivedFps: number;
  boxDisplayedFps: number;
  files: string[];
}

const fmt = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? '–' : `${Math.round(v * 10) / 10}${unit}`);

export async function runLoopback(o: LoopbackOptions): Promise<LoopbackResult> {
  const caps = await probe();
  const hubDir = path.join(o.outDir, 'hub');
  const boxDir = path.join(o.outDir, 'box');
  await mkdir(hubDir, { recursive: true });
  await mkdir(boxDir, { recursive: true });
  const hub = await LocalHub.create({ caps, snapshotDir: hubDir, ...(o.passphrase ? { passphrase: o.passphrase } : {}) });
  const box = new MediaSupervisor({ spawner: forkSpawner({ stderr: 'ignore' }), snapshotDir: boxDir, statsPeriodMs: 1000 });
  const spec = hub.joinSpec('loopback');
  const plan = planSession(spec, caps, { source: 'test', volume: 1, micMuted: false, aec: true, statsPeriodS: 1, snapshotDir: boxDir, standbyTitle: 'Xã Cẩm Thanh — commune box' });
  o.out(`box:  encoder ${plan.choices.encoder}, decoder ${plan.choices.decoder}, camera ${plan.choices.camera}, display ${plan.choices.display}, AEC ${plan.choices.aec ? 'on' : 'off'}`);
  o.out(`hub:  listening on srt://${hub.host}:${hub.ingestPort} (box → hub) and srt://${hub.host}:${hub.programPort} (program → box)`);

  let hubStats: WorkerStats | null = null;
  let boxStats: WorkerStats | null = null;
  const hubSamples: number[] = [];
  const boxSamples: number[] = [];
  hub.supervisor.on('stats', (s) => {
    hubStats = s;
    if (s.receive.fps !== null && s.uptimeMs > 0) hubSamples.push(s.receive.fps);
  });
  box.on('stats', (s) => {
    boxStats = s;
    if (s.receive.fps !== null) boxSamples.push(s.receive.fps);
    const b = s;
    const h = hubStats;
    o.out(
      `t=${fmt(b.uptimeMs / 1000, 's').padEnd(6)} box→hub ${fmt(b.send.fps, 'fps')} ${fmt(b.send.kbps, 'kbps')} rtt ${fmt(b.send.srt?.rttMs, 'ms')} | ` +
        `hub got ${fmt(h?.receive.fps, 'fps')} audio ${fmt(h?.audio.speakerDb, 'dB')} | ` +
        `hub→box ${fmt(b.receive.fps, 'fps')} ${fmt(b.receive.kbps, 'kbps')} audio ${fmt(b.audio.speakerDb, 'dB')}`,
    );
  });
  box.on('restart', (r) => o.out(`box:  media restart (${r.reason}), attempt ${r.attempt}, in ${r.delayMs} ms`));

  const problems: string[] = [];
  const files: string[] = [];
  try {
    await hub.start();
    await box.prewarm();
    const t0 = Date.now();
    await box.start(plan, o.passphrase ? { passphrase: o.passphrase } : {});
    box.once('first-bytes', (f) => o.out(`box:  first ${f.direction} media after ${Date.now() - t0} ms`));
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    const saved = await savePictures(hub.supervisor, box, o.outDir);
    files.push(...saved.files);
    problems.push(...saved.problems);
  } finally {
    await box.close();
    await hub.stop();
  }
  const steady = (xs: number[]): number => {
    const tail = xs.slice(Math.min(2, Math.max(0, xs.length - 3)));
    return tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : 0;
  };
  const hubFps = steady(hubSamples);
  const boxFps = steady(boxSamples);
  const nominal = plan.video.fps;
  const last = boxStats as WorkerStats | null;
  if (hubFps < nominal * 0.9) problems.push(`the hub received ${hubFps.toFixed(1)} fps, below 90 % of ${nominal}`);
  if (boxFps < nominal * 0.9) problems.push(`the box displayed ${boxFps.toFixed(1)} fps, below 90 % of ${nominal}`);
  if (!last || last.audio.speakerBuffers === 0) problems.push('no program audio reached the box');
  return { ok: problems.length === 0, problems, hubReceivedFps: hubFps, boxDisplayedFps: boxFps, files };
}

/**
 * The demos' proof: a frame the hub received (`hub-received.png`) and a frame the box
 * decoded for its TV (`box-displayed.png`), copied from the workers' latest snapshots.
 */
export async function savePictures(hub: MediaSupervisor, box: MediaSupervisor, outDir: string): Promise<{ files: string[]; problems: string[] }> {
  const files: string[] = [];
  const problems: string[] = [];
  for (const [sup, name, missing] of [
    [hub, 'hub-received.png', 'the hub has no received frame to save'],
    [box, 'box-displayed.png', 'the box has no displayed frame to save'],
  ] as const) {
    const png = (await sup.snapshot()).find((f) => f.endsWith('received.png'));
    if (!png) problems.push(missing);
    else {
      await copyFile(png, path.join(outDir, name));
      files.push(path.join(outDir, name));
    }
  }
  return { files, problems };
}
