/**
 * `ep status` and `ep selftest` as text: pure formatting of plain status and report
 * objects (device/cli/status.ts formatStatus, device/cli/selftest.ts formatSelftest).
 */
import { describe, expect, it } from 'vitest';
import { formatStatus, logLineText, useColor } from '../../device/cli/status.js';
import { formatSelftest } from '../../device/cli/selftest.js';
import { ledFor, problemsOf, type FieldView } from '../../device/field/model.js';
import { fieldView } from '../fakes/index.js';

const ESC = '\x1b';

const view = (over: Partial<FieldView> = {}): FieldView =>
  fieldView({ name: 'Xã Thanh Hà', groupId: 'huyen-a', version: '1.4.0', nextMeeting: { title: 'Hội nghị giao ban', startsAt: '2026-12-07T08:00:00.000Z' }, now: 1_780_000_000_000, ...over });

const health = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  ts: '2026-12-06T10:00:00.000Z',
  clockSynced: true,
  cpu: { loadPct: 12, tempC: 51.4 },
  power: { underVoltage: false, underVoltageSinceBoot: false, throttled: false },
  devices: { camera: true, display: true, mic: true, speaker: false },
  ...over,
});

function status(v: FieldView, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    provisioned: true,
    deviceId: v.deviceId,
    groupId: v.groupId,
    name: v.name,
    hub: { url: 'mqtts://hub.example:8883', connected: v.hub.connected, reachedSinceStart: true },
    state: v.state,
    meeting: v.meeting,
    media: { send: 'idle', receive: 'idle' },
    ota: v.ota,
    faults: v.faults,
    version: v.version,
    ts: '2026-12-06T10:00:00.000Z',
    health: health(),
    field: v,
    led: ledFor(v),
    problems: problemsOf(v),
    recentErrors: [],
    ...over,
  };
}

const row = (text: string, key: string): string => text.split('\n').find((l) => l.startsWith(`${key.padEnd(10)} `)) ?? `(no ${key} row)`;

