/**
 * A box's command path in one process, wired as device/agent.ts wires it: the real
 * CommandRouter, CommandLedger (its journal in a temp dir), contract, actions
 * (device/actions.ts), MeetingController with the real session and standby planners,
 * SettingsStore, IdleActions, UpdateController (no OTA keys: `ota` is refused
 * `not_enabled` as on such a box) and a real pino logger into a real LogRing (what `logs`
 * answers). Fakes from the kit stand at the hardware and process boundaries only: the
 * clock, the media supervisor (its worker process), the LEDs, systemctl; the selftest's
 * gst-launch checks are a stand-in report. Replies are recorded instead of published.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createActions } from '../../device/actions.js';
import { createContract, type Reply } from '../../device/contract/index.js';
import { IdleActions } from '../../device/idle-actions.js';
import { MeetingController, withDeviceId, type MeetingSource } from '../../device/meeting.js';
import { CommandRouter } from '../../device/mqtt/index.js';
import { SettingsStore } from '../../device/settings.js';
import { CommandLedger, standInMessage } from '../../device/store/index.js';
import { UpdateController } from '../../device/updates.js';
import { planSession, planStandby, type MediaJoinSpec, type MediaSettings, type MediaSupervisor } from '../../gst-pipelines/index.js';
import { LogRing, createLogger } from '../../lib/index.js';
import type { IncomingMessage } from '../../device/mqtt/session.js';
import { FakeClock, FakeLeds, FakeMedia, FakeSystemActions, piCaps } from '../fakes/index.js';

export const DEVICE = 'cam-thanh';
export const GROUP = 'camlo';
/** The box's clock starts here (a command's `expiresAt` is judged against it). */
export const NOW = Date.parse('2026-11-22T08:00:00Z');

/** A Pi with an H.264 encoder and decoder, so a good join spec plans. */
const CAPS = piCaps({ elements: { textoverlay: true, kmssink: true, x264enc: true, avdec_h264: true, opusenc: true, opusdec: true } as never });

/** The kit's FakeMedia with what the actions also ask of the supervisor (text on the TV, volume, mute), recorded. */
class BoxMedia extends FakeMedia {
  readonly asked: string[] = [];
  showText(t: string): void {
    this.asked.push(`showText ${t}`);
  }
  hideText(): void {
    this.asked.push('hideText');
  }
  setVolume(v: number): void {
    this.asked.push(`volume ${v}`);
  }
  setMicMuted(m: boolean): void {
    this.asked.push(`micMuted ${m}`);
  }
}

export interface SentReply {
  reply: Reply;
  json: string;
  to: { responseTopic?: string; correlationData?: Buffer };
}

export interface FuzzBox {
  router: CommandRouter;
  ledger: CommandLedger;
  meeting: MeetingController;
  media: BoxMedia;
  clock: FakeClock;
  logRing: LogRing;
  replies: SentReply[];
  /** Action runs by command id, and the most running at once. */
  runsById: Map<string, number>;
  running: { now: number; max: number };
  /** Retained meetings refused at the edge (their problems), and group meetings that failed to join. */
  badMeetings: string[];
  /** While true, publishing a reply fails (the router keeps it for the reconnect). */
  offline: boolean;
  handle(m: IncomingMessage): Promise<void>;
  stop(): Promise<void>;
}

/** Where the journal goes: tmpfs when there is one (a fuzz run appends thousands of fsynced lines). */
const scratch = (): string => (existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir());

