/**
 * Every plan the software profile produces on this machine actually parses and runs:
 * the real probe() capabilities, planSession() for a spread of settings and sizes, and
 * planStandby(), each `pipeline` run by the real worker against a LocalHub until media
 * flows both ways, and the `direct` variant (bare gst-launch-1.0) against ffmpeg.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { planSession } from '../../gst-pipelines/plan/session.js';
import { planStandby } from '../../gst-pipelines/plan/standby.js';
import type { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import type { Capabilities, MediaJoinSpec, MediaSettings, SessionPlan } from '../../gst-pipelines/types.js';
import { MediaLog, Resources, SMALL, capabilities, freePorts, hubSpec, newBox, nextEvent, pngSize, startHub, testSettings, type Video } from './helpers/media.js';
import { Processes, ffmpegProgram, gstLaunchArgs, ffmpegRecord, ffprobeStreams, framesOf, waitListening, withTimeout } from './helpers/processes.js';

const res = new Resources();
const procs = new Processes();
let caps: Capabilities;
let dir = '';

beforeAll(async () => {
  caps = await capabilities();
  dir = await mkdtemp(path.join(tmpdir(), 'plans-run-'));
});
afterEach(async () => {
  await res.release();
  await procs.killAll();
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Variant {
  name: string;
  video: Video;
  settings: Partial<MediaSettings>;
  passphrase?: string;
  snapshots?: boolean;
  /** Capabilities as another software-only board would report them. */
  caps?: (c: Capabilities) => Capabilities;
}

const VARIANTS: Variant[] = [
  { name: 'test source, 640x360@15, AEC off', video: SMALL, settings: { aec: false } },
  { name: 'test source, 640x360@15, AEC on, snapshots, mic muted', video: SMALL, settings: { aec: true, micMuted: true }, snapshots: true },
  { name: 'test source, 1280x720@30, AEC on', video: { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 }, settings: { aec: true } },
  { name: 'test source, 1920x1080@30, AEC off, snapshots', video: { width: 1920, height: 1080, fps: 30, bitrateKbps: 3000 }, settings: { aec: false }, snapshots: true },
  { name: 'auto source (this machine: no camera, mic or display), 640x360@15, AEC on', video: SMALL, settings: { source: 'auto', aec: true } },
  { name: 'test source, 640x360@15, SRT passphrase', video: SMALL, settings: {}, passphrase: 'plans-run-passphrase-1' },
  {
    name: 'openh264 encoder and decoder (no x264/libav), 640x360@15',
    video: SMALL,
    settings: {},
    caps: (c) => ({ ...c, elements: { ...c.elements, x264enc: false, avdec_h264: false } }),
  },
];

function variantSettings(v: Variant): MediaSettings {
  return testSettings({ ...v.settings, ...(v.snapshots ? { snapshotDir: path.join(dir, slug(v.name)) } : {}) });
}

const slug = (s: string): string => s.replace(/[^a-z0-9]+/gi, '-').toLowerCase().slice(0, 60);

/** Rejects as soon as the supervisor restarts the session (an error, a stall, a crash). */
function failOnRestart(sup: MediaSupervisor): { failed: Promise<never>; dispose: () => void } {
  let listener: ((r: { reason: string }) => void) | null = null;
  const failed = new Promise<never>((_, reject) => {
    listener = (r): void => reject(new Error(`session restarted (${r.reason}): ${sup.status().lastError?.message ?? '?'}`));
    sup.on('restart', listener);
  });
  failed.catch(() => undefined);
  return { failed, dispose: () => listener && sup.off('restart', listener) };
}

