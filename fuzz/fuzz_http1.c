/*
 * fuzz_http1: the HTTP/1 framer (http1.c) on hostile streams, plus the
 * request boundary search and header redaction on the same bytes.
 *
 * Input layout:
 *   byte 0     bit 0: a response stream (else requests); bits 1-2: the
 *              first of the request methods answered (GET, HEAD, POST,
 *              CONNECT, then cycling); bits 3-7: a head limit selector
 *   byte 1     PRNG seed for the chunked feeding
 *   rest       the stream
 *
 * Checks: fed whole, byte by byte and in PRNG-sized chunks, the framer
 * gives the same events (kinds, offsets, message numbers, head fields,
 * body bytes), the same status and reason, and the same consumed count
 * unless the stream is in error (where a head limit is noticed depends on
 * the pieces http_parser hands over); body bytes
 * are the stream's bytes at their offsets (chunked framing removed, not
 * rewritten); BEGIN <= HEAD <= every body byte <= END within a message;
 * offsets never pass what was consumed; http1_find_request() returns an
 * offset inside the input, at a line start; httpmsg_redact() changes
 * only bytes to 'x' and keeps the length. sniff_first_bytes() on the same
 * stream: a TLS verdict holds for every shorter prefix (a short first
 * segment is judged alike), and a stream the request framer accepted
 * whole is never TLS (byte 22 starts no request).
 */
#include "fuzz_common.h"
#include "proto/http1.h"
#include "proto/httpmsg.h"
#include "proto/sniff.h"

static const unsigned methods[] = {1 /* GET */, 2 /* HEAD */, 3 /* POST */,
                                   5 /* CONNECT */};

struct trace {
    const uint8_t *stream;
    size_t stream_len;
    uint64_t digest;
    uint64_t events;
    uint64_t begin, head_end;
    bool in_message;
};

FZ_NO_COVERAGE static void mix(struct trace *t, uint64_t v)
{
    t->digest = fz_mix(t->digest ^ v);
}

static void on_event(void *ctx, const struct http1_event *e)
{
    struct trace *t = ctx;
    if (e->kind != HTTP1_EV_BODY) {
        /* Body events split where the feeding did; their bytes count. */
        t->events++;
        mix(t, (uint64_t)e->kind);
        mix(t, e->offset);
        mix(t, e->index);
    }
    switch (e->kind) {
    case HTTP1_EV_BEGIN:
        FZ_CHECK(!t->in_message, "BEGIN inside a message");
        t->in_message = true;
        t->begin = e->offset;
        t->head_end = e->offset;
        break;
    case HTTP1_EV_HEAD: {
        FZ_CHECK(t->in_message, "HEAD outside a message");
        FZ_CHECK(e->offset > t->begin, "head ends before it starts");
        t->head_end = e->offset;
        const struct http1_head *h = e->head;
        mix(t, h->status);
        mix(t, h->method);
        mix(t, (uint64_t)h->framing);
        mix(t, h->keep_alive);
        mix(t, h->interim);
        mix(t, h->header_count);
        mix(t, fz_fnv64((const uint8_t *)h->target, h->target_len));
        for (size_t i = 0; i < h->header_count; i++) {
            mix(t, fz_fnv64((const uint8_t *)h->headers[i].name,
                            h->headers[i].name_len));
            mix(t, fz_fnv64((const uint8_t *)h->headers[i].value,
                            h->headers[i].value_len));
        }
        char ep[128];
        size_t n = httpmsg_endpoint(h->method_name ? h->method_name : "?",
                                    h->target, h->target_len, ep, sizeof(ep));
        FZ_CHECK(n < sizeof(ep) && strlen(ep) == n, "endpoint length");
        break;
    }
    case HTTP1_EV_BODY:
        FZ_CHECK(t->in_message && e->offset >= t->head_end,
                 "body before the head ends");
        FZ_CHECK(e->offset <= t->stream_len &&
                     e->len <= t->stream_len - e->offset,
                 "body outside the stream");
        FZ_CHECK(memcmp(t->stream + e->offset, e->data, e->len) == 0,
                 "body bytes are not the stream's");
        for (size_t i = 0; i < e->len; i++) {
            mix(t, (e->offset + i) << 8 | e->data[i]);
        }
        break;
    case HTTP1_EV_END:
        FZ_CHECK(t->in_message && e->offset >= t->head_end,
                 "END before the head ends");
        t->in_message = false;
        break;
    }
}

