/*
 * JSON structural diff over cJSON (see jsondiff.h).
 *
 * Object members are matched by sorting both member lists by name (ties
 * kept in document order) and merging, so a body with many members costs
 * n log n rather than n * m lookups.
 */
#include "jsondiff.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define MAX_DEPTH    1100 /* above cJSON's nesting limit (1000) */
#define VALUE_CHARS  60
#define PATH_CHARS   300
#define MAX_PATTERNS 256
#define MAX_SEGS     64

enum seg_kind {
    SEG_KEY,
    SEG_ANY_KEY,
    SEG_INDEX,
    SEG_ANY_INDEX,
};

struct seg {
    enum seg_kind kind;
    const char *key; /* SEG_KEY: owned by the pattern (or the document) */
    size_t index;
};

struct pattern {
    struct seg segs[MAX_SEGS];
    size_t n;
    char *text; /* keys point into this copy */
};

struct jsondiff_ignore {
    struct pattern *pats;
    size_t n;
};

struct jsondiff_ignore *jsondiff_ignore_new(void)
{
    return tm_xcalloc(1, sizeof(struct jsondiff_ignore));
}

void jsondiff_ignore_free(struct jsondiff_ignore *ig)
{
    if (ig == NULL) {
        return;
    }
    for (size_t i = 0; i < ig->n; i++) {
        free(ig->pats[i].text);
    }
    free(ig->pats);
    free(ig);
}

static int pattern_error(char *err, size_t errlen, const char *why,
                         const char *pattern)
{
    if (errlen > 0) {
        snprintf(err, errlen, "bad JSON path '%.60s': %s", pattern, why);
    }
    return -1;
}

int jsondiff_ignore_add(struct jsondiff_ignore *ig, const char *pattern,
                        char *err, size_t errlen)
{
    if (ig->n == MAX_PATTERNS) {
        return pattern_error(err, errlen, "too many patterns", pattern);
    }
    if (pattern[0] != '$') {
        return pattern_error(err, errlen, "it must start with $", pattern);
    }
    struct pattern pat;
    memset(&pat, 0, sizeof(pat));
    /* Keys are copied, each terminated, into one buffer: no key is
     * longer than the pattern, and there are fewer keys than bytes. */
    size_t plen = strlen(pattern);
    pat.text = tm_xmalloc(2 * plen + 2);
    char *keys = pat.text;
    const char *why = NULL;
    const char *p = pattern + 1;
    while (why == NULL && *p) {
        if (pat.n == MAX_SEGS) {
            why = "too deep";
            break;
        }
        struct seg *s = &pat.segs[pat.n];
        if (*p == '.') {
            const char *start = ++p;
            while (*p && *p != '.' && *p != '[') {
                p++;
            }
            size_t n = (size_t)(p - start);
            if (n == 0) {
                why = "empty member name";
            } else if (n == 1 && *start == '*') {
                s->kind = SEG_ANY_KEY;
            } else {
                s->kind = SEG_KEY;
                memcpy(keys, start, n);
                keys[n] = '\0';
                s->key = keys;
                keys += n + 1;
            }
        } else if (*p == '[') {
            p++;
            if (p[0] == '*' && p[1] == ']') {
                s->kind = SEG_ANY_INDEX;
                p += 2;
            } else if (*p == '"') {
                const char *start = ++p;
                while (*p && *p != '"') {
                    p++;
                }
                if (p[0] != '"' || p[1] != ']') {
                    why = "unterminated [\"name\"]";
                } else {
                    size_t n = (size_t)(p - start);
                    memcpy(keys, start, n);
                    keys[n] = '\0';
                    s->kind = SEG_KEY;
                    s->key = keys;
                    keys += n + 1;
                    p += 2;
                }
            } else if (*p >= '0' && *p <= '9') {
                size_t v = 0;
                while (*p >= '0' && *p <= '9' && why == NULL) {
                    if (v > SIZE_MAX / 10 - 10) {
                        why = "index too large";
                    }
                    v = v * 10 + (size_t)(*p - '0');
                    p++;
                }
                if (why == NULL && *p != ']') {
                    why = "expected ]";
                }
                if (why == NULL) {
                    p++;
                }
                s->kind = SEG_INDEX;
                s->index = v;
            } else {
                why = "expected [N], [*] or [\"name\"]";
            }
        } else {
            why = "expected . or [";
        }
        pat.n++;
    }
    if (why != NULL) {
        free(pat.text);
        return pattern_error(err, errlen, why, pattern);
    }
    ig->pats = tm_xrealloc(ig->pats, (ig->n + 1) * sizeof(*ig->pats));
    ig->pats[ig->n++] = pat;
    return 0;
}

/* ---- the walk ------------------------------------------------------- */

struct walk {
    const struct jsondiff_ignore *ig;
    size_t max_lines;
    struct jsondiff_report *out;
    struct seg path[MAX_DEPTH];
    size_t depth;
};

