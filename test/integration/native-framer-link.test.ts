/**
 * The native `epframer` element's link watch (gst-pipelines/native/epframer-link.c):
 * epframer samples the downstream srtsink's stats (watch-ms) and posts an
 * `epframer-link` message when its trigger fires (see epframer-link.h). Real srtsink,
 * real SRT peer (srtsrc), both under gst-launch-1.0; the plugin is built by
 * scripts/build-native.sh into a temporary directory. Counters come from the
 * `epframer-stats` element message the element posts at EOS (`gst-launch-1.0 -m`).
 *
 * What is asserted is what the element's logic makes of the readings it took, whatever
 * the machine's speed (expectLinkWatch): its windows, and its trigger recomputed by the
 * TypeScript reference (collapseTriggered) on the very readings it posted. When readings
 * are taken (a reading comes with the first buffer after watch-ms, later when the
 * streaming thread is starved) and whether a starved link looks like an ACK stall are
 * load, not bugs: the reading spacing and the first trigger's delay are the bench's
 * (test/bench/media-framer.ts). Waits are hang guards (HANG_GUARD_MS), not limits.
 */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { collapseTriggered, type CollapseTrigger, type FastSample } from '../../gst-pipelines/adapt/collapse.js';
import { freePort } from '../../gst-pipelines/hub/local-hub.js';
import { SRT_MESSAGE_SIZE } from '../../gst-pipelines/mpegts/packetizer.js';
import { pollUntil, udpPortBound } from './helpers/processes.js';
import { epframerBuild, parseStats, type Stats } from './helpers/epframer.js';

/** A wait's deadline: only so that a hang fails saying what was awaited. */
const HANG_GUARD_MS = 30_000;
/** epframer-link.h's defaults as collapseTriggered takes them (trigger-queue-us G_MAXUINT: no queue trigger). */
const DEFAULTS: CollapseTrigger = { spanMs: 150, thinMs: 0, queueUs: Infinity, minSendRate: 20, maxAckRate: 40, ackPermille: 500 };
/** watch-window-ms's default: the ring keeps the readings of the last 1.2 s. */
const WATCH_WINDOW_MS = 1200;
/**
 * The ring is trimmed by the monotonic time of a reading, the window carries its
 * wall-clock ms, read right after it: a thread descheduled between the two reads (or a
 * wall-clock step) shifts one against the other. Slack for that, far below what a
 * window that is not trimmed would show (its whole run).
 */
const CLOCK_SLACK_MS = 100;

const build = epframerBuild();
const env = (): NodeJS.ProcessEnv => build.env;

interface LinkReading {
  atMs: number;
  rttMs: number | null;
  packets: number;
  bytes: number;
  acks: number;
  /** packets-sent-lost: packets the peer reported lost. */
  lost: number;
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
  /** The sender's life, spawn to exit (ms, monotonic): no reading can fall outside it. */
  elapsedMs: number;
  /** What the SRT peer wrote to its file. */
  receivedBytes: number;
}

interface GstProcess {
  stdout: () => string;
  stderr: () => string;
  started: Promise<void>;
  /** Why it is gone, while it should be running (null: running). */
  gone: () => string | null;
  elapsedMs: () => number;
  stop: (timeoutMs?: number) => Promise<number | null>;
}

/** A gst-launch-1.0 process; `stop()` sends SIGINT (with -e: EOS first) and waits for its exit. */
function gstProcess(args: string[]): GstProcess {
  const t0 = performance.now();
  const child = spawn('gst-launch-1.0', args, { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let endedAt: number | null = null;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      endedAt = performance.now();
      resolve(code);
    }),
  );
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
    gone: () => (endedAt === null ? null : `gst-launch-1.0 ${args.slice(0, 3).join(' ')}… exited:\n${err.slice(-1500)}`),
    elapsedMs: () => (endedAt ?? performance.now()) - t0,
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

const fileSize = async (f: string): Promise<number> => (await stat(f).catch(() => null))?.size ?? 0;


