/*
 * epframer: two mpegtsmux outputs (video muxer on `video`, audio muxer on `audio`) in,
 * whole 1316-byte SRT messages (7 TS packets) out. The native port of
 * gst-pipelines/ts-merge.ts (TsMerger) followed by gst-pipelines/ts-packetizer.ts
 * (TsPacketizer); those files are the reference semantics, this one keeps their
 * names (merger_*, packetizer_*) so the two can be read side by side.
 *
 *   mpegtsmux name=mux alignment=0 ! f.video
 *   mpegtsmux name=amux alignment=0 ! f.audio
 *   epframer name=f hold-ms=38 ! srtsink sync=false
 *
 * Merger: the video stream's PAT/PMT pass, its PMT extended with the audio muxer's ES
 * loop entries (version bumped, CRC recomputed); the audio stream's PAT/PMT/null
 * packets are dropped and only the audio PIDs learnt from its PMT pass.
 * Packetizer: every full group of 7 packets leaves at once; at the end of a video PES
 * (PES_packet_length reached; unbounded PES: adaptation-field stuffing or the next
 * PUSI) the remainder is padded with null packets to 7; audio/PSI-only remainders wait
 * until they fill 7 or are `hold-ms` old.
 *
 * Time: g_get_monotonic_time() (µs), not the pipeline clock: it needs no clock (works in
 * non-live file pipelines too) and is what Date.now() was to the JS version. There are
 * no timers: the age of the oldest pending packet is checked whenever a buffer or a
 * buffer list arrives on either pad, before its packets are queued (as the JS hold timer
 * would have fired by then) and after (as TsPacketizer.push does). Audio arrives every
 * 20 ms, so a remainder waits at most hold-ms + ~20 ms.
 *
 * Threads: both sink pads' streaming threads process and push under one mutex
 * (`lock`), like funnel serialises its pushes. Properties and the counters exposed to
 * applications are under the object lock only (the counters are a snapshot published
 * after each buffer), so reading them never waits for a push that blocks downstream.
 *
 * Events: the src pad gets one stream-start (the video pad's, or a new one if audio
 * produces output first), fixed caps and a TIME segment (the video pad's if TIME,
 * else a default one) before the first buffer. EOS goes out once both sink pads had
 * EOS (a sink pad that is not linked counts as EOS), after the remainder is padded and
 * pushed. Flush-start/stop on the video pad are forwarded (and reset the parsing
 * state); on the audio pad they only reset the audio side and are not forwarded. Other
 * video events are forwarded; every other audio event is dropped: its stream-start,
 * caps, segment and tags would conflict with the video's, and the serialized
 * non-sticky ones mpegtsmux can send (gap, custom) mean nothing for the merged stream.
 * Output buffers carry no timestamps (srtsink sync=false).
 *
 * At EOS the counters are also posted as an element message `epframer-stats` (and
 * logged at INFO level), so gst-launch-1.0 -m shows them.
 *
 * Link watch (watch-ms > 0): srtsink's counters read on the streaming threads for the
 * worker's link adaptation, `epframer-link` messages when its trigger fires; the ring
 * and the trigger are in epframer-link.c (see epframer-link.h). Its state and settings
 * are under the object lock.
 */
#include <math.h>
#include <string.h>
#include <gst/gst.h>
#include "epframer-link.h"

#define PACKAGE "epframer"
#define VERSION "1.0.0"
#define GST_PACKAGE_NAME "commune-endpoint epframer"
#define GST_PACKAGE_ORIGIN "https://github.com/commune-endpoint"
#define GST_LICENSE "LGPL"

GST_DEBUG_CATEGORY (ep_framer_debug);
#define GST_CAT_DEFAULT ep_framer_debug

#define TS 188
#define PPM 7
#define MSG (TS * PPM)
#define NULL_PID 0x1fff
#define SYNC 0x47
#define STREAM_TYPE_H264 0x1b
#define STREAM_TYPE_PRIVATE 0x06
#define REGISTRATION_DESCRIPTOR 0x05

#define DEFAULT_HOLD_MS 38
#define MAX_HOLD_MS 10000
#define DEFAULT_PAD_KBPS 0
#define MAX_PAD_KBPS 1000000


#define EP_CAPS "video/mpegts, systemstream=(boolean)true, packetsize=(int)188"

enum { IDX_VIDEO = 0, IDX_AUDIO = 1 };
enum { FLUSH_FRAME_END, FLUSH_HOLD, FLUSH_FORCED };
/* The open video PES: none, unbounded (PES_packet_length 0), bounded (bytes left). */
enum { VPES_NONE, VPES_UNBOUNDED, VPES_BOUNDED };

typedef struct
{
  guint video_frames;
  guint frames_ended;
  guint messages_out;
  guint padding_packets;
  guint pad_messages;
  guint continuity_errors;
  guint resyncs;
  guint junk_bytes;
  guint audio_pes;
  guint audio_dropped;
  guint flushes_frame_end;
  guint flushes_hold;
  guint flushes_forced;
  guint64 bytes_out;
  gint64 last_output_us;
} EpStats;

typedef struct
{
  guint8 carry[TS];             /* a partial packet (< 188 bytes) */
  guint carry_len;
  guint8 *scratch;              /* carry + the next buffer, when there is a carry */
  gsize scratch_cap;
  gboolean eos;
} EpSplitter;

#define GST_TYPE_EP_FRAMER (gst_ep_framer_get_type ())
G_DECLARE_FINAL_TYPE (GstEpFramer, gst_ep_framer, GST, EP_FRAMER, GstElement)

struct _GstEpFramer
{
  GstElement parent;

  GstPad *sinkpad[2];
  GstPad *srcpad;

  /* Stream lock: everything below `settings`, and every push on srcpad. */
  GMutex lock;

  /* Under the object lock. */
  guint hold_ms;
  guint pad_kbps;
  EpStats pub;

  /* Link watch (also under the object lock). */
  EpLinkWatch link;

