/**
 * Faults in the middle of a session, as the integration test (media-recovery.test.ts)
 * and `npm run bench -- --only faults` both run them: the hub goes away and comes back on
 * the same ports, the worker is SIGKILLed (once, or three times against a hub that takes
 * a new caller at once), the camera stops without an error. Each scenario returns what
 * happened, stamped with the test's clock: the test asserts the events and their order,
 * the bench reports the milliseconds and holds them to their goals.
 *
 * Every wait here is a hang guard (`guardMs`), not a goal.
 */
import dgram from 'node:dgram';
import { LocalHub } from '../../../gst-pipelines/hub/local-hub.js';
import type { MediaStatus } from '../../../gst-pipelines/index.js';
import { MediaLog, SMALL, boxPlan, capabilities, hubSpec, newBox, nextEvent, startHub, type Resources, type Sample } from './media.js';
import { SRT_HUB_MARKER, pollUntil, startSrtHub, type Processes } from './processes.js';

/** The PID of the box's video in its MPEG-TS (plan: video 65, audio 66). */
const VIDEO_PID = 65;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** One datagram at a UDP port: when it arrived and how many video frames start in it. */
export interface TsArrival {
  at: number;
  bytes: number;
  frameStarts: number;
  /** The srt hub's marker: a new caller was accepted, everything after this is its. */
  newCaller: boolean;
}

/**
 * MPEG-TS over UDP as it arrives (one SRT message = one datagram of 188-byte packets):
 * every datagram with its arrival time and the number of video PES starts in it (PID 65
 * with payload_unit_start_indicator set = one access unit = one frame), and the srt hub's
 * new-caller markers.
 */
