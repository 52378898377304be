/*
 * Unit tests of httpflow.c: the per-connection request transform on
 * real-shaped client streams (curl's and Python http.client's requests:
 * keep-alive, pipelined, chunked upload with Expect: 100-continue). Every
 * stream is fed whole, byte by byte and cut at every offset, and must
 * give the same output: forwarded bytes and actions at the same places.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/httpflow.h"

/* ---- real-shaped requests -------------------------------------------- */

#define CURL_GET                                                             \
    "GET /api/users/1?full=1 HTTP/1.1\r\nHost: shop.example:8080\r\n"        \
    "User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
#define CURL_POST                                                            \
    "POST /api/orders HTTP/1.1\r\nHost: shop.example:8080\r\n"               \
    "User-Agent: curl/8.5.0\r\nAccept: */*\r\n"                              \
    "Content-Type: application/json\r\nContent-Length: 23\r\n\r\n"          \
    "{\"item\":\"book\",\"qty\":2}"
#define CURL_CHUNKED_PUT                                                     \
    "PUT /upload/report.csv HTTP/1.1\r\nHost: shop.example:8080\r\n"         \
    "User-Agent: curl/8.5.0\r\nAccept: */*\r\n"                              \
    "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"             \
    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
#define PY_GET                                                               \
    "GET /health HTTP/1.1\r\nHost: localhost:8080\r\n"                       \
    "Accept-Encoding: identity\r\n\r\n"
#define PY_DELETE                                                            \
    "DELETE /api/users/7 HTTP/1.1\r\nHost: localhost:8080\r\n"               \
    "Accept-Encoding: identity\r\nAuthorization: Bearer s3cr3t\r\n"          \
    "Content-Length: 0\r\n\r\n"
#define PY_HEAD                                                              \
    "HEAD /static/logo.png HTTP/1.1\r\nHost: localhost:8080\r\n"             \
    "Accept-Encoding: identity\r\n\r\n"

/* A keep-alive connection of six requests. */
static const char keepalive[] =
    CURL_GET CURL_POST CURL_CHUNKED_PUT PY_GET PY_DELETE PY_HEAD;

/* ---- driving a flow --------------------------------------------------- */

struct step {
    const char *data; /* NULL: a gap */
    size_t len;
};

#define DATA(s) {s, sizeof(s) - 1}
#define GAP     {NULL, 100}

struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->buf = realloc(o->buf, o->cap);
        assert_non_null(o->buf);
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static const char *drop_name(enum httpflow_drop_reason r)
{
    return r == HTTPFLOW_DROP_FILTER ? "filter"
         : r == HTTPFLOW_DROP_SAMPLE ? "sample"
                                     : "rate";
}

/* Forwarded bytes as they are, other actions as {markers}. */
static void on_action(void *ctx, const struct httpflow_action *a)
{
    struct out *o = ctx;
    char m[96];
    switch (a->kind) {
    case HTTPFLOW_FORWARD:
        assert_true(a->len > 0);
        put(o, a->data, a->len);
        return;
    case HTTPFLOW_DROP:
        snprintf(m, sizeof(m), "{drop %s %s%llu}", drop_name(a->drop),
                 a->connection ? "connection " : "",
                 (unsigned long long)a->request);
        break;
    case HTTPFLOW_RECONNECT:
        snprintf(m, sizeof(m), "{reconnect}");
        break;
    case HTTPFLOW_PASSTHROUGH:
        snprintf(m, sizeof(m), "{pass: %s}", a->reason);
        break;
    }
    put(o, m, strlen(m));
}

struct result {
    struct out out;
    struct httpflow_counts counts;
    uint64_t forwarded;
};

/* mode 0: whole; 1: byte by byte; k >= 2: each data step cut before its
 * byte k - 1. `now` advances 1 ms per step. */
