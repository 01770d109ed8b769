/**
 * The agent asks the media supervisor for intentions (volume, mute, on-screen text),
 * never for element names: each becomes `set` messages to the running worker, naming
 * elements the planner really put in the running pipeline.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { planSession } from '../../gst-pipelines/plan/session.js';
import { planStandby } from '../../gst-pipelines/plan/standby.js';
import { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import type { Capabilities, MediaPlan, MediaSettings } from '../../gst-pipelines/types.js';
import type { ToWorker } from '../../gst-pipelines/worker/protocol.js';
import { FakeSpawner } from '../fakes/index.js';

const ELEMENTS = ['srtsink', 'srtsrc', 'mpegtsmux', 'tsdemux', 'h264parse', 'opusenc', 'opusdec', 'x264enc', 'avdec_h264', 'textoverlay', 'webrtcdsp', 'webrtcechoprobe'];
const caps: Capabilities = {
  board: { model: null, kind: 'x86', arch: 'x64' },
  gstreamerVersion: '1.22.0',
  elements: Object.fromEntries(ELEMENTS.map((e) => [e, true])),
  cameras: [],
  displays: [],
  audio: { capture: [], playback: [] },
  headless: true,
};
const settings: MediaSettings = { source: 'test', volume: 1, micMuted: false, aec: true, statsPeriodS: 2 };
const session = planSession({ meetingId: 'm', send: { url: 'srt://hub:1' }, receive: { url: 'srt://hub:2' } }, caps, settings);

describe('MediaSupervisor intentions', () => {
  let spawner: FakeSpawner;
  let sup: MediaSupervisor;

  beforeEach(() => {
    vi.useFakeTimers();
    spawner = new FakeSpawner();
    sup = new MediaSupervisor({ spawner });
  });
  afterEach(async () => {
    const closing = sup.close();
    await vi.advanceTimersByTimeAsync(5000);
    await closing;
    vi.useRealTimers();
  });

  async function run(plan: MediaPlan): Promise<ToWorker[]> {
    const p = sup.start(plan);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    return spawner.running[0]!.received;
  }

  const sets = (received: ToWorker[]): Array<Extract<ToWorker, { type: 'set' }>> => received.filter((m): m is Extract<ToWorker, { type: 'set' }> => m.type === 'set');
  const named = (plan: MediaPlan, element: string): boolean => new RegExp(`\\bname=${element}\\b`).test(plan.pipeline);

  it('volume and mic mute: the speaker and mic volume elements of the session', async () => {
    const received = await run(session);
    sup.setVolume(0.25);
    sup.setMicMuted(true);
    const s = sets(received);
    expect(s.map((m) => [m.property, m.value])).toEqual([
      ['volume', 0.25],
      ['mute', true],
    ]);
    expect(named(session, s[0]!.element)).toBe(true);
    expect(session.pipeline).toContain(`volume name=${s[0]!.element} volume=`);
    expect(session.pipeline).toContain(`volume name=${s[1]!.element} mute=`);
    expect(s[0]!.element).not.toBe(s[1]!.element);
  });

  it('on-screen text: set, then shown; hidden again; on the standby screen too', async () => {
    const standby = planStandby(caps, settings);
    const received = await run(standby);
    sup.showText('Xã Cẩm Thanh');
    sup.hideText();
    const s = sets(received);
    expect(s.map((m) => [m.property, m.value])).toEqual([
      ['text', 'Xã Cẩm Thanh'],
      ['silent', false],
      ['silent', true],
    ]);
    expect(new Set(s.map((m) => m.element)).size).toBe(1);
    expect(standby.pipeline).toContain(`textoverlay name=${s[0]!.element} silent=true`);
    expect(session.pipeline).toContain(`textoverlay name=${s[0]!.element} silent=true`);
  });

  it('no running session: nothing is sent', async () => {
    sup.setVolume(0.5);
    sup.showText('x');
    await vi.advanceTimersByTimeAsync(1);
    expect(spawner.workers.flatMap((w) => sets(w.received))).toEqual([]);
  });
});