  /* ---- under `lock` ---- */
  EpSplitter split[2];

  /* merger (ts-merge.ts) */
  gint m_video_pmt_pid;
  gint m_audio_pmt_pid;
  guint8 m_audio_entries[TS];
  guint m_audio_entries_len;
  guint8 m_audio_pids[8192 / 8];

  /* packetizer (ts-packetizer.ts) */
  gint8 cc[8192];
  gint pmt_pid;
  gint video_pid;
  gint audio_pid;
  gint vpes;
  gint64 vremaining;
  guint8 pending[MSG];
  guint pending_n;
  gint64 pending_since;         /* µs: when the oldest pending packet arrived */
  guint8 *out;                  /* whole messages ready to push */
  gsize out_len;
  gsize out_cap;

  /* pad-kbps */
  gdouble pad_credit;           /* bytes */
  gint64 pad_last;
  gboolean pad_running;

  EpStats st;

  /* src events */
  GstEvent *video_stream_start;
  GstSegment video_segment;
  gboolean have_video_segment;
  gboolean sent_stream_start;
  gboolean sent_caps;
  gboolean sent_segment;
  gboolean eos_sent;
};

enum
{
  PROP_0,
  PROP_HOLD_MS,
  PROP_PAD_KBPS,
  PROP_VIDEO_FRAMES,
  PROP_FRAMES_ENDED,
  PROP_MESSAGES_OUT,
  PROP_BYTES_OUT,
  PROP_PADDING_PACKETS,
  PROP_PAD_MESSAGES,
  PROP_CONTINUITY_ERRORS,
  PROP_RESYNCS,
  PROP_JUNK_BYTES,
  PROP_AUDIO_PES,
  PROP_AUDIO_DROPPED,
  PROP_FLUSHES_FRAME_END,
  PROP_FLUSHES_HOLD,
  PROP_FLUSHES_FORCED,
  PROP_LAST_OUTPUT_US,
  PROP_WATCH_MS,
  PROP_WATCH_WINDOW_MS,
  PROP_TRIGGER_SPAN_MS,
  PROP_TRIGGER_THIN_MS,
  PROP_TRIGGER_QUEUE_US,
  PROP_RTT_FLOOR_US,
  PROP_TRIGGER_MIN_RATE,
  PROP_TRIGGER_ACK_RATE,
  PROP_TRIGGER_ACK_PERMILLE,
  PROP_LINK_READINGS,
  PROP_LINK_TRIGGERS,
};

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE ("video",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (EP_CAPS));
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE ("audio",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (EP_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (EP_CAPS));

G_DEFINE_TYPE (GstEpFramer, gst_ep_framer, GST_TYPE_ELEMENT);

static guint32 crc_table[256];
static guint8 null_message[MSG];

/* ------------------------------------------------------------------------------------ */
/* Byte helpers                                                                          */

/* A byte of a 188-byte packet, 0 beyond its end (the JS `p[i] ?? 0`). */
static inline guint
at (const guint8 * p, gint i)
{
  return (i >= 0 && i < TS) ? p[i] : 0;
}

static inline guint
rd16 (const guint8 * p)
{
  return ((guint) p[0] << 8) | p[1];
}

static inline gint
pid_of (const guint8 * p)
{
  return ((p[1] & 0x1f) << 8) | p[2];
}

static void
crc_init (void)
{
  for (guint i = 0; i < 256; i++) {
    guint32 c = (guint32) i << 24;
    for (gint k = 0; k < 8; k++)
      c = (c & 0x80000000u) ? (c << 1) ^ 0x04c11db7u : c << 1;
    crc_table[i] = c;
  }
}

/* CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor). */
static guint32
crc32_mpeg2 (const guint8 * d, gsize n)
{
  guint32 crc = 0xffffffffu;
  for (gsize i = 0; i < n; i++)
    crc = (crc << 8) ^ crc_table[((crc >> 24) ^ d[i]) & 0xff];
  return crc;
}

static void
null_packet (guint8 * p)
{
  memset (p, 0xff, TS);
  p[0] = SYNC;
  p[1] = 0x1f;
  p[2] = 0xff;
  p[3] = 0x10;
}

/* ------------------------------------------------------------------------------------ */
/* Merger (ts-merge.ts)                                                                  */

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

static void packetizer_on_packet (GstEpFramer * self, const guint8 * p, gint64 now);

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
/* Packetizer (ts-packetizer.ts)                                                         */

static void
packetizer_emit (GstEpFramer * self)
{
  gsize n = (gsize) self->pending_n * TS;
  if (self->out_len + n > self->out_cap) {
    self->out_cap = MAX (self->out_cap * 2, self->out_len + n);
    self->out = g_realloc (self->out, self->out_cap);
  }
  memcpy (self->out + self->out_len, self->pending, n);
  self->out_len += n;
  self->pending_n = 0;
}

static void
packetizer_flush_pending (GstEpFramer * self, gint reason)
{
  if (self->pending_n == 0)
    return;
  guint pad = (PPM - self->pending_n % PPM) % PPM;
  for (guint i = 0; i < pad; i++)
    null_packet (self->pending + (gsize) (self->pending_n + i) * TS);
  self->pending_n += pad;
  self->st.padding_packets += pad;
  if (reason == FLUSH_FRAME_END)
    self->st.flushes_frame_end++;
  else if (reason == FLUSH_HOLD)
    self->st.flushes_hold++;
  else
    self->st.flushes_forced++;
  packetizer_emit (self);
}

static gboolean
packetizer_is_due (GstEpFramer * self, gint64 now, gint64 hold_us)
{
  return self->pending_n > 0 && now - self->pending_since >= hold_us;
}

/* True when the adaptation field (length `afl`, at byte 4) holds stuffing bytes. */
static gboolean
has_stuffing (const guint8 * p, guint afl)
{
  if (afl == 0)
    return TRUE;                /* a zero-length adaptation field is one byte of stuffing */
  guint flags = p[5];
  gint used = 1;
  if (flags & 0x10)
    used += 6;                  /* PCR */
  if (flags & 0x08)
    used += 6;                  /* OPCR */
  if (flags & 0x04)
    used += 1;                  /* splice_countdown */
  if (flags & 0x02)
    used += 1 + (gint) at (p, 5 + used);        /* transport_private_data */
  if (flags & 0x01)
    used += 1 + (gint) at (p, 5 + used);        /* adaptation_field_extension */
  return (gint) afl > used;
}

/* The single-packet PSI section in a PUSI payload, CRC-checked. */
static gboolean
read_section (const guint8 * payload, gint plen, const guint8 ** body, gint * body_len)
{
  gint start = 1 + (gint) (plen > 0 ? payload[0] : 0xff);
  if (start + 3 > plen)
    return FALSE;
  gint length = ((payload[start + 1] & 0x0f) << 8) | payload[start + 2];
  gint end = start + 3 + length;
  if (length < 9 || end > plen)
    return FALSE;
  if (crc32_mpeg2 (payload + start, 3 + length) != 0)
    return FALSE;
  *body = payload + start;
  *body_len = 3 + length - 4;
  return TRUE;
}

static void
packetizer_on_section (GstEpFramer * self, gint pid, const guint8 * payload, gint plen)
{
  const guint8 *body;
  gint len;
  if (!read_section (payload, plen, &body, &len))
    return;
  if (pid == 0 && body[0] == 0x00) {
    for (gint o = 8; o + 4 <= len; o += 4) {
      if (rd16 (body + o) != 0) {
        self->pmt_pid = rd16 (body + o + 2) & 0x1fff;
        break;
      }
    }
  } else if (pid == self->pmt_pid && body[0] == 0x02) {
    gint video = -1, audio = -1;
    if (len < 12)
      return;                   /* (the JS version would throw here) */
    gint o = 12 + (gint) (rd16 (body + 10) & 0x0fff);
    while (o + 5 <= len) {
      guint type = body[o];
      gint pid_ = rd16 (body + o + 1) & 0x1fff;
      gint info_end = o + 5 + (gint) (rd16 (body + o + 3) & 0x0fff);
      if (type == STREAM_TYPE_H264 && video < 0)
        video = pid_;
      if (type == STREAM_TYPE_PRIVATE && audio < 0) {
        for (gint d = o + 5; d + 2 <= info_end && d + 2 <= len; d += 2 + body[d + 1]) {
          guint dl = body[d + 1];
          if (body[d] == REGISTRATION_DESCRIPTOR && dl >= 4 && d + 6 <= len
              && memcmp (body + d + 2, "Opus", 4) == 0)
            audio = pid_;
        }
      }
      o = info_end;
    }
    if (video != self->video_pid || audio != self->audio_pid)
      GST_DEBUG_OBJECT (self, "PMT: video PID %d, audio PID %d", video, audio);
    self->video_pid = video;
    self->audio_pid = audio;
  }
}

static void
packetizer_check_continuity (GstEpFramer * self, gint pid, gint cc, gboolean discontinuity)
{
  gint last = self->cc[pid];
  if (last >= 0 && !discontinuity && cc != last && cc != ((last + 1) & 0x0f)) {
    self->st.continuity_errors++;
    GST_DEBUG_OBJECT (self, "continuity error on PID %d: %d after %d", pid, cc, last);
  }
  self->cc[pid] = (gint8) cc;
}

static void
packetizer_on_packet (GstEpFramer * self, const guint8 * p, gint64 now)
{
  gint pid = pid_of (p);
  gboolean pusi = (p[1] & 0x40) != 0;
  gint afc = (p[3] >> 4) & 0x03;
  gint afl = (afc & 0x02) ? p[4] : -1;
  gint payload_start = afl >= 0 ? 5 + afl : 4;
  gboolean has_payload = (afc & 0x01) && payload_start < TS;
  gboolean stuffed = afl >= 0 && has_stuffing (p, afl);
  gboolean discontinuity = afl > 0 && (p[5] & 0x80);
  gboolean frame_end = FALSE;

  if (has_payload && pid != NULL_PID)
    packetizer_check_continuity (self, pid, p[3] & 0x0f, discontinuity);
  if (has_payload && pusi && (pid == 0 || pid == self->pmt_pid))
    packetizer_on_section (self, pid, p + payload_start, TS - payload_start);
  if (pid == self->audio_pid && pusi && has_payload)
    self->st.audio_pes++;

  if (pid == self->video_pid && has_payload) {
    gint payload_len = TS - payload_start;
    if (pusi) {
      /* A new PES also ends one still open (unbounded PES without stuffing at its end);
       * the current packet is not queued yet. */
      if (self->vpes != VPES_NONE) {
        self->vpes = VPES_NONE;
        self->st.frames_ended++;
        packetizer_flush_pending (self, FLUSH_FRAME_END);
      }
      self->st.video_frames++;
      const guint8 *pes = p + payload_start;
      gboolean start_code = payload_len >= 6 && pes[0] == 0 && pes[1] == 0 && pes[2] == 1;
      guint pes_length = start_code ? rd16 (pes + 4) : 0;
      if (pes_length > 0) {
        self->vpes = VPES_BOUNDED;
        self->vremaining = (gint64) pes_length + 6 - payload_len;
      } else {
        self->vpes = VPES_UNBOUNDED;
      }
    } else if (self->vpes == VPES_BOUNDED) {
      self->vremaining -= payload_len;
    }
    if (self->vpes != VPES_NONE
        && (self->vpes == VPES_UNBOUNDED ? stuffed : self->vremaining <= 0)) {
      self->vpes = VPES_NONE;
      frame_end = TRUE;
    }
  }

  if (self->pending_n == 0)
    self->pending_since = now;
  memcpy (self->pending + (gsize) self->pending_n * TS, p, TS);
  self->pending_n++;
  if (self->pending_n == PPM)
    packetizer_emit (self);
  if (frame_end) {
    self->st.frames_ended++;
    packetizer_flush_pending (self, FLUSH_FRAME_END);
  }
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

static void
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

/* ------------------------------------------------------------------------------------ */
/* Output                                                                                */

static void
reset_stream_state (GstEpFramer * self)
{
  for (gint i = 0; i < 2; i++) {
    self->split[i].carry_len = 0;
    self->split[i].eos = FALSE;
  }
  self->m_video_pmt_pid = -1;
  self->m_audio_pmt_pid = -1;
  self->m_audio_entries_len = 0;
  memset (self->m_audio_pids, 0, sizeof self->m_audio_pids);
  memset (self->cc, -1, sizeof self->cc);
  self->pmt_pid = -1;
  self->video_pid = -1;
  self->audio_pid = -1;
  self->vpes = VPES_NONE;
  self->vremaining = 0;
  self->pending_n = 0;
  self->out_len = 0;
  self->pad_credit = 0;
  self->pad_running = FALSE;
  self->sent_segment = FALSE;
  self->eos_sent = FALSE;
}

static void
ensure_src_events (GstEpFramer * self)
{
  if (!self->sent_stream_start) {
    GstEvent *ev;
    if (self->video_stream_start) {
      ev = gst_event_ref (self->video_stream_start);
    } else {
      /* (gst_pad_create_stream_id() refuses elements with several sink pads) */
      gchar *id = g_strdup_printf ("%08x%08x%08x%08x/epframer", g_random_int (),
          g_random_int (), g_random_int (), g_random_int ());
      ev = gst_event_new_stream_start (id);
      gst_event_set_group_id (ev, gst_util_group_id_next ());
      g_free (id);
    }
    gst_pad_push_event (self->srcpad, ev);
    self->sent_stream_start = TRUE;
  }
  if (!self->sent_caps) {
    GstCaps *caps = gst_static_pad_template_get_caps (&src_template);
    gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
    gst_caps_unref (caps);
    self->sent_caps = TRUE;
  }
  if (!self->sent_segment) {
    GstSegment seg;
    if (self->have_video_segment)
      gst_segment_copy_into (&self->video_segment, &seg);
    else
      gst_segment_init (&seg, GST_FORMAT_TIME);
    gst_pad_push_event (self->srcpad, gst_event_new_segment (&seg));
    self->sent_segment = TRUE;
  }
}

/* Null messages for pad-kbps: credit = kbit/s × elapsed / 8 bytes, whole messages only. */
static void
pad_credit_update (GstEpFramer * self, guint kbps, gint64 now)
{
  if (kbps == 0) {
    self->pad_credit = 0;
    self->pad_running = FALSE;
    return;
  }
  if (!self->pad_running) {
    self->pad_running = TRUE;
    self->pad_last = now;
    return;
  }
  self->pad_credit += (gdouble) kbps * (gdouble) (now - self->pad_last) / 8000.0;
  self->pad_last = now;
  /* After a stall, at most one second's worth at once. */
  self->pad_credit = MIN (self->pad_credit, MAX ((gdouble) kbps * 125.0, (gdouble) MSG));
  guint n = (guint) (self->pad_credit / MSG);
  if (n == 0)
    return;
  self->pad_credit -= (gdouble) n * MSG;
  gsize need = self->out_len + (gsize) n * MSG;
  if (need > self->out_cap) {
    self->out_cap = MAX (self->out_cap * 2, need);
    self->out = g_realloc (self->out, self->out_cap);
  }
  for (guint i = 0; i < n; i++, self->out_len += MSG)
    memcpy (self->out + self->out_len, null_message, MSG);
  self->st.pad_messages += n;
}

static GstFlowReturn
push_out (GstEpFramer * self)
{
  if (self->out_len == 0)
    return GST_FLOW_OK;
  ensure_src_events (self);
  gsize len = self->out_len;
  GstBuffer *buf = gst_buffer_new_memdup (self->out, len);
  self->out_len = 0;
  GstFlowReturn ret = gst_pad_push (self->srcpad, buf);
  if (ret == GST_FLOW_OK) {
    self->st.messages_out += len / MSG;
    self->st.bytes_out += len;
    self->st.last_output_us = g_get_monotonic_time ();
  } else {
    GST_DEBUG_OBJECT (self, "push returned %s", gst_flow_get_name (ret));
  }
  return ret;
}

static void
publish_stats (GstEpFramer * self)
{
  GST_OBJECT_LOCK (self);
  self->pub = self->st;
  GST_OBJECT_UNLOCK (self);
}

static GstStructure *
stats_structure (const EpStats * s)
{
  return gst_structure_new ("epframer-stats",
      "video-frames", G_TYPE_UINT, s->video_frames,
      "frames-ended", G_TYPE_UINT, s->frames_ended,
      "messages-out", G_TYPE_UINT, s->messages_out,
      "bytes-out", G_TYPE_UINT64, s->bytes_out,
      "padding-packets", G_TYPE_UINT, s->padding_packets,
      "pad-messages", G_TYPE_UINT, s->pad_messages,
      "continuity-errors", G_TYPE_UINT, s->continuity_errors,
      "resyncs", G_TYPE_UINT, s->resyncs,
      "junk-bytes", G_TYPE_UINT, s->junk_bytes,
      "audio-pes", G_TYPE_UINT, s->audio_pes,
      "audio-dropped", G_TYPE_UINT, s->audio_dropped,
      "flushes-frame-end", G_TYPE_UINT, s->flushes_frame_end,
      "flushes-hold", G_TYPE_UINT, s->flushes_hold,
      "flushes-forced", G_TYPE_UINT, s->flushes_forced, NULL);
}

/* ------------------------------------------------------------------------------------ */
/* Link watch                                                                            */

/* Takes one reading of the downstream element's SRT counters (called with none of our
 * locks, by the one thread ep_link_watch_due let sample), adds it under the object lock;
 * a trigger's message is posted after. */
static void
link_watch_sample (GstEpFramer * self)
{
  EpReading r;
  GstPad *peer = gst_pad_get_peer (self->srcpad);
  GstElement *el = peer ? gst_pad_get_parent_element (peer) : NULL;
  if (peer)
    gst_object_unref (peer);
  gboolean ok = el && ep_link_read (el, &r);
  if (el)
    gst_object_unref (el);

  EpReading win[LINK_RING];
  guint win_n = 0;
  GST_OBJECT_LOCK (self);
  const gchar *reason = ep_link_watch_add (&self->link, ok ? &r : NULL, win, &win_n);
  guint64 trig = self->link.triggers;
  GST_OBJECT_UNLOCK (self);
  if (reason)
    ep_link_post (GST_ELEMENT (self), reason, trig, win, win_n);
}

/* ------------------------------------------------------------------------------------ */
/* Pads                                                                                  */

static gint
pad_index (GstEpFramer * self, GstPad * pad)
{
  return pad == self->sinkpad[IDX_AUDIO] ? IDX_AUDIO : IDX_VIDEO;
}

static GstFlowReturn
process (GstEpFramer * self, GstPad * pad, GstBuffer * buf, GstBufferList * list)
{
  gint idx = pad_index (self, pad);
  GstFlowReturn ret;

  GST_OBJECT_LOCK (self);
  gint64 hold_us = (gint64) self->hold_ms * 1000;
  guint kbps = self->pad_kbps;
  /* Link watch: one thread samples when watch-ms has passed (the other goes on). */
  gboolean sample = ep_link_watch_due (&self->link, g_get_monotonic_time ());
  GST_OBJECT_UNLOCK (self);
  if (sample)
    link_watch_sample (self);

  g_mutex_lock (&self->lock);
  gint64 now = g_get_monotonic_time ();
  /* The JS hold timer would have fired before this data arrived. */
  if (packetizer_is_due (self, now, hold_us))
    packetizer_flush_pending (self, FLUSH_HOLD);
  guint n = buf ? 1 : gst_buffer_list_length (list);
  for (guint i = 0; i < n; i++) {
    GstBuffer *b = buf ? buf : gst_buffer_list_get (list, i);
    GstMapInfo map;
    if (!gst_buffer_map (b, &map, GST_MAP_READ)) {
      GST_WARNING_OBJECT (self, "could not map a buffer");
      continue;
    }
    feed (self, idx, map.data, map.size, now);
    gst_buffer_unmap (b, &map);
  }
  if (packetizer_is_due (self, now, hold_us))
    packetizer_flush_pending (self, FLUSH_HOLD);
  pad_credit_update (self, kbps, now);
  ret = push_out (self);
  publish_stats (self);
  g_mutex_unlock (&self->lock);

  if (buf)
    gst_buffer_unref (buf);
  else
    gst_buffer_list_unref (list);
  /* The src pad is flushing for the video pad's flush: data on the other pad is
   * dropped, but its upstream must not stop for it. */
  if (ret == GST_FLOW_FLUSHING && !GST_PAD_IS_FLUSHING (pad))
    ret = GST_FLOW_OK;
  return ret;
}

static GstFlowReturn
gst_ep_framer_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  return process (GST_EP_FRAMER (parent), pad, buf, NULL);
}

static GstFlowReturn
gst_ep_framer_chain_list (GstPad * pad, GstObject * parent, GstBufferList * list)
{
  return process (GST_EP_FRAMER (parent), pad, NULL, list);
}

static gboolean
handle_eos (GstEpFramer * self, gint idx)
{
  gint other = idx == IDX_VIDEO ? IDX_AUDIO : IDX_VIDEO;
  gboolean forward = FALSE;
  GstStructure *stats = NULL;

  g_mutex_lock (&self->lock);
  self->split[idx].eos = TRUE;
  if (!self->eos_sent && (self->split[other].eos || !gst_pad_is_linked (self->sinkpad[other]))) {
    /* Pad and send everything pending (a partial packet is dropped). */
    packetizer_flush_pending (self, FLUSH_FORCED);
    self->split[IDX_VIDEO].carry_len = 0;
    self->split[IDX_AUDIO].carry_len = 0;
    push_out (self);
    ensure_src_events (self);
    self->eos_sent = TRUE;
    forward = TRUE;
    publish_stats (self);
    stats = stats_structure (&self->st);
  }
  g_mutex_unlock (&self->lock);

  if (forward) {
    GST_OBJECT_LOCK (self);
    gst_structure_set (stats, "link-readings", G_TYPE_UINT64, self->link.readings,
        "link-triggers", G_TYPE_UINT64, self->link.triggers, NULL);
    GST_OBJECT_UNLOCK (self);
    gchar *s = gst_structure_to_string (stats);
    GST_INFO_OBJECT (self, "EOS: %s", s);
    g_free (s);
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), stats));
    /* Serialized with the pushes above: both pads are EOS, nothing else pushes. */
    return gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  }
  return TRUE;
}