static void drive(const struct httpflow_config *cfg, uint64_t per_second,
                  uint64_t key, const struct step *steps, size_t n,
                  size_t mode, struct result *r)
{
    memset(r, 0, sizeof(*r));
    struct httpflow_rate *rate =
        per_second ? httpflow_rate_new(per_second) : NULL;
    struct httpflow *f = httpflow_new(cfg, rate, key, on_action, &r->out);
    uint64_t now = 1000000000ull;
    for (size_t i = 0; i < n; i++, now += 1000000) {
        if (steps[i].data == NULL) {
            httpflow_gap(f, steps[i].len, now);
            continue;
        }
        const uint8_t *d = (const uint8_t *)steps[i].data;
        size_t len = steps[i].len, pos = 0;
        while (pos < len) {
            size_t step = mode == 0 ? len - pos
                        : mode == 1 ? 1
                        : pos < mode - 1 ? mode - 1 - pos : len - pos;
            if (step > len - pos) {
                step = len - pos;
            }
            /* Each piece in its own block: a stale pointer is caught. */
            uint8_t *piece = malloc(step);
            assert_non_null(piece);
            memcpy(piece, d + pos, step);
            httpflow_feed(f, piece, step, now);
            free(piece);
            pos += step;
        }
    }
    httpflow_finish(f);
    r->counts = *httpflow_counts(f);
    r->forwarded = httpflow_forwarded(f);
    if (r->out.buf == NULL) {
        put(&r->out, "", 0);
    }
    httpflow_free(f);
    httpflow_rate_free(rate);
}

static void result_free(struct result *r)
{
    free(r->out.buf);
}

static size_t max_step_len(const struct step *steps, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (steps[i].data != NULL && steps[i].len > m) {
            m = steps[i].len;
        }
    }
    return m;
}

/* Runs the script every way; all must agree. Returns the whole-fed
 * result (free with result_free). */
static struct result run_all(const struct httpflow_config *cfg,
                             uint64_t per_second, uint64_t key,
                             const struct step *steps, size_t n)
{
    struct result whole;
    drive(cfg, per_second, key, steps, n, 0, &whole);
    size_t last = max_step_len(steps, n) + 1;
    for (size_t mode = 1; mode <= last; mode++) {
        struct result other;
        drive(cfg, per_second, key, steps, n, mode, &other);
        if (other.out.len != whole.out.len ||
            memcmp(other.out.buf, whole.out.buf, whole.out.len) != 0) {
            size_t at = 0;
            while (at < whole.out.len && at < other.out.len &&
                   whole.out.buf[at] == other.out.buf[at]) {
                at++;
            }
            fail_msg("mode %zu differs at %zu (%zu/%zu bytes):\n%s\n"
                     "---- whole:\n%s", mode, at, other.out.len,
                     whole.out.len, other.out.buf, whole.out.buf);
        }
        assert_memory_equal(&other.counts, &whole.counts,
                            sizeof(whole.counts));
        result_free(&other);
    }
    return whole;
}

static struct httpflow_config *config(const struct httpflow_options *o)
{
    struct httpflow_config *c = NULL;
    char err[256];
    if (httpflow_config_new(o, &c, err, sizeof(err)) != 0) {
        fail_msg("config: %s", err);
    }
    return c;
}

static void expect_out(const struct result *r, const char *want)
{
    if (strcmp(r->out.buf, want) != 0) {
        fail_msg("got:\n%s\n---- want:\n%s", r->out.buf, want);
    }
}

/* ---- tests ------------------------------------------------------------ */

static void test_no_options_is_identity(void **state)
{
    (void)state;
    struct httpflow_options o = {0};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA(keepalive)};
    struct result r = run_all(c, 0, 1, s, 1);
    expect_out(&r, keepalive);
    assert_int_equal(r.counts.requests_seen, 6);
    assert_int_equal(r.counts.requests_forwarded, 6);
    assert_int_equal(r.counts.bytes_forwarded, sizeof(keepalive) - 1);
    assert_false(r.counts.passed_through);
    result_free(&r);

    /* Line breaks between pipelined requests and a head cut by the end
     * of the stream come through as well. */
    struct step s2[] = {DATA(PY_GET "\r\n" PY_GET "GET /x HT")};
    r = run_all(c, 0, 1, s2, 1);
    expect_out(&r, PY_GET "\r\n" PY_GET "GET /x HT");
    assert_int_equal(r.counts.requests_seen, 2);
    result_free(&r);
    httpflow_config_free(c);
}

