/*
 * Unit tests of http1.c: HTTP/1 framing of real-shaped wire bytes (as
 * curl, Python's http.client and nginx send them), each stream fed whole,
 * byte by byte and cut in two at every position, with the same events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <http_parser.h>

#include "proto/http1.h"

#define MAX_EVENTS 64
#define MAX_BODY   4096

struct ev {
    enum http1_event_kind kind;
    uint64_t offset, index;
    unsigned status, method;
    enum http1_framing framing;
    bool keep_alive, interim;
    size_t header_count;
    char target[64];
    char first_header[64]; /* "name=value" */
};

struct rec {
    struct ev ev[MAX_EVENTS];
    size_t n;
    uint8_t body[MAX_BODY];
    uint64_t body_off[MAX_BODY];
    size_t body_len;
    enum http1_status status;
    size_t consumed;
    char reason[160];
};

static void on_event(void *ctx, const struct http1_event *e)
{
    struct rec *r = ctx;
    if (e->kind == HTTP1_EV_BODY) {
        for (size_t i = 0; i < e->len; i++) {
            assert_true(r->body_len < MAX_BODY);
            r->body[r->body_len] = e->data[i];
            r->body_off[r->body_len] = e->offset + i;
            r->body_len++;
        }
        return;
    }
    assert_true(r->n < MAX_EVENTS);
    struct ev *v = &r->ev[r->n++];
    memset(v, 0, sizeof(*v));
    v->kind = e->kind;
    v->offset = e->offset;
    v->index = e->index;
    if (e->head != NULL) {
        const struct http1_head *h = e->head;
        v->status = h->status;
        v->method = h->method;
        v->framing = h->framing;
        v->keep_alive = h->keep_alive;
        v->interim = h->interim;
        v->header_count = h->header_count;
        snprintf(v->target, sizeof(v->target), "%.*s", (int)h->target_len,
                 h->target);
        if (h->header_count > 0) {
            snprintf(v->first_header, sizeof(v->first_header), "%.*s=%.*s",
                     (int)h->headers[0].name_len, h->headers[0].name,
                     (int)h->headers[0].value_len, h->headers[0].value);
        }
    }
}

/* mode 0: whole; 1: byte by byte; k >= 2: cut before byte k - 1. */
static void feed(enum http1_dir dir, const char *bytes, size_t n,
                 const unsigned *methods, size_t nm, bool finish, size_t mode,
                 struct rec *r)
{
    memset(r, 0, sizeof(*r));
    struct http1 *h = http1_new(dir, NULL, on_event, r);
    for (size_t i = 0; i < nm; i++) {
        assert_true(http1_expect(h, methods[i]));
    }
    size_t pos = 0;
    enum http1_status st = HTTP1_OK;
    while (pos < n && st == HTTP1_OK) {
        size_t step = mode == 0 ? n - pos
                    : mode == 1 ? 1
                    : pos < mode - 1 ? mode - 1 - pos : n - pos;
        if (step == 0) {
            step = n - pos;
        }
        size_t used = 0;
        st = http1_feed(h, (const uint8_t *)bytes + pos, step, &used);
        pos += used;
    }
    if (st == HTTP1_OK && finish) {
        st = http1_finish(h);
    }
    r->status = st;
    r->consumed = pos;
    snprintf(r->reason, sizeof(r->reason), "%s", http1_reason(h));
    assert_int_equal(http1_offset(h), pos);
    http1_free(h);
}

static void assert_same(const struct rec *a, const struct rec *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct ev *x = &a->ev[i], *y = &b->ev[i];
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->offset, y->offset);
        assert_int_equal(x->index, y->index);
        assert_int_equal(x->status, y->status);
        assert_int_equal(x->framing, y->framing);
        assert_int_equal(x->keep_alive, y->keep_alive);
        assert_int_equal(x->header_count, y->header_count);
        assert_string_equal(x->target, y->target);
        assert_string_equal(x->first_header, y->first_header);
    }
    assert_int_equal(a->body_len, b->body_len);
    assert_memory_equal(a->body, b->body, a->body_len);
    for (size_t i = 0; i < a->body_len; i++) {
        assert_int_equal(a->body_off[i], b->body_off[i]);
    }
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->consumed, b->consumed);
    assert_string_equal(a->reason, b->reason);
}

