/*
 * epframer's input side (epframer.h): each sink pad's bytes split into 188-byte packets,
 * resynchronising on 0x47 as TsPacketizer does, then merged as TsMerger
 * (gst-pipelines/mpegts/merger.ts) merges them (the rules: epframer.c). Called with
 * the stream lock held.
 */
#include <string.h>
#include "epframer.h"

#define GST_CAT_DEFAULT ep_framer_debug

static guint32 crc_table[256];

void
crc_init (void)
{
  for (guint i = 0; i < 256; i++) {
    guint32 c = (guint32) i << 24;
    for (gint k = 0; k < 8; k++)
      c = (c & 0x80000000u) ? (c << 1) ^ 0x04c11db7u : c << 1;
    crc_table[i] = c;
  }
}

guint32
crc32_mpeg2 (const guint8 * d, gsize n)
{
  guint32 crc = 0xffffffffu;
  for (gsize i = 0; i < n; i++)
    crc = (crc << 8) ^ crc_table[((crc >> 24) ^ d[i]) & 0xff];
  return crc;
}

/* ------------------------------------------------------------------------------------ */
/* Merger (mpegts/merger.ts)                                                             */

/* The PSI section starting in this packet (single-packet sections), without CRC check. */
static gboolean
section_in (const guint8 * p, gint * start, gint * length)
{
  if (!(p[1] & 0x40))
    return FALSE;
  gint afc = (p[3] >> 4) & 0x3;
  gint o = 4;
  if (afc == 2 || afc == 0)
    return FALSE;
  if (afc == 3)
    o += 1 + p[4];
  gint s = o + 1 + (gint) at (p, o);
  if (s + 3 > TS)
    return FALSE;
  gint len = 3 + (gint) (((p[s + 1] & 0x0f) << 8) | p[s + 2]);
  if (s + len > TS)
    return FALSE;
  *start = s;
  *length = len;
  return TRUE;
}

static gint
merger_pat_pmt_pid (const guint8 * p)
{
  gint s, len;
  if (!section_in (p, &s, &len) || p[s] != 0x00)
    return -1;
  for (gint o = s + 8; o + 4 <= s + len - 4; o += 4)
    if (rd16 (p + o) != 0)
      return rd16 (p + o + 2) & 0x1fff;
  return -1;
}

/* The ES loop bytes of a PMT section in this packet. */
static gboolean
merger_pmt_es_loop (const guint8 * p, gint * from, gint * to)
{
  gint s, len;
  if (!section_in (p, &s, &len) || p[s] != 0x02 || s + 12 > TS)
    return FALSE;
  gint info_len = rd16 (p + s + 10) & 0x0fff;
  *from = s + 12 + info_len;
  *to = s + len - 4;
  return *from <= *to;
}

/* The video PMT with the audio ES entries appended, version bumped, CRC recomputed,
 * rebuilt without adaptation-field stuffing. FALSE: keep the original packet. */
static gboolean
merger_extend_pmt (GstEpFramer * self, const guint8 * p, guint8 * q)
{
  gint s, len;
  if (!section_in (p, &s, &len) || p[s] != 0x02 || len < 12)
    return FALSE;
  gint body_len = len - 4;
  gint merged_len = body_len + (gint) self->m_audio_entries_len + 4;
  if (5 + merged_len > TS)
    return FALSE;               /* does not fit in one packet: keep the original */
  guint8 m[TS];
  memcpy (m, p + s, body_len);
  memcpy (m + body_len, self->m_audio_entries, self->m_audio_entries_len);
  gint section_length = merged_len - 3;
  m[1] = (m[1] & 0xf0) | ((section_length >> 8) & 0x0f);
  m[2] = section_length & 0xff;
  guint v = ((m[5] >> 1) + 1) & 0x1f;
  m[5] = (m[5] & 0xc1) | (v << 1);
  guint32 crc = crc32_mpeg2 (m, merged_len - 4);
  m[merged_len - 4] = crc >> 24;
  m[merged_len - 3] = crc >> 16;
  m[merged_len - 2] = crc >> 8;
  m[merged_len - 1] = crc;
  memset (q, 0xff, TS);
  q[0] = SYNC;
  q[1] = p[1];
  q[2] = p[2];
  q[3] = (p[3] & 0xcf) | 0x10;
  q[4] = 0;
  memcpy (q + 5, m, merged_len);
  return TRUE;
}

