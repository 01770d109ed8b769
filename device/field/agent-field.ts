/**
 * The field side of a running agent: the FieldView kept current, and everything that shows
 * it — the LEDs, the TV standby screen, the local status page — plus the button that talks
 * back (a short press, the reset warning, the factory reset). The agent hands in what it
 * knows as functions; nothing here reaches into it.
 */
import type { Clock, HostPaths, Logger } from '../../lib/index.js';
import type { HealthSample } from '../contract/index.js';
import { Button } from './button.js';
import { FieldState, type FieldBase } from './field-state.js';
import { fieldHardwareConfig, openFieldHardware, type FieldHardware, type FieldHardwareDeps, type FieldHardwareReport, type FieldWiring } from './hardware.js';
import { ledFor, problemsOf, type Advice, type FieldView, type LedCode } from './model.js';
import { standbyTexts } from './standby-texts.js';
import type { StandbyTexts } from '../../gst-pipelines/index.js';
import type { StatusPageServer } from './status-page.js';

export interface AgentFieldDeps {
  /** The agent config's `gpio` and `field` (config.ts FieldConfig), structurally. */
  config: FieldWiring & { field?: { statusPage: { enabled: boolean; port: number; host: string; pin?: string }; button: { shortPress: 'raise_hand' | 'mute'; activeLow: boolean } } };
  paths: HostPaths;
  clock: Clock;
  log: Logger;
  base: () => FieldBase;
  health: () => HealthSample | null;
  logs: (n: number) => string[];
  /** The standby screen's texts, live (the media supervisor's updateStandby). */
  showStandby: (texts: StandbyTexts) => void;
  /** The button's short press with `field.button.shortPress: mute`: toggles the microphone, resolves to muted or not. */
  toggleMute: () => Promise<boolean>;
  /** An event to the hub (the agent's outbox). */
  event: (type: string, severity: 'info' | 'warn', detail: Record<string, unknown>) => Promise<void>;
  meetingId: () => string | null;
  /** Held 10 s: the agent wipes its identity once stopped and restarts unprovisioned. */
  onFactoryReset: () => void;
  /** Tests: the GPIO and libgpiod boundaries (hardware.ts). */
  hardware?: Partial<Pick<FieldHardwareDeps, 'onoff' | 'gpiod'>>;
}

export class AgentField {
  readonly state: FieldState;
  private hw: FieldHardware | null = null;
  private button: Button | null = null;
  private page: StatusPageServer | null = null;
  private readonly undo: Array<() => void> = [];

  constructor(private readonly d: AgentFieldDeps) {
    this.state = new FieldState({ clock: d.clock, base: d.base });
  }

  get view(): FieldView {
    return this.state.view;
  }

  /** What drives the LEDs and the button (`ep status`, the log at start); null before start(). */
  get hardware(): FieldHardwareReport | null {
    return this.hw?.report ?? null;
  }

  /** The field's part of `ep status`: the view, the LED code it means, the problems with advice, the drivers. */
  status(): { field: FieldView; led: LedCode; problems: Array<{ code: string } & Advice>; hardware?: FieldHardwareReport; statusPage: { port: number } | null } {
    const v = this.state.view;
    const page = this.statusPageAddress;
    return { field: v, led: ledFor(v), problems: problemsOf(v), ...(this.hw ? { hardware: this.hw.report } : {}), statusPage: page ? { port: page.port } : null };
  }

  /** The status page's address once it listens (tests use port 0). */
  get statusPageAddress(): { port: number; host: string } | null {
    return this.page?.address() ?? null;
  }

  /** The button's short press: raise (or lower) the hand, or toggle the microphone, as configured. */
  async press(): Promise<void> {
    const log = this.d.log;
    if (this.d.config.field?.button.shortPress === 'mute') {
      const muted = await this.d.toggleMute();
      log.info({ evt: 'button.mute', muted }, muted ? 'button: microphone muted' : 'button: microphone on');
      this.state.changed();
      return this.d.event('mic_muted', 'info', { muted, by: 'button' });
    }
    const raised = !this.state.handRaised;
    this.state.setHandRaised(raised);
    log.info({ evt: 'button.hand', raised }, raised ? 'button: hand raised' : 'button: hand lowered');
    await this.d.event('hand_raised', 'info', { raised, meetingId: this.d.meetingId() });
  }

  /** The meeting ended: a raised hand belonged to it. */
  meetingEnded(): void {
    if (this.state.handRaised) this.state.setHandRaised(false);
  }

  /** LED names the controller drives (the `identify` reply's `leds`). */
  get ledNames(): string[] {
    const l = this.hw?.report.leds;
    return l && l.driver !== 'none' ? [l.status, l.fault].filter((x): x is string => x !== null) : [];
  }

  /** The texts the standby screen shows for the view now (the first standby plan takes them too). */
  standby(): StandbyTexts {
    return standbyTexts(this.state.view);
  }

  /** Never throws: missing hardware, a port in use, are logged and the rest goes on. */
  async start(): Promise<void> {
    const log = this.d.log;
    this.hw = await openFieldHardware(fieldHardwareConfig(this.d.config), { paths: this.d.paths, clock: this.d.clock, log, ...this.d.hardware }).catch((e: unknown) => {
      log.error({ evt: 'field.hardware_failed', err: (e as Error).message }, 'LEDs and button unavailable');
      return null;
    });
    const show = (v: FieldView): void => {
      void this.hw?.leds.show(ledFor(v));
      this.d.showStandby(standbyTexts(v));
    };
    this.undo.push(this.state.subscribe(show));
    show(this.state.view);
    const line = this.hw?.buttonLine;
    if (line) {
      this.button = new Button(line, {
        clock: this.d.clock,
        log,
        activeLow: this.d.config.field?.button.activeLow ?? true,
        onPress: () => void this.press().catch((e: unknown) => log.error({ evt: 'button.failed', err: (e as Error).message }, 'the button press failed')),
        onWarn: (on) => this.state.setResetWarning(on),
        onFactoryReset: () => {
          log.warn({ evt: 'button.factory_reset' }, 'button held 10 s: factory reset');
          this.d.onFactoryReset();
        },
      });
      await this.button.start();
    }
    const sp = this.d.config.field?.statusPage;
    if (sp?.enabled) {
      // Loaded only where the page is on (its `ws` and HTML load later still, with the first viewer).
      const { StatusPageServer } = await import('./status-page.js');
      const page = new StatusPageServer({
        port: sp.port,
        host: sp.host,
        pin: sp.pin ?? null,
        view: () => this.state.view,
        health: this.d.health,
        logs: this.d.logs,
        subscribe: (onChange) => this.state.subscribe(() => onChange()),
        log,
        clock: this.d.clock,
      });
      try {
        await page.start();
        this.page = page;
      } catch (e) {
        // A convenience for the technician, not the box's job: the box goes on without it.
        log.warn({ evt: 'status_page.failed', port: sp.port, err: (e as Error).message }, `the status page cannot listen on port ${sp.port}`);
      }
    }
    this.state.start();
  }

  /** Never throws: the agent's stop goes on to its other parts whatever the LEDs or the page do. */
  async stop(): Promise<void> {
    this.state.stop();
    for (const u of this.undo.splice(0).reverse()) u();
    const step = async (what: string, fn: () => Promise<void> | undefined): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        this.d.log.warn({ evt: 'field.stop_failed', what, err: (e as Error).message }, `could not close the ${what}`);
      }
    };
    await step('status page', () => this.page?.stop());
    this.page = null;
    await step('button', () => this.button?.close());
    this.button = null;
    await step('LEDs and lines', () => this.hw?.close());
    this.hw = null;
  }
}
