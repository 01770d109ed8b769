/**
 * Every command of contract v1 against a real agent on a real Mosquitto (TLS, client
 * certificates, ACL), with real media (test sources, the worker processes) and a real
 * SRT hub: each command that arrives gets exactly one reply with the right code, on
 * the reply topic and on the MQTT 5 response topic with its correlation data; valid
 * commands do what they say; and no secret (SRT passphrase, MQTT password, key or
 * certificate text) appears in anything the box logged or sent.
 *
 * One broker, hub and box serve the whole file; the tests run in order (join before
 * leave, and the secret scan last, over everything the file captured).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import mqtt from 'mqtt';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createContract } from '../../device/contract/validate.js';
import { healthSchema, replySchema, stateSchema } from '../../device/contract/schemas.js';
import { freePort, type LocalHub } from '../../gst-pipelines/hub/local-hub.js';
import type { MediaJoinSpec } from '../../gst-pipelines/types.js';
import type { Capabilities } from '../../gst-pipelines/types.js';
import { HubClient, TestBox, type Reply, type SendOptions } from './helpers/hub-client.js';
import { Resources, SMALL, capabilities, nextEvent, startHub } from './helpers/media.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { pollUntil, withTimeout } from './helpers/processes.js';

const GROUP = 'grp-one';
const BOX = 'box-a';
const PW_BOX = 'box-p';
const PASSPHRASE = 'correct-horse-battery-staple';
const MQTT_PASSWORD = 'mqtt-pw-Zebra-7731-quartz';
/** Collect replies this long after the first one: "exactly one" means none arrives meanwhile. */
const GRACE_MS = 500;

const contract = createContract();
const validReply = contract.compile(replySchema);
const validState = contract.compile(stateSchema);
const validHealth = contract.compile(healthSchema);

const res = new Resources();
const boxes: TestBox[] = [];
let caps: Capabilities;
let broker: Mosquitto;
let hub: HubClient;
let srtHub: LocalHub;
let box: TestBox;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const iso = (offsetMs: number): string => new Date(Date.now() + offsetMs).toISOString();

function meetingSpec(meetingId: string): MediaJoinSpec {
  const spec = srtHub.joinSpec(meetingId, { title: `Họp ${meetingId}` });
  return { ...spec, send: { ...spec.send, video: SMALL } };
}

interface Exchange {
  id: string;
  /** Every reply on the box's reply topic from the send until GRACE_MS after the first. */
  replies: Reply[];
  /** Every message on the hub's response topic with this command's correlation data. */
  responses: Reply[];
}

/**
 * Sends one command with an MQTT 5 response topic and fresh correlation data, waits for
 * the reply on both topics, then collects for GRACE_MS more.
 */
async function exchange(command: string, args: Record<string, unknown> = {}, o: SendOptions & { device?: string; ms?: number } = {}): Promise<Exchange> {
  const device = o.device ?? BOX;
  const mark = hub.mark();
  const cd = randomBytes(8);
  const id = await hub.send({ device }, command, args, { ...o, correlationData: cd });
  const ms = o.ms ?? 15_000;
  await hub.waitFor((m) => m.n > mark && m.kind === 'reply' && m.deviceId === device, ms, `a reply to ${command} ${id}`);
  await hub.waitFor((m) => m.n > mark && m.kind === 'response' && m.correlationData?.equals(cd) === true, ms, `the response to ${command} ${id}`);
  await sleep(GRACE_MS);
  const replies = hub.of('reply', device).filter((m) => m.n > mark).map((m) => m.json as Reply);
  const responses = hub.responses(cd).map((m) => m.json as Reply);
  for (const r of [...replies, ...responses]) expect(validReply(r), JSON.stringify(validReply.errors)).toBe(true);
  return { id, replies, responses };
}

/** Exactly one reply on each topic, the same body on both; returns it. */
function one(x: Exchange): Reply {
  expect(x.replies, JSON.stringify(x.replies)).toHaveLength(1);
  expect(x.responses, JSON.stringify(x.responses)).toHaveLength(1);
  expect(x.responses[0]).toEqual(x.replies[0]);
  return x.replies[0]!;
}

function runs(b: TestBox, id: string): number {
  return b.logs.records('command.run').filter((r) => r.id === id).length;
}

