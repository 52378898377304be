#include "replay.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/list.h"
#include "log.h"
#include "core/util.h"
#include "proto/httpturn.h"

/* Queue chunks grow geometrically from the first write's size (at least
 * CHUNK_MIN) up to CHUNK_LARGE: a connection waiting with one small
 * request holds a small block, one that streams gets large writes. */
#define CHUNK_MIN       512u
#define CHUNK_LARGE     (64u * 1024)
#define WRITE_MAX_BUFS  32
#define WRITE_MAX_BYTES (4u * 1024 * 1024)
#define RETRY_FIRST_MS  50
#define RETRY_MAX_MS    1000
#define DISCARD_BUF     (64u * 1024)
/* For a lossless source, how far past --flow-buffer a connection may go
 * before it is dropped anyway: what one batch of a file, or a released
 * reassembly queue, can add while the source is being paused. */
#define LOSSLESS_SLACK  (8u * 1024 * 1024)
/* Connection attempts in progress at once. A burst of new mirrored
 * connections (the start of a capture, a busy second) must not arrive at
 * the target as a SYN flood: past its listen backlog the kernel drops the
 * SYNs and every such connect waits a whole SYN retransmission (1 s, then
 * 3 s) or times out. On loopback an attempt takes microseconds, so this
 * costs no throughput; the others wait in the slot queue. */
#define MAX_DIALING     128
/* The queues of dropped connections are released this much per loop
 * turn: freeing eight full 16 MiB queues at once let glibc hand 128 MiB
 * back with one brk() that took 32 ms, longer than a loopback capture ring
 * holds at 60,000 packets a second (the kernel dropped 1,000 packets). */
#define REAP_BYTES      (1024u * 1024)
/* Dials per TIME-WAIT period (60 s on Linux) past which loopback dials
 * are spread over source addresses (see init_socket). */
#define SPREAD_WINDOW_NS (60ull * 1000000000ull)
#define SPREAD_DIALS     2048
/* --pace ordered: a replay that stands still for this fraction of
 * --turn-quiet (10 ms by default) while chunks are held is stalled (see
 * on_order_stall). A loopback database answers in well under that; each
 * stall costs the interval, and with eight pgbench clients on one row a
 * fifth of the transactions meet one. */
#define ORDER_STALL_DIVISOR 5

struct chunk {
    struct chunk *next;
    uint32_t start, end, cap;
    uint64_t mark; /* server bytes production's client had heard */
    bool fresh;    /* the first chunk of a new local connection */
    uint64_t depends; /* --pace ordered: production's answers before it */
    uint64_t seq;     /* ... and its place in the capture */
    uint8_t data[];
};

enum conn_state {
    C_IDLE,       /* not dialled yet */
    C_QUEUED,     /* waiting for a descriptor slot */
    C_RETRY,      /* waiting to redial after a failure */
    C_CONNECTING,
    C_OPEN,
    C_SHUTTING,   /* half-close in progress */
    C_LINGER,     /* half-closed: reading until the target closes */
    C_CLOSING,    /* finished: handles closing */
    C_RECONNECT,  /* closing the local connection to dial a new one */
};

struct target {
    char label[80];
    struct sockaddr_storage addr;
    struct replay_target_stats st;
    uv_tcp_t *parked; /* the start-up probe's connection, kept for the
                         first mirrored connection */
    uint64_t parked_rx; /* what the target sent on it (a greeting) */
    /* --compare, the first target: the greeting's first bytes, for the
     * connection that takes the parked one over. */
    bool keep_greeting;
    uint8_t greeting[512];
    size_t greeting_len;
    /* A target that never sent a byte in the run (a sink that only
     * reads) cannot answer turns: once a turn timed out on it, its turns
     * are sent as captured and its connections are not counted
     * unfinished, until it sends a byte. */
    bool answered_any, silent;
    struct httpflow_rate *rate; /* --max-rate; NULL: none */
    /* --pace ordered: production's answers, numbered in the order its
     * server gave them; answers 0..order_prefix-1 were all given by this
     * target too. order_done marks those after the prefix that were (a
     * ring, answer n at n % order_cap). */
    uint64_t order_prefix, order_cap;
    uint8_t *order_done;
    uint64_t order_ahead; /* answers given beyond the prefix: given out of
                             production's order */
};

/* --pace ordered: production answered, as `answer`, every client byte
 * before session position `end`; the conn's target answers it once it
 * sends a byte after those were written. */
struct order_wait {
    uint64_t answer, end;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    union {
        uv_connect_t connect;
        uv_write_t write;
        uv_shutdown_t shutdown;
    } req;
    struct replay_session *session;
    struct target *target;
    struct chunk *head, *tail;
    size_t queued;   /* bytes not yet accepted by the target */
    size_t inflight; /* bytes of the write in progress */
    size_t unsent;   /* of those, still in libuv's queue at the last check */
    uint64_t first_failure_ns;
    /* Turns (see conn_advance): marks are production's server bytes. */
    uint64_t released_mark; /* chunks up to this mark may be written */
    uint64_t end_mark;      /* the client's close waits for this mark */
    uint64_t server_sent;   /* production's server bytes in all */
    uint64_t turn_rx;       /* target bytes since the last release */
    uint64_t wait_start_ns, last_rx_ns;
    /* --pace ordered: client bytes written, and written before the
     * target's last byte came; the answers awaited (a FIFO ring). */
    uint64_t delivered, heard;
    struct order_wait *waits;
    uint32_t waits_head, waits_len, waits_cap;
    uint32_t attempts;
    uint8_t state;
    bool flow_ended, target_eof, dropped, tcp_open, dirty;
    bool dialing;  /* counted in replay.dialing */
    bool turn_waiting; /* the timer waits for the target's answer */
    /* HTTP/1 turns (see turn_http_state): where the target's response to
     * the last request written ends. NULL before the first write on a
     * local connection, and once it is known not to be HTTP/1
     * (turn_http_off): bytes are counted then. */
    struct httpturn *turn_http;
    bool turn_http_off;
    bool over_cap; /* counted in replay.over_cap */
    bool order_blocked; /* on replay.order_blocked */
    struct tm_list link;      /* every conn: the replay's list */
    struct tm_list order_link; /* replay.order_blocked */
    struct tm_list wait_link; /* the wait queue or the dirty list */
    /* HTTP-aware mirroring (see http_feed). */
    struct httpflow *flow; /* NULL: the bytes as they come */
    uint64_t feed_acked;   /* the server_acked of the bytes being fed */
    uint64_t mark_skip;    /* production's answers to dropped requests */
    uint64_t drop_acked;   /* server_acked at the first dropped request */
    bool drop_open;        /* requests dropped since the last forwarded */
    bool break_next;       /* the next bytes go on a new connection */
    size_t held;           /* httpflow_held() at the last look */
};

/* Shadow compare of a session's first target (replay_set_compare). */
struct cmp_state {
    struct compare_conn *cc;
    size_t held;            /* what was last charged to replay.cmp_held */
    size_t backlog;         /* of it, what waits for the other streams */
    uint64_t client_off;    /* client stream bytes fed, gaps included */
    uint64_t last_local_ns; /* the last write to or read from the target */
    struct tm_list wait_link; /* on replay.cmp_waiting */
    bool waiting;     /* a request waits for its local answer */
    bool local_ended; /* the local stream's end was fed */
    bool abandoned;   /* over --max-buffer: compared no more */
};

struct replay_session {
    struct replay *r;
    uint64_t flow_id;
    uint64_t key;   /* what --sample hashes */
    uint64_t client_bytes;   /* given to replay_data */
    uint64_t answered_bytes; /* of those, answered in production */
    unsigned live;  /* conns whose handles are not closed yet */
    bool flow_gone; /* replay_end was called */
    struct cmp_state *cmp; /* NULL: not compared */
    struct conn conns[];
};

struct replay {
    uv_loop_t *loop;
    struct replay_config cfg;
    struct target *targets;
    size_t n_targets;
    struct tm_list conns;   /* every conn with a live handle */
    struct tm_list waitq;   /* conns waiting for a descriptor */
    struct tm_list dirty;   /* conns with bytes not yet being written */
    struct tm_list order_blocked; /* conns held for other conns' answers */
    uint64_t order_answers; /* production's answers so far (ordered) */
    uint64_t chunk_seq;     /* replay_data calls so far */
    uv_timer_t order_stall_timer; /* nothing moves while chunks are held */
    bool order_stall_init;
    uint64_t order_stall_activity;
    /* The conn released by the last stall: it holds what the others wait
     * for (a lock), and goes unheld until another conn's target answers
     * (the lock was released). */
    struct conn *order_free;
    bool order_waking;
    size_t queued;
    size_t held; /* client bytes the conns' httpflows hold (undecided
                    heads): they count against --max-buffer too */
    size_t over_cap; /* conns holding more than --flow-buffer */
    const size_t *other_usage; /* reassembly's share of --max-buffer */
    size_t open_fds, waiting;
    size_t dialing; /* connects in progress (MAX_DIALING) */
    uint64_t max_fds;
    size_t low_water, low_dials;
    struct chunk *grave;  /* chunks of closed queues, freed by the reaper */
    uv_idle_t reaper;
    bool reaper_init;
    int closing_handles; /* replay_free: handles not closed yet */
    void (*low_cb)(void *);
    void *low_ctx;
    uint64_t progress; /* counts writes, connects and closes */
    uint64_t activity; /* progress and bytes read from targets */
    uint64_t drain_activity; /* at the last drain timeout */
    bool drain_while_moving;
    bool spread_sources; /* loopback dials from 127.0.0.2-251 */
    bool spread_failed;  /* ... which this host does not allow */
    uint64_t window_start_ns, window_dials, previous_window_dials;
    uint64_t dials;
    bool draining;
    uv_timer_t drain_timer;
    bool drain_timer_init;
    void (*drain_done)(void *);
    void *drain_ctx;
    /* Shadow compare (replay_set_compare). */
    struct replay_compare cmp;
    bool comparing;
    size_t cmp_held;         /* bytes all compares hold */
    size_t cmp_backlog;      /* of them, what waits for other streams */
    size_t cmp_low_water;    /* low_cb when the backlog falls to it */
    uint64_t cmp_abandoned;  /* compares given up at --max-buffer */
    struct tm_list cmp_waiting; /* sessions whose target owes an answer */
    uv_timer_t cmp_timer;
    bool cmp_timer_init;
    uint8_t discard[DISCARD_BUF];
};

static void bind_parked(struct replay *r);
static void on_parked_read(uv_stream_t *st, ssize_t nread,
                           const uv_buf_t *buf);
