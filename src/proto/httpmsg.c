/*
 * Head rewrite, redaction, header comparison and endpoint templates (see
 * httpmsg.h).
 */
#include "httpmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool in_list(const char *name, size_t len, const char *const *list,
                    size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i] != NULL && tm_ascii_caseeq(name, len, list[i])) {
            return true;
        }
    }
    return false;
}

/* ---- rewrite -------------------------------------------------------- */

static bool is_token(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c)) {
            return false;
        }
    }
    return true;
}

static bool clean_value(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

struct out {
    char *buf;
    size_t cap, len;
    bool overflow;
};

static void emit(struct out *o, const char *s, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void emit_str(struct out *o, const char *s)
{
    emit(o, s, strlen(s));
}

/* A value as received, obs-fold line breaks turned into spaces. */
static void emit_value(struct out *o, const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = (v[i] == '\r' || v[i] == '\n' || v[i] == '\0') ? ' ' : v[i];
        emit(o, &c, 1);
    }
}

static void emit_field(struct out *o, const char *name, size_t nlen,
                       const char *value, size_t vlen)
{
    emit(o, name, nlen);
    emit(o, ": ", 2);
    emit_value(o, value, vlen);
    emit(o, "\r\n", 2);
}

static int rw_error(char *err, size_t errlen, const char *why,
                    const char *name)
{
    if (errlen > 0) {
        snprintf(err, errlen, "%s%s%.60s", why, name ? ": " : "",
                 name ? name : "");
    }
    return -1;
}

static bool framing_name(const char *name)
{
    return tm_ascii_caseeq(name, strlen(name), "content-length") ||
           tm_ascii_caseeq(name, strlen(name), "transfer-encoding");
}

int httpmsg_rewrite_head(const struct http1_head *req,
                         const struct httpmsg_rewrite *rw, char *out,
                         size_t cap, size_t *len, char *err, size_t errlen)
{
    static const struct httpmsg_rewrite none = {0};
    if (rw == NULL) {
        rw = &none;
    }
    /* Everything the caller names is checked before a byte is written. */
    for (size_t i = 0; i < rw->n_set; i++) {
        if (!is_token(rw->set[i].name)) {
            return rw_error(err, errlen, "not a header name",
                            rw->set[i].name);
        }
        if (framing_name(rw->set[i].name)) {
            return rw_error(err, errlen,
                            "the body's framing header cannot be set",
                            rw->set[i].name);
        }
        if (!clean_value(rw->set[i].value)) {
            return rw_error(err, errlen, "header value holds a line break",
                            rw->set[i].name);
        }
    }
    for (size_t i = 0; i < rw->n_drop; i++) {
        if (framing_name(rw->drop[i])) {
            return rw_error(err, errlen,
                            "the body's framing header cannot be dropped",
                            rw->drop[i]);
        }
    }
    if (rw->host != NULL && (!clean_value(rw->host) || rw->host[0] == '\0')) {
        return rw_error(err, errlen, "bad Host value", NULL);
    }

    struct out o = {out, cap, 0, false};
    char line[32];
    emit(&o, req->method_name, strlen(req->method_name));
    emit(&o, " ", 1);
    emit_value(&o, req->target, req->target_len);
    if (req->version_major < 10 && req->version_minor < 10) {
        /* Every HTTP/1 head: no snprintf per request. */
        memcpy(line, " HTTP/1.1\r\n", 12);
        line[6] = (char)('0' + req->version_major);
        line[8] = (char)('0' + req->version_minor);
    } else {
        snprintf(line, sizeof(line), " HTTP/%u.%u\r\n", req->version_major,
                 req->version_minor);
    }
    emit_str(&o, line);

    /* Which replacements have been written (at most 64 sets + host +
     * tag are tracked; more sets are refused). */
    bool done[66] = {false};
    if (rw->n_set > 64) {
        return rw_error(err, errlen, "too many headers to set", NULL);
    }
    const size_t host_slot = 64, tag_slot = 65;
    for (size_t i = 0; i < req->header_count; i++) {
        const struct http1_header *h = &req->headers[i];
        if (in_list(h->name, h->name_len, rw->drop, rw->n_drop)) {
            continue;
        }
        bool replaced = false;
        for (size_t k = 0; k < rw->n_set && !replaced; k++) {
            if (tm_ascii_caseeq(h->name, h->name_len, rw->set[k].name)) {
                replaced = true;
                if (!done[k]) {
                    done[k] = true;
                    emit_field(&o, h->name, h->name_len, rw->set[k].value,
                               strlen(rw->set[k].value));
                }
            }
        }
        if (!replaced && rw->host != NULL &&
            tm_ascii_caseeq(h->name, h->name_len, "host")) {
            replaced = true;
            if (!done[host_slot]) {
                done[host_slot] = true;
                emit_field(&o, h->name, h->name_len, rw->host,
                           strlen(rw->host));
            }
        }
        if (!replaced && rw->tag && tm_ascii_caseeq(h->name, h->name_len,
                                            "x-tapmirror")) {
            replaced = true;
            if (!done[tag_slot]) {
                done[tag_slot] = true;
                emit_field(&o, h->name, h->name_len, "1", 1);
            }
        }
        if (!replaced) {
            emit_field(&o, h->name, h->name_len, h->value, h->value_len);
        }
    }
    if (rw->host != NULL && !done[host_slot]) {
        emit_field(&o, "Host", 4, rw->host, strlen(rw->host));
    }
    for (size_t k = 0; k < rw->n_set; k++) {
        if (!done[k]) {
            emit_field(&o, rw->set[k].name, strlen(rw->set[k].name),
                       rw->set[k].value, strlen(rw->set[k].value));
        }
    }
    if (rw->tag && !done[tag_slot]) {
        emit_field(&o, "X-Tapmirror", 11, "1", 1);
    }
    emit(&o, "\r\n", 2);
    if (o.overflow) {
        return rw_error(err, errlen, "rewritten head does not fit", NULL);
    }
    *len = o.len;
    return 0;
}

/* ---- redaction ------------------------------------------------------ */

const char *const httpmsg_redact_default[] = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
};
const size_t httpmsg_redact_default_count = TM_ARRAY_LEN(httpmsg_redact_default);