/** The `epframer-link` messages gst-launch-1.0 -m printed (the window string is escaped: `\ `, `\;`). */
function parseLinks(stdout: string): LinkMessage[] {
  const out: LinkMessage[] = [];
  for (const m of stdout.matchAll(/epframer-link, reason=\(string\)(\w+), window=\(string\)"((?:[^"\\]|\\.)*)"/g)) {
    const window = m[2]!.replace(/\\(.)/g, '$1').split(';').map((r): LinkReading => {
      const f = r.split(' ');
      expect(f).toHaveLength(6);
      const n = f.map(Number);
      expect(n.every(Number.isFinite)).toBe(true);
      return { atMs: n[0]!, rttMs: f[1] === '-1' ? null : n[1]!, packets: n[2]!, bytes: n[3]!, acks: n[4]!, lost: n[5]! };
    });
    out.push({ reason: m[1]!, window });
  }
  return out;
}

interface RunOptions {
  kbps: number;
  /** How long the run goes on once the peer receives the stream. */
  ms: number;
  mode?: 'caller' | 'listener';
  /** Then it goes on until this (hang guard: HANG_GUARD_MS). */
  until?: { what: string; done: (now: { links: LinkMessage[]; receivedBytes: number }) => boolean };
}

/**
 * Live video (30 fps, `kbps`) + audio → epframer `props` → srtsink in `mode`, to a real
 * SRT peer (srtsrc → a file; started first when it listens). Once the peer receives
 * the stream, `ms` more, then until `until`; stopped with SIGINT (-e: EOS, so
 * epframer-stats is posted). A slow start or a slow run is waited for, not failed.
 */
async function srtRun(port: number, props: string, opts: RunOptions): Promise<SrtRun> {
  const mode = opts.mode ?? 'caller';
  const sinkUri = mode === 'caller' ? `srt://127.0.0.1:${port}?mode=caller` : `srt://:${port}?mode=listener`;
  const peerUri = mode === 'caller' ? `srt://:${port}?mode=listener` : `srt://127.0.0.1:${port}?mode=caller`;
  const received = path.join(build.dir, `received-${port}.ts`);
  const sender =
    `videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=${opts.kbps} ! h264parse ! mux.sink_65 mpegtsmux name=mux alignment=0 ! f.video ` +
    `audiotestsrc is-live=true ! opusenc ! amux.sink_66 mpegtsmux name=amux alignment=0 ! f.audio ` +
    `epframer name=f ${props} ! srtsink uri=${sinkUri} latency=40 sync=false`;
  const peerArgs = ['srtsrc', `uri=${peerUri}`, 'latency=40', '!', 'filesink', `location=${received}`, 'buffer-mode=unbuffered'];
  const senderArgs = ['-e', '-m', ...sender.split(/\s+/).filter(Boolean)];
  let peer: GstProcess | null = null;
  let send: GstProcess | null = null;
  const gone = (): string | null => send?.gone() ?? peer?.gone() ?? null;
  const listening = (p: GstProcess): Promise<void> => pollUntil(() => udpPortBound(port), HANG_GUARD_MS, `an SRT listener on port ${port}`, () => p.gone());
  try {
    if (mode === 'caller') {
      peer = gstProcess(peerArgs);
      await peer.started;
      await listening(peer);
      send = gstProcess(senderArgs);
      await send.started;
    } else {
      send = gstProcess(senderArgs);
      await send.started;
      await listening(send);
      peer = gstProcess(peerArgs);
      await peer.started;
    }
    await pollUntil(async () => (await fileSize(received)) >= SRT_MESSAGE_SIZE, HANG_GUARD_MS, 'the SRT peer receiving the stream', gone);
    await new Promise((r) => setTimeout(r, opts.ms));
    const until = opts.until;
    const s = send;
    if (until) await pollUntil(async () => until.done({ links: parseLinks(s.stdout()), receivedBytes: await fileSize(received) }), HANG_GUARD_MS, until.what, gone);
    const code = await send.stop();
    const stdout = send.stdout();
    expect(code, stdout.slice(-2000)).toBe(0);
    expect(send.stderr()).not.toMatch(/CRITICAL|WARNING|ERROR/);
    return { stats: parseStats(stdout), links: parseLinks(stdout), stdout, stderr: send.stderr(), elapsedMs: send.elapsedMs(), receivedBytes: await fileSize(received) };
  } finally {
    await send?.stop();
    await peer?.stop();
  }
}

