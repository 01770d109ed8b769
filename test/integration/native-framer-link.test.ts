/**
 * The native `epframer` element's link watch (gst-pipelines/native/epframer-link.c):
 * epframer samples the downstream srtsink's stats (watch-ms) and posts an
 * `epframer-link` message when its trigger fires (see epframer-link.h). Real srtsink,
 * real SRT peer (srtsrc), both under gst-launch-1.0; the plugin is built by
 * scripts/build-native.sh into a temporary directory. Counters come from the
 * `epframer-stats` element message the element posts at EOS (`gst-launch-1.0 -m`).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collapseTriggered, type FastSample } from '../../gst-pipelines/adapt/collapse.js';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';
import { SRT_MESSAGE_SIZE } from '../../gst-pipelines/mpegts/packetizer.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let dir = '';
let pluginDir = '';
/** The plugin directory and a registry of our own: the user's registry cache is left alone. */
let env: NodeJS.ProcessEnv = {};

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ep-framer-'));
  pluginDir = path.join(dir, 'plugin');
  await run('bash', [path.join(ROOT, 'scripts/build-native.sh'), pluginDir], { env: { ...process.env, EPFRAMER_WERROR: '1' } });
  env = { ...process.env, GST_PLUGIN_PATH: pluginDir, GST_REGISTRY: path.join(dir, 'registry.bin') };
  const { stdout } = await run('gst-inspect-1.0', ['epframer'], { env });
  expect(stdout).toContain('GstEpFramer');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Stats = Record<string, number>;

interface LinkReading {
  atMs: number;
  rttMs: number | null;
  packets: number;
  bytes: number;
  acks: number;
}
interface LinkMessage {
  reason: string;
  window: LinkReading[];
}
interface SrtRun {
  stats: Stats;
  links: LinkMessage[];
  stdout: string;
  stderr: string;
}