/* Overwrites line[from, to) but its surrounding whitespace; returns
 * whether anything was overwritten. */
static bool blank(uint8_t *p, size_t from, size_t to)
{
    while (from < to && (p[from] == ' ' || p[from] == '\t')) {
        from++;
    }
    while (to > from && (p[to - 1] == ' ' || p[to - 1] == '\t')) {
        to--;
    }
    memset(p + from, 'x', to - from);
    return to > from;
}

size_t httpmsg_redact(uint8_t *head, size_t len, const char *const *extra,
                      size_t n_extra)
{
    size_t count = 0;
    size_t pos = 0;
    bool first = true;      /* the start line */
    bool redacting = false; /* continuation lines of a redacted field */
    while (pos < len) {
        size_t end = pos;
        while (end < len && head[end] != '\n') {
            end++;
        }
        size_t stop = end; /* the line without its CR LF */
        if (stop > pos && head[stop - 1] == '\r') {
            stop--;
        }
        if (stop == pos && end < len) {
            break; /* the empty line ends the head */
        }
        if (first) {
            first = false;
        } else if (head[pos] == ' ' || head[pos] == '\t') {
            if (redacting) {
                blank(head, pos, stop);
            }
        } else {
            redacting = false;
            const uint8_t *colon = memchr(head + pos, ':', stop - pos);
            if (colon != NULL) {
                size_t nlen = (size_t)(colon - (head + pos));
                const char *name = (const char *)head + pos;
                if (in_list(name, nlen, httpmsg_redact_default,
                            httpmsg_redact_default_count) ||
                    in_list(name, nlen, extra, n_extra)) {
                    redacting = true;
                    count++;
                    blank(head, pos + nlen + 1, stop);
                }
            }
        }
        pos = end + 1;
    }
    return count;
}

/* ---- header comparison ---------------------------------------------- */

/*
 * Left out by default, because two correct deployments answering the
 * same request differ in them:
 *  - date, age, expires: the time of the answer and of cache residence
 *    (Expires is mostly Date + max-age);
 *  - etag, last-modified: derived from file times, inodes or build
 *    stamps of each deployment (nginx: mtime-size); the body comparison
 *    covers the content itself;
 *  - server, via, x-envoy-upstream-service-time: the software and the
 *    proxies on production's path, absent locally;
 *  - x-request-id, x-correlation-id, x-amzn-trace-id, traceparent,
 *    tracestate, b3, x-b3-*: per-request identifiers;
 *  - content-length, transfer-encoding: framing; bodies are compared
 *    after it is removed;
 *  - connection, keep-alive: hop-by-hop connection management, which a
 *    load balancer and a local process do differently.
 * Set-Cookie is compared by cookie names only (values are session ids);
 * Content-Encoding is left out when bodies are compared decoded.
 */