static void test_match_method_and_safe_methods(void **state)
{
    (void)state;
    const char *methods[] = {"GET,head", "PUT"};
    struct httpflow_options o = {.match_methods = methods,
                                 .n_match_methods = 2};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA(keepalive)};
    struct result r = run_all(c, 0, 1, s, 1);
    expect_out(&r, CURL_GET "{drop filter 1}" CURL_CHUNKED_PUT PY_GET
                   "{drop filter 4}" PY_HEAD);
    assert_int_equal(r.counts.requests_forwarded, 4);
    assert_int_equal(r.counts.dropped_filter, 2);
    result_free(&r);
    httpflow_config_free(c);

    struct httpflow_options safe = {.safe_methods = true};
    c = config(&safe);
    r = run_all(c, 0, 1, s, 1);
    expect_out(&r, CURL_GET "{drop filter 1}{drop filter 2}" PY_GET
                   "{drop filter 4}" PY_HEAD);
    result_free(&r);
    httpflow_config_free(c);
}

static void test_match_and_skip_path(void **state)
{
    (void)state;
    const char *match[] = {"^/api/", "^/health$"};
    const char *skip[] = {"^/api/orders", "/users/[0-9]+$"};
    struct httpflow_options o = {.match_paths = match, .n_match_paths = 2,
                                 .skip_paths = skip, .n_skip_paths = 1};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA(keepalive)};
    struct result r = run_all(c, 0, 1, s, 1);
    /* The query is not part of the path: /api/users/1?full=1 matches. */
    expect_out(&r, CURL_GET "{drop filter 1}{drop filter 2}" PY_GET PY_DELETE
                   "{drop filter 5}");
    result_free(&r);
    httpflow_config_free(c);

    o.n_skip_paths = 2;
    c = config(&o);
    r = run_all(c, 0, 1, s, 1);
    expect_out(&r, "{drop filter 0}{drop filter 1}{drop filter 2}" PY_GET
                   "{drop filter 4}{drop filter 5}");
    result_free(&r);
    httpflow_config_free(c);
}

static void test_match_header(void **state)
{
    (void)state;
    const char *hdr[] = {"user-agent: ^curl/8\\.", "Accept: \\*/\\*"};
    struct httpflow_options o = {.match_headers = hdr, .n_match_headers = 2};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA(keepalive)};
    struct result r = run_all(c, 0, 1, s, 1);
    expect_out(&r, CURL_GET CURL_POST CURL_CHUNKED_PUT
                   "{drop filter 3}{drop filter 4}{drop filter 5}");
    result_free(&r);
    httpflow_config_free(c);
}

static void test_all_dropped_forwards_nothing(void **state)
{
    (void)state;
    const char *methods[] = {"PATCH"};
    struct httpflow_options o = {.match_methods = methods,
                                 .n_match_methods = 1};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA(keepalive)};
    struct result r = run_all(c, 0, 1, s, 1);
    assert_int_equal(r.forwarded, 0);
    assert_int_equal(r.counts.bytes_forwarded, 0);
    assert_int_equal(r.counts.dropped_filter, 6);
    assert_null(strstr(r.out.buf, "HTTP/1.1"));
    result_free(&r);
    httpflow_config_free(c);
}

static void test_rewrite_heads(void **state)
{
    (void)state;
    const char *set[] = {"X-Env: shadow", "Accept: application/json"};
    const char *drop[] = {"user-agent", "Authorization"};
    struct httpflow_options o = {.set_headers = set, .n_set_headers = 2,
                                 .drop_headers = drop, .n_drop_headers = 2,
                                 .host = "localhost:9090", .mark = true};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA(CURL_POST CURL_CHUNKED_PUT PY_DELETE)};
    struct result r = run_all(c, 0, 1, s, 1);
    expect_out(&r,
               "POST /api/orders HTTP/1.1\r\nHost: localhost:9090\r\n"
               "Accept: application/json\r\n"
               "Content-Type: application/json\r\nContent-Length: 23\r\n"
               "X-Env: shadow\r\nX-Tapmirror: 1\r\n\r\n"
               "{\"item\":\"book\",\"qty\":2}"
               "PUT /upload/report.csv HTTP/1.1\r\nHost: localhost:9090\r\n"
               "Accept: application/json\r\n"
               "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
               "X-Env: shadow\r\nX-Tapmirror: 1\r\n\r\n"
               "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
               "DELETE /api/users/7 HTTP/1.1\r\nHost: localhost:9090\r\n"
               "Accept-Encoding: identity\r\nContent-Length: 0\r\n"
               "X-Env: shadow\r\nAccept: application/json\r\n"
               "X-Tapmirror: 1\r\n\r\n");
    result_free(&r);
    httpflow_config_free(c);
}

