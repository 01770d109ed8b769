/**
 * `selftest`: camera, encoder, decoder, display, audio, hub (MQTT and an SRT handshake),
 * disk, clock and power — each a real check where one can be made without disturbing a
 * meeting, each failure with plain advice in Vietnamese and English. Every GStreamer run
 * is a short gst-launch-1.0 in a child process with a timeout (never in the agent's
 * process). The same report answers the hub's `selftest` command and `ep selftest`.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { planCodecSelftest } from '../gst-pipelines/index.js';
import type { Capabilities } from '../gst-pipelines/index.js';
import type { HealthSample } from './contract/index.js';
import { adviceFor, type Advice } from './field/index.js';

export type SelftestCheckName = 'camera' | 'encoder' | 'decoder' | 'display' | 'mic' | 'speaker' | 'network' | 'hub_media' | 'disk' | 'disk_write' | 'clock' | 'power';

export interface SelftestCheck {
  check: SelftestCheckName;
  ok: boolean;
  detail: string;
  skipped?: boolean;
  /** What to do about a failed check (absent when it passed or was skipped). */
  advice?: Advice;
}

export interface SelftestReport {
  ok: boolean;
  checks: SelftestCheck[];
  [k: string]: unknown;
}

/** Where the hub receives this box's media (or sends it): the SRT handshake's target. */
export interface SrtTarget {
  url: string;
  streamId?: string;
  passphrase?: string;
}

export interface GstRun {
  ok: boolean;
  detail: string;
  /** gst-launch's stdout, when asked for its bus messages (`messages`). */
  output?: string;
}

export type GstLauncher = (description: string, timeoutMs: number, o?: { messages?: boolean }) => Promise<GstRun>;

export interface SelftestDeps {
  caps: () => Promise<Capabilities>;
  testSources: boolean;
  inMeeting: () => boolean;
  mqttConnected: () => boolean;
  dataDir: string;
  gstLaunch?: GstLauncher;
  /** The latest health sample (clock, power); absent or null: those checks are skipped. */
  health?: () => HealthSample | null;
  /** In a meeting: the microphone's last level from the media stats (dBFS), null when none yet. */
  micLevelDb?: () => number | null;
  /** The hub's media address for the SRT handshake (the current or last meeting's); null: skipped. */
  srtTarget?: () => SrtTarget | null;
  /** Defaults to runSrtHandshake (gst-launch-1.0 srtsrc). */
  srtHandshake?: (t: SrtTarget, windowMs: number) => Promise<{ ok: boolean; detail: string }>;
  /** Bytes written by the disk-speed check (default DISK_WRITE_BYTES). */
  diskWriteBytes?: number;
}

/** 8 MiB written with fsync in the data directory, then removed. */
export const DISK_WRITE_BYTES = 8 * 1024 * 1024;
/**
 * Below this the card is failing or counterfeit: a class-10 SD card writes ≥ 10 MB/s, worn
 * ones 3–5 MB/s with fsync; at 2 MB/s writing a 60 MB update takes half a minute and every
 * state write stalls the agent.
 */
export const DISK_MIN_MBPS = 2;
/** Less free than this on the data partition fails `disk` (updates need room). */
export const DISK_MIN_FREE_PCT = 5;
/** A microphone reading below this for a whole second gives no signal at all (unplugged, muted in ALSA). */
export const MIC_SILENT_DBFS = -80;
/** How long the SRT handshake may take to be refused (libsrt's connect timeout is 3 s). */
export const SRT_WINDOW_MS = 5000;

