/*
 * The --diff-report page (see diffreport.h).
 *
 * Every piece of text from traffic reaches the page through put_text():
 * tm_text_safe() first (valid UTF-8, controls and line-reordering
 * characters as visible escapes), then the five HTML metacharacters as
 * entities. The template writes every tag itself and puts no data in an
 * attribute (ids are table positions, widths are computed numbers), so
 * no value can open a tag, close one or add a handler.
 */
#include "diffreport.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/textsafe.h"
#include "core/util.h"
#include "proto/httpmsg.h"

#define BODY_CHARS   (2 * DIFFREPORT_BODY_CUT) /* of a given body shown */
#define BASE64_CHARS 1024  /* of a binary body shown */
#define INDENT_DEPTH 32    /* deeper JSON is indented no further */
#define PATH_CHARS   512   /* JSON paths matched against differences */
#define JSON_NODES   4096  /* members and elements shown per body */

/* ---- examples ------------------------------------------------------- */

struct example {
    cJSON *json;
    enum compare_outcome outcome;
};

struct endpoint_examples {
    char *endpoint;
    struct example *ex;
    size_t n;
};

struct diffreport {
    size_t examples, max_bytes;
    struct endpoint_examples *eps;
    size_t n_eps;
};

struct diffreport *diffreport_new(size_t examples, size_t max_bytes)
{
    struct diffreport *dr = tm_xcalloc(1, sizeof(*dr));
    dr->examples = examples ? examples : DIFFREPORT_DEFAULT_EXAMPLES;
    dr->max_bytes = max_bytes ? max_bytes : DIFFREPORT_DEFAULT_MAX_BYTES;
    dr->eps = tm_xcalloc(DIFFREPORT_MAX_ENDPOINTS, sizeof(*dr->eps));
    return dr;
}

void diffreport_free(struct diffreport *dr)
{
    if (dr == NULL) {
        return;
    }
    for (size_t i = 0; i < dr->n_eps; i++) {
        for (size_t k = 0; k < dr->eps[i].n; k++) {
            cJSON_Delete(dr->eps[i].ex[k].json);
        }
        free(dr->eps[i].ex);
        free(dr->eps[i].endpoint);
    }
    free(dr->eps);
    free(dr);
}

static struct endpoint_examples *find_endpoint(const struct diffreport *dr,
                                               const char *endpoint)
{
    for (size_t i = 0; i < dr->n_eps; i++) {
        if (strcmp(dr->eps[i].endpoint, endpoint) == 0) {
            return &dr->eps[i];
        }
    }
    return NULL;
}

/* The slot a new example of this outcome takes: n for a free one, the
 * index of a same example it replaces, or -1. At most one same example
 * per endpoint: they show what agreement looks like, the others why
 * there is none. */
static long slot_for(const struct diffreport *dr,
                     const struct endpoint_examples *ep,
                     enum compare_outcome outcome)
{
    size_t n = ep ? ep->n : 0;
    long same = -1;
    for (size_t i = 0; i < n; i++) {
        if (ep->ex[i].outcome == COMPARE_SAME) {
            same = (long)i;
        }
    }
    if (outcome == COMPARE_SAME) {
        return same < 0 && n < dr->examples ? (long)n : -1;
    }
    if (n < dr->examples) {
        return (long)n;
    }
    return same;
}

bool diffreport_wants(const struct diffreport *dr, const char *endpoint,
                      enum compare_outcome outcome)
{
    const struct endpoint_examples *ep = find_endpoint(dr, endpoint);
    if (ep == NULL && dr->n_eps == DIFFREPORT_MAX_ENDPOINTS) {
        return false;
    }
    return slot_for(dr, ep, outcome) >= 0;
}

static enum compare_outcome outcome_of(const cJSON *exchange)
{
    const char *s = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(exchange, "outcome"));
    if (s != NULL && strcmp(s, "same") == 0) {
        return COMPARE_SAME;
    }
    if (s != NULL && strcmp(s, "differ") == 0) {
        return COMPARE_DIFFER;
    }
    return COMPARE_NOT_COMPARABLE;
}

