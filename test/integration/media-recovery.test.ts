/**
 * Faults in the middle of a session and how the box's media supervisor gets out of them
 * on its own: the hub goes away and comes back on the same ports, the worker process is
 * SIGKILLed, the camera stops producing without any error. Real workers, real SRT.
 *
 * Asserted: what happened and in what order (the box noticed, restarted the right way, in
 * a new process, and media flowed again both ways). How fast is the bench's job:
 * `npm run bench -- --only faults` runs the same scenarios (helpers/recovery.ts) and holds
 * each time to its goal (test/bench/faults.ts). Every wait here is a hang guard.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Resources } from './helpers/media.js';
import { Processes } from './helpers/processes.js';
import { hubAwayAndBack, killWorkerAtTakingHub, killWorkerMidSession, sourceStall } from './helpers/recovery.js';

const res = new Resources();
const procs = new Processes();
afterEach(async () => {
  await procs.killAll();
  await res.release();
});

describe('media recovery without outside help', () => {
  it('resumes both directions after the hub is away for 10 s and comes back on the same ports', async () => {
    const r = await hubAwayAndBack(res);
    console.info('hub away 10 s', r);
    // Noticed while the hub was away (the outage lasts until it is), as a media fault, and
    // back both ways once it returned (the scenario waits for both), with no one touching the box.
    expect(['stall', 'srt_lost', 'srt_connect', 'pipeline', 'crash']).toContain(r.noticed.reason);
    expect(r.status, r.restarts.join(', ')).toMatchObject({ running: true, send: 'ok', receive: 'ok' });
  }, 150_000);

  it('restarts a SIGKILLed worker in a new process: the box receives and sends again, and the test hub takes it back', async () => {
    const r = await killWorkerMidSession(res);
    console.info('SIGKILL recovery', r);
    expect(r.newPid).not.toBeNull();
    expect(r.newPid).not.toBe(r.oldPid);
    // The box's side — the program decoded again, SRT sending on a new connection
    // (first-bytes 'send' needs srtsink's own counters) — the scenario waits for. The hub's
    // side: its decoder has the box's frames again, after libsrt let go of the dead connection.
    expect(r.hubReceivingMs, `box → hub never resumed; ${r.describe}`).not.toBeNull();
  }, 120_000);

  it('SIGKILL ×3 mid-session: each restarted worker connects once, at its first try, and its video reaches a hub that takes the new caller', async () => {
    const { runs, why } = await killWorkerAtTakingHub(res, procs, 3);
    console.info('SIGKILL → video at the hub again (ms)', runs);
    expect(runs.map((r) => r.kill)).toEqual([1, 2, 3]);
    for (const r of runs) {
      expect.soft(r.newPid, `kill ${r.kill}: a new worker`).not.toBe(r.oldPid);
      expect.soft(r.newCallers, `kill ${r.kill}: connections the hub accepted after the kill; ${why()}`).toBe(1);
    }
  }, 150_000);

  it('detects a source that stops without an error as a stall of the send side, and rebuilds the session', async () => {
    const r = await sourceStall(res);
    console.info('stall recovery', r);
    expect(r.restart.reason).toBe('stall');
    expect(r.lastErrorMessage).toMatch(/send/);
    // Rebuilt: a new worker (that sends and receives again: the scenario waits for both),
    // whose frames reach the hub.
    expect(r.newPid).not.toBe(r.oldPid);
    expect.soft(r.hubReceivingMs, 'the hub never received the rebuilt session').not.toBeNull();
  }, 120_000);
});
