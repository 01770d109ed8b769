/**
 * The planner: join spec + capabilities + settings → launch strings. Pure functions
 * only; nothing here touches GStreamer, the file system or the clock, so every board
 * profile is a fast unit test with plain objects.
 *
 * One media session is ONE top-level pipeline, because webrtcdsp (mic path) must see
 * its webrtcechoprobe (speaker path) in the same pipeline and at the same rate.
 */
import { ladderFor } from '../adapt/index.js';
import { branches, chain, h264Level, parseSrtUrl, q } from './launch.js';
import type { Capabilities, MediaJoinSpec, MediaSettings, PlanChoices, Rung, SessionPlan, StandbyPlan, VideoDecoderKind, VideoEncoderKind } from '../types.js';

export const ENCODER_PREFERENCE: readonly VideoEncoderKind[] = ['v4l2h264enc', 'vah264enc', 'x264enc', 'openh264enc'];
export const DECODER_PREFERENCE: readonly VideoDecoderKind[] = ['v4l2h264dec', 'vah264dec', 'avdec_h264', 'openh264dec'];

/** Audio sample rate of the whole audio path (webrtcdsp wants 8/16/32/48 kHz). */
export const AUDIO_RATE = 48000;

export const DEFAULT_VIDEO = { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 } as const;
export const DEFAULT_AUDIO_KBPS = 32;
export const DEFAULT_SRT_LATENCY_MS = 200;

export const ELEMENT_NAMES = {
  tsOut: 'tsout',
  tsAudioOut: 'tsaout',
  audioMux: 'amux',
  tsIn: 'tsin',
  /** epframer (native.ts): merges the two muxers and frames SRT messages in GStreamer. */
  framer: 'framer',
  srtSink: 'srtout',
  srtSrc: 'srtin',
  rxVideoTap: 'rxvtap',
  /** The hub's raw receive tap (SessionRole.auditReceive): every TS packet, for TsAudit. */
  rxTsOut: 'rxtsout',
  encoder: 'venc',
  snapshotSend: 'snapsend',
  snapshotReceive: 'snaprecv',
  echoProbe: 'echoprobe',
  micLevel: 'txlevel',
  speakerLevel: 'rxlevel',
  micVolume: 'micvol',
  speakerVolume: 'spkvol',
  testVideoValve: 'testvalve',
  /** Link adaptation (adapt.ts): audio-only gate, rung caps, and the parser for forced keyframes. */
  videoGate: 'vgate',
  videoRate: 'vrate',
  videoCaps: 'vcaps',
  videoParser: 'vparse',
  /** On-screen text over the TV picture (identify shows the box's name here). */
  osd: 'osd',
} as const;

export function pickEncoder(caps: Capabilities): VideoEncoderKind | null {
  return ENCODER_PREFERENCE.find((e) => caps.elements[e]) ?? null;
}

export function pickDecoder(caps: Capabilities): VideoDecoderKind | null {
  return DECODER_PREFERENCE.find((e) => caps.elements[e]) ?? null;
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
const even = (v: number): number => Math.max(2, Math.round(v / 2) * 2);

export class PlanError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'PlanError';
  }
}

export function isPlanError(e: unknown): e is PlanError {
  return e instanceof PlanError;
}

function videoParams(spec: MediaJoinSpec): SessionPlan['video'] {
  const v = spec.send.video ?? {};
  return {
    width: even(clamp(v.width ?? DEFAULT_VIDEO.width, 160, 1920)),
    height: even(clamp(v.height ?? DEFAULT_VIDEO.height, 90, 1080)),
    fps: Math.round(clamp(v.fps ?? DEFAULT_VIDEO.fps, 1, 60)),
    bitrateKbps: Math.round(clamp(v.bitrateKbps ?? DEFAULT_VIDEO.bitrateKbps, 64, 8000)),
  };
}

/** Placeholder for bits per second in an encoder's control structure. */
export const BPS = '{bps}';

/** v4l2h264enc's `extra-controls` (GstStructure), bitrate left as BPS. */
function v4l2Controls(gop: number): string {
  return `controls,repeat_sequence_header=1,video_bitrate=${BPS},h264_i_frame_period=${gop}`;
}

const gopFor = (v: SessionPlan['video']): number => Math.max(1, Math.round(v.fps * 2)); // a keyframe at least every ~2 s

