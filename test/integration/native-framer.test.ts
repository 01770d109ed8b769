/**
 * The native `epframer` element (gst-pipelines/native/epframer.c), built by
 * scripts/build-native.sh into a temporary directory, in live pipelines:
 *  - live video + audio muxers (PIDs 65/66, as plan.ts makes them) → epframer →
 *    whole 1316-byte messages that ffprobe/ffmpeg read as one program;
 *  - pad-kbps and hold-ms, on gst-launch and set while PLAYING through the Node binding;
 *  - the audio pad alone.
 * Byte-exact comparisons with the TypeScript reference: native-framer-reference.test.ts;
 * the link watch: native-framer-link.test.ts. Counters come from the `epframer-stats`
 * element message the element posts at EOS (`gst-launch-1.0 -m` prints it).
 *
 * Live pipelines run as fast as the machine lets them: what is asserted is what the
 * element made of its input, checked against its output (every Opus buffer a PES out,
 * each flush a padded message) and its own counters, with bounds that time cannot
 * break (no more padding than the time elapsed allows). How close pad-kbps comes to
 * its rate is the bench's (test/bench/media-framer.ts); waits are hang guards.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { TsAudit } from '../../gst-pipelines/mpegts/audit.js';
import { NULL_PID, SRT_MESSAGE_SIZE, TS_PACKET_SIZE } from '../../gst-pipelines/mpegts/packetizer.js';
import { loadGst } from '../../gst-pipelines/worker/gst.js';
import { pollUntil } from './helpers/processes.js';
import { audioBranch, epframerBuild, launch, run, videoBranch, type Stats } from './helpers/epframer.js';

const AUDIO_PID = 66;
/** A wait's deadline: only so that a hang fails saying what was awaited. */
const HANG_GUARD_MS = 15_000;

const build = epframerBuild();

/** Live video (fps, seconds) and audio (20 ms buffers) into epframer `props` → file. */
function livePipeline(out: string, fps: number, seconds: number, props = ''): string {
  return `${videoBranch(fps, fps * seconds, true)} ! f.video ${audioBranch(seconds * 50, true)} ! f.audio epframer name=f ${props} ! filesink location=${out}`;
}

const packets = (b: Buffer): Buffer[] => {
  const out: Buffer[] = [];
  for (let o = 0; o + TS_PACKET_SIZE <= b.length; o += TS_PACKET_SIZE) out.push(b.subarray(o, o + TS_PACKET_SIZE));
  return out;
};
const pidOf = (p: Buffer): number => ((p[1]! & 0x1f) << 8) | p[2]!;
const nullMessage = Buffer.concat(Array.from({ length: 7 }, () => Buffer.from([0x47, 0x1f, 0xff, 0x10, ...new Array<number>(184).fill(0xff)])));

function expectWholeMessages(out: Buffer): void {
  expect(out.length).toBeGreaterThan(0);
  expect(out.length % SRT_MESSAGE_SIZE).toBe(0);
  for (let o = 0; o < out.length; o += TS_PACKET_SIZE) if (out[o] !== 0x47) throw new Error(`no sync byte at ${o}`);
}

/** Messages made of 7 null packets (only pad-kbps makes them: a flush pads a non-empty remainder). */
function nullMessages(out: Buffer): number {
  let n = 0;
  for (let o = 0; o < out.length; o += SRT_MESSAGE_SIZE) if (out.subarray(o, o + SRT_MESSAGE_SIZE).equals(nullMessage)) n++;
  return n;
}

/**
 * The flush counters against the output: each flush padded its remainder into one
 * message ending in null packets (not all nulls: those are pad-kbps's), padding-packets
 * nulls in all. The mux outputs carry no null packets of their own.
 */
function expectFlushesInOutput(out: Buffer, s: Stats): void {
  let padded = 0;
  let nulls = 0;
  for (let o = 0; o < out.length; o += SRT_MESSAGE_SIZE) {
    const pids = packets(out.subarray(o, o + SRT_MESSAGE_SIZE)).map(pidOf);
    const tail = pids.length - 1 - pids.findLastIndex((p) => p !== NULL_PID);
    if (tail > 0 && tail < pids.length) [padded, nulls] = [padded + 1, nulls + tail];
  }
  expect(padded).toBe(s['flushes-frame-end']! + s['flushes-hold']! + s['flushes-forced']!);
  expect(nulls).toBe(s['padding-packets']);
}


