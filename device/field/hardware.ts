/**
 * Chooses, once at start, how the LEDs and the button are driven, and says why (`ep probe`
 * prints the report). LEDs: named /sys/class/leds LEDs (a gpio-leds overlay) → GPIO lines
 * through sysfs GPIO (onoff) → the same lines through the character device (gpioset) → the
 * board's own ACT (led0) → none. Button: sysfs GPIO → character device (gpiomon) → none.
 * sysfs GPIO numbers are the header chip's base + the BCM offset, read from sysfs.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { Clock, HostPaths, Logger } from '../../lib/index.js';
import {
  ChardevInput,
  ChardevOutput,
  detectGpiod,
  GPIOD_COMMANDS,
  gpiodChips,
  loadOnoff,
  pickHeaderChip,
  sysfsGpioChips,
  sysfsGpioInput,
  sysfsGpioOutput,
  sysfsGpioRefusal,
  type ChipInfo,
  type GpiodCommands,
  type GpiodTools,
  type InputLine,
  type OnoffFactory,
  type OutputLine,
} from './gpio.js';
import { LedController, nullLed, SoftwareLed, SysfsLed, type LedOutput } from './leds.js';

/** What the agent config says about the wiring (config `gpio` and `field.leds`, `field.button.activeLow`). */
export interface FieldHardwareConfig {
  /** BCM line offsets on the header chip. */
  gpio?: { statusLed?: number; faultLed?: number; button?: number };
  /** /sys/class/leds names from a gpio-leds overlay (e.g. `ep-status`, `ep-fault`). */
  leds?: { status?: string; fault?: string };
  /** Pressed pulls the button line low (pull-up wiring). Default true. */
  buttonActiveLow?: boolean;
  /** The LED lights when its line is low. Default false. */
  ledActiveLow?: boolean;
}

/** The agent config's wiring as this module takes it. */
/** The part of the agent config (config.ts) the field reads; structural, so this folder needs no import of it. */
export interface FieldWiring {
  gpio?: { statusLed?: number; faultLed?: number; button?: number };
  field?: { leds?: { status?: string; fault?: string }; button?: { activeLow: boolean } };
}

export function fieldHardwareConfig(c: FieldWiring): FieldHardwareConfig {
  return {
    ...(c.gpio ? { gpio: { ...c.gpio } } : {}),
    ...(c.field?.leds ? { leds: { ...c.field.leds } } : {}),
    ...(c.field?.button ? { buttonActiveLow: c.field.button.activeLow } : {}),
  };
}

export interface FieldHardwareDeps {
  paths: HostPaths;
  clock: Clock;
  log: Logger;
  /** onoff's Gpio as a factory; default: onoff itself; null: no sysfs GPIO. */
  onoff?: OnoffFactory | null;
  /** libgpiod's tools (default: from PATH). */
  gpiod?: GpiodCommands;
}

export type LedDriverKind = 'sysfs-leds' | 'sysfs-gpio' | 'chardev' | 'none';
export type ButtonDriverKind = 'sysfs-gpio' | 'chardev' | 'none';

export interface FieldHardwareReport {
  leds: { driver: LedDriverKind; status: string | null; fault: string | null; tried: string[] };
  button: { driver: ButtonDriverKind; line: string | null; tried: string[] };
}

export interface FieldHardware {
  leds: LedController;
  /** The button's line for a `Button` (button.ts); null when none is wired or none works. */
  buttonLine: InputLine | null;
  report: FieldHardwareReport;
  close(): Promise<void>;
}

/** What the sysfs and chardev paths found, computed once and shared by LEDs and button. */
interface Discovery {
  sysfsChip: ChipInfo | null;
  sysfsWhy: string;
  gpiod: { tools: GpiodTools; chip: ChipInfo } | null;
  gpiodWhy: string;
}

async function discover(deps: FieldHardwareDeps, needGpio: boolean): Promise<Discovery> {
  const d: Discovery = { sysfsChip: null, sysfsWhy: '', gpiod: null, gpiodWhy: '' };
  if (!needGpio) return d;
  const chips = await sysfsGpioChips(deps.paths);
  d.sysfsChip = pickHeaderChip(chips);
  d.sysfsWhy = d.sysfsChip ? `${d.sysfsChip.name} [${d.sysfsChip.label}] base ${d.sysfsChip.base}` : 'no gpiochip under /sys/class/gpio';
  try {
    const tools = await detectGpiod(deps.gpiod ?? GPIOD_COMMANDS);
    const chip = pickHeaderChip(await gpiodChips(tools));
    if (chip) d.gpiod = { tools, chip };
    else d.gpiodWhy = `gpiodetect (libgpiod ${tools.version}) lists no chip`;
  } catch (e) {
    d.gpiodWhy = `libgpiod tools: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed (apt install gpiod)' : (e as Error).message}`;
  }
  return d;
}

