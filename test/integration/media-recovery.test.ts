/**
 * Faults in the middle of a session and how the box's media supervisor gets out of them
 * on its own: the hub goes away and comes back on the same ports, the worker process is
 * SIGKILLed, the camera stops producing without any error. Real workers, real SRT.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalHub } from '../../gst-pipelines/hub/local-hub.js';
import { MediaLog, Resources, SMALL, boxPlan, capabilities, hubSpec, newBox, nextEvent, startHub, type Sample } from './helpers/media.js';
import { Processes, SRT_HUB_MARKER, pollUntil, startSrtHub } from './helpers/processes.js';

const res = new Resources();
const procs = new Processes();
afterEach(async () => {
  await procs.killAll();
  await res.release();
});

/** The PID of the box's video in its MPEG-TS (plan.ts: video 65, audio 66). */
const VIDEO_PID = 65;

/** One datagram at the test's UDP port: when it arrived and how many video frames start in it. */
interface TsArrival {
  at: number;
  bytes: number;
  frameStarts: number;
  /** The srt hub's marker: a new caller was accepted, everything after this is its. */
  newCaller: boolean;
}

/**
 * MPEG-TS over UDP as it arrives (one SRT message = one datagram of 188-byte packets):
 * every datagram with its arrival time and the number of video PES starts in it
 * (PID 65 with payload_unit_start_indicator set = one H.264 access unit = one frame),
 * and the srt hub's new-caller markers.
 */
async function tsUdpMeter(): Promise<{ port: number; arrivals: TsArrival[] }> {
  const sock = dgram.createSocket('udp4');
  const arrivals: TsArrival[] = [];
  sock.on('message', (m) => {
    if (m.toString('latin1', 0, SRT_HUB_MARKER.length) === SRT_HUB_MARKER) {
      arrivals.push({ at: Date.now(), bytes: m.length, frameStarts: 0, newCaller: true });
      return;
    }
    let frameStarts = 0;
    for (let o = 0; o + 188 <= m.length; o += 188) {
      if (m[o] !== 0x47) continue;
      const pid = ((m[o + 1]! & 0x1f) << 8) | m[o + 2]!;
      if (pid === VIDEO_PID && (m[o + 1]! & 0x40) !== 0) frameStarts++;
    }
    arrivals.push({ at: Date.now(), bytes: m.length, frameStarts, newCaller: false });
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => resolve());
  });
  res.add('ts udp meter', () => new Promise<void>((resolve) => sock.close(() => resolve())));
  return { port: sock.address().port, arrivals };
}

/**
 * The first video frame from a caller the hub accepted after `killAt`: the first frame
 * start after the first new-caller marker since the kill. `lastOldAt`: the last datagram
 * of the old connection (its buffered tail drains within SRT's latency).
 */
function resumedAfter(arrivals: TsArrival[], killAt: number): { at: number; lastOldAt: number | null } | null {
  const marker = arrivals.findIndex((a) => a.newCaller && a.at >= killAt);
  if (marker < 0) return null;
  const frame = arrivals.find((a, i) => i > marker && a.frameStarts > 0);
  if (!frame) return null;
  const old = arrivals.slice(0, marker).filter((a) => !a.newCaller).at(-1);
  return { at: frame.at, lastOldAt: old?.at ?? null };
}

const framesBetween = (arrivals: TsArrival[], from: number, to: number): number =>
  arrivals.filter((a) => a.at >= from && a.at < to).reduce((n, a) => n + a.frameStarts, 0);

/** When the last frame counted in a direction arrived, by the worker's clock (same host). */
const lastFrameAt = (s: Sample, side: 'send' | 'receive'): number | null => (s.stats[side].idleMs === null ? null : s.stats.ts - s.stats[side].idleMs!);

/** Both directions decoding: the hub receives the box, the box receives the hub. */
async function bothFlowing(hubLog: MediaLog, boxLog: MediaLog, ms: number): Promise<void> {
  await Promise.all([
    hubLog.nextSample((s) => s.stats.receive.frames >= SMALL.fps, ms, 'the hub to receive the box'),
    boxLog.nextSample((s) => s.stats.receive.frames >= SMALL.fps, ms, 'the box to receive the program'),
  ]);
}

/**
 * The hub's first frame after `since` from its 1 s stats: the first sample whose last
 * frame came after `since + drainMs` (so not a leftover of the old stream). When the
 * previous sample was already past that point, every frame in the interval is new and
 * the first one is back-dated by (Δframes − 1) frame intervals; otherwise the last
 * frame's time is used (an upper bound).
 */
