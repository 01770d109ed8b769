/**
 * device/liveness.ts: the verdict (pure) from plain liveness snapshots, and the real
 * MqttSession / MediaSupervisor getters it reads, driven by the fake clock.
 */
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { agentLivenessCheck, judgeLiveness, livenessBounds, MEDIA_LAUNCH_BOUND_MS, type MediaLiveness, type MqttLiveness } from '../../device/liveness.js';
import { MqttSession } from '../../device/mqtt/index.js';
import { MediaSupervisor } from '../../gst-pipelines/index.js';
import { FakeClock, FakeMqttClient, FakeSpawner } from '../fakes/index.js';

const NOW = 1_000_000;
const b = livenessBounds(15_000); // WatchdogSec=30s: loop bound 10 s, slack 11 s
const mqttOk: MqttLiveness = { running: true, connected: true, lastTickAt: NOW - 1000, tickMs: 5000, lastProgressAt: NOW - 1000, boundMs: 60_000 };
const idle: MediaLiveness = { phase: 'idle', since: 0, boundMs: 6000, watchdogArmed: false };
const judge = (o: { loopLateMs?: number; mqtt?: Partial<MqttLiveness>; media?: Partial<MediaLiveness> }) =>
  judgeLiveness({ now: NOW, loopLateMs: o.loopLateMs ?? 0, mqtt: { ...mqttOk, ...o.mqtt }, media: { ...idle, ...o.media } as MediaLiveness }, b);

describe('judgeLiveness', () => {
  it('bounds: the loop bound is 10 s or one ping period when shorter; slack = loop bound + 1 s', () => {
    expect(livenessBounds(15_000)).toEqual({ loopBoundMs: 10_000, slackMs: 11_000 });
    expect(livenessBounds(1000)).toEqual({ loopBoundMs: 1000, slackMs: 2000 });
  });

  it('all alive', () => {
    expect(judge({})).toEqual({ alive: true });
  });

  it('event loop: a ping timer later than the bound', () => {
    expect(judge({ loopLateMs: 10_000 })).toEqual({ alive: true });
    expect(judge({ loopLateMs: 10_001 })).toMatchObject({ alive: false, part: 'event_loop' });
  });

  it('mqtt: its tick stale past period + slack; disconnected with no attempt past its bound; not running', () => {
    expect(judge({ mqtt: { lastTickAt: NOW - 16_000 } })).toEqual({ alive: true });
    expect(judge({ mqtt: { lastTickAt: NOW - 16_001 } })).toMatchObject({ alive: false, part: 'mqtt', detail: expect.stringMatching(/not ticked for 16001 ms/) });
    expect(judge({ mqtt: { connected: false, lastProgressAt: NOW - 50_000 } })).toEqual({ alive: true }); // trying, within its bound
    expect(judge({ mqtt: { connected: true, lastProgressAt: NOW - 500_000 } })).toEqual({ alive: true }); // connected: progress is moot
    expect(judge({ mqtt: { connected: false, lastProgressAt: NOW - 76_001 } })).toMatchObject({ alive: false, part: 'mqtt', detail: expect.stringMatching(/disconnected with no attempt/) });
    expect(judge({ mqtt: { running: false } })).toMatchObject({ alive: false, part: 'mqtt' });
  });

  it('media: idle and a scheduled relaunch are alive; a watched worker silent past its hang limit + slack, or unwatched, is not; a launch past its bound is not', () => {
    expect(judge({ media: { phase: 'relaunch_scheduled' } })).toEqual({ alive: true });
    expect(judge({ media: { phase: 'watching', watchdogArmed: true, since: NOW - 17_000 } })).toEqual({ alive: true });
    expect(judge({ media: { phase: 'watching', watchdogArmed: true, since: NOW - 17_001 } })).toMatchObject({ alive: false, part: 'media', detail: expect.stringMatching(/silent for 17001 ms/) });
    expect(judge({ media: { phase: 'watching', watchdogArmed: false, since: NOW } })).toMatchObject({ alive: false, part: 'media', detail: 'a worker runs with no watchdog armed' });
    expect(judge({ media: { phase: 'launching', since: NOW - MEDIA_LAUNCH_BOUND_MS } })).toEqual({ alive: true });
    expect(judge({ media: { phase: 'launching', since: NOW - MEDIA_LAUNCH_BOUND_MS - 11_001 } })).toMatchObject({ alive: false, part: 'media' });
  });

  it('the first part that fails is named: event loop, then mqtt, then media', () => {
    const v = judge({ loopLateMs: 20_000, mqtt: { running: false }, media: { phase: 'watching', watchdogArmed: false } });
    expect(v).toMatchObject({ part: 'event_loop' });
    expect(judge({ mqtt: { running: false }, media: { phase: 'watching', watchdogArmed: false } })).toMatchObject({ part: 'mqtt' });
  });
});

