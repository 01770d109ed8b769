/**
 * Turns a GStreamer bus error into a cause the supervisor and a technician can act on.
 * Pure: element name + message text in, cause + a sentence out.
 */
import type { WorkerErrorCause } from './protocol.js';
import { ELEMENT_NAMES } from '../plan/index.js';

export interface ClassifiedError {
  cause: WorkerErrorCause;
  retryable: boolean;
  message: string;
}

const has = (text: string, ...needles: string[]): boolean => needles.some((n) => text.includes(n));

export function classifyBusError(source: string, message: string, debug = ''): ClassifiedError {
  const text = `${message} ${debug}`.toLowerCase();
  const srt = source === ELEMENT_NAMES.srtSink || source === ELEMENT_NAMES.srtSrc || source.startsWith('srt');
  const dir = source === ELEMENT_NAMES.srtSrc ? 'receive' : 'send';
  if (srt) {
    if (has(text, 'badsecret', 'bad secret', 'password', 'passphrase', 'decrypt', 'km_state', 'unsecure', 'encryption'))
      return {
        cause: 'srt_auth',
        retryable: false,
        message: `SRT ${dir}: the hub rejected the encryption passphrase (wrong or missing passphrase/pbkeylen)`,
      };
    if (has(text, 'timed out', 'timeout', 'refused', 'failed to connect', 'connection setup failure', 'no route', 'unreachable', 'resolve'))
      return { cause: 'srt_connect', retryable: true, message: `SRT ${dir}: cannot reach the hub (${message})` };
    return { cause: 'srt_lost', retryable: true, message: `SRT ${dir}: connection failed (${message})` };
  }
  if (has(source, 'libcamerasrc', 'v4l2src') || has(text, 'camera', 'cannot identify device', '/dev/video'))
    return { cause: 'no_camera', retryable: true, message: `camera: ${message}` };
  if (has(source, 'alsa', 'pulse') || has(text, 'audio device', 'alsa'))
    return { cause: 'no_audio_device', retryable: true, message: `audio device: ${message}` };
  if (has(source, 'kmssink', 'glimagesink', 'autovideosink') || has(text, 'drm', 'display'))
    return { cause: 'no_display', retryable: true, message: `display: ${message}` };
  if (has(text, 'not-negotiated', 'not negotiated', 'negotiation'))
    return { cause: 'negotiation', retryable: true, message: `caps negotiation failed in ${source}: ${message}` };
  if (source === ELEMENT_NAMES.encoder || has(source, 'h264enc'))
    return { cause: 'encoder', retryable: true, message: `video encoder: ${message}` };
  if (has(source, 'h264dec', 'avdec'))
    return { cause: 'decoder', retryable: true, message: `video decoder: ${message}` };
  return { cause: 'pipeline', retryable: true, message: `${source}: ${message}` };
}
