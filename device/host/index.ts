export { RecordingLeds, sysfsLeds } from './leds.js';
export type { Leds } from './leds.js';
export { RecordingSystemActions, systemctlActions } from './system.js';
export type { SystemActions } from './system.js';
