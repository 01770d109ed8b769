/**
 * The selftest's checks with the hardware boundary scripted: an asynchronous gst-launch
 * fake that records what it was asked, injected health, mic level and SRT handshake. The
 * disk checks write to a real temp dir.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adviceForCheck, parseLevelRms, runSelftest, type GstLauncher, type SelftestDeps, type SelftestReport } from '../../device/selftest.js';
import type { HealthSample } from '../../device/contract/index.js';
import type { Capabilities } from '../../gst-pipelines/types.js';

const caps = (over: Partial<Capabilities> = {}): Capabilities => ({
  board: { model: 'Raspberry Pi 4 Model B', kind: 'pi4', arch: 'arm64' },
  gstreamerVersion: '1.22.0',
  elements: { x264enc: true, avdec_h264: true, v4l2src: true, alsasrc: true, alsasink: true, libcamerasrc: false },
  cameras: [{ kind: 'v4l2', device: '/dev/video0', name: 'USB cam', formats: ['MJPG'] }],
  displays: [{ connector: 'card1-HDMI-A-1', connected: true, mode: '1920x1080' }],
  audio: { capture: [{ card: 1, device: 0, name: 'USB mic', alsa: 'hw:1,0' }], playback: [{ card: 0, device: 0, name: 'HDMI', alsa: 'hw:0,0' }] },
  headless: true,
  ...over,
});

const health = (over: Partial<HealthSample> = {}): HealthSample =>
  ({
    ts: '2026-12-06T10:00:00.000Z',
    uptimeS: 100,
    cpu: { loadPct: 10, tempC: 55 },
    power: { underVoltage: false, underVoltageSinceBoot: false, throttled: false },
    mem: { usedPct: 30, agentRssMb: 80 },
    disk: { usedPct: 40 },
    clockSynced: true,
    net: { iface: 'eth0', ip: '10.0.0.2', rxKbps: 1, txKbps: 1 },
    devices: { camera: true, display: true, mic: true, speaker: true },
    media: { send: {}, receive: {}, audio: {}, link: null },
    ...over,
  }) as HealthSample;

const LEVEL = (db: string): string => `Got message #46 from element "level0" (element): level, endtime=(guint64)250000000, rms=(GValueArray)< ${db}, ${db} >, peak=(GValueArray)< -1 >;\n`;

/** A scripted gst-launch: answers by the first element of the description, after a tick; records each call. */
function fakeGst(answers: Record<string, { ok: boolean; detail?: string; output?: string }> = {}): GstLauncher & { calls: Array<{ description: string; timeoutMs: number; messages: boolean }> } {
  const calls: Array<{ description: string; timeoutMs: number; messages: boolean }> = [];
  const f = async (description: string, timeoutMs: number, o?: { messages?: boolean }) => {
    calls.push({ description, timeoutMs, messages: o?.messages === true });
    await new Promise((r) => setTimeout(r, 1));
    const a = answers[description.split(' ')[0]!] ?? { ok: true };
    return { ok: a.ok, detail: a.detail ?? 'ran in 5 ms', ...(a.output !== undefined ? { output: a.output } : {}) };
  };
  return Object.assign(f, { calls });
}

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ep-selftest-unit-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const deps = (over: Partial<SelftestDeps> = {}): SelftestDeps => ({
  caps: async () => caps(),
  testSources: false,
  inMeeting: () => false,
  mqttConnected: () => true,
  dataDir,
  diskWriteBytes: 256 * 1024,
  health: () => health(),
  ...over,
});

const by = (r: SelftestReport): Record<string, SelftestReport['checks'][number]> => Object.fromEntries(r.checks.map((c) => [c.check, c]));

