/**
 * `ep fleet join` and `ep fleet leave`: the group meeting as desired state (the retained
 * `ep/v1/grp/{groupId}/meeting`), the group command for the boxes that are on now, and
 * the wait until each online box of the group reports it is in (or out of) the meeting.
 *
 * The boxes waited for are the group's online boxes in the roster when the command goes
 * out, plus any box that answers the command (a box whose status has no groupId — an older
 * version — is still a box of the group if it got the group command). A box is settled
 * when it has replied and reached the state, or when it refused (ok:false).
 */
import type { Clock } from '../../lib/index.js';
import { topics, type JoinSpec } from '../contract/index.js';
import type { BoxView } from './roster.js';
import { envelope, newCommandId, type FleetSession, type ReplyView } from './session.js';

export interface MeetingBoxResult {
  id: string;
  name: string | null;
  /** ok: replied ok:true; refused: ok:false; none: no reply before the end. */
  reply: 'ok' | 'refused' | 'none';
  code: string | null;
  reason: string | null;
  message: string | null;
  online: boolean | null;
  state: string | null;
  meetingId: string | null;
  /** join: in_meeting with this meeting id; leave: out of the meeting. */
  done: boolean;
}

export interface MeetingReport {
  command: 'join' | 'leave';
  groupId: string;
  meetingId: string | null;
  commandId: string;
  boxes: MeetingBoxResult[];
  summary: { boxes: number; repliedOk: number; refused: number; noReply: number; done: number; notDone: number };
  /** The boxes that are not in (join) or not out of (leave) the meeting. */
  notDone: string[];
  ok: boolean;
}

export interface MeetingOptions {
  groupId: string;
  timeoutMs: number;
  clock: Clock;
}

/** In this meeting (join). */
export const inMeeting = (b: BoxView | undefined, meetingId: string): boolean => b?.state === 'in_meeting' && b.meetingId === meetingId;
/** Out of any meeting (leave): not joining, in or leaving one. A box with no retained state is out. */
export const outOfMeeting = (b: BoxView | undefined): boolean => !(b?.state === 'joining' || b?.state === 'in_meeting' || b?.state === 'leaving');

/** Sends `join` to the group: the retained meeting first (desired state), then the command. */
export function runJoin(s: FleetSession, spec: JoinSpec, o: MeetingOptions): Promise<MeetingReport> {
  const meetingId = spec.meetingId;
  return runMeeting(s, o, {
    command: 'join',
    meetingId,
    retained: JSON.stringify(spec),
    args: spec,
    done: (b) => inMeeting(b, meetingId),
  });
}

/** Sends `leave` to the group: the retained meeting cleared (empty payload), then the command. */
export function runLeave(s: FleetSession, o: MeetingOptions): Promise<MeetingReport> {
  return runMeeting(s, o, { command: 'leave', meetingId: null, retained: '', args: {}, done: outOfMeeting });
}

interface MeetingStep {
  command: 'join' | 'leave';
  meetingId: string | null;
  retained: string;
  args: unknown;
  done: (b: BoxView | undefined) => boolean;
}

async function runMeeting(s: FleetSession, o: MeetingOptions, step: MeetingStep): Promise<MeetingReport> {
  const g = o.groupId;
  const targets = s.roster.onlineOf(g).map((b) => b.id);
  const id = newCommandId(step.command, o.clock.now());
  s.track(id);
  await s.publish(topics.meeting(g), step.retained, true);
  await s.publish(topics.groupCommand(g, step.command), envelope(id, step.args, o.clock.now(), o.timeoutMs), false);
  const watched = (): string[] => [...new Set([...targets, ...s.repliesTo(id).keys()])];
  const settled = (box: string): boolean => {
    const r = s.repliesTo(id).get(box);
    return r !== undefined && (!r.ok || step.done(s.roster.get(box)));
  };
  await s.waitUntil(() => watched().every(settled), o.timeoutMs);
  return meetingReport(step.command, g, step.meetingId, id, watched(), s.repliesTo(id), (box) => s.roster.get(box), step.done);
}

/** The report, from what arrived. Pure. */
export function meetingReport(
  command: 'join' | 'leave',
  groupId: string,
  meetingId: string | null,
  commandId: string,
  ids: readonly string[],
  replies: ReadonlyMap<string, ReplyView>,
  box: (id: string) => BoxView | undefined,
  done: (b: BoxView | undefined) => boolean,
): MeetingReport {
  const boxes = [...ids].sort().map((id): MeetingBoxResult => {
    const r = replies.get(id);
    const b = box(id);
    return {
      id,
      name: b?.name ?? null,
      reply: r === undefined ? 'none' : r.ok ? 'ok' : 'refused',
      code: r?.code ?? null,
      reason: r?.reason ?? null,
      message: r?.message ?? null,
      online: b?.online ?? null,
      state: b?.state ?? null,
      meetingId: b?.meetingId ?? null,
      done: done(b),
    };
  });
  const notDone = boxes.filter((b) => !b.done).map((b) => b.id);
  return {
    command,
    groupId,
    meetingId,
    commandId,
    boxes,
    summary: {
      boxes: boxes.length,
      repliedOk: boxes.filter((b) => b.reply === 'ok').length,
      refused: boxes.filter((b) => b.reply === 'refused').length,
      noReply: boxes.filter((b) => b.reply === 'none').length,
      done: boxes.length - notDone.length,
      notDone: notDone.length,
    },
    notDone,
    ok: notDone.length === 0,
  };
}
