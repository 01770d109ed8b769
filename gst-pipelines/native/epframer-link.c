/*
 * epframer's link watch: the readings of the downstream srtsink, their ring and the
 * trigger that wakes the worker (what, when and why: epframer-link.h). The trigger's
 * reference semantics are collapseTriggered in gst-pipelines/adapt/collapse.ts.
 */
#include <math.h>
#include <string.h>
#include "epframer-link.h"

GST_DEBUG_CATEGORY_EXTERN (ep_framer_debug);
#define GST_CAT_DEFAULT ep_framer_debug

static GQuark q_packets_sent, q_bytes_sent, q_ack_received, q_rtt_ms, q_sent_lost;

void
ep_link_class_init (void)
{
  q_packets_sent = g_quark_from_static_string ("packets-sent");
  q_bytes_sent = g_quark_from_static_string ("bytes-sent");
  q_ack_received = g_quark_from_static_string ("packet-ack-received");
  q_rtt_ms = g_quark_from_static_string ("rtt-ms");
  q_sent_lost = g_quark_from_static_string ("packets-sent-lost");
}

void
ep_link_watch_init (EpLinkWatch * w)
{
  memset (w, 0, sizeof *w);
  w->watch_ms = DEFAULT_WATCH_MS;
  w->watch_window_ms = DEFAULT_WATCH_WINDOW_MS;
  w->trigger_span_ms = DEFAULT_TRIGGER_SPAN_MS;
  w->trigger_thin_ms = DEFAULT_TRIGGER_THIN_MS;
  w->trigger_queue_us = DEFAULT_TRIGGER_QUEUE_US;
  w->rtt_floor_us = DEFAULT_RTT_FLOOR_US;
  w->trigger_min_rate = DEFAULT_TRIGGER_MIN_RATE;
  w->trigger_ack_rate = DEFAULT_TRIGGER_ACK_RATE;
  w->trigger_ack_permille = DEFAULT_TRIGGER_ACK_PERMILLE;
}

void
ep_link_watch_reset (EpLinkWatch * w)
{
  w->ring_n = 0;
  w->readings = 0;
  w->triggers = 0;
  w->last_us = 0;
  w->busy = FALSE;
}

gboolean
ep_link_watch_due (EpLinkWatch * w, gint64 now_us)
{
  if (w->watch_ms == 0 || w->busy || now_us - w->last_us < (gint64) w->watch_ms * 1000)
    return FALSE;
  w->last_us = now_us;
  w->busy = TRUE;
  return TRUE;
}

/* A non-negative integer (any integer type, or a double) from a stats field. */
static gboolean
value_u64 (const GValue * v, guint64 * out)
{
  gint64 i;
  gdouble d;
  if (!v)
    return FALSE;
  switch (G_TYPE_FUNDAMENTAL (G_VALUE_TYPE (v))) {
    case G_TYPE_INT:
      i = g_value_get_int (v);
      break;
    case G_TYPE_LONG:
      i = g_value_get_long (v);
      break;
    case G_TYPE_INT64:
      i = g_value_get_int64 (v);
      break;
    case G_TYPE_UINT:
      *out = g_value_get_uint (v);
      return TRUE;
    case G_TYPE_ULONG:
      *out = g_value_get_ulong (v);
      return TRUE;
    case G_TYPE_UINT64:
      *out = g_value_get_uint64 (v);
      return TRUE;
    case G_TYPE_DOUBLE:
      d = g_value_get_double (v);
      if (!(d >= 0 && d < 18446744073709551616.0))      /* NaN too */
        return FALSE;
      *out = (guint64) d;
      return TRUE;
    default:
      return FALSE;
  }
  if (i < 0)
    return FALSE;
  *out = (guint64) i;
  return TRUE;
}

/* rtt-ms: a double (or any integer), -1 when absent, negative or not a number. */
static gdouble
value_rtt (const GValue * v)
{
  gdouble d;
  guint64 u;
  if (v && G_VALUE_HOLDS_DOUBLE (v))
    d = g_value_get_double (v);
  else if (value_u64 (v, &u))
    d = (gdouble) u;
  else
    return -1;
  return isfinite (d) && d >= 0 ? d : -1;
}

static inline EpReading *
ring_at (EpLinkWatch * w, guint i)
{
  return &w->ring[(w->ring_first + i) % LINK_RING];
}

