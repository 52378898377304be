/*
 * fuzz_httpflow: the per-connection request transform (httpflow.c) on
 * hostile client streams with capture gaps.
 *
 * Input layout:
 *   byte 0     options: bit 0 filters (--match-method GET,POST,HEAD and
 *              --skip-path ^/x); bit 1 rewrite (--set-header, --drop-header
 *              user-agent, --host, --mark); bit 2 --redact-replay; bit 3
 *              --gap-policy splice; bit 4 --sample 50 --sample-requests;
 *              bit 5 --max-rate 3/s; bits 6-7 head limit (0 default, else
 *              128 << (n - 1))
 *   byte 1     PRNG seed for the chunked feeding
 *   rest       the client stream; each "\xffG\xff" is a capture gap of
 *              1 to 40 bytes (a function of where it is), so gaps end
 *              inside, at and past the end of Content-Length bodies
 *
 * Checks: fed whole, byte by byte and in PRNG-sized chunks (each its own
 * heap block), the same output (forwarded bytes with the other actions at
 * their places) and counters; with no option set and no gap the forwarded
 * bytes are the input; up to a pass-through, the bytes forwarded on each
 * local connection frame as requests (http1 finds no error, but for the
 * head a pass-through follows) and, without a pass-through, their heads
 * number the requests forwarded; nothing is forwarded before a
 * local connection would be needed; reasons are one line.
 */
#include "fuzz_common.h"
#include "proto/http1.h"
#include "proto/httpflow.h"

#define GAP_MARK "\xffG\xff"

struct out {
    uint8_t *buf; /* forwarded bytes and markers */
    size_t len, cap;
    uint8_t *fwd; /* forwarded bytes only */
    size_t fwd_len, fwd_cap;
    /* Where each local connection ends in fwd (at RECONNECT), and where
     * HTTP ends (at PASSTHROUGH; SIZE_MAX: never). */
    size_t cuts[64];
    size_t n_cuts;
    size_t pass_at;
};

static void grow(uint8_t **b, size_t *len, size_t *cap, const void *p,
                 size_t n)
{
    if (*len + n > *cap) {
        *cap = (*len + n) * 2 + 64;
        *b = realloc(*b, *cap);
        FZ_CHECK(*b != NULL, "out of memory");
    }
    memcpy(*b + *len, p, n);
    *len += n;
}

static void on_action(void *ctx, const struct httpflow_action *a)
{
    struct out *o = ctx;
    char m[64];
    int n = 0;
    switch (a->kind) {
    case HTTPFLOW_FORWARD:
        FZ_CHECK(a->len > 0, "empty forward");
        grow(&o->buf, &o->len, &o->cap, a->data, a->len);
        grow(&o->fwd, &o->fwd_len, &o->fwd_cap, a->data, a->len);
        return;
    case HTTPFLOW_DROP:
        n = snprintf(m, sizeof(m), "{drop %d %d %llu}", (int)a->drop,
                     a->connection, (unsigned long long)a->request);
        break;
    case HTTPFLOW_RECONNECT:
        if (o->n_cuts < 64 && o->pass_at == SIZE_MAX) {
            o->cuts[o->n_cuts++] = o->fwd_len;
        }
        n = snprintf(m, sizeof(m), "{reconnect}");
        FZ_CHECK(strchr(a->reason, '\n') == NULL, "reason not one line");
        break;
    case HTTPFLOW_PASSTHROUGH:
        FZ_CHECK(o->pass_at == SIZE_MAX, "passed through twice");
        o->pass_at = o->fwd_len;
        FZ_CHECK(strchr(a->reason, '\n') == NULL, "reason not one line");
        n = snprintf(m, sizeof(m), "{pass %s}", a->reason);
        break;
    }
    grow(&o->buf, &o->len, &o->cap, m, (size_t)n);
}

struct heads {
    uint64_t n;
};