beforeAll(async () => {
  caps = await capabilities();
  broker = await Mosquitto.start({ devices: { [BOX]: GROUP, [PW_BOX]: GROUP }, passwords: { [PW_BOX]: MQTT_PASSWORD } });
  res.add('mosquitto', () => broker.stop());
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
  res.add('hub client', () => hub.close());
  srtHub = await startHub(res, { video: SMALL, passphrase: PASSPHRASE });
  box = await TestBox.start({ deviceId: BOX, groupId: GROUP, broker, caps });
  boxes.push(box);
  res.add(BOX, () => box.dispose());
  const idle = await hub.waitState(BOX, (s) => s.state === 'idle', 20_000);
  expect(validState(idle), JSON.stringify(validState.errors)).toBe(true);
}, 60_000);

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail' || ctx.task.fails) return;
  for (const b of boxes) console.error(`--- ${b.deviceId} log (last 40 lines) ---\n${b.logs.lines.slice(-40).join('\n')}`);
  console.error(`--- hub saw (last 20) ---\n${hub.messages.slice(-20).map((m) => `${m.topic} ${m.text.slice(0, 200)}`).join('\n')}`);
  console.error(`--- mosquitto (last 3000 chars) ---\n${broker.output().slice(-3000)}`);
});

afterAll(async () => {
  await res.release();
}, 60_000);

