import { beforeEach, describe, expect, it } from 'vitest';
import { cmd, routerHarness, type RouterHarness } from './helpers/router.js';

describe('CommandRouter (transport only translates)', () => {
  let h: RouterHarness;

  beforeEach(async () => {
    h = await routerHarness();
  });

  async function settle(): Promise<void> {
    await h.router.idle();
  }

  it('runs a valid command once and replies ok with its result', async () => {
    await h.router.handle(cmd('leave', { id: 'c1', args: {} }));
    await settle();
    expect(h.runs).toEqual([{ command: 'leave', args: {} }]);
    expect(h.sent.map((s) => s.reply)).toEqual([{ id: 'c1', deviceId: 'cam-thanh', command: 'leave', ok: true, result: { done: 'leave' } }]);
  });

  it.each([
    ['not JSON', 'leave', '{oops', '', 'bad_request'],
    ['wrong shape', 'identify', { id: 'c2', args: { seconds: 'ten' } }, 'c2', 'bad_request'],
    ['unknown field', 'leave', { id: 'c3', args: {}, please: true }, 'c3', 'bad_request'],
    ['over 64 KiB (its id read all the same)', 'leave', { id: 'c4', pad: 'x'.repeat(66_000) }, 'c4', 'bad_request'],
    ['unknown command', 'dance', { id: 'c5' }, 'c5', 'unknown_command'],
    ['expired', 'leave', { id: 'c6', expiresAt: '2026-11-21T23:59:59Z' }, 'c6', 'expired'],
    ['failing action', 'selftest', { id: 'c7' }, 'c7', 'failed'],
  ])('%s → exactly one reply, code %s', async (_what, command, body, id, code) => {
    await h.router.handle(cmd(command, body));
    await settle();
    expect(h.sent).toHaveLength(1);
    expect(h.sent[0]!.reply).toMatchObject({ id, ok: false, error: { code }, deviceId: 'cam-thanh', command });
    expect(h.runs.filter((r) => r.command !== 'selftest')).toEqual([]);
  });

  it('a duplicate id arriving in the same tick runs once and both get the same reply', async () => {
    await Promise.all([h.router.handle(cmd('leave', { id: 'dup' })), h.router.handle(cmd('leave', { id: 'dup' }, { group: true }))]);
    await settle();
    expect(h.runs).toHaveLength(1);
    expect(h.sent).toHaveLength(2);
    expect(h.sent[0]!.reply).toEqual(h.sent[1]!.reply);
  });

  it('a duplicate after a restart gets the first reply and does not run again', async () => {
    await h.router.handle(cmd('reboot', { id: 'r1', args: { when: 'now' } }));
    await settle();
    await h.restart();
    await h.router.handle(cmd('reboot', { id: 'r1', args: { when: 'now' } }));
    await settle();
    expect(h.runs).toHaveLength(1);
    expect(h.sent).toHaveLength(2);
    expect(h.sent[1]!.reply).toEqual(h.sent[0]!.reply);
  });

  it('answers on the MQTT 5 response topic with the correlation data', async () => {
    const corr = Buffer.from('req-42');
    await h.router.handle(cmd('leave', { id: 'c8' }, { responseTopic: 'hub/replies/7', correlationData: corr }));
    await settle();
    expect(h.sent[0]!.to).toEqual({ responseTopic: 'hub/replies/7', correlationData: corr });
  });

  it('keeps a reply made while offline and sends it on flush', async () => {
    h.offline = true;
    await h.router.handle(cmd('leave', { id: 'c9' }));
    await settle();
    expect(h.sent).toHaveLength(0);
    h.offline = false;
    await h.router.flush();
    expect(h.sent.map((s) => s.reply.id)).toEqual(['c9']);
  });

  it('decodes the retained meeting at the edge: a typed spec, null when it ends, every problem by path when bad', async () => {
    const spec = { meetingId: 'm1', send: { url: 'srt://hub:9000' }, receive: { url: 'srt://hub:9001' } };
    const topic = 'ep/v1/grp/camlo/meeting';
    await h.router.handle({ topic, payload: Buffer.from(JSON.stringify(spec)), retain: true });
    await h.router.handle({ topic, payload: Buffer.alloc(0), retain: true });
    await h.router.handle({ topic, payload: Buffer.from('{"meetingId":"m2","send":{"url":"http://x"}}'), retain: true });
    await h.router.handle({ topic: 'ep/v1/dev/someone-else/cmd/leave', payload: Buffer.from('{"id":"x"}'), retain: false });
    await settle();
    expect(h.meetings.slice(0, 2)).toEqual([spec, null]);
    const bad = (h.meetings[2] as { bad: string }).bad;
    expect(bad).toContain('meeting.send.url');
    expect(bad).toContain('meeting.receive');
    expect(h.meetings).toHaveLength(3);
    expect(h.sent).toHaveLength(0);
  });
});
