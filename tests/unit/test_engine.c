/* Unit tests of engine.c: records in, flow events out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/decode.h"
#include "core/engine.h"
#include "pktbuild.h"

#define MS 1000000ULL
#define SEC 1000000000ULL
#define PORT 8080
#define MAX_IDS 64

/* ---- recorded events ---- */

struct ev {
    char kind; /* 'O' open, 'D' data, 'G' gap, 'E' end, 'S' server data */
    uint64_t id;
    uint32_t len;
    enum flow_end_reason why;
    uint64_t mark; /* data: server_acked */
};

struct rec {
    struct ev ev[1024];
    size_t n;
    uint8_t data[MAX_IDS][4096];
    size_t len[MAX_IDS];
    uint64_t gap[MAX_IDS];
    unsigned opens, ends;
    bool ended[MAX_IDS];
    uint8_t flags[MAX_IDS];   /* the flow's flags at its last data event */
    uint64_t sent[MAX_IDS];   /* engine_flow_server_sent() then */
    uint64_t end_acked[MAX_IDS]; /* the flow's server_acked at its end */
    /* reasm_server: the server's stream */
    uint8_t sdata[MAX_IDS][4096];
    size_t slen[MAX_IDS];
    uint64_t sgap[MAX_IDS];
    unsigned sgaps[MAX_IDS];
    bool sended[MAX_IDS];
};

static void add_ev(struct rec *r, char kind, const struct flow *f,
                   uint32_t len, enum flow_end_reason why)
{
    assert_true(r->n < sizeof(r->ev) / sizeof(r->ev[0]));
    assert_true(f->id > 0 && f->id < MAX_IDS);
    r->ev[r->n].kind = kind;
    r->ev[r->n].id = f->id;
    r->ev[r->n].len = len;
    r->ev[r->n].why = why;
    r->n++;
}

static void ev_open(void *ctx, struct flow *f)
{
    struct rec *r = ctx;
    add_ev(r, 'O', f, 0, FLOW_END_FIN);
    r->opens++;
    assert_null(f->user);
    f->user = r; /* the consumer's pointer: cleared by the engine at end */
}

static void ev_data(void *ctx, struct flow *f, const uint8_t *data,
                    uint32_t len, uint64_t server_acked)
{
    struct rec *r = ctx;
    add_ev(r, 'D', f, len, FLOW_END_FIN);
    r->ev[r->n - 1].mark = server_acked;
    r->flags[f->id] = f->flags;
    r->sent[f->id] = engine_flow_server_sent(f);
    assert_false(r->ended[f->id]);
    assert_ptr_equal(f->user, r);
    assert_true(r->len[f->id] + len <= sizeof(r->data[0]));
    memcpy(r->data[f->id] + r->len[f->id], data, len);
    r->len[f->id] += len;
}

static void ev_gap(void *ctx, struct flow *f, uint32_t len)
{
    struct rec *r = ctx;
    add_ev(r, 'G', f, len, FLOW_END_FIN);
    assert_false(r->ended[f->id]);
    r->gap[f->id] += len;
}

static void ev_end(void *ctx, struct flow *f, enum flow_end_reason why)
{
    struct rec *r = ctx;
    add_ev(r, 'E', f, 0, why);
    assert_false(r->ended[f->id]);
    r->end_acked[f->id] = f->server_acked;
    r->ended[f->id] = true;
    r->ends++;
}

static void ev_server_data(void *ctx, struct flow *f, const uint8_t *data,
                           uint32_t len)
{
    struct rec *r = ctx;
    add_ev(r, 'd', f, len, FLOW_END_FIN);
    assert_false(r->sended[f->id]);
    assert_false(r->ended[f->id]);
    assert_true(r->slen[f->id] + len <= sizeof(r->sdata[0]));
    memcpy(r->sdata[f->id] + r->slen[f->id], data, len);
    r->slen[f->id] += len;
}

static void ev_server_gap(void *ctx, struct flow *f, uint32_t len)
{
    struct rec *r = ctx;
    add_ev(r, 'g', f, len, FLOW_END_FIN);
    assert_false(r->sended[f->id]);
    r->sgap[f->id] += len;
    r->sgaps[f->id]++;
}

static void ev_server_end(void *ctx, struct flow *f)
{
    struct rec *r = ctx;
    add_ev(r, 'e', f, 0, FLOW_END_FIN);
    assert_false(r->sended[f->id]);
    assert_false(r->ended[f->id]); /* always before the flow's end */
    r->sended[f->id] = true;
}

/* ---- fixture ---- */

struct tfx {
    struct engine *e;
    struct rec *r;
};

static struct engine_config cfg_default(void)
{
    struct engine_config c;
    memset(&c, 0, sizeof(c));
    c.port = PORT;
    c.gap_timeout_ns = 100 * MS;
    c.rtx_timeout_ns = 1 * SEC;
    c.idle_timeout_ns = 60 * SEC;
    c.closing_timeout_ns = 10 * SEC;
    c.closed_keep_ns = 5 * SEC;
    c.flow_queue_cap = 1 << 20;
    c.queue_budget = 16 << 20;
    c.max_flows = 1000;
    c.hash_seed = 12345;
    return c;
}

static struct tfx tfx_new(const struct engine_config *c)
{
    struct tfx t;
    t.r = calloc(1, sizeof(*t.r));
    assert_non_null(t.r);
    struct engine_events ev = {
        .open = ev_open,
        .data = ev_data,
        .gap = ev_gap,
        .end = ev_end,
        .ctx = t.r,
        .server_data = ev_server_data,
        .server_gap = ev_server_gap,
        .server_end = ev_server_end,
    };
    t.e = engine_new(c, &ev);
    assert_non_null(t.e);
    return t;
}

static void tfx_free(struct tfx *t)
{
    engine_free(t->e);
    free(t->r);
}

static const struct engine_stats *st(const struct tfx *t)
{
    return engine_stats(t->e);
}

/* Sends a frame built from `p` whole. */
static enum decode_verdict send_pkt(struct tfx *t, uint64_t ts,
                                    const struct pb_pkt *p)
{
    uint8_t buf[4096];
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, p, NULL);
    return engine_packet(t->e, LINKTYPE_ETHERNET, ts, buf, (uint32_t)len,
                         (uint32_t)len);
}

/* Client 10.0.0.1:cport -> server 10.0.0.2:PORT. */
static void cli(struct tfx *t, uint64_t ts, uint16_t cport, uint32_t seq,
                uint32_t ack, uint8_t flags, const char *data)
{
    struct pb_pkt p = pb_tcp4(cport, PORT, seq, ack, flags, data,
                              data ? strlen(data) : 0);
    assert_int_equal(send_pkt(t, ts, &p), DECODE_TCP);
}

/* Server 10.0.0.2:PORT -> client 10.0.0.1:cport. */
static void srv(struct tfx *t, uint64_t ts, uint16_t cport, uint32_t seq,
                uint32_t ack, uint8_t flags, const char *data)
{
    struct pb_pkt p = pb_tcp4(PORT, cport, seq, ack, flags, data,
                              data ? strlen(data) : 0);
    pb_ip4(&p, 10, 0, 0, 2, 10, 0, 0, 1);
    assert_int_equal(send_pkt(t, ts, &p), DECODE_TCP);
}

#define SYN TCP_FLAG_SYN
#define ACK TCP_FLAG_ACK
#define FIN TCP_FLAG_FIN
#define RST TCP_FLAG_RST
#define PSH TCP_FLAG_PSH

static const uint32_t CISN = 1000, SISN = 5000;

/* SYN, SYN-ACK, ACK for client port `cport` at `ts`. */
static void handshake(struct tfx *t, uint64_t ts, uint16_t cport)
{
    cli(t, ts, cport, CISN, 0, SYN, NULL);
    srv(t, ts + 1, cport, SISN, CISN + 1, SYN | ACK, NULL);
    cli(t, ts + 2, cport, CISN + 1, SISN + 1, ACK, NULL);
}

static void assert_data(const struct tfx *t, uint64_t id, const char *want)
{
    size_t n = strlen(want);
    const struct rec *r = t->r;
    if (r->len[id] != n || memcmp(r->data[id], want, n) != 0) {
        fail_msg("flow %llu delivered \"%.*s\", want \"%s\"",
                 (unsigned long long)id, (int)r->len[id],
                 (const char *)r->data[id], want);
    }
}

/* The index of the n-th (0-based) event of `kind`, or -1. */
static long find_ev(const struct rec *r, char kind, unsigned nth)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->ev[i].kind == kind && nth-- == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* ---- tests ---- */

