#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#ifdef __linux__
#include <linux/filter.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/decode.h"
#include "log.h"
#include "core/pktseen.h"
#include "core/util.h"
#include "core/wire.h"

/* A file is read in chunks this large: copying from the page cache into
 * a buffer that stays in the CPU cache is several times faster than into
 * one that does not (measured: 128 KiB reads 4-5x faster than 1 MiB ones).
 * Up to FILE_BATCH bytes are handed over per loop iteration (fewer when
 * the replay pauses the file). The replay's writes start between
 * batches, so a larger batch means larger writes and fewer wakeups of the
 * target: replaying 2,000 interleaved connections (W3 of bench/) took
 * 0.57 s with 2 MiB batches, 0.35 s with 16 MiB. Few large connections
 * (W1) do not gain: their queued bytes leave the CPU cache before they
 * are written (user time 0.10 -> 0.13 s) but need fewer writes (system
 * time 0.28 -> 0.23 s), and the wall time stays the same. */
#define FILE_CHUNK   (128u * 1024)
#define FILE_BATCH   (16u * 1024 * 1024)
#define STREAM_CHUNK (128u * 1024)
/* Packets taken from libpcap per callback before yielding. */
#define LIVE_BATCH     256
#define LIVE_MAX_LOOPS 64

/* A live capture delivers each packet as it arrives while traffic is
 * light: lowest latency, but libpcap's per-packet ring (TPACKET_V2) gives
 * every packet a frame sized for the largest one, so on lo (64 KiB MTU,
 * and every packet also takes a frame as it leaves) a 128 MiB ring holds
 * about 1,000 packets: 8 milliseconds at 1 Gbit/s. Above --batch-above
 * packets/s it hands over to a second ring that packs packets into
 * blocks (TPACKET_V3): about 90,000 packets in the same memory and one
 * wake-up per block instead of one per packet, for up to
 * BLOCK_TIMEOUT_MS of added latency. Both rings stay open; the one not
 * in use has a filter that rejects everything, which costs the kernel one
 * instruction per packet. */
#define BLOCK_TIMEOUT_MS      1
#define RATE_WINDOW_MS        100
/* A per-packet read that finds this many packets waiting means the ring
 * (about 1,000 packets on lo) is filling faster than it is read: switch
 * now rather than at the end of the window. */
#define RING_PRESSURE_PACKETS 512
#define QUIET_WINDOWS_TO_LEAVE 10 /* 1 s below a fifth of the rate */
/* A hand-over keeps both rings attached this long, so that a packet the
 * kernel is handing to the two sockets on another CPU reaches at least
 * one of them. */
#define HANDOVER_OVERLAP_MS 1
/* After the old ring is detached it is still read for this long: a block
 * ring hands over its last, partly filled block only when its timer
 * retires it, which kernels with a tick-based timer do up to tens of
 * milliseconds late; a packet ring may still be receiving a packet on
 * the other CPU. Both rings are read meanwhile. */
#define HANDOVER_DRAIN_BLOCKS_MS  100
#define HANDOVER_DRAIN_PACKETS_MS 5
/* Packets are fingerprinted from this long before the new ring was
 * attached (the two sockets timestamp a packet microseconds apart). */
#define ATTACH_MARGIN_US 1000
/* After the hand-over the new ring's packets are checked against the old
 * ring's until they are this much younger than its end. */
#define DEDUP_WINDOW_MS 50
/* Fingerprints kept per ring and hand-over: more than a ring holds. */
#define DEDUP_LIMIT (256u * 1024)
/* A fingerprint covers the wire length and the first bytes (headers,
 * including the TCP checksum): the two rings may keep different lengths
 * of a packet larger than 64 KiB. */
#define FINGERPRINT_BYTES 256

enum source_kind { SRC_FILE, SRC_STREAM, SRC_LIVE, SRC_PROVIDER };

struct source;

/* One kernel capture ring on the interface. */
struct live_ring {
    struct source *s;
    pcap_t *pcap;
    struct bpf_program prog;
    bool have_prog;
    bool blocks; /* TPACKET_V3 blocks, else a frame per packet */
    uv_poll_t poll;
    bool poll_init, polling;
};

struct source {
    enum source_kind kind;
    uv_loop_t *loop;
    struct source_config cfg;
    struct source_events ev;
    char *name;
    bool started, paused, stopped, ended;
    uint64_t bytes_read;

    struct capreader *reader;
    uint8_t *buf;
    size_t bufcap;
    bool need_data; /* the reader has used up its chunk */
    bool holding;   /* `held` waits for its time (pacing) */
    struct cap_item held;
    uint64_t held_due; /* uv_hrtime() when `held` is due */
    bool pace_started;
    uint64_t pace_last_ts, pace_last_due; /* the previous timed packet */
    uint64_t pauses_capped;
    uv_timer_t pace_timer;
    bool pace_timer_init;

    int fd;
    uv_idle_t idle;
    bool idle_init, idle_active;

    uv_pipe_t *pipe;
    bool reading;

    struct live_ring rings[2];
    int n_rings;
    int active;           /* the ring read from */
    uint64_t batch_above; /* packets/s; see --batch-above */
    uv_timer_t mode_timer;
    bool mode_timer_init;
    uint64_t window_packets;
    int quiet_windows;
    int64_t last_drops;
    bool switching_failed;
    bool handing_over; /* both rings are read (see begin_handover) */
    bool old_detached;
    int old_ring;
    uint64_t handover_next; /* uv_hrtime() of the hand-over's next step */
    uv_timer_t handover_timer;
    bool handover_timer_init;
    /* Wall-clock times in ns, comparable with packet timestamps. */
    uint64_t attach_ns; /* the new ring's attach, less the margin */
    bool dedup; /* the active ring may repeat the old ring's packets */
    uint64_t dedup_until_ns;
    struct pktseen *seen[2]; /* per ring: packets it delivered since */
    /* Per ring: packets still in it that are older than this were in no
     * other ring when it was left; 0: none such. */
    uint64_t uncovered_before_ns[2];
    uint64_t switches, duplicates_skipped, unrecorded, handover_lost;
    uv_timer_t live_timer;
    bool live_timer_init;
    /* source_stop_then(): the last packets before the stop are read. */
    bool final_read;
    bool after_stop_seen; /* the active ring has passed the stop */
    bool read_capped;     /* the last read of the active ring left more */
    uint64_t final_stop_ns;  /* wall clock, like packet timestamps */
    uint64_t final_deadline; /* uv_hrtime() */
    void (*final_cb)(void *);
    void *final_ctx;
    uv_timer_t final_timer;
    int linktype;
    uint8_t header[CAP_PCAP_HEADER_LEN];
    uint8_t rechdr[CAP_PCAP_RECORD_HEADER_LEN];

