/**
 * The link adaptation's tuning, one named number each, with what it is and why it has
 * that value. Where the numbers were measured and how: docs/adapt.md.
 */

/** Statistics interval the controller is designed for. */
export const SAMPLE_MS = 500;

// ---- Reading the link ---------------------------------------------------------------

/**
 * libsrt's receiver sends a full ACK every 10 ms when new data arrived: below ~40 ACKs a
 * second it is one ACK per arriving packet (measured: ~70/s for 150 packets/s through a
 * 4 Mbit/s link, 50/s through 600 kbit/s, 10/s through 100 kbit/s). ACKs that fall far
 * below the packets sent say how many packets the link delivers — at once, while the RTT
 * (its ACKACKs cross the full queue) still shows next to nothing.
 */
export const ACK_PER_PACKET_RATE = 40;
/** RTT floor: the minimum over this long. */
export const RTT_FLOOR_WINDOW_MS = 30_000;
/** Queueing delay budget: this share of SRT's latency… */
export const DELAY_BUDGET_SHARE = 0.25;
/** …but at least this much (a short latency still tolerates some jitter)… */
export const DELAY_BUDGET_MIN_MS = 40;
/** …and at most this much (a long latency must not hide a growing queue for long). */
export const DELAY_BUDGET_MAX_MS = 150;

// ---- Is the link congested? ---------------------------------------------------------

/** Loss above this % of the packets sent is congestion when the queue is also past LOSS_QUEUE_SHARE (random loss is left to SRT). */
export const LOSS_CONGESTED_PCT = 2;
/** …of the delay budget: loss with a flat RTT is random loss, loss with a rising one is the bottleneck. */
export const LOSS_QUEUE_SHARE = 0.5;
/** A cut on ACKs alone is undone unless a queue or losses confirm it within this time. */
export const VERIFY_MS = 1500;
/** A queue past this share of the delay budget confirms a cut made on ACKs alone (as losses or sender drops do). */
export const CONFIRM_QUEUE_SHARE = 0.5;

// ---- Cutting (congested) ------------------------------------------------------------

/** Decreases at least this far apart: a decrease needs ~1 RTT + a frame to show. */
export const DECREASE_GAP_MS = 2000;
/** Decreases within this time of a severe one are the same congestion episode. */
export const EPISODE_MS = 5000;
/** Queueing delay beyond this many delay budgets: a collapse, not a drift (the deep cut). */
export const COLLAPSE_SEVERITY = 4;
/** Queueing delay beyond this many delay budgets (and up to COLLAPSE_SEVERITY): a severe queue, a deeper cut than a mild one. */
export const SEVERE_SEVERITY = 2;
/** A jump of more than this many delay budgets in one sample, from a clean link: a collapse the smoothed RTT shows only the start of. */
export const SUDDEN_RISE_BUDGETS = 2;
/** The severity given to such a jump: just past COLLAPSE_SEVERITY, so it is cut like a full queue. */
export const SUDDEN_SEVERITY = COLLAPSE_SEVERITY + 0.01;
/** Within a severe episode, a collapse-sized queue waits only this share of DECREASE_GAP_MS for the next cut. */
export const EPISODE_COLLAPSE_GAP_SHARE = 0.75;
/** A cut this recent (in DECREASE_GAP_MS) may be what the ACKs show the link keeping up with. */
export const RECENT_CUT_GAPS = 1.5;
/** ACKs count arriving packets only below ACK_PER_PACKET_RATE × this: above, "keeps up" cannot be read from them. */
export const KEEPS_UP_RATE_FACTOR = 1.5;
/** ACKs per packet sent that say the link delivers all of it (libsrt ACKs ~90 % of arrivals at ~50/s). */
export const KEEPS_UP_SHARE = 0.9;
/** An RTT under this share of the one at the last cut: the queue is draining, the cut works. */
export const DRAINING_RTT_SHARE = 0.9;
/** Wire rate after a cut, as a share of what was sent: within an episode (cut from the video target instead)… */
export const EPISODE_CUT = 0.5;
/** …after sender drops or a collapse-sized queue (audio has priority; an overcut is repaired within seconds)… */
export const COLLAPSE_CUT = 0.25;
/** …after a severe queue… */
export const SEVERE_CUT = 0.7;
/** …after a mild one (the link's limit is just above what was sent). */
export const MILD_CUT = 0.85;
/** After congestion: this share of the delivered rate goes to media (the rest drains the queue). */
export const DRAIN_SHARE = 0.8;
/** A cut that keeps the rung takes the target at least this low (a 15 % step, or it would not show). */
export const SAME_RUNG_CUT = 0.85;
/** After a deeper than mild cut the link's limit is only known to be below what was sent: taken as this much above the new rate. */
export const LIMIT_ABOVE_CUT = 1.25;
/** Queueing delay beyond this many SRT latencies: the link is tiny (the same buffer drains slower the thinner the link). */
export const EXTREME_QUEUE_LATENCIES = 6;
/** Time at the lowest video rung, still congested and not draining, before audio-only. */
export const LOWEST_RUNG_TRIAL_MS = 3000;
/** The same trial when the queue is extreme: a third of it (a tiny link loses audio waiting). */
export const EXTREME_LOWEST_RUNG_TRIAL_MS = LOWEST_RUNG_TRIAL_MS / 3;

