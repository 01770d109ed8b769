/**
 * What the TV standby screen says about the box (issue 16): the FieldView as the screen's
 * texts — the commune's name, the state in words (Vietnamese, English below), the next
 * meeting's local start and title, the first problem's advice, the hand/mic badges.
 * Pure; the media side draws them (gst-pipelines planStandby / MediaSupervisor.updateStandby)
 * and fixes the layout and line budgets this file wraps to.
 */
import { STANDBY_LAYOUT, screenLine, standbyTitle, wrapText, type StandbyTexts } from '../../gst-pipelines/index.js';
import { STATE_WORDS, displayString, problemsOf, type FieldView } from './model.js';

/** Vietnamese weekdays, Sunday first (our own table: ICU builds differ in case and spelling). */
const WEEKDAYS = ['Chủ Nhật', 'Thứ Hai', 'Thứ Ba', 'Thứ Tư', 'Thứ Năm', 'Thứ Sáu', 'Thứ Bảy'];

/** `HH:MM <weekday> DD/MM/YYYY` in `timeZone` (Vietnamese weekday), or null for a date that is not one. */
export function meetingTime(iso: string, timeZone?: string): string | null {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return null;
  const format = (tz: string | undefined): string => {
    const parts = new Intl.DateTimeFormat('en-GB', { timeZone: tz, day: 'numeric', month: 'numeric', year: 'numeric', hour: 'numeric', minute: 'numeric', hourCycle: 'h23' }).formatToParts(at);
    const n = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((x) => x.type === type)?.value ?? NaN);
    const [y, mo, d, h, mi] = [n('year'), n('month'), n('day'), n('hour'), n('minute')];
    const two = (v: number): string => String(v).padStart(2, '0');
    return `${two(h)}:${two(mi)} ${WEEKDAYS[new Date(Date.UTC(y, mo - 1, d)).getUTCDay()]} ${two(d)}/${two(mo)}/${y}`;
  };
  try {
    return format(timeZone);
  } catch {
    // An unknown zone name (config): the box's own zone rather than no screen at all.
    return format(undefined);
  }
}

/**
 * The standby screen's texts for `view` (pure). Every string is NFC, free of control
 * characters (model.ts displayString) and wrapped to its layout's budget; '' hides it.
 * `timeZone`: the box's zone for the next meeting's start (default: the process's).
 */
export function standbyTexts(view: FieldView, opts: { timeZone?: string } = {}): StandbyTexts {
  const L = STANDBY_LAYOUT;
  const line = (s: string): string => screenLine(displayString(s, 300));
  const words = STATE_WORDS[view.state];
  let next = '';
  if (view.nextMeeting) {
    const when = meetingTime(view.nextMeeting.startsAt, opts.timeZone);
    const head = `Cuộc họp tới · Next meeting${when ? `: ${when}` : ''}`;
    const title = line(view.nextMeeting.title);
    next = title ? `${head}\n${wrapText(title, L.next.chars, L.next.lines - 1)}` : head;
  }
  const problem = problemsOf(view)[0];
  const badges = [view.handRaised ? 'Giơ tay · Hand raised' : '', view.micMuted ? 'Tắt micrô · Mic muted' : ''].filter((b) => b !== '');
  return {
    title: standbyTitle(view.name ?? ''),
    status: `${wrapText(line(words.vi), L.status.chars, 1)}\n${wrapText(line(words.en), L.status.chars, 1)}`,
    next,
    fault: problem ? wrapText(line(problem.vi), L.fault.chars, L.fault.lines) : '',
    badges: badges.length > 0 ? ` ${badges.join('   |   ')} ` : '',
  };
}
