/*
 * Live capture on an interface through libpcap, on the loop: one or two
 * kernel rings and the hand-over between them. The contract and its
 * constants are in live.h.
 */
#include "live.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#ifdef __linux__
#include <linux/filter.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "source_int.h"
#include "log.h"
#include "core/decode.h"
#include "core/pktseen.h"
#include "core/util.h"
#include "core/wire.h"

/* Packets taken from libpcap per callback before yielding. */
#define LIVE_BATCH     256
#define LIVE_MAX_LOOPS 64

/* One kernel capture ring on the interface. */
struct live_ring {
    struct live_capture *lc;
    pcap_t *pcap;
    struct bpf_program prog;
    bool blocks; /* TPACKET_V3 blocks, else a frame per packet */
    uv_poll_t poll;
    bool polling;
};

struct live_capture {
    struct source *src;
    struct live_ring rings[2];
    int n_rings;
    int active;           /* the ring read from */
    uint64_t batch_above; /* packets/s; see --batch-above */
    uv_timer_t mode_timer;
    uint64_t window_packets;
    int quiet_windows;
    int64_t last_drops;
    bool switching_failed;
    bool handing_over; /* both rings are read (see begin_handover) */
    bool old_detached;
    int old_ring;
    uint64_t handover_next; /* uv_hrtime() of the hand-over's next step */
    uv_timer_t handover_timer;
    /* Wall-clock times in ns, comparable with packet timestamps. */
    uint64_t attach_ns; /* the new ring's attach, less the margin */
    bool dedup; /* the active ring may repeat the old ring's packets */
    uint64_t dedup_until_ns;
    struct pktseen *seen[2]; /* per ring: packets it delivered since */
    /* Per ring: packets still in it that are older than this were in no
     * other ring when it was left; 0: none such. */
    uint64_t uncovered_before_ns[2];
    uint64_t switches, duplicates_skipped, unrecorded, handover_lost;
    /* libpcap's required select timeout, where it has one. */
    uv_timer_t live_timer;
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

    int open_handles; /* while closing */
    void (*closed)(void *);
    void *closed_ctx;
};

static void on_ring_poll(uv_poll_t *p, int status, int events);
static void on_handover_timer(uv_timer_t *t);
static void on_final_timer(uv_timer_t *t);

static void ring_poll(struct live_ring *r, bool on)
{
    if (r->polling == on) {
        return;
    }
    r->polling = on;
    if (on) {
        uv_poll_start(&r->poll, UV_READABLE, on_ring_poll);
    } else {
        uv_poll_stop(&r->poll);
    }
}

/* Stops watching the rings and the timers. */
static void live_quiet(struct live_capture *lc)
{
    for (int i = 0; i < lc->n_rings; i++) {
        ring_poll(&lc->rings[i], false);
    }
    uv_timer_stop(&lc->mode_timer);
    uv_timer_stop(&lc->handover_timer);
    uv_timer_stop(&lc->live_timer);
}

