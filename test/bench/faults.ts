/**
 * How fast the box gets out of faults (`npm run bench -- --only faults`): the timing goals
 * the integration tests leave to the bench. Each part runs the test's own scenario
 * (test/integration/helpers/recovery.ts, orphan.ts, audio-resume.ts) once and reports the
 * milliseconds; the tests assert what happened and in what order.
 *
 * Fields (ms):
 * - hubAwayNoticedMs: hub gone (10 s outage) → the box's first restart (goal: within the outage);
 * - hubBackHubReceivingMs / hubBackBoxReceivingMs: hub back → ≥ 1 s of the box decoded at
 *   the hub / the box decoding the hub at ≥ 90 % fps (media-recovery.test.ts; ≤ 20 s);
 * - killBoxReceivingMs / killBoxSendingMs: worker SIGKILLed → the new worker decoding the
 *   program / sending on a new SRT connection (≤ 3 s); killHubReceivingMs: → the test
 *   hub decoding the box again (≤ 12 s: this hub waits ~5 s for libsrt to drop the dead caller);
 * - killVideoAtHubMaxMs: SIGKILL ×3 → video at a hub that takes a new caller at once, the
 *   worst of the three (≤ 3 s);
 * - stallDetectedMs: the camera stops without an error → the 'stall' restart (≤ 3 s);
 * - orphanEndMsDeathSignal / orphanEndMsThread: the agent SIGKILLed → its worker gone
 *   (worker-orphan.test.ts; ≤ 500 ms by the parent-death signal, ≤ 1500 ms by the watcher thread);
 * - audioResumeHeardMs / audioResumeHeardMsNode: a worker restarted audio-only → the hub
 *   hears it (adapt-resume.test.ts; ≤ 2.5 s), epframer and Node framing;
 * - authErrorReportedMs: a wrong SRT passphrase → reported as an auth error (media.test.ts; ≤ 10 s).
 */
import type { MediaStatus } from '../../gst-pipelines/index.js';
import { audioOnlyResume } from '../integration/helpers/audio-resume.js';
import { MediaLog, Resources, SMALL, boxPlan, hubSpec, newBox, nextEvent, startHub } from '../integration/helpers/media.js';
import { agentWithWorker, goneWithin } from '../integration/helpers/orphan.js';
import { Processes } from '../integration/helpers/processes.js';
import { hubAwayAndBack, killWorkerAtTakingHub, killWorkerMidSession, sourceStall } from '../integration/helpers/recovery.js';
import { MeasurementError } from './machine.js';
import { fmt, goal, part, sectionTable, type BenchSection } from './report.js';

/** Runs `fn` with fresh resources (and processes), always released. */
async function scenario<T>(fn: (res: Resources, procs: Processes) => Promise<T>): Promise<T> {
  const res = new Resources();
  const procs = new Processes();
  try {
    return await fn(res, procs);
  } finally {
    await procs.killAll();
    await res.release();
  }
}

async function orphanEndMs(guard: 'death-signal' | 'thread'): Promise<number> {
  const a = await agentWithWorker(guard);
  try {
    if (guard === 'death-signal') process.kill(a.worker, 'SIGSTOP'); // only the kernel's signal can end it
    process.kill(a.agent, 'SIGKILL');
    const ms = await goneWithin(a.worker, 15_000);
    if (ms === null) throw new MeasurementError(`orphan (${guard}): the worker was still running 15 s after its agent was killed`);
    return ms;
  } finally {
    a.cleanup();
  }
}

/** A box whose passphrase the hub refuses: ms from start() to a status whose last error is an auth error. */
async function authErrorMs(res: Resources): Promise<number> {
  const hub = await startHub(res, { passphrase: 'correct-horse-battery-staple' });
  const box = newBox(res);
  const log = new MediaLog(box);
  const plan = await boxPlan(hubSpec(hub, SMALL, { srt: { latencyMs: 120, passphrase: 'wrong-passphrase-0000', pbkeylen: 16 } }));
  const isAuth = (e: MediaStatus['lastError']): boolean => !!e && (e.cause === 'srt_auth' || /passphrase/i.test(e.message));
  const t0 = Date.now();
  const reported = nextEvent(box, 'status', (s) => isAuth(s.lastError), 60_000, 'an auth error in the box status');
  await box.start(plan, { passphrase: 'wrong-passphrase-0000' });
  await reported.catch((e: unknown) => {
    throw new MeasurementError(`${(e as Error).message}: ${log.describe()}`);
  });
  return Date.now() - t0;
}

const PARTS = ['hub-away', 'kill', 'kill-at-hub', 'stall', 'orphan', 'audio-resume', 'auth'] as const;

