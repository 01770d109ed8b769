/**
 * Pure parsers for what the probe reads: `gst-inspect-1.0` listings, device-tree/DMI
 * model strings, `/proc/cpuinfo`, `rpicam-hello --list-cameras`, `v4l2-ctl` output,
 * `/proc/asound/pcm`. No I/O here, so each one is tested with recorded text.
 */
import type { AlsaDevice, BoardKind, CameraInfo } from '../types.js';

/**
 * Feature names from plain `gst-inspect-1.0` output, whose lines read
 * `plugin:  feature: description` (elements, typefinders, tracers, device providers).
 * Typefinder lines (`typefindfunctions: video/quicktime: mov`) yield names no element
 * has, which is harmless: the caller only looks names up.
 */
export function parseGstInspectList(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^[\w.+-]+:\s+([^\s:]+):\s/.exec(line);
    if (m?.[1]) names.add(m[1]);
  }
  return names;
}

/** `GStreamer 1.22.0` (from `gst-inspect-1.0 --version`) → `1.22.0`. */
export function parseGstVersion(text: string): string | null {
  const m = /GStreamer\s+(\d+\.\d+(?:\.\d+)*)/.exec(text);
  return m?.[1] ?? null;
}

/** Device-tree strings end in NUL; sysfs strings in a newline. */
export function cleanModel(raw: string | null): string | null {
  if (raw === null) return null;
  const s = raw.replace(/\0+$/g, '').trim();
  return s === '' ? null : s;
}

/** The `model name` of the first CPU in `/proc/cpuinfo`, if any. */
export function cpuModelName(cpuinfo: string | null): string | null {
  const m = /^model name\s*:\s*(.+)$/m.exec(cpuinfo ?? '');
  return m?.[1]?.trim() ?? null;
}

const PI4 = /Raspberry Pi 4|Raspberry Pi 400|Compute Module 4/;
const PI5 = /Raspberry Pi 5|Raspberry Pi 500|Compute Module 5/;
/** Intel Alder Lake-N / Twin Lake parts with the same media engine. */
const ALDER_LAKE_N = /\b(?:N97|N100|N150|N200|N250|N300|N305|N355)\b/;

export function boardKind(model: string | null, cpuModel: string | null, arch: string): BoardKind {
  if (model && PI5.test(model)) return 'pi5';
  if (model && PI4.test(model)) return 'pi4';
  if (cpuModel && ALDER_LAKE_N.test(cpuModel)) return 'n100';
  if (arch === 'x64' || arch === 'ia32') return 'x86';
  if (arch === 'arm' || arch === 'arm64') return 'arm';
  return 'unknown';
}

/**
 * `rpicam-hello --list-cameras` / `libcamera-hello --list-cameras`:
 * `0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)`.
 * `device` is the libcamera camera id (the path in parentheses), which is what
 * `libcamerasrc camera-name=` takes. Sensor modes (raw Bayer formats) are not what
 * libcamerasrc outputs after the ISP, so `formats` stays empty.
 */
export function parseLibcameraList(text: string): CameraInfo[] {
  const cameras: CameraInfo[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*\d+\s*:\s*(\S+)(?:\s+\[[^\]]*\])?\s*\(([^)]+)\)/.exec(line);
    if (m?.[1] && m[2]) cameras.push({ kind: 'libcamera', device: m[2], name: m[1], formats: [] });
  }
  return cameras;
}

export interface V4l2Listing {
  /** FourCCs from `--list-formats` (`[0]: 'MJPG' (Motion-JPEG, compressed)`). */
  formats: string[];
  /** The `Device Caps` block of `--info`, or null when the output has none. */
  deviceCaps: string[] | null;
  driver: string | null;
}