/* Frames the stream every way and checks that all agree; returns the
 * whole-buffer result. */
static struct rec *frame(enum http1_dir dir, const char *bytes,
                         const unsigned *methods, size_t nm, bool finish)
{
    size_t n = strlen(bytes);
    struct rec *whole = malloc(sizeof(*whole));
    struct rec *other = malloc(sizeof(*other));
    assert_non_null(whole);
    assert_non_null(other);
    feed(dir, bytes, n, methods, nm, finish, 0, whole);
    for (size_t mode = 1; mode <= n + 1; mode++) {
        feed(dir, bytes, n, methods, nm, finish, mode, other);
        assert_same(whole, other);
    }
    free(other);
    return whole;
}

static const struct ev *ev_of(const struct rec *r, size_t index,
                              enum http1_event_kind kind)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->ev[i].index == index && r->ev[i].kind == kind) {
            return &r->ev[i];
        }
    }
    fail_msg("no event %d for message %zu", (int)kind, index);
    return NULL;
}

/* python3 http.client POST with a JSON body, then curl's GET, pipelined. */
static const char py_post_curl_get[] =
    "POST /api/orders HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Accept-Encoding: identity\r\n"
    "Content-Length: 21\r\n"
    "Content-Type: application/json\r\n"
    "\r\n"
    "{\"sku\": \"a1\", \"n\": 2}"
    "GET /api/orders/42?expand=1 HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "\r\n";

static void test_content_length_and_pipelining(void **state)
{
    (void)state;
    struct rec *r = frame(HTTP1_REQUESTS, py_post_curl_get, NULL, 0, true);
    assert_int_equal(r->status, HTTP1_OK);
    assert_int_equal(r->n, 6);
    const char *second = strstr(py_post_curl_get, "GET ");
    uint64_t second_off = (uint64_t)(second - py_post_curl_get);
    const char *body = strstr(py_post_curl_get, "{\"sku");
    uint64_t body_off = (uint64_t)(body - py_post_curl_get);

    assert_int_equal(ev_of(r, 0, HTTP1_EV_BEGIN)->offset, 0);
    const struct ev *h0 = ev_of(r, 0, HTTP1_EV_HEAD);
    assert_int_equal(h0->offset, body_off);
    assert_int_equal(h0->method, HTTP_POST);
    assert_string_equal(h0->target, "/api/orders");
    assert_int_equal(h0->framing, HTTP1_BODY_LENGTH);
    assert_int_equal(h0->header_count, 4);
    assert_string_equal(h0->first_header, "Host=127.0.0.1:8080");
    assert_true(h0->keep_alive);
    assert_int_equal(ev_of(r, 0, HTTP1_EV_END)->offset, second_off);
    assert_int_equal(r->body_len, 21);
    assert_memory_equal(r->body, body, 21);
    assert_int_equal(r->body_off[0], body_off);

    assert_int_equal(ev_of(r, 1, HTTP1_EV_BEGIN)->offset, second_off);
    const struct ev *h1 = ev_of(r, 1, HTTP1_EV_HEAD);
    assert_int_equal(h1->method, HTTP_GET);
    assert_string_equal(h1->target, "/api/orders/42?expand=1");
    assert_int_equal(h1->framing, HTTP1_BODY_NONE);
    assert_int_equal(h1->offset, strlen(py_post_curl_get));
    assert_int_equal(ev_of(r, 1, HTTP1_EV_END)->offset,
                     strlen(py_post_curl_get));
    free(r);
}

/* curl -T - (chunked upload) with a chunk extension and trailers. */
static const char chunked_req[] =
    "PUT /upload HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Trailer: X-Checksum\r\n"
    "\r\n"
    "5;name=value\r\nhello\r\n"
    "7\r\n, world\r\n"
    "0\r\n"
    "X-Checksum: abc\r\n"
    "\r\n"
    "\r\n" /* a stray CRLF between messages is allowed */
    "DELETE /upload/1 HTTP/1.1\r\nHost: localhost\r\n\r\n";