describe('epframer (native GStreamer element)', () => {
  it('frames live video + audio muxers into whole 1316-byte messages ffmpeg decodes as one program', async () => {
    const out = path.join(build.dir, 'live.ts');
    const stats = await launch(build, livePipeline(out, 30, 5));
    const data = await readFile(out);
    expectWholeMessages(data);
    expect(stats['bytes-out']).toBe(data.length);
    expect(stats['messages-out']).toBe(data.length / SRT_MESSAGE_SIZE);
    expect(stats['video-frames']).toBe(150);
    expect(stats['frames-ended']).toBe(150);
    // A frame end pads its group unless the frame happened to end one (1 in 7).
    expect(stats['flushes-frame-end']).toBeGreaterThan(100);
    expectFlushesInOutput(data, stats);
    expect(stats['continuity-errors']).toBe(0);
    // Every one of the 250 Opus buffers is a PES out, none broken. The element counts
    // those after the first video PMT naming the audio PID (how many: how soon x264's
    // first frame came, i.e. speed), as an audit of its output does: no PTS hole after.
    const pes = packets(data).filter((p) => pidOf(p) === AUDIO_PID && (p[1]! & 0x40) !== 0);
    expect(pes.length).toBeGreaterThanOrEqual(250);
    const audit = new TsAudit({ audioFrameMs: 20 });
    audit.push(data, 0);
    const a = audit.snapshot();
    expect(stats['audio-pes']).toBe(a.audioPes);
    expect(a.audioPes).toBeGreaterThan(0);
    expect([a.audioFrames, a.audioBroken, a.audioPtsHoles, a.ccErrors]).toEqual([a.audioPes, 0, 0, 0]);
    expect([a.videoFrames, a.videoPtsHoles]).toEqual([150, 0]);
    expect(stats['resyncs']).toBe(0);
    expect(stats['pad-messages']).toBe(0);

    const probe = await run('ffprobe', ['-v', 'error', '-show_streams', '-show_entries', 'program_stream=codec_name,id', '-of', 'json', out]);
    const parsed = JSON.parse(probe.stdout) as { programs: Array<{ streams: Array<{ codec_name: string; id: string }> }>; streams: Array<{ codec_name: string }> };
    expect(parsed.programs).toHaveLength(1);
    expect(parsed.programs[0]!.streams.map((s) => `${s.codec_name}@${s.id}`).sort()).toEqual(['h264@0x41', 'opus@0x42']);
    expect(parsed.streams.map((s) => s.codec_name).sort()).toEqual(['h264', 'opus']);

    const dec = await run('ffmpeg', ['-hide_banner', '-nostats', '-v', 'warning', '-progress', 'pipe:1', '-i', out, '-map', '0:v', '-f', 'null', '-']);
    const frames = Number([...dec.stdout.matchAll(/^frame=(\d+)$/gm)].pop()?.[1] ?? 0);
    expect(frames).toBeGreaterThanOrEqual(143);
    expect(dec.stderr).not.toMatch(/continuity|corrupt|error/i);
  }, 60_000);

  it('pad-kbps adds null messages, no more than its rate over the time elapsed; hold-ms flushes audio remainders between 5 fps frames', async () => {
    const seconds = 4;
    const files = ['pad', 'hold20', 'hold10s'].map((n) => path.join(build.dir, `${n}.ts`));
    const t0 = performance.now();
    let padMs = 0;
    const [pad, hold20, hold10s] = await Promise.all([
      launch(build, livePipeline(files[0]!, 5, seconds, 'pad-kbps=200')).finally(() => (padMs = performance.now() - t0)),
      launch(build, livePipeline(files[1]!, 5, seconds, 'hold-ms=20')),
      launch(build, livePipeline(files[2]!, 5, seconds, 'hold-ms=10000')),
    ]);
    // pad-kbps's credit is 200 kbit/s × the element's time from its first buffer to its
    // last: never more than the process lived for (exact, however slow). The lower bound
    // is load noise versus a bug: the credit is capped at one second's, so only a start
    // late by, or stalls adding up to, over 1.5 s of the 4 s leave under half of 3 s at
    // the rate. How close to the rate it comes (76 in 4 s): media.framerPadRatePct.
    const perSecond = 200_000 / 8 / SRT_MESSAGE_SIZE; // 19 messages
    expect(pad['pad-messages']).toBeLessThanOrEqual(Math.floor((perSecond * padMs) / 1000));
    expect(pad['pad-messages']).toBeGreaterThan((perSecond * (seconds - 1)) / 2);
    const padOut = await readFile(files[0]!);
    expectWholeMessages(padOut);
    expect(nullMessages(padOut)).toBe(pad['pad-messages']);
    expect(pad['messages-out']).toBe(padOut.length / SRT_MESSAGE_SIZE);
    expectFlushesInOutput(padOut, pad);

    // hold-ms=20: audio (every 20 ms) waits for the next 5 fps frame; a remainder found
    // 20 ms old when a buffer arrives is padded (how often: arrival times). 10 s: never.
    expect(hold20['flushes-hold']).toBeGreaterThan(0);
    expect(hold10s['flushes-hold']).toBe(0);
    expect(hold20['video-frames']).toBe(5 * seconds);
    for (const [i, f] of files.slice(1).entries()) {
      const out = await readFile(f);
      expectWholeMessages(out);
      expect(nullMessages(out)).toBe(0);
      expectFlushesInOutput(out, [hold20, hold10s][i]!);
    }
  }, 60_000);

  it('runs with the audio pad alone (video pad unlinked): its own stream-start, audio packets only', async () => {
    const out = path.join(build.dir, 'aonly.ts');
    const stats = await launch(build, `${audioBranch(100, false)} ! f.audio epframer name=f ! filesink location=${out}`);
    const data = await readFile(out);
    expectWholeMessages(data);
    // The audio muxer's PAT/PMT are dropped (the video muxer's would carry the program).
    expect(new Set(packets(data).map(pidOf))).toEqual(new Set([AUDIO_PID, NULL_PID]));
    expect(stats['audio-pes']).toBe(0); // the audio PID is learnt from the video PMT
    expect(stats['video-frames']).toBe(0);
    expect(stats['messages-out']).toBe(data.length / SRT_MESSAGE_SIZE);
  });

  it('pad-kbps and hold-ms set while PLAYING through the Node binding (audio only)', async () => {
    // The binding initialises GStreamer when loaded: the plugin path must be set first.
    process.env.GST_PLUGIN_PATH = build.pluginDir;
    process.env.GST_REGISTRY = path.join(build.dir, 'registry.bin');
    const gst = loadGst();
    const p = new gst.Pipeline(`${audioBranch(-1, true)} ! f.audio epframer name=f hold-ms=10000 ! fakesink sync=false`);
    const f = p.findChild('f');
    if (!f) throw new Error('no epframer in the pipeline');
    const count = (name: string): number => Number(f[name]);
    const until = (what: string, cond: () => boolean): Promise<void> => pollUntil(cond, HANG_GUARD_MS, what);
    // The counters are published after each buffer, by one streaming thread (the audio
    // pad's): the buffer behind a second change seen after a setting began after it.
    const twoBuffersOn = async (what: string): Promise<void> => {
      for (const n of [1, 2]) {
        const v = count('messages-out');
        await until(`${what} (${n})`, () => count('messages-out') !== v);
      }
    };
    try {
      p.play();
      await until('the first message out', () => count('messages-out') > 0);
      expect(f['hold-ms']).toBe(10000);
      // 7 Opus packets (140 ms) fill a message: none waited 10 s to be padded.
      expect(count('flushes-hold')).toBe(0);
      expect(count('pad-messages')).toBe(0);
      const t0 = performance.now();
      f['pad-kbps'] = 400;
      expect(f['pad-kbps']).toBe(400);
      await until('10 pad messages at 400 kbit/s', () => count('pad-messages') >= 10);
      // Credit accrues from the first buffer after the change: never more than 400 kbit/s
      // of the time since (how close to it: the bench's media.framerPadRatePct).
      expect(count('pad-messages') * SRT_MESSAGE_SIZE * 8).toBeLessThanOrEqual(400 * (performance.now() - t0));
      f['pad-kbps'] = 0;
      await twoBuffersOn('buffers after pad-kbps=0');
      const stopped = count('pad-messages');
      await twoBuffersOn('more buffers');
      expect(count('pad-messages')).toBe(stopped);
      f['hold-ms'] = 20;
      expect(f['hold-ms']).toBe(20);
      await until('a remainder padded at 20 ms (hold-ms=20)', () => count('flushes-hold') > 0);
      // guint64 reaches JS as a string (the binding transforms unknown types to strings).
      const bytes = Number(f['bytes-out']);
      expect(bytes).toBeGreaterThan(0);
      expect(bytes % SRT_MESSAGE_SIZE).toBe(0);
      expect(f['continuity-errors']).toBe(0);
    } finally {
      p.stop();
    }
  }, 60_000);
});
