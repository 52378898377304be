/* Unit tests of compare.c and compare_report.c: pairing of requests with
 * production's and the local responses, outcomes, noise, limits, and
 * the JSON writers. Every case is fed in several interleavings (whole
 * streams in different orders, byte by byte, small chunks) and must give
 * the same exchanges in each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "proto/compare.h"

/* ---- streams with gaps ---------------------------------------------- */

struct stream {
    uint8_t buf[16384];
    size_t len;
    size_t gap_at[4];
    uint64_t gap_len[4];
    int n_gaps;
    bool no_end; /* the stream does not end before finish */
};

static void s_addn(struct stream *s, const void *p, size_t n)
{
    assert_true(s->len + n <= sizeof(s->buf));
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void s_add(struct stream *s, const char *text)
{
    s_addn(s, text, strlen(text));
}

static void s_gap(struct stream *s, uint64_t n)
{
    s->gap_at[s->n_gaps] = s->len;
    s->gap_len[s->n_gaps++] = n;
}

/* ---- what the callback saw ------------------------------------------ */

struct rec {
    uint64_t index;
    enum compare_outcome outcome;
    enum compare_reason reason;
    char endpoint[128];
    char protocol[16];
    char diffs[2048]; /* "field=line;" of the kept differences */
    size_t noise;
    unsigned prod_status, local_status;
    int64_t prod_lat, local_lat;
    char line[4096]; /* compare_exchange_line(), redacted */
};

struct got {
    struct rec r[64];
    int n;
    struct compare_report *report;
};

static void on_exchange(void *ctx, const struct compare_exchange *ex)
{
    struct got *g = ctx;
    assert_true(g->n < 64);
    struct rec *r = &g->r[g->n++];
    memset(r, 0, sizeof(*r));
    r->index = ex->index;
    r->outcome = ex->outcome;
    r->reason = ex->reason;
    snprintf(r->endpoint, sizeof(r->endpoint), "%s", ex->endpoint);
    snprintf(r->protocol, sizeof(r->protocol), "%s", ex->protocol_name);
    for (size_t i = 0; i < ex->n_diffs; i++) {
        size_t at = strlen(r->diffs);
        snprintf(r->diffs + at, sizeof(r->diffs) - at, "%s=%s%s;",
                 ex->diffs[i].field, ex->diffs[i].line,
                 ex->diffs[i].noise ? " (noise)" : "");
    }
    r->noise = ex->noise_count;
    r->prod_status = ex->prod.present ? ex->prod.status : 0;
    r->local_status = ex->local.present ? ex->local.status : 0;
    r->prod_lat = ex->prod.latency_ns;
    r->local_lat = ex->local.latency_ns;
    char *line = compare_exchange_line(ex, true, 64);
    snprintf(r->line, sizeof(r->line), "%s", line);
    free(line);
    if (ex->outcome == COMPARE_NOT_COMPARABLE) {
        assert_true(ex->detail[0] != '\0');
    }
    if (g->report != NULL) {
        compare_report_add(g->report, ex);
    }
}

/* ---- feeding -------------------------------------------------------- */

enum mode {
    WHOLE_CLIENT_FIRST, /* client, production, local */
    WHOLE_LOCAL_FIRST,  /* local, production, client */
    WHOLE_PROD_FIRST,   /* production, client, local */
    BYTES,              /* a byte of each in turn */
    CHUNKS_LOCAL_FIRST, /* 7 bytes of each in turn, local first */
    MODES,
};

struct cursor {
    const struct stream *s;
    size_t pos;
    int gap;
    bool ended;
};

/* Feeds up to `n` bytes (or the next gap) of one stream; ends it when
 * everything is fed. Timestamps: 1 us per byte, local 100 us later. */
static void step(struct compare_conn *c, enum compare_stream which,
                 struct cursor *k, size_t n)
{
    const struct stream *s = k->s;
    if (k->ended) {
        return;
    }
    if (k->gap < s->n_gaps && s->gap_at[k->gap] == k->pos) {
        compare_conn_gap(c, which, s->gap_len[k->gap]);
        k->gap++;
        return;
    }
    size_t stop = s->len;
    if (k->gap < s->n_gaps) {
        stop = s->gap_at[k->gap];
    }
    n = n < stop - k->pos ? n : stop - k->pos;
    if (n > 0) {
        int64_t ts = (int64_t)k->pos * 1000 +
                     (which == COMPARE_LOCAL ? 100000 : 0);
        compare_conn_feed(c, which, s->buf + k->pos, n, ts);
        k->pos += n;
    }
    if (k->pos == s->len && k->gap == s->n_gaps) {
        if (!s->no_end) {
            compare_conn_end(c, which);
        }
        k->ended = true;
    }
}

static void run(const struct compare_config *cfg, struct compare_noise *noise,
                const struct stream *cl, const struct stream *prod,
                const struct stream *local, enum mode mode, struct got *g)
{
    memset(g->r, 0, sizeof(g->r));
    g->n = 0;
    struct compare_conn *c = compare_conn_new(cfg, noise, 7, on_exchange, g);
    struct cursor k[3] = {{cl, 0, 0, false}, {prod, 0, 0, false},
                          {local, 0, 0, false}};
    static const enum compare_stream ids[3] = {COMPARE_CLIENT, COMPARE_PROD,
                                               COMPARE_LOCAL};
    static const int orders[3][3] = {{0, 1, 2}, {2, 1, 0}, {1, 0, 2}};
    if (mode < BYTES) {
        for (int o = 0; o < 3; o++) {
            int i = orders[mode][o];
            while (!k[i].ended) {
                step(c, ids[i], &k[i], SIZE_MAX);
            }
        }
    } else {
        size_t n = mode == BYTES ? 1 : 7;
        static const int turn[3] = {2, 0, 1};
        while (!k[0].ended || !k[1].ended || !k[2].ended) {
            for (int o = 0; o < 3; o++) {
                int i = mode == BYTES ? o : turn[o];
                step(c, ids[i], &k[i], n);
            }
        }
    }
    compare_conn_finish(c);
    if (g->report != NULL) {
        compare_report_add_conn(g->report, c);
    }
    compare_conn_free(c);
}

static void summary(const struct got *g, char *out, size_t cap)
{
    out[0] = '\0';
    for (int i = 0; i < g->n; i++) {
        size_t at = strlen(out);
        snprintf(out + at, cap - at, "#%llu %s/%s %u/%u %s|",
                 (unsigned long long)g->r[i].index,
                 compare_outcome_name(g->r[i].outcome),
                 compare_reason_name(g->r[i].reason), g->r[i].prod_status,
                 g->r[i].local_status, g->r[i].diffs);
    }
}

/* Runs every interleaving; they must agree. `g` keeps the first. */
static void run_all(const struct compare_config *cfg,
                    const struct stream *cl, const struct stream *prod,
                    const struct stream *local, struct got *g)
{
    char first[8192], other[8192];
    run(cfg, NULL, cl, prod, local, WHOLE_CLIENT_FIRST, g);
    summary(g, first, sizeof(first));
    for (int m = 1; m < MODES; m++) {
        struct got *o = calloc(1, sizeof(*o));
        run(cfg, NULL, cl, prod, local, (enum mode)m, o);
        summary(o, other, sizeof(other));
        if (strcmp(first, other) != 0) {
            fail_msg("mode %d:\n%s\nmode 0:\n%s", m, other, first);
        }
        free(o);
    }
}

static const char *json_resp(const char *body)
{
    static char buf[4][2048];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, 2048,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    return b;
}

/* ---- cases ---------------------------------------------------------- */

static void test_identical_is_same(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "GET /users/42 HTTP/1.1\r\nHost: a\r\n\r\n");
    s_add(&p, "HTTP/1.1 200 OK\r\nDate: Mon\r\nServer: prod\r\n"
              "Content-Length: 5\r\n\r\nhello");
    s_add(&l, "HTTP/1.1 200 OK\r\nDate: Tue\r\nContent-Length: 5\r\n\r\n"
              "hello");
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);
    assert_string_equal(g->r[0].endpoint, "GET /users/{id}");
    assert_string_equal(g->r[0].protocol, "http/1.1");
    free(g);
}