describe('every software-profile session plan runs in the worker against a LocalHub', () => {
  it.each(VARIANTS.map((v) => [v.name, v] as const))('%s', async (_name, v) => {
    const vcaps = v.caps ? v.caps(caps) : caps;
    const settings = variantSettings(v);
    if (settings.snapshotDir) await mkdir(settings.snapshotDir, { recursive: true });
    const hub = await startHub(res, v.passphrase ? { passphrase: v.passphrase } : {});
    const hubLog = new MediaLog(hub.supervisor);
    const plan = planSession(hubSpec(hub, v.video), vcaps, settings);
    if (v.caps) expect(plan.choices).toMatchObject({ encoder: 'openh264enc', decoder: 'openh264dec' });
    const box = newBox(res, settings.snapshotDir ? { snapshotDir: settings.snapshotDir } : {});
    const boxLog = new MediaLog(box);
    const { failed, dispose } = failOnRestart(box);
    res.add('restart listener', dispose);

    const t0 = Date.now();
    const flowing = Promise.all([
      nextEvent(box, 'first-bytes', (f) => f.direction === 'send', 15_000, 'first bytes sent'),
      nextEvent(box, 'first-bytes', (f) => f.direction === 'receive', 15_000, 'first program frame received'),
      hubLog.nextSample((s) => s.stats.receive.frames >= 5 && s.stats.audio.speakerBuffers > 0, 15_000, 'the hub to decode ≥ 5 frames and audio from the box'),
    ]);
    flowing.catch(() => undefined); // raced below; a restart ends the wait first
    await Promise.race([box.start(plan, v.passphrase ? { passphrase: v.passphrase } : {}).then(() => flowing), failed]);
    const [, , atHub] = await flowing;
    const flowingMs = Date.now() - t0;
    const boxStats = await boxLog.nextSample((s) => s.stats.receive.frames > 0 && s.stats.audio.speakerBuffers > 0, 5000, 'box stats with program video and audio');
    console.info(`plan ran: ${v.name}`, { flowingMs, choices: plan.choices, hubReceivedFrames: atHub.stats.receive.frames, hubAudioDb: atHub.stats.audio.speakerDb, boxReceiveFps: boxStats.stats.receive.fps });

    expect(box.status(), boxLog.describe()).toMatchObject({ send: 'ok', receive: 'ok', lastError: null, restarts: 0 });
    // Muted (or no mic: silence) really is silent at the hub: Opus-coded digital silence
    // decodes to ≈ −112 dBFS (or −∞ → null); the test ticks arrive at ≈ −27 dBFS. The
    // first 1 s level interval can be mostly decoder warm-up, so judge ≥ 3 intervals.
    if (settings.micMuted || settings.source === 'auto') {
      await hubLog.nextSample((s) => s.stats.audio.speakerBuffers >= 3, 6000, 'three 1 s audio levels at the hub');
      const levels = hubLog.samples.map((s) => s.stats.audio.speakerDb ?? -Infinity);
      expect(Math.max(...levels), `hub levels ${levels.join(', ')} dBFS`).toBeLessThan(-90);
    } else {
      await hubLog.nextSample((s) => (s.stats.audio.speakerDb ?? -Infinity) > -60, 6000, 'the hub to hear the test ticks above −60 dBFS');
    }
    if (settings.snapshotDir) {
      const files = await box.snapshot(20_000);
      const sent = files.find((f) => f.endsWith('sent.png'));
      const received = files.find((f) => f.endsWith('received.png'));
      expect(sent, files.join(', ')).toBeDefined();
      expect(received, files.join(', ')).toBeDefined();
      expect(await pngSize(sent!)).toEqual({ width: v.video.width, height: v.video.height });
      expect(await pngSize(received!)).toEqual({ width: SMALL.width, height: SMALL.height });
    }
  }, 45_000);

  it('runs the standby plan in the worker without an error', async () => {
    const plan = planStandby(caps, testSettings());
    const box = newBox(res);
    const log = new MediaLog(box);
    const { failed, dispose } = failOnRestart(box);
    res.add('restart listener', dispose);
    await Promise.race([box.start(plan), failed]);
    // Two stats reports: the worker is alive and its pipeline stayed up.
    const s = await Promise.race([log.nextSample(() => log.samples.length >= 2, 10_000, 'two stats reports from the standby worker'), failed]);
    expect(s.stats.uptimeMs).toBeGreaterThan(0);
    expect(box.status(), log.describe()).toMatchObject({ running: true, plan: 'standby', lastError: null, restarts: 0 });
  }, 30_000);

  it('plays the standby picture to the end with bare gst-launch-1.0 (frames reach the sink)', async () => {
    const plan = planStandby(caps, testSettings());
    // The same description, with a source that ends after 10 frames: EOS proves they flowed.
    const finite = plan.pipeline.replace(/^videotestsrc /, 'videotestsrc num-buffers=10 ');
    expect(finite).not.toBe(plan.pipeline);
    const p = procs.spawn('gst-launch standby', 'gst-launch-1.0', ['-e', ...gstLaunchArgs(finite)], { env: plan.env });
    const exit = await withTimeout(p.exited, 15_000, 'the standby pipeline to reach EOS');
    expect(exit, p.output()).toEqual({ code: 0, signal: null });
    expect(p.output()).toMatch(/Got EOS from element/);
    expect(p.output()).not.toMatch(/^ERROR/m);
  }, 30_000);
});