bool diffreport_add_example(struct diffreport *dr, const char *endpoint,
                            const cJSON *exchange)
{
    if (!cJSON_IsObject(exchange)) {
        return false;
    }
    enum compare_outcome outcome = outcome_of(exchange);
    if (!diffreport_wants(dr, endpoint, outcome)) {
        return false;
    }
    struct endpoint_examples *ep = find_endpoint(dr, endpoint);
    if (ep == NULL) {
        ep = &dr->eps[dr->n_eps++];
        ep->endpoint = tm_xstrdup(endpoint);
        ep->ex = tm_xcalloc(dr->examples, sizeof(*ep->ex));
    }
    size_t at = (size_t)slot_for(dr, ep, outcome);
    if (at < ep->n) {
        /* Keep the order of arrival: the replaced one leaves its place. */
        cJSON_Delete(ep->ex[at].json);
        memmove(&ep->ex[at], &ep->ex[at + 1],
                (ep->n - at - 1) * sizeof(*ep->ex));
        ep->n--;
    }
    ep->ex[ep->n].json = cJSON_Duplicate(exchange, true);
    ep->ex[ep->n].outcome = outcome;
    ep->n++;
    return true;
}

static cJSON *headers_json(const struct compare_response *r, bool redact)
{
    cJSON *arr = cJSON_CreateArray();
    size_t n = TM_MIN(r->header_count, (size_t)DIFFREPORT_HEADERS);
    char name[256], value[DIFFREPORT_VALUE_CHARS + 1];
    for (size_t i = 0; i < n; i++) {
        const struct http1_header *h = &r->headers[i];
        size_t nl = TM_MIN(h->name_len, sizeof(name) - 1);
        memcpy(name, h->name, nl);
        name[nl] = '\0';
        bool secret = false;
        for (size_t k = 0; redact && k < httpmsg_redact_default_count; k++) {
            secret |= tm_ascii_caseeq(h->name, h->name_len,
                                      httpmsg_redact_default[k]);
        }
        if (secret) {
            snprintf(value, sizeof(value), "(redacted)");
        } else {
            size_t vl = TM_MIN(h->value_len, sizeof(value) - 1);
            memcpy(value, h->value, vl);
            value[vl] = '\0';
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "value", value);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

cJSON *diffreport_exchange_json(const struct compare_exchange *ex,
                                bool redact)
{
    cJSON *o = compare_exchange_json(ex, redact, DIFFREPORT_BODY_CUT);
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    if (ex->prod.present) {
        cJSON_AddItemToObject(h, "production", headers_json(&ex->prod, redact));
    }
    if (ex->local.present) {
        cJSON_AddItemToObject(h, "local", headers_json(&ex->local, redact));
    }
    return o;
}

bool diffreport_add_exchange(struct diffreport *dr,
                             const struct compare_exchange *ex, bool redact)
{
    if (!diffreport_wants(dr, ex->endpoint, ex->outcome)) {
        return false;
    }
    cJSON *o = diffreport_exchange_json(ex, redact);
    bool kept = diffreport_add_example(dr, ex->endpoint, o);
    cJSON_Delete(o);
    return kept;
}

/* ---- the page buffer ------------------------------------------------ */

struct page {
    char *p;
    size_t len, cap;
};

static void put(struct page *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = TM_MAX(b->cap * 2, b->len + n + 1);
        b->p = tm_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct page *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Template text and numbers only: never data. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void putf(struct page *b, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0) {
        put(b, buf, TM_MIN((size_t)n, sizeof(buf) - 1));
    }
}

/* Text made safe, then its HTML metacharacters as entities. */
static void put_escaped(struct page *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            puts_(b, "&amp;");
            break;
        case '<':
            puts_(b, "&lt;");
            break;
        case '>':
            puts_(b, "&gt;");
            break;
        case '"':
            puts_(b, "&quot;");
            break;
        case '\'':
            puts_(b, "&#39;");
            break;
        default:
            put(b, s, 1);
        }
    }
}

/* One line of text from traffic (no line break kept). */
static void put_text_n(struct page *b, const char *s, size_t n)
{
    /* tm_text_safe writes at most 4 bytes per input byte ("\xNN"). */
    char *safe = tm_xmalloc(4 * n + 1);
    tm_text_safe(safe, 4 * n + 1, s, n);
    put_escaped(b, safe);
    free(safe);
}

