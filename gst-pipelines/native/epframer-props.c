/*
 * epframer's properties and counters (see epframer.h; what they mean: epframer.c and
 * epframer-link.h). Settings and link watch settings are under the object lock; the
 * counters are read from the snapshot published after each buffer (`pub`), so reading
 * them never waits for a push that blocks downstream.
 */
#include "epframer.h"

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

void
ep_framer_set_property (GObject * object, guint prop_id, const GValue * value,
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

void
ep_framer_get_property (GObject * object, guint prop_id, GValue * value,
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

/* Counters: the snapshot the properties read, the EOS message. */

void
publish_stats (GstEpFramer * self)
{
  GST_OBJECT_LOCK (self);
  self->pub = self->st;
  GST_OBJECT_UNLOCK (self);
}

GstStructure *
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

static void
install_counter (GObjectClass * gc, guint id, const gchar * name, const gchar * blurb)
{
  g_object_class_install_property (gc, id, g_param_spec_uint (name, name, blurb,
          0, G_MAXUINT, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
}

void
ep_framer_install_properties (GObjectClass * gc)
{
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

}