static void test_json_field_differs(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "GET /cart HTTP/1.1\r\n\r\n");
    s_add(&p, json_resp("{\"items\":[{\"id\":1,\"price\":1},"
                        "{\"id\":2,\"price\":12.5}],\"n\":2}"));
    s_add(&l, json_resp("{\"n\":2.0,\"items\":[{\"price\":1,\"id\":1},"
                        "{\"id\":2,\"price\":12.75}]}"));
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->r[0].outcome, COMPARE_DIFFER);
    assert_string_equal(g->r[0].diffs,
                        "$.items[*].price=$.items[1].price: 12.5 -> 12.75;");
    assert_non_null(strstr(g->r[0].line, "\"outcome\":\"differ\""));
    assert_non_null(strstr(g->r[0].line, "\"request\":\"GET /cart\""));
    free(g);
}

static void test_status_and_header_differ(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "GET /a HTTP/1.0\r\n\r\n");
    s_add(&p, "HTTP/1.0 200 OK\r\nX-Version: 1\r\nContent-Length: 2\r\n\r\nok");
    s_add(&l, "HTTP/1.0 500 Oops\r\nX-Version: 2\r\nContent-Length: 2\r\n\r\n"
              "ok");
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->r[0].outcome, COMPARE_DIFFER);
    assert_string_equal(g->r[0].protocol, "http/1.0");
    assert_non_null(strstr(g->r[0].diffs, "status=status: 200 -> 500;"));
    assert_non_null(strstr(g->r[0].diffs, "header x-version=x-version: "));

    /* --ignore-header */
    const char *ign[] = {"X-Version"};
    struct compare_config cfg = {.ignore_headers = ign, .n_ignore_headers = 1};
    l.len = 0;
    s_add(&l, "HTTP/1.0 200 OK\r\nX-Version: 2\r\nContent-Length: 2\r\n\r\nok");
    run_all(&cfg, &cl, &p, &l, g);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);
    free(g);
}

