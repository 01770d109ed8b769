/**
 * The TV standby screen between meetings: the commune's name, the box's state in words,
 * the clock, the next meeting the hub announced, the first fault's advice and small
 * badges (hand raised, mic muted), drawn by GStreamer at 5 fps. The agent turns its
 * FieldView into the texts (device/field/standby-texts.ts, with this file's layout and
 * wrapText); `planStandby` gives each text its own named textoverlay so the supervisor
 * changes them live (`standbySets`) without a restart.
 */
import { osdOverlay, pickEndpoints, rawVideoCaps, sinkEnv } from './endpoints.js';
import { snapshotBranch } from './snapshot.js';
import { branches, chain, displayText, q } from './launch.js';
import { ELEMENT_NAMES } from './names.js';
import type { Capabilities, MediaSettings, StandbyPlan, StandbyTexts } from '../types.js';

export type { StandbyTexts };

/** The standby screen's texts, in the order they are drawn. */
export const STANDBY_TEXT_KEYS = ['title', 'status', 'next', 'fault', 'badges'] as const satisfies ReadonlyArray<keyof StandbyTexts>;

/** The size every font and budget below is designed for; other sizes scale the fonts. */
const DESIGN = { width: 1280, height: 720 };

/**
 * Where each text sits on a 1280×720 screen and how it is drawn. `band` is the vertical
 * span (fractions of the height) the text is centred in; the integration test compares
 * the frame band by band. `chars` is the line budget: DejaVu Sans at these sizes,
 * measured here with the seed title (75 characters of Vietnamese, Sans 24: 1 173 px
 * wide; Sans Bold 44: 34 px a character), so a line stays inside 1 152 px (64 px
 * margins) with ~15 % to spare for wide letters; textoverlay's own word wrap is the
 * safety net. `lines` caps the lines (the last one cut with "…").
 */
export const STANDBY_LAYOUT = {
  badges: { band: [0, 0.1], font: 'DejaVu Sans Bold', pt: 20, chars: 90, lines: 1, color: 0xffffffff },
  title: { band: [0.1, 0.32], font: 'DejaVu Sans Bold', pt: 40, chars: 32, lines: 2, color: 0xffffffff },
  status: { band: [0.32, 0.46], font: 'DejaVu Sans', pt: 26, chars: 58, lines: 2, color: 0xffe6edf3 },
  next: { band: [0.48, 0.72], font: 'DejaVu Sans', pt: 24, chars: 64, lines: 3, color: 0xffffffff },
  fault: { band: [0.74, 0.92], font: 'DejaVu Sans', pt: 22, chars: 70, lines: 2, color: 0xffffc640 },
} as const satisfies Record<keyof StandbyTexts, { band: readonly [number, number]; font: string; pt: number; chars: number; lines: number; color: number }>;

/** Where the clock is (bottom right): the integration test masks it, it changes every minute. */
export const STANDBY_CLOCK_REGION = { x: [0.78, 1], y: [0.88, 1] } as const;

const BACKGROUND = 0xff1a3c5a;
const FALLBACK_NAME = 'Commune endpoint';

/**
 * Greedy word wrap to `chars` code points a line and at most `lines` lines; a word longer
 * than a line is cut; what does not fit ends the last line with "…". Input is NFC (one
 * code point per Vietnamese letter), so code points count glyphs.
 */
export function wrapText(text: string, chars: number, lines: number): string {
  const out: string[] = [];
  let line: string[] = [];
  for (const w of text.split(/\s+/).filter((x) => x.length > 0)) {
    let word = [...w];
    for (;;) {
      if (line.length === 0 && word.length > chars) {
        out.push(word.slice(0, chars).join(''));
        word = word.slice(chars);
      } else if (line.length === 0) {
        line = word;
        break;
      } else if (line.length + 1 + word.length <= chars) {
        line = [...line, ' ', ...word];
        break;
      } else {
        out.push(line.join(''));
        line = [];
      }
    }
  }
  if (line.length > 0) out.push(line.join(''));
  if (out.length <= lines) return out.join('\n');
  const kept = out.slice(0, lines);
  kept[lines - 1] = `${[...kept[lines - 1]!].slice(0, chars - 1).join('').trimEnd()}…`;
  return kept.join('\n');
}

/**
 * One line of people's text for the screen: NFC (Vietnamese typed on a phone often arrives
 * decomposed), control characters out, newlines and tabs as spaces. The same cleaning as
 * device/field/model.ts displayString, which this folder may not import.
 */
export function screenLine(s: string, max = 300): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\n\r\t]+/g, ' ').normalize('NFC').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
  return [...clean].slice(0, max).join('').trim();
}

/** The commune's name as the screen shows it (wrapped); a box without a name shows a neutral title. */
export function standbyTitle(name: string): string {
  return wrapText(screenLine(name) || FALLBACK_NAME, STANDBY_LAYOUT.title.chars, STANDBY_LAYOUT.title.lines);
}

/**
 * The screen before the agent says more: the name and "ready" (model.ts STATE_WORDS.idle,
 * which this folder may not import; test/unit/standby-plan.test.ts keeps them equal).
 */
export function idleStandbyTexts(name: string): StandbyTexts {
  return { title: standbyTitle(name), status: 'Sẵn sàng — chờ cuộc họp\nReady — waiting for the next meeting', next: '', fault: '', badges: '' };
}

