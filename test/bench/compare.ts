/**
 * Side by side (issue [proof]): the box's media session against the tools a DIY build
 * would use for the same job, as CPU ratios measured in one run on the same machine.
 *
 * - ffmpeg: ours (the planner's session plan in our supervised media worker, a LocalHub
 *   in its own process as the peer) and ffmpeg doing the box's job against a hub of its
 *   own (one ffmpeg sends the 720p30 clip as libx264 + Opus in MPEG-TS over SRT with our
 *   plan's x264 settings, another receives the hub's program over SRT and decodes it),
 *   side by side over each round's window, the first started alternating. Counted: our
 *   worker(s) + the bench process (the supervisor), against the two ffmpeg processes.
 *   `cpuVsFfmpeg` = ours ÷ ffmpeg (sums over the rounds).
 * - chromium: ours alone, then Chromium's WebRTC loopback alone (compare-chromium.ts),
 *   alternating between rounds (together, two software encoders on two cores starve
 *   each other and Chromium scales its video down). Each in CPU ms per megapixel coded
 *   (frames encoded + frames decoded, × their size). `cpuPerMpxVsChromium` = ours ÷ chromium.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import { forkSpawner } from '../../gst-pipelines/supervisor/worker-process.js';
import type { Capabilities, MediaJoinSpec, SessionPlan } from '../../gst-pipelines/types.js';
import { ChromiumLoopback, type ChromiumWindow } from './compare-chromium.js';
import { boxPlan, CPU_SRT_LATENCY_MS } from './media-cpu.js';
import { HubProcess } from './hub-process.js';
import { childPids, endChild, MeasurementError, monoMs, procCpuSeconds, procThreadCpu, round1, round3, sleep, track } from './machine.js';
import { fmt, goal, part, sectionTable, type BenchSection } from './report.js';

const W = 1280;
const CHROMIUM_SETTLE_S = 15;
const H = 720;
const FPS = 30;

/** The 720p30 clip ffmpeg and Chromium read: our test source's frames (smpte bars, title, clock), 5 s, looped. */
async function makeClip(dir: string): Promise<string> {
  const file = path.join(dir, 'clip-720p30.y4m');
  const desc = `videotestsrc pattern=smpte num-buffers=${FPS * 5} ! video/x-raw,width=${W},height=${H},framerate=${FPS}/1,format=I420 ! textoverlay text="Bench box" valignment=top halignment=left font-desc="Sans 20" ! timeoverlay valignment=bottom halignment=right font-desc="Sans 16" ! y4menc ! filesink location=${file}`;
  const p = spawn('gst-launch-1.0', ['-q', ...desc.split(' ').filter(Boolean)], { stdio: 'ignore' });
  const code = await new Promise<number | null>((r) => (p.once('exit', r), p.once('error', () => r(-1))));
  if (code !== 0 || !existsSync(file)) throw new MeasurementError(`compare: could not make the y4m clip (gst-launch-1.0 exit ${code})`);
  return file;
}

// ---- ours ---------------------------------------------------------------------------------

interface Ours {
  hub: HubProcess;
  supervisor: MediaSupervisor;
}

async function startOurs(caps: Capabilities): Promise<Ours> {
  const hub = await HubProcess.start(caps, CPU_SRT_LATENCY_MS);
  const supervisor = new MediaSupervisor({ spawner: forkSpawner({ stderr: 'ignore' }) });
  try {
    await supervisor.prewarm();
    await sleep(300);
    await supervisor.start(boxPlan(caps, hub.joinSpec));
    return { hub, supervisor };
  } catch (e) {
    await supervisor.close();
    await hub.stop();
    throw e;
  }
}

async function stopOurs(o: Ours): Promise<void> {
  await o.supervisor.close();
  await o.hub.stop();
}

// ---- ffmpeg ---------------------------------------------------------------------------------

interface Ffmpeg {
  hub: HubProcess;
  send: ChildProcess;
  recv: ChildProcess;
  progress: string;
  exits: string[];
}

function srtUrl(url: string, streamId: string | undefined): string {
  const q = [`mode=caller`, `latency=${CPU_SRT_LATENCY_MS * 1000}`, 'pkt_size=1316', ...(streamId ? [`streamid=${streamId}`] : [])];
  return `${url}?${q.join('&')}`;
}

