import { afterAll, describe, expect, it } from 'vitest';
import type { HostPaths } from '../../lib/index.js';
import { probeCommand } from '../../device/cli/probe.js';
import { boardKind, isCaptureCamera, parseAsoundPcm, parseGstInspectList, parseV4l2Ctl } from '../../gst-pipelines/probe/parse.js';
import { exportedElementList, formatCapabilities, pickDecoder, pickEncoder, probe } from '../../gst-pipelines/probe/probe.js';
import type { RunCommand } from '../../gst-pipelines/probe/probe.js';
import { FakeRunner, hostTrees, sysfs, type Answer } from '../fakes/index.js';

// Lines copied from `gst-inspect-1.0` (GStreamer 1.22, Debian 12); the hardware ones in
// the same format as they appear on a Pi / an Intel box.
const GST_BASE = `app:  appsink: AppSink
app:  appsrc: AppSrc
audiotestsrc:  audiotestsrc: Audio test source
autodetect:  autoaudiosink: Auto audio sink
autodetect:  autoaudiosrc: Auto audio source
autodetect:  autovideosink: Auto video sink
coreelements:  fakesink: Fake Sink
coreelements:  queue: Queue
coreelements:  tee: Tee pipe fitting
coretracers:  latency (GstTracerFactory)
jpeg:  jpegdec: JPEG image decoder
kms:  kmssink: KMS video sink
level:  level: Level
libav:  avdec_h264: libav H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 decoder
mpegtsdemux:  tsdemux: MPEG transport stream demuxer
mpegtsmux:  mpegtsmux: MPEG Transport Stream Muxer
opengl:  glimagesink: GL Sink Bin
opus:  opusdec: Opus audio decoder
opus:  opusenc: Opus audio encoder
pango:  textoverlay: Text overlay
png:  pngenc: PNG image encoder
pulseaudio:  pulsesink: PulseAudio Audio Sink
pulseaudio:  pulsesrc: PulseAudio Audio Source
srt:  srtsink: SRT sink
srt:  srtsrc: SRT source
typefindfunctions: video/x-h264: h264, x264, 264
video4linux2:  v4l2deviceprovider (GstDeviceProviderFactory)
video4linux2:  v4l2src: Video (video4linux2) Source
videoparsersbad:  h264parse: H.264 parser
videotestsrc:  videotestsrc: Video test source
webrtcdsp:  webrtcdsp: Voice Processor (AGC, AEC, filters, etc.)
webrtcdsp:  webrtcechoprobe: Acoustic Echo Canceller probe
x264:  x264enc: x264 H.264 Encoder
alsa:  alsasink: Audio sink (ALSA)
alsa:  alsasrc: Audio source (ALSA)
`;
const GST_V4L2_CODEC = `video4linux2:  v4l2h264dec: V4L2 H264 Decoder
video4linux2:  v4l2h264enc: V4L2 H.264 Encoder
`;
const GST_VA = `va:  vah264dec: VA-API H.264 Decoder in Intel(R) Gen Graphics
va:  vah264enc: VA-API H.264 Encoder in Intel(R) Gen Graphics
`;
const GST_LIBCAMERA = 'libcamera:  libcamerasrc: libcamera Source\n';
const gstList = (...extra: string[]): string => `${GST_BASE}${extra.join('')}\nTotal count: 263 plugins, 1580 features\n`;
const GST_VERSION = 'gst-inspect-1.0 version 1.22.0\nGStreamer 1.22.0\nhttps://tracker.debian.org/pkg/gstreamer1.0\n';

