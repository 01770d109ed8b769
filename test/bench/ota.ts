/**
 * The `ota` section of the bench (issue 14): what an update costs the box.
 *
 * bundle — a real box updated with a ~50 MB bundle, as test/integration/ota-agent.test.ts
 * sets one up: 1.0.0 installed in a temp app root (installFirstRelease), the launcher
 * installed from dist/ and started with EP_APP_ROOT, `ep run` its child, against the
 * bench's Mosquitto (no TLS) and a static HTTP server in this process. 1.1.0 is the built
 * app plus dist/assets/blob.bin, 50 MiB of random (incompressible) bytes, as a tar.gz;
 * its manifest (no file index: the full bundle) signed with a key made here.
 * - rssIdleMb: VmRSS of the `ep run` process (the launcher's child), median of samples
 *   every 50 ms over 3 s, taken 3 s after the box reported idle;
 * - downloadVerifyStageS: the `ota` command (when: now) published → the box's state.ota
 *   phase `restarting` (downloaded, sha256 checked, unpacked beside 1.0.0, switched; the
 *   process then exits 75). The split from the phases' arrival times at the hub:
 *   checkS (→ downloading: manifest fetched and verified), downloadS (→ verifying),
 *   verifyS (→ installing), stageS (→ switching), switchS (→ restarting);
 * - rssPeakMb: the largest VmRSS sampled every 50 ms from the publish to `restarting`;
 *   hwmPeakMb: VmHWM (the kernel's own peak) after it was reset (clear_refs 5) just
 *   before the publish, read to the last sample: the peak between two samples too;
 * - rssDeltaMb: rssPeakMb − rssIdleMb (goal ≤ 20 MB, median of the runs).
 * The box is then left to restart into 1.1.0 and commit (`committed`), and stopped.
 *
 * delta — measureDelta() (ota-delta.ts): the bytes a JS-only change fetches through the
 * file index against the full bundle of the real app (goal ≤ 5 %).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { installLauncher } from '../../ota/index.js';
import { ROOT, appTree, installFirstRelease, keys, manifestFor, pidsMentioning, sign, startStaticServer, type StaticServer } from '../integration/helpers/ota-fixture.js';
import { startMosquitto } from './agent.js';
import { childPids, endChild, MeasurementError, median, monoMs, round1, round3, sleep, track } from './machine.js';
import { measureDelta, type DeltaMeasurement } from './ota-delta.js';
import { fmt, goal, part, sectionTable, type BenchSection } from './report.js';

export const BLOB_BYTES = 50 * 1024 * 1024;
const run = promisify(execFile);
const SAMPLE_MS = 50;

export interface OtaRun {
  downloadVerifyStageS: number;
  checkS: number | null;
  downloadS: number | null;
  verifyS: number | null;
  stageS: number | null;
  switchS: number | null;
  rssIdleMb: number;
  rssPeakMb: number;
  rssDeltaMb: number;
  hwmPeakMb: number | null;
  /** The largest VmRSS sampled in each phase (a sample belongs to the last phase the hub had seen). */
  peakByPhaseMb: Record<string, number>;
  samples: number;
  committed: boolean;
}

export interface OtaBundleResult {
  bundleBytes: number;
  runs: OtaRun[];
}

const mb = (kb: number): number => round1(kb / 1024);

/** VmRSS and VmHWM of a live process in kB (null when it is gone). */
function memKb(pid: number): { rss: number; hwm: number } | null {
  try {
    const t = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rss: Number(/VmRSS:\s+(\d+)/.exec(t)?.[1]), hwm: Number(/VmHWM:\s+(\d+)/.exec(t)?.[1]) };
  } catch {
    return null;
  }
}

/** The 1.1.0 bundle: the built app and a 50 MiB file of random bytes (written in 1 MiB pieces), as a tar.gz. */
async function bigBundle(work: string): Promise<Buffer> {
  const tree = path.join(work, 'tree-1.1.0');
  await appTree(tree, '1.1.0', async (dir) => {
    await mkdir(path.join(dir, 'dist', 'assets'), { recursive: true });
    const fh = await open(path.join(dir, 'dist', 'assets', 'blob.bin'), 'w');
    try {
      for (let n = 0; n < BLOB_BYTES; n += 1024 * 1024) await fh.write(randomBytes(Math.min(1024 * 1024, BLOB_BYTES - n)));
    } finally {
      await fh.close();
    }
  });
  const out = path.join(work, 'ep-1.1.0.tar.gz');
  await run('tar', ['-czf', out, '--owner=0', '--group=0', '--numeric-owner', '-C', tree, ...(await readdir(tree)).sort()]);
  await rm(tree, { recursive: true, force: true });
  return readFile(out);
}