static void put_text(struct page *b, const char *s)
{
    put_text_n(b, s, strlen(s));
}

/* Text from traffic whose line breaks are kept (inside <pre>). */
static void put_lines(struct page *b, const char *s, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(s, '\n', n);
        size_t len = nl ? (size_t)(nl - s) : n;
        put_text_n(b, s, len);
        if (nl == NULL) {
            break;
        }
        puts_(b, "\n");
        s += len + 1;
        n -= len + 1;
    }
}

/* ---- JSON helpers --------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const char *str_or(const cJSON *o, const char *name, const char *dflt)
{
    const char *s = cJSON_GetStringValue(get(o, name));
    return s ? s : dflt;
}

static double num_or(const cJSON *o, const char *name, double dflt)
{
    const cJSON *v = get(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void put_count(struct page *b, double v)
{
    putf(b, "%.0f", v < 0 ? 0.0 : v);
}

static void put_ms(struct page *b, const cJSON *v)
{
    if (!cJSON_IsNumber(v)) {
        puts_(b, "&#8211;");
        return;
    }
    double ms = v->valuedouble;
    if (ms < 1) {
        putf(b, "%.3f&#8239;ms", ms);
    } else if (ms < 100) {
        putf(b, "%.1f&#8239;ms", ms);
    } else {
        putf(b, "%.0f&#8239;ms", ms);
    }
}

/* ---- the page ------------------------------------------------------- */

