/**
 * A CommandRouter over a real CommandLedger (journal in a temp dir) and the real contract,
 * with the action runner and the publisher recorded: what the router tests drive.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CommandRouter } from '../../../device/mqtt/command-router.js';
import { createContract } from '../../../device/contract/validate.js';
import { CommandLedger } from '../../../device/store/command-ledger.js';
import type { Reply } from '../../../device/contract/types.js';
import type { IncomingMessage } from '../../../device/mqtt/session.js';

export interface Sent {
  reply: Reply;
  to: { responseTopic?: string; correlationData?: Buffer };
}

export interface RouterHarness {
  sent: Sent[];
  runs: Array<{ command: string; args: unknown }>;
  meetings: unknown[];
  offline: boolean;
  router: CommandRouter;
  ledger: CommandLedger;
  /** A new router and ledger on the same journal (a restart). */
  restart(): Promise<void>;
}

export type Action = (command: string, args: unknown) => Promise<Record<string, unknown>>;

export const NOW = Date.parse('2026-11-22T00:00:00Z');

/** The default action: `selftest` throws, anything else answers `{done: command}` after 20 ms. */
export const defaultAction: Action = async (command) => {
  if (command === 'selftest') throw new Error('camera check crashed');
  await new Promise((r) => setTimeout(r, 20));
  return { done: command };
};

export async function routerHarness(action: Action = defaultAction): Promise<RouterHarness> {
  const file = path.join(await mkdtemp(path.join(os.tmpdir(), 'ep-router-')), 'commands.journal');
  const h = { sent: [], runs: [], meetings: [], offline: false } as unknown as RouterHarness;
  const build = async (): Promise<void> => {
    await h.ledger?.stop();
    const ledger = new CommandLedger({ file });
    await ledger.load();
    h.ledger = ledger;
    h.router = new CommandRouter({
      deviceId: 'cam-thanh',
      groupId: 'camlo',
      contract: createContract(),
      ledger,
      clock: { now: () => NOW, setTimeout, clearTimeout, setInterval, clearInterval } as never,
      run: async (command, args) => {
        h.runs.push({ command, args });
        return action(command, args);
      },
      publishReply: async (reply, to) => {
        if (h.offline) throw new Error('mqtt: not connected');
        h.sent.push({ reply, to });
      },
      onMeeting: async (spec) => void h.meetings.push(spec),
      onBadMeeting: async (problems) => void h.meetings.push({ bad: problems }),
    });
  };
  h.restart = build;
  await build();
  return h;
}

/** A command message as the MQTT session hands it over. */
export const cmd = (command: string, body: unknown, extra: Partial<{ responseTopic: string; correlationData: Buffer; group: boolean }> = {}): IncomingMessage => ({
  topic: extra.group ? `ep/v1/grp/camlo/cmd/${command}` : `ep/v1/dev/cam-thanh/cmd/${command}`,
  payload: Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
  retain: false,
  ...(extra.responseTopic !== undefined ? { responseTopic: extra.responseTopic } : {}),
  ...(extra.correlationData ? { correlationData: extra.correlationData } : {}),
});