static void test_syn_opens_flow(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 1 * MS, 40000, CISN, 0, SYN, NULL);
    assert_int_equal(t.r->opens, 1);
    assert_int_equal(t.r->ev[0].kind, 'O');
    assert_int_equal(t.r->ev[0].id, 1);
    srv(&t, 2 * MS, 40000, SISN, CISN + 1, SYN | ACK, NULL);
    cli(&t, 3 * MS, 40000, CISN + 1, SISN + 1, ACK, NULL);
    cli(&t, 4 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "GET / ");
    cli(&t, 5 * MS, 40000, CISN + 7, SISN + 1, ACK | PSH, "HTTP/1.1\r\n");
    assert_data(&t, 1, "GET / HTTP/1.1\r\n");
    assert_int_equal(t.r->opens, 1);
    assert_int_equal(t.r->ends, 0);
    assert_int_equal(st(&t)->flows_seen, 1);
    assert_int_equal(st(&t)->flows_open, 1);
    assert_int_equal(st(&t)->inbound, 4);
    assert_int_equal(st(&t)->outbound, 1);
    assert_int_equal(st(&t)->packets, 5);
    assert_int_equal(st(&t)->decode[DECODE_TCP], 5);
    assert_int_equal(st(&t)->payload_bytes, 16);
    assert_int_equal(engine_now(t.e), 5 * MS);
    tfx_free(&t);
}

static void test_stray_segments_open_nothing(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 1 * MS, 40000, CISN, SISN, ACK, NULL);           /* pure ACK */
    cli(&t, 2 * MS, 40001, CISN, SISN, FIN | ACK, NULL);     /* bare FIN */
    cli(&t, 3 * MS, 40002, CISN, SISN, RST, NULL);           /* bare RST */
    cli(&t, 4 * MS, 40003, CISN, SISN, RST | ACK, NULL);
    cli(&t, 5 * MS, 40004, CISN, SISN, RST | ACK, "data");   /* RST+data */
    cli(&t, 6 * MS, 40005, CISN, 0, SYN | ACK, NULL);        /* SYN-ACK in */
    assert_int_equal(t.r->opens, 0);
    assert_int_equal(t.r->n, 0);
    assert_int_equal(st(&t)->stray, 6);
    assert_int_equal(st(&t)->flows_seen, 0);
    assert_int_equal(st(&t)->flows_open, 0);
    tfx_free(&t);
}

static void close_normally(struct tfx *t, uint64_t ts, uint16_t cport,
                           const char *data)
{
    uint32_t n = (uint32_t)strlen(data);
    handshake(t, ts, cport);
    cli(t, ts + 3, cport, CISN + 1, SISN + 1, ACK | PSH, data);
    srv(t, ts + 4, cport, SISN + 1, CISN + 1 + n, ACK, NULL);
    cli(t, ts + 5, cport, CISN + 1 + n, SISN + 1, FIN | ACK, NULL);
    srv(t, ts + 6, cport, SISN + 1, CISN + 2 + n, FIN | ACK, NULL);
    cli(t, ts + 7, cport, CISN + 2 + n, SISN + 2, ACK, NULL); /* last ACK */
}

static void test_fin_completes_flow(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 10, 40000, CISN + 1, SISN + 1, ACK | PSH, "bye");
    assert_int_equal(t.r->ends, 0);
    cli(&t, 11, 40000, CISN + 4, SISN + 1, FIN | ACK, NULL);
    assert_int_equal(t.r->ends, 1);
    long i = find_ev(t.r, 'E', 0);
    assert_true(i >= 0);
    assert_int_equal(t.r->ev[i].why, FLOW_END_FIN);
    assert_int_equal(st(&t)->flows_completed, 1);
    assert_int_equal(st(&t)->flows_open, 0);
    assert_data(&t, 1, "bye");
    tfx_free(&t);
}

static void test_last_ack_after_fin_opens_nothing(void **state)
{
    (void)state;
    for (int keep = 0; keep < 2; keep++) {
        struct engine_config c = cfg_default();
        c.closed_keep_ns = keep ? 5 * SEC : 0;
        struct tfx t = tfx_new(&c);
        close_normally(&t, 1 * MS, 40000, "request");
        assert_int_equal(t.r->opens, 1);
        assert_int_equal(t.r->ends, 1);
        assert_int_equal(t.r->ev[find_ev(t.r, 'E', 0)].why, FLOW_END_FIN);
        assert_data(&t, 1, "request");
        /* A retransmitted last ACK and FIN later on: still nothing. */
        cli(&t, 2 * MS, 40000, CISN + 9, SISN + 2, ACK, NULL);
        cli(&t, 3 * MS, 40000, CISN + 8, SISN + 2, FIN | ACK, NULL);
        assert_int_equal(t.r->opens, 1);
        assert_int_equal(st(&t)->flows_seen, 1);
        assert_int_equal(st(&t)->flows_open, 0);
        tfx_free(&t);
    }
}

static void test_late_data_of_finished_flow(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    close_normally(&t, 0, 40000, "abc");
    /* A retransmission of data after the end: remembered tuple, late. */
    cli(&t, 1 * SEC, 40000, CISN + 1, SISN + 2, ACK | PSH, "abc");
    assert_int_equal(t.r->opens, 1);
    assert_true(st(&t)->late >= 1);
    tfx_free(&t);
}

static void test_other_ports_ignored(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    struct pb_pkt p = pb_tcp4(40000, 9999, 1, 0, SYN, NULL, 0);
    send_pkt(&t, 1, &p);
    p = pb_tcp4(40000, 9999, 2, 0, ACK, "data", 4);
    send_pkt(&t, 2, &p);
    p = pb_tcp4(9999, 40000, 2, 0, ACK, "data", 4);
    send_pkt(&t, 3, &p);
    assert_int_equal(t.r->n, 0);
    assert_int_equal(st(&t)->other, 3);
    assert_int_equal(st(&t)->inbound, 0);
    assert_int_equal(st(&t)->outbound, 0);
    /* Not TCP at all. */
    p = pb_tcp4(40000, PORT, 1, 0, 0, "udp!", 4);
    p.proto = PB_PROTO_UDP;
    assert_int_equal(send_pkt(&t, 4, &p), DECODE_NOT_TCP);
    assert_int_equal(st(&t)->decode[DECODE_NOT_TCP], 1);
    assert_int_equal(t.r->n, 0);
    tfx_free(&t);
}

static void test_outbound_never_data(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    srv(&t, 10, 40000, SISN + 1, CISN + 1, ACK | PSH, "220 welcome\r\n");
    srv(&t, 11, 40000, SISN + 14, CISN + 1, ACK | PSH, "more");
    assert_int_equal(find_ev(t.r, 'D', 0), -1);
    assert_int_equal(st(&t)->payload_bytes, 0);
    cli(&t, 12, 40000, CISN + 1, SISN + 18, ACK | PSH, "HELO");
    assert_data(&t, 1, "HELO");
    /* Server data of an unknown flow opens nothing either. */
    srv(&t, 13, 40001, SISN + 1, CISN + 1, ACK | PSH, "hello?");
    assert_int_equal(t.r->opens, 1);
    tfx_free(&t);
}

static void test_mid_stream_flow(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 1, 40000, 777777, 5, ACK | PSH, "middle ");
    assert_int_equal(t.r->opens, 1);
    cli(&t, 2, 40000, 777784, 5, ACK | PSH, "of it");
    /* Older bytes from before the join are not delivered. */
    cli(&t, 3, 40000, 777770, 5, ACK | PSH, "before!");
    assert_data(&t, 1, "middle of it");
    assert_int_equal(t.r->opens, 1);
    tfx_free(&t);
}

static void test_new_syn_replaces_open_flow(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 10, 40000, CISN + 1, SISN + 1, ACK | PSH, "old");
    /* Queued beyond a hole: delivered when the flow is replaced. */
    cli(&t, 11, 40000, CISN + 10, SISN + 1, ACK | PSH, "tail");
    cli(&t, 20, 40000, 90000, 0, SYN, NULL);
    assert_int_equal(t.r->opens, 2);
    assert_int_equal(t.r->ends, 1);
    long e = find_ev(t.r, 'E', 0);
    long o2 = find_ev(t.r, 'O', 1);
    assert_true(e >= 0 && o2 > e); /* the old one ends first */
    assert_int_equal(t.r->ev[e].id, 1);
    assert_int_equal(t.r->ev[e].why, FLOW_END_NEW_SYN);
    assert_int_equal(t.r->ev[o2].id, 2);
    assert_data(&t, 1, "oldtail");
    assert_int_equal(t.r->gap[1], 6);
    assert_int_equal(st(&t)->flows_replaced, 1);
    cli(&t, 21, 40000, 90001, 0, ACK | PSH, "new");
    assert_data(&t, 2, "new");
    assert_int_equal(st(&t)->flows_open, 1);
    tfx_free(&t);
}

static void test_new_syn_after_completed_flow(void **state)
{
    (void)state;
    for (int keep = 0; keep < 2; keep++) {
        struct engine_config c = cfg_default();
        c.closed_keep_ns = keep ? 5 * SEC : 0;
        struct tfx t = tfx_new(&c);
        close_normally(&t, 0, 40000, "first");
        assert_int_equal(t.r->ends, 1);
        cli(&t, 1 * MS, 40000, 424242, 0, SYN, NULL);
        assert_int_equal(t.r->opens, 2);
        assert_int_equal(t.r->ends, 1); /* no second end for the old one */
        assert_int_equal(st(&t)->flows_replaced, 0);
        cli(&t, 2 * MS, 40000, 424243, 0, ACK | PSH, "second");
        assert_data(&t, 2, "second");
        assert_data(&t, 1, "first");
        tfx_free(&t);
    }
}