static const char style[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "margin:24px;color:#1d2125;background:#fff}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}"
    "h3{font-size:15px;margin:20px 0 6px}h4{margin:0 0 6px;font-size:14px}"
    "code,pre{font:12.5px/1.4 ui-monospace,'DejaVu Sans Mono',monospace}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;"
    "border:1px solid #e1e4e8;border-radius:4px;padding:8px;margin:4px 0;"
    "max-height:480px;overflow:auto}"
    ".muted{color:#6a737d}.totals span{margin-right:14px}"
    "table{border-collapse:collapse}"
    "th,td{border-bottom:1px solid #e1e4e8;padding:5px 8px;"
    "text-align:left;vertical-align:top}"
    "th{background:#f6f8fa;font-weight:600}td.num{text-align:right;"
    "font-variant-numeric:tabular-nums;white-space:nowrap}"
    "td.ep{min-width:14em}.ep code{overflow-wrap:anywhere}"
    "table.diffs{margin-bottom:10px}"
    ".bar{display:flex;width:160px;height:12px;border-radius:3px;"
    "overflow:hidden;background:#eee;margin-top:3px}"
    ".bar span{display:block;height:100%}"
    ".s{background:#2da44e}.d{background:#cf222e}.n{background:#a0a7b0}"
    ".key span{display:inline-block;width:10px;height:10px;"
    "margin:0 4px 0 12px;border-radius:2px}"
    "details.ex{border:1px solid #d0d7de;border-radius:6px;margin:8px 0}"
    "details.ex>summary{cursor:pointer;padding:6px 10px;background:#f6f8fa;"
    "overflow-wrap:anywhere}"
    "details.ex[open]>summary{border-bottom:1px solid #d0d7de}"
    ".exbody{padding:8px 12px}"
    ".badge{display:inline-block;padding:0 6px;border-radius:3px;"
    "color:#fff;font-size:12px;margin-right:6px}"
    ".badge.same{background:#2da44e}.badge.differ{background:#cf222e}"
    ".badge.not_comparable{background:#6e7781}"
    ".sides{display:grid;grid-template-columns:1fr 1fr;gap:12px}"
    ".side{min-width:0}.side table{width:100%;margin-bottom:6px}"
    ".side td{overflow-wrap:anywhere}"
    "tr.hl td,span.hl{background:#ffebe9}mark{background:#fff0a0}"
    "tr.noise td{color:#8c959f}"
    ".reason{background:#f6f8fa;border-left:3px solid #a0a7b0;"
    "padding:4px 8px}";

static void put_bar(struct page *b, double same, double differ, double nc)
{
    double total = same + differ + nc;
    puts_(b, "<div class=\"bar\">");
    if (total > 0) {
        putf(b, "<span class=\"s\" style=\"width:%.2f%%\"></span>",
             100.0 * same / total);
        putf(b, "<span class=\"d\" style=\"width:%.2f%%\"></span>",
             100.0 * differ / total);
        putf(b, "<span class=\"n\" style=\"width:%.2f%%\"></span>",
             100.0 * nc / total);
    }
    puts_(b, "</div>");
}

static void put_totals(struct page *b, const cJSON *report)
{
    puts_(b, "<p class=\"totals\">");
    putf(b, "<span><b>%.0f</b> exchanges</span>",
         num_or(report, "exchanges", 0));
    putf(b, "<span><b>%.0f</b> same</span>", num_or(report, "same", 0));
    putf(b, "<span><b>%.0f</b> differ</span>", num_or(report, "differ", 0));
    putf(b, "<span><b>%.0f</b> not comparable</span>",
         num_or(report, "not_comparable", 0));
    putf(b, "<span><b>%.0f</b> connections</span>",
         num_or(report, "connections", 0));
    puts_(b, "</p>");
    const cJSON *reasons = get(report, "not_comparable_by_reason");
    if (cJSON_GetArraySize(reasons) > 0) {
        puts_(b, "<p class=\"muted\">Not comparable: ");
        const cJSON *r;
        bool first = true;
        cJSON_ArrayForEach(r, reasons)
        {
            if (!first) {
                puts_(b, ", ");
            }
            first = false;
            put_text(b, r->string ? r->string : "?");
            puts_(b, " ");
            put_count(b, cJSON_IsNumber(r) ? r->valuedouble : 0);
        }
        puts_(b, "</p>");
    }
    const cJSON *noise = get(report, "noise_fields");
    if (cJSON_GetArraySize(noise) > 0) {
        puts_(b, "<p class=\"muted\">Noise fields (differ between identical "
                 "production requests, not counted): ");
        const cJSON *f;
        bool first = true;
        cJSON_ArrayForEach(f, noise)
        {
            if (!first) {
                puts_(b, ", ");
            }
            first = false;
            puts_(b, "<code>");
            put_text(b, str_or(f, "endpoint", ""));
            puts_(b, " ");
            put_text(b, str_or(f, "field", ""));
            puts_(b, "</code>");
        }
        puts_(b, "</p>");
    }
}

static void put_latency_cell(struct page *b, const cJSON *lat)
{
    puts_(b, "<td class=\"num\">");
    put_ms(b, get(lat, "p50"));
    puts_(b, " / ");
    put_ms(b, get(lat, "p99"));
    puts_(b, "</td>");
}

static void put_table(struct page *b, const cJSON *endpoints,
                      const struct diffreport *dr)
{
    puts_(b, "<h2>Endpoints</h2>\n<p class=\"key muted\">"
             "<span class=\"s\"></span>same<span class=\"d\"></span>differ"
             "<span class=\"n\"></span>not comparable</p>\n"
             "<table class=\"endpoints\"><thead><tr><th>Endpoint</th>"
             "<th>Exchanges</th><th>Outcome</th><th>Same</th>"
             "<th>Differ</th><th>Not comparable</th>"
             "<th>Most frequent differing fields</th>"
             "<th>Production p50 / p99</th><th>Local p50 / p99</th>"
             "<th>Examples</th></tr></thead>\n<tbody>\n");
    const cJSON *ep;
    size_t row = 0;
    cJSON_ArrayForEach(ep, endpoints)
    {
        row++;
        double same = num_or(ep, "same", 0), differ = num_or(ep, "differ", 0),
               nc = num_or(ep, "not_comparable", 0);
        puts_(b, "<tr><td class=\"ep\"><code>");
        put_text(b, str_or(ep, "endpoint", "?"));
        puts_(b, "</code></td><td class=\"num\">");
        put_count(b, num_or(ep, "exchanges", same + differ + nc));
        puts_(b, "</td><td>");
        put_bar(b, same, differ, nc);
        puts_(b, "</td><td class=\"num\">");
        put_count(b, same);
        puts_(b, "</td><td class=\"num\">");
        put_count(b, differ);
        puts_(b, "</td><td class=\"num\">");
        put_count(b, nc);
        puts_(b, "</td><td>");
        const cJSON *f;
        bool first = true;
        cJSON_ArrayForEach(f, get(ep, "top_differing_fields"))
        {
            if (!first) {
                puts_(b, "<br>");
            }
            first = false;
            puts_(b, "<code>");
            put_text(b, str_or(f, "field", "?"));
            puts_(b, "</code> <span class=\"muted\">");
            put_count(b, num_or(f, "exchanges", 0));
            puts_(b, "</span>");
        }
        puts_(b, "</td>");
        const cJSON *lat = get(ep, "latency_ms");
        put_latency_cell(b, get(lat, "production"));
        put_latency_cell(b, get(lat, "local"));
        puts_(b, "<td class=\"num\">");
        const char *name = cJSON_GetStringValue(get(ep, "endpoint"));
        const struct endpoint_examples *ex =
            name ? find_endpoint(dr, name) : NULL;
        if (ex != NULL && ex->n > 0) {
            putf(b, "<a href=\"#ep-%zu\">%zu</a>", row, ex->n);
        } else {
            puts_(b, "0");
        }
        puts_(b, "</td></tr>\n");
    }
    puts_(b, "</tbody></table>\n");
}

/* ---- one example ---------------------------------------------------- */

struct marks {
    const cJSON *diffs; /* the exchange's "differences" */
    char path[PATH_CHARS + 1];
    size_t len;
    bool too_long;
    size_t nodes;
};

/* Whether a kept, non-noise JSON difference names the current path. */
static bool path_differs(const struct marks *m)
{
    if (m->too_long) {
        return false;
    }
    const cJSON *d;
    cJSON_ArrayForEach(d, m->diffs)
    {
        const char *line = cJSON_GetStringValue(get(d, "line"));
        if (line == NULL || cJSON_IsTrue(get(d, "noise")) ||
            strcmp(str_or(d, "kind", ""), "json") != 0) {
            continue;
        }
        if (strncmp(line, m->path, m->len) == 0 && line[m->len] == ':' &&
            line[m->len + 1] == ' ') {
            return true;
        }
    }
    return false;
}

static bool identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          *s == '_')) {
        return false;
    }
    for (s++; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_')) {
            return false;
        }
    }
    return true;
}