static void test_chunked_with_trailers(void **state)
{
    (void)state;
    struct rec *r = frame(HTTP1_REQUESTS, chunked_req, NULL, 0, true);
    assert_int_equal(r->status, HTTP1_OK);
    assert_int_equal(r->body_len, 12);
    assert_memory_equal(r->body, "hello, world", 12);
    const char *hello = strstr(chunked_req, "hello");
    const char *world = strstr(chunked_req, ", world");
    assert_int_equal(r->body_off[0], hello - chunked_req);
    assert_int_equal(r->body_off[5], world - chunked_req);
    assert_int_equal(ev_of(r, 0, HTTP1_EV_HEAD)->framing, HTTP1_BODY_CHUNKED);
    const char *end = strstr(chunked_req, "X-Checksum: abc\r\n\r\n") + 19;
    assert_int_equal(ev_of(r, 0, HTTP1_EV_END)->offset, end - chunked_req);
    const char *del = strstr(chunked_req, "DELETE");
    assert_int_equal(ev_of(r, 1, HTTP1_EV_BEGIN)->offset, del - chunked_req);
    assert_int_equal(ev_of(r, 1, HTTP1_EV_HEAD)->method, HTTP_DELETE);
    free(r);
}

/* An HTTP/1.0 server's answer without Content-Length: the body runs to
 * the end of the connection. */
static const char close_delimited[] =
    "HTTP/1.0 200 OK\r\n"
    "Server: SimpleHTTP/0.6 Python/3.11.2\r\n"
    "Content-type: text/plain\r\n"
    "\r\n"
    "all of this until the FIN";

static void test_close_delimited_body(void **state)
{
    (void)state;
    unsigned get[] = {HTTP_GET};
    struct rec *r = frame(HTTP1_RESPONSES, close_delimited, get, 1, true);
    assert_int_equal(r->status, HTTP1_OK);
    const struct ev *h = ev_of(r, 0, HTTP1_EV_HEAD);
    assert_int_equal(h->status, 200);
    assert_int_equal(h->framing, HTTP1_BODY_CLOSE);
    assert_false(h->keep_alive);
    assert_int_equal(r->body_len, strlen("all of this until the FIN"));
    assert_int_equal(ev_of(r, 0, HTTP1_EV_END)->offset,
                     strlen(close_delimited));
    free(r);

    /* Without the FIN the message has not ended. */
    struct rec *open = frame(HTTP1_RESPONSES, close_delimited, get, 1, false);
    assert_int_equal(open->n, 2); /* BEGIN, HEAD */
    free(open);
}

/* nginx answering HEAD (Content-Length of the resource, no body), then
 * a GET on the same connection. */
