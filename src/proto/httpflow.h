/*
 * The per-connection request transform of HTTP-aware mirroring: a
 * mirrored client stream goes in (bytes in any chunking, capture gaps,
 * the end), an ordered list of actions for the local connection comes
 * out (bytes to forward, requests dropped, "reconnect", "pass through").
 *
 *  - httpflow_config: the options compiled once (regular expressions,
 *    header rewrites), immutable, shared by every connection.
 *  - httpflow_rate: a token bucket for --max-rate, one per target, shared
 *    by that target's connections.
 *  - httpflow: one mirrored connection.
 *
 * What is forwarded: request heads as they came, or rebuilt when a
 * rewrite is configured (httpmsg_rewrite_head(): Content-Length and
 * Transfer-Encoding are never touched, so the body that follows still
 * fits), and bodies as they came (chunked framing included), streamed.
 * A head is held until it is complete (bounded by the head limit); it is
 * then forwarded or dropped with its body. With no option set, the bytes
 * forwarded are the bytes fed.
 *
 * The output does not depend on how the stream is cut: feeding it whole,
 * byte by byte or at any split gives the same forwarded bytes and the
 * same other actions at the same places in them (forwarded bytes may come
 * in more or fewer pieces).
 *
 * Pure: no I/O, no globals, no clock (the caller passes timestamps).
 */
#ifndef TAPMIRROR_HTTPFLOW_H
#define TAPMIRROR_HTTPFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum httpflow_gap_policy {
    HTTPFLOW_GAP_RESYNC, /* abandon the damaged request, resume at the
                          * next request boundary (default) */
    HTTPFLOW_GAP_SPLICE, /* go on as if the bytes were contiguous (what
                          * the local server then receives: raw splice) */
};

/* The options, as the command line gives them. Every list may be empty. */
struct httpflow_options {
    const char *const *match_methods; /* "GET,HEAD" lists; union */
    size_t n_match_methods;
    const char *const *match_paths; /* ERE on the path; any may match */
    size_t n_match_paths;
    const char *const *skip_paths; /* ERE on the path; any drops */
    size_t n_skip_paths;
    const char *const *match_headers; /* "NAME: ERE"; all must match */
    size_t n_match_headers;
    bool safe_methods; /* only GET, HEAD, OPTIONS */

    bool sample;           /* --sample given */
    double sample_percent; /* 0..100 */
    bool sample_requests;  /* sample requests, not connections */

    const char *const *set_headers; /* "NAME: VALUE" */
    size_t n_set_headers;
    const char *const *drop_headers; /* names */
    size_t n_drop_headers;
    const char *host; /* NULL: keep Host */
    bool mark;        /* add X-Tapmirror: 1 */

    bool redact_replay; /* redact credentials in forwarded heads */
    const char *const *redact_headers; /* names beyond the default four */
    size_t n_redact_headers;

    enum httpflow_gap_policy gap_policy;
    size_t max_head; /* 0: HTTP1_DEFAULT_MAX_HEAD */
};

struct httpflow_config;

/*
 * Compiles the options. Returns 0 and *out, or -1 with a one-line reason
 * in err (a regular expression that does not compile, a method that is
 * not a token, "NAME: VALUE" without the colon, a header name that is not
 * a token, a value with CR, LF or NUL, a rewrite of Content-Length or
 * Transfer-Encoding, a percentage outside 0..100).
 */
int httpflow_config_new(const struct httpflow_options *opts,
                        struct httpflow_config **out, char *err,
                        size_t errlen);
void httpflow_config_free(struct httpflow_config *cfg);

/* ---- rate limit ----------------------------------------------------- */

struct httpflow_rate;

/* At most `per_second` (> 0) admissions per second, with a burst of one
 * second's worth; the bucket starts full. */
struct httpflow_rate *httpflow_rate_new(uint64_t per_second);
void httpflow_rate_free(struct httpflow_rate *r);