interface Setup {
  brokerUrl: string;
  server: StaticServer;
  work: string;
  pubKey: string;
  log: (l: string) => void;
}

async function once(i: number, s: Setup): Promise<OtaRun> {
  const device = `bench-ota-${process.pid}-${i}`;
  const appRoot = await mkdtemp(path.join(s.work, 'box-'));
  await installFirstRelease(appRoot, '1.0.0');
  await installLauncher(appRoot, path.join(ROOT, 'dist'));
  const cfg = path.join(appRoot, 'config.json');
  await writeFile(
    cfg,
    JSON.stringify({
      deviceId: device,
      groupId: 'bench',
      name: 'Bench commune',
      mqtt: { url: s.brokerUrl },
      dataDir: path.join(appRoot, 'data'),
      media: { source: 'test' },
      health: { periodS: 3600 },
      log: { level: 'info' },
      ota: { publicKeys: [s.pubKey], commitWindowS: 1, trialS: 60 },
    }),
  );
  const hub = mqtt.connect(s.brokerUrl, { clientId: `bench-ota-hub-${process.pid}-${i}`, protocolVersion: 5, clean: true });
  const seen = new Map<string, number>();
  let online = false;
  let idle = false;
  let reply: Record<string, unknown> | null = null;
  let ended: string | null = null;
  hub.on('message', (topic, payload) => {
    const at = monoMs();
    if (!payload.length) return;
    const msg = JSON.parse(payload.toString()) as Record<string, unknown>;
    if (topic.endsWith('/status') && msg.online === true) online = true;
    if (topic.endsWith('/reply')) reply = msg;
    if (!topic.endsWith('/state')) return;
    if (msg.state === 'idle') idle = true;
    const ota = msg.ota as { phase?: string; code?: string; message?: string } | null | undefined;
    if (ota?.phase && !seen.has(ota.phase)) seen.set(ota.phase, at);
    if (ota?.phase === 'failed' || ota?.phase === 'refused') ended = `${ota.phase}: ${ota.code ?? ''} ${ota.message ?? ''}`;
  });
  let launcher: ChildProcess | null = null;
  let output = '';
  const keep = (d: Buffer): void => void (output = (output + d.toString()).slice(-4000));
  const until = async (what: string, test: () => boolean, ms: number): Promise<void> => {
    const end = monoMs() + ms;
    while (!test()) {
      if (ended) throw new MeasurementError(`ota: the update ended (${ended}) waiting for ${what}`);
      if (launcher && (launcher.exitCode !== null || launcher.signalCode !== null)) throw new MeasurementError(`ota: the launcher exited waiting for ${what}: ${output.slice(-600)}`);
      if (monoMs() > end) throw new MeasurementError(`ota: ${what} did not happen within ${ms} ms: ${output.slice(-600)}`);
      await sleep(20);
    }
  };
  try {
    await new Promise<void>((r, j) => (hub.once('connect', () => r()), hub.once('error', j)));
    await hub.subscribeAsync([`ep/v1/dev/${device}/#`], { qos: 1 });
    launcher = track(
      spawn(process.execPath, [path.join(appRoot, 'launcher', 'ota', 'launcher.js'), '--config', cfg], {
        env: { ...process.env, EP_APP_ROOT: appRoot, EP_LAUNCH_RESTART_MS: '100' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    launcher.stdout?.on('data', keep);
    launcher.stderr?.on('data', keep);
    await until('1.0.0 online and idle', () => online && idle, 30_000);
    const kids = childPids(launcher.pid!);
    const agent = kids.find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(path.join('releases', '1.0.0')));
    if (agent === undefined) throw new MeasurementError(`ota: no ep run of 1.0.0 among the launcher's children (${kids.join(', ')})`);

    await sleep(3000);
    const idleKb: number[] = [];
    for (let t = monoMs() + 3000; monoMs() < t; await sleep(SAMPLE_MS)) idleKb.push(memKb(agent)?.rss ?? NaN);
    if (idleKb.some((k) => !Number.isFinite(k))) throw new MeasurementError(`ota: ep run (${agent}) went away while idle: ${output.slice(-600)}`);

    // The kernel's peak RSS from here on (a reset of VmHWM; root, or the process's owner).
    let hwmReset = true;
    try {
      writeFileSync(`/proc/${agent}/clear_refs`, '5');
    } catch {
      hwmReset = false;
    }
    let peakKb = 0;
    let hwmKb = 0;
    let samples = 0;
    let phase = 'command';
    const byPhase: Record<string, number> = {};
    const sample = (): void => {
      const m = memKb(agent);
      if (!m) return;
      samples++;
      peakKb = Math.max(peakKb, m.rss);
      hwmKb = Math.max(hwmKb, m.hwm);
      for (const [p] of seen) phase = p;
      byPhase[phase] = Math.max(byPhase[phase] ?? 0, mb(m.rss));
    };
    sample();
    const timer = setInterval(sample, SAMPLE_MS);
    const t0 = monoMs();
    let restartingAt: number;
    try {
      await hub.publishAsync(`ep/v1/dev/${device}/cmd/ota`, JSON.stringify({ id: `bench-ota-${Date.now()}`, args: { manifestUrl: s.server.url('ep-1.1.0.json'), when: 'now' } }), { qos: 1 });
      await until("state.ota.phase 'restarting'", () => seen.has('restarting'), 180_000);
      restartingAt = seen.get('restarting')!;
    } finally {
      clearInterval(timer);
    }
    const r = reply as { ok?: boolean } | null;
    if (r?.ok !== true) throw new MeasurementError(`ota: the command's reply was ${JSON.stringify(r)}`);
    const at = (p: string): number | null => seen.get(p) ?? null;
    const span = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : round3((b - a) / 1000));
    const [dl, ver, inst, sw] = [at('downloading'), at('verifying'), at('installing'), at('switching')];
    const rssIdleMb = mb(median(idleKb)!);
    const rssPeakMb = mb(peakKb);
    const run: OtaRun = {
      downloadVerifyStageS: round3((restartingAt - t0) / 1000),
      checkS: span(t0, dl),
      downloadS: span(dl, ver),
      verifyS: span(ver, inst),
      stageS: span(inst, sw),
      switchS: span(sw, restartingAt),
      rssIdleMb,
      rssPeakMb,
      rssDeltaMb: round1(rssPeakMb - rssIdleMb),
      hwmPeakMb: hwmReset ? mb(hwmKb) : null,
      peakByPhaseMb: byPhase,
      samples,
      committed: false,
    };
    // Let the box finish: 1.1.0 starts through the launcher, self-tests and commits.
    run.committed = await until("state.ota.phase 'committed'", () => seen.has('committed'), 60_000).then(
      () => true,
      (e: unknown) => (s.log(`ota: run ${i + 1}: 1.1.0 did not commit: ${(e as Error).message}`), false),
    );
    return run;
  } finally {
    if (launcher) await endChild(launcher, 'SIGTERM', 15_000);
    for (const pid of await pidsMentioning(appRoot)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await hub.endAsync();
    await rm(appRoot, { recursive: true, force: true });
  }
}

export async function measureOtaBundle(o: { runs: number; log: (l: string) => void }): Promise<OtaBundleResult> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'ep-bench-ota-'));
  const server = await startStaticServer();
  let broker: Awaited<ReturnType<typeof startMosquitto>> | null = null;
  try {
    broker = await startMosquitto(work);
    const key = keys();
    const pubKey = path.join(work, 'ota.pub.pem');
    await writeFile(pubKey, key.publicKeyPem);
    const bundle = await bigBundle(work);
    const manifest = manifestFor('1.1.0', bundle, server.url('ep-1.1.0.tar.gz'));
    server.files.set('ep-1.1.0.tar.gz', bundle);
    server.files.set('ep-1.1.0.json', manifest);
    server.files.set('ep-1.1.0.json.sig', sign(manifest, key));
    o.log(`ota: the 1.1.0 bundle is ${bundle.length} bytes`);
    const runs: OtaRun[] = [];
    for (let i = 0; i < o.runs; i++) {
      const r = await once(i, { brokerUrl: broker.url, server, work, pubKey, log: o.log });
      o.log(`ota: run ${i + 1}: download + verify + stage ${r.downloadVerifyStageS} s (check ${r.checkS}, download ${r.downloadS}, verify ${r.verifyS}, stage ${r.stageS}, switch ${r.switchS}); RSS idle ${r.rssIdleMb} MB, peak ${r.rssPeakMb} MB (+${r.rssDeltaMb}), VmHWM ${r.hwmPeakMb ?? '—'} MB; committed ${r.committed}`);
      runs.push(r);
    }
    return { bundleBytes: bundle.length, runs };
  } finally {
    await server.close();
    await broker?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

const med = (xs: Array<number | null>): number | null => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length === xs.length ? median(v) : null;
};

export const otaSection: BenchSection = {
  name: 'ota',
  parts: ['bundle', 'delta'],
  async run(ctx, parts) {
    const unmeasured: Record<string, string> = {};
    const skipped = this.parts.filter((p) => !parts.has(p));
    const bundleFields = ['downloadVerifyStageS', 'rssIdleMb', 'rssPeakMb', 'rssDeltaMb'];
    const b = await part('bundle', parts, unmeasured, bundleFields, () => measureOtaBundle({ runs: ctx.options.otaRuns, log: ctx.log }));
    const d = await part('delta', parts, unmeasured, ['deltaRatio'], (): Promise<DeltaMeasurement> => measureDelta({ log: (l) => ctx.log(`ota: ${l}`) }));
    const runs = b?.runs ?? [];
    const m = (f: (r: OtaRun) => number | null): number | null => (b ? med(runs.map(f)) : null);
    const data = {
      downloadVerifyStageS: m((r) => r.downloadVerifyStageS),
      rssIdleMb: m((r) => r.rssIdleMb),
      rssPeakMb: m((r) => r.rssPeakMb),
      rssDeltaMb: m((r) => r.rssDeltaMb),
      rssDeltaMaxMb: b ? Math.max(...runs.map((r) => r.rssDeltaMb)) : null,
      hwmPeakMb: m((r) => r.hwmPeakMb),
      checkS: m((r) => r.checkS),
      downloadS: m((r) => r.downloadS),
      verifyS: m((r) => r.verifyS),
      stageS: m((r) => r.stageS),
      switchS: m((r) => r.switchS),
      bundleMb: b ? round1(b.bundleBytes / 1024 / 1024) : null,
      bundleBytes: b?.bundleBytes ?? null,
      committedRuns: b ? runs.filter((r) => r.committed).length : null,
      runs,
      deltaRatio: d ? Math.round(d.ratio * 10_000) / 10_000 : null,
      delta: d,
    };
    const goals = [
      goal('rssDeltaMb', '≤ 20 MB (median)', data.rssDeltaMb, (v) => v <= 20),
      goal('deltaRatio', '≤ 0.05', data.deltaRatio, (v) => v <= 0.05),
    ];
    const { t, row, met } = sectionTable(`ota (a ${fmt(data.bundleMb, ' MB')} bundle through the launcher, against Mosquitto and an HTTP server; ${runs.length} runs)`, goals, 36);
    row('download + verify + stage (median)', fmt(data.downloadVerifyStageS, ' s'));
    row('  check / download / verify', `${fmt(data.checkS)} / ${fmt(data.downloadS)} / ${fmt(data.verifyS, ' s')}`);
    row('  stage / switch', `${fmt(data.stageS)} / ${fmt(data.switchS, ' s')}`);
    row('agent RSS idle (median)', fmt(data.rssIdleMb, ' MB'));
    row('agent RSS peak during (median)', fmt(data.rssPeakMb, ' MB'));
    row('agent RSS peak − idle (median)', fmt(data.rssDeltaMb, ' MB'), met('rssDeltaMb'));
    row('  the worst run; VmHWM peak (median)', `${fmt(data.rssDeltaMaxMb, ' MB')}; ${fmt(data.hwmPeakMb, ' MB')}`);
    row('runs committed 1.1.0', b ? `${data.committedRuns}/${runs.length}` : '—');
    row('delta: bytes fetched ÷ bundle', fmt(data.deltaRatio), met('deltaRatio'));
    if (d) t.push(`  delta: ${d.deltaBytes} of ${d.bundleBytes} bytes, ${d.fetchedFiles} of ${d.files} files fetched (${d.changed} changed)`);
    if (b) t.push(`  runs: ${runs.map((r) => `${r.downloadVerifyStageS}/${r.rssIdleMb}/${r.rssPeakMb}`).join(', ')} (s / idle MB / peak MB)`);
    for (const [f, why] of Object.entries(unmeasured)) t.push(`  NOT MEASURED ${f}: ${why}`);
    return { data, unmeasured, skipped, goals, table: t };
  },
};