static void path_add(struct marks *m, const char *s, size_t n)
{
    if (m->too_long || m->len + n > PATH_CHARS) {
        m->too_long = true;
        return;
    }
    memcpy(m->path + m->len, s, n);
    m->len += n;
    m->path[m->len] = '\0';
}

/* The path step to a member or element, spelled as jsondiff spells it. */
static void path_push(struct marks *m, const cJSON *item, size_t index,
                      bool in_array)
{
    char step[32];
    if (in_array) {
        snprintf(step, sizeof(step), "[%zu]", index);
        path_add(m, step, strlen(step));
    } else if (identifier(item->string)) {
        path_add(m, ".", 1);
        path_add(m, item->string, strlen(item->string));
    } else {
        path_add(m, "[\"", 2);
        for (const char *s = item->string; *s; s++) {
            unsigned char c = (unsigned char)*s;
            if (c == '"' || c == '\\') {
                step[0] = '\\';
                step[1] = (char)c;
                path_add(m, step, 2);
            } else if (c < 0x20 || c == 0x7f) {
                snprintf(step, sizeof(step), "\\u%04x", c);
                path_add(m, step, 6);
            } else {
                path_add(m, (const char *)&c, 1);
            }
        }
        path_add(m, "\"]", 2);
    }
}

static void put_indent(struct page *b, size_t depth)
{
    static const char spaces[] = "                                "
                                 "                                ";
    put(b, spaces, 2 * TM_MIN(depth, (size_t)INDENT_DEPTH));
}

/* A scalar as JSON text (a detached copy, so no sibling follows). */
static void put_scalar(struct page *b, const cJSON *v)
{
    cJSON *one = cJSON_Duplicate(v, false);
    char *s = one ? cJSON_PrintUnformatted(one) : NULL;
    put_text(b, s ? s : "?");
    cJSON_free(s);
    cJSON_Delete(one);
}

