/**
 * The faults a health sample shows (CONTRACT.md fault codes), with their thresholds.
 */
import type { HealthSample } from '../contract/index.js';

export interface FaultThresholds {
  /** disk_full at or above this used %. Default 95. */
  diskFullPct?: number;
  /** overheating at or above this °C. Default 80 (where the Pi 4/5 firmware starts to throttle). */
  overheatC?: number;
}

export const HEALTH_FAULTS = [
  'clock_unsynced', 'disk_full', 'no_camera', 'no_display', 'no_mic', 'no_speaker', 'overheating', 'under_voltage',
] as const;
export type HealthFault = (typeof HEALTH_FAULTS)[number];

/** The faults a sample shows, sorted. An unknown (null) value is never a fault. Pure. */
export function faultsFromHealth(sample: HealthSample, opts: FaultThresholds = {}): HealthFault[] {
  const diskFullPct = opts.diskFullPct ?? 95;
  const overheatC = opts.overheatC ?? 80;
  const out = new Set<HealthFault>();
  if (sample.power.underVoltage === true) out.add('under_voltage');
  if (sample.clockSynced === false) out.add('clock_unsynced');
  const disk = sample.disk.usedPct;
  if (typeof disk === 'number' && disk >= diskFullPct) out.add('disk_full');
  const temp = sample.cpu.tempC;
  if (typeof temp === 'number' && temp >= overheatC) out.add('overheating');
  const d = sample.devices;
  if (d.camera === false) out.add('no_camera');
  if (d.display === false) out.add('no_display');
  if (d.mic === false) out.add('no_mic');
  if (d.speaker === false) out.add('no_speaker');
  return [...out].sort();
}
