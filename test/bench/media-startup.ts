/**
 * Start → first media bytes at the listener.
 *
 * As in production, the box's MediaSupervisor has a warm worker ready (prewarm()), and
 * the session plan is already made. The clock starts when supervisor.start(plan) is
 * called and stops when the first UDP datagram from `srt-live-transmit` (an SRT listener
 * forwarding every message to a UDP socket read by this process) arrives: bytes, not
 * frames, and both times are taken in this process. The listener accepts with
 * latency=40, so the first message is released after SRT's 40 ms receive buffer, as a
 * real hub would see it. A second srt-live-transmit listens for the box's receive
 * direction (it sends nothing, the box only needs to connect). Fresh listeners for every
 * repetition.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';
import { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import { forkSpawner } from '../../gst-pipelines/supervisor/worker-process.js';
import type { Capabilities, MediaJoinSpec } from '../../gst-pipelines/types.js';
import { boxPlan } from './media-cpu.js';
import { endChild, firstDatagram, MeasurementError, median, monoMs, round1, sleep, track, udpPortBound, waitFor } from './machine.js';

export const STARTUP_SRT_LATENCY_MS = 40;

export interface StartupRun {
  /** supervisor.start(plan) called → first bytes at the listener. */
  startToFirstBytesMs: number;
  /** supervisor.start(plan) called → its promise resolved (the worker built and played the pipeline). */
  startResolvedMs: number;
  /** The worker's own report: play() → first TS bytes out of the packetiser. */
  workerPlayToFirstSendMs: number | null;
}

export interface StartupResult {
  repetitions: number;
  srtLatencyMs: number;
  medianMs: number;
  maxMs: number;
  runs: StartupRun[];
}

export interface StartupOptions {
  caps: Capabilities;
  repetitions: number;
  log: (line: string) => void;
}

export function srtLiveTransmit(input: string, output: string): { proc: ChildProcess; exited: () => string | null } {
  const proc = track(spawn('srt-live-transmit', ['-q', input, output], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let exit: string | null = null;
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-500);
  });
  proc.on('error', (e) => {
    exit = `srt-live-transmit cannot run: ${e.message} (package srt-tools)`;
  });
  proc.once('exit', (code, signal) => {
    exit ??= `srt-live-transmit exited (${signal ?? `code ${code}`}) ${err.trim()}`;
  });
  return { proc, exited: () => exit };
}

async function once(box: MediaSupervisor, caps: Capabilities): Promise<StartupRun> {
  const ingest = await freePort();
  let program = await freePort();
  while (program === ingest) program = await freePort();
  const udpPort = await freePort();
  const sock = await firstDatagram(udpPort);
  const lat = `latency=${STARTUP_SRT_LATENCY_MS}`;
  const ingestL = srtLiveTransmit(`srt://127.0.0.1:${ingest}?mode=listener&${lat}`, `udp://127.0.0.1:${udpPort}`);
  const programL = srtLiveTransmit(`udp://127.0.0.1:${await freePort()}`, `srt://127.0.0.1:${program}?mode=listener&${lat}`);
  try {
    await waitFor('the SRT listeners', () => {
      const dead = ingestL.exited() ?? programL.exited();
      if (dead) throw new MeasurementError(`startup: ${dead}`);
      return udpPortBound(ingest) && udpPortBound(program);
    }, 5000);
    const spec: MediaJoinSpec = {
      meetingId: 'startup',
      title: 'Startup bench',
      send: { url: `srt://127.0.0.1:${ingest}`, streamId: 'publish:startup/box', video: { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 }, audio: { bitrateKbps: 32 } },
      receive: { url: `srt://127.0.0.1:${program}`, streamId: 'read:startup/program' },
      srt: { latencyMs: STARTUP_SRT_LATENCY_MS },
    };
    const plan = boxPlan(caps, spec);
    await box.prewarm();
    await sleep(300); // let the warm worker settle, as it would have long before a join
    let playToSend: number | null = null;
    const onFirst = (f: { direction: 'send' | 'receive'; atMs: number }): void => {
      if (f.direction === 'send') playToSend = f.atMs;
    };
    box.on('first-bytes', onFirst);
    const gotBytes = sock.arrival(10_000, 'startup: no bytes at the listener within 10 s of supervisor.start()');
    const t0 = monoMs();
    const started = box.start(plan).then(() => monoMs() - t0);
    const firstAt = await gotBytes;
    const startResolvedMs = await started;
    await sleep(100);
    box.off('first-bytes', onFirst);
    const st = box.status();
    if (st.restarts > 0) throw new MeasurementError(`startup: the session restarted before the first bytes (${st.lastError?.message})`);
    return { startToFirstBytesMs: round1(firstAt - t0), startResolvedMs: round1(startResolvedMs), workerPlayToFirstSendMs: playToSend };
  } finally {
    await box.stop();
    await Promise.all([endChild(ingestL.proc), endChild(programL.proc)]);
    sock.close();
  }
}

export async function measureStartup(o: StartupOptions): Promise<StartupResult> {
  const box = new MediaSupervisor({ spawner: forkSpawner({ stderr: 'ignore' }) });
  const runs: StartupRun[] = [];
  try {
    for (let i = 0; i < o.repetitions; i++) {
      const r = await once(box, o.caps);
      o.log(`startup: run ${i + 1}: ${r.startToFirstBytesMs} ms to first bytes (start() resolved after ${r.startResolvedMs} ms, worker play → first TS out ${r.workerPlayToFirstSendMs ?? '–'} ms)`);
      runs.push(r);
    }
  } finally {
    await box.close();
  }
  const xs = runs.map((r) => r.startToFirstBytesMs);
  return {
    repetitions: runs.length,
    srtLatencyMs: STARTUP_SRT_LATENCY_MS,
    medianMs: round1(median(xs) ?? NaN),
    maxMs: round1(Math.max(...xs)),
    runs,
  };
}
