/**
 * What a hostile or buggy hub sent in the black-box flood of issue [harden], one case per
 * defect class, against the real router, contract and ledger: each reply is the one
 * CONTRACT.md promises, small, schema-valid, and nothing runs that should not.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { Ajv } from 'ajv';
import { replySchema } from '../../device/contract/schemas.js';
import { LIMITS } from '../../device/limits.js';
import { cmd, routerHarness, type Action, type RouterHarness } from './helpers/router.js';

const replyValid = new Ajv({ strict: false }).compile(replySchema);
const bytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));

describe('CommandRouter against a hostile hub', () => {
  let h: RouterHarness;
  const settle = (): Promise<void> => h.router.idle();

  beforeEach(async () => {
    h = await routerHarness();
  });

  describe('MQTT 5 response topics are checked before anything is published to them', () => {
    it.each([
      ['a wildcard', 'x/+/y', /wildcard/],
      ['a multi-level wildcard', 'hub/#', /wildcard/],
      ['an empty level', 'hub//replies', /empty level/],
      ['a trailing slash', 'hub/replies/', /empty level/],
      ['a broker topic', '$SYS/x', /start with \$/],
      ["the box's own command topic", 'ep/v1/dev/cam-thanh/cmd/leave', /must be outside ep\/v1\//],
      ["another box's command topic", 'ep/v1/dev/other-box/cmd/reboot', /must be outside ep\/v1\//],
      ["the group's meeting topic", 'ep/v1/grp/camlo/meeting', /must be outside ep\/v1\//],
      ["the box's own reply topic (a second reply there)", 'ep/v1/dev/cam-thanh/reply', /must be outside ep\/v1\//],
      ["another box's reply subtopic (forging its replies)", 'ep/v1/dev/other-box/reply/x', /must be outside ep\/v1\//],
      ['a topic over the size limit', `hub/${'r'.repeat(LIMITS.responseTopicBytes)}`, /over the 256-byte limit/],
    ])('%s: refused (bad_request) on the reply topic alone, not run', async (_what, topic, problem) => {
      await h.router.handle(cmd('identify', { id: 'rt-1' }, { responseTopic: topic }));
      await settle();
      expect(h.runs).toEqual([]);
      expect(h.sent).toHaveLength(1);
      expect(h.sent[0]!.to).toEqual({});
      expect(h.sent[0]!.reply).toMatchObject({ id: 'rt-1', ok: false, error: { code: 'bad_request' } });
      expect(h.sent[0]!.reply.error!.message).toMatch(problem);
    });

    it('oversized correlation data is refused the same way', async () => {
      await h.router.handle(cmd('leave', { id: 'cd-1' }, { responseTopic: 'hub/r', correlationData: Buffer.alloc(LIMITS.correlationDataBytes + 1) }));
      await settle();
      expect(h.sent.map((s) => [s.to, s.reply.error?.code])).toEqual([[{}, 'bad_request']]);
    });

    it.each(['hub/replies/7', 'ep/v1/dev/cam-thanh/reply/req-7'])('a good response topic (%s) still gets the reply, with its correlation data', async (topic) => {
      await h.router.handle(cmd('leave', { id: 'rt-ok' }, { responseTopic: topic, correlationData: Buffer.from('k') }));
      await settle();
      expect(h.sent[0]!.to).toEqual({ responseTopic: topic, correlationData: Buffer.from('k') });
    });
  });

  describe('every time the contract accepts parses to a number', () => {
    it.each([
      ['expiresAt', 'reboot', { id: 't-1', expiresAt: '2016-12-31T23:59:60Z', args: { when: 'now' } }],
      ['ts', 'leave', { id: 't-2', ts: '2016-12-31T23:59:60Z' }],
      ['args.endsAt', 'join', { id: 't-3', args: { meetingId: 'm', send: { url: 'srt://h:1' }, receive: { url: 'srt://h:2' }, endsAt: '2016-12-31T23:59:60Z' } }],
    ])('a leap second in %s is bad_request, and the command does not run', async (field, command, body) => {
      await h.router.handle(cmd(command, body));
      await settle();
      expect(h.runs).toEqual([]);
      expect(h.sent[0]!.reply).toMatchObject({ ok: false, error: { code: 'bad_request' } });
      expect(h.sent[0]!.reply.error!.message).toContain(`${field}: must be an RFC 3339 date-time this box can read`);
    });
  });

  it('a command on the empty name (…/cmd/) gets its unknown_command reply', async () => {
    await h.router.handle(cmd('', { id: 'e-1' }));
    await settle();
    expect(h.sent.map((s) => s.reply)).toEqual([{ id: 'e-1', deviceId: 'cam-thanh', command: '', ok: false, error: { code: 'unknown_command', message: 'unknown command ""' } }]);
  });

  describe('the id of a refused command is recovered whenever it can be read', () => {
    const emoji64 = '🙂'.repeat(64);
    it.each([
      ['over 64 KiB, id first', Buffer.from(JSON.stringify({ id: 'big-1', args: { pad: 'x'.repeat(70_000) } })), 'big-1'],
      ['over 64 KiB, id last', Buffer.from(`{"args":{"pad":"${'x'.repeat(70_000)}","n":[1,{"id":"inner"}]},"id":"big-2"}`), 'big-2'],
      ['cut short after the id', Buffer.from('{"id":"cut-1","args":{"seconds":'), 'cut-1'],
      ['64 emoji (64 code points, 128 UTF-16 units)', Buffer.from(JSON.stringify({ id: emoji64, args: { seconds: 'x' } })), emoji64],
      ['an escaped key', Buffer.from('{"\\u0069d":"esc-1","args":{"seconds":"x"}'), 'esc-1'],
    ])('%s', async (_what, payload, id) => {
      await h.router.handle(cmd('identify', payload));
      await settle();
      expect(h.sent.map((s) => [s.reply.id, s.reply.error?.code])).toEqual([[id, 'bad_request']]);
      expect(replyValid(h.sent[0]!.reply)).toBe(true);
    });

    it('65 emoji are no id: answered with id ""', async () => {
      await h.router.handle(cmd('leave', { id: '🙂'.repeat(65) }));
      await settle();
      expect(h.sent.map((s) => s.reply.id)).toEqual(['']);
    });
  });

  describe('an id is answered once: every later arrival gets the first reply, unchanged', () => {
    it('the same id with another command gets the first reply (labelled with the first command), and runs nothing', async () => {
      await h.router.handle(cmd('leave', { id: 'same' }));
      await settle();
      await h.router.handle(cmd('reboot', { id: 'same', args: { when: 'now' } }));
      await settle();
      expect(h.runs.map((r) => r.command)).toEqual(['leave']);
      expect(h.sent[1]!.reply).toEqual(h.sent[0]!.reply);
      expect(h.sent[1]!.reply.command).toBe('leave');
    });

    it('bad → good → bad under one id: three identical replies, nothing run, across a restart too', async () => {
      await h.router.handle(cmd('identify', { id: 'bgb', args: { seconds: 'x' } }));
      await h.router.handle(cmd('identify', { id: 'bgb', args: { seconds: 5 } }));
      await h.router.handle(cmd('dance', { id: 'bgb' }));
      await settle();
      await h.restart();
      await h.router.handle(cmd('identify', { id: 'bgb', args: { seconds: 5 } }));
      await settle();
      expect(h.runs).toEqual([]);
      expect(h.sent).toHaveLength(4);
      for (const s of h.sent) expect(s.reply).toEqual(h.sent[0]!.reply);
      expect(h.sent[0]!.reply.error?.code).toBe('bad_request');
    });
  });

  describe('amplification: every reply is capped', () => {
    it('a join with ~7,800 unknown keys: a short reply listing the first problems and how many more', async () => {
      const args: Record<string, unknown> = { meetingId: 'm', send: { url: 'srt://h:1' }, receive: { url: 'srt://h:2' } };
      for (let i = 0; i < 7800; i++) args[i.toString(36)] = 1;
      const payload = Buffer.from(JSON.stringify({ id: 'amp-1', args }));
      expect(payload.length).toBeLessThanOrEqual(LIMITS.payloadBytes);
      await h.router.handle(cmd('join', payload));
      await settle();
      const r = h.sent[0]!.reply;
      expect(r.error?.code).toBe('bad_request');
      expect(r.error!.message).toMatch(/… and 7780 more problems$/);
      expect(bytes(r)).toBeLessThan(8 * 1024);
    });

    it('a 60 KiB unknown field name is cut in the problem line', async () => {
      await h.router.handle(cmd('leave', { id: 'amp-2', args: { ['k'.repeat(60_000)]: 1 } }));
      await settle();
      expect(bytes(h.sent[0]!.reply)).toBeLessThan(1024);
    });

    it('an unknown command with a 10,000-character name: a schema-valid reply with the name cut to 64', async () => {
      const name = 'x'.repeat(10_000);
      await h.router.handle(cmd(name, { id: 'amp-3' }));
      await settle();
      const r = h.sent[0]!.reply;
      expect(r.command).toHaveLength(64);
      expect(replyValid(r)).toBe(true);
      expect(bytes(r)).toBeLessThan(1024);
    });
  });

  it('a reply over the size limit: `logs` keeps its newest lines that fit and says so', async () => {
    const lines = Array.from({ length: 2000 }, (_, i) => `{"n":${i},"msg":"${'m'.repeat(200)}"}`);
    h = await routerHarness(async () => ({ lines, count: lines.length }));
    await h.router.handle(cmd('logs', { id: 'big-logs', args: { lines: 2000 } }));
    await settle();
    const r = h.sent[0]!.reply;
    expect(bytes(r)).toBeLessThanOrEqual(LIMITS.replyBytes);
    const result = r.result as { lines: string[]; count: number; truncated: { omittedLines: number } };
    expect(result.lines.at(-1)).toBe(lines.at(-1));
    expect(result.count + result.truncated.omittedLines).toBe(2000);
    expect(result.lines).toEqual(lines.slice(2000 - result.count));
  });

  it(`past ${LIMITS.runningCommands} running commands, the next is answered busy and not run`, async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const action: Action = async () => (await gate, { done: true });
    h = await routerHarness(action);
    for (let i = 0; i <= LIMITS.runningCommands; i++) await h.router.handle(cmd('leave', { id: `run-${i}` }));
    // The busy reply is sent once its ledger line is on disk (an fdatasync): wait for it, not for a fixed time.
    await vi.waitFor(() => expect(h.sent).toHaveLength(1), { timeout: 10_000, interval: 5 });
    expect(h.runs).toHaveLength(LIMITS.runningCommands);
    expect(h.sent.map((s) => [s.reply.id, s.reply.error?.code])).toEqual([[`run-${LIMITS.runningCommands}`, 'busy']]);
    release();
    await settle();
    expect(h.sent).toHaveLength(LIMITS.runningCommands + 1);
  });

  it(`keeps at most ${LIMITS.unsentReplies} replies while offline (the newest)`, async () => {
    h.offline = true;
    const n = LIMITS.unsentReplies + 50;
    for (let i = 0; i < n; i++) await h.router.handle(cmd('x-unknown', { id: `off-${i}` }));
    await settle();
    h.offline = false;
    await h.router.flush();
    expect(h.sent.map((s) => s.reply.id)).toEqual(Array.from({ length: LIMITS.unsentReplies }, (_, i) => `off-${i + 50}`));
  });
});
