/**
 * The TV standby screen (issue 16), drawn by the real standby plan in a real media worker:
 * frames captured as PNG (the plan's snapshot branch), decoded to RGB by GStreamer itself
 * (pngdec in a child gst-launch-1.0), checked non-blank and compared band by band with the
 * committed reference renderings in test/fixtures/standby/ (the clock's corner masked: it
 * changes every minute). Then the texts change live (updateStandby: fault, the seeds' long
 * Vietnamese title as the next meeting, both badges) and a new frame must differ in those
 * bands only and match its own reference; identify's osd still shows and hides over it.
 *
 * The PNGs are kept under test/.scratch/standby/ (gitignored). To regenerate the references
 * after a deliberate change of the screen, look at the new PNGs first, then:
 *   npm run build && EP_UPDATE_REFERENCE=1 npx vitest run test/integration/standby-screen.test.ts
 * (writes test/fixtures/standby/{idle,update}.png and docs/img/standby.png).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FieldView } from '../../device/field/model.js';
import { standbyTexts } from '../../device/field/standby-texts.js';
import { STANDBY_CLOCK_REGION, STANDBY_LAYOUT, planStandby } from '../../gst-pipelines/plan/standby.js';
import type { MediaSupervisor } from '../../gst-pipelines/supervisor/supervisor.js';
import type { Capabilities, StandbyTexts } from '../../gst-pipelines/types.js';
import { Resources, capabilities, newBox, testSettings } from './helpers/media.js';
import { pollUntil } from './helpers/processes.js';
import { fieldView } from '../fakes/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = path.join(ROOT, 'test/fixtures/standby');
const SCRATCH = path.join(ROOT, 'test/.scratch/standby');
const UPDATE = process.env.EP_UPDATE_REFERENCE === '1';
const W = 1280;
const H = 720;
const BACKGROUND = [0x1a, 0x3c, 0x5a] as const;
const SEED_TITLE = 'Hội nghị giao ban trực tuyến đánh giá tình hình phát triển kinh tế – xã hội';
type Band = keyof typeof STANDBY_LAYOUT;
const BANDS = Object.keys(STANDBY_LAYOUT) as Band[];

const view = (over: Partial<FieldView> = {}): FieldView =>
  fieldView({ deviceId: 'box-1', groupId: 'grp', hub: { connected: true, url: null, downForMs: 0 }, now: 0, ...over });
const IDLE = standbyTexts(view());
const UPDATED = standbyTexts(
  view({ state: 'fault', network: false, handRaised: true, micMuted: true, nextMeeting: { title: SEED_TITLE, startsAt: '2026-12-08T01:30:00Z' } }),
  { timeZone: 'Asia/Ho_Chi_Minh' },
);

/** A PNG decoded to packed RGB by GStreamer (pngdec), the same library family that drew it. */
function decodePng(file: string): Promise<Buffer> {
  const args = ['-q', 'filesrc', `location=${file}`, '!', 'pngdec', '!', 'videoconvert', '!', 'video/x-raw,format=RGB', '!', 'fdsink', 'fd=1'];
  return new Promise((resolve, reject) =>
    execFile('gst-launch-1.0', args, { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024, timeout: 30_000 }, (err, out) => {
      if (err) return reject(err);
      if (out.length !== W * H * 3) return reject(new Error(`${file}: ${out.length} bytes of RGB, want ${W * H * 3}`));
      resolve(out);
    }),
  );
}

const inClock = (x: number, y: number): boolean => x >= STANDBY_CLOCK_REGION.x[0] * W && y >= STANDBY_CLOCK_REGION.y[0] * H;
const rowsOf = (band: Band): [number, number] => [Math.floor(STANDBY_LAYOUT[band].band[0] * H), Math.ceil(STANDBY_LAYOUT[band].band[1] * H)];

/** Share of the band's pixels (clock masked) for which `differs(offset)` holds. */
function share(band: Band | 'all', differs: (i: number) => boolean): number {
  const [y0, y1] = band === 'all' ? [0, H] : rowsOf(band);
  let n = 0;
  let hit = 0;
  for (let y = y0; y < y1; y++)
    for (let x = 0; x < W; x++) {
      if (inClock(x, y)) continue;
      n++;
      if (differs((y * W + x) * 3)) hit++;
    }
  return hit / n;
}
const channelDiff = (a: Buffer, b: Buffer, i: number): number => Math.max(Math.abs(a[i]! - b[i]!), Math.abs(a[i + 1]! - b[i + 1]!), Math.abs(a[i + 2]! - b[i + 2]!));
/** Share of pixels that differ visibly (any channel by more than 40) between two frames. */
const diffShare = (a: Buffer, b: Buffer, band: Band | 'all'): number => share(band, (i) => channelDiff(a, b, i) > 40);
/** Share of pixels that are not the background (text, shadows, badges). */
const inkShare = (a: Buffer, band: Band): number => share(band, (i) => Math.abs(a[i]! - BACKGROUND[0]) + Math.abs(a[i + 1]! - BACKGROUND[1]) + Math.abs(a[i + 2]! - BACKGROUND[2]) > 60);

/**
 * Same picture as the reference, band by band: the visibly different pixels (any channel
 * by more than 40: anti-aliasing noise stays under that) under 0.5 % of the reference's
 * ink in that band (0.05 % of the band where it has none). Here the renderings are
 * identical (0 differing pixels); one wrong accent ("Thanh" → "Thành") is ~1 % of the
 * name's ink, the name without its diacritics 78 % (measured with this file's metric),
 * so a missing diacritic or a tofu box fails. Another FreeType/Pango build may draw
 * differently: look at test/.scratch/standby/*.png, then regenerate (header).
 */