static void live_fail(struct live_capture *lc, const char *msg)
{
    if (source_over(lc->src)) {
        return;
    }
    live_quiet(lc);
    source_report_end(lc->src, -1, msg, false);
}

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
    struct live_capture *lc = r->lc;
    if (timeval_ns(&h->ts) < lc->uncovered_before_ns[r - lc->rings]) {
        lc->handover_lost++;
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
    struct live_capture *lc = r->lc;
    struct source *s = lc->src;
    if (source_over(s)) {
        return;
    }
    lc->window_packets++;
    uint64_t ts_ns = timeval_ns(&h->ts);
    if (lc->final_read && ts_ns > lc->final_stop_ns) {
        /* Captured after the stop. Past the margin in the active ring,
         * every packet from before it has been read (see final_step). */
        if (r == &lc->rings[lc->active] &&
            ts_ns > lc->final_stop_ns + ATTACH_MARGIN_US * TM_NS_PER_US) {
            lc->after_stop_seen = true;
        }
        return;
    }
    if ((lc->handing_over || lc->dedup) && r != &lc->rings[lc->old_ring] &&
        ts_ns < lc->attach_ns) {
        /* Left in the new ring from an earlier hand-over (a block its
         * timer retired late): the other ring delivered it, unless it
         * was in no other ring. */
        stale_packet(r, h);
        return;
    }
    if ((lc->handing_over || lc->dedup) && ts_ns >= lc->attach_ns) {
        /* Since the new ring was attached a packet may come from both
         * rings, in either order: deliver the first copy, skip the
         * other. */
        int mine = (int)(r - lc->rings);
        uint8_t key[4 + FINGERPRINT_BYTES];
        size_t n = TM_MIN((size_t)h->caplen, (size_t)FINGERPRINT_BYTES);
        wr_le32(key, h->len);
        memcpy(key + 4, bytes, n);
        if (pktseen_take(lc->seen[1 - mine], key, 4 + n)) {
            lc->duplicates_skipped++;
            return;
        }
        if (lc->handing_over && !pktseen_add(lc->seen[mine], key, 4 + n)) {
            lc->unrecorded++;
        }
    }
    if (lc->dedup && (ts_ns > lc->dedup_until_ns ||
                      pktseen_count(lc->seen[lc->old_ring]) == 0)) {
        lc->dedup = false;
        pktseen_clear(lc->seen[0]);
        pktseen_clear(lc->seen[1]);
    }
    struct cap_item it;
    memset(&it, 0, sizeof(it));
    wr_le32(lc->rechdr, (uint32_t)h->ts.tv_sec);
    wr_le32(lc->rechdr + 4, (uint32_t)h->ts.tv_usec);
    wr_le32(lc->rechdr + 8, h->caplen);
    wr_le32(lc->rechdr + 12, h->len);
    it.kind = CAP_ITEM_PACKET;
    it.raw = lc->rechdr;
    it.raw_len = sizeof(lc->rechdr);
    it.raw2 = bytes;
    it.raw2_len = h->caplen;
    it.linktype = lc->linktype;
    it.ts_ns = ts_ns;
    it.caplen = h->caplen;
    it.wirelen = h->len < h->caplen ? h->caplen : h->len;
    it.data = bytes;
    s->bytes_read += sizeof(lc->rechdr) + h->caplen;
    s->ev.item(s->ev.ctx, &it);
}

/* Reads up to `loops` batches from one ring, adding the packets read to
 * `*count`; false after an error (the source has finished). */
