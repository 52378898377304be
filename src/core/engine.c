#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct engine {
    struct engine_config cfg;
    struct service_addr *service_addrs;
    struct engine_events ev;
    struct engine_stats stats;
    struct reasm_timeouts timeouts;
    struct reasm_budget budget;
    struct flowtab table;
    struct tm_list quiet;   /* open flows that have carried no byte yet,
                               least recently active first */
    struct tm_list open;    /* open flows, least recently active first */
    struct tm_list closing; /* open flows the server closed */
    struct tm_list closed;  /* finished flows, remembered for a while */
    struct flow **heap;     /* flows with a hole, by due time */
    uint32_t heap_len, heap_cap;
    uint64_t now;
    uint64_t next_id;
    /* Live sources: the clock's value when a packet last moved it, and
     * the monotonic time then (0: no packet has yet). */
    uint64_t live_base_ns, live_base_mono_ns;
    size_t flow_state; /* bytes charged for flows (see charge()) */
};

const char *flow_end_reason_name(enum flow_end_reason why)
{
    switch (why) {
    case FLOW_END_FIN:
        return "fin";
    case FLOW_END_RST:
        return "reset";
    case FLOW_END_SERVER_RST:
        return "server-reset";
    case FLOW_END_IDLE:
        return "idle";
    case FLOW_END_EVICTED:
        return "evicted";
    case FLOW_END_NEW_SYN:
        return "replaced";
    case FLOW_END_INPUT:
        return "input-ended";
    }
    return "unknown";
}

/* ---- hole heap: a binary min-heap on due_ns ---- */

static void heap_set(struct engine *e, uint32_t i, struct flow *f)
{
    e->heap[i] = f;
    f->heap_idx = i;
}

static void heap_up(struct engine *e, uint32_t i)
{
    struct flow *f = e->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (e->heap[parent]->due_ns <= f->due_ns) {
            break;
        }
        heap_set(e, i, e->heap[parent]);
        i = parent;
    }
    heap_set(e, i, f);
}

static void heap_down(struct engine *e, uint32_t i)
{
    struct flow *f = e->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= e->heap_len) {
            break;
        }
        if (child + 1 < e->heap_len &&
            e->heap[child + 1]->due_ns < e->heap[child]->due_ns) {
            child++;
        }
        if (e->heap[child]->due_ns >= f->due_ns) {
            break;
        }
        heap_set(e, i, e->heap[child]);
        i = child;
    }
    heap_set(e, i, f);
}

static void heap_remove(struct engine *e, struct flow *f)
{
    uint32_t i = f->heap_idx;
    if (i == UINT32_MAX) {
        return;
    }
    f->heap_idx = UINT32_MAX;
    e->heap_len--;
    if (i == e->heap_len) {
        return;
    }
    struct flow *moved = e->heap[e->heap_len];
    heap_set(e, i, moved);
    heap_up(e, i);
    heap_down(e, moved->heap_idx);
}

static void heap_schedule(struct engine *e, struct flow *f, uint64_t due)
{
    if (f->heap_idx != UINT32_MAX) {
        uint64_t old = f->due_ns;
        f->due_ns = due;
        if (due < old) {
            heap_up(e, f->heap_idx);
        } else if (due > old) {
            heap_down(e, f->heap_idx);
        }
        return;
    }
    if (e->heap_len == e->heap_cap) {
        e->heap_cap = e->heap_cap ? e->heap_cap * 2 : 64;
        e->heap = tm_xrealloc(e->heap, e->heap_cap * sizeof(*e->heap));
    }
    f->due_ns = due;
    heap_set(e, e->heap_len++, f);
    heap_up(e, f->heap_idx);
}

/* ---- reassembly sink ---- */

struct sink_ctx {
    struct engine *e;
    struct flow *f;
};

static void sink_data(void *ctx, const uint8_t *data, uint32_t len)
{
    struct sink_ctx *s = ctx;
    s->f->payload_bytes += len;
    s->e->stats.payload_bytes += len;
    if (s->e->ev.data != NULL) {
        s->e->ev.data(s->e->ev.ctx, s->f, data, len, s->f->server_acked);
    }
}