static void test_ignore_json(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "GET /cart HTTP/1.1\r\n\r\n");
    s_add(&p, json_resp("{\"items\":[{\"id\":1,\"p\":1},{\"id\":2,\"p\":2}]}"));
    s_add(&l, json_resp("{\"items\":[{\"id\":7,\"p\":1},{\"id\":8,\"p\":2}]}"));
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->r[0].outcome, COMPARE_DIFFER);
    struct jsondiff_ignore *ig = jsondiff_ignore_new();
    char err[128];
    assert_int_equal(jsondiff_ignore_add(ig, "$.items[*].id", err,
                                         sizeof(err)), 0);
    struct compare_config cfg = {.ignore_json = ig};
    run_all(&cfg, &cl, &p, &l, g);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);
    jsondiff_ignore_free(ig);
    free(g);
}

static size_t gzip(const char *text, uint8_t *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 9,
                                  Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)text;
    z.avail_in = (uInt)strlen(text);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

static void test_gzip_and_chunked_bodies(void **state)
{
    (void)state;
    const char *doc = "{\"a\":[1,2,3],\"b\":\"some text to compress\"}";
    uint8_t gz[512];
    size_t gzlen = gzip(doc, gz, sizeof(gz));
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "GET /doc HTTP/1.1\r\n\r\n");
    char head[256];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             "Content-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n",
             gzlen);
    s_add(&p, head);
    s_addn(&p, gz, gzlen);
    /* The local answer: chunked, identity, key order changed, trailers. */
    s_add(&l, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              "Transfer-Encoding: chunked\r\n\r\n"
              "10\r\n{\"b\":\"some text \r\n"
              "19\r\nto compress\",\"a\":[1,2,3]}\r\n"
              "0\r\nX-Trailer: 1\r\n\r\n");
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);

    /* Decoded, a changed value shows by path. */
    l.len = 0;
    s_add(&l, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              "Transfer-Encoding: chunked\r\n\r\n"
              "10\r\n{\"b\":\"some text \r\n"
              "19\r\nto compress\",\"a\":[1,2,4]}\r\n0\r\n\r\n");
    run_all(NULL, &cl, &p, &l, g);
    assert_string_equal(g->r[0].diffs, "$.a[*]=$.a[2]: 3 -> 4;");
    free(g);
}