static void on_parked_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_connect(uv_connect_t *req, int status);
static void close_tcp(struct conn *c, bool reset);
static void conn_reconnect(struct conn *c);
static void http_account(struct conn *c);

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

static uint64_t ns_to_ms(uint64_t ns)
{
    return (ns + TM_NS_PER_MS - 1) / TM_NS_PER_MS;
}

const char *replay_format_addr(const struct sockaddr *sa, char *buf,
                               size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 =
            (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

bool replay_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 =
            (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
            return true;
        }
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            return in6->sin6_addr.s6_addr[12] == 127;
        }
    }
    return false;
}

struct replay *replay_new(uv_loop_t *loop, const struct replay_config *cfg)
{
    struct replay *r = tm_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->cfg = *cfg;
    r->max_fds = cfg->max_connections ? cfg->max_connections : 1000000;
    tm_list_init(&r->conns);
    tm_list_init(&r->waitq);
    tm_list_init(&r->dirty);
    tm_list_init(&r->cmp_waiting);
    tm_list_init(&r->order_blocked);
    return r;
}

void replay_add_target(struct replay *r, const char *label,
                       const struct sockaddr *addr, uv_tcp_t *parked)
{
    r->targets =
        tm_xrealloc(r->targets, (r->n_targets + 1) * sizeof(*r->targets));
    struct target *t = &r->targets[r->n_targets++];
    memset(t, 0, sizeof(*t));
    snprintf(t->label, sizeof(t->label), "%s", label);
    size_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    memcpy(&t->addr, addr, alen);
    t->parked = parked;
    if (r->cfg.max_rate > 0) {
        t->rate = httpflow_rate_new(r->cfg.max_rate);
    }
    bind_parked(r);
    if (parked != NULL) {
        /* Read to notice the target closing it; any byte is discarded. */
        uv_read_start((uv_stream_t *)parked, on_parked_alloc,
                      on_parked_read);
    }
}

/* The parked handles point at their target: fix that once the target
 * array stops moving. */
static void bind_parked(struct replay *r)
{
    for (size_t i = 0; i < r->n_targets; i++) {
        if (r->targets[i].parked != NULL) {
            r->targets[i].parked->data = &r->targets[i];
        }
    }
}

size_t replay_target_count(const struct replay *r)
{
    return r->n_targets;
}

const char *replay_target_label(const struct replay *r, size_t i)
{
    return r->targets[i].label;
}

const struct replay_target_stats *replay_target_stats(const struct replay *r,
                                                      size_t i)
{
    return &r->targets[i].st;
}

size_t replay_queued(const struct replay *r)
{
    return r->queued;
}

size_t replay_conns_over_cap(const struct replay *r)
{
    return r->over_cap;
}

uint64_t replay_progress(const struct replay *r)
{
    return r->progress;
}

size_t replay_open_connections(const struct replay *r)
{
    return r->open_fds;
}

size_t replay_waiting_connections(const struct replay *r)
{
    return r->waiting;
}

bool replay_dial_backlog(const struct replay *r, size_t limit)
{
    return r->waiting > limit && r->open_fds < r->max_fds;
}

void replay_set_other_usage(struct replay *r, const size_t *used)
{
    r->other_usage = used;
}

void replay_set_low_water(struct replay *r, size_t low, size_t low_dials,
                          void (*cb)(void *), void *ctx)
{
    r->low_water = low;
    r->low_dials = low_dials;
    r->low_cb = cb;
    r->low_ctx = ctx;
}

/* ---- queue ---- */

static void free_chunks(struct chunk *k)
{
    while (k != NULL) {
        struct chunk *next = k->next;
        free(k);
        k = next;
    }
}

/* Gives a large chunk's whole pages back to the system before it is
 * freed, as malloc_trim() would, so that no later free() or trim has a
 * large range to release at once. The first and last partial pages, where
 * the allocator keeps its bookkeeping, are left alone. */
static void release_pages(struct chunk *k)
{
    static uintptr_t page;
    if (page == 0) {
        long size = sysconf(_SC_PAGESIZE);
        page = size > 0 ? (uintptr_t)size : 4096;
    }
    uintptr_t start = ((uintptr_t)k->data + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)k->data + k->cap) & ~(page - 1);
    if (end > start + page) {
        (void)madvise((void *)start, end - start, MADV_DONTNEED);
    }
}

static void on_reap(uv_idle_t *h)
{
    struct replay *r = h->data;
    size_t freed = 0;
    while (r->grave != NULL && freed < REAP_BYTES) {
        struct chunk *k = r->grave;
        r->grave = k->next;
        freed += sizeof(*k) + k->cap;
        release_pages(k);
        free(k);
    }
    if (r->grave == NULL) {
        uv_idle_stop(h);
    }
}

/* Hands what a closed connection still queues to the reaper. */
static void queue_free(struct conn *c)
{
    if (c->head == NULL) {
        return;
    }
    struct replay *r = c->session->r;
    c->tail->next = r->grave;
    r->grave = c->head;
    c->head = c->tail = NULL;
    if (!r->reaper_init) {
        uv_idle_init(r->loop, &r->reaper);
        r->reaper.data = r;
        r->reaper_init = true;
    }
    uv_idle_start(&r->reaper, on_reap);
}

/* A byte with a higher mark than the one before starts a new chunk: the
 * chunk is the unit a turn holds back. */
static void queue_append(struct conn *c, const uint8_t *data, uint32_t len,
                         uint64_t mark, uint64_t depends, uint64_t seq)
{
    struct chunk *t = c->tail;
    bool same_turn = t != NULL && t->mark == mark &&
                     t->depends == depends && !c->break_next;
    if (same_turn && t->cap > t->end) {
        uint32_t n = TM_MIN(len, t->cap - t->end);
        memcpy(t->data + t->end, data, n);
        t->end += n;
        data += n;
        len -= n;
    }
    if (len == 0) {
        return;
    }
    uint32_t cap = !same_turn ? CHUNK_MIN : TM_MIN(t->cap * 2, CHUNK_LARGE);
    if (cap < len) {
        cap = len; /* no rounding: one allocation of exactly what came */
    }
    struct chunk *k = tm_xmalloc(sizeof(*k) + cap);
    k->next = NULL;
    k->start = 0;
    k->end = len;
    k->cap = cap;
    k->mark = mark;
    k->fresh = c->break_next;
    c->break_next = false;
    k->depends = depends;
    k->seq = seq;
    memcpy(k->data, data, len);
    if (t != NULL) {
        t->next = k;
    } else {
        c->head = k;
    }
    c->tail = k;
}

/* Removes `n` written bytes from the front. */
static void queue_consume(struct conn *c, size_t n)
{
    while (n > 0) {
        struct chunk *k = c->head;
        uint32_t avail = k->end - k->start;
        uint32_t take = (uint32_t)TM_MIN((size_t)avail, n);
        k->start += take;
        n -= take;
        /* Emptied chunks are freed at once: an idle connection should
         * hold no buffer at all. */
        if (k->start == k->end) {
            c->head = k->next;
            if (c->head == NULL) {
                c->tail = NULL;
            }
            free(k);
        }
    }
}

/* Bytes left the queues: written, or dropped with their connection. A
 * paused file source may read on once the total is low again. */
static void account_removed(struct replay *r, struct conn *c, size_t n)
{
    c->queued -= n;
    r->queued -= n;
    if (c->over_cap && c->queued <= r->cfg.flow_buffer / 2) {
        c->over_cap = false;
        r->over_cap--;
    }
    if (n > 0 && r->low_cb != NULL && r->queued <= r->low_water) {
        r->low_cb(r->low_ctx);
    }
}

/* ---- lifecycle ---- */

static void conn_dial(struct conn *c);
static void start_write(struct conn *c);
static void do_shutdown(struct conn *c);
static void conn_advance(struct conn *c);
static void check_drained(struct replay *r);
static void order_settle(struct conn *c, bool all);
static void order_forget(struct conn *c);
static void order_wake(struct replay *r);

static void session_free(struct replay_session *s);