/** Encoder section: raw video in (any format) → H.264 byte-stream out, named `venc`. */
export function encoderChain(kind: VideoEncoderKind, v: SessionPlan['video']): string {
  const gop = gopFor(v);
  const name = ELEMENT_NAMES.encoder;
  switch (kind) {
    case 'v4l2h264enc':
      return chain(
        'videoconvert',
        'video/x-raw,format=I420',
        `v4l2h264enc name=${name} extra-controls="${v4l2Controls(gop).replace(BPS, String(v.bitrateKbps * 1000))}"`,
        `video/x-h264,level=(string)${h264Level(v.width, v.height, v.fps)}`,
      );
    case 'vah264enc':
      return chain(
        'videoconvert',
        'video/x-raw,format=NV12',
        `vah264enc name=${name} rate-control=cbr bitrate=${v.bitrateKbps} key-int-max=${gop} b-frames=0`,
        'video/x-h264,profile=(string)main',
      );
    case 'x264enc':
      // I420 forced: letting x264 negotiate Y444 doubles the CPU (measured, issue #2).
      return chain(
        'videoconvert',
        'video/x-raw,format=I420',
        // vbv-buf-capacity 200 ms (default 600): a bitrate set while playing (link adaptation)
        // settles in ~0.15 s down / 0.3 s up instead of 0.5 / 1.5 s (measured).
        `x264enc name=${name} tune=zerolatency speed-preset=ultrafast bitrate=${v.bitrateKbps} vbv-buf-capacity=200 key-int-max=${gop} bframes=0`,
        'video/x-h264,profile=(string)constrained-baseline',
      );
    case 'openh264enc':
      return chain(
        'videoconvert',
        'video/x-raw,format=I420',
        // qp-min: with the default 0, openh264 sent 3.8–4.0 Mbit/s for a 1.5 Mbit/s target (measured).
        `openh264enc name=${name} bitrate=${v.bitrateKbps * 1000} gop-size=${gop} complexity=low rate-control=bitrate qp-min=10`,
      );
  }
}

export function decoderChain(kind: VideoDecoderKind): string {
  switch (kind) {
    case 'v4l2h264dec':
      return 'v4l2h264dec ! videoconvert';
    case 'vah264dec':
      return 'vah264dec ! videoconvert';
    case 'avdec_h264':
      return 'avdec_h264 ! videoconvert';
    case 'openh264dec':
      return 'openh264dec ! videoconvert';
  }
}

interface Endpoints {
  camera: { chain: string; label: string };
  display: { sink: string; label: string };
  mic: { chain: string; label: string };
  speaker: { sink: string; label: string };
}

function rawVideoCaps(v: { width: number; height: number; fps: number }): string {
  return `video/x-raw,width=${v.width},height=${v.height},framerate=${v.fps}/1`;
}

/**
 * Sources and sinks, best first. Every sink is `async=false`: a branch that gets no
 * data yet (the hub's program not started, SRT still connecting) must not hold the
 * whole live pipeline in PAUSED waiting for its preroll (seen here: nothing flowed).
 * Order: libcamerasrc → v4l2src → test card; kmssink → glimagesink → … → fakesink.
 */
