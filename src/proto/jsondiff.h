/*
 * Structural comparison of two JSON documents (cJSON), for bodies whose
 * bytes differ but may mean the same.
 *
 * Object member order is ignored (members are matched by name; repeated
 * names pair up in order), numbers compare by value (12.5 equals 12.50:
 * both are IEEE doubles, as JSON.parse reads them, so integers beyond
 * 2^53 compare rounded), arrays compare index by index. Each difference
 * is one line naming its path:
 *
 *   $.items[3].price: 12.5 -> 12.75
 *   $.tags[2]: (absent) -> "new"
 *   $["content-type"]: "a" -> "b"
 *
 * Ignore patterns (--ignore-json) name paths whose whole subtree is left
 * out: `$`, then `.name`, `["name"]`, `[N]`, and the wildcards `.*` (any
 * member) and `[*]` (any element), e.g. `$.items[*].id`.
 *
 * Bounded: at most `max_lines` lines are kept (all differences are
 * counted), values are shortened to a few dozen characters, paths to a
 * few hundred. Nesting is bounded by cJSON's parse limit.
 *
 * Pure: no I/O, no globals.
 */
#ifndef TAPMIRROR_JSONDIFF_H
#define TAPMIRROR_JSONDIFF_H

#include <stdbool.h>
#include <stddef.h>

#define JSONDIFF_DEFAULT_LINES 100

struct jsondiff_ignore;

struct jsondiff_ignore *jsondiff_ignore_new(void);
void jsondiff_ignore_free(struct jsondiff_ignore *ig);

/* Adds a pattern; -1 and a one-line message in err (errlen > 0) when it
 * is not one. */
int jsondiff_ignore_add(struct jsondiff_ignore *ig, const char *pattern,
                        char *err, size_t errlen);

enum jsondiff_status {
    JSONDIFF_OK,         /* both parsed; the report says how they differ */
    JSONDIFF_A_NOT_JSON, /* the first document does not parse */
    JSONDIFF_B_NOT_JSON, /* the second does not (and the first does) */
};

struct jsondiff_report {
    size_t count;    /* differences found */
    size_t reported; /* lines kept: min(count, max_lines) */
    char **lines;    /* owned, terminated */
};

/* Compares a with b (not terminated; `ignore` may be NULL; max_lines 0
 * means the default). The report is filled for JSONDIFF_OK and empty
 * otherwise; free it with jsondiff_report_free() in every case. */
enum jsondiff_status jsondiff_compare(const char *a, size_t alen,
                                      const char *b, size_t blen,
                                      const struct jsondiff_ignore *ignore,
                                      size_t max_lines,
                                      struct jsondiff_report *out);
void jsondiff_report_free(struct jsondiff_report *r);

/* Whether a Content-Type value is JSON: application/json, text/json or
 * any type/subtype ending in +json, parameters ignored. */
bool jsondiff_is_json_type(const char *value, size_t len);

#endif