static void
merger_on_video (GstEpFramer * self, const guint8 * p, gint64 now)
{
  gint pid = pid_of (p);
  guint8 q[TS];
  if (pid == 0) {
    gint v = merger_pat_pmt_pid (p);
    if (v >= 0)
      self->m_video_pmt_pid = v;
  }
  if (pid == self->m_video_pmt_pid && self->m_audio_entries_len > 0
      && merger_extend_pmt (self, p, q))
    p = q;
  packetizer_on_packet (self, p, now);
}

static void
merger_on_audio (GstEpFramer * self, const guint8 * p, gint64 now)
{
  gint pid = pid_of (p);
  if (pid == 0) {
    gint v = merger_pat_pmt_pid (p);
    if (v >= 0)
      self->m_audio_pmt_pid = v;
    return;
  }
  if (pid == self->m_audio_pmt_pid) {
    gint from, to;
    if (merger_pmt_es_loop (p, &from, &to) && to - from >= 5) {
      const guint8 *es = p + from;
      guint n = to - from;
      memcpy (self->m_audio_entries, es, n);
      self->m_audio_entries_len = n;
      memset (self->m_audio_pids, 0, sizeof self->m_audio_pids);
      for (guint o = 0; o + 5 <= n; o += 5 + (rd16 (es + o + 3) & 0x0fff)) {
        guint apid = rd16 (es + o + 1) & 0x1fff;
        self->m_audio_pids[apid >> 3] |= 1 << (apid & 7);
      }
    }
    return;
  }
  if (self->m_audio_pids[pid >> 3] & (1 << (pid & 7)))
    packetizer_on_packet (self, p, now);
  else
    self->st.audio_dropped++;   /* before the audio PMT is known, or a null packet */
}

/* ------------------------------------------------------------------------------------ */
/* Splitting a byte stream into packets (resynchronising on 0x47)                        */

static inline gboolean
confirmed (const guint8 * d, gsize n, gsize p)
{
  return d[p] == SYNC && (p + TS == n || d[p + TS] == SYNC);
}

/* Offset of the packet to take at or after o (n - o >= 188), or -1 when none can be
 * confirmed yet (a 0x47 confirmed by another 188 bytes later, or by the data's end). */
static gssize
next_packet_at (const guint8 * d, gsize n, gsize o)
{
  if (confirmed (d, n, o))
    return o;
  if (d[o] == SYNC) {
    /* 0x47 at o but not 188 bytes later: either o is a truncated packet (a confirmed
     * start inside it wins) or junk follows a good packet (take it). */
    for (gsize p = o + 1; p < o + TS && p + TS <= n; p++)
      if (confirmed (d, n, p))
        return p;
    return o;
  }
  for (gsize p = o + 1; p + TS <= n; p++) {
    const guint8 *c = memchr (d + p, SYNC, n - TS + 1 - p);
    if (!c)
      break;
    p = c - d;
    if (confirmed (d, n, p))
      return p;
  }
  return -1;
}

static void
skip_junk (GstEpFramer * self, gsize n)
{
  if (n == 0)
    return;
  self->st.junk_bytes += n;
  self->st.resyncs++;
  GST_DEBUG_OBJECT (self, "resync: skipped %" G_GSIZE_FORMAT " bytes", n);
}

void
feed (GstEpFramer * self, gint idx, const guint8 * data, gsize size, gint64 now)
{
  EpSplitter *s = &self->split[idx];
  const guint8 *d = data;
  gsize n = size;
  gsize o = 0;

  if (s->carry_len > 0) {
    n = s->carry_len + size;
    if (n > s->scratch_cap) {
      s->scratch_cap = MAX (n, 2 * s->scratch_cap);
      s->scratch = g_realloc (s->scratch, s->scratch_cap);
    }
    memcpy (s->scratch, s->carry, s->carry_len);
    memcpy (s->scratch + s->carry_len, data, size);
    d = s->scratch;
  }
  while (n - o >= TS) {
    gssize p = next_packet_at (d, n, o);
    if (p < 0) {
      /* Nothing confirmable yet: drop what can no longer start a packet. */
      skip_junk (self, n - (TS - 1) - o);
      o = n - (TS - 1);
      break;
    }
    skip_junk (self, (gsize) p - o);
    if (idx == IDX_VIDEO)
      merger_on_video (self, d + p, now);
    else
      merger_on_audio (self, d + p, now);
    o = (gsize) p + TS;
  }
  s->carry_len = n - o;
  memcpy (s->carry, d + o, s->carry_len);
}
