import { describe, expect, it } from 'vitest';
import { LED_CODES, NO_HUB_AFTER_MS, adviceFor, displayString, hubLost, ledCode, ledFor, problemsOf, type FieldView } from '../../device/field/model.js';
import { fieldView } from '../fakes/index.js';

const view = (o: Partial<FieldView> = {}): FieldView =>
  fieldView({ name: 'Xã Tân Phú', deviceId: 'ep-0001', groupId: 'huyen-a', ...o });

/** Each condition that selects one code, in the table's order. */
const CONDITIONS: Array<[string, Partial<FieldView>]> = [
  ['reset_warning', { resetWarning: true }],
  ['identify', { identify: true }],
  ['unprovisioned', { state: 'unprovisioned' }],
  ['under_voltage', { faults: ['under_voltage'] }],
  ['no_network', { network: false }],
  ['no_hub', { hub: { connected: false, url: null, downForMs: NO_HUB_AFTER_MS } }],
  ['no_camera', { faults: ['no_camera'] }],
  ['no_display', { faults: ['no_display'] }],
  ['fault', { faults: ['disk_full'] }],
  ['updating', { state: 'updating' }],
  ['in_meeting', { state: 'in_meeting' }],
];

/** A view where the conditions from index `from` on all hold (faults merged, the highest state wins). */
function allFrom(from: number): FieldView {
  const parts = CONDITIONS.slice(from).map(([, p]) => p);
  const faults = parts.flatMap((p) => p.faults ?? []);
  const merged = Object.assign({}, ...[...parts].reverse()) as Partial<FieldView>;
  return view({ ...merged, faults });
}

describe('ledFor', () => {
  it('each condition alone gives its code', () => {
    for (const [code, p] of CONDITIONS) expect(ledFor(view(p)).code, code).toBe(code);
    expect(ledFor(view()).code).toBe('idle');
  });

  it('follows the table order when every condition holds: removing the winner reveals the next', () => {
    const order = CONDITIONS.map((_, i) => ledFor(allFrom(i)).code);
    // The unprovisioned state hides the hub (hubLost is false when unprovisioned) but not the rest.
    expect(order).toEqual(CONDITIONS.map(([c]) => c));
    expect(LED_CODES.map((c) => c.code)).toEqual([...CONDITIONS.map(([c]) => c), 'idle']);
  });

  it('joining and leaving show as in a meeting; a state fault and any other fault as 7 pulses', () => {
    expect(ledFor(view({ state: 'joining' })).code).toBe('in_meeting');
    expect(ledFor(view({ state: 'leaving' })).code).toBe('in_meeting');
    expect(ledFor(view({ state: 'fault' })).code).toBe('fault');
    for (const f of ['media_failing', 'overheating', 'no_mic', 'no_speaker']) expect(ledFor(view({ faults: [f], state: 'in_meeting' })).code, f).toBe('fault');
    // clock_unsynced is advice only: no LED code of its own.
    expect(ledFor(view({ faults: ['clock_unsynced'] })).code).toBe('idle');
  });

  it('a broker reconnect shorter than NO_HUB_AFTER_MS is not "no hub"', () => {
    expect(ledFor(view({ hub: { connected: false, url: null, downForMs: NO_HUB_AFTER_MS - 1 } })).code).toBe('idle');
    expect(hubLost(view({ state: 'unprovisioned', hub: { connected: false, url: null, downForMs: 10 * NO_HUB_AFTER_MS } }))).toBe(false);
  });

  it('codes have steps that alternate on/off, and N-pulse codes N pulses', () => {
    for (const c of LED_CODES) expect(c.steps.length, c.code).toBeGreaterThan(0);
    const pulses = (name: Parameters<typeof ledCode>[0]): number => ledCode(name).steps.filter(([on]) => on).length;
    expect([pulses('unprovisioned'), pulses('under_voltage'), pulses('no_network'), pulses('no_hub'), pulses('no_camera'), pulses('no_display'), pulses('fault')]).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(ledCode('in_meeting').steps).toEqual([[true, 0]]);
  });
});

describe('problemsOf', () => {
  it('lists the field problems first, then faults in the table order, each with advice in both languages', () => {
    const p = problemsOf(view({ state: 'unprovisioned', network: false, faults: ['overheating', 'no_display', 'under_voltage', 'no_camera'] }));
    expect(p.map((x) => x.code)).toEqual(['unprovisioned', 'no_network', 'under_voltage', 'no_camera', 'no_display', 'overheating']);
    expect(p[2]).toEqual({ code: 'under_voltage', vi: 'Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng', en: expect.stringContaining('5V/3A') });
  });

  it('no network hides no hub; a lost hub shows; duplicates once; none when fine', () => {
    const down = { connected: false, url: null, downForMs: NO_HUB_AFTER_MS };
    expect(problemsOf(view({ network: false, hub: down })).map((x) => x.code)).toEqual(['no_network']);
    expect(problemsOf(view({ hub: down, faults: ['no_hub'] })).map((x) => x.code)).toEqual(['no_hub']);
    expect(problemsOf(view())).toEqual([]);
  });

  it('an unknown fault code still gets a line, after the known ones', () => {
    const p = problemsOf(view({ faults: ['zz_new', 'disk_full'] }));
    expect(p.map((x) => x.code)).toEqual(['disk_full', 'zz_new']);
    expect(p[1]).toEqual({ code: 'zz_new', ...adviceFor('zz_new') });
    expect(p[1]!.en).toContain('zz_new');
  });
});

describe('displayString', () => {
  it('NFC-normalises, drops control characters, caps the length in characters', () => {
    const decomposed = 'Hội nghị'.normalize('NFD');
    expect(displayString(decomposed)).toBe('Hội nghị'.normalize('NFC'));
    expect(displayString('a\u0000b\u001bc\nd')).toBe('abc\nd');
    expect([...displayString('ệ'.repeat(300), 10)]).toHaveLength(10);
  });
});