const char *const httpmsg_ignore_default[] = {
    "date",
    "age",
    "expires",
    "etag",
    "last-modified",
    "server",
    "via",
    "x-envoy-upstream-service-time",
    "x-request-id",
    "x-correlation-id",
    "x-amzn-trace-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
};
const size_t httpmsg_ignore_default_count = TM_ARRAY_LEN(httpmsg_ignore_default);

struct field {
    const struct http1_header *h;
    size_t order;
};

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = TM_MIN(alen, blen);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)lower(a[i]);
        unsigned char y = (unsigned char)lower(b[i]);
        if (x != y) {
            return x < y ? -1 : 1;
        }
    }
    return alen < blen ? -1 : alen > blen;
}

static int field_cmp(const void *x, const void *y)
{
    const struct field *a = x, *b = y;
    int c = name_cmp(a->h->name, a->h->name_len, b->h->name, b->h->name_len);
    if (c != 0) {
        return c;
    }
    return a->order < b->order ? -1 : a->order > b->order;
}

static bool compared(const struct http1_header *h,
                     const struct httpmsg_compare_opts *o)
{
    if (in_list(h->name, h->name_len, httpmsg_ignore_default,
                httpmsg_ignore_default_count)) {
        return false;
    }
    if (o->bodies_decoded && tm_ascii_caseeq(h->name, h->name_len,
                                     "content-encoding")) {
        return false;
    }
    return !in_list(h->name, h->name_len, o->ignore, o->n_ignore);
}

static struct field *collect(const struct http1_head *head,
                             const struct httpmsg_compare_opts *o, size_t *n)
{
    struct field *f = tm_xmalloc((head->header_count + 1) * sizeof(*f));
    size_t k = 0;
    for (size_t i = 0; i < head->header_count; i++) {
        if (compared(&head->headers[i], o)) {
            f[k].h = &head->headers[i];
            f[k].order = i;
            k++;
        }
    }
    qsort(f, k, sizeof(*f), field_cmp);
    *n = k;
    return f;
}

/* The part of a value that is compared: for Set-Cookie the cookie name. */
static size_t compared_len(const struct http1_header *h)
{
    if (tm_ascii_caseeq(h->name, h->name_len, "set-cookie")) {
        const char *eq = memchr(h->value, '=', h->value_len);
        return eq ? (size_t)(eq - h->value) : h->value_len;
    }
    return h->value_len;
}

/* "v1", "v2" of one name's group, shortened. */
static void put_values(char *buf, size_t cap, const struct field *f,
                       size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    if (n == 0) {
        snprintf(buf, cap, "(absent)");
        return;
    }
    for (size_t i = 0; i < n && len + 1 < cap; i++) {
        const struct http1_header *h = f[i].h;
        size_t vlen = compared_len(h);
        int w = snprintf(buf + len, cap - len, "%s\"", i ? ", " : "");
        len = TM_MIN(len + (size_t)(w > 0 ? w : 0), cap - 1);
        for (size_t k = 0; k < vlen && len + 1 < cap; k++) {
            unsigned char c = (unsigned char)h->value[k];
            buf[len++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
        }
        if (len + 1 < cap) {
            buf[len++] = '"';
        }
        buf[len] = '\0';
    }
    if (len + 1 >= cap && cap > 4) {
        memcpy(buf + cap - 4, "...", 4);
    }
}

static void add_line(struct httpmsg_diff *d, size_t max_lines,
                     const char *name, size_t nlen, const struct field *a,
                     size_t na, const struct field *b, size_t nb)
{
    d->count++;
    if (d->reported == max_lines) {
        return;
    }
    char va[128], vb[128], line[360];
    put_values(va, sizeof(va), a, na);
    put_values(vb, sizeof(vb), b, nb);
    char lname[64];
    size_t n = TM_MIN(nlen, sizeof(lname) - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)lower(name[i]);
        lname[i] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
    }
    lname[n] = '\0';
    snprintf(line, sizeof(line), "%s: %s -> %s", lname, va, vb);
    d->lines = tm_xrealloc(d->lines, (d->reported + 1) * sizeof(char *));
    d->lines[d->reported++] = tm_xstrdup(line);
}

