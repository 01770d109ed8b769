/**
 * Is the agent alive enough to feed systemd's watchdog? Three parts, each judged from
 * what it exposes read-only (pure: plain objects in, a verdict out):
 *
 * - event loop: how late the watchdog's own ping timer fired. A blocked loop sends no
 *   ping anyway; one that runs but is later than the bound (10 s, or one ping period when
 *   that is shorter: a ping that late leaves a gap past WatchdogSec) withholds too.
 * - MQTT session (device/mqtt/session.ts): its watchdog ticks (every ≤ 5 s) and it is
 *   connected or making progress (an attempt or a rebuild within its own bound). A tick
 *   that stopped, or a disconnected session nobody retries, is wedged.
 * - media supervisor (gst-pipelines/supervisor/supervisor.ts): idle (no session wanted)
 *   and a relaunch waiting its backoff are alive; a watched worker must have been heard
 *   within the supervisor's own hang limit (its watchdog kills a worker past it, so a
 *   longer silence means the watchdog did not act) and that watchdog must be armed; a
 *   launch (waiting for a worker to be ready) must end within MEDIA_LAUNCH_BOUND_MS.
 *
 * Every bound on a timer gets a slack of the event-loop bound + 1 s: a loop late by less
 * than its bound delays those timers too without anything being wedged.
 */
export type LivenessPart = 'event_loop' | 'mqtt' | 'media';
export type LivenessVerdict = { alive: true } | { alive: false; part: LivenessPart; detail: string };

export const EVENT_LOOP_BOUND_MS = 10_000;
/** A media worker being started (process, GStreamer, its `ready`) within this; a slow first start on a Pi takes a few seconds. */
export const MEDIA_LAUNCH_BOUND_MS = 60_000;
const TIMER_MARGIN_MS = 1000;

/** MqttSession.liveness(). */
export interface MqttLiveness {
  running: boolean;
  connected: boolean;
  lastTickAt: number;
  tickMs: number;
  lastProgressAt: number;
  boundMs: number;
}

/** MediaSupervisor.liveness(). */
export interface MediaLiveness {
  phase: 'idle' | 'watching' | 'relaunch_scheduled' | 'launching';
  since: number;
  boundMs: number;
  watchdogArmed: boolean;
}

export interface LivenessBounds {
  /** A ping timer later than this: the event loop is not alive. */
  loopBoundMs: number;
  /** Added to every other timer's bound. */
  slackMs: number;
}

/** The bounds for a watchdog pinging every `pingMs`. */
export function livenessBounds(pingMs: number): LivenessBounds {
  const loopBoundMs = Math.min(EVENT_LOOP_BOUND_MS, pingMs);
  return { loopBoundMs, slackMs: loopBoundMs + TIMER_MARGIN_MS };
}

export function judgeLiveness(s: { now: number; loopLateMs: number; mqtt: MqttLiveness; media: MediaLiveness }, b: LivenessBounds): LivenessVerdict {
  if (s.loopLateMs > b.loopBoundMs) return { alive: false, part: 'event_loop', detail: `a timer fired ${Math.round(s.loopLateMs)} ms late (bound ${b.loopBoundMs} ms)` };
  const m = mqttProblem(s.mqtt, s.now, b.slackMs);
  if (m !== null) return { alive: false, part: 'mqtt', detail: m };
  const d = mediaProblem(s.media, s.now, b.slackMs);
  if (d !== null) return { alive: false, part: 'media', detail: d };
  return { alive: true };
}

function mqttProblem(l: MqttLiveness, now: number, slack: number): string | null {
  if (!l.running) return 'the session is not running';
  const sinceTick = now - l.lastTickAt;
  if (sinceTick > l.tickMs + slack) return `its loop has not ticked for ${sinceTick} ms (every ${l.tickMs} ms)`;
  const stuck = now - l.lastProgressAt;
  if (!l.connected && stuck > l.boundMs + l.tickMs + slack) return `disconnected with no attempt for ${stuck} ms (it rebuilds past ${l.boundMs} ms)`;
  return null;
}

function mediaProblem(l: MediaLiveness, now: number, slack: number): string | null {
  switch (l.phase) {
    case 'idle':
    case 'relaunch_scheduled':
      return null;
    case 'watching': {
      if (!l.watchdogArmed) return 'a worker runs with no watchdog armed';
      const silent = now - l.since;
      return silent > l.boundMs + slack ? `its worker has been silent for ${silent} ms and its watchdog (${l.boundMs} ms) did not act` : null;
    }
    case 'launching': {
      const waited = now - l.since;
      return waited > MEDIA_LAUNCH_BOUND_MS + slack ? `a worker launch has waited ${waited} ms (bound ${MEDIA_LAUNCH_BOUND_MS} ms)` : null;
    }
  }
}

/** The check the notifier's watchdog calls (lib/sd-notify.ts startWatchdog), over the agent's live parts. */
export function agentLivenessCheck(parts: { mqtt: { liveness(): MqttLiveness }; media: { liveness(): MediaLiveness } }, now: () => number, pingMs: number): (loopLateMs: number) => LivenessVerdict {
  const b = livenessBounds(pingMs);
  return (loopLateMs) => judgeLiveness({ now: now(), loopLateMs, mqtt: parts.mqtt.liveness(), media: parts.media.liveness() }, b);
}
