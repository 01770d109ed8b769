/**
 * What the epframer tests share: a private build of the element for one test file (its
 * own plugin directory and GStreamer registry, so the user's registry cache is left
 * alone), gst-launch runs that return the element's EOS counters, and the test branches.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect } from 'vitest';

export const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export type Stats = Record<string, number>;

export interface EpframerBuild {
  /** The test file's temp directory (removed after it). */
  dir: string;
  /** Where this build of the plugin is (GST_PLUGIN_PATH). */
  pluginDir: string;
  /** The environment every GStreamer process of the file runs with. */
  env: NodeJS.ProcessEnv;
}

/** Builds the element (warnings are errors) before the file's tests; removes it after. */
export function epframerBuild(): EpframerBuild {
  const b: EpframerBuild = { dir: '', pluginDir: '', env: {} };
  beforeAll(async () => {
    b.dir = await mkdtemp(path.join(tmpdir(), 'ep-framer-'));
    b.pluginDir = path.join(b.dir, 'plugin');
    await run('bash', [path.join(ROOT, 'scripts/build-native.sh'), b.pluginDir], { env: { ...process.env, EPFRAMER_WERROR: '1' } });
    b.env = { ...process.env, GST_PLUGIN_PATH: b.pluginDir, GST_REGISTRY: path.join(b.dir, 'registry.bin') };
    const { stdout } = await run('gst-inspect-1.0', ['epframer'], { env: b.env });
    expect(stdout).toContain('GstEpFramer');
  });
  afterAll(async () => {
    if (b.dir) await rm(b.dir, { recursive: true, force: true });
  });
  return b;
}

/** The element's counters from its EOS `epframer-stats` message (gst-launch -m output). */
export function parseStats(stdout: string): Stats {
  const m = /epframer-stats, ([^;]*);/.exec(stdout);
  if (!m?.[1]) throw new Error(`no epframer-stats message in:\n${stdout.slice(-3000)}`);
  const stats: Stats = {};
  for (const kv of m[1].split(', ')) {
    const f = /^([\w-]+)=\([\w]+\)(\d+)$/.exec(kv);
    if (f?.[1] && f[2]) stats[f[1]] = Number(f[2]);
  }
  return stats;
}

/** Runs gst-launch-1.0 -m with the build; returns the element's EOS counters. */
export async function launch(b: EpframerBuild, pipeline: string): Promise<Stats> {
  const { stdout, stderr } = await run('gst-launch-1.0', ['-m', ...pipeline.split(/\s+/).filter(Boolean)], { env: b.env, maxBuffer: 16 << 20 });
  expect(stderr).not.toMatch(/CRITICAL|WARNING|ERROR/);
  return parseStats(stdout);
}

export function videoBranch(fps: number, frames: number, live: boolean): string {
  return `videotestsrc is-live=${live} num-buffers=${frames} ! video/x-raw,width=640,height=360,framerate=${fps}/1,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=800 ! h264parse config-interval=-1 ! mux.sink_65 mpegtsmux name=mux alignment=0`;
}

export function audioBranch(buffers: number, live: boolean): string {
  return `audiotestsrc is-live=${live} num-buffers=${buffers} samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 ! amux.sink_66 mpegtsmux name=amux alignment=0`;
}