    const struct source_provider_ops *ops;
    void *impl;

    int open_handles;
    void (*done)(void *);
    void *done_ctx;
};

static struct source *source_alloc(uv_loop_t *loop, enum source_kind kind,
                                   const char *name,
                                   const struct source_config *cfg,
                                   const struct source_events *ev)
{
    struct source *s = tm_xcalloc(1, sizeof(*s));
    s->kind = kind;
    s->loop = loop;
    s->cfg = *cfg;
    s->cfg.filter = NULL; /* only meaningful while opening */
    s->ev = *ev;
    s->name = tm_xstrdup(name);
    s->fd = -1;
    s->need_data = true;
    if (kind == SRC_FILE || kind == SRC_STREAM) {
        s->reader = capreader_new();
        uv_timer_init(loop, &s->pace_timer);
        s->pace_timer.data = s;
        s->pace_timer_init = true;
    }
    return s;
}

const char *source_name(const struct source *s)
{
    return s->name;
}

bool source_lossless(const struct source *s)
{
    return s->kind == SRC_FILE;
}

bool source_is_live_capture(const struct source *s)
{
    return s->kind == SRC_LIVE;
}

uint64_t source_bytes_read(const struct source *s)
{
    return s->bytes_read;
}

bool source_paused(const struct source *s)
{
    return s->paused;
}

static void schedule(struct source *s);

static void on_ring_poll(uv_poll_t *p, int status, int events);
static void on_handover_timer(uv_timer_t *t);
static void on_final_timer(uv_timer_t *t);

static void ring_poll(struct live_ring *r, bool on)
{
    if (!r->poll_init || r->polling == on) {
        return;
    }
    r->polling = on;
    if (on) {
        uv_poll_start(&r->poll, UV_READABLE, on_ring_poll);
    } else {
        uv_poll_stop(&r->poll);
    }
}

/* A live source stops watching its rings and its timers. */
static void live_quiet(struct source *s)
{
    for (int i = 0; i < s->n_rings; i++) {
        ring_poll(&s->rings[i], false);
    }
    if (s->mode_timer_init) {
        uv_timer_stop(&s->mode_timer);
    }
    if (s->handover_timer_init) {
        uv_timer_stop(&s->handover_timer);
    }
    if (s->live_timer_init) {
        uv_timer_stop(&s->live_timer);
    }
}

/* Reports the end once; nothing is delivered after it. At the end of a
 * byte stream, input that was not a capture at all is an error. */
static void finish(struct source *s, int status, const char *msg)
{
    char why[400];
    if (s->ended || s->stopped) {
        return;
    }
    if (status == 0 && s->reader != NULL &&
        capreader_end(s->reader) == CAPREADER_ERROR) {
        snprintf(why, sizeof(why), "%s: %s", s->name,
                 capreader_error(s->reader));
        status = -1;
        msg = why;
    }
    s->ended = true;
    bool truncated =
        status == 0 && s->reader != NULL && capreader_pending(s->reader) > 0;
    if (s->idle_active) {
        uv_idle_stop(&s->idle);
        s->idle_active = false;
    }
    if (s->reading) {
        uv_read_stop((uv_stream_t *)s->pipe);
        s->reading = false;
    }
    live_quiet(s);
    s->ev.end(s->ev.ctx, status, msg, truncated);
}

static void on_pace_timer(uv_timer_t *t)
{
    struct source *s = t->data;
    schedule(s);
}

/*
 * When a packet read now is due under --pace (uv_hrtime()): the previous
 * packet's due time plus the capture's spacing divided by the factor,
 * but never more than --max-pause later. A packet stamped before the
 * previous one (the capture's clock stepped back) is due with it, and the
 * spacing resumes from its stamp; one with no time (0) is due at once.
 * The wait is computed in double and compared with the cap before it is
 * converted, so that no stamp, however far off, converts out of range.
 */
static uint64_t pace_schedule(struct source *s, uint64_t ts)
{
    uint64_t now = uv_hrtime();
    if (!s->pace_started || ts == 0) {
        if (ts != 0) {
            s->pace_started = true;
            s->pace_last_ts = ts;
            s->pace_last_due = now;
        }
        return s->pace_started ? s->pace_last_due : now;
    }
    uint64_t cap = TM_MIN(s->cfg.max_pause_ns, 1ull << 62);
    uint64_t wait = 0;
    if (ts > s->pace_last_ts) {
        double w = (double)(ts - s->pace_last_ts) / s->cfg.pace;
        if (w > (double)cap) {
            if (s->pauses_capped++ == 0) {
                tm_warn("%s: the capture's clock jumps %.0f s between two "
                        "packets; --pace waits at most %.3g s (--max-pause), "
                        "and counts every wait it cuts short "
                        "(source.pauses_capped)",
                        s->name,
                        (double)(ts - s->pace_last_ts) / (double)TM_NS_PER_S,
                        (double)cap / (double)TM_NS_PER_S);
            }
            wait = cap;
        } else {
            wait = (uint64_t)w;
        }
    }
    s->pace_last_ts = ts;
    s->pace_last_due = wait > UINT64_MAX - s->pace_last_due
                           ? UINT64_MAX
                           : s->pace_last_due + wait;
    return s->pace_last_due;
}

/* Whether `due` (uv_hrtime()) has come; arms the pace timer if not. */
static bool pace_reached(struct source *s, uint64_t due)
{
    uint64_t now = uv_hrtime();
    if (now >= due) {
        return true;
    }
    uint64_t ms = (due - now + TM_NS_PER_MS - 1) / TM_NS_PER_MS;
    uv_timer_start(&s->pace_timer, on_pace_timer, ms, 0);
    return false;
}

uint64_t source_pauses_capped(const struct source *s)
{
    return s->pauses_capped;
}