static bool ignored(const struct walk *w)
{
    if (w->ig == NULL) {
        return false;
    }
    for (size_t i = 0; i < w->ig->n; i++) {
        const struct pattern *pat = &w->ig->pats[i];
        if (pat->n != w->depth) {
            continue;
        }
        bool match = true;
        for (size_t k = 0; k < pat->n && match; k++) {
            const struct seg *ps = &pat->segs[k], *s = &w->path[k];
            switch (ps->kind) {
            case SEG_KEY:
                match = s->kind == SEG_KEY && strcmp(ps->key, s->key) == 0;
                break;
            case SEG_ANY_KEY:
                match = s->kind == SEG_KEY;
                break;
            case SEG_INDEX:
                match = s->kind == SEG_INDEX && s->index == ps->index;
                break;
            case SEG_ANY_INDEX:
                match = s->kind == SEG_INDEX;
                break;
            }
        }
        if (match) {
            return true;
        }
    }
    return false;
}

/* Appends to a bounded text buffer; the last bytes become "..." when it
 * fills. */
struct text {
    char *buf;
    size_t cap, len;
    bool full;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->full) {
        return;
    }
    if (n > t->cap - 1 - t->len) {
        n = t->cap - 1 - t->len;
        t->full = true;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
    if (t->full && t->len >= 3) {
        memcpy(t->buf + t->len - 3, "...", 3);
    }
}

static void put_str(struct text *t, const char *s)
{
    put(t, s, strlen(s));
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

static void put_quoted(struct text *t, const char *s)
{
    put(t, "\"", 1);
    for (; *s && !t->full; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(t, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put_str(t, esc);
        } else {
            put(t, (const char *)&c, 1);
        }
    }
    put(t, "\"", 1);
}

static void put_path(struct text *t, const struct walk *w)
{
    put(t, "$", 1);
    for (size_t i = 0; i < w->depth && !t->full; i++) {
        const struct seg *s = &w->path[i];
        if (s->kind == SEG_INDEX) {
            char num[32];
            snprintf(num, sizeof(num), "[%zu]", s->index);
            put_str(t, num);
        } else if (identifier(s->key)) {
            put(t, ".", 1);
            put_str(t, s->key);
        } else {
            put(t, "[", 1);
            put_quoted(t, s->key);
            put(t, "]", 1);
        }
    }
}

static void put_value(struct text *t, const cJSON *v)
{
    if (v == NULL) {
        put_str(t, "(absent)");
        return;
    }
    char buf[VALUE_CHARS + 1];
    struct text vt = {buf, sizeof(buf), 0, false};
    buf[0] = '\0';
    if (cJSON_IsString(v)) {
        put_quoted(&vt, v->valuestring ? v->valuestring : "");
    } else if (cJSON_IsArray(v)) {
        char n[48];
        snprintf(n, sizeof(n), "[%d items]", cJSON_GetArraySize(v));
        put_str(&vt, n);
    } else if (cJSON_IsObject(v)) {
        char n[48];
        snprintf(n, sizeof(n), "{%d members}", cJSON_GetArraySize(v));
        put_str(&vt, n);
    } else {
        /* Scalars print short; print a detached copy so that no
         * sibling follows. */
        cJSON *one = cJSON_Duplicate(v, false);
        char *s = one ? cJSON_PrintUnformatted(one) : NULL;
        put_str(&vt, s ? s : "?");
        cJSON_free(s);
        cJSON_Delete(one);
    }
    put_str(t, buf);
}

static void record(struct walk *w, const cJSON *a, const cJSON *b)
{
    struct jsondiff_report *r = w->out;
    r->count++;
    if (r->reported == w->max_lines) {
        return;
    }
    char buf[PATH_CHARS + 2 * VALUE_CHARS + 16];
    char path[PATH_CHARS + 1];
    struct text pt = {path, sizeof(path), 0, false};
    path[0] = '\0';
    put_path(&pt, w);
    struct text t = {buf, sizeof(buf), 0, false};
    buf[0] = '\0';
    put_str(&t, path);
    put(&t, ": ", 2);
    put_value(&t, a);
    put(&t, " -> ", 4);
    put_value(&t, b);
    r->lines = tm_xrealloc(r->lines, (r->reported + 1) * sizeof(char *));
    r->lines[r->reported++] = tm_xstrdup(buf);
}

static void diff(struct walk *w, const cJSON *a, const cJSON *b);

static void child(struct walk *w, struct seg s, const cJSON *a,
                  const cJSON *b)
{
    if (w->depth == MAX_DEPTH) {
        /* cJSON refuses deeper documents; never reached. */
        record(w, a, b);
        return;
    }
    w->path[w->depth++] = s;
    if (!ignored(w)) {
        if (a == NULL || b == NULL) {
            record(w, a, b);
        } else {
            diff(w, a, b);
        }
    }
    w->depth--;
}

struct member {
    const cJSON *item;
    size_t order;
};

static int member_cmp(const void *x, const void *y)
{
    const struct member *a = x, *b = y;
    int c = strcmp(a->item->string, b->item->string);
    if (c != 0) {
        return c;
    }
    return a->order < b->order ? -1 : a->order > b->order;
}

static struct member *sorted_members(const cJSON *obj, size_t *n)
{
    size_t count = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        count++;
    }
    struct member *m = tm_xmalloc((count ? count : 1) * sizeof(*m));
    size_t i = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        m[i].item = c;
        m[i].order = i;
        i++;
    }
    qsort(m, count, sizeof(*m), member_cmp);
    *n = count;
    return m;
}

