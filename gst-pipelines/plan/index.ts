export { BPS, DECODER_PREFERENCE, ENCODER_PREFERENCE, pickDecoder, pickEncoder } from './codecs.js';
export { rungCaps } from './adapt-settings.js';
export { planCodecSelftest } from './codec-selftest.js';
export { isPlanError } from './errors.js';
export { ELEMENT_NAMES } from './names.js';
export { planSession } from './session.js';
export { planStandby } from './standby.js';