static void session_release(struct replay_session *s)
{
    if (--s->live == 0 && s->flow_gone) {
        session_free(s);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct replay *r = c->session->r;
    queue_free(c);
    http_account(c);
    httpturn_free(c->turn_http);
    c->turn_http = NULL;
    free(c->waits);
    c->waits = NULL;
    tm_list_remove(&c->link);
    session_release(c->session);
    check_drained(r);
}

static bool have_slot(const struct replay *r)
{
    return r->open_fds < r->max_fds && r->dialing < MAX_DIALING;
}

static void dial_done(struct conn *c)
{
    if (c->dialing) {
        c->dialing = false;
        c->session->r->dialing--;
    }
}

/* Admits conns waiting for a descriptor while there are slots. */
static void admit_waiting(struct replay *r)
{
    struct tm_list *n;
    bool admitted = false;
    while (have_slot(r) && (n = tm_list_first(&r->waitq))) {
        struct conn *c = TM_CONTAINER_OF(n, struct conn, wait_link);
        tm_list_remove(&c->wait_link);
        r->waiting--;
        admitted = true;
        conn_dial(c);
    }
    if (admitted && r->low_cb != NULL && r->waiting <= r->low_dials) {
        r->low_cb(r->low_ctx);
    }
}

static void finish_conn(struct conn *c)
{
    c->state = C_CLOSING;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct replay *r = c->session->r;
    r->progress++;
    c->tcp_open = false;
    r->open_fds--;
    if (c->state == C_CLOSING) {
        finish_conn(c);
    } else if (c->state == C_RECONNECT) {
        c->state = C_IDLE;
        conn_dial(c);
    }
    admit_waiting(r);
}

static void close_tcp(struct conn *c, bool reset)
{
    dial_done(c); /* on_tcp_closed admits the next waiting conn */
    if (!c->tcp_open || uv_is_closing((uv_handle_t *)&c->tcp)) {
        return;
    }
    if (reset && c->state != C_CONNECTING &&
        uv_tcp_close_reset(&c->tcp, on_tcp_closed) == 0) {
        return;
    }
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

static void cmp_local_closing(struct conn *c);

/* Ends a conn for good: its handles close and its queue is freed. */
static void conn_close(struct conn *c, bool reset)
{
    if (c->state == C_CLOSING) {
        return;
    }
    cmp_local_closing(c);
    struct replay *r = c->session->r;
    if (c->dirty) {
        tm_list_remove(&c->wait_link);
        c->dirty = false;
    } else if (c->state == C_QUEUED) {
        tm_list_remove(&c->wait_link);
        r->waiting--;
    }
    account_removed(r, c, c->queued);
    c->state = C_CLOSING;
    uv_timer_stop(&c->timer);
    order_forget(c);
    if (c->tcp_open) {
        close_tcp(c, reset); /* finish_conn follows in on_tcp_closed */
    } else {
        finish_conn(c);
    }
}

/* Gives the conn up with its bytes undelivered: counted, and reset so the
 * target never mistakes a truncated request for a whole one. */
static void conn_drop(struct conn *c, const char *why)
{
    if (c->dropped || c->state == C_CLOSING) {
        return;
    }
    c->dropped = true;
    c->target->st.flows_dropped++;
    c->target->st.bytes_dropped += c->queued;
    tm_verbose("connection %llu to %s dropped (%s), %zu bytes undelivered",
               (unsigned long long)c->session->flow_id, c->target->label, why,
               c->queued);
    conn_close(c, true);
}

/* ---- connecting ---- */

static void on_connect_timeout(uv_timer_t *t);
static void on_retry_timer(uv_timer_t *t);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static bool is_no_descriptor(int status)
{
    return status == UV_EMFILE || status == UV_ENFILE ||
           status == UV_ENOBUFS || status == UV_EADDRNOTAVAIL;
}

static void queue_for_slot(struct conn *c)
{
    struct replay *r = c->session->r;
    c->state = C_QUEUED;
    tm_list_append(&r->waitq, &c->wait_link);
    r->waiting++;
}

/* A dial failed with `status`: retry within the window, else drop. */
static void dial_failed(struct conn *c, int status)
{
    struct replay *r = c->session->r;
    struct target *t = c->target;
    uint64_t now = now_ns();
    t->st.dial_failures++;
    if (c->first_failure_ns == 0) {
        c->first_failure_ns = now;
    }
    close_tcp(c, false);
    if (c->flow_ended && c->queued == 0) {
        conn_close(c, false); /* nothing was lost */
        return;
    }
    /* While draining, redialling goes on until --drain-timeout drops
     * what is left. */
    if (now - c->first_failure_ns >= r->cfg.retry_window_ns) {
        char why[160];
        snprintf(why, sizeof(why), "%s for the whole retry window",
                 uv_strerror(status));
        conn_drop(c, why);
        return;
    }
    if (status == UV_EADDRNOTAVAIL && !r->spread_sources &&
        !r->spread_failed && replay_addr_is_loopback(
                                 (const struct sockaddr *)&c->target->addr)) {
        /* Out of ephemeral ports to the target: spread over loopback
         * source addresses from now on, and retry at once. */
        r->spread_sources = true;
        tm_verbose("out of local ports to %s: connecting from "
                   "127.0.0.2-251 from now on",
                   c->target->label);
        c->state = C_RETRY;
        uv_timer_start(&c->timer, on_retry_timer, 0, 0);
        return;
    }
    if (is_no_descriptor(status)) {
        /* Out of descriptors or ports: wait for a conn to close, and lower
         * the ceiling so that this does not repeat for every dial. */
        if (r->open_fds > 1 && r->max_fds > r->open_fds - 1) {
            r->max_fds = r->open_fds > 8 ? r->open_fds - 1 : 8;
        }
        if (r->open_fds > 1) {
            c->attempts++;
            queue_for_slot(c);
            return;
        }
    }
    uint64_t delay = (uint64_t)RETRY_FIRST_MS << TM_MIN(c->attempts, 5u);
    if (delay > RETRY_MAX_MS) {
        delay = RETRY_MAX_MS;
    }
    c->attempts++;
    c->state = C_RETRY;
    uv_timer_start(&c->timer, on_retry_timer, delay, 0);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED || c->state != C_CONNECTING) {
        return; /* closed meanwhile: the timeout or a drop handled it */
    }
    uv_timer_stop(&c->timer);
    if (status < 0) {
        dial_failed(c, status);
        return;
    }
    if (c->dialing) {
        dial_done(c);
        admit_waiting(c->session->r);
    }
    c->state = C_OPEN;
    c->attempts = 0;
    c->first_failure_ns = 0;
    c->target->st.connections++;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    conn_advance(c);
}

static void on_connect_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == C_CONNECTING) {
        c->state = C_RETRY; /* on_connect sees ECANCELED and ignores it */
        dial_failed(c, UV_ETIMEDOUT);
    }
}

static void on_retry_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state != C_RETRY) {
        return;
    }
    if (c->tcp_open) {
        /* The failed attempt's socket is still closing. */
        uv_timer_start(&c->timer, on_retry_timer, 5, 0);
        return;
    }
    conn_dial(c);
}

static void on_parked_closed(uv_handle_t *h)
{
    free(h);
}

static void close_parked(struct target *t)
{
    if (t->parked != NULL) {
        uv_close((uv_handle_t *)t->parked, on_parked_closed);
        t->parked = NULL;
    }
}

static void on_parked_read(uv_stream_t *st, ssize_t nread,
                           const uv_buf_t *buf)
{
    struct target *t = st->data;
    if (nread > 0) {
        if (t->keep_greeting) {
            size_t n = TM_MIN((size_t)nread,
                              sizeof(t->greeting) - t->greeting_len);
            memcpy(t->greeting + t->greeting_len, buf->base, n);
            t->greeting_len += n;
        }
        t->parked_rx += (uint64_t)nread; /* a greeting: the first turn */
        t->answered_any = true;
        t->silent = false;
    } else if (nread < 0) {
        close_parked(t); /* the target closed it: dial afresh later */
    }
}

static void on_parked_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[256];
    (void)h;
    (void)suggested;
    buf->base = scratch;
    buf->len = sizeof(scratch);
}

static void cmp_local_data(struct conn *c, const char *data, size_t len);

/* Gives the probe's connection to `c`, so that checking the target at
 * start does not show it a spurious empty connection. */
static bool take_parked(struct conn *c)
{
    struct target *t = c->target;
    struct replay *r = c->session->r;
    uv_os_fd_t fd;
    if (t->parked == NULL || uv_fileno((uv_handle_t *)t->parked, &fd) < 0) {
        return false;
    }
    int copy = dup(fd);
    uint64_t greeting = t->parked_rx;
    t->parked_rx = 0;
    close_parked(t);
    if (copy < 0) {
        return false;
    }
    uv_tcp_init(r->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_tcp_open(&c->tcp, copy) < 0) {
        close(copy);
        c->tcp_open = true;
        r->open_fds++;
        close_tcp(c, false);
        return false;
    }
    c->tcp_open = true;
    r->open_fds++;
    uv_tcp_nodelay(&c->tcp, 1);
    c->turn_rx = greeting;
    c->turn_http_off = greeting > 0; /* it spoke first: not HTTP/1 */
    c->target->st.bytes_received += greeting;
    if (t->greeting_len > 0) {
        cmp_local_data(c, (const char *)t->greeting, t->greeting_len);
        t->greeting_len = 0;
    }
    if (greeting > 0) {
        c->last_rx_ns = now_ns();
    }
    c->state = C_CONNECTING;
    c->req.connect.data = c;
    on_connect(&c->req.connect, 0);
    return true;
}

/*
 * Creates the socket for a dial. All connections from one address to
 * one target share one range of ephemeral ports, and connect() searches
 * it for a port whose 4-tuple is free: the more connections open or in
 * TIME-WAIT, the longer the search (measured: with 20,000 open and 45,000
 * in TIME-WAIT, a third of the CPU went to that search), until it fails
 * with EADDRNOTAVAIL on a kernel without loopback TIME-WAIT reuse. So
 * once a run dials an IPv4 loopback target more than SPREAD_DIALS times
 * within a TIME-WAIT period, or runs out of ports, successive connections
 * come from successive source addresses in 127.0.0.0/8, all local on
 * Linux, each with a port range of its own. Quieter runs keep 127.0.0.1,
 * which is what a service expects of a local client.
 * IP_BIND_ADDRESS_NO_PORT leaves the port to connect(), which then knows
 * the whole 4-tuple.
 */
static void count_dial(struct replay *r, const struct sockaddr *dst)
{
    uint64_t now = now_ns();
    if (now - r->window_start_ns >= SPREAD_WINDOW_NS) {
        r->previous_window_dials =
            now - r->window_start_ns < 2 * SPREAD_WINDOW_NS
                ? r->window_dials
                : 0;
        r->window_dials = 0;
        r->window_start_ns = now;
    }
    r->window_dials++;
    if (!r->spread_sources && !r->spread_failed &&
        r->window_dials + r->previous_window_dials > SPREAD_DIALS &&
        dst->sa_family == AF_INET && replay_addr_is_loopback(dst)) {
        r->spread_sources = true;
        tm_verbose("over %d connections a minute: loopback connections "
                   "come from 127.0.0.2-251 from now on",
                   SPREAD_DIALS);
    }
}

static void init_socket(struct conn *c)
{
    struct replay *r = c->session->r;
    const struct sockaddr_in *dst =
        (const struct sockaddr_in *)(const void *)&c->target->addr;
#if defined(__linux__) && defined(IP_BIND_ADDRESS_NO_PORT)
    if (r->spread_sources && dst->sin_family == AF_INET &&
        (ntohl(dst->sin_addr.s_addr) >> 24) == 127 &&
        uv_tcp_init_ex(r->loop, &c->tcp, AF_INET) == 0) {
        uv_os_fd_t fd;
        int one = 1;
        struct sockaddr_in src;
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        /* 127.0.0.2 .. 127.0.0.251, then around again. */
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(r->dials % 250));
        r->dials++;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                       sizeof(one)) == 0 &&
            uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0) == 0) {
            return;
        }
        /* No such address here: plain connects from now on. */
        r->spread_sources = false;
        r->spread_failed = true;
        return;
    }
#else
    (void)dst;
#endif
    uv_tcp_init(r->loop, &c->tcp);
}

static void conn_dial(struct conn *c)
{
    struct replay *r = c->session->r;
    if (!have_slot(r)) {
        queue_for_slot(c);
        return;
    }
    if (c->target->parked != NULL && c->attempts == 0 && take_parked(c)) {
        return;
    }
    count_dial(r, (const struct sockaddr *)&c->target->addr);
    init_socket(c);
    c->tcp.data = c;
    c->tcp_open = true;
    r->open_fds++;
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = C_CONNECTING;
    c->req.connect.data = c;
    int rc = uv_tcp_connect(&c->req.connect, &c->tcp,
                            (const struct sockaddr *)&c->target->addr,
                            on_connect);
    if (rc < 0) {
        c->state = C_RETRY;
        dial_failed(c, rc);
        return;
    }
    c->dialing = true;
    r->dialing++;
    uv_timer_start(&c->timer, on_connect_timeout,
                   ns_to_ms(r->cfg.connect_timeout_ns), 0);
}

/* ---- turns ---- */

/* What the target should still answer after the last turn: production's
 * server sent this much after the client's last byte (everything, in
 * stream mode: released_mark stays 0). */