describe('valid commands: one reply each, and the effect', () => {
  it('join: replies ok, the box reaches in_meeting, and media flows to the hub and back', async () => {
    const spec = meetingSpec('mtg-cmd-1');
    expect(spec.srt?.passphrase).toBe(PASSPHRASE);
    const since = hub.mark();
    const t0 = Date.now();
    const r = one(await exchange('join', spec as unknown as Record<string, unknown>));
    expect(r).toMatchObject({ deviceId: BOX, command: 'join', ok: true, result: { meetingId: 'mtg-cmd-1', state: 'joining', encoder: 'x264enc' } });
    const state = await hub.waitState(BOX, (s) => s.state === 'in_meeting', 20_000, since);
    expect(validState(state), JSON.stringify(validState.errors)).toBe(true);
    expect(state).toMatchObject({ meeting: { id: 'mtg-cmd-1', title: 'Họp mtg-cmd-1' }, media: { send: 'ok' } });
    const inMeetingMs = Date.now() - t0;
    // Media really flows: the hub decodes the box's stream, the box decodes the hub's program.
    const [hubStats, boxStats] = await Promise.all([
      nextEvent(srtHub.supervisor, 'stats', (s) => (s.receive.fps ?? 0) >= SMALL.fps * 0.6, 20_000, 'the hub to receive the box at ≥ 60 % of its frame rate'),
      nextEvent(box.agent.media, 'stats', (s) => (s.receive.fps ?? 0) >= SMALL.fps * 0.6, 20_000, 'the box to receive the program'),
    ]);
    expect(boxStats.send.srt?.rttMs, 'an SRT connection (rtt measured)').not.toBeNull();
    console.info('join', { inMeetingMs, hubReceiveFps: hubStats.receive.fps, boxReceiveFps: boxStats.receive.fps, boxSendFps: boxStats.send.fps });
  }, 60_000);

  it('join of the meeting it is in: ok, "already_in_meeting", nothing restarts', async () => {
    const pid = box.agent.media.status().workerPid;
    const r = one(await exchange('join', meetingSpec('mtg-cmd-1') as unknown as Record<string, unknown>));
    expect(r).toMatchObject({ ok: true, result: { meetingId: 'mtg-cmd-1', state: 'already_in_meeting' } });
    expect(box.agent.media.status().workerPid).toBe(pid);
  });

  it('reboot when idle, asked three times during a meeting: scheduled, not done until the box leaves', async () => {
    for (let i = 0; i < 3; i++) expect(one(await exchange('reboot', { when: 'idle' }))).toMatchObject({ ok: true, result: { rebooting: false, when: 'idle', scheduled: true } });
    await sleep(1000); // the immediate path fires after 500 ms: make sure it did not
    expect(box.system.calls).toEqual([]);
  });

  it('leave: replies ok with the meeting it left, the box goes idle, and the deferred reboot runs, once', async () => {
    const since = hub.mark();
    const r = one(await exchange('leave'));
    expect(r).toMatchObject({ ok: true, result: { left: 'mtg-cmd-1' } });
    const state = await hub.waitState(BOX, (s) => s.state === 'idle', 15_000, since);
    expect(state).toMatchObject({ meeting: null, media: { send: 'off', receive: 'off' } });
    await pollUntil(() => box.system.calls.length > 0, 5000, 'the deferred reboot');
    expect(box.system.calls).toEqual(['reboot']);
  }, 30_000);

  it('reboot when now: replies at once, the reboot is asked of systemctl (FakeSystemActions)', async () => {
    const before = box.system.calls.length;
    const r = one(await exchange('reboot', { when: 'now' }));
    expect(r).toMatchObject({ ok: true, result: { rebooting: true, when: 'now' } });
    await pollUntil(() => box.system.calls.length > before, 5000, 'the reboot');
    expect(box.system.calls.slice(before)).toEqual(['reboot']);
  });

  it('reboot when now, refused by systemctl (on cue): still one ok reply; the failure is logged, the box stays up', async () => {
    const before = box.system.calls.length;
    box.system.failNext('reboot');
    expect(one(await exchange('reboot', { when: 'now' }))).toMatchObject({ ok: true, result: { rebooting: true } });
    await pollUntil(() => box.logs.records('system.reboot_failed').length > 0, 10_000, 'the logged failure');
    expect(box.system.failed).toEqual(['reboot']);
    expect(box.system.calls.slice(before)).toEqual(['reboot']);
    expect(box.agent.mqtt.connected).toBe(true);
  });

  it('selftest: a result table with every check; the codecs really ran', async () => {
    const r = one(await exchange('selftest', {}, { ms: 40_000 }));
    expect(r.ok).toBe(true);
    const checks = (r.result as { checks: Array<{ check: string; ok: boolean; detail: string; skipped?: boolean }> }).checks;
    expect(checks.map((c) => c.check).sort()).toEqual(['camera', 'clock', 'decoder', 'disk', 'disk_write', 'display', 'encoder', 'hub_media', 'mic', 'network', 'power', 'speaker']);
    const by = Object.fromEntries(checks.map((c) => [c.check, c]));
    expect(by.encoder).toMatchObject({ ok: true, detail: expect.stringMatching(/^x264enc: ran in \d+ ms/) });
    expect(by.decoder).toMatchObject({ ok: true, detail: expect.stringMatching(/^avdec_h264: ran in \d+ ms/) });
    expect(by.network).toMatchObject({ ok: true });
    expect(by.disk?.ok).toBe(true);
    expect(by.camera).toMatchObject({ skipped: true }); // test sources: said, not faked
  }, 60_000);

  it('identify: blinks the LEDs (FakeLeds) for the asked time', async () => {
    const before = box.leds.blinks.length;
    const r = one(await exchange('identify', { seconds: 2 }));
    expect(r).toMatchObject({ ok: true, result: { seconds: 2, leds: ['fake'], tv: true } });
    expect(box.leds.blinks.slice(before)).toEqual([2000]);
  });

  it('identify when the LEDs cannot be driven (on cue): one reply, failed, with the reason', async () => {
    box.leds.failNext(new Error('leds: permission denied'));
    const r = one(await exchange('identify', { seconds: 1 }));
    expect(r).toMatchObject({ ok: false, error: { code: 'failed', message: expect.stringMatching(/permission denied/) } });
  });

  it('config: sets the volume and returns the settings', async () => {
    const r = one(await exchange('config', { volume: 0.5 }));
    expect(r).toMatchObject({ ok: true, result: { settings: { volume: 0.5, micMuted: false, healthPeriodS: 30, logLevel: 'info' } } });
    const saved = JSON.parse(await readFile(path.join(box.config.dataDir, 'settings.json'), 'utf8')) as { volume: number };
    expect(saved.volume).toBe(0.5);
  });

  it('logs: returns the last lines, which tell what happened and hold no passphrase', async () => {
    const r = one(await exchange('logs', { lines: 500 }));
    const { lines, count } = r.result as { lines: string[]; count: number };
    expect(count).toBe(lines.length);
    expect(lines.length).toBeGreaterThan(10);
    expect(lines.length).toBeLessThanOrEqual(500);
    const evts = lines.map((l) => (JSON.parse(l) as { evt?: string }).evt);
    expect(evts).toContain('command.run');
    expect(evts).toContain('meeting.phase');
    for (const l of lines) expect(l).not.toContain(PASSPHRASE);
  });

  it('ota on a box provisioned without update keys: failed, reason not_enabled, saying why', async () => {
    const r = one(await exchange('ota', { manifestUrl: 'https://hub.example/ota/ep-1.3.0.json', when: 'now' }));
    expect(r).toMatchObject({ ok: false, command: 'ota', error: { code: 'failed', reason: 'not_enabled', message: expect.stringMatching(/updates are not enabled on this box: no trusted public keys/) } });
  });
});