struct result {
    uint64_t digest, events;
    enum http1_status status;
    size_t consumed;
    char reason[160];
};

/* mode 0 whole, 1 byte by byte, 2 PRNG chunks. */
static void run(const uint8_t *s, size_t n, bool responses, unsigned first,
                size_t max_head, int mode, uint64_t seed, struct result *r)
{
    struct trace t = {s, n, 0, 0, 0, 0, false};
    struct http1_limits lim = {max_head, 0, 4};
    struct http1 *h = http1_new(responses ? HTTP1_RESPONSES : HTTP1_REQUESTS,
                                &lim, on_event, &t);
    unsigned next = first;
    size_t pos = 0;
    enum http1_status st = HTTP1_OK;
    while (pos < n) {
        size_t step = mode == 0 ? n - pos
                    : mode == 1 ? 1
                                : 1 + (size_t)(fz_rand(&seed) % 64);
        step = step > n - pos ? n - pos : step;
        size_t used = 0;
        st = http1_feed(h, s + pos, step, &used);
        FZ_CHECK(used <= step, "consumed more than fed");
        pos += used;
        FZ_CHECK(http1_offset(h) == pos, "offset is not what was consumed");
        if (st == HTTP1_BLOCKED) {
            FZ_CHECK(responses, "a request stream blocked");
            FZ_CHECK(http1_expect(h, methods[next++ % 4]), "queue full");
            st = HTTP1_OK;
        } else if (st != HTTP1_OK) {
            break;
        }
    }
    if (st == HTTP1_OK) {
        st = http1_finish(h);
    }
    const char *why = http1_reason(h);
    FZ_CHECK((st == HTTP1_OK) == (why[0] == '\0'), "reason and status");
    FZ_CHECK(strchr(why, '\n') == NULL, "reason is not one line");
    r->digest = t.digest;
    r->events = t.events;
    r->status = st;
    r->consumed = pos;
    snprintf(r->reason, sizeof(r->reason), "%s", why);
    http1_free(h);
}

static void same(const struct result *a, const struct result *b,
                 const char *how)
{
    FZ_CHECK(a->events == b->events && a->digest == b->digest,
             "events differ when fed %s", how);
    FZ_CHECK(a->status == b->status, "status differs when fed %s", how);
    /* Where a byte is refused may depend on the cut (a head limit is
     * noticed per callback piece); where framing stops may not. */
    FZ_CHECK(a->status == HTTP1_ERROR || a->consumed == b->consumed,
             "consumed differs when fed %s", how);
    FZ_CHECK(strcmp(a->reason, b->reason) == 0, "reason differs fed %s: %s / %s",
             how, a->reason, b->reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 16384) {
        return 0;
    }
    bool responses = data[0] & 1;
    unsigned first = (data[0] >> 1) & 3;
    size_t max_head = (data[0] >> 3) == 0 ? 0 : (size_t)(data[0] >> 3) * 16;
    uint64_t seed = data[1];
    const uint8_t *s = data + 2;
    size_t n = size - 2;

    struct result whole, bytes, chunks;
    run(s, n, responses, first, max_head, 0, seed, &whole);
    run(s, n, responses, first, max_head, 1, seed, &bytes);
    same(&whole, &bytes, "byte by byte");
    run(s, n, responses, first, max_head, 2, seed, &chunks);
    same(&whole, &chunks, "in chunks");

    size_t off = n + 1;
    enum http1_sync sync = http1_find_request(s, n, max_head, &off);
    FZ_CHECK(off <= n, "sync offset outside the input");
    if (sync == HTTP1_SYNC_FOUND) {
        FZ_CHECK(off < n && (off == 0 || s[off - 1] == '\n'),
                 "a request found not at a line start");
    }

    if (sniff_first_bytes(s, n) == SNIFF_TLS) {
        for (size_t k = 1; k < n && k < 8; k++) {
            FZ_CHECK(sniff_first_bytes(s, k) == SNIFF_TLS,
                     "a TLS stream's %zu-byte prefix is not TLS", k);
        }
        FZ_CHECK(responses || whole.events == 0,
                 "a TLS stream framed as requests");
    }

    uint8_t *copy = malloc(n ? n : 1);
    FZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, s, n);
    const char *extra[] = {"x-api-key"};
    httpmsg_redact(copy, n, extra, 1);
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK(copy[i] == s[i] || copy[i] == 'x', "redaction changed %zu", i);
    }
    free(copy);
    return 0;
}