export function pickEndpoints(caps: Capabilities, settings: MediaSettings, v: SessionPlan['video'], title: string): Endpoints {
  const scaleTo = chain('videoconvert', 'videoscale', 'videorate', rawVideoCaps(v));
  const testCard = (pattern: string, text: string): string =>
    chain(
      `videotestsrc is-live=true pattern=${pattern}`,
      rawVideoCaps(v),
      `valve name=${ELEMENT_NAMES.testVideoValve} drop=false`,
      caps.elements.textoverlay ? `textoverlay text=${q(text)} valignment=top halignment=left font-desc="Sans 20"` : null,
      caps.elements.textoverlay ? 'timeoverlay valignment=bottom halignment=right font-desc="Sans 16"' : null,
    );
  const test = settings.source === 'test';

  let camera: Endpoints['camera'];
  const libcam = caps.cameras.find((c) => c.kind === 'libcamera');
  const v4l2 = caps.cameras.find((c) => c.kind === 'v4l2');
  if (test) camera = { chain: testCard('smpte', title), label: 'videotestsrc' };
  else if (libcam && caps.elements.libcamerasrc)
    camera = { chain: chain(`libcamerasrc camera-name=${q(libcam.device)}`, `video/x-raw,width=${v.width},height=${v.height}`, scaleTo), label: `libcamerasrc ${libcam.name}` };
  else if (v4l2 && caps.elements.v4l2src) {
    const mjpeg = v4l2.formats.includes('MJPG');
    camera = {
      chain: chain(`v4l2src device=${q(v4l2.device)}`, mjpeg ? `image/jpeg,width=${v.width},height=${v.height}` : null, mjpeg ? 'jpegdec' : null, scaleTo),
      label: `v4l2src ${v4l2.device}${mjpeg ? ' (MJPG)' : ''}`,
    };
  } else camera = { chain: testCard('black', `${title} — camera unavailable`), label: 'no camera: test card' };

  let display: Endpoints['display'];
  const tv = caps.displays.find((d) => d.connected);
  if (test) display = { sink: 'fakesink sync=false async=false', label: 'fakesink' };
  else if (tv && caps.headless && caps.elements.kmssink) display = { sink: 'kmssink sync=false async=false', label: `kmssink ${tv.connector}` };
  else if (tv && caps.elements.glimagesink) display = { sink: 'glimagesink sync=false async=false', label: `glimagesink ${tv.connector}` };
  else if (!caps.headless && caps.elements.autovideosink) display = { sink: 'autovideosink sync=false async=false', label: 'autovideosink' };
  else display = { sink: 'fakesink sync=false async=false', label: 'no display: fakesink' };

  const micDev = caps.audio.capture[0];
  let mic: Endpoints['mic'];
  if (test) mic = { chain: `audiotestsrc is-live=true wave=ticks volume=0.4 freq=${settings.testToneHz ?? 440}`, label: 'audiotestsrc' };
  else if (micDev && caps.elements.alsasrc) mic = { chain: `alsasrc device=${q(micDev.alsa)}`, label: `alsasrc ${micDev.alsa} ${micDev.name}` };
  else mic = { chain: 'audiotestsrc is-live=true wave=silence', label: 'no mic: silence' };

  const spkDev = caps.audio.playback[0];
  let speaker: Endpoints['speaker'];
  if (test) speaker = { sink: 'fakesink sync=false async=false', label: 'fakesink' };
  else if (spkDev && caps.elements.alsasink)
    speaker = { sink: `alsasink device=${q(spkDev.alsa)} sync=false async=false buffer-time=60000 latency-time=10000`, label: `alsasink ${spkDev.alsa} ${spkDev.name}` };
  else speaker = { sink: 'fakesink sync=false async=false', label: 'no speaker: fakesink' };

  return { camera, display, mic, speaker };
}

/** Environment the worker needs for a display sink (glimagesink without a desktop). */
export function sinkEnv(displaySink: string): Record<string, string> {
  return displaySink.startsWith('glimagesink') ? { GST_GL_WINDOW: 'gbm', GST_GL_PLATFORM: 'egl' } : {};
}

function osdOverlay(): string {
  return `textoverlay name=${ELEMENT_NAMES.osd} silent=true text=" " valignment=center halignment=center font-desc="Sans 48"`;
}

function snapshotBranch(tee: string, name: string): string {
  return chain(
    `${tee}.`,
    'queue leaky=downstream max-size-buffers=2',
    'videorate drop-only=true max-rate=1',
    'videoconvert',
    'video/x-raw,format=RGB',
    'pngenc compression-level=1',
    `appsink name=${name} sync=false async=false max-buffers=1 drop=true`,
  );
}

function srtUri(url: string, path: string): string {
  try {
    const { host, port } = parseSrtUrl(url);
    return `srt://${host.includes(':') ? `[${host}]` : host}:${port}`;
  } catch (e) {
    throw new PlanError(path, (e as Error).message);
  }
}

export interface SessionRole {
  /** `caller` for a box (CONTRACT.md); `listener` for the local test hub, which binds the ports. */
  srtMode: 'caller' | 'listener';
  /** Interval of the program-audio level reports (1000 ms; the test hub uses 100 to see audio breaks). */
  speakerLevelMs?: number;
  /**
   * The test hub: also hand every received TS packet to the worker (a FIFO, like the send
   * side), which audits it (ts-audit.ts: each Opus frame and video frame, whole or not).
   */
  auditReceive?: boolean;
}