/** ffmpeg's argv for the box's send direction, with our plan's x264 and Opus settings (gst-pipelines/plan/codecs.ts). */
export function ffmpegSendArgs(clip: string, spec: MediaJoinSpec, v: SessionPlan['video']): string[] {
  return [
    ...['-hide_banner', '-nostdin', '-loglevel', 'error'],
    ...['-re', '-stream_loop', '-1', '-i', clip],
    ...['-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
    ...['-map', '0:v', '-map', '1:a'],
    // x264enc tune=zerolatency speed-preset=ultrafast bitrate=… vbv-buf-capacity=200 key-int-max=2 s bframes=0, constrained baseline
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-b:v', `${v.bitrateKbps}k`, '-maxrate', `${v.bitrateKbps}k`, '-bufsize', `${Math.round(v.bitrateKbps / 5)}k`],
    ...['-g', String(v.fps * 2), '-bf', '0', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p'],
    // opusenc audio-type=voice bitrate=32000 inband-fec=true frame-size=20, mono 48 kHz
    ...['-c:a', 'libopus', '-b:a', `${spec.send.audio?.bitrateKbps ?? 32}k`, '-application', 'voip', '-frame_duration', '20', '-fec', '1', '-ac', '1'],
    ...['-f', 'mpegts', srtUrl(spec.send.url, spec.send.streamId)],
  ];
}

/** ffmpeg's argv for the box's receive direction: the program over SRT, video and audio decoded. */
export function ffmpegRecvArgs(spec: MediaJoinSpec, progress: string): string[] {
  // A live receiver's probing (1 s, not ffmpeg's default 5 s of buffered input to catch up on).
  return ['-hide_banner', '-nostdin', '-loglevel', 'error', '-progress', progress, '-fflags', 'nobuffer', '-analyzeduration', '1000000', '-probesize', '1000000', '-i', srtUrl(spec.receive.url, spec.receive.streamId), '-map', '0:v', '-map', '0:a', '-f', 'null', '-'];
}

async function startFfmpeg(caps: Capabilities, clip: string, dir: string): Promise<Ffmpeg> {
  const hub = await HubProcess.start(caps, CPU_SRT_LATENCY_MS);
  const progress = path.join(dir, `recv-progress-${hub.pid ?? 0}.txt`);
  const exits: string[] = [];
  const run = (args: string[], name: string): ChildProcess => {
    const p = track(spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    p.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-500)));
    p.on('error', (e) => exits.push(`${name}: ffmpeg cannot run: ${e.message}`));
    p.once('exit', (c, s) => exits.push(`${name} exited (${s ?? `code ${c}`}) ${err.trim()}`));
    return p;
  };
  const send = run(ffmpegSendArgs(clip, hub.joinSpec, boxPlan(caps, hub.joinSpec).video), 'ffmpeg send');
  const recv = run(ffmpegRecvArgs(hub.joinSpec, progress), 'ffmpeg receive');
  return { hub, send, recv, progress, exits };
}

async function stopFfmpeg(f: Ffmpeg): Promise<void> {
  await endChild(f.send, 'SIGINT', 3000);
  await endChild(f.recv, 'SIGINT', 3000);
  await f.hub.stop();
}

/** Frames ffmpeg's receiver has decoded so far (its -progress file). */
function ffmpegFrames(f: Ffmpeg): number {
  let text: string;
  try {
    text = readFileSync(f.progress, 'utf8');
  } catch {
    return 0;
  }
  const all = [...text.matchAll(/^frame=(\d+)/gm)];
  return Number(all.at(-1)?.[1] ?? 0);
}

// ---- windows --------------------------------------------------------------------------------

/** CPU seconds per thread name (instance numbers folded: queue12:src → queue#:src). */
function threadCpu(pids: number[]): Map<string, number> {
  const by = new Map<string, number>();
  for (const pid of pids) for (const t of procThreadCpu(pid).values()) by.set(t.name.replace(/\d+/g, '#'), (by.get(t.name.replace(/\d+/g, '#')) ?? 0) + t.seconds);
  return by;
}

/** CPU seconds of `pids()` between open() and close(); throws when a process ended inside. `threads()`: the top thread groups. */
function cpuWindow(pids: () => number[]): { close: () => number; threads: () => Array<{ name: string; cpuSeconds: number }> } {
  const start = new Map(pids().map((p) => [p, procCpuSeconds(p)]));
  const threads0 = threadCpu(pids());
  return {
    threads: () =>
      [...threadCpu(pids())]
        .map(([name, c]) => ({ name, cpuSeconds: round3(c - (threads0.get(name) ?? 0)) }))
        .sort((a, b) => b.cpuSeconds - a.cpuSeconds)
        .slice(0, 8),
    close: () => {
      let total = 0;
      for (const [p, c0] of start) {
        const c1 = procCpuSeconds(p);
        if (c1 === null || c0 === null) throw new MeasurementError(`compare: process ${p} ended inside the measurement window`);
        total += c1 - c0;
      }
      return total;
    },
  };
}

