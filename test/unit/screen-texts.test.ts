import { describe, expect, it } from 'vitest';
import { ScreenTexts } from '../../gst-pipelines/supervisor/screen-texts.js';
import { ELEMENT_NAMES } from '../../gst-pipelines/plan/index.js';
import type { MediaPlan, StandbyTexts } from '../../gst-pipelines/types.js';

const texts = (o: Partial<StandbyTexts> = {}): StandbyTexts => ({ title: 'Xã Cam Thanh', status: 'Sẵn sàng', next: '', fault: '', badges: '', ...o });
const standby = (t?: StandbyTexts): MediaPlan => ({ kind: 'standby', pipeline: 'videotestsrc ! fakesink', choices: { display: 'fakesink' }, env: {}, ...(t ? { texts: t } : {}) });
const session = { kind: 'session' } as unknown as MediaPlan;

describe('ScreenTexts: the TV texts across plans', () => {
  it('on the standby screen: only what changed, and a relaunched worker is brought to what is wanted', () => {
    const s = new ScreenTexts();
    expect(s.launched(standby(texts()))).toEqual([]);
    expect(s.update(texts())).toEqual([]);
    const sets = s.update(texts({ fault: 'Nguồn điện yếu', badges: 'Giơ tay' }));
    expect(sets.map((x) => `${x.element}.${x.property}`)).toEqual([`${ELEMENT_NAMES.standbyFault}.text`, `${ELEMENT_NAMES.standbyFault}.silent`, `${ELEMENT_NAMES.standbyBadges}.text`, `${ELEMENT_NAMES.standbyBadges}.silent`]);
    // the worker crashed and its plan (built before the fault) starts again
    const again = s.launched(standby(texts()));
    expect(again.filter((x) => x.property === 'text').map((x) => x.value)).toEqual(['Nguồn điện yếu', 'Giơ tay']);
  });

  it("over a meeting's program: the badges only, from a silent start", () => {
    const s = new ScreenTexts();
    s.update(texts({ fault: 'Nguồn điện yếu', badges: 'Tắt micrô' }));
    const sets = s.launched(session);
    expect(sets).toEqual([
      { element: ELEMENT_NAMES.standbyBadges, property: 'text', value: 'Tắt micrô' },
      { element: ELEMENT_NAMES.standbyBadges, property: 'silent', value: false },
    ]);
    expect(s.update(texts({ fault: 'other', badges: 'Tắt micrô' }))).toEqual([]);
    expect(s.update(texts({ badges: '' }))).toEqual([{ element: ELEMENT_NAMES.standbyBadges, property: 'silent', value: true }]);
  });

  it('nothing runs: nothing is sent, but the wish is kept for the next plan', () => {
    const s = new ScreenTexts();
    s.launched(standby(texts()));
    s.stopped();
    expect(s.update(texts({ badges: 'Giơ tay' }))).toEqual([]);
    expect(s.launched(standby(texts())).map((x) => x.value)).toEqual(['Giơ tay', false]);
  });
});
