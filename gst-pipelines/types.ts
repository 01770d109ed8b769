/**
 * Types shared by the media side: what the probe finds, what the planner is asked to
 * build, what it produces. Plain data only, so the planner stays a pure function and
 * plans can cross the IPC boundary to the worker as JSON.
 */
import type { MediaJoinSpec } from './join-spec.js';

export type { MediaJoinSpec };

export type BoardKind = 'pi4' | 'pi5' | 'n100' | 'x86' | 'arm' | 'unknown';

export interface BoardInfo {
  /** The device-tree / DMI model string, or null when unreadable. */
  model: string | null;
  kind: BoardKind;
  arch: string;
}

export interface CameraInfo {
  kind: 'libcamera' | 'v4l2';
  /** `/dev/videoN` for V4L2, the libcamera camera name for libcamera. */
  device: string;
  name: string;
  /** Pixel formats the device offers, e.g. `MJPG`, `YUYV`; empty when unknown. */
  formats: string[];
}

export interface DisplayInfo {
  /** DRM connector, e.g. `card1-HDMI-A-1`. */
  connector: string;
  connected: boolean;
  /** Preferred mode, e.g. `1920x1080`, when the connector lists one. */
  mode: string | null;
}

export interface AlsaDevice {
  card: number;
  device: number;
  name: string;
  /** ALSA device string usable as `device=` on alsasrc/alsasink, e.g. `hw:1,0`. */
  alsa: string;
}

/** What a box has, found at run time. Produced by `probe()`; input of `planSession()`. */
export interface Capabilities {
  board: BoardInfo;
  gstreamerVersion: string | null;
  /** Element name → present in the GStreamer registry. Only names we asked about. */
  elements: Record<string, boolean>;
  cameras: CameraInfo[];
  displays: DisplayInfo[];
  audio: { capture: AlsaDevice[]; playback: AlsaDevice[] };
  /** True when no X11/Wayland session owns the display (kmssink may take DRM). */
  headless: boolean;
}

/** Settings the agent passes to the planner (from config and the `config` command). */
export interface MediaSettings {
  /** `auto` uses the real devices; `test` uses test sources and headless sinks. */
  source: 'auto' | 'test';
  /** 0..1 speaker volume. */
  volume: number;
  micMuted: boolean;
  /** Echo cancellation / noise suppression / AGC on the mic path. */
  aec: boolean;
  /** Seconds between stats reports from the worker. */
  statsPeriodS: number;
  /** Write a PNG of the sent and displayed picture into this directory (demo, selftest). */
  snapshotDir?: string;
  /** Text shown on the standby screen (the commune's name). */
  standbyTitle?: string;
  /**
   * Pitch of the test source's ticks (`source: test`), default 440 Hz. A test hub sends
   * another pitch: with both ends ticking the same tone, the box's echo canceller rightly
   * takes its own mic for an echo of the program and suppresses it (flaky tests).
   */
  testToneHz?: number;
}

export type VideoEncoderKind = 'v4l2h264enc' | 'vah264enc' | 'x264enc' | 'openh264enc';
export type VideoDecoderKind = 'v4l2h264dec' | 'vah264dec' | 'avdec_h264' | 'openh264dec';

/** Which concrete elements a plan uses: reported in state/selftest and logs. */
export interface PlanChoices {
  encoder: VideoEncoderKind | null;
  decoder: VideoDecoderKind | null;
  camera: string;
  display: string;
  mic: string;
  speaker: string;
  aec: boolean;
}

/**
 * One media session as launch strings. `pipeline` is what the worker runs: the muxer's
 * output leaves through the fdsink named `tsout` into a FIFO the worker reads, is
 * re-packetised into whole 1316-byte SRT messages flushed at each frame end (see
 * mpegts/packetizer.ts), then enters the appsrc `tsin` → srtsink. `direct` is the same
 * session with mpegtsmux feeding srtsink itself (alignment=7), runnable by bare
 * gst-launch-1.0 — the benchmark's reference.
 */