/** Our supervisor's children (worker and warm worker), not hubs or ffmpeg. */
const ourPids = (exclude: Array<number | undefined>): number[] => childPids(process.pid).filter((p) => !exclude.includes(p));

export interface OursWindow {
  cpuSeconds: number;
  windowSeconds: number;
  sentFps: number;
  receivedFps: number;
  hubReceivedFps: number;
  megapixels: number;
  cpuMsPerMpx: number;
}

async function oursStats(o: Ours): Promise<{ sent: number; received: number; sentFps: number; receivedFps: number }> {
  const st = o.supervisor.status();
  if (st.restarts > 0 || st.lastError) throw new MeasurementError(`compare: our session restarted (${st.lastError?.cause}: ${st.lastError?.message})`);
  const s = st.stats;
  return { sent: s?.send.frames ?? 0, received: s?.receive.frames ?? 0, sentFps: s?.send.fps ?? 0, receivedFps: s?.receive.fps ?? 0 };
}

async function finishOurs(o: Ours, cpuSeconds: number, windowSeconds: number, before: { sent: number; received: number }): Promise<OursWindow> {
  const after = await oursStats(o);
  const hub = await o.hub.query();
  const hubFps = hub.stats?.receive.fps ?? 0;
  if (hubFps < 20 || after.receivedFps < 20) throw new MeasurementError(`compare: our session did not run (hub got ${hubFps} fps, box got ${after.receivedFps} fps)`);
  // Frames over the window (the worker's counters are cumulative; stats come every 2 s, so ± one period).
  const frames = after.sent - before.sent + (after.received - before.received);
  const megapixels = (frames * W * H) / 1e6;
  return { cpuSeconds: round3(cpuSeconds), windowSeconds: round3(windowSeconds), sentFps: after.sentFps, receivedFps: after.receivedFps, hubReceivedFps: hubFps, megapixels: round3(megapixels), cpuMsPerMpx: round3((cpuSeconds * 1000) / megapixels) };
}

export interface FfmpegRound {
  ours: OursWindow;
  ffmpeg: { cpuSeconds: number; hubReceivedFps: number; receivedFps: number };
  ratio: number;
  /** Where the CPU went, the top thread groups of each side (ours without the bench process). */
  threads: { ours: Array<{ name: string; cpuSeconds: number }>; ffmpeg: Array<{ name: string; cpuSeconds: number }> };
}

async function ffmpegRound(caps: Capabilities, clip: string, dir: string, oursFirst: boolean, o: CompareOptions): Promise<FfmpegRound> {
  let ours: Ours | null = null;
  let ff: Ffmpeg | null = null;
  try {
    if (oursFirst) ours = await startOurs(caps);
    ff = await startFfmpeg(caps, clip, dir);
    if (!oursFirst) ours = await startOurs(caps);
    await sleep(o.settleSeconds * 1000);
    const f = ff;
    const exclude = [ours!.hub.pid, f.hub.pid, f.send.pid, f.recv.pid];
    const ourW = cpuWindow(() => ourPids(exclude));
    const ffW = cpuWindow(() => [f.send.pid!, f.recv.pid!]);
    const before = await oursStats(ours!);
    const frames0 = ffmpegFrames(f);
    const t0 = monoMs();
    const self0 = process.cpuUsage();
    await sleep(o.seconds * 1000);
    const self = process.cpuUsage(self0);
    const threads = { ours: ourW.threads(), ffmpeg: ffW.threads() };
    const oursCpu = ourW.close() + (self.user + self.system) / 1e6;
    const ffCpu = ffW.close();
    const windowSeconds = (monoMs() - t0) / 1000;
    if (f.exits.length) throw new MeasurementError(`compare ffmpeg: ${f.exits.join('; ')}`);
    const ffRecvFps = round1((ffmpegFrames(f) - frames0) / windowSeconds);
    const ffHub = (await f.hub.query()).stats?.receive.fps ?? 0;
    if (ffHub < 20 || ffRecvFps < 20) throw new MeasurementError(`compare ffmpeg: the job did not run (hub got ${ffHub} fps from ffmpeg, ffmpeg decoded ${ffRecvFps} fps)`);
    const oursW = await finishOurs(ours!, oursCpu, windowSeconds, before);
    return { ours: oursW, ffmpeg: { cpuSeconds: round3(ffCpu), hubReceivedFps: ffHub, receivedFps: ffRecvFps }, ratio: round3(oursCpu / ffCpu), threads };
  } finally {
    if (ours) await stopOurs(ours);
    if (ff) await stopFfmpeg(ff);
  }
}