static const char head_then_get[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Content-Type: text/html\r\n"
    "Content-Length: 615\r\n"
    "Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT\r\n"
    "Connection: keep-alive\r\n"
    "ETag: \"6434bbbe-267\"\r\n"
    "Accept-Ranges: bytes\r\n"
    "\r\n"
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Content-Length: 3\r\n"
    "\r\n"
    "abc";

static void test_head_response_has_no_body(void **state)
{
    (void)state;
    unsigned methods[] = {HTTP_HEAD, HTTP_GET};
    struct rec *r = frame(HTTP1_RESPONSES, head_then_get, methods, 2, true);
    assert_int_equal(r->status, HTTP1_OK);
    const struct ev *h = ev_of(r, 0, HTTP1_EV_HEAD);
    assert_int_equal(h->framing, HTTP1_BODY_NONE);
    assert_int_equal(h->method, HTTP_HEAD);
    const char *second = strstr(head_then_get + 1, "HTTP/1.1 200");
    assert_int_equal(ev_of(r, 0, HTTP1_EV_END)->offset,
                     second - head_then_get);
    assert_int_equal(ev_of(r, 1, HTTP1_EV_HEAD)->method, HTTP_GET);
    assert_int_equal(r->body_len, 3);
    assert_memory_equal(r->body, "abc", 3);
    free(r);

    /* Taken as an answer to GET, the same bytes are one 615-byte body
     * that the stream cuts short. */
    unsigned gets[] = {HTTP_GET, HTTP_GET};
    struct rec *g = frame(HTTP1_RESPONSES, head_then_get, gets, 2, true);
    assert_int_equal(g->status, HTTP1_ERROR);
    assert_string_equal(g->reason, "the stream ended inside a message body");
    free(g);
}

/* Expect: 100-continue: an interim response, then the final one; only
 * the final one answers the request. */
static const char continue_then_ok[] =
    "HTTP/1.1 100 Continue\r\n"
    "\r\n"
    "HTTP/1.1 201 Created\r\n"
    "Location: /items/7\r\n"
    "Content-Length: 2\r\n"
    "\r\n"
    "{}";

static void test_interim_100_continue(void **state)
{
    (void)state;
    unsigned post[] = {HTTP_POST};
    struct rec *r = frame(HTTP1_RESPONSES, continue_then_ok, post, 1, true);
    assert_int_equal(r->status, HTTP1_OK);
    assert_int_equal(r->n, 6);
    const struct ev *h0 = ev_of(r, 0, HTTP1_EV_HEAD);
    assert_int_equal(h0->status, 100);
    assert_true(h0->interim);
    assert_int_equal(h0->framing, HTTP1_BODY_NONE);
    assert_int_equal(ev_of(r, 0, HTTP1_EV_END)->offset, 25);
    const struct ev *h1 = ev_of(r, 1, HTTP1_EV_HEAD);
    assert_int_equal(h1->status, 201);
    assert_false(h1->interim);
    assert_int_equal(h1->method, HTTP_POST);
    free(r);

    /* With the method taken by the final response, another response
     * must wait for its request. */
    char more[256];
    snprintf(more, sizeof(more), "%sHTTP/1.1 200 OK\r\n\r\n",
             continue_then_ok);
    struct rec *b = frame(HTTP1_RESPONSES, more, post, 1, false);
    assert_int_equal(b->status, HTTP1_BLOCKED);
    assert_int_equal(b->consumed, strlen(continue_then_ok));
    free(b);
}

/* 204 and 304 never have a body, whatever Content-Length says. */
static const char no_content_not_modified[] =
    "HTTP/1.1 204 No Content\r\n"
    "Content-Length: 10\r\n"
    "\r\n"
    "HTTP/1.1 304 Not Modified\r\n"
    "ETag: \"abc\"\r\n"
    "Content-Length: 615\r\n"
    "\r\n"
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";

static void test_204_304_have_no_body(void **state)
{
    (void)state;
    unsigned gets[] = {HTTP_DELETE, HTTP_GET, HTTP_GET};
    struct rec *r =
        frame(HTTP1_RESPONSES, no_content_not_modified, gets, 3, true);
    assert_int_equal(r->status, HTTP1_OK);
    assert_int_equal(ev_of(r, 0, HTTP1_EV_HEAD)->framing, HTTP1_BODY_NONE);
    assert_int_equal(ev_of(r, 1, HTTP1_EV_HEAD)->framing, HTTP1_BODY_NONE);
    assert_int_equal(ev_of(r, 1, HTTP1_EV_HEAD)->status, 304);
    assert_int_equal(ev_of(r, 2, HTTP1_EV_HEAD)->status, 200);
    assert_int_equal(r->body_len, 1);
    free(r);
}

static void test_connection_close_ends_the_stream(void **state)
{
    (void)state;
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        "GET /more HTTP/1.1\r\nHost: a\r\n\r\n";
    struct rec *r = frame(HTTP1_REQUESTS, req, NULL, 0, true);
    assert_int_equal(r->status, HTTP1_ERROR);
    assert_string_equal(r->reason,
                        "data after a message that closed the connection");
    assert_false(ev_of(r, 0, HTTP1_EV_HEAD)->keep_alive);
    assert_int_equal(ev_of(r, 0, HTTP1_EV_END)->offset,
                     strstr(req, "GET /more") - req);
    free(r);

    /* HTTP/1.0 closes unless it asks to keep alive. */
    static const char v10[] = "GET / HTTP/1.0\r\n\r\n";
    struct rec *o = frame(HTTP1_REQUESTS, v10, NULL, 0, true);
    assert_int_equal(o->status, HTTP1_OK);
    assert_false(ev_of(o, 0, HTTP1_EV_HEAD)->keep_alive);
    free(o);
}

static void test_upgrade_stops_with_a_reason(void **state)
{
    (void)state;
    static const char ws[] =
        "GET /chat HTTP/1.1\r\n"
        "Host: server.example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
        "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    struct rec *r = frame(HTTP1_REQUESTS, ws, NULL, 0, false);
    assert_int_equal(r->status, HTTP1_STOPPED);
    assert_string_equal(r->reason, "Upgrade request to websocket");
    size_t head = strstr(ws, "\r\n\r\n") + 4 - ws;
    assert_int_equal(r->consumed, head);
    assert_int_equal(ev_of(r, 0, HTTP1_EV_END)->offset, head);
    free(r);

    static const char switching[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "\r\n"
        "\x81\x05hello";
    unsigned get[] = {HTTP_GET};
    struct rec *s = frame(HTTP1_RESPONSES, switching, get, 1, false);
    assert_int_equal(s->status, HTTP1_STOPPED);
    assert_string_equal(s->reason, "101 Switching Protocols to websocket");
    assert_int_equal(s->consumed, strstr(switching, "\x81") - switching);
    free(s);
}

static void test_connect_stops_with_a_reason(void **state)
{
    (void)state;
    static const char req[] =
        "CONNECT example.com:443 HTTP/1.1\r\n"
        "Host: example.com:443\r\n"
        "\r\n"
        "\x16\x03\x01\x02\x00\x01";
    struct rec *r = frame(HTTP1_REQUESTS, req, NULL, 0, false);
    assert_int_equal(r->status, HTTP1_STOPPED);
    assert_string_equal(r->reason,
                        "CONNECT request: the connection becomes a tunnel");
    assert_string_equal(ev_of(r, 0, HTTP1_EV_HEAD)->target,
                        "example.com:443");
    assert_int_equal(r->consumed, strstr(req, "\x16") - req);
    free(r);

    static const char resp[] =
        "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03";
    unsigned connect[] = {HTTP_CONNECT};
    struct rec *s = frame(HTTP1_RESPONSES, resp, connect, 1, false);
    assert_int_equal(s->status, HTTP1_STOPPED);
    assert_string_equal(s->reason,
                        "2xx answer to CONNECT: the connection is a tunnel");
    assert_int_equal(s->consumed, strlen(resp) - 3);
    free(s);

    /* A refused CONNECT stays HTTP. */
    static const char refused[] =
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    unsigned two[] = {HTTP_CONNECT, HTTP_GET};
    struct rec *f = frame(HTTP1_RESPONSES, refused, two, 2, true);
    assert_int_equal(f->status, HTTP1_OK);
    assert_int_equal(f->n, 6);
    free(f);
}

static void test_response_waits_for_its_request(void **state)
{
    (void)state;
    struct rec r;
    memset(&r, 0, sizeof(r));
    struct http1 *h = http1_new(HTTP1_RESPONSES, NULL, on_event, &r);
    static const char resp[] = "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    size_t used = 99;
    assert_int_equal(http1_feed(h, (const uint8_t *)resp, strlen(resp), &used),
                     HTTP1_BLOCKED);
    assert_int_equal(used, 2); /* the line break only */
    assert_int_equal(r.n, 0);
    assert_true(http1_expect(h, HTTP_GET));
    assert_int_equal(http1_feed(h, (const uint8_t *)resp + used,
                                strlen(resp) - used, &used),
                     HTTP1_OK);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.ev[0].offset, 2);
    assert_int_equal(http1_messages(h), 1);
    http1_free(h);
}

static void test_limits_are_errors(void **state)
{
    (void)state;
    struct rec r;
    char big[2048];
    size_t n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 20; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "X-H%d: v\r\n", i);
    }
    snprintf(big + n, sizeof(big) - n, "\r\n");
    struct http1_limits few = {.max_headers = 10};
    memset(&r, 0, sizeof(r));
    struct http1 *h = http1_new(HTTP1_REQUESTS, &few, on_event, &r);
    assert_int_equal(http1_feed(h, (const uint8_t *)big, strlen(big), NULL),
                     HTTP1_ERROR);
    assert_string_equal(http1_reason(h), "more than 10 header fields");
    /* Errors are sticky. */
    assert_int_equal(http1_feed(h, (const uint8_t *)"x", 1, NULL),
                     HTTP1_ERROR);
    http1_free(h);

    struct http1_limits small = {.max_head = 100};
    memset(&r, 0, sizeof(r));
    h = http1_new(HTTP1_REQUESTS, &small, on_event, &r);
    assert_int_equal(http1_feed(h, (const uint8_t *)big, strlen(big), NULL),
                     HTTP1_ERROR);
    assert_string_equal(http1_reason(h),
                        "message head is larger than 100 bytes");
    http1_free(h);

    /* The pipelining queue is bounded. */
    struct http1_limits depth = {.max_pipeline = 2};
    h = http1_new(HTTP1_RESPONSES, &depth, on_event, &r);
    assert_true(http1_expect(h, HTTP_GET));
    assert_true(http1_expect(h, HTTP_GET));
    assert_false(http1_expect(h, HTTP_GET));
    http1_free(h);
}

