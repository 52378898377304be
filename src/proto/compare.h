/*
 * Shadow comparison: production's answers against a local target's, per
 * mirrored connection, with a run-wide report.
 *
 * A compare_conn is fed three byte streams of one connection, each in
 * any chunking and in any interleaving with the others:
 *
 *   COMPARE_CLIENT  the client's requests (as captured)
 *   COMPARE_PROD    production's responses (as captured)
 *   COMPARE_LOCAL   the local target's responses (as read by the replay)
 *
 * plus, per stream, gaps (bytes the capture missed) and the end. Every
 * chunk carries a timestamp in ns: capture time for the first two, the
 * replay's clock for the local one (see compare_conn_sent() for the time
 * a request reached the local target).
 *
 * HTTP/1.0 and 1.1 (decided from the first request line): the n-th
 * request is paired with production's n-th and the local n-th final
 * response (1xx interim responses are skipped), framed as http1.h does
 * (Content-Length, chunked, close-delimited, HEAD, 204/304, pipelining).
 * Each exchange is reported once, through the callback, with an outcome:
 *
 *   SAME            no difference, or only differences in noise fields
 *   DIFFER          status, headers (httpmsg_compare_headers) or body:
 *                   decoded, JSON structurally (jsondiff), other bodies
 *                   by size and first differing offset
 *   NOT_COMPARABLE  with a reason: a gap, a response the capture never
 *                   saw, a local target that closed or timed out, a
 *                   limit, a protocol switch, a malformed message
 *
 * Exchanges are reported in request order, except those refused at the
 * waiting cap, which are reported when their request ends.
 *
 * A connection that is not HTTP/1 (the first client bytes are no request
 * line) is compared as two byte streams and reported as one exchange of
 * protocol "other" (with a guess at which protocol: redis, postgres,
 * http2, tls, ...): equal, or the first differing offset and both sizes.
 *
 * Noise: a compare_noise (shared by all connections of a run) remembers
 * production's response per request (method, target and body, hashed);
 * when an identical request gets a response that differs from the one
 * remembered, the differing fields become noise fields of that endpoint,
 * and differences in noise fields do not make an exchange DIFFER.
 *
 * Memory per connection is bounded: body_limit decoded bytes kept per
 * body (past it, sizes and hashes), max_waiting exchanges not yet
 * reported, max_pending response bytes held while their request has not
 * been seen, one head per response (the http1 head limit).
 *
 * Gaps: a gap inside a body whose length is known (Content-Length, or a
 * close-delimited response) is bridged: that exchange is not comparable
 * and the next ones are compared. Any other gap ends the comparison of
 * the connection: the exchange it falls in and every later one are not
 * comparable. (Resynchronising the three streams after such a gap is the
 * caller's to do: start a new compare_conn at a request boundary.)
 *
 * Pure: no I/O, no clock, no globals.
 */
#ifndef TAPMIRROR_COMPARE_H
#define TAPMIRROR_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "http1.h"
#include "jsondiff.h"

#define COMPARE_DEFAULT_BODY_LIMIT  (1024 * 1024) /* decoded bytes kept */
#define COMPARE_DEFAULT_MAX_WAITING 32  /* exchanges not yet reported */
#define COMPARE_DEFAULT_MAX_PENDING (1024 * 1024) /* response bytes held */
#define COMPARE_DEFAULT_DIFF_LINES  20  /* difference lines per exchange */
#define COMPARE_DEFAULT_LOG_BODY    4096 /* body bytes in a diff-log line */
#define COMPARE_TARGET_CHARS        2048 /* request target kept */

struct compare_config {
    size_t body_limit;  /* 0: COMPARE_DEFAULT_BODY_LIMIT */
    size_t max_waiting; /* 0: COMPARE_DEFAULT_MAX_WAITING */
    size_t max_pending; /* 0: COMPARE_DEFAULT_MAX_PENDING */
    size_t diff_lines;  /* 0: COMPARE_DEFAULT_DIFF_LINES */
    /* --ignore-header names and --ignore-json patterns; borrowed for the
     * life of every compare_conn using this configuration. */
    const char *const *ignore_headers;
    size_t n_ignore_headers;
    const struct jsondiff_ignore *ignore_json;
};

enum compare_stream {
    COMPARE_CLIENT,
    COMPARE_PROD,
    COMPARE_LOCAL,
};

enum compare_protocol {
    COMPARE_PROTO_UNKNOWN, /* nothing decided yet */
    COMPARE_PROTO_HTTP10,
    COMPARE_PROTO_HTTP11,
    COMPARE_PROTO_OTHER, /* compared as bytes */
};