const uvcInfo = (caps: string, formats: string): string => `Driver Info:
\tDriver name      : uvcvideo
\tCard type        : HD Pro Webcam C920
\tCapabilities     : 0x84a00001
\t\tVideo Capture
\t\tMetadata Capture
\t\tStreaming
\tDevice Caps      : 0x04200001
\t\t${caps}
\t\tStreaming
Media Driver Info:
\tDriver name      : uvcvideo
ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture

${formats}`;
const UVC_CAPTURE = uvcInfo('Video Capture', "\t[0]: 'MJPG' (Motion-JPEG, compressed)\n\t[1]: 'YUYV' (YUYV 4:2:2)\n");
const UVC_META = uvcInfo('Metadata Capture', '');
const M2M = `Driver Info:\n\tDriver name      : bcm2835-codec\n\tDevice Caps      : 0x04204000\n\t\tVideo Memory-to-Memory Multiplanar\n\t\tStreaming\nioctl: VIDIOC_ENUM_FMT\n\tType: Video Capture Multiplanar\n\n\t[0]: 'YU12' (Planar YUV 4:2:0)\n`;
const CFE_BAYER = `Driver Info:\n\tDriver name      : rp1-cfe\n\tDevice Caps      : 0x24a00001\n\t\tVideo Capture\n\t\tStreaming\nioctl: VIDIOC_ENUM_FMT\n\tType: Video Capture\n\n\t[0]: 'pRAA' (10-bit Bayer RGRG/GBGB Packed)\n`;
const RPICAM_PI5 = `Available cameras
-----------------
0 : imx708 [4608x2592 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)
    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]
                             2304x1296 [56.03 fps - (0, 0)/4608x2592 crop]
`;

type Script = Record<string, Answer>;
const trees = hostTrees();
afterAll(trees.cleanup);

/** Recorded outputs keyed by the command line (`{dev}` = the fake /dev); the rest is "not installed". */
const runnerFor = (paths: HostPaths, script: Script): FakeRunner => new FakeRunner(script, { '{dev}': paths.dev() });

const { v4l2, drm } = sysfs;
const V4L = 'v4l2-ctl -d {dev}/';
const V4L_ARGS = ' --info --list-formats';

const PI4_FILES = {
  'sys/firmware/devicetree/base/model': 'Raspberry Pi 4 Model B Rev 1.5\0',
  'proc/cpuinfo': 'processor\t: 0\nBogoMIPS\t: 108.00\nModel\t\t: Raspberry Pi 4 Model B Rev 1.5\n',
  'sys/class/drm/version': 'drm 1.1.0 20060810\n',
  ...drm('card1-HDMI-A-1', 'connected', '1920x1080\n1920x1080\n1280x720\n'),
  ...drm('card1-HDMI-A-2', 'disconnected'),
  ...drm('card1-Writeback-1', 'unknown'),
  ...v4l2('video10', 'bcm2835-codec-decode'),
  ...v4l2('video11', 'bcm2835-codec-encode'),
  ...v4l2('video19', 'rpivid'),
  'proc/asound/pcm':
    '00-00: bcm2835 Headphones : bcm2835 Headphones : playback 8\n' +
    '01-00: MAI PCM i2s-hifi-0 : MAI PCM i2s-hifi-0 : playback 1\n' +
    '02-00: USB Audio : USB Audio : capture 1\n',
};
const PI4_WEBCAM = { ...v4l2('video0', 'HD Pro Webcam C920'), ...v4l2('video1', 'HD Pro Webcam C920', 1) };
const PI4_SCRIPT: Script = {
  'gst-inspect-1.0 --version': GST_VERSION,
  'gst-inspect-1.0': gstList(GST_V4L2_CODEC),
  [`${V4L}video0${V4L_ARGS}`]: UVC_CAPTURE,
  [`${V4L}video1${V4L_ARGS}`]: UVC_META,
  [`${V4L}video10${V4L_ARGS}`]: M2M,
  [`${V4L}video11${V4L_ARGS}`]: M2M,
  [`${V4L}video19${V4L_ARGS}`]: M2M,
};

async function probeWith(files: Record<string, string>, script: Script, arch: string, env: NodeJS.ProcessEnv = {}) {
  const paths = await trees.make(files);
  const runner = runnerFor(paths, script);
  const caps = await probe({ paths, runCommand: runner.run, env, arch });
  return { caps, calls: runner.calls, paths };
}