describe('the real getters', () => {
  afterEach(() => void vi.useRealTimers());

  it('MqttSession.liveness(): its tick and progress; wedgeForTest() stops the tick and the verdict becomes mqtt', async () => {
    const clock = new FakeClock(NOW);
    const s = new MqttSession({ url: 'mqtt://x', clientId: 'b', keepaliveS: 30, reconnectBaseMs: 1000, reconnectCapMs: 2000, will: { topic: 'w', payload: () => 'off' }, onlineStatus: { topic: 'w', payload: () => 'on' }, subscriptions: [], clock, connect: (_u, opts) => new FakeMqttClient(opts) as unknown as MqttClient });
    expect(s.liveness().running).toBe(false);
    await s.start();
    expect(s.liveness()).toMatchObject({ running: true, connected: false, lastTickAt: NOW, tickMs: 5000, boundMs: 60_000, lastProgressAt: NOW });
    await clock.advance(12_000);
    expect(s.liveness().lastTickAt).toBe(NOW + 10_000);
    const check = agentLivenessCheck({ mqtt: s, media: { liveness: () => idle } }, () => clock.now(), 1000);
    expect(check(0)).toEqual({ alive: true });
    s.wedgeForTest();
    await clock.advance(5000);
    expect(check(0)).toEqual({ alive: true }); // 7 s since the tick: within 5 s + 2 s
    await clock.advance(1000);
    expect(check(0)).toMatchObject({ alive: false, part: 'mqtt', detail: 'its loop has not ticked for 8000 ms (every 5000 ms)' });
    await s.stop();
    expect(s.liveness().running).toBe(false);
  });

  it('MediaSupervisor.liveness(): idle → watching (since the worker last spoke, watchdog armed) → a silent worker killed → relaunch_scheduled → watching the next', async () => {
    vi.useFakeTimers({ now: NOW });
    const spawner = new FakeSpawner();
    const sup = new MediaSupervisor({ spawner, random: () => 1, backoffBaseMs: 250, backoffCapMs: 4000, statsPeriodMs: 1000 });
    expect(sup.liveness()).toMatchObject({ phase: 'idle', boundMs: 5000 });
    const p = sup.start({ kind: 'standby', pipeline: 'videotestsrc ! fakesink', env: {} } as unknown as Parameters<MediaSupervisor['start']>[0]);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(sup.liveness()).toMatchObject({ phase: 'watching', watchdogArmed: true, since: NOW + 1 });
    await vi.advanceTimersByTimeAsync(3000);
    expect(judge({ media: sup.liveness() })).toEqual({ alive: true });
    await vi.advanceTimersByTimeAsync(2100); // silent past 5 s: its watchdog kills the worker, a relaunch waits 250 ms
    expect(sup.liveness()).toMatchObject({ phase: 'relaunch_scheduled' });
    expect(judge({ media: sup.liveness() })).toEqual({ alive: true });
    await vi.advanceTimersByTimeAsync(300);
    expect(sup.liveness()).toMatchObject({ phase: 'watching', watchdogArmed: true, since: NOW + 5253 });
    const closing = sup.close();
    await vi.advanceTimersByTimeAsync(5000);
    await closing;
    expect(sup.liveness()).toMatchObject({ phase: 'idle' });
  });
});
