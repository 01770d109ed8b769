/**
 * The machine the benchmark runs on, and the primitives every measurement uses to read
 * it: a monotonic clock shared by all processes, per-process CPU seconds from /proc,
 * percentiles, child-process plumbing. Nothing here loads the GStreamer binding.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

export interface MachineInfo {
  cpuModel: string | null;
  cores: number;
  memoryMb: number;
  os: string;
  kernel: string;
  arch: string;
  virtualization: string | null;
  node: string;
  gstreamer: string | null;
  binding: string | null;
  /** 1/5/15-minute load averages when the bench started: other work on the machine. */
  loadAverageAtStart: number[];
}

function run(cmd: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout) => {
      resolve(err ? (typeof stdout === 'string' && stdout.trim() ? stdout : null) : stdout);
    });
  });
}

async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return null;
  }
}

export async function machineInfo(): Promise<MachineInfo> {
  const [cpuinfo, osRelease, gst, virt] = await Promise.all([
    readText('/proc/cpuinfo'),
    readText('/etc/os-release'),
    run('gst-launch-1.0', ['--version']),
    run('systemd-detect-virt', []),
  ]);
  const cpuModel = cpuinfo?.match(/^(?:model name|Model|Hardware)\s*:\s*(.+)$/m)?.[1]?.trim() ?? os.cpus()[0]?.model ?? null;
  const pretty = osRelease?.match(/^PRETTY_NAME="?([^"\n]*)"?$/m)?.[1] ?? `${os.type()} ${os.release()}`;
  let binding: string | null;
  try {
    const require = createRequire(import.meta.url);
    binding = `gstreamer-superficial ${(require('gstreamer-superficial/package.json') as { version: string }).version}`;
  } catch {
    binding = null;
  }
  const hypervisor = /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo ?? '');
  const virtName = virt?.trim() || null;
  return {
    cpuModel,
    cores: os.cpus().length,
    memoryMb: Math.round(os.totalmem() / 1048576),
    os: pretty,
    kernel: os.release(),
    arch: process.arch,
    virtualization: virtName && virtName !== 'none' ? virtName : hypervisor ? 'hypervisor (unnamed)' : null,
    node: process.version,
    gstreamer: gst?.match(/GStreamer\s+(\d+\.\d+\.\d+)/)?.[1] ?? null,
    binding,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export interface SourceState {
  commit: string | null;
  /** Files of the media/agent sources changed against that commit when the bench ran. */
  changed: string[];
}

/** The git commit the bench ran on, and what was changed against it (null outside a checkout). */
export async function sourceState(): Promise<SourceState | null> {
  // dist/test/bench/machine.js → the repository root is three levels up.
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const head = await run('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  if (head === null) return null;
  const status = (await run('git', ['-C', root, 'status', '--porcelain', '--', 'gst-pipelines', 'device', 'test/bench'])) ?? '';
  return {
    commit: head.trim() || null,
    changed: status
      .split('\n')
      .map((l) => l.slice(3).trim())
      .filter(Boolean),
  };
}

/**
 * Milliseconds on CLOCK_MONOTONIC (process.hrtime). The same clock in every process of
 * this machine, so a time taken in one child can be subtracted from one taken in another.
 */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let clockTicks: number | null = null;
function ticksPerSecond(): number {
  if (clockTicks === null) {
    // CLK_TCK from the auxiliary vector (what getconf CLK_TCK reads); 100 on every Linux we ship on.
    clockTicks = 100;
    try {
      const out = readFileSync('/proc/self/auxv');
      // AT_CLKTCK (17) in the auxiliary vector: 64-bit pairs of (type, value).
      for (let o = 0; o + 16 <= out.length; o += 16) {
        if (out.readBigUInt64LE(o) === 17n) {
          clockTicks = Number(out.readBigUInt64LE(o + 8));
          break;
        }
      }
    } catch {
      // keep 100
    }
  }
  return clockTicks;
}

/** utime + stime of a live process (all its threads) in seconds; null when it is gone. */
export function procCpuSeconds(pid: number): number | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return (utime + stime) / ticksPerSecond();
}

/**
 * CPU seconds of each thread of `pid` so far, keyed `tid` → { name, seconds }: the
 * thread's comm (GStreamer names its streaming threads after the pad, e.g.
 * `queue3:src`; libsrt `SRT:RcvQ:w1`; Node `node`, `libuv-worker`…).
 */
export function procThreadCpu(pid: number): Map<number, { name: string; seconds: number }> {
  const out = new Map<number, { name: string; seconds: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let s: string;
    try {
      s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const seconds = (Number(rest[11]) + Number(rest[12])) / ticksPerSecond();
    if (Number.isFinite(seconds)) out.set(Number(tid), { name, seconds });
  }
  return out;
}

/** Pids whose parent is `ppid` (direct children only). */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === ppid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export async function waitFor(what: string, test: () => boolean, timeoutMs: number, stepMs = 20): Promise<void> {
  const until = monoMs() + timeoutMs;
  while (!test()) {
    if (monoMs() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Nearest-rank percentile of an ascending array; null when empty. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? null;
}

export const round1 = (v: number): number => Math.round(v * 10) / 10;
export const round3 = (v: number): number => Math.round(v * 1000) / 1000;

export function median(values: readonly number[]): number | null {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/**
 * Splits a gst-launch description into argv words the way gst-launch-1.0 rejoins them:
 * it escapes spaces outside double quotes in each word, so a word must not hold an
 * unquoted space and quoted values keep their quotes.
 */
export function launchArgv(description: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < description.length; i++) {
    const c = description[i]!;
    if (c === '"' && description[i - 1] !== '\\') quoted = !quoted;
    if (/\s/.test(c) && !quoted) {
      if (cur) words.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur) words.push(cur);
  return words;
}

const spawned = new Set<ChildProcess>();

/**
 * Remembers a child we started so it is killed if the bench itself ends abruptly
 * (children with an IPC channel also leave on disconnect; gst-launch-1.0 and
 * srt-live-transmit have none).
 */
export function track<T extends ChildProcess>(child: T): T {
  spawned.add(child);
  child.once('exit', () => spawned.delete(child));
  return child;
}

/** Kills every tracked child still running (from an exit or signal handler). */
export function killTracked(): void {
  for (const c of spawned) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  spawned.clear();
}

/** Ends a child we started: `signal`, then SIGKILL after `graceMs`. Resolves on exit. */
export function endChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 2000): Promise<void> {
  // A child that never started (ENOENT) has no pid and will never emit 'exit'.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const giveUp = setTimeout(resolve, graceMs + 2000);
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      clearTimeout(giveUp);
      resolve();
    });
    child.kill(signal);
  });
}