describe('runSelftest checks', () => {
  it('outside a meeting: camera frames, codecs, mic level, speaker path each run once as gst-launch; all pass', async () => {
    const gst = fakeGst({ alsasrc: { ok: true, output: LEVEL('-42.5') } });
    const r = await runSelftest(deps({ gstLaunch: gst, srtTarget: () => null }));
    expect(r.checks.map((c) => c.check)).toEqual(['camera', 'encoder', 'decoder', 'display', 'mic', 'speaker', 'network', 'hub_media', 'disk', 'disk_write', 'clock', 'power']);
    expect(gst.calls.map((c) => c.description.split(' ')[0])).toEqual(['v4l2src', 'videotestsrc', 'videotestsrc', 'alsasrc', 'audiotestsrc']);
    expect(gst.calls[0]!.description).toBe('v4l2src device=/dev/video0 ! identity eos-after=10 ! fakesink sync=false');
    expect(gst.calls[3]).toMatchObject({ messages: true });
    expect(gst.calls[3]!.description).toContain('alsasrc device=hw:1,0 num-buffers=100 ! audioconvert ! level');
    expect(gst.calls[4]!.description).toContain('alsasink device=hw:0,0');
    const c = by(r);
    expect(c.camera).toEqual({ check: 'camera', ok: true, detail: 'USB cam: 10 frames arrived (ran in 5 ms)' });
    expect(c.mic).toEqual({ check: 'mic', ok: true, detail: 'USB mic: -42.5 dBFS over 1 s' });
    expect(c.speaker).toMatchObject({ ok: true, detail: 'HDMI (hw:0,0) plays' });
    expect(c.hub_media).toMatchObject({ ok: true, skipped: true, detail: 'no hub media address known yet' });
    expect(c.disk_write!.detail).toMatch(/^\d+\.\d MB\/s writing 256 KiB with fsync \(at least 2 MB\/s\)$/);
    expect(c.clock).toMatchObject({ ok: true, detail: 'synchronised (NTP)' });
    expect(c.power).toMatchObject({ ok: true, detail: 'supply good, not throttled; 55 °C' });
    expect(r.checks.filter((x) => x.advice)).toEqual([]);
    expect(await readdir(dataDir)).toEqual([]); // the disk-speed file is gone
  });

  it('failures carry advice in both languages and fail the report', async () => {
    const gst = fakeGst({ v4l2src: { ok: false, detail: 'Internal data stream error.' }, alsasrc: { ok: true, output: LEVEL('-inf') }, audiotestsrc: { ok: false, detail: 'Could not open audio device for playback.' } });
    const r = await runSelftest(
      deps({
        gstLaunch: gst,
        mqttConnected: () => false,
        health: () => health({ clockSynced: false, power: { underVoltage: false, underVoltageSinceBoot: true, throttled: false } }),
        srtTarget: () => ({ url: 'srt://hub.example:8890', streamId: 'read:m1', passphrase: 'correct horse battery' }),
        srtHandshake: async (t) => ({ ok: false, detail: `${new URL(t.url).host}: Failed to authenticate: Incorrect passphrase` }),
      }),
    );
    expect(r.ok).toBe(false);
    const c = by(r);
    expect(c.camera).toMatchObject({ ok: false, detail: 'USB cam: no frames: Internal data stream error.', advice: adviceForCheck('camera') });
    expect(c.camera!.advice!.vi).toContain('camera');
    expect(c.mic).toMatchObject({ ok: false, detail: 'USB mic: no signal over 1 s: silence (-inf dBFS)', advice: { en: expect.stringContaining('Microphone') } });
    expect(c.speaker).toMatchObject({ ok: false, advice: { en: expect.stringContaining('Speaker') } });
    expect(c.network).toMatchObject({ ok: false, advice: { vi: expect.stringContaining('máy chủ') } });
    expect(c.hub_media).toMatchObject({ ok: false, detail: 'SRT hub.example:8890: Failed to authenticate: Incorrect passphrase', advice: { en: expect.stringContaining('UDP') } });
    expect(c.clock).toMatchObject({ ok: false, advice: { en: expect.stringContaining('Clock') } });
    expect(c.power).toMatchObject({ ok: false, detail: 'under-voltage since boot; 55 °C', advice: { vi: 'Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng' } });
    expect(JSON.stringify(r)).not.toContain('correct horse');
    expect(c.encoder).toMatchObject({ ok: true });
  });

  it('in a meeting: nothing that would disturb it runs; the mic level comes from the stats', async () => {
    const gst = fakeGst();
    let asked = 0;
    const r = await runSelftest(deps({ gstLaunch: gst, inMeeting: () => true, micLevelDb: () => (asked++, -31.2) }));
    expect(gst.calls).toEqual([]);
    expect(asked).toBe(1);
    const c = by(r);
    expect(c.mic).toEqual({ check: 'mic', ok: true, detail: 'USB mic: -31.2 dBFS in the meeting' });
    for (const k of ['camera', 'encoder', 'decoder', 'speaker', 'disk_write']) expect(c[k], k).toMatchObject({ ok: true, skipped: true });
    expect(await readdir(dataDir)).toEqual([]);
    const silent = await runSelftest(deps({ gstLaunch: gst, inMeeting: () => true, micLevelDb: () => -95 }));
    expect(by(silent).mic).toMatchObject({ ok: false, detail: 'USB mic: no signal in the meeting: -95.0 dBFS' });
    const none = await runSelftest(deps({ gstLaunch: gst, inMeeting: () => true }));
    expect(by(none).mic).toMatchObject({ ok: true, skipped: true });
  });

  it('test-source mode: camera, display, mic and speaker are skipped, the codecs still run (as before)', async () => {
    const gst = fakeGst();
    const r = await runSelftest(deps({ gstLaunch: gst, testSources: true, health: undefined }));
    expect(gst.calls.map((c) => c.description.split(' ')[0])).toEqual(['videotestsrc', 'videotestsrc']);
    const c = by(r);
    for (const k of ['camera', 'display', 'mic', 'speaker', 'clock', 'power']) expect(c[k], k).toMatchObject({ ok: true, skipped: true });
    expect(r.ok).toBe(true);
  });

  it('missing devices: no camera, no TV, no mic, no speaker fail without running anything', async () => {
    const gst = fakeGst();
    const r = await runSelftest(deps({ gstLaunch: gst, caps: async () => caps({ cameras: [], displays: [{ connector: 'card1-HDMI-A-1', connected: false, mode: null }], audio: { capture: [], playback: [] } }) }));
    expect(gst.calls.map((c) => c.description.split(' ')[0])).toEqual(['videotestsrc', 'videotestsrc']);
    const c = by(r);
    expect([c.camera, c.display, c.mic, c.speaker].map((x) => [x!.ok, x!.detail])).toEqual([
      [false, 'no camera found'],
      [false, 'no connected TV found'],
      [false, 'no microphone found'],
      [false, 'no speaker found'],
    ]);
    expect(c.display!.advice!.vi).toContain('TV');
  });

  it('a libcamera camera goes through libcamerasrc; a data dir that cannot be written fails disk_write', async () => {
    const gst = fakeGst();
    const r = await runSelftest(
      deps({
        gstLaunch: gst,
        dataDir: path.join(dataDir, 'missing'),
        caps: async () => caps({ elements: { ...caps().elements, libcamerasrc: true }, cameras: [{ kind: 'libcamera', device: '/base/soc/i2c0mux/i2c@1/imx708@1a', name: 'imx708', formats: [] }] }),
      }),
    );
    expect(gst.calls[0]!.description).toBe('libcamerasrc camera-name=/base/soc/i2c0mux/i2c@1/imx708@1a ! identity eos-after=10 ! fakesink sync=false');
    expect(by(r).disk_write).toMatchObject({ ok: false, detail: expect.stringMatching(/^cannot write to the data partition: ENOENT/) });
    expect(by(r).disk).toMatchObject({ ok: false });
  });
});

describe('parseLevelRms', () => {
  it('the loudest channel over every message, both GStreamer spellings, -inf as silence', () => {
    expect(parseLevelRms(LEVEL('-50') + LEVEL('-20.25'))).toBe(-20.25);
    expect(parseLevelRms('level, rms=(double){ -33.5, -35 }, peak=(double){ 0 };')).toBe(-33.5);
    expect(parseLevelRms(LEVEL('-inf'))).toBe(-Infinity);
    expect(parseLevelRms('Setting pipeline to PAUSED ...')).toBeNull();
  });
});