/** A gst-launch-1.0 process; `stop()` sends SIGINT (with -e: EOS first) and waits for its exit. */
function gstProcess(args: string[]): { stdout: () => string; stderr: () => string; started: Promise<void>; stop: (timeoutMs?: number) => Promise<number | null> } {
  const child = spawn('gst-launch-1.0', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let onPlaying: (() => void) | null = null;
  const started = new Promise<void>((resolve, reject) => {
    onPlaying = resolve;
    void exited.then(() => reject(new Error(`gst-launch-1.0 exited early:\n${out.slice(-2000)}\n${err.slice(-2000)}`)));
  });
  started.catch(() => undefined);
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (onPlaying && out.includes('Setting pipeline to PLAYING')) onPlaying();
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return {
    stdout: () => out,
    stderr: () => err,
    started,
    stop: async (timeoutMs = 10_000) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function parseStats(stdout: string): Stats {
  const m = /epframer-stats, ([^;]*);/.exec(stdout);
  if (!m?.[1]) throw new Error(`no epframer-stats message in:\n${stdout.slice(-3000)}`);
  const stats: Stats = {};
  for (const kv of m[1].split(', ')) {
    const f = /^([\w-]+)=\([\w]+\)(\d+)$/.exec(kv);
    if (f?.[1] && f[2]) stats[f[1]] = Number(f[2]);
  }
  return stats;
}


/** The `epframer-link` messages gst-launch-1.0 -m printed (the window string is escaped: `\ `, `\;`). */
function parseLinks(stdout: string): LinkMessage[] {
  const out: LinkMessage[] = [];
  for (const m of stdout.matchAll(/epframer-link, reason=\(string\)(\w+), window=\(string\)"((?:[^"\\]|\\.)*)"/g)) {
    const window = m[2]!.replace(/\\(.)/g, '$1').split(';').map((r): LinkReading => {
      const f = r.split(' ');
      expect(f).toHaveLength(5);
      const n = f.map(Number);
      expect(n.every(Number.isFinite)).toBe(true);
      return { atMs: n[0]!, rttMs: f[1] === '-1' ? null : n[1]!, packets: n[2]!, bytes: n[3]!, acks: n[4]! };
    });
    out.push({ reason: m[1]!, window });
  }
  return out;
}

/** epframer's trigger never fired: its counter says none, and no `epframer-link` message came. */
function expectNoTrigger(run: SrtRun): void {
  expect(run.stats['link-triggers']).toBe(0);
  expect(run.links).toHaveLength(0);
}

/**
 * Live video (30 fps, `kbps`) + audio → epframer `props` → srtsink in `mode` for `ms`, to a
 * real SRT peer (srtsrc; started first when it listens). Stopped with SIGINT (-e: EOS, so
 * epframer-stats is posted).
 */
async function srtRun(port: number, props: string, opts: { kbps: number; ms: number; mode?: 'caller' | 'listener'; received?: string }): Promise<SrtRun> {
  const mode = opts.mode ?? 'caller';
  const sinkUri = mode === 'caller' ? `srt://127.0.0.1:${port}?mode=caller` : `srt://:${port}?mode=listener`;
  const peerUri = mode === 'caller' ? `srt://:${port}?mode=listener` : `srt://127.0.0.1:${port}?mode=caller`;
  const peerSink = opts.received ? `filesink location=${opts.received}` : 'fakesink';
  const sender =
    `videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=${opts.kbps} ! h264parse ! mux.sink_65 mpegtsmux name=mux alignment=0 ! f.video ` +
    `audiotestsrc is-live=true ! opusenc ! amux.sink_66 mpegtsmux name=amux alignment=0 ! f.audio ` +
    `epframer name=f ${props} ! srtsink uri=${sinkUri} latency=40 sync=false`;
  const peerArgs = ['srtsrc', `uri=${peerUri}`, 'latency=40', '!', ...peerSink.split(' ')];
  const senderArgs = ['-e', '-m', ...sender.split(/\s+/).filter(Boolean)];
  let peer: ReturnType<typeof gstProcess> | null = null;
  let send: ReturnType<typeof gstProcess> | null = null;
  try {
    if (mode === 'caller') {
      peer = gstProcess(peerArgs);
      await peer.started;
      send = gstProcess(senderArgs);
      await send.started;
    } else {
      send = gstProcess(senderArgs);
      await send.started;
      await new Promise((r) => setTimeout(r, 300)); // the listening socket is bound in start()
      peer = gstProcess(peerArgs);
      await peer.started;
    }
    await new Promise((r) => setTimeout(r, opts.ms));
    const code = await send.stop();
    const stdout = send.stdout();
    expect(code, stdout.slice(-2000)).toBe(0);
    expect(send.stderr()).not.toMatch(/CRITICAL|WARNING|ERROR/);
    return { stats: parseStats(stdout), links: parseLinks(stdout), stdout, stderr: send.stderr() };
  } finally {
    await send?.stop();
    await peer?.stop();
  }
}

describe('epframer link watch (real srtsink, real SRT peer)', () => {
  /** ~33 packets/s in ~30 bursts: libsrt ACKs nearly every packet (measured ≥ 0.67 ACK/packet over every 150 ms span). */
  const QUIET_KBPS = 100;

  it('takes a reading every watch-ms and posts the window when the queue trigger fires', async () => {
    const port = await freePort();
    // trigger-queue-us=0 with rtt-floor-us=1 (1 µs): the queue trigger fires on every
    // reading whose RTT is above 0.001 ms (always, once `a` exists with ACKs) — with
    // rtt-floor-us=0 the floor is the window's lowest RTT and a reading at that lowest
    // would not fire, which is not deterministic. trigger-ack-rate=0: the ACK trigger
    // never fires, so every message is the queue trigger's.
    const run = await srtRun(port, 'watch-ms=100 trigger-queue-us=0 rtt-floor-us=1 trigger-ack-rate=0', { kbps: QUIET_KBPS, ms: 3500 });
    expect(run.stats['link-readings']).toBeGreaterThanOrEqual(20);
    expect(run.stats['link-triggers']).toBeGreaterThanOrEqual(1);
    expect(run.links.length).toBe(run.stats['link-triggers']);
    // Every reading from the first one 150 ms after ACKs arrived fires: all but a few.
    expect(run.links.length).toBeGreaterThanOrEqual(run.stats['link-readings']! - 6);
    expect(run.stats['continuity-errors']).toBe(0);
    for (const l of run.links) {
      expect(l.reason).toBe('queue');
      expect(l.window.length).toBeGreaterThanOrEqual(2);
      // At most watch-window-ms (1200) of history: ~12 readings.
      expect(l.window.length).toBeLessThanOrEqual(14);
      const b = l.window.at(-1)!;
      expect(b.rttMs).not.toBeNull();
      expect(b.rttMs!).toBeGreaterThan(0.001);
      expect(b.atMs - l.window[0]!.atMs).toBeLessThanOrEqual(1200 + 50);
      // The trigger's `a`: a reading >= 150 ms older, with ACKs.
      const a = [...l.window].reverse().find((w) => b.atMs - w.atMs >= 140);
      expect(a?.acks).toBeGreaterThan(0);
      for (let i = 1; i < l.window.length; i++) {
        const [p, w] = [l.window[i - 1]!, l.window[i]!];
        expect(w.atMs - p.atMs).toBeGreaterThanOrEqual(90);
        expect(w.packets).toBeGreaterThanOrEqual(p.packets);
        expect(w.bytes).toBeGreaterThanOrEqual(p.bytes);
        expect(w.acks).toBeGreaterThanOrEqual(p.acks);
      }
    }
    // The windows move on: later messages end later, and the last one has seen traffic.
    const ends = run.links.map((l) => l.window.at(-1)!.atMs);
    ends.forEach((t, i) => i > 0 && expect(t).toBeGreaterThan(ends[i - 1]!));
    const last = run.links.at(-1)!.window.at(-1)!;
    expect(last.packets).toBeGreaterThan(50);
    expect(last.bytes).toBeGreaterThan(last.packets * 188);
  }, 30_000);

  it('the ACK trigger: ACKs under trigger-ack-permille of the packets sent (2 Mbit/s of bursts on loopback)', async () => {
    const port = await freePort();
    // x264's default 2 Mbit/s: ~200 packets/s in 30 bursts a second; libsrt ACKs about
    // once per burst (measured 0.12–0.27 ACK/packet). With trigger-ack-rate=1000 and
    // trigger-ack-permille=1000 the ACK trigger fires whenever fewer ACKs than packets came.
    const run = await srtRun(port, 'watch-ms=100 trigger-ack-rate=1000 trigger-ack-permille=1000', { kbps: 2048, ms: 3500 });
    expect(run.stats['link-readings']).toBeGreaterThanOrEqual(20);
    expect(run.links.length).toBe(run.stats['link-triggers']);
    expect(run.links.length).toBeGreaterThanOrEqual(run.stats['link-readings']! - 8);
    for (const l of run.links) {
      expect(l.reason).toBe('ack');
      const b = l.window.at(-1)!;
      const a = [...l.window].reverse().find((w) => b.atMs - w.atMs >= 140)!;
      expect(a.acks).toBeGreaterThan(0);
      const dt = (b.atMs - a.atMs) / 1000;
      expect((b.packets - a.packets) / dt).toBeGreaterThanOrEqual(20);
      expect(b.acks - a.acks).toBeLessThan(b.packets - a.packets);
    }
  }, 30_000);

  it("trigger-thin-ms: readings every 50 ms, the trigger's older reading taken from the thinned window (its TypeScript reference agrees)", async () => {
    const port = await freePort();
    // As in the queue test above, every reading fires once `a` exists — but `a` must now
    // be at least trigger-thin-ms (1000) older than the newest reading: the window thinned
    // from the newest back to readings 1000 ms apart has no younger one. Without the
    // thinning, `a` exists 150 ms after the first ACK (the queue test).
    const props = 'watch-ms=50 trigger-span-ms=150 trigger-thin-ms=1000 trigger-queue-us=0 rtt-floor-us=1 trigger-ack-rate=0';
    const run = await srtRun(port, props, { kbps: QUIET_KBPS, ms: 3500 });
    expect(run.stats['link-readings']).toBeGreaterThanOrEqual(40);
    expect(run.links.length).toBe(run.stats['link-triggers']);
    expect(run.links.length).toBeGreaterThanOrEqual(10);
    // The first trigger comes at the first reading ≥ 1000 ms after the first one with
    // ACKs (that one is then the newest ≥ 1000 ms older, i.e. `a` in the chain thinned to
    // 1000 ms); without the thinning it would come ~150 ms after it.
    const first = run.links[0]!.window;
    const acked = first.find((w) => w.acks > 0)!;
    expect(first.at(-1)!.atMs - acked.atMs).toBeGreaterThanOrEqual(1000);
    expect(first.at(-1)!.atMs - acked.atMs).toBeLessThan(1000 + 200);
    const t = { spanMs: 150, thinMs: 1000, queueUs: 0, minSendRate: 20, maxAckRate: 0, ackPermille: 500 };
    for (const l of run.links) {
      const b = l.window.at(-1)!;
      expect(b.atMs - l.window[0]!.atMs).toBeGreaterThanOrEqual(1000);
      for (let i = 1; i < l.window.length; i++) expect(l.window[i]!.atMs - l.window[i - 1]!.atMs).toBeLessThan(90);
      const window: FastSample[] = l.window.map((w) => ({ atMs: w.atMs, rttMs: w.rttMs, packetsSent: w.packets, bytesSent: w.bytes, acksReceived: w.acks }));
      expect(collapseTriggered(window, 0.001, t), JSON.stringify(l.window)).toBe(true);
    }
  }, 30_000);

  it('a quiet link with the default thresholds: readings, no trigger, no message', async () => {
    const port = await freePort();
    // Not x264's default 2 Mbit/s: sent in 30 bursts a second, those packets get about one
    // ACK per burst on loopback (28–47 ACKs/s for ~200 packets/s, measured), which IS the
    // ACK trigger's condition (fewer than 40 ACKs/s and than half the packets). At
    // QUIET_KBPS libsrt ACKs nearly every packet: the trigger must stay quiet.
    const run = await srtRun(port, 'watch-ms=100', { kbps: QUIET_KBPS, ms: 3500 });
    expect(run.stats['link-readings']).toBeGreaterThanOrEqual(20);
    expectNoTrigger(run);
    expect(run.stdout).not.toContain('epframer-link');
  }, 30_000);

  it('watch-ms=0 (the default) takes no reading', async () => {
    const port = await freePort();
    const run = await srtRun(port, 'trigger-queue-us=0 rtt-floor-us=1', { kbps: QUIET_KBPS, ms: 2000 });
    expect(run.stats['messages-out']).toBeGreaterThan(0);
    expect(run.stats['link-readings']).toBe(0);
    expectNoTrigger(run);
  }, 30_000);

  it('srtsink in listener mode (counters nested in `callers`): no reading, no crash', async () => {
    const port = await freePort();
    const received = path.join(dir, 'listener-received.ts');
    const run = await srtRun(port, 'watch-ms=100 trigger-queue-us=0 rtt-floor-us=1', { kbps: QUIET_KBPS, ms: 2500, mode: 'listener', received });
    // The caller was connected and received the stream while the stats were polled.
    expect((await readFile(received)).length).toBeGreaterThan(10 * SRT_MESSAGE_SIZE);
    expect(run.stats['messages-out']).toBeGreaterThan(10);
    expect(run.stats['link-readings']).toBe(0);
    expectNoTrigger(run);
  }, 30_000);
});
