/**
 * Issue 13 (8): every value that reaches a launch string is quoted or refused at the edge.
 * Random strings for each outside field (stream ids, SRT hosts, titles, device names) go
 * through planSession()/planStandby(); each launch string is parsed by the real GStreamer
 * parser (gst_parse_launch through the binding, in a child process: parse-readback.mjs)
 * and every property read back must equal its input — or the planner refused the input,
 * naming its path (the spec's fields: kind `spec`, a bad_request; the probe's: `box`).
 * Titles are display text: NUL dropped, lone surrogates replaced (launch.ts displayText).
 *
 * Seeded: the seed is printed; `FUZZ_SEED=<n>` repeats a run, `FUZZ_CASES=<n>` runs more. The first cases are fixed
 * (the stream id ending in a backslash, `NULL`, values starting with a quote).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isPlanError } from '../../gst-pipelines/plan/errors.js';
import { ELEMENT_NAMES as N } from '../../gst-pipelines/plan/names.js';
import { planSession } from '../../gst-pipelines/plan/session.js';
import { overlayText, planStandby, standbyTitle } from '../../gst-pipelines/plan/standby.js';
import type { Capabilities, MediaJoinSpec, MediaSettings } from '../../gst-pipelines/types.js';
import { capabilities } from './helpers/media.js';
import { fuzzInputs, mulberry32, type FuzzInput } from './helpers/fuzz-strings.js';

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
/** Random cases per run (each one session and one standby plan): ~2 s here; `FUZZ_CASES=<n>` for a deeper run. */
const CASES = Number(process.env.FUZZ_CASES ?? 60);
const STREAM_ID_MAX_BYTES = 512;
const CAMERA_UNAVAILABLE = ' — camera unavailable';

interface Job {
  launch: string;
  reads: Array<[string, string]>;
}
type ReadBack = { values: unknown[] } | { error: string };

function parseAll(jobs: Job[]): Promise<ReadBack[]> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [fileURLToPath(new URL('./helpers/parse-readback.mjs', import.meta.url))], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    c.once('error', reject);
    c.once('exit', (code, signal) => {
      if (code !== 0) reject(new Error(`parse-readback exited ${code ?? signal}: ${err}`));
      else resolve(JSON.parse(out) as ReadBack[]);
    });
    c.stdin.end(JSON.stringify(jobs));
  });
}

/** What the launch string can carry at all (the oracle, independent of launch.ts). */
const carriable = (s: string): boolean => !s.includes('\u0000') && Buffer.from(s, 'utf8').toString('utf8') === s;
/** Display text as it must reach the screen: NUL dropped, lone surrogates U+FFFD (Node's own UTF-8 encoder). */
const shown = (s: string): string => Buffer.from(s.replaceAll('\u0000', ''), 'utf8').toString('utf8');
const plainHost = (h: string): boolean => /^[A-Za-z0-9.-]{1,253}$/.test(h);

/**
 * The input's expected outcome: the paths that must or may refuse it (with whose fault),
 * and the properties to read back when it is planned.
 */
interface Expect {
  refuse: Map<string, { kind: 'spec' | 'box'; must: boolean }>;
  reads: Array<[string, string]>;
  check: Array<(v: unknown) => string | null>;
}

const equals =
  (want: string | null): ((v: unknown) => string | null) =>
  (v) => ((v ?? null) === want ? null : `read back ${JSON.stringify(v)}, want ${JSON.stringify(want)}`);

function expectStreamId(e: Expect, id: string, path: string, element: string): void {
  if (!carriable(id) || Buffer.byteLength(id, 'utf8') > STREAM_ID_MAX_BYTES) e.refuse.set(path, { kind: 'spec', must: true });
  e.reads.push([element, 'streamid']);
  e.check.push(equals(id === '' ? null : id));
}

