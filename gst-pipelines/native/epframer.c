/*
 * epframer: two mpegtsmux outputs (video muxer on `video`, audio muxer on `audio`) in,
 * whole 1316-byte SRT messages (7 TS packets) out. The native port of
 * gst-pipelines/mpegts/merger.ts (TsMerger) followed by gst-pipelines/mpegts/packetizer.ts
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
 *
 * Files (epframer.h): this one is the element (pads, events, EOS, output, states,
 * registration); the splitting and merging are in epframer-merge.c, the message framing
 * and pad-kbps in epframer-framing.c, the properties and counters in epframer-props.c.
 */
#include <string.h>
#include <gst/gst.h>
#include "epframer.h"

#define PACKAGE "epframer"
#define VERSION "1.0.0"
#define GST_PACKAGE_NAME "commune-endpoint epframer"
#define GST_PACKAGE_ORIGIN "https://github.com/commune-endpoint"
#define GST_LICENSE "LGPL"

GST_DEBUG_CATEGORY (ep_framer_debug);
#define GST_CAT_DEFAULT ep_framer_debug

#define EP_CAPS "video/mpegts, systemstream=(boolean)true, packetsize=(int)188"

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE ("video",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (EP_CAPS));
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE ("audio",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (EP_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (EP_CAPS));

G_DEFINE_TYPE (GstEpFramer, gst_ep_framer, GST_TYPE_ELEMENT);

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
gst_ep_framer_class_init (GstEpFramerClass * klass)
{
  GObjectClass *gc = G_OBJECT_CLASS (klass);
  GstElementClass *ec = GST_ELEMENT_CLASS (klass);

  crc_init ();
  framing_class_init ();
  ep_link_class_init ();

  gc->set_property = ep_framer_set_property;
  gc->get_property = ep_framer_get_property;
  gc->finalize = gst_ep_framer_finalize;
  ep_framer_install_properties (gc);

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