export async function fuzzBox(): Promise<FuzzBox> {
  const dir = await mkdtemp(path.join(scratch(), 'ep-fuzz-box-'));
  const clock = new FakeClock(NOW);
  const logRing = new LogRing();
  const log = createLogger({ level: 'info', destination: logRing });
  const contract = createContract();
  const media = new BoxMedia();
  const settings = new SettingsStore(contract, dir, { healthPeriodS: 30, logLevel: 'info', volume: 1, micMuted: false });
  const mediaSettings = (): MediaSettings => ({ source: 'test', volume: settings.value.volume, micMuted: settings.value.micMuted, aec: false, statsPeriodS: 2, standbyTitle: 'Xã Cẩm Thanh' });
  let saved: { spec: MediaJoinSpec; source: MeetingSource } | null = null;
  const meeting = new MeetingController({
    media: media as unknown as MediaSupervisor,
    clock,
    logger: log,
    planSession: (spec) => planSession(withDeviceId(spec, DEVICE), CAPS, mediaSettings()),
    planStandby: () => planStandby(CAPS, mediaSettings()),
    store: { load: async () => saved, save: async (v) => void (saved = v) },
  });
  const ledger = new CommandLedger<Record<string, unknown>>({
    file: path.join(dir, 'commands.journal'),
    now: () => clock.now(),
    log: log.child({ module: 'ledger' }),
    standIn: (f) => ({ id: f.id, deviceId: DEVICE, command: f.command, ok: false, error: { code: 'failed', message: standInMessage(f) } }),
  });
  await ledger.load();
  const idle = new IdleActions(log);
  const system = new FakeSystemActions();
  const updates = new UpdateController({
    settings: null,
    dataDir: dir,
    version: '1.0.0',
    clock,
    log,
    inMeeting: () => meeting.meeting !== null,
    reachedBroker: () => true,
    selftest: async () => ({ ok: true, checks: [] }),
    setStatus: () => undefined,
    event: async () => undefined,
    answered: () => null,
    restart: () => undefined,
  });
  await updates.start();
  const badMeetings: string[] = [];
  const box = {
    replies: [] as SentReply[],
    runsById: new Map<string, number>(),
    running: { now: 0, max: 0 },
    badMeetings,
    offline: false,
    ledger,
    meeting,
    media,
    clock,
    logRing,
  } as unknown as FuzzBox;
  const actions = createActions({
    name: 'Xã Cẩm Thanh',
    meeting,
    media: media as unknown as MediaSupervisor,
    system,
    leds: new FakeLeds(),
    logRing,
    logger: log,
    settings: () => settings.value,
    applySettings: async (p) => {
      const next = await settings.apply(p);
      if (p.volume !== undefined) media.setVolume(p.volume);
      if (p.micMuted !== undefined) media.setMicMuted(p.micMuted);
      return next;
    },
    selftest: async () => ({ ok: true, checks: [{ check: 'encoder', ok: true, detail: 'x264enc (stand-in: no gst-launch in the fuzz)' }] }),
    ota: (args, id) => updates.command(args, id),
    whenIdle: (kind, fn) => idle.add(kind, fn),
    setTimer: (fn, ms) => clock.setTimeout(fn, ms),
  });
  box.router = new CommandRouter({
    deviceId: DEVICE,
    groupId: GROUP,
    contract,
    ledger,
    clock,
    logger: log,
    run: async (command, args, id) => {
      if (id !== undefined) box.runsById.set(id, (box.runsById.get(id) ?? 0) + 1);
      box.running.now += 1;
      box.running.max = Math.max(box.running.max, box.running.now);
      try {
        return await actions(command, args, id);
      } finally {
        box.running.now -= 1;
      }
    },
    publishReply: async (reply, to) => {
      if (box.offline) throw new Error('mqtt: not connected');
      box.replies.push({ reply, json: JSON.stringify(reply), to });
    },
    // As the agent's onGroupMeeting: a group meeting that cannot be joined is reported, not thrown.
    onMeeting: (spec) => meeting.onGroupMeeting(spec).catch((e: unknown) => void badMeetings.push(`join_failed: ${(e as Error).message}`)),
    onBadMeeting: async (problems) => void badMeetings.push(problems),
    onNext: () => undefined,
  });
  box.handle = (m) => box.router.handle(m);
  box.stop = async () => {
    await box.router.idle();
    await meeting.stop();
    await ledger.stop();
    await rm(dir, { recursive: true, force: true });
  };
  await meeting.start();
  return box;
}