/** Output of `v4l2-ctl -d DEV --info --list-formats` (either part may be missing). */
export function parseV4l2Ctl(text: string): V4l2Listing {
  const formats = [...text.matchAll(/\[\d+\]:\s*'([^']+)'/g)].map((m) => (m[1] ?? '').trim());
  const driver = /^\s*Driver name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? null;
  let deviceCaps: string[] | null = null;
  const lines = text.split('\n');
  const at = lines.findIndex((l) => /^\s*Device Caps\s*:/.test(l));
  if (at >= 0) {
    deviceCaps = [];
    const indent = /^\s*/.exec(lines[at] ?? '')?.[0].length ?? 0;
    for (const l of lines.slice(at + 1)) {
      const ind = /^\s*/.exec(l)?.[0].length ?? 0;
      if (l.trim() === '' || ind <= indent) break;
      deviceCaps.push(l.trim());
    }
  }
  return { formats: [...new Set(formats)], deviceCaps, driver };
}

/** Codec, ISP and scaler nodes of the Pi (and HEVC decoders elsewhere): never cameras. */
const NOT_A_CAMERA = /bcm2835-codec|bcm2835-isp|rpivid|pispbe|hevc/i;
/**
 * Raw CSI receivers: the sensor behind them is driven through libcamera. They count
 * as a V4L2 camera only when they deliver a picture v4l2src can use (e.g. an
 * HDMI-to-CSI bridge giving UYVY), not raw Bayer.
 */
const RAW_RECEIVER = /rp1-cfe|unicam/i;
const PICTURE_FORMATS = new Set(['MJPG', 'JPEG', 'YUYV', 'UYVY', 'YVYU', 'VYUY', 'NV12', 'NV21', 'YU12', 'YV12', 'H264', 'RGB3', 'BGR3']);

/**
 * Whether a /dev/videoN node is a capture camera. `listing` is null when v4l2-ctl is
 * missing or failed; `index` is sysfs `index` (a UVC camera's metadata node has 1).
 */
export function isCaptureCamera(name: string, listing: V4l2Listing | null, index: number | null): boolean {
  if (NOT_A_CAMERA.test(name)) return false;
  if (listing === null) return !RAW_RECEIVER.test(name) && (index === null || index === 0);
  const caps = listing.deviceCaps;
  if (caps !== null) {
    if (caps.some((c) => /Memory-to-Memory/i.test(c))) return false;
    if (!caps.some((c) => /^Video Capture/i.test(c))) return false;
  }
  if (listing.formats.length === 0) return false;
  if (RAW_RECEIVER.test(name)) return listing.formats.some((f) => PICTURE_FORMATS.has(f));
  return true;
}

/**
 * `/proc/asound/pcm`: `01-00: USB Audio : USB Audio : playback 1 : capture 1`.
 * `plughw:` rather than `hw:` so ALSA converts rate/format/channels for us.
 */
export function parseAsoundPcm(text: string): { capture: AlsaDevice[]; playback: AlsaDevice[] } {
  const capture: AlsaDevice[] = [];
  const playback: AlsaDevice[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+)-(\d+):\s*(.*?)\s*:\s*(.*?)((?:\s*:\s*(?:playback|capture)\s+\d+)+)\s*$/.exec(line);
    if (!m?.[1] || !m[2] || m[3] === undefined || !m[5]) continue;
    const card = Number(m[1]);
    const device = Number(m[2]);
    const dev: AlsaDevice = { card, device, name: m[3] || (m[4] ?? ''), alsa: `plughw:${card},${device}` };
    if (/playback\s+[1-9]/.test(m[5])) playback.push(dev);
    if (/capture\s+[1-9]/.test(m[5])) capture.push({ ...dev });
  }
  return { capture, playback };
}

/** First line of a DRM connector's `modes` file (the preferred mode), or null. */
export function preferredMode(modes: string | null): string | null {
  const first = (modes ?? '').split('\n').map((l) => l.trim()).find((l) => l !== '');
  return first ?? null;
}

/** DRM connector directory names (`card1-HDMI-A-1`); not cards, render nodes or writeback. */
export function isDisplayConnector(entry: string): boolean {
  return /^card\d+-/.test(entry) && !/-Writeback-/i.test(entry);
}

/** Natural order, so `video10` sorts after `video2`. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
