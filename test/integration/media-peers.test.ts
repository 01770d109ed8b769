/**
 * The box against foreign SRT peers that are not our own code: ffmpeg 5.1 as the hub
 * (listener) in both directions, and srt-live-transmit relaying the box's stream to a
 * second receiver. What a real district hub (MediaMTX, a broadcaster's SRT gateway)
 * will be.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MediaJoinSpec } from '../../gst-pipelines/types.js';
import { MediaLog, Resources, SMALL, boxPlan, capabilities, freePorts, newBox } from './helpers/media.js';
import { Processes, ffmpegHasEncoders, ffmpegProgram, ffmpegRecord, ffprobeStreams, framesOf, waitListening, withTimeout } from './helpers/processes.js';

const res = new Resources();
const procs = new Processes();
let dir = '';

beforeAll(async () => {
  // This ffmpeg build must have the encoders the foreign hub uses; say so plainly if not.
  expect(await ffmpegHasEncoders('libx264', 'libopus'), 'ffmpeg encoders missing').toEqual([]);
  await capabilities();
  dir = await mkdtemp(path.join(tmpdir(), 'media-peers-'));
});
afterEach(async () => {
  await res.release();
  await procs.killAll();
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A join spec pointing the box (caller) at foreign listeners on 127.0.0.1. */
function foreignSpec(sendPort: number, receivePort: number): MediaJoinSpec {
  return {
    meetingId: 'foreign',
    send: { url: `srt://127.0.0.1:${sendPort}`, streamId: 'publish:foreign/box', video: SMALL, audio: { bitrateKbps: 32 } },
    receive: { url: `srt://127.0.0.1:${receivePort}`, streamId: 'read:foreign/program' },
    srt: { latencyMs: 120 },
  };
}

describe('box ⇄ foreign SRT peers', () => {
  it('sends a stream that ffmpeg (SRT listener) records and ffprobe decodes: H.264 frames and Opus', async () => {
    const [sendPort, programPort] = await freePorts(2);
    const out = path.join(dir, 'from-box.ts');
    const program = ffmpegProgram(procs, programPort!);
    const recorder = ffmpegRecord(procs, 'ffmpeg recorder (listener)', `srt://127.0.0.1:${sendPort}?mode=listener`, 4, out);
    await Promise.all([waitListening(program, programPort!), waitListening(recorder, sendPort!)]);

    const box = newBox(res);
    const log = new MediaLog(box);
    await box.start(await boxPlan(foreignSpec(sendPort!, programPort!)));
    const exit = await withTimeout(recorder.exited, 45_000, 'ffmpeg to record 4 s of the box');
    const recordedAt = Date.now();
    expect(exit, recorder.output()).toEqual({ code: 0, signal: null });

    const streams = await ffprobeStreams(out);
    console.info('ffmpeg recorded from the box', streams);
    const video = streams.find((s) => s.codec_name === 'h264');
    expect(video, JSON.stringify(streams)).toMatchObject({ codec_type: 'video', width: SMALL.width, height: SMALL.height });
    // Decodable H.264 and Opus, at least 1 s of each in the 4 s recorded (the rate is the bench's).
    expect(framesOf(streams, 'h264')).toBeGreaterThanOrEqual(SMALL.fps);
    expect(streams.find((s) => s.codec_name === 'opus'), JSON.stringify(streams)).toMatchObject({ codec_type: 'audio' });
    expect(framesOf(streams, 'opus')).toBeGreaterThanOrEqual(50); // 20 ms frames: ≥ 1 s of sound
    // No restart while ffmpeg was recording (its leaving afterwards may well cause one).
    expect(log.restarts.filter((r) => r.at <= recordedAt), log.describe()).toEqual([]);
  }, 60_000);

  it('decodes a program that ffmpeg serves as SRT listener: its frames and a sound level', async () => {
    const [sendPort, programPort] = await freePorts(2);
    const program = ffmpegProgram(procs, programPort!, { fps: 25 });
    // The box's own stream goes to an ffmpeg that discards it (a hub that only serves).
    const sink = procs.spawn('ffmpeg null sink (listener)', 'ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'warning', '-i', `srt://127.0.0.1:${sendPort}?mode=listener`, '-f', 'null', '-']);
    await Promise.all([waitListening(program, programPort!), waitListening(sink, sendPort!)]);

    const box = newBox(res);
    const log = new MediaLog(box);
    await box.start(await boxPlan(foreignSpec(sendPort!, programPort!)));
    // ≥ 2 s of the 25 fps program decoded, with sound (counted; the rate is the bench's).
    const got = await log.nextSample((s) => s.stats.receive.frames >= 2 * 25 && s.stats.audio.speakerBuffers > 0, 45_000, 'the box to decode ≥ 2 s of the program, with sound');
    const last = got.stats;
    console.info('box decoding the ffmpeg program', { frames: last.receive.frames, fps: last.receive.fps, audio: last.audio });
    expect(last.audio.speakerDb).not.toBeNull();
    expect(last.audio.speakerDb!).toBeGreaterThan(-40); // a 440 Hz sine at ffmpeg's default 1/8 amplitude ≈ −21 dBFS
    expect(log.restarts, log.describe()).toEqual([]);
    expect(box.status()).toMatchObject({ receive: 'ok', lastError: null });
    expect(program.running(), program.output()).toBe(true);
  }, 60_000);

  it('goes through srt-live-transmit as a relay (listener → listener) to a second receiver that decodes it', async () => {
    const [relayIn, relayOut, programPort] = await freePorts(3);
    const out = path.join(dir, 'via-relay.ts');
    const program = ffmpegProgram(procs, programPort!);
    const relay = procs.spawn('srt-live-transmit', 'srt-live-transmit', [`srt://:${relayIn}?mode=listener`, `srt://:${relayOut}?mode=listener`]);
    await Promise.all([waitListening(program, programPort!), waitListening(relay, relayIn!)]);

    const box = newBox(res);
    await box.start(await boxPlan(foreignSpec(relayIn!, programPort!)));
    // srt-live-transmit opens its output listener once its input is connected.
    await waitListening(relay, relayOut!, 10_000);
    const receiver = ffmpegRecord(procs, 'ffmpeg receiver (caller)', `srt://127.0.0.1:${relayOut}?mode=caller`, 4, out);
    const exit = await withTimeout(receiver.exited, 45_000, 'ffmpeg to record 4 s through the relay');
    expect(exit, `${receiver.output()}\n--- relay ---\n${relay.output()}`).toEqual({ code: 0, signal: null });

    const streams = await ffprobeStreams(out);
    console.info('ffmpeg recorded through srt-live-transmit', streams);
    // Joined mid-stream: decodable from the next keyframe (SPS/PPS with each one, ≤ 2 s apart).
    expect(framesOf(streams, 'h264'), JSON.stringify(streams)).toBeGreaterThanOrEqual(SMALL.fps);
    expect(framesOf(streams, 'opus'), JSON.stringify(streams)).toBeGreaterThanOrEqual(50);
    expect(relay.running(), relay.output()).toBe(true);
  }, 60_000);
});