type Claim<T> = { line: T; label: string } | { why: string };

/** A sysfs GPIO line: base + offset, exported through onoff; `claim: false` exports and unexports again (probe). */
async function sysfsLine<T>(deps: FieldHardwareDeps, d: Discovery, onoff: OnoffFactory | null, offset: number, make: (n: number) => T, claim: boolean, release: (t: T) => Promise<void>): Promise<Claim<T>> {
  if (!d.sysfsChip) return { why: `sysfs GPIO: ${d.sysfsWhy}` };
  if (offset >= d.sysfsChip.lines) return { why: `sysfs GPIO: line ${offset} is beyond ${d.sysfsChip.name}'s ${d.sysfsChip.lines} lines` };
  if (!onoff) return { why: 'sysfs GPIO: the onoff module does not load' };
  const n = d.sysfsChip.base! + offset;
  const label = `sysfs gpio${n} (${d.sysfsWhy}, line ${offset})`;
  if (!claim) {
    const exported = await access(path.join(deps.paths.gpioClass, `gpio${n}`)).then(() => true, () => false);
    if (exported) return { line: undefined as T, label: `${label}, exported already (by the running agent?)` };
  }
  try {
    const line = make(n);
    if (!claim) await release(line);
    return { line, label };
  } catch (e) {
    return { why: `sysfs GPIO ${n}: ${sysfsGpioRefusal(e)}` };
  }
}

function chardevWhy(d: Discovery): string {
  return d.gpiod ? `chardev ${d.gpiod.chip.name} [${d.gpiod.chip.label}]` : `chardev: ${d.gpiodWhy}`;
}

/** One LED on a GPIO offset: sysfs GPIO, else chardev; its software loop on the clock. */
async function gpioLed(deps: FieldHardwareDeps, d: Discovery, onoff: OnoffFactory | null, offset: number, activeLow: boolean, claim: boolean, tried: string[]): Promise<{ out: LedOutput | null; kind: LedDriverKind; label: string } | null> {
  // The probe drives nothing: it exports the line as an input (what onoff's export would refuse, it refuses too) and lets it go.
  const s = await sysfsLine<OutputLine | InputLine>(deps, d, onoff, offset, (n) => (claim ? sysfsGpioOutput(onoff!, n, activeLow) : sysfsGpioInput(onoff!, n, deps.log)), claim, (l) => l.close());
  if ('line' in s) return { out: claim ? new SoftwareLed(s.line as OutputLine, deps.clock, deps.log) : null, kind: 'sysfs-gpio', label: s.label };
  tried.push(s.why);
  if (!d.gpiod) {
    tried.push(chardevWhy(d));
    return null;
  }
  const { tools, chip } = d.gpiod;
  if (offset >= chip.lines) {
    tried.push(`chardev: line ${offset} is beyond ${chip.name}'s ${chip.lines} lines`);
    return null;
  }
  const line: OutputLine | null = claim ? new ChardevOutput(tools, chip.name, offset, activeLow, deps.log) : null;
  return { out: line ? new SoftwareLed(line, deps.clock, deps.log) : null, kind: 'chardev', label: `chardev ${chip.name} [${chip.label}] line ${offset} (gpioset ${tools.version})` };
}