function expectMatches(frame: Buffer, ref: Buffer, what: string): void {
  const report = Object.fromEntries(
    BANDS.map((b) => {
      const [y0, y1] = rowsOf(b);
      const pixels = (y1 - y0) * W;
      const ink = inkShare(ref, b) * pixels;
      const diff = diffShare(frame, ref, b) * pixels;
      return [b, { diff: Math.round(diff), ink: Math.round(ink), limit: Math.max(ink * 0.005, pixels * 0.0005) }];
    }),
  );
  for (const b of BANDS) expect(report[b]!.diff, `${what}: differing pixels per band ${JSON.stringify(report)}`).toBeLessThan(report[b]!.limit);
}

const res = new Resources();
let caps: Capabilities;
let dir = '';

beforeAll(async () => {
  caps = await capabilities();
  dir = await mkdtemp(path.join(tmpdir(), 'standby-screen-'));
  await mkdir(SCRATCH, { recursive: true });
});
afterEach(() => res.release());
afterAll(() => rm(dir, { recursive: true, force: true }));

/**
 * The worker's next PNG of the displayed picture that satisfies `ok`, kept as
 * test/.scratch/standby/<name>.png. Polls the worker's snapshot (1 per second at most).
 */
async function frameWhere(box: MediaSupervisor, name: string, ok: (rgb: Buffer) => boolean, what: string): Promise<Buffer> {
  let last: Buffer | null = null;
  await pollUntil(
    async () => {
      const files = await box.snapshot(3000);
      const png = files.find((f) => f.endsWith('received.png'));
      if (!png) return false;
      const keep = path.join(SCRATCH, `${name}.png`);
      await copyFile(png, keep);
      last = await decodePng(keep);
      return ok(last);
    },
    30_000,
    what,
  );
  return last!;
}

async function reference(name: string, frame: Buffer): Promise<Buffer> {
  if (UPDATE) {
    await mkdir(FIXTURES, { recursive: true });
    await copyFile(path.join(SCRATCH, `${name}.png`), path.join(FIXTURES, `${name}.png`));
    if (name === 'update') await copyFile(path.join(SCRATCH, `${name}.png`), path.join(ROOT, 'docs/img/standby.png'));
    return frame;
  }
  return decodePng(path.join(FIXTURES, `${name}.png`));
}

describe('the TV standby screen, drawn by the real worker', () => {
  it('shows the name, the state, then a fault, the next meeting and the badges live; matches the references', async () => {
    const settings = testSettings({ snapshotDir: dir });
    const plan = planStandby(caps, settings, { width: W, height: H }, IDLE);
    const box = newBox(res, { snapshotDir: dir });
    await box.start(plan);

    // Idle: the name and the state; the other bands empty (background only).
    const idle = await frameWhere(box, 'idle', (f) => inkShare(f, 'title') > 0.01, 'a frame with the commune name drawn');
    expect(inkShare(idle, 'title'), 'the name is drawn').toBeGreaterThan(0.02);
    expect(inkShare(idle, 'status'), 'the state in words is drawn').toBeGreaterThan(0.02);
    for (const b of ['next', 'fault', 'badges'] as const) expect(inkShare(idle, b), `${b} is hidden`).toBe(0);
    expectMatches(idle, await reference('idle', idle), 'idle frame vs test/fixtures/standby/idle.png');

    // Live: a fault, the next meeting with the seeds' long title, both badges; the name stays.
    box.updateStandby(UPDATED);
    const updated = await frameWhere(box, 'update', (f) => diffShare(f, idle, 'fault') > 0.02 && diffShare(f, idle, 'badges') > 0.02, 'a frame with the fault and the badges drawn');
    expect(box.status(), 'no restart: the texts changed in the running pipeline').toMatchObject({ running: true, plan: 'standby', restarts: 0 });
    for (const b of ['status', 'next', 'fault', 'badges'] as const) expect(diffShare(updated, idle, b), `${b} changed`).toBeGreaterThan(0.05);
    expect(diffShare(updated, idle, 'title'), 'the name did not move').toBeLessThan(0.005);
    expectMatches(updated, await reference('update', updated), 'updated frame vs test/fixtures/standby/update.png');

    // identify: the osd over the screen, then gone again.
    box.showText('Xã Cẩm Thanh');
    await frameWhere(box, 'identify', (f) => diffShare(f, updated, 'all') > 0.01, 'a frame with the identify text');
    box.hideText();
    const back = await frameWhere(box, 'identify-off', (f) => diffShare(f, updated, 'all') < 0.005, 'a frame without the identify text');
    expectMatches(back, updated, 'after identify');
  }, 120_000);

  it('the texts the screen was asked to show are the ones the test expects (seed title wrapped to two lines)', () => {
    const t: StandbyTexts = UPDATED;
    expect(t.next.split('\n')).toEqual(['Cuộc họp tới · Next meeting: 08:30 Thứ Ba 08/12/2026', 'Hội nghị giao ban trực tuyến đánh giá tình hình phát triển kinh', 'tế – xã hội']);
    expect(t.badges).toContain('Giơ tay');
    expect(t.badges).toContain('Tắt micrô');
  });
});
