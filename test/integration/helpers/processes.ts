/**
 * Foreign peers for the media integration tests: ffmpeg, ffprobe, srt-live-transmit,
 * gst-launch-1.0 and a multi-caller libsrt listener (srt-hub.py) as real child processes
 * on 127.0.0.1. Every process started here is tracked by a `Processes` owner and killed
 * (by its own pid, SIGKILL) when the test ends, whatever happened; nothing is left behind
 * on failure.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { distPath } from '../../../lib/index.js';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far (for assertion messages). */
  output(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  running(): boolean;
}

/** Owns child processes for one test; `killAll()` in afterEach. */
export class Processes {
  private readonly procs: Proc[] = [];

  spawn(name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Proc {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let out = '';
    const keep = (d: Buffer): void => {
      out += d.toString();
      if (out.length > 200_000) out = out.slice(-100_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (e) => {
        out += `\nspawn error: ${e.message}`;
        resolve({ code: null, signal: null });
      });
    });
    let done = false;
    void exited.then(() => (done = true));
    const proc: Proc = { name, child, exited, output: () => out, running: () => !done };
    this.procs.push(proc);
    return proc;
  }

  /** SIGKILLs every process still running (each by its own pid) and waits for it to go. */
  async killAll(): Promise<void> {
    const left = this.procs.splice(0);
    await Promise.all(
      left.map(async (p) => {
        if (!p.running()) return;
        p.child.kill('SIGKILL');
        await withTimeout(p.exited, 5000, `${p.name} to die after SIGKILL`).catch(() => undefined);
      }),
    );
  }
}

/** Rejects with `timed out waiting for WHAT` unless `p` settles within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/**
 * Polls a condition that has no event (a foreign process binding its UDP port).
 * `abort` ends the wait early with a reason (e.g. the process died).
 */
export async function pollUntil(cond: () => Promise<boolean> | boolean, ms: number, what: string, abort?: () => string | null): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    const why = abort?.();
    if (why) throw new Error(`gave up waiting for ${what}: ${why}`);
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * True when some socket has bound this UDP port (an SRT listener is up), read from
 * /proc/net/udp{,6}. Never by binding the port itself: a probe that binds 127.0.0.1:port,
 * even for a moment, makes a listener starting at that moment fail its own bind
 * ("srt_bind: Connection setup failure"), which is how a relay test once failed.
 */
export function udpPortBound(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    try {
      const lines = readFileSync(table, 'utf8').split('\n').slice(1);
      if (lines.some((l) => l.trim().split(/\s+/)[1]?.endsWith(hex))) return true;
    } catch {
      // no IPv6 table
    }
  }
  return false;
}

/** Waits until `proc` listens on UDP `port`; fails at once if it exits first. */
export async function waitListening(proc: Proc, port: number, ms = 15_000): Promise<void> {
  await pollUntil(async () => udpPortBound(port), ms, `${proc.name} to listen on udp ${port}`, () => (proc.running() ? null : `${proc.name} exited: ${proc.output().slice(-2000)}`));
}

export interface ProbedStream {
  codec_type: string;
  codec_name: string;
  nb_read_frames?: string;
  width?: number;
  height?: number;
}

/** `ffprobe -count_frames` on a file: every stream with its decoded frame count. */
export async function ffprobeStreams(file: string): Promise<ProbedStream[]> {
  const { stdout } = await run(
    'ffprobe',
    ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_type,codec_name,nb_read_frames,width,height', '-of', 'json', file],
    { timeout: 30_000 },
  );
  return (JSON.parse(stdout) as { streams?: ProbedStream[] }).streams ?? [];
}

export const framesOf = (streams: ProbedStream[], codec: string): number => Number(streams.find((s) => s.codec_name === codec)?.nb_read_frames ?? 0);

