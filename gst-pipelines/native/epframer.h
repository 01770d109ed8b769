/*
 * epframer's private header: the element's state and what its files share (see
 * epframer.c for what the element does, and which file holds what).
 *
 *   epframer.c          the element: pads, events, EOS, output, states, registration
 *   epframer-merge.c    the input side: each pad's bytes split into packets
 *                       (resynchronising on 0x47), the two streams merged
 *                       (mpegts/merger.ts)
 *   epframer-framing.c  the SRT message framing (mpegts/packetizer.ts), pad-kbps padding
 *   epframer-props.c    properties and counters
 *   epframer-link.c     the link watch (epframer-link.h)
 *
 * The merge and framing functions are called with the stream lock (`lock`) held and
 * keep the JS names (merger_*, packetizer_*) so the two can be read side by side.
 */
#ifndef EPFRAMER_H
#define EPFRAMER_H

#include <gst/gst.h>
#include "epframer-link.h"

GST_DEBUG_CATEGORY_EXTERN (ep_framer_debug);

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

  /* merger (mpegts/merger.ts) */
  gint m_video_pmt_pid;
  gint m_audio_pmt_pid;
  guint8 m_audio_entries[TS];
  guint m_audio_entries_len;
  guint8 m_audio_pids[8192 / 8];

  /* packetizer (mpegts/packetizer.ts) */
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

/* Bytes of a 188-byte packet (epframer-merge.c, epframer-framing.c). */

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

/* epframer-merge.c */
G_GNUC_INTERNAL void crc_init (void);
/* CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor). */
G_GNUC_INTERNAL guint32 crc32_mpeg2 (const guint8 * d, gsize n);
/* One pad's buffer: split into packets (a partial one carried to the next call),
 * merged, each handed to packetizer_on_packet. */
G_GNUC_INTERNAL void feed (GstEpFramer * self, gint idx, const guint8 * data, gsize size,
    gint64 now);

/* epframer-framing.c */
/* Once, from class_init: the null message pad-kbps sends. */
G_GNUC_INTERNAL void framing_class_init (void);
G_GNUC_INTERNAL void packetizer_on_packet (GstEpFramer * self, const guint8 * p, gint64 now);
/* Pads the remainder with null packets to a whole message and queues it in `out`. */
G_GNUC_INTERNAL void packetizer_flush_pending (GstEpFramer * self, gint reason);
/* Whether the oldest pending packet is hold_us old. */
G_GNUC_INTERNAL gboolean packetizer_is_due (GstEpFramer * self, gint64 now, gint64 hold_us);
/* Null messages for pad-kbps, queued in `out`. */
G_GNUC_INTERNAL void pad_credit_update (GstEpFramer * self, guint kbps, gint64 now);

/* epframer-props.c */
/* Copies the counters (`st`, under `lock`) to `pub` under the object lock. */
G_GNUC_INTERNAL void publish_stats (GstEpFramer * self);
/* The `epframer-stats` structure (EOS message). */
G_GNUC_INTERNAL GstStructure *stats_structure (const EpStats * s);
G_GNUC_INTERNAL void ep_framer_install_properties (GObjectClass * gc);
G_GNUC_INTERNAL void ep_framer_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
G_GNUC_INTERNAL void ep_framer_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);

#endif
