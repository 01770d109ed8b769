import { describe, expect, it } from 'vitest';
import { h264Level, parseSrtUrl, q } from '../../gst-pipelines/plan/launch.js';
import { BPS } from '../../gst-pipelines/plan/codecs.js';
import { planCodecSelftest } from '../../gst-pipelines/plan/codec-selftest.js';
import { sinkEnv } from '../../gst-pipelines/plan/endpoints.js';
import { isPlanError, type PlanError } from '../../gst-pipelines/plan/errors.js';
import { planSession } from '../../gst-pipelines/plan/session.js';
import { planStandby } from '../../gst-pipelines/plan/standby.js';
import type { Capabilities, MediaJoinSpec, MediaSettings } from '../../gst-pipelines/types.js';

const SOFTWARE = ['x264enc', 'avdec_h264', 'openh264enc', 'openh264dec'];
const COMMON = ['srtsink', 'srtsrc', 'mpegtsmux', 'tsdemux', 'h264parse', 'opusenc', 'opusdec', 'webrtcdsp', 'webrtcechoprobe', 'textoverlay', 'alsasrc', 'alsasink', 'v4l2src', 'kmssink', 'glimagesink', 'autovideosink'];

function caps(over: Partial<Capabilities> & { extra?: string[] } = {}): Capabilities {
  const elements: Record<string, boolean> = {};
  for (const e of [...COMMON, ...SOFTWARE, ...(over.extra ?? [])]) elements[e] = true;
  return {
    board: { model: null, kind: 'x86', arch: 'x64' },
    gstreamerVersion: '1.22.0',
    elements,
    cameras: [{ kind: 'v4l2', device: '/dev/video0', name: 'USB Camera', formats: ['MJPG', 'YUYV'] }],
    displays: [{ connector: 'card0-HDMI-A-1', connected: true, mode: '1920x1080' }],
    audio: { capture: [{ card: 1, device: 0, name: 'USB Audio', alsa: 'plughw:1,0' }], playback: [{ card: 0, device: 0, name: 'HDMI', alsa: 'plughw:0,0' }] },
    headless: true,
    ...over,
  };
}

const settings: MediaSettings = { source: 'auto', volume: 0.8, micMuted: false, aec: true, statsPeriodS: 2 };

const spec: MediaJoinSpec = {
  meetingId: 'camlo-2019-01-28',
  title: 'Hội nghị "trực tuyến"',
  send: { url: 'srt://hub.example:8890', streamId: 'publish:camlo/cam-thanh', video: { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 }, audio: { bitrateKbps: 32 } },
  receive: { url: 'srt://hub.example:8890', streamId: 'read:camlo/program' },
  srt: { latencyMs: 200, passphrase: 'correct horse battery', pbkeylen: 16 },
};