/** ffmpeg receiving SRT for `seconds` and copying it into an MPEG-TS file. */
export function ffmpegRecord(procs: Processes, name: string, url: string, seconds: number, out: string): Proc {
  return procs.spawn(name, 'ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'warning', '-y', '-i', url, '-t', String(seconds), '-c', 'copy', '-f', 'mpegts', out]);
}

/**
 * ffmpeg as an SRT listener serving a program like a foreign hub: test picture 25 fps
 * (x264, zerolatency, keyframe every 2 s) + 440 Hz tone (Opus) in MPEG-TS, 1316-byte messages.
 */
export function ffmpegProgram(procs: Processes, port: number, opts: { width?: number; height?: number; fps?: number } = {}): Proc {
  const { width = 640, height = 360, fps = 25 } = opts;
  return procs.spawn('ffmpeg program listener', 'ffmpeg', [
    '-nostdin', '-hide_banner', '-loglevel', 'warning',
    '-re', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`,
    '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-c:v', 'libx264', '-tune', 'zerolatency', '-preset', 'ultrafast', '-g', String(fps * 2), '-pix_fmt', 'yuv420p',
    '-c:a', 'libopus', '-b:a', '32k',
    '-f', 'mpegts', `srt://127.0.0.1:${port}?mode=listener&pkt_size=1316`,
  ]);
}

/**
 * An SRT ingest listener like a real hub's: it takes a new caller while the old one is
 * still connected (the newest replaces it, as MediaMTX does with a publisher) and forwards
 * the newest caller's messages to UDP `udpPort`, one datagram each. srt-live-transmit
 * and srtsrc 1.22 serve one caller at a time and only let a SIGKILLed one go after
 * libsrt's ~5 s dead-peer check (see srt-hub.py). libsrt through python3's ctypes: no build.
 * On each accept the UDP port first gets one `SRT_HUB_MARKER` datagram (not MPEG-TS):
 * everything after it comes from the new caller.
 * It listens on a port the system chooses (port 0, bound before it is known, so no other
 * test can take it between a free-port probe and the bind): the process and its SRT port.
 */
export async function startSrtHub(procs: Processes, udpPort: number, ms = 15_000): Promise<{ proc: Proc; port: number }> {
  // From the sources (tests) or from dist/ (the bench): tsc does not copy the script.
  const script = distPath(import.meta.url, '..', 'test', 'integration', 'helpers', 'srt-hub.py');
  const proc = procs.spawn('srt hub (libsrt listener, newest caller wins)', 'python3', [script, '0', String(udpPort)]);
  let port = 0;
  await pollUntil(
    () => ((port = Number(/^listening (\d+) /m.exec(proc.output())?.[1] ?? 0)), port > 0),
    ms,
    `${proc.name} to listen`,
    () => (proc.running() ? null : `${proc.name} exited: ${proc.output().slice(-2000)}`),
  );
  return { proc, port };
}

/** srt-hub.py's MARKER: the first bytes of its new-caller datagram. */
export const SRT_HUB_MARKER = 'SRT-HUB accepted ';

/** Does this ffmpeg build have the encoders the foreign-peer tests need? */
export async function ffmpegHasEncoders(...names: string[]): Promise<string[]> {
  const { stdout } = await run('ffmpeg', ['-hide_banner', '-encoders'], { timeout: 10_000 });
  return names.filter((n) => !new RegExp(`\\s${n}\\s`).test(stdout));
}

/**
 * A launch description as gst-launch-1.0 argv. gst-launch 1.22 does NOT take the whole
 * description as one argument: gst_parse_launchv() backslash-escapes every space outside
 * double quotes in each argument (so a shell-quoted `text="a b"` survives), which turns a
 * single-argument description into one bogus token ("erroneous pipeline: syntax error",
 * measured here). So split where a shell would: at whitespace outside double quotes,
 * keeping the quotes, which the launch parser itself understands.
 */
export function gstLaunchArgs(description: string): string[] {
  const args: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < description.length; i++) {
    const c = description[i]!;
    if (c === '\\' && quoted && i + 1 < description.length) {
      cur += c + description[++i]!;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (!quoted && /\s/.test(c)) {
      if (cur) args.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) throw new Error(`unbalanced double quote in launch description: ${description}`);
  if (cur) args.push(cur);
  return args;
}