enum compare_outcome {
    COMPARE_SAME,
    COMPARE_DIFFER,
    COMPARE_NOT_COMPARABLE,
};
#define COMPARE_OUTCOMES 3

enum compare_reason {
    COMPARE_R_NONE,
    COMPARE_R_GAP,          /* bytes missing in a stream */
    COMPARE_R_NOT_CAPTURED, /* production's response was not captured */
    COMPARE_R_LOCAL_CLOSED, /* the local target closed before answering */
    COMPARE_R_TIMEOUT,      /* the local answer never came */
    COMPARE_R_LIMIT,        /* a cap of this module was reached */
    COMPARE_R_SWITCHED,     /* the connection left HTTP/1 */
    COMPARE_R_MALFORMED,    /* a message that does not parse */
};
#define COMPARE_REASONS 8

enum compare_field_kind {
    COMPARE_F_STATUS,
    COMPARE_F_HEADER,
    COMPARE_F_BODY, /* a non-JSON body, or the bytes of another protocol */
    COMPARE_F_JSON,
};

/* One difference. `field` names what differs, the same way for every
 * exchange of an endpoint: "status", "header x-version", "body", or a JSON
 * path with array indices as [*] ("$.items[*].price"). `line` says how:
 * "$.items[3].price: 12.5 -> 12.75". */
struct compare_diff {
    enum compare_field_kind kind;
    const char *field;
    const char *line;
    bool noise; /* a noise field of the endpoint: does not count */
};

/* One side's response. */
struct compare_response {
    bool present;    /* a whole response was framed */
    unsigned status;
    const struct http1_header *headers; /* a copy, as received */
    size_t header_count;
    const uint8_t *body; /* kept decoded bytes (protocol "other": none) */
    size_t body_kept;
    uint64_t body_size; /* decoded (or stream) bytes */
    bool body_truncated; /* body_size > body_kept */
    int64_t latency_ns;  /* request's last byte to the answer's first;
                          * -1 when unknown */
};

/* A finished exchange, valid during the callback only. */
struct compare_exchange {
    uint64_t conn_id;
    uint64_t index; /* the request's number on the connection, from 0 */
    enum compare_protocol protocol;
    const char *protocol_name; /* "http/1.1", "redis", "unknown", ... */
    enum compare_outcome outcome;
    enum compare_reason reason; /* NOT_COMPARABLE */
    const char *detail;         /* one line, "" when SAME */
    const char *method;         /* "" for protocol "other" */
    const char *target;         /* cut to COMPARE_TARGET_CHARS */
    const char *endpoint;       /* "GET /users/{id}"; the protocol name
                                 * for protocol "other" */
    struct compare_response prod, local;
    const struct compare_diff *diffs; /* kept differences */
    size_t n_diffs;
    size_t diff_count;  /* all differences found (some not kept) */
    size_t noise_count; /* differences in noise fields */
};

typedef void compare_exchange_fn(void *ctx, const struct compare_exchange *ex);

const char *compare_outcome_name(enum compare_outcome o);
const char *compare_reason_name(enum compare_reason r);
const char *compare_protocol_name(enum compare_protocol p);

/* ---- noise ---------------------------------------------------------- */

#define COMPARE_NOISE_DEFAULT_REQUESTS 64    /* responses remembered */
#define COMPARE_NOISE_DEFAULT_BODY (256 * 1024) /* body bytes remembered */
#define COMPARE_NOISE_MAX_FIELDS 512         /* endpoint/field pairs */

struct compare_noise;

/* 0 for a limit means its default. `seed` keys the request hash, so that
 * requests chosen by strangers cannot be aimed at one slot. */
struct compare_noise *compare_noise_new(size_t requests, size_t body_limit,
                                        uint64_t seed);
void compare_noise_free(struct compare_noise *n);

/* Whether `field` is a noise field of `endpoint`. */
bool compare_noise_has(const struct compare_noise *n, const char *endpoint,
                       const char *field);
/* Noise fields learned so far: the i-th (i < count) as endpoint and
 * field. */
size_t compare_noise_count(const struct compare_noise *n);
void compare_noise_get(const struct compare_noise *n, size_t i,
                       const char **endpoint, const char **field);

/* ---- one connection ------------------------------------------------- */

struct compare_conn;