static gboolean
gst_ep_framer_video_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstEpFramer *self = GST_EP_FRAMER (parent);
  gboolean ret = TRUE;

  GST_LOG_OBJECT (pad, "%" GST_PTR_FORMAT, event);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START:
      g_mutex_lock (&self->lock);
      gst_event_replace (&self->video_stream_start, event);
      g_mutex_unlock (&self->lock);
      gst_event_unref (event);
      break;
    case GST_EVENT_CAPS:
      /* The output caps are fixed (the template's). */
      gst_event_unref (event);
      break;
    case GST_EVENT_SEGMENT:{
      const GstSegment *seg;
      gst_event_parse_segment (event, &seg);
      g_mutex_lock (&self->lock);
      if (seg->format == GST_FORMAT_TIME) {
        gst_segment_copy_into (seg, &self->video_segment);
        self->have_video_segment = TRUE;
        if (self->sent_segment)
          ret = gst_pad_push_event (self->srcpad, gst_event_ref (event));
      }
      g_mutex_unlock (&self->lock);
      gst_event_unref (event);
      break;
    }
    case GST_EVENT_EOS:
      gst_event_unref (event);
      ret = handle_eos (self, IDX_VIDEO);
      break;
    case GST_EVENT_FLUSH_START:
      /* Not under the lock: it unblocks a push that holds it. */
      ret = gst_pad_push_event (self->srcpad, event);
      break;
    case GST_EVENT_FLUSH_STOP:
      g_mutex_lock (&self->lock);
      reset_stream_state (self);
      ret = gst_pad_push_event (self->srcpad, event);
      g_mutex_unlock (&self->lock);
      break;
    default:
      if (GST_EVENT_IS_SERIALIZED (event)) {
        g_mutex_lock (&self->lock);
        if (GST_EVENT_IS_STICKY (event))
          ensure_src_events (self);
        ret = gst_pad_push_event (self->srcpad, event);
        g_mutex_unlock (&self->lock);
      } else {
        ret = gst_pad_push_event (self->srcpad, event);
      }
      break;
  }
  return ret;
}

