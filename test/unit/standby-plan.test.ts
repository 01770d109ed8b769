/**
 * The TV standby screen as data (issue 16): standbyTexts(view) → the screen's texts
 * (device/field/standby-texts.ts),
 * planStandby → one named textoverlay per text, standbySets → only what changed, and the
 * supervisor's updateStandby sending those to the running standby worker (never to a
 * session), again to a worker restarted later.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FieldView } from '../../device/field/model.js';
import { meetingTime, standbyTexts } from '../../device/field/standby-texts.js';
import { ELEMENT_NAMES as N } from '../../gst-pipelines/plan/names.js';
import { planSession } from '../../gst-pipelines/plan/session.js';
import {
  STANDBY_ELEMENTS,
  STANDBY_LAYOUT,
  idleStandbyTexts,
  overlayText,
  planStandby,
  screenLine,
  standbySets,
  wrapText,
} from '../../gst-pipelines/plan/standby.js';
import { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import type { MediaSettings, StandbyTexts } from '../../gst-pipelines/types.js';
import type { ToWorker } from '../../gst-pipelines/worker/protocol.js';
import { FakeSpawner } from '../fakes/fake-worker.js';
import { fieldView, piCaps } from '../fakes/index.js';

const SEED_TITLE = 'Hội nghị giao ban trực tuyến đánh giá tình hình phát triển kinh tế – xã hội';

const view = (over: Partial<FieldView> = {}): FieldView =>
  fieldView({ deviceId: 'box-1', groupId: 'grp', hub: { connected: true, url: 'mqtts://hub:8883', downForMs: 0 }, now: 0, ...over });

const caps = piCaps;
const settings: MediaSettings = { source: 'auto', volume: 1, micMuted: false, aec: true, statsPeriodS: 2, standbyTitle: 'Xã Cẩm Thanh' };
const lines = (s: string): string[] => s.split('\n');

describe('standbyTexts', () => {
  it('idle: the name, the state in Vietnamese with English below, nothing else', () => {
    expect(standbyTexts(view())).toEqual({
      title: 'Xã Cẩm Thanh',
      status: 'Sẵn sàng — chờ cuộc họp\nReady — waiting for the next meeting',
      next: '',
      fault: '',
      badges: '',
    });
    // The plan's own default (the media side may not import model.ts) says the same.
    expect(standbyTexts(view())).toEqual(idleStandbyTexts('Xã Cẩm Thanh'));
  });

  it('screenLine cleans like model.ts displayString', async () => {
    const { displayString } = await import('../../device/field/model.js');
    for (const s of ['Xa\u0303 Ca\u0302\u0309m', 'a\u0007b\u009fc\u007f', ' x ', 'Hội nghị'.repeat(50)]) expect(screenLine(s)).toBe(displayString(s, 300).trim());
  });

  it('NFC and no control characters: a name typed decomposed on a phone, with a stray escape and newline', () => {
    const decomposed = 'Xa\u0303 Ca\u0302\u0309m\u001b\nThanh';
    const t = standbyTexts(view({ name: decomposed, nextMeeting: { title: 'Ho\u0323p\u0007 da\u0302n', startsAt: '2026-12-08T01:30:00Z' } }));
    expect(t.title).toBe('Xã Cẩm Thanh');
    expect(t.next.split('\n')[1]).toBe('Họp dân');
    for (const s of Object.values(t)) {
      expect(s).toBe(s.normalize('NFC'));
      // eslint-disable-next-line no-control-regex
      expect(s).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    }
  });

  it('the next meeting: local start time and date in the box zone, the seed title wrapped to two lines', () => {
    const t = standbyTexts(view({ nextMeeting: { title: SEED_TITLE, startsAt: '2026-12-08T01:30:00Z' } }), { timeZone: 'Asia/Ho_Chi_Minh' });
    expect(lines(t.next)).toEqual(['Cuộc họp tới · Next meeting: 08:30 Thứ Ba 08/12/2026', 'Hội nghị giao ban trực tuyến đánh giá tình hình phát triển kinh', 'tế – xã hội']);
    for (const l of lines(t.next)) expect([...l].length).toBeLessThanOrEqual(STANDBY_LAYOUT.next.chars);
    // The same instant in another zone is another local time (and here another day).
    expect(lines(standbyTexts(view({ nextMeeting: { title: 'x', startsAt: '2026-12-07T23:30:00Z' } }), { timeZone: 'UTC' }).next)[0]).toContain('23:30 Thứ Hai 07/12/2026');
  });

  it('a start that is not a date shows the title without a time; an unknown zone falls back to the box zone', () => {
    expect(lines(standbyTexts(view({ nextMeeting: { title: 'Họp', startsAt: 'soon' } })).next)).toEqual(['Cuộc họp tới · Next meeting', 'Họp']);
    expect(meetingTime('2026-12-08T01:30:00Z', 'Mars/Olympus')).toMatch(/^\d\d:\d\d .+ \d\d\/\d\d\/2026$/);
    expect(meetingTime('not a date')).toBeNull();
    expect(meetingTime('2026-12-06T17:05:00Z', 'Asia/Ho_Chi_Minh')).toBe('00:05 Thứ Hai 07/12/2026');
    expect(meetingTime('2026-12-12T10:00:00Z', 'UTC')).toBe('10:00 Thứ Bảy 12/12/2026');
  });

  it('a title too long for two lines is cut with an ellipsis; the name too', () => {
    const long = Array.from({ length: 40 }, (_, i) => `từ${i}`).join(' ');
    const next = lines(standbyTexts(view({ nextMeeting: { title: long, startsAt: '2026-12-08T01:30:00Z' } })).next);
    expect(next).toHaveLength(3);
    expect(next[2]!.endsWith('…')).toBe(true);
    for (const l of next) expect([...l].length).toBeLessThanOrEqual(STANDBY_LAYOUT.next.chars);
    const name = lines(standbyTexts(view({ name: `Ủy ban nhân dân ${long}` })).title);
    expect(name).toHaveLength(2);
    expect(name[1]!.endsWith('…')).toBe(true);
  });

  it('the first problem in Vietnamese (most urgent first), wrapped', () => {
    const t = standbyTexts(view({ state: 'fault', network: false, faults: ['no_camera'] }));
    expect(t.fault.replace('\n', ' ')).toBe('Không có mạng: kiểm tra dây mạng hoặc bộ phát 4G/Wi-Fi, tắt bộ phát rồi bật lại.');
    expect(lines(t.fault).length).toBeLessThanOrEqual(STANDBY_LAYOUT.fault.lines);
    expect(t.status).toBe('Có lỗi — xem hướng dẫn bên dưới\nFault — see the advice below');
    expect(standbyTexts(view({ faults: ['under_voltage'] })).fault).toBe('Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng');
    expect(standbyTexts(view({ name: null, state: 'unprovisioned' })).title).toBe('Commune endpoint');
  });

  it('badges: hand raised and mic muted, each alone or both', () => {
    expect(standbyTexts(view({ handRaised: true })).badges).toContain('Giơ tay');
    expect(standbyTexts(view({ handRaised: true })).badges).not.toContain('Tắt micrô');
    expect(standbyTexts(view({ micMuted: true })).badges).toContain('Tắt micrô');
    const both = standbyTexts(view({ handRaised: true, micMuted: true })).badges;
    expect(both.indexOf('Giơ tay')).toBeLessThan(both.indexOf('Tắt micrô'));
  });
});

describe('wrapText and overlayText', () => {
  it('wraps at word boundaries, splits a word longer than a line', () => {
    expect(wrapText('a bb ccc dddd', 6, 3)).toBe('a bb\nccc\ndddd');
    expect(wrapText('abcdefghij', 4, 3)).toBe('abcd\nefgh\nij');
    expect(wrapText('abcdefghijklmn', 4, 2)).toBe('abcd\nefg…');
    expect(wrapText('  ', 4, 2)).toBe('');
  });

  it('escapes Pango markup (textoverlay draws nothing for a stray &) and never yields an empty value', () => {
    expect(overlayText('A & <b>B</b>')).toBe('A &amp; &lt;b&gt;B&lt;/b&gt;');
    expect(overlayText('')).toBe(' ');
    expect(overlayText('x\u0000y\uD800')).toBe('xy\uFFFD');
  });
});

describe('planStandby', () => {
  it('one named textoverlay per text, hidden when empty; the clock and the osd; 5 fps to kmssink on a headless Pi', () => {
    const t: StandbyTexts = { ...idleStandbyTexts('Xã Cẩm Thanh'), fault: 'Nguồn điện yếu' };
    const p = planStandby(caps(), settings, undefined, t);
    expect(p.pipeline.startsWith('videotestsrc ')).toBe(true);
    expect(p.pipeline).toContain('framerate=5/1');
    expect(p.pipeline).toContain('kmssink');
    expect(p.choices.display).toBe('kmssink card1-HDMI-A-1');
    for (const [key, name] of Object.entries(STANDBY_ELEMENTS)) {
      const m = new RegExp(`textoverlay name=${name} [^!]*silent=(true|false)`).exec(p.pipeline);
      expect(m, key).not.toBeNull();
      expect(m![1], key).toBe(t[key as keyof StandbyTexts] === '' ? 'true' : 'false');
    }
    expect(p.pipeline).toContain('text="Nguồn điện yếu"');
    expect(p.pipeline).toContain('clockoverlay');
    expect(p.pipeline).toContain(`textoverlay name=${N.osd} silent=true`);
    expect(p.texts).toEqual(t);
    expect(p.names).toEqual({ snapshotReceive: null });
    expect(p.pipeline).not.toContain('pngenc');
  });

  it('without texts: the configured name and "ready"', () => {
    expect(planStandby(caps(), settings).texts).toEqual(idleStandbyTexts('Xã Cẩm Thanh'));
  });

  it('a PNG of the displayed picture with snapshotDir (1 fps at most, behind a leaky queue)', () => {
    const p = planStandby(caps(), { ...settings, source: 'test', snapshotDir: '/tmp/x' });
    expect(p.names).toEqual({ snapshotReceive: N.snapshotReceive });
    expect(p.pipeline).toContain('tee name=standbytee');
    expect(p.pipeline).toContain(`standbytee. ! queue leaky=downstream max-size-buffers=2 ! videorate drop-only=true max-rate=1 ! videoconvert ! video/x-raw,format=RGB ! pngenc compression-level=1 ! appsink name=${N.snapshotReceive}`);
    expect(p.choices.display).toBe('fakesink');
  });

  it('fonts scale with the frame (1920 wide: 1.5×); no textoverlay element: the plain card', () => {
    expect(planStandby(caps(), settings, { width: 1920, height: 1080 }).pipeline).toContain('font-desc="DejaVu Sans Bold 60"');
    const bare = planStandby(caps({ elements: { kmssink: true } }), settings);
    expect(bare.pipeline).not.toContain('textoverlay');
    expect(bare.pipeline).not.toContain('clockoverlay');
  });
});

describe('standbySets', () => {
  const a = idleStandbyTexts('Xã Cẩm Thanh');
  it('only the texts that changed; text before showing; hiding is silent alone', () => {
    const b: StandbyTexts = { ...a, status: 'Có lỗi\nFault', fault: 'Không có mạng', badges: ' Giơ tay ' };
    expect(standbySets(a, b)).toEqual([
      { element: N.standbyStatus, property: 'text', value: 'Có lỗi\nFault' },
      { element: N.standbyFault, property: 'text', value: 'Không có mạng' },
      { element: N.standbyFault, property: 'silent', value: false },
      { element: N.standbyBadges, property: 'text', value: ' Giơ tay ' },
      { element: N.standbyBadges, property: 'silent', value: false },
    ]);
    expect(standbySets(b, a)).toEqual([
      { element: N.standbyStatus, property: 'text', value: a.status },
      { element: N.standbyFault, property: 'silent', value: true },
      { element: N.standbyBadges, property: 'silent', value: true },
    ]);
    expect(standbySets(a, { ...a })).toEqual([]);
    expect(standbySets(a, { ...a, title: 'A & B' })).toEqual([{ element: N.title, property: 'text', value: 'A &amp; B' }]);
  });

  it('from nothing known: every text', () => {
    expect(standbySets(null, a).map((s) => `${s.element}.${s.property}`)).toEqual([`${N.title}.text`, `${N.title}.silent`, `${N.standbyStatus}.text`, `${N.standbyStatus}.silent`, `${N.standbyNext}.silent`, `${N.standbyFault}.silent`, `${N.standbyBadges}.silent`]);
  });
});

describe('MediaSupervisor.updateStandby', () => {
  let spawner: FakeSpawner;
  let sup: MediaSupervisor;
  beforeEach(() => {
    vi.useFakeTimers();
    spawner = new FakeSpawner();
    sup = new MediaSupervisor({ spawner, backoffBaseMs: 100, random: () => 0.5 });
  });
  afterEach(async () => {
    const closing = sup.close();
    await vi.advanceTimersByTimeAsync(5000);
    await closing;
    vi.useRealTimers();
  });
  const sets = (received: ToWorker[]): Array<Extract<ToWorker, { type: 'set' }>> => received.filter((m): m is Extract<ToWorker, { type: 'set' }> => m.type === 'set');
  const testSettings: MediaSettings = { ...settings, source: 'test' };

  it('sends only what changed to the running standby worker, nothing when nothing changed', async () => {
    const plan = planStandby(caps(), testSettings);
    const started = sup.start(plan);
    await vi.advanceTimersByTimeAsync(1);
    await started;
    const w = spawner.running[0]!;
    const next = standbyTexts(view({ state: 'fault', network: false, handRaised: true }));
    sup.updateStandby(next);
    sup.updateStandby(next);
    expect(sets(w.received)).toEqual(standbySets(plan.texts!, next).map((s) => ({ type: 'set', ...s })));
    expect(sets(w.received).map((s) => s.element)).not.toContain(N.title);
    expect(sets(w.received).length).toBeGreaterThan(0);
  });

  it('a worker restarted after an update starts from its plan and gets the difference', async () => {
    const plan = planStandby(caps(), testSettings);
    const started = sup.start(plan);
    await vi.advanceTimersByTimeAsync(1);
    await started;
    const next = standbyTexts(view({ micMuted: true }));
    sup.updateStandby(next);
    spawner.running[0]!.die(null, 'SIGSEGV');
    await vi.advanceTimersByTimeAsync(1000);
    const second = spawner.running[1]!;
    expect(second.received[0]).toMatchObject({ type: 'start', plan: { kind: 'standby' } });
    expect(sets(second.received)).toEqual([
      { type: 'set', element: N.standbyBadges, property: 'text', value: next.badges },
      { type: 'set', element: N.standbyBadges, property: 'silent', value: false },
    ]);
  });

  it("identify's text is plain text: a name with & still draws (markup escaped)", async () => {
    const started = sup.start(planStandby(caps(), testSettings));
    await vi.advanceTimersByTimeAsync(1);
    await started;
    sup.showText('Xã A & B');
    expect(sets(spawner.running[0]!.received)[0]).toEqual({ type: 'set', element: N.osd, property: 'text', value: 'Xã A &amp; B' });
  });

  it("nothing sent with nothing running; over a session's program only the badges, once", async () => {
    sup.updateStandby(standbyTexts(view({ micMuted: true })));
    const session = planSession({ meetingId: 'm', send: { url: 'srt://hub:1' }, receive: { url: 'srt://hub:2' } }, caps({ elements: { textoverlay: true, x264enc: true, avdec_h264: true, srtsink: true, srtsrc: true, mpegtsmux: true, tsdemux: true, h264parse: true, opusenc: true, opusdec: true } }), testSettings);
    const started = sup.start(session);
    await vi.advanceTimersByTimeAsync(1);
    await started;
    sup.updateStandby(standbyTexts(view({ micMuted: true })));
    // the session started with the mic already muted: its badge, sent once at launch
    expect(spawner.workers.flatMap((w) => sets(w.received)).map((s) => `${String(s.element)}.${String(s.property)}`)).toEqual([`${N.standbyBadges}.text`, `${N.standbyBadges}.silent`]);
  });
});
