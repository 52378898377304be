/* Unit tests of httpmsg.c: head rewrite, redaction, header comparison
 * and endpoint templates, on heads parsed by http1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/http1.h"
#include "proto/httpmsg.h"

typedef void head_fn(const struct http1_head *h, void *arg);

struct call {
    head_fn *fn;
    void *arg;
    int calls;
};

static void on_event(void *ctx, const struct http1_event *e)
{
    struct call *c = ctx;
    if (e->kind == HTTP1_EV_HEAD) {
        c->fn(e->head, c->arg);
        c->calls++;
    }
}

/* Parses one message and hands its head to fn. */
static void with_head(enum http1_dir dir, const char *bytes, head_fn *fn,
                      void *arg)
{
    struct call c = {fn, arg, 0};
    struct http1 *h = http1_new(dir, NULL, on_event, &c);
    if (dir == HTTP1_RESPONSES) {
        http1_expect(h, 1); /* GET */
    }
    assert_int_equal(http1_feed(h, (const uint8_t *)bytes, strlen(bytes),
                                NULL),
                     HTTP1_OK);
    assert_int_equal(c.calls, 1);
    http1_free(h);
}

struct rewrite_case {
    const struct httpmsg_rewrite *rw;
    char out[1024];
    size_t len;
    int rc;
    char err[128];
};

static void do_rewrite(const struct http1_head *h, void *arg)
{
    struct rewrite_case *rc = arg;
    rc->rc = httpmsg_rewrite_head(h, rc->rw, rc->out, sizeof(rc->out) - 1,
                                  &rc->len, rc->err, sizeof(rc->err));
    if (rc->rc == 0) {
        rc->out[rc->len] = '\0';
    }
}

static const char post[] =
    "POST /api/v1/orders?debug=1 HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Authorization: Bearer abc.def\r\n"
    "X-Tapmirror: 0\r\n"
    "Content-Length: 2\r\n"
    "\r\n"
    "{}";

static void test_rewrite(void **state)
{
    (void)state;
    const struct httpmsg_set set[] = {{"User-Agent", "tapmirror"},
                                      {"X-Env", "shadow"}};
    const char *drop[] = {"authorization"};
    struct httpmsg_rewrite rw = {set, 2, drop, 1, "127.0.0.1:8080", true};
    struct rewrite_case c = {.rw = &rw};
    with_head(HTTP1_REQUESTS, post, do_rewrite, &c);
    assert_int_equal(c.rc, 0);
    assert_string_equal(c.out,
                        "POST /api/v1/orders?debug=1 HTTP/1.1\r\n"
                        "Host: 127.0.0.1:8080\r\n"
                        "User-Agent: tapmirror\r\n"
                        "X-Tapmirror: 1\r\n"
                        "Content-Length: 2\r\n"
                        "X-Env: shadow\r\n"
                        "\r\n");

    /* The rewritten head frames the same body: parse it back. */
    char again[1100];
    snprintf(again, sizeof(again), "%s{}", c.out);
    struct rewrite_case same = {.rw = NULL};
    with_head(HTTP1_REQUESTS, again, do_rewrite, &same);
    assert_int_equal(same.rc, 0);
    assert_string_equal(same.out, c.out);

    /* Framing headers and line breaks are refused. */
    const struct httpmsg_set cl[] = {{"content-length", "5"}};
    struct httpmsg_rewrite bad = {cl, 1, NULL, 0, NULL, false};
    c.rw = &bad;
    with_head(HTTP1_REQUESTS, post, do_rewrite, &c);
    assert_int_equal(c.rc, -1);
    assert_string_equal(c.err, "the body's framing header cannot be set: "
                               "content-length");
    const char *te[] = {"Transfer-Encoding"};
    struct httpmsg_rewrite bad2 = {NULL, 0, te, 1, NULL, false};
    c.rw = &bad2;
    with_head(HTTP1_REQUESTS, post, do_rewrite, &c);
    assert_int_equal(c.rc, -1);
    const struct httpmsg_set crlf[] = {{"X-A", "1\r\nX-Injected: 1"}};
    struct httpmsg_rewrite bad3 = {crlf, 1, NULL, 0, NULL, false};
    c.rw = &bad3;
    with_head(HTTP1_REQUESTS, post, do_rewrite, &c);
    assert_int_equal(c.rc, -1);

    /* HTTP/1.0 without Host: one is added. */
    struct httpmsg_rewrite host = {NULL, 0, NULL, 0, "local:1", false};
    c.rw = &host;
    with_head(HTTP1_REQUESTS, "GET / HTTP/1.0\r\n\r\n", do_rewrite, &c);
    assert_string_equal(c.out, "GET / HTTP/1.0\r\nHost: local:1\r\n\r\n");
}