/*
 * `cfg` may be NULL (defaults); it is copied, the strings it points to
 * are borrowed. `noise` may be NULL (no learning) or shared with other
 * connections; it must outlive the connection. `fn` is called from the
 * feeding functions below for every finished exchange; it must not free
 * the connection.
 */
struct compare_conn *compare_conn_new(const struct compare_config *cfg,
                                      struct compare_noise *noise,
                                      uint64_t conn_id,
                                      compare_exchange_fn *fn, void *ctx);
void compare_conn_free(struct compare_conn *c);

/* The next `len` bytes of a stream (borrowed: copied when they must
 * wait), received at `ts_ns`. */
void compare_conn_feed(struct compare_conn *c, enum compare_stream s,
                       const uint8_t *data, size_t len, int64_t ts_ns);

/* `len` bytes of a stream are missing at its current position. */
void compare_conn_gap(struct compare_conn *c, enum compare_stream s,
                      uint64_t len);

/* The stream ended (FIN, or the local connection closed). */
void compare_conn_end(struct compare_conn *c, enum compare_stream s);

/*
 * The client bytes before stream offset `upto` reached the local target
 * at `ts_ns` (the replay's clock). The local latency of a request runs
 * from the first such time that covers its last byte; without one, from
 * the request's own timestamp.
 */
void compare_conn_sent(struct compare_conn *c, uint64_t upto, int64_t ts_ns);

/* The local target will not answer any more (the caller's timeout):
 * every exchange still waiting for it is not comparable (timeout). */
void compare_conn_timeout(struct compare_conn *c);

/* Ends every stream not yet ended and reports every exchange left. */
void compare_conn_finish(struct compare_conn *c);

/* Stops comparing the connection (the caller's memory budget, say):
 * every exchange not yet reported, and every later one, is not
 * comparable for `reason`; what is held is freed. */
void compare_conn_abandon(struct compare_conn *c, enum compare_reason reason,
                          const char *detail);

/* Whether a request the local target got still waits for its answer
 * (for the caller's timeout). */
bool compare_conn_awaiting_local(const struct compare_conn *c);

/* The bytes the connection holds, for the caller's memory budget: its
 * own state (framers, tables) and, also in `waiting` (may be NULL), what
 * waits for the other streams: response bytes queued, exchanges with
 * their heads and kept bodies. O(max_waiting). */
size_t compare_conn_held(const struct compare_conn *c, size_t *waiting);

/* The protocol the connection was counted as (its name for "other"). */
enum compare_protocol compare_conn_protocol(const struct compare_conn *c);
const char *compare_conn_protocol_name(const struct compare_conn *c);
/* Why the connection stopped being compared (a switch, a gap, a limit),
 * one line; "" while it is compared. */
const char *compare_conn_stop_reason(const struct compare_conn *c);

/* ---- run-wide report ------------------------------------------------ */

#define COMPARE_REPORT_DEFAULT_ENDPOINTS 200 /* then "other" */
#define COMPARE_REPORT_TOP_FIELDS 5

struct compare_report;

/* 0: the default number of endpoints. */
struct compare_report *compare_report_new(size_t max_endpoints);
void compare_report_free(struct compare_report *r);

/* Counts one exchange (from the callback). */
void compare_report_add(struct compare_report *r,
                        const struct compare_exchange *ex);
/* Counts one connection by protocol and stop reason (after
 * compare_conn_finish). */
void compare_report_add_conn(struct compare_report *r,
                             const struct compare_conn *c);

/*
 * The --stats-json `compare` object: counts by outcome, by reason and by
 * protocol, noise fields, and per endpoint the counts, the most frequent
 * differing fields and production's and the local latency (p50, p99, in
 * ms). `noise` may be NULL. Returns an owned cJSON object.
 */
cJSON *compare_report_json(const struct compare_report *r,
                           const struct compare_noise *noise);

/*
 * One --diff-log object for a differing or not comparable exchange:
 * connection, request line, statuses, differences, latencies, and both
 * bodies cut to `body_cut` bytes (0: COMPARE_DEFAULT_LOG_BODY; text as a
 * string, other bytes base64). With `redact`, header values of
 * Authorization, Proxy-Authorization, Cookie and Set-Cookie are replaced
 * by "(redacted)" wherever they appear. Returns an owned cJSON object.
 */
cJSON *compare_exchange_json(const struct compare_exchange *ex, bool redact,
                             size_t body_cut);
/* The same as one line of text, without a line break; owned (free()). */
char *compare_exchange_line(const struct compare_exchange *ex, bool redact,
                            size_t body_cut);

#endif
