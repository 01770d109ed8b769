/**
 * The box's own ends of a session: camera, TV, microphone and speaker, each the best
 * this box has (or a test source, a fakesink), with the label reported in choices.
 */
import { ELEMENT_NAMES } from './names.js';
import { chain, displayText, q } from './launch.js';
import type { Capabilities, MediaSettings, SessionPlan } from '../types.js';

export interface Endpoints {
  camera: { chain: string; label: string };
  display: { sink: string; label: string };
  mic: { chain: string; label: string };
  speaker: { sink: string; label: string };
}

export function rawVideoCaps(v: { width: number; height: number; fps: number }): string {
  return `video/x-raw,width=${v.width},height=${v.height},framerate=${v.fps}/1`;
}

/**
 * Sources and sinks, best first. Every sink is `async=false`: a branch that gets no
 * data yet (the hub's program not started, SRT still connecting) must not hold the
 * whole live pipeline in PAUSED waiting for its preroll (seen here: nothing flowed).
 * Order: libcamerasrc → v4l2src → test card; kmssink → glimagesink → … → fakesink.
 */
export function pickEndpoints(caps: Capabilities, settings: MediaSettings, v: SessionPlan['video'], title: string): Endpoints {
  const test = settings.source === 'test';
  return { camera: pickCamera(caps, test, v, title), display: pickDisplay(caps, test), mic: pickMic(caps, settings, test), speaker: pickSpeaker(caps, test) };
}

function pickCamera(caps: Capabilities, test: boolean, v: SessionPlan['video'], title: string): Endpoints['camera'] {
  const scaleTo = chain('videoconvert', 'videoscale', 'videorate', rawVideoCaps(v));
  const testCard = (pattern: string, text: string): string =>
    chain(
      `videotestsrc is-live=true pattern=${pattern}`,
      rawVideoCaps(v),
      `valve name=${ELEMENT_NAMES.testVideoValve} drop=false`,
      caps.elements.textoverlay ? `textoverlay name=${ELEMENT_NAMES.title} text=${q(displayText(text))} valignment=top halignment=left font-desc="Sans 20"` : null,
      caps.elements.textoverlay ? 'timeoverlay valignment=bottom halignment=right font-desc="Sans 16"' : null,
    );
  const libcam = caps.cameras.find((c) => c.kind === 'libcamera');
  const v4l2 = caps.cameras.find((c) => c.kind === 'v4l2');
  if (test) return { chain: testCard('smpte', title), label: 'videotestsrc' };
  if (libcam && caps.elements.libcamerasrc)
    return { chain: chain(`libcamerasrc name=${ELEMENT_NAMES.camera} camera-name=${q(libcam.device, 'capabilities.cameras.device')}`, `video/x-raw,width=${v.width},height=${v.height}`, scaleTo), label: `libcamerasrc ${libcam.name}` };
  if (v4l2 && caps.elements.v4l2src) {
    const mjpeg = v4l2.formats.includes('MJPG');
    return {
      chain: chain(`v4l2src name=${ELEMENT_NAMES.camera} device=${q(v4l2.device, 'capabilities.cameras.device')}`, mjpeg ? `image/jpeg,width=${v.width},height=${v.height}` : null, mjpeg ? 'jpegdec' : null, scaleTo),
      label: `v4l2src ${v4l2.device}${mjpeg ? ' (MJPG)' : ''}`,
    };
  }
  return { chain: testCard('black', `${title} — camera unavailable`), label: 'no camera: test card' };
}

function pickDisplay(caps: Capabilities, test: boolean): Endpoints['display'] {
  const tv = caps.displays.find((d) => d.connected);
  if (test) return { sink: 'fakesink sync=false async=false', label: 'fakesink' };
  if (tv && caps.headless && caps.elements.kmssink) return { sink: 'kmssink sync=false async=false', label: `kmssink ${tv.connector}` };
  if (tv && caps.elements.glimagesink) return { sink: 'glimagesink sync=false async=false', label: `glimagesink ${tv.connector}` };
  if (!caps.headless && caps.elements.autovideosink) return { sink: 'autovideosink sync=false async=false', label: 'autovideosink' };
  return { sink: 'fakesink sync=false async=false', label: 'no display: fakesink' };
}

function pickMic(caps: Capabilities, settings: MediaSettings, test: boolean): Endpoints['mic'] {
  const micDev = caps.audio.capture[0];
  if (test) return { chain: `audiotestsrc is-live=true wave=ticks volume=0.4 freq=${settings.testToneHz ?? 440}`, label: 'audiotestsrc' };
  if (micDev && caps.elements.alsasrc) return { chain: `alsasrc name=${ELEMENT_NAMES.mic} device=${q(micDev.alsa, 'capabilities.audio.capture.alsa')}`, label: `alsasrc ${micDev.alsa} ${micDev.name}` };
  return { chain: 'audiotestsrc is-live=true wave=silence', label: 'no mic: silence' };
}

function pickSpeaker(caps: Capabilities, test: boolean): Endpoints['speaker'] {
  const spkDev = caps.audio.playback[0];
  if (test) return { sink: 'fakesink sync=false async=false', label: 'fakesink' };
  if (spkDev && caps.elements.alsasink)
    return { sink: `alsasink name=${ELEMENT_NAMES.speaker} device=${q(spkDev.alsa, 'capabilities.audio.playback.alsa')} sync=false async=false buffer-time=60000 latency-time=10000`, label: `alsasink ${spkDev.alsa} ${spkDev.name}` };
  return { sink: 'fakesink sync=false async=false', label: 'no speaker: fakesink' };
}

/** Environment the worker needs for a display sink (glimagesink without a desktop). */
export function sinkEnv(displaySink: string): Record<string, string> {
  return displaySink.startsWith('glimagesink') ? { GST_GL_WINDOW: 'gbm', GST_GL_PLATFORM: 'egl' } : {};
}

/** On-screen text over the TV picture, hidden until shown (MediaSupervisor.showText). */
export function osdOverlay(): string {
  return `textoverlay name=${ELEMENT_NAMES.osd} silent=true text=" " valignment=center halignment=center font-desc="Sans 48"`;
}