static void sink_gap(void *ctx, uint32_t len)
{
    struct sink_ctx *s = ctx;
    s->f->gaps++;
    s->f->gap_bytes += len;
    s->e->stats.gaps++;
    s->e->stats.gap_bytes += len;
    if (s->e->ev.gap != NULL) {
        s->e->ev.gap(s->e->ev.ctx, s->f, len);
    }
}

/* The server's direction (reasm_server): the same sink, other events. */
static void srv_sink_data(void *ctx, const uint8_t *data, uint32_t len)
{
    struct sink_ctx *s = ctx;
    s->f->srv_payload_bytes += len;
    s->e->stats.server_payload_bytes += len;
    if (s->e->ev.server_data != NULL) {
        s->e->ev.server_data(s->e->ev.ctx, s->f, data, len);
    }
}

static void srv_sink_gap(void *ctx, uint32_t len)
{
    struct sink_ctx *s = ctx;
    s->f->srv_gap_bytes += len;
    s->e->stats.server_gaps++;
    s->e->stats.server_gap_bytes += len;
    if (s->e->ev.server_gap != NULL) {
        s->e->ev.server_gap(s->e->ev.ctx, s->f, len);
    }
}

/* Reports the end of the server's stream, once. */
static void server_ended(struct engine *e, struct flow *f)
{
    if (!e->cfg.reasm_server || (f->flags & FLOW_SRV_ENDED)) {
        return;
    }
    f->flags |= FLOW_SRV_ENDED;
    if (e->ev.server_end != NULL) {
        e->ev.server_end(e->ev.ctx, f);
    }
}

/* ---- flow lifecycle ---- */

struct engine *engine_new(const struct engine_config *cfg,
                          const struct engine_events *ev)
{
    struct engine *e = tm_xcalloc(1, sizeof(*e));
    e->cfg = *cfg;
    if (cfg->n_service_addrs > 0) {
        size_t n = cfg->n_service_addrs * sizeof(*e->service_addrs);
        e->service_addrs = tm_xmalloc(n);
        memcpy(e->service_addrs, cfg->service_addrs, n);
    }
    e->cfg.service_addrs = e->service_addrs;
    e->ev = *ev;
    e->timeouts.gap_ns = cfg->gap_timeout_ns;
    e->timeouts.rtx_ns = TM_MAX(cfg->rtx_timeout_ns, cfg->gap_timeout_ns);
    e->budget.limit = cfg->queue_budget;
    flowtab_init(&e->table, cfg->hash_seed);
    tm_list_init(&e->quiet);
    tm_list_init(&e->open);
    tm_list_init(&e->closing);
    tm_list_init(&e->closed);
    return e;
}

void engine_set_service_addrs(struct engine *e,
                              const struct service_addr *addrs, size_t n)
{
    free(e->service_addrs);
    e->service_addrs = NULL;
    if (n > 0) {
        e->service_addrs = tm_xmalloc(n * sizeof(*addrs));
        memcpy(e->service_addrs, addrs, n * sizeof(*addrs));
    }
    e->cfg.service_addrs = e->service_addrs;
    e->cfg.n_service_addrs = n;
}

void engine_set_port(struct engine *e, uint16_t port)
{
    e->cfg.port = port;
}

static bool is_loopback(uint8_t family, const uint8_t *addr)
{
    if (family == 4) {
        return addr[0] == 127;
    }
    static const uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                            0, 0, 0, 0, 0, 0, 0, 1};
    return memcmp(addr, v6_loopback, 16) == 0;
}

/*
 * Charges `n` bytes of a flow's state to the memory budget. The count
 * shares the reassembly budget's `used`, so that the replay, which reads
 * that one counter, sees all the engine holds; the limit rises with it,
 * so the queues alone are still held to queue_budget.
 */
static void charge(struct engine *e, struct flow *f, size_t n)
{
    f->charge += (uint32_t)n;
    e->flow_state += n;
    e->budget.used += n;
    e->budget.limit += n;
}

static void free_flow(struct engine *e, struct flow *f)
{
    e->flow_state -= f->charge;
    e->budget.used -= f->charge;
    e->budget.limit -= f->charge;
    reasm_discard(&f->rs, &e->budget);
    reasm_discard(&f->srv_rs, &e->budget);
    heap_remove(e, f);
    tm_list_remove(&f->link);
    flowtab_remove(&e->table, &f->node);
    free(f);
}