static void test_head_304_and_continue(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "HEAD /f HTTP/1.1\r\n\r\n"
               "GET /f HTTP/1.1\r\nIf-None-Match: x\r\n\r\n"
               "POST /up HTTP/1.1\r\nExpect: 100-continue\r\n"
               "Content-Length: 3\r\n\r\nabc"
               "GET /after HTTP/1.1\r\n\r\n");
    /* HEAD answers announce a body they do not carry; 304 has none. */
    s_add(&p, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
              "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"
              "HTTP/1.1 100 Continue\r\n\r\n"
              "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz");
    /* The local target sends no 100 Continue: not a difference. */
    s_add(&l, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
              "HTTP/1.1 304 Not Modified\r\n\r\n"
              "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny");
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g->r[i].outcome, COMPARE_SAME);
    }
    assert_int_equal(g->r[1].prod_status, 304);
    assert_int_equal(g->r[2].prod_status, 201);
    assert_int_equal(g->r[3].outcome, COMPARE_DIFFER);
    assert_string_equal(g->r[3].endpoint, "GET /after");
    free(g);
}

static void test_pipelined_and_close_delimited(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"
               "GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n");
    s_add(&p, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"
              "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe rest");
    s_add(&l, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB"
              "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe rest");
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 3);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);
    assert_int_equal(g->r[1].outcome, COMPARE_DIFFER);
    assert_string_equal(g->r[1].diffs,
                        "body=body: 1 -> 1 bytes, first difference at byte 0;");
    assert_int_equal(g->r[2].outcome, COMPARE_SAME);
    free(g);
}