/** Advice for checks that are not fault codes of model.ts. */
const CHECK_ADVICE: Partial<Record<SelftestCheckName, Advice>> = {
  encoder: { vi: 'Bộ mã hoá video không chạy: khởi động lại thiết bị; nếu vẫn lỗi, gọi cán bộ kỹ thuật.', en: 'The video encoder does not work: restart the box; if it persists, call the technician.' },
  decoder: { vi: 'Bộ giải mã video không chạy: khởi động lại thiết bị; nếu vẫn lỗi, gọi cán bộ kỹ thuật.', en: 'The video decoder does not work: restart the box; if it persists, call the technician.' },
  hub_media: { vi: 'Không mở được đường truyền hình/tiếng tới máy chủ: kiểm tra Internet và tường lửa (UDP); gọi cán bộ kỹ thuật huyện.', en: 'Cannot open the media link to the hub: check the Internet and the firewall (UDP); call the district technician.' },
  disk_write: { vi: 'Thẻ nhớ ghi quá chậm hoặc sắp hỏng: báo cán bộ kỹ thuật để thay thẻ nhớ.', en: 'The SD card writes too slowly or is failing: ask the technician to replace it.' },
};
const FAULT_OF: Partial<Record<SelftestCheckName, string>> = {
  camera: 'no_camera',
  display: 'no_display',
  mic: 'no_mic',
  speaker: 'no_speaker',
  network: 'no_hub',
  disk: 'disk_full',
  clock: 'clock_unsynced',
  power: 'under_voltage',
};

/** The advice shown for a failed check. */
export function adviceForCheck(check: SelftestCheckName): Advice {
  const fault = FAULT_OF[check];
  return CHECK_ADVICE[check] ?? adviceFor(fault ?? check);
}

/**
 * gst-launch-1.0 under coreutils' `timeout`: a check process ends by itself even when the
 * agent that started it is gone (an update's restart, a factory reset, a crash) — `srtsrc`
 * never ends on its own. A TERM to `timeout` reaches gst-launch too; a KILL would not.
 */
function boundedGstLaunch(args: string[], ms: number): [string, string[]] {
  return ['timeout', ['-s', 'KILL', String(Math.ceil(ms / 1000) + 2), 'gst-launch-1.0', ...args]];
}

export function runGstLaunch(description: string, timeoutMs: number, o: { messages?: boolean } = {}): Promise<GstRun> {
  return new Promise((resolve) => {
    const started = Date.now();
    // One argv word per token: gst-launch escapes the spaces inside a single argument,
    // so the whole description as one argument is a syntax error. -q hides -m's messages.
    const args = [o.messages ? '-m' : '-q', ...description.trim().split(/\s+/)];
    const [cmd, argv] = boundedGstLaunch(args, timeoutMs);
    execFile(cmd, argv, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const output = o.messages ? String(stdout) : undefined;
      if (err) resolve({ ok: false, detail: (String(stderr) || err.message).trim().split('\n').slice(-2).join(' '), ...(output !== undefined ? { output } : {}) });
      else resolve({ ok: true, detail: `ran in ${Date.now() - started} ms`, ...(output !== undefined ? { output } : {}) });
    });
  });
}

/**
 * An SRT handshake with the hub: gst-launch-1.0 `srtsrc` as caller. srtsrc never ends by
 * itself — a refused handshake (wrong passphrase, rejected stream id) or an unreachable
 * hub is posted as a WARNING ("… Trying to reconnect") and retried, an accepted one
 * posts nothing (checked here against a listening srt-live-transmit, GStreamer 1.22). So:
 * the first complaint within `windowMs` fails the check with its text; none passes it.
 * The passphrase goes as its own argv word and never into the detail.
 */