static void free_list(struct engine *e, struct tm_list *l)
{
    struct tm_list *n;
    while ((n = tm_list_first(l)) != NULL) {
        free_flow(e, TM_CONTAINER_OF(n, struct flow, link));
    }
}

void engine_free(struct engine *e)
{
    if (e == NULL) {
        return;
    }
    free_list(e, &e->quiet);
    free_list(e, &e->open);
    free_list(e, &e->closing);
    free_list(e, &e->closed);
    flowtab_cleanup(&e->table);
    free(e->heap);
    free(e->service_addrs);
    free(e);
}

/*
 * Ends an open flow. A flow that ends normally (FIN or reset) is
 * remembered for a while so that its late retransmissions and ACKs open
 * nothing; other ends forget the tuple, so later data starts a new flow.
 */
static void end_flow(struct engine *e, struct flow *f,
                     enum flow_end_reason why)
{
    struct sink_ctx sc = {e, f};
    struct reasm_sink sink = {sink_data, sink_gap, &sc};
    struct reasm_sink srv_sink = {srv_sink_data, srv_sink_gap, &sc};
    if (f->flags & FLOW_SRV_REASM) {
        /* The server's bytes behind a hole were sent: a reset came after
         * them, so they are delivered whatever the end. */
        reasm_skip_holes(&f->srv_rs, e->now, NULL, &e->budget, &srv_sink);
    }
    server_ended(e, f);
    switch (why) {
    case FLOW_END_RST:
    case FLOW_END_SERVER_RST:
        /* What arrived in order is delivered already; what waits behind
         * a hole was never read by the server either. */
        e->stats.discarded_bytes += reasm_discard(&f->rs, &e->budget);
        e->stats.flows_reset++;
        break;
    case FLOW_END_FIN:
        e->stats.flows_completed++;
        break;
    default:
        reasm_skip_holes(&f->rs, e->now, NULL, &e->budget, &sink);
        if (why == FLOW_END_IDLE) {
            e->stats.flows_expired++;
        } else if (why == FLOW_END_EVICTED) {
            e->stats.flows_evicted++;
        } else if (why == FLOW_END_NEW_SYN) {
            e->stats.flows_replaced++;
        } else {
            e->stats.flows_unfinished++;
        }
        break;
    }
    heap_remove(e, f);
    if (e->ev.end != NULL) {
        e->ev.end(e->ev.ctx, f, why);
    }
    f->user = NULL;
    e->stats.flows_open--;
    bool remember = why == FLOW_END_FIN || why == FLOW_END_RST ||
                    why == FLOW_END_SERVER_RST;
    if (remember && e->cfg.closed_keep_ns > 0) {
        reasm_discard(&f->rs, &e->budget);
        reasm_discard(&f->srv_rs, &e->budget);
        f->state = FLOW_CLOSED;
        f->last_ns = e->now;
        tm_list_remove(&f->link);
        tm_list_append(&e->closed, &f->link);
    } else {
        free_flow(e, f);
    }
}

/* Whether `more_flows` more flows and `more_bytes` more bytes of flow
 * state would exceed --max-flows or the flow state budget. */
static bool over_limits(const struct engine *e, size_t more_flows,
                        size_t more_bytes)
{
    if (e->cfg.max_flows > 0 &&
        e->table.count + more_flows > e->cfg.max_flows) {
        return true;
    }
    return e->cfg.flow_state_budget > 0 &&
           e->flow_state + more_bytes > e->cfg.flow_state_budget;
}

/* The first flow of `l` other than `keep`, or NULL. */
static struct flow *first_but(struct tm_list *l, const struct flow *keep)
{
    for (struct tm_list *n = l->next; n != l; n = n->next) {
        struct flow *f = TM_CONTAINER_OF(n, struct flow, link);
        if (f != keep) {
            return f;
        }
    }
    return NULL;
}

/*
 * Makes room for `more_flows` flows and `more_bytes` of flow state: the
 * oldest remembered tuple goes first, then the flow that has waited the
 * longest without carrying a byte (a SYN flood costs nothing else), then
 * the flow idle the longest. `keep` (the flow being fed) is never ended.
 */
