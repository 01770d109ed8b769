import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  isGstStructureParseError,
  parseGstStructure,
  parseGstStructureWithName,
  readGstStructure,
  fastReadingOf,
  srtLinkStats,
  srtRatesBetween,
  srtStatsFromStructure,
} from '../../gst-pipelines/adapt/srt-stats.js';

/**
 * Fixtures: `stats` read through gstreamer-superficial on GStreamer 1.22.0 / libsrt 1.5.1,
 * one sample per line, about 1 s apart, 640x360 x264 in mpegtsmux over loopback through
 * a UDP relay that dropped ~3 % of the data datagrams (so loss/retransmission counters
 * move). `send-*` = srtsink, `receive-*` = srtsrc; `-caller`/`-listener` = that
 * element's mode. `idle` = both elements before any connection.
 */
const fixture = (name: string): string[] =>
  readFileSync(new URL(`./fixtures/srt-stats-${name}.txt`, import.meta.url), 'utf8').split('\n').filter(Boolean);

describe('parseGstStructure', () => {
  it('parses a caller-mode srtsink string: name, typed numbers', () => {
    const { name, fields } = parseGstStructureWithName(fixture('send-caller').at(-1)!);
    expect(name).toBe('application/x-srt-statistics');
    expect(fields).toMatchObject({
      'packets-sent': 822,
      'packets-sent-lost': 25,
      'bytes-sent': 1115664,
      'send-rate-mbps': 1.7828370627782402,
      'rtt-ms': 0.374,
      'bytes-sent-total': 1046596,
    });
    expect(Object.keys(fields)).toHaveLength(22); // every field of the 1.22 string, once
  });

  it('parses the callers GValueArray of escaped nested structures', () => {
    const fields = parseGstStructure(fixture('send-listener-two-callers')[0]!);
    const callers = fields['callers'] as Record<string, unknown>[];
    expect(callers).toHaveLength(2);
    expect(callers[1]).toMatchObject({ 'packets-sent': 732, 'rtt-ms': 0.113, 'caller-address': null });
    expect(fields['bytes-sent-total']).toBe(1922112);
  });

  it('the flat fast path gives what the full reader gives, on every recorded stats string', () => {
    const names = ['idle', 'send-caller', 'send-listener', 'send-listener-two-callers', 'receive-caller', 'receive-listener'];
    let flat = 0;
    for (const name of names)
      for (const line of fixture(name)) {
        expect(parseGstStructureWithName(line), `${name}: ${line.slice(0, 80)}`).toEqual(readGstStructure(line));
        if (!/[<"]/.test(line)) flat++;
      }
    expect(flat, 'caller-mode lines take the fast path').toBeGreaterThan(5);
    // Falls back (and still parses) on what the fast path does not take.
    expect(parseGstStructureWithName('x/y, a=(int)1, raw=7;')).toEqual({ name: 'x/y', fields: { a: 1, raw: '7' } });
    expect(parseGstStructureWithName('x/y, a=(int)1; b=(int)2')).toEqual({ name: 'x/y', fields: { a: 1 } });
  });

  it('fastReadingOf: the five counters of a caller-mode srtsink string, as the whole parse gives them; null otherwise', () => {
    let n = 0;
    for (const line of [...fixture('send-caller'), ...fixture('receive-caller')]) {
      const st = srtStatsFromStructure(line, 'send');
      expect(fastReadingOf(line), line.slice(0, 80)).toEqual({ packetsSent: st.packetsSent, bytesSent: st.bytesSent, acksReceived: st.acksReceived, rttMs: st.rttMs, packetsLost: st.packetsLost });
      n++;
    }
    expect(n).toBeGreaterThan(5);
    for (const line of [...fixture('send-listener-two-callers'), ...fixture('idle')]) expect(fastReadingOf(line)).toBeNull();
  });

  it('parses idle strings', () => {
    expect(fixture('idle').map(parseGstStructure)).toEqual([
      { 'bytes-sent-total': 0 },
      { 'bytes-received-total': 0 },
    ]);
  });

  it('handles quoted strings with escapes, booleans, lists, nested structures and untyped values', () => {
    const s =
      'test/x, s=(string)"quoted \\"x\\" \\303\\251", u=(string)plain\\ text, b=(boolean)true, f=(gboolean)false, ' +
      'n=(int)-3, arr=(GValueArray)< "a", (int)2 >, list=(int){ 1, 2 }, ' +
      'nested=(structure)"inner\\,\\ k\\=\\(int\\)1\\;", r=(int)[ 1, 5 ], raw=7;';
    expect(parseGstStructureWithName(s)).toEqual({
      name: 'test/x',
      fields: {
        s: 'quoted "x" \u00e9',
        u: 'plain text',
        b: true,
        f: false,
        n: -3,
        arr: ['a', 2],
        list: [1, 2],
        nested: { k: 1 },
        r: '[ 1, 5 ]',
        raw: '7',
      },
    });
  });

  it('throws a named error on malformed input', () => {
    for (const bad of ['', ', a=(int)1', 'x, =(int)1', 'x, s=(string)"open', 'x, a=(int)<1, 2']) {
      let err: unknown;
      try {
        parseGstStructure(bad);
      } catch (e) {
        err = e;
      }
      expect(isGstStructureParseError(err), bad).toBe(true);
    }
  });
});

describe('srtStatsFromStructure', () => {
  it('maps a caller-mode srtsink sample (send side)', () => {
    expect(srtStatsFromStructure(fixture('send-caller').at(-1)!, 'send')).toEqual({
      side: 'send',
      source: 'socket',
      peers: 0,
      rttMs: 0.374,
      sendRateMbps: 1.7828370627782402,
      receiveRateMbps: 0,
      bandwidthMbps: 20.352,
      negotiatedLatencyMs: 60,
      packetsSent: 822,
      packetsReceived: 0,
      packetsLost: 25,
      packetsRetransmitted: 25,
      packetsDropped: 0,
      acksReceived: 166,
      bytesSent: 1115664,
      bytesReceived: 0,
      elementBytes: 1046596,
    });
  });

  it('maps a caller-mode srtsrc sample; 1.22 lacks the receive-side retransmit/drop fields', () => {
    const st = srtStatsFromStructure(fixture('receive-caller').at(-1)!, 'receive');
    expect(st).toMatchObject({
      source: 'socket',
      packetsReceived: 732,
      packetsLost: 26,
      bytesReceived: 993264,
      receiveRateMbps: 1.5875817929751395,
      rttMs: 0.42699999999999999,
      elementBytes: 947896,
    });
    expect(st.packetsRetransmitted).toBeNull();
    expect(st.packetsDropped).toBeNull();
  });

  it('reads listener-mode stats from the single caller', () => {
    const rx = srtStatsFromStructure(fixture('receive-listener').at(-1)!, 'receive');
    expect(rx).toMatchObject({ source: 'callers', peers: 1, packetsReceived: 797, packetsLost: 25, elementBytes: 1038700 });
    const tx = srtStatsFromStructure(fixture('send-listener').at(-1)!, 'send');
    expect(tx).toMatchObject({ source: 'callers', peers: 1, packetsSent: 760, packetsLost: 28, packetsRetransmitted: 28, rttMs: 0.42199999999999999 });
  });

  it('combines several callers: sums counters, worst rtt, narrowest bandwidth', () => {
    const st = srtStatsFromStructure(fixture('send-listener-two-callers')[0]!, 'send');
    expect(st).toMatchObject({ peers: 2, packetsSent: 1464, bytesSent: 1986528, rttMs: 0.505, bandwidthMbps: 15.012 });
    expect(st.sendRateMbps).toBeCloseTo(1.6782335584111454 + 1.6736690453522953, 12);
  });

  it('gives nulls, never made-up numbers, before a connection and for garbage', () => {
    const idle = srtStatsFromStructure(fixture('idle')[0]!, 'send');
    expect(idle).toMatchObject({ source: 'none', peers: 0, elementBytes: 0, rttMs: null, packetsSent: null, bytesSent: null });
    const junk = srtStatsFromStructure('(((', 'receive');
    expect(Object.entries(junk).filter(([, v]) => typeof v === 'number' && v !== 0)).toEqual([]);
    expect(junk).toMatchObject({ source: 'none', packetsReceived: null, elementBytes: null });
  });
});

describe('srtRatesBetween', () => {
  it('computes kbps, loss and retransmission over an interval (send side)', () => {
    const [prev, cur] = fixture('send-caller').slice(3).map((l) => srtStatsFromStructure(l, 'send'));
    const r = srtRatesBetween(prev!, cur!, 1000);
    expect(r.kbps).toBeCloseTo(((1115664 - 899424) * 8) / 1000, 6);
    expect(r.lossPct).toBeCloseTo((100 * 7) / 159, 6);
    expect(r.retransPct).toBeCloseTo((100 * 7) / 159, 6);
  });

  it('uses received + lost as the loss base on the receive side; no retransmit counter in 1.22', () => {
    const [prev, cur] = fixture('receive-caller').slice(3).map((l) => srtStatsFromStructure(l, 'receive'));
    const r = srtRatesBetween(prev!, cur!, 1000);
    expect(r.kbps).toBeCloseTo(((993264 - 785184) * 8) / 1000, 6);
    expect(r.lossPct).toBeCloseTo((100 * 7) / (153 + 7), 6);
    expect(r.retransPct).toBeNull();
  });

  it('gives null for a reset counter, a missing field, no traffic or a bad interval', () => {
    const lines = fixture('send-caller');
    const first = srtStatsFromStructure(lines[0]!, 'send');
    const last = srtStatsFromStructure(lines.at(-1)!, 'send');
    expect(srtRatesBetween(last, first, 1000)).toEqual({ kbps: null, lossPct: null, retransPct: null });
    const idle = srtStatsFromStructure(fixture('idle')[0]!, 'send');
    expect(srtRatesBetween(idle, last, 1000)).toEqual({ kbps: null, lossPct: null, retransPct: null });
    expect(srtRatesBetween(last, last, 1000)).toEqual({ kbps: 0, lossPct: null, retransPct: null });
    expect(srtRatesBetween(first, last, 0).kbps).toBeNull();
  });
});

describe('srtLinkStats (what a stats report carries per side)', () => {
  it("the newest reading's RTT and bandwidth, loss and retransmissions since the one before", () => {
    const [prev, cur] = fixture('send-caller').slice(3).map((l) => srtStatsFromStructure(l, 'send'));
    const r = srtLinkStats(prev!, cur!, 1000);
    expect(r).toEqual({ rttMs: cur!.rttMs, lossPct: srtRatesBetween(prev!, cur!, 1000).lossPct, retransPct: srtRatesBetween(prev!, cur!, 1000).retransPct, bandwidthMbps: cur!.bandwidthMbps, sendRateMbps: cur!.sendRateMbps });
    expect(r!.lossPct).toBeCloseTo((100 * 7) / 159, 6);
    expect(r!.rttMs).not.toBeNull();
  });

  it('no reading: null; no reading before: no rates yet', () => {
    const cur = srtStatsFromStructure(fixture('send-caller').at(-1)!, 'send');
    expect(srtLinkStats(cur, null, 1000)).toBeNull();
    expect(srtLinkStats(null, cur, 1000)).toMatchObject({ rttMs: cur.rttMs, lossPct: null, retransPct: null });
  });
});