/* Whether a trigger fires for the newest reading; "ack", "queue" or NULL. */
static const gchar *
link_trigger (EpLinkWatch * w)
{
  const EpReading *b = ring_at (w, w->ring_n - 1);
  const EpReading *a = NULL;
  /* On the millisecond times the message carries (wall_ms), as the worker and the
   * reference (collapseTriggered) see them, so that both pick the same `a` and rates. */
  gint64 span_ms = w->trigger_span_ms;
  gint64 thin_ms = w->trigger_thin_ms;
  /* a is taken from the thinned window (from b back, each kept reading at least
   * trigger-thin-ms older than the one kept before it), as the worker thins it. */
  const EpReading *kept = b;
  for (gint i = (gint) w->ring_n - 2; i >= 0; i--) {
    const EpReading *r = ring_at (w, i);
    if (kept->wall_ms - r->wall_ms < thin_ms)
      continue;
    kept = r;
    if (b->wall_ms - r->wall_ms >= span_ms) {
      a = r;
      break;
    }
  }
  if (!a || a->acks == 0 || b->packets < a->packets)
    return NULL;

  gdouble dt = (b->wall_ms - a->wall_ms) / 1000.0;
  gdouble sent_rate = (b->packets - a->packets) / dt;
  gdouble ack_rate = (b->acks > a->acks ? b->acks - a->acks : 0) / dt;
  if (sent_rate >= w->trigger_min_rate && ack_rate < w->trigger_ack_rate
      && ack_rate * 1000 < sent_rate * w->trigger_ack_permille)
    return "ack";

  if (w->trigger_queue_us != G_MAXUINT && b->rtt_ms >= 0) {
    gdouble floor_ms = w->rtt_floor_us > 0 ? w->rtt_floor_us / 1000.0 : INFINITY;
    for (guint i = 0; i < w->ring_n; i++) {
      gdouble r = ring_at (w, i)->rtt_ms;
      if (r > 0 && r < floor_ms)
        floor_ms = r;
    }
    if (isfinite (floor_ms) && (b->rtt_ms - floor_ms) * 1000 > w->trigger_queue_us)
      return "queue";
  }
  return NULL;
}

/* `T RTT PKTS BYTES ACKS LOST;…`, oldest first. */
static gchar *
link_window_string (const EpReading * r, guint n)
{
  GString *w = g_string_sized_new (n * 64);
  for (guint i = 0; i < n; i++) {
    gchar rtt[G_ASCII_DTOSTR_BUF_SIZE];
    if (r[i].rtt_ms >= 0)
      g_ascii_formatd (rtt, sizeof rtt, "%.3f", r[i].rtt_ms);
    else
      strcpy (rtt, "-1");
    g_string_append_printf (w, "%s%" G_GINT64_FORMAT " %s %" G_GUINT64_FORMAT " %"
        G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, i ? ";" : "",
        r[i].wall_ms, rtt, r[i].packets, r[i].bytes, r[i].acks, r[i].lost);
  }
  return g_string_free (w, FALSE);
}

gboolean
ep_link_read (GstElement * downstream, EpReading * r)
{
  gboolean ok = FALSE;
  memset (r, 0, sizeof *r);
  GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (downstream), "stats");
  if (ps && ps->value_type == GST_TYPE_STRUCTURE && (ps->flags & G_PARAM_READABLE)) {
    /* g_object_get_property, not g_object_get: no second copy of the structure. */
    GValue v = G_VALUE_INIT;
    g_value_init (&v, GST_TYPE_STRUCTURE);
    g_object_get_property (G_OBJECT (downstream), "stats", &v);
    const GstStructure *st = gst_value_get_structure (&v);
    if (st) {
      ok = value_u64 (gst_structure_id_get_value (st, q_packets_sent), &r->packets)
          && value_u64 (gst_structure_id_get_value (st, q_bytes_sent), &r->bytes)
          && value_u64 (gst_structure_id_get_value (st, q_ack_received), &r->acks);
      r->rtt_ms = value_rtt (gst_structure_id_get_value (st, q_rtt_ms));
      /* Optional: without it, no loss is ever seen and fastCheck judges as before. */
      if (!value_u64 (gst_structure_id_get_value (st, q_sent_lost), &r->lost))
        r->lost = 0;
    }
    g_value_unset (&v);
  }
  r->t_us = g_get_monotonic_time ();
  r->wall_ms = g_get_real_time () / 1000;
  return ok;
}

const gchar *
ep_link_watch_add (EpLinkWatch * w, const EpReading * r, EpReading * win, guint * win_n)
{
  w->busy = FALSE;
  *win_n = 0;
  if (!r)
    return NULL;
  if (w->ring_n > 0) {
    const EpReading *prev = ring_at (w, w->ring_n - 1);
    if (r->packets < prev->packets || r->acks < prev->acks)
      w->ring_n = 0;            /* a new SRT socket */
  }
  if (w->ring_n == LINK_RING) {
    w->ring_first = (w->ring_first + 1) % LINK_RING;
    w->ring_n--;
  }
  *ring_at (w, w->ring_n) = *r;
  w->ring_n++;
  w->readings++;
  gint64 window_us = (gint64) w->watch_window_ms * 1000;
  while (w->ring_n > 1 && r->t_us - ring_at (w, 0)->t_us > window_us) {
    w->ring_first = (w->ring_first + 1) % LINK_RING;
    w->ring_n--;
  }
  const gchar *reason = link_trigger (w);
  if (reason) {
    w->triggers++;
    *win_n = w->ring_n;
    for (guint i = 0; i < *win_n; i++)
      win[i] = *ring_at (w, i);
  }
  return reason;
}

void
ep_link_post (GstElement * element, const gchar * reason, guint64 trigger,
    const EpReading * win, guint win_n)
{
  gchar *text = link_window_string (win, win_n);
  GST_DEBUG_OBJECT (element, "link trigger #%" G_GUINT64_FORMAT " (%s): %s", trigger,
      reason, text);
  GstStructure *m = gst_structure_new ("epframer-link", "reason", G_TYPE_STRING, reason,
      NULL);
  GValue v = G_VALUE_INIT;
  g_value_init (&v, G_TYPE_STRING);
  g_value_take_string (&v, text);
  gst_structure_take_value (m, "window", &v);
  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element), m));
}