static void make_room(struct engine *e, size_t more_flows, size_t more_bytes,
                      const struct flow *keep)
{
    while (over_limits(e, more_flows, more_bytes)) {
        struct flow *f = first_but(&e->closed, keep);
        if (f != NULL) {
            free_flow(e, f);
            continue;
        }
        f = first_but(&e->quiet, keep);
        if (f == NULL) {
            f = first_but(&e->closing, keep);
        }
        if (f == NULL) {
            f = first_but(&e->open, keep);
        }
        if (f == NULL) {
            return;
        }
        end_flow(e, f, FLOW_END_EVICTED);
    }
}

static struct flow *new_flow(struct engine *e, const struct flow_key *key)
{
    make_room(e, 1, ENGINE_FLOW_COST, NULL);
    struct flow *f = tm_xcalloc(1, sizeof(*f));
    f->node.key = *key;
    f->heap_idx = UINT32_MAX;
    f->id = ++e->next_id;
    f->first_ns = f->last_ns = e->now;
    tm_list_init(&f->link);
    tm_list_append(&e->quiet, &f->link);
    flowtab_insert(&e->table, &f->node);
    charge(e, f, ENGINE_FLOW_COST);
    e->stats.flows_seen++;
    e->stats.flows_open++;
    if (e->stats.flows_open > e->stats.flows_open_peak) {
        e->stats.flows_open_peak = e->stats.flows_open;
    }
    return f;
}

static void touch(struct engine *e, struct flow *f)
{
    f->last_ns = e->now;
    tm_list_remove(&f->link);
    struct tm_list *l = &e->open;
    if (f->flags & FLOW_SERVER_FIN) {
        l = &e->closing;
    } else if (!(f->flags & FLOW_DATA)) {
        l = &e->quiet;
    }
    tm_list_append(l, &f->link);
}

/* The flow carries its first payload byte: from now on the consumer
 * keeps state for it too (a replay session), charged here. */
static void charge_data(struct engine *e, struct flow *f)
{
    if (e->cfg.flow_data_cost > 0) {
        make_room(e, 0, e->cfg.flow_data_cost, f);
        charge(e, f, e->cfg.flow_data_cost);
    }
}

/* Skips holes that are due, ends the flow if that reached its FIN, and
 * otherwise reschedules its next hole. Returns false if the flow ended
 * (and may be freed). */
static bool settle(struct engine *e, struct flow *f)
{
    struct sink_ctx sc = {e, f};
    if (reasm_has_hole(&f->rs)) {
        struct reasm_sink sink = {sink_data, sink_gap, &sc};
        reasm_skip_holes(&f->rs, e->now, &e->timeouts, &e->budget, &sink);
    }
    bool srv_hole = false;
    if (f->flags & FLOW_SRV_REASM) {
        if (reasm_has_hole(&f->srv_rs)) {
            struct reasm_sink sink = {srv_sink_data, srv_sink_gap, &sc};
            reasm_skip_holes(&f->srv_rs, e->now, &e->timeouts, &e->budget,
                             &sink);
        }
        if (reasm_done(&f->srv_rs)) {
            server_ended(e, f);
        }
        srv_hole = reasm_has_hole(&f->srv_rs);
    }
    if (reasm_done(&f->rs)) {
        end_flow(e, f, FLOW_END_FIN);
        return false;
    }
    bool hole = reasm_has_hole(&f->rs);
    if (hole || srv_hole) {
        uint64_t due = UINT64_MAX;
        if (hole) {
            due = reasm_hole_deadline(&f->rs, &e->timeouts);
        }
        if (srv_hole) {
            due = TM_MIN(due, reasm_hole_deadline(&f->srv_rs, &e->timeouts));
        }
        heap_schedule(e, f, due);
    } else {
        heap_remove(e, f);
    }
    return true;
}

/* ---- segments ---- */

static void key_from(struct flow_key *k, const struct tcp_segment *s,
                     bool inbound)
{
    memset(k, 0, sizeof(*k));
    k->family = s->family;
    size_t alen = s->family == 4 ? 4 : 16;
    if (inbound) {
        memcpy(k->caddr, s->src, alen);
        memcpy(k->saddr, s->dst, alen);
        k->cport = s->sport;
        k->sport = s->dport;
    } else {
        memcpy(k->caddr, s->dst, alen);
        memcpy(k->saddr, s->src, alen);
        k->cport = s->dport;
        k->sport = s->sport;
    }
}

