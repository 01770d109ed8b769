/**
 * The broker restarted 20 times in a row while the box is in a meeting (issue 17): the
 * control plane's faults must not touch media. A real agent with the real media worker,
 * sending the small test picture to a LocalHub, on a real Mosquitto that keeps its
 * persistence across restarts (helpers/mosquitto.ts: saved on every change). Each restart
 * comes as soon as the box is back (its online status and its state reached the hub, and
 * the hub has received more of its frames), never after a fixed sleep; odd ones are a crash
 * (SIGKILL), even ones a clean stop (SIGTERM). Every wait is a hang guard.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LocalHub } from '../../gst-pipelines/hub/local-hub.js';
import { HubClient, TestBox, type HubMessage } from './helpers/hub-client.js';
import { MediaLog, Resources, SMALL, capabilities, hubSpec, startHub } from './helpers/media.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { withTimeout } from './helpers/processes.js';

const BOX = 'box-restarts';
const GROUP = 'grp-restarts';
const RESTARTS = 20;
const GUARD_MS = 30_000;

const res = new Resources();
let broker: Mosquitto;
let hub: HubClient;
let media: LocalHub;
let hubLog: MediaLog;
let box: TestBox;

const isOnline = (m: HubMessage): boolean => m.kind === 'status' && m.deviceId === BOX && (m.json as { online?: boolean } | undefined)?.online === true;

beforeAll(async () => {
  const caps = await capabilities();
  broker = await Mosquitto.start({ devices: { [BOX]: GROUP } });
  res.add('mosquitto', () => broker.stop());
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
  res.add('hub client', () => hub.close());
  media = await startHub(res, { video: SMALL });
  hubLog = new MediaLog(media.supervisor);
  box = await TestBox.start({ deviceId: BOX, groupId: GROUP, broker, caps });
  res.add(BOX, () => box.dispose());
  await hub.waitFor(isOnline, GUARD_MS, 'the box online');
  const id = await hub.send({ device: BOX }, 'join', hubSpec(media, SMALL, { meetingId: 'mtg-restarts' }) as unknown as Record<string, unknown>);
  expect(await hub.reply(id, GUARD_MS)).toMatchObject({ ok: true });
  await hub.waitState(BOX, (s) => s.state === 'in_meeting', GUARD_MS);
  await hubLog.nextSample((s) => s.stats.receive.frames > 0, GUARD_MS, "the box's frames at the hub");
}, 60_000);

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  console.error(`--- ${BOX} log (last 60) ---\n${box.logs.lines.slice(-60).join('\n')}`);
  console.error(`--- hub media --- ${hubLog.describe()}`);
  console.error(`--- mosquitto (last 3000 chars) ---\n${broker.output().slice(-3000)}`);
});

afterAll(() => res.release(), 60_000);

describe('the broker restarted 20 times in a row, the box in a meeting', () => {
  it('the meeting never drops: state in_meeting at every report, the same media worker, frames reaching the hub between restarts; then one reply to a command', async () => {
    const workerPid = box.agent.media.status().workerPid;
    expect(workerPid).not.toBeNull();
    const restarts: string[] = [];
    box.agent.media.on('restart', (r) => restarts.push(r.reason));
    const frames: Array<{ pid: number | null; n: number }> = [{ pid: hubLog.last()!.pid, n: hubLog.last()!.stats.receive.frames }];
    const states: string[] = [];

    for (let i = 1; i <= RESTARTS; i++) {
      const lost = withTimeout(new Promise<void>((r) => box.agent.mqtt.once('offline', () => r())), GUARD_MS, `restart ${i}: the box to see the broker go`);
      await broker.kill(i % 2 ? 'SIGKILL' : 'SIGTERM');
      const since = hub.mark();
      await broker.restart();
      await lost; // it saw this restart (not one it slept through)
      await hub.waitFor((m) => m.n > since && isOnline(m), GUARD_MS, `restart ${i}: the box online again`);
      const state = await hub.waitState(BOX, () => true, GUARD_MS, since);
      states.push(String(state.state));
      // More of the box's frames at the hub since the last restart (counted per hub worker: a new one counts from 0).
      const last = frames.at(-1)!;
      const s = await hubLog.nextSample((x) => x.stats.receive.frames > (x.pid === last.pid ? last.n : 0), GUARD_MS, `restart ${i}: more frames at the hub than ${last.n}`);
      frames.push({ pid: s.pid, n: s.stats.receive.frames });
    }

    expect(states, 'the state the box reported after each restart').toEqual(Array(RESTARTS).fill('in_meeting'));
    expect(restarts, 'media restarts').toEqual([]);
    expect(box.agent.media.status().workerPid, 'the same media worker').toBe(workerPid);
    expect(box.agent.meeting.meeting?.id).toBe('mtg-restarts');
    // No other state than in_meeting reported since the join, by any message of the box.
    const since = hub.states(BOX).findIndex((st) => st.state === 'in_meeting');
    expect(hub.states(BOX).slice(since).map((st) => st.state)).toEqual(hub.states(BOX).slice(since).map(() => 'in_meeting'));

    const id = await hub.send({ device: BOX }, 'identify', { seconds: 1 });
    expect(await hub.repliesAfterGrace(id, { ms: GUARD_MS })).toMatchObject([{ ok: true }]);
    console.info('broker restarts', { restarts: RESTARTS, hubFramesAtEach: frames.map((f) => f.n).join(' '), hubWorkers: new Set(frames.map((f) => f.pid)).size, mosquittoStarts: broker.starts });
  }, 180_000);
});