/*
 * Hands items to the run until the reader's chunk is used up (returns
 * true), or the source pauses, stops, ends or holds an item for its time
 * (returns false).
 */
static bool pump(struct source *s)
{
    struct cap_item it;
    for (;;) {
        if (s->paused || s->stopped || s->ended) {
            return false;
        }
        if (s->holding) {
            if (!pace_reached(s, s->held_due)) {
                return false;
            }
            s->holding = false;
            s->ev.item(s->ev.ctx, &s->held);
            continue;
        }
        int rc = capreader_next(s->reader, &it);
        if (rc == CAPREADER_NEED_MORE) {
            s->need_data = true;
            return true;
        }
        if (rc == CAPREADER_ERROR) {
            char msg[400];
            snprintf(msg, sizeof(msg), "%s: %s", s->name,
                     capreader_error(s->reader));
            finish(s, -1, msg);
            return false;
        }
        if (s->cfg.pace > 0 && it.kind == CAP_ITEM_PACKET) {
            uint64_t due = pace_schedule(s, it.ts_ns);
            if (!pace_reached(s, due)) {
                s->held = it;
                s->held_due = due;
                s->holding = true;
                return false;
            }
        }
        s->ev.item(s->ev.ctx, &it);
    }
}

/* ---- capture file ---- */

/* Reads one chunk and hands its items over; returns false when it
 * cannot go on (paused, pacing, ended). */
static bool file_chunk(struct source *s)
{
    if (s->need_data) {
        ssize_t n;
        do {
            n = read(s->fd, s->buf, s->bufcap);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            char msg[400];
            snprintf(msg, sizeof(msg), "reading %s: %s", s->name,
                     strerror(errno));
            finish(s, -1, msg);
            return false;
        }
        if (n == 0) {
            s->ev.batch(s->ev.ctx);
            finish(s, 0, NULL);
            return false;
        }
        s->bytes_read += (uint64_t)n;
        capreader_push(s->reader, s->buf, (size_t)n);
        s->need_data = false;
    }
    return pump(s);
}

static void file_step(struct source *s)
{
    for (size_t done = 0; done < FILE_BATCH; done += FILE_CHUNK) {
        if (!file_chunk(s)) {
            break;
        }
    }
    if (!s->ended && !s->stopped) {
        s->ev.batch(s->ev.ctx);
    }
}

static void on_idle(uv_idle_t *h)
{
    struct source *s = h->data;
    file_step(s);
    if ((s->paused || s->holding || s->ended || s->stopped) &&
        s->idle_active) {
        uv_idle_stop(&s->idle);
        s->idle_active = false;
    }
}

/* ---- byte stream ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct source *s = h->data;
    (void)suggested;
    buf->base = (char *)s->buf;
    buf->len = s->bufcap;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct source *s = st->data;
    (void)buf;
    if (nread == UV_EOF) {
        finish(s, 0, NULL);
        return;
    }
    if (nread < 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "reading %s: %s", s->name,
                 uv_strerror((int)nread));
        finish(s, -1, msg);
        return;
    }
    if (nread == 0) {
        return;
    }
    s->bytes_read += (uint64_t)nread;
    capreader_push(s->reader, s->buf, (size_t)nread);
    s->need_data = false;
    bool used_up = pump(s);
    if (!s->ended && !s->stopped) {
        s->ev.batch(s->ev.ctx);
    }
    if (!used_up && s->reading) {
        /* The chunk is still being handed out: no new read may reuse the
         * buffer until it is. */
        uv_read_stop(st);
        s->reading = false;
    }
}

/* ---- live capture ---- */

static uint64_t timeval_ns(const struct timeval *tv)
{
    return (uint64_t)tv->tv_sec * TM_NS_PER_S +
           (uint64_t)tv->tv_usec * TM_NS_PER_US;
}

/* The wall clock, which packet timestamps also come from. */
static uint64_t wall_ns(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return timeval_ns(&tv);
}

/* A packet left in a ring from an earlier hand-over: skipped, and lost
 * if no other ring had it. */
static void stale_packet(struct live_ring *r, const struct pcap_pkthdr *h)
{
    struct source *s = r->s;
    if (timeval_ns(&h->ts) < s->uncovered_before_ns[r - s->rings]) {
        s->handover_lost++;
    }
}

static void ignore_packet(u_char *user, const struct pcap_pkthdr *h,
                          const u_char *bytes)
{
    (void)user;
    (void)h;
    (void)bytes;
}

static void stale_packet_cb(u_char *user, const struct pcap_pkthdr *h,
                            const u_char *bytes)
{
    (void)bytes;
    stale_packet((struct live_ring *)(void *)user, h);
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h,
                      const u_char *bytes)
{
    struct live_ring *r = (struct live_ring *)(void *)user;
    struct source *s = r->s;
    if (s->stopped || s->ended) {
        return;
    }
    s->window_packets++;
    uint64_t ts_ns = timeval_ns(&h->ts);
    if (s->final_read && ts_ns > s->final_stop_ns) {
        /* Captured after the stop. Past the margin in the active ring,
         * every packet from before it has been read (see final_step). */
        if (r == &s->rings[s->active] &&
            ts_ns > s->final_stop_ns + ATTACH_MARGIN_US * TM_NS_PER_US) {
            s->after_stop_seen = true;
        }
        return;
    }
    if ((s->handing_over || s->dedup) && r != &s->rings[s->old_ring] &&
        ts_ns < s->attach_ns) {
        /* Left in the new ring from an earlier hand-over (a block its
         * timer retired late): the other ring delivered it, unless it
         * was in no other ring. */
        stale_packet(r, h);
        return;
    }
    if ((s->handing_over || s->dedup) && ts_ns >= s->attach_ns) {
        /* Since the new ring was attached a packet may come from both
         * rings, in either order: deliver the first copy, skip the
         * other. */
        int mine = (int)(r - s->rings);
        uint8_t key[4 + FINGERPRINT_BYTES];
        size_t n = TM_MIN((size_t)h->caplen, (size_t)FINGERPRINT_BYTES);
        wr_le32(key, h->len);
        memcpy(key + 4, bytes, n);
        if (pktseen_take(s->seen[1 - mine], key, 4 + n)) {
            s->duplicates_skipped++;
            return;
        }
        if (s->handing_over && !pktseen_add(s->seen[mine], key, 4 + n)) {
            s->unrecorded++;
        }
    }
    if (s->dedup && (ts_ns > s->dedup_until_ns ||
                     pktseen_count(s->seen[s->old_ring]) == 0)) {
        s->dedup = false;
        pktseen_clear(s->seen[0]);
        pktseen_clear(s->seen[1]);
    }
    struct cap_item it;
    memset(&it, 0, sizeof(it));
    wr_le32(s->rechdr, (uint32_t)h->ts.tv_sec);
    wr_le32(s->rechdr + 4, (uint32_t)h->ts.tv_usec);
    wr_le32(s->rechdr + 8, h->caplen);
    wr_le32(s->rechdr + 12, h->len);
    it.kind = CAP_ITEM_PACKET;
    it.raw = s->rechdr;
    it.raw_len = sizeof(s->rechdr);
    it.raw2 = bytes;
    it.raw2_len = h->caplen;
    it.linktype = s->linktype;
    it.ts_ns = ts_ns;
    it.caplen = h->caplen;
    it.wirelen = h->len < h->caplen ? h->caplen : h->len;
    it.data = bytes;
    s->bytes_read += sizeof(s->rechdr) + h->caplen;
    s->ev.item(s->ev.ctx, &it);
}