/**
 * The textoverlay `text` value for a screen text: textoverlay reads its text as Pango
 * markup (measured here: "A & B" draws nothing and Pango warns), so `&`, `<`, `>` are
 * escaped; what no launch string can carry is dropped (displayText). An empty text is a
 * space (the overlay is silent then anyway).
 */
export function overlayText(s: string): string {
  const t = displayText(s).replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
  return t === '' ? ' ' : t;
}

/** The element each text is drawn by (names.ts). */
export const STANDBY_ELEMENTS: Readonly<Record<keyof StandbyTexts, string>> = {
  title: ELEMENT_NAMES.title,
  status: ELEMENT_NAMES.standbyStatus,
  next: ELEMENT_NAMES.standbyNext,
  fault: ELEMENT_NAMES.standbyFault,
  badges: ELEMENT_NAMES.standbyBadges,
};

/**
 * The `set` messages that take the screen from `from` to `to`: only the texts that
 * changed; `text` before `silent=false` (a shown overlay never flashes its old text),
 * `silent=true` alone to hide. `from` null: everything is sent.
 */
export function standbySets(from: StandbyTexts | null, to: StandbyTexts): Array<{ element: string; property: 'text' | 'silent'; value: string | boolean }> {
  const out: Array<{ element: string; property: 'text' | 'silent'; value: string | boolean }> = [];
  for (const key of STANDBY_TEXT_KEYS) {
    const was = from?.[key];
    const now = to[key];
    if (was === now) continue;
    const element = STANDBY_ELEMENTS[key];
    if (now === '') {
      out.push({ element, property: 'silent', value: true });
      continue;
    }
    out.push({ element, property: 'text', value: overlayText(now) });
    if (was === undefined || was === '') out.push({ element, property: 'silent', value: false });
  }
  return out;
}

/**
 * The badges over a meeting's program (receive.ts): the same element name as the standby
 * screen's, so the supervisor's updateStandby shows a raised hand or a muted mic over
 * whichever picture the TV has. Silent until a badge is set; sized with the picture.
 */
export function sessionBadgesOverlay(): string {
  const l = STANDBY_LAYOUT.badges;
  return `textoverlay name=${STANDBY_ELEMENTS.badges} silent=true text=" " font-desc=${q(`${l.font} 16`)} color=${l.color} draw-shadow=false shaded-background=true valignment=top halignment=left`;
}

/**
 * The standby pipeline: a solid card, one textoverlay per text (auto-resize off: the
 * sizes above are pixels of this frame, scaled from 1280×720), the clock, the osd
 * (identify), then the TV. With `settings.snapshotDir` a tee feeds a 1 fps PNG appsink
 * (`snapshotReceive`: the displayed picture). Starts with `videotestsrc ` (the
 * bare-gst-launch test bounds it with num-buffers).
 */
export function planStandby(caps: Capabilities, settings: MediaSettings, size = DESIGN, texts?: StandbyTexts): StandbyPlan {
  const ends = pickEndpoints(caps, settings, { ...size, fps: 5, bitrateKbps: 0 }, settings.standbyTitle ?? '');
  const t = texts ?? idleStandbyTexts(settings.standbyTitle ?? '');
  const scale = size.width / DESIGN.width;
  const px = (pt: number): number => Math.max(6, Math.round(pt * scale));
  const text = caps.elements.textoverlay === true;
  const overlay = (key: keyof StandbyTexts): string => {
    const l = STANDBY_LAYOUT[key];
    const common = `auto-resize=false font-desc=${q(`${l.font} ${px(l.pt)}`)} color=${l.color} silent=${t[key] === '' ? 'true' : 'false'} text=${q(overlayText(t[key]))}`;
    if (key === 'badges')
      // Top left on a shaded box: a badge, not a headline.
      return `textoverlay name=${STANDBY_ELEMENTS[key]} ${common} draw-shadow=false shaded-background=true valignment=top halignment=left xpad=${px(32)} ypad=${px(24)}`;
    const ypos = ((l.band[0] + l.band[1]) / 2).toFixed(3);
    return `textoverlay name=${STANDBY_ELEMENTS[key]} ${common} valignment=position halignment=center ypos=${ypos} line-alignment=center`;
  };
  const snap = settings.snapshotDir !== undefined;
  const tee = 'standbytee';
  const pipeline = branches(
    chain(
      `videotestsrc is-live=true pattern=solid-color foreground-color=${BACKGROUND}`,
      rawVideoCaps({ ...size, fps: 5 }),
      ...(text ? STANDBY_TEXT_KEYS.map(overlay) : []),
      // clockoverlay ships in the same pango plugin as textoverlay: the wall clock (the worker's TZ), so a clerk sees the box is alive.
      text ? `clockoverlay auto-resize=false valignment=bottom halignment=right xpad=${px(32)} ypad=${px(24)} font-desc=${q(`DejaVu Sans ${px(24)}`)} time-format="%H:%M"` : null,
      // identify's name (supervisor.showText) on a shaded box: readable over the texts below it.
      text ? `${osdOverlay()} shaded-background=true shading-value=160` : null,
      snap ? `tee name=${tee}` : null,
      snap ? 'queue leaky=downstream max-size-buffers=2' : null,
      'videoconvert',
      ends.display.sink,
    ),
    snap ? snapshotBranch(tee, ELEMENT_NAMES.snapshotReceive) : null,
  );
  return {
    kind: 'standby',
    pipeline,
    choices: { display: ends.display.label },
    env: sinkEnv(ends.display.sink),
    texts: t,
    names: { snapshotReceive: snap ? ELEMENT_NAMES.snapshotReceive : null },
  };
}
