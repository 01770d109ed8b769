/**
 * The field end to end on a real agent and a real Mosquitto: LEDs written under a temp
 * /sys/class/leds (a gpio-leds overlay's `ep-status`/`ep-fault`), the button a scripted
 * sysfs GPIO line at the Pi 4's base (512 + 22), the status page on a free port, the media
 * worker the scriptable fake (its `set` messages are what the TV would draw). Time is
 * real: every wait is a hang guard, the press and hold lengths are far from the bounds.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Agent } from '../../device/agent.js';
import type { AgentConfig } from '../../device/config.js';
import { ELEMENT_NAMES } from '../../gst-pipelines/plan/index.js';
import { LogRing, createLogger } from '../../lib/index.js';
import { FakeOnoff, FakeSpawner, FakeSystemActions, hostTrees, piCaps, sysfs, type HostFiles } from '../fakes/index.js';
import { HubClient, LineCapture } from './helpers/hub-client.js';
import { Mosquitto } from './helpers/mosquitto.js';

const BOX = 'cam-field';
const GROUP = 'camlo';
const GUARD_MS = 20_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const TREE: HostFiles = {
  ...sysfs.led('ACT', { trigger: 'none timer oneshot pattern [mmc0] heartbeat\n' }),
  ...sysfs.led('ep-status', { trigger: '[none] timer oneshot pattern\n' }),
  ...sysfs.led('ep-fault', { trigger: '[none] timer oneshot pattern\n' }),
  'sys/class/gpio/export': '',
  'sys/class/gpio/gpiochip512/base': '512\n',
  'sys/class/gpio/gpiochip512/label': 'pinctrl-bcm2711\n',
  'sys/class/gpio/gpiochip512/ngpio': '58\n',
};

const caps = piCaps();

const trees = hostTrees();
const onoff = new FakeOnoff();
const spawner = new FakeSpawner();
const logs = new LineCapture();
const resets: string[] = [];
let broker: Mosquitto;
let hub: HubClient;
let agent: Agent;
let dataDir: string;
let ledsDir: string;

const until = async (pred: () => boolean | Promise<boolean>, what: string): Promise<void> => {
  const end = Date.now() + GUARD_MS;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
};
const led = (name: string, f: string): Promise<string> => readFile(path.join(ledsDir, name, f), 'utf8').then((s) => s.trim());
/** What each LED is doing: the trigger, and its timing for a timer trigger. */
const ledState = async (name: string): Promise<string> => {
  const t = await led(name, 'trigger');
  if (t === 'timer') return `timer ${await led(name, 'delay_on')}/${await led(name, 'delay_off')}`;
  if (t === 'none') return `none ${await led(name, 'brightness')}`;
  return t;
};
/** Every text the TV was asked to show on one overlay, across workers, in order. */
const textsOf = (element: string): string[] =>
  spawner.workers.flatMap((w) => w.received).flatMap((m) => (m.type === 'set' && m.element === element && m.property === 'text' ? [String(m.value)] : []));
const badgeTexts = (): string[] => textsOf(ELEMENT_NAMES.standbyBadges);
const button = (): NonNullable<ReturnType<FakeOnoff['line']>> => onoff.line(512 + 22)!;
/** Active low: pressed = 0. */
const press = async (ms: number): Promise<void> => {
  button().interrupt(0);
  await sleep(ms);
  button().interrupt(1);
};
beforeAll(async () => {
  broker = await Mosquitto.start({ devices: { [BOX]: GROUP } });
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'ep-field-'));
  const paths = await trees.make(TREE);
  ledsDir = paths.ledsClass;
  const config: AgentConfig = {
    deviceId: BOX,
    groupId: GROUP,
    name: 'Xã Cẩm Thanh',
    mqtt: { url: broker.url, ...broker.tls(BOX), keepaliveS: 10, reconnectBaseMs: 500, reconnectCapMs: 4000 },
    dataDir,
    media: { source: 'test', volume: 1, micMuted: false, aec: false },
    health: { periodS: 30 },
    log: { level: 'info' },
    gpio: { button: 22 },
    field: { statusPage: { enabled: true, port: 0, host: '127.0.0.1', pin: '482913' }, button: { shortPress: 'raise_hand', activeLow: true }, leds: { status: 'ep-status', fault: 'ep-fault' } },
  };
  const ring = new LogRing();
  const logger = createLogger({ level: 'info', destination: pino.multistream([{ stream: logs, level: 'trace' }, { stream: ring, level: 'trace' }]) });
  agent = new Agent({ config, version: '0.1.0-test', logger, logRing: ring, caps, paths, system: new FakeSystemActions(), spawner, factoryReset: (why) => resets.push(why), fieldHardware: { onoff: onoff.factory, gpiod: { gpioset: '/nonexistent/gpioset', gpiomon: '/nonexistent/gpiomon', gpiodetect: '/nonexistent/gpiodetect' } } });
  await agent.start();
  await until(() => agent.mqtt.connected, 'the broker');
});

let stopped = false;
afterAll(async () => {
  if (!stopped) await agent?.stop();
  await hub?.close();
  await broker?.stop();
  await trees.cleanup();
  await rm(dataDir, { recursive: true, force: true });
});

