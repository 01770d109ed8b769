/*
 * epframer's SRT message framing (epframer.h): TsPacketizer
 * (gst-pipelines/mpegts/packetizer.ts) in C (the rules: epframer.c), and the null
 * messages of pad-kbps. Whole messages collect in `out` for the element to push; the
 * hold-ms age is checked by the element when a buffer arrives. Called with the stream
 * lock held.
 */
#include <string.h>
#include "epframer.h"

#define GST_CAT_DEFAULT ep_framer_debug

static guint8 null_message[MSG];

static void
null_packet (guint8 * p)
{
  memset (p, 0xff, TS);
  p[0] = SYNC;
  p[1] = 0x1f;
  p[2] = 0xff;
  p[3] = 0x10;
}

void
framing_class_init (void)
{
  for (gint i = 0; i < PPM; i++)
    null_packet (null_message + i * TS);
}

/* ------------------------------------------------------------------------------------ */
/* Packetizer (mpegts/packetizer.ts)                                                     */

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

void
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

gboolean
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

void
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
/* pad-kbps                                                                              */

/* Null messages for pad-kbps: credit = kbit/s × elapsed / 8 bytes, whole messages only. */
void
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