/** Plans one media session (send + receive + AEC) for the given capabilities. */
export function planSession(spec: MediaJoinSpec, caps: Capabilities, settings: MediaSettings, role: SessionRole = { srtMode: 'caller' }): SessionPlan {
  const v = videoParams(spec);
  const audioKbps = Math.round(clamp(spec.send.audio?.bitrateKbps ?? DEFAULT_AUDIO_KBPS, 6, 128));
  const latency = Math.round(clamp(spec.srt?.latencyMs ?? DEFAULT_SRT_LATENCY_MS, 20, 8000));
  const sendUri = srtUri(spec.send.url, 'send.url');
  const recvUri = srtUri(spec.receive.url, 'receive.url');
  const encoder = pickEncoder(caps);
  const decoder = pickDecoder(caps);
  if (!encoder) throw new PlanError('capabilities.elements', 'no H.264 encoder in the GStreamer registry');
  if (!decoder) throw new PlanError('capabilities.elements', 'no H.264 decoder in the GStreamer registry');
  for (const e of ['srtsink', 'srtsrc', 'mpegtsmux', 'tsdemux', 'h264parse', 'opusenc', 'opusdec'])
    if (caps.elements[e] === false) throw new PlanError('capabilities.elements', `required element ${e} is missing`);
  const aec = settings.aec && caps.elements.webrtcdsp !== false && caps.elements.webrtcechoprobe !== false;
  const ends = pickEndpoints(caps, settings, v, settings.standbyTitle ?? spec.title ?? spec.meetingId);
  const n = ELEMENT_NAMES;
  const snap = settings.snapshotDir !== undefined;
  // Our native framer, when the build made it and the probe found it (native.ts).
  const framer = caps.elements.epframer === true;
  const pbkeylen = spec.srt?.passphrase ? ` pbkeylen=${spec.srt.pbkeylen ?? 16}` : '';
  const srtCommon = `latency=${latency}${pbkeylen}`;
  // The mode goes in the URI: srtsink/srtsrc 1.22 re-derive it from the URI, and a
  // separate `mode=listener` property after a plain URI did not listen (seen here).
  const mode = role.srtMode;
  const streamId = (id: string | undefined): string => (id ? ` streamid=${q(id)}` : '');
  const audioCaps = `audio/x-raw,format=S16LE,rate=${AUDIO_RATE},channels=1`;

  const ladder = ladderFor(v).map((r) => ({ ...r, minKbps: Math.max(r.minKbps, spec.send.adapt?.minVideoKbps ?? 0) }));
  const videoSend = chain(
    ends.camera.chain,
    snap ? 'tee name=sendtee' : null,
    'queue max-size-buffers=2 leaky=downstream',
    // Link adaptation acts here while playing (worker.ts): a rung is one caps string (size
    // + frame rate) on vcaps — the binding sets caps properties from strings;
    // videorate/videoscale pass frames untouched at the top rung. The audio-only gate
    // comes after them: closed before videorate, videorate let every frame through for
    // seconds after it reopened (30 fps at a 15 fps rung, twice the bitrate; seen here).
    `videorate name=${n.videoRate} drop-only=true`,
    'videoscale',
    `capsfilter name=${n.videoCaps} caps=${q(rungCaps(ladder[0] ?? { ...v, id: 'top', minKbps: 0 }))}`,
    `valve name=${n.videoGate} drop=false`,
    encoderChain(encoder, v),
    `h264parse name=${n.videoParser} config-interval=-1`,
    'queue max-size-time=500000000',
    // Fixed PIDs (video 65, audio 66): the two muxers of a session must never collide.
    'mux.sink_65',
  );
  const audioSend = chain(
    ends.mic.chain,
    'audioconvert',
    'audioresample',
    audioCaps,
    aec
      ? `webrtcdsp probe=${n.echoProbe} echo-cancel=true noise-suppression=true gain-control=true`
      : null,
    `volume name=${n.micVolume} mute=${settings.micMuted}`,
    `level name=${n.micLevel} interval=1000000000`,
    'audioconvert',
    `opusenc audio-type=voice bitrate=${audioKbps * 1000} inband-fec=true frame-size=20`,
    'queue max-size-time=500000000',
  );
  const receive = branches(
    // keep-listening: a listener (the local hub) takes the next caller when one leaves; without it
    // srtsrc 1.22 serves one caller, then EOSes this branch for good (seen here).
    chain(
      `srtsrc name=${n.srtSrc} uri=${q(`${recvUri}?mode=${mode}`)} ${srtCommon}${streamId(spec.receive.streamId)}${mode === 'listener' ? ' keep-listening=true' : ''}`,
      role.auditReceive ? 'tee name=rxts' : null,
      role.auditReceive ? 'queue max-size-time=500000000' : null,
      'tsdemux name=demux',
    ),
    // Never leaky: a dropped buffer here would read as audio the link lost. 2000 buffers
    // (~10 s at this rate) of slack for the worker's reads.
    role.auditReceive ? chain('rxts.', 'queue max-size-buffers=2000 max-size-bytes=0 max-size-time=0', `fdsink name=${n.rxTsOut} sync=false async=false`) : null,
    chain(
      'demux.',
      'queue max-size-time=500000000',
      // AU alignment declared: otherwise h264parse waits for the next frame (FIELD-NOTES.md).
      'video/x-h264,alignment=au',
      'h264parse',
      'tee name=rxtee',
      'queue max-size-time=500000000',
      decoderChain(decoder),
      caps.elements.textoverlay ? osdOverlay() : null,
      snap ? 'tee name=displaytee' : null,
      'queue max-size-buffers=3 leaky=downstream',
      ends.display.sink,
    ),
    // Received frames are counted here. A box reads the fakesink's `rendered` count a few
    // times a second (no per-frame work in Node); the test hub's audit pulls every frame
    // through an appsink for exact arrival times (freeze lengths to the millisecond).
    chain(
      'rxtee.',
      'queue leaky=downstream max-size-buffers=60',
      role.auditReceive
        ? `appsink name=${n.rxVideoTap} sync=false async=false max-buffers=60 drop=true`
        : `fakesink name=${n.rxVideoTap} sync=false async=false`,
    ),
    chain(
      'demux.',
      'queue max-size-time=500000000',
      'opusdec plc=true',
      'audioconvert',
      'audioresample',
      audioCaps,
      `level name=${n.speakerLevel} interval=${Math.round(clamp(role.speakerLevelMs ?? 1000, 20, 10_000)) * 1_000_000}`,
      aec ? `webrtcechoprobe name=${n.echoProbe}` : null,
      `volume name=${n.speakerVolume} volume=${clamp(settings.volume, 0, 1.5).toFixed(2)}`,
      'audioconvert',
      ends.speaker.sink,
    ),
    snap ? snapshotBranch('sendtee', n.snapshotSend) : null,
    snap ? snapshotBranch('displaytee', n.snapshotReceive) : null,
  );
  // maxbw=0 + oheadbw=25: SRT's total send rate (retransmissions included) is capped at
  // 125 % of the measured input rate. With libsrt's default (no cap), a congested link
  // got twice the encoder's rate in retransmissions and stayed saturated for seconds
  // after the encoder slowed down (measured through the bottleneck, issue #4).
  const sendOpts = mode === 'caller' ? '&maxbw=0&oheadbw=25' : '';
  const srtSink = `srtsink name=${n.srtSink} uri=${q(`${sendUri}?mode=${mode}${sendOpts}`)} ${srtCommon}${streamId(spec.send.streamId)} wait-for-connection=false sync=false async=false`;
  // Audio in its own muxer (PID 66): in one muxer every video frame waited for the Opus
  // packet covering its timestamp (~20 ms). The two outputs become one stream of whole
  // SRT messages, flushed at every video frame end: inside GStreamer by our epframer
  // element where it is built (native.ts), else in the worker (ts-merge.ts +
  // ts-packetizer.ts) between fdsinks it reads and an appsrc it feeds.
  const pipeline = framer
    ? branches(
        videoSend,
        chain(audioSend, `${n.audioMux}.sink_66`),
        chain('mpegtsmux name=mux alignment=0', `${n.framer}.video`),
        chain(`mpegtsmux name=${n.audioMux} alignment=0`, `${n.framer}.audio`),
        chain(`epframer name=${n.framer}`, srtSink),
        receive,
      )
    : branches(
        videoSend,
        chain(audioSend, `${n.audioMux}.sink_66`),
        // fdsinks: the worker points their fds at pipes it reads (worker.ts openTsPipe).
        chain('mpegtsmux name=mux alignment=0', `fdsink name=${n.tsOut} sync=false async=false`),
        chain(`mpegtsmux name=${n.audioMux} alignment=0`, `fdsink name=${n.tsAudioOut} sync=false async=false`),
        chain(`appsrc name=${n.tsIn} is-live=true format=time do-timestamp=true caps=video/mpegts,systemstream=true,packetsize=188`, srtSink),
        receive,
      );
  // What gst-launch-1.0 can run (benchmarks): with epframer, the pipeline itself.
  const direct = framer ? pipeline : branches(videoSend, chain(audioSend, 'mux.sink_66'), chain('mpegtsmux name=mux alignment=7', srtSink), receive);

  const choices: PlanChoices = {
    encoder,
    decoder,
    camera: ends.camera.label,
    display: ends.display.label,
    mic: ends.mic.label,
    speaker: ends.speaker.label,
    aec,
  };
  return {
    kind: 'session',
    pipeline,
    direct,
    choices,
    env: sinkEnv(ends.display.sink),
    names: {
      ...(framer ? { framer: n.framer } : { tsOut: n.tsOut, tsAudioOut: n.tsAudioOut, tsIn: n.tsIn }),
      srtSink: n.srtSink,
      srtSrc: n.srtSrc,
      rxVideoTap: n.rxVideoTap,
      ...(role.auditReceive ? { rxTsOut: n.rxTsOut } : {}),
      encoder: n.encoder,
      snapshotSend: snap ? n.snapshotSend : null,
      snapshotReceive: snap ? n.snapshotReceive : null,
    },
    video: v,
    audio: { bitrateKbps: audioKbps },
    adapt: {
      enabled: spec.send.adapt?.enabled !== false,
      maxKbps: v.bitrateKbps,
      ladder,
      audioWireKbps: AUDIO_WIRE_KBPS,
      srtLatencyMs: latency,
      bitrate: runtimeBitrate(encoder, v),
      elements: { gate: n.videoGate, parser: n.videoParser, rate: n.videoRate, scale: n.videoCaps },
    },
  };
}

