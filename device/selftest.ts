/**
 * `selftest`: camera, encoder, decoder, display, audio, network, disk — each a real
 * check where one can be made without disturbing a meeting. The codec checks run a
 * short gst-launch-1.0 pipeline in a child process (never in the agent's process).
 */
import { execFile } from 'node:child_process';
import { statfs } from 'node:fs/promises';
import { planCodecSelftest } from '../gst-pipelines/index.js';
import type { Capabilities } from '../gst-pipelines/index.js';

export interface SelftestCheck {
  check: 'camera' | 'encoder' | 'decoder' | 'display' | 'mic' | 'speaker' | 'network' | 'disk';
  ok: boolean;
  detail: string;
  skipped?: boolean;
}

export interface SelftestReport {
  ok: boolean;
  checks: SelftestCheck[];
  [k: string]: unknown;
}

export interface SelftestDeps {
  caps: () => Promise<Capabilities>;
  testSources: boolean;
  inMeeting: () => boolean;
  mqttConnected: () => boolean;
  dataDir: string;
  gstLaunch?: (description: string, timeoutMs: number) => Promise<{ ok: boolean; detail: string }>;
}

export function runGstLaunch(description: string, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    // One argv word per token: gst-launch escapes the spaces inside a single argument,
    // so the whole description as one argument is a syntax error.
    execFile('gst-launch-1.0', ['-q', ...description.trim().split(/\s+/)], { timeout: timeoutMs }, (err, _out, stderr) => {
      if (err) resolve({ ok: false, detail: (stderr || err.message).trim().split('\n').slice(-2).join(' ') });
      else resolve({ ok: true, detail: `ran in ${Date.now() - started} ms` });
    });
  });
}

/**
 * One selftest at a time (issue 13: eight simultaneous `selftest` commands started eight
 * gst-launch-1.0 processes on a 2-core box): a call while a run is going gets that run's
 * report, so its codec checks run once and nothing waits in a queue. The next call after
 * it ends starts a new run.
 */
export function oneAtATime<T>(run: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () => {
    running ??= run().finally(() => {
      running = null;
    });
    return running;
  };
}

export async function runSelftest(d: SelftestDeps): Promise<SelftestReport> {
  const caps = await d.caps();
  const launch = d.gstLaunch ?? runGstLaunch;
  const checks: SelftestCheck[] = [];
  const device = (check: SelftestCheck['check'], found: boolean, what: string): void => {
    if (d.testSources) checks.push({ check, ok: true, detail: `test source mode (${what} not used)`, skipped: true });
    else checks.push({ check, ok: found, detail: found ? `${what} found` : `no ${what} found` });
  };
  device('camera', caps.cameras.length > 0, caps.cameras[0]?.name ?? 'camera');
  const { encoder: enc, decoder: dec, encode, decodeLoop } = planCodecSelftest(caps);
  if (d.inMeeting()) {
    checks.push({ check: 'encoder', ok: enc !== null, detail: `${enc ?? 'none'}: not exercised during a meeting`, skipped: true });
    checks.push({ check: 'decoder', ok: dec !== null, detail: `${dec ?? 'none'}: not exercised during a meeting`, skipped: true });
  } else {
    if (!encode) checks.push({ check: 'encoder', ok: false, detail: 'no H.264 encoder in the GStreamer registry' });
    else {
      const r = await launch(encode, 15_000);
      checks.push({ check: 'encoder', ok: r.ok, detail: `${enc}: ${r.detail}` });
    }
    if (!decodeLoop) checks.push({ check: 'decoder', ok: false, detail: dec ? 'no encoder to make a test stream' : 'no H.264 decoder in the GStreamer registry' });
    else {
      const r = await launch(decodeLoop, 15_000);
      checks.push({ check: 'decoder', ok: r.ok, detail: `${dec}: ${r.detail}` });
    }
  }
  const tv = caps.displays.find((x) => x.connected);
  device('display', tv !== undefined, tv ? `TV on ${tv.connector}` : 'connected TV');
  device('mic', caps.audio.capture.length > 0, caps.audio.capture[0]?.name ?? 'microphone');
  device('speaker', caps.audio.playback.length > 0, caps.audio.playback[0]?.name ?? 'speaker');
  checks.push({ check: 'network', ok: d.mqttConnected(), detail: d.mqttConnected() ? 'connected to the hub broker' : 'not connected to the hub broker' });
  try {
    const s = await statfs(d.dataDir);
    const freePct = (Number(s.bavail) / Number(s.blocks)) * 100;
    checks.push({ check: 'disk', ok: freePct >= 5, detail: `${freePct.toFixed(1)} % free on the data partition` });
  } catch (e) {
    checks.push({ check: 'disk', ok: false, detail: `cannot read the data partition: ${(e as Error).message}` });
  }
  return { ok: checks.every((c) => c.ok), checks };
}
