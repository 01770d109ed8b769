import { defineConfig } from 'vitest/config';
import { withNativePlugins } from './gst-pipelines/native/plugin.js';

const pluginPath = withNativePlugins(process.env).GST_PLUGIN_PATH;

/**
 * Files whose assertions no CPU contention can break — pure unit tests, the update tests
 * (files, HTTP servers, tar, launchers and agents whose every wait is a generous hang
 * guard), the broker-only agent tests — run first, two at a time (three took as long on
 * 2 cores and starved the timing of systemd-agent's watchdog and ota-agent's trials). Everything else runs
 * after them, one file at a time: real GStreamer media whose checks (frames that arrived,
 * audio that was lost, a link that adapted) must not be starved on a 2-core machine.
 */
const LIGHT = [
  'test/unit/**/*.test.ts',
  // ota-pack copies and prunes node_modules twice: CPU and disk that slow its neighbours
  // fourfold; alone, in the media group, it takes ~12 s.
  'test/integration/ota-{agent,cli,delta,delta-job,download,launcher,refusals,resume}.test.ts',
  'test/integration/{plan-fuzz,probe,ts-audit,ts-merge}.test.ts',
  'test/integration/{broker-queue,health,join-refusals,mqtt-session-broker,power-cut,selftest-concurrency}.test.ts',
  // ep run and SIGTERM: its bounds are the agent's own stop bound, checked with hang guards.
  'test/integration/agent-shutdown.test.ts',
  // Provisioning: files, the compiled CLI, Mosquitto, an agent with no media session (every
  // wait a hang guard); install.sh into a temp root; units under a real systemd (its
  // watchdogs: 1 s for the stand-in probes, 6 s for the real agent, whose pings come every 3 s).
  'test/integration/{provisioning,unprovisioned,install,systemd-real,systemd-agent}.test.ts',
  // The field on an agent whose media worker is the fake (LEDs in a temp sysfs, a scripted
  // button line, real time with hang guards only).
  'test/integration/field.test.ts',
  // The CLI against a real control socket, files, a scripted journalctl and srt-live-transmit:
  // no media pipeline; every wait a hang guard (the SRT check's own window is 5 s of silence).
  'test/integration/cli-field.test.ts',
  // ep run under a flood of hostile commands: its checks are memory (RSS flat between two
  // phases, 40 MB apart) and exactly one reply each, never a time.
  'test/integration/flood.test.ts',
  // The status page: a real HTTP/ws server and headless chromium, every wait a hang guard.
  'test/integration/status-page.test.ts',
  // The status page's server in-process on an ephemeral port: fuzzed HTTP/ws input (one hang
  // guard per input) and the methods it refuses; docs/fuzzing.md.
  'test/integration/{fuzz-status-page,status-page-methods}.test.ts',
  // MQTT link faults through a TCP relay (half-open, reset) on an agent whose media worker is
  // the fake, and the relay itself: every wait a hang guard; the one bound (a half-open link
  // noticed within 2 × keepalive) is a protocol timer with 2.5 s of slack, not CPU work.
  'test/integration/{net-mqtt,tcp-relay}.test.ts',
];

/**
 * Media files whose every check is a count, a state or bytes (a reply, a retained state,
 * a PNG written, frames that arrived at all) with generous hang guards, never a rate, a
 * freeze or a loss: two at a time, after the light group and before the one-at-a-time
 * media files (their real pipelines at test sizes fit two on 2 cores).
 */
const PAIRED = [
  'test/integration/{agent-commands,agent-brokers,cli,media-peers,plans-run}.test.ts',
  // ep fleet against 200 simulated boxes (control planes in this process, media off): every check a state or a list.
  'test/integration/fleet.test.ts',
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
      { extends: true, test: { name: 'paired', include: PAIRED, maxWorkers: 2, sequence: { groupOrder: 1 } } },
      { extends: true, test: { name: 'media', include: ['test/**/*.test.ts'], exclude: [...LIGHT, ...PAIRED], fileParallelism: false, sequence: { groupOrder: 2 } } },
    ],
  },
});