// ---- Increasing (clean link) --------------------------------------------------------

/** An increase needs the queue under this share of the budget: a queue already forming says "at capacity". */
export const INCREASE_QUEUE_SHARE = 0.6;
/** …or the queue grew by more than this share of the budget since the last sample. */
export const QUEUE_RISE_SHARE = 0.2;
/** Clean time needed before an increase (after a decrease: RECOVERY_HOLD_MS). */
export const INCREASE_EVERY_MS = 1500;
export const RECOVERY_HOLD_MS = 4000;
/** Near the last congested rate, increases wait this long instead (NEAR_CEILING_STREAK_MS less after each one that passed), and are smaller. */
export const NEAR_CEILING_EVERY_MS = 4000;
/** What each increase that passed near the ceiling takes off the next one's wait. */
export const NEAR_CEILING_STREAK_MS = 1000;
/** The rate that last congested the link (the ceiling) is forgotten after this long. */
export const CEILING_MEMORY_MS = 30_000;
/** "Near the ceiling": an increase would pass this share of it… */
export const NEAR_CEILING_LOW = 0.9;
/** …and the target is still under this share of it (well past it without congestion, the link has grown). */
export const NEAR_CEILING_HIGH = 1.1;
/** An increase: +25 % of the target… */
export const INCREASE_FACTOR = 1.25;
/** …and +10 % near the ceiling. */
export const NEAR_CEILING_FACTOR = 1.1;

// ---- Ladder and wire cost -----------------------------------------------------------

/** Bits per pixel a rung needs at least (x264 ultrafast/zerolatency, talking heads). */
export const MIN_BITS_PER_PIXEL = 0.035;
/** The lowest rung never asks less (below that, audio-only is the better meeting). */
export const MIN_RUNG_KBPS = 100;
/** Frame rate of every rung below the top (half of 30 fps: a talking head stays readable). */
export const LOW_RUNG_FPS = 15;
/** A rung is entered from below only with this margin above its floor (hysteresis). */
export const RUNG_UP_MARGIN = 1.2;
/** TS + PES + SRT/UDP/IP headers on video (4/188 + ~14 per PES + 44 per 1316). */
export const VIDEO_OVERHEAD = 0.05;
/**
 * Wire cost per video frame beyond its bytes: the null padding that closes its last
 * 1316-byte message, and audio flushed with it. Starting value measured through the
 * bottleneck (~11 kbit a frame at 30 and at 15 fps); the controller then learns it from
 * what srtsink sends (AdaptState.frameKbit).
 */
export const FRAME_KBIT = 11;
/** The frame cost is learnt only this long after the last change and into a clean stretch (steady). */
export const FRAME_COST_STEADY_MS = 3000;
/** Bounds of a learnt frame cost: an encoder undershooting a static scene must not teach that frames are free… */
export const FRAME_KBIT_MIN = 4;
/** …nor a burst that they are dear. */
export const FRAME_KBIT_MAX = 30;
/** Weight of the old average and of each new reading in the slow average. */
export const FRAME_COST_KEEP = 0.9;
export const FRAME_COST_NEW = 0.1;

// ---- Audio-only probe ---------------------------------------------------------------

/** Audio-only: probe steps (padding rate over the audio's own rate) and their length. */
export const PROBE_STEP_MS = SAMPLE_MS;
export const PROBE_FACTOR = 1.5;
/** The first probe step pads at least this much (a meaningful step even for thin audio). */
export const PROBE_MIN_KBPS = 10;
/** Video comes back at the lowest rung's entry rate plus this, so the rung's margin is surely met. */
export const PROBE_OK_EXTRA_KBPS = 1;
/** Wait before the next probe after 1, 2, 3+ failed ones (short: video back soon after a recovery). */
export const PROBE_BACKOFF_MS = [2500, 3000, 4000];