static void put_json(struct page *b, struct marks *m, const cJSON *v,
                     size_t depth)
{
    bool container = cJSON_IsArray(v) || cJSON_IsObject(v);
    if (!container) {
        put_scalar(b, v);
        return;
    }
    bool array = cJSON_IsArray(v);
    puts_(b, array ? "[" : "{");
    if (v->child == NULL) {
        puts_(b, array ? "]" : "}");
        return;
    }
    puts_(b, "\n");
    size_t index = 0;
    for (const cJSON *c = v->child; c != NULL; c = c->next, index++) {
        if (++m->nodes > JSON_NODES) {
            put_indent(b, depth + 1);
            puts_(b, "<span class=\"muted\">(more not shown)</span>\n");
            break;
        }
        size_t saved = m->len;
        bool saved_long = m->too_long;
        path_push(m, c, index, array);
        bool hl = path_differs(m);
        put_indent(b, depth + 1);
        if (hl) {
            puts_(b, "<mark>");
        }
        if (!array) {
            cJSON *key = cJSON_CreateString(c->string ? c->string : "");
            char *ks = cJSON_PrintUnformatted(key);
            put_text(b, ks ? ks : "\"\"");
            cJSON_free(ks);
            cJSON_Delete(key);
            puts_(b, ": ");
        }
        put_json(b, m, c, depth + 1);
        if (hl) {
            puts_(b, "</mark>");
        }
        puts_(b, c->next ? ",\n" : "\n");
        m->len = saved;
        m->path[saved] = '\0';
        m->too_long = saved_long;
    }
    put_indent(b, depth);
    puts_(b, array ? "]" : "}");
}

static void put_body(struct page *b, const cJSON *body, const cJSON *diffs)
{
    if (body == NULL) {
        puts_(b, "<p class=\"muted\">no response</p>");
        return;
    }
    const char *text = cJSON_GetStringValue(get(body, "text"));
    const char *b64 = cJSON_GetStringValue(get(body, "base64"));
    bool cut = cJSON_IsTrue(get(body, "cut"));
    puts_(b, "<p class=\"muted\">body: ");
    put_count(b, num_or(body, "size", 0));
    puts_(b, " bytes");
    if (b64 != NULL) {
        puts_(b, ", binary (base64)");
    }
    if (cut) {
        puts_(b, ", excerpt");
    }
    puts_(b, "</p>");
    if (text != NULL && text[0] != '\0') {
        size_t n = strlen(text);
        cJSON *doc = NULL;
        if (n <= BODY_CHARS && (text[0] == '{' || text[0] == '[')) {
            doc = cJSON_ParseWithLength(text, n);
        }
        puts_(b, "<pre>");
        if (doc != NULL) {
            struct marks m = {.diffs = diffs, .path = "$", .len = 1};
            if (path_differs(&m)) {
                puts_(b, "<mark>");
            }
            put_json(b, &m, doc, 0);
            if (path_differs(&m)) {
                puts_(b, "</mark>");
            }
            cJSON_Delete(doc);
        } else {
            put_lines(b, text, TM_MIN(n, (size_t)BODY_CHARS));
            if (n > BODY_CHARS) {
                puts_(b, "\n<span class=\"muted\">(more not shown)</span>");
            }
        }
        puts_(b, "</pre>");
    } else if (b64 != NULL) {
        size_t n = strlen(b64);
        puts_(b, "<pre>");
        put_text_n(b, b64, TM_MIN(n, (size_t)BASE64_CHARS));
        if (n > BASE64_CHARS) {
            puts_(b, "\n<span class=\"muted\">(more not shown)</span>");
        }
        puts_(b, "</pre>");
    }
}

static bool field_differs(const cJSON *diffs, const char *field)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, diffs)
    {
        const char *f = cJSON_GetStringValue(get(d, "field"));
        if (f != NULL && !cJSON_IsTrue(get(d, "noise")) &&
            tm_ascii_caseeq(f, strlen(f), field)) {
            return true;
        }
    }
    return false;
}

static void put_status(struct page *b, const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        putf(b, "%.0f", v->valuedouble);
    } else {
        puts_(b, "&#8211;");
    }
}