async function hubResumedAt(hubLog: MediaLog, since: number, ms: number, drainMs = 400): Promise<{ at: number; exact: boolean }> {
  const s = await hubLog.nextSample((x) => (lastFrameAt(x, 'receive') ?? 0) > since + drainMs, ms, 'the hub to receive the box again');
  const last = lastFrameAt(s, 'receive')!;
  const i = hubLog.samples.indexOf(s);
  const prev = hubLog.samples[i - 1];
  if (prev && prev.pid === s.pid && prev.stats.ts >= since + drainMs) {
    const delta = s.stats.receive.frames - prev.stats.receive.frames;
    return { at: Math.max(prev.stats.ts, last - ((delta - 1) * 1000) / SMALL.fps), exact: true };
  }
  return { at: last, exact: false };
}

describe('media recovery without outside help', () => {
  it('resumes both directions after the hub is away for 10 s and comes back on the same ports', async () => {
    const caps = await capabilities();
    const hub = await startHub(res);
    // Default backoff (250 ms base, 30 s cap): stall restarts come 2.5–5 s apart, so a 10 s
    // outage costs ≤ 3 attempts and the next delay stays ≤ 2 s; the cap is never reached.
    const box = newBox(res);
    const boxLog = new MediaLog(box);
    await box.start(await boxPlan(hubSpec(hub, SMALL)));
    await bothFlowing(new MediaLog(hub.supervisor), boxLog, 15_000);

    const awayAt = Date.now();
    await hub.stop();
    // The outage itself is the scenario: 10 s. The box must notice it meanwhile.
    const noticed = await nextEvent(box, 'restart', () => true, 10_000, 'the box to notice the hub is gone');
    const noticedMs = Date.now() - awayAt;
    await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - awayAt))));

    const hub2 = await LocalHub.create({ caps, video: SMALL, ingestPort: hub.ingestPort, programPort: hub.programPort });
    res.add('hub (second)', () => hub2.stop());
    const hub2Log = new MediaLog(hub2.supervisor);
    await hub2.start();
    const backAt = Date.now();
    const [hubRx, boxRx] = await Promise.all([
      hub2Log.nextSample((s) => s.stats.receive.frames >= SMALL.fps, 30_000, 'the new hub to receive ≥ 1 s of the box'),
      boxLog.nextSample((s) => (lastFrameAt(s, 'receive') ?? 0) > backAt && s.stats.receive.fps !== null && s.stats.receive.fps >= 0.9 * SMALL.fps, 30_000, 'the box to receive the new hub at ≥ 90 % fps'),
    ]);
    const result = {
      noticed: { reason: noticed.reason, afterMs: noticedMs },
      hubReceivingAfterMs: hubRx.at - backAt,
      boxReceivingAfterMs: boxRx.at - backAt,
      boxRestarts: boxLog.restarts.map((r) => `${r.reason}#${r.attempt}+${r.delayMs}ms`),
    };
    console.info('hub away 10 s', result);
    expect(['stall', 'srt_lost', 'srt_connect', 'pipeline', 'crash']).toContain(noticed.reason);
    expect(noticedMs).toBeLessThan(10_000);
    // Back within 20 s of the hub's return, with no one touching the box.
    expect(hubRx.at - backAt).toBeLessThan(20_000);
    expect(boxRx.at - backAt).toBeLessThan(20_000);
    expect(box.status()).toMatchObject({ running: true, send: 'ok', receive: 'ok' });
  }, 75_000);

  it('restarts a SIGKILLed worker: the box receives and sends again within 3 s; the test hub takes it back after SRT\'s idle timeout', async () => {
    const hub = await startHub(res);
    const hubLog = new MediaLog(hub.supervisor);
    const box = newBox(res);
    const boxLog = new MediaLog(box);
    await box.start(await boxPlan(hubSpec(hub, SMALL)));
    await bothFlowing(hubLog, boxLog, 15_000);
    await box.prewarm(); // the steady state of a box: a warm worker is ready

    const pid = box.status().workerPid;
    expect(pid).toBeGreaterThan(0);
    const killAt = Date.now();
    process.kill(pid!, 'SIGKILL');
    const restart = nextEvent(box, 'restart', (r) => r.reason === 'crash', 3000, 'a crash restart');
    const boxBack = nextEvent(box, 'first-bytes', (f) => f.direction === 'receive', 10_000, 'the new worker to receive the program');
    const boxSends = nextEvent(box, 'first-bytes', (f) => f.direction === 'send', 10_000, 'the new worker to send').then(() => Date.now() - killAt);
    for (const p of [restart, boxBack, boxSends]) p.catch(() => undefined); // awaited below; no unhandled rejection if an earlier one fails
    // Waits past 3 s on purpose, to measure how late the hub direction comes back if it does.
    const hubBack = hubResumedAt(hubLog, killAt, 12_000).catch((e: unknown) => e as Error);
    await restart;
    await boxBack;
    const boxResumeMs = Date.now() - killAt;
    const newPid = box.status().workerPid;
    const boxSendingMs = await boxSends;
    const hub0 = await hubBack;
    const hubResumeMs = hub0 instanceof Error ? null : Math.round(hub0.at - killAt);
    console.info('SIGKILL recovery', {
      boxReceiveResumedMs: boxResumeMs,
      boxSendingAgainMs: boxSendingMs,
      hubReceiveResumedMs: hubResumeMs ?? `not within 12 s (${(hub0 as Error).message})`,
      hubTimeExact: hub0 instanceof Error ? null : hub0.exact,
      oldPid: pid,
      newPid,
    });

    expect(newPid).not.toBe(pid);
    // The box's side of recovery: a new worker, the program decoded again, and SRT sending
    // packets on a new connection (first-bytes 'send' needs srtsink's own counters).
    expect.soft(boxResumeMs, 'hub → box resumed (ms after the kill)').toBeLessThanOrEqual(3000);
    expect.soft(boxSendingMs, 'box sending again on a new SRT connection (ms after the kill)').toBeLessThanOrEqual(3000);
    // The hub's side: a SIGKILLed process never closes its SRT socket, and this GStreamer
    // test hub (srtsrc listener, one caller at a time) keeps the dead connection until
    // libsrt declares it broken (~5 s, a floor peeridletimeo cannot lower) before it
    // accepts the box's new one: ~9.5-10 s here. A hub that lets a new publisher replace
    // a stale one (MediaMTX) is not bound by it: the next test ('SIGKILL ×3 mid-session')
    // shows the box's video at such a hub within 3 s of the kill, end to end.
    // Asserted as what it is here, so a regression past it still fails.
    expect.soft(hubResumeMs, `box → hub never resumed within 12 s of the kill; ${boxLog.describe()}`).not.toBeNull();
    if (hubResumeMs !== null) expect.soft(hubResumeMs, 'box → hub resumed at the test hub (ms after the kill)').toBeLessThanOrEqual(12_000);
  }, 45_000);

  it('SIGKILL ×3 mid-session: video from the restarted worker reaches a hub that takes the new caller within 3 s of each kill', async () => {
    // The end-to-end form of the test above: the box's send leg goes to a hub that, like a
    // real one (MediaMTX), accepts the restarted worker's new SRT connection while the dead
    // one still lingers (libsrt only declares a SIGKILLed peer gone after ~5 s, whatever
    // peeridletimeo says; srt-live-transmit as the listener, single-caller, measured
    // 5.3–5.5 s here for that reason: see helpers/srt-hub.py). Its messages go to a UDP
    // port read here: the clock runs from the kill to the first video frame start (PID 65,
    // PUSI) of the new stream. The box's receive leg is the LocalHub's program, as above.
    const kills = 3;
    const meter = await tsUdpMeter();
    const { proc: ingest, port: ingestPort } = await startSrtHub(procs, meter.port);
    const hub = await startHub(res);
    const box = newBox(res);
    const boxLog = new MediaLog(box);
    const spec = hubSpec(hub, SMALL);
    await box.start(await boxPlan({ ...spec, send: { ...spec.send, url: `srt://127.0.0.1:${ingestPort}` } }));
    const why = (): string => `${boxLog.describe()}\n--- srt hub ---\n${ingest.output().slice(-2000)}`;
    const hubAlive = (): string | null => (ingest.running() ? null : `the srt hub exited: ${why()}`);

    const results: Array<{ kill: number; resumeMs: number; newCallers: number; oldPid: number | null; newPid: number | null } & Record<string, unknown>> = [];
    for (let k = 1; k <= kills; k++) {
      // Steady flow at the hub first: ≥ 80 % of the frame rate over the last second.
      await pollUntil(() => framesBetween(meter.arrivals, Date.now() - 1000, Date.now() + 1) >= 0.8 * SMALL.fps, 20_000, `steady video at the hub before kill ${k}`, hubAlive);
      await box.prewarm(); // the steady state of a box: a warm worker is ready
      const pid = box.status().workerPid;
      expect(pid, `kill ${k}: a worker to kill`).toBeGreaterThan(0);
      const restart = nextEvent(box, 'restart', (r) => r.reason === 'crash', 3000, 'a crash restart');
      const sends = nextEvent(box, 'first-bytes', (f) => f.direction === 'send', 10_000, 'the new worker to send').then(() => Date.now());
      for (const p of [restart, sends]) p.catch(() => undefined); // awaited below
      const killAt = Date.now();
      process.kill(pid!, 'SIGKILL');
      let back: ReturnType<typeof resumedAfter> = null;
      await pollUntil(() => (back = resumedAfter(meter.arrivals, killAt)) !== null, 10_000, `video at the hub again after kill ${k}`, hubAlive);
      const { at, lastOldAt } = back!;
      const [r, sendingAt] = await Promise.all([restart, sends]);
      await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() - at)));
      const result = {
        kill: k,
        resumeMs: at - killAt,
        oldStreamLastMs: lastOldAt === null ? null : lastOldAt - killAt,
        restartDelayMs: r.delayMs,
        boxSendingMs: sendingAt - killAt,
        framesInFirstSecond: framesBetween(meter.arrivals, at, at + 1000),
        newCallers: meter.arrivals.filter((a) => a.newCaller && a.at >= killAt).length,
        oldPid: pid,
        newPid: box.status().workerPid,
      };
      results.push(result);
      console.info('SIGKILL → video at the hub again', result);
    }
    console.info('SIGKILL → video at the hub again (ms)', results.map((r) => r.resumeMs));
    for (const r of results) {
      expect.soft(r.newPid, `kill ${r.kill}: a new worker`).not.toBe(r.oldPid);
      // One connection per worker: the new worker connected at its first try.
      expect.soft(r.newCallers, `kill ${r.kill}: connections the hub accepted after the kill; ${why()}`).toBe(1);
      expect.soft(r.resumeMs, `kill ${r.kill}: video at the hub again (ms after the kill)`).toBeLessThanOrEqual(3000);
    }
  }, 60_000);

  it('detects a source that stops without an error within 3 s and rebuilds the session', async () => {
    const hub = await startHub(res);
    const hubLog = new MediaLog(hub.supervisor);
    const box = newBox(res);
    const boxLog = new MediaLog(box);
    await box.start(await boxPlan(hubSpec(hub, SMALL)));
    await bothFlowing(hubLog, boxLog, 15_000);

    const pid = box.status().workerPid;
    const blockAt = Date.now();
    box.blockTestSource(true);
    const r = await nextEvent(box, 'restart', (x) => x.reason === 'stall', 3000, "a 'stall' restart within 3 s of the camera stopping");
    const detectedMs = Date.now() - blockAt;
    expect(box.status().lastError?.message).toMatch(/send/);

    // Rebuilt: a new worker that sends and receives again, and whose frames reach the hub.
    const sent = await boxLog.nextSample((s) => s.pid !== pid && s.stats.send.frames >= SMALL.fps, 15_000, 'the rebuilt session to send ≥ 1 s of frames');
    const got = await boxLog.nextSample((s) => s.pid === sent.pid && s.stats.receive.frames > 0, 10_000, 'the rebuilt session to receive the program');
    const hub0 = await hubResumedAt(hubLog, blockAt + detectedMs, 10_000).catch((e: unknown) => e as Error);
    const hubResumeMs = hub0 instanceof Error ? null : Math.round(hub0.at - blockAt);
    console.info('stall recovery', {
      detectedMs,
      restart: r,
      oldPid: pid,
      newPid: sent.pid,
      boxReceivingAgainAfterBlockMs: lastFrameAt(got, 'receive')! - blockAt,
      hubReceiveResumedAfterBlockMs: hubResumeMs ?? `not within 10 s of the restart (${(hub0 as Error).message})`,
    });
    expect(detectedMs).toBeLessThanOrEqual(3000);
    expect(sent.pid).not.toBe(pid);
    expect.soft(hubResumeMs, 'the hub never received the rebuilt session').not.toBeNull();
  }, 45_000);
});
