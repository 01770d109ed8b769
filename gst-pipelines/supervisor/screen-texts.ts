/**
 * What the TV's texts should say, kept across plans: the agent says it once (the media
 * supervisor's updateStandby), and whichever pipeline runs shows its part of it — the
 * standby screen all of it, a meeting's program only the badges (hand raised, mic muted).
 * A (re)launched worker starts from its plan's texts and is brought to what is wanted.
 */
import { standbySets } from '../plan/index.js';
import type { MediaPlan, StandbyTexts } from '../types.js';

type Sets = ReturnType<typeof standbySets>;

/** A meeting's program starts with no badge (receive.ts: the badges overlay is silent). */
const SESSION_START: StandbyTexts = { title: '', status: '', next: '', fault: '', badges: '' };

export class ScreenTexts {
  private wanted: StandbyTexts | null = null;
  private shown: StandbyTexts | null = null;
  private kind: MediaPlan['kind'] | null = null;

  /** A worker runs `plan` from now on: its pipeline shows the plan's own texts. */
  launched(plan: MediaPlan): Sets {
    this.kind = plan.kind;
    this.shown = plan.kind === 'standby' ? (plan.texts ?? null) : SESSION_START;
    return this.bring();
  }

  stopped(): void {
    this.kind = null;
    this.shown = null;
  }

  /** The agent's texts now: the sets that take the running pipeline there (only what changed). */
  update(texts: StandbyTexts): Sets {
    this.wanted = texts;
    return this.bring();
  }

  private bring(): Sets {
    if (this.kind === null || this.wanted === null) return [];
    const target = this.kind === 'standby' ? this.wanted : { ...SESSION_START, badges: this.wanted.badges };
    const sets = standbySets(this.shown, target);
    this.shown = target;
    return sets;
  }
}
