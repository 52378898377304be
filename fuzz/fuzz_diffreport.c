/*
 * fuzz_diffreport: the --diff-report page (src/cmd/diffreport.c) from
 * hostile reports and exchanges.
 *
 * Input layout:
 *   byte 0     bits 0-1: examples per endpoint - 1; bit 2: a 16 KiB page
 *              limit (else the default); bit 3: raw mode
 *   rest       parts separated by NUL bytes
 *
 *   JSON mode: part 0 is the report (compare_report_json()'s shape; not
 *              JSON gives none), every further part an exchange
 *              (compare_exchange_json()'s shape, or anything else),
 *              added as an example of its "endpoint" string (or "e").
 *   raw mode:  the parts, cycled, fill every string of a template
 *              exchange and report: request, endpoint, reason, detail,
 *              difference fields and lines, header names and values,
 *              body text (also as a JSON string member, so that it is
 *              pretty-printed), base64, top fields, noise fields, title.
 *
 * Checks (htmlcheck.h, written apart from the renderer): every '<' opens
 * a tag the template writes, every '&' a known entity, the page is
 * well-formed UTF-8 without controls (but the line break) or reordering
 * characters; the page ends whole; every example shown ends within the
 * page limit; rendering twice gives the same page.
 */
#include <cjson/cJSON.h>

#include "../tests/unit/htmlcheck.h"
#include "cmd/diffreport.h"
#include "fuzz_common.h"

#define MAX_PARTS 64

struct parts {
    char *s[MAX_PARTS];
    size_t n;
};

static void split(const uint8_t *p, size_t n, struct parts *out)
{
    out->n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n && out->n < MAX_PARTS; i++) {
        if (i == n || p[i] == '\0') {
            char *s = malloc(i - start + 1);
            FZ_CHECK(s != NULL, "out of memory");
            memcpy(s, p + start, i - start);
            s[i - start] = '\0';
            out->s[out->n++] = s;
            start = i + 1;
        }
    }
}

static const char *part(const struct parts *p, size_t *next)
{
    if (p->n == 0) {
        return "";
    }
    return p->s[(*next)++ % p->n];
}

static cJSON *raw_exchange(const struct parts *p, size_t *k, int n)
{
    static const char *const outcomes[] = {"same", "differ",
                                           "not_comparable"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "connection", n);
    cJSON_AddNumberToObject(o, "exchange", n);
    cJSON_AddStringToObject(o, "outcome", outcomes[n % 3]);
    cJSON_AddStringToObject(o, "reason", part(p, k));
    cJSON_AddStringToObject(o, "detail", part(p, k));
    cJSON_AddStringToObject(o, "request", part(p, k));
    cJSON *st = cJSON_AddObjectToObject(o, "status");
    cJSON_AddNumberToObject(st, "production", 200);
    cJSON_AddNullToObject(st, "local");
    cJSON *lat = cJSON_AddObjectToObject(o, "latency_ms");
    cJSON_AddNumberToObject(lat, "production", 0.25 * n);
    cJSON *diffs = cJSON_AddArrayToObject(o, "differences");
    const char *key = part(p, k);
    for (int i = 0; i < 3; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "kind", i == 0 ? "json" : "header");
        cJSON_AddStringToObject(d, "field", part(p, k));
        if (i == 0) {
            /* A line naming the member below, so that it is marked. */
            cJSON *path = cJSON_CreateString(key);
            char *ps = cJSON_PrintUnformatted(path);
            size_t len = strlen(ps) + 16;
            char *line = malloc(len);
            FZ_CHECK(line != NULL, "out of memory");
            snprintf(line, len, "$[%s]: 1 -> 2", ps);
            cJSON_AddStringToObject(d, "line", line);
            free(line);
            cJSON_free(ps);
            cJSON_Delete(path);
        } else {
            cJSON_AddStringToObject(d, "line", part(p, k));
        }
        cJSON_AddBoolToObject(d, "noise", i == 2);
        cJSON_AddItemToArray(diffs, d);
    }
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    for (int side = 0; side < 2; side++) {
        cJSON *arr = cJSON_AddArrayToObject(h, side ? "local" : "production");
        for (int i = 0; i < 2; i++) {
            cJSON *one = cJSON_CreateObject();
            cJSON_AddStringToObject(one, "name", part(p, k));
            cJSON_AddStringToObject(one, "value", part(p, k));
            cJSON_AddItemToArray(arr, one);
        }
    }
    cJSON *body = cJSON_AddObjectToObject(o, "body");
    cJSON *bp = cJSON_AddObjectToObject(body, "production");
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, key, part(p, k));
    cJSON *arr = cJSON_AddArrayToObject(doc, part(p, k));
    cJSON_AddItemToArray(arr, cJSON_CreateString(part(p, k)));
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_AddStringToObject(bp, "text", text);
    cJSON_free(text);
    cJSON_Delete(doc);
    cJSON *bl = cJSON_AddObjectToObject(body, "local");
    cJSON_AddStringToObject(bl, n % 2 ? "text" : "base64", part(p, k));
    cJSON_AddBoolToObject(bl, "cut", true);
    return o;
}