/* The service address `addr` is, or NULL. */
static const struct service_addr *service_addr_of(const struct engine *e,
                                                  uint8_t family,
                                                  const uint8_t *addr)
{
    size_t alen = family == 4 ? 4 : 16;
    for (size_t i = 0; i < e->cfg.n_service_addrs; i++) {
        const struct service_addr *a = &e->service_addrs[i];
        if (a->family == family && memcmp(a->addr, addr, alen) == 0) {
            return a;
        }
    }
    return NULL;
}

static bool any_sidecar_hop(const struct engine *e)
{
    for (size_t i = 0; i < e->cfg.n_service_addrs; i++) {
        if (e->service_addrs[i].sidecar_hop) {
            return true;
        }
    }
    return false;
}

/* Whether a connection from `client` to `server` on the service port is
 * one whose bytes are mirrored. Behind a mesh's sidecar the plaintext
 * hop is the sidecar's: from the loopback (Istio dials from 127.0.0.6,
 * older Istio and Linkerd from 127.0.0.1) or from the pod's own address
 * (Linkerd), to the pod's address or the loopback; the connections from
 * other hosts are the mesh's TLS. Elsewhere a loopback client is a proxy
 * hop of a connection already seen arriving (skip_loopback_clients). */
static bool is_client_hop(const struct engine *e, uint8_t family,
                          const uint8_t *client, const uint8_t *server)
{
    if (e->cfg.n_service_addrs == 0) {
        return !(e->cfg.skip_loopback_clients && is_loopback(family, client));
    }
    const struct service_addr *a = service_addr_of(e, family, server);
    if (a == NULL) {
        return is_loopback(family, server) && is_loopback(family, client) &&
               any_sidecar_hop(e);
    }
    if (a->sidecar_hop) {
        return is_loopback(family, client) ||
               service_addr_of(e, family, client) != NULL;
    }
    return !(e->cfg.skip_loopback_clients && is_loopback(family, client));
}

static struct flow *find(struct engine *e, const struct flow_key *k)
{
    struct flowtab_entry *n = flowtab_find(&e->table, k);
    return n ? TM_CONTAINER_OF(n, struct flow, node) : NULL;
}

/* The server's highest sequence seen, relative to srv_base: at least
 * server_acked. */
static uint64_t server_high(const struct flow *f)
{
    if (!(f->flags & FLOW_SRV_SEEN) || !(f->flags & FLOW_SRV_BASE)) {
        return f->server_acked;
    }
    int32_t d = (int32_t)(f->srv_next -
                          (f->srv_base + (uint32_t)f->server_acked));
    return d > 0 ? f->server_acked + (uint32_t)d : f->server_acked;
}

uint64_t engine_flow_server_sent(const struct flow *f)
{
    return server_high(f);
}

/* A client segment acknowledges `ack`: how much of the server's data the
 * client had heard when it sent it. An acknowledgement that goes back,
 * or beyond what the server was seen sending (the ACK of its FIN, a
 * forged value), moves nothing past what is known. */
static void note_client_ack(struct flow *f, uint32_t ack, bool has_data)
{
    if (!(f->flags & FLOW_SRV_BASE)) {
        /* A connection opened by a SYN whose SYN-ACK was not captured:
         * the handshake's ACK names the server's first byte. One joined
         * mid-stream starts counting at its first client data, which
         * therefore waits for nothing. */
        if (!(f->flags & FLOW_SYN) && !has_data) {
            return;
        }
        f->srv_base = ack;
        f->flags |= FLOW_SRV_BASE;
        return;
    }
    int32_t d = (int32_t)(ack - (f->srv_base + (uint32_t)f->server_acked));
    if (d <= 0) {
        return;
    }
    uint64_t v = f->server_acked + (uint32_t)d;
    if (f->flags & FLOW_SRV_SEEN) {
        uint64_t hi = server_high(f);
        if (v > hi) {
            v = hi;
        }
    }
    f->server_acked = v;
}

