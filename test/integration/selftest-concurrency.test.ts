/**
 * Issue 13 (10): eight simultaneous `selftest` commands started eight gst-launch-1.0
 * processes. Now one selftest runs at a time and the others get its report. The codec
 * checks are the real thing (gst-launch-1.0 with this machine's encoder and decoder);
 * at every gst-launch the selftest starts, this test counts the gst-launch-1.0 children
 * of this process in /proc (zombies too: a child Node has not reaped yet has not ended
 * as far as the selftest knows).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActions, type ActionDeps } from '../../device/actions.js';
import { runGstLaunch, runSelftest, type SelftestReport } from '../../device/selftest.js';
import type { Capabilities } from '../../gst-pipelines/types.js';
import { capabilities } from './helpers/media.js';

/**
 * The check processes this process started, from /proc: each gst-launch-1.0 runs under
 * coreutils' `timeout` (device/selftest.ts: it ends even if the agent is gone), so these are
 * the `timeout … gst-launch-1.0 …` children — exec'd by the time the spawn returns, unlike
 * the gst-launch-1.0 they fork. Synchronous on purpose: no event-loop turn while it reads,
 * so no child is reaped meanwhile and one just started is always counted.
 */
function gstLaunchChildren(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    if (comm !== 'timeout' || ppid !== process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmdline.split('\0').includes('gst-launch-1.0')) pids.push(Number(name));
  }
  return pids;
}

/** Every dependency but `selftest` throws when touched: the selftest handler must need nothing else. */
function actionDeps(selftest: () => Promise<SelftestReport>): ActionDeps {
  const untouched = new Proxy({} as ActionDeps, {
    get: (_t, key) => {
      throw new Error(`the selftest handler touched ${String(key)}`);
    },
  });
  return new Proxy(untouched, { get: (t, key) => (key === 'selftest' ? selftest : Reflect.get(t, key)) });
}

describe('selftest: one at a time', () => {
  let dataDir: string;
  let caps: Capabilities;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'ep-selftest-'));
    caps = await capabilities();
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('eight simultaneous selftests run one gst-launch-1.0 at a time and all get the same report', async () => {
    const seen: number[] = [];
    let launches = 0;
    const run = createActions(
      actionDeps(() =>
        runSelftest({
          caps: async () => caps,
          testSources: true,
          inMeeting: () => false,
          mqttConnected: () => true,
          dataDir,
          gstLaunch: async (description, timeoutMs) => {
            launches++;
            const done = runGstLaunch(description, timeoutMs); // the child exists once this returns
            seen.push(gstLaunchChildren().length);
            return done;
          },
        }),
      ),
    );

    const replies = await Promise.all(Array.from({ length: 8 }, () => run('selftest', {})));
    expect(seen, 'gst-launch-1.0 children running at each start').toEqual([1, 1]);
    expect(launches).toBe(2); // the encode check and the encode → decode check, once
    const checks = (replies[0]!.checks as SelftestReport['checks']).filter((c) => c.check === 'encoder' || c.check === 'decoder');
    expect(checks.map((c) => [c.check, c.ok])).toEqual([
      ['encoder', true],
      ['decoder', true],
    ]);
    for (const r of replies) expect(r).toEqual(replies[0]);
    expect(gstLaunchChildren()).toEqual([]);

    // Over, so the next selftest runs again (nothing kept from the last run).
    await run('selftest', {});
    expect(launches).toBe(4);
    expect(seen).toEqual([1, 1, 1, 1]);
  });
});