static uint64_t final_answer(const struct conn *c)
{
    return c->server_sent > c->released_mark
               ? c->server_sent - c->released_mark
               : 0;
}

/* Where the local connection's HTTP/1 framing stands: UNKNOWN when it
 * is not HTTP/1 (or the framing stopped), and bytes count instead. */
static enum httpturn_state turn_http_state(const struct conn *c)
{
    return c->turn_http != NULL ? httpturn_state(c->turn_http)
                                : HTTPTURN_UNKNOWN;
}

/* The framing stopped for good: its framers go, and the connection's
 * turns are counted in bytes until it is replaced. */
static void turn_http_check(struct conn *c)
{
    if (c->turn_http != NULL && httpturn_stopped(c->turn_http)) {
        tm_debug("connection %llu to %s: turns end by byte counts (%s)",
                 (unsigned long long)c->session->flow_id, c->target->label,
                 httpturn_reason(c->turn_http));
        httpturn_free(c->turn_http);
        c->turn_http = NULL;
        c->turn_http_off = true;
    }
}

/* Bytes written to the target: its requests, if it speaks HTTP/1 (the
 * framing starts with the local connection's first byte). */
static void turn_http_sent(struct conn *c, const uv_buf_t *bufs, unsigned n)
{
    if (!c->session->r->cfg.turns || c->turn_http_off) {
        return;
    }
    if (c->turn_http == NULL) {
        c->turn_http = httpturn_new();
    }
    for (unsigned i = 0; i < n; i++) {
        httpturn_sent(c->turn_http, (const uint8_t *)bufs[i].base,
                      bufs[i].len);
    }
    turn_http_check(c);
}

static void turn_http_received(struct conn *c, const char *data, size_t len)
{
    if (c->turn_http == NULL) {
        c->turn_http_off = true; /* it spoke first: not HTTP/1 */
        return;
    }
    httpturn_received(c->turn_http, (const uint8_t *)data, len);
    turn_http_check(c);
}

static void turn_http_received_end(struct conn *c)
{
    if (c->turn_http != NULL) {
        httpturn_received_end(c->turn_http); /* a close-delimited body */
        turn_http_check(c);
    }
}

/* A new local connection: framed afresh. */
static void turn_http_restart(struct conn *c)
{
    httpturn_free(c->turn_http);
    c->turn_http = NULL;
    c->turn_http_off = false;
}

/* Whether the target has answered the last turn. HTTP/1: the response
 * to the last request written has ended, however long it is (shorter
 * than production's is not waited on for --turn-quiet, longer is not cut
 * at production's length). Otherwise: as many bytes as production's
 * server sent, or some and then quiet for --turn-quiet (its answer is
 * shorter). */
static bool answered(const struct conn *c, uint64_t need)
{
    if (c->target_eof) {
        return true;
    }
    switch (turn_http_state(c)) {
    case HTTPTURN_ANSWERED:
        return true;
    case HTTPTURN_OWED:
        return false;
    case HTTPTURN_UNKNOWN:
        break;
    }
    if (c->turn_rx >= need) {
        return true;
    }
    const struct replay *r = c->session->r;
    return c->turn_rx > 0 && now_ns() - c->last_rx_ns >= r->cfg.turn_quiet_ns;
}

/* A connection closed while the target was still answering: counted,
 * because a fast replay that closes too early loses the target's work
 * silently (a database that was still executing queued queries). */
static void count_unfinished(struct conn *c, const char *by)
{
    if (!c->target->answered_any) {
        return; /* a sink: there was no answer to wait for */
    }
    c->target->st.closed_before_finished++;
    tm_verbose("connection %llu to %s closed by %s before the target "
               "finished answering (%llu of %llu bytes)",
               (unsigned long long)c->session->flow_id, c->target->label, by,
               (unsigned long long)c->turn_rx,
               (unsigned long long)(c->turn_waiting
                                        ? c->end_mark - c->released_mark
                                        : final_answer(c)));
}

static void on_turn_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->turn_waiting) {
        conn_advance(c);
    }
}

/* The target answered the turn (or gave up answering): the chunks up to
 * `mark` may go, and the next turn's answer is counted from here. */
static void release_turn(struct conn *c, uint64_t mark)
{
    c->released_mark = mark;
    c->turn_rx = 0;
    c->turn_waiting = false;
    uv_timer_stop(&c->timer);
}

/* A turn timed out on a target that has never sent a byte: it is a sink
 * (or down), and every connection waiting on it would wait as long. */
static void target_silent(struct replay *r, struct target *t)
{
    if (t->answered_any || t->silent) {
        return;
    }
    t->silent = true;
    tm_verbose("%s has answered nothing: turns are sent as captured until "
               "it does",
               t->label);
    struct tm_list *n = r->conns.next;
    while (n != &r->conns) {
        struct conn *c = TM_CONTAINER_OF(n, struct conn, link);
        n = n->next;
        if (c->target == t && c->waits_len > 0) {
            order_settle(c, true);
        }
        if (c->target == t && c->turn_waiting) {
            conn_advance(c);
        }
    }
    order_wake(r); /* a sink's chunks wait for no answer */
}

/* ---- --pace ordered ---- */

/* Whether chunk `k` may go: every answer production had given when it
 * was captured has been given by this target (a sink gives none). */
static bool order_allows(const struct conn *c, const struct chunk *k)
{
    const struct replay *r = c->session->r;
    return !r->cfg.ordered || c->target->silent || c == r->order_free ||
           k->depends <= c->target->order_prefix;
}

/* Moves the target's prefix past answers given (or given up on): at
 * least to `floor`, then over every answer marked given after it. */
static void order_advance(struct replay *r, struct target *t, uint64_t floor)
{
    uint64_t before = t->order_prefix;
    if (floor > t->order_prefix) {
        /* Marks exist only within the ring's span after the prefix. */
        uint64_t span = TM_MIN(floor - t->order_prefix, t->order_cap);
        for (uint64_t i = 0; i < span; i++) {
            uint8_t *d = &t->order_done[(t->order_prefix + i) % t->order_cap];
            t->order_ahead -= *d;
            *d = 0;
        }
        t->order_prefix = floor;
    }
    while (t->order_cap > 0 && t->order_done[t->order_prefix % t->order_cap]) {
        t->order_done[t->order_prefix % t->order_cap] = 0;
        t->order_ahead--;
        t->order_prefix++;
    }
    if (t->order_prefix != before) {
        order_wake(r);
    }
}

/* The target gave production's answer number `answer`. The ring holds
 * the answers between the prefix and the newest given: as many as the
 * queues hold unanswered chunks. */
static void order_given(struct replay *r, struct target *t, uint64_t answer)
{
    if (answer < t->order_prefix) {
        return;
    }
    uint64_t need = answer - t->order_prefix + 1;
    if (need > t->order_cap) {
        uint64_t cap = t->order_cap ? t->order_cap : 64;
        while (cap < need) {
            cap *= 2;
        }
        uint8_t *ring = tm_xcalloc((size_t)cap, 1);
        for (uint64_t n = t->order_prefix;
             n < t->order_prefix + t->order_cap; n++) {
            ring[n % cap] = t->order_done[n % t->order_cap];
        }
        free(t->order_done);
        t->order_done = ring;
        t->order_cap = cap;
    }
    if (!t->order_done[answer % t->order_cap]) {
        t->order_done[answer % t->order_cap] = 1;
        t->order_ahead++;
    }
    order_advance(r, t, t->order_prefix);
}

/* Answers the conn's target has given: those awaited for bytes written
 * before its last byte came, or all of them once it can answer no more
 * (closed, dropped, a sink). */
static void order_settle(struct conn *c, bool all)
{
    struct replay *r = c->session->r;
    while (c->waits_len > 0) {
        struct order_wait *w = &c->waits[c->waits_head];
        if (!all && w->end > c->heard) {
            break;
        }
        uint64_t answer = w->answer;
        c->waits_head = (c->waits_head + 1) % c->waits_cap;
        c->waits_len--;
        order_given(r, c->target, answer);
    }
}

static void order_await(struct conn *c, uint64_t answer, uint64_t end)
{
    if (c->waits_len == c->waits_cap) {
        uint32_t cap = c->waits_cap ? c->waits_cap * 2 : 4;
        struct order_wait *w = tm_xmalloc(cap * sizeof(*w));
        for (uint32_t i = 0; i < c->waits_len; i++) {
            w[i] = c->waits[(c->waits_head + i) % c->waits_cap];
        }
        free(c->waits);
        c->waits = w;
        c->waits_cap = cap;
        c->waits_head = 0;
    }
    c->waits[(c->waits_head + c->waits_len) % c->waits_cap] =
        (struct order_wait){answer, end};
    c->waits_len++;
}

/* What has reached the target: the bytes written, less those still in
 * libuv's queue. A byte the target sends answers these. */
static uint64_t order_reached(const struct conn *c)
{
    uint64_t reached = c->delivered;
    if (c->inflight > 0) {
        size_t unsent =
            uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
        reached += c->inflight > unsent ? c->inflight - unsent : 0;
    }
    return reached;
}

/* The target sent a byte when `reached` bytes had reached it. */
static void order_heard(struct conn *c, uint64_t reached)
{
    if (reached > c->heard) {
        c->heard = reached;
    }
    order_settle(c, false);
}

static void order_unblock(struct conn *c)
{
    if (c->order_blocked) {
        c->order_blocked = false;
        tm_list_remove(&c->order_link);
        uv_timer_stop(&c->timer);
    }
}

/* The conn can answer no more: nothing may wait for it. */
static void order_forget(struct conn *c)
{
    if (c->session->r->order_free == c) {
        c->session->r->order_free = NULL;
    }
    order_unblock(c);
    order_settle(c, true);
}

/* Releases held conns whose head chunk may go now, the earliest
 * captured first: chunks that production's clients had in flight
 * together reach the target in their captured order, so that it meets
 * them (and their locks) as production's server did, as far as it can.
 * A conn released may give answers or close, which wakes again: the
 * search repeats until no held conn may go. */
static void order_wake(struct replay *r)
{
    if (r->order_waking) {
        return;
    }
    r->order_waking = true;
    for (;;) {
        struct conn *first = NULL;
        for (struct tm_list *n = r->order_blocked.next;
             n != &r->order_blocked; n = n->next) {
            struct conn *c = TM_CONTAINER_OF(n, struct conn, order_link);
            if (c->head == NULL) {
                first = c;
                break;
            }
            if (order_allows(c, c->head) &&
                (first == NULL || c->head->seq < first->head->seq)) {
                first = c;
            }
        }
        if (first == NULL) {
            break;
        }
        order_unblock(first);
        conn_advance(first);
    }
    r->order_waking = false;
}

