/*
 * The run-wide compare report and the JSON writers (see compare.h).
 *
 * Latencies go into fixed log-bucket histograms: 8 buckets per power of
 * two (a bucket is at most 12.5% wide), up to 2^44 ns (about 4.9 hours),
 * so a percentile costs no memory per exchange and is off by at most
 * half a bucket. Endpoints are kept up to a cap, then counted together
 * as "(other endpoints)"; per endpoint, the most frequent differing
 * fields are counted in 16 slots (space-saving: a new field takes the
 * place of the least counted one and its count plus one, so a frequent
 * field is never missed).
 */
#include "compare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define HIST_SUB     8
#define HIST_OCTAVES 42
#define HIST_BUCKETS (HIST_SUB * HIST_OCTAVES)
#define TOP_SLOTS    16
#define PROTOCOLS    16

struct field_count {
    char *name;
    uint64_t count;
};

struct endpoint {
    char *name;
    uint64_t n[COMPARE_OUTCOMES];
    uint64_t noise_only;
    struct field_count top[TOP_SLOTS];
    size_t n_top;
    uint64_t lat_n[2];
    uint32_t hist[2][HIST_BUCKETS];
};

struct protocol_count {
    char name[16];
    uint64_t conns;
};

struct compare_report {
    size_t max_endpoints;
    struct endpoint **eps;
    size_t n_eps;
    struct endpoint *other;
    uint64_t n[COMPARE_OUTCOMES];
    uint64_t noise_only;
    uint64_t reasons[COMPARE_REASONS];
    struct protocol_count protos[PROTOCOLS];
    size_t n_protos;
    uint64_t conns, conns_stopped;
};

/* ---- histogram ------------------------------------------------------ */

static size_t bucket_of(uint64_t v)
{
    if (v < HIST_SUB) {
        return (size_t)v;
    }
    unsigned e = 3;
    while (e < 63 && (v >> (e + 1)) != 0) {
        e++;
    }
    size_t idx = (size_t)(e - 2) * HIST_SUB + (size_t)((v >> (e - 3)) & 7);
    return TM_MIN(idx, (size_t)HIST_BUCKETS - 1);
}

/* The middle of a bucket. */
static uint64_t bucket_value(size_t idx)
{
    if (idx < HIST_SUB) {
        return idx;
    }
    unsigned e = (unsigned)(idx / HIST_SUB) + 2;
    uint64_t low = (uint64_t)(HIST_SUB + idx % HIST_SUB) << (e - 3);
    return low + ((uint64_t)1 << (e - 3)) / 2;
}

static uint64_t percentile(const uint32_t *hist, uint64_t n, unsigned pct)
{
    uint64_t rank = (n * pct + 99) / 100;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank && seen > 0) {
            return bucket_value(i);
        }
    }
    return 0;
}

/* ---- counting ------------------------------------------------------- */

struct compare_report *compare_report_new(size_t max_endpoints)
{
    struct compare_report *r = tm_xcalloc(1, sizeof(*r));
    r->max_endpoints = max_endpoints ? max_endpoints
                                     : COMPARE_REPORT_DEFAULT_ENDPOINTS;
    r->eps = tm_xcalloc(r->max_endpoints, sizeof(*r->eps));
    return r;
}

static void endpoint_free(struct endpoint *ep)
{
    if (ep == NULL) {
        return;
    }
    for (size_t i = 0; i < ep->n_top; i++) {
        free(ep->top[i].name);
    }
    free(ep->name);
    free(ep);
}

void compare_report_free(struct compare_report *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n_eps; i++) {
        endpoint_free(r->eps[i]);
    }
    endpoint_free(r->other);
    free(r->eps);
    free(r);
}

static struct endpoint *endpoint_new(const char *name)
{
    struct endpoint *ep = tm_xcalloc(1, sizeof(*ep));
    ep->name = tm_xstrdup(name);
    return ep;
}

static struct endpoint *endpoint_for(struct compare_report *r,
                                     const char *name)
{
    for (size_t i = 0; i < r->n_eps; i++) {
        if (strcmp(r->eps[i]->name, name) == 0) {
            return r->eps[i];
        }
    }
    if (r->n_eps < r->max_endpoints) {
        r->eps[r->n_eps] = endpoint_new(name);
        return r->eps[r->n_eps++];
    }
    if (r->other == NULL) {
        r->other = endpoint_new("(other endpoints)");
    }
    return r->other;
}

