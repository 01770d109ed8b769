/**
 * What each command does, knowing nothing of MQTT: the router hands over validated
 * args and publishes whatever this returns (or the error it throws) as the reply.
 */
import { BusyError } from './errors.js';
import type { CommandName } from './contract/index.js';
import type { CommandArgs } from './contract/index.js';
import type { MeetingController } from './meeting.js';
import type { MediaSupervisor } from '../gst-pipelines/index.js';
import type { SystemActions } from './host/index.js';
import type { Leds } from './host/index.js';
import type { LogRing } from '../lib/index.js';
import type { Logger } from '../lib/index.js';
import type { MediaJoinSpec } from '../gst-pipelines/index.js';
import { oneAtATime, type SelftestReport } from './selftest.js';

import type { RuntimeSettings } from './settings.js';

export interface ActionDeps {
  name: string;
  meeting: MeetingController;
  media: MediaSupervisor;
  system: SystemActions;
  leds: Leds;
  logRing: LogRing;
  logger: Logger;
  settings: () => RuntimeSettings;
  applySettings: (patch: Partial<RuntimeSettings>) => Promise<RuntimeSettings>;
  selftest: () => Promise<SelftestReport>;
  /** Defers a system action until the box is idle (no meeting); one per `kind` (asking again changes nothing). */
  whenIdle: (kind: 'reboot', fn: () => Promise<void>) => void;
  /** The `ota` command (device/updates.ts): replies once the manifest is verified or refused. */
  ota: (args: CommandArgs['ota'], commandId: string | null) => Promise<Record<string, unknown>>;
  setTimer: (fn: () => void, ms: number) => unknown;
  /** Tells the field view (LEDs, screens) that `identify` runs for `ms`. */
  identified?: (ms: number) => void;
}

export function createActions(d: ActionDeps): (command: CommandName, args: unknown, id?: string) => Promise<Record<string, unknown>> {
  const selftest = oneAtATime(d.selftest);
  const handlers: { [K in CommandName]: (a: CommandArgs[K], id: string | null) => Promise<Record<string, unknown>> } = {
    async join(spec) {
      const r = await d.meeting.join(spec as MediaJoinSpec);
      const s = d.media.status();
      return { meetingId: r.meetingId, state: r.already ? 'already_in_meeting' : 'joining', encoder: s.choices?.encoder ?? null };
    },
    async leave() {
      const r = await d.meeting.leave();
      return { left: r.left };
    },
    async ota(a, id) {
      return d.ota(a, id);
    },
    async reboot(a) {
      const when = a.when ?? 'idle';
      if (when === 'now' || d.meeting.meeting === null) {
        d.setTimer(() => void d.system.reboot().catch((e: unknown) => d.logger.error({ evt: 'system.reboot_failed', err: (e as Error).message }, 'reboot failed')), 500);
        return { rebooting: true, when: 'now' };
      }
      d.whenIdle('reboot', () => d.system.reboot());
      return { rebooting: false, when: 'idle', scheduled: true };
    },
    async selftest() {
      // A selftest asked for while one runs gets that run's report (selftest.ts oneAtATime).
      return { ...(await selftest()) };
    },
    async identify(a) {
      const seconds = a.seconds ?? 10;
      d.identified?.(seconds * 1000);
      const leds = await d.leds.blink(seconds * 1000);
      d.media.showText(d.name);
      d.setTimer(() => d.media.hideText(), seconds * 1000);
      return { seconds, leds: leds.leds, tv: d.media.status().running };
    },
    async config(a) {
      if (d.meeting.phase === 'leaving') throw new BusyError('leaving a meeting; try again in a moment', 2);
      const next = await d.applySettings(a);
      return { settings: { ...next } };
    },
    async logs(a) {
      const lines = d.logRing.tail(a.lines ?? 200);
      return { lines, count: lines.length };
    },
  };
  return (command, args, id) => (handlers[command] as (a: unknown, id: string | null) => Promise<Record<string, unknown>>)(args, id ?? null);
}
