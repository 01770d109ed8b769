/** The standby screen between meetings: the commune's name on a calm card, 5 fps. */
import { osdOverlay, pickEndpoints, rawVideoCaps, sinkEnv } from './endpoints.js';
import { chain, displayText, q } from './launch.js';
import { ELEMENT_NAMES } from './names.js';
import type { Capabilities, MediaSettings, StandbyPlan } from '../types.js';

export function planStandby(caps: Capabilities, settings: MediaSettings, size = { width: 1280, height: 720 }): StandbyPlan {
  const ends = pickEndpoints(caps, settings, { ...size, fps: 5, bitrateKbps: 0 }, settings.standbyTitle ?? '');
  const title = settings.standbyTitle ?? 'Commune endpoint';
  const pipeline = chain(
    'videotestsrc is-live=true pattern=solid-color foreground-color=0xff1a3c5a',
    rawVideoCaps({ ...size, fps: 5 }),
    caps.elements.textoverlay ? `textoverlay name=${ELEMENT_NAMES.title} text=${q(displayText(`${title}\nWaiting for the next meeting`))} valignment=center halignment=center font-desc="Sans 36"` : null,
    // clockoverlay ships in the same pango plugin as textoverlay: the wall clock, so a clerk sees the box is alive.
    caps.elements.textoverlay ? 'clockoverlay valignment=bottom halignment=right font-desc="Sans 20" time-format="%H:%M"' : null,
    caps.elements.textoverlay ? osdOverlay() : null,
    'videoconvert',
    ends.display.sink,
  );
  return { kind: 'standby', pipeline, choices: { display: ends.display.label }, env: sinkEnv(ends.display.sink) };
}