static void count_field(struct endpoint *ep, const char *field)
{
    size_t min = 0;
    for (size_t i = 0; i < ep->n_top; i++) {
        if (strcmp(ep->top[i].name, field) == 0) {
            ep->top[i].count++;
            return;
        }
        if (ep->top[i].count < ep->top[min].count) {
            min = i;
        }
    }
    if (ep->n_top < TOP_SLOTS) {
        ep->top[ep->n_top].name = tm_xstrdup(field);
        ep->top[ep->n_top++].count = 1;
        return;
    }
    free(ep->top[min].name);
    ep->top[min].name = tm_xstrdup(field);
    ep->top[min].count++;
}

static void add_latency(struct endpoint *ep, int side, int64_t ns)
{
    if (ns < 0) {
        return;
    }
    ep->hist[side][bucket_of((uint64_t)ns)]++;
    ep->lat_n[side]++;
}

void compare_report_add(struct compare_report *r,
                        const struct compare_exchange *ex)
{
    struct endpoint *ep = endpoint_for(r, ex->endpoint);
    r->n[ex->outcome]++;
    ep->n[ex->outcome]++;
    if (ex->outcome == COMPARE_NOT_COMPARABLE) {
        r->reasons[ex->reason]++;
    }
    if (ex->outcome == COMPARE_SAME && ex->noise_count > 0) {
        r->noise_only++;
        ep->noise_only++;
    }
    if (ex->outcome == COMPARE_DIFFER) {
        /* Each field once per exchange, noise left out. */
        for (size_t i = 0; i < ex->n_diffs; i++) {
            const struct compare_diff *d = &ex->diffs[i];
            bool seen = d->noise;
            for (size_t k = 0; k < i && !seen; k++) {
                seen = strcmp(ex->diffs[k].field, d->field) == 0;
            }
            if (!seen) {
                count_field(ep, d->field);
            }
        }
    }
    add_latency(ep, 0, ex->prod.latency_ns);
    add_latency(ep, 1, ex->local.latency_ns);
}

void compare_report_add_conn(struct compare_report *r,
                             const struct compare_conn *c)
{
    const char *name = compare_conn_protocol_name(c);
    r->conns++;
    if (compare_conn_stop_reason(c)[0] != '\0') {
        r->conns_stopped++;
    }
    for (size_t i = 0; i < r->n_protos; i++) {
        if (strcmp(r->protos[i].name, name) == 0) {
            r->protos[i].conns++;
            return;
        }
    }
    if (r->n_protos == PROTOCOLS) {
        name = "(others)";
        for (size_t i = 0; i < r->n_protos; i++) {
            if (strcmp(r->protos[i].name, name) == 0) {
                r->protos[i].conns++;
                return;
            }
        }
        r->n_protos--; /* the last slot becomes "(others)" */
    }
    struct protocol_count *p = &r->protos[r->n_protos++];
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->conns = 1;
}

/* ---- the stats object ----------------------------------------------- */

static void add_counts(cJSON *o, const uint64_t *n, uint64_t noise_only)
{
    cJSON_AddNumberToObject(o, "exchanges",
                            (double)(n[0] + n[1] + n[2]));
    cJSON_AddNumberToObject(o, "same", (double)n[COMPARE_SAME]);
    cJSON_AddNumberToObject(o, "differ", (double)n[COMPARE_DIFFER]);
    cJSON_AddNumberToObject(o, "not_comparable",
                            (double)n[COMPARE_NOT_COMPARABLE]);
    cJSON_AddNumberToObject(o, "same_but_noise", (double)noise_only);
}

static cJSON *latency_json(const struct endpoint *ep, int side)
{
    cJSON *o = cJSON_CreateObject();
    uint64_t n = ep->lat_n[side];
    cJSON_AddNumberToObject(o, "count", (double)n);
    if (n > 0) {
        cJSON_AddNumberToObject(
            o, "p50", (double)percentile(ep->hist[side], n, 50) / 1e6);
        cJSON_AddNumberToObject(
            o, "p99", (double)percentile(ep->hist[side], n, 99) / 1e6);
    }
    return o;
}

static int top_cmp(const void *x, const void *y)
{
    const struct field_count *a = x, *b = y;
    if (a->count != b->count) {
        return a->count > b->count ? -1 : 1;
    }
    return strcmp(a->name, b->name);
}