/* Reads up to `loops` batches from one ring, adding the packets read to
 * `*count`; false after an error (the source has finished). */
static bool ring_read(struct source *s, struct live_ring *r, int loops,
                      uint64_t *count)
{
    for (int i = 0; i < loops; i++) {
        if (s->paused || s->stopped || s->ended) {
            break;
        }
        int n = pcap_dispatch(r->pcap, LIVE_BATCH, on_packet,
                              (u_char *)(void *)r);
        if (n < 0) {
            char msg[400];
            snprintf(msg, sizeof(msg), "capturing on %s: %s", s->name,
                     pcap_geterr(r->pcap));
            finish(s, -1, msg);
            return false;
        }
        *count += (uint64_t)n;
        if (n < LIVE_BATCH) {
            break;
        }
    }
    return true;
}

/* Empties a ring that was not in use. What it holds arrived while its
 * filter was being swapped and the ring in use had copies, except
 * packets older than uncovered_before: those were lost (counted). */
static void ring_discard(struct live_ring *r)
{
    for (int i = 0; i < 1024; i++) {
        if (pcap_dispatch(r->pcap, -1, stale_packet_cb, (u_char *)(void *)r) <=
            0) {
            break;
        }
    }
}

/* Stops a ring from taking packets. Set on the socket, not through
 * pcap_setfilter(): libpcap would apply the new filter to the packets
 * already in the ring too, and those must still be delivered. */
static int ring_detach(struct live_ring *r)
{
#ifdef __linux__
    struct sock_filter reject = {BPF_RET | BPF_K, 0, 0, 0};
    struct sock_fprog prog = {1, &reject};
    return setsockopt(pcap_fileno(r->pcap), SOL_SOCKET, SO_ATTACH_FILTER,
                      &prog, sizeof(prog));
#else
    (void)r;
    errno = ENOTSUP;
    return -1;
#endif
}

static void give_up_switching(struct source *s, const char *why)
{
    tm_warn("capturing on %s: cannot switch capture rings (%s); staying "
            "with %s",
            s->name, why,
            s->rings[s->active].blocks ? "blocks" : "per-packet delivery");
    s->switching_failed = true;
}

/* Hands the capture over to the other ring in three steps:
 * 1. now: empty the new ring, attach it; both rings take every packet;
 * 2. HANDOVER_OVERLAP_MS later: detach the old ring;
 * 3. HANDOVER_DRAIN_*_MS later: read the old ring empty and leave it.
 * Both rings are read throughout, and each packet younger than the
 * attach is fingerprinted: whichever ring delivers a packet first, the
 * other one's copy is skipped. No packet is missed, because the rings
 * overlap; none is delivered twice, because of the fingerprints. */
static void begin_handover(struct source *s)
{
    int to = 1 - s->active;
    struct live_ring *next = &s->rings[to];
    ring_discard(next);
    s->attach_ns = wall_ns() - ATTACH_MARGIN_US * TM_NS_PER_US;
    if (pcap_setfilter(next->pcap, &next->prog) < 0) {
        char why[PCAP_ERRBUF_SIZE + 1];
        snprintf(why, sizeof(why), "%s", pcap_geterr(next->pcap));
        ring_detach(next);
        ring_discard(next);
        give_up_switching(s, why);
        return;
    }
    pktseen_clear(s->seen[0]);
    pktseen_clear(s->seen[1]);
    s->dedup = false;
    s->handing_over = true;
    s->old_detached = false;
    s->old_ring = s->active;
    s->active = to;
    s->switches++;
    s->quiet_windows = 0;
    struct pcap_stat ps;
    s->last_drops =
        pcap_stats(next->pcap, &ps) == 0 ? (int64_t)ps.ps_drop : 0;
    s->handover_next = uv_hrtime() + HANDOVER_OVERLAP_MS * TM_NS_PER_MS;
    uv_timer_start(&s->handover_timer, on_handover_timer, 1, 1);
    if (!s->paused) {
        ring_poll(next, true);
    }
    tm_verbose("capturing on %s: %s", s->name,
               next->blocks ? "delivering in blocks (traffic above "
                              "--batch-above)"
                            : "delivering each packet at once again");
}

/* Steps 2 and 3 of a hand-over, when their time has come; false after an
 * error (the source has finished). */
static bool advance_handover(struct source *s)
{
    struct live_ring *old = &s->rings[s->old_ring];
    uint64_t now = uv_hrtime();
    if (now < s->handover_next || s->paused || s->stopped || s->ended) {
        return true;
    }
    if (!s->old_detached) {
        if (ring_detach(old) < 0) {
            /* Not seen in practice: the same call detached this ring
             * before. It stays attached and unread; the kernel counts
             * what it drops. */
            give_up_switching(s, strerror(errno));
        }
        s->old_detached = true;
        s->handover_next =
            now + (uint64_t)(old->blocks ? HANDOVER_DRAIN_BLOCKS_MS
                                         : HANDOVER_DRAIN_PACKETS_MS) *
                      TM_NS_PER_MS;
        return true;
    }
    uint64_t n = 0;
    if (!ring_read(s, old, INT32_MAX, &n)) {
        return false;
    }
    ring_poll(old, false);
    uv_timer_stop(&s->handover_timer);
    s->handing_over = false;
    /* What the old ring still holds later is older than the drain: the
     * new ring has the packets from the attach on. */
    s->uncovered_before_ns[s->old_ring] = s->attach_ns;
    s->dedup_until_ns = wall_ns() + DEDUP_WINDOW_MS * TM_NS_PER_MS;
    s->dedup = pktseen_count(s->seen[s->old_ring]) > 0;
    pktseen_clear(s->seen[s->active]);
    if (!s->dedup) {
        pktseen_clear(s->seen[s->old_ring]);
    }
    return true;
}