static gboolean
gst_ep_framer_audio_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstEpFramer *self = GST_EP_FRAMER (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_EOS:
      gst_event_unref (event);
      return handle_eos (self, IDX_AUDIO);
    case GST_EVENT_FLUSH_STOP:
      g_mutex_lock (&self->lock);
      self->split[IDX_AUDIO].carry_len = 0;
      self->split[IDX_AUDIO].eos = FALSE;
      g_mutex_unlock (&self->lock);
      gst_event_unref (event);
      return TRUE;
    default:
      GST_LOG_OBJECT (pad, "dropping %" GST_PTR_FORMAT, event);
      gst_event_unref (event);
      return TRUE;
  }
}

/* ------------------------------------------------------------------------------------ */
/* GObject / GstElement                                                                  */

static void
gst_ep_framer_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstEpFramer *self = GST_EP_FRAMER (object);
  switch (prop_id) {
    case PROP_HOLD_MS:
      GST_OBJECT_LOCK (self);
      self->hold_ms = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_PAD_KBPS:
      GST_OBJECT_LOCK (self);
      self->pad_kbps = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_WATCH_MS:
      GST_OBJECT_LOCK (self);
      self->link.watch_ms = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_WATCH_WINDOW_MS:
      GST_OBJECT_LOCK (self);
      self->link.watch_window_ms = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TRIGGER_SPAN_MS:
      GST_OBJECT_LOCK (self);
      self->link.trigger_span_ms = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TRIGGER_THIN_MS:
      GST_OBJECT_LOCK (self);
      self->link.trigger_thin_ms = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TRIGGER_QUEUE_US:
      GST_OBJECT_LOCK (self);
      self->link.trigger_queue_us = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_RTT_FLOOR_US:
      GST_OBJECT_LOCK (self);
      self->link.rtt_floor_us = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TRIGGER_MIN_RATE:
      GST_OBJECT_LOCK (self);
      self->link.trigger_min_rate = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TRIGGER_ACK_RATE:
      GST_OBJECT_LOCK (self);
      self->link.trigger_ack_rate = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TRIGGER_ACK_PERMILLE:
      GST_OBJECT_LOCK (self);
      self->link.trigger_ack_permille = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_ep_framer_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstEpFramer *self = GST_EP_FRAMER (object);
  GST_OBJECT_LOCK (self);
  const EpStats *s = &self->pub;
  switch (prop_id) {
    case PROP_HOLD_MS:
      g_value_set_uint (value, self->hold_ms);
      break;
    case PROP_PAD_KBPS:
      g_value_set_uint (value, self->pad_kbps);
      break;
    case PROP_VIDEO_FRAMES:
      g_value_set_uint (value, s->video_frames);
      break;
    case PROP_FRAMES_ENDED:
      g_value_set_uint (value, s->frames_ended);
      break;
    case PROP_MESSAGES_OUT:
      g_value_set_uint (value, s->messages_out);
      break;
    case PROP_BYTES_OUT:
      g_value_set_uint64 (value, s->bytes_out);
      break;
    case PROP_PADDING_PACKETS:
      g_value_set_uint (value, s->padding_packets);
      break;
    case PROP_PAD_MESSAGES:
      g_value_set_uint (value, s->pad_messages);
      break;
    case PROP_CONTINUITY_ERRORS:
      g_value_set_uint (value, s->continuity_errors);
      break;
    case PROP_RESYNCS:
      g_value_set_uint (value, s->resyncs);
      break;
    case PROP_JUNK_BYTES:
      g_value_set_uint (value, s->junk_bytes);
      break;
    case PROP_AUDIO_PES:
      g_value_set_uint (value, s->audio_pes);
      break;
    case PROP_AUDIO_DROPPED:
      g_value_set_uint (value, s->audio_dropped);
      break;
    case PROP_FLUSHES_FRAME_END:
      g_value_set_uint (value, s->flushes_frame_end);
      break;
    case PROP_FLUSHES_HOLD:
      g_value_set_uint (value, s->flushes_hold);
      break;
    case PROP_FLUSHES_FORCED:
      g_value_set_uint (value, s->flushes_forced);
      break;
    case PROP_LAST_OUTPUT_US:
      g_value_set_int64 (value, s->last_output_us);
      break;
    case PROP_WATCH_MS:
      g_value_set_uint (value, self->link.watch_ms);
      break;
    case PROP_WATCH_WINDOW_MS:
      g_value_set_uint (value, self->link.watch_window_ms);
      break;
    case PROP_TRIGGER_SPAN_MS:
      g_value_set_uint (value, self->link.trigger_span_ms);
      break;
    case PROP_TRIGGER_THIN_MS:
      g_value_set_uint (value, self->link.trigger_thin_ms);
      break;
    case PROP_TRIGGER_QUEUE_US:
      g_value_set_uint (value, self->link.trigger_queue_us);
      break;
    case PROP_RTT_FLOOR_US:
      g_value_set_uint (value, self->link.rtt_floor_us);
      break;
    case PROP_TRIGGER_MIN_RATE:
      g_value_set_uint (value, self->link.trigger_min_rate);
      break;
    case PROP_TRIGGER_ACK_RATE:
      g_value_set_uint (value, self->link.trigger_ack_rate);
      break;
    case PROP_TRIGGER_ACK_PERMILLE:
      g_value_set_uint (value, self->link.trigger_ack_permille);
      break;
    case PROP_LINK_READINGS:
      g_value_set_uint64 (value, self->link.readings);
      break;
    case PROP_LINK_TRIGGERS:
      g_value_set_uint64 (value, self->link.triggers);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static GstStateChangeReturn
gst_ep_framer_change_state (GstElement * element, GstStateChange transition)
{
  GstEpFramer *self = GST_EP_FRAMER (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    g_mutex_lock (&self->lock);
    reset_stream_state (self);
    memset (&self->st, 0, sizeof self->st);
    self->sent_stream_start = FALSE;
    self->sent_caps = FALSE;
    self->have_video_segment = FALSE;
    gst_event_replace (&self->video_stream_start, NULL);
    publish_stats (self);
    g_mutex_unlock (&self->lock);
    GST_OBJECT_LOCK (self);
    ep_link_watch_reset (&self->link);  /* no streaming thread runs in READY */
    GST_OBJECT_UNLOCK (self);
  }
  ret = GST_ELEMENT_CLASS (gst_ep_framer_parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    g_mutex_lock (&self->lock);
    reset_stream_state (self);
    gst_event_replace (&self->video_stream_start, NULL);
    g_mutex_unlock (&self->lock);
  }
  return ret;
}

static void
gst_ep_framer_finalize (GObject * object)
{
  GstEpFramer *self = GST_EP_FRAMER (object);
  for (gint i = 0; i < 2; i++)
    g_free (self->split[i].scratch);
  g_free (self->out);
  gst_event_replace (&self->video_stream_start, NULL);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (gst_ep_framer_parent_class)->finalize (object);
}

static void
install_counter (GObjectClass * gc, guint id, const gchar * name, const gchar * blurb)
{
  g_object_class_install_property (gc, id, g_param_spec_uint (name, name, blurb,
          0, G_MAXUINT, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
}

static void
gst_ep_framer_class_init (GstEpFramerClass * klass)
{
  GObjectClass *gc = G_OBJECT_CLASS (klass);
  GstElementClass *ec = GST_ELEMENT_CLASS (klass);

  crc_init ();
  for (gint i = 0; i < PPM; i++)
    null_packet (null_message + i * TS);

  gc->set_property = gst_ep_framer_set_property;
  gc->get_property = gst_ep_framer_get_property;
  gc->finalize = gst_ep_framer_finalize;

  g_object_class_install_property (gc, PROP_HOLD_MS,
      g_param_spec_uint ("hold-ms", "Hold (ms)",
          "Longest wait of an audio/PSI-only remainder (< 7 packets) before it is padded",
          0, MAX_HOLD_MS, DEFAULT_HOLD_MS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gc, PROP_PAD_KBPS,
      g_param_spec_uint ("pad-kbps", "Padding rate (kbit/s)",
          "Extra 1316-byte null messages at this rate (0 = off), paced by incoming data",
          0, MAX_PAD_KBPS, DEFAULT_PAD_KBPS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  install_counter (gc, PROP_VIDEO_FRAMES, "video-frames", "Video PES starts");
  install_counter (gc, PROP_FRAMES_ENDED, "frames-ended", "Video PES whose end was detected");
  install_counter (gc, PROP_MESSAGES_OUT, "messages-out",
      "1316-byte messages pushed (pad-kbps messages included)");
  g_object_class_install_property (gc, PROP_BYTES_OUT,
      g_param_spec_uint64 ("bytes-out", "bytes-out", "Bytes pushed", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  install_counter (gc, PROP_PADDING_PACKETS, "padding-packets",
      "Null packets added by flushes (pad-kbps padding excluded)");
  install_counter (gc, PROP_PAD_MESSAGES, "pad-messages", "Null messages added for pad-kbps");
  install_counter (gc, PROP_CONTINUITY_ERRORS, "continuity-errors",
      "Continuity counter errors seen in the merged stream");
  install_counter (gc, PROP_RESYNCS, "resyncs", "Times junk was skipped to resynchronise");
  install_counter (gc, PROP_JUNK_BYTES, "junk-bytes", "Bytes skipped while resynchronising");
  install_counter (gc, PROP_AUDIO_PES, "audio-pes", "Audio PES starts");
  install_counter (gc, PROP_AUDIO_DROPPED, "audio-dropped",
      "Audio-pad packets dropped (before the audio PMT, null packets); PAT/PMT not counted");
  install_counter (gc, PROP_FLUSHES_FRAME_END, "flushes-frame-end",
      "Remainders padded at a video frame end");
  install_counter (gc, PROP_FLUSHES_HOLD, "flushes-hold",
      "Remainders padded because they were older than hold-ms");
  install_counter (gc, PROP_FLUSHES_FORCED, "flushes-forced", "Remainders padded at EOS");
  g_object_class_install_property (gc, PROP_LAST_OUTPUT_US,
      g_param_spec_int64 ("last-output-us", "last-output-us",
          "g_get_monotonic_time() of the last push (µs), 0 if none", 0, G_MAXINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /* Link watch */
  ep_link_class_init ();
#define WATCH_FLAGS (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)
  g_object_class_install_property (gc, PROP_WATCH_MS,
      g_param_spec_uint ("watch-ms", "Link watch period (ms)",
          "Read the downstream srtsink's stats this often (0 = off); see link-readings",
          0, MAX_WATCH_MS, DEFAULT_WATCH_MS, WATCH_FLAGS));
  g_object_class_install_property (gc, PROP_WATCH_WINDOW_MS,
      g_param_spec_uint ("watch-window-ms", "Link watch window (ms)",
          "Readings kept (and sent in epframer-link messages): this much history, at most "
          "the newest 128",
          MIN_WATCH_WINDOW_MS, MAX_WATCH_WINDOW_MS, DEFAULT_WATCH_WINDOW_MS, WATCH_FLAGS));
  g_object_class_install_property (gc, PROP_TRIGGER_SPAN_MS,
      g_param_spec_uint ("trigger-span-ms", "Trigger span (ms)",
          "The trigger compares the newest reading with the newest one at least this "
          "much older", 1, MAX_TRIGGER_SPAN_MS, DEFAULT_TRIGGER_SPAN_MS, WATCH_FLAGS));
  g_object_class_install_property (gc, PROP_TRIGGER_THIN_MS,
      g_param_spec_uint ("trigger-thin-ms", "Trigger thinning (ms)",
          "The trigger's older reading is taken from the window thinned to readings at "
          "least this far apart, from the newest back (0 = every reading)",
          0, MAX_TRIGGER_SPAN_MS, DEFAULT_TRIGGER_THIN_MS, WATCH_FLAGS));
  g_object_class_install_property (gc, PROP_TRIGGER_QUEUE_US,
      g_param_spec_uint ("trigger-queue-us", "Queue trigger (us)",
          "Trigger when the RTT exceeds its floor by more than this (4294967295 = off)",
          0, G_MAXUINT, DEFAULT_TRIGGER_QUEUE_US, WATCH_FLAGS));
  g_object_class_install_property (gc, PROP_RTT_FLOOR_US,
      g_param_spec_uint ("rtt-floor-us", "RTT floor (us)",
          "A floor RTT known to the application (0 = unknown); the queue trigger uses "
          "the lowest of it and the window's RTTs", 0, G_MAXUINT, DEFAULT_RTT_FLOOR_US,
          WATCH_FLAGS));
  g_object_class_install_property (gc, PROP_TRIGGER_MIN_RATE,
      g_param_spec_uint ("trigger-min-rate", "ACK trigger: minimum send rate (packets/s)",
          "The ACK trigger needs at least this many packets sent per second",
          0, G_MAXUINT, DEFAULT_TRIGGER_MIN_RATE, WATCH_FLAGS));
  g_object_class_install_property (gc, PROP_TRIGGER_ACK_RATE,
      g_param_spec_uint ("trigger-ack-rate", "ACK trigger: ACK rate (ACKs/s)",
          "The ACK trigger needs fewer ACKs per second than this",
          0, G_MAXUINT, DEFAULT_TRIGGER_ACK_RATE, WATCH_FLAGS));
  g_object_class_install_property (gc, PROP_TRIGGER_ACK_PERMILLE,
      g_param_spec_uint ("trigger-ack-permille", "ACK trigger: ACKs per 1000 packets",
          "The ACK trigger needs fewer ACKs than this many per 1000 packets sent",
          0, 1000, DEFAULT_TRIGGER_ACK_PERMILLE, WATCH_FLAGS));
#undef WATCH_FLAGS
  g_object_class_install_property (gc, PROP_LINK_READINGS,
      g_param_spec_uint64 ("link-readings", "link-readings",
          "Readings of the downstream srtsink's stats taken (watch-ms)", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gc, PROP_LINK_TRIGGERS,
      g_param_spec_uint64 ("link-triggers", "link-triggers",
          "epframer-link messages posted (link watch triggers)", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (ec, &video_template);
  gst_element_class_add_static_pad_template (ec, &audio_template);
  gst_element_class_add_static_pad_template (ec, &src_template);
  gst_element_class_set_static_metadata (ec, "Endpoint SRT framer", "Codec/Muxer",
      "Merges a video and an audio mpegtsmux output into one transport stream in whole "
      "1316-byte SRT messages, padding each video frame's tail with null packets",
      "commune-endpoint");
  ec->change_state = GST_DEBUG_FUNCPTR (gst_ep_framer_change_state);
}

static void
gst_ep_framer_init (GstEpFramer * self)
{
  GstStaticPadTemplate *tpl[2] = { &video_template, &audio_template };

  g_mutex_init (&self->lock);
  for (gint i = 0; i < 2; i++) {
    GstPad *pad = gst_pad_new_from_static_template (tpl[i], tpl[i]->name_template);
    gst_pad_set_chain_function (pad, GST_DEBUG_FUNCPTR (gst_ep_framer_chain));
    gst_pad_set_chain_list_function (pad, GST_DEBUG_FUNCPTR (gst_ep_framer_chain_list));
    gst_pad_set_event_function (pad, i == IDX_VIDEO
        ? GST_DEBUG_FUNCPTR (gst_ep_framer_video_event)
        : GST_DEBUG_FUNCPTR (gst_ep_framer_audio_event));
    GST_PAD_SET_ACCEPT_TEMPLATE (pad);
    gst_element_add_pad (GST_ELEMENT (self), pad);
    self->sinkpad[i] = pad;
  }
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->hold_ms = DEFAULT_HOLD_MS;
  self->pad_kbps = DEFAULT_PAD_KBPS;
  ep_link_watch_init (&self->link);
  self->out_cap = 16 * MSG;
  self->out = g_malloc (self->out_cap);
  reset_stream_state (self);
}

static gboolean
plugin_init (GstPlugin * plugin)
{
  GST_DEBUG_CATEGORY_INIT (ep_framer_debug, "epframer", 0,
      "MPEG-TS merger and SRT message framer");
  return gst_element_register (plugin, "epframer", GST_RANK_NONE, GST_TYPE_EP_FRAMER);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, epframer,
    "MPEG-TS merger and SRT message framer (commune-endpoint)",
    plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