describe('probe on board profiles', () => {
  it('Pi 4: hardware H.264, HDMI connected, USB webcam; codec and metadata nodes excluded', async () => {
    const { caps, calls, paths } = await probeWith({ ...PI4_FILES, ...PI4_WEBCAM }, PI4_SCRIPT, 'arm64');
    expect(caps.board).toEqual({ model: 'Raspberry Pi 4 Model B Rev 1.5', kind: 'pi4', arch: 'arm64' });
    expect(caps.gstreamerVersion).toBe('1.22.0');
    expect(Object.keys(caps.elements).sort()).toEqual([...exportedElementList].sort());
    expect(pickEncoder(caps)).toBe('v4l2h264enc');
    expect(pickDecoder(caps)).toBe('v4l2h264dec');
    expect(caps.elements.libcamerasrc).toBe(false);
    expect(caps.cameras).toEqual([{ kind: 'v4l2', device: paths.dev('video0'), name: 'HD Pro Webcam C920', formats: ['MJPG', 'YUYV'] }]);
    expect(caps.displays).toEqual([
      { connector: 'card1-HDMI-A-1', connected: true, mode: '1920x1080' },
      { connector: 'card1-HDMI-A-2', connected: false, mode: null },
    ]);
    expect(caps.audio.capture).toEqual([{ card: 2, device: 0, name: 'USB Audio', alsa: 'plughw:2,0' }]);
    expect(caps.audio.playback.map((a) => a.alsa)).toEqual(['plughw:0,0', 'plughw:1,0']);
    expect(caps.headless).toBe(true);
    expect(calls.filter((c) => c.startsWith('gst-inspect-1.0'))).toHaveLength(2); // one listing, one --version
    expect(calls.some((c) => c.includes('rpicam-hello'))).toBe(false);
    const text = formatCapabilities(caps);
    expect(text).toContain('Board: Raspberry Pi 4 Model B Rev 1.5 (pi4, arm64)');
    expect(text).toContain('H.264 encoder: v4l2h264enc will be used — available: v4l2h264enc (hardware), x264enc (software)');
    expect(text).toContain('card1-HDMI-A-1: connected 1920x1080');
    expect(text).not.toMatch(/no camera found|no TV connected|no hardware H.264/);
  });

  it('Pi 5: no H.264 hardware, libcamera imx708; CFE/PiSP/HEVC nodes are not cameras', async () => {
    const files = {
      'sys/firmware/devicetree/base/model': 'Raspberry Pi 5 Model B Rev 1.0\0',
      ...drm('card1-HDMI-A-1', 'connected', '3840x2160\n1920x1080\n'),
      ...v4l2('video0', 'rp1-cfe-csi2_ch0'),
      ...v4l2('video20', 'pispbe-input'),
      ...v4l2('video19', 'rpi-hevc-dec'),
      'proc/asound/pcm': '00-00: MAI PCM i2s-hifi-0 : MAI PCM i2s-hifi-0 : playback 1\n',
    };
    const script: Script = {
      'gst-inspect-1.0 --version': 'GStreamer 1.26.2\n',
      'gst-inspect-1.0': gstList(GST_LIBCAMERA),
      'rpicam-hello --list-cameras': RPICAM_PI5,
      [`${V4L}video0${V4L_ARGS}`]: CFE_BAYER,
      [`${V4L}video20${V4L_ARGS}`]: M2M,
      [`${V4L}video19${V4L_ARGS}`]: M2M,
    };
    const { caps } = await probeWith(files, script, 'arm64');
    expect(caps.board.kind).toBe('pi5');
    expect(caps.gstreamerVersion).toBe('1.26.2');
    expect(pickEncoder(caps)).toBe('x264enc');
    expect(pickDecoder(caps)).toBe('avdec_h264');
    expect(caps.cameras).toEqual([
      { kind: 'libcamera', device: '/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a', name: 'imx708', formats: [] },
    ]);
    expect(caps.audio.capture).toEqual([]);
    const text = formatCapabilities(caps);
    expect(text).toContain('no hardware H.264 encoder: software x264 will be used');
    expect(text).toContain('no microphone found');
    expect(text).toContain('epframer not built'); // this fake registry lists no epframer
    expect(text).toContain('SRT framing: Node packetiser (fallback: epframer not built)');
    expect(formatCapabilities({ ...caps, elements: { ...caps.elements, epframer: true } })).toContain('SRT framing: epframer (inside GStreamer)');
    expect(text).toContain('imx708 (libcamera /base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)');
  });

  it('falls back to libcamera-hello when rpicam-hello is not installed', async () => {
    const script: Script = { 'gst-inspect-1.0': gstList(GST_LIBCAMERA), 'libcamera-hello --list-cameras': RPICAM_PI5 };
    const { caps, calls } = await probeWith({}, script, 'arm64');
    expect(calls).toContain('rpicam-hello --list-cameras');
    expect(caps.cameras.map((c) => c.name)).toEqual(['imx708']);
  });

  it('N100: DMI model, Alder Lake-N from cpuinfo, VA-API codecs, desktop session', async () => {
    const files = {
      'sys/class/dmi/id/product_name': 'GK3Plus\n',
      'proc/cpuinfo': 'processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) N100\n',
      ...drm('card0-HDMI-A-1', 'connected', '1920x1080\n'),
      ...drm('card0-DP-1', 'disconnected'),
      'proc/asound/pcm':
        '00-00: ALC269VC Analog : ALC269VC Analog : playback 1 : capture 1\n00-03: HDMI 0 : HDMI 0 : playback 1\n',
    };
    const script: Script = { 'gst-inspect-1.0 --version': GST_VERSION, 'gst-inspect-1.0': gstList(GST_VA) };
    const { caps } = await probeWith(files, script, 'x64', { WAYLAND_DISPLAY: 'wayland-0' });
    expect(caps.board).toEqual({ model: 'GK3Plus', kind: 'n100', arch: 'x64' });
    expect(pickEncoder(caps)).toBe('vah264enc');
    expect(pickDecoder(caps)).toBe('vah264dec');
    expect(caps.headless).toBe(false);
    expect(caps.audio.capture.map((a) => a.alsa)).toEqual(['plughw:0,0']);
    expect(caps.audio.playback.map((a) => a.alsa)).toEqual(['plughw:0,0', 'plughw:0,3']);
  });

  it('generic x86 without v4l2-ctl: webcam listed with unknown formats, metadata node skipped', async () => {
    const files = {
      'sys/class/dmi/id/product_name': 'Standard PC (Q35 + ICH9, 2009)\n',
      'proc/cpuinfo': 'model name\t: AMD EPYC\n',
      ...PI4_WEBCAM,
    };
    const script: Script = { 'gst-inspect-1.0 --version': GST_VERSION, 'gst-inspect-1.0': gstList() };
    const { caps, paths } = await probeWith(files, script, 'x64', { DISPLAY: ':0' });
    expect(caps.board.kind).toBe('x86');
    expect(caps.headless).toBe(false);
    expect(pickEncoder(caps)).toBe('x264enc');
    expect(caps.cameras).toEqual([{ kind: 'v4l2', device: paths.dev('video0'), name: 'HD Pro Webcam C920', formats: [] }]);
    expect(formatCapabilities(caps)).toContain('no TV connected');
  });

  it('no camera: warns the technician', async () => {
    const { caps } = await probeWith(PI4_FILES, PI4_SCRIPT, 'arm64');
    expect(caps.cameras).toEqual([]);
    expect(formatCapabilities(caps)).toMatch(/Cameras: none[\s\S]*no camera found/);
  });

  it('no TV: HDMI disconnected is reported as such', async () => {
    const files = { ...PI4_FILES, ...PI4_WEBCAM, ...drm('card1-HDMI-A-1', 'disconnected') };
    const { caps } = await probeWith(files, PI4_SCRIPT, 'arm64');
    expect(caps.displays.every((d) => !d.connected)).toBe(true);
    const text = formatCapabilities(caps);
    expect(text).toContain('card1-HDMI-A-1: disconnected');
    expect(text).toContain('no TV connected');
  });

  it('nothing there at all: empty results, no throw', async () => {
    const { caps } = await probeWith({}, {}, 'riscv64');
    expect(caps).toMatchObject({ board: { model: null, kind: 'unknown' }, gstreamerVersion: null, cameras: [], displays: [] });
    expect(caps.audio).toEqual({ capture: [], playback: [] });
    expect(Object.values(caps.elements).some(Boolean)).toBe(false);
    expect(pickEncoder(caps)).toBeNull();
    const text = formatCapabilities(caps);
    expect(text).toContain('GStreamer not found');
    expect(text).toContain('no H.264 encoder');
  });

  it('asks element by element when the listing fails but gst-inspect-1.0 exists', async () => {
    const script: Script = {
      'gst-inspect-1.0 --version': GST_VERSION,
      'gst-inspect-1.0': { code: 1, stdout: '', stderr: 'boom' },
      'gst-inspect-1.0 x264enc': 'Factory Details:\n',
    };
    const { caps, calls } = await probeWith({}, script, 'x64');
    expect(caps.elements.x264enc).toBe(true);
    expect(caps.elements.avdec_h264).toBe(false);
    expect(calls.filter((c) => /^gst-inspect-1\.0 \w+$/.test(c))).toHaveLength(exportedElementList.length);
  });
});