static void test_syn_retransmission(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 0, 40000, CISN, 0, SYN, NULL);
    cli(&t, 1 * SEC, 40000, CISN, 0, SYN, NULL);
    cli(&t, 3 * SEC, 40000, CISN, 0, SYN, NULL);
    assert_int_equal(t.r->opens, 1);
    assert_int_equal(t.r->ends, 0);
    cli(&t, 3 * SEC + 1, 40000, CISN + 1, 0, ACK, "x");
    assert_data(&t, 1, "x");
    /* After the flow completed, the same SYN again is late, not new. */
    cli(&t, 3 * SEC + 2, 40000, CISN + 2, 0, FIN | ACK, NULL);
    assert_int_equal(t.r->ends, 1);
    cli(&t, 3 * SEC + 3, 40000, CISN, 0, SYN, NULL);
    assert_int_equal(t.r->opens, 1);
    tfx_free(&t);
}

static void test_tfo_data_in_syn(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 1, 40000, CISN, 0, SYN, "GET /fast");
    assert_int_equal(t.r->opens, 1);
    assert_data(&t, 1, "GET /fast");
    srv(&t, 2, 40000, SISN, CISN + 10, SYN | ACK, NULL);
    cli(&t, 3, 40000, CISN + 10, SISN + 1, ACK | PSH, " HTTP/1.1");
    assert_data(&t, 1, "GET /fast HTTP/1.1");
    tfx_free(&t);
}

static void test_client_rst(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 10, 40000, CISN + 1, SISN + 1, ACK | PSH, "abc");
    cli(&t, 11, 40000, CISN + 10, SISN + 1, ACK | PSH, "xyz"); /* queued */
    assert_true(engine_queued_bytes(t.e) > 0);
    cli(&t, 12, 40000, CISN + 13, SISN + 1, RST | ACK, NULL);
    assert_int_equal(t.r->ends, 1);
    assert_int_equal(t.r->ev[find_ev(t.r, 'E', 0)].why, FLOW_END_RST);
    assert_data(&t, 1, "abc");
    assert_int_equal(t.r->gap[1], 0);
    assert_int_equal(st(&t)->discarded_bytes, 3);
    assert_int_equal(st(&t)->flows_reset, 1);
    assert_int_equal(st(&t)->flows_open, 0);
    assert_int_equal(engine_queued_bytes(t.e), 0);
    /* The reset flow's tuple is remembered: only its state is held. */
    assert_int_equal(*engine_queued_counter(t.e), ENGINE_FLOW_COST);
    assert_int_equal(engine_flow_state_bytes(t.e), ENGINE_FLOW_COST);
    /* Later segments of the reset flow open nothing. */
    cli(&t, 13, 40000, CISN + 13, SISN + 1, ACK, NULL);
    assert_int_equal(t.r->opens, 1);
    tfx_free(&t);
}

static void test_server_rst(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 10, 40000, CISN + 1, SISN + 1, ACK | PSH, "abc");
    srv(&t, 11, 40000, SISN + 1, CISN + 4, RST | ACK, NULL);
    assert_int_equal(t.r->ends, 1);
    assert_int_equal(t.r->ev[find_ev(t.r, 'E', 0)].why, FLOW_END_SERVER_RST);
    assert_int_equal(st(&t)->flows_reset, 1);
    assert_int_equal(st(&t)->flows_open, 0);
    assert_data(&t, 1, "abc");
    tfx_free(&t);
}

static void test_gap_timeout_capture_time(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    /* Client side only: no acknowledgements captured. */
    cli(&t, 0, 40000, CISN, 0, SYN, NULL);
    cli(&t, 1 * MS, 40000, CISN + 1, 0, ACK, "0123456789");
    /* CISN + 11 .. + 20 lost */
    cli(&t, 2 * MS, 40000, CISN + 21, 0, ACK, "ABCDEFGHIJ");
    cli(&t, 3 * MS, 40000, CISN + 31, 0, ACK, "KLMNOPQRST");
    assert_data(&t, 1, "0123456789");
    assert_true(engine_queued_bytes(t.e) > 0);
    engine_advance(t.e, 2 * MS + c.gap_timeout_ns - 1);
    assert_data(&t, 1, "0123456789");
    assert_int_equal(st(&t)->gaps, 0);
    engine_advance(t.e, 2 * MS + c.gap_timeout_ns);
    assert_data(&t, 1, "0123456789ABCDEFGHIJKLMNOPQRST");
    assert_int_equal(st(&t)->gaps, 1);
    assert_int_equal(st(&t)->gap_bytes, 10);
    assert_int_equal(t.r->gap[1], 10);
    assert_int_equal(engine_queued_bytes(t.e), 0);
    /* The gap event came between the two data runs. */
    long g = find_ev(t.r, 'G', 0);
    assert_int_equal(t.r->ev[g - 1].kind, 'D');
    assert_int_equal(t.r->ev[g + 1].kind, 'D');
    assert_int_equal(t.r->ends, 0);
    tfx_free(&t);
}

static void test_gap_skipped_by_later_packet_time(void **state)
{
    (void)state;
    /* Capture time moves with packets, too: after a packet of another
     * flow past the deadline, engine_advance(engine_now()) (what callers
     * do after each packet) skips the hole. */
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 0, 40000, CISN, 0, SYN, NULL);
    cli(&t, 1 * MS, 40000, CISN + 11, 0, ACK, "later");
    assert_int_equal(st(&t)->gaps, 0);
    cli(&t, 1 * MS + c.gap_timeout_ns, 40001, 1, 0, SYN, NULL);
    engine_advance(t.e, 0); /* time does not go back */
    assert_int_equal(engine_now(t.e), 1 * MS + c.gap_timeout_ns);
    assert_int_equal(st(&t)->gaps, 1);
    assert_data(&t, 1, "later");
    tfx_free(&t);
}

static void test_server_ack_covers_lost_segment(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 1 * MS, 40000, CISN + 1, SISN + 1, ACK, "0123456789");
    /* CISN + 11 .. + 20 never captured, but the server got it. */
    srv(&t, 5 * MS, 40000, SISN + 1, CISN + 21, ACK, NULL);
    engine_advance(t.e, 5 * MS + c.gap_timeout_ns - 1);
    assert_int_equal(st(&t)->gaps, 0);
    engine_advance(t.e, 5 * MS + c.gap_timeout_ns);
    assert_int_equal(st(&t)->gaps, 1);
    assert_int_equal(st(&t)->gap_bytes, 10);
    /* The stream continues after the skipped bytes. */
    cli(&t, 200 * MS, 40000, CISN + 21, SISN + 1, ACK, "next");
    assert_data(&t, 1, "0123456789next");
    tfx_free(&t);
}

static void test_server_waiting_gets_rtx_timeout(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 1 * MS, 40000, CISN + 1, SISN + 1, ACK, "0123456789");
    srv(&t, 1 * MS + 500, 40000, SISN + 1, CISN + 11, ACK, NULL);
    /* Lost on the network: the server has not acknowledged it. */
    cli(&t, 2 * MS, 40000, CISN + 21, SISN + 1, ACK, "ABCDEFGHIJ");
    srv(&t, 2 * MS + 500, 40000, SISN + 1, CISN + 11, ACK, NULL); /* dup */
    engine_advance(t.e, 2 * MS + c.gap_timeout_ns);
    assert_int_equal(st(&t)->gaps, 0);
    engine_advance(t.e, 2 * MS + c.rtx_timeout_ns - 1);
    assert_int_equal(st(&t)->gaps, 0);
    engine_advance(t.e, 2 * MS + c.rtx_timeout_ns);
    assert_int_equal(st(&t)->gaps, 1);
    assert_data(&t, 1, "0123456789ABCDEFGHIJ");
    tfx_free(&t);

    /* The retransmission arrives in time: no gap at all. */
    t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 1 * MS, 40000, CISN + 1, SISN + 1, ACK, "0123456789");
    srv(&t, 1 * MS + 500, 40000, SISN + 1, CISN + 11, ACK, NULL);
    cli(&t, 2 * MS, 40000, CISN + 21, SISN + 1, ACK, "ABCDEFGHIJ");
    engine_advance(t.e, 300 * MS);
    cli(&t, 400 * MS, 40000, CISN + 11, SISN + 1, ACK, "abcdefghij");
    assert_data(&t, 1, "0123456789abcdefghijABCDEFGHIJ");
    engine_advance(t.e, 10 * SEC);
    assert_int_equal(st(&t)->gaps, 0);
    tfx_free(&t);
}

/* A live packet: stamped `ts`, read when the wall clock says `wall` and
 * the monotonic clock `mono`. */