static bool same_values(const struct field *a, const struct field *b,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t la = compared_len(a[i].h), lb = compared_len(b[i].h);
        if (la != lb || memcmp(a[i].h->value, b[i].h->value, la) != 0) {
            return false;
        }
    }
    return true;
}

void httpmsg_compare_headers(const struct http1_head *a,
                             const struct http1_head *b,
                             const struct httpmsg_compare_opts *opts,
                             struct httpmsg_diff *out)
{
    static const struct httpmsg_compare_opts defaults = {0};
    const struct httpmsg_compare_opts *o = opts ? opts : &defaults;
    size_t max_lines = o->max_lines ? o->max_lines : 100;
    memset(out, 0, sizeof(*out));
    size_t na, nb;
    struct field *fa = collect(a, o, &na);
    struct field *fb = collect(b, o, &nb);
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        /* The group of one name on each side. */
        const struct http1_header *key =
            i == na ? fb[j].h
          : j == nb ? fa[i].h
          : name_cmp(fa[i].h->name, fa[i].h->name_len, fb[j].h->name,
                     fb[j].h->name_len) <= 0 ? fa[i].h : fb[j].h;
        size_t ga = 0, gb = 0;
        while (i + ga < na && name_cmp(fa[i + ga].h->name,
                                       fa[i + ga].h->name_len, key->name,
                                       key->name_len) == 0) {
            ga++;
        }
        while (j + gb < nb && name_cmp(fb[j + gb].h->name,
                                       fb[j + gb].h->name_len, key->name,
                                       key->name_len) == 0) {
            gb++;
        }
        if (ga != gb || !same_values(fa + i, fb + j, ga)) {
            add_line(out, max_lines, key->name, key->name_len, fa + i, ga,
                     fb + j, gb);
        }
        i += ga;
        j += gb;
    }
    free(fa);
    free(fb);
}

void httpmsg_diff_free(struct httpmsg_diff *d)
{
    for (size_t i = 0; i < d->reported; i++) {
        free(d->lines[i]);
    }
    free(d->lines);
    memset(d, 0, sizeof(*d));
}

/* ---- endpoint templates --------------------------------------------- */

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

static bool is_id(const char *s, size_t n)
{
    if (n == 0) {
        return false;
    }
    bool digits = true, hex = true;
    for (size_t i = 0; i < n; i++) {
        digits = digits && s[i] >= '0' && s[i] <= '9';
        hex = hex && is_hex(s[i]);
    }
    if (digits || (hex && n >= 16)) {
        return true;
    }
    /* UUID: 8-4-4-4-12 hex digits. */
    if (n != 36) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i])) {
            return false;
        }
    }
    return true;
}

size_t httpmsg_endpoint(const char *method, const char *target,
                        size_t target_len, char *out, size_t cap)
{
    struct out o = {out, cap - 1, 0, false};
    emit_str(&o, method);
    emit(&o, " ", 1);
    const char *p = target, *end = target + target_len;
    /* absolute-form: skip "scheme://authority". */
    const char *sep = NULL;
    for (const char *q = p; q + 2 < end && *q != '/'; q++) {
        if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
            sep = q + 3;
            break;
        }
    }
    if (sep != NULL) {
        p = sep;
        while (p < end && *p != '/' && *p != '?' && *p != '#') {
            p++;
        }
        if (p == end || *p != '/') {
            emit(&o, "/", 1);
        }
    }
    const char *stop = p;
    while (stop < end && *stop != '?' && *stop != '#') {
        stop++;
    }
    while (p < stop) {
        const char *seg = p;
        while (p < stop && *p != '/') {
            p++;
        }
        if (is_id(seg, (size_t)(p - seg))) {
            emit_str(&o, "{id}");
        } else {
            emit(&o, seg, (size_t)(p - seg));
        }
        if (p < stop) {
            emit(&o, "/", 1); /* the slash */
            p++;
        }
    }
    out[o.len] = '\0';
    return o.len;
}
