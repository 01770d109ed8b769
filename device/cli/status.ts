/**
 * `ep status [--json] [--socket PATH]`: asks the running agent over its local control
 * socket (device/control-socket.ts) and prints one screen for the technician — state in
 * words (Vietnamese and English, from field/model.ts), hub, meeting, devices, power,
 * update, what the LEDs mean now, problems with advice, the last errors. Plain text
 * without a TTY or with NO_COLOR; coloured on a terminal. Says plainly when the agent is
 * not running (exit 3) or may not be asked (exit 4). Socket: --socket, else
 * EP_CONTROL_SOCKET, else /run/commune-endpoint/control.sock.
 *
 * The formatting is a pure function of the status object (`formatStatus`) and reads every
 * field defensively: an older agent answers without `field`, `led` or `health`.
 */
import { parseArgs } from 'node:util';
import { SYSTEM_CONTROL_SOCKET, controlRequest } from '../control-socket.js';
import { STATE_WORDS, displayString, ledTableText, type Advice } from '../field/index.js';

type Out = (s: string) => void;

/** Exit code when the agent is not running (like systemctl status's 3). */
export const EX_NOT_RUNNING = 3;
/** Exit code when this user may not talk to the agent's socket. */
export const EX_NO_PERMISSION = 4;

export type Tone = 'ok' | 'warn' | 'fault' | 'plain';
const ANSI: Record<Tone, string> = { ok: '\x1b[32m', warn: '\x1b[33m', fault: '\x1b[31m', plain: '' };

/** Colour a piece of text, or leave it as it is. */
export function paint(color: boolean, tone: Tone, s: string): string {
  return color && tone !== 'plain' ? `${ANSI[tone]}${s}\x1b[0m` : s;
}