static void test_malformed_streams_are_errors(void **state)
{
    (void)state;
    /* Content-Length with chunked: a smuggling attempt (RFC 9112 6.3). */
    static const char smuggle[] =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    struct rec *r = frame(HTTP1_REQUESTS, smuggle, NULL, 0, true);
    assert_int_equal(r->status, HTTP1_ERROR);
    assert_non_null(strstr(r->reason, "malformed HTTP/1"));
    free(r);

    static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    r = frame(HTTP1_REQUESTS, h2, NULL, 0, true);
    assert_int_equal(r->status, HTTP1_ERROR);
    free(r);

    static const char tls[] = "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03";
    r = frame(HTTP1_REQUESTS, tls, NULL, 0, true);
    assert_int_equal(r->status, HTTP1_ERROR);
    assert_int_equal(r->n, 0);
    free(r);

    static const char cut[] = "GET / HTTP/1.1\r\nHost: a\r\n";
    r = frame(HTTP1_REQUESTS, cut, NULL, 0, true);
    assert_int_equal(r->status, HTTP1_ERROR);
    assert_string_equal(r->reason, "the stream ended inside a message head");
    free(r);
}

static void test_version_is_the_first_requests(void **state)
{
    (void)state;
    struct rec r;
    memset(&r, 0, sizeof(r));
    struct http1 *h = http1_new(HTTP1_REQUESTS, NULL, on_event, &r);
    unsigned major = 9, minor = 9;
    http1_version(h, &major, &minor);
    assert_int_equal(major, 0);
    static const char reqs[] =
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        "GET / HTTP/1.1\r\n\r\n";
    assert_int_equal(http1_feed(h, (const uint8_t *)reqs, strlen(reqs), NULL),
                     HTTP1_OK);
    http1_version(h, &major, &minor);
    assert_int_equal(major, 1);
    assert_int_equal(minor, 0);
    assert_true(r.ev[1].keep_alive);
    http1_free(h);
}

