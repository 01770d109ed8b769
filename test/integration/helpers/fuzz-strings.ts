/**
 * Seeded random strings for plan-fuzz.test.ts: the characters gst-launch syntax gives a
 * meaning to (quotes, backslashes, `!`, `=`, spaces, commas…), control characters,
 * Unicode (Vietnamese, CJK, astral), whole values GStreamer reads specially (`NULL`,
 * `"…"`), very long values, and now and then what no launch string can carry (NUL, a
 * lone surrogate).
 */

export type Rng = () => number;

/** mulberry32: a small, fast 32-bit PRNG; the same seed gives the same run. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (r: Rng, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)]!;

const SYNTAX = ['\\', '"', "'", '!', '=', ' ', ',', '.', ':', ';', '#', '{', '}', '(', ')', '@', '%', '/', '\n', '\t', '\r', '  ', '\\"', '"\\', '\\\\', '$', '`', '&', '?', '[', ']', '<', '>', '|', '^', '~', '*', ' ! ', '=" '];
const UNICODE = ['é', 'ã', 'Cẩm', 'Thanh', 'ư', 'đ', '漢字', '🎥', '😀', '\u00a0', '\u200b', '\u202e', '\ufeff', '\u2028', '\u0301', 'ﬁ'];
/** Whole values the parser or the value deserialiser treat specially. */
const WHOLE = ['', 'NULL', 'null', '"', '""', '"x"', '\\', '"\\"', 'a\\', '\\\\', ' ', '!', '=', 'a b', '"NULL"', '\\"', '"a', 'a"', '\\"\\', '"\\\\"', 'x" ! fakesink name=injected y="', "'", "''", '\\0', '\\101', '"\\101"'];
const UNCARRIABLE = ['\u0000', '\ud800', '\udfff', 'a\u0000b', '\ud83d'];

function randomChar(r: Rng): string {
  const k = r();
  if (k < 0.4) return String.fromCharCode(0x20 + int(r, 0x5f)); // printable ASCII
  if (k < 0.65) return pick(r, SYNTAX);
  if (k < 0.8) return pick(r, UNICODE);
  if (k < 0.88) return String.fromCharCode(pick(r, [1 + int(r, 0x1f), 0x7f])); // control characters
  if (k < 0.96) {
    const c = 0xa0 + int(r, 0xd800 - 0xa0); // BMP below the surrogates
    return String.fromCharCode(c);
  }
  return String.fromCodePoint(0x10000 + int(r, 0x10000)); // astral (a surrogate pair)
}

/** A random string: mostly short, sometimes very long, often ending in a backslash or starting with a quote. */
export function randomString(r: Rng, opts: { long?: number; uncarriable?: number } = {}): string {
  if (r() < 0.15) return pick(r, WHOLE);
  const len = r() < (opts.long ?? 0.05) ? 400 + int(r, 2000) : int(r, 40);
  let s = '';
  while (s.length < len) s += randomChar(r);
  if (r() < 0.15) s += pick(r, ['\\', '\\\\', '"', '\\"']);
  if (r() < 0.1) s = `"${s}`;
  if (r() < (opts.uncarriable ?? 0.03)) {
    const at = int(r, s.length + 1);
    s = s.slice(0, at) + pick(r, UNCARRIABLE) + s.slice(at);
  }
  return s;
}

function randomUrl(r: Rng): string {
  const port = 1 + int(r, 65535);
  const k = r();
  if (k < 0.8) {
    const label = (): string => Array.from({ length: 1 + int(r, 10) }, () => pick(r, [...'abcdefghijklmnopqrstuvwxyz0123456789-'])).join('');
    return `srt://${Array.from({ length: 1 + int(r, 3) }, label).join('.')}:${port}`;
  }
  if (k < 0.88) return pick(r, [`srt://127.0.0.1:${port}`, `srt://[::1]:${port}`, `srt://[2001:db8::7]:${port}`, `srt://10.0.0.${int(r, 256)}:${port}?latency=20`]);
  if (k < 0.96) return `srt://${randomString(r, { uncarriable: 0 })}:${port}`;
  return `srt://${randomString(r, { uncarriable: 0 })}`;
}

export interface FuzzInput {
  meetingId: string;
  title?: string;
  sendUrl: string;
  receiveUrl: string;
  sendStreamId: string;
  receiveStreamId: string;
  /** The probe's camera device and ALSA devices. */
  device: string;
  mic: string;
  speaker: string;
  /** The config's name (settings.standbyTitle). */
  standbyTitle: string;
}

const BASE: FuzzInput = {
  meetingId: 'camlo-2019-01-28',
  sendUrl: 'srt://hub.example:8890',
  receiveUrl: 'srt://hub.example:8890',
  sendStreamId: 'publish:camlo/cam-thanh',
  receiveStreamId: 'read:camlo/program',
  device: '/dev/video0',
  mic: 'plughw:1,0',
  speaker: 'plughw:0,0',
  standbyTitle: 'Xã Cẩm Thanh',
};

/** Fixed first: issue 13's stream id ending in a backslash, and each special form in each field. */
const FIXED: FuzzInput[] = [
  { ...BASE, sendStreamId: 'publish:camlo/cam-thanh\\' },
  { ...BASE, sendStreamId: 'NULL', receiveStreamId: '"quoted"', device: 'a\\', mic: '"', speaker: 'NULL', title: 'x\\', standbyTitle: 'Xã "Cẩm" \\' },
  { ...BASE, sendStreamId: '\\', receiveStreamId: '"\\"', device: '\\"', mic: 'NULL', speaker: '"x"', title: '"', standbyTitle: '\\' },
  { ...BASE, sendStreamId: 'a" streamid="b', receiveStreamId: 'x\\" ! fakesink', title: 'NULL', standbyTitle: '"a\\"' },
];

/** `n` random inputs after the fixed ones. */
export function fuzzInputs(r: Rng, n: number): FuzzInput[] {
  const out = [...FIXED];
  for (let i = 0; i < n; i++) {
    const id = (): string => (r() < 0.05 ? randomString(r, { long: 1 }) : randomString(r));
    out.push({
      meetingId: randomString(r) || 'm',
      ...(r() < 0.7 ? { title: randomString(r) } : {}),
      sendUrl: randomUrl(r),
      receiveUrl: randomUrl(r),
      sendStreamId: id(),
      receiveStreamId: id(),
      device: randomString(r),
      mic: randomString(r),
      speaker: randomString(r),
      standbyTitle: randomString(r, { long: 0.1 }),
    });
  }
  return out;
}
