/**
 * What this box has, found at run time: GStreamer elements, board, cameras, displays,
 * audio devices. Nothing is assumed from the model name (the v4l2 codec elements only
 * register when the kernel device exists). Every file or command that is missing gives
 * an empty list or null; `probe()` never throws.
 *
 * Measured on the development machine (Debian 12, GStreamer 1.22, 2-core x64 VM, no
 * cameras/DRM/ALSA): a whole `probe()` takes 45–55 ms, of which the single
 * `gst-inspect-1.0` listing is ≈31 ms. Checking the 32 elements one
 * `gst-inspect-1.0 NAME` at a time took ≈1.0 s — hence the one-listing fast path.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { hostPaths } from '../../lib/index.js';
import { withNativePlugins } from '../native/index.js';
import type { HostPaths } from '../../lib/index.js';
import {
  boardKind,
  cleanModel,
  cpuModelName,
  isCaptureCamera,
  isDisplayConnector,
  naturalCompare,
  parseAsoundPcm,
  parseGstInspectList,
  parseGstVersion,
  parseLibcameraList,
  parseV4l2Ctl,
  preferredMode,
} from './parse.js';
import type { BoardInfo, CameraInfo, Capabilities, DisplayInfo } from '../types.js';
import { DECODER_PREFERENCE, ENCODER_PREFERENCE, pickDecoder, pickEncoder } from '../plan/index.js';
export { DECODER_PREFERENCE, ENCODER_PREFERENCE, pickDecoder, pickEncoder };

export interface CommandResult {
  /** Exit status; null when the binary is missing, timed out or died on a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
}

export type RunCommand = (cmd: string, args: string[], timeoutMs: number) => Promise<CommandResult>;

export interface ProbeDeps {
  paths: HostPaths;
  runCommand: RunCommand;
  env: NodeJS.ProcessEnv;
  arch: string;
}

/** Every element the planner may use; `Capabilities.elements` has exactly these keys. */
export const PROBE_ELEMENTS = [
  'v4l2h264enc', 'v4l2h264dec', 'vah264enc', 'vah264dec', 'x264enc', 'openh264enc',
  'avdec_h264', 'openh264dec', 'libcamerasrc', 'v4l2src', 'kmssink', 'glimagesink',
  'autovideosink', 'fakesink', 'alsasrc', 'alsasink', 'pulsesrc', 'pulsesink',
  'autoaudiosrc', 'autoaudiosink', 'webrtcdsp', 'webrtcechoprobe', 'opusenc', 'opusdec',
  'srtsink', 'srtsrc', 'mpegtsmux', 'tsdemux', 'h264parse', 'level', 'pngenc', 'textoverlay',
  // ours (native/plugin.ts): frames the send stream into SRT messages inside GStreamer
  'epframer',
] as const;

/** The same list under the name the brief asked for. */
export const exportedElementList: readonly string[] = PROBE_ELEMENTS;

/** Preference order: hardware first, then software. */
const HARDWARE = new Set<string>(['v4l2h264enc', 'vah264enc', 'v4l2h264dec', 'vah264dec']);

/** Timeouts: the first gst-inspect after an upgrade rebuilds the registry (seconds on a Pi). */
const GST_LIST_TIMEOUT_MS = 60_000;
const SHORT_TIMEOUT_MS = 10_000;

/**
 * child_process.execFile that never rejects. Runs with LC_ALL=C so the output we parse
 * is not translated.
 */
export function execRunCommand(env: NodeJS.ProcessEnv = process.env): RunCommand {
  return (cmd, args, timeoutMs) =>
    new Promise((resolve) => {
      try {
        execFile(
          cmd,
          args,
          { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8', env: { ...withNativePlugins(env), LC_ALL: 'C' } },
          (err, stdout, stderr) => {
            let code: number | null = 0;
            if (err) code = typeof err.code === 'number' && !err.killed ? err.code : null;
            resolve({ code, stdout: String(stdout ?? ''), stderr: String(stderr ?? '') });
          },
        );
      } catch (e) {
        resolve({ code: null, stdout: '', stderr: e instanceof Error ? e.message : String(e) });
      }
    });
}

async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return null;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort(naturalCompare);
  } catch {
    return [];
  }
}

