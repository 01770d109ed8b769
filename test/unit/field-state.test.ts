import { describe, expect, it } from 'vitest';
import { FakeClock, fieldView } from '../fakes/index.js';
import { FieldState, NEXT_GRACE_MS, type FieldBase } from '../../device/field/field-state.js';
import { ledFor, NO_HUB_AFTER_MS, type FieldView } from '../../device/field/model.js';

function setup(over: Partial<FieldBase> = {}) {
  const clock = new FakeClock('2026-12-07T08:00:00Z');
  // The shared view's fixture, without what the field adds itself (identify, hand, warning, next meeting, time).
  const { identify: _i, handRaised: _h, resetWarning: _r, nextMeeting: _n, now: _t, ...shared } = fieldView({ name: 'Xã Cam Thanh' });
  let base: FieldBase = { ...shared, ...over };
  const field = new FieldState({ clock, base: () => base });
  const seen: FieldView[] = [];
  field.subscribe((v) => seen.push(v));
  return { clock, field, seen, set: (p: Partial<FieldBase>) => ((base = { ...base, ...p }), field.changed()) };
}

describe('FieldState', () => {
  it('tells its listeners once per change, never for the time alone', async () => {
    const { clock, field, seen, set } = setup();
    field.start();
    await clock.advance(10_000);
    expect(seen).toHaveLength(0);
    set({ state: 'in_meeting' });
    set({ state: 'in_meeting' });
    expect(seen.map((v) => v.state)).toEqual(['in_meeting']);
    expect(ledFor(seen[0]!).code).toBe('in_meeting');
    field.stop();
    expect(clock.pending).toBe(0);
  });

  it('identify runs out by itself on the tick', async () => {
    const { clock, field, seen } = setup();
    field.start();
    field.identifyFor(5000);
    expect(ledFor(field.view).code).toBe('identify');
    await clock.advance(4000);
    expect(field.view.identify).toBe(true);
    await clock.advance(2000);
    expect(field.view.identify).toBe(false);
    expect(seen.map((v) => v.identify)).toEqual([true, false]);
    field.stop();
  });

  it('the hub is "lost" for the LEDs only after NO_HUB_AFTER_MS, and the tick notices it', async () => {
    const { clock, field, seen, set } = setup();
    field.start();
    let downSince = clock.now();
    // the agent computes downForMs from when the broker was lost; emulate it on each build
    const tick = (): void => set({ hub: { connected: false, url: null, downForMs: clock.now() - downSince } });
    tick();
    expect(ledFor(field.view).code).toBe('idle');
    const before = seen.length;
    await clock.advance(NO_HUB_AFTER_MS - 1000);
    tick();
    expect(seen.length).toBe(before);
    await clock.advance(2000);
    tick();
    expect(ledFor(field.view).code).toBe('no_hub');
    downSince = clock.now();
    set({ hub: { connected: true, url: null, downForMs: 0 } });
    expect(ledFor(field.view).code).toBe('idle');
    field.stop();
  });

  it('a next meeting is shown NFC-normalised, and dropped a while after it was due', async () => {
    const { clock, field } = setup();
    field.start();
    const decomposed = 'Hội nghị giao ban'.normalize('NFD');
    field.setNextMeeting({ title: `${decomposed}\u0007`, startsAt: '2026-12-07T09:00:00Z' });
    expect(field.view.nextMeeting).toEqual({ title: 'Hội nghị giao ban', startsAt: '2026-12-07T09:00:00Z' });
    await clock.advance(60 * 60_000 + NEXT_GRACE_MS - 1000);
    expect(field.view.nextMeeting).not.toBeNull();
    await clock.advance(2000);
    expect(field.view.nextMeeting).toBeNull();
    field.setNextMeeting(null);
    expect(field.view.nextMeeting).toBeNull();
    field.stop();
  });

  it('the reset warning outranks everything on the LEDs; hand and mute are in the view', () => {
    const { field, set } = setup({ faults: ['under_voltage'] });
    expect(ledFor(field.view).code).toBe('under_voltage');
    field.setResetWarning(true);
    field.identifyFor(10_000);
    expect(ledFor(field.view).code).toBe('reset_warning');
    field.setResetWarning(false);
    expect(ledFor(field.view).code).toBe('identify');
    field.setHandRaised(true);
    set({ micMuted: true });
    expect(field.view).toMatchObject({ handRaised: true, micMuted: true });
  });

  it('a listener that throws does not stop the others; listeners are bounded', () => {
    const { field, seen, set } = setup();
    field.subscribe(() => {
      throw new Error('broken listener');
    });
    set({ state: 'fault' });
    expect(seen).toHaveLength(1);
    expect(() => {
      for (let i = 0; i < 100; i++) field.subscribe(() => undefined);
    }).toThrow(/listeners/);
  });
});