static void test_gaps(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    /* A gap inside a Content-Length body is bridged. */
    s_add(&p, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    s_gap(&p, 4);
    s_add(&p, "xyzHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
    s_add(&l, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcdefgxyz"
              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 2);
    assert_int_equal(g->r[0].outcome, COMPARE_NOT_COMPARABLE);
    assert_int_equal(g->r[0].reason, COMPARE_R_GAP);
    assert_int_equal(g->r[1].outcome, COMPARE_SAME);

    /* In a chunked body it is not: the rest is not comparable. */
    p.len = 0;
    p.n_gaps = 0;
    s_add(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    s_gap(&p, 3);
    s_add(&p, "\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(g->r[i].outcome, COMPARE_NOT_COMPARABLE);
        assert_int_equal(g->r[i].reason, COMPARE_R_GAP);
    }

    /* A gap in the request: that exchange only, then the next. */
    struct stream cl2 = {0};
    s_add(&cl2, "POST /1 HTTP/1.1\r\nContent-Length: 6\r\n\r\nab");
    s_gap(&cl2, 2);
    s_add(&cl2, "efGET /2 HTTP/1.1\r\n\r\n");
    run_all(NULL, &cl2, &l, &l, g);
    assert_int_equal(g->n, 2);
    assert_int_equal(g->r[0].reason, COMPARE_R_GAP);
    assert_int_equal(g->r[1].outcome, COMPARE_SAME);
    free(g);
}

static void test_missing_answers(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    s_add(&p, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
    s_add(&l, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 2);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);
    assert_int_equal(g->r[1].reason, COMPARE_R_NOT_CAPTURED);
    /* The other way round: the local target closed. */
    run_all(NULL, &cl, &l, &p, g);
    assert_int_equal(g->r[1].reason, COMPARE_R_LOCAL_CLOSED);
    /* A local response cut by the close. */
    struct stream cut = {0};
    s_add(&cut, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nbb");
    run_all(NULL, &cl, &l, &cut, g);
    assert_int_equal(g->r[1].reason, COMPARE_R_LOCAL_CLOSED);
    free(g);
}

static void test_timeout(void **state)
{
    (void)state;
    struct got *g = calloc(1, sizeof(*g));
    struct compare_conn *c = compare_conn_new(NULL, NULL, 1, on_exchange, g);
    const char *req = "GET /slow HTTP/1.1\r\n\r\n";
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    compare_conn_feed(c, COMPARE_CLIENT, (const uint8_t *)req, strlen(req), 0);
    compare_conn_feed(c, COMPARE_PROD, (const uint8_t *)resp, strlen(resp),
                      5);
    assert_int_equal(g->n, 0);
    compare_conn_timeout(c);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->r[0].reason, COMPARE_R_TIMEOUT);
    /* A late answer changes nothing. */
    compare_conn_feed(c, COMPARE_LOCAL, (const uint8_t *)resp, strlen(resp),
                      9);
    compare_conn_finish(c);
    assert_int_equal(g->n, 1);
    compare_conn_free(c);
    free(g);
}

/* What the replay asks: whether a sent request waits for the local
 * answer (its timeout), how much is held (its budget), and abandoning a
 * connection at the budget. */
static void test_awaiting_held_abandon(void **state)
{
    (void)state;
    struct got *g = calloc(1, sizeof(*g));
    struct compare_conn *c = compare_conn_new(NULL, NULL, 1, on_exchange, g);
    const char *req = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    size_t base = compare_conn_held(c, NULL);
    assert_false(compare_conn_awaiting_local(c));
    /* production answers before the requests are seen: held, copied */
    compare_conn_feed(c, COMPARE_PROD, (const uint8_t *)resp, strlen(resp),
                      1);
    assert_true(compare_conn_held(c, NULL) >= base + strlen(resp));
    compare_conn_feed(c, COMPARE_CLIENT, (const uint8_t *)req, strlen(req), 0);
    assert_true(compare_conn_awaiting_local(c));
    compare_conn_feed(c, COMPARE_LOCAL, (const uint8_t *)resp, strlen(resp),
                      2);
    assert_int_equal(g->n, 1); /* /a is whole on all three */
    assert_true(compare_conn_awaiting_local(c)); /* /b */
    compare_conn_abandon(c, COMPARE_R_LIMIT, "over --max-buffer");
    assert_false(compare_conn_awaiting_local(c));
    assert_int_equal(g->n, 2);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);
    assert_int_equal(g->r[1].outcome, COMPARE_NOT_COMPARABLE);
    assert_int_equal(g->r[1].reason, COMPARE_R_LIMIT);
    /* later requests are not comparable either; nothing is held */
    compare_conn_feed(c, COMPARE_CLIENT, (const uint8_t *)req, 22, 3);
    compare_conn_feed(c, COMPARE_PROD, (const uint8_t *)resp, strlen(resp),
                      4);
    assert_true(compare_conn_held(c, NULL) <= base);
    compare_conn_finish(c);
    for (int i = 1; i < g->n; i++) {
        assert_int_equal(g->r[i].reason, COMPARE_R_LIMIT);
    }
    compare_conn_free(c);
    free(g);
}

static void test_upgrade_stops(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0};
    s_add(&cl, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\n\r\n\x81\x05hello");
    s_add(&p, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\n\r\n\x81\x05hello");
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &p, g);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);
    assert_int_equal(g->r[0].prod_status, 101);
    struct compare_conn *c = compare_conn_new(NULL, NULL, 1, on_exchange, g);
    compare_conn_feed(c, COMPARE_CLIENT, cl.buf, cl.len, 0);
    assert_non_null(strstr(compare_conn_stop_reason(c), "websocket"));
    compare_conn_free(c);
    free(g);
}

static void test_other_protocols(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    s_add(&p, "+PONG\r\n$5\r\nhello\r\n");
    s_add(&l, "+PONG\r\n$5\r\nhello\r\n");
    struct got *g = calloc(1, sizeof(*g));
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);
    assert_string_equal(g->r[0].protocol, "redis");
    l.len = 0;
    s_add(&l, "+PONG\r\n$5\r\nhellO\r\n!");
    run_all(NULL, &cl, &p, &l, g);
    assert_int_equal(g->r[0].outcome, COMPARE_DIFFER);
    assert_string_equal(g->r[0].diffs,
                        "body=body: 18 -> 19 bytes, first difference at "
                        "byte 15;");
    /* A prefix differs at its end. */
    l.len = 0;
    s_add(&l, "+PONG\r\n");
    run_all(NULL, &cl, &p, &l, g);
    assert_non_null(strstr(g->r[0].diffs, "first difference at byte 7"));

    /* HTTP/2 cleartext, with a gap after equal bytes: not comparable;
     * a difference before the gap: differ. */
    struct stream h2 = {0}, hp = {0}, hl = {0};
    s_add(&h2, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    s_addn(&hp, "\0\0\0\4\0\0\0\0\0", 9);
    s_gap(&hp, 10);
    s_add(&hp, "x");
    s_addn(&hl, "\0\0\0\4\0\0\0\0\0abcdefghijk", 20);
    run_all(NULL, &h2, &hp, &hl, g);
    assert_string_equal(g->r[0].protocol, "http2");
    assert_int_equal(g->r[0].reason, COMPARE_R_GAP);
    hl.buf[3] = 5;
    run_all(NULL, &h2, &hp, &hl, g);
    assert_int_equal(g->r[0].outcome, COMPARE_DIFFER);
    assert_non_null(strstr(g->r[0].diffs, "first difference at byte 3"));
    free(g);
}

static void test_limits(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    struct got *g = calloc(1, sizeof(*g));
    /* Past the body limit: sizes and hashes decide. */
    struct compare_config cfg = {.body_limit = 8};
    s_add(&cl, "GET /big HTTP/1.1\r\n\r\n");
    s_add(&p, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"
              "0123456789abcdefghij");
    s_add(&l, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"
              "0123456789abcdefghij");
    run_all(&cfg, &cl, &p, &l, g);
    assert_int_equal(g->r[0].outcome, COMPARE_SAME);
    l.len = 0;
    s_add(&l, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"
              "0123456789abcdefghiJ");
    run_all(&cfg, &cl, &p, &l, g);
    assert_int_equal(g->r[0].outcome, COMPARE_DIFFER);
    assert_non_null(strstr(g->r[0].diffs, "hashes differ"));
    /* JSON past the limit cannot be compared by its bytes. */
    p.len = l.len = 0;
    s_add(&p, json_resp("{\"a\":1,\"b\":2}"));
    s_add(&l, json_resp("{\"b\":2,\"a\":1}"));
    run_all(&cfg, &cl, &p, &l, g);
    assert_int_equal(g->r[0].outcome, COMPARE_NOT_COMPARABLE);
    assert_int_equal(g->r[0].reason, COMPARE_R_LIMIT);

    /* Two exchanges may wait for the local answers; the rest are
     * refused. */
    struct compare_config wait = {.max_waiting = 2};
    struct stream c4 = {0}, p4 = {0}, l4 = {0};
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for (int i = 0; i < 4; i++) {
        s_add(&c4, "GET /x HTTP/1.1\r\n\r\n");
        s_add(&p4, ok);
        s_add(&l4, ok);
    }
    run(&wait, NULL, &c4, &p4, &l4, WHOLE_CLIENT_FIRST, g);
    assert_int_equal(g->n, 4);
    int refused = 0, same = 0;
    for (int i = 0; i < 4; i++) {
        refused += g->r[i].reason == COMPARE_R_LIMIT;
        same += g->r[i].outcome == COMPARE_SAME;
    }
    assert_int_equal(refused, 2);
    assert_int_equal(same, 2);

    /* Responses held for requests not seen yet are capped. */
    struct compare_config pend = {.max_pending = 16};
    run(&pend, NULL, &c4, &p4, &l4, WHOLE_LOCAL_FIRST, g);
    assert_int_equal(g->n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g->r[i].reason, COMPARE_R_LIMIT);
    }
    free(g);
}