async function oursAlone(caps: Capabilities, o: CompareOptions): Promise<OursWindow> {
  const ours = await startOurs(caps);
  try {
    await sleep(o.settleSeconds * 1000);
    const w = cpuWindow(() => ourPids([ours.hub.pid]));
    const before = await oursStats(ours);
    const t0 = monoMs();
    const self0 = process.cpuUsage();
    await sleep(o.seconds * 1000);
    const self = process.cpuUsage(self0);
    const cpu = w.close() + (self.user + self.system) / 1e6;
    return await finishOurs(ours, cpu, (monoMs() - t0) / 1000, before);
  } finally {
    await stopOurs(ours);
  }
}

async function chromiumAlone(clip: string, o: CompareOptions): Promise<ChromiumWindow> {
  const c = await ChromiumLoopback.start(clip, o.log);
  try {
    // WebRTC's bandwidth estimate ramps the size up over ~12 s on loopback (320 → 960 wide, measured).
    await sleep(Math.max(o.settleSeconds, CHROMIUM_SETTLE_S) * 1000);
    return await c.measure(o.seconds);
  } finally {
    await c.close();
  }
}

// ---- the section ----------------------------------------------------------------------------

export interface CompareOptions {
  seconds: number;
  settleSeconds: number;
  rounds: number;
  log: (l: string) => void;
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

export const compareSection: BenchSection = {
  name: 'compare',
  parts: ['ffmpeg', 'chromium'],
  async run(ctx, parts) {
    const caps = await ctx.caps();
    const o: CompareOptions = { seconds: ctx.options.compareSeconds, settleSeconds: ctx.options.compareSettleSeconds, rounds: ctx.options.compareRounds, log: ctx.log };
    const unmeasured: Record<string, string> = {};
    const skipped = this.parts.filter((p) => !parts.has(p));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ep-bench-compare-'));
    try {
      const clip = await makeClip(dir);
      const ff = await part('ffmpeg', parts, unmeasured, ['cpuVsFfmpeg'], async () => {
        const rounds: FfmpegRound[] = [];
        for (let i = 0; i < o.rounds; i++) {
          ctx.log(`compare: ffmpeg round ${i + 1}: ours and ffmpeg side by side (${o.settleSeconds} s settle + ${o.seconds} s) …`);
          const r = await ffmpegRound(caps, clip, dir, i % 2 === 0, o);
          ctx.log(`compare: ffmpeg round ${i + 1}: ours ${r.ours.cpuSeconds} CPU-s, ffmpeg ${r.ffmpeg.cpuSeconds} CPU-s (÷ ${r.ratio})`);
          rounds.push(r);
        }
        // Our test source draws its bars, title and clock live (videotestsrc's thread: textoverlay and
        // timeoverlay run in it); ffmpeg reads them drawn in the clip. A box's camera draws nothing.
        const source = sum(rounds.map((r) => sum(r.threads.ours.filter((t) => t.name.startsWith('videotestsrc')).map((t) => t.cpuSeconds))));
        return { rounds, oursCpuSeconds: round3(sum(rounds.map((r) => r.ours.cpuSeconds))), ffmpegCpuSeconds: round3(sum(rounds.map((r) => r.ffmpeg.cpuSeconds))), oursTestSourceCpuSeconds: round3(source) };
      });
      const chrome = await part('chromium', parts, unmeasured, ['cpuPerMpxVsChromium'], async () => {
        const ours: OursWindow[] = [];
        const chromium: ChromiumWindow[] = [];
        for (let i = 0; i < o.rounds; i++) {
          ctx.log(`compare: chromium round ${i + 1}: ours, then chromium, one at a time (${o.settleSeconds} s settle, Chromium ≥ ${CHROMIUM_SETTLE_S} s, + ${o.seconds} s each) …`);
          const first = i % 2 === 0;
          if (first) ours.push(await oursAlone(caps, o));
          chromium.push(await chromiumAlone(clip, o));
          if (!first) ours.push(await oursAlone(caps, o));
          const c = chromium.at(-1)!;
          ctx.log(`compare: chromium round ${i + 1}: ours ${ours.at(-1)!.cpuMsPerMpx} ms/Mpx, chromium ${c.cpuMsPerMpx} ms/Mpx (${c.codec}, ${c.decodedSize} at ${c.decodedFps} fps, ${c.processes} processes)`);
        }
        const oursMs = (sum(ours.map((r) => r.cpuSeconds)) * 1000) / sum(ours.map((r) => r.megapixels));
        const chromeMs = (sum(chromium.map((r) => r.cpuSeconds)) * 1000) / sum(chromium.map((r) => r.megapixels));
        return { ours, chromium, oursCpuMsPerMpx: round3(oursMs), chromiumCpuMsPerMpx: round3(chromeMs), codec: chromium.at(-1)!.codec };
      });
      const data = {
        cpuVsFfmpeg: ff ? round3(ff.oursCpuSeconds / ff.ffmpegCpuSeconds) : null,
        cpuVsFfmpegWithoutTestSource: ff ? round3((ff.oursCpuSeconds - ff.oursTestSourceCpuSeconds) / ff.ffmpegCpuSeconds) : null,
        cpuPerMpxVsChromium: chrome ? round3(chrome.oursCpuMsPerMpx / chrome.chromiumCpuMsPerMpx) : null,
        oursCpuMsPerMpx: chrome?.oursCpuMsPerMpx ?? null,
        chromiumCpuMsPerMpx: chrome?.chromiumCpuMsPerMpx ?? null,
        chromiumCodec: chrome?.codec ?? null,
        seconds: o.seconds,
        settleSeconds: o.settleSeconds,
        rounds: o.rounds,
        ffmpeg: ff,
        chromium: chrome,
      };
      // No goal against ffmpeg: ours does more than its job (echo cancelling, noise
      // suppression, the overlays, epframer's padding); the ratio says what that costs.
      const goals = [goal('cpuPerMpxVsChromium', '≤ 1', data.cpuPerMpxVsChromium, (v) => v <= 1)];
      const { t, row, met } = sectionTable('compare (720p30 send + receive, software codecs on this machine)', goals, 36);
      row('CPU ours ÷ ffmpeg (same job)', fmt(data.cpuVsFfmpeg), met('cpuVsFfmpeg'));
      row('  the same, our test source not counted', fmt(data.cpuVsFfmpegWithoutTestSource), '(it draws the frames ffmpeg reads drawn)');
      row('CPU/Mpx ours ÷ Chromium WebRTC', fmt(data.cpuPerMpxVsChromium), met('cpuPerMpxVsChromium'));
      if (ff) for (const [i, r] of ff.rounds.entries()) t.push(`  ffmpeg round ${i + 1}: ours ${r.ours.cpuSeconds} CPU-s (hub got ${r.ours.hubReceivedFps} fps, box got ${r.ours.receivedFps}), ffmpeg ${r.ffmpeg.cpuSeconds} CPU-s (hub got ${r.ffmpeg.hubReceivedFps} fps, decoded ${r.ffmpeg.receivedFps} fps)`);
      const top = (xs: Array<{ name: string; cpuSeconds: number }>): string => xs.slice(0, 5).map((x) => `${x.name} ${x.cpuSeconds}`).join(', ');
      const last = ff?.rounds.at(-1);
      if (last) t.push(`  threads (last round, CPU-s): ours ${top(last.threads.ours)}; ffmpeg ${top(last.threads.ffmpeg)}`);
      if (chrome) {
        t.push(`  ours ${chrome.oursCpuMsPerMpx} CPU-ms/Mpx, chromium ${chrome.chromiumCpuMsPerMpx} CPU-ms/Mpx (${chrome.codec})`);
        for (const c of chrome.chromium) t.push(`  chromium: ${c.cpuSeconds} CPU-s over ${c.processes} processes, ${c.framesEncoded} frames encoded at ${c.encodedSize}, ${c.framesDecoded} decoded at ${c.decodedSize} (${c.decodedFps} fps), camera ${c.captureSize}, quality limited by ${c.qualityLimitation || '?'}`);
      }
      for (const [f, why] of Object.entries(unmeasured)) t.push(`  NOT MEASURED ${f}: ${why}`);
      return { data, unmeasured, skipped, goals, table: t };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