static void test_reset_after_a_gap(void **state)
{
    (void)state;
    struct rec r;
    memset(&r, 0, sizeof(r));
    struct http1 *h = http1_new(HTTP1_REQUESTS, NULL, on_event, &r);
    static const char part[] = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nab";
    assert_int_equal(http1_feed(h, (const uint8_t *)part, strlen(part), NULL),
                     HTTP1_OK);
    /* 500 bytes lost; the next request found at stream offset 1000. */
    http1_reset(h, 1000);
    static const char next[] = "GET /x HTTP/1.1\r\n\r\n";
    assert_int_equal(http1_feed(h, (const uint8_t *)next, strlen(next), NULL),
                     HTTP1_OK);
    assert_int_equal(r.ev[r.n - 3].kind, HTTP1_EV_BEGIN);
    assert_int_equal(r.ev[r.n - 3].offset, 1000);
    assert_int_equal(r.ev[r.n - 1].offset, 1000 + strlen(next));
    http1_free(h);
}

static void test_find_request_after_a_gap(void **state)
{
    (void)state;
    size_t off = 99;
    /* The middle of a body, then the next request on a line of its own;
     * a request line inside a body line does not count. */
    static const char d1[] =
        "tail of a body GET / HTTP/1.1\r\n"
        "more\r\n"
        "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(http1_find_request((const uint8_t *)d1, strlen(d1), 0,
                                        &off),
                     HTTP1_SYNC_FOUND);
    assert_int_equal(off, strstr(d1, "GET /next") - d1);

    /* A line that looks like a request but whose headers do not parse. */
    static const char d2[] =
        "GET / HTTP/1.1\r\nno colon here\r\n\r\n"
        "POST /ok HTTP/1.0\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(http1_find_request((const uint8_t *)d2, strlen(d2), 0,
                                        &off),
                     HTTP1_SYNC_FOUND);
    assert_int_equal(off, strstr(d2, "POST") - d2);

    /* A candidate not complete yet: keep it and wait. */
    static const char d3[] = "garbage\r\nGET /a HTTP/1.1\r\nHost: a\r\n";
    assert_int_equal(http1_find_request((const uint8_t *)d3, strlen(d3), 0,
                                        &off),
                     HTTP1_SYNC_NEED_MORE);
    assert_int_equal(off, 9);
    static const char d4[] = "garbage\r\nGE";
    assert_int_equal(http1_find_request((const uint8_t *)d4, strlen(d4), 0,
                                        &off),
                     HTTP1_SYNC_NEED_MORE);
    assert_int_equal(off, 9);

    /* Nothing: all complete lines can go, the last partial line stays. */
    static const char d5[] = "abc\r\nFOO / HTTP/1.1\r\n\r\nxyz";
    assert_int_equal(http1_find_request((const uint8_t *)d5, strlen(d5), 0,
                                        &off),
                     HTTP1_SYNC_NEED_MORE);
    assert_int_equal(off, strlen(d5) - 3);
    static const char d6[] = "abc\r\n";
    assert_int_equal(http1_find_request((const uint8_t *)d6, strlen(d6), 0,
                                        &off),
                     HTTP1_SYNC_NEED_MORE);
    assert_int_equal(off, strlen(d6));

    /* Smuggling-shaped framing is no boundary. */
    static const char d7[] =
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    assert_int_equal(http1_find_request((const uint8_t *)d7, strlen(d7), 0,
                                        &off),
                     HTTP1_SYNC_NEED_MORE);
    assert_int_equal(off, strlen(d7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length_and_pipelining),
        cmocka_unit_test(test_chunked_with_trailers),
        cmocka_unit_test(test_close_delimited_body),
        cmocka_unit_test(test_head_response_has_no_body),
        cmocka_unit_test(test_interim_100_continue),
        cmocka_unit_test(test_204_304_have_no_body),
        cmocka_unit_test(test_connection_close_ends_the_stream),
        cmocka_unit_test(test_upgrade_stops_with_a_reason),
        cmocka_unit_test(test_connect_stops_with_a_reason),
        cmocka_unit_test(test_response_waits_for_its_request),
        cmocka_unit_test(test_limits_are_errors),
        cmocka_unit_test(test_malformed_streams_are_errors),
        cmocka_unit_test(test_version_is_the_first_requests),
        cmocka_unit_test(test_reset_after_a_gap),
        cmocka_unit_test(test_find_request_after_a_gap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
