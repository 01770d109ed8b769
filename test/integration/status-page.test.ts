/**
 * The local status page (device/field/status-page.ts) as a phone and an intruder meet it:
 * a real HTTP server and real WebSocket clients (405, the 17th client, PIN, coalesced
 * pushes on a fake clock, no secret in what is served), then Debian's chromium driven by
 * puppeteer-core (the page loads, updates live without a reload, Vietnamese renders without
 * tofu, fits 360 px, a phone-size screenshot in test/.scratch/). Without a chromium binary
 * the browser part is skipped with the reason printed.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { HealthSample } from '../../device/contract/index.js';
import { ADVICE, STATE_WORDS, type FieldView } from '../../device/field/model.js';
import { CLOSE_PIN_LOCKED, CLOSE_PIN_REQUIRED, CLOSE_PIN_WRONG, MAX_STATUS_CLIENTS, PIN_FAILURES_PER_ADDRESS, PIN_LOCK_MS, PIN_WAIT_MS, StatusPageServer, type StatusPageOptions, type StatusSnapshot } from '../../device/field/status-page.js';
import { createLogger, silentLogger, type Clock } from '../../lib/index.js';
import { FakeClock } from '../fakes/index.js';

const UNDER_VOLTAGE_VI = 'Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng';
const TITLE = 'Hội nghị giao ban trực tuyến đánh giá tình hình phát triển kinh tế – xã hội';

const baseView = (over: Partial<FieldView> = {}): FieldView => ({
  name: 'UBND xã Cẩm Thanh', deviceId: 'cam-thanh', groupId: 'hoi-an', version: '0.1.0', state: 'idle', unprovisionedReason: null,
  hub: { connected: true, url: 'mqtts://hub.example:8883', downForMs: 0 }, network: true, meeting: null, nextMeeting: null, faults: [], ota: null,
  identify: false, handRaised: false, micMuted: false, resetWarning: false, now: Date.parse('2026-03-01T08:00:00Z'),
  ...over,
});

const health = (over: Partial<HealthSample> = {}): HealthSample => ({
  ts: '2026-03-01T08:00:00Z',
  uptimeS: 3600,
  cpu: { loadPct: 23, tempC: 51.5 },
  power: { underVoltage: false, underVoltageSinceBoot: false, throttled: false },
  mem: { usedPct: 41, agentRssMb: 77 },
  disk: { usedPct: 30 },
  clockSynced: true,
  net: { iface: 'eth0', ip: '192.168.1.20', rxKbps: 12, txKbps: 8 },
  devices: { camera: true, display: true, mic: true, speaker: true },
  media: { send: { fps: null, kbps: null, rttMs: null, lossPct: null, retransPct: null }, receive: { fps: null, kbps: null, lossPct: null }, audio: { micDb: null, speakerDb: null }, link: null },
  ...over,
});

/** One page server with the view, health and logs the test sets, and its change listeners. */
class Box {
  view = baseView();
  sample: HealthSample | null = health();
  lines: string[] = [];
  readonly listeners = new Set<() => void>();
  readonly logText: string[] = [];
  readonly server: StatusPageServer;

  constructor(o: Partial<StatusPageOptions> & { clock?: Clock } = {}) {
    const sink = new Writable({ write: (c: Buffer, _e, cb) => (this.logText.push(c.toString()), cb()) });
    this.server = new StatusPageServer({
      port: 0,
      host: '127.0.0.1',
      view: () => this.view,
      health: () => this.sample,
      logs: (n) => this.lines.slice(-n),
      subscribe: (fn) => (this.listeners.add(fn), () => this.listeners.delete(fn)),
      log: createLogger({ level: 'debug', destination: sink }),
      ...o,
    });
  }