static void test_redact_replay(void **state)
{
    (void)state;
    const char *extra[] = {"x-api-key"};
    struct httpflow_options o = {.redact_replay = true,
                                 .redact_headers = extra,
                                 .n_redact_headers = 1};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA(PY_DELETE "GET / HTTP/1.1\r\nHost: a\r\n"
                                      "X-Api-Key: k123\r\n"
                                      "Cookie: sid=42\r\n\r\n")};
    struct result r = run_all(c, 0, 1, s, 1);
    expect_out(&r, "DELETE /api/users/7 HTTP/1.1\r\nHost: localhost:8080\r\n"
                   "Accept-Encoding: identity\r\nAuthorization: xxxxxxxxxxxxx\r\n"
                   "Content-Length: 0\r\n\r\n"
                   "GET / HTTP/1.1\r\nHost: a\r\nX-Api-Key: xxxx\r\n"
                   "Cookie: xxxxxx\r\n\r\n");
    assert_int_equal(r.counts.bytes_forwarded, s[0].len);
    result_free(&r);
    httpflow_config_free(c);
}

static void test_sample_connections_and_requests(void **state)
{
    (void)state;
    struct httpflow_options o = {.sample = true, .sample_percent = 50};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA(PY_GET PY_GET PY_GET PY_GET)};
    unsigned kept = 0;
    for (uint64_t key = 0; key < 200; key++) {
        struct result a, b;
        drive(c, 0, key * 7919, s, 1, 0, &a);
        drive(c, 0, key * 7919, s, 1, 1, &b);
        assert_string_equal(a.out.buf, b.out.buf); /* same on a rerun */
        /* A connection is in or out as a whole. */
        assert_true(a.counts.requests_forwarded == 4 ||
                    a.counts.dropped_sample == 4);
        assert_int_equal(a.counts.requests_forwarded == 4,
                         httpflow_sampled(key * 7919, 50));
        kept += a.counts.requests_forwarded == 4;
        result_free(&a);
        result_free(&b);
    }
    assert_in_range(kept, 70, 130);
    httpflow_config_free(c);

    o.sample_requests = true;
    c = config(&o);
    unsigned mixed = 0, total = 0;
    for (uint64_t key = 0; key < 100; key++) {
        struct result a, b;
        drive(c, 0, key, s, 1, 0, &a);
        drive(c, 0, key, s, 1, 0, &b);
        assert_string_equal(a.out.buf, b.out.buf);
        mixed += a.counts.requests_forwarded > 0 &&
                 a.counts.dropped_sample > 0;
        total += (unsigned)a.counts.requests_forwarded;
        result_free(&a);
        result_free(&b);
    }
    assert_true(mixed > 20); /* requests, not connections, are sampled */
    assert_in_range(total, 140, 260);
    httpflow_config_free(c);

    struct httpflow_options none = {.sample = true, .sample_percent = 0};
    c = config(&none);
    struct result r = run_all(c, 0, 3, s, 1);
    expect_out(&r, "{drop sample 0}{drop sample 1}{drop sample 2}"
                   "{drop sample 3}");
    result_free(&r);
    httpflow_config_free(c);
    /* The hash is fixed: these values hold on every run and machine. */
    assert_true(httpflow_sampled(0, 100));
    assert_false(httpflow_sampled(0, 0));
}

static void test_max_rate(void **state)
{
    (void)state;
    struct httpflow_options o = {0};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA(PY_GET PY_GET PY_GET PY_GET PY_GET)};
    struct result r = run_all(c, 2, 1, s, 1);
    expect_out(&r, PY_GET PY_GET "{drop rate 2}{drop rate 3}{drop rate 4}");
    assert_int_equal(r.counts.dropped_rate, 3);
    result_free(&r);

    /* The bucket refills with time and is shared by the connections of
     * one target. */
    struct httpflow_rate *rate = httpflow_rate_new(2);
    assert_true(httpflow_rate_take(rate, 0));
    assert_true(httpflow_rate_take(rate, 0));
    assert_false(httpflow_rate_take(rate, 100000000));
    assert_true(httpflow_rate_take(rate, 600000000));
    assert_false(httpflow_rate_take(rate, 600000000));
    assert_false(httpflow_rate_take(rate, 500000000)); /* time went back */
    assert_int_equal(httpflow_rate_refused(rate), 3);
    struct out o1 = {0}, o2 = {0};
    struct httpflow *f1 = httpflow_new(c, rate, 1, on_action, &o1);
    struct httpflow *f2 = httpflow_new(c, rate, 2, on_action, &o2);
    httpflow_feed(f1, (const uint8_t *)PY_GET, sizeof(PY_GET) - 1,
                  5000000000ull);
    httpflow_feed(f2, (const uint8_t *)PY_GET PY_GET,
                  2 * (sizeof(PY_GET) - 1), 5000000000ull);
    assert_string_equal(o1.buf, PY_GET);
    assert_string_equal(o2.buf, PY_GET "{drop rate 1}");
    httpflow_free(f1);
    httpflow_free(f2);
    httpflow_rate_free(rate);
    free(o1.buf);
    free(o2.buf);
    httpflow_config_free(c);
}