/**
 * What audio alone costs on the wire: one 188-byte TS packet per 20 ms Opus frame (up to
 * ~64 kbit/s Opus) in 7-packet SRT messages, + 44 bytes of SRT/UDP/IP per message ≈ 78
 * kbit/s; the controller keeps this much free for it.
 */
export const AUDIO_WIRE_KBPS = 80;

/** The caps string of a rung (even sizes: an odd one stops x264 and the whole pipeline). */
export function rungCaps(r: Pick<Rung, 'width' | 'height' | 'fps'>): string {
  return `video/x-raw,width=${even(r.width)},height=${even(r.height)},pixel-aspect-ratio=1/1,framerate=${r.fps}/1`;
}

/**
 * The encoder property that takes a bitrate while playing, through this binding (JS
 * numbers arrive as floats; whole kbit/s values are exact). v4l2h264enc keeps its bitrate
 * in the `extra-controls` structure: set whole, from a string, which only the patched
 * binding can do (scripts/patch-binding.mjs; gstv4l2object applies new extra-controls to
 * an open device at once). With the stock binding the worker skips it, and a Pi 4
 * adapts by rung (size, frame rate) and audio-only alone.
 */
export function runtimeBitrate(kind: VideoEncoderKind, v: SessionPlan['video']): SessionPlan['adapt']['bitrate'] {
  switch (kind) {
    case 'x264enc':
    case 'vah264enc':
      return { element: ELEMENT_NAMES.encoder, property: 'bitrate', perKbps: 1 };
    case 'openh264enc':
      return { element: ELEMENT_NAMES.encoder, property: 'bitrate', perKbps: 1000 };
    case 'v4l2h264enc':
      return { element: ELEMENT_NAMES.encoder, property: 'extra-controls', perKbps: 1000, structure: v4l2Controls(gopFor(v)) };
  }
}


