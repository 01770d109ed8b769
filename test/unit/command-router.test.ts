import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { CommandRouter } from '../../device/mqtt/command-router.js';
import { createContract } from '../../device/contract/validate.js';
import { CommandLedger } from '../../device/store/command-ledger.js';
import type { Reply } from '../../device/contract/types.js';

interface Sent {
  reply: Reply;
  to: { responseTopic?: string; correlationData?: Buffer };
}

describe('CommandRouter (transport only translates)', () => {
  let sent: Sent[];
  let runs: Array<{ command: string; args: unknown }>;
  let meetings: unknown[];
  let router: CommandRouter;
  let file: string;
  let offline: boolean;

  const build = async (): Promise<CommandRouter> => {
    const ledger = new CommandLedger({ file });
    await ledger.load();
    return new CommandRouter({
      deviceId: 'cam-thanh',
      groupId: 'camlo',
      contract: createContract(),
      ledger,
      clock: { now: () => Date.parse('2026-11-22T00:00:00Z'), setTimeout, clearTimeout, setInterval, clearInterval } as never,
      run: async (command, args) => {
        runs.push({ command, args });
        if (command === 'selftest') throw new Error('camera check crashed');
        await new Promise((r) => setTimeout(r, 20));
        return { done: command };
      },
      publishReply: async (reply, to) => {
        if (offline) throw new Error('mqtt: not connected');
        sent.push({ reply, to });
      },
      onMeeting: async (spec) => {
        meetings.push(spec);
      },
      onBadMeeting: async (problems) => {
        meetings.push({ bad: problems });
      },
    });
  };

  const cmd = (command: string, body: unknown, extra: Partial<{ responseTopic: string; correlationData: Buffer; group: boolean }> = {}) => ({
    topic: extra.group ? `ep/v1/grp/camlo/cmd/${command}` : `ep/v1/dev/cam-thanh/cmd/${command}`,
    payload: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
    retain: false,
    ...(extra.responseTopic ? { responseTopic: extra.responseTopic } : {}),
    ...(extra.correlationData ? { correlationData: extra.correlationData } : {}),
  });

  beforeEach(async () => {
    sent = [];
    runs = [];
    meetings = [];
    offline = false;
    file = path.join(await mkdtemp(path.join(os.tmpdir(), 'ep-router-')), 'commands.json');
    router = await build();
  });

  async function settle(): Promise<void> {
    await router.idle();
  }

  it('runs a valid command once and replies ok with its result', async () => {
    await router.handle(cmd('leave', { id: 'c1', args: {} }));
    await settle();
    expect(runs).toEqual([{ command: 'leave', args: {} }]);
    expect(sent.map((s) => s.reply)).toEqual([{ id: 'c1', deviceId: 'cam-thanh', command: 'leave', ok: true, result: { done: 'leave' } }]);
  });

  it.each([
    ['not JSON', 'leave', '{oops', '', 'bad_request'],
    ['wrong shape', 'identify', { id: 'c2', args: { seconds: 'ten' } }, 'c2', 'bad_request'],
    ['unknown field', 'leave', { id: 'c3', args: {}, please: true }, 'c3', 'bad_request'],
    ['over 64 KiB', 'leave', { id: 'c4', pad: 'x'.repeat(66_000) }, '', 'bad_request'],
    ['unknown command', 'dance', { id: 'c5' }, 'c5', 'unknown_command'],
    ['expired', 'leave', { id: 'c6', expiresAt: '2026-11-21T23:59:59Z' }, 'c6', 'expired'],
    ['failing action', 'selftest', { id: 'c7' }, 'c7', 'failed'],
  ])('%s → exactly one reply, code %s', async (_what, command, body, id, code) => {
    await router.handle(cmd(command, body));
    await settle();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.reply).toMatchObject({ id, ok: false, error: { code }, deviceId: 'cam-thanh', command });
    expect(runs.filter((r) => r.command !== 'selftest')).toEqual([]);
  });

  it('a duplicate id arriving in the same tick runs once and both get the same reply', async () => {
    await Promise.all([router.handle(cmd('leave', { id: 'dup' })), router.handle(cmd('leave', { id: 'dup' }, { group: true }))]);
    await settle();
    expect(runs).toHaveLength(1);
    expect(sent).toHaveLength(2);
    expect(sent[0]!.reply).toEqual(sent[1]!.reply);
  });

  it('a duplicate after a restart gets the first reply and does not run again', async () => {
    await router.handle(cmd('reboot', { id: 'r1', args: { when: 'now' } }));
    await settle();
    router = await build();
    await router.handle(cmd('reboot', { id: 'r1', args: { when: 'now' } }));
    await settle();
    expect(runs).toHaveLength(1);
    expect(sent).toHaveLength(2);
    expect(sent[1]!.reply).toEqual(sent[0]!.reply);
  });

  it('answers on the MQTT 5 response topic with the correlation data', async () => {
    const corr = Buffer.from('req-42');
    await router.handle(cmd('leave', { id: 'c8' }, { responseTopic: 'hub/replies/7', correlationData: corr }));
    await settle();
    expect(sent[0]!.to).toEqual({ responseTopic: 'hub/replies/7', correlationData: corr });
  });

  it('keeps a reply made while offline and sends it on flush', async () => {
    offline = true;
    await router.handle(cmd('leave', { id: 'c9' }));
    await settle();
    expect(sent).toHaveLength(0);
    offline = false;
    await router.flush();
    expect(sent.map((s) => s.reply.id)).toEqual(['c9']);
  });

  it('decodes the retained meeting at the edge: a typed spec, null when it ends, every problem by path when bad', async () => {
    const spec = { meetingId: 'm1', send: { url: 'srt://hub:9000' }, receive: { url: 'srt://hub:9001' } };
    const topic = 'ep/v1/grp/camlo/meeting';
    await router.handle({ topic, payload: Buffer.from(JSON.stringify(spec)), retain: true });
    await router.handle({ topic, payload: Buffer.alloc(0), retain: true });
    await router.handle({ topic, payload: Buffer.from('{"meetingId":"m2","send":{"url":"http://x"}}'), retain: true });
    await router.handle({ topic: 'ep/v1/dev/someone-else/cmd/leave', payload: Buffer.from('{"id":"x"}'), retain: false });
    await settle();
    expect(meetings.slice(0, 2)).toEqual([spec, null]);
    const bad = (meetings[2] as { bad: string }).bad;
    expect(bad).toContain('meeting.send.url');
    expect(bad).toContain('meeting.receive');
    expect(meetings).toHaveLength(3);
    expect(sent).toHaveLength(0);
  });
});
