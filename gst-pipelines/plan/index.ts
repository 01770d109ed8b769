export { BPS, DECODER_PREFERENCE, ENCODER_PREFERENCE, pickDecoder, pickEncoder } from './codecs.js';
export { rungCaps } from './adapt-settings.js';
export { planCodecSelftest } from './codec-selftest.js';
export { isPlanError } from './errors.js';
export { ELEMENT_NAMES } from './names.js';
export { planSession } from './session.js';
export { STANDBY_CLOCK_REGION, STANDBY_ELEMENTS, STANDBY_LAYOUT, STANDBY_TEXT_KEYS, idleStandbyTexts, overlayText, planStandby, screenLine, standbySets, standbyTitle, wrapText } from './standby.js';