static void live_cli(struct tfx *t, uint64_t ts, uint64_t wall,
                     uint64_t mono, uint16_t cport, uint32_t seq,
                     uint8_t flags, const char *data)
{
    struct pb_pkt p = pb_tcp4(cport, PORT, seq, 0, flags, data,
                              data ? strlen(data) : 0);
    uint8_t buf[4096];
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(engine_live_packet(t->e, LINKTYPE_ETHERNET, ts, wall,
                                        mono, buf, (uint32_t)len,
                                        (uint32_t)len),
                     DECODE_TCP);
}

/* This machine's clock when the tests' live sources start. */
#define WALL0 (1700000000ull * SEC)
#define MONO0 (5 * SEC)

static void test_live_future_stamp_is_clamped(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    live_cli(&t, WALL0, WALL0, MONO0, 40000, CISN, SYN, NULL);
    live_cli(&t, WALL0 + 1 * MS, WALL0 + 1 * MS, MONO0 + 1 * MS, 40000,
             CISN + 1, ACK, "0123456789");
    /* CISN + 11 .. + 20 lost */
    live_cli(&t, WALL0 + 2 * MS, WALL0 + 2 * MS, MONO0 + 2 * MS, 40000,
             CISN + 21, ACK, "ABCDEFGHIJ");
    /* A record stamped a year ahead: taken at the wall clock's time. */
    live_cli(&t, WALL0 + 365 * 86400 * SEC, WALL0 + 3 * MS, MONO0 + 3 * MS,
             40001, 1, SYN, NULL);
    assert_int_equal(st(&t)->timestamps_clamped, 1);
    assert_int_equal(engine_now(t.e), WALL0 + 3 * MS);
    engine_advance(t.e, engine_now(t.e));
    /* Nothing fell due: the first flow is open, its hole waits. */
    assert_int_equal(t.r->ends, 0);
    assert_int_equal(st(&t)->gaps, 0);
    /* Stamps up to ENGINE_LIVE_AHEAD_NS ahead are the source's clock. */
    live_cli(&t, WALL0 + 4 * MS + ENGINE_LIVE_AHEAD_NS, WALL0 + 4 * MS,
             MONO0 + 4 * MS, 40001, 2, ACK, "x");
    assert_int_equal(st(&t)->timestamps_clamped, 1);
    assert_int_equal(engine_now(t.e), WALL0 + 4 * MS + ENGINE_LIVE_AHEAD_NS);
    tfx_free(&t);

    /* With the wall clock: the hole is skipped gap_timeout after it
     * appeared, the flow ends idle_timeout after its last packet. */
    t = tfx_new(&c);
    live_cli(&t, WALL0, WALL0, MONO0, 40000, CISN, SYN, NULL);
    live_cli(&t, WALL0 + 2 * MS, WALL0 + 2 * MS, MONO0 + 2 * MS, 40000,
             CISN + 21, ACK, "ABCDEFGHIJ");
    live_cli(&t, UINT64_MAX, WALL0 + 3 * MS, MONO0 + 3 * MS, 40001, 1, SYN,
             NULL);
    assert_int_equal(st(&t)->timestamps_clamped, 1);
    engine_live_advance(t.e, MONO0 + 2 * MS + c.gap_timeout_ns - 1);
    assert_int_equal(st(&t)->gaps, 0);
    engine_live_advance(t.e, MONO0 + 2 * MS + c.gap_timeout_ns);
    assert_int_equal(st(&t)->gaps, 1);
    assert_data(&t, 1, "ABCDEFGHIJ");
    engine_live_advance(t.e, MONO0 + 2 * MS + c.idle_timeout_ns - 1);
    assert_int_equal(t.r->ends, 0);
    engine_live_advance(t.e, MONO0 + 3 * MS + c.idle_timeout_ns);
    assert_int_equal(t.r->ends, 2);
    assert_int_equal(st(&t)->flows_expired, 2);
    tfx_free(&t);
}

static void test_live_clock_runs_after_a_backward_step(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    live_cli(&t, WALL0, WALL0, MONO0, 40000, CISN, SYN, NULL);
    live_cli(&t, WALL0 + 2 * MS, WALL0 + 2 * MS, MONO0 + 2 * MS, 40000,
             CISN + 21, ACK, "ABCDEFGHIJ");
    /* The source's clock is stepped back an hour; packets keep coming,
     * every 10 ms, and do not hold the clock still. */
    uint64_t back = 3600 * SEC;
    for (uint64_t i = 1; i <= 9; i++) {
        uint64_t m = 2 * MS + i * 10 * MS;
        live_cli(&t, WALL0 + m - back, WALL0 + m, MONO0 + m, 40001,
                 (uint32_t)i, i == 1 ? SYN : ACK, NULL);
        engine_live_advance(t.e, MONO0 + m + 5 * MS);
    }
    assert_int_equal(st(&t)->timestamps_clamped, 0);
    assert_int_equal(st(&t)->gaps, 0);
    engine_live_advance(t.e, MONO0 + 2 * MS + c.gap_timeout_ns - 1);
    assert_int_equal(st(&t)->gaps, 0);
    engine_live_advance(t.e, MONO0 + 2 * MS + c.gap_timeout_ns);
    assert_int_equal(st(&t)->gaps, 1);
    assert_data(&t, 1, "ABCDEFGHIJ");
    /* Both flows' last segments count at the clock's time then. */
    engine_live_advance(t.e, MONO0 + 92 * MS + c.idle_timeout_ns);
    assert_int_equal(t.r->ends, 2);
    tfx_free(&t);
}

/* Before any packet moved it, the wall clock moves nothing. */
static void test_live_advance_waits_for_a_packet(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    engine_live_advance(t.e, MONO0 + 10 * SEC);
    assert_int_equal(engine_now(t.e), 0);
    live_cli(&t, WALL0, WALL0, MONO0 + 10 * SEC, 40000, CISN, SYN, NULL);
    engine_live_advance(t.e, MONO0 + 10 * SEC - 1); /* never back */
    assert_int_equal(engine_now(t.e), WALL0);
    engine_live_advance(t.e, MONO0 + 11 * SEC);
    assert_int_equal(engine_now(t.e), WALL0 + 1 * SEC);
    tfx_free(&t);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 1 * SEC, 40000, CISN + 1, SISN + 1, ACK, "hi");
    engine_advance(t.e, 1 * SEC + c.idle_timeout_ns - 1);
    assert_int_equal(t.r->ends, 0);
    engine_advance(t.e, 1 * SEC + c.idle_timeout_ns);
    assert_int_equal(t.r->ends, 1);
    assert_int_equal(t.r->ev[find_ev(t.r, 'E', 0)].why, FLOW_END_IDLE);
    assert_int_equal(st(&t)->flows_expired, 1);
    assert_int_equal(st(&t)->flows_open, 0);
    /* The tuple is forgotten: later data opens a new flow. */
    cli(&t, 70 * SEC, 40000, CISN + 3, SISN + 1, ACK, "again");
    assert_int_equal(t.r->opens, 2);
    assert_data(&t, 2, "again");
    tfx_free(&t);
}

static void test_idle_timeout_by_server_segments(void **state)
{
    (void)state;
    /* Server segments count as activity too. */
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    srv(&t, 50 * SEC, 40000, SISN + 1, CISN + 1, ACK, "keepalive");
    engine_advance(t.e, 61 * SEC);
    assert_int_equal(t.r->ends, 0);
    engine_advance(t.e, 110 * SEC);
    assert_int_equal(t.r->ends, 1);
    tfx_free(&t);
}

static void test_finish_ends_open_flows(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 10, 40000, CISN + 1, SISN + 1, ACK, "head");
    cli(&t, 11, 40000, CISN + 10, SISN + 1, ACK, "queued");
    /* A second flow whose FIN lies beyond a hole. */
    handshake(&t, 20, 40001);
    cli(&t, 30, 40001, CISN + 1, SISN + 1, ACK, "a");
    cli(&t, 31, 40001, CISN + 5, SISN + 1, FIN | ACK, "e");
    /* A third, clean and open. */
    handshake(&t, 40, 40002);
    assert_int_equal(t.r->ends, 0);
    engine_finish(t.e);
    assert_int_equal(t.r->ends, 3);
    assert_data(&t, 1, "headqueued");
    assert_int_equal(t.r->gap[1], 5);
    assert_data(&t, 2, "ae");
    assert_int_equal(t.r->gap[2], 3);
    enum flow_end_reason why[4] = {0};
    for (size_t i = 0; i < t.r->n; i++) {
        if (t.r->ev[i].kind == 'E') {
            why[t.r->ev[i].id] = t.r->ev[i].why;
        }
    }
    assert_int_equal(why[1], FLOW_END_INPUT);
    assert_int_equal(why[2], FLOW_END_FIN);
    assert_int_equal(why[3], FLOW_END_INPUT);
    /* The gap and the data came before the end. */
    long g = find_ev(t.r, 'G', 0);
    long e = find_ev(t.r, 'E', 0);
    assert_true(g >= 0 && g < e);
    assert_int_equal(st(&t)->flows_unfinished, 2);
    assert_int_equal(st(&t)->flows_completed, 1);
    assert_int_equal(st(&t)->flows_open, 0);
    assert_int_equal(engine_queued_bytes(t.e), 0);
    tfx_free(&t);
}