describe('the direct variant (mpegtsmux alignment=7 → srtsink) runs under bare gst-launch-1.0', () => {
  /** A join spec pointing at foreign listeners. */
  const spec = (sendPort: number, receivePort: number, video: Video): MediaJoinSpec => ({
    meetingId: 'direct',
    send: { url: `srt://127.0.0.1:${sendPort}`, video },
    receive: { url: `srt://127.0.0.1:${receivePort}` },
    srt: { latencyMs: 120 },
  });

  it('every session variant’s direct description parses (gst_parse_launch, not played)', () => {
    const gst = createRequire(import.meta.url)('gstreamer-superficial') as { Pipeline: new (launch: string) => unknown };
    for (const v of VARIANTS) {
      const plan: SessionPlan = planSession(spec(9, 10, v.video), v.caps ? v.caps(caps) : caps, variantSettings(v));
      expect(() => new gst.Pipeline(plan.direct), v.name).not.toThrow();
    }
  });

  for (const v of [VARIANTS[1]!, VARIANTS[2]!]) {
    it(`${v.name}: ffmpeg (listener) records decodable H.264 + Opus, and the receive branch decodes the program`, async () => {
      const [sendPort, programPort] = (await freePorts(2)) as [number, number];
      const out = path.join(dir, `direct-${slug(v.name)}.ts`);
      const settings = { ...variantSettings(v), snapshotDir: undefined };
      const plan = planSession(spec(sendPort, programPort, v.video), caps, settings);
      const program = ffmpegProgram(procs, programPort);
      const recorder = ffmpegRecord(procs, 'ffmpeg recorder (listener)', `srt://127.0.0.1:${sendPort}?mode=listener`, 3, out);
      await Promise.all([waitListening(program, programPort), waitListening(recorder, sendPort)]);

      // Split like a shell would (see gstLaunchArgs: one big argument is a syntax error on 1.22).
      const gl = procs.spawn('gst-launch direct', 'gst-launch-1.0', ['-e', '-m', ...gstLaunchArgs(plan.direct)], { env: plan.env });
      const exit = await withTimeout(recorder.exited, 45_000, 'ffmpeg to record 3 s of the direct pipeline');
      // What gst-launch said while ffmpeg was there (its leaving may well end the pipeline).
      const said = gl.output();
      const wasRunning = gl.running();
      expect(exit, `${recorder.output()}\n--- gst-launch ---\n${said.slice(-3000)}`).toEqual({ code: 0, signal: null });
      const streams = await ffprobeStreams(out);
      console.info(`direct ${v.name}`, streams);
      // Decodable H.264 at the planned size and Opus, at least 1 s of each in the 3 s recorded
      // (how many per second a loaded machine encodes is not this test's business).
      expect(framesOf(streams, 'h264'), JSON.stringify(streams)).toBeGreaterThanOrEqual(v.video.fps);
      expect(streams.find((s) => s.codec_name === 'h264')).toMatchObject({ width: v.video.width, height: v.video.height });
      expect(framesOf(streams, 'opus'), JSON.stringify(streams)).toBeGreaterThanOrEqual(50);
      // The receive branch decoded the ffmpeg program's sound: `level` messages from rxlevel.
      expect(said).toMatch(/from element "rxlevel" \(element\): level/);
      expect(said).not.toMatch(/^ERROR/m);
      expect(wasRunning, said.slice(-3000)).toBe(true);
    }, 60_000);
  }
});