static void inbound(struct engine *e, const struct tcp_segment *s,
                    const struct flow_key *key)
{
    bool syn = s->flags & TCP_FLAG_SYN;
    bool rst = s->flags & TCP_FLAG_RST;
    bool fin = s->flags & TCP_FLAG_FIN;
    e->stats.inbound++;
    if (syn && (s->flags & TCP_FLAG_ACK)) {
        /* A SYN-ACK sent to the service port: the port is the client's
         * here, not a service's. */
        e->stats.stray++;
        return;
    }
    struct flow *f = find(e, key);
    if (f != NULL && f->state == FLOW_CLOSED) {
        if (syn && !((f->flags & FLOW_SYN) && f->isn == s->seq)) {
            free_flow(e, f); /* the tuple is reused by a new connection */
            f = NULL;
        } else {
            e->stats.late++;
            return;
        }
    }
    if (f != NULL && syn && !((f->flags & FLOW_SYN) && f->isn == s->seq)) {
        end_flow(e, f, FLOW_END_NEW_SYN);
        f = NULL;
    }
    if (f == NULL) {
        if (syn && !rst) {
            f = new_flow(e, key);
            f->flags |= FLOW_SYN;
            f->isn = s->seq;
            reasm_init_syn(&f->rs, s->seq);
        } else if (s->wire_len > 0 && !rst) {
            f = new_flow(e, key);
            reasm_init_mid(&f->rs, s->seq);
        } else {
            e->stats.stray++; /* a bare ACK, FIN or RST opens nothing */
            return;
        }
        if (e->ev.open != NULL) {
            e->ev.open(e->ev.ctx, f);
        }
    }
    bool first_byte = s->wire_len > 0 && !rst && !(f->flags & FLOW_DATA);
    if (first_byte) {
        f->flags |= FLOW_DATA; /* off the quiet list */
    }
    touch(e, f);
    if (first_byte) {
        charge_data(e, f);
    }
    if (rst) {
        end_flow(e, f, FLOW_END_RST);
        return;
    }
    if (s->flags & TCP_FLAG_ACK) {
        note_client_ack(f, s->ack, s->wire_len > 0);
        if (f->flags & FLOW_SRV_REASM) {
            reasm_ack(&f->srv_rs, s->ack, e->now);
        }
    }
    if (s->wire_len > 0 || fin) {
        struct sink_ctx sc = {e, f};
        struct reasm_sink sink = {sink_data, sink_gap, &sc};
        uint32_t seq = s->seq + (syn ? 1u : 0u);
        reasm_push(&f->rs, seq, s->payload, s->payload_len, s->wire_len,
                   fin, e->now, e->cfg.flow_queue_cap, &e->budget, &sink);
    }
    settle(e, f);
}

/*
 * The server's segment into its own reassembly (reasm_server). The stream
 * starts at the SYN-ACK, or at the server's first byte as the client
 * acknowledged it (srv_base: bytes missed before the first captured
 * segment are a gap), or at the first segment seen. Returns whether the
 * segment was pushed.
 */
static bool server_push(struct engine *e, struct flow *f,
                        const struct tcp_segment *s)
{
    bool syn = s->flags & TCP_FLAG_SYN;
    bool fin = s->flags & TCP_FLAG_FIN;
    if (f->flags & FLOW_SRV_ENDED) {
        return false;
    }
    if (!(f->flags & FLOW_SRV_REASM)) {
        if (syn) {
            reasm_init_syn(&f->srv_rs, s->seq);
        } else if (s->wire_len == 0) {
            return false; /* a bare ACK or FIN starts nothing */
        } else if ((f->flags & FLOW_SRV_BASE) &&
                   (uint32_t)(s->seq - f->srv_base + REASM_WINDOW) <
                       2u * REASM_WINDOW) {
            reasm_init_mid(&f->srv_rs, f->srv_base);
        } else {
            reasm_init_mid(&f->srv_rs, s->seq);
        }
        f->flags |= FLOW_SRV_REASM;
    }
    if (s->wire_len == 0 && !fin) {
        return syn;
    }
    struct sink_ctx sc = {e, f};
    struct reasm_sink sink = {srv_sink_data, srv_sink_gap, &sc};
    reasm_push(&f->srv_rs, s->seq + (syn ? 1u : 0u), s->payload,
               s->payload_len, s->wire_len, fin, e->now,
               e->cfg.flow_queue_cap, &e->budget, &sink);
    return true;
}