static void put_side(struct page *b, const cJSON *ex, const char *side,
                     const char *label, bool status_hl)
{
    const cJSON *diffs = get(ex, "differences");
    putf(b, "<div class=\"side\"><h4>%s</h4><p>status ", label);
    puts_(b, status_hl ? "<span class=\"hl\">" : "<span>");
    put_status(b, get(get(ex, "status"), side));
    puts_(b, "</span> &#183; latency ");
    put_ms(b, get(get(ex, "latency_ms"), side));
    puts_(b, "</p>");
    const cJSON *headers = get(get(ex, "headers"), side);
    if (cJSON_GetArraySize(headers) > 0) {
        puts_(b, "<table class=\"headers\">");
        const cJSON *h;
        cJSON_ArrayForEach(h, headers)
        {
            const char *name = str_or(h, "name", "");
            char field[300];
            snprintf(field, sizeof(field), "header %s", name);
            puts_(b, field_differs(diffs, field) ? "<tr class=\"hl\"><td>"
                                                 : "<tr><td>");
            put_text(b, name);
            puts_(b, "</td><td>");
            put_text(b, str_or(h, "value", ""));
            puts_(b, "</td></tr>");
        }
        puts_(b, "</table>");
    }
    put_body(b, get(get(ex, "body"), side), diffs);
    puts_(b, "</div>");
}

static void put_example(struct page *b, const cJSON *ex, bool open)
{
    const char *outcome = str_or(ex, "outcome", "not_comparable");
    if (strcmp(outcome, "same") != 0 && strcmp(outcome, "differ") != 0) {
        outcome = "not_comparable";
    }
    const cJSON *diffs = get(ex, "differences");
    const cJSON *st = get(ex, "status");
    bool status_hl = field_differs(diffs, "status");
    putf(b, "<details class=\"ex\"%s><summary><span class=\"badge %s\">%s"
            "</span><code>",
         open ? " open" : "", outcome, strcmp(outcome, "not_comparable") == 0 ? "not comparable"
                                                          : outcome);
    put_text(b, str_or(ex, "request", str_or(ex, "endpoint", "")));
    puts_(b, "</code> <span class=\"muted\">");
    if (st != NULL) {
        put_status(b, get(st, "production"));
        puts_(b, " &#8594; ");
        put_status(b, get(st, "local"));
        puts_(b, " &#183; ");
    }
    putf(b, "connection %.0f, exchange %.0f", num_or(ex, "connection", 0),
         num_or(ex, "exchange", 0));
    int nd = cJSON_GetArraySize(diffs);
    if (nd > 0) {
        putf(b, " &#183; %d difference%s", nd, nd == 1 ? "" : "s");
    }
    puts_(b, "</span></summary>\n<div class=\"exbody\">");
    if (strcmp(outcome, "not_comparable") == 0) {
        puts_(b, "<p class=\"reason\">not comparable: ");
        put_text(b, str_or(ex, "reason", "?"));
        const char *detail = str_or(ex, "detail", "");
        if (detail[0] != '\0') {
            puts_(b, " &#8211; ");
            put_text(b, detail);
        }
        puts_(b, "</p>");
    }
    if (nd > 0) {
        puts_(b, "<table class=\"diffs\"><tr><th>Differing field</th>"
                 "<th>Production &#8594; local</th></tr>");
        const cJSON *d;
        cJSON_ArrayForEach(d, diffs)
        {
            bool noise = cJSON_IsTrue(get(d, "noise"));
            puts_(b, noise ? "<tr class=\"noise\"><td><code>"
                           : "<tr class=\"hl\"><td><code>");
            put_text(b, str_or(d, "field", "?"));
            puts_(b, "</code>");
            if (noise) {
                puts_(b, " (noise)");
            }
            puts_(b, "</td><td><code>");
            put_text(b, str_or(d, "line", ""));
            puts_(b, "</code></td></tr>");
        }
        puts_(b, "</table>");
        double more = num_or(ex, "differences_not_shown", 0);
        if (more > 0) {
            putf(b, "<p class=\"muted\">%.0f more differences not shown</p>",
                 more);
        }
    }
    puts_(b, "<div class=\"sides\">");
    put_side(b, ex, "production", "Production", status_hl);
    put_side(b, ex, "local", "Local", status_hl);
    puts_(b, "</div></div></details>\n");
}