export const faultsSection: BenchSection = {
  name: 'faults',
  parts: PARTS,
  async run(ctx, parts) {
    const unmeasured: Record<string, string> = {};
    const skipped = this.parts.filter((p) => !parts.has(p));
    const say = (p: string): void => ctx.log(`faults: ${p}…`);
    const away = await part('hub-away', parts, unmeasured, ['hubAwayNoticedMs', 'hubBackHubReceivingMs', 'hubBackBoxReceivingMs'], () => (say('hub away 10 s'), scenario((res) => hubAwayAndBack(res))));
    const kill = await part('kill', parts, unmeasured, ['killBoxReceivingMs', 'killBoxSendingMs', 'killHubReceivingMs'], () => (say('worker SIGKILL'), scenario((res) => killWorkerMidSession(res))));
    const atHub = await part('kill-at-hub', parts, unmeasured, ['killVideoAtHubMaxMs'], () => (say('worker SIGKILL ×3, a hub that takes the new caller'), scenario((res, procs) => killWorkerAtTakingHub(res, procs, 3))));
    const stall = await part('stall', parts, unmeasured, ['stallDetectedMs'], () => (say('camera stall'), scenario((res) => sourceStall(res))));
    const orphan = await part('orphan', parts, unmeasured, ['orphanEndMsDeathSignal', 'orphanEndMsThread'], async () => (say('orphaned worker'), { deathSignal: await orphanEndMs('death-signal'), thread: await orphanEndMs('thread') }));
    const resume = await part('audio-resume', parts, unmeasured, ['audioResumeHeardMs', 'audioResumeHeardMsNode'], async () => {
      say('worker restarted audio-only');
      return { epframer: await scenario((res) => audioOnlyResume(res, 'epframer')), node: await scenario((res) => audioOnlyResume(res, 'node')) };
    });
    const auth = await part('auth', parts, unmeasured, ['authErrorReportedMs'], () => (say('wrong SRT passphrase'), scenario((res) => authErrorMs(res))));

    const data = {
      hubAwayNoticedMs: away?.noticed.afterMs ?? null,
      hubBackHubReceivingMs: away?.hubReceivingAfterMs ?? null,
      hubBackBoxReceivingMs: away?.boxReceivingAfterMs ?? null,
      killBoxReceivingMs: kill?.boxReceivingMs ?? null,
      killBoxSendingMs: kill?.boxSendingMs ?? null,
      killHubReceivingMs: kill?.hubReceivingMs ?? null,
      killVideoAtHubMaxMs: atHub ? Math.max(...atHub.runs.map((r) => r.resumeMs)) : null,
      stallDetectedMs: stall?.detectedMs ?? null,
      orphanEndMsDeathSignal: orphan?.deathSignal ?? null,
      orphanEndMsThread: orphan?.thread ?? null,
      audioResumeHeardMs: resume?.epframer.heardMs ?? null,
      audioResumeHeardMsNode: resume?.node.heardMs ?? null,
      authErrorReportedMs: auth ?? null,
      runs: { away, kill, killAtHub: atHub?.runs ?? null, stall },
    };
    const le = (field: keyof typeof data, max: number, target = `≤ ${max} ms`) => goal(field, target, data[field] as number | null, (v) => v <= max);
    const goals = [
      le('hubAwayNoticedMs', 10_000, '< 10 000 ms (the outage)'),
      le('hubBackHubReceivingMs', 20_000),
      le('hubBackBoxReceivingMs', 20_000),
      le('killBoxReceivingMs', 3000),
      le('killBoxSendingMs', 3000),
      le('killHubReceivingMs', 12_000),
      le('killVideoAtHubMaxMs', 3000),
      le('stallDetectedMs', 3000),
      le('orphanEndMsDeathSignal', 500),
      le('orphanEndMsThread', 1500),
      le('audioResumeHeardMs', 2500),
      le('audioResumeHeardMsNode', 2500),
      le('authErrorReportedMs', 10_000),
    ];
    const { t, row, met } = sectionTable('faults (SMALL 640x360@15 sessions on this machine, one run each)', goals, 46);
    row('hub gone → box restarts (10 s outage)', fmt(data.hubAwayNoticedMs, ' ms'), met('hubAwayNoticedMs'));
    row('hub back → hub decodes the box', fmt(data.hubBackHubReceivingMs, ' ms'), met('hubBackHubReceivingMs'));
    row('hub back → box decodes the hub (≥ 90 % fps)', fmt(data.hubBackBoxReceivingMs, ' ms'), met('hubBackBoxReceivingMs'));
    row('worker SIGKILL → box decodes the program', fmt(data.killBoxReceivingMs, ' ms'), met('killBoxReceivingMs'));
    row('worker SIGKILL → box sends (new SRT connection)', fmt(data.killBoxSendingMs, ' ms'), met('killBoxSendingMs'));
    row('worker SIGKILL → test hub decodes the box', fmt(data.killHubReceivingMs, ' ms'), met('killHubReceivingMs'));
    row('SIGKILL ×3 → video at a taking hub (worst)', fmt(data.killVideoAtHubMaxMs, ' ms'), met('killVideoAtHubMaxMs'));
    row('camera stops → stall restart', fmt(data.stallDetectedMs, ' ms'), met('stallDetectedMs'));
    row('agent SIGKILL → worker gone (death signal)', fmt(data.orphanEndMsDeathSignal, ' ms'), met('orphanEndMsDeathSignal'));
    row('agent SIGKILL → worker gone (watcher thread)', fmt(data.orphanEndMsThread, ' ms'), met('orphanEndMsThread'));
    row('audio-only restart → hub hears it (epframer)', fmt(data.audioResumeHeardMs, ' ms'), met('audioResumeHeardMs'));
    row('audio-only restart → hub hears it (Node framing)', fmt(data.audioResumeHeardMsNode, ' ms'), met('audioResumeHeardMsNode'));
    row('wrong passphrase → auth error reported', fmt(data.authErrorReportedMs, ' ms'), met('authErrorReportedMs'));
    if (atHub) t.push(`  SIGKILL ×3 at a taking hub (ms): ${atHub.runs.map((r) => r.resumeMs).join(', ')}`);
    for (const [f, why] of Object.entries(unmeasured)) t.push(`  NOT MEASURED ${f}: ${why}`);
    return { data, unmeasured, skipped, goals, table: t };
  },
};
