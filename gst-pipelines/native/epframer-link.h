/*
 * epframer's link watch (watch-ms > 0): for the Node worker's link adaptation. Its
 * collapse check (gst-pipelines/adapt/collapse.ts, fastCheck) needs srtsink's counters
 * every ~100 ms (the worker sets watch-ms=50 and thins the windows back to 100 ms);
 * reading srtsink's `stats` from JS (a GstStructure serialized to ~1.5 KB and parsed)
 * ten times a second costs measurable CPU, so the sampling is done in the element, right
 * before srtsink, and JS is woken only when fastCheck might act.
 * - Sampling: at the start of a chain/chain_list call on either pad (no timer: data
 *   arrives every ~20 ms), when watch-ms has passed since the last sample, the
 *   downstream element (the src pad's peer's parent; one with a `stats` GstStructure
 *   property, i.e. srtsink in caller mode) is read with none of our locks held, and
 *   `packets-sent`, `bytes-sent`, `packet-ack-received` and `rtt-ms` become one reading
 *   (any integer or double type accepted; no reading when a counter is missing, as in
 *   listener mode where the counters nest in `callers`; rtt-ms absent = unknown). Only
 *   one thread samples at a time.
 * - Ring: the readings of the last watch-window-ms (relative to the newest), at most the
 *   newest LINK_RING of them;
 *   a counter going backwards (a new SRT socket) drops the earlier readings.
 * - Trigger, on each new reading b, against a = the newest reading at least
 *   trigger-span-ms older in the window thinned from b back to readings at least
 *   trigger-thin-ms apart, as the worker thins it (none, a without ACKs or packets
 *   going backwards: no trigger). Times are the wall-clock ms the message carries (the
 *   worker judges the same integers; the ring's age limit uses monotonic time). "ack"
 *   when sending >= trigger-min-rate packets/s with fewer than trigger-ack-rate ACKs/s
 *   and ACKs < trigger-ack-permille/1000 of the packets; "queue" (trigger-queue-us != G_MAXUINT) when b's RTT exceeds the floor (the
 *   lowest of rtt-floor-us and the ring's positive RTTs) by more than trigger-queue-us.
 *   The worker sets these so that the trigger is a superset of the conditions under
 *   which fastCheck can act (its ACK starvation test, and a queue above the smallest
 *   level its queue tests need): JS only wakes when it might act.
 * - On a trigger, an element message `epframer-link` is posted (after our locks are
 *   released): `reason` ("ack", or "queue"; "ack" when both) and `window`, every reading
 *   of the ring oldest first, `;`-separated, each `T RTT PKTS BYTES ACKS LOST`: wall-clock
 *   ms (g_get_real_time, as Date.now()), rtt-ms ("%.3f", -1 unknown), cumulative packets
 *   sent, bytes sent, ACKs received, packets the hub reported lost (NAKs). fastCheck runs
 *   on that window.
 * Counters `link-readings` and `link-triggers` (also in `epframer-stats`).
 *
 * Locking: the element keeps an EpLinkWatch under its object lock. ep_link_watch_due
 * and ep_link_watch_add are called with that lock held, ep_link_read and ep_link_post
 * without any of the element's locks (reading srtsink takes srtsink's and libsrt's).
 */
#ifndef EPFRAMER_LINK_H
#define EPFRAMER_LINK_H

#include <gst/gst.h>

#define LINK_RING 128           /* readings kept at most: 6.4 s at watch-ms=50 (watch-window-ms beyond that is cut to the newest LINK_RING) */
#define DEFAULT_WATCH_MS 0
#define MAX_WATCH_MS 60000
#define DEFAULT_WATCH_WINDOW_MS 1200
#define MIN_WATCH_WINDOW_MS 100
#define MAX_WATCH_WINDOW_MS 10000
#define DEFAULT_TRIGGER_SPAN_MS 150
#define DEFAULT_TRIGGER_THIN_MS 0
#define MAX_TRIGGER_SPAN_MS 10000
#define DEFAULT_TRIGGER_QUEUE_US G_MAXUINT
#define DEFAULT_RTT_FLOOR_US 0
#define DEFAULT_TRIGGER_MIN_RATE 20
#define DEFAULT_TRIGGER_ACK_RATE 40
#define DEFAULT_TRIGGER_ACK_PERMILLE 500

/* One reading of the downstream srtsink's counters. */
typedef struct
{
  gint64 t_us;                  /* g_get_monotonic_time () */
  gint64 wall_ms;               /* g_get_real_time () / 1000 */
  gdouble rtt_ms;               /* < 0: unknown */
  guint64 packets;
  guint64 bytes;
  guint64 acks;
  guint64 lost;                 /* packets-sent-lost: packets the hub reported lost (0 when absent) */
} EpReading;

/* The watch's settings (element properties) and state. */
typedef struct
{
  guint watch_ms;
  guint watch_window_ms;
  guint trigger_span_ms;
  guint trigger_thin_ms;
  guint trigger_queue_us;
  guint rtt_floor_us;
  guint trigger_min_rate;
  guint trigger_ack_rate;
  guint trigger_ack_permille;
  gint64 last_us;               /* when the last sample was started */
  gboolean busy;                /* a thread is sampling */
  EpReading ring[LINK_RING];
  guint ring_first;             /* index of the oldest reading */
  guint ring_n;
  guint64 readings;
  guint64 triggers;
} EpLinkWatch;

/* Once, from the element's class_init. */
void ep_link_class_init (void);
/* The settings' defaults, no readings. */
void ep_link_watch_init (EpLinkWatch * w);
/* Drops the readings and counters (READY: no streaming thread runs). */
void ep_link_watch_reset (EpLinkWatch * w);
/* Whether the calling thread should take a reading now (watch-ms passed, no other
 * thread sampling); if so it is marked busy until ep_link_watch_add. */
gboolean ep_link_watch_due (EpLinkWatch * w, gint64 now_us);
/* One reading of `downstream`'s `stats` (srtsink in caller mode); FALSE when it has
 * none or a counter is missing. */
gboolean ep_link_read (GstElement * downstream, EpReading * r);
/* Ends a sample: adds `r` (NULL: no reading) to the ring and evaluates the trigger.
 * Returns its reason ("ack", "queue") with the ring copied into `win` (LINK_RING
 * entries), or NULL. */
const gchar *ep_link_watch_add (EpLinkWatch * w, const EpReading * r, EpReading * win,
    guint * win_n);
/* Posts the `epframer-link` element message for a trigger. */
void ep_link_post (GstElement * element, const gchar * reason, guint64 trigger,
    const EpReading * win, guint win_n);

#endif