static void on_order_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (!c->order_blocked || c->head == NULL) {
        return;
    }
    struct replay *r = c->session->r;
    c->target->st.order_timed_out++;
    tm_verbose("connection %llu to %s: other connections' answers not "
               "given within --turn-timeout; sending on",
               (unsigned long long)c->session->flow_id, c->target->label);
    /* What it waited for is given up for every conn: waiting again for
     * the same answers would stall each of them as long. */
    order_advance(r, c->target, c->head->depends);
    if (c->order_blocked) {
        order_unblock(c);
        conn_advance(c);
    }
}

/*
 * Held chunks and a stalled replay: no target sent a byte and no write
 * completed for a fifth of --turn-quiet, and the target gave answers out
 * of production's order (a target merely at work on an awaited answer,
 * a slow TRUNCATE, gives none). The target is waiting for a held chunk:
 * chunks that production's clients had in flight together can reach the
 * target in another order than production's server took them (which
 * backend process wins a lock is the scheduler's), and the one that won
 * here may be held for an answer that production gave first, which the
 * target cannot give while the winner waits. The earliest captured held
 * chunk goes (counted), which breaks the cycle.
 */
static void on_order_stall(uv_timer_t *t)
{
    struct replay *r = t->data;
    uint64_t moved = r->progress + r->activity;
    if (tm_list_empty(&r->order_blocked)) {
        uv_timer_stop(t);
        return;
    }
    if (moved != r->order_stall_activity) {
        r->order_stall_activity = moved;
        return; /* the timer repeats */
    }
    struct conn *first = NULL;
    for (struct tm_list *n = r->order_blocked.next; n != &r->order_blocked;
         n = n->next) {
        struct conn *c = TM_CONTAINER_OF(n, struct conn, order_link);
        if (c->head != NULL && c->target->order_ahead > 0 &&
            (first == NULL || c->head->seq < first->head->seq)) {
            first = c;
        }
    }
    if (first == NULL) {
        return; /* a target at work on what is awaited: only slow */
    }
    first->target->st.order_stalls++;
    tm_debug("connection %llu to %s: the target is stalled; sending the "
             "earliest held chunk",
             (unsigned long long)first->session->flow_id,
             first->target->label);
    r->order_free = first;
    order_unblock(first);
    conn_advance(first);
}

static void order_watch_stall(struct replay *r)
{
    if (!r->order_stall_init) {
        uv_timer_init(r->loop, &r->order_stall_timer);
        r->order_stall_timer.data = r;
        r->order_stall_init = true;
    }
    if (!uv_is_active((uv_handle_t *)&r->order_stall_timer)) {
        uint64_t ms = ns_to_ms(r->cfg.turn_quiet_ns / ORDER_STALL_DIVISOR);
        r->order_stall_activity = r->progress + r->activity;
        uv_timer_start(&r->order_stall_timer, on_order_stall, ms, ms);
    }
}

/* The conn's next chunk waits for answers on other connections: held
 * until they come or --turn-timeout passes. Returns whether it waits. */
static bool order_hold(struct conn *c)
{
    if (order_allows(c, c->head)) {
        order_unblock(c);
        return false;
    }
    if (!c->order_blocked) {
        struct replay *r = c->session->r;
        c->order_blocked = true;
        tm_list_append(&r->order_blocked, &c->order_link);
        c->target->st.order_waits++;
        uv_timer_start(&c->timer, on_order_timer,
                       ns_to_ms(r->cfg.turn_timeout_ns), 0);
        order_watch_stall(r);
    }
    return true;
}

void replay_answer(struct replay *r, struct replay_session *s)
{
    if (!r->cfg.ordered || s->client_bytes == s->answered_bytes) {
        return; /* a greeting, or more of the same answer */
    }
    uint64_t answer = r->order_answers++;
    s->answered_bytes = s->client_bytes;
    for (size_t i = 0; i < r->n_targets; i++) {
        struct conn *c = &s->conns[i];
        if (c->dropped || c->state == C_CLOSING || c->target_eof ||
            c->target->silent) {
            order_given(r, c->target, answer);
            continue;
        }
        order_await(c, answer, s->client_bytes);
        order_settle(c, false);
    }
}

/*
 * The conn is open and writes nothing: writes what may go, half-closes
 * at the end, or waits for the target's answer. The first queued chunk
 * (or the client's close) carries the production server bytes its client
 * had heard; above the released mark, production's client waited for
 * the server's answer, so the target's answer is waited for too: as many
 * bytes as production's answer (the difference of the marks), or quiet
 * for --turn-quiet after its first byte, or --turn-timeout at most
 * (--linger for the close, which counts the connection unfinished). A
 * greeting is the first turn: the first chunk's mark is above 0.
 */
static void conn_advance(struct conn *c)
{
    if (c->state != C_OPEN || c->inflight > 0) {
        return;
    }
    if (c->head != NULL && c->head->fresh) {
        conn_reconnect(c); /* every byte before it is written */
        return;
    }
    struct replay *r = c->session->r;
    bool closing = c->head == NULL;
    if (closing && !c->flow_ended) {
        return; /* nothing to send yet */
    }
    uint64_t want = closing ? c->end_mark : c->head->mark;
    if (r->cfg.turns && want > c->released_mark && c->target->silent) {
        release_turn(c, want); /* a sink: nothing to wait for */
    } else if (r->cfg.turns && want > c->released_mark) {
        uint64_t need = want - c->released_mark;
        uint64_t now = now_ns();
        uint64_t limit = closing ? r->cfg.linger_ns : r->cfg.turn_timeout_ns;
        if (!c->turn_waiting) {
            c->turn_waiting = true;
            c->wait_start_ns = now;
            c->target->st.turns++;
        }
        if (answered(c, need)) {
            if (turn_http_state(c) == HTTPTURN_ANSWERED) {
                c->target->st.turns_http_end++;
            } else if (c->turn_rx < need && !c->target_eof) {
                c->target->st.turns_quiet++;
            }
        } else if (now - c->wait_start_ns >= limit) {
            if (!c->target->answered_any) {
                release_turn(c, want);
                target_silent(r, c->target);
                conn_advance(c); /* released: writes or half-closes */
                return;
            }
            if (closing) {
                count_unfinished(c, "--linger");
                release_turn(c, want);
                conn_close(c, false);
                return;
            }
            c->target->st.turns_timed_out++;
            tm_verbose("connection %llu to %s: no complete answer within "
                       "--turn-timeout (%llu of %llu bytes); sending on",
                       (unsigned long long)c->session->flow_id,
                       c->target->label, (unsigned long long)c->turn_rx,
                       (unsigned long long)need);
        } else {
            uint64_t due = c->wait_start_ns + limit;
            if (c->turn_rx > 0 && turn_http_state(c) == HTTPTURN_UNKNOWN) {
                due = TM_MIN(due, c->last_rx_ns + r->cfg.turn_quiet_ns);
            }
            uint64_t ms = due > now ? ns_to_ms(due - now) : 1;
            uv_timer_start(&c->timer, on_turn_timer, ms, 0);
            return;
        }
        release_turn(c, want);
    }
    if (!closing) {
        if (r->cfg.ordered && order_hold(c)) {
            return;
        }
        start_write(c);
    } else {
        do_shutdown(c);
    }
}

/* ---- writing ---- */

/* A write may take long on a slow target; only a target that accepted
 * nothing at all for the whole timeout is given up. */
static void on_write_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state != C_OPEN || c->inflight == 0) {
        return;
    }
    size_t unsent = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (unsent < c->unsent) {
        c->unsent = unsent;
        uv_timer_again(&c->timer);
        return;
    }
    c->target->st.write_failures++;
    conn_drop(c, "the target accepted no bytes for --write-timeout");
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED || c->state == C_CLOSING) {
        return;
    }
    struct replay *r = c->session->r;
    if (status < 0) {
        c->target->st.write_failures++;
        conn_drop(c, uv_strerror(status));
        return;
    }
    size_t n = c->inflight;
    c->inflight = 0;
    r->progress++;
    queue_consume(c, n);
    account_removed(r, c, n);
    c->target->st.bytes_delivered += n;
    c->delivered += n;
    uv_timer_stop(&c->timer);
    conn_advance(c);
}

static void cmp_local_sent(struct conn *c);

static void start_write(struct conn *c)
{
    struct replay *r = c->session->r;
    uv_buf_t bufs[WRITE_MAX_BUFS];
    unsigned n = 0;
    size_t total = 0;
    for (struct chunk *k = c->head;
         k != NULL && n < WRITE_MAX_BUFS && total < WRITE_MAX_BYTES &&
         k->mark <= c->released_mark && !(k->fresh && k != c->head) &&
         order_allows(c, k);
         k = k->next) {
        if (k->end == k->start) {
            continue;
        }
        bufs[n] = uv_buf_init((char *)k->data + k->start, k->end - k->start);
        total += k->end - k->start;
        n++;
    }
    if (n == 0) {
        return;
    }
    c->inflight = total;
    c->req.write.data = c;
    int rc = uv_write(&c->req.write, (uv_stream_t *)&c->tcp, bufs, n,
                      on_write);
    if (rc < 0) {
        c->inflight = 0;
        c->target->st.write_failures++;
        conn_drop(c, uv_strerror(rc));
        return;
    }
    c->unsent = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    turn_http_sent(c, bufs, n);
    cmp_local_sent(c);
    if (r->cfg.write_timeout_ns > 0) {
        uint64_t ms = ns_to_ms(r->cfg.write_timeout_ns);
        uv_timer_start(&c->timer, on_write_timeout, ms, ms);
    }
}

/* At a cut (--linger, --drain-timeout) after the half-close: the target
 * has not closed and sent less than production's server did (HTTP/1:
 * has not ended the response to the last request). A pause is no answer
 * here: in stream mode the rest is the whole conversation, and a target
 * still working on a slow request is quiet too. */
static bool cut_short(const struct conn *c)
{
    if (c->target_eof) {
        return false;
    }
    switch (turn_http_state(c)) {
    case HTTPTURN_ANSWERED:
        return false;
    case HTTPTURN_OWED:
        return true;
    case HTTPTURN_UNKNOWN:
        break;
    }
    return c->turn_rx < final_answer(c);
}

/* Whether the target has finished its answer after the client's last
 * byte: the response to the last request ended (HTTP/1), or as many
 * bytes as production's server sent after it, when it sent any. */
static bool last_answer_done(const struct conn *c)
{
    switch (turn_http_state(c)) {
    case HTTPTURN_ANSWERED:
        return true;
    case HTTPTURN_OWED:
        return false;
    case HTTPTURN_UNKNOWN:
        break;
    }
    uint64_t rest = final_answer(c);
    return rest > 0 && c->turn_rx >= rest;
}

