import { defineConfig } from 'vitest/config';
import { withNativePlugins } from './gst-pipelines/native/plugin.js';

const pluginPath = withNativePlugins(process.env).GST_PLUGIN_PATH;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests run real GStreamer pipelines and brokers on a 2-core machine:
    // run files one at a time so timing-sensitive media checks are not starved.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    // Our epframer plugin (dist/native, built by `npm run build`) for every GStreamer the
    // tests start, the test process's own binding included (native.ts).
    env: pluginPath === undefined ? {} : { GST_PLUGIN_PATH: pluginPath },
  },
});