static void test_max_flows_eviction(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    c.max_flows = 2;
    struct tfx t = tfx_new(&c);
    cli(&t, 1, 40000, 100, 0, SYN, NULL);
    cli(&t, 2, 40001, 200, 0, SYN, NULL);
    cli(&t, 3, 40000, 101, 0, ACK, "one"); /* 40000 is now most recent */
    assert_int_equal(t.r->ends, 0);
    cli(&t, 4, 40002, 300, 0, SYN, NULL);
    assert_int_equal(t.r->opens, 3);
    assert_int_equal(t.r->ends, 1);
    long e = find_ev(t.r, 'E', 0);
    assert_int_equal(t.r->ev[e].id, 2); /* the longest idle */
    assert_int_equal(t.r->ev[e].why, FLOW_END_EVICTED);
    assert_int_equal(st(&t)->flows_evicted, 1);
    assert_int_equal(st(&t)->flows_open, 2);
    /* The surviving flows still work. */
    cli(&t, 5, 40000, 104, 0, ACK, "two");
    assert_data(&t, 1, "onetwo");
    cli(&t, 6, 40002, 301, 0, ACK, "three");
    assert_data(&t, 3, "three");
    tfx_free(&t);
}

static void test_max_flows_prefers_finished(void **state)
{
    (void)state;
    /* A remembered (finished) tuple makes room before any open flow. */
    struct engine_config c = cfg_default();
    c.max_flows = 2;
    struct tfx t = tfx_new(&c);
    cli(&t, 1, 40000, 100, 0, SYN, NULL);
    cli(&t, 2, 40001, 200, 0, SYN, NULL);
    cli(&t, 3, 40001, 201, 0, FIN | ACK, "x");
    assert_int_equal(t.r->ends, 1);
    cli(&t, 4, 40002, 300, 0, SYN, NULL);
    assert_int_equal(t.r->ends, 1);
    assert_int_equal(st(&t)->flows_evicted, 0);
    tfx_free(&t);
}

static void test_service_addrs(void **state)
{
    (void)state;
    struct service_addr sa;
    memset(&sa, 0, sizeof(sa));
    sa.family = 4;
    sa.addr[0] = 10;
    sa.addr[3] = 2;
    struct engine_config c = cfg_default();
    c.service_addrs = &sa;
    c.n_service_addrs = 1;
    struct tfx t = tfx_new(&c);
    memset(&sa, 0xff, sizeof(sa)); /* the engine keeps its own copy */
    /* To 10.0.0.3:8080: the service's own outbound connection. */
    struct pb_pkt p = pb_tcp4(40000, PORT, 1, 0, SYN, NULL, 0);
    pb_ip4(&p, 10, 0, 0, 1, 10, 0, 0, 3);
    send_pkt(&t, 1, &p);
    p = pb_tcp4(40000, PORT, 2, 0, ACK, "nope", 4);
    pb_ip4(&p, 10, 0, 0, 1, 10, 0, 0, 3);
    send_pkt(&t, 2, &p);
    assert_int_equal(t.r->opens, 0);
    assert_int_equal(st(&t)->other, 2);
    /* To 10.0.0.2:8080: inbound. */
    cli(&t, 3, 40000, 10, 0, SYN, NULL);
    cli(&t, 4, 40000, 11, 0, ACK, "yes");
    assert_int_equal(t.r->opens, 1);
    assert_data(&t, 1, "yes");
    /* IPv6 to an address not listed. */
    struct pb_pkt q = pb_tcp4(40000, PORT, 1, 0, SYN, NULL, 0);
    pb_ip6(&q, 1, 2);
    send_pkt(&t, 5, &q);
    assert_int_equal(t.r->opens, 1);
    tfx_free(&t);
}

/* One segment from a.b.c.d:sport to e.f.g.h:dport (IPv4). */
static void seg4(struct tfx *t, uint64_t ts, const uint8_t src[4],
                 uint16_t sport, const uint8_t dst[4], uint16_t dport,
                 uint32_t seq, uint8_t flags, const char *data)
{
    struct pb_pkt p = pb_tcp4(sport, dport, seq, 0, flags, data,
                              data ? strlen(data) : 0);
    pb_ip4(&p, src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2],
           dst[3]);
    send_pkt(t, ts, &p);
}

/* A connection with one payload: SYN, then the data. */
static void conn4(struct tfx *t, uint64_t ts, const uint8_t src[4],
                  uint16_t sport, const uint8_t dst[4], const char *data)
{
    seg4(t, ts, src, sport, dst, PORT, 100, SYN, NULL);
    seg4(t, ts + 1, src, sport, dst, PORT, 101, ACK, data);
}

static void test_sidecar_hop(void **state)
{
    (void)state;
    static const uint8_t pod[4] = {10, 0, 0, 2}, peer[4] = {10, 0, 0, 1},
                         istio[4] = {127, 0, 0, 6},
                         local[4] = {127, 0, 0, 1};
    struct service_addr sa;
    memset(&sa, 0, sizeof(sa));
    sa.family = 4;
    memcpy(sa.addr, pod, 4);
    struct engine_config c = cfg_default();
    c.skip_loopback_clients = true;
    c.service_addrs = &sa;
    c.n_service_addrs = 1;

    /* No mesh: the peer is the client, the loopback hop a proxy's. */
    struct tfx t = tfx_new(&c);
    conn4(&t, 1, peer, 40000, pod, "peer");
    conn4(&t, 3, istio, 40001, pod, "hop");
    conn4(&t, 5, local, 40002, local, "local");
    assert_int_equal(t.r->opens, 1);
    assert_data(&t, 1, "peer");
    tfx_free(&t);

    /* Behind a sidecar: the other way round. */
    sa.sidecar_hop = true;
    t = tfx_new(&c);
    conn4(&t, 1, peer, 40000, pod, "\x16\x03\x01");   /* the mesh's TLS */
    conn4(&t, 3, istio, 40001, pod, "istio");         /* Istio's hop */
    conn4(&t, 5, pod, 40002, pod, "linkerd");         /* Linkerd's */
    conn4(&t, 7, local, 40003, local, "loopback");    /* older Istio's */
    conn4(&t, 9, peer, 40004, local, "odd");          /* not a hop */
    assert_int_equal(t.r->opens, 3);
    assert_data(&t, 1, "istio");
    assert_data(&t, 2, "linkerd");
    assert_data(&t, 3, "loopback");
    /* The application's answer to the hop is the server's side. */
    uint64_t out = st(&t)->outbound;
    seg4(&t, 11, pod, PORT, istio, 40001, 500, ACK, "answer");
    assert_int_equal(st(&t)->outbound, out + 1);
    seg4(&t, 12, pod, PORT, peer, 40000, 500, ACK, "cipher");
    assert_int_equal(st(&t)->outbound, out + 1);
    tfx_free(&t);
}

static void test_ipv6_flow(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    struct pb_pkt p = pb_tcp4(40000, PORT, 50, 0, SYN, NULL, 0);
    pb_ip6(&p, 1, 2);
    send_pkt(&t, 1, &p);
    p.seq = 51;
    p.flags = ACK;
    p.payload = (const uint8_t *)"v6 data";
    p.len = 7;
    send_pkt(&t, 2, &p);
    assert_int_equal(t.r->opens, 1);
    assert_data(&t, 1, "v6 data");
    /* The same ports over IPv4 are another flow. */
    cli(&t, 3, 40000, 51, 0, ACK, "v4");
    assert_int_equal(t.r->opens, 2);
    assert_data(&t, 2, "v4");
    tfx_free(&t);
}

static void test_guess_mode(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    c.port = 0;
    struct tfx t = tfx_new(&c);
    /* The client uses a low port (80) to reach a high one (50000): the
     * SYN says who the client is. */
    struct pb_pkt p = pb_tcp4(80, 50000, 700, 0, SYN, NULL, 0);
    send_pkt(&t, 1, &p);
    struct pb_pkt sa = pb_tcp4(50000, 80, 9000, 701, SYN | ACK, NULL, 0);
    pb_ip4(&sa, 10, 0, 0, 2, 10, 0, 0, 1);
    send_pkt(&t, 2, &sa);
    assert_int_equal(t.r->opens, 1);
    p.seq = 701;
    p.flags = ACK;
    p.payload = (const uint8_t *)"from client";
    p.len = 11;
    send_pkt(&t, 3, &p);
    sa.seq = 9001;
    sa.flags = ACK;
    sa.payload = (const uint8_t *)"from server";
    sa.len = 11;
    send_pkt(&t, 4, &sa);
    assert_data(&t, 1, "from client");
    assert_int_equal(t.r->opens, 1);
    assert_int_equal(st(&t)->outbound, 2);

    /* With no SYN seen, the higher port is the client. */
    struct pb_pkt m = pb_tcp4(1234, 45678, 1, 0, ACK, "low to high", 11);
    pb_ip4(&m, 10, 0, 0, 7, 10, 0, 0, 8);
    send_pkt(&t, 5, &m);
    assert_int_equal(t.r->opens, 1);
    struct pb_pkt h = pb_tcp4(45678, 1234, 1, 0, ACK, "high to low", 11);
    pb_ip4(&h, 10, 0, 0, 8, 10, 0, 0, 7);
    send_pkt(&t, 6, &h);
    assert_int_equal(t.r->opens, 2);
    assert_data(&t, 2, "high to low");
    tfx_free(&t);
}