/* A gap in the request line, the headers or the body of the second
 * request: it is lost, the third and fourth arrive whole. */
static void test_gap_resync(void **state)
{
    (void)state;
    const char *methods[] = {"GET,POST,PUT,DELETE"};
    struct httpflow_options o = {.match_methods = methods,
                                 .n_match_methods = 1};
    struct httpflow_config *plain = config(&(struct httpflow_options){0});
    struct httpflow_config *filtered = config(&o);
    struct httpflow_config *cfgs[] = {plain, filtered};
    for (size_t k = 0; k < 2; k++) {
        struct step in_line[] = {DATA(CURL_GET "DELETE /api/us"), GAP,
                                 DATA("ers/7 HTTP/1.1\r\nHost: x\r\n"
                                      "Content-Length: 0\r\n\r\n"
                                      PY_GET PY_DELETE)};
        struct result r = run_all(cfgs[k], 0, 1, in_line, 3);
        expect_out(&r, CURL_GET PY_GET PY_DELETE);
        assert_int_equal(r.counts.lost_to_gaps, 1);
        assert_int_equal(r.counts.reconnects, 0);
        assert_int_equal(r.counts.requests_forwarded, 3);
        result_free(&r);

        struct step in_headers[] = {DATA(CURL_GET "DELETE /api/users/7 HTTP/1.1"
                                               "\r\nHost: localhost:8080\r\n"
                                               "Accept-Enc"),
                                    GAP,
                                    DATA("Content-Length: 0\r\n\r\n"
                                         PY_GET PY_DELETE)};
        r = run_all(cfgs[k], 0, 1, in_headers, 3);
        expect_out(&r, CURL_GET PY_GET PY_DELETE);
        assert_int_equal(r.counts.lost_to_gaps, 1);
        result_free(&r);

        /* A body that does not end with a line break hides the request
         * after it: only a line start can be proven to begin one. */
        struct step after_body[] = {DATA(CURL_GET "POST /api/orders HTTP/1.1"
                                               "\r\nHost: shop.exa"),
                                    GAP,
                                    DATA("23\r\n\r\n{\"item\":\"book\",\"q"
                                         "ty\":2}" PY_GET PY_DELETE)};
        r = run_all(cfgs[k], 0, 1, after_body, 3);
        expect_out(&r, CURL_GET PY_DELETE);
        assert_int_equal(r.counts.lost_to_gaps, 1);
        result_free(&r);

        /* In the body: part of the request reached the local server, so
         * that connection is closed and the rest goes on a new one. */
        struct step in_body[] = {
            DATA(CURL_GET "PUT /upload/report.csv HTTP/1.1\r\nHost: a\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n5\r\nhel"),
            GAP, DATA("ld\r\n0\r\n\r\n" PY_GET PY_DELETE)};
        r = run_all(cfgs[k], 0, 1, in_body, 3);
        expect_out(&r, CURL_GET "PUT /upload/report.csv HTTP/1.1\r\nHost: a\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n5\r\nhel"
                                "{reconnect}" PY_GET PY_DELETE);
        assert_int_equal(r.counts.lost_to_gaps, 1);
        assert_int_equal(r.counts.reconnects, 1);
        assert_int_equal(r.counts.requests_forwarded, 4);
        assert_int_equal(r.forwarded,
                         sizeof(PY_GET PY_DELETE) - 1); /* on the new one */
        result_free(&r);
    }
    httpflow_config_free(plain);
    httpflow_config_free(filtered);
}

/* A gap inside a Content-Length body that ends before the body does:
 * the rest of the body is skipped by its length, so the request right
 * after it is found even though the body does not end with a line
 * break (which a search could not prove). */