/** A measurement that could not be taken: the bench reports the reason and exits non-zero. */
export class MeasurementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MeasurementError';
  }
}

/**
 * A UDP socket on 127.0.0.1:`port` that notes when the first datagram arrives (the
 * "first media bytes" of the startup and agent benches, forwarded by srt-live-transmit).
 */
export async function firstDatagram(port: number): Promise<{ firstAt: () => number | null; arrival: (timeoutMs: number, error: string) => Promise<number>; close: () => void }> {
  const sock = dgram.createSocket('udp4');
  let firstAt: number | null = null;
  let arrived: (() => void) | null = null;
  sock.on('message', () => {
    if (firstAt === null) {
      firstAt = monoMs();
      arrived?.();
    }
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, '127.0.0.1', () => resolve());
  });
  return {
    firstAt: () => firstAt,
    /** Resolves with the arrival time (monoMs) once a datagram came; rejects with `error` after `timeoutMs`. */
    arrival: (timeoutMs, error) => {
      let timer: NodeJS.Timeout | undefined;
      return new Promise<number>((resolve, reject) => {
        arrived = () => resolve(firstAt!);
        if (firstAt !== null) return resolve(firstAt);
        timer = setTimeout(() => reject(new MeasurementError(error)), timeoutMs);
      }).finally(() => clearTimeout(timer));
    },
    close: () => sock.close(),
  };
}

export { udpPortBound } from '../integration/helpers/processes.js';