static void diff_objects(struct walk *w, const cJSON *a, const cJSON *b)
{
    size_t na, nb;
    struct member *ma = sorted_members(a, &na);
    struct member *mb = sorted_members(b, &nb);
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        int c = i == na ? 1
              : j == nb ? -1
                        : strcmp(ma[i].item->string, mb[j].item->string);
        if (c == 0) {
            struct seg s = {SEG_KEY, ma[i].item->string, 0};
            child(w, s, ma[i].item, mb[j].item);
            i++;
            j++;
        } else if (c < 0) {
            struct seg s = {SEG_KEY, ma[i].item->string, 0};
            child(w, s, ma[i].item, NULL);
            i++;
        } else {
            struct seg s = {SEG_KEY, mb[j].item->string, 0};
            child(w, s, NULL, mb[j].item);
            j++;
        }
    }
    free(ma);
    free(mb);
}

static void diff_arrays(struct walk *w, const cJSON *a, const cJSON *b)
{
    const cJSON *x = a->child, *y = b->child;
    for (size_t i = 0; x != NULL || y != NULL; i++) {
        struct seg s = {SEG_INDEX, NULL, i};
        child(w, s, x, y);
        x = x ? x->next : NULL;
        y = y ? y->next : NULL;
    }
}

static int kind_of(const cJSON *v)
{
    int t = v->type & 0xff;
    return t == cJSON_True ? cJSON_False : t; /* booleans are one kind */
}

static void diff(struct walk *w, const cJSON *a, const cJSON *b)
{
    if (kind_of(a) != kind_of(b)) {
        record(w, a, b);
        return;
    }
    switch (kind_of(a)) {
    case cJSON_False:
        if (cJSON_IsTrue(a) != cJSON_IsTrue(b)) {
            record(w, a, b);
        }
        break;
    case cJSON_Number:
        if (!(a->valuedouble == b->valuedouble)) {
            record(w, a, b);
        }
        break;
    case cJSON_String:
        if (strcmp(a->valuestring ? a->valuestring : "",
                   b->valuestring ? b->valuestring : "") != 0) {
            record(w, a, b);
        }
        break;
    case cJSON_Array:
        diff_arrays(w, a, b);
        break;
    case cJSON_Object:
        diff_objects(w, a, b);
        break;
    default: /* null */
        break;
    }
}

static cJSON *parse(const char *text, size_t len)
{
    if (len == 0) {
        return NULL;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (doc == NULL) {
        return NULL;
    }
    /* Only whitespace may follow the value. */
    for (const char *p = end; p != NULL && p < text + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(doc);
            return NULL;
        }
    }
    return doc;
}

enum jsondiff_status jsondiff_compare(const char *a, size_t alen,
                                      const char *b, size_t blen,
                                      const struct jsondiff_ignore *ignore,
                                      size_t max_lines,
                                      struct jsondiff_report *out)
{
    memset(out, 0, sizeof(*out));
    cJSON *da = parse(a, alen);
    if (da == NULL) {
        return JSONDIFF_A_NOT_JSON;
    }
    cJSON *db = parse(b, blen);
    if (db == NULL) {
        cJSON_Delete(da);
        return JSONDIFF_B_NOT_JSON;
    }
    struct walk *w = tm_xcalloc(1, sizeof(*w));
    w->ig = ignore;
    w->max_lines = max_lines ? max_lines : JSONDIFF_DEFAULT_LINES;
    w->out = out;
    if (!ignored(w)) {
        diff(w, da, db);
    }
    free(w);
    cJSON_Delete(da);
    cJSON_Delete(db);
    return JSONDIFF_OK;
}

void jsondiff_report_free(struct jsondiff_report *r)
{
    for (size_t i = 0; i < r->reported; i++) {
        free(r->lines[i]);
    }
    free(r->lines);
    memset(r, 0, sizeof(*r));
}

bool jsondiff_is_json_type(const char *value, size_t len)
{
    size_t end = 0;
    while (end < len && value[end] != ';') {
        end++;
    }
    size_t start = 0;
    while (start < end && (value[start] == ' ' || value[start] == '\t')) {
        start++;
    }
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t')) {
        end--;
    }
    const char *t = value + start;
    size_t n = end - start;
    if (tm_ascii_caseeq(t, n, "application/json") || tm_ascii_caseeq(t, n, "text/json")) {
        return true;
    }
    const char *slash = memchr(t, '/', n);
    return slash != NULL && n >= 5 && (size_t)(t + n - slash) > 5 &&
           tm_ascii_caseeq(t + n - 5, 5, "+json");
}