static void count_heads(void *ctx, const struct http1_event *e)
{
    struct heads *h = ctx;
    if (e->kind == HTTP1_EV_HEAD) {
        h->n++;
    }
}

static struct httpflow_config *make_config(uint8_t flags)
{
    static const char *const methods[] = {"GET,POST,HEAD"};
    static const char *const skip[] = {"^/x"};
    static const char *const set[] = {"X-Env: shadow"};
    static const char *const drop[] = {"user-agent"};
    static const char *const redact[] = {"x-api-key"};
    struct httpflow_options o = {0};
    if (flags & 1) {
        o.match_methods = methods;
        o.n_match_methods = 1;
        o.skip_paths = skip;
        o.n_skip_paths = 1;
    }
    if (flags & 2) {
        o.set_headers = set;
        o.n_set_headers = 1;
        o.drop_headers = drop;
        o.n_drop_headers = 1;
        o.host = "localhost:9090";
        o.mark = true;
    }
    if (flags & 4) {
        o.redact_replay = true;
        o.redact_headers = redact;
        o.n_redact_headers = 1;
    }
    o.gap_policy = (flags & 8) ? HTTPFLOW_GAP_SPLICE : HTTPFLOW_GAP_RESYNC;
    if (flags & 16) {
        o.sample = true;
        o.sample_percent = 50;
        o.sample_requests = true;
    }
    unsigned sel = flags >> 6;
    o.max_head = sel == 0 ? 0 : (size_t)128 << (sel - 1);
    struct httpflow_config *c = NULL;
    char err[256];
    FZ_CHECK(httpflow_config_new(&o, &c, err, sizeof(err)) == 0,
             "config: %s", err);
    return c;
}

struct result {
    struct out out;
    struct httpflow_counts counts;
    uint64_t forwarded;
};

/* mode 0 whole, 1 byte by byte, 2 PRNG chunks. */
static void run(const struct httpflow_config *cfg, bool rate,
                const uint8_t *s, size_t n, int mode, uint64_t seed,
                struct result *r)
{
    memset(r, 0, sizeof(*r));
    r->out.pass_at = SIZE_MAX;
    struct httpflow_rate *rl = rate ? httpflow_rate_new(3) : NULL;
    struct httpflow *f = httpflow_new(cfg, rl, 42, on_action, &r->out);
    uint64_t now = 0;
    size_t pos = 0;
    while (pos < n) {
        /* The next part: up to a gap mark. */
        size_t end = pos;
        while (end < n && !(n - end >= 3 && memcmp(s + end, GAP_MARK, 3) == 0)) {
            end++;
        }
        while (pos < end) {
            size_t step = mode == 0 ? end - pos
                        : mode == 1 ? 1
                                    : 1 + (size_t)(fz_rand(&seed) % 64);
            step = step > end - pos ? end - pos : step;
            uint8_t *piece = malloc(step);
            FZ_CHECK(piece != NULL, "out of memory");
            memcpy(piece, s + pos, step);
            httpflow_feed(f, piece, step, now);
            free(piece);
            pos += step;
        }
        if (end < n) {
            now += 400000000; /* time moves at gaps only: same for all */
            httpflow_gap(f, 1 + end % 40, now);
            pos = end + 3;
        }
    }
    httpflow_finish(f);
    r->counts = *httpflow_counts(f);
    r->forwarded = httpflow_forwarded(f);
    FZ_CHECK(strchr(httpflow_reason(f), '\n') == NULL, "reason not one line");
    httpflow_free(f);
    httpflow_rate_free(rl);
}

static void same(const struct result *a, const struct result *b,
                 const char *how)
{
    FZ_CHECK(a->out.len == b->out.len &&
                 (a->out.len == 0 ||
                  memcmp(a->out.buf, b->out.buf, a->out.len) == 0),
             "output differs when fed %s", how);
    FZ_CHECK(memcmp(&a->counts, &b->counts, sizeof(a->counts)) == 0,
             "counters differ when fed %s", how);
    FZ_CHECK(a->forwarded == b->forwarded, "forwarded differs fed %s", how);
}