describe('what the reported media state means', () => {
  // `send: "ok"` needs srtsink to have sent packets on a connection (worker.ts
  // confirmDelivery); the packetiser producing data proves nothing.
  it('a box whose hub ingest is unreachable does not report send "ok"', async () => {
    const dead = await freePort();
    const spec = meetingSpec('mtg-dead-ingest');
    const since = hub.mark();
    try {
      one(await exchange('join', { ...spec, send: { ...spec.send, url: `srt://127.0.0.1:${dead}` } }));
      await hub.waitState(BOX, (s) => s.state === 'in_meeting', 20_000, since);
      // The program flows (receive works), and stats have had time to show an SRT link.
      const stats = await nextEvent(box.agent.media, 'stats', (s) => (s.receive.fps ?? 0) > 0 && s.uptimeMs > 3000, 20_000, 'receive stats after 3 s');
      const status = box.agent.media.status();
      console.info('unreachable ingest:', { send: status.send, sendFps: stats.send.fps, sendKbps: stats.send.kbps, srt: stats.send.srt });
      expect(stats.send.srt?.rttMs ?? null, 'no SRT connection exists').toBeNull();
      expect(status.send).not.toBe('ok');
    } finally {
      const left = await exchange('leave');
      expect(left.replies[0]?.ok).toBe(true);
      await hub.waitState(BOX, (s) => s.state === 'idle', 15_000, since);
    }
  }, 60_000);
});

describe('bad commands: exactly one reply each, with the right code, and nothing runs', () => {
  const big = 'x'.repeat(70 * 1024);
  const cases: Array<{ what: string; command: string; payload: (id: string) => string; code: string; message: RegExp; idKnown: boolean | string }> = [
    { what: 'not JSON', command: 'identify', payload: () => '{"id": "c-broken", "args": {', code: 'bad_request', message: /^payload: not JSON/, idKnown: 'c-broken' },
    { what: 'a JSON array', command: 'identify', payload: () => '[1, 2, 3]', code: 'bad_request', message: /\(root\): must be a JSON object/, idKnown: false },
    { what: 'wrong shape (args.seconds a string)', command: 'identify', payload: (id) => JSON.stringify({ id, args: { seconds: 'ten' } }), code: 'bad_request', message: /args\.seconds: must be integer/, idKnown: true },
    { what: 'wrong shape (no id)', command: 'leave', payload: () => JSON.stringify({ args: {} }), code: 'bad_request', message: /id: is required/, idKnown: false },
    { what: 'wrong shape (join without send)', command: 'join', payload: (id) => JSON.stringify({ id, args: { meetingId: 'm', receive: { url: 'srt://127.0.0.1:1' } } }), code: 'bad_request', message: /args\.send: is required/, idKnown: true },
    { what: 'an unknown envelope field', command: 'identify', payload: (id) => JSON.stringify({ id, args: {}, colour: 'red' }), code: 'bad_request', message: /colour: unknown field/, idKnown: true },
    { what: 'an unknown args field', command: 'identify', payload: (id) => JSON.stringify({ id, args: { seconds: 1, blink: true } }), code: 'bad_request', message: /args\.blink: unknown field/, idKnown: true },
    { what: 'over 64 KiB', command: 'identify', payload: (id) => JSON.stringify({ id, args: { seconds: 1 }, pad: big }), code: 'bad_request', message: /over the 65536-byte limit/, idKnown: true },
    { what: 'an unknown command', command: 'frobnicate', payload: (id) => JSON.stringify({ id, args: {} }), code: 'unknown_command', message: /unknown command "frobnicate"/, idKnown: true },
    { what: 'expired', command: 'identify', payload: (id) => JSON.stringify({ id, ts: iso(-120_000), expiresAt: iso(-60_000), args: { seconds: 1 } }), code: 'expired', message: /expired at/, idKnown: true },
  ];

  for (const c of cases) {
    it(`${c.what} → ${c.code}`, async () => {
      const blinks = box.leds.blinks.length;
      const id = `c-bad-${randomBytes(3).toString('hex')}`;
      const payload = c.payload(id);
      const x = await exchange(c.command, {}, { id, payload });
      const r = one(x);
      expect(r).toMatchObject({ deviceId: BOX, command: c.command, ok: false, error: { code: c.code, message: expect.stringMatching(c.message) } });
      // The id comes back whenever it can be read (a payload cut short or over 64 KiB too); otherwise only the correlation data ties the reply to its command.
      expect(r.id).toBe(typeof c.idKnown === 'string' ? c.idKnown : c.idKnown ? id : '');
      expect(runs(box, id)).toBe(0);
      expect(box.leds.blinks.length).toBe(blinks);
    });
  }

  it('a duplicate id runs once and gets the same reply again', async () => {
    const id = `c-dup-${randomBytes(3).toString('hex')}`;
    const before = box.leds.blinks.length;
    const first = one(await exchange('identify', { seconds: 3 }, { id }));
    const second = one(await exchange('identify', { seconds: 3 }, { id }));
    expect(first).toMatchObject({ id, ok: true, result: { seconds: 3 } });
    expect(second).toEqual(first);
    expect(box.leds.blinks.slice(before)).toEqual([3000]);
    expect(runs(box, id)).toBe(1);
    expect(box.logs.records('command.duplicate').filter((r) => r.id === id)).toHaveLength(1);
  });

  it('a duplicate id that arrives while the first is still running gets the same reply, and runs once', async () => {
    const id = `c-dup-run-${randomBytes(3).toString('hex')}`;
    const cds = [randomBytes(8), randomBytes(8)];
    const mark = hub.mark();
    // selftest takes a second or two (two short gst-launch runs): the second copy arrives meanwhile.
    for (const cd of cds) await hub.send({ device: BOX }, 'selftest', {}, { id, correlationData: cd });
    await Promise.all(cds.map((cd) => hub.waitFor((m) => m.n > mark && m.kind === 'response' && m.correlationData?.equals(cd) === true, 40_000, 'both responses')));
    await sleep(GRACE_MS);
    const replies = hub.of('reply', BOX).filter((m) => m.n > mark).map((m) => m.json as Reply);
    expect(replies).toHaveLength(2);
    expect(replies[1]).toEqual(replies[0]);
    for (const cd of cds) expect(hub.responses(cd)).toHaveLength(1);
    expect(runs(box, id)).toBe(1);
    // It took the "still running" path (the "answered before" path logs command.duplicate).
    expect(box.logs.records('command.duplicate').filter((r) => r.id === id)).toEqual([]);
  }, 60_000);
});