async function probeGStreamer(run: RunCommand): Promise<{ version: string | null; elements: Record<string, boolean> }> {
  const [ver, list] = await Promise.all([
    run('gst-inspect-1.0', ['--version'], SHORT_TIMEOUT_MS),
    run('gst-inspect-1.0', [], GST_LIST_TIMEOUT_MS),
  ]);
  let version = ver.code === 0 ? parseGstVersion(ver.stdout) : null;
  if (version === null) {
    const launch = await run('gst-launch-1.0', ['--version'], SHORT_TIMEOUT_MS);
    version = launch.code === 0 ? parseGstVersion(launch.stdout) : null;
  }
  const found = list.code === 0 ? parseGstInspectList(list.stdout) : new Set<string>();
  const elements: Record<string, boolean> = {};
  if (found.size > 0 || ver.code === null) {
    for (const e of PROBE_ELEMENTS) elements[e] = found.has(e);
    return { version, elements };
  }
  // The listing failed but gst-inspect-1.0 exists: ask element by element (slow path).
  for (const e of PROBE_ELEMENTS) {
    elements[e] = (await run('gst-inspect-1.0', [e], SHORT_TIMEOUT_MS)).code === 0;
  }
  return { version, elements };
}

async function probeBoard(paths: HostPaths, arch: string): Promise<BoardInfo> {
  const [dt, dmi, cpuinfo] = await Promise.all([
    readText(paths.deviceTreeModel),
    readText(paths.dmiProductName),
    readText(paths.proc('cpuinfo')),
  ]);
  const model = cleanModel(dt) ?? cleanModel(dmi);
  return { model, kind: boardKind(model, cpuModelName(cpuinfo), arch), arch };
}

async function probeLibcamera(run: RunCommand): Promise<CameraInfo[]> {
  for (const tool of ['rpicam-hello', 'libcamera-hello']) {
    const r = await run(tool, ['--list-cameras'], SHORT_TIMEOUT_MS);
    if (r.code === null) continue;
    return parseLibcameraList(`${r.stdout}\n${r.stderr}`);
  }
  return [];
}

async function probeV4l2(paths: HostPaths, run: RunCommand): Promise<CameraInfo[]> {
  const nodes = (await listDir(paths.video4linuxClass)).filter((e) => /^video\d+$/.test(e));
  const found = await Promise.all(
    nodes.map(async (node): Promise<CameraInfo | null> => {
      const dir = path.join(paths.video4linuxClass, node);
      const [rawName, rawIndex] = await Promise.all([readText(path.join(dir, 'name')), readText(path.join(dir, 'index'))]);
      const name = rawName?.trim() || node;
      const index = rawIndex !== null && /^\s*\d+\s*$/.test(rawIndex) ? Number(rawIndex) : null;
      const device = paths.dev(node);
      const r = await run('v4l2-ctl', ['-d', device, '--info', '--list-formats'], SHORT_TIMEOUT_MS);
      const listing = r.code === 0 ? parseV4l2Ctl(r.stdout) : null;
      if (!isCaptureCamera(name, listing, index)) return null;
      return { kind: 'v4l2', device, name, formats: listing?.formats ?? [] };
    }),
  );
  return found.filter((c): c is CameraInfo => c !== null);
}

async function probeDisplays(paths: HostPaths): Promise<DisplayInfo[]> {
  const connectors = (await listDir(paths.drmClass)).filter(isDisplayConnector);
  return Promise.all(
    connectors.map(async (connector) => {
      const dir = path.join(paths.drmClass, connector);
      const [status, modes] = await Promise.all([readText(path.join(dir, 'status')), readText(path.join(dir, 'modes'))]);
      return { connector, connected: status?.trim() === 'connected', mode: preferredMode(modes) };
    }),
  );
}

/** Find what this box has. Pass fakes for any dependency (tests, the fleet simulator). */
export async function probe(deps: Partial<ProbeDeps> = {}): Promise<Capabilities> {
  const env = deps.env ?? process.env;
  const paths = deps.paths ?? hostPaths(env);
  const run = deps.runCommand ?? execRunCommand(env);
  const arch = deps.arch ?? process.arch;

  const gstP = probeGStreamer(run);
  const [gst, libcamera, board, v4l2, displays, pcm] = await Promise.all([
    gstP,
    gstP.then((g) => (g.elements.libcamerasrc ? probeLibcamera(run) : [])),
    probeBoard(paths, arch),
    probeV4l2(paths, run),
    probeDisplays(paths),
    readText(paths.asoundPcm),
  ]);
  return {
    board,
    gstreamerVersion: gst.version,
    elements: gst.elements,
    cameras: [...libcamera, ...v4l2],
    displays,
    audio: parseAsoundPcm(pcm ?? ''),
    headless: !env.DISPLAY && !env.WAYLAND_DISPLAY,
  };
}