const fast = (w: LinkReading[]): FastSample[] => w.map((r) => ({ atMs: r.atMs, rttMs: r.rttMs, packetsSent: r.packets, bytesSent: r.bytes, acksReceived: r.acks, lostPackets: r.lost }));
const keyOf = (r: LinkReading): string => `${r.atMs} ${r.rttMs} ${r.packets} ${r.bytes} ${r.acks} ${r.lost}`;
/** Reading order: time, then the counters (two readings can share a millisecond). */
const order = (x: LinkReading, y: LinkReading): number => x.atMs - y.atMs || x.packets - y.packets || x.acks - y.acks || x.bytes - y.bytes;
/** From the oldest reading posted to the newest. */
const spanOf = (links: LinkMessage[]): number => (links.length ? Math.max(...links.map((l) => l.window.at(-1)!.atMs)) - Math.min(...links.map((l) => l.window[0]!.atMs)) : 0);

/**
 * What a run's link messages must show whatever the machine's speed. Returns them in
 * reading order (two streaming threads sample in turn and each posts after handing the
 * ring back, so a message can overtake the one before: the order posted is scheduling).
 * - One message per trigger counted, none twice for one reading.
 * - Each window is the element's ring: oldest first, times and counters never going
 *   back; exactly the readings posted anywhere between its first and its newest (not
 *   thinned, nothing skipped); at most watch-window-ms of them by the element's clock,
 *   and trimmed no further (the reading posted before its first is older than that).
 * - The trigger is its TypeScript reference's on the very readings posted: each window
 *   one collapseTriggered fires on, for the same reason; and every reading it fires on
 *   judged on the readings before it in a window (a tail of the ring the element had:
 *   the reference can miss a trigger there, never invent one) ended a window. None
 *   invented, none missed.
 * - link-readings: at least the readings posted, at most one per watch-ms of the
 *   sender's life (a reading is taken when watch-ms has passed since the last one).
 */
function expectLinkWatch(r: SrtRun, o: { watchMs: number; trigger: CollapseTrigger; floorMs: number | null }): LinkMessage[] {
  expect(r.links).toHaveLength(r.stats['link-triggers']!);
  expect(r.stdout.split('epframer-link, ').length - 1, 'every epframer-link message parsed').toBe(r.links.length);
  const ends = new Set(r.links.map((l) => keyOf(l.window.at(-1)!)));
  expect(ends.size).toBe(r.links.length);
  const all = [...new Map(r.links.flatMap((l) => l.window.map((w) => [keyOf(w), w] as const))).values()].sort(order);
  const at = new Map(all.map((w, i) => [keyOf(w), i]));
  for (const { window: w } of r.links) {
    const [first, b] = [w[0]!, w.at(-1)!];
    for (const [i, x] of w.entries()) {
      const p = w[i - 1];
      if (!p) continue;
      expect(x.atMs).toBeGreaterThanOrEqual(p.atMs);
      expect(x.packets).toBeGreaterThanOrEqual(p.packets);
      expect(x.bytes).toBeGreaterThanOrEqual(p.bytes);
      expect(x.acks).toBeGreaterThanOrEqual(p.acks);
      expect(x.lost).toBeGreaterThanOrEqual(p.lost);
    }
    const from = at.get(keyOf(first))!;
    expect(all.slice(from, at.get(keyOf(b))! + 1).map(keyOf), 'a window is every reading between its ends').toEqual(w.map(keyOf));
    expect(b.atMs - first.atMs).toBeLessThanOrEqual(WATCH_WINDOW_MS + CLOCK_SLACK_MS);
    const before = all[from - 1];
    if (before && before.packets <= first.packets && before.acks <= first.acks) expect(b.atMs - before.atMs).toBeGreaterThan(WATCH_WINDOW_MS - CLOCK_SLACK_MS);
  }
  for (const l of r.links) {
    const w = fast(l.window);
    expect(collapseTriggered(w, o.floorMs, o.trigger), `the reference fires on ${JSON.stringify(l.window)}`).toBe(true);
    expect(l.reason).toBe(collapseTriggered(w, o.floorMs, { ...o.trigger, queueUs: Infinity }) ? 'ack' : 'queue');
    for (let i = 2; i < w.length; i++) {
      const x = l.window[i - 1]!;
      if (collapseTriggered(w.slice(0, i), o.floorMs, o.trigger)) expect(ends.has(keyOf(x)), `the reference fires at ${keyOf(x)} (in ${JSON.stringify(l.window)}), the element did not`).toBe(true);
    }
  }
  expect(r.stats['link-readings']).toBeGreaterThanOrEqual(all.length);
  expect(r.stats['link-readings']).toBeLessThanOrEqual(1 + Math.floor(r.elapsedMs / o.watchMs));
  return [...r.links].sort((x, y) => order(x.window.at(-1)!, y.window.at(-1)!));
}

