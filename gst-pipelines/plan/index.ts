export { BPS, DECODER_PREFERENCE, ELEMENT_NAMES, ENCODER_PREFERENCE, decoderChain, encoderChain, isPlanError, pickDecoder, pickEncoder, planSession, planStandby, rungCaps } from './plan.js';