/** The standby screen between meetings: the commune's name on a calm card, 5 fps. */
export function planStandby(caps: Capabilities, settings: MediaSettings, size = { width: 1280, height: 720 }): StandbyPlan {
  const ends = pickEndpoints(caps, settings, { ...size, fps: 5, bitrateKbps: 0 }, settings.standbyTitle ?? '');
  const title = settings.standbyTitle ?? 'Commune endpoint';
  const pipeline = chain(
    'videotestsrc is-live=true pattern=solid-color foreground-color=0xff1a3c5a',
    rawVideoCaps({ ...size, fps: 5 }),
    caps.elements.textoverlay ? `textoverlay text=${q(`${title}\nWaiting for the next meeting`)} valignment=center halignment=center font-desc="Sans 36"` : null,
    // clockoverlay ships in the same pango plugin as textoverlay: the wall clock, so a clerk sees the box is alive.
    caps.elements.textoverlay ? 'clockoverlay valignment=bottom halignment=right font-desc="Sans 20" time-format="%H:%M"' : null,
    caps.elements.textoverlay ? osdOverlay() : null,
    'videoconvert',
    ends.display.sink,
  );
  return { kind: 'standby', pipeline, choices: { display: ends.display.label }, env: sinkEnv(ends.display.sink) };
}