function expectUrl(e: Expect, url: string, path: string, element: string): void {
  let u: URL | null = null;
  try {
    u = new URL(url);
  } catch {
    e.refuse.set(path, { kind: 'spec', must: true });
    return;
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  // A plain DNS name with a port is never refused; anything else may be (and then by path).
  if (!(plainHost(host) && u.port !== '')) e.refuse.set(path, { kind: 'spec', must: false });
  e.reads.push([element, 'uri']);
  e.check.push((v) => {
    const got = typeof v === 'string' ? new URL(v) : null;
    return got && got.hostname === u.hostname && got.port === u.port ? null : `uri read back ${JSON.stringify(v)}, want host ${u.hostname} port ${u.port}`;
  });
}

function expectDevice(e: Expect, device: string, path: string, element: string, property: string): void {
  if (!carriable(device)) e.refuse.set(path, { kind: 'box', must: true });
  e.reads.push([element, property]);
  e.check.push(equals(device));
}

interface Case {
  what: string;
  input: FuzzInput;
  plan: () => string;
  expect: Expect;
}

function sessionCase(i: number, x: FuzzInput, real: Capabilities): Case {
  const withCamera = i % 2 === 0;
  const caps: Capabilities = {
    ...real,
    elements: { ...real.elements, v4l2src: true, alsasrc: true, alsasink: true, textoverlay: true, libcamerasrc: false, kmssink: false, glimagesink: false, autovideosink: false },
    cameras: withCamera ? [{ kind: 'v4l2', device: x.device, name: 'fuzz', formats: ['YUYV'] }] : [],
    displays: [],
    audio: { capture: [{ card: 1, device: 0, name: 'fuzz', alsa: x.mic }], playback: [{ card: 0, device: 0, name: 'fuzz', alsa: x.speaker }] },
    headless: true,
  };
  const spec: MediaJoinSpec = {
    meetingId: x.meetingId,
    ...(x.title !== undefined ? { title: x.title } : {}),
    send: { url: x.sendUrl, streamId: x.sendStreamId, video: { width: 320, height: 180, fps: 15, bitrateKbps: 300 } },
    receive: { url: x.receiveUrl, streamId: x.receiveStreamId },
  };
  const settings: MediaSettings = { source: 'auto', volume: 1, micMuted: false, aec: false, statsPeriodS: 1 };
  const e: Expect = { refuse: new Map(), reads: [], check: [] };
  expectUrl(e, x.sendUrl, 'send.url', N.srtSink);
  expectUrl(e, x.receiveUrl, 'receive.url', N.srtSrc);
  expectStreamId(e, x.sendStreamId, 'send.streamId', N.srtSink);
  expectStreamId(e, x.receiveStreamId, 'receive.streamId', N.srtSrc);
  if (withCamera) expectDevice(e, x.device, 'capabilities.cameras.device', N.camera, 'device');
  else {
    e.reads.push([N.title, 'text']);
    e.check.push(equals(`${shown(x.title ?? x.meetingId)}${CAMERA_UNAVAILABLE}`));
  }
  expectDevice(e, x.mic, 'capabilities.audio.capture.alsa', N.mic, 'device');
  expectDevice(e, x.speaker, 'capabilities.audio.playback.alsa', N.speaker, 'device');
  return { what: `session #${i}${withCamera ? '' : ' (no camera: title card)'}`, input: x, plan: () => planSession(spec, caps, settings).pipeline, expect: e };
}

function standbyCase(i: number, x: FuzzInput, real: Capabilities): Case {
  const caps: Capabilities = { ...real, elements: { ...real.elements, textoverlay: true, kmssink: false, glimagesink: false, autovideosink: false }, displays: [], headless: true };
  const settings: MediaSettings = { source: 'auto', volume: 1, micMuted: false, aec: false, statsPeriodS: 1, standbyTitle: x.standbyTitle };
  // The standby screen's name: cleaned and wrapped (standbyTitle), then Pango markup for textoverlay (overlayText).
  const e: Expect = { refuse: new Map(), reads: [[N.title, 'text']], check: [equals(overlayText(standbyTitle(x.standbyTitle)))] };
  return { what: `standby #${i}`, input: x, plan: () => planStandby(caps, settings).pipeline, expect: e };
}

describe('plan fuzz: outside strings through the planner and the real GStreamer parser', () => {
  // The title stays the same from run to run; the seed is printed and in every failure message.
  it('reads every value back exactly, or refuses it with its path', async () => {
    console.log(`plan-fuzz: seed ${SEED} (FUZZ_SEED=${SEED} repeats this run)`);
    const real = await capabilities();
    const inputs = fuzzInputs(mulberry32(SEED), CASES);
    const cases = inputs.flatMap((x, i) => [sessionCase(i, x, real), standbyCase(i, x, real)]);
    const failures: string[] = [];
    const fail = (c: Case, msg: string): void => {
      failures.push(`${c.what}: ${msg}\n  input ${JSON.stringify(c.input)}`);
    };
    const planned: Array<{ c: Case; launch: string }> = [];
    let refused = 0;
    for (const c of cases) {
      try {
        const launch = c.plan();
        const must = [...c.expect.refuse].filter(([, v]) => v.must).map(([p]) => p);
        if (must.length > 0) fail(c, `planned, but must refuse ${must.join(' or ')}`);
        else planned.push({ c, launch });
      } catch (err) {
        refused++;
        if (!isPlanError(err)) fail(c, `threw ${String(err)}`);
        else if (c.expect.refuse.get(err.path)?.kind !== err.kind) fail(c, `refused (${err.kind}) ${err.message}; expected one of ${JSON.stringify([...c.expect.refuse])}`);
      }
    }
    const results = await parseAll(planned.map(({ c, launch }) => ({ launch, reads: c.expect.reads })));
    results.forEach((r, k) => {
      const { c, launch } = planned[k]!;
      if ('error' in r) return fail(c, `the parser refused the launch string: ${r.error}\n  launch ${JSON.stringify(launch.slice(0, 2000))}`);
      c.expect.check.forEach((check, j) => {
        const why = check(r.values[j]);
        if (why) fail(c, `${c.expect.reads[j]!.join('.')}: ${why}`);
      });
    });
    console.log(`plan-fuzz: ${cases.length} plans, ${refused} refused at the edge, ${planned.length} parsed by GStreamer`);
    expect(failures.slice(0, 10), `seed ${SEED} (FUZZ_SEED=${SEED} repeats); ${failures.length} failures`).toEqual([]);
    // The fuzz must exercise both outcomes, or it proves nothing.
    expect(refused).toBeGreaterThan(0);
    expect(planned.length).toBeGreaterThan(cases.length / 2);
  });
});
