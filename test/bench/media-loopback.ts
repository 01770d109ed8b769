/**
 * Frame rate both ways of a 720p30 box ⇄ LocalHub loopback (media.test.ts's scenario): the
 * rate goal that test leaves to the bench (≥ 90 % of 30 fps each way, over a steady 4 s).
 */
import { HD, MediaLog, Resources, boxPlan, hubSpec, newBox, startHub } from '../integration/helpers/media.js';

export interface LoopbackResult {
  hubReceiveFps: number;
  boxReceiveFps: number;
  windowMs: number;
}

export async function measureLoopback(o: { log: (l: string) => void; windowMs?: number }): Promise<LoopbackResult> {
  const res = new Resources();
  o.log('media: loopback 720p30 both ways…');
  try {
    const hub = await startHub(res, { video: HD });
    const hubLog = new MediaLog(hub.supervisor);
    const box = newBox(res);
    const boxLog = new MediaLog(box);
    await box.start(await boxPlan(hubSpec(hub, HD), { aec: true }));
    const w = o.windowMs ?? 4000;
    const [hubRx, boxRx] = await Promise.all([hubLog.steadyFps('receive', w, 30_000), boxLog.steadyFps('receive', w, 30_000)]);
    const r1 = (v: number): number => Math.round(v * 10) / 10;
    return { hubReceiveFps: r1(hubRx.fps), boxReceiveFps: r1(boxRx.fps), windowMs: Math.min(hubRx.windowMs, boxRx.windowMs) };
  } finally {
    await res.release();
  }
}