static void live_read(struct source *s)
{
    uint64_t n = 0;
    if (s->handing_over) {
        if (!ring_read(s, &s->rings[s->old_ring], LIVE_MAX_LOOPS, &n) ||
            !advance_handover(s)) {
            return;
        }
    }
    n = 0;
    if (!ring_read(s, &s->rings[s->active], LIVE_MAX_LOOPS, &n)) {
        return;
    }
    s->read_capped = n >= (uint64_t)LIVE_MAX_LOOPS * LIVE_BATCH;
    if (n >= RING_PRESSURE_PACKETS && !s->handing_over && s->n_rings == 2 &&
        !s->rings[s->active].blocks && !s->switching_failed &&
        !s->final_read &&
        !s->paused && !s->stopped && !s->ended) {
        begin_handover(s);
    }
    if (!s->stopped && !s->ended) {
        s->ev.batch(s->ev.ctx);
    }
}

static void on_ring_poll(uv_poll_t *p, int status, int events)
{
    struct live_ring *r = p->data;
    struct source *s = r->s;
    (void)events;
    if (status < 0) {
        /* libuv reports an error condition on the socket (the interface
         * went down, say) as a bad descriptor; libpcap knows better. */
        char msg[400];
        if (pcap_dispatch(r->pcap, 1, ignore_packet, NULL) < 0) {
            snprintf(msg, sizeof(msg), "capturing on %s: %s", s->name,
                     pcap_geterr(r->pcap));
        } else {
            snprintf(msg, sizeof(msg), "capturing on %s: %s", s->name,
                     uv_strerror(status));
        }
        finish(s, -1, msg);
        return;
    }
    live_read(s);
}

static void on_live_timer(uv_timer_t *t)
{
    live_read(t->data);
}

static void on_handover_timer(uv_timer_t *t)
{
    struct source *s = t->data;
    if (s->paused || s->stopped || s->ended) {
        return;
    }
    live_read(s);
}

/* Every RATE_WINDOW_MS: switch to blocks when the rate (or a kernel drop)
 * says per-packet delivery cannot keep up, back when it has been quiet
 * for a while. */
static void on_mode_timer(uv_timer_t *t)
{
    struct source *s = t->data;
    uint64_t pps = s->window_packets * (1000 / RATE_WINDOW_MS);
    s->window_packets = 0;
    if (s->handing_over || s->switching_failed || s->paused ||
        s->stopped || s->ended) {
        return;
    }
    struct live_ring *r = &s->rings[s->active];
    if (!r->blocks) {
        struct pcap_stat ps;
        int64_t drops = pcap_stats(r->pcap, &ps) == 0
                            ? (int64_t)ps.ps_drop
                            : s->last_drops;
        bool dropped = drops > s->last_drops;
        s->last_drops = drops;
        if (pps >= s->batch_above || dropped) {
            begin_handover(s);
        }
        return;
    }
    if (pps * 5 < s->batch_above) {
        if (++s->quiet_windows >= QUIET_WINDOWS_TO_LEAVE) {
            begin_handover(s);
        }
    } else {
        s->quiet_windows = 0;
    }
}

/* ---- control ---- */

/* Makes the source deliver again, in whatever way its kind needs. */
static void schedule(struct source *s)
{
    if (!s->started || s->paused || s->stopped || s->ended) {
        return;
    }
    switch (s->kind) {
    case SRC_FILE:
        if (!s->idle_active) {
            uv_idle_start(&s->idle, on_idle);
            s->idle_active = true;
        }
        break;
    case SRC_STREAM:
        if (!s->need_data) {
            bool used_up = pump(s);
            if (!s->ended && !s->stopped) {
                s->ev.batch(s->ev.ctx);
            }
            if (!used_up) {
                break;
            }
        }
        if (!s->reading && !s->ended && !s->stopped && !s->paused) {
            uv_read_start((uv_stream_t *)s->pipe, on_alloc, on_read);
            s->reading = true;
        }
        break;
    case SRC_LIVE:
        ring_poll(&s->rings[s->active], true);
        if (s->handing_over) {
            ring_poll(&s->rings[s->old_ring], true);
            uv_timer_start(&s->handover_timer, on_handover_timer, 1, 1);
        }
        break;
    case SRC_PROVIDER:
        break;
    }
}

void source_start(struct source *s)
{
    if (s->started) {
        return;
    }
    s->started = true;
    if (s->kind == SRC_PROVIDER) {
        s->ops->start(s->impl);
        return;
    }
    if (s->kind == SRC_LIVE) {
        /* The output needs a file header before the first record. */
        struct cap_item it;
        memset(&it, 0, sizeof(it));
        it.kind = CAP_ITEM_HEADER;
        it.raw = s->header;
        it.raw_len = sizeof(s->header);
        it.linktype = s->linktype;
        s->ev.item(s->ev.ctx, &it);
        const struct timeval *tv =
            pcap_get_required_select_timeout(s->rings[s->active].pcap);
        if (tv != NULL) {
            uint64_t ms = (uint64_t)tv->tv_sec * 1000 +
                          (uint64_t)tv->tv_usec / 1000;
            uv_timer_start(&s->live_timer, on_live_timer, ms ? ms : 1,
                           ms ? ms : 1);
        }
        if (s->n_rings == 2) {
            uv_timer_start(&s->mode_timer, on_mode_timer, RATE_WINDOW_MS,
                           RATE_WINDOW_MS);
        }
    }
    schedule(s);
}

