/*
 * Helpers on HTTP/1 message heads, for mirroring filters and rewrites
 * and for shadow comparison:
 *
 *  - httpmsg_rewrite_head(): a request head rebuilt with headers set,
 *    dropped, Host replaced and `X-Tapmirror: 1` added. The body is not
 *    touched, so the framing headers (Content-Length, Transfer-Encoding)
 *    are copied as they came and cannot be rewritten: the body that
 *    follows (Content-Length bytes or chunks, as sent) still fits.
 *  - httpmsg_redact(): header values that carry credentials overwritten
 *    in place with as many 'x' as they had bytes (lengths, offsets and
 *    anything framed around the head stay valid).
 *  - httpmsg_compare_headers(): two heads compared as sets of fields
 *    (order ignored), leaving out fields that differ between two correct
 *    deployments (httpmsg_ignore_default[]).
 *  - httpmsg_endpoint(): "GET /users/{id}" from a method and a target.
 *
 * Pure: no I/O, no globals.
 */
#ifndef TAPMIRROR_HTTPMSG_H
#define TAPMIRROR_HTTPMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1.h"

/* ---- rewrite -------------------------------------------------------- */

struct httpmsg_set {
    const char *name;  /* a token */
    const char *value; /* no CR, LF or NUL */
};

struct httpmsg_rewrite {
    const struct httpmsg_set *set; /* replace (first kept, in place) or add */
    size_t n_set;
    const char *const *drop; /* names to remove */
    size_t n_drop;
    const char *host; /* NULL: keep the Host header */
    bool tag;         /* add (or replace) "X-Tapmirror: 1" */
};

/*
 * Writes the request line and headers of `req` (a request head from
 * http1) with `rw` applied, ending with the empty line, into out[cap].
 * Returns 0 and the length in *len, or -1 with a one-line reason in err:
 * a rewrite names Content-Length or Transfer-Encoding, a name is not a
 * token, a value holds CR, LF or NUL, or `cap` is too small.
 */
int httpmsg_rewrite_head(const struct http1_head *req,
                         const struct httpmsg_rewrite *rw, char *out,
                         size_t cap, size_t *len, char *err, size_t errlen);

/* ---- redaction ------------------------------------------------------ */

/* Authorization, Proxy-Authorization, Cookie, Set-Cookie. */
extern const char *const httpmsg_redact_default[];
extern const size_t httpmsg_redact_default_count;

/*
 * Overwrites, in the raw head bytes head[len] (start line, header lines;
 * scanning stops at the empty line or at `len`), the value of every field
 * named in httpmsg_redact_default[] or extra[] (case-insensitive), and
 * its folded continuation lines, with 'x'. Whitespace around the value
 * stays. Returns how many fields were redacted.
 */
size_t httpmsg_redact(uint8_t *head, size_t len, const char *const *extra,
                      size_t n_extra);

/* ---- header comparison ---------------------------------------------- */

/* Field names left out of the comparison by default (why: httpmsg.c). */
extern const char *const httpmsg_ignore_default[];
extern const size_t httpmsg_ignore_default_count;

struct httpmsg_compare_opts {
    const char *const *ignore; /* more names to leave out */
    size_t n_ignore;
    bool bodies_decoded; /* Content-Encoding is left out too */
    size_t max_lines;    /* 0: 100 */
};

struct httpmsg_diff {
    size_t count;    /* fields that differ */
    size_t reported; /* lines kept */
    char **lines;    /* "x-version: \"1\" -> \"2\"", owned */
};

/*
 * Compares the fields of two heads: per name (case-insensitive), the
 * list of its values in order (RFC 9110 5.3: the order of a repeated
 * field is significant; the order of different fields is not). For
 * Set-Cookie only the cookie names are compared. `opts` may be NULL.
 */
void httpmsg_compare_headers(const struct http1_head *a,
                             const struct http1_head *b,
                             const struct httpmsg_compare_opts *opts,
                             struct httpmsg_diff *out);
void httpmsg_diff_free(struct httpmsg_diff *d);

/* ---- endpoint templates --------------------------------------------- */

/*
 * "METHOD /path" with the query and fragment removed, an absolute-form
 * target reduced to its path, and every path segment that is a number, a
 * UUID or a hex string of 16 or more digits replaced by {id}. Writes at
 * most cap-1 bytes and a NUL (cap > 0); returns the length written.
 */
size_t httpmsg_endpoint(const char *method, const char *target,
                        size_t target_len, char *out, size_t cap);

#endif
