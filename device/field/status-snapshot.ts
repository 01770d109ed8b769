/**
 * What the status page receives (status-page.ts): a snapshot built from named fields only,
 * every string NFC and cut, log lines and URLs redacted once more. Pure.
 */
import { withoutCredentials } from '../../lib/index.js';
import type { HealthSample } from '../contract/index.js';
import { STATE_WORDS, displayString, ledFor, problemsOf, type FieldView } from './model.js';

export const STATUS_LOG_LINES = 200;
/** A log line on the page is cut here (the ring keeps up to 8 KiB; a phone needs less). */
export const STATUS_LOG_LINE_CHARS = 1000;

/** Replaces anything that looks like a secret's value in a line of text (defence in depth: the logger redacts first). */
export function redactSecrets(line: string): string {
  return (
    line
      // "password":"x", "srt":{"passphrase":…}, "apiKey": 123, "pin": "1234" (not "buttonPin": 17) …
      // (the name's prefix bounded: an unbounded lazy run made a long dotted line quadratic)
      .replace(/("(?:pin|[\w.-]{0,40}?(?:password|passphrase|passwd|token|secret|key))"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)/gi, '$1"[redacted]"')
      // password=x, passphrase: x, ?passphrase=x&…
      .replace(/\b(pin|[\w.-]{0,40}?(?:password|passphrase|passwd|token|secret|key))(\s*[=:]\s*)(?!"\[redacted\]")([^\s,;&"'}\]]+)/gi, '$1$2[redacted]')
      // scheme://user:password@host
      .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]*:[^\s/@]*@/gi, '$1[redacted]@')
      .replace(/\b(bearer|basic)\s+[\w.~+/-]+=*/gi, '$1 [redacted]')
  );
}

/** The same log lines go out with every push (up to 4 a second): each is redacted once. Bounded. */
const redacted = new Map<string, string>();
const REDACTED_CACHE = 512;
function redactLine(line: string): string {
  let r = redacted.get(line);
  if (r === undefined) {
    r = redactSecrets(line);
    if (redacted.size >= REDACTED_CACHE) redacted.delete(redacted.keys().next().value!);
    redacted.set(line, r);
  }
  return r;
}

type N = number | null;

const num = (x: unknown): N => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const bool = (x: unknown): boolean | null => (typeof x === 'boolean' ? x : null);
const text = (x: unknown, max = 200): string | null => (typeof x === 'string' ? displayString(x, max) : null);
const obj = (x: unknown): Record<string, unknown> => (typeof x === 'object' && x !== null ? (x as Record<string, unknown>) : {});

function pageHealth(h: HealthSample, inMeeting: boolean) {
  const cpu = obj(h.cpu), power = obj(h.power), mem = obj(h.mem), disk = obj(h.disk), net = obj(h.net), dev = obj(h.devices);
  const m = obj(h.media), send = obj(m.send), recv = obj(m.receive), audio = obj(m.audio), link = obj(m.link);
  return {
    ts: text(h.ts, 40),
    uptimeS: num(h.uptimeS),
    cpu: { loadPct: num(cpu.loadPct), tempC: num(cpu.tempC) },
    power: { underVoltage: bool(power.underVoltage), underVoltageSinceBoot: bool(power.underVoltageSinceBoot), throttled: bool(power.throttled) },
    mem: { usedPct: num(mem.usedPct) },
    disk: { usedPct: num(disk.usedPct) },
    clockSynced: bool(h.clockSynced),
    net: { iface: text(net.iface, 32), ip: text(net.ip, 64), rxKbps: num(net.rxKbps), txKbps: num(net.txKbps) },
    devices: { camera: bool(dev.camera), display: bool(dev.display), mic: bool(dev.mic), speaker: bool(dev.speaker) },
    media: inMeeting
      ? {
          send: { fps: num(send.fps), kbps: num(send.kbps), rttMs: num(send.rttMs), lossPct: num(send.lossPct) },
          receive: { fps: num(recv.fps), kbps: num(recv.kbps), lossPct: num(recv.lossPct) },
          audio: { micDb: num(audio.micDb), speakerDb: num(audio.speakerDb) },
          rung: text(link.rung, 32),
        }
      : null,
  };
}

/** What the page receives (statusSnapshot): every field named, nothing passed through whole. */
export type StatusSnapshot = ReturnType<typeof statusSnapshot>;
export type StatusHealth = ReturnType<typeof pageHealth>;

/** The snapshot the page shows. Pure; every string NFC and cut, log lines redacted again. */
export function statusSnapshot(v: FieldView, health: HealthSample | null, logs: readonly string[]) {
  const inMeeting = v.state === 'in_meeting' || v.state === 'joining' || v.state === 'leaving';
  return {
    t: 'snapshot' as const,
    now: v.now,
    name: text(v.name),
    deviceId: text(v.deviceId, 64),
    groupId: text(v.groupId, 64),
    version: text(v.version, 64) ?? '',
    state: v.state,
    stateWords: STATE_WORDS[v.state],
    unprovisionedReason: v.unprovisionedReason === null ? null : redactSecrets(displayString(v.unprovisionedReason, 400)),
    hub: { connected: v.hub.connected, url: v.hub.url === null ? null : text(redactSecrets(withoutCredentials(v.hub.url)), 300), downForMs: num(v.hub.downForMs) ?? 0 },
    network: v.network,
    meeting: v.meeting && { id: text(v.meeting.id, 64) ?? '', title: text(v.meeting.title), since: text(v.meeting.since, 40) ?? '' },
    nextMeeting: v.nextMeeting && { title: text(v.nextMeeting.title) ?? '', startsAt: text(v.nextMeeting.startsAt, 40) ?? '' },
    problems: problemsOf(v),
    led: ledFor(v).code,
    ota: v.ota && { phase: text(v.ota.phase, 40) ?? '', version: text(v.ota.version, 64), progress: num(v.ota.progress) },
    identify: v.identify,
    handRaised: v.handRaised,
    micMuted: v.micMuted,
    resetWarning: v.resetWarning,
    health: health === null ? null : pageHealth(health, inMeeting),
    logs: logs.slice(-STATUS_LOG_LINES).map((l) => redactLine(displayString(l, STATUS_LOG_LINE_CHARS))),
  };
}
