/**
 * What a bench section is and returns (run.ts runs them): its parts, the numbers it
 * measured, the goals each headline field is held to, and its lines of the human table.
 */
import type { Capabilities } from '../../gst-pipelines/types.js';
import { MeasurementError } from './machine.js';
import type { BenchOptions } from './options.js';

export interface BenchContext {
  options: BenchOptions;
  /** Progress lines (stderr). */
  log: (line: string) => void;
  /** The probed GStreamer capabilities of this machine (probed once, on first use). */
  caps: () => Promise<Capabilities>;
}

export interface Goal {
  field: string;
  target: string;
  value: number | null;
  met: boolean | null;
}

export interface SectionReport {
  /** Headline fields first (numbers or null), then details. */
  data: Record<string, unknown>;
  /** Field → why it is null. A non-empty map makes the bench exit 1. */
  unmeasured: Record<string, string>;
  /** Parts left out by --only (not a failure). */
  skipped: string[];
  goals: Goal[];
  /** Lines for the human report. */
  table: string[];
}

export interface BenchSection {
  name: string;
  parts: readonly string[];
  run(ctx: BenchContext, parts: ReadonlySet<string>): Promise<SectionReport>;
}

export const fmt = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? '—' : `${v}${unit}`);
export const goal = (field: string, target: string, value: number | null, ok: (v: number) => boolean): Goal => ({ field, target, value, met: value === null ? null : ok(value) });

/** A section's human table: a title, a header, `row()`s with the goal of a field (`met()`). */
export function sectionTable(title: string, goals: Goal[], width: number): { t: string[]; row: (name: string, v: string, g?: string) => void; met: (field: string) => string } {
  const t = [title, `  ${'metric'.padEnd(width)} ${'measured'.padEnd(12)} goal`];
  const row = (name: string, v: string, g = ''): void => void t.push(`  ${name.padEnd(width)} ${v.padEnd(12)} ${g}`);
  const met = (f: string): string => {
    const g = goals.find((x) => x.field === f);
    return g ? `${g.target} ${g.met === null ? '' : g.met ? '✓ met' : '✗ not met'}` : '';
  };
  return { t, row, met };
}

export async function part<T>(name: string, parts: ReadonlySet<string>, unmeasured: Record<string, string>, fields: string[], fn: () => Promise<T>): Promise<T | null> {
  if (!parts.has(name)) return null;
  try {
    return await fn();
  } catch (e) {
    const reason = e instanceof MeasurementError ? e.message : `${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
    for (const f of fields) unmeasured[f] = reason;
    return null;
  }
}
