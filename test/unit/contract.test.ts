import { describe, expect, it } from 'vitest';
import { createContract, isDecodeError } from '../../device/contract/validate.js';
import { COMMAND_NAMES, healthSchema, stateSchema } from '../../device/contract/schemas.js';
import { parseIncoming, topics } from '../../device/contract/topics.js';
import { toReplyError, BusyError } from '../../device/errors.js';
import { renderSchemas } from '../../device/cli/schemas.js';

const c = createContract();

const validArgs: Record<string, unknown> = {
  join: { meetingId: 'camlo-2019-01-28', send: { url: 'srt://hub.example:8890', streamId: 'publish:camlo/cam-thanh' }, receive: { url: 'srt://hub.example:8890' }, srt: { latencyMs: 200, passphrase: 'a-long-passphrase', pbkeylen: 16 } },
  leave: {},
  ota: { manifestUrl: 'https://hub.example/ota/m.json', when: 'idle' },
  reboot: { when: 'now' },
  selftest: {},
  identify: { seconds: 30 },
  config: { volume: 0.5, logLevel: 'debug' },
  logs: { lines: 100 },
};

const problemsOf = (f: () => unknown): string[] => {
  try {
    f();
  } catch (e) {
    if (isDecodeError(e)) return e.problems;
    throw e;
  }
  throw new Error('expected a DecodeError');
};

describe('command decoding (CONTRACT.md envelope + per-command args)', () => {
  it.each(COMMAND_NAMES)('accepts a valid %s', (name) => {
    const d = c.decodeCommand(name, JSON.stringify({ id: `c-${name}`, ts: '2019-01-28T07:59:58Z', expiresAt: '2019-01-28T08:05:00Z', args: validArgs[name] }));
    expect(d.id).toBe(`c-${name}`);
    expect(d.args).toEqual(validArgs[name]);
  });

  it('treats missing args as {} for commands that take none', () => {
    expect(c.decodeCommand('leave', '{"id":"x1"}').args).toEqual({});
  });

  it('rejects not-JSON, wrong shape, unknown fields and oversize payloads with paths', () => {
    expect(problemsOf(() => c.decodeCommand('leave', 'not json'))[0]).toMatch(/^payload: not JSON/);
    expect(problemsOf(() => c.decodeCommand('leave', '[1,2]'))).toEqual(['(root): must be a JSON object']);
    expect(problemsOf(() => c.decodeCommand('leave', '{"args":{}}'))).toEqual(['id: is required']);
    expect(problemsOf(() => c.decodeCommand('leave', '{"id":"x","colour":"red"}'))).toEqual(['colour: unknown field']);
    expect(problemsOf(() => c.decodeCommand('identify', '{"id":"x","args":{"seconds":0}}'))).toEqual(['args.seconds: must be >= 1']);
    const big = JSON.stringify({ id: 'x', args: {}, pad: 'x'.repeat(70_000) });
    expect(problemsOf(() => c.decodeCommand('leave', big))[0]).toMatch(/over the 65536-byte limit/);
  });

  it('names every problem of a bad join spec, the srt:// one as CONTRACT.md words it', () => {
    const p = problemsOf(() =>
      c.decodeCommand('join', JSON.stringify({ id: 'j1', args: { meetingId: 'm', send: { url: 'rtmp://x', video: { fps: 500 } }, receive: {}, srt: { pbkeylen: 12 }, extra: 1 } })),
    );
    expect(p).toEqual(
      expect.arrayContaining([
        'args.send.url: must be an srt:// URL',
        'args.send.video.fps: must be <= 60',
        'args.receive.url: is required',
        'args.srt.pbkeylen: must be one of 16, 24, 32',
        'args.extra: unknown field',
      ]),
    );
  });

  it('keeps the id of a bad command so its reply can carry it', () => {
    try {
      c.decodeCommand('identify', '{"id":"keep-me","args":{"seconds":"x"}}');
    } catch (e) {
      expect(isDecodeError(e) && e.id).toBe('keep-me');
    }
  });

  it('maps errors to reply codes in one place', () => {
    try {
      c.decodeCommand('leave', '{}');
    } catch (e) {
      expect(toReplyError(e).code).toBe('bad_request');
    }
    expect(toReplyError(new BusyError('in a meeting', 60))).toEqual({ code: 'busy', message: 'in a meeting', retryAfterS: 60 });
    expect(toReplyError(new Error('boom'))).toEqual({ code: 'failed', message: 'boom' });
  });
});

describe('topics', () => {
  it('classifies device, group and meeting topics', () => {
    expect(parseIncoming('ep/v1/dev/cam-thanh/cmd/join', 'cam-thanh', 'camlo')).toEqual({ kind: 'command', scope: 'device', command: 'join', known: true });
    expect(parseIncoming('ep/v1/grp/camlo/cmd/dance', 'cam-thanh', 'camlo')).toEqual({ kind: 'command', scope: 'group', command: 'dance', known: false });
    expect(parseIncoming('ep/v1/grp/camlo/meeting', 'cam-thanh', 'camlo')).toEqual({ kind: 'meeting' });
    expect(parseIncoming('ep/v1/dev/other/cmd/join', 'cam-thanh', 'camlo')).toEqual({ kind: 'other' });
    expect(topics.subscriptions('a-b', 'g-1')).toEqual(['ep/v1/dev/a-b/cmd/+', 'ep/v1/grp/g-1/cmd/+', 'ep/v1/grp/g-1/meeting']);
    expect(topics.optionalSubscriptions('g-1')).toEqual(['ep/v1/grp/g-1/next']);
    expect(parseIncoming('ep/v1/grp/g-1/next', 'a-b', 'g-1')).toEqual({ kind: 'next' });
  });
});

describe('published schemas', () => {
  it('are generated from the same objects the agent validates with, and docs/schemas is up to date', async () => {
    const files = renderSchemas();
    expect(Object.keys(files)).toEqual(expect.arrayContaining(['command-envelope.schema.json', 'command-args-join.schema.json', 'health.schema.json', 'state.schema.json', 'agent-config.schema.json']));
    const { readFile } = await import('node:fs/promises');
    for (const [name, text] of Object.entries(files)) expect(await readFile(new URL(`../../docs/schemas/${name}`, import.meta.url), 'utf8'), name).toBe(text);
  });

  it('health and state examples shaped like CONTRACT.md validate', () => {
    const health = {
      ts: '2026-11-22T00:00:00Z', uptimeS: 0, cpu: { loadPct: 0, tempC: 0 }, power: { underVoltage: false, underVoltageSinceBoot: false, throttled: false },
      mem: { usedPct: 0 }, disk: { usedPct: 0 }, clockSynced: true, net: { iface: 'eth0', ip: '10.0.0.2', rxKbps: 0, txKbps: 0 },
      devices: { camera: true, display: true, mic: true, speaker: true },
      media: { send: { fps: 0, kbps: 0, rttMs: 0, lossPct: 0, retransPct: 0 }, receive: { fps: 0, kbps: 0, lossPct: 0 } },
    };
    expect(c.check(c.compile(healthSchema), health)).toEqual(health);
    const state = { state: 'in_meeting', meeting: { id: 'm', since: '2026-11-22T00:00:00Z' }, media: { send: 'ok', receive: 'ok' }, ota: null, faults: ['no_camera'], version: '1.0.0', ts: '2026-11-22T00:00:00Z' };
    expect(c.check(c.compile(stateSchema), state)).toEqual(state);
    expect(problemsOf(() => c.check(c.compile(stateSchema), { ...state, state: 'dancing' }))).toEqual([expect.stringMatching(/^state: must be one of/)]);
  });
});