static void test_noise_is_learned(void **state)
{
    (void)state;
    struct compare_noise *noise = compare_noise_new(0, 0, 1234);
    struct compare_report *rep = compare_report_new(0);
    struct stream cl = {0}, p = {0}, l = {0};
    char body[128];
    for (int i = 0; i < 3; i++) {
        s_add(&cl, "GET /time?x=1 HTTP/1.1\r\n\r\n");
        snprintf(body, sizeof(body), "{\"now\":%d,\"v\":1}", 100 + i);
        s_add(&p, json_resp(body));
        snprintf(body, sizeof(body), "{\"now\":%d,\"v\":1}", 200 + i);
        s_add(&l, json_resp(body));
    }
    s_add(&cl, "GET /time?x=1 HTTP/1.1\r\n\r\n");
    s_add(&p, json_resp("{\"now\":5,\"v\":1}"));
    s_add(&l, json_resp("{\"now\":6,\"v\":2}"));
    struct got *g = calloc(1, sizeof(*g));
    g->report = rep;
    run(NULL, noise, &cl, &p, &l, BYTES, g);
    assert_int_equal(g->n, 4);
    /* The first answer has nothing to learn from yet. */
    assert_int_equal(g->r[0].outcome, COMPARE_DIFFER);
    /* Production answered the same request differently: noise. */
    assert_int_equal(g->r[1].outcome, COMPARE_SAME);
    assert_int_equal(g->r[1].noise, 1);
    assert_string_equal(g->r[1].diffs, "$.now=$.now: 101 -> 201 (noise);");
    assert_int_equal(g->r[2].outcome, COMPARE_SAME);
    /* A real difference still counts, the noise beside it does not. */
    assert_int_equal(g->r[3].outcome, COMPARE_DIFFER);
    assert_string_equal(g->r[3].diffs,
                        "$.v=$.v: 1 -> 2;$.now=$.now: 5 -> 6 (noise);");
    assert_true(compare_noise_has(noise, "GET /time", "$.now"));
    assert_false(compare_noise_has(noise, "GET /time", "$.v"));
    assert_false(compare_noise_has(noise, "GET /other", "$.now"));

    cJSON *o = compare_report_json(rep, noise);
    char *text = cJSON_PrintUnformatted(o);
    assert_non_null(strstr(text, "\"exchanges\":4,\"same\":2,\"differ\":2"));
    assert_non_null(strstr(text, "\"same_but_noise\":2"));
    assert_non_null(strstr(text, "\"noise_fields\":[{\"endpoint\":"
                                 "\"GET /time\",\"field\":\"$.now\"}]"));
    /* $.now was counted once before it was known as noise: left out. */
    assert_non_null(strstr(text, "\"top_differing_fields\":[{\"field\":"
                                 "\"$.v\",\"exchanges\":1}]"));
    assert_non_null(strstr(text, "\"connections_by_protocol\":"
                                 "{\"http/1.1\":1}"));
    free(text);
    cJSON_Delete(o);
    compare_report_free(rep);
    compare_noise_free(noise);
    free(g);
}

