/**
 * Meetings as desired state. The retained `grp/{groupId}/meeting` says which meeting is
 * on; `join`/`leave` commands act on this box now. The controller reconciles: it joins
 * the meeting that is on (after a boot, a reconnect or a power cut too), leaves when it
 * is cleared or `endsAt` passes, does nothing when asked to join the meeting it is
 * already in, and switches cleanly to a different one. Every transition runs through
 * one queue, so a join and a leave can never interleave.
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from '../lib/index.js';
import { silentLogger, type Logger } from '../lib/index.js';
import type { MediaSupervisor, MediaStatus } from '../gst-pipelines/index.js';
import type { MediaJoinSpec, SessionPlan, StandbyPlan } from '../gst-pipelines/index.js';

export type Phase = 'idle' | 'joining' | 'in_meeting' | 'leaving' | 'fault';
export type MeetingSource = 'group' | 'command' | 'restored';

export interface MeetingInfo {
  id: string;
  title?: string;
  since: string;
  source: MeetingSource;
}

export interface MeetingStore {
  load(): Promise<{ spec: MediaJoinSpec; source: MeetingSource } | null>;
  save(v: { spec: MediaJoinSpec; source: MeetingSource } | null): Promise<void>;
}

export interface MeetingDeps {
  media: MediaSupervisor;
  planSession: (spec: MediaJoinSpec) => SessionPlan;
  planStandby: () => StandbyPlan | null;
  store: MeetingStore;
  clock?: Clock;
  logger?: Logger;
}

export interface MeetingEvents {
  change: [{ phase: Phase; meeting: MeetingInfo | null }];
  event: [{ type: string; severity: 'info' | 'warn' | 'error'; detail: Record<string, unknown> }];
}

/** A meeting whose endsAt has passed is not on. */
export function isOver(spec: MediaJoinSpec, now: number): boolean {
  return spec.endsAt !== undefined && Date.parse(spec.endsAt) <= now;
}

const sameSpec = (a: MediaJoinSpec, b: MediaJoinSpec): boolean => JSON.stringify(a) === JSON.stringify(b);

export class MeetingController extends EventEmitter<MeetingEvents> {
  private readonly clock: Clock;
  private readonly log: Logger;
  private queue: Promise<unknown> = Promise.resolve();
  private current: { spec: MediaJoinSpec; info: MeetingInfo } | null = null;
  private lastSpec: MediaJoinSpec | null = null;
  private phaseNow: Phase = 'idle';
  private groupSpec: MediaJoinSpec | null = null;
  /** The group meeting this box was told to leave: it stays out until the meeting changes. */
  private leftGroupMeeting: string | null = null;
  private endTimer: unknown = null;
  private readonly onMediaStatus = (s: MediaStatus): void => this.mediaChanged(s);

  constructor(private readonly d: MeetingDeps) {
    super();
    this.clock = d.clock ?? systemClock;
    this.log = (d.logger ?? silentLogger()).child({ module: 'meeting' });
  }

  get phase(): Phase {
    return this.phaseNow;
  }

  get meeting(): MeetingInfo | null {
    return this.current?.info ?? null;
  }

  /** The hub's media address of the meeting now, else of the last one (selftest's SRT handshake); null before any. */
  get hubMedia(): { url: string; streamId?: string; passphrase?: string } | null {
    const r = this.lastSpec;
    if (!r) return null;
    return { url: r.receive.url, ...(r.receive.streamId ? { streamId: r.receive.streamId } : {}), ...(r.srt?.passphrase ? { passphrase: r.srt.passphrase } : {}) };
  }

  /** Shows the standby screen, or rejoins a meeting this box was in before a restart. */
  start(): Promise<void> {
    this.d.media.on('status', this.onMediaStatus);
    // Queued at once, so a retained group meeting that arrives while this still runs
    // is handled after it, never overwritten by the standby screen.
    return this.enqueue(async () => {
      const saved = await this.d.store.load().catch(() => null);
      if (saved && !isOver(saved.spec, this.clock.now())) {
        this.log.info({ evt: 'meeting.restore', meetingId: saved.spec.meetingId }, 'rejoining the meeting that was on before the restart');
        await this.doJoin(saved.spec, 'restored');
      } else await this.showStandby();
    });
  }

  async stop(): Promise<void> {
    this.d.media.off('status', this.onMediaStatus);
    this.clearEndTimer();
    await this.enqueue(async () => undefined);
  }