static void test_payload_bytes_counted_once(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 1, 40000, 0, 0, SYN, NULL);
    cli(&t, 2, 40000, 1, 0, ACK, "0123456789");
    cli(&t, 3, 40000, 1, 0, ACK, "0123456789");      /* duplicate */
    cli(&t, 4, 40000, 6, 0, ACK, "56789abcde");      /* overlap */
    cli(&t, 5, 40000, 21, 0, ACK, "klmno");          /* queued */
    cli(&t, 6, 40000, 21, 0, ACK, "klmno");          /* queued twice */
    cli(&t, 7, 40000, 16, 0, ACK, "fghijklmnopq");   /* fills, overlaps */
    assert_data(&t, 1, "0123456789abcdefghijklmnopq");
    assert_int_equal(st(&t)->payload_bytes, 27);
    /* Per flow too: find it through an event. */
    cli(&t, 8, 40000, 28, 0, FIN | ACK, NULL);
    assert_int_equal(t.r->ends, 1);
    assert_int_equal(st(&t)->payload_bytes, 27);
    assert_int_equal(st(&t)->inbound, 8);
    tfx_free(&t);
}

/* The flow's own counters, seen from the end callback. */
struct flow_counts {
    uint64_t payload, gap_bytes, server;
    uint32_t gaps;
};

static void count_end(void *ctx, struct flow *f, enum flow_end_reason why)
{
    (void)why;
    struct flow_counts *fc = ctx;
    fc->payload = f->payload_bytes;
    fc->gap_bytes = f->gap_bytes;
    fc->gaps = f->gaps;
    fc->server = f->server_bytes;
}

static void test_flow_counters(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct flow_counts fc;
    memset(&fc, 0, sizeof(fc));
    struct engine_events ev = {.end = count_end, .ctx = &fc};
    struct engine *e = engine_new(&c, &ev);
    struct tfx t = {e, NULL};
    cli(&t, 1, 40000, 0, 0, SYN, NULL);
    cli(&t, 2, 40000, 1, 0, ACK, "abcde");
    cli(&t, 3, 40000, 1, 0, ACK, "abcdefgh");
    cli(&t, 4, 40000, 20, 0, ACK, "zz");
    srv(&t, 5, 40000, 0, 9, ACK, "server says");
    engine_finish(e);
    assert_int_equal(fc.payload, 10);
    assert_int_equal(fc.gap_bytes, 11);
    assert_int_equal(fc.gaps, 1);
    assert_int_equal(fc.server, 11);
    engine_free(e);
}

static void test_flows_open_peak(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 1, 40000, 0, 0, SYN, NULL);
    cli(&t, 2, 40001, 0, 0, SYN, NULL);
    cli(&t, 3, 40002, 0, 0, SYN, NULL);
    assert_int_equal(st(&t)->flows_open, 3);
    assert_int_equal(st(&t)->flows_open_peak, 3);
    cli(&t, 4, 40000, 1, 0, FIN | ACK, NULL);
    cli(&t, 5, 40001, 1, 0, RST, NULL);
    assert_int_equal(st(&t)->flows_open, 1);
    assert_int_equal(st(&t)->flows_open_peak, 3);
    cli(&t, 6, 40003, 0, 0, SYN, NULL);
    assert_int_equal(st(&t)->flows_open, 2);
    assert_int_equal(st(&t)->flows_open_peak, 3);
    assert_int_equal(st(&t)->flows_seen, 4);
    engine_finish(t.e);
    assert_int_equal(st(&t)->flows_open, 0);
    assert_int_equal(st(&t)->flows_open_peak, 3);
    tfx_free(&t);
}

static void test_cut_record_gap(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 1, 40000, 0, 0, SYN, NULL);
    char payload[101];
    memset(payload, 'p', 100);
    payload[100] = '\0';
    struct pb_pkt p = pb_tcp4(40000, PORT, 1, 0, ACK, payload, 100);
    uint8_t buf[512];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    /* Snap length cut after 30 payload bytes. */
    engine_packet(t.e, LINKTYPE_ETHERNET, 2, buf,
                  (uint32_t)(info.payload_off + 30), (uint32_t)len);
    assert_int_equal(t.r->len[1], 30);
    assert_int_equal(t.r->gap[1], 70);
    cli(&t, 3, 40000, 101, 0, ACK, "next");
    assert_int_equal(t.r->len[1], 34);
    assert_memory_equal(t.r->data[1] + 30, "next", 4);
    tfx_free(&t);
}

static void test_server_fin_closing_timeout(void **state)
{
    (void)state;
    /* After the server's FIN the flow ends after the closing timeout, not
     * the (longer) idle timeout. */
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 1 * SEC, 40000, CISN + 1, SISN + 1, ACK, "q");
    srv(&t, 2 * SEC, 40000, SISN + 1, CISN + 2, FIN | ACK, NULL);
    engine_advance(t.e, 2 * SEC + c.closing_timeout_ns - 1);
    assert_int_equal(t.r->ends, 0);
    engine_advance(t.e, 2 * SEC + c.closing_timeout_ns);
    assert_int_equal(t.r->ends, 1);
    tfx_free(&t);
}

static void test_end_reason_names(void **state)
{
    (void)state;
    assert_string_equal(flow_end_reason_name(FLOW_END_FIN), "fin");
    assert_string_equal(flow_end_reason_name(FLOW_END_IDLE), "idle");
    static const enum flow_end_reason all[] = {
        FLOW_END_FIN,     FLOW_END_RST,     FLOW_END_SERVER_RST,
        FLOW_END_IDLE,    FLOW_END_EVICTED, FLOW_END_NEW_SYN,
        FLOW_END_INPUT};
    for (size_t i = 0; i < 7; i++) {
        for (size_t j = i + 1; j < 7; j++) {
            assert_string_not_equal(flow_end_reason_name(all[i]),
                                    flow_end_reason_name(all[j]));
        }
    }
}

/* How flow `id` ended; fails the test if it has not. */
static enum flow_end_reason end_reason(const struct tfx *t, uint64_t id)
{
    for (size_t i = 0; i < t->r->n; i++) {
        if (t->r->ev[i].kind == 'E' && t->r->ev[i].id == id) {
            return t->r->ev[i].why;
        }
    }
    fail_msg("flow %llu has not ended", (unsigned long long)id);
    return FLOW_END_FIN;
}

/* At --max-flows, a flow that never carried a byte goes before the flow
 * idle the longest: a SYN flood does not push out a real connection. */
static void test_max_flows_sheds_quiet_flows_first(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    c.max_flows = 3;
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 10, 40000, CISN + 1, SISN + 1, ACK | PSH, "abc");
    cli(&t, 20, 40001, CISN, 0, SYN, NULL);
    cli(&t, 30, 40002, CISN, 0, SYN, NULL);
    cli(&t, 40, 40003, CISN, 0, SYN, NULL);
    assert_int_equal(st(&t)->flows_evicted, 1);
    assert_false(t.r->ended[1]);
    assert_int_equal(end_reason(&t, 2), FLOW_END_EVICTED);
    cli(&t, 50, 40000, CISN + 4, SISN + 1, ACK | PSH, "def");
    assert_data(&t, 1, "abcdef");
    tfx_free(&t);
}

/* Flow state is charged to its budget: ENGINE_FLOW_COST for every flow,
 * the consumer's flow_data_cost once one carries data. A flood of bare
 * SYNs stays within it, and the flows that carry data survive it. */