static cJSON *endpoint_json(const struct endpoint *ep,
                            const struct compare_noise *noise)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "endpoint", ep->name);
    add_counts(o, ep->n, ep->noise_only);
    struct field_count top[TOP_SLOTS];
    size_t n = 0;
    for (size_t i = 0; i < ep->n_top; i++) {
        /* A field learned as noise after it was counted is left out. */
        if (!compare_noise_has(noise, ep->name, ep->top[i].name)) {
            top[n++] = ep->top[i];
        }
    }
    qsort(top, n, sizeof(top[0]), top_cmp);
    cJSON *fields = cJSON_AddArrayToObject(o, "top_differing_fields");
    for (size_t i = 0; i < n && i < COMPARE_REPORT_TOP_FIELDS; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "field", top[i].name);
        cJSON_AddNumberToObject(f, "exchanges", (double)top[i].count);
        cJSON_AddItemToArray(fields, f);
    }
    cJSON *lat = cJSON_AddObjectToObject(o, "latency_ms");
    cJSON_AddItemToObject(lat, "production", latency_json(ep, 0));
    cJSON_AddItemToObject(lat, "local", latency_json(ep, 1));
    return o;
}

static uint64_t endpoint_total(const struct endpoint *ep)
{
    return ep->n[0] + ep->n[1] + ep->n[2];
}

static int endpoint_cmp(const void *x, const void *y)
{
    const struct endpoint *a = *(const struct endpoint *const *)x;
    const struct endpoint *b = *(const struct endpoint *const *)y;
    uint64_t ta = endpoint_total(a), tb = endpoint_total(b);
    if (ta != tb) {
        return ta > tb ? -1 : 1;
    }
    return strcmp(a->name, b->name);
}

cJSON *compare_report_json(const struct compare_report *r,
                           const struct compare_noise *noise)
{
    cJSON *o = cJSON_CreateObject();
    add_counts(o, r->n, r->noise_only);
    cJSON *reasons = cJSON_AddObjectToObject(o, "not_comparable_by_reason");
    for (int i = 1; i < COMPARE_REASONS; i++) {
        if (r->reasons[i] > 0) {
            cJSON_AddNumberToObject(reasons,
                                    compare_reason_name((enum compare_reason)i),
                                    (double)r->reasons[i]);
        }
    }
    cJSON_AddNumberToObject(o, "connections", (double)r->conns);
    cJSON_AddNumberToObject(o, "connections_stopped",
                            (double)r->conns_stopped);
    cJSON *protos = cJSON_AddObjectToObject(o, "connections_by_protocol");
    for (size_t i = 0; i < r->n_protos; i++) {
        cJSON_AddNumberToObject(protos, r->protos[i].name,
                                (double)r->protos[i].conns);
    }
    size_t n = r->n_eps;
    const struct endpoint **eps = tm_xmalloc((n + 1) * sizeof(*eps));
    for (size_t i = 0; i < n; i++) {
        eps[i] = r->eps[i];
    }
    qsort(eps, n, sizeof(*eps), endpoint_cmp);
    if (r->other != NULL) {
        eps[n++] = r->other;
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "endpoints");
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(arr, endpoint_json(eps[i], noise));
    }
    free(eps);
    cJSON *nf = cJSON_AddArrayToObject(o, "noise_fields");
    for (size_t i = 0; i < compare_noise_count(noise); i++) {
        const char *ep, *field;
        compare_noise_get(noise, i, &ep, &field);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "endpoint", ep);
        cJSON_AddStringToObject(f, "field", field);
        cJSON_AddItemToArray(nf, f);
    }
    return o;
}

/* ---- one exchange --------------------------------------------------- */

static const char *const credential_fields[] = {
    "header authorization",
    "header proxy-authorization",
    "header cookie",
    "header set-cookie",
};

static bool credential(const char *field)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(credential_fields); i++) {
        if (strcmp(field, credential_fields[i]) == 0) {
            return true;
        }
    }
    return false;
}

static const char *kind_name(enum compare_field_kind k)
{
    switch (k) {
    case COMPARE_F_STATUS:
        return "status";
    case COMPARE_F_HEADER:
        return "header";
    case COMPARE_F_BODY:
        return "body";
    case COMPARE_F_JSON:
        return "json";
    }
    return "?";
}

/* Length of the longest prefix of p[n] that is valid UTF-8 without NUL
 * or other control bytes but tab, CR and LF; 0 when a byte is refused
 * before the end (the body is then written as base64). */
static size_t text_len(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t ch = p[i];
        size_t len = ch < 0x80 ? 1 : (ch & 0xe0) == 0xc0 ? 2
                   : (ch & 0xf0) == 0xe0 ? 3 : (ch & 0xf8) == 0xf0 ? 4 : 0;
        if (len == 0 || (ch < 0x20 && ch != '\t' && ch != '\r' &&
                         ch != '\n') || ch == 0x7f) {
            return 0;
        }
        if (len == 2 && ch < 0xc2) {
            return 0; /* overlong */
        }
        if (i + len > n) {
            return i; /* cut inside a character: stop before it */
        }
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }
        }
        i += len;
    }
    return i;
}