describe('planSession: board profiles', () => {
  it('Pi 4: hardware v4l2 encoder with a level in the caps and repeated headers, v4l2 decoder', () => {
    const p = planSession(spec, caps({ board: { model: 'Raspberry Pi 4 Model B Rev 1.5', kind: 'pi4', arch: 'arm64' }, extra: ['v4l2h264enc', 'v4l2h264dec'] }), settings);
    expect(p.choices.encoder).toBe('v4l2h264enc');
    expect(p.choices.decoder).toBe('v4l2h264dec');
    expect(p.pipeline).toContain('repeat_sequence_header=1');
    expect(p.pipeline).toMatch(/v4l2h264enc [^!]*! video\/x-h264,level=\(string\)3\.1/);
    expect(p.pipeline).toContain('video_bitrate=1500000');
    expect(p.pipeline).toContain('kmssink');
    // Link adaptation sets the whole extra-controls structure, the launch string's own with a new bitrate.
    const b = p.adapt.bitrate!;
    expect(b).toMatchObject({ element: p.names.encoder, property: 'extra-controls', perKbps: 1000 });
    const launch = /extra-controls="([^"]+)"/.exec(p.pipeline)?.[1];
    expect(b.structure?.replace(BPS, '1500000')).toBe(launch);
    expect(b.structure?.replace(BPS, '400000')).toBe('controls,repeat_sequence_header=1,video_bitrate=400000,h264_i_frame_period=60');
  });

  it('Pi 5: no H.264 hardware, so x264 with I420 forced and avdec_h264; libcamera camera first', () => {
    const p = planSession(
      spec,
      caps({
        board: { model: 'Raspberry Pi 5 Model B Rev 1.0', kind: 'pi5', arch: 'arm64' },
        extra: ['libcamerasrc'],
        cameras: [
          { kind: 'libcamera', device: '/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a', name: 'imx708', formats: [] },
          { kind: 'v4l2', device: '/dev/video0', name: 'USB Camera', formats: ['MJPG'] },
        ],
      }),
      settings,
    );
    expect(p.choices.encoder).toBe('x264enc');
    expect(p.choices.decoder).toBe('avdec_h264');
    expect(p.pipeline).toMatch(/video\/x-raw,format=I420 ! x264enc name=venc tune=zerolatency speed-preset=ultrafast bitrate=1500/);
    expect(p.pipeline).toContain('libcamerasrc name=camera camera-name="/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a"');
    expect(p.choices.camera).toContain('imx708');
  });

  it('N100: VA-API encoder and decoder', () => {
    const p = planSession(spec, caps({ board: { model: 'N100 mini PC', kind: 'n100', arch: 'x64' }, extra: ['vah264enc', 'vah264dec'] }), settings);
    expect(p.choices.encoder).toBe('vah264enc');
    expect(p.choices.decoder).toBe('vah264dec');
    expect(p.pipeline).toContain('vah264enc name=venc rate-control=cbr bitrate=1500');
  });

  it('generic x86: software codecs, USB webcam MJPEG decoded', () => {
    const p = planSession(spec, caps(), settings);
    expect(p.choices.encoder).toBe('x264enc');
    expect(p.pipeline).toContain('v4l2src name=camera device="/dev/video0" ! image/jpeg,width=1280,height=720 ! jpegdec');
    expect(p.pipeline).toContain('alsasrc name=mic device="plughw:1,0"');
    expect(p.pipeline).toContain('alsasink name=speaker device="plughw:0,0"');
  });

  it('no camera: a test card keeps the meeting going (audio still flows)', () => {
    const p = planSession(spec, caps({ cameras: [] }), settings);
    expect(p.choices.camera).toBe('no camera: test card');
    expect(p.pipeline).toContain('videotestsrc is-live=true pattern=black');
    expect(p.pipeline).toContain('opusenc audio-type=voice');
  });

  it('no TV: decoded video goes to fakesink, audio still to the speaker', () => {
    const p = planSession(spec, caps({ displays: [{ connector: 'card0-HDMI-A-1', connected: false, mode: null }] }), settings);
    expect(p.choices.display).toBe('no display: fakesink');
    expect(p.pipeline).not.toContain('kmssink');
    expect(p.choices.speaker).toContain('alsasink');
  });

  it('a desktop session uses glimagesink-free autovideosink; a headless TV without kmssink uses glimagesink on gbm/egl', () => {
    const noKms = caps();
    noKms.elements.kmssink = false;
    const p = planSession(spec, noKms, settings);
    expect(p.choices.display).toContain('glimagesink');
    expect(p.env).toEqual({ GST_GL_WINDOW: 'gbm', GST_GL_PLATFORM: 'egl' });
    expect(sinkEnv('fakesink')).toEqual({});
  });
});

