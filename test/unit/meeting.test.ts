import { beforeEach, describe, expect, it } from 'vitest';
import { MeetingController, type MeetingSource } from '../../device/meeting.js';
import { withDeviceId } from '../../device/meeting.js';
import type { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import type { MediaJoinSpec, SessionPlan, StandbyPlan } from '../../gst-pipelines/types.js';
import { FakeClock, FakeMedia } from '../fakes/index.js';

const spec = (id: string, extra: Partial<MediaJoinSpec> = {}): MediaJoinSpec => ({ meetingId: id, send: { url: 'srt://hub:1', streamId: 'publish:g/{deviceId}' }, receive: { url: 'srt://hub:2' }, ...extra });
const sessionPlan = (s: MediaJoinSpec): SessionPlan => ({ kind: 'session', pipeline: s.meetingId } as SessionPlan);
const standby: StandbyPlan = { kind: 'standby', pipeline: 'standby', choices: { display: 'fakesink' }, env: {} };

describe('MeetingController: meetings as desired state', () => {
  let media: FakeMedia;
  let saved: Array<{ spec: MediaJoinSpec; source: MeetingSource } | null>;
  let stored: { spec: MediaJoinSpec; source: MeetingSource } | null;
  let mc: MeetingController;
  let events: string[];
  let clock: FakeClock;

  const build = (): MeetingController => {
    const c = new MeetingController({
      media: media as unknown as MediaSupervisor,
      planSession: sessionPlan,
      planStandby: () => standby,
      store: { load: async () => stored, save: async (v) => void (saved.push(v), (stored = v)) },
      clock,
    });
    c.on('event', (e) => events.push(`${e.type} ${String(e.detail.meetingId ?? '')}`));
    return c;
  };

  beforeEach(async () => {
    clock = new FakeClock('2026-11-22T08:00:00Z');
    media = new FakeMedia();
    saved = [];
    stored = null;
    events = [];
    mc = build();
    await mc.start();
  });

  /** Lets the controller's awaits (the fake media answers on a later promise turn) run to the end. */
  const settle = async (): Promise<void> => {
    await clock.advance(0);
  };

  it('shows the standby screen at start, joins the group meeting, and is in_meeting once media flows', async () => {
    expect(media.calls).toEqual(['start standby']);
    expect(mc.phase).toBe('idle');
    void mc.onGroupMeeting(spec('m1'));
    await settle();
    expect(mc.phase).toBe('joining');
    expect(media.calls.at(-1)).toBe('start m1');
    media.flowing();
    expect(mc.phase).toBe('in_meeting');
    expect(mc.meeting).toMatchObject({ id: 'm1', source: 'group' });
  });

  it('a join for the meeting already running changes nothing; a different one switches cleanly', async () => {
    void mc.join(spec('m1'));
    await settle();
    const r = mc.join(spec('m1'));
    await settle();
    expect(await r).toEqual({ meetingId: 'm1', already: true });
    expect(media.calls.filter((c) => c === 'start m1')).toHaveLength(1);
    void mc.join(spec('m2'));
    await settle();
    expect(media.calls.at(-1)).toBe('start m2');
    expect(events).toContain('meeting_switch m2');
  });

  it('leaves when the group meeting is cleared, and when endsAt passes', async () => {
    void mc.onGroupMeeting(spec('m1'));
    await settle();
    void mc.onGroupMeeting(null);
    await settle();
    expect(mc.phase).toBe('idle');
    expect(media.calls.slice(-2)).toEqual(['stop', 'start standby']);

    void mc.onGroupMeeting(spec('m3', { endsAt: '2026-11-22T08:00:30Z' }));
    await settle();
    expect(mc.meeting?.id).toBe('m3');
    await clock.advance(30_000);
    expect(mc.phase).toBe('idle');
    expect(events).toContain('meeting_leave m3');
  });

  it('ignores a retained meeting that is already over', async () => {
    void mc.onGroupMeeting(spec('old', { endsAt: '2026-11-22T07:00:00Z' }));
    await settle();
    expect(mc.meeting).toBeNull();
    expect(media.calls).toEqual(['start standby']);
  });

  it('a leave command keeps the box out of that group meeting until the hub announces another', async () => {
    void mc.onGroupMeeting(spec('m1'));
    await settle();
    void mc.leave();
    await settle();
    void mc.onGroupMeeting(spec('m1')); // redelivered retained message after a reconnect
    await settle();
    expect(mc.meeting).toBeNull();
    void mc.onGroupMeeting(spec('m2'));
    await settle();
    expect(mc.meeting?.id).toBe('m2');
  });

  it('a meeting joined by command survives a restart (power cut); a group one is re-learnt from the broker', async () => {
    void mc.join(spec('cmd-1', { srt: { passphrase: 'a-long-passphrase' } }));
    await settle();
    expect(stored).toMatchObject({ spec: { meetingId: 'cmd-1' }, source: 'command' });
    media = new FakeMedia();
    mc = build();
    const s = mc.start();
    await settle();
    await s;
    expect(media.calls).toEqual(['start cmd-1 (encrypted)']);
    expect(mc.meeting).toMatchObject({ id: 'cmd-1', source: 'restored' });
  });

  it('a retained meeting arriving during start-up is not overwritten by the standby screen', async () => {
    media = new FakeMedia();
    mc = build();
    const s = mc.start();
    void mc.onGroupMeeting(spec('early'));
    await settle();
    await s;
    expect(media.calls).toEqual(['start standby', 'start early']);
    expect(mc.meeting?.id).toBe('early');
  });

  it('a plan error leaves the running meeting untouched', async () => {
    void mc.join(spec('m1'));
    await settle();
    const bad = new MeetingController({
      media: media as unknown as MediaSupervisor,
      planSession: () => {
        throw new Error('send.url: must be an srt:// URL');
      },
      planStandby: () => standby,
      store: { load: async () => null, save: async () => undefined },
    });
    await expect(bad.join(spec('m9'))).rejects.toThrow('srt:// URL');
    expect(media.calls.at(-1)).toBe('start m1');
  });

  it('{deviceId} in the stream id becomes this box, so one group spec gives each box its own stream', () => {
    expect(withDeviceId(spec('m1'), 'cam-thanh').send.streamId).toBe('publish:g/cam-thanh');
    expect(withDeviceId({ ...spec('m1'), send: { url: 'srt://h:1' } }, 'x').send).toEqual({ url: 'srt://h:1' });
  });
});