static void outbound(struct engine *e, const struct tcp_segment *s,
                     const struct flow_key *key)
{
    e->stats.outbound++;
    struct flow *f = find(e, key);
    if (f == NULL || f->state == FLOW_CLOSED) {
        return;
    }
    f->server_bytes += s->wire_len;
    if ((s->flags & TCP_FLAG_SYN) && (s->flags & TCP_FLAG_ACK)) {
        if (!(f->flags & FLOW_SRV_BASE)) {
            f->srv_base = s->seq + 1;
            f->flags |= FLOW_SRV_BASE;
        }
    } else if (s->wire_len > 0 || (s->flags & TCP_FLAG_FIN)) {
        /* A FIN says where the server's bytes end: the client's ACK of
         * it is no byte heard, even from a server that sent none. */
        uint32_t end = s->seq + s->wire_len;
        bool fresh = !(f->flags & FLOW_SRV_SEEN) ||
                     (int32_t)(end - f->srv_next) > 0;
        if (fresh) {
            f->srv_next = end;
        }
        f->flags |= FLOW_SRV_SEEN;
        if (s->wire_len > 0 && fresh && e->ev.server_answer != NULL) {
            e->ev.server_answer(e->ev.ctx, f);
        }
        if (s->wire_len > 0 && (f->flags & FLOW_SYN) &&
            !(f->flags & FLOW_DATA)) {
            f->flags |= FLOW_SERVER_FIRST;
        }
    }
    if (s->flags & TCP_FLAG_RST) {
        touch(e, f);
        end_flow(e, f, FLOW_END_SERVER_RST);
        return;
    }
    if (s->flags & TCP_FLAG_FIN) {
        f->flags |= FLOW_SERVER_FIN;
    }
    touch(e, f);
    bool pushed = e->cfg.reasm_server && server_push(e, f, s);
    if (s->flags & TCP_FLAG_ACK) {
        reasm_ack(&f->rs, s->ack, e->now);
    }
    if (pushed || (s->flags & TCP_FLAG_ACK)) {
        settle(e, f);
    }
}

/* Which way a segment goes when no service port is set: a known flow
 * decides, then the SYN, then the higher (ephemeral) port is the
 * client. Returns 1 inbound, -1 outbound, 0 ignore. */
static int guess_direction(struct engine *e, const struct tcp_segment *s)
{
    struct flow_key k;
    key_from(&k, s, true);
    if (find(e, &k) != NULL) {
        return 1;
    }
    key_from(&k, s, false);
    if (find(e, &k) != NULL) {
        return -1;
    }
    if (s->flags & TCP_FLAG_SYN) {
        return (s->flags & TCP_FLAG_ACK) ? 0 : 1;
    }
    return s->sport >= s->dport ? 1 : -1;
}

enum decode_verdict engine_packet(struct engine *e, int linktype,
                                  uint64_t ts_ns, const uint8_t *pkt,
                                  uint32_t caplen, uint32_t wirelen)
{
    struct tcp_segment s;
    e->stats.packets++;
    if (ts_ns > e->now) {
        e->now = ts_ns;
    }
    enum decode_verdict v = decode_packet(linktype, pkt, caplen, wirelen, &s);
    e->stats.decode[v]++;
    if (v != DECODE_TCP) {
        return v;
    }
    int dir;
    if (e->cfg.port == 0) {
        dir = guess_direction(e, &s);
    } else if (s.dport == e->cfg.port &&
               is_client_hop(e, s.family, s.src, s.dst)) {
        dir = 1;
    } else if (s.sport == e->cfg.port &&
               is_client_hop(e, s.family, s.dst, s.src)) {
        dir = -1;
    } else {
        dir = 0;
    }
    if (dir == 0) {
        e->stats.other++;
        return v;
    }
    struct flow_key key;
    key_from(&key, &s, dir > 0);
    if (dir > 0) {
        inbound(e, &s, &key);
    } else {
        outbound(e, &s, &key);
    }
    return v;
}