  /** The retained group meeting changed (null: none). */
  onGroupMeeting(spec: MediaJoinSpec | null): Promise<void> {
    return this.enqueue(async () => {
      const prev = this.groupSpec;
      this.groupSpec = spec && !isOver(spec, this.clock.now()) ? spec : null;
      if (!this.groupSpec) {
        this.leftGroupMeeting = null;
        if (this.current && this.current.info.source !== 'command') await this.doLeave('meeting cleared by the hub');
        return;
      }
      if (prev?.meetingId !== this.groupSpec.meetingId) this.leftGroupMeeting = null;
      if (this.leftGroupMeeting === this.groupSpec.meetingId) return;
      if (this.current && this.current.spec.meetingId === this.groupSpec.meetingId && sameSpec(this.current.spec, this.groupSpec)) return;
      await this.doJoin(this.groupSpec, 'group');
    });
  }

  /** `join` command. Same meeting already running: nothing restarts. */
  join(spec: MediaJoinSpec): Promise<{ meetingId: string; already: boolean }> {
    return this.enqueue(async () => {
      if (this.current && this.current.spec.meetingId === spec.meetingId && sameSpec(this.current.spec, spec)) return { meetingId: spec.meetingId, already: true };
      await this.doJoin(spec, 'command');
      return { meetingId: spec.meetingId, already: false };
    });
  }

  /** `leave` command. */
  leave(): Promise<{ left: string | null }> {
    return this.enqueue(async () => {
      const id = this.current?.info.id ?? null;
      if (id && this.groupSpec?.meetingId === id) this.leftGroupMeeting = id;
      if (this.current) await this.doLeave('leave command');
      return { left: id };
    });
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async doJoin(spec: MediaJoinSpec, source: MeetingSource): Promise<void> {
    const plan = this.d.planSession(spec); // throws PlanError before anything changes (bad_request: the spec; failed: this box cannot)
    const switching = this.current?.info.id;
    this.clearEndTimer();
    this.lastSpec = spec;
    this.current = { spec, info: { id: spec.meetingId, ...(spec.title ? { title: spec.title } : {}), since: new Date(this.clock.now()).toISOString(), source } };
    this.setPhase('joining');
    this.emit('event', { type: switching ? 'meeting_switch' : 'meeting_join', severity: 'info', detail: { meetingId: spec.meetingId, ...(switching ? { from: switching } : {}), source } });
    await this.d.store.save(source === 'command' || source === 'restored' ? { spec, source: 'command' } : null);
    await this.d.media.start(plan, spec.srt?.passphrase ? { passphrase: spec.srt.passphrase } : {});
    this.mediaChanged(this.d.media.status());
    if (spec.endsAt) {
      const ms = Date.parse(spec.endsAt) - this.clock.now();
      this.endTimer = this.clock.setTimeout(() => {
        this.endTimer = null;
        void this.enqueue(async () => {
          if (this.current?.spec.meetingId === spec.meetingId) await this.doLeave('endsAt passed');
        });
      }, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    }
  }

  private async doLeave(reason: string): Promise<void> {
    const id = this.current?.info.id;
    this.clearEndTimer();
    this.setPhase('leaving');
    await this.d.media.stop();
    this.current = null;
    await this.d.store.save(null);
    this.emit('event', { type: 'meeting_leave', severity: 'info', detail: { meetingId: id, reason } });
    await this.showStandby();
  }

  private async showStandby(): Promise<void> {
    this.current = null;
    this.setPhase('idle');
    const standby = this.d.planStandby();
    if (standby) await this.d.media.start(standby);
  }

  private mediaChanged(s: MediaStatus): void {
    if (!this.current || s.plan !== 'session') return;
    if (s.send === 'failed' || s.receive === 'failed') this.setPhase('fault');
    else if (s.send === 'ok' || s.receive === 'ok') this.setPhase('in_meeting');
    else if (this.phaseNow === 'fault') this.setPhase('joining');
  }

  private setPhase(p: Phase): void {
    if (p === this.phaseNow) return;
    this.phaseNow = p;
    this.log.info({ evt: 'meeting.phase', phase: p, meetingId: this.current?.info.id }, `state: ${p}`);
    this.emit('change', { phase: p, meeting: this.meeting });
  }

  private clearEndTimer(): void {
    if (this.endTimer) this.clock.clearTimeout(this.endTimer);
    this.endTimer = null;
  }
}

/**
 * A group meeting has one spec for every box, but each box must publish its own
 * stream: `{deviceId}` in `send.streamId` (and `send.url`) becomes this box's id, e.g.
 * `publish:camlo/{deviceId}`. An extension of contract v1: a spec without it is unchanged.
 */
export function withDeviceId(spec: MediaJoinSpec, deviceId: string): MediaJoinSpec {
  const sub = (s: string): string => s.split('{deviceId}').join(deviceId);
  return { ...spec, send: { ...spec.send, url: sub(spec.send.url), ...(spec.send.streamId ? { streamId: sub(spec.send.streamId) } : {}) } };
}
