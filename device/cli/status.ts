/**
 * `ep status [--json] [--socket PATH]`: asks the running agent over its local control
 * socket (device/control-socket.ts) and prints its state; says plainly when the agent is
 * not running. Socket: --socket, else EP_CONTROL_SOCKET, else /run/commune-endpoint/control.sock.
 */
import { parseArgs } from 'node:util';
import { SYSTEM_CONTROL_SOCKET, controlRequest } from '../control-socket.js';

type Out = (s: string) => void;

/** Exit code when the agent is not running (like systemctl status's 3). */
export const EX_NOT_RUNNING = 3;

export async function statusCommand(argv: string[], out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, socket: { type: 'string' } }, strict: true });
  const socket = values.socket ?? process.env.EP_CONTROL_SOCKET ?? SYSTEM_CONTROL_SOCKET;
  let r;
  try {
    r = await controlRequest(socket, 'status');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') {
      err(`ep status: the agent is not running (no answer on ${socket}); see: systemctl status commune-endpoint, journalctl -u commune-endpoint`);
      return EX_NOT_RUNNING;
    }
    if (code === 'EACCES') {
      err(`ep status: no permission to talk to the agent on ${socket}; run as root or as a member of the commune-endpoint group`);
      return 4;
    }
    throw e;
  }
  if (!r.ok) {
    err(`ep status: the agent answered ${r.error?.code ?? 'an error'}: ${r.error?.message ?? ''}`);
    return 1;
  }
  const s = r.result as Record<string, unknown>;
  if (values.json) {
    out(JSON.stringify(s, null, 2));
    return 0;
  }
  const line = (k: string, v: unknown): void => out(`${k.padEnd(10)} ${v === undefined || v === null ? '-' : typeof v === 'string' ? v : JSON.stringify(v)}`);
  line('state', s.state);
  if (s.state === 'unprovisioned') {
    line('why', s.reason);
    line('since', s.since);
  } else {
    line('box', `${String(s.deviceId)} (group ${String(s.groupId)}) ${String(s.name ?? '')}`);
    const hub = s.hub as { url?: string; connected?: boolean } | undefined;
    line('hub', hub ? `${hub.connected ? 'connected' : 'NOT connected'} to ${hub.url}` : null);
    line('meeting', s.meeting);
    line('faults', Array.isArray(s.faults) && s.faults.length ? s.faults.join(', ') : 'none');
    line('update', s.ota);
  }
  line('version', s.version);
  return 0;
}