/* ---- the whole page ------------------------------------------------- */

/* An endpoint's examples; false once the page is full. */
static bool put_section(struct page *b, const struct diffreport *dr,
                        const struct endpoint_examples *ep, size_t id,
                        size_t *left_out, bool *opened)
{
    if (*left_out > 0) {
        *left_out += ep->n;
        return false;
    }
    size_t start = b->len;
    putf(b, "<section id=\"ep-%zu\"><h3><code>", id);
    put_text(b, ep->endpoint);
    putf(b, "</code> <span class=\"muted\">%zu example%s</span></h3>\n",
         ep->n, ep->n == 1 ? "" : "s");
    /* Differing first, then not comparable, then same. */
    static const enum compare_outcome order[] = {
        COMPARE_DIFFER, COMPARE_NOT_COMPARABLE, COMPARE_SAME};
    size_t shown = 0;
    for (size_t o = 0; o < TM_ARRAY_LEN(order); o++) {
        for (size_t i = 0; i < ep->n; i++) {
            if (ep->ex[i].outcome != order[o]) {
                continue;
            }
            size_t before = b->len;
            /* The page's first difference is shown open. */
            bool opening = !*opened && order[o] != COMPARE_SAME;
            put_example(b, ep->ex[i].json, opening);
            if (b->len > dr->max_bytes) {
                b->len = before;
                b->p[b->len] = '\0';
                *left_out += ep->n - shown;
                break;
            }
            *opened |= opening;
            shown++;
        }
        if (*left_out > 0) {
            break;
        }
    }
    if (shown == 0) {
        b->len = start;
        b->p[b->len] = '\0';
        return false;
    }
    puts_(b, "</section>\n");
    return *left_out == 0;
}

char *diffreport_render(const struct diffreport *dr, const cJSON *report,
                        const char *title)
{
    struct page b = {NULL, 0, 0};
    if (title == NULL) {
        title = "tapmirror compare report";
    }
    puts_(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
              "<meta charset=\"utf-8\">\n"
              "<meta http-equiv=\"Content-Security-Policy\" "
              "content=\"default-src 'none'; style-src 'unsafe-inline'; "
              "img-src data:\">\n"
              "<meta name=\"viewport\" content=\"width=device-width\">\n"
              "<title>");
    put_text(&b, title);
    puts_(&b, "</title>\n<style>");
    puts_(&b, style);
    puts_(&b, "</style></head>\n<body>\n<h1>");
    put_text(&b, title);
    puts_(&b, "</h1>\n");
    put_totals(&b, report);
    const cJSON *endpoints = get(report, "endpoints");
    put_table(&b, endpoints, dr);

    puts_(&b, "<h2>Examples</h2>\n");
    if (dr->n_eps == 0) {
        puts_(&b, "<p class=\"muted\">No examples were kept.</p>\n");
    }
    /* In table order (ids are table rows), then any endpoint the table
     * does not name (counted among "(other endpoints)"). */
    bool *done = tm_xcalloc(dr->n_eps + 1, sizeof(*done));
    size_t left_out = 0, row = 0;
    bool opened = false;
    const cJSON *ep;
    cJSON_ArrayForEach(ep, endpoints)
    {
        row++;
        const char *name = cJSON_GetStringValue(get(ep, "endpoint"));
        const struct endpoint_examples *ex =
            name ? find_endpoint(dr, name) : NULL;
        if (ex == NULL || done[ex - dr->eps]) {
            continue;
        }
        done[ex - dr->eps] = true;
        put_section(&b, dr, ex, row, &left_out, &opened);
    }
    for (size_t i = 0; i < dr->n_eps; i++) {
        if (!done[i]) {
            put_section(&b, dr, &dr->eps[i], ++row, &left_out, &opened);
        }
    }
    free(done);
    if (left_out > 0) {
        putf(&b, "<p class=\"muted\">%zu more examples not shown: the page "
                 "reached its size limit.</p>\n", left_out);
    }
    puts_(&b, "</body></html>\n");
    return b.p;
}
