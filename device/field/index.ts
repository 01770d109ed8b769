/**
 * What the clerk and the technician see: the field view and its LED code and advice
 * (model.ts, field-state.ts), the LEDs and the button (leds.ts, gpio.ts, button.ts,
 * hardware.ts), the TV standby screen's texts (standby-texts.ts) and the local status
 * page (status-page.ts). docs/field.md tells the whole of it.
 */
export * from './model.js';
export { FieldState, NEXT_GRACE_MS, type FieldBase } from './field-state.js';
export { Button, type ButtonOptions } from './button.js';
export { LedController } from './leds.js';
export { fieldHardwareConfig, formatFieldHardware, openFieldHardware, probeFieldHardware, type FieldHardware, type FieldHardwareConfig, type FieldHardwareDeps, type FieldHardwareReport, type FieldWiring } from './hardware.js';
export { standbyTexts } from './standby-texts.js';
// status-page.ts is loaded by agent-field.ts only where the page is on: types only here.
export type { StatusPageServer, StatusPageOptions } from './status-page.js';
export { AgentField, type AgentFieldDeps } from './agent-field.js';