void source_pause(struct source *s)
{
    if (s->paused) {
        return;
    }
    s->paused = true;
    if (s->kind == SRC_PROVIDER) {
        s->ops->pause(s->impl);
        return;
    }
    if (s->kind == SRC_LIVE) {
        for (int i = 0; i < s->n_rings; i++) {
            ring_poll(&s->rings[i], false);
        }
        if (s->handover_timer_init) {
            uv_timer_stop(&s->handover_timer);
        }
    }
    /* A stream stops reading once its current chunk is handed out (see
     * on_read); a file stops stepping in on_idle. */
}

void source_resume(struct source *s)
{
    if (!s->paused) {
        return;
    }
    s->paused = false;
    if (s->kind == SRC_PROVIDER) {
        s->ops->resume(s->impl);
        return;
    }
    schedule(s);
}

void source_stop(struct source *s)
{
    if (s->stopped) {
        return;
    }
    s->stopped = true;
    s->final_read = false; /* its callback is not called */
    if (s->live_timer_init) {
        uv_timer_stop(&s->final_timer);
    }
    if (s->kind == SRC_PROVIDER) {
        s->ops->stop(s->impl);
        return;
    }
    if (s->idle_active) {
        uv_idle_stop(&s->idle);
        s->idle_active = false;
    }
    if (s->reading) {
        uv_read_stop((uv_stream_t *)s->pipe);
        s->reading = false;
    }
    live_quiet(s);
    if (s->pace_timer_init) {
        uv_timer_stop(&s->pace_timer);
    }
}

/*
 * One step of the final read: both rings are read as usual (a hand-over
 * in progress goes on), packets from after the stop are skipped. A
 * per-packet ring holds every packet captured so far, so it is read
 * until it is empty. A block ring is read until a packet from after the
 * stop shows that the blocks before it are all retired. Either way for
 * at most SOURCE_FINAL_READ_MS (no packet after the stop may come, the
 * output may keep the source paused).
 */
static void final_step(struct source *s)
{
    live_read(s);
    if (!s->final_read) {
        return; /* stopped meanwhile */
    }
    bool done;
    if (s->handing_over) {
        done = false;
    } else if (s->after_stop_seen) {
        done = true;
    } else {
        done = !s->rings[s->active].blocks && !s->read_capped && !s->paused;
    }
    if (!done && !s->ended && uv_hrtime() < s->final_deadline) {
        uv_timer_start(&s->final_timer, on_final_timer, 1, 0);
        return;
    }
    if (s->n_rings == 2 && !s->handing_over) {
        /* A block that the ring left behind retired after its drain:
         * counted now, as the next hand-over would have. */
        ring_discard(&s->rings[1 - s->active]);
    }
    void (*cb)(void *) = s->final_cb;
    void *ctx = s->final_ctx;
    source_stop(s);
    cb(ctx);
}

static void on_final_timer(uv_timer_t *t)
{
    struct source *s = t->data;
    if (s->final_read) {
        final_step(s);
    }
}

void source_stop_then(struct source *s, void (*stopped)(void *ctx),
                      void *ctx)
{
    if (s->kind != SRC_LIVE || !s->started || s->paused || s->stopped ||
        s->ended || s->final_read) {
        source_stop(s);
        stopped(ctx);
        return;
    }
    s->final_read = true;
    s->after_stop_seen = false;
    s->final_stop_ns = wall_ns();
    s->final_deadline = uv_hrtime() + SOURCE_FINAL_READ_MS * TM_NS_PER_MS;
    s->final_cb = stopped;
    s->final_ctx = ctx;
    if (s->mode_timer_init) {
        uv_timer_stop(&s->mode_timer); /* no new hand-over */
    }
    /* From the loop, not from here: the caller may be inside a packet
     * callback, and libpcap's reads must not nest. */
    uv_timer_start(&s->final_timer, on_final_timer, 0, 0);
}

int64_t source_kernel_drops(struct source *s)
{
    if (s->kind != SRC_LIVE || s->n_rings == 0) {
        return -1;
    }
    int64_t drops = 0;
    for (int i = 0; i < s->n_rings; i++) {
        struct pcap_stat ps;
        if (pcap_stats(s->rings[i].pcap, &ps) < 0) {
            return -1;
        }
        drops += (int64_t)ps.ps_drop;
        if (i == 0) {
            /* The interface's own drops, the same for both rings. */
            drops += (int64_t)ps.ps_ifdrop;
        }
    }
    return drops;
}

bool source_capture_modes(const struct source *s,
                          struct source_capture_modes *out)
{
    memset(out, 0, sizeof(*out));
    if (s->kind != SRC_LIVE || s->n_rings == 0) {
        return false;
    }
    out->switches = s->switches;
    out->duplicates_skipped = s->duplicates_skipped;
    out->unrecorded = s->unrecorded;
    out->handover_lost = s->handover_lost;
    out->blocks = s->rings[s->active].blocks;
    out->switching = s->n_rings == 2;
    out->packet_ring_drops = -1;
    out->block_ring_drops = -1;
    for (int i = 0; i < s->n_rings; i++) {
        struct pcap_stat ps;
        int64_t drops = pcap_stats(s->rings[i].pcap, &ps) == 0
                            ? (int64_t)ps.ps_drop
                            : -1;
        if (s->rings[i].blocks) {
            out->block_ring_drops = drops;
        } else {
            out->packet_ring_drops = drops;
        }
    }
    return true;
}

/* Drops one reference held by an open handle (or by source_close while
 * it issues the closes); the last one frees the source. */