static char *base64(const uint8_t *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = tm_xmalloc((n + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static cJSON *body_json(const struct compare_response *r, size_t cut)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "size", (double)r->body_size);
    size_t n = TM_MIN(r->body_kept, cut);
    size_t t = text_len(r->body, n);
    if (n > 0 && t + 4 > n && t > 0) {
        char *s = tm_xmalloc(t + 1);
        memcpy(s, r->body, t);
        s[t] = '\0';
        cJSON_AddStringToObject(o, "text", s);
        free(s);
        n = t;
    } else if (n > 0) {
        char *s = base64(r->body, n);
        cJSON_AddStringToObject(o, "base64", s);
        free(s);
    }
    cJSON_AddBoolToObject(o, "cut", n < r->body_size);
    return o;
}

static void add_optional_number(cJSON *o, const char *name, bool have,
                                double v)
{
    if (have) {
        cJSON_AddNumberToObject(o, name, v);
    } else {
        cJSON_AddNullToObject(o, name);
    }
}

cJSON *compare_exchange_json(const struct compare_exchange *ex, bool redact,
                             size_t body_cut)
{
    if (body_cut == 0) {
        body_cut = COMPARE_DEFAULT_LOG_BODY;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "connection", (double)ex->conn_id);
    cJSON_AddNumberToObject(o, "exchange", (double)ex->index);
    cJSON_AddStringToObject(o, "protocol", ex->protocol_name);
    cJSON_AddStringToObject(o, "outcome", compare_outcome_name(ex->outcome));
    if (ex->outcome == COMPARE_NOT_COMPARABLE) {
        cJSON_AddStringToObject(o, "reason", compare_reason_name(ex->reason));
        cJSON_AddStringToObject(o, "detail", ex->detail);
    }
    if (ex->method[0] != '\0') {
        size_t len = strlen(ex->method) + strlen(ex->target) + 2;
        char *line = tm_xmalloc(len);
        snprintf(line, len, "%s %s", ex->method, ex->target);
        cJSON_AddStringToObject(o, "request", line);
        free(line);
    }
    cJSON_AddStringToObject(o, "endpoint", ex->endpoint);
    if (ex->protocol != COMPARE_PROTO_OTHER) {
        cJSON *st = cJSON_AddObjectToObject(o, "status");
        add_optional_number(st, "production", ex->prod.present,
                            ex->prod.status);
        add_optional_number(st, "local", ex->local.present,
                            ex->local.status);
        cJSON *lat = cJSON_AddObjectToObject(o, "latency_ms");
        add_optional_number(lat, "production", ex->prod.latency_ns >= 0,
                            (double)ex->prod.latency_ns / 1e6);
        add_optional_number(lat, "local", ex->local.latency_ns >= 0,
                            (double)ex->local.latency_ns / 1e6);
    }
    cJSON *diffs = cJSON_AddArrayToObject(o, "differences");
    for (size_t i = 0; i < ex->n_diffs; i++) {
        const struct compare_diff *d = &ex->diffs[i];
        cJSON *di = cJSON_CreateObject();
        cJSON_AddStringToObject(di, "kind", kind_name(d->kind));
        cJSON_AddStringToObject(di, "field", d->field);
        if (redact && credential(d->field)) {
            char line[96];
            snprintf(line, sizeof(line), "%s: (redacted)",
                     d->field + strlen("header "));
            cJSON_AddStringToObject(di, "line", line);
        } else {
            cJSON_AddStringToObject(di, "line", d->line);
        }
        if (d->noise) {
            cJSON_AddBoolToObject(di, "noise", true);
        }
        cJSON_AddItemToArray(diffs, di);
    }
    if (ex->diff_count > ex->n_diffs) {
        cJSON_AddNumberToObject(o, "differences_not_shown",
                                (double)(ex->diff_count - ex->n_diffs));
    }
    cJSON *bodies = cJSON_AddObjectToObject(o, "body");
    if (ex->prod.present) {
        cJSON_AddItemToObject(bodies, "production",
                              body_json(&ex->prod, body_cut));
    }
    if (ex->local.present) {
        cJSON_AddItemToObject(bodies, "local", body_json(&ex->local, body_cut));
    }
    return o;
}

char *compare_exchange_line(const struct compare_exchange *ex, bool redact,
                            size_t body_cut)
{
    cJSON *o = compare_exchange_json(ex, redact, body_cut);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s == NULL) {
        s = tm_xstrdup("{}");
    }
    return s;
}