describe('MQTT 5 request/response', () => {
  it('sends the reply to the response topic with the correlation data, and to the reply topic', async () => {
    const cd = Buffer.from('hub-request-0042');
    const mark = hub.mark();
    const id = await hub.send({ device: BOX }, 'identify', { seconds: 1 }, { correlationData: cd });
    const resp = await hub.waitFor((m) => m.n > mark && m.kind === 'response', 15_000, 'the response');
    expect(resp.topic).toBe(hub.responseTopic(BOX));
    expect(resp.correlationData?.toString()).toBe('hub-request-0042');
    expect(resp.json).toMatchObject({ id, ok: true });
    const reply = await hub.reply(id);
    expect(reply).toEqual(resp.json);
  });

  // The reply topic publish succeeds, the response topic one is refused by the ACL
  // (PUBACK 0x87): the response topic is best effort, so no second reply on reconnect.
  it('a response topic the box may not publish to does not cause a second reply after a reconnect', async () => {
    const id = `c-resp-denied-${randomBytes(3).toString('hex')}`;
    const mark = hub.mark();
    await hub.publish(`ep/v1/dev/${BOX}/cmd/identify`, JSON.stringify({ id, args: { seconds: 1 } }), {
      qos: 1,
      properties: { responseTopic: 'ep/v1/dev/box-p/reply/elsewhere', correlationData: Buffer.from('x') },
    });
    await hub.reply(id);
    await sleep(GRACE_MS);
    expect(hub.replies(id)).toHaveLength(1);
    // Bounce the box's connection: a client with the box's own certificate takes over its client id.
    const tls = broker.tls(BOX);
    const bouncer = mqtt.connect(broker.url, { clientId: BOX, clean: true, protocolVersion: 5, reconnectPeriod: 0, ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) });
    await withTimeout(new Promise<void>((r) => bouncer.once('connect', () => r())), 10_000, 'the bouncer to connect');
    bouncer.end(true);
    await hub.waitFor((m) => m.n > mark && m.kind === 'status' && m.deviceId === BOX && (m.json as { online?: boolean })?.online === true, 20_000, 'the box back online');
    await sleep(GRACE_MS);
    const replies = hub.replies(id);
    console.info('replies to one command after a reconnect, response topic denied:', replies.length, box.logs.records('command.reply_deferred').filter((r) => r.id === id).map((r) => r.err));
    expect(replies).toHaveLength(1);
  }, 40_000);
});