static cJSON *raw_report(const struct parts *p, size_t *k)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "exchanges", 3);
    cJSON *reasons = cJSON_AddObjectToObject(o, "not_comparable_by_reason");
    cJSON_AddNumberToObject(reasons, part(p, k), 1);
    cJSON *eps = cJSON_AddArrayToObject(o, "endpoints");
    for (int e = 0; e < 2; e++) {
        cJSON *ep = cJSON_CreateObject();
        cJSON_AddStringToObject(ep, "endpoint", part(p, k));
        cJSON_AddNumberToObject(ep, "same", 1);
        cJSON_AddNumberToObject(ep, "differ", 2);
        cJSON *top = cJSON_AddArrayToObject(ep, "top_differing_fields");
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "field", part(p, k));
        cJSON_AddNumberToObject(f, "exchanges", 2);
        cJSON_AddItemToArray(top, f);
        cJSON_AddItemToArray(eps, ep);
    }
    cJSON *nf = cJSON_AddArrayToObject(o, "noise_fields");
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "endpoint", part(p, k));
    cJSON_AddStringToObject(n, "field", part(p, k));
    cJSON_AddItemToArray(nf, n);
    return o;
}

static void check_page(const char *page, size_t max_bytes)
{
    size_t n = strlen(page), at = 0;
    const char *why = htmlcheck(page, n, &at);
    FZ_CHECK(why == NULL, "%s at %zu: %.60s", why, at, page + at);
    static const char tail[] = "</body></html>\n";
    FZ_CHECK(n >= sizeof(tail) - 1 &&
                 strcmp(page + n - (sizeof(tail) - 1), tail) == 0,
             "the page does not end whole");
    const char *last = NULL;
    for (const char *p = strstr(page, "</details>"); p;
         p = strstr(p + 1, "</details>")) {
        last = p;
    }
    if (last != NULL) {
        size_t end = (size_t)(last - page) + strlen("</details>\n");
        FZ_CHECK(end <= max_bytes, "an example ends at %zu, past %zu", end,
                 max_bytes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) {
        return 0;
    }
    uint8_t flags = data[0];
    size_t examples = (size_t)(flags & 3) + 1;
    size_t max_bytes = flags & 4 ? 16384 : DIFFREPORT_DEFAULT_MAX_BYTES;
    struct parts p;
    split(data + 1, size - 1, &p);

    struct diffreport *dr = diffreport_new(examples, max_bytes);
    cJSON *report = NULL;
    const char *title = NULL;
    if (flags & 8) {
        size_t k = 0;
        report = raw_report(&p, &k);
        title = part(&p, &k);
        for (int i = 0; i < 6; i++) {
            cJSON *ex = raw_exchange(&p, &k, i);
            const char *ep = part(&p, &k);
            if (diffreport_wants(dr, ep, (enum compare_outcome)(i % 3))) {
                FZ_CHECK(diffreport_add_example(dr, ep, ex),
                         "a wanted example was not kept");
            } else {
                FZ_CHECK(!diffreport_add_example(dr, ep, ex),
                         "an unwanted example was kept");
            }
            cJSON_Delete(ex);
        }
    } else {
        report = p.n > 0 ? cJSON_Parse(p.s[0]) : NULL;
        for (size_t i = 1; i < p.n; i++) {
            cJSON *ex = cJSON_Parse(p.s[i]);
            const char *ep = cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(ex, "endpoint"));
            diffreport_add_example(dr, ep ? ep : "e", ex);
            cJSON_Delete(ex);
        }
    }
    char *page = diffreport_render(dr, report, title);
    check_page(page, max_bytes);
    char *again = diffreport_render(dr, report, title);
    FZ_CHECK(strcmp(page, again) == 0, "two renderings differ");
    free(page);
    free(again);
    cJSON_Delete(report);
    diffreport_free(dr);
    for (size_t i = 0; i < p.n; i++) {
        free(p.s[i]);
    }
    return 0;
}