describe('probe parsers', () => {
  it('reads feature names from gst-inspect lines only', () => {
    const names = parseGstInspectList(gstList(GST_V4L2_CODEC));
    expect(names.has('v4l2h264enc')).toBe(true);
    expect(names.has('latency')).toBe(false);
    expect(names.has('Total')).toBe(false);
  });

  it('classifies boards', () => {
    expect(boardKind('Raspberry Pi Compute Module 4 Rev 1.0', null, 'arm64')).toBe('pi4');
    expect(boardKind('Raspberry Pi 400 Rev 1.0', null, 'arm')).toBe('pi4');
    expect(boardKind('Raspberry Pi 500 Rev 1.0', null, 'arm64')).toBe('pi5');
    expect(boardKind('Raspberry Pi Compute Module 5 Rev 1.0', null, 'arm64')).toBe('pi5');
    expect(boardKind('Radxa ROCK 5B', null, 'arm64')).toBe('arm');
    expect(boardKind(null, 'Intel(R) Core(TM) i3-N305', 'x64')).toBe('n100');
  });

  it('parses /proc/asound/pcm and v4l2-ctl output', () => {
    expect(parseAsoundPcm('01-00: USB Audio : USB Audio : playback 1 : capture 1\n')).toEqual({
      capture: [{ card: 1, device: 0, name: 'USB Audio', alsa: 'plughw:1,0' }],
      playback: [{ card: 1, device: 0, name: 'USB Audio', alsa: 'plughw:1,0' }],
    });
    expect(parseV4l2Ctl(UVC_CAPTURE)).toEqual({ formats: ['MJPG', 'YUYV'], deviceCaps: ['Video Capture', 'Streaming'], driver: 'uvcvideo' });
  });

  it('never takes Pi codec/ISP nodes or raw Bayer receivers for cameras, even without v4l2-ctl', () => {
    expect(isCaptureCamera('bcm2835-codec-decode', null, 0)).toBe(false);
    expect(isCaptureCamera('bcm2835-isp', null, 0)).toBe(false);
    expect(isCaptureCamera('rp1-cfe-csi2_ch0', null, 0)).toBe(false);
    expect(isCaptureCamera('rp1-cfe-csi2_ch0', { formats: ['UYVY'], deviceCaps: ['Video Capture'], driver: 'rp1-cfe' }, 0)).toBe(true);
    expect(isCaptureCamera('USB Camera', null, null)).toBe(true);
  });
});

describe('probeCommand', () => {
  const pi4 = async (): Promise<{ paths: HostPaths; runCommand: RunCommand; env: NodeJS.ProcessEnv; arch: string }> => {
    const paths = await trees.make({ ...PI4_FILES, ...PI4_WEBCAM });
    return { paths, runCommand: runnerFor(paths, PI4_SCRIPT).run, env: {}, arch: 'arm64' };
  };

  it('prints JSON with --json and a summary without', async () => {
    const deps = await pi4();
    const out: string[] = [];
    expect(await probeCommand(['--json'], (s) => out.push(s), deps)).toBe(0);
    expect(JSON.parse(out[0] ?? '')).toEqual(await probe(deps));
    expect(await probeCommand([], (s) => out.push(s), deps)).toBe(0);
    expect(out[1]).toContain('H.264 encoder: v4l2h264enc will be used');
  });

  it('rejects unknown arguments with exit code 2', async () => {
    const out: string[] = [];
    expect(await probeCommand(['--jsn'], (s) => out.push(s))).toBe(2);
    expect(out.join('\n')).toContain('usage: ep probe');
  });
});
