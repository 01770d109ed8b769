/**
 * The bottleneck's link model (test/integration/helpers/bottleneck.ts, the narrow uplink
 * the adaptation tests and bench send through), driven by the kit's FakeClock: it serves
 * at its capacity, drops at the tail, queues for queueBytes / capacity, and a capacity
 * change holds at once for what is queued. Exact, where the real-UDP test can only count.
 */
import { describe, expect, it } from 'vitest';
import { Link, UDP_IP_OVERHEAD_BYTES } from '../integration/helpers/bottleneck.js';
import { FakeClock } from '../fakes/index.js';

const PAYLOAD = 1316;
const LINK_BYTES = PAYLOAD + UDP_IP_OVERHEAD_BYTES;
/** ms one packet takes on the wire at `kbps` (kbit/s = bits per ms). */
const wireMs = (kbps: number): number => (LINK_BYTES * 8) / kbps;

function link(kbps: number, queueBytes: number): { l: Link; clock: FakeClock; out: Array<{ n: number; at: number }>; send: (n: number) => void } {
  const clock = new FakeClock(0);
  const l = new Link(kbps, queueBytes, clock);
  const out: Array<{ n: number; at: number }> = [];
  const send = (n: number): void => l.enqueue(Buffer.alloc(PAYLOAD, n % 256), () => out.push({ n, at: clock.now() }));
  return { l, clock, out, send };
}

describe('bottleneck Link', () => {
  it('serves a backlog back to back at its capacity, in order, each packet within the 1 ms timer step of its departure', async () => {
    const { l, clock, out, send } = link(500, 1_000_000);
    for (let n = 0; n < 10; n++) send(n);
    await clock.advance(1000);
    expect(out.map((o) => o.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    out.forEach((o, k) => {
      expect(o.at).toBeGreaterThanOrEqual((k + 1) * wireMs(500));
      expect(o.at).toBeLessThan((k + 1) * wireMs(500) + 1);
    });
    expect(l.lastDelayMs).toBeCloseTo(10 * wireMs(500), 6);
  });

  it('drops at the tail past queueBytes, and the last packet in waits queueBytes / capacity', async () => {
    const { l, clock, out, send } = link(500, 60_000);
    for (let n = 0; n < 100; n++) send(n);
    const fits = Math.floor(60_000 / LINK_BYTES);
    expect(l.totals).toMatchObject({ inPackets: 100, droppedPackets: 100 - fits });
    expect(l.queuedBytes).toBe(fits * LINK_BYTES);
    await clock.advance(10_000);
    expect(out.map((o) => o.n)).toEqual(Array.from({ length: fits }, (_, n) => n));
    expect(l.totals).toMatchObject({ outPackets: fits, outBytes: fits * LINK_BYTES });
    expect(l.lastDelayMs).toBeCloseTo((fits * LINK_BYTES * 8) / 500, 6);
  });

  it('holds 500 kbit/s under a steady 2 Mbit/s, to within one packet', async () => {
    const { clock, out, send } = link(500, 60_000);
    const every = wireMs(2000);
    for (let n = 0; n * every < 3000; n++) {
      send(n);
      await clock.advance(every);
    }
    const inWindow = out.filter((o) => o.at >= 500 && o.at < 3000).length;
    expect(Math.abs(inWindow * LINK_BYTES * 8 - 500 * 2500)).toBeLessThanOrEqual(LINK_BYTES * 8);
  });

  it('a capacity change holds at once, for the packets already queued too (500 → 2000 kbit/s)', async () => {
    const { l, clock, out, send } = link(500, 60_000);
    const every = wireMs(3000);
    for (let n = 0; n * every < 3000; n++) {
      if (n * every >= 1500 && l.capacityKbps === 500) l.setCapacity(2000);
      send(n);
      await clock.advance(every);
    }
    const count = (from: number, to: number): number => out.filter((o) => o.at >= from && o.at < to).length;
    expect(Math.abs(count(0, 1500) - 1500 / wireMs(500))).toBeLessThanOrEqual(1);
    expect(Math.abs(count(1510, 3000) - 1490 / wireMs(2000))).toBeLessThanOrEqual(1);
  });
});