static bool ring_read(struct live_capture *lc, struct live_ring *r,
                      int loops, uint64_t *count)
{
    struct source *s = lc->src;
    for (int i = 0; i < loops; i++) {
        if (s->paused || source_over(s)) {
            break;
        }
        int n = pcap_dispatch(r->pcap, LIVE_BATCH, on_packet,
                              (u_char *)(void *)r);
        if (n < 0) {
            char msg[400];
            snprintf(msg, sizeof(msg), "capturing on %s: %s", s->name,
                     pcap_geterr(r->pcap));
            live_fail(lc, msg);
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

static void give_up_switching(struct live_capture *lc, const char *why)
{
    tm_warn("capturing on %s: cannot switch capture rings (%s); staying "
            "with %s",
            lc->src->name, why,
            lc->rings[lc->active].blocks ? "blocks" : "per-packet delivery");
    lc->switching_failed = true;
}

/* Step 1 of a hand-over to the other ring (see live.h): empty the new
 * ring and attach it; both rings take every packet, and both are read
 * until advance_handover() has done steps 2 and 3. */
static void begin_handover(struct live_capture *lc)
{
    int to = 1 - lc->active;
    struct live_ring *next = &lc->rings[to];
    ring_discard(next);
    lc->attach_ns = wall_ns() - ATTACH_MARGIN_US * TM_NS_PER_US;
    if (pcap_setfilter(next->pcap, &next->prog) < 0) {
        char why[PCAP_ERRBUF_SIZE + 1];
        snprintf(why, sizeof(why), "%s", pcap_geterr(next->pcap));
        ring_detach(next);
        ring_discard(next);
        give_up_switching(lc, why);
        return;
    }
    pktseen_clear(lc->seen[0]);
    pktseen_clear(lc->seen[1]);
    lc->dedup = false;
    lc->handing_over = true;
    lc->old_detached = false;
    lc->old_ring = lc->active;
    lc->active = to;
    lc->switches++;
    lc->quiet_windows = 0;
    struct pcap_stat ps;
    lc->last_drops =
        pcap_stats(next->pcap, &ps) == 0 ? (int64_t)ps.ps_drop : 0;
    lc->handover_next = uv_hrtime() + HANDOVER_OVERLAP_MS * TM_NS_PER_MS;
    uv_timer_start(&lc->handover_timer, on_handover_timer, 1, 1);
    if (!lc->src->paused) {
        ring_poll(next, true);
    }
    tm_verbose("capturing on %s: %s", lc->src->name,
               next->blocks ? "delivering in blocks (traffic above "
                              "--batch-above)"
                            : "delivering each packet at once again");
}

/* Steps 2 and 3 of a hand-over, when their time has come; false after an
 * error (the source has finished). */
static bool advance_handover(struct live_capture *lc)
{
    struct source *s = lc->src;
    struct live_ring *old = &lc->rings[lc->old_ring];
    uint64_t now = uv_hrtime();
    if (now < lc->handover_next || s->paused || source_over(s)) {
        return true;
    }
    if (!lc->old_detached) {
        if (ring_detach(old) < 0) {
            /* Not seen in practice: the same call detached this ring
             * before. It stays attached and unread; the kernel counts
             * what it drops. */
            give_up_switching(lc, strerror(errno));
        }
        lc->old_detached = true;
        lc->handover_next =
            now + (uint64_t)(old->blocks ? HANDOVER_DRAIN_BLOCKS_MS
                                         : HANDOVER_DRAIN_PACKETS_MS) *
                      TM_NS_PER_MS;
        return true;
    }
    uint64_t n = 0;
    if (!ring_read(lc, old, INT32_MAX, &n)) {
        return false;
    }
    ring_poll(old, false);
    uv_timer_stop(&lc->handover_timer);
    lc->handing_over = false;
    /* What the old ring still holds later is older than the drain: the
     * new ring has the packets from the attach on. */
    lc->uncovered_before_ns[lc->old_ring] = lc->attach_ns;
    lc->dedup_until_ns = wall_ns() + DEDUP_WINDOW_MS * TM_NS_PER_MS;
    lc->dedup = pktseen_count(lc->seen[lc->old_ring]) > 0;
    pktseen_clear(lc->seen[lc->active]);
    if (!lc->dedup) {
        pktseen_clear(lc->seen[lc->old_ring]);
    }
    return true;
}

static void live_read(struct live_capture *lc)
{
    struct source *s = lc->src;
    uint64_t n = 0;
    if (lc->handing_over) {
        if (!ring_read(lc, &lc->rings[lc->old_ring], LIVE_MAX_LOOPS, &n) ||
            !advance_handover(lc)) {
            return;
        }
    }
    n = 0;
    if (!ring_read(lc, &lc->rings[lc->active], LIVE_MAX_LOOPS, &n)) {
        return;
    }
    lc->read_capped = n >= (uint64_t)LIVE_MAX_LOOPS * LIVE_BATCH;
    if (n >= RING_PRESSURE_PACKETS && !lc->handing_over &&
        lc->n_rings == 2 && !lc->rings[lc->active].blocks &&
        !lc->switching_failed && !lc->final_read && !s->paused &&
        !source_over(s)) {
        begin_handover(lc);
    }
    if (!source_over(s)) {
        s->ev.batch(s->ev.ctx);
    }
}

static void on_ring_poll(uv_poll_t *p, int status, int events)
{
    struct live_ring *r = p->data;
    struct live_capture *lc = r->lc;
    (void)events;
    if (status < 0) {
        /* libuv reports an error condition on the socket (the interface
         * went down, say) as a bad descriptor; libpcap knows better. */
        char msg[400];
        if (pcap_dispatch(r->pcap, 1, ignore_packet, NULL) < 0) {
            snprintf(msg, sizeof(msg), "capturing on %s: %s", lc->src->name,
                     pcap_geterr(r->pcap));
        } else {
            snprintf(msg, sizeof(msg), "capturing on %s: %s", lc->src->name,
                     uv_strerror(status));
        }
        live_fail(lc, msg);
        return;
    }
    live_read(lc);
}

static void on_live_timer(uv_timer_t *t)
{
    live_read(t->data);
}

static void on_handover_timer(uv_timer_t *t)
{
    struct live_capture *lc = t->data;
    if (lc->src->paused || source_over(lc->src)) {
        return;
    }
    live_read(lc);
}

/* Every RATE_WINDOW_MS: switch to blocks when the rate (or a kernel drop)
 * says per-packet delivery cannot keep up, back when it has been quiet
 * for a while. */
static void on_mode_timer(uv_timer_t *t)
{
    struct live_capture *lc = t->data;
    uint64_t pps = lc->window_packets * (1000 / RATE_WINDOW_MS);
    lc->window_packets = 0;
    if (lc->handing_over || lc->switching_failed || lc->src->paused ||
        source_over(lc->src)) {
        return;
    }
    struct live_ring *r = &lc->rings[lc->active];
    if (!r->blocks) {
        struct pcap_stat ps;
        int64_t drops = pcap_stats(r->pcap, &ps) == 0
                            ? (int64_t)ps.ps_drop
                            : lc->last_drops;
        bool dropped = drops > lc->last_drops;
        lc->last_drops = drops;
        if (pps >= lc->batch_above || dropped) {
            begin_handover(lc);
        }
        return;
    }
    if (pps * 5 < lc->batch_above) {
        if (++lc->quiet_windows >= QUIET_WINDOWS_TO_LEAVE) {
            begin_handover(lc);
        }
    } else {
        lc->quiet_windows = 0;
    }
}

/* ---- the source's operations ---- */

/* Resume (and the end of start): watch the rings again. */
static void live_schedule(void *impl)
{
    struct live_capture *lc = impl;
    struct source *s = lc->src;
    if (!s->started || s->paused || source_over(s)) {
        return;
    }
    ring_poll(&lc->rings[lc->active], true);
    if (lc->handing_over) {
        ring_poll(&lc->rings[lc->old_ring], true);
        uv_timer_start(&lc->handover_timer, on_handover_timer, 1, 1);
    }
}

static void live_start(void *impl)
{
    struct live_capture *lc = impl;
    struct source *s = lc->src;
    /* The output needs a file header before the first record. */
    struct cap_item it;
    memset(&it, 0, sizeof(it));
    it.kind = CAP_ITEM_HEADER;
    it.raw = lc->header;
    it.raw_len = sizeof(lc->header);
    it.linktype = lc->linktype;
    s->ev.item(s->ev.ctx, &it);
    const struct timeval *tv =
        pcap_get_required_select_timeout(lc->rings[lc->active].pcap);
    if (tv != NULL) {
        uint64_t ms =
            (uint64_t)tv->tv_sec * 1000 + (uint64_t)tv->tv_usec / 1000;
        uv_timer_start(&lc->live_timer, on_live_timer, ms ? ms : 1,
                       ms ? ms : 1);
    }
    if (lc->n_rings == 2) {
        uv_timer_start(&lc->mode_timer, on_mode_timer, RATE_WINDOW_MS,
                       RATE_WINDOW_MS);
    }
    live_schedule(lc);
}

static void live_pause(void *impl)
{
    struct live_capture *lc = impl;
    for (int i = 0; i < lc->n_rings; i++) {
        ring_poll(&lc->rings[i], false);
    }
    uv_timer_stop(&lc->handover_timer);
}

static void live_stop(void *impl)
{
    struct live_capture *lc = impl;
    lc->final_read = false; /* its callback is not called */
    uv_timer_stop(&lc->final_timer);
    live_quiet(lc);
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
static void final_step(struct live_capture *lc)
{
    struct source *s = lc->src;
    live_read(lc);
    if (!lc->final_read) {
        return; /* stopped meanwhile */
    }
    bool done;
    if (lc->handing_over) {
        done = false;
    } else if (lc->after_stop_seen) {
        done = true;
    } else {
        done = !lc->rings[lc->active].blocks && !lc->read_capped &&
               !s->paused;
    }
    if (!done && !s->ended && uv_hrtime() < lc->final_deadline) {
        uv_timer_start(&lc->final_timer, on_final_timer, 1, 0);
        return;
    }
    if (lc->n_rings == 2 && !lc->handing_over) {
        /* A block that the ring left behind retired after its drain:
         * counted now, as the next hand-over would have. */
        ring_discard(&lc->rings[1 - lc->active]);
    }
    void (*cb)(void *) = lc->final_cb;
    void *ctx = lc->final_ctx;
    source_stop(s);
    cb(ctx);
}

static void on_final_timer(uv_timer_t *t)
{
    struct live_capture *lc = t->data;
    if (lc->final_read) {
        final_step(lc);
    }
}

static void live_stop_then(void *impl, void (*stopped)(void *ctx),
                           void *ctx)
{
    struct live_capture *lc = impl;
    if (lc->final_read) {
        source_stop(lc->src);
        stopped(ctx);
        return;
    }
    lc->final_read = true;
    lc->after_stop_seen = false;
    lc->final_stop_ns = wall_ns();
    lc->final_deadline = uv_hrtime() + SOURCE_FINAL_READ_MS * TM_NS_PER_MS;
    lc->final_cb = stopped;
    lc->final_ctx = ctx;
    uv_timer_stop(&lc->mode_timer); /* no new hand-over */
    /* From the loop, not from here: the caller may be inside a packet
     * callback, and libpcap's reads must not nest. */
    uv_timer_start(&lc->final_timer, on_final_timer, 0, 0);
}

static int64_t live_kernel_drops(void *impl)
{
    struct live_capture *lc = impl;
    int64_t drops = 0;
    for (int i = 0; i < lc->n_rings; i++) {
        struct pcap_stat ps;
        if (pcap_stats(lc->rings[i].pcap, &ps) < 0) {
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

static bool live_capture_modes(void *impl, struct source_capture_modes *out)
{
    struct live_capture *lc = impl;
    out->switches = lc->switches;
    out->duplicates_skipped = lc->duplicates_skipped;
    out->unrecorded = lc->unrecorded;
    out->handover_lost = lc->handover_lost;
    out->blocks = lc->rings[lc->active].blocks;
    out->switching = lc->n_rings == 2;
    out->packet_ring_drops = -1;
    out->block_ring_drops = -1;
    for (int i = 0; i < lc->n_rings; i++) {
        struct pcap_stat ps;
        int64_t drops = pcap_stats(lc->rings[i].pcap, &ps) == 0
                            ? (int64_t)ps.ps_drop
                            : -1;
        if (lc->rings[i].blocks) {
            out->block_ring_drops = drops;
        } else {
            out->packet_ring_drops = drops;
        }
    }
    return true;
}

static void ring_free(struct live_ring *r)
{
    pcap_freecode(&r->prog);
    pcap_close(r->pcap);
}

static void on_live_handle_closed(uv_handle_t *h)
{
    struct live_capture *lc = h->data;
    if (--lc->open_handles > 0) {
        return;
    }
    for (int i = 0; i < lc->n_rings; i++) {
        ring_free(&lc->rings[i]);
    }
    pktseen_free(lc->seen[0]);
    pktseen_free(lc->seen[1]);
    void (*closed)(void *) = lc->closed;
    void *ctx = lc->closed_ctx;
    free(lc);
    closed(ctx);
}

static void close_live_handle(struct live_capture *lc, uv_handle_t *h)
{
    h->data = lc;
    lc->open_handles++;
    uv_close(h, on_live_handle_closed);
}

/* Closes every handle the constructor created; the rings and the
 * capture are freed once the last one is closed. */
static void live_close(void *impl, void (*closed)(void *), void *ctx)
{
    struct live_capture *lc = impl;
    lc->closed = closed;
    lc->closed_ctx = ctx;
    for (int i = 0; i < lc->n_rings; i++) {
        close_live_handle(lc, (uv_handle_t *)&lc->rings[i].poll);
    }
    close_live_handle(lc, (uv_handle_t *)&lc->live_timer);
    close_live_handle(lc, (uv_handle_t *)&lc->final_timer);
    close_live_handle(lc, (uv_handle_t *)&lc->mode_timer);
    close_live_handle(lc, (uv_handle_t *)&lc->handover_timer);
}

static const struct source_ops live_ops = {
    .live_capture = true,
    .start = live_start,
    .pause = live_pause,
    .resume = live_schedule,
    .stop = live_stop,
    .stop_then = live_stop_then,
    .kernel_drops = live_kernel_drops,
    .capture_modes = live_capture_modes,
    .close = live_close,
};

/* ---- opening ---- */

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


static void live_timer_init(uv_loop_t *loop, struct live_capture *lc,
                            uv_timer_t *t)
{
    uv_timer_init(loop, t);
    t->data = lc;
}

/* The constructor: opens the rings, then creates every handle the
 * capture uses; live_close() closes them all. */
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
            ring_free(&rings[1]);
        } else {
            n_rings = 2;
        }
    }
    struct live_capture *lc = tm_xcalloc(1, sizeof(*lc));
    for (int i = 0; i < n_rings; i++) {
        struct live_ring *r = &lc->rings[i];
        *r = rings[i];
        r->lc = lc;
        int prc = uv_poll_init(loop, &r->poll, pcap_get_selectable_fd(r->pcap));
        if (prc < 0) {
            for (int j = i; j < n_rings; j++) {
                ring_free(&rings[j]);
            }
            if (i == 0) {
                /* No handle is open yet. */
                snprintf(err, errlen, "cannot capture on %s: %s", iface,
                         uv_strerror(prc));
                free(lc);
                return -1;
            }
            tm_warn("capturing on %s: %s; capturing with per-packet "
                    "delivery only",
                    iface, uv_strerror(prc));
            n_rings = i;
            break;
        }
        r->poll.data = r;
    }
    lc->n_rings = n_rings;
    lc->batch_above = cfg->batch_above;
    lc->linktype = dlt_to_linktype(pcap_datalink(lc->rings[0].pcap));
    if (n_rings == 2) {
        lc->seen[0] = pktseen_new(DEDUP_LIMIT);
        lc->seen[1] = pktseen_new(DEDUP_LIMIT);
    }
    live_timer_init(loop, lc, &lc->mode_timer);
    live_timer_init(loop, lc, &lc->handover_timer);
    live_timer_init(loop, lc, &lc->live_timer);
    live_timer_init(loop, lc, &lc->final_timer);
    wr_le32(lc->header, 0xa1b2c3d4u);
    wr_le16(lc->header + 4, 2);
    wr_le16(lc->header + 6, 4);
    wr_le32(lc->header + 16, (uint32_t)pcap_snapshot(lc->rings[0].pcap));
    wr_le32(lc->header + 20, (uint32_t)lc->linktype);
    lc->src = source_new(iface, &live_ops, lc, ev);
    *out = lc->src;
    return 0;
}