describe('planSession: transport and audio', () => {
  const p = planSession(spec, caps(), settings);

  it('sends whole-frame TS through the packetiser and keeps the interop direct form for gst-launch', () => {
    expect(p.pipeline).toContain('mpegtsmux name=mux alignment=0 ! fdsink name=tsout');
    expect(p.pipeline).toContain('appsrc name=tsin');
    expect(p.direct).toContain('mpegtsmux name=mux alignment=7 ! srtsink');
    expect(p.direct).not.toContain('appsrc');
    expect(p.names.framer).toBeUndefined();
  });

  it('frames inside GStreamer when the probe found our epframer: no FIFO, no appsrc, one string for worker and gst-launch', () => {
    const f = planSession(spec, caps({ extra: ['epframer'] }), settings);
    expect(f.pipeline).toContain('mpegtsmux name=mux alignment=0 ! framer.video');
    expect(f.pipeline).toContain('mpegtsmux name=amux alignment=0 ! framer.audio');
    expect(f.pipeline).toMatch(/epframer name=framer ! srtsink name=srtout /);
    expect(f.pipeline).not.toMatch(/appsrc|fdsink/);
    expect(f.direct).toBe(f.pipeline);
    expect(f.names).toMatchObject({ framer: 'framer', srtSink: 'srtout' });
    expect(f.names.tsOut).toBeUndefined();
    expect(f.names.tsIn).toBeUndefined();
  });

  it('puts enums and the stream id in the launch string, never the passphrase', () => {
    expect(p.pipeline).toContain('pbkeylen=16');
    expect(p.pipeline).toContain('streamid="publish:camlo/cam-thanh"');
    expect(p.pipeline).toContain('streamid="read:camlo/program"');
    expect(p.pipeline).toContain('uri="srt://hub.example:8890?mode=caller" latency=200');
    expect(p.pipeline).not.toContain('correct horse');
    expect(JSON.stringify(p)).not.toContain('correct horse');
  });

  it('AU-aligned demux output, SPS/PPS on every keyframe, keyframe every 2 s', () => {
    expect(p.pipeline).toContain('tsdemux name=demux');
    expect(p.pipeline).toContain('video/x-h264,alignment=au ! h264parse');
    expect(p.pipeline).toContain('h264parse name=vparse config-interval=-1');
    expect(p.pipeline).toContain('key-int-max=60');
  });

  it('AEC: webrtcdsp on the mic and its probe on the speaker path, in the same pipeline and rate', () => {
    expect(p.choices.aec).toBe(true);
    expect(p.pipeline).toMatch(/audio\/x-raw,format=S16LE,rate=48000,channels=1 ! webrtcdsp probe=echoprobe/);
    expect(p.pipeline).toMatch(/rate=48000,channels=1 ! level name=rxlevel[^!]*! webrtcechoprobe name=echoprobe/);
    const off = planSession(spec, caps(), { ...settings, aec: false });
    expect(off.pipeline).not.toContain('webrtcdsp');
    expect(off.choices.aec).toBe(false);
  });

  it('quotes outside text so it cannot break the pipeline description', () => {
    const t = planSession(spec, caps({ cameras: [] }), { ...settings, standbyTitle: 'Xã "Cẩm" \\ Thanh' });
    expect(t.pipeline).toContain('text="Xã \\"Cẩm\\" \\\\ Thanh — camera unavailable"');
  });

  it('clamps video to sane bounds and defaults what the spec leaves out', () => {
    const s = planSession({ ...spec, send: { url: 'srt://h:1', video: { width: 99999, height: 7, fps: 500 } } }, caps(), settings);
    expect(s.video).toEqual({ width: 1920, height: 90, fps: 60, bitrateKbps: 1500 });
  });

  it('rejects what cannot be planned, naming the path and whose fault it is', () => {
    const bad = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        expect(isPlanError(e)).toBe(true);
        return `${(e as PlanError).kind} ${(e as Error).message}`;
      }
      throw new Error('expected a PlanError');
    };
    expect(bad(() => planSession({ ...spec, send: { url: 'rtmp://x:1' } }, caps(), settings))).toBe('spec send.url: must be an srt:// URL');
    expect(bad(() => planSession({ ...spec, receive: { url: 'srt://hub' } }, caps(), settings))).toBe('spec receive.url: srt:// URL needs a port 1..65535');
    const none = caps();
    for (const e of ['x264enc', 'openh264enc']) none.elements[e] = false;
    expect(bad(() => planSession(spec, none, settings))).toBe('box this box cannot run a session: no H.264 encoder in the GStreamer registry (capabilities.elements)');
    const noDecoder = caps();
    for (const e of ['avdec_h264', 'openh264dec']) noDecoder.elements[e] = false;
    expect(bad(() => planSession(spec, noDecoder, settings))).toBe('box this box cannot run a session: no H.264 decoder in the GStreamer registry (capabilities.elements)');
    const noSrt = caps();
    noSrt.elements.srtsink = false;
    expect(bad(() => planSession(spec, noSrt, settings))).toBe('box this box cannot run a session: required element srtsink is missing (capabilities.elements)');
  });

  it('test source mode uses test sources and headless sinks whatever the box has', () => {
    const t = planSession(spec, caps(), { ...settings, source: 'test', snapshotDir: '/tmp/x' });
    expect(t.pipeline).toContain('videotestsrc is-live=true pattern=smpte');
    expect(t.pipeline).toContain('audiotestsrc is-live=true wave=ticks volume=0.4 freq=440 ');
    expect(planSession(spec, caps(), { ...settings, source: 'test', testToneHz: 1000 }).pipeline).toContain('wave=ticks volume=0.4 freq=1000 ');
    expect(t.pipeline).not.toContain('alsasink');
    expect(t.names.snapshotSend).toBe('snapsend');
    expect(t.pipeline).toContain('pngenc');
  });
});