async function chooseLeds(cfg: FieldHardwareConfig, deps: FieldHardwareDeps, d: Discovery, onoff: OnoffFactory | null, claim: boolean): Promise<{ status: LedOutput; fault: LedOutput | null; report: FieldHardwareReport['leds'] }> {
  const tried: string[] = [];
  const open = async (name: string): Promise<SysfsLed | null> => {
    try {
      return await SysfsLed.open(deps.paths, name, deps.clock, deps.log);
    } catch (e) {
      tried.push(`/sys/class/leds/${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return null;
    }
  };
  const describe = (l: SysfsLed): string => `/sys/class/leds/${l.name} (${l.triggers.includes('pattern') ? 'timer+pattern triggers' : 'timer trigger, software N-pulse'})`;
  // 1. gpio-leds overlay LEDs named in the config.
  if (cfg.leds?.status) {
    const status = await open(cfg.leds.status);
    if (status) {
      const fault = cfg.leds.fault ? await open(cfg.leds.fault) : null;
      return { status, fault, report: { driver: 'sysfs-leds', status: describe(status), fault: fault ? describe(fault) : null, tried } };
    }
  }
  // 2./3. GPIO lines: sysfs GPIO, else the character device.
  if (cfg.gpio?.statusLed !== undefined) {
    const lowOn = cfg.ledActiveLow ?? false;
    const status = await gpioLed(deps, d, onoff, cfg.gpio.statusLed, lowOn, claim, tried);
    if (status) {
      const fault = cfg.gpio.faultLed !== undefined ? await gpioLed(deps, d, onoff, cfg.gpio.faultLed, lowOn, claim, tried) : null;
      return {
        status: status.out ?? nullLed(deps.log, 'probe'),
        fault: fault?.out ?? null,
        report: { driver: status.kind, status: status.label, fault: fault?.label ?? null, tried },
      };
    }
  }
  // 4. The board's own activity LED (led0 on older kernels); PWR is left to the firmware.
  for (const name of ['ACT', 'led0']) {
    const act = await open(name);
    if (act) return { status: act, fault: null, report: { driver: 'sysfs-leds', status: describe(act), fault: null, tried } };
  }
  return { status: nullLed(deps.log, tried.join('; ')), fault: null, report: { driver: 'none', status: null, fault: null, tried } };
}

async function chooseButton(cfg: FieldHardwareConfig, deps: FieldHardwareDeps, d: Discovery, onoff: OnoffFactory | null, claim: boolean): Promise<{ line: InputLine | null; report: FieldHardwareReport['button'] }> {
  const tried: string[] = [];
  const offset = cfg.gpio?.button;
  if (offset === undefined) return { line: null, report: { driver: 'none', line: null, tried: ['no button in the config (gpio.button)'] } };
  const s = await sysfsLine(deps, d, onoff, offset, (n) => sysfsGpioInput(onoff!, n, deps.log), claim, (l) => l.close());
  if ('line' in s) return { line: claim ? s.line : null, report: { driver: 'sysfs-gpio', line: s.label, tried } };
  tried.push(s.why);
  if (d.gpiod && offset < d.gpiod.chip.lines) {
    const { tools, chip } = d.gpiod;
    const line = claim ? new ChardevInput(tools, chip.name, offset, cfg.buttonActiveLow ?? true, deps.log) : null;
    return { line, report: { driver: 'chardev', line: `chardev ${chip.name} [${chip.label}] line ${offset} (gpiomon ${tools.version})`, tried } };
  }
  tried.push(d.gpiod ? `chardev: line ${offset} is beyond ${d.gpiod.chip.name}'s ${d.gpiod.chip.lines} lines` : chardevWhy(d));
  return { line: null, report: { driver: 'none', line: null, tried } };
}

async function choose(cfg: FieldHardwareConfig, deps: FieldHardwareDeps, claim: boolean): Promise<{ leds: Awaited<ReturnType<typeof chooseLeds>>; button: Awaited<ReturnType<typeof chooseButton>> }> {
  const g = cfg.gpio ?? {};
  const needGpio = g.statusLed !== undefined || g.button !== undefined;
  const onoff = !needGpio ? null : deps.onoff !== undefined ? deps.onoff : await loadOnoff();
  const d = await discover(deps, needGpio);
  const leds = await chooseLeds(cfg, deps, d, onoff, claim);
  const button = await chooseButton(cfg, deps, d, onoff, claim);
  return { leds, button };
}

/** Chooses and opens the drivers. Never throws for missing hardware: the report says what there is. */
export async function openFieldHardware(cfg: FieldHardwareConfig, deps: FieldHardwareDeps): Promise<FieldHardware> {
  const { leds, button } = await choose(cfg, deps, true);
  const report: FieldHardwareReport = { leds: leds.report, button: button.report };
  deps.log.info({ evt: 'field.hardware', ...report }, `LEDs: ${summary(report.leds.driver, report.leds.status, report.leds.tried)}; button: ${summary(report.button.driver, report.button.line, report.button.tried)}`);
  const controller = new LedController({ status: leds.status, fault: leds.fault }, deps.log);
  return {
    leds: controller,
    buttonLine: button.line,
    report,
    async close() {
      await controller.close();
      await button.line?.close();
    },
  };
}

/** The same choice without holding anything (`ep probe`): sysfs GPIO lines are exported and released again, chardev tools only detected. */
export async function probeFieldHardware(cfg: FieldHardwareConfig, deps: FieldHardwareDeps): Promise<FieldHardwareReport> {
  // Nothing was written: sysfs LEDs were only read, GPIO outputs not made (so no close).
  const { leds, button } = await choose(cfg, deps, false);
  return { leds: leds.report, button: button.report };
}

function summary(driver: string, what: string | null, tried: readonly string[]): string {
  const chosen = driver === 'none' ? 'none' : (what ?? driver);
  return tried.length ? `${tried.join('; ')} → ${chosen}` : chosen;
}

/** The report as `ep probe` prints it. */
export function formatFieldHardware(r: FieldHardwareReport): string {
  const lines = [`LEDs: ${summary(r.leds.driver, r.leds.status, r.leds.tried)}`];
  if (r.leds.fault) lines.push(`  fault LED: ${r.leds.fault}`);
  lines.push(`Button: ${summary(r.button.driver, r.button.line, r.button.tried)}`);
  return lines.join('\n');
}
