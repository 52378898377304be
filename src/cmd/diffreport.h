/*
 * The --diff-report page: one self-contained HTML file that shows a
 * compare run to a developer in a browser.
 *
 *   - a summary line and the endpoint table of compare_report_json()
 *     (exchanges, a bar of same / differ / not comparable, the most
 *     frequent differing fields, production's and the local latency
 *     p50/p99);
 *   - per endpoint, up to `examples` exchanges (compare_exchange_json()
 *     objects, optionally with both sides' headers) as <details>
 *     elements: production and local side by side (status, latency,
 *     headers, body excerpt), the differing status, header rows and JSON
 *     members highlighted and the differences listed.
 *
 * Everything from traffic (request targets, endpoints, headers, bodies,
 * difference lines) is HTML-escaped, with invalid UTF-8, controls and
 * bidirectional overrides shown as \xNN / \uNNNN (tm_text_safe). Data is
 * never written into an attribute, and the page has no script: the
 * examples open and close without JavaScript. A Content-Security-Policy
 * meta element (default-src 'none') forbids every network request, so
 * opening the file fetches nothing.
 *
 * Bounded: examples per endpoint (a differing or not comparable exchange
 * takes the place of a same one; at most one same one per endpoint),
 * endpoints with examples, headers per side, characters per value and
 * per body, and the page's bytes (examples past DIFFREPORT max_bytes are
 * counted, not shown; the table is always whole).
 *
 * Pure: no I/O, no clock. The caller writes the file.
 */
#ifndef TAPMIRROR_DIFFREPORT_H
#define TAPMIRROR_DIFFREPORT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "proto/compare.h"

#define DIFFREPORT_DEFAULT_EXAMPLES  5   /* per endpoint */
#define DIFFREPORT_DEFAULT_MAX_BYTES (8 * 1024 * 1024) /* the page */
#define DIFFREPORT_MAX_ENDPOINTS     COMPARE_REPORT_DEFAULT_ENDPOINTS
#define DIFFREPORT_BODY_CUT          4096 /* body bytes kept per side */
#define DIFFREPORT_HEADERS           64   /* header fields shown per side */
#define DIFFREPORT_VALUE_CHARS       512  /* bytes of a header value */

struct diffreport;

/* 0 for a limit means its default. */
struct diffreport *diffreport_new(size_t examples, size_t max_bytes);
void diffreport_free(struct diffreport *dr);

/*
 * Whether an exchange of `endpoint` with this outcome would be kept as
 * an example (so that the caller builds its JSON only then).
 */
bool diffreport_wants(const struct diffreport *dr, const char *endpoint,
                      enum compare_outcome outcome);

/*
 * Keeps a copy of `exchange` (a compare_exchange_json() object, borrowed)
 * as an example of `endpoint` when diffreport_wants() says so; its
 * "outcome" member decides. Returns whether it was kept.
 */
bool diffreport_add_example(struct diffreport *dr, const char *endpoint,
                            const cJSON *exchange);

/*
 * compare_exchange_json() of `ex` (bodies cut to DIFFREPORT_BODY_CUT)
 * plus "headers": {"production": [{"name", "value"}...], "local": [...]}
 * as received, at most DIFFREPORT_HEADERS per side, values cut to
 * DIFFREPORT_VALUE_CHARS; with `redact` the values of Authorization,
 * Proxy-Authorization, Cookie and Set-Cookie are "(redacted)". Owned.
 */
cJSON *diffreport_exchange_json(const struct compare_exchange *ex,
                                bool redact);

/* From the compare callback: diffreport_exchange_json() of `ex` kept as
 * an example when wanted. Returns whether it was kept. */
bool diffreport_add_exchange(struct diffreport *dr,
                             const struct compare_exchange *ex, bool redact);

/*
 * The page for `report` (a compare_report_json() object; NULL gives an
 * empty table) and the examples kept, titled `title` (NULL: "tapmirror
 * compare report"). Returns an owned, NUL-terminated string (free()).
 */
char *diffreport_render(const struct diffreport *dr, const cJSON *report,
                        const char *title);

#endif
