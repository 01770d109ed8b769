/**
 * The project's own GStreamer plugin (gst-pipelines/native/epframer.c and epframer-link.c, built by
 * scripts/build-native.sh during `npm run build` into dist/native/). `epframer` merges
 * the two muxers' outputs and frames them into whole SRT messages inside GStreamer, so
 * no media byte passes through Node (docs/media.md). Every GStreamer process we start —
 * the probe's gst-inspect, the media worker, gst-launch in benches and tests — finds it
 * through GST_PLUGIN_PATH. When the build could not make it (no compiler on the box),
 * the probe does not list `epframer` and the planner keeps the Node packetiser.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { distPath } from '../../lib/index.js';

export const NATIVE_PLUGIN_FILE = 'libgstepframer.so';

/** dist/native, also when this module runs from TypeScript sources (tests). */
export function nativePluginDir(): string {
  return distPath(import.meta.url, 'native');
}

/** `env` with our plugin directory first on GST_PLUGIN_PATH (unchanged when it is not built). */
export function withNativePlugins(env: NodeJS.ProcessEnv, dir: string = nativePluginDir()): NodeJS.ProcessEnv {
  if (!existsSync(path.join(dir, NATIVE_PLUGIN_FILE))) return env;
  const current = (env.GST_PLUGIN_PATH ?? '').split(path.delimiter).filter((p) => p !== '' && p !== dir);
  return { ...env, GST_PLUGIN_PATH: [dir, ...current].join(path.delimiter) };
}
