/**
 * The launcher's pure parts: its options from the environment, what it does when the child
 * exits, what it does at a trial's deadline, and the import reading its installer uses.
 * The loop itself runs with real processes in test/integration/ota-launcher.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { importsOf } from '../../ota/launcher-install.js';
import { afterChildExit, atDeadline, EX_CONFIG, EX_NOTIFY, EX_RESTART, exitStatus, launcherOptions, type ChildEnd } from '../../ota/launcher.js';
import { initialState, type ReleaseState, type Trying } from '../../ota/release-state.js';

describe('launcherOptions', () => {
  it('defaults: /opt/commune-endpoint, 3 starts, 2 s between starts, SIGKILL 10 s after a deadline SIGTERM', () => {
    expect(launcherOptions({})).toEqual({ options: { appRoot: '/opt/commune-endpoint', maxStarts: 3, restartMs: 2000, killMs: 10_000 }, problems: [] });
  });

  it('takes EP_APP_ROOT, EP_LAUNCH_MAX_STARTS and EP_LAUNCH_RESTART_MS', () => {
    expect(launcherOptions({ EP_APP_ROOT: '/tmp/app', EP_LAUNCH_MAX_STARTS: '5', EP_LAUNCH_RESTART_MS: '0' }).options).toMatchObject({ appRoot: '/tmp/app', maxStarts: 5, restartMs: 0 });
  });

  it('a bad value is ignored with a problem to log, never a crash', () => {
    const r = launcherOptions({ EP_LAUNCH_MAX_STARTS: '0', EP_LAUNCH_RESTART_MS: 'soon' });
    expect(r.options).toMatchObject({ maxStarts: 3, restartMs: 2000 });
    expect(r.problems).toEqual(['EP_LAUNCH_MAX_STARTS="0" is not an integer ≥ 1; using 3', 'EP_LAUNCH_RESTART_MS="soon" is not an integer ≥ 0; using 2000']);
  });
});

describe('exitStatus', () => {
  it('the code, or 128 + the signal number as a shell says it', () => {
    expect(exitStatus(0, null)).toBe(0);
    expect(exitStatus(42, null)).toBe(42);
    expect(exitStatus(null, 'SIGTERM')).toBe(143);
    expect(exitStatus(null, 'SIGKILL')).toBe(137);
    expect(exitStatus(null, null)).toBe(1);
  });
});

const end = (over: Partial<ChildEnd> = {}): ChildEnd => ({ version: '1.0.0', trial: false, code: 1, signal: null, stopping: null, deadline: false, ...over });

describe('afterChildExit', () => {
  it('asked to stop: exits with the child’s code, whatever it was', () => {
    expect(afterChildExit(end({ stopping: 'SIGTERM', code: 0 }), 50)).toEqual({ kind: 'exit', code: 0, why: 'stopping (SIGTERM): 1.0.0 exited with code 0' });
    expect(afterChildExit(end({ stopping: 'SIGINT', code: null, signal: 'SIGKILL' }), 50)).toMatchObject({ kind: 'exit', code: 137 });
    // Even a 75 or a 78: systemd asked for the stop, the launcher does not start anything again.
    expect(afterChildExit(end({ stopping: 'SIGTERM', code: EX_RESTART }), 50)).toMatchObject({ kind: 'exit', code: EX_RESTART });
    expect(afterChildExit(end({ stopping: 'SIGTERM', deadline: true, trial: true, code: 0 }), 50)).toMatchObject({ kind: 'exit', code: 0 });
  });

  it('a crash, a kill or an unasked exit 0: starts again after the pause (the next decision counts a trial’s start)', () => {
    expect(afterChildExit(end({ code: 1 }), 50)).toEqual({ kind: 'restart', afterMs: 50, why: '1.0.0 exited with code 1; starting again in 50 ms' });
    expect(afterChildExit(end({ code: 1, trial: true, version: '1.1.0' }), 50)).toEqual({ kind: 'restart', afterMs: 50, why: '1.1.0 exited with code 1 (a failed start of its trial); starting again in 50 ms' });
    expect(afterChildExit(end({ code: null, signal: 'SIGKILL' }), 2000)).toMatchObject({ kind: 'restart', afterMs: 2000, why: '1.0.0 was killed by SIGKILL; starting again in 2000 ms' });
    expect(afterChildExit(end({ code: 0 }), 2000)).toMatchObject({ kind: 'restart' });
    expect(afterChildExit(end({ code: null, startError: 'spawn ENOMEM', trial: true }), 50)).toMatchObject({ kind: 'restart', why: expect.stringContaining('could not start: spawn ENOMEM') });
  });

  it('exit 75 (the agent switched current): starts again, whatever is decided next', () => {
    expect(afterChildExit(end({ code: EX_RESTART }), 50)).toEqual({ kind: 'restart', afterMs: 50, why: '1.0.0 asked for a restart (exit 75); starting again in 50 ms' });
  });

  it('stopped at its trial deadline: starts again (the next decision rolls it back)', () => {
    expect(afterChildExit(end({ deadline: true, trial: true, version: '1.1.0', code: 0 }), 50)).toEqual({
      kind: 'restart',
      afterMs: 50,
      why: '1.1.0 was stopped at its trial deadline (exited with code 0); starting again in 50 ms',
    });
  });

  it('exit 78 (its configuration): a committed version is not restarted, a trial’s is a failed start', () => {
    expect(afterChildExit(end({ code: EX_CONFIG }), 50)).toMatchObject({ kind: 'exit', code: EX_CONFIG });
    expect(afterChildExit(end({ code: EX_CONFIG, trial: true }), 50)).toMatchObject({ kind: 'restart' });
    // A watchdog the agent cannot feed (69): passed on, not a 2 s loop (the unit's RestartPreventExitStatus=78 69).
    expect(afterChildExit(end({ code: EX_NOTIFY }), 50)).toMatchObject({ kind: 'exit', code: EX_NOTIFY });
    expect(afterChildExit(end({ code: EX_NOTIFY, trial: true }), 50)).toMatchObject({ kind: 'restart' });
  });
});

const trying = (over: Partial<Trying> = {}): Trying => ({ version: '1.1.0', from: '1.0.0', since: 1000, deadline: 10_000, starts: 1, fromReachedBroker: true, commandId: 'c-1', ...over });
const onTrial = (t: Trying = trying()): ReleaseState => ({ ...initialState('1.0.0'), trying: t });

describe('atDeadline', () => {
  it('before the deadline: wait until just past it (decideLaunch rolls back only after it)', () => {
    expect(atDeadline(onTrial(), '1.1.0', 4000)).toEqual({ kind: 'wait', ms: 6001 });
    expect(atDeadline(onTrial(), '1.1.0', 10_000)).toEqual({ kind: 'wait', ms: 1 });
  });

  it('a deadline further than a timer can wait is looked at again at the longest wait', () => {
    expect(atDeadline(onTrial(trying({ deadline: 2 ** 40 })), '1.1.0', 0)).toEqual({ kind: 'wait', ms: 2 ** 31 - 1 });
  });

  it('past the deadline, still on trial: stop it, saying where it goes back to', () => {
    expect(atDeadline(onTrial(), '1.1.0', 10_001)).toEqual({ kind: 'stop', why: '1.1.0 did not commit by its trial deadline (1970-01-01T00:00:10.000Z): stopping it to roll back to 1.0.0' });
  });

  it('committed meanwhile: keep it running', () => {
    const committed: ReleaseState = { ...initialState('1.1.0'), previous: '1.0.0' };
    expect(atDeadline(committed, '1.1.0', 10_001)).toEqual({ kind: 'keep', why: '1.1.0 committed before its trial deadline' });
  });

  it('a committed version that runs has no deadline; neither has one that is not the trial', () => {
    expect(atDeadline(initialState('1.0.0'), '1.0.0', 5)).toMatchObject({ kind: 'keep' });
    expect(atDeadline(onTrial(), '1.0.0', 10_001)).toEqual({ kind: 'keep', why: '1.0.0 committed before its trial deadline' });
    expect(atDeadline(onTrial(trying({ version: '1.2.0' })), '1.1.0', 10_001)).toEqual({ kind: 'keep', why: '1.1.0 is no longer on trial' });
  });

  it('the file unreadable at the deadline: nothing is known, it keeps running', () => {
    expect(atDeadline(null, '1.1.0', 10_001)).toMatchObject({ kind: 'keep', why: expect.stringContaining('unreadable') });
  });
});

describe('importsOf (the launcher installer reads the built closure)', () => {
  it('finds static, re-exported, side-effect and literal dynamic imports, not words in comments', () => {
    const js = [
      '#!/usr/bin/env node',
      '/**',
      ' * It imports only node: builtins; import x from "nowhere" in prose is not an import.',
      ' */',
      "import { spawn } from 'node:child_process';",
      "import path from 'node:path';",
      "import {",
      "  a,",
      "  b,",
      "} from '../lib/atomic-file.js';",
      "export { c } from './current.js';",
      "export * from './release-state.js';",
      "import './side-effect.js';",
      "const m = await import('./later.js');",
    ].join('\n');
    expect(importsOf(js).sort()).toEqual(['../lib/atomic-file.js', './current.js', './later.js', './release-state.js', './side-effect.js', 'node:child_process', 'node:path']);
  });
});