/** epframer's trigger never fired: its counter says none, and no `epframer-link` message came. */
function expectNoTrigger(run: SrtRun): void {
  expect(run.stats['link-triggers']).toBe(0);
  expect(run.links).toHaveLength(0);
  expect(run.stdout).not.toContain('epframer-link');
}

describe('epframer link watch (real srtsink, real SRT peer)', () => {
  /** ~33 packets/s in ~30 bursts: libsrt ACKs nearly every packet (measured ≥ 0.67 ACK/packet over every 150 ms span). */
  const QUIET_KBPS = 100;

  it('takes a reading every watch-ms and posts the window when the queue trigger fires', async () => {
    const port = await freePort();
    // trigger-queue-us=0 with rtt-floor-us=1 (1 µs): the queue trigger fires on every
    // reading whose RTT is above 0.001 ms (always, once `a` exists with ACKs) — with
    // rtt-floor-us=0 the floor is the window's lowest RTT and a reading at that lowest
    // would not fire. trigger-ack-rate=0: the ACK trigger never fires, so every message
    // is the queue trigger's. Run until the windows cover 2 s: the ring was trimmed.
    const until = { what: 'windows over 2 s of readings', done: ({ links }: { links: LinkMessage[] }) => spanOf(links) >= 2000 };
    const run = await srtRun(port, 'watch-ms=100 trigger-queue-us=0 rtt-floor-us=1 trigger-ack-rate=0', { kbps: QUIET_KBPS, ms: 1000, until });
    const links = expectLinkWatch(run, { watchMs: 100, trigger: { ...DEFAULTS, queueUs: 0, maxAckRate: 0 }, floorMs: 0.001 });
    expect(run.stats['continuity-errors']).toBe(0);
    for (const l of links) expect(l.reason).toBe('queue');
    const last = links.at(-1)!.window.at(-1)!;
    expect(last.packets).toBeGreaterThan(0);
    expect(last.bytes).toBeGreaterThan(last.packets * 188);
  }, 60_000);

  it('the ACK trigger: ACKs under trigger-ack-permille of the packets sent (2 Mbit/s of bursts on loopback)', async () => {
    const port = await freePort();
    // x264's default 2 Mbit/s: ~200 packets/s in 30 bursts a second; libsrt ACKs about
    // once per burst (measured 0.12–0.27 ACK/packet). With trigger-ack-rate=1000 and
    // trigger-ack-permille=1000 the ACK trigger fires whenever fewer ACKs than packets came.
    const until = { what: '5 epframer-link messages', done: ({ links }: { links: LinkMessage[] }) => links.length >= 5 };
    const run = await srtRun(port, 'watch-ms=100 trigger-ack-rate=1000 trigger-ack-permille=1000', { kbps: 2048, ms: 1000, until });
    const links = expectLinkWatch(run, { watchMs: 100, trigger: { ...DEFAULTS, maxAckRate: 1000, ackPermille: 1000 }, floorMs: null });
    for (const l of links) expect(l.reason).toBe('ack');
  }, 60_000);

  it("trigger-thin-ms: readings every 50 ms, the trigger's older reading taken from the thinned window (its TypeScript reference agrees)", async () => {
    const port = await freePort();
    // As in the queue test above, every reading fires once `a` exists — but `a` must now
    // be at least trigger-thin-ms (1000) older than the newest reading: the window thinned
    // from the newest back to readings 1000 ms apart has no younger one. Without the
    // thinning, `a` exists 150 ms after the first ACK (the queue test). The windows hold
    // the raw readings (expectLinkWatch: every reading between a window's ends).
    const props = 'watch-ms=50 trigger-span-ms=150 trigger-thin-ms=1000 trigger-queue-us=0 rtt-floor-us=1 trigger-ack-rate=0';
    const until = { what: '10 epframer-link messages', done: ({ links }: { links: LinkMessage[] }) => links.length >= 10 };
    const run = await srtRun(port, props, { kbps: QUIET_KBPS, ms: 1000, until });
    const t = { ...DEFAULTS, thinMs: 1000, queueUs: 0, maxAckRate: 0 };
    const links = expectLinkWatch(run, { watchMs: 50, trigger: t, floorMs: 0.001 });
    // The first trigger came at the first reading ≥ 1000 ms after one with ACKs (that one
    // is then the newest ≥ 1000 ms older, `a` in the chain thinned to 1000 ms), however
    // late that reading was taken: expectLinkWatch found no earlier reading its reference
    // fires on. Without the thinning it would come ~150 ms after it.
    const first = links[0]!.window;
    const acked = first.find((w) => w.acks > 0)!;
    expect(first.at(-1)!.atMs - acked.atMs).toBeGreaterThanOrEqual(1000);
    for (const l of links) expect(l.window.at(-1)!.atMs - l.window[0]!.atMs).toBeGreaterThanOrEqual(1000);
  }, 60_000);

  it('a quiet link with the default thresholds: readings, and a trigger only on readings its reference fires on', async () => {
    const port = await freePort();
    // Not x264's default 2 Mbit/s: sent in 30 bursts a second, those packets get about one
    // ACK per burst on loopback (28–47 ACKs/s for ~200 packets/s, measured), which IS the
    // ACK trigger's condition (fewer than 40 ACKs/s and than half the packets). At
    // QUIET_KBPS libsrt ACKs nearly every packet and the trigger stays quiet — on a quiet
    // machine (the bench's media.framerQuietTriggers, goal 0). A starved sender or receiver
    // looks like an ACK stall, and the trigger only wakes the worker's own check: a
    // window here must be one its reference fires on, with the readings to show it.
    const run = await srtRun(port, 'watch-ms=100', { kbps: QUIET_KBPS, ms: 3500 });
    expect(run.stats['link-readings']).toBeGreaterThan(0);
    for (const l of expectLinkWatch(run, { watchMs: 100, trigger: DEFAULTS, floorMs: null })) expect(l.reason).toBe('ack');
  }, 60_000);

  it('watch-ms=0 (the default) takes no reading', async () => {
    const port = await freePort();
    const run = await srtRun(port, 'trigger-queue-us=0 rtt-floor-us=1', { kbps: QUIET_KBPS, ms: 2000 });
    expect(run.stats['messages-out']).toBeGreaterThan(0);
    expect(run.stats['link-readings']).toBe(0);
    expectNoTrigger(run);
  }, 60_000);

  it('srtsink in listener mode (counters nested in `callers`): no reading, no crash', async () => {
    const port = await freePort();
    // The caller was connected and received the stream while the stats were polled.
    const until = { what: '10 messages at the caller', done: ({ receivedBytes }: { receivedBytes: number }) => receivedBytes >= 10 * SRT_MESSAGE_SIZE };
    const run = await srtRun(port, 'watch-ms=100 trigger-queue-us=0 rtt-floor-us=1', { kbps: QUIET_KBPS, ms: 1000, mode: 'listener', until });
    expect(run.stats['messages-out']! * SRT_MESSAGE_SIZE).toBeGreaterThanOrEqual(run.receivedBytes);
    expect(run.stats['link-readings']).toBe(0);
    expectNoTrigger(run);
  }, 60_000);
});
