import { defineConfig } from 'vitest/config';
import { withNativePlugins } from './gst-pipelines/native/plugin.js';

const pluginPath = withNativePlugins(process.env).GST_PLUGIN_PATH;

/**
 * Files that start no media pipeline and no agent timing depends on — pure unit tests and
 * the update tests that work on files, HTTP servers and tar — run first, two at a time.
 * Everything else runs after them, one file at a time: integration tests run real
 * GStreamer pipelines and brokers on a 2-core machine, and timing-sensitive media checks
 * must not be starved.
 */
const LIGHT = [
  'test/unit/**/*.test.ts',
  'test/integration/ota-{cli,delta,delta-job,download,launcher,pack,refusals,resume}.test.ts',
  'test/integration/{plan-fuzz,probe,ts-audit,ts-merge}.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    // Tests written with describe.concurrent (ota-agent's boxes) run this many at once.
    maxConcurrency: 8,
    // Our epframer plugin (dist/native, built by `npm run build`) for every GStreamer the
    // tests start, the test process's own binding included (native.ts).
    env: pluginPath === undefined ? {} : { GST_PLUGIN_PATH: pluginPath },
    projects: [
      { extends: true, test: { name: 'light', include: LIGHT, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'media', include: ['test/**/*.test.ts'], exclude: LIGHT, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
