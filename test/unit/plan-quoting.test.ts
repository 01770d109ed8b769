/**
 * The quoting rule of launch.ts `q()` in the forms it writes (test/integration/plan-fuzz
 * checks them with GStreamer's own parser), what the planner refuses at the edge, and
 * how a PlanError becomes a reply: the spec's fault is bad_request, the box's failed.
 */
import { describe, expect, it } from 'vitest';
import { toReplyError } from '../../device/errors.js';
import { isPlanError, type PlanError } from '../../gst-pipelines/plan/errors.js';
import { displayText, parseSrtUrl, q, uncarriable } from '../../gst-pipelines/plan/launch.js';
import { planSession } from '../../gst-pipelines/plan/session.js';
import type { Capabilities, MediaJoinSpec, MediaSettings } from '../../gst-pipelines/types.js';

const ELEMENTS = ['srtsink', 'srtsrc', 'mpegtsmux', 'tsdemux', 'h264parse', 'opusenc', 'opusdec', 'x264enc', 'avdec_h264', 'textoverlay'];
const caps = (over: Record<string, boolean> = {}): Capabilities => ({
  board: { model: null, kind: 'x86', arch: 'x64' },
  gstreamerVersion: '1.22.0',
  elements: { ...Object.fromEntries(ELEMENTS.map((e) => [e, true])), ...over },
  cameras: [],
  displays: [],
  audio: { capture: [], playback: [] },
  headless: true,
});
const settings: MediaSettings = { source: 'test', volume: 1, micMuted: false, aec: false, statsPeriodS: 2 };
const spec = (send: Partial<MediaJoinSpec['send']> = {}, receive: Partial<MediaJoinSpec['receive']> = {}): MediaJoinSpec => ({
  meetingId: 'm',
  send: { url: 'srt://hub.example:8890', streamId: 'publish:g/box', ...send },
  receive: { url: 'srt://hub.example:8890', streamId: 'read:g/program', ...receive },
});

function planError(f: () => unknown): PlanError {
  try {
    f();
  } catch (e) {
    if (isPlanError(e)) return e;
    throw e;
  }
  throw new Error('expected a PlanError');
}

describe('q(): a launch-string value GStreamer reads back exactly', () => {
  it('writes an ordinary value as it is, quoted, with `\\` and `"` escaped for gst_parse_unescape', () => {
    expect(q('publish:camlo/cam-thanh')).toBe('"publish:camlo/cam-thanh"');
    expect(q('Xã Cẩm Thanh\nWaiting')).toBe('"Xã Cẩm Thanh\nWaiting"');
    expect(q('a"b')).toBe('"a\\"b"');
    expect(q('a\\b')).toBe('"a\\\\b"');
    expect(q('')).toBe('""');
  });

  it('wraps what the lexer or the string deserialiser would misread: a trailing backslash, NULL, a leading quote', () => {
    // The stream id: `"…\\\\"` would let the lexer run on through the closing quote.
    expect(q('publish:a\\')).toBe('"\\"publish:a\\\\\\\\\\""');
    expect(q('NULL')).toBe('"\\"NULL\\""');
    expect(q('"x"')).toBe('"\\"\\\\\\"x\\\\\\"\\""');
    // Outside GST_ASCII_IS_STRING, a byte is escaped for gst_string_unwrap: octal below 0x20 and from 0x7f.
    expect(q('"é\n')).toBe('"\\"\\\\\\"\\\\303\\\\251\\\\012\\""');
  });

  it('refuses what no launch string can carry (NUL, a lone surrogate) as the box\'s fault, naming the path', () => {
    expect(uncarriable('ok 漢字 🎥')).toBeNull();
    expect(uncarriable('a\u0000b')).toBe('contains a NUL character');
    expect(uncarriable('a\ud800')).toBe('is not well-formed Unicode (a lone surrogate)');
    expect(uncarriable('\udc00a')).toBe('is not well-formed Unicode (a lone surrogate)');
    const e = planError(() => q('/dev/video\u0000', 'capabilities.cameras.device'));
    expect([e.kind, e.path, e.message]).toEqual(['box', 'capabilities.cameras.device', 'contains a NUL character (capabilities.cameras.device)']);
  });

  it('display text is never refused: NUL dropped, a lone surrogate replaced', () => {
    expect(displayText('Xã\u0000 Cẩm\ud800 🎥')).toBe('Xã Cẩm\ufffd 🎥');
  });
});

describe('the edge: what the planner refuses in a join spec (bad_request, with the path)', () => {
  it('stream ids no SRT connection can carry', () => {
    const nul = planError(() => planSession(spec({ streamId: 'publish:\u0000' }), caps(), settings));
    expect([nul.kind, nul.message]).toEqual(['spec', 'send.streamId: contains a NUL character']);
    const long = planError(() => planSession(spec({}, { streamId: 'ư'.repeat(257) }), caps(), settings));
    expect([long.kind, long.message]).toEqual(['spec', 'receive.streamId: is 514 bytes in UTF-8; SRT carries at most 512']);
    // The passphrase is set as a property, through the same C string: refused the same way, never quoted back.
    const pass = planError(() => planSession({ ...spec(), srt: { passphrase: 'correct\u0000horse' } }, caps(), settings));
    expect([pass.kind, pass.message]).toEqual(['spec', 'srt.passphrase: contains a NUL character']);
    // 512 bytes is fine, and so is a trailing backslash (quoted, not refused).
    expect(planSession(spec({ streamId: 'a'.repeat(512) }, { streamId: 'read:x\\' }), caps(), settings).pipeline).toContain('streamid="\\"read:x\\\\\\\\\\""');
  });

  it('SRT hosts that are neither a DNS name nor an IP address', () => {
    for (const url of ['srt://hub"x:1', 'srt://h%41:1', 'srt://hú:1', 'srt://a,b:1']) {
      const e = planError(() => planSession(spec({ url }), caps(), settings));
      expect([e.kind, e.message]).toEqual(['spec', 'send.url: srt:// URL host must be a DNS name or an IP address (letters, digits, ".", "-", "_"; IPv6 in brackets)']);
    }
    expect(parseSrtUrl('srt://hub_1.example-2:9000?x=1')).toEqual({ host: 'hub_1.example-2', port: 9000 });
    expect(parseSrtUrl('srt://[2001:db8::7]:9000')).toEqual({ host: '2001:db8::7', port: 9000 });
  });
});

describe('toReplyError: whose fault a PlanError is', () => {
  it('the spec\'s: bad_request with the args path; the box\'s: failed, saying why', () => {
    expect(toReplyError(planError(() => planSession(spec({ url: 'rtmp://x:1' }), caps(), settings)))).toEqual({ code: 'bad_request', message: 'args.send.url: must be an srt:// URL' });
    const noEncoder = planError(() => planSession(spec(), caps({ x264enc: false }), settings));
    expect(toReplyError(noEncoder)).toEqual({ code: 'failed', message: 'this box cannot run a session: no H.264 encoder in the GStreamer registry (capabilities.elements)' });
  });
});