static void test_gap_in_a_sized_body(void **state)
{
    (void)state;
    struct httpflow_config *c = config(&(struct httpflow_options){0});
    struct step s[] = {DATA(CURL_GET "POST /api/orders HTTP/1.1\r\nHost: a\r\n"
                                     "Content-Length: 23\r\n\r\n{\"item\":"),
                       {NULL, 5},
                       DATA("\",\"qty\":2}" PY_GET PY_DELETE)};
    struct result r = run_all(c, 0, 1, s, 3);
    expect_out(&r, CURL_GET "POST /api/orders HTTP/1.1\r\nHost: a\r\n"
                            "Content-Length: 23\r\n\r\n{\"item\":"
                            "{reconnect}" PY_GET PY_DELETE);
    assert_int_equal(r.counts.lost_to_gaps, 1);
    assert_int_equal(r.counts.reconnects, 1);
    assert_int_equal(r.counts.requests_forwarded, 4);
    result_free(&r);

    /* The gap ends exactly where the body does. */
    struct step exact[] = {DATA(CURL_GET "POST /o HTTP/1.1\r\nHost: a\r\n"
                                         "Content-Length: 10\r\n\r\n01234"),
                           {NULL, 5}, DATA(PY_GET)};
    r = run_all(c, 0, 1, exact, 3);
    expect_out(&r, CURL_GET "POST /o HTTP/1.1\r\nHost: a\r\n"
                            "Content-Length: 10\r\n\r\n01234"
                            "{reconnect}" PY_GET);
    result_free(&r);

    /* A gap longer than the rest of the body: searched for as before. */
    struct step longer[] = {DATA(CURL_GET "POST /o HTTP/1.1\r\nHost: a\r\n"
                                          "Content-Length: 10\r\n\r\n01234"),
                            {NULL, 50}, DATA("xx\r\n" PY_GET)};
    r = run_all(c, 0, 1, longer, 3);
    expect_out(&r, CURL_GET "POST /o HTTP/1.1\r\nHost: a\r\n"
                            "Content-Length: 10\r\n\r\n01234"
                            "{reconnect}" PY_GET);
    result_free(&r);
    httpflow_config_free(c);
}

/* A gap in the first request's request line, once the method and the
 * space after it were read: still HTTP/1, resynchronised. Before the
 * space nothing shows it is HTTP: passed through as any stream. */
static void test_gap_in_the_first_request_line(void **state)
{
    (void)state;
    struct httpflow_config *c = config(&(struct httpflow_options){0});
    struct step s[] = {DATA("GET /ap"), GAP,
                       DATA("i/x HTTP/1.1\r\nHost: a\r\n\r\n" PY_GET)};
    struct result r = run_all(c, 0, 1, s, 3);
    expect_out(&r, PY_GET);
    assert_int_equal(r.counts.lost_to_gaps, 1);
    assert_false(r.counts.passed_through);
    result_free(&r);

    struct step early[] = {DATA("GE"), GAP, DATA("T /x HTTP/1.1\r\n\r\n")};
    r = run_all(c, 0, 1, early, 3);
    assert_true(r.counts.passed_through);
    result_free(&r);
    httpflow_config_free(c);
}

/* A path pattern "^literal" is compared as a prefix without regexec: the
 * same requests as the regular expression would pick. */
static void test_literal_path_prefix(void **state)
{
    (void)state;
    const char *skip[] = {"^/health", "^/a.c"};
    struct httpflow_config *c = config(&(struct httpflow_options){
        .skip_paths = skip, .n_skip_paths = 2});
    struct step s[] = {DATA("GET /healthz HTTP/1.1\r\n\r\n"
                            "GET /x/health HTTP/1.1\r\n\r\n"
                            "GET /abc HTTP/1.1\r\n\r\n"
                            "GET /a.d HTTP/1.1\r\n\r\n"
                            "GET /health?x=1 HTTP/1.1\r\n\r\n")};
    struct result r = run_all(c, 0, 1, s, 1);
    expect_out(&r, "{drop filter 0}GET /x/health HTTP/1.1\r\n\r\n"
                   "{drop filter 2}GET /a.d HTTP/1.1\r\n\r\n"
                   "{drop filter 4}");
    result_free(&r);
    httpflow_config_free(c);
}

