export { logOnlyLeds } from './leds.js';
export type { Leds } from './leds.js';
export { logOnlySystemActions, systemctlActions } from './system.js';
export type { SystemActions } from './system.js';