static void on_linger_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == C_LINGER) {
        if (cut_short(c)) {
            c->target->st.completed--; /* counted at the half-close */
            count_unfinished(c, "--linger");
        }
        conn_close(c, false);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED || c->state != C_SHUTTING) {
        return;
    }
    if (status < 0) {
        /* Reset before the half-close went out: the target closed with
         * bytes it never read. */
        c->target->st.write_failures++;
        c->target->st.flows_dropped++;
        c->target->st.reset_after_end++;
        c->dropped = true;
        tm_verbose("connection %llu to %s was reset by the target before "
                   "the end of the stream: %s",
                   (unsigned long long)c->session->flow_id, c->target->label,
                   uv_strerror(status));
        conn_close(c, false);
        return;
    }
    c->target->st.completed++;
    if (c->target_eof || last_answer_done(c)) {
        conn_close(c, false);
        return;
    }
    c->state = C_LINGER;
    uv_timer_start(&c->timer, on_linger_timeout,
                   ns_to_ms(c->session->r->cfg.linger_ns), 0);
}

/* Every byte is written and the mirrored client closed: half-close, so
 * the target sees the end of the request exactly as the server did. */
static void do_shutdown(struct conn *c)
{
    c->state = C_SHUTTING;
    c->req.shutdown.data = c;
    if (uv_shutdown(&c->req.shutdown, (uv_stream_t *)&c->tcp, on_shutdown) <
        0) {
        c->target->st.completed++;
        conn_close(c, false);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    buf->base = (char *)c->session->r->discard;
    buf->len = DISCARD_BUF;
}

/* ---- shadow compare ---- */

/* The connection whose answers are compared: the first target's. */
static struct cmp_state *compared(const struct conn *c)
{
    const struct replay_session *s = c->session;
    return s->cmp != NULL && c == &s->conns[0] ? s->cmp : NULL;
}

/* Off the watch list; the watch's timer stops with the last one, so
 * that it never holds the loop (and the end of a run) open. */
static void cmp_unwait(struct replay *r, struct cmp_state *m)
{
    if (m->waiting) {
        tm_list_remove(&m->wait_link);
        m->waiting = false;
        if (tm_list_empty(&r->cmp_waiting) && r->cmp_timer_init) {
            uv_timer_stop(&r->cmp_timer);
        }
    }
}

/* Charges what the compare holds now; true if it grew. */
static bool cmp_account(struct replay *r, struct cmp_state *m)
{
    size_t waiting;
    size_t now = compare_conn_held(m->cc, &waiting) + sizeof(*m);
    bool grew = now > m->held;
    r->cmp_held = r->cmp_held - m->held + now;
    r->cmp_backlog = r->cmp_backlog - m->backlog + waiting;
    m->held = now;
    m->backlog = waiting;
    return grew;
}

static void on_cmp_timer(uv_timer_t *t);

/* After anything fed: the bytes held count against --max-buffer (the
 * compare that grew past it is abandoned: comparing never costs a
 * delivery), and a request the target owes an answer is watched for
 * --write-timeout. */
static void cmp_settle(struct replay *r, struct cmp_state *m)
{
    size_t other = r->other_usage ? *r->other_usage : 0;
    size_t before = replay_compare_backlog(r);
    bool grew = cmp_account(r, m);
    if (!grew && before > r->cmp_low_water &&
        replay_compare_backlog(r) <= r->cmp_low_water && r->low_cb != NULL) {
        r->low_cb(r->low_ctx);
    }
    if (grew && !m->abandoned &&
        r->queued + other + r->cmp_held > r->cfg.max_buffer) {
        m->abandoned = true;
        r->cmp_abandoned++;
        compare_conn_abandon(m->cc, COMPARE_R_LIMIT,
                             "comparing it would exceed --max-buffer");
        cmp_account(r, m);
    }
    bool owed = r->cfg.write_timeout_ns > 0 && !m->abandoned &&
                !m->local_ended && compare_conn_awaiting_local(m->cc);
    if (!owed) {
        cmp_unwait(r, m);
        return;
    }
    if (!m->waiting) {
        m->waiting = true;
        tm_list_append(&r->cmp_waiting, &m->wait_link);
    }
    if (!r->cmp_timer_init) {
        uv_timer_init(r->loop, &r->cmp_timer);
        r->cmp_timer.data = r;
        r->cmp_timer_init = true;
    }
    if (!uv_is_active((uv_handle_t *)&r->cmp_timer)) {
        uint64_t ms = TM_MAX(ns_to_ms(r->cfg.write_timeout_ns) / 4, 10u);
        uv_timer_start(&r->cmp_timer, on_cmp_timer, ms, ms);
    }
}

/* A target that owes an answer and has been quiet for --write-timeout:
 * the exchanges waiting for it are not comparable (timeout). */
static void on_cmp_timer(uv_timer_t *t)
{
    struct replay *r = t->data;
    uint64_t now = now_ns();
    struct tm_list *n = r->cmp_waiting.next;
    while (n != &r->cmp_waiting) {
        struct cmp_state *m = TM_CONTAINER_OF(n, struct cmp_state, wait_link);
        n = n->next;
        if (now - m->last_local_ns >= r->cfg.write_timeout_ns) {
            cmp_unwait(r, m);
            compare_conn_timeout(m->cc);
            cmp_account(r, m);
        }
    }
}

/* Bytes reached the target: everything fed but what is still queued. */
static void cmp_local_sent(struct conn *c)
{
    struct cmp_state *m = compared(c);
    if (m == NULL || m->abandoned) {
        return;
    }
    uint64_t now = now_ns();
    /* Captured bytes not written yet: queued behind this write, or held
     * by the HTTP layer until their head is whole. (Rewritten heads
     * change lengths; a backlog of them makes this a little early.) */
    uint64_t queued_after = c->queued - c->inflight + c->held;
    uint64_t upto =
        m->client_off > queued_after ? m->client_off - queued_after : 0;
    m->last_local_ns = now;
    compare_conn_sent(m->cc, upto, (int64_t)now);
    cmp_settle(c->session->r, m);
}

static void cmp_local_data(struct conn *c, const char *data, size_t len)
{
    struct cmp_state *m = compared(c);
    if (m == NULL || m->abandoned || m->local_ended) {
        return;
    }
    uint64_t now = now_ns();
    m->last_local_ns = now;
    compare_conn_feed(m->cc, COMPARE_LOCAL, (const uint8_t *)data, len,
                      (int64_t)now);
    cmp_settle(c->session->r, m);
}

static void cmp_local_end(struct conn *c)
{
    struct cmp_state *m = compared(c);
    if (m == NULL || m->local_ended) {
        return;
    }
    m->local_ended = true;
    compare_conn_end(m->cc, COMPARE_LOCAL);
    cmp_settle(c->session->r, m);
}

/* The local connection is closing: a target cut off while it still owed
 * an answer (--linger, --drain-timeout) timed out; one that was dropped
 * or closed on its own closed before answering. */
static void cmp_local_closing(struct conn *c)
{
    struct cmp_state *m = compared(c);
    if (m == NULL || m->local_ended) {
        return;
    }
    if (!c->dropped && !c->target_eof && !m->abandoned &&
        compare_conn_awaiting_local(m->cc)) {
        compare_conn_timeout(m->cc);
    }
    cmp_local_end(c);
}

/* The session is done: what is left of its compare is reported. */
static void cmp_finish(struct replay *r, struct cmp_state *m)
{
    compare_conn_finish(m->cc);
    if (r->cmp.on_conn_done != NULL) {
        r->cmp.on_conn_done(r->cmp.ctx, m->cc);
    }
    cmp_unwait(r, m);
    r->cmp_held -= m->held;
    r->cmp_backlog -= m->backlog;
    compare_conn_free(m->cc);
    free(m);
}

static void session_free(struct replay_session *s)
{
    if (s->cmp != NULL) {
        cmp_finish(s->r, s->cmp);
    }
    free(s);
}

void replay_set_compare(struct replay *r, const struct replay_compare *rc)
{
    r->cmp = *rc;
    r->comparing = true;
    if (r->n_targets > 0) {
        r->targets[0].keep_greeting = true;
    }
}

size_t replay_compare_held(const struct replay *r)
{
    return r->cmp_held;
}

size_t replay_compare_backlog(const struct replay *r)
{
    return r->cmp_backlog;
}

void replay_set_compare_low_water(struct replay *r, size_t low)
{
    r->cmp_low_water = low;
}

uint64_t replay_compare_abandoned(const struct replay *r)
{
    return r->cmp_abandoned;
}

void replay_compare_client(struct replay *r, struct replay_session *s,
                           const uint8_t *data, size_t len, int64_t ts_ns)
{
    struct cmp_state *m = s->cmp;
    if (m == NULL) {
        return;
    }
    m->client_off += len;
    if (!m->abandoned) {
        compare_conn_feed(m->cc, COMPARE_CLIENT, data, len, ts_ns);
        cmp_settle(r, m);
    }
}

void replay_compare_client_gap(struct replay *r, struct replay_session *s,
                               uint64_t len)
{
    struct cmp_state *m = s->cmp;
    if (m == NULL) {
        return;
    }
    m->client_off += len;
    if (!m->abandoned) {
        compare_conn_gap(m->cc, COMPARE_CLIENT, len);
        cmp_settle(r, m);
    }
}

void replay_compare_prod(struct replay *r, struct replay_session *s,
                         const uint8_t *data, size_t len, int64_t ts_ns)
{
    struct cmp_state *m = s->cmp;
    if (m != NULL && !m->abandoned) {
        compare_conn_feed(m->cc, COMPARE_PROD, data, len, ts_ns);
        cmp_settle(r, m);
    }
}

void replay_compare_prod_gap(struct replay *r, struct replay_session *s,
                             uint64_t len)
{
    struct cmp_state *m = s->cmp;
    if (m != NULL && !m->abandoned) {
        compare_conn_gap(m->cc, COMPARE_PROD, len);
        cmp_settle(r, m);
    }
}

void replay_compare_prod_end(struct replay *r, struct replay_session *s)
{
    struct cmp_state *m = s->cmp;
    if (m != NULL) {
        compare_conn_end(m->cc, COMPARE_PROD);
        cmp_settle(r, m);
    }
}

/* What the target answers is read and, unless it is compared, thrown
 * away. */
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (nread > 0) {
        cmp_local_data(c, buf->base, (size_t)nread);
        turn_http_received(c, buf->base, (size_t)nread);
        c->session->r->activity++;
        c->target->st.bytes_received += (uint64_t)nread;
        c->target->answered_any = true;
        c->target->silent = false;
        c->turn_rx += (uint64_t)nread;
        c->last_rx_ns = now_ns();
        /* The turn first: a conn whose own answer came waits for the
         * answer it just heard like the rest (order_wake), so that it
         * goes in capture order with them. */
        bool ordering = c->waits_len > 0;
        if (c->turn_waiting && c->session->r->order_free != c) {
            c->session->r->order_free = NULL; /* the stall is over */
        }
        uint64_t reached = ordering ? order_reached(c) : 0;
        if (c->turn_waiting) {
            conn_advance(c);
        } else if (c->state == C_LINGER && last_answer_done(c)) {
            conn_close(c, false); /* the last answer is complete */
        }
        if (ordering) {
            order_heard(c, reached);
        }
        return;
    }
    if (nread == 0 || c->state == C_CLOSING) {
        return;
    }
    uv_read_stop(st);
    if (nread == UV_EOF) {
        c->target_eof = true;
        cmp_local_end(c);
        turn_http_received_end(c);
        order_settle(c, true); /* it will answer no more */
        if (c->state == C_LINGER) {
            conn_close(c, false);
        } else if (c->turn_waiting) {
            conn_advance(c); /* it will answer no more */
        }
        return;
    }
    /* A reset. Before the end of the stream it cuts the stream short;
     * after it, the target closed with bytes it never read (a socket
     * closed with unread data answers with a reset). Either way the
     * target did not take every byte. */
    c->target->st.write_failures++;
    if (c->state == C_LINGER || c->state == C_SHUTTING) {
        c->dropped = true;
        c->target->st.flows_dropped++;
        c->target->st.reset_after_end++;
        if (c->state == C_LINGER) {
            c->target->st.completed--; /* counted at the half-close */
        }
        tm_verbose("connection %llu to %s was reset by the target after "
                   "the last byte: it did not read everything",
                   (unsigned long long)c->session->flow_id,
                   c->target->label);
        conn_close(c, false);
    } else {
        conn_drop(c, uv_strerror((int)nread));
    }
}