/* An answer longer than the remembered part is remembered by size and
 * hash: the same answer again teaches nothing. */
static void test_noise_beyond_remembered_body(void **state)
{
    (void)state;
    struct compare_noise *noise = compare_noise_new(0, 8, 1);
    struct stream cl = {0}, p = {0}, l = {0};
    for (int i = 0; i < 2; i++) {
        s_add(&cl, "GET /big HTTP/1.1\r\n\r\n");
        s_add(&p, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"
                  "0123456789abc");
        s_add(&l, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"
                  "0123456789abX");
    }
    struct got *g = calloc(1, sizeof(*g));
    run(NULL, noise, &cl, &p, &l, CHUNKS_LOCAL_FIRST, g);
    assert_int_equal(g->n, 2);
    assert_int_equal(g->r[1].outcome, COMPARE_DIFFER);
    assert_int_equal(compare_noise_count(noise), 0);
    /* A different answer beyond the remembered part is noise. */
    p.len = 0;
    s_add(&p, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"
              "0123456789abc"
              "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"
              "0123456789abd");
    run(NULL, noise, &cl, &p, &l, BYTES, g);
    assert_true(compare_noise_has(noise, "GET /big", "body"));
    assert_int_equal(g->r[1].outcome, COMPARE_SAME);
    compare_noise_free(noise);
    free(g);
}