describe('formatStatus', () => {
  it('an idle box: state in both languages, hub, next meeting, devices, power, LEDs, no problems, no escape codes', () => {
    const t = formatStatus(status(view()), { color: false });
    expect(t).not.toContain(ESC);
    expect(row(t, 'state')).toBe('state      idle — Sẵn sàng — chờ cuộc họp / Ready — waiting for the next meeting');
    expect(row(t, 'box')).toBe('box        cam-thanh (group huyen-a) Xã Thanh Hà');
    expect(row(t, 'hub')).toBe('hub        connected to mqtts://hub.example:8883');
    expect(row(t, 'meeting')).toBe('meeting    none');
    expect(row(t, 'next')).toBe('next       Hội nghị giao ban at 2026-12-07T08:00:00.000Z');
    expect(row(t, 'devices')).toBe('devices    camera ok, display ok, mic ok, speaker MISSING');
    expect(row(t, 'power')).toBe('power      good; 51 °C');
    expect(row(t, 'clock')).toBe('clock      synchronised');
    expect(row(t, 'version')).toBe('version    1.4.0');
    expect(row(t, 'update')).toBe('update     none');
    expect(row(t, 'LEDs')).toBe('LEDs       short blink every 3 s — Sẵn sàng, chờ cuộc họp / Ready, waiting for the next meeting');
    expect(row(t, 'problems')).toBe('problems   none');
    expect(t).not.toMatch(/^errors/m);
  });

  it('faults: the LED code that wins, each problem with its advice, power and the hub in words', () => {
    const v = view({ faults: ['no_camera', 'under_voltage'], hub: { connected: false, url: null, downForMs: 45_000 } });
    const s = status(v, { hub: { url: 'mqtts://hub.example:8883', connected: false }, health: health({ power: { underVoltage: true, underVoltageSinceBoot: true, throttled: true } }) });
    const t = formatStatus(s, { color: false });
    expect(row(t, 'hub')).toBe('hub        NOT connected to mqtts://hub.example:8883 (for 45 s)');
    expect(row(t, 'power')).toBe('power      UNDER-VOLTAGE now, THROTTLED; 51 °C');
    expect(row(t, 'LEDs')).toContain('2 pulses, pause — Nguồn điện yếu / Weak power supply');
    expect(row(t, 'problems')).toBe('problems   3');
    const after = t.slice(t.indexOf('problems   3'));
    // Most urgent first: no hub (field's own), then the faults in LED priority.
    expect(after.indexOf('  no_hub')).toBeLessThan(after.indexOf('  under_voltage'));
    expect(after.indexOf('  under_voltage')).toBeLessThan(after.indexOf('  no_camera'));
    expect(after).toContain('    Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng');
    expect(after).toContain('    Weak power: replace the power adapter with a genuine 5V/3A one');
  });

  it('the last errors as their message text, not raw JSON; non-JSON lines as they are', () => {
    const errs = [JSON.stringify({ level: 50, time: Date.UTC(2026, 11, 6, 9, 30, 5), module: 'media', evt: 'media.failed', msg: 'the media worker crashed', err: 'SIGSEGV' }), 'plain text line\u0007'];
    const t = formatStatus(status(view(), { recentErrors: errs }), { color: false });
    expect(row(t, 'errors')).toBe('errors     last 2');
    expect(t).toContain('\n  2026-12-06 09:30:05 the media worker crashed: SIGSEGV\n');
    expect(t).toContain('\n  plain text line');
    expect(t).not.toContain('"level"');
    expect(t).not.toContain('\u0007');
  });

  it('in a meeting with an update: meeting title, media, update phase and progress', () => {
    const v = view({ state: 'in_meeting', meeting: { id: 'm-42', title: 'Họp khẩn phòng chống lụt bão', since: '2026-12-06T09:00:00.000Z' }, ota: { phase: 'downloading', version: '1.5.0', progress: 0.4 } });
    const t = formatStatus(status(v, { media: { send: 'running', receive: 'running', rung: '720p30', lastError: null } }), { color: false });
    expect(row(t, 'meeting')).toBe('meeting    Họp khẩn phòng chống lụt bão (m-42) since 2026-12-06T09:00:00.000Z');
    expect(row(t, 'media')).toBe('media      send running, receive running, 720p30');
    expect(row(t, 'update')).toBe('update     downloading 1.5.0 40 %');
    expect(row(t, 'LEDs')).toContain('steady on');
  });

  it('colour: green ok, yellow warn, red fault — and none at all when asked for plain', () => {
    const v = view({ faults: ['no_display'] });
    const s = status(v, { health: health({ power: { underVoltage: false, underVoltageSinceBoot: true, throttled: false } }) });
    const t = formatStatus(s, { color: true });
    expect(row(t, 'hub')).toContain(`${ESC}[32mconnected${ESC}[0m`);
    expect(row(t, 'power')).toContain(`${ESC}[33munder-voltage since boot${ESC}[0m`);
    expect(row(t, 'devices')).toContain(`${ESC}[31mMISSING${ESC}[0m`);
    expect(row(t, 'LEDs')).toContain(`${ESC}[31m6 pulses, pause${ESC}[0m`);
    expect(formatStatus(s, { color: false })).not.toContain(ESC);
  });

  it('an unprovisioned box: the reason and since, not hub rows', () => {
    const v = view({ state: 'unprovisioned', name: null, deviceId: null, groupId: null, unprovisionedReason: 'broker: is required' });
    const t = formatStatus({ provisioned: false, state: 'unprovisioned', reason: 'the configuration is not valid: broker: is required', since: '2026-12-06T08:00:00.000Z', version: '1.4.0', field: v, led: ledFor(v), problems: problemsOf(v) }, { color: false });
    expect(row(t, 'state')).toBe('state      unprovisioned — Chưa cài đặt / Not set up');
    expect(row(t, 'why')).toBe('why        the configuration is not valid: broker: is required');
    expect(row(t, 'since')).toBe('since      2026-12-06T08:00:00.000Z');
    expect(row(t, 'LEDs')).toContain('1 pulse, pause');
    expect(t).toContain('  unprovisioned\n    Chưa cài đặt: cần tệp ep-provision.json');
    expect(t).not.toMatch(/^hub/m);
  });

  it('an older agent (no field, led, problems, health): still one screen, faults from the list', () => {
    const t = formatStatus({ provisioned: true, deviceId: 'cam-x', groupId: 'g', name: null, hub: { url: 'mqtt://h:1883', connected: true }, state: 'fault', meeting: null, ota: null, faults: ['media_failing'], version: '1.0.0' }, { color: false });
    expect(row(t, 'state')).toBe('state      fault — Có lỗi — xem hướng dẫn bên dưới / Fault — see the advice below');
    expect(row(t, 'devices')).toBe('devices    -');
    expect(row(t, 'faults')).toBe('faults     media_failing');
    expect(t).not.toMatch(/^LEDs/m);
    expect(formatStatus(null, { color: false })).toBe(['state      unknown', 'box        - (group -)', 'hub        -', 'meeting    none', 'next       none announced', 'devices    -', 'version    -', 'update     none', 'faults     none'].join('\n'));
  });

  it('logLineText: pino JSON to time and message; junk kept readable', () => {
    expect(logLineText(JSON.stringify({ time: Date.UTC(2026, 0, 2, 3, 4, 5), msg: 'cannot reach the hub' }))).toBe('2026-01-02 03:04:05 cannot reach the hub');
    expect(logLineText('{"evt":"x"}')).toBe('x');
    expect(logLineText('{not json')).toBe('{not json');
  });

  it('useColor: a TTY without NO_COLOR only', () => {
    expect(useColor({ isTTY: true }, {})).toBe(true);
    expect(useColor({ isTTY: false }, {})).toBe(false);
    expect(useColor({}, {})).toBe(false);
    expect(useColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(useColor({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
  });
});

describe('formatSelftest', () => {
  const report = {
    ok: false,
    checks: [
      { check: 'camera', ok: true, detail: 'USB cam: 10 frames arrived' },
      { check: 'hub_media', ok: true, detail: 'no hub media address known yet', skipped: true },
      { check: 'power', ok: false, detail: 'under-voltage now', advice: { vi: 'Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng', en: 'Weak power: replace the power adapter' } },
    ],
  };
  it('a row per check, advice under each failure, the count at the end, plain', () => {
    const t = formatSelftest(report, { color: false });
    expect(t.split('\n')).toEqual([
      'PASS  camera     USB cam: 10 frames arrived',
      'SKIP  hub_media  no hub media address known yet',
      'FAIL  power      under-voltage now',
      '                 Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng',
      '                 Weak power: replace the power adapter',
      '',
      '1 of 3 checks FAILED',
    ]);
  });
  it('colours on request; a report without checks says so', () => {
    expect(formatSelftest(report, { color: true })).toContain(`${ESC}[31mFAIL${ESC}[0m`);
    expect(formatSelftest({ ok: true, checks: [{ check: 'disk', ok: true, detail: 'fine' }] }, { color: false })).toMatch(/all 1 checks passed \(0 skipped\)$/);
    expect(formatSelftest({ ok: true }, { color: false })).toBe('the agent answered without a checks table');
  });
});