/* requests_rewritten counts heads that changed. */
static void test_rewritten_counter(void **state)
{
    (void)state;
    struct httpflow_config *mark = config(&(struct httpflow_options){
        .mark = true});
    const char *absent[] = {"X-Not-There"};
    struct httpflow_config *noop = config(&(struct httpflow_options){
        .drop_headers = absent, .n_drop_headers = 1});
    struct step s[] = {DATA(CURL_GET PY_GET)};
    struct result r = run_all(mark, 0, 1, s, 1);
    assert_int_equal(r.counts.requests_rewritten, 2);
    result_free(&r);
    r = run_all(noop, 0, 1, s, 1);
    assert_int_equal(r.counts.requests_rewritten, 0);
    expect_out(&r, CURL_GET PY_GET);
    result_free(&r);
    httpflow_config_free(mark);
    httpflow_config_free(noop);
}

/* After a gap, a request found behind one that closed its connection
 * (HTTP/1.0 without keep-alive) goes on a new local connection. */
static void test_gap_after_a_closing_request(void **state)
{
    (void)state;
    struct httpflow_config *c = config(&(struct httpflow_options){0});
    struct step s[] = {DATA("GET /old HTTP/1.0\r\nHost: a\r\n\r\n"), GAP,
                       DATA("junk\r\n" PY_GET)};
    struct result r = run_all(c, 0, 1, s, 3);
    expect_out(&r, "GET /old HTTP/1.0\r\nHost: a\r\n\r\n{reconnect}" PY_GET);
    assert_int_equal(r.counts.reconnects, 1);
    assert_int_equal(r.counts.lost_to_gaps, 0);
    result_free(&r);
    httpflow_config_free(c);
}