/* Takes one admission at time `now_ns` (any monotonic origin; time going
 * back refills nothing). False when the bucket is empty (counted). */
bool httpflow_rate_take(struct httpflow_rate *r, uint64_t now_ns);
uint64_t httpflow_rate_refused(const struct httpflow_rate *r);

/* ---- one connection ------------------------------------------------- */

enum httpflow_action_kind {
    HTTPFLOW_FORWARD,     /* send data[len] on the local connection
                           * (open one first if there is none) */
    HTTPFLOW_DROP,        /* a request (or the whole connection) dropped */
    HTTPFLOW_RECONNECT,   /* close the local connection: it holds part of
                           * a request lost to a gap; what follows goes on
                           * a new one */
    HTTPFLOW_PASSTHROUGH, /* from here on everything is forwarded as it
                           * comes, untouched: `reason` says why */
};

enum httpflow_drop_reason {
    HTTPFLOW_DROP_FILTER,
    HTTPFLOW_DROP_SAMPLE,
    HTTPFLOW_DROP_RATE,
};

struct httpflow_action {
    enum httpflow_action_kind kind;
    const uint8_t *data; /* FORWARD; valid during the call only */
    size_t len;
    enum httpflow_drop_reason drop; /* DROP */
    bool connection;     /* DROP: the whole (non-HTTP) connection */
    uint64_t request;    /* DROP: the request's number, from 0 */
    const char *reason;  /* PASSTHROUGH, RECONNECT: one line */
};

typedef void httpflow_emit_fn(void *ctx, const struct httpflow_action *a);

struct httpflow_counts {
    uint64_t requests_seen; /* heads read whole */
    uint64_t requests_forwarded;
    uint64_t requests_rewritten; /* forwarded with a changed head */
    uint64_t dropped_filter, dropped_sample, dropped_rate;
    uint64_t lost_to_gaps; /* requests damaged by a gap, abandoned */
    uint64_t reconnects;
    uint64_t gaps;
    uint64_t bytes_forwarded;
    bool passed_through; /* not HTTP/1: passed through untouched */
    bool switched;       /* Upgrade/CONNECT: passed through after it */
    bool connection_dropped; /* not HTTP/1 and not sampled or over rate */
};

struct httpflow;

/*
 * A connection. `cfg` and `rate` (may be NULL) outlive it. `flow_key`
 * identifies the connection the same way on every run of the same
 * capture (for instance a hash of its 4-tuple and first timestamp): the
 * sample is a fixed function of it. `emit` receives every action.
 */
struct httpflow *httpflow_new(const struct httpflow_config *cfg,
                              struct httpflow_rate *rate, uint64_t flow_key,
                              httpflow_emit_fn *emit, void *ctx);
void httpflow_free(struct httpflow *f);

/* The next bytes of the client stream, captured at `now_ns`. */
void httpflow_feed(struct httpflow *f, const uint8_t *data, size_t len,
                   uint64_t now_ns);

/* `len` bytes of the client stream were lost (a capture hole skipped). */
void httpflow_gap(struct httpflow *f, uint64_t len, uint64_t now_ns);

/* The client stream ended. A request head still incomplete is forwarded
 * when no option selects requests (filters, sample, rate), else dropped. */
void httpflow_finish(struct httpflow *f);

/* Bytes forwarded since the last RECONNECT (0: no local connection is
 * needed yet), and the counters. */
uint64_t httpflow_forwarded(const struct httpflow *f);

/* Client bytes the flow holds and has not decided on yet (a head being
 * read, the search after a gap): what it adds to the caller's memory. */
size_t httpflow_held(const struct httpflow *f);
const struct httpflow_counts *httpflow_counts(const struct httpflow *f);

/* Why the connection left HTTP/1 (passed through or discarded), one
 * line; "" while it has not. */
const char *httpflow_reason(const struct httpflow *f);

/* The deterministic sample: whether `key` falls in `percent`. */
bool httpflow_sampled(uint64_t key, double percent);

#endif