static void release(struct source *s)
{
    if (--s->open_handles > 0) {
        return;
    }
    for (int i = 0; i < s->n_rings; i++) {
        if (s->rings[i].have_prog) {
            pcap_freecode(&s->rings[i].prog);
        }
        pcap_close(s->rings[i].pcap);
    }
    pktseen_free(s->seen[0]);
    pktseen_free(s->seen[1]);
    if (s->fd >= 0) {
        close(s->fd);
    }
    void (*done)(void *) = s->done;
    void *ctx = s->done_ctx;
    capreader_free(s->reader);
    free(s->pipe);
    free(s->buf);
    free(s->name);
    free(s);
    if (done != NULL) {
        done(ctx);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void close_handle(struct source *s, uv_handle_t *h)
{
    h->data = s;
    s->open_handles++;
    uv_close(h, on_handle_closed);
}

static void provider_closed(void *ctx)
{
    release(ctx);
}

void source_close(struct source *s, void (*done)(void *ctx), void *ctx)
{
    source_stop(s);
    s->done = done;
    s->done_ctx = ctx;
    s->open_handles = 1; /* held until every close below is issued */
    if (s->kind == SRC_PROVIDER) {
        s->open_handles++;
        s->ops->close(s->impl, provider_closed, s);
    }
    if (s->pace_timer_init) {
        close_handle(s, (uv_handle_t *)&s->pace_timer);
    }
    if (s->idle_init) {
        close_handle(s, (uv_handle_t *)&s->idle);
    }
    if (s->pipe != NULL) {
        close_handle(s, (uv_handle_t *)s->pipe);
    }
    for (int i = 0; i < s->n_rings; i++) {
        if (s->rings[i].poll_init) {
            close_handle(s, (uv_handle_t *)&s->rings[i].poll);
        }
    }
    if (s->live_timer_init) {
        close_handle(s, (uv_handle_t *)&s->live_timer);
        close_handle(s, (uv_handle_t *)&s->final_timer);
    }
    if (s->mode_timer_init) {
        close_handle(s, (uv_handle_t *)&s->mode_timer);
    }
    if (s->handover_timer_init) {
        close_handle(s, (uv_handle_t *)&s->handover_timer);
    }
    release(s); /* the hold taken above */
}

/* ---- opening ---- */

void *source_provider_impl(const struct source *s)
{
    return s->kind == SRC_PROVIDER ? s->impl : NULL;
}

struct source *source_new_provider(uv_loop_t *loop, const char *name,
                                   const struct source_provider_ops *ops,
                                   void *impl)
{
    struct source_config none;
    struct source_events noev;
    memset(&none, 0, sizeof(none));
    memset(&noev, 0, sizeof(noev));
    struct source *s = source_alloc(loop, SRC_PROVIDER, name, &none, &noev);
    s->ops = ops;
    s->impl = impl;
    return s;
}

/* The kernel copies file pages into a page-aligned buffer about three
 * times faster than into one at a 16-byte offset (measured: 22 against
 * 79 us per 128 KiB read; the whole of W1 in bench/ went from 0.47 to
 * 0.31 s). malloc() gives page alignment only while it serves 128 KiB
 * from mmap, which depends on what was freed before. */
static uint8_t *page_aligned_buffer(size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, size) != 0) {
        return tm_xmalloc(size);
    }
    return p;
}

static int open_file_fd(uv_loop_t *loop, int fd, const char *name,
                        const struct source_config *cfg,
                        const struct source_events *ev, struct source **out)
{
    struct source *s = source_alloc(loop, SRC_FILE, name, cfg, ev);
    s->fd = fd;
    s->bufcap = FILE_CHUNK;
    s->buf = page_aligned_buffer(s->bufcap);
    uv_idle_init(loop, &s->idle);
    s->idle.data = s;
    s->idle_init = true;
    *out = s;
    return 0;
}

int source_open_pipe(uv_loop_t *loop, uv_pipe_t *pipe, const char *name,
                     const struct source_config *cfg,
                     const struct source_events *ev, struct source **out)
{
    struct source *s = source_alloc(loop, SRC_STREAM, name, cfg, ev);
    s->pipe = pipe;
    s->pipe->data = s;
    s->bufcap = STREAM_CHUNK;
    s->buf = page_aligned_buffer(s->bufcap);
    *out = s;
    return 0;
}

int source_open_input(uv_loop_t *loop, const char *path,
                      const struct source_config *cfg,
                      const struct source_events *ev, struct source **out,
                      char *err, size_t errlen)
{
    struct stat st;
    if (strcmp(path, "-") == 0) {
        if (isatty(STDIN_FILENO)) {
            snprintf(err, errlen,
                     "standard input is a terminal: pipe a capture into "
                     "it (tcpdump -U -w - ... | tapmirror replay - ...)");
            return -1;
        }
        if (fstat(STDIN_FILENO, &st) == 0 &&
            (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
            /* A character device (/dev/null, say) cannot be watched by
             * epoll: it is read like a file. */
            return open_file_fd(loop, STDIN_FILENO, "standard input", cfg,
                                ev, out);
        }
        uv_pipe_t *pipe = tm_xmalloc(sizeof(*pipe));
        int rc = uv_pipe_init(loop, pipe, 0);
        if (rc == 0) {
            rc = uv_pipe_open(pipe, STDIN_FILENO);
        }
        if (rc < 0) {
            snprintf(err, errlen, "cannot read standard input: %s",
                     uv_strerror(rc));
            free(pipe);
            return -1;
        }
        return source_open_pipe(loop, pipe, "standard input", cfg, ev, out);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "cannot read %s: is a directory", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
        /* A FIFO or socket: a live stream. A character device cannot be
         * watched by epoll, so it is read like a file. */
        uv_pipe_t *pipe = tm_xmalloc(sizeof(*pipe));
        int rc = uv_pipe_init(loop, pipe, 0);
        if (rc == 0) {
            rc = uv_pipe_open(pipe, fd);
        }
        if (rc < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path,
                     uv_strerror(rc));
            close(fd);
            free(pipe);
            return -1;
        }
        return source_open_pipe(loop, pipe, path, cfg, ev, out);
    }
    return open_file_fd(loop, fd, path, cfg, ev, out);
}

/* libpcap reports DLT_ values; capture files carry LINKTYPE_ values.
 * They agree for every link type decoded here except raw IP. */
static int dlt_to_linktype(int dlt)
{
    if (dlt == DLT_RAW) {
        return LINKTYPE_RAW;
    }
    return dlt;
}

/* Opens one ring on `iface` with the capture filter `expr` attached.
 * Returns 0, -1 (err says why) or SOURCE_BAD_FILTER. */