static void test_gap_splice_keeps_the_old_behaviour(void **state)
{
    (void)state;
    struct httpflow_options o = {.gap_policy = HTTPFLOW_GAP_SPLICE};
    struct httpflow_config *c = config(&o);
    struct step in_body[] = {
        DATA(CURL_GET "POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
        GAP, DATA("ij" PY_GET)};
    struct result r = run_all(c, 0, 1, in_body, 3);
    /* The framer takes "ij" and 5 bytes of the next request as the body;
     * what follows is not a request: passed through as it came. */
    expect_out(&r, CURL_GET "POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n"
                            "abcijGET /{pass: malformed HTTP/1}"
                            "health HTTP/1.1\r\nHost: localhost:8080\r\n"
                            "Accept-Encoding: identity\r\n\r\n");
    assert_int_equal(r.counts.lost_to_gaps, 0);
    assert_int_equal(r.counts.gaps, 1);
    result_free(&r);
    httpflow_config_free(c);
}

static void test_not_http_passes_through(void **state)
{
    (void)state;
    const char *methods[] = {"GET"};
    const char *set[] = {"X-A: 1"};
    struct httpflow_options o = {.match_methods = methods,
                                 .n_match_methods = 1,
                                 .set_headers = set, .n_set_headers = 1,
                                 .mark = true};
    struct httpflow_config *c = config(&o);
    static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
                              "GET / HTTP/1.1\r\n\r\n";
    struct step s[] = {DATA(tls)};
    struct result r = run_all(c, 0, 1, s, 1);
    expect_out(&r, "{pass: not HTTP/1}" "\x16\x03\x01\x02\x00\x01\x00\x01"
                   "\xfc\x03\x03" "GET / HTTP/1.1\r\n\r\n");
    assert_true(r.counts.passed_through);
    assert_int_equal(r.counts.requests_seen, 0);
    result_free(&r);

    struct step ssh[] = {DATA("SSH-2.0-OpenSSH_9.6\r\n"), GAP,
                         DATA("\x00\x00\x05\xdc")};
    r = run_all(c, 0, 1, ssh, 3);
    assert_int_equal(r.out.len, strlen("{pass: not HTTP/1}") + 21 + 4);
    assert_true(r.counts.passed_through);
    result_free(&r);

    /* --sample counts non-HTTP connections as connections. */
    struct httpflow_options none = {.sample = true, .sample_percent = 0};
    httpflow_config_free(c);
    c = config(&none);
    r = run_all(c, 0, 1, s, 1);
    expect_out(&r, "{drop sample connection 0}");
    assert_true(r.counts.connection_dropped);
    result_free(&r);
    httpflow_config_free(c);
}

static void test_upgrade_passes_through(void **state)
{
    (void)state;
    const char *set[] = {"X-A: 1"};
    struct httpflow_options o = {.set_headers = set, .n_set_headers = 1};
    struct httpflow_config *c = config(&o);
    struct step s[] = {DATA("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket"
                            "\r\nConnection: Upgrade\r\n\r\n"
                            "\x81\x85GET / HTTP/1.1\r\n\r\n")};
    struct result r = run_all(c, 0, 1, s, 1);
    expect_out(&r, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nX-A: 1\r\n\r\n"
                   "{pass: protocol switched}"
                   "\x81\x85GET / HTTP/1.1\r\n\r\n");
    assert_true(r.counts.switched);
    result_free(&r);

    /* A dropped switch takes the tunnel with it. */
    struct httpflow_options safe = {.safe_methods = true};
    httpflow_config_free(c);
    c = config(&safe);
    struct step t[] = {DATA("CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n"
                            "\x00\x00\x00\x08\x04\xd2\x16\x2f")};
    r = run_all(c, 0, 1, t, 1);
    expect_out(&r, "{drop filter 0}");
    result_free(&r);
    httpflow_config_free(c);
}

/* A chunk size that lies: the body bytes taken before the framer fails
 * stay with the request; the rest passes through from there, the same
 * whatever the chunking. */
static void test_malformed_body_passes_through(void **state)
{
    (void)state;
    struct httpflow_config *c = config(&(struct httpflow_options){0});
    struct step s[] = {DATA(PY_GET "PUT /u HTTP/1.1\r\nHost: a\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n"
                                   "6\r\nhello\r\n0\r\n\r\n" PY_GET)};
    struct result r = run_all(c, 0, 1, s, 1);
    expect_out(&r, PY_GET "PUT /u HTTP/1.1\r\nHost: a\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"
                          "6\r\nhello\r\n0{pass: malformed HTTP/1}"
                          "\r\n\r\n" PY_GET);
    assert_int_equal(r.counts.requests_forwarded, 2);
    result_free(&r);
    httpflow_config_free(c);
}

static void test_bad_options_are_one_line_errors(void **state)
{
    (void)state;
    const char *bad_re[] = {"^/api/(users"};
    const char *bad_hdr[] = {"NoColonHere"};
    const char *bad_set[] = {"Content-Length: 5"};
    const char *bad_name[] = {"X Y: 1"};
    struct httpflow_options cases[] = {
        {.match_paths = bad_re, .n_match_paths = 1},
        {.skip_paths = bad_re, .n_skip_paths = 1},
        {.match_headers = bad_hdr, .n_match_headers = 1},
        {.set_headers = bad_set, .n_set_headers = 1},
        {.set_headers = bad_name, .n_set_headers = 1},
        {.drop_headers = (const char *const[]){"transfer-encoding"},
         .n_drop_headers = 1},
        {.sample = true, .sample_percent = 101},
        {.match_methods = (const char *const[]){"GET,,POST"},
         .n_match_methods = 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct httpflow_config *c = (void *)1;
        char err[256] = "";
        assert_int_equal(httpflow_config_new(&cases[i], &c, err, sizeof(err)),
                         -1);
        assert_null(c);
        assert_true(err[0] != '\0');
        assert_null(strchr(err, '\n'));
    }
    char err[256];
    struct httpflow_config *c;
    assert_int_equal(httpflow_config_new(&cases[0], &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--match-path"));
    assert_non_null(strstr(err, "^/api/(users"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_options_is_identity),
        cmocka_unit_test(test_match_method_and_safe_methods),
        cmocka_unit_test(test_match_and_skip_path),
        cmocka_unit_test(test_match_header),
        cmocka_unit_test(test_all_dropped_forwards_nothing),
        cmocka_unit_test(test_rewrite_heads),
        cmocka_unit_test(test_redact_replay),
        cmocka_unit_test(test_sample_connections_and_requests),
        cmocka_unit_test(test_max_rate),
        cmocka_unit_test(test_gap_resync),
        cmocka_unit_test(test_gap_in_a_sized_body),
        cmocka_unit_test(test_gap_in_the_first_request_line),
        cmocka_unit_test(test_rewritten_counter),
        cmocka_unit_test(test_literal_path_prefix),
        cmocka_unit_test(test_gap_after_a_closing_request),
        cmocka_unit_test(test_gap_splice_keeps_the_old_behaviour),
        cmocka_unit_test(test_not_http_passes_through),
        cmocka_unit_test(test_upgrade_passes_through),
        cmocka_unit_test(test_malformed_body_passes_through),
        cmocka_unit_test(test_bad_options_are_one_line_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