export interface SessionPlan {
  kind: 'session';
  pipeline: string;
  direct: string;
  choices: PlanChoices;
  /** Names of elements the worker reads at run time. */
  names: {
    /** The video muxer's fdsink, read by the worker (absent with `framer`). */
    tsOut?: string;
    /** The audio muxer's fdsink (audio is muxed apart so video never waits for it). */
    tsAudioOut?: string;
    /** The appsrc the worker feeds with SRT messages (absent with `framer`). */
    tsIn?: string;
    /** epframer (native/plugin.ts): merges and frames in GStreamer; the worker only reads its counters. */
    framer?: string;
    srtSink: string;
    srtSrc: string;
    rxVideoTap: string;
    /** The raw receive tap's fdsink (SessionRole.auditReceive). */
    rxTsOut?: string;
    encoder: string | null;
    snapshotSend: string | null;
    snapshotReceive: string | null;
  };
  video: { width: number; height: number; fps: number; bitrateKbps: number };
  audio: { bitrateKbps: number };
  /** Link adaptation: the controller's configuration and how to act on this encoder. */
  adapt: AdaptPlan;
  /** Extra environment for the worker process (e.g. glimagesink on gbm/egl). */
  env: Record<string, string>;
}

export interface AdaptPlan extends AdaptConfig {
  /** The encoder property that takes a new bitrate while playing (null: this encoder cannot). */
  /**
   * `structure`: the property is a GstStructure (v4l2h264enc `extra-controls`) set whole
   * from this string, bits per second in place of plan/codecs.ts BPS (patched binding only).
   */
  bitrate: { element: string; property: string; perKbps: number; structure?: string } | null;
  /** Elements the worker drives per rung (see plan/send.ts videoSendBranch). */
  elements: { gate: string; parser: string; rate: string | null; scale: string | null };
}

/**
 * The standby screen's texts (plan/standby.ts standbyTexts): plain text, NFC, already
 * wrapped (`\n` between lines); '' hides that text.
 */
export interface StandbyTexts {
  /** The commune's name, large. */
  title: string;
  /** The box's state in words: Vietnamese, English below. */
  status: string;
  /** The next meeting the hub announced: its start (local time) and title. */
  next: string;
  /** The first problem's advice (Vietnamese). */
  fault: string;
  /** Hand raised / mic muted. */
  badges: string;
}

export interface StandbyPlan {
  kind: 'standby';
  pipeline: string;
  choices: Pick<PlanChoices, 'display'>;
  env: Record<string, string>;
  /** What the pipeline shows when it starts (MediaSupervisor.updateStandby changes it live). */
  texts?: StandbyTexts;
  /** The displayed picture's PNG appsink (settings.snapshotDir), read by the worker's Snapshots. */
  names?: { snapshotReceive: string | null };
}

export type MediaPlan = SessionPlan | StandbyPlan;

export interface Rung {
  id: string;
  width: number;
  height: number;
  fps: number;
  /** Lowest video bitrate worth sending at this rung. */
  minKbps: number;
}

export interface AdaptConfig {
  enabled: boolean;
  /** Top video bitrate (the join spec's). */
  maxKbps: number;
  /** Video rungs, best first (ladderFor). */
  ladder: Rung[];
  /** What the audio alone costs on the wire (Opus + TS + SRT headers), kbit/s. */
  audioWireKbps: number;
  /** SRT latency: queueing delay beyond a fraction of it makes packets late at the hub. */
  srtLatencyMs: number;
}

export type AdaptReason = 'queueing-delay' | 'loss-with-delay' | 'sender-drops' | 'delivery-collapse' | 'clean-link' | 'probe-ok' | 'false-alarm';

export interface AdaptChange {
  direction: 'down' | 'up';
  fromKbps: number;
  toKbps: number;
  fromRung: string;
  toRung: string;
  reason: AdaptReason;
  /** The measurements behind it, for the event and the logs. */
  rttMs: number | null;
  rttFloorMs: number | null;
  deliveredKbps: number | null;
  lossPct: number | null;
}

/** What the worker reports about adaptation (stats, state, health). */
export interface AdaptReport {
  enabled: boolean;
  rung: string;
  targetKbps: number;
  probeKbps: number;
  /** Wire rate srtsink sent over the last sample. */
  sendKbps: number | null;
  rttMs: number | null;
  rttFloorMs: number | null;
  congested: boolean;
  steps: { down: number; up: number };
  /**
   * Where a restarted worker of this session starts: the rung and rate before a cut that
   * still awaits confirmation (made on the ACKs alone: a link that went down, or a hub that
   * stalled, looks the same for a moment), else the current ones. A worker restarted
   * because the link went down then comes back at the rate the link had, not audio-only.
   */
  resume?: { rung: string; targetKbps: number };
}

export interface SrtLinkStats {
  rttMs: number | null;
  lossPct: number | null;
  retransPct: number | null;
  bandwidthMbps: number | null;
  sendRateMbps: number | null;
}