export async function tsUdpMeter(res: Resources): Promise<{ port: number; arrivals: TsArrival[] }> {
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

/** The first video frame from a caller the hub accepted after `killAt` (after the first new-caller marker since). */
export function resumedAfter(arrivals: TsArrival[], killAt: number): { at: number; lastOldAt: number | null } | null {
  const marker = arrivals.findIndex((a) => a.newCaller && a.at >= killAt);
  if (marker < 0) return null;
  const frame = arrivals.find((a, i) => i > marker && a.frameStarts > 0);
  if (!frame) return null;
  const old = arrivals.slice(0, marker).filter((a) => !a.newCaller).at(-1);
  return { at: frame.at, lastOldAt: old?.at ?? null };
}

export const framesBetween = (arrivals: TsArrival[], from: number, to: number): number =>
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
 * frame came after `since + drainMs` (not a leftover of the old stream). When the previous
 * sample was already past that point, every frame in the interval is new and the first
 * one is back-dated by (Δframes − 1) frame intervals; otherwise the last frame's time is
 * used (an upper bound).
 */
/** A hub and a box in session, both ways flowing. */
async function flowingSession(res: Resources, guardMs: number): Promise<{ hub: LocalHub; hubLog: MediaLog; box: ReturnType<typeof newBox>; boxLog: MediaLog }> {
  const hub = await startHub(res);
  const hubLog = new MediaLog(hub.supervisor);
  const box = newBox(res);
  const boxLog = new MediaLog(box);
  await box.start(await boxPlan(hubSpec(hub, SMALL)));
  await bothFlowing(hubLog, boxLog, guardMs);
  return { hub, hubLog, box, boxLog };
}

async function hubResumedAt(hubLog: MediaLog, since: number, ms: number, drainMs = 400): Promise<{ at: number; exact: boolean }> {
  const s = await hubLog.nextSample((x) => (lastFrameAt(x, 'receive') ?? 0) > since + drainMs, ms, 'the hub to receive the box again');
  const last = lastFrameAt(s, 'receive')!;
  const prev = hubLog.samples[hubLog.samples.indexOf(s) - 1];
  if (prev && prev.pid === s.pid && prev.stats.ts >= since + drainMs) {
    const delta = s.stats.receive.frames - prev.stats.receive.frames;
    return { at: Math.max(prev.stats.ts, last - ((delta - 1) * 1000) / SMALL.fps), exact: true };
  }
  return { at: last, exact: false };
}

export interface HubAwayRun {
  /** The box's first restart after the hub went, and when (ms after it went). */
  noticed: { reason: string; afterMs: number };
  /** How long the hub was away: `outageMs`, or longer if the box took longer to notice. */
  outageMs: number;
  /** After the hub came back: the new hub receiving ≥ 1 s of the box, the box receiving the new hub at ≥ 90 % fps. */
  hubReceivingAfterMs: number;
  boxReceivingAfterMs: number;
  restarts: string[];
  status: MediaStatus;
}

/** The hub stops for `outageMs` (at least until the box noticed) and comes back on the same ports. */
export async function hubAwayAndBack(res: Resources, o: { outageMs?: number; guardMs?: number } = {}): Promise<HubAwayRun> {
  const outage = o.outageMs ?? 10_000;
  const guard = o.guardMs ?? 30_000;
  const caps = await capabilities();
  // Default backoff (250 ms base, 30 s cap): stall restarts come 2.5–5 s apart, so a 10 s
  // outage costs ≤ 3 attempts and the next delay stays ≤ 2 s.
  const { hub, box, boxLog } = await flowingSession(res, guard);

  const awayAt = Date.now();
  await hub.stop();
  const noticed = await nextEvent(box, 'restart', () => true, guard, 'the box to notice the hub is gone');
  const noticedMs = Date.now() - awayAt;
  await sleep(outage - (Date.now() - awayAt)); // the outage itself is the scenario

  const hub2 = await LocalHub.create({ caps, video: SMALL, ingestPort: hub.ingestPort, programPort: hub.programPort });
  res.add('hub (second)', () => hub2.stop());
  const hub2Log = new MediaLog(hub2.supervisor);
  await hub2.start();
  const backAt = Date.now();
  const [hubRx, boxRx] = await Promise.all([
    hub2Log.nextSample((s) => s.stats.receive.frames >= SMALL.fps, guard, 'the new hub to receive ≥ 1 s of the box'),
    boxLog.nextSample((s) => (lastFrameAt(s, 'receive') ?? 0) > backAt && s.stats.receive.fps !== null && s.stats.receive.fps >= 0.9 * SMALL.fps, guard, 'the box to receive the new hub at ≥ 90 % fps'),
  ]);
  return {
    noticed: { reason: noticed.reason, afterMs: noticedMs },
    outageMs: backAt - awayAt,
    hubReceivingAfterMs: hubRx.at - backAt,
    boxReceivingAfterMs: boxRx.at - backAt,
    restarts: boxLog.restarts.map((r) => `${r.reason}#${r.attempt}+${r.delayMs}ms`),
    status: box.status(),
  };
}

export interface KillRun {
  oldPid: number | null;
  newPid: number | null;
  /** ms after the kill: the box decoding the program again, sending on a new SRT connection, the test hub decoding the box again (null: not within the guard). */
  boxReceivingMs: number;
  boxSendingMs: number;
  hubReceivingMs: number | null;
  hubTimeExact: boolean | null;
  describe: string;
}

/** SIGKILL of the box's worker mid-session (a warm worker ready, as in the field). */
export async function killWorkerMidSession(res: Resources, guardMs = 30_000): Promise<KillRun> {
  const { hubLog, box, boxLog } = await flowingSession(res, guardMs);
  await box.prewarm();

  const pid = box.status().workerPid;
  if (!pid) throw new Error(`no worker to kill: ${boxLog.describe()}`);
  const killAt = Date.now();
  process.kill(pid, 'SIGKILL');
  const restart = nextEvent(box, 'restart', (r) => r.reason === 'crash', guardMs, 'a crash restart');
  const boxBack = nextEvent(box, 'first-bytes', (f) => f.direction === 'receive', guardMs, 'the new worker to receive the program').then(() => Date.now() - killAt);
  const boxSends = nextEvent(box, 'first-bytes', (f) => f.direction === 'send', guardMs, 'the new worker to send').then(() => Date.now() - killAt);
  // This GStreamer test hub (srtsrc listener, one caller at a time) keeps a SIGKILLed
  // caller's connection until libsrt declares it broken (~5 s floor) before it accepts
  // the new one: ~10 s here. The e2e scenario below uses a hub that does not wait.
  const hubBack = hubResumedAt(hubLog, killAt, guardMs).catch((e: unknown) => e as Error);
  for (const p of [restart, boxBack, boxSends]) p.catch(() => undefined); // awaited below
  await restart;
  const [boxReceivingMs, boxSendingMs, hub0] = await Promise.all([boxBack, boxSends, hubBack]);
  return {
    oldPid: pid,
    newPid: box.status().workerPid,
    boxReceivingMs,
    boxSendingMs,
    hubReceivingMs: hub0 instanceof Error ? null : Math.round(hub0.at - killAt),
    hubTimeExact: hub0 instanceof Error ? null : hub0.exact,
    describe: boxLog.describe(),
  };
}

export interface KillAtHubRun {
  kill: number;
  oldPid: number | null;
  newPid: number | null;
  /** Connections the hub accepted after the kill (one: the new worker connected at its first try). */
  newCallers: number;
  /** ms after the kill: the first video frame start of the new stream at the hub. */
  resumeMs: number;
  oldStreamLastMs: number | null;
  restartDelayMs: number;
  boxSendingMs: number;
  framesInFirstSecond: number;
}

/**
 * SIGKILL × `kills` mid-session; the box's send leg goes to a hub that, like MediaMTX,
 * accepts the restarted worker's new SRT connection while the dead one lingers
 * (srt-live-transmit as listener: helpers/srt-hub.py), read here from a UDP port.
 */
export async function killWorkerAtTakingHub(res: Resources, procs: Processes, kills = 3, guardMs = 30_000): Promise<{ runs: KillAtHubRun[]; why: () => string }> {
  const meter = await tsUdpMeter(res);
  const { proc: ingest, port: ingestPort } = await startSrtHub(procs, meter.port);
  const hub = await startHub(res);
  const box = newBox(res);
  const boxLog = new MediaLog(box);
  const spec = hubSpec(hub, SMALL);
  await box.start(await boxPlan({ ...spec, send: { ...spec.send, url: `srt://127.0.0.1:${ingestPort}` } }));
  const why = (): string => `${boxLog.describe()}\n--- srt hub ---\n${ingest.output().slice(-2000)}`;
  const hubAlive = (): string | null => (ingest.running() ? null : `the srt hub exited: ${why()}`);

  const runs: KillAtHubRun[] = [];
  for (let k = 1; k <= kills; k++) {
    // Steady flow at the hub first: frames in the last second (counted, ≥ 80 % of the rate).
    await pollUntil(() => framesBetween(meter.arrivals, Date.now() - 1000, Date.now() + 1) >= 0.8 * SMALL.fps, guardMs, `steady video at the hub before kill ${k}`, hubAlive);
    await box.prewarm();
    const pid = box.status().workerPid;
    if (!pid) throw new Error(`kill ${k}: no worker to kill: ${why()}`);
    const restart = nextEvent(box, 'restart', (r) => r.reason === 'crash', guardMs, 'a crash restart');
    const sends = nextEvent(box, 'first-bytes', (f) => f.direction === 'send', guardMs, 'the new worker to send').then(() => Date.now());
    for (const p of [restart, sends]) p.catch(() => undefined); // awaited below
    const killAt = Date.now();
    process.kill(pid, 'SIGKILL');
    let back: ReturnType<typeof resumedAfter> = null;
    await pollUntil(() => (back = resumedAfter(meter.arrivals, killAt)) !== null, guardMs, `video at the hub again after kill ${k}`, hubAlive);
    const { at, lastOldAt } = back!;
    const [r, sendingAt] = await Promise.all([restart, sends]);
    await sleep(1000 - (Date.now() - at)); // the first second of the new stream, counted below
    runs.push({
      kill: k,
      oldPid: pid,
      newPid: box.status().workerPid,
      newCallers: meter.arrivals.filter((a) => a.newCaller && a.at >= killAt).length,
      resumeMs: at - killAt,
      oldStreamLastMs: lastOldAt === null ? null : lastOldAt - killAt,
      restartDelayMs: r.delayMs,
      boxSendingMs: sendingAt - killAt,
      framesInFirstSecond: framesBetween(meter.arrivals, at, at + 1000),
    });
  }
  return { runs, why };
}

export interface StallRun {
  restart: { reason: string; attempt: number; delayMs: number };
  /** ms from blocking the test source to the 'stall' restart. */
  detectedMs: number;
  lastErrorMessage: string | null;
  oldPid: number | null;
  newPid: number | null;
  /** The hub decoding the rebuilt session, ms after the block (null: not within the guard). */
  hubReceivingMs: number | null;
}

/** The camera (test source) stops producing without any error; the box must notice and rebuild. */
export async function sourceStall(res: Resources, guardMs = 30_000): Promise<StallRun> {
  const { hubLog, box, boxLog } = await flowingSession(res, guardMs);

  const pid = box.status().workerPid;
  const blockAt = Date.now();
  box.blockTestSource(true);
  const r = await nextEvent(box, 'restart', (x) => x.reason === 'stall', guardMs, "a 'stall' restart after the camera stopped");
  const detectedMs = Date.now() - blockAt;
  const lastErrorMessage = box.status().lastError?.message ?? null;
  const sent = await boxLog.nextSample((s) => s.pid !== pid && s.stats.send.frames >= SMALL.fps, guardMs, 'the rebuilt session to send ≥ 1 s of frames');
  await boxLog.nextSample((s) => s.pid === sent.pid && s.stats.receive.frames > 0, guardMs, 'the rebuilt session to receive the program');
  const hub0 = await hubResumedAt(hubLog, blockAt + detectedMs, guardMs).catch((e: unknown) => e as Error);
  return {
    restart: r,
    detectedMs,
    lastErrorMessage,
    oldPid: pid,
    newPid: sent.pid,
    hubReceivingMs: hub0 instanceof Error ? null : Math.round(hub0.at - blockAt),
  };
}
