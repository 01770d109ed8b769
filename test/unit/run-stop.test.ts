import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { stopWithin, type Stoppable } from '../../device/cli/run.js';
import { createLogger } from '../../lib/log.js';

describe('ep run: the stop is bounded', () => {
  let lines: Array<Record<string, unknown>>;
  const log = () => createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(...c.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)), cb()) }) });

  beforeEach(() => {
    vi.useFakeTimers();
    lines = [];
  });
  afterEach(() => vi.useRealTimers());

  it('a part that never ends: timeout at the bound, naming the part it was waiting for', async () => {
    const agent: Stoppable = {
      stopStep: null,
      stop() {
        (this as { stopStep: string | null }).stopStep = 'mqtt';
        return new Promise<void>(() => undefined);
      },
    };
    let outcome: string | null = null;
    const p = stopWithin(agent, 10_000, log()).then((o) => (outcome = o));
    await vi.advanceTimersByTimeAsync(9_999);
    expect(outcome).toBeNull();
    await vi.advanceTimersByTimeAsync(2);
    await p;
    expect(outcome).toBe('timeout');
    expect(lines.find((l) => l.evt === 'agent.stop_timeout')).toMatchObject({ boundMs: 10_000, step: 'mqtt' });
  });

  it('a stop that ends or fails is reported as such, with no timeout line', async () => {
    expect(await stopWithin({ stopStep: null, stop: async () => undefined }, 10_000, log())).toBe('stopped');
    const failing: Stoppable = { stopStep: 'outbox', stop: async () => Promise.reject(new Error('disk gone')) };
    expect(await stopWithin(failing, 10_000, log())).toBe('failed');
    expect(lines.find((l) => l.evt === 'agent.stop_failed')).toMatchObject({ step: 'outbox', err: 'disk gone' });
    expect(lines.filter((l) => l.evt === 'agent.stop_timeout')).toEqual([]);
    expect(vi.getTimerCount()).toBe(0); // the bound's timer does not keep the process alive
  });
});