describe('planStandby and helpers', () => {
  it('standby shows the commune name on the TV at 5 fps', () => {
    const s = planStandby(caps(), { ...settings, standbyTitle: 'Xã Cẩm Thanh' });
    expect(s.pipeline).toContain('framerate=5/1');
    expect(s.pipeline).toContain('textoverlay name=title auto-resize=false font-desc="DejaVu Sans Bold 40" color=4294967295 silent=false text="Xã Cẩm Thanh"');
    expect(s.pipeline).toContain('kmssink');
  });

  it('h264Level fits resolution × fps', () => {
    expect(h264Level(1280, 720, 30)).toBe('3.1');
    expect(h264Level(1920, 1080, 30)).toBe('4');
    expect(h264Level(1920, 1080, 60)).toBe('4.2');
    expect(h264Level(640, 360, 30)).toBe('3');
  });

  it('parseSrtUrl and q', () => {
    expect(parseSrtUrl('srt://[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(() => parseSrtUrl('hub:1')).toThrow('srt://');
    expect(q('a"b')).toBe('"a\\"b"');
  });
});

describe('planCodecSelftest (the selftest\'s codec checks)', () => {
  it('software box: 30 test frames at 640x360@30 through x264 at 800 kbit/s, then through avdec_h264 too', () => {
    const t = planCodecSelftest(caps());
    expect(t.encoder).toBe('x264enc');
    expect(t.decoder).toBe('avdec_h264');
    const head = 'videotestsrc num-buffers=30 ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc name=venc tune=zerolatency speed-preset=ultrafast bitrate=800 vbv-buf-capacity=200 key-int-max=60 bframes=0 ! video/x-h264,profile=(string)constrained-baseline ! h264parse';
    expect(t.encode).toBe(`${head} ! fakesink`);
    expect(t.decodeLoop).toBe(`${head} ! avdec_h264 ! videoconvert ! fakesink`);
  });

  it('Pi 4: the hardware pair, with the level the test size needs', () => {
    const t = planCodecSelftest(caps({ extra: ['v4l2h264enc', 'v4l2h264dec'] }));
    expect(t.encode).toContain('v4l2h264enc name=venc extra-controls="controls,repeat_sequence_header=1,video_bitrate=800000,h264_i_frame_period=60" ! video/x-h264,level=(string)3 ! h264parse ! fakesink');
    expect(t.decodeLoop).toMatch(/ ! h264parse ! v4l2h264dec ! videoconvert ! fakesink$/);
  });

  it('no encoder: nothing to run; no decoder: the encode check alone', () => {
    const none = caps();
    for (const e of ['x264enc', 'openh264enc']) none.elements[e] = false;
    expect(planCodecSelftest(none)).toEqual({ encoder: null, decoder: 'avdec_h264', encode: null, decodeLoop: null });
    const noDec = caps();
    for (const e of ['avdec_h264', 'openh264dec']) noDec.elements[e] = false;
    const t = planCodecSelftest(noDec);
    expect(t.decoder).toBeNull();
    expect(t.encode).toMatch(/x264enc .* ! h264parse ! fakesink$/);
    expect(t.decodeLoop).toBeNull();
  });
});