/** Colour on a terminal only, and never with NO_COLOR set (no-color.org). */
export function useColor(stream: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && !(env.NO_COLOR !== undefined && env.NO_COLOR !== '') && env.TERM !== 'dumb';
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | null => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? displayString(v, 1000) : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The message of one log line: pino JSON → `time level msg`, anything else as it is (without control characters). */
export function logLineText(line: string): string {
  let j: Obj | null = null;
  try {
    j = obj(JSON.parse(line));
  } catch {
    // not JSON: shown as it is
  }
  if (!j) return displayString(line, 300);
  const t = num(j.time);
  const when = t !== null ? new Date(t).toISOString().replace('T', ' ').slice(0, 19) : '';
  const msg = str(j.msg) ?? str(j.evt) ?? JSON.stringify(j);
  const err = str(j.err);
  return displayString(`${when ? `${when} ` : ''}${msg}${err && !msg.includes(err) ? `: ${err}` : ''}`, 300);
}

const both = (a: Advice): string => `${a.vi} / ${a.en}`;

/** One screen of text for the technician. Pure. */
export function formatStatus(status: unknown, o: { color: boolean }): string {
  const s = obj(status) ?? {};
  const c = (tone: Tone, t: string): string => paint(o.color, tone, t);
  const lines: string[] = [];
  const line = (k: string, v: string): void => {
    lines.push(`${k.padEnd(10)} ${v}`);
  };
  const field = obj(s.field);
  const health = obj(s.health);
  const state = str(s.state) ?? str(field?.state) ?? 'unknown';
  const words = (STATE_WORDS as Record<string, Advice>)[state];
  const faults = Array.isArray(s.faults) ? s.faults.filter((x): x is string => typeof x === 'string') : [];
  const stateTone: Tone = state === 'fault' || state === 'unprovisioned' ? 'fault' : faults.length || state === 'updating' ? 'warn' : 'ok';
  line('state', `${c(stateTone, state)}${words ? ` — ${both(words)}` : ''}`);

  if (state === 'unprovisioned' || s.provisioned === false) {
    line('why', str(s.reason) ?? '-');
    line('since', str(s.since) ?? '-');
  } else {
    const name = str(s.name) ?? str(field?.name);
    line('box', `${str(s.deviceId) ?? '-'} (group ${str(s.groupId) ?? '-'})${name ? ` ${name}` : ''}`);
    const hub = obj(s.hub);
    if (!hub) line('hub', '-');
    else {
      const connected = hub.connected === true;
      const down = num(obj(field?.hub)?.downForMs);
      line('hub', `${c(connected ? 'ok' : 'fault', connected ? 'connected' : 'NOT connected')} to ${str(hub.url) ?? '?'}${!connected && down ? ` (for ${Math.round(down / 1000)} s)` : ''}`);
    }
    const m = obj(s.meeting) ?? obj(field?.meeting);
    line('meeting', m ? `${str(m.title) ?? str(m.id) ?? '?'}${str(m.title) ? ` (${str(m.id)})` : ''} since ${str(m.since) ?? '?'}` : 'none');
    const next = obj(field?.nextMeeting);
    line('next', next ? `${str(next.title) ?? '?'} at ${str(next.startsAt) ?? '?'}` : 'none announced');
    const media = obj(s.media);
    if (media && (media.send !== 'idle' || media.receive !== 'idle')) {
      const err = str(media.lastError);
      line('media', `send ${str(media.send) ?? '?'}, receive ${str(media.receive) ?? '?'}${str(media.rung) ? `, ${str(media.rung)}` : ''}${err ? c('warn', ` (last error: ${err})`) : ''}`);
    }
    const dev = obj(health?.devices);
    line('devices', dev ? (['camera', 'display', 'mic', 'speaker'] as const).map((k) => `${k} ${dev[k] === true ? c('ok', 'ok') : dev[k] === false ? c('fault', 'MISSING') : '?'}`).join(', ') : '-');
  }

  const power = obj(health?.power);
  const cpu = obj(health?.cpu);
  const temp = num(cpu?.tempC);
  if (power || temp !== null) {
    const bad = [power?.underVoltage === true ? 'UNDER-VOLTAGE now' : null, power?.underVoltage !== true && power?.underVoltageSinceBoot === true ? 'under-voltage since boot' : null, power?.throttled === true ? 'THROTTLED' : null].filter((x): x is string => x !== null);
    const p = !power || (power.underVoltage == null && power.throttled == null) ? 'not readable' : bad.length ? c(power.underVoltage === true || power.throttled === true ? 'fault' : 'warn', bad.join(', ')) : c('ok', 'good');
    line('power', `${p}${temp !== null ? `; ${c(temp >= 80 ? 'fault' : temp >= 70 ? 'warn' : 'ok', `${temp.toFixed(0)} °C`)}` : ''}`);
  }
  if (health && typeof health.clockSynced === 'boolean') line('clock', health.clockSynced ? c('ok', 'synchronised') : c('warn', 'NOT synchronised'));
  line('version', str(s.version) ?? str(field?.version) ?? '-');
  if (state !== 'unprovisioned') {
    const ota = obj(s.ota);
    const phase = str(ota?.phase);
    line('update', ota && phase ? c(/fail|refused|rolled_back/.test(phase) ? 'warn' : 'plain', `${phase}${str(ota.version) ? ` ${str(ota.version)}` : ''}${num(ota.progress) !== null ? ` ${Math.round(num(ota.progress)! * (num(ota.progress)! <= 1 ? 100 : 1))} %` : ''}${str(ota.message) ? `: ${str(ota.message)}` : ''}`) : 'none');
  }

  const led = obj(s.led);
  if (led) {
    const code = str(led.code) ?? '?';
    const tone: Tone = code === 'idle' || code === 'in_meeting' ? 'ok' : code === 'updating' || code === 'identify' ? 'warn' : 'fault';
    line('LEDs', `${c(tone, str(led.pattern) ?? code)} — ${str(led.vi) ?? ''} / ${str(led.en) ?? ''}`);
  }

  const problems = Array.isArray(s.problems) ? s.problems.map(obj).filter((x): x is Obj => x !== null) : null;
  if (problems && problems.length) {
    line('problems', c('fault', String(problems.length)));
    for (const p of problems) {
      lines.push(`  ${c('fault', str(p.code) ?? '?')}`);
      if (str(p.vi)) lines.push(`    ${str(p.vi)}`);
      if (str(p.en)) lines.push(`    ${str(p.en)}`);
    }
  } else if (problems) line('problems', c('ok', 'none'));
  else if (faults.length) line('faults', c('fault', faults.map((f) => displayString(f)).join(', ')));
  else if (state !== 'unprovisioned') line('faults', c('ok', 'none'));

  const errors = Array.isArray(s.recentErrors) ? s.recentErrors.filter((x): x is string => typeof x === 'string') : [];
  if (errors.length) {
    line('errors', `last ${errors.length}`);
    for (const e of errors.slice(-5)) lines.push(`  ${c('fault', logLineText(e))}`);
  }
  return lines.join('\n');
}

/** Asks the agent; prints what to do when it is not there. A reply, or an exit code. */
export async function askAgent(cmd: string, socket: string, command: string, err: Out, timeoutMs?: number): Promise<{ ok: boolean; result?: unknown; error?: { code: string; message: string } } | number> {
  try {
    return await controlRequest(socket, command, {}, timeoutMs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') {
      err(`ep ${cmd}: the agent is not running (no answer on ${socket}); see: systemctl status commune-endpoint, journalctl -u commune-endpoint`);
      return EX_NOT_RUNNING;
    }
    if (code === 'EACCES') {
      err(`ep ${cmd}: no permission to talk to the agent on ${socket}; run as root or as a member of the commune-endpoint group`);
      return EX_NO_PERMISSION;
    }
    throw e;
  }
}

export const socketOf = (flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string => flag ?? env.EP_CONTROL_SOCKET ?? SYSTEM_CONTROL_SOCKET;

export async function statusCommand(argv: string[], out: Out, err: Out, o: { color?: boolean } = {}): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, socket: { type: 'string' }, leds: { type: 'boolean', default: false } }, strict: true });
  const socket = socketOf(values.socket);
  if (values.leds) {
    // The whole blink-code table, the code lit now marked when the agent answers (the table needs no agent).
    const now = await controlRequest(socket, 'status', {}, 5000).then((r) => (r.ok ? (obj(obj(r.result)?.led)?.code as string | undefined) ?? null : null), () => null);
    out(ledTableText(now));
    return 0;
  }
  const r = await askAgent('status', socket, 'status', err);
  if (typeof r === 'number') return r;
  if (!r.ok) {
    err(`ep status: the agent answered ${r.error?.code ?? 'an error'}: ${r.error?.message ?? ''}`);
    return 1;
  }
  if (values.json) out(JSON.stringify(r.result, null, 2));
  else out(formatStatus(r.result, { color: o.color ?? useColor() }));
  return 0;
}
