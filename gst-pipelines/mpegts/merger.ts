/**
 * Two muxers, one transport stream. `mpegtsmux` interleaves its inputs in timestamp
 * order, so with audio and video in one muxer each video frame waits for the Opus
 * packet that covers its timestamp (~20 ms, measured: docs/benchmarks.md). The plan
 * therefore muxes video and audio in two muxers of the same pipeline (same clock, same
 * running time, so the same PTS base) on different PIDs; this merger turns their two
 * outputs into one stream: the video muxer's PAT and PMT, the PMT extended with the
 * audio muxer's elementary-stream entry (and a new version number), the audio muxer's
 * own PAT/PMT dropped. Packets pass as they come, so video never waits for audio.
 * Pure: bytes in, bytes out.
 */
import { TS_PACKET_SIZE, crc32Mpeg2 } from './packetizer.js';

const SYNC = 0x47;

/** Splits a byte stream into whole 188-byte packets, keeping the remainder. */
class PacketSplitter {
  private carry: Buffer = Buffer.alloc(0);
  split(buf: Buffer): Buffer[] {
    const d = this.carry.length ? Buffer.concat([this.carry, buf]) : buf;
    const out: Buffer[] = [];
    let o = 0;
    while (d.length - o >= TS_PACKET_SIZE) {
      if (d[o] !== SYNC) {
        o++; // resynchronise
        continue;
      }
      out.push(d.subarray(o, o + TS_PACKET_SIZE));
      o += TS_PACKET_SIZE;
    }
    this.carry = Buffer.from(d.subarray(o));
    return out;
  }
}

const pidOf = (p: Buffer): number => ((p[1] ?? 0) & 0x1f) << 8 | (p[2] ?? 0);
const pusi = (p: Buffer): boolean => ((p[1] ?? 0) & 0x40) !== 0;

/** The PSI section starting in this packet (single-packet sections only), without CRC check. */
function sectionIn(p: Buffer): { start: number; length: number } | null {
  if (!pusi(p)) return null;
  const afc = ((p[3] ?? 0) >> 4) & 0x3;
  let o = 4;
  if (afc === 2 || afc === 0) return null;
  if (afc === 3) o += 1 + (p[4] ?? 0);
  const start = o + 1 + (p[o] ?? 0);
  if (start + 3 > p.length) return null;
  const length = 3 + ((((p[start + 1] ?? 0) & 0x0f) << 8) | (p[start + 2] ?? 0));
  if (start + length > p.length) return null;
  return { start, length };
}

function patPmtPid(p: Buffer): number | null {
  const s = sectionIn(p);
  if (!s || p[s.start] !== 0x00) return null;
  for (let o = s.start + 8; o + 4 <= s.start + s.length - 4; o += 4) if (p.readUInt16BE(o) !== 0) return p.readUInt16BE(o + 2) & 0x1fff;
  return null;
}

/** The ES loop bytes of a PMT section in this packet. */
function pmtEsLoop(p: Buffer): Buffer | null {
  const s = sectionIn(p);
  if (!s || p[s.start] !== 0x02) return null;
  const infoLen = p.readUInt16BE(s.start + 10) & 0x0fff;
  const from = s.start + 12 + infoLen;
  const to = s.start + s.length - 4;
  return from <= to ? Buffer.from(p.subarray(from, to)) : null;
}

export class TsMerger {
  private readonly video = new PacketSplitter();
  private readonly audio = new PacketSplitter();
  private videoPmtPid: number | null = null;
  private audioPmtPid: number | null = null;
  private audioEntries: Buffer | null = null;
  private audioPids = new Set<number>();
  dropped = 0;

  /** Video muxer output → packets to packetise (its PMT extended with the audio entry). */
  pushVideo(buf: Buffer): Buffer {
    const out: Buffer[] = [];
    for (const p of this.video.split(buf)) {
      const pid = pidOf(p);
      if (pid === 0) this.videoPmtPid = patPmtPid(p) ?? this.videoPmtPid;
      out.push(pid === this.videoPmtPid && this.audioEntries ? this.extendPmt(p) : p);
    }
    return Buffer.concat(out);
  }

  /** Audio muxer output → its audio packets only (PAT/PMT/null dropped, learnt from). */
  pushAudio(buf: Buffer): Buffer {
    const out: Buffer[] = [];
    for (const p of this.audio.split(buf)) {
      const pid = pidOf(p);
      if (pid === 0) {
        this.audioPmtPid = patPmtPid(p) ?? this.audioPmtPid;
        continue;
      }
      if (pid === this.audioPmtPid) {
        const es = pmtEsLoop(p);
        if (es && es.length >= 5) {
          this.audioEntries = es;
          this.audioPids = new Set();
          for (let o = 0; o + 5 <= es.length; o += 5 + (es.readUInt16BE(o + 3) & 0x0fff)) this.audioPids.add(es.readUInt16BE(o + 1) & 0x1fff);
        }
        continue;
      }
      if (this.audioPids.has(pid)) out.push(p);
      else this.dropped++; // before the audio PMT is known, or the audio muxer's null packets
    }
    return Buffer.concat(out);
  }

  /** The video PMT with the audio ES entries appended, version bumped, CRC recomputed. */
  private extendPmt(p: Buffer): Buffer {
    const s = sectionIn(p);
    const entries = this.audioEntries;
    if (!s || p[s.start] !== 0x02 || !entries) return p;
    const body = p.subarray(s.start, s.start + s.length - 4);
    const merged = Buffer.concat([body, entries, Buffer.alloc(4)]);
    const sectionLength = merged.length - 3;
    merged[1] = ((merged[1] ?? 0) & 0xf0) | ((sectionLength >> 8) & 0x0f);
    merged[2] = sectionLength & 0xff;
    const v = (((merged[5] ?? 0) >> 1) + 1) & 0x1f; // a new version: receivers re-read the PMT
    merged[5] = ((merged[5] ?? 0) & 0xc1) | (v << 1);
    merged.writeUInt32BE(crc32Mpeg2(merged.subarray(0, merged.length - 4)), merged.length - 4);
    // mpegtsmux pads PSI packets with adaptation-field stuffing in front of the section;
    // rebuild without it: header (payload only, same CC), pointer field 0, section, 0xFF.
    if (5 + merged.length > TS_PACKET_SIZE) return p; // does not fit in one packet: keep the original
    const q = Buffer.alloc(TS_PACKET_SIZE, 0xff);
    q[0] = SYNC;
    q[1] = p[1] ?? 0;
    q[2] = p[2] ?? 0;
    q[3] = ((p[3] ?? 0) & 0xcf) | 0x10;
    q[4] = 0;
    merged.copy(q, 5);
    return q;
  }
}