/* ---- flow events ---- */

size_t replay_session_size(size_t n_targets)
{
    /* 16: the allocator's header. */
    return sizeof(struct replay_session) + n_targets * sizeof(struct conn) +
           16;
}

struct replay_session *replay_open(struct replay *r, uint64_t flow_id)
{
    struct replay_session *s =
        tm_xcalloc(1, sizeof(*s) + r->n_targets * sizeof(struct conn));
    s->r = r;
    s->flow_id = flow_id;
    s->key = flow_id;
    s->live = (unsigned)r->n_targets;
    if (r->comparing && r->n_targets > 0) {
        struct cmp_state *m = tm_xcalloc(1, sizeof(*m));
        m->cc = compare_conn_new(r->cmp.cfg, r->cmp.noise, flow_id,
                                 r->cmp.on_exchange, r->cmp.ctx);
        tm_list_init(&m->wait_link);
        s->cmp = m;
        cmp_account(r, m);
    }
    for (size_t i = 0; i < r->n_targets; i++) {
        struct conn *c = &s->conns[i];
        c->session = s;
        c->target = &r->targets[i];
        c->target->st.flows++;
        tm_list_init(&c->wait_link);
        tm_list_init(&c->order_link);
        tm_list_append(&r->conns, &c->link);
        uv_timer_init(r->loop, &c->timer);
        c->timer.data = c;
        if (r->draining) {
            c->state = C_IDLE;
            c->flow_ended = true;
            finish_conn(c);
            continue;
        }
        if (r->cfg.http == NULL) {
            conn_dial(c);
        } /* else at the first byte forwarded (http_feed) */
    }
    return s;
}

void replay_set_flow_key(struct replay_session *s, uint64_t key)
{
    s->key = key;
}

/* The conn holding the most bytes, to give up when the total budget is
 * exceeded: most likely a target that stopped reading. */
static struct conn *largest_conn(struct replay *r)
{
    struct conn *best = NULL;
    for (struct tm_list *n = r->conns.next; n != &r->conns; n = n->next) {
        struct conn *c = TM_CONTAINER_OF(n, struct conn, link);
        if (!c->dropped && c->state != C_CLOSING &&
            (best == NULL ||
             c->queued + c->held > best->queued + best->held)) {
            best = c;
        }
    }
    return best;
}

/* Makes room for `len` more bytes within --max-buffer (queues, heads
 * held by httpflows, reassembly): the conns holding the most are
 * dropped, `c` too if it is one of them. */
static void enforce_max_buffer(struct replay *r, struct conn *c, size_t len)
{
    size_t other = (r->other_usage ? *r->other_usage : 0) + r->held;
    while (r->queued + other + len > r->cfg.max_buffer) {
        struct conn *victim = largest_conn(r);
        if (victim == NULL || victim->queued + victim->held == 0) {
            break; /* the rest is flow state: the engine's to shed */
        }
        conn_drop(victim, "over --max-buffer");
        /* Its held head goes when its handles close. */
        other -= TM_MIN(other, victim->held);
        if (victim == c) {
            break;
        }
    }
}

/* Queues bytes for one conn's target, within --flow-buffer and
 * --max-buffer; a conn not dialled yet is dialled now. */
static void conn_queue(struct conn *c, const uint8_t *data, uint32_t len,
                       uint64_t mark)
{
    struct replay *r = c->session->r;
    if (c->dropped || c->state == C_CLOSING) {
        c->target->st.bytes_dropped += len;
        return;
    }
    /* The caps hold for every source; a file is paused by the run
     * long before it reaches them. */
    size_t flow_cap = r->cfg.flow_buffer +
                      (r->cfg.lossless ? LOSSLESS_SLACK : 0);
    if (c->queued + len > flow_cap) {
        c->target->st.bytes_dropped += len;
        conn_drop(c, "over --flow-buffer");
        return;
    }
    enforce_max_buffer(r, c, len);
    if (c->dropped) {
        c->target->st.bytes_dropped += len;
        return;
    }
    queue_append(c, data, len, mark,
                 r->cfg.ordered ? r->order_answers : 0, r->chunk_seq);
    c->queued += len;
    r->queued += len;
    if (!c->over_cap && c->queued > r->cfg.flow_buffer) {
        c->over_cap = true;
        r->over_cap++;
    }
    if (c->state == C_IDLE) {
        conn_dial(c);
    }
    if (!c->dirty && c->state == C_OPEN && c->inflight == 0) {
        c->dirty = true;
        tm_list_append(&r->dirty, &c->wait_link);
    }
}

/* ---- HTTP-aware mirroring: the client-send path ---- */

/*
 * Turns with dropped requests: production's client heard the answers to
 * requests the target never receives, so the marks of the bytes after
 * them would wait for answers that never come. What production's server
 * sent between a dropped request and the next forwarded one (its answers
 * to the dropped ones) is taken out of every later mark.
 */
static uint64_t http_mark(struct conn *c)
{
    if (c->drop_open) {
        c->mark_skip += c->feed_acked - c->drop_acked;
        c->drop_open = false;
    }
    return c->feed_acked - c->mark_skip;
}

static void http_dropped(struct conn *c, const struct httpflow_action *a)
{
    if (!c->drop_open) {
        c->drop_open = true;
        c->drop_acked = c->feed_acked;
    }
    if (a->connection) {
        if (a->drop == HTTPFLOW_DROP_RATE) {
            c->target->st.connections_rate_limited++;
        } else {
            c->target->st.connections_sampled_out++;
        }
    }
}

/* The local connection holds part of a request lost to a capture gap,
 * or its server closes after the last request: the next bytes go on a
 * new connection, once every byte before them is written. */
static void http_break(struct conn *c)
{
    if (c->dropped || c->state == C_CLOSING ||
        (c->state == C_IDLE && c->queued == 0)) {
        return;
    }
    c->break_next = true;
}

static void on_http_action(void *ctx, const struct httpflow_action *a)
{
    struct conn *c = ctx;
    switch (a->kind) {
    case HTTPFLOW_FORWARD:
        conn_queue(c, a->data, (uint32_t)a->len, http_mark(c));
        break;
    case HTTPFLOW_DROP:
        http_dropped(c, a);
        break;
    case HTTPFLOW_RECONNECT:
        tm_debug("connection %llu to %s: a new local connection (%s)",
                 (unsigned long long)c->session->flow_id, c->target->label,
                 a->reason);
        http_break(c);
        break;
    case HTTPFLOW_PASSTHROUGH:
        tm_debug("connection %llu to %s: passed through as it comes (%s)",
                 (unsigned long long)c->session->flow_id, c->target->label,
                 a->reason);
        break;
    }
}

/* Keeps the replay's total of held bytes in step with the conn's. */
static void http_note_held(struct conn *c)
{
    struct replay *r = c->session->r;
    size_t now = c->flow != NULL ? httpflow_held(c->flow) : 0;
    r->held = r->held - c->held + now;
    c->held = now;
}

/* One conn's share of the client bytes, through its httpflow. */
static void http_feed(struct conn *c, const uint8_t *data, uint32_t len,
                      uint64_t acked)
{
    struct replay *r = c->session->r;
    if (c->dropped || c->state == C_CLOSING) {
        c->target->st.bytes_dropped += len;
        return;
    }
    if (c->flow == NULL) {
        c->flow = httpflow_new(r->cfg.http, c->target->rate, c->session->key,
                               on_http_action, c);
    }
    c->feed_acked = acked;
    httpflow_feed(c->flow, data, len, c->target->rate ? now_ns() : 0);
    size_t before = c->held;
    http_note_held(c);
    if (c->held > before) {
        enforce_max_buffer(r, c, 0);
    }
}

/* The client closed: a head still held is settled, and the answers to
 * requests dropped at the end are not waited for. */
static void http_finish(struct conn *c, uint64_t end_acked)
{
    if (c->flow == NULL) {
        return;
    }
    c->feed_acked = end_acked;
    httpflow_finish(c->flow);
    http_note_held(c);
    (void)http_mark(c);
}

/* Closes the local connection once the bytes before a fresh chunk are
 * written, and dials a new one for it (on_tcp_closed). The new
 * connection owes no answer to the old one's requests. */
static void conn_reconnect(struct conn *c)
{
    c->head->fresh = false;
    c->released_mark = TM_MAX(c->released_mark, c->head->mark);
    c->turn_rx = 0;
    c->turn_waiting = false;
    c->target_eof = false;
    turn_http_restart(c);
    uv_timer_stop(&c->timer);
    c->target->st.gap_reconnects++;
    c->state = C_RECONNECT;
    close_tcp(c, false);
}