static void test_flow_state_budget(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    c.flow_data_cost = 1000;
    c.flow_state_budget = 8 * ENGINE_FLOW_COST + 1000;
    struct tfx t = tfx_new(&c);
    handshake(&t, 0, 40000);
    cli(&t, 10, 40000, CISN + 1, SISN + 1, ACK | PSH, "abc");
    assert_int_equal(engine_flow_state_bytes(t.e), ENGINE_FLOW_COST + 1000);
    for (uint16_t i = 1; i <= 50; i++) {
        cli(&t, 100 + i, (uint16_t)(40000 + i), CISN, 0, SYN, NULL);
        assert_true(engine_flow_state_bytes(t.e) <= c.flow_state_budget);
    }
    /* One flow with data and seven bare SYNs fit; the oldest SYNs went. */
    assert_int_equal(st(&t)->flows_open, 8);
    assert_int_equal(st(&t)->flows_evicted, 50 - 7);
    assert_false(t.r->ended[1]);
    assert_int_equal(end_reason(&t, 2), FLOW_END_EVICTED);
    assert_false(t.r->ended[51]);
    assert_int_equal(*engine_queued_counter(t.e),
                     engine_flow_state_bytes(t.e));
    /* The newest SYN's first byte costs the session too: quiet flows make
     * room for it, never the flows carrying data. */
    cli(&t, 200, 40050, CISN + 1, SISN + 1, ACK | PSH, "xyz");
    assert_true(engine_flow_state_bytes(t.e) <= c.flow_state_budget);
    assert_false(t.r->ended[1]);
    assert_false(t.r->ended[51]);
    assert_data(&t, 51, "xyz");
    assert_int_equal(st(&t)->flows_open,
                     2 + (c.flow_state_budget - 2 * (ENGINE_FLOW_COST + 1000)) /
                             ENGINE_FLOW_COST);
    engine_finish(t.e);
    assert_int_equal(engine_flow_state_bytes(t.e), 0);
    assert_int_equal(*engine_queued_counter(t.e), 0);
    tfx_free(&t);
}

/* The n-th data event's server_acked. */
static uint64_t mark_of(const struct tfx *t, unsigned nth)
{
    long i = find_ev(t->r, 'D', nth);
    assert_true(i >= 0);
    return t->r->ev[i].mark;
}

/* Each client byte says how much of the server's answer its client had
 * heard: a request sent after a 6-byte answer carries 6, one pipelined
 * behind it carries the same. */
static void test_server_acked_marks_turns(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 1 * MS, 40000);
    cli(&t, 4 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "Q1");
    srv(&t, 5 * MS, 40000, SISN + 1, CISN + 3, ACK | PSH, "ANSWER");
    cli(&t, 6 * MS, 40000, CISN + 3, SISN + 7, ACK | PSH, "Q2");
    cli(&t, 7 * MS, 40000, CISN + 5, SISN + 7, ACK | PSH, "Q3");
    assert_int_equal(mark_of(&t, 0), 0);
    assert_int_equal(mark_of(&t, 1), 6);
    assert_int_equal(mark_of(&t, 2), 6);
    /* An acknowledgement that goes back moves nothing. */
    cli(&t, 8 * MS, 40000, CISN + 7, SISN + 2, ACK | PSH, "Q4");
    assert_int_equal(mark_of(&t, 3), 6);
    assert_int_equal(t.r->sent[1], 6);
    assert_false(t.r->flags[1] & FLOW_SERVER_FIRST);
    assert_data(&t, 1, "Q1Q2Q3Q4");
    tfx_free(&t);
}

/* A server that speaks first: the client's first byte already waited
 * for the greeting. */
static void test_server_acked_greeting(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 1 * MS, 40000);
    srv(&t, 4 * MS, 40000, SISN + 1, CISN + 1, ACK | PSH, "220 hi\r\n");
    cli(&t, 5 * MS, 40000, CISN + 1, SISN + 9, ACK | PSH, "HELO x\r\n");
    assert_int_equal(mark_of(&t, 0), 8);
    assert_true(t.r->flags[1] & FLOW_SERVER_FIRST);
    tfx_free(&t);
}

/* Acknowledgements past what the server was seen sending (the ACK of
 * its FIN, a forged value) count only the bytes it sent. */
static void test_server_acked_clamped(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 1 * MS, 40000);
    cli(&t, 4 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "Q1");
    srv(&t, 5 * MS, 40000, SISN + 1, CISN + 3, ACK | PSH | FIN, "AB");
    cli(&t, 6 * MS, 40000, CISN + 3, SISN + 4, ACK | PSH, "Q2");
    assert_int_equal(mark_of(&t, 1), 2);
    cli(&t, 7 * MS, 40000, CISN + 5, SISN + 100000, ACK | PSH, "Q3");
    assert_int_equal(mark_of(&t, 2), 2);
    assert_int_equal(t.r->sent[1], 2);
    tfx_free(&t);
}

/* A server that sent no byte but its FIN: the client's ACK of the FIN
 * moves nothing. Bytes behind a hole released after that ACK, and the
 * client's close, waited for no answer in production (a capture with a
 * lost client segment and a silent server, tmgen --loss). */
static void test_server_acked_fin_is_no_byte(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 1 * MS, 40000);
    cli(&t, 2 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "Q1");
    /* "Q2" at CISN + 3 was not captured. */
    cli(&t, 3 * MS, 40000, CISN + 5, SISN + 1, ACK | PSH, "Q3");
    cli(&t, 4 * MS, 40000, CISN + 7, SISN + 1, ACK | FIN, NULL);
    srv(&t, 5 * MS, 40000, SISN + 1, CISN + 8, ACK | FIN, NULL);
    cli(&t, 6 * MS, 40000, CISN + 8, SISN + 2, ACK, NULL);
    engine_advance(t.e, 6 * MS + c.rtx_timeout_ns);
    assert_data(&t, 1, "Q1Q3");
    assert_int_equal(t.r->gap[1], 2);
    assert_int_equal(mark_of(&t, 0), 0);
    assert_int_equal(mark_of(&t, 1), 0);
    assert_int_equal(t.r->sent[1], 0);
    assert_int_equal(end_reason(&t, 1), FLOW_END_FIN);
    assert_int_equal(t.r->end_acked[1], 0);
    tfx_free(&t);
}

/* A connection joined mid-stream counts from its first client byte,
 * which waits for nothing even if an answer was seen before it. */
static void test_server_acked_mid_stream(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    srv(&t, 1 * MS, 40000, 9000, 2000, ACK | PSH, "RESP");
    cli(&t, 2 * MS, 40000, 2000, 9004, ACK | PSH, "Q1");
    srv(&t, 3 * MS, 40000, 9004, 2002, ACK | PSH, "XY");
    cli(&t, 4 * MS, 40000, 2002, 9006, ACK | PSH, "Q2");
    assert_int_equal(mark_of(&t, 0), 0);
    assert_int_equal(mark_of(&t, 1), 2);
    assert_false(t.r->flags[1] & FLOW_SERVER_FIRST);
    tfx_free(&t);
}

static void count_server_answer(void *ctx, struct flow *f)
{
    struct rec *r = ctx;
    add_ev(r, 'S', f, 0, FLOW_END_FIN);
}

static size_t count_kind(const struct rec *r, char kind)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        n += r->ev[i].kind == kind;
    }
    return n;
}

/* Fresh server payload is reported, in capture order with the client's
 * data; a retransmission, a bare ACK or a FIN is not. */
static void test_server_answer_event(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct rec *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    struct engine_events ev = {.open = ev_open,
                               .data = ev_data,
                               .gap = ev_gap,
                               .end = ev_end,
                               .ctx = r,
                               .server_answer = count_server_answer};
    struct tfx t = {engine_new(&c, &ev), r};
    handshake(&t, 1 * MS, 40000);
    cli(&t, 2 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "Q1");
    srv(&t, 3 * MS, 40000, SISN + 1, CISN + 3, ACK | PSH, "AB");
    srv(&t, 4 * MS, 40000, SISN + 1, CISN + 3, ACK | PSH, "AB");
    srv(&t, 5 * MS, 40000, SISN + 3, CISN + 3, ACK, NULL);
    cli(&t, 6 * MS, 40000, CISN + 3, SISN + 3, ACK | PSH, "Q2");
    srv(&t, 7 * MS, 40000, SISN + 3, CISN + 5, ACK | PSH | FIN, "CD");
    assert_int_equal(count_kind(r, 'S'), 2);
    assert_int_equal(r->ev[r->n - 1].kind, 'S');
    tfx_free(&t);
}

/* Without the server's segments (a capture of one direction), the
 * client's acknowledgements alone tell the turns. */
static void test_server_acked_without_server_segments(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    cli(&t, 1 * MS, 40000, CISN, 0, SYN, NULL);
    cli(&t, 2 * MS, 40000, CISN + 1, SISN + 1, ACK, NULL);
    cli(&t, 3 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "Q1");
    cli(&t, 4 * MS, 40000, CISN + 3, SISN + 51, ACK | PSH, "Q2");
    assert_int_equal(mark_of(&t, 0), 0);
    assert_int_equal(mark_of(&t, 1), 50);
    assert_int_equal(t.r->sent[1], 50);
    tfx_free(&t);
}


/* ---- the server's direction (reasm_server) ---- */

static void assert_server_data(const struct tfx *t, uint64_t id,
                               const char *want)
{
    size_t n = strlen(want);
    const struct rec *r = t->r;
    if (r->slen[id] != n || memcmp(r->sdata[id], want, n) != 0) {
        fail_msg("flow %llu's server delivered \"%.*s\", want \"%s\"",
                 (unsigned long long)id, (int)r->slen[id],
                 (const char *)r->sdata[id], want);
    }
}

