/**
 * The field's fixtures: a FieldView (device/field/model.ts) of an idle, connected box, and
 * the Capabilities of a Pi 4 with a TV and textoverlay, each with the fields a test cares
 * about given over the defaults.
 */
import type { FieldView } from '../../device/field/index.js';
import type { Capabilities } from '../../gst-pipelines/index.js';

export function fieldView(over: Partial<FieldView> = {}): FieldView {
  return {
    name: 'Xã Cẩm Thanh',
    deviceId: 'cam-thanh',
    groupId: 'camlo',
    version: '1.0.0',
    state: 'idle',
    unprovisionedReason: null,
    hub: { connected: true, url: 'mqtts://hub.example:8883', downForMs: 0 },
    network: true,
    meeting: null,
    nextMeeting: null,
    faults: [],
    ota: null,
    identify: false,
    handRaised: false,
    micMuted: false,
    resetWarning: false,
    now: Date.parse('2026-03-01T08:00:00Z'),
    ...over,
  };
}

export function piCaps(over: Partial<Capabilities> = {}): Capabilities {
  return {
    board: { model: null, kind: 'pi4', arch: 'arm64' },
    gstreamerVersion: '1.22.0',
    elements: { textoverlay: true, kmssink: true },
    cameras: [],
    displays: [{ connector: 'card1-HDMI-A-1', connected: true, mode: '1920x1080' }],
    audio: { capture: [], playback: [] },
    headless: true,
    ...over,
  };
}