export function runSrtHandshake(t: SrtTarget, windowMs: number): Promise<{ ok: boolean; detail: string }> {
  let where: string;
  try {
    const u = new URL(t.url);
    if (u.protocol !== 'srt:' || !u.hostname || !u.port) throw new Error('not srt://host:port');
    where = `${u.hostname}:${u.port}`;
  } catch {
    return Promise.resolve({ ok: false, detail: 'the hub media address is not an srt://host:port URL' });
  }
  const args = [`srtsrc`, `uri=srt://${where}?mode=caller`, ...(t.streamId ? [`streamid=${t.streamId}`] : []), ...(t.passphrase ? [`passphrase=${t.passphrase}`] : []), '!', 'fakesink', 'sync=false'];
  const scrub = (s: string): string => (t.passphrase ? s.split(t.passphrase).join('***') : s);
  return new Promise((resolve) => {
    const [cmd, argv] = boundedGstLaunch(args, windowMs + 3000);
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let settled = false;
    const finish = (r: { ok: boolean; detail: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(settle);
      child.kill('SIGTERM'); // `timeout` passes it on to gst-launch
      resolve({ ok: r.ok, detail: scrub(r.detail) });
    };
    // The first complaint can be a bare "Connection timeout" with a refusal's reason
    // ("Incorrect passphrase") right after it: wait a moment for a more telling one.
    let first: string | null = null;
    let settle: NodeJS.Timeout | undefined;
    const look = (d: Buffer): void => {
      out = (out + d.toString('utf8')).slice(-16_384);
      const why = [...out.matchAll(/^(?:WARNING|ERROR): from element \S+: (.+)$/gm)].map((m) => m[1]!.replace(/\.? ?Trying to reconnect\.?$/, ''));
      const telling = why.find((w) => !/connection timeout/i.test(w));
      if (telling) finish({ ok: false, detail: `${where}: ${telling}` });
      else if (why.length && first === null) {
        first = why[0]!;
        settle = setTimeout(() => finish({ ok: false, detail: `${where}: ${first}` }), 1500);
      }
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    child.on('error', (e) => finish({ ok: false, detail: `cannot run gst-launch-1.0: ${e.message}` }));
    child.on('exit', (code) => finish({ ok: false, detail: `${where}: gst-launch-1.0 ended (${code}) before the handshake settled: ${out.trim().split('\n').slice(-1)[0] ?? ''}` }));
    const timer = setTimeout(() => finish({ ok: true, detail: `${where}: handshake accepted (no refusal in ${Math.round(windowMs / 1000)} s)` }), windowMs);
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

/** The loudest channel's RMS (dBFS) over every `level` message in gst-launch -m output; -Infinity for digital silence, null for none. */
export function parseLevelRms(output: string): number | null {
  let max: number | null = null;
  // GStreamer 1.22 prints `rms=(GValueArray)< -23.0, -23.1 >`, newer ones `rms=(double){ … }`.
  for (const m of output.matchAll(/\brms=\([^)]*\)\s*[<{]([^>}]*)[>}]/g)) {
    for (const w of m[1]!.split(',')) {
      const s = w.trim();
      const v = s === '-inf' ? -Infinity : Number(s);
      if (Number.isNaN(v)) continue;
      max = max === null ? v : Math.max(max, v);
    }
  }
  return max;
}

/** Writes `bytes` with fsync in `dir` and removes the file: MB/s (10^6 bytes). */
export async function measureDiskWrite(dir: string, bytes: number): Promise<number> {
  const file = path.join(dir, `.selftest-write-${process.pid}-${randomBytes(4).toString('hex')}`);
  const chunk = randomBytes(Math.min(bytes, 1024 * 1024));
  const started = process.hrtime.bigint();
  const fh = await open(file, 'w', 0o600);
  try {
    for (let left = bytes; left > 0; left -= chunk.length) await fh.write(chunk, 0, Math.min(left, chunk.length));
    await fh.sync();
  } finally {
    await fh.close();
    await rm(file, { force: true });
  }
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  return bytes / 1e6 / Math.max(s, 1e-6);
}

/** Words for gst-launch (split on whitespace): a device name with a space cannot be carried. */
const word = (v: string): string | null => (/^[^\s"'!]+$/.test(v) ? v : null);

export async function runSelftest(d: SelftestDeps): Promise<SelftestReport> {
  const caps = await d.caps();
  const launch = d.gstLaunch ?? runGstLaunch;
  const meeting = d.inMeeting();
  const checks: SelftestCheck[] = [];
  const add = (c: SelftestCheck): void => {
    checks.push(!c.ok && !c.skipped ? { ...c, advice: adviceForCheck(c.check) } : c);
  };
  const testMode = (check: SelftestCheckName, what: string): void => add({ check, ok: true, detail: `test source mode (${what} not used)`, skipped: true });

  // Camera: frames arrive (a short capture outside meetings), not only "found".
  const cam = caps.cameras[0];
  if (d.testSources) testMode('camera', cam?.name ?? 'camera');
  else if (!cam) add({ check: 'camera', ok: false, detail: 'no camera found' });
  else if (meeting) add({ check: 'camera', ok: true, detail: `${cam.name} found; in use by the meeting`, skipped: true });
  else {
    const id = word(cam.device);
    const src = cam.kind === 'libcamera' ? (caps.elements.libcamerasrc && id ? `libcamerasrc camera-name=${id}` : null) : caps.elements.v4l2src && id ? `v4l2src device=${id}` : null;
    if (!src) add({ check: 'camera', ok: false, detail: `${cam.name} found, but no GStreamer source can open it` });
    else {
      const r = await launch(`${src} ! identity eos-after=10 ! fakesink sync=false`, 10_000);
      add({ check: 'camera', ok: r.ok, detail: r.ok ? `${cam.name}: 10 frames arrived (${r.detail})` : `${cam.name}: no frames: ${r.detail}` });
    }
  }

  const { encoder: enc, decoder: dec, encode, decodeLoop } = planCodecSelftest(caps);
  if (meeting) {
    add({ check: 'encoder', ok: enc !== null, detail: `${enc ?? 'none'}: not exercised during a meeting`, skipped: true });
    add({ check: 'decoder', ok: dec !== null, detail: `${dec ?? 'none'}: not exercised during a meeting`, skipped: true });
  } else {
    if (!encode) add({ check: 'encoder', ok: false, detail: 'no H.264 encoder in the GStreamer registry' });
    else {
      const r = await launch(encode, 15_000);
      add({ check: 'encoder', ok: r.ok, detail: `${enc}: ${r.detail}` });
    }
    if (!decodeLoop) add({ check: 'decoder', ok: false, detail: dec ? 'no encoder to make a test stream' : 'no H.264 decoder in the GStreamer registry' });
    else {
      const r = await launch(decodeLoop, 15_000);
      add({ check: 'decoder', ok: r.ok, detail: `${dec}: ${r.detail}` });
    }
  }

  const tv = caps.displays.find((x) => x.connected);
  if (d.testSources) testMode('display', tv ? `TV on ${tv.connector}` : 'connected TV');
  else add({ check: 'display', ok: tv !== undefined, detail: tv ? `TV on ${tv.connector}${tv.mode ? ` (${tv.mode})` : ''}` : 'no connected TV found' });

  // Microphone: its level (1 s through `level` outside a meeting, the media stats in one).
  const mic = caps.audio.capture[0];
  if (d.testSources) testMode('mic', mic?.name ?? 'microphone');
  else if (!mic) add({ check: 'mic', ok: false, detail: 'no microphone found' });
  else if (meeting) {
    const db = d.micLevelDb?.() ?? null;
    add(db === null ? { check: 'mic', ok: true, detail: `${mic.name}: in use by the meeting, no level yet`, skipped: true } : levelCheck(mic.name, db, 'in the meeting'));
  } else {
    const dev = word(mic.alsa);
    const r = dev ? await launch(`alsasrc device=${dev} num-buffers=100 ! audioconvert ! level interval=250000000 post-messages=true ! fakesink sync=false`, 8000, { messages: true }) : { ok: false, detail: 'the ALSA device name cannot be used' };
    const db = r.output ? parseLevelRms(r.output) : null;
    if (!r.ok || db === null) add({ check: 'mic', ok: false, detail: `${mic.name}: cannot capture: ${r.detail}` });
    else add(levelCheck(mic.name, db, 'over 1 s'));
  }

  // Speaker: the ALSA device opens and takes half a second of silence.
  const spk = caps.audio.playback[0];
  if (d.testSources) testMode('speaker', spk?.name ?? 'speaker');
  else if (!spk) add({ check: 'speaker', ok: false, detail: 'no speaker found' });
  else if (meeting) add({ check: 'speaker', ok: true, detail: `${spk.name}: in use by the meeting`, skipped: true });
  else {
    const dev = word(spk.alsa);
    const r = dev ? await launch(`audiotestsrc wave=silence num-buffers=20 ! audioconvert ! audioresample ! alsasink device=${dev}`, 8000) : { ok: false, detail: 'the ALSA device name cannot be used' };
    add({ check: 'speaker', ok: r.ok, detail: r.ok ? `${spk.name} (${spk.alsa}) plays` : `${spk.name} (${spk.alsa}) cannot play: ${r.detail}` });
  }

  const mqtt = d.mqttConnected();
  add({ check: 'network', ok: mqtt, detail: mqtt ? 'connected to the hub broker' : 'not connected to the hub broker' });
  const target = d.srtTarget?.() ?? null;
  if (!target) add({ check: 'hub_media', ok: true, detail: 'no hub media address known yet', skipped: true });
  // In a meeting the live link is the proof (its stats in health); a second reader would take the commune's uplink.
  else if (meeting) add({ check: 'hub_media', ok: true, detail: 'in a meeting: the live SRT link is the check', skipped: true });
  // gst-launch takes the pipeline on its command line, which other local users can read (ps):
  // never a passphrase there. The meeting's own link shows an encrypted path.
  else if (target.passphrase && !d.srtHandshake) add({ check: 'hub_media', ok: true, detail: 'not checked: the hub needs a passphrase, which a check process would show on its command line; the next meeting shows the path', skipped: true });
  else {
    const r = await (d.srtHandshake ?? runSrtHandshake)(target, SRT_WINDOW_MS);
    add({ check: 'hub_media', ok: r.ok, detail: `SRT ${r.detail}` });
  }

  try {
    const s = await statfs(d.dataDir);
    const freePct = (Number(s.bavail) / Number(s.blocks)) * 100;
    add({ check: 'disk', ok: freePct >= DISK_MIN_FREE_PCT, detail: `${freePct.toFixed(1)} % free on the data partition` });
  } catch (e) {
    add({ check: 'disk', ok: false, detail: `cannot read the data partition: ${(e as Error).message}` });
  }
  if (meeting) add({ check: 'disk_write', ok: true, detail: 'not measured during a meeting', skipped: true });
  else {
    const bytes = d.diskWriteBytes ?? DISK_WRITE_BYTES;
    try {
      const mbps = await measureDiskWrite(d.dataDir, bytes);
      add({ check: 'disk_write', ok: mbps >= DISK_MIN_MBPS, detail: `${mbps.toFixed(1)} MB/s writing ${bytes >= 1048576 ? `${(bytes / 1048576).toFixed(0)} MiB` : `${Math.round(bytes / 1024)} KiB`} with fsync (at least ${DISK_MIN_MBPS} MB/s)` });
    } catch (e) {
      add({ check: 'disk_write', ok: false, detail: `cannot write to the data partition: ${(e as Error).message}` });
    }
  }

  const h = d.health?.() ?? null;
  if (h?.clockSynced == null) add({ check: 'clock', ok: true, detail: 'clock synchronisation not known', skipped: true });
  else add({ check: 'clock', ok: h.clockSynced, detail: h.clockSynced ? 'synchronised (NTP)' : 'not synchronised: the time may be wrong, TLS can fail' });
  add(powerCheck(h));

  return { ok: checks.every((c) => c.ok), checks };
}

function levelCheck(name: string, db: number, when: string): SelftestCheck {
  const shown = Number.isFinite(db) ? `${db.toFixed(1)} dBFS` : 'silence (-inf dBFS)';
  return db < MIC_SILENT_DBFS ? { check: 'mic', ok: false, detail: `${name}: no signal ${when}: ${shown}` } : { check: 'mic', ok: true, detail: `${name}: ${shown} ${when}` };
}

function powerCheck(h: HealthSample | null): SelftestCheck {
  const p = h?.power;
  const temp = h?.cpu?.tempC;
  const t = typeof temp === 'number' ? `; ${temp.toFixed(0)} °C` : '';
  if (!p || (p.underVoltage == null && p.underVoltageSinceBoot == null && p.throttled == null)) return { check: 'power', ok: true, detail: `under-voltage not readable on this board${t}`, skipped: true };
  const bad = [p.underVoltage ? 'under-voltage now' : null, !p.underVoltage && p.underVoltageSinceBoot ? 'under-voltage since boot' : null, p.throttled ? 'throttled' : null].filter((x): x is string => x !== null);
  return bad.length ? { check: 'power', ok: false, detail: `${bad.join(', ')}${t}`, advice: adviceForCheck('power') } : { check: 'power', ok: true, detail: `supply good, not throttled${t}` };
}