/* A conn's HTTP counters go to its target's when it closes. */
static void http_account(struct conn *c)
{
    if (c->flow == NULL) {
        return;
    }
    const struct httpflow_counts *n = httpflow_counts(c->flow);
    struct replay_target_stats *st = &c->target->st;
    st->requests_forwarded += n->requests_forwarded;
    st->requests_rewritten += n->requests_rewritten;
    st->requests_filtered += n->dropped_filter;
    st->requests_sampled_out += n->dropped_sample;
    st->requests_rate_limited += n->dropped_rate;
    st->requests_lost_to_gaps += n->lost_to_gaps;
    if (n->passed_through && !n->connection_dropped) {
        st->connections_passed_through++;
    }
    if (n->lost_to_gaps > 0) {
        tm_verbose("connection %llu to %s: %llu requests lost to gaps",
                   (unsigned long long)c->session->flow_id, c->target->label,
                   (unsigned long long)n->lost_to_gaps);
    }
    httpflow_free(c->flow);
    c->flow = NULL;
    http_note_held(c);
}

void replay_data(struct replay *r, struct replay_session *s,
                 const uint8_t *data, uint32_t len, uint64_t server_acked)
{
    uint64_t mark = r->cfg.turns ? server_acked : 0;
    s->client_bytes += len;
    r->chunk_seq++;
    for (size_t i = 0; i < r->n_targets; i++) {
        if (r->cfg.http != NULL) {
            http_feed(&s->conns[i], data, len, mark);
        } else {
            conn_queue(&s->conns[i], data, len, mark);
        }
    }
}

void replay_gap(struct replay *r, struct replay_session *s, uint64_t len)
{
    for (size_t i = 0; r->cfg.http != NULL && i < r->n_targets; i++) {
        struct conn *c = &s->conns[i];
        if (c->flow != NULL && !c->dropped && c->state != C_CLOSING) {
            httpflow_gap(c->flow, len, c->target->rate ? now_ns() : 0);
            http_note_held(c);
        }
    }
}

void replay_end(struct replay *r, struct replay_session *s,
                uint64_t end_acked, uint64_t server_sent)
{
    s->flow_gone = true;
    for (size_t i = 0; i < r->n_targets; i++) {
        struct conn *c = &s->conns[i];
        if (c->state == C_CLOSING) {
            continue;
        }
        c->flow_ended = true;
        http_finish(c, r->cfg.turns ? end_acked : 0);
        if (c->state == C_CLOSING) {
            continue; /* what the finish forwarded was too much */
        }
        c->end_mark = r->cfg.turns ? end_acked - c->mark_skip : 0;
        c->server_sent = server_sent - TM_MIN(c->mark_skip, server_sent);
        if (c->state == C_OPEN && c->queued == 0 && c->inflight == 0) {
            conn_advance(c);
        } else if ((c->state == C_QUEUED || c->state == C_RETRY ||
                    c->state == C_IDLE) &&
                   c->queued == 0) {
            conn_close(c, false); /* no bytes and no connection yet */
        }
    }
    if (s->live == 0) {
        session_free(s);
    }
}

void replay_flush(struct replay *r)
{
    struct tm_list *n;
    while ((n = tm_list_first(&r->dirty)) != NULL) {
        struct conn *c = TM_CONTAINER_OF(n, struct conn, wait_link);
        tm_list_remove(&c->wait_link);
        c->dirty = false;
        if (c->state == C_OPEN && c->inflight == 0 && c->queued > 0) {
            conn_advance(c);
        }
    }
}

/* ---- stopping ---- */

static void check_drained(struct replay *r)
{
    if (!r->draining || !tm_list_empty(&r->conns) || r->drain_done == NULL) {
        return;
    }
    void (*done)(void *) = r->drain_done;
    r->drain_done = NULL;
    if (r->drain_timer_init) {
        uv_timer_stop(&r->drain_timer);
    }
    done(r->drain_ctx);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct replay *r = t->data;
    uint64_t moved = r->progress + r->activity;
    if (r->drain_while_moving && moved != r->drain_activity) {
        r->drain_activity = moved;
        uv_timer_again(t);
        return;
    }
    struct tm_list *n = r->conns.next;
    while (n != &r->conns) {
        struct conn *c = TM_CONTAINER_OF(n, struct conn, link);
        n = n->next;
        if (c->state == C_CLOSING) {
            continue;
        }
        if (c->queued == 0 && c->state == C_OPEN && c->turn_waiting) {
            /* Every byte is out; the target was answering the last. */
            count_unfinished(c, "--drain-timeout");
            conn_close(c, false);
        } else if (c->queued > 0 || (c->state != C_LINGER &&
                                     c->state != C_SHUTTING &&
                                     c->state != C_IDLE)) {
            conn_drop(c, "still undelivered at --drain-timeout");
        } else {
            if (c->state == C_LINGER && cut_short(c)) {
                c->target->st.completed--;
                count_unfinished(c, "--drain-timeout");
            }
            conn_close(c, false);
        }
    }
}

void replay_drain(struct replay *r, uint64_t timeout_ns,
                  void (*done)(void *ctx), void *ctx)
{
    r->draining = true;
    for (size_t i = 0; i < r->n_targets; i++) {
        close_parked(&r->targets[i]);
    }
    r->drain_done = done;
    r->drain_ctx = ctx;
    replay_flush(r);
    if (!r->drain_timer_init) {
        uv_timer_init(r->loop, &r->drain_timer);
        r->drain_timer.data = r;
        r->drain_timer_init = true;
    }
    r->drain_activity = r->progress + r->activity;
    uint64_t ms = ns_to_ms(timeout_ns);
    uv_timer_start(&r->drain_timer, on_drain_timeout, ms, ms);
    check_drained(r);
}

void replay_drain_while_moving(struct replay *r)
{
    r->drain_while_moving = true;
}

void replay_abort(struct replay *r)
{
    r->draining = true;
    for (size_t i = 0; i < r->n_targets; i++) {
        close_parked(&r->targets[i]);
    }
    struct tm_list *n = r->conns.next;
    while (n != &r->conns) {
        struct conn *c = TM_CONTAINER_OF(n, struct conn, link);
        n = n->next;
        if (c->state != C_CLOSING && c->queued > 0) {
            conn_drop(c, "interrupted");
        } else if (c->state != C_CLOSING) {
            conn_close(c, false);
        }
    }
}

static void on_replay_handle_closed(uv_handle_t *h)
{
    struct replay *r = h->data;
    if (--r->closing_handles == 0) {
        free(r->targets);
        free(r);
    }
}

void replay_free(struct replay *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n_targets; i++) {
        close_parked(&r->targets[i]);
        httpflow_rate_free(r->targets[i].rate);
        r->targets[i].rate = NULL;
    }
    free_chunks(r->grave);
    r->grave = NULL;
    for (size_t i = 0; i < r->n_targets; i++) {
        free(r->targets[i].order_done);
    }
    r->closing_handles = 1; /* until both closes have been started */
    if (r->drain_timer_init) {
        r->closing_handles++;
        uv_close((uv_handle_t *)&r->drain_timer, on_replay_handle_closed);
    }
    if (r->reaper_init) {
        r->closing_handles++;
        uv_close((uv_handle_t *)&r->reaper, on_replay_handle_closed);
    }
    if (r->cmp_timer_init) {
        r->closing_handles++;
        uv_close((uv_handle_t *)&r->cmp_timer, on_replay_handle_closed);
    }
    if (r->order_stall_init) {
        r->closing_handles++;
        uv_close((uv_handle_t *)&r->order_stall_timer,
                 on_replay_handle_closed);
    }
    if (--r->closing_handles == 0) {
        free(r->targets);
        free(r);
    }
}

/* ---- probing targets at start ---- */

struct probe {
    uv_tcp_t *tcp;
    uv_timer_t timer;
    uv_connect_t req;
    int status;
    int closing;
    bool done;
};

static void probe_closed(uv_handle_t *h)
{
    struct probe *p = h->data;
    p->closing--;
}

static void probe_tcp_closed(uv_handle_t *h)
{
    struct probe *p = h->data;
    p->closing--;
    free(h);
}

static void probe_finish(struct probe *p, int status)
{
    if (p->done) {
        return;
    }
    p->done = true;
    p->status = status;
    uv_timer_stop(&p->timer);
    p->closing = 1;
    uv_close((uv_handle_t *)&p->timer, probe_closed);
    if (status != 0) {
        p->closing++;
        uv_close((uv_handle_t *)p->tcp, probe_tcp_closed);
    }
}

static void probe_connected(uv_connect_t *req, int status)
{
    struct probe *p = req->data;
    probe_finish(p, status == UV_ECANCELED ? UV_ETIMEDOUT : status);
}

static void probe_timeout(uv_timer_t *t)
{
    probe_finish(t->data, UV_ETIMEDOUT);
}

/* Returns 0 with the connected handle in *out, or a libuv error. */
static int probe_one(uv_loop_t *loop, const struct sockaddr *sa,
                     uint64_t timeout_ns, uv_tcp_t **out)
{
    struct probe p;
    memset(&p, 0, sizeof(p));
    p.tcp = tm_xmalloc(sizeof(*p.tcp));
    uv_tcp_init(loop, p.tcp);
    uv_timer_init(loop, &p.timer);
    p.tcp->data = p.timer.data = p.req.data = &p;
    int rc = uv_tcp_connect(&p.req, p.tcp, sa, probe_connected);
    if (rc < 0) {
        probe_finish(&p, rc);
    } else {
        uv_timer_start(&p.timer, probe_timeout, ns_to_ms(timeout_ns), 0);
    }
    while (!p.done || p.closing > 0) {
        uv_run(loop, UV_RUN_ONCE);
    }
    if (p.status == 0) {
        p.tcp->data = NULL;
        *out = p.tcp;
    }
    return p.status;
}

int replay_probe(uv_loop_t *loop, const char *host, uint16_t port,
                 uint64_t timeout_ns, struct sockaddr_storage *out,
                 uv_tcp_t **conn, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host,
                 gai_strerror(rc));
        return -1;
    }
    char tried[256] = "";
    int last = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        char abuf[80];
        int status = probe_one(loop, ai->ai_addr, timeout_ns, conn);
        if (status == 0) {
            memcpy(out, ai->ai_addr, ai->ai_addrlen);
            freeaddrinfo(res);
            return 0;
        }
        last = status;
        replay_format_addr(ai->ai_addr, abuf, sizeof(abuf));
        size_t used = strlen(tried);
        snprintf(tried + used, sizeof(tried) - used, "%s%s: %s",
                 used ? "; " : "", abuf, uv_strerror(status));
    }
    freeaddrinfo(res);
    snprintf(err, errlen, "%s", last ? tried : "no address");
    return -1;
}