/** The H.264 encoder the planner should use, hardware first; null when none exists. */

/** Elements a session cannot run without (transport, audio codec, parser). */
const REQUIRED = ['h264parse', 'mpegtsmux', 'tsdemux', 'srtsink', 'srtsrc', 'opusenc', 'opusdec'] as const;

function codecLine(label: string, chosen: string | null, order: readonly string[], c: Capabilities): string {
  const have = order.filter((e) => c.elements[e]).map((e) => `${e} (${HARDWARE.has(e) ? 'hardware' : 'software'})`);
  const use = chosen ? `${chosen} will be used` : 'none';
  return `${label}: ${use}${have.length ? ` — available: ${have.join(', ')}` : ''}`;
}

/** Things the technician should fix or know, one sentence each. */
export function capabilityWarnings(c: Capabilities): string[] {
  const w: string[] = [];
  const enc = pickEncoder(c);
  const dec = pickDecoder(c);
  if (c.gstreamerVersion === null) w.push('GStreamer not found (gst-inspect-1.0 missing or failing)');
  if (enc === null) w.push('no H.264 encoder: the box cannot send video');
  else if (!HARDWARE.has(enc)) w.push(`no hardware H.264 encoder: software ${enc.replace(/enc$/, '')} will be used`);
  if (dec === null) w.push('no H.264 decoder: the box cannot show received video');
  const missing = REQUIRED.filter((e) => !c.elements[e]);
  if (missing.length) w.push(`missing GStreamer elements: ${missing.join(', ')}`);
  if (!c.elements.webrtcdsp || !c.elements.webrtcechoprobe) w.push('webrtcdsp missing: no echo cancellation');
  if (!c.elements.alsasrc || !c.elements.alsasink) w.push('alsasrc/alsasink missing (package gstreamer1.0-alsa)');
  if (!c.elements.epframer) w.push('epframer not built (npm run build; gcc + libgstreamer1.0-dev): the send stream is framed in Node, at more CPU');
  if (c.cameras.length === 0) w.push('no camera found');
  if (!c.displays.some((d) => d.connected)) w.push('no TV connected');
  if (c.audio.capture.length === 0) w.push('no microphone found');
  if (c.audio.playback.length === 0) w.push('no speaker/audio output found');
  return w;
}

/** A readable summary for the technician (`ep probe`). */
export function formatCapabilities(c: Capabilities): string {
  const out: string[] = [];
  const list = (title: string, items: string[]): void => {
    out.push(`${title}:${items.length ? '' : ' none'}`);
    for (const i of items) out.push(`  - ${i}`);
  };
  out.push(`Board: ${c.board.model ?? 'unknown model'} (${c.board.kind}, ${c.board.arch})`);
  out.push(`GStreamer: ${c.gstreamerVersion ?? 'not found'}`);
  out.push(codecLine('H.264 encoder', pickEncoder(c), ENCODER_PREFERENCE, c));
  out.push(codecLine('H.264 decoder', pickDecoder(c), DECODER_PREFERENCE, c));
  list(
    'Cameras',
    c.cameras.map((k) => `${k.name} (${k.kind} ${k.device})${k.formats.length ? ` formats ${k.formats.join(', ')}` : ''}`),
  );
  list(
    'Displays',
    c.displays.map((d) => `${d.connector}: ${d.connected ? 'connected' : 'disconnected'}${d.mode ? ` ${d.mode}` : ''}`),
  );
  list('Microphones', c.audio.capture.map((a) => `${a.name} (${a.alsa})`));
  list('Speakers', c.audio.playback.map((a) => `${a.name} (${a.alsa})`));
  out.push(`SRT framing: ${c.elements.epframer ? 'epframer (inside GStreamer)' : 'Node packetiser (fallback: epframer not built)'}`);
  out.push(`Session: ${c.headless ? 'headless (no X11/Wayland; kmssink may take the display)' : 'desktop session present'}`);
  const warnings = capabilityWarnings(c);
  list('Warnings', warnings);
  return out.join('\n');
}