static int open_ring(const char *iface, const struct source_config *cfg,
                     bool blocks, const char *expr, struct live_ring *r,
                     char *err, size_t errlen)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    int status = -1;
    bool have_prog = false;
    pcap_t *p = pcap_create(iface, errbuf);
    if (p == NULL) {
        snprintf(err, errlen, "cannot capture on %s: %s", iface, errbuf);
        goto fail;
    }
    pcap_set_snaplen(p, (int)cfg->snaplen);
    pcap_set_promisc(p, cfg->promisc ? 1 : 0);
    if (blocks) {
        pcap_set_timeout(p, BLOCK_TIMEOUT_MS);
    } else {
        pcap_set_immediate_mode(p, 1);
    }
    pcap_set_buffer_size(p, (int)TM_MIN(cfg->kernel_buffer, INT32_MAX));
    int rc = pcap_activate(p);
    if (rc < 0) {
        const char *why = pcap_geterr(p);
        if (rc == PCAP_ERROR_NO_SUCH_DEVICE) {
            snprintf(err, errlen, "no such interface: %s", iface);
        } else if (rc == PCAP_ERROR_PERM_DENIED) {
            snprintf(err, errlen,
                     "not permitted to capture on %s (run as root or "
                     "grant CAP_NET_RAW): %s",
                     iface, why);
        } else {
            snprintf(err, errlen, "cannot capture on %s: %s", iface, why);
        }
        goto fail;
    }
    int linktype = dlt_to_linktype(pcap_datalink(p));
    if (!decode_link_supported(linktype)) {
        const char *name = pcap_datalink_val_to_name(pcap_datalink(p));
        snprintf(err, errlen,
                 "interface %s has link type %s (%d), which tapmirror "
                 "cannot decode",
                 iface, name ? name : "unknown", linktype);
        goto fail;
    }
    if (pcap_compile(p, &r->prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        snprintf(err, errlen, "invalid --filter: %s", pcap_geterr(p));
        status = SOURCE_BAD_FILTER;
        goto fail;
    }
    have_prog = true;
    if (pcap_setfilter(p, &r->prog) < 0) {
        snprintf(err, errlen, "cannot set the capture filter on %s: %s",
                 iface, pcap_geterr(p));
        goto fail;
    }
    if (pcap_setnonblock(p, 1, errbuf) < 0) {
        snprintf(err, errlen, "cannot capture on %s: %s", iface, errbuf);
        goto fail;
    }
    if (pcap_get_selectable_fd(p) < 0) {
        snprintf(err, errlen,
                 "cannot capture on %s: no selectable descriptor", iface);
        goto fail;
    }
    r->pcap = p;
    r->have_prog = true;
    r->blocks = blocks;
    return 0;

fail:
    if (have_prog) {
        pcap_freecode(&r->prog);
    }
    if (p != NULL) {
        pcap_close(p);
    }
    return status;
}

int source_open_live(uv_loop_t *loop, const char *iface,
                     const struct source_config *cfg,
                     const struct source_events *ev, struct source **out,
                     char *err, size_t errlen)
{
    char expr[4096];
    if (cfg->filter != NULL && cfg->filter[0] != '\0') {
        snprintf(expr, sizeof(expr), "(tcp port %u) and (%s)", cfg->port,
                 cfg->filter);
    } else {
        snprintf(expr, sizeof(expr), "tcp port %u", cfg->port);
    }
    struct live_ring rings[2];
    memset(rings, 0, sizeof(rings));
    int n_rings = 1;
    bool first_blocks = cfg->batch_above == 0;
    int rc = open_ring(iface, cfg, first_blocks, expr, &rings[0], err, errlen);
    if (rc < 0) {
        return rc;
    }
#ifdef __linux__
    bool two_rings = cfg->batch_above != 0 && cfg->batch_above != UINT64_MAX;
#else
    /* Elsewhere libpcap reads a BPF device, which has no such rings. */
    bool two_rings = false;
#endif
    if (two_rings) {
        /* The block ring waits, attached to nothing, for the traffic to
         * need it. */
        char why[400];
        if (open_ring(iface, cfg, true, expr, &rings[1], why, sizeof(why)) <
            0) {
            tm_warn("%s; capturing with per-packet delivery only", why);
        } else if (ring_detach(&rings[1]) < 0) {
            tm_warn("capturing on %s: cannot hold the block ring (%s); "
                    "capturing with per-packet delivery only",
                    iface, strerror(errno));
            pcap_freecode(&rings[1].prog);
            pcap_close(rings[1].pcap);
        } else {
            n_rings = 2;
        }
    }
    struct source *s = source_alloc(loop, SRC_LIVE, iface, cfg, ev);
    s->linktype = dlt_to_linktype(pcap_datalink(rings[0].pcap));
    s->batch_above = cfg->batch_above;
    s->n_rings = n_rings;
    for (int i = 0; i < n_rings; i++) {
        s->rings[i] = rings[i];
        struct live_ring *r = &s->rings[i];
        r->s = s;
        int prc = uv_poll_init(loop, &r->poll, pcap_get_selectable_fd(r->pcap));
        if (prc < 0) {
            /* No handle of the source is open yet if this is ring 0. */
            for (int j = i; j < n_rings; j++) {
                pcap_freecode(&rings[j].prog);
                pcap_close(rings[j].pcap);
            }
            if (i == 0) {
                snprintf(err, errlen, "cannot capture on %s: %s", iface,
                         uv_strerror(prc));
                free(s->name);
                free(s);
                return -1;
            }
            tm_warn("capturing on %s: %s; capturing with per-packet "
                    "delivery only",
                    iface, uv_strerror(prc));
            n_rings = i;
            s->n_rings = n_rings;
            break;
        }
        r->poll.data = r;
        r->poll_init = true;
    }
    if (n_rings == 2) {
        s->seen[0] = pktseen_new(DEDUP_LIMIT);
        s->seen[1] = pktseen_new(DEDUP_LIMIT);
        uv_timer_init(loop, &s->mode_timer);
        s->mode_timer.data = s;
        s->mode_timer_init = true;
        uv_timer_init(loop, &s->handover_timer);
        s->handover_timer.data = s;
        s->handover_timer_init = true;
    }
    wr_le32(s->header, 0xa1b2c3d4u);
    wr_le16(s->header + 4, 2);
    wr_le16(s->header + 6, 4);
    wr_le32(s->header + 16, (uint32_t)pcap_snapshot(rings[0].pcap));
    wr_le32(s->header + 20, (uint32_t)s->linktype);
    uv_timer_init(loop, &s->live_timer);
    s->live_timer.data = s;
    s->live_timer_init = true;
    uv_timer_init(loop, &s->final_timer);
    s->final_timer.data = s;
    *out = s;
    return 0;
}