enum decode_verdict engine_live_packet(struct engine *e, int linktype,
                                       uint64_t ts_ns, uint64_t wall_ns,
                                       uint64_t mono_ns, const uint8_t *pkt,
                                       uint32_t caplen, uint32_t wirelen)
{
    if (ts_ns > wall_ns && ts_ns - wall_ns > ENGINE_LIVE_AHEAD_NS) {
        ts_ns = wall_ns;
        e->stats.timestamps_clamped++;
    }
    uint64_t before = e->now;
    enum decode_verdict v =
        engine_packet(e, linktype, ts_ns, pkt, caplen, wirelen);
    if (e->now != before) {
        e->live_base_ns = e->now;
        e->live_base_mono_ns = mono_ns;
    }
    return v;
}

void engine_live_advance(struct engine *e, uint64_t mono_ns)
{
    /* From the last time a packet moved the clock, not from the last
     * packet: packets stamped in the past (a clock stepped back) must not
     * hold time still, and the ticks between packets must not count
     * twice. */
    if (e->live_base_mono_ns != 0 && mono_ns > e->live_base_mono_ns) {
        engine_advance(e, e->live_base_ns + (mono_ns - e->live_base_mono_ns));
    }
}

static void expire_list(struct engine *e, struct tm_list *l,
                        uint64_t timeout, enum flow_end_reason why)
{
    struct tm_list *n;
    while ((n = tm_list_first(l)) != NULL) {
        struct flow *f = TM_CONTAINER_OF(n, struct flow, link);
        if (e->now - f->last_ns < timeout) {
            break;
        }
        if (f->state == FLOW_CLOSED) {
            free_flow(e, f);
        } else {
            end_flow(e, f, why);
        }
    }
}

void engine_advance(struct engine *e, uint64_t now_ns)
{
    if (now_ns > e->now) {
        e->now = now_ns;
    }
    while (e->heap_len > 0 && e->heap[0]->due_ns <= e->now) {
        struct flow *f = e->heap[0];
        heap_remove(e, f);
        if (settle(e, f) && f->heap_idx != UINT32_MAX &&
            f->due_ns <= e->now) {
            heap_remove(e, f); /* no progress is possible: do not spin */
        }
    }
    if (e->cfg.idle_timeout_ns > 0) {
        expire_list(e, &e->quiet, e->cfg.idle_timeout_ns, FLOW_END_IDLE);
        expire_list(e, &e->open, e->cfg.idle_timeout_ns, FLOW_END_IDLE);
    }
    uint64_t closing = e->cfg.closing_timeout_ns;
    if (closing == 0 || (e->cfg.idle_timeout_ns > 0 &&
                         e->cfg.idle_timeout_ns < closing)) {
        closing = e->cfg.idle_timeout_ns;
    }
    if (closing > 0) {
        expire_list(e, &e->closing, closing, FLOW_END_IDLE);
    }
    expire_list(e, &e->closed, e->cfg.closed_keep_ns, FLOW_END_FIN);
}

static void finish_list(struct engine *e, struct tm_list *l)
{
    struct tm_list *n;
    while ((n = tm_list_first(l)) != NULL) {
        struct flow *f = TM_CONTAINER_OF(n, struct flow, link);
        /* A flow whose FIN is due once its holes are skipped completes;
         * the rest end with the input. */
        struct sink_ctx sc = {e, f};
        struct reasm_sink sink = {sink_data, sink_gap, &sc};
        reasm_skip_holes(&f->rs, e->now, NULL, &e->budget, &sink);
        end_flow(e, f,
                 reasm_done(&f->rs) ? FLOW_END_FIN : FLOW_END_INPUT);
    }
}

void engine_finish(struct engine *e)
{
    finish_list(e, &e->open);
    finish_list(e, &e->closing);
    finish_list(e, &e->quiet);
    free_list(e, &e->closed);
}

uint64_t engine_now(const struct engine *e)
{
    return e->now;
}

size_t engine_queued_bytes(const struct engine *e)
{
    return e->budget.used - e->flow_state;
}

size_t engine_flow_state_bytes(const struct engine *e)
{
    return e->flow_state;
}

const size_t *engine_queued_counter(const struct engine *e)
{
    return &e->budget.used;
}

const struct engine_stats *engine_stats(const struct engine *e)
{
    return &e->stats;
}
