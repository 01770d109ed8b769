/**
 * What the box tells the hub about itself, kept in one place: the fault list (raised and
 * cleared events when it changes), the retained state (published only when it changed,
 * again after every reconnect) and the periodic health sample.
 */
import { faultsFromHealth } from './health/index.js';
import { topics } from './contract/index.js';
import { buildReportedState, deviceFaults, mediaHealthOf } from './state-report.js';
import type { Clock, Logger } from '../lib/index.js';
import type { Capabilities, MediaSupervisor } from '../gst-pipelines/index.js';
import type { HealthSample } from './contract/index.js';
import type { MeetingController } from './meeting.js';
import type { MqttSession } from './mqtt/index.js';
import type { OtaStatus } from './updates.js';

export type Severity = 'info' | 'warn' | 'error';

export interface StateReporterDeps {
  deviceId: string;
  version: string;
  clock: Clock;
  log: Logger;
  mqtt: Pick<MqttSession, 'connected' | 'publish'>;
  media: Pick<MediaSupervisor, 'status'>;
  meeting: Pick<MeetingController, 'phase' | 'meeting'>;
  caps: () => Capabilities | null;
  testSources: boolean;
  sample: () => Promise<HealthSample>;
  healthPeriodMs: () => number;
  event: (type: string, severity: Severity, detail: Record<string, unknown>) => Promise<void>;
}

export class StateReporter {
  private faultList: string[] = [];
  private healthFaults: string[] = [];
  private lastStateJson = '';
  private lastHealth: HealthSample | null = null;
  private ota: OtaStatus | null = null;
  private timer: unknown = null;

  constructor(private readonly d: StateReporterDeps) {}

  get faults(): readonly string[] {
    return this.faultList;
  }

  /** The last health sample (status page, tests). */
  get health(): HealthSample | null {
    return this.lastHealth;
  }

  /** Starts the health cadence (first sample after one period). */
  start(): void {
    this.schedule();
  }

  stop(): void {
    if (this.timer !== null) this.d.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** A new health period takes effect now. */
  reschedule(): void {
    if (this.timer === null) return;
    this.d.clock.clearTimeout(this.timer);
    this.schedule();
  }

  /** After a (re)connect: the retained state again, and a health sample at once. */
  onConnected(): void {
    this.lastStateJson = '';
    this.refresh();
    void this.publishHealth();
  }

  /** An update's phase (device/updates.ts): part of the retained state. */
  setOta(s: OtaStatus | null): void {
    this.ota = s;
    this.refresh();
  }

  /** The reported state as it stands now (the local control socket's status). */
  snapshot(): ReturnType<typeof buildReportedState> {
    return buildReportedState({ phase: this.d.meeting.phase, meeting: this.d.meeting.meeting, media: this.d.media.status(), faults: this.faultList, version: this.d.version, now: this.d.clock.now(), ota: this.ota });
  }

  /** Recomputes faults and the reported state; publishes what changed. */
  refresh(): void {
    const media = this.d.media.status();
    const faults = [...new Set([...deviceFaults(this.d.caps(), this.d.testSources, media), ...this.healthFaults])].sort();
    const changed = faults.join() !== this.faultList.join();
    if (changed) {
      for (const f of faults.filter((x) => !this.faultList.includes(x))) void this.d.event('fault_raised', f === 'media_failing' ? 'error' : 'warn', { fault: f });
      for (const f of this.faultList.filter((x) => !faults.includes(x))) void this.d.event('fault_cleared', 'info', { fault: f });
      this.faultList = faults;
    }
    const state = buildReportedState({ phase: this.d.meeting.phase, meeting: this.d.meeting.meeting, media, faults, version: this.d.version, now: this.d.clock.now(), ota: this.ota });
    const json = JSON.stringify({ ...state, ts: undefined });
    if (json !== this.lastStateJson && this.d.mqtt.connected) {
      this.lastStateJson = json;
      this.d.mqtt.publish(topics.state(this.d.deviceId), JSON.stringify(state), { qos: 1, retain: true }).catch(() => (this.lastStateJson = ''));
    }
    if (changed) void this.publishHealth();
  }

  /** The media part of a health sample (null outside a meeting). */
  mediaHealth(): HealthSample['media'] | null {
    return mediaHealthOf(this.d.media.status());
  }

  private schedule(): void {
    this.timer = this.d.clock.setTimeout(() => {
      void this.publishHealth().finally(() => {
        if (this.timer !== null) this.schedule();
      });
    }, this.d.healthPeriodMs());
  }

  private async publishHealth(): Promise<void> {
    try {
      const sample = await this.d.sample();
      this.lastHealth = sample;
      const hf = faultsFromHealth(sample);
      if (hf.join() !== this.healthFaults.join()) {
        this.healthFaults = hf;
        this.refresh();
      }
      const withFaults: HealthSample = { ...sample, faults: [...this.faultList] };
      if (this.d.mqtt.connected) await this.d.mqtt.publish(topics.health(this.d.deviceId), JSON.stringify(withFaults), { qos: 0 });
    } catch (e) {
      this.d.log.warn({ evt: 'health.failed', err: (e as Error).message }, 'health sample failed');
    }
  }
}