static void test_redact_keeps_lengths(void **state)
{
    (void)state;
    char head[] = "GET / HTTP/1.1\r\n"
                  "Host: a\r\n"
                  "authorization:  Basic dXNlcjpwYXNz \r\n"
                  "Cookie: sid=1; theme=dark\r\n"
                  "X-Api-Key: k123\r\n"
                  "X-Folded: a\r\n"
                  "  b\r\n"
                  "\r\n"
                  "Cookie: body text, not a header";
    const char want[] = "GET / HTTP/1.1\r\n"
                        "Host: a\r\n"
                        "authorization:  xxxxxxxxxxxxxxxxxx \r\n"
                        "Cookie: xxxxxxxxxxxxxxxxx\r\n"
                        "X-Api-Key: xxxx\r\n"
                        "X-Folded: x\r\n"
                        "  x\r\n"
                        "\r\n"
                        "Cookie: body text, not a header";
    const char *extra[] = {"x-api-key", "X-Folded"};
    size_t n = strlen(head);
    assert_int_equal(httpmsg_redact((uint8_t *)head, n, extra, 2), 4);
    assert_int_equal(strlen(head), n);
    assert_string_equal(head, want);

    char resp[] = "HTTP/1.1 200 OK\r\nSet-Cookie: sid=42; HttpOnly\r\n\r\n";
    assert_int_equal(httpmsg_redact((uint8_t *)resp, strlen(resp), NULL, 0), 1);
    assert_string_equal(resp,
                        "HTTP/1.1 200 OK\r\nSet-Cookie: xxxxxxxxxxxxxxxx\r\n\r\n");
}

struct both {
    const char *b_bytes;
    const struct httpmsg_compare_opts *opts;
    struct httpmsg_diff diff;
    const struct http1_head *a;
};

/* The second head is parsed inside the first one's event, while both
 * are valid. */
static void second_head(const struct http1_head *b, void *arg)
{
    struct both *x = arg;
    httpmsg_compare_headers(x->a, b, x->opts, &x->diff);
}

static void outer_head(const struct http1_head *a, void *arg)
{
    struct both *x = arg;
    x->a = a;
    with_head(HTTP1_RESPONSES, x->b_bytes, second_head, x);
}

static struct httpmsg_diff compare(const char *a, const char *b,
                                   const struct httpmsg_compare_opts *o)
{
    struct both x = {b, o, {0}, NULL};
    with_head(HTTP1_RESPONSES, a, outer_head, &x);
    return x.diff;
}

static void test_compare_headers(void **state)
{
    (void)state;
    const char *prod =
        "HTTP/1.1 200 OK\r\n"
        "Server: nginx/1.22.1\r\n"
        "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 0\r\n"
        "Set-Cookie: sid=aaa; Path=/\r\n"
        "Vary: Accept\r\n"
        "Vary: Origin\r\n"
        "X-Request-Id: 1\r\n"
        "Content-Encoding: gzip\r\n"
        "Cache-Control: max-age=60\r\n"
        "\r\n";
    const char *local =
        "HTTP/1.1 200 OK\r\n"
        "content-type: application/json\r\n"
        "cache-control: no-store\r\n"
        "Transfer-Encoding: chunked\r\n"
        "Date: Tue, 02 Jan 2024 00:00:00 GMT\r\n"
        "Set-Cookie: sid=bbb; Path=/\r\n"
        "Vary: Origin\r\n"
        "Vary: Accept\r\n"
        "X-Debug: 1\r\n"
        "\r\n0\r\n\r\n";
    struct httpmsg_compare_opts decoded = {.bodies_decoded = true};
    struct httpmsg_diff d = compare(prod, local, &decoded);
    assert_int_equal(d.count, 3);
    assert_string_equal(d.lines[0],
                        "cache-control: \"max-age=60\" -> \"no-store\"");
    assert_string_equal(d.lines[1],
                        "vary: \"Accept\", \"Origin\" -> \"Origin\", \"Accept\"");
    assert_string_equal(d.lines[2], "x-debug: (absent) -> \"1\"");
    httpmsg_diff_free(&d);

    /* Content-Encoding counts when bodies are compared as sent; a name
     * given by the caller is left out. */
    const char *ignore[] = {"X-Debug"};
    struct httpmsg_compare_opts raw = {ignore, 1, false, 0};
    d = compare(prod, local, &raw);
    assert_int_equal(d.count, 3);
    assert_string_equal(d.lines[1], "content-encoding: \"gzip\" -> (absent)");
    httpmsg_diff_free(&d);

    /* A different cookie name is a difference. */
    d = compare("HTTP/1.1 204 No Content\r\nSet-Cookie: a=1\r\n\r\n",
                "HTTP/1.1 204 No Content\r\nSet-Cookie: b=1\r\n\r\n", NULL);
    assert_int_equal(d.count, 1);
    httpmsg_diff_free(&d);
}

static void test_endpoint_templates(void **state)
{
    (void)state;
    struct {
        const char *method, *target, *want;
    } cases[] = {
        {"GET", "/users/42/orders?page=2", "GET /users/{id}/orders"},
        {"DELETE", "/items/550e8400-e29b-41d4-a716-446655440000",
         "DELETE /items/{id}"},
        {"GET", "/blobs/0123456789abcdef0123/raw#x", "GET /blobs/{id}/raw"},
        {"GET", "/v2/cafe", "GET /v2/cafe"},
        {"GET", "http://example.com:8080/a/7?x", "GET /a/{id}"},
        {"GET", "http://example.com", "GET /"},
        {"OPTIONS", "*", "OPTIONS *"},
        {"GET", "/", "GET /"},
        {"PUT", "/a//7/", "PUT /a//{id}/"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[128];
        size_t n = httpmsg_endpoint(cases[i].method, cases[i].target,
                                    strlen(cases[i].target), out,
                                    sizeof(out));
        assert_string_equal(out, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
    char tiny[8];
    size_t n = httpmsg_endpoint("GET", "/users/42", 9, tiny, sizeof(tiny));
    assert_true(n < sizeof(tiny));
    assert_int_equal(strlen(tiny), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_redact_keeps_lengths),
        cmocka_unit_test(test_compare_headers),
        cmocka_unit_test(test_endpoint_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
