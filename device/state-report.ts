/**
 * Pure builders of what the box reports: the retained state and the fault list.
 */
import { AUDIO_ONLY, type AdaptChange, type Capabilities } from '../gst-pipelines/index.js';
import type { MediaStatus } from '../gst-pipelines/index.js';
import type { HealthSample, ReportedState } from './contract/index.js';
import type { MeetingInfo, Phase } from './meeting.js';
import type { OtaStatus } from './updates.js';
import type { FieldBase } from './field/index.js';

export interface StateInputs {
  phase: Phase;
  meeting: MeetingInfo | null;
  media: MediaStatus;
  faults: string[];
  version: string;
  now: number;
  /** An update's progress or outcome (device/updates.ts), null when none. */
  ota?: OtaStatus | null;
}

/** Update phases during which an idle box reports `updating`. */
const UPDATING: ReadonlySet<string> = new Set(['checking', 'downloading', 'verifying', 'installing', 'switching', 'restarting', 'trying']);

const mediaState = (s: MediaStatus['send']): 'off' | 'ok' | 'starting' | 'retrying' | 'failed' => s;

export function buildReportedState(i: StateInputs): ReportedState {
  const inSession = i.media.plan === 'session';
  return {
    state: i.phase === 'fault' || (i.phase === 'idle' && i.faults.includes('media_failing')) ? 'fault' : i.phase === 'idle' && i.ota && UPDATING.has(i.ota.phase) ? 'updating' : i.phase,
    meeting: i.meeting ? { id: i.meeting.id, ...(i.meeting.title ? { title: i.meeting.title } : {}), since: i.meeting.since } : null,
    media: {
      send: inSession ? mediaState(i.media.send) : 'off',
      receive: inSession ? mediaState(i.media.receive) : 'off',
      encoder: i.media.choices?.encoder ?? null,
      restarts: i.media.restarts,
      lastError: i.media.lastError?.message ?? null,
      rung: inSession ? (i.media.link?.rung ?? null) : null,
    },
    ota: i.ota ?? null,
    faults: i.faults,
    version: i.version,
    ts: new Date(i.now).toISOString(),
  };
}

/**
 * What the field view (LEDs, TV, status page) is built from (device/field/field-state.ts).
 * The network: reaching the broker proves one; otherwise the last health sample's default
 * route and address (null before the first sample).
 */
export function fieldBaseOf(i: { name: string; deviceId: string; groupId: string; version: string; url: string; state: ReportedState; health: HealthSample | null; connected: boolean; hubDownSince: number | null; now: number; micMuted: boolean }): FieldBase {
  const s = i.state;
  return {
    name: i.name,
    deviceId: i.deviceId,
    groupId: i.groupId,
    version: i.version,
    state: s.state,
    unprovisionedReason: null,
    hub: { connected: i.connected, url: i.url, downForMs: i.connected || i.hubDownSince === null ? 0 : i.now - i.hubDownSince },
    network: i.connected ? true : i.health ? i.health.net.iface !== null && i.health.net.ip !== null : null,
    meeting: s.meeting ? { id: s.meeting.id, title: s.meeting.title ?? null, since: s.meeting.since } : null,
    faults: [...s.faults],
    ota: s.ota ? { phase: s.ota.phase, ...(s.ota.version ? { version: s.ota.version } : {}), ...(typeof s.ota.progress === 'number' ? { progress: s.ota.progress } : {}) } : null,
    micMuted: i.micMuted,
  };
}

/**
 * A step of the ladder (size, frame rate, audio-only) is an event; a bitrate change within
 * a rung is not (it happens every few seconds while the link moves): null.
 */
export function adaptEvent(c: AdaptChange): { severity: 'info' | 'warn'; detail: Record<string, unknown> } | null {
  if (c.fromRung === c.toRung) return null;
  const severity = c.direction === 'up' ? 'info' : c.toRung === AUDIO_ONLY ? 'warn' : 'info';
  return { severity, detail: { direction: c.direction, from: { rung: c.fromRung, kbps: c.fromKbps }, to: { rung: c.toRung, kbps: c.toKbps }, reason: c.reason, rttMs: c.rttMs, rttFloorMs: c.rttFloorMs } };
}

/** Faults the box can see without a health sample: devices from the probe, media. */
export function deviceFaults(caps: Capabilities | null, testSources: boolean, media: MediaStatus): string[] {
  const f: string[] = [];
  if (caps && !testSources) {
    if (caps.cameras.length === 0) f.push('no_camera');
    if (!caps.displays.some((d) => d.connected)) f.push('no_display');
    if (caps.audio.capture.length === 0) f.push('no_mic');
    if (caps.audio.playback.length === 0) f.push('no_speaker');
  }
  if (media.plan === 'session' && (media.send === 'failed' || media.receive === 'failed' || media.attempt >= 3)) f.push('media_failing');
  return f;
}

/** Devices as the health sample reports them (null when not probed yet). */
export function deviceHealth(caps: Capabilities | null, testSources: boolean): { camera: boolean | null; display: boolean | null; mic: boolean | null; speaker: boolean | null } {
  if (testSources) return { camera: true, display: true, mic: true, speaker: true };
  if (!caps) return { camera: null, display: null, mic: null, speaker: null };
  return { camera: caps.cameras.length > 0, display: caps.displays.some((d) => d.connected), mic: caps.audio.capture.length > 0, speaker: caps.audio.playback.length > 0 };
}

/** The media part of a health sample, from the supervisor's status (null outside a meeting). */
export function mediaHealthOf(s: MediaStatus): HealthSample['media'] | null {
  if (s.plan !== 'session' || !s.stats) return null;
  const st = s.stats;
  return {
    send: { fps: st.send.fps, kbps: st.send.kbps, rttMs: st.send.srt?.rttMs ?? null, lossPct: st.send.srt?.lossPct ?? null, retransPct: st.send.srt?.retransPct ?? null },
    receive: { fps: st.receive.fps, kbps: st.receive.kbps, lossPct: st.receive.srt?.lossPct ?? null },
    audio: { micDb: st.audio.micDb, speakerDb: st.audio.speakerDb },
    link: st.adapt
      ? {
          adaptive: st.adapt.enabled,
          rung: st.adapt.rung,
          targetKbps: st.adapt.targetKbps,
          sendKbps: st.adapt.sendKbps,
          rttMs: st.adapt.rttMs,
          rttFloorMs: st.adapt.rttFloorMs,
          congested: st.adapt.congested,
          stepsDown: st.adapt.steps.down,
          stepsUp: st.adapt.steps.up,
        }
      : null,
  };
}