static void test_latency_and_report(void **state)
{
    (void)state;
    struct got *g = calloc(1, sizeof(*g));
    struct compare_report *rep = compare_report_new(1);
    g->report = rep;
    struct compare_conn *c = compare_conn_new(NULL, NULL, 3, on_exchange, g);
    const char *req = "GET /u/1 HTTP/1.1\r\n\r\n";
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    /* Production: request ends at 1 ms, answer at 3 ms. Local: sent at
     * 50 ms (the replay's clock), answered at 60 ms. */
    compare_conn_feed(c, COMPARE_CLIENT, (const uint8_t *)req, strlen(req),
                      1000000);
    compare_conn_sent(c, strlen(req), 50000000);
    compare_conn_feed(c, COMPARE_LOCAL, (const uint8_t *)resp, strlen(resp),
                      60000000);
    compare_conn_feed(c, COMPARE_PROD, (const uint8_t *)resp, strlen(resp),
                      3000000);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->r[0].prod_lat, 2000000);
    assert_int_equal(g->r[0].local_lat, 10000000);
    /* A second endpoint goes to "(other endpoints)" (cap 1). */
    const char *req2 = "GET /v HTTP/1.1\r\n\r\n";
    compare_conn_feed(c, COMPARE_CLIENT, (const uint8_t *)req2, strlen(req2),
                      4000000);
    compare_conn_feed(c, COMPARE_PROD, (const uint8_t *)resp, strlen(resp),
                      5000000);
    compare_conn_finish(c);
    compare_report_add_conn(rep, c);
    compare_conn_free(c);
    assert_int_equal(g->n, 2);
    assert_int_equal(g->r[1].reason, COMPARE_R_LOCAL_CLOSED);
    cJSON *o = compare_report_json(rep, NULL);
    char *text = cJSON_PrintUnformatted(o);
    assert_non_null(strstr(text, "\"endpoint\":\"GET /u/{id}\""));
    assert_non_null(strstr(text, "\"endpoint\":\"(other endpoints)\""));
    assert_non_null(strstr(text, "\"not_comparable_by_reason\":"
                                 "{\"local_closed\":1}"));
    cJSON *eps = cJSON_GetObjectItem(o, "endpoints");
    cJSON *lat = cJSON_GetObjectItem(cJSON_GetArrayItem(eps, 0), "latency_ms");
    double p50 = cJSON_GetObjectItem(cJSON_GetObjectItem(lat, "production"),
                                     "p50")->valuedouble;
    double l99 = cJSON_GetObjectItem(cJSON_GetObjectItem(lat, "local"),
                                     "p99")->valuedouble;
    assert_true(p50 > 1.8 && p50 < 2.2);
    assert_true(l99 > 9.0 && l99 < 11.0);
    free(text);
    cJSON_Delete(o);
    compare_report_free(rep);
    free(g);
}

static void test_diff_log_redacts(void **state)
{
    (void)state;
    struct stream cl = {0}, p = {0}, l = {0};
    s_add(&cl, "GET /login HTTP/1.1\r\n\r\n");
    s_add(&p, "HTTP/1.1 200 OK\r\nSet-Cookie: session=abc\r\n"
              "Authorization: Bearer secret1\r\nContent-Length: 3\r\n\r\n"
              "\x01\x02\x03");
    s_add(&l, "HTTP/1.1 200 OK\r\nSet-Cookie: token=abc\r\n"
              "Authorization: Bearer secret2\r\nContent-Length: 3\r\n\r\n"
              "\x01\x02\x04");
    struct got *g = calloc(1, sizeof(*g));
    run(NULL, NULL, &cl, &p, &l, WHOLE_CLIENT_FIRST, g);
    assert_int_equal(g->r[0].outcome, COMPARE_DIFFER);
    assert_null(strstr(g->r[0].line, "secret"));
    assert_null(strstr(g->r[0].line, "session"));
    assert_non_null(strstr(g->r[0].line, "authorization: (redacted)"));
    assert_non_null(strstr(g->r[0].line, "\"base64\":\"AQID\""));
    free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_is_same),
        cmocka_unit_test(test_json_field_differs),
        cmocka_unit_test(test_status_and_header_differ),
        cmocka_unit_test(test_ignore_json),
        cmocka_unit_test(test_gzip_and_chunked_bodies),
        cmocka_unit_test(test_head_304_and_continue),
        cmocka_unit_test(test_pipelined_and_close_delimited),
        cmocka_unit_test(test_gaps),
        cmocka_unit_test(test_missing_answers),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_awaiting_held_abandon),
        cmocka_unit_test(test_upgrade_stops),
        cmocka_unit_test(test_other_protocols),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_noise_is_learned),
        cmocka_unit_test(test_noise_beyond_remembered_body),
        cmocka_unit_test(test_latency_and_report),
        cmocka_unit_test(test_diff_log_redacts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