  change(over: Partial<FieldView>): void {
    this.view = { ...this.view, ...over };
    for (const fn of this.listeners) fn();
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.address()!.port}`;
  }
}

/** A WebSocket client that keeps every message and tells how it ended. */
function client(url: string, headers: Record<string, string> = {}, autoPong = true) {
  const ws = new WebSocket(url.replace('http:', 'ws:') + '/ws', { headers, autoPong });
  const got: StatusSnapshot[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (d: Buffer) => {
    got.push(JSON.parse(d.toString()) as StatusSnapshot);
    waiters.splice(0).forEach((w) => w());
  });
  const opened = new Promise<number>((resolve, reject) => {
    ws.once('open', () => resolve(101));
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', reject);
  });
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  /** The n-th message (1-based), waiting for it if it has not come yet. */
  const nth = async (n: number): Promise<StatusSnapshot> => {
    while (got.length < n) await new Promise<void>((r) => waiters.push(r));
    return got[n - 1]!;
  };
  /** The first message that satisfies pred, waiting for it if it has not come yet. */
  const first = async (pred: (s: StatusSnapshot) => boolean): Promise<StatusSnapshot> => {
    for (;;) {
      const hit = got.find(pred);
      if (hit) return hit;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { ws, got, opened, closed, nth, first };
}

async function request(url: string, method: string, body?: string): Promise<{ status: number; headers: Record<string, string>; text: string }> {
  const res = await fetch(url, { method, body: body ?? null });
  return { status: res.status, headers: Object.fromEntries(res.headers), text: await res.text() };
}

const boxes: Box[] = [];
const started = async (o: ConstructorParameters<typeof Box>[0] = {}): Promise<Box> => {
  const b = new Box(o);
  boxes.push(b);
  await b.server.start();
  return b;
};
afterEach(async () => {
  await Promise.all(boxes.splice(0).map((b) => b.server.stop()));
});

describe('status page over HTTP and WebSocket', () => {
  it('serves the page with a nonce CSP and no box data in it; refuses anything but GET/HEAD with 405 and Allow', async () => {
    const b = await started();
    const page = await request(b.url, 'GET');
    expect(page.status).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    expect(nonce).toBeTruthy();
    expect(page.text).toContain(`<script nonce="${nonce}">`);
    expect(csp).toContain("default-src 'none'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.text).not.toContain('Cẩm Thanh');
    expect((await request(b.url, 'GET')).headers['content-security-policy']).not.toBe(csp); // a fresh nonce each time
    const head = await request(b.url, 'HEAD');
    expect([head.status, head.text]).toEqual([200, '']);
    for (const m of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      const r = await request(b.url, m, m === 'POST' ? 'pin=1234' : undefined);
      expect([m, r.status, r.headers.allow]).toEqual([m, 405, 'GET, HEAD']);
    }
    expect((await request(`${b.url}/config.json`, 'GET')).status).toBe(404);
    // Headers are bounded (8 KiB): a bigger request is refused before any handler runs.
    expect((await request(`${b.url}/?${'a'.repeat(16 * 1024)}`, 'GET')).status).toBe(431);
  });

  it('takes the WebSocket on /ws only, from its own origin only, and 16 clients at most: the 17th gets 503', async () => {
    const b = await started();
    expect(await client(`${b.url}/nope`).opened).toBe(404);
    expect(await client(b.url, { Origin: 'http://evil.example' }).opened).toBe(403);
    const cs = Array.from({ length: MAX_STATUS_CLIENTS }, () => client(b.url));
    expect(await Promise.all(cs.map((c) => c.opened))).toEqual(Array(MAX_STATUS_CLIENTS).fill(101));
    for (const c of cs) expect((await c.nth(1)).name).toBe('UBND xã Cẩm Thanh');
    expect(await client(b.url).opened).toBe(503);
    cs[0]!.ws.close();
    await cs[0]!.closed;
    const again = client(b.url);
    expect(await again.opened).toBe(101);
    expect((await again.nth(1)).t).toBe('snapshot');
    for (const c of [...cs, again]) c.ws.terminate();
  });

  it('coalesces a burst of changes into one push, at most one per 250 ms, and ignores what clients send', async () => {
    const clock = new FakeClock();
    const b = await started({ clock });
    const c = client(b.url);
    await c.opened;
    expect((await c.nth(1)).now).toBe(b.view.now);
    const t0 = b.view.now;
    for (let i = 1; i <= 50; i++) b.change({ now: t0 + i });
    c.ws.send(JSON.stringify({ state: 'fault' })); // read-only: ignored
    await clock.advance(0);
    expect((await c.nth(2)).now).toBe(t0 + 50);
    // A change 10 ms after a push waits for the rest of the 250 ms.
    await clock.advance(10);
    b.change({ now: t0 + 51 });
    await clock.advance(100);
    b.change({ now: t0 + 52, state: 'in_meeting' });
    await clock.advance(140);
    const third = await c.nth(3);
    expect([third.now, third.state]).toEqual([t0 + 52, 'in_meeting']);
    // The periodic refresh (clock, health) comes without a change.
    b.sample = health({ cpu: { loadPct: 88, tempC: 70 } });
    await clock.advance(5000);
    expect((await c.nth(4)).health?.cpu.loadPct).toBe(88);
    c.ws.terminate();
  });

  it('cuts a client that sends a frame over the limit (1009)', async () => {
    const b = await started();
    const c = client(b.url);
    await c.nth(1);
    c.ws.send('x'.repeat(64 * 1024));
    expect((await c.closed).code).toBe(1009);
  });

  it('closes a client that stops answering pings; one that answers stays', async () => {
    const clock = new FakeClock();
    const b = await started({ clock });
    const asleep = client(b.url, {}, false);
    const awake = client(b.url);
    await Promise.all([asleep.nth(1), awake.nth(1)]);
    const pinged = [asleep, awake].map((c) => new Promise((r) => c.ws.once('ping', r)));
    await clock.advance(30_000);
    await Promise.all(pinged);
    // The awake client's pong went out before its 'ping' event; a round trip of its own
    // after it proves the server has read that pong (one ordered stream).
    awake.ws.ping();
    await new Promise((r) => awake.ws.once('pong', r));
    await clock.advance(30_000);
    expect((await asleep.closed).code).toBe(1006);
    expect(awake.ws.readyState).toBe(WebSocket.OPEN);
    b.change({ state: 'joining' });
    await clock.advance(250);
    // Still served: the change reaches it (joining shows the meeting's steady LED).
    expect((await awake.first((m) => m.state === 'joining')).led).toBe('in_meeting');
    awake.ws.terminate();
  });

  it('serves nothing secret: credentials in the hub URL, the logs and the reason are redacted; only allow-listed health fields', async () => {
    const b = await started();
    b.view = baseView({ hub: { connected: false, url: 'mqtts://cam-thanh:hunter2pass@hub.example:8883', downForMs: 30_000 }, unprovisionedReason: 'bad file: password=fileSecret9' });
    b.sample = { ...health(), secrets: { token: 'healthSecret7' } } as unknown as HealthSample;
    b.lines = [
      '{"level":30,"evt":"media.join","srt":{"passphrase":"s3cr3tPassphrase1"},"msg":"joined"}',
      '{"level":30,"msg":"connect mqtt://box:pw123xyz@10.0.0.1:1883"}',
      'password=topsecret42 token: tok.en.value9 apiKey=AKIA1234567',
      '{"level":30,"msg":"keyframe requested","privateKey":"-----BEGIN KEY-----abc"}',
      'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.bearerSecret',
      '{"level":30,"field":{"statusPage":{"pin":"97531"},"buttonPin":17}}',
    ];
    const c = client(b.url);
    const s = await c.nth(1);
    const json = JSON.stringify(s);
    for (const secret of ['hunter2pass', 'fileSecret9', 'healthSecret7', 's3cr3tPassphrase1', 'pw123xyz', 'topsecret42', 'tok.en.value9', 'AKIA1234567', 'BEGIN KEY', 'bearerSecret', '97531']) expect(json).not.toContain(secret);
    expect(s.hub.url).toBe('mqtts://hub.example:8883');
    expect(s.logs).toHaveLength(6);
    expect(s.logs[5]).toContain('"buttonPin":17'); // a GPIO pin number is no secret
    expect(s.logs[0]).toContain('"passphrase":"[redacted]"');
    expect(s.logs[1]).toContain('mqtt://[redacted]@10.0.0.1:1883');
    expect(s.logs[3]).toContain('keyframe requested'); // words that only contain "key" stay
    expect(Object.keys(s.health!).sort()).toEqual(['clockSynced', 'cpu', 'devices', 'disk', 'media', 'mem', 'net', 'power', 'ts', 'uptimeS']);
    expect(s.health!.media).toBeNull(); // media stats only in a meeting
    c.ws.terminate();
  });

  it('with a PIN: no data until the PIN comes as the first message; wrong PINs are refused, then locked; the PIN is never logged', async () => {
    const clock = new FakeClock();
    const PIN = 'Qz7-4821';
    const b = await started({ clock, pin: PIN });
    expect((await request(b.url, 'GET')).text).toContain('data-pin="1"');
    const silent = client(b.url);
    await silent.opened;
    await clock.advance(PIN_WAIT_MS);
    expect((await silent.closed).code).toBe(CLOSE_PIN_REQUIRED);
    expect(silent.got).toEqual([]);
    const tryPin = async (pin: string) => {
      const c = client(b.url);
      await c.opened;
      c.ws.send(JSON.stringify({ pin }));
      const r = await Promise.race([c.nth(1).then(() => 'data' as const), c.closed.then((x) => x.code)]);
      c.ws.terminate();
      return r;
    };
    expect(await tryPin(PIN)).toBe('data');
    for (let i = 0; i < PIN_FAILURES_PER_ADDRESS; i++) expect(await tryPin(`wrong-${i}`)).toBe(CLOSE_PIN_WRONG);
    expect(await tryPin(PIN)).toBe(CLOSE_PIN_LOCKED); // even the right one, while locked
    await clock.advance(PIN_LOCK_MS);
    expect(await tryPin(PIN)).toBe('data');
    const logs = b.logText.join('');
    expect(logs).toContain('status_page.pin_refused');
    expect(logs).not.toContain(PIN);
    expect(logs).not.toContain('wrong-0');
  });

  it('refuses a bad port or PIN in its options, naming the field', () => {
    const o = { view: baseView, health: () => null, logs: () => [], subscribe: () => () => undefined, log: silentLogger() };
    expect(() => new StatusPageServer({ ...o, port: 70000 })).toThrow(/statusPage\.port/);
    expect(() => new StatusPageServer({ ...o, pin: '12' })).toThrow(/statusPage\.pin/);
  });
});

const CHROMIUM = process.env.EP_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`status-page.test: browser tests skipped: no chromium at ${CHROMIUM} (apt-get install chromium, or set EP_CHROMIUM)`);
const SCRATCH = path.resolve('test/.scratch');

describe.skipIf(!haveChromium)('status page in headless chromium (puppeteer-core)', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], protocolTimeout: 60_000 });
  });
  afterAll(async () => {
    await browser?.close();
  });

  const phone = async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 360, height: 740, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(String(e)));
    // The browser's side is written as expressions (this project's TypeScript has no DOM types).
    const js = <T>(expr: string): Promise<T> => page.evaluate(expr) as Promise<T>;
    const until = (expr: string) => page.waitForFunction(expr, { timeout: 30_000 });
    const stateIs = (vi: string) => until(`document.querySelector('#state .vi')?.textContent === ${JSON.stringify(vi)}`);
    return { page, errors, js, until, stateIs };
  };

  it('loads, updates live without a reload, renders Vietnamese (NFC, no tofu), fits a phone; screenshot kept', async () => {
    const b = await started();
    const { page, errors, js, stateIs } = await phone();
    await page.goto(b.url, { waitUntil: 'load' });
    await stateIs(STATE_WORDS.idle.vi);
    expect(await js(`document.querySelector('tr.now').dataset.code`)).toBe('idle');
    await js('window.marker = 42');

    b.sample = health({ power: { underVoltage: true, underVoltageSinceBoot: true, throttled: true }, media: { send: { fps: 30, kbps: 1800, rttMs: 42, lossPct: 0.4, retransPct: 1 }, receive: { fps: 25, kbps: 2500, lossPct: 0 }, audio: { micDb: -30, speakerDb: -20 }, link: null } });
    b.lines = Array.from({ length: 250 }, (_, i) => `{"level":30,"evt":"tick","n":${i}}`);
    // The hub may send a title decomposed (NFD), as phones type it.
    b.change({ state: 'in_meeting', faults: ['under_voltage'], meeting: { id: 'm-1', title: TITLE.normalize('NFD'), since: '2026-03-01T08:00:00Z' }, ota: { phase: 'downloading', version: '0.2.0', progress: 0.4 } });
    await page.waitForSelector('#problems li[data-code="under_voltage"]');
    const shown = await js<Record<string, string | number>>(`({
      marker: window.marker,
      advice: document.querySelector('#problems li[data-code="under_voltage"] .vi').textContent,
      led: document.querySelector('tr.now').dataset.code,
      meeting: document.getElementById('meeting').textContent,
      health: document.getElementById('health').textContent,
      version: document.getElementById('version').textContent,
      logLines: document.getElementById('logs').textContent.split('\\n').length,
    })`);
    expect(shown.marker).toBe(42); // the same page: no reload
    expect(shown.advice).toBe(UNDER_VOLTAGE_VI.normalize('NFC'));
    expect(shown.advice).toBe(ADVICE.under_voltage!.vi);
    expect(shown.led).toBe('under_voltage');
    expect(shown.meeting).toContain(TITLE.normalize('NFC'));
    expect(shown.health).toContain('1800 kbit/s');
    expect(shown.logLines).toBe(200);
    expect(shown.version).toContain('Đang tải về / Downloading → 0.2.0 (40 %)');

    // Glyphs: each distinct letter of the advice, drawn in the element's font, must differ
    // from what a code point no font has (U+10FFFD) draws; a second such code point must not.
    const glyphs = await js<{ width: number; letters: string[]; tofuLetters: string[]; tofuDetected: boolean }>(`(() => {
      const el = document.querySelector('#problems li[data-code="under_voltage"] .vi');
      const font = getComputedStyle(el).font;
      const draw = (ch) => {
        const c = document.createElement('canvas');
        c.width = c.height = 64;
        const g = c.getContext('2d');
        g.font = font;
        g.fillText(ch, 8, 44);
        return c.toDataURL();
      };
      const tofu = draw('\u{10FFFD}');
      const letters = [...new Set([...el.textContent].filter((ch) => ch.charCodeAt(0) > 127))];
      return { width: el.getBoundingClientRect().width, letters, tofuLetters: letters.filter((ch) => draw(ch) === tofu), tofuDetected: draw('\u{10FFFE}') === tofu };
    })()`);
    expect(glyphs.width).toBeGreaterThan(100);
    expect(glyphs.letters.length).toBeGreaterThanOrEqual(5); // ồ, đ, ệ, ế, ộ, í, ã
    expect(glyphs.tofuDetected).toBe(true);
    expect(glyphs.tofuLetters).toEqual([]);

    const layout = await js<{ scrollWidth: number; fontPx: number }>('({ scrollWidth: document.documentElement.scrollWidth, fontPx: parseFloat(getComputedStyle(document.body).fontSize) })');
    expect(layout.scrollWidth).toBeLessThanOrEqual(360); // no sideways scrolling
    expect(layout.fontPx).toBeGreaterThanOrEqual(14);
    await mkdir(SCRATCH, { recursive: true });
    await page.screenshot({ path: path.join(SCRATCH, 'status-page-phone.png') as `${string}.png` });
    await page.screenshot({ path: path.join(SCRATCH, 'status-page-phone-full.png') as `${string}.png`, fullPage: true });
    expect(errors).toEqual([]); // no CSP violation, no script error
    await page.close();
  });

  it('asks for the PIN, says when it is wrong, shows the data once it is right', async () => {
    const b = await started({ pin: '2468' });
    const { page, errors, js, until, stateIs } = await phone();
    await page.goto(b.url, { waitUntil: 'load' });
    await page.waitForSelector('#pin-box:not([hidden])');
    expect(await js(`document.getElementById('data').hidden`)).toBe(true);
    await page.type('#pin', '1111');
    await page.click('button[type=submit]');
    await until(`document.getElementById('pin-msg').textContent.includes('Sai mã PIN')`);
    expect(await js(`document.getElementById('data').hidden`)).toBe(true);
    await page.type('#pin', '2468');
    await page.click('button[type=submit]');
    await stateIs(STATE_WORDS.idle.vi);
    expect(await js(`document.getElementById('pin-box').hidden`)).toBe(true);
    // Script errors and CSP violations would be console errors too.
    expect(errors).toEqual([]);
    await page.close();
  });
});
