/**
 * What an Agent is built from (device/agent.ts): its config and version, and the
 * boundaries a test or the fleet simulator replaces (clock, host paths, system actions,
 * LEDs, the media worker spawner, the MQTT client factory, GPIO).
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Clock, HostPaths, LogRing, Logger } from '../lib/index.js';
import type { Capabilities, WorkerSpawner } from '../gst-pipelines/index.js';
import type { AgentConfig } from './config.js';
import type { Contract } from './contract/index.js';
import type { AgentFieldDeps } from './field/index.js';
import type { GstLauncher } from './selftest.js';
import type { HealthSamplerDeps } from './health/index.js';
import type { Leds, SystemActions } from './host/index.js';

export interface AgentDeps {
  config: AgentConfig;
  version: string;
  logger?: Logger;
  logRing?: LogRing;
  clock?: Clock;
  paths?: HostPaths;
  system?: SystemActions;
  leds?: Leds;
  spawner?: WorkerSpawner;
  /** Capabilities instead of probing (tests); default: probe() at start. */
  caps?: Capabilities;
  snapshotDir?: string;
  mqttConnect?: (url: string, opts: IClientOptions) => MqttClient;
  random?: () => number;
  /** The button held 10 s: wipe identity, config and secrets once the agent has stopped, then restart unprovisioned (ep run). */
  factoryReset?: (why: string) => void;
  /** Tests: the GPIO and libgpiod boundaries of the LEDs and the button. */
  fieldHardware?: AgentFieldDeps['hardware'];
  /** Stop and exit 75 so the launcher starts what `current` points at (after an update's switch, or to roll one back). */
  restart?: (why: string) => void;
  env?: NodeJS.ProcessEnv;
  /** The self-test's short GStreamer runs (selftest.ts; default: gst-launch-1.0 in a child process). The fleet simulator answers them itself: its boxes have no media. */
  gstLaunch?: GstLauncher;
  /** The compiled contract (schemas): one per process is enough, its validators keep no state between calls. The fleet simulator shares one among its thousands of agents (compiling it per agent was most of their CPU). */
  contract?: Contract;
  /** The health sampler's processes and systeminformation fallbacks (default: the host's). The fleet simulator has no host to read. */
  hostReads?: Pick<HealthSamplerDeps, 'runCommand' | 'si'>;
}