/* Off by default: the server's bytes are counted, not delivered. */
static void test_server_stream_off(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    struct tfx t = tfx_new(&c);
    handshake(&t, 1 * MS, 40000);
    cli(&t, 3 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "GET");
    srv(&t, 4 * MS, 40000, SISN + 1, CISN + 4, ACK | PSH, "200");
    cli(&t, 5 * MS, 40000, CISN + 4, SISN + 4, FIN | ACK, NULL);
    assert_true(t.r->ended[1]);
    assert_int_equal(t.r->slen[1], 0);
    assert_false(t.r->sended[1]);
    assert_int_equal(find_ev(t.r, 'e', 0), -1);
    assert_int_equal(st(&t)->server_payload_bytes, 0);
    tfx_free(&t);
}

/* In order despite reordering and retransmission; the server's FIN ends
 * its stream before the flow ends. */
static void test_server_stream_in_order(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    c.reasm_server = true;
    struct tfx t = tfx_new(&c);
    handshake(&t, 1 * MS, 40000);
    cli(&t, 3 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "GET /\r\n");
    srv(&t, 4 * MS, 40000, SISN + 1 + 5, CISN + 8, ACK | PSH, "world");
    assert_int_equal(t.r->slen[1], 0); /* waits behind the hole */
    assert_true(engine_queued_bytes(t.e) > 0);
    srv(&t, 5 * MS, 40000, SISN + 1, CISN + 8, ACK | PSH, "hello");
    srv(&t, 6 * MS, 40000, SISN + 1, CISN + 8, ACK | PSH, "hel"); /* again */
    assert_server_data(&t, 1, "helloworld");
    assert_int_equal(engine_queued_bytes(t.e), 0);
    srv(&t, 7 * MS, 40000, SISN + 11, CISN + 8, FIN | ACK, NULL);
    assert_true(t.r->sended[1]);
    assert_false(t.r->ended[1]);
    cli(&t, 8 * MS, 40000, CISN + 8, SISN + 12, FIN | ACK, NULL);
    assert_true(t.r->ended[1]);
    assert_true(find_ev(t.r, 'e', 0) < find_ev(t.r, 'E', 0));
    assert_data(&t, 1, "GET /\r\n");
    assert_int_equal(st(&t)->server_payload_bytes, 10);
    assert_int_equal(st(&t)->server_gaps, 0);
    tfx_free(&t);
}

/* Bytes the client acknowledged that the capture never saw: a gap after
 * the gap timeout, then delivery goes on. */
static void test_server_stream_gap(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    c.reasm_server = true;
    struct tfx t = tfx_new(&c);
    handshake(&t, 1 * MS, 40000);
    cli(&t, 3 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "GET");
    srv(&t, 4 * MS, 40000, SISN + 1, CISN + 4, ACK | PSH, "abc");
    /* "defg" is missed; "hij" is captured; the client acknowledges all */
    srv(&t, 5 * MS, 40000, SISN + 8, CISN + 4, ACK | PSH, "hij");
    cli(&t, 6 * MS, 40000, CISN + 4, SISN + 11, ACK, NULL);
    assert_server_data(&t, 1, "abc");
    engine_advance(t.e, 6 * MS + c.gap_timeout_ns);
    assert_server_data(&t, 1, "abchij");
    assert_int_equal(t.r->sgap[1], 4);
    assert_int_equal(t.r->sgaps[1], 1);
    long g = find_ev(t.r, 'g', 0);
    assert_true(g >= 0 && g < find_ev(t.r, 'd', 1));
    assert_int_equal(st(&t)->server_gaps, 1);
    assert_int_equal(st(&t)->server_gap_bytes, 4);
    assert_int_equal(st(&t)->gaps, 0); /* the client's stream has none */
    tfx_free(&t);
}

/* The client closes first: what the server's queue holds is delivered
 * (its holes skipped) and its stream ends before the flow does; a reset
 * by the server ends it too. */
static void test_server_stream_ends_with_flow(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    c.reasm_server = true;
    struct tfx t = tfx_new(&c);
    handshake(&t, 1 * MS, 40000);
    cli(&t, 3 * MS, 40000, CISN + 1, SISN + 1, ACK | PSH, "GET");
    srv(&t, 4 * MS, 40000, SISN + 1, CISN + 4, ACK | PSH, "ab");
    srv(&t, 5 * MS, 40000, SISN + 5, CISN + 4, ACK | PSH, "ef");
    cli(&t, 6 * MS, 40000, CISN + 4, SISN + 3, FIN | ACK, NULL);
    assert_true(t.r->ended[1]);
    assert_true(t.r->sended[1]);
    assert_server_data(&t, 1, "abef");
    assert_int_equal(t.r->sgap[1], 2);
    assert_true(find_ev(t.r, 'e', 0) < find_ev(t.r, 'E', 0));
    assert_int_equal(engine_queued_bytes(t.e), 0);

    handshake(&t, 10 * MS, 40001);
    cli(&t, 12 * MS, 40001, CISN + 1, SISN + 1, ACK | PSH, "GET");
    srv(&t, 13 * MS, 40001, SISN + 1, CISN + 4, ACK | PSH, "xy");
    srv(&t, 14 * MS, 40001, SISN + 3, CISN + 4, RST | ACK, NULL);
    assert_true(t.r->ended[2]);
    assert_true(t.r->sended[2]);
    assert_server_data(&t, 2, "xy");
    assert_true(find_ev(t.r, 'e', 1) < find_ev(t.r, 'E', 1));
    tfx_free(&t);
}

/* A connection joined mid-stream: the server's stream starts where the
 * client's first data acknowledged it. */
static void test_server_stream_mid(void **state)
{
    (void)state;
    struct engine_config c = cfg_default();
    c.reasm_server = true;
    struct tfx t = tfx_new(&c);
    cli(&t, 1 * MS, 40000, CISN, SISN, ACK | PSH, "GET");
    srv(&t, 2 * MS, 40000, SISN - 3, CISN + 3, ACK | PSH, "oldnew");
    assert_server_data(&t, 1, "new");
    engine_finish(t.e);
    assert_true(t.r->sended[1]);
    assert_true(t.r->ended[1]);
    tfx_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syn_opens_flow),
        cmocka_unit_test(test_server_answer_event),
        cmocka_unit_test(test_stray_segments_open_nothing),
        cmocka_unit_test(test_fin_completes_flow),
        cmocka_unit_test(test_last_ack_after_fin_opens_nothing),
        cmocka_unit_test(test_late_data_of_finished_flow),
        cmocka_unit_test(test_other_ports_ignored),
        cmocka_unit_test(test_outbound_never_data),
        cmocka_unit_test(test_mid_stream_flow),
        cmocka_unit_test(test_new_syn_replaces_open_flow),
        cmocka_unit_test(test_new_syn_after_completed_flow),
        cmocka_unit_test(test_syn_retransmission),
        cmocka_unit_test(test_tfo_data_in_syn),
        cmocka_unit_test(test_client_rst),
        cmocka_unit_test(test_server_rst),
        cmocka_unit_test(test_gap_timeout_capture_time),
        cmocka_unit_test(test_gap_skipped_by_later_packet_time),
        cmocka_unit_test(test_server_ack_covers_lost_segment),
        cmocka_unit_test(test_server_waiting_gets_rtx_timeout),
        cmocka_unit_test(test_live_future_stamp_is_clamped),
        cmocka_unit_test(test_live_clock_runs_after_a_backward_step),
        cmocka_unit_test(test_live_advance_waits_for_a_packet),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_idle_timeout_by_server_segments),
        cmocka_unit_test(test_finish_ends_open_flows),
        cmocka_unit_test(test_max_flows_eviction),
        cmocka_unit_test(test_max_flows_prefers_finished),
        cmocka_unit_test(test_service_addrs),
        cmocka_unit_test(test_sidecar_hop),
        cmocka_unit_test(test_ipv6_flow),
        cmocka_unit_test(test_guess_mode),
        cmocka_unit_test(test_payload_bytes_counted_once),
        cmocka_unit_test(test_flow_counters),
        cmocka_unit_test(test_flows_open_peak),
        cmocka_unit_test(test_cut_record_gap),
        cmocka_unit_test(test_server_fin_closing_timeout),
        cmocka_unit_test(test_end_reason_names),
        cmocka_unit_test(test_max_flows_sheds_quiet_flows_first),
        cmocka_unit_test(test_flow_state_budget),
        cmocka_unit_test(test_server_acked_marks_turns),
        cmocka_unit_test(test_server_acked_greeting),
        cmocka_unit_test(test_server_acked_clamped),
        cmocka_unit_test(test_server_acked_fin_is_no_byte),
        cmocka_unit_test(test_server_acked_mid_stream),
        cmocka_unit_test(test_server_acked_without_server_segments),
        cmocka_unit_test(test_server_stream_off),
        cmocka_unit_test(test_server_stream_in_order),
        cmocka_unit_test(test_server_stream_gap),
        cmocka_unit_test(test_server_stream_ends_with_flow),
        cmocka_unit_test(test_server_stream_mid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
