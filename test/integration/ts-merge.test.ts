/**
 * Two real mpegtsmux outputs (video on PID 65, audio on PID 66, as plan.ts makes them)
 * merged by TsMerger into one stream that ffprobe decodes with both streams in one
 * program — fed in the interleaved, arbitrarily split chunks the worker's pipes deliver.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TsMerger } from '../../gst-pipelines/mpegts/merger.js';

const run = promisify(execFile);

describe('TsMerger on real muxer output', () => {
  it('joins a video-only and an audio-only transport stream into one program ffprobe decodes', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-merge-'));
    const v = path.join(dir, 'v.ts');
    const a = path.join(dir, 'a.ts');
    await run('gst-launch-1.0', [
      '-q',
      ...`videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! h264parse config-interval=-1 ! mux.sink_65 mpegtsmux name=mux alignment=0 ! filesink location=${v}`.split(' '),
      ...`audiotestsrc num-buffers=100 ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 ! amux.sink_66 mpegtsmux name=amux alignment=0 ! filesink location=${a}`.split(' '),
    ]);
    const [video, audio] = await Promise.all([readFile(v), readFile(a)]);
    const m = new TsMerger();
    const out: Buffer[] = [];
    // Interleave odd-sized chunks of both, audio first (as on the box: audio starts sooner).
    let vo = 0;
    let ao = 0;
    for (let i = 0; vo < video.length || ao < audio.length; i++) {
      const an = 1000 + ((i * 37) % 500);
      const vn = 3000 + ((i * 91) % 2000);
      if (ao < audio.length) out.push(m.pushAudio(audio.subarray(ao, (ao += an))));
      if (vo < video.length) out.push(m.pushVideo(video.subarray(vo, (vo += vn))));
    }
    const merged = path.join(dir, 'merged.ts');
    await writeFile(merged, Buffer.concat(out));
    const { stdout } = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'program_stream=codec_name,id,nb_read_frames', '-of', 'json', merged]);
    const streams = (JSON.parse(stdout) as { programs: Array<{ streams: Array<{ codec_name: string; id: string; nb_read_frames: string }> }> }).programs[0]!.streams;
    const byCodec = Object.fromEntries(streams.map((s) => [s.codec_name, s]));
    expect(byCodec.h264?.id).toBe('0x41');
    expect(Number(byCodec.h264?.nb_read_frames)).toBe(60);
    expect(byCodec.opus?.id).toBe('0x42');
    expect(Number(byCodec.opus?.nb_read_frames)).toBeGreaterThan(90);
  }, 30_000);
});