/* The bytes of each local connection, up to a pass-through, frame as
 * requests; their heads count the requests forwarded. */
static void reparse(const struct result *r, size_t max_head)
{
    const struct out *o = &r->out;
    size_t http_end = o->pass_at == SIZE_MAX ? o->fwd_len : o->pass_at;
    uint64_t heads_total = 0;
    size_t start = 0;
    for (size_t i = 0; i <= o->n_cuts; i++) {
        size_t end = i < o->n_cuts ? o->cuts[i] : http_end;
        if (end > http_end) {
            end = http_end;
        }
        if (end < start) {
            break;
        }
        if (end == start) {
            continue;
        }
        struct heads h = {0};
        /* A rewritten head may be longer than the limit it was read with. */
        struct http1_limits lim = {max_head ? 4 * max_head : 0, 256, 0};
        struct http1 *p = http1_new(HTTP1_REQUESTS, &lim, count_heads, &h);
        size_t used = 0;
        enum http1_status st = http1_feed(p, o->fwd + start, end - start, &used);
        /* The connection a pass-through ends may end in the head that
         * made the framer fail: http_parser reports some heads whole and
         * refuses them after (a Transfer-Encoding that is not chunked). */
        bool last = i == o->n_cuts;
        FZ_CHECK(st != HTTP1_ERROR || (last && o->pass_at != SIZE_MAX),
                 "forwarded bytes do not frame: %s", http1_reason(p));
        heads_total += h.n;
        http1_free(p);
        start = end;
    }
    if (o->n_cuts < 64 && o->pass_at == SIZE_MAX) {
        FZ_CHECK(heads_total == r->counts.requests_forwarded,
                 "%llu heads forwarded, %llu counted",
                 (unsigned long long)heads_total,
                 (unsigned long long)r->counts.requests_forwarded);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 16384) {
        return 0;
    }
    uint8_t flags = data[0];
    uint64_t seed = data[1];
    const uint8_t *s = data + 2;
    size_t n = size - 2;
    struct httpflow_config *cfg = make_config(flags);
    bool rate = (flags & 32) != 0;

    struct result whole, bytes, chunks;
    run(cfg, rate, s, n, 0, seed, &whole);
    run(cfg, rate, s, n, 1, seed, &bytes);
    same(&whole, &bytes, "byte by byte");
    run(cfg, rate, s, n, 2, seed, &chunks);
    same(&whole, &chunks, "in chunks");

    bool gaps = false;
    for (size_t i = 0; i + 3 <= n && !gaps; i++) {
        gaps = memcmp(s + i, GAP_MARK, 3) == 0;
    }
    if ((flags & 0x3f) == 0 && !gaps) {
        FZ_CHECK(whole.out.fwd_len == n &&
                     (n == 0 || memcmp(whole.out.fwd, s, n) == 0),
                 "with no option the output is not the input");
    }
    FZ_CHECK(whole.counts.requests_rewritten <=
                 whole.counts.requests_forwarded,
             "more requests rewritten than forwarded");
    if ((flags & 6) == 0) {
        FZ_CHECK(whole.counts.requests_rewritten == 0,
                 "a head rewritten with no rewrite option");
    }
    if (whole.out.len > 0 && whole.out.fwd_len == 0) {
        FZ_CHECK(whole.forwarded == 0 && whole.counts.bytes_forwarded == 0,
                 "forwarded bytes counted that were not forwarded");
    }
    unsigned sel = flags >> 6;
    reparse(&whole, sel == 0 ? 0 : (size_t)128 << (sel - 1));

    struct result *all[] = {&whole, &bytes, &chunks};
    for (size_t i = 0; i < 3; i++) {
        free(all[i]->out.buf);
        free(all[i]->out.fwd);
    }
    httpflow_config_free(cfg);
    return 0;
}