describe('the field on a running agent', () => {
  it('LEDs: idle on the status LED (a short blink every 3 s), the fault LED off; identify on both', async () => {
    await until(async () => (await ledState('ep-status')) === 'timer 100/2900', 'the idle code');
    expect(await ledState('ep-fault')).toBe('none 0');
    expect(await led('ACT', 'trigger')).toContain('[mmc0]'); // the board's LED is left to the kernel
    const id = await hub.send({ device: BOX }, 'identify', { seconds: 2 });
    expect(await hub.reply(id)).toMatchObject({ ok: true, result: { seconds: 2, leds: expect.arrayContaining([expect.stringContaining('ep-status')]) } });
    await until(async () => (await ledState('ep-status')) === 'timer 125/125' && (await ledState('ep-fault')) === 'timer 125/125', 'identify on both LEDs');
    await until(async () => (await ledState('ep-status')) === 'timer 100/2900', 'identify to run out');
  });

  it("the hub's next-meeting announcement reaches the TV's texts, the status page and ep status", async () => {
    const title = 'Hội nghị giao ban trực tuyến đánh giá tình hình phát triển kinh tế – xã hội';
    await hub.publish(`ep/v1/grp/${GROUP}/next`, JSON.stringify({ title: title.normalize('NFD'), startsAt: '2099-01-28T01:00:00Z' }), { qos: 1, retain: true });
    await until(() => agent.field.view.nextMeeting !== null, 'the announcement');
    expect(agent.field.view.nextMeeting).toEqual({ title, startsAt: '2099-01-28T01:00:00Z' });
    await until(() => textsOf(ELEMENT_NAMES.standbyNext).some((t) => t.includes('Hội nghị giao ban')), 'the next meeting on the TV');
    expect(agent.localStatus()).toMatchObject({ field: { nextMeeting: { title } } });
    // A bad announcement is logged and changes nothing; an empty one clears it.
    await hub.publish(`ep/v1/grp/${GROUP}/next`, JSON.stringify({ title: 'x', startsAt: 'tomorrow' }), { qos: 1, retain: true });
    await until(() => logs.text().includes('"evt":"next.bad_retained"'), 'the refusal');
    expect(agent.field.view.nextMeeting?.title).toBe(title);
    await hub.publish(`ep/v1/grp/${GROUP}/next`, '', { qos: 1, retain: true });
    await until(() => agent.field.view.nextMeeting === null, 'the announcement cleared');
  });

  it('the status page asks for its PIN, then shows the box live; nothing secret in it', async () => {
    const port = (agent.localStatus().statusPage as { port: number }).port;
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
    const closed = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      ws.on('message', () => resolve(-1));
      ws.on('close', (code) => resolve(code));
      ws.on('open', () => ws.send(JSON.stringify({ pin: '000000' })));
    });
    expect(closed).toBe(4003);
    const data = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      ws.on('open', () => ws.send(JSON.stringify({ pin: '482913' })));
      ws.on('message', (d) => {
        const m = JSON.parse(String(d)) as Record<string, unknown>;
        if (m.t !== 'snapshot') return;
        ws.close();
        resolve(m);
      });
      ws.on('error', reject);
    });
    expect(data).toMatchObject({ name: 'Xã Cẩm Thanh', deviceId: BOX, state: 'idle', hub: { connected: true }, led: 'idle' });
    const text = JSON.stringify(data);
    expect(text).not.toContain('482913');
    expect(text).not.toContain('BEGIN');
  });

  it('a short press raises the hand: an event to the hub, a badge on the TV, the status page live; a second lowers it', async () => {
    // A phone already on the status page sees the change without reloading.
    const port = (agent.localStatus().statusPage as { port: number }).port;
    const pushes: Array<Record<string, unknown>> = [];
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    ws.on('open', () => ws.send(JSON.stringify({ pin: '482913' })));
    ws.on('message', (d) => pushes.push(JSON.parse(String(d)) as Record<string, unknown>));
    await until(() => pushes.length > 0, 'the first snapshot');
    expect(pushes[0]).toMatchObject({ handRaised: false });
    const since = hub.mark();
    await press(150);
    const ev = await hub.waitFor((m) => m.n > since && m.kind === 'event' && (m.json as { type?: string }).type === 'hand_raised', GUARD_MS, 'hand_raised');
    expect((ev.json as { detail: unknown }).detail).toEqual({ raised: true, meetingId: null });
    await until(() => badgeTexts().some((t) => /Giơ tay/.test(t)), 'the badge on the TV');
    expect(agent.field.view.handRaised).toBe(true);
    await until(() => pushes.some((p) => p.handRaised === true), 'the status page to show the raised hand');
    ws.close();
    const mark2 = hub.mark();
    await press(150);
    const ev2 = await hub.waitFor((m) => m.n > mark2 && m.kind === 'event' && (m.json as { type?: string }).type === 'hand_raised', GUARD_MS, 'hand lowered');
    expect((ev2.json as { detail: unknown }).detail).toEqual({ raised: false, meetingId: null });
    expect(agent.field.view.handRaised).toBe(false);
  });

  it('held: the LEDs warn from 3 s; released before 10 s nothing happens; held 10 s the box resets', async () => {
    button().interrupt(0);
    await until(async () => (await ledState('ep-status')) === 'timer 50/50' && (await ledState('ep-fault')) === 'timer 50/50', 'the reset warning');
    button().interrupt(1);
    await until(async () => (await ledState('ep-status')) === 'timer 100/2900', 'the warning withdrawn');
    expect(resets).toEqual([]);
    button().interrupt(0);
    await until(() => resets.length > 0, 'the factory reset');
    button().interrupt(1);
    expect(resets).toEqual(['button held 10 s']);
    expect(logs.text()).toContain('"evt":"button.factory_reset"');
  }, 60_000);

  it('stops cleanly: the button line released once (onoff cannot unexport twice), the LEDs given back', async () => {
    stopped = true;
    await agent.stop();
    expect(logs.text()).not.toContain('field.stop_failed');
    expect(button().unexported).toBe(true);
    expect(await led('ep-status', 'trigger')).toBe('none');
    expect(logs.text()).toContain('"evt":"agent.stopped"');
  });
});
