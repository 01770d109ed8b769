/**
 * The link impairment the network-fault tests send through (test/integration/helpers/
 * impair.ts, one per direction of a BottleneckRelay), driven by the kit's FakeClock: it
 * loses the share it is told, delays within delay ± jitter, reorders, and a blackout
 * takes everything, including what was already on the link.
 */
import { describe, expect, it } from 'vitest';
import { Impairment, type ImpairOptions } from '../integration/helpers/impair.js';
import { FakeClock } from '../fakes/index.js';

function impairment(opts: ImpairOptions): { imp: Impairment; clock: FakeClock; out: Array<{ n: number; at: number }>; send: (n: number) => void } {
  const clock = new FakeClock(0);
  const imp = new Impairment(opts, clock);
  const out: Array<{ n: number; at: number }> = [];
  const send = (n: number): void => imp.pass(Buffer.from([n % 256]), () => out.push({ n, at: clock.now() }));
  return { imp, clock, out, send };
}

describe('link impairment', () => {
  it('loses about the share it is told, independently of the seed, and the same packets for the same seed', async () => {
    const lostWith = async (seed: number): Promise<number[]> => {
      const { clock, out, send } = impairment({ lossPct: 5, seed });
      for (let n = 0; n < 20_000; n++) send(n);
      await clock.advance(1);
      const got = new Set(out.map((o) => o.n));
      return Array.from({ length: 20_000 }, (_, n) => n).filter((n) => !got.has(n));
    };
    const a = await lostWith(7);
    // 5 % of 20 000 is 1000; the binomial's standard deviation is ~31.
    expect(a.length).toBeGreaterThan(850);
    expect(a.length).toBeLessThan(1150);
    expect(await lostWith(7)).toEqual(a);
    expect(await lostWith(8)).not.toEqual(a);
  });

  it('delays each packet within delay ± jitter, and packets closer than the jitter overtake each other', async () => {
    const { clock, out, send } = impairment({ delayMs: 50, jitterMs: 20 });
    for (let n = 0; n < 1000; n++) {
      send(n);
      await clock.advance(2);
    }
    await clock.advance(100);
    expect(out).toHaveLength(1000);
    for (const o of out) {
      const delay = o.at - o.n * 2;
      expect(delay).toBeGreaterThanOrEqual(30);
      expect(delay).toBeLessThanOrEqual(71);
    }
    const overtaken = out.filter((o, i) => i > 0 && o.n < out[i - 1]!.n).length;
    expect(overtaken).toBeGreaterThan(100);
  });

  it('inOrder: the same jitter, but no packet overtakes another (its wait is stretched instead)', async () => {
    const { clock, out, send } = impairment({ delayMs: 50, jitterMs: 20, inOrder: true });
    for (let n = 0; n < 1000; n++) {
      send(n);
      await clock.advance(2);
    }
    await clock.advance(200);
    expect(out.map((o) => o.n)).toEqual(Array.from({ length: 1000 }, (_, n) => n));
    const delays = out.map((o) => o.at - o.n * 2);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(30);
    // Stretched waits stay near the top of the jitter: the one ahead left at most 70 ms after it came.
    expect(Math.max(...delays)).toBeLessThanOrEqual(72);
    expect(new Set(delays).size).toBeGreaterThan(10);
  });

  it('sends the reorder share at once, ahead of the delayed ones', async () => {
    const { imp, clock, out, send } = impairment({ delayMs: 40, reorderPct: 25 });
    for (let n = 0; n < 400; n++) send(n);
    const atOnce = out.length;
    await clock.advance(41);
    expect(out).toHaveLength(400);
    expect(atOnce).toBe(imp.totals.reorderedPackets);
    expect(atOnce).toBeGreaterThan(60);
    expect(atOnce).toBeLessThan(140);
    expect(out.slice(atOnce).every((o) => o.at === 40)).toBe(true);
  });

  it('a blackout takes every packet, those already on the link too; after it, packets pass again', async () => {
    const { imp, clock, out, send } = impairment({ delayMs: 30 });
    for (let n = 0; n < 10; n++) send(n);
    imp.blackout(true);
    for (let n = 10; n < 20; n++) send(n);
    await clock.advance(31);
    expect(out).toEqual([]);
    imp.blackout(false);
    for (let n = 20; n < 30; n++) send(n);
    await clock.advance(31);
    expect(out.map((o) => o.n)).toEqual(Array.from({ length: 10 }, (_, k) => 20 + k));
    expect(imp.totals).toMatchObject({ inPackets: 30, outPackets: 10, blackoutPackets: 20, lostPackets: 0 });
  });

  it('refuses a share outside 0–100 % or a negative delay, naming the knob', () => {
    const clock = new FakeClock(0);
    expect(() => new Impairment({ lossPct: 101 }, clock)).toThrow(/lossPct/);
    expect(() => new Impairment({ jitterMs: -1 }, clock)).toThrow(/jitterMs/);
  });
});