describe('secrets', () => {
  it('a box on the password listener joins with an SRT passphrase; no secret appears in anything it logged or sent', async () => {
    const pbox = await TestBox.start({ deviceId: PW_BOX, groupId: GROUP, broker, caps, password: MQTT_PASSWORD, healthPeriodS: 5 });
    boxes.push(pbox);
    res.add(PW_BOX, () => pbox.dispose());
    await hub.waitState(PW_BOX, (s) => s.state === 'idle', 20_000);
    expect(one(await exchange('config', { logLevel: 'trace' }, { device: PW_BOX })).ok).toBe(true);
    // A join the box must refuse, carrying the passphrase: the refusal must not quote it.
    const bad = one(await exchange('join', { ...meetingSpec('mtg-secret'), srt: { passphrase: PASSPHRASE, latencyMs: 5 } }, { device: PW_BOX }));
    expect(bad.error?.code).toBe('bad_request');
    // Broken JSON right at the passphrase: V8's parse error quotes the text around the error.
    const spec = JSON.stringify(meetingSpec('mtg-secret')).replace(`"passphrase":"${PASSPHRASE}"`, `"passphrase": ${PASSPHRASE}`);
    expect(spec).toContain(`: ${PASSPHRASE}`);
    const broken = one(await exchange('join', {}, { device: PW_BOX, payload: `{"id":"c-broken-secret","args":${spec}}` }));
    expect(broken.error?.code).toBe('bad_request');
    const since = hub.mark();
    const ok = one(await exchange('join', meetingSpec('mtg-secret') as unknown as Record<string, unknown>, { device: PW_BOX }));
    expect(ok.ok).toBe(true);
    await hub.waitState(PW_BOX, (s) => s.state === 'in_meeting', 20_000, since);
    // A health sample taken in the meeting (media stats in it).
    const health = await hub.waitFor((m) => m.n > since && m.kind === 'health' && m.deviceId === PW_BOX && (m.json as { media?: { receive?: unknown } })?.media?.receive !== undefined, 20_000, 'a health sample in the meeting');
    expect(validHealth(health.json), JSON.stringify(validHealth.errors)).toBe(true);
    const logs = one(await exchange('logs', { lines: 2000 }, { device: PW_BOX }));
    const lines = (logs.result as { lines: string[] }).lines;
    expect(lines.map((l) => (JSON.parse(l) as { evt?: string }).evt)).toEqual(expect.arrayContaining(['mqtt.connected', 'command.bad_request', 'command.run', 'meeting.phase']));
    one(await exchange('leave', {}, { device: PW_BOX }));

    // Any 10 characters in a row of a password count as a leak; a PEM body line in full.
    const windows = (x: string): string[] => Array.from({ length: x.length - 9 }, (_, i) => x.slice(i, i + 10));
    const secrets = [...windows(PASSPHRASE), ...windows(MQTT_PASSWORD), ...(await broker.secretTexts())];
    const places: Array<{ where: string; text: string }> = [
      ...boxes.flatMap((b) => b.logs.lines.map((text, i) => ({ where: `${b.deviceId} log line ${i}`, text }))),
      ...boxes.flatMap((b) => b.workerStderr.lines.map((text, i) => ({ where: `${b.deviceId} media worker stderr line ${i}`, text }))),
      ...hub.messages.map((m) => ({ where: `${m.topic} #${m.n}`, text: m.text })),
    ];
    const kinds = new Set(hub.messages.map((m) => m.kind));
    expect([...kinds].sort()).toEqual(expect.arrayContaining(['event', 'health', 'reply', 'response', 'state', 'status']));
    const leaks = places.flatMap((p) => secrets.filter((s) => p.text.includes(s)).map((s) => `${p.where}: ${s.slice(0, 12)}…`));
    console.info('secret scan', { places: places.length, logLines: boxes.reduce((n, b) => n + b.logs.lines.length, 0), workerStderrLines: boxes.reduce((n, b) => n + b.workerStderr.lines.length, 0), hubMessages: hub.messages.length, secrets: secrets.length });
    expect(leaks).toEqual([]);
  }, 90_000);
});
