/*
 * Shadow comparison of one connection, and noise learning (see
 * compare.h; the report and the JSON writers are in compare_report.c).
 *
 * Model: the client stream is framed as it arrives (its framer never
 * waits); each request creates an exchange at its first byte. A response
 * stream cannot be framed before the method of the request it answers is
 * known (HEAD has no body), so its bytes wait, copied, in a queue of
 * items (data, gap, end) until the request has been framed; items keep
 * their order and timestamps. Framer events only update state; the
 * exchanges are reported from pump(), after the framers return, in
 * request order: the front exchange leaves the queue once its request
 * and both responses are whole, or can no longer come.
 */
#include "compare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "httpbody.h"
#include "httpmsg.h"

#define DIFF_GATHER   1000 /* differences examined per exchange */
#define SENT_MARKS    32   /* compare_conn_sent() times remembered */
#define FIRST_BYTES   16   /* kept to name another protocol */
#define ENDPOINT_CHARS 256
#define DETAIL_CHARS  192

static const uint8_t zeros[4096]; /* stands in for the bytes of a gap */

const char *compare_outcome_name(enum compare_outcome o)
{
    switch (o) {
    case COMPARE_SAME:
        return "same";
    case COMPARE_DIFFER:
        return "differ";
    case COMPARE_NOT_COMPARABLE:
        return "not_comparable";
    }
    return "?";
}

const char *compare_reason_name(enum compare_reason r)
{
    static const char *const names[COMPARE_REASONS] = {
        "none",  "gap",   "not_captured", "local_closed",
        "timeout", "limit", "switched",   "malformed",
    };
    return (unsigned)r < COMPARE_REASONS ? names[r] : "?";
}

const char *compare_protocol_name(enum compare_protocol p)
{
    switch (p) {
    case COMPARE_PROTO_UNKNOWN:
        return "unknown";
    case COMPARE_PROTO_HTTP10:
        return "http/1.0";
    case COMPARE_PROTO_HTTP11:
        return "http/1.1";
    case COMPARE_PROTO_OTHER:
        return "other";
    }
    return "?";
}

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define FNV_START 0xcbf29ce484222325ULL

/* ---- copies of heads ------------------------------------------------ */

struct headcopy {
    char *buf;
    struct http1_header *hdrs;
    size_t n;
    unsigned status;
    size_t bytes; /* allocated, for compare_conn_held() */
};

static void headcopy_free(struct headcopy *hc)
{
    free(hc->buf);
    free(hc->hdrs);
    memset(hc, 0, sizeof(*hc));
}

static void headcopy_set(struct headcopy *hc, const struct http1_head *h)
{
    headcopy_free(hc);
    size_t total = 1;
    for (size_t i = 0; i < h->header_count; i++) {
        total += h->headers[i].name_len + h->headers[i].value_len;
    }
    hc->buf = tm_xmalloc(total);
    hc->hdrs = tm_xcalloc(h->header_count + 1, sizeof(*hc->hdrs));
    size_t at = 0;
    for (size_t i = 0; i < h->header_count; i++) {
        const struct http1_header *src = &h->headers[i];
        struct http1_header *dst = &hc->hdrs[i];
        memcpy(hc->buf + at, src->name, src->name_len);
        dst->name = hc->buf + at;
        dst->name_len = src->name_len;
        at += src->name_len;
        memcpy(hc->buf + at, src->value, src->value_len);
        dst->value = hc->buf + at;
        dst->value_len = src->value_len;
        at += src->value_len;
    }
    hc->n = h->header_count;
    hc->status = h->status;
    hc->bytes = total + (h->header_count + 1) * sizeof(*hc->hdrs);
}

static void headcopy_clone(struct headcopy *dst, const struct headcopy *src)
{
    struct http1_head view;
    memset(&view, 0, sizeof(view));
    view.headers = src->hdrs;
    view.header_count = src->n;
    view.status = src->status;
    headcopy_set(dst, &view);
}

static void headcopy_view(const struct headcopy *hc, struct http1_head *view)
{
    memset(view, 0, sizeof(*view));
    view->dir = HTTP1_RESPONSES;
    view->headers = hc->hdrs;
    view->header_count = hc->n;
    view->status = hc->status;
}

/* ---- differences ---------------------------------------------------- */

struct difflist {
    struct compare_diff *d;
    char **owned; /* field and line of each difference */
    size_t n, cap;
    size_t count;  /* found, kept or not */
    bool unknown;  /* some differences could not be named */
};

static void diff_add(struct difflist *l, enum compare_field_kind kind,
                     const char *field, const char *line)
{
    l->count++;
    if (l->n == DIFF_GATHER) {
        l->unknown = true;
        return;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->d = tm_xrealloc(l->d, l->cap * sizeof(*l->d));
        l->owned = tm_xrealloc(l->owned, 2 * l->cap * sizeof(*l->owned));
    }
    l->owned[2 * l->n] = tm_xstrdup(field);
    l->owned[2 * l->n + 1] = tm_xstrdup(line);
    l->d[l->n].kind = kind;
    l->d[l->n].field = l->owned[2 * l->n];
    l->d[l->n].line = l->owned[2 * l->n + 1];
    l->d[l->n].noise = false;
    l->n++;
}

static void diff_free(struct difflist *l)
{
    for (size_t i = 0; i < 2 * l->n; i++) {
        free(l->owned[i]);
    }
    free(l->owned);
    free(l->d);
    memset(l, 0, sizeof(*l));
}

/*
 * The path of a jsondiff line ("$.a[3]["k: v"]: 1 -> 2") with array
 * indices as [*], so that one field names the same member of every
 * element. The path ends at the first ": " outside a quoted key.
 */
static void json_field(const char *line, char *out, size_t cap)
{
    size_t o = 0;
    bool quoted = false;
    for (size_t i = 0; line[i] != '\0' && o + 4 < cap; i++) {
        char ch = line[i];
        if (quoted) {
            out[o++] = ch;
            if (ch == '\\' && line[i + 1] != '\0') {
                out[o++] = line[++i];
            } else if (ch == '"') {
                quoted = false;
            }
            continue;
        }
        if (ch == ':' && line[i + 1] == ' ') {
            break;
        }
        if (ch == '"') {
            quoted = true;
        } else if (ch == '[' && line[i + 1] >= '0' && line[i + 1] <= '9') {
            size_t k = i + 1;
            while (line[k] >= '0' && line[k] <= '9') {
                k++;
            }
            if (line[k] == ']') {
                memcpy(out + o, "[*]", 3);
                o += 3;
                i = k;
                continue;
            }
        }
        out[o++] = ch;
    }
    out[o] = '\0';
}

static void header_field(const char *line, char *out, size_t cap)
{
    const char *colon = strchr(line, ':');
    size_t n = colon ? (size_t)(colon - line) : strlen(line);
    snprintf(out, cap, "header %.*s", (int)TM_MIN(n, (size_t)200), line);
}

/* What one side answered, as compared. */
struct body_view {
    const uint8_t *data;
    size_t kept;
    uint64_t size, hash;
    bool over_decode; /* size and hash cover a prefix */
    bool json_type;   /* Content-Type says JSON */
};

struct side_view {
    const struct headcopy *head;
    struct body_view body;
};

static bool looks_json(const struct body_view *b)
{
    for (size_t i = 0; i < b->kept; i++) {
        uint8_t ch = b->data[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            continue;
        }
        return ch == '{' || ch == '[';
    }
    return false;
}

enum verdict {
    V_DONE,    /* the differences are in the list */
    V_UNKNOWN, /* the bodies cannot be compared: detail says why */
};

static enum verdict diff_bodies(const struct compare_config *cfg,
                                const struct body_view *a,
                                const struct body_view *b,
                                struct difflist *out, char *detail,
                                size_t dlen)
{
    size_t common = TM_MIN(a->kept, b->kept);
    size_t at = 0;
    while (at < common && a->data[at] == b->data[at]) {
        at++;
    }
    bool equal = at == common && a->size == b->size && a->hash == b->hash;
    if (equal) {
        if (a->over_decode || b->over_decode) {
            snprintf(detail, dlen, "bodies over the decode limit agree "
                                   "as far as they were decoded");
            return V_UNKNOWN;
        }
        return V_DONE;
    }
    bool whole = a->kept == a->size && b->kept == b->size &&
                 !a->over_decode && !b->over_decode;
    bool jsonish = a->json_type || b->json_type ||
                   (looks_json(a) && looks_json(b));
    if (jsonish && whole) {
        struct jsondiff_report rep;
        enum jsondiff_status st = jsondiff_compare(
            (const char *)a->data, a->kept, (const char *)b->data, b->kept,
            cfg->ignore_json, DIFF_GATHER, &rep);
        if (st == JSONDIFF_OK) {
            for (size_t i = 0; i < rep.reported; i++) {
                char field[320];
                json_field(rep.lines[i], field, sizeof(field));
                diff_add(out, COMPARE_F_JSON, field, rep.lines[i]);
            }
            if (rep.count > rep.reported) {
                out->count += rep.count - rep.reported;
                out->unknown = true;
            }
            jsondiff_report_free(&rep);
            return V_DONE;
        }
        jsondiff_report_free(&rep);
    } else if (jsonish && (a->json_type || b->json_type)) {
        snprintf(detail, dlen, "a JSON body over the compare limit "
                               "(%zu bytes) differs in its bytes",
                 cfg->body_limit);
        return V_UNKNOWN;
    }
    char line[200];
    if (at < common || TM_MIN(a->size, b->size) <= common) {
        uint64_t first = at < common ? at : TM_MIN(a->size, b->size);
        snprintf(line, sizeof(line),
                 "body: %llu -> %llu bytes, first difference at byte %llu",
                 (unsigned long long)a->size, (unsigned long long)b->size,
                 (unsigned long long)first);
    } else {
        snprintf(line, sizeof(line),
                 "body: %llu -> %llu bytes, different after the first %zu "
                 "(hashes differ)",
                 (unsigned long long)a->size, (unsigned long long)b->size,
                 common);
    }
    diff_add(out, COMPARE_F_BODY, "body", line);
    return V_DONE;
}

/* Status, headers and body of two responses. */
static enum verdict diff_responses(const struct compare_config *cfg,
                                   const struct side_view *a,
                                   const struct side_view *b,
                                   struct difflist *out, char *detail,
                                   size_t dlen)
{
    char line[360], field[256];
    if (a->head->status != b->head->status) {
        snprintf(line, sizeof(line), "status: %u -> %u", a->head->status,
                 b->head->status);
        diff_add(out, COMPARE_F_STATUS, "status", line);
    }
    struct http1_head va, vb;
    headcopy_view(a->head, &va);
    headcopy_view(b->head, &vb);
    struct httpmsg_compare_opts opts = {
        .ignore = cfg->ignore_headers,
        .n_ignore = cfg->n_ignore_headers,
        .bodies_decoded = true,
        .max_lines = DIFF_GATHER,
    };
    struct httpmsg_diff hd;
    httpmsg_compare_headers(&va, &vb, &opts, &hd);
    for (size_t i = 0; i < hd.reported; i++) {
        header_field(hd.lines[i], field, sizeof(field));
        diff_add(out, COMPARE_F_HEADER, field, hd.lines[i]);
    }
    if (hd.count > hd.reported) {
        out->count += hd.count - hd.reported;
        out->unknown = true;
    }
    httpmsg_diff_free(&hd);
    return diff_bodies(cfg, &a->body, &b->body, out, detail, dlen);
}

/* ---- noise ---------------------------------------------------------- */

struct noise_entry {
    bool used;
    uint64_t key;
    struct headcopy head;
    uint8_t *body;
    size_t kept;
    uint64_t size, hash;
    bool over_decode, json_type;
};

struct noise_field {
    char *endpoint, *field;
    uint64_t h;
};

struct compare_noise {
    struct noise_entry *entries;
    size_t n_entries;
    size_t body_limit;
    uint64_t seed;
    struct noise_field fields[COMPARE_NOISE_MAX_FIELDS];
    size_t n_fields;
};

struct compare_noise *compare_noise_new(size_t requests, size_t body_limit,
                                        uint64_t seed)
{
    struct compare_noise *n = tm_xcalloc(1, sizeof(*n));
    n->n_entries = requests ? requests : COMPARE_NOISE_DEFAULT_REQUESTS;
    n->body_limit = body_limit ? body_limit : COMPARE_NOISE_DEFAULT_BODY;
    n->entries = tm_xcalloc(n->n_entries, sizeof(*n->entries));
    n->seed = seed;
    return n;
}

void compare_noise_free(struct compare_noise *n)
{
    if (n == NULL) {
        return;
    }
    for (size_t i = 0; i < n->n_entries; i++) {
        headcopy_free(&n->entries[i].head);
        free(n->entries[i].body);
    }
    for (size_t i = 0; i < n->n_fields; i++) {
        free(n->fields[i].endpoint);
        free(n->fields[i].field);
    }
    free(n->entries);
    free(n);
}

static uint64_t field_hash(const char *endpoint, const char *field)
{
    uint64_t h = fnv(FNV_START, endpoint, strlen(endpoint) + 1);
    return fnv(h, field, strlen(field));
}

bool compare_noise_has(const struct compare_noise *n, const char *endpoint,
                       const char *field)
{
    if (n == NULL) {
        return false;
    }
    uint64_t h = field_hash(endpoint, field);
    for (size_t i = 0; i < n->n_fields; i++) {
        const struct noise_field *f = &n->fields[i];
        if (f->h == h && strcmp(f->endpoint, endpoint) == 0 &&
            strcmp(f->field, field) == 0) {
            return true;
        }
    }
    return false;
}

size_t compare_noise_count(const struct compare_noise *n)
{
    return n ? n->n_fields : 0;
}

void compare_noise_get(const struct compare_noise *n, size_t i,
                       const char **endpoint, const char **field)
{
    *endpoint = n->fields[i].endpoint;
    *field = n->fields[i].field;
}

static void noise_add(struct compare_noise *n, const char *endpoint,
                      const char *field)
{
    if (n->n_fields == COMPARE_NOISE_MAX_FIELDS ||
        compare_noise_has(n, endpoint, field)) {
        return;
    }
    struct noise_field *f = &n->fields[n->n_fields++];
    f->endpoint = tm_xstrdup(endpoint);
    f->field = tm_xstrdup(field);
    f->h = field_hash(endpoint, field);
}

/*
 * Production answered a request: compare the answer with the one an
 * identical earlier request got (the fields in which they differ are
 * noise), then remember this one in its place. The table is direct
 * mapped: a request whose slot is taken replaces the older answer.
 */
static void noise_learn(struct compare_noise *n,
                        const struct compare_config *cfg, uint64_t key,
                        const char *endpoint, const struct side_view *now)
{
    struct noise_entry *e = &n->entries[key % n->n_entries];
    if (e->used && e->key == key) {
        struct side_view before = {
            .head = &e->head,
            .body = {e->body, e->kept, e->size, e->hash, e->over_decode,
                     e->json_type},
        };
        struct difflist l = {0};
        char detail[DETAIL_CHARS];
        diff_responses(cfg, &before, now, &l, detail, sizeof(detail));
        for (size_t i = 0; i < l.n; i++) {
            noise_add(n, endpoint, l.d[i].field);
        }
        diff_free(&l);
    }
    headcopy_free(&e->head);
    free(e->body);
    e->used = true;
    e->key = key;
    headcopy_clone(&e->head, now->head);
    /* A body kept only in part is remembered by size and hash, as the
     * compare limit does: it can show that bodies differ, not where. */
    e->kept = now->body.kept <= n->body_limit ? now->body.kept : 0;
    e->body = tm_xmalloc(e->kept + 1);
    if (e->kept > 0) {
        memcpy(e->body, now->body.data, e->kept);
    }
    e->size = now->body.size;
    e->hash = now->body.hash;
    e->over_decode = now->body.over_decode;
    e->json_type = now->body.json_type;
}

/* ---- connection state ----------------------------------------------- */

enum resp_state {
    RESP_WAIT,
    RESP_HEAD,
    RESP_DONE,
};

struct resp {
    enum resp_state state;
    struct headcopy head;
    struct httpbody *body;
    bool json_type;
    int64_t first_ts;
};

struct exch {
    uint64_t index;
    bool req_head, req_done;
    char method[24];
    unsigned method_code; /* http_parser's, for the response framers */
    char *target;
    char endpoint[ENDPOINT_CHARS];
    uint64_t key_hash; /* method and target, then the body */
    uint64_t req_end;
    int64_t req_ts, sent_ts;
    bool have_sent;
    bool key_ok; /* no gap in the request: a noise key */
    bool nc;
    enum compare_reason reason;
    char detail[DETAIL_CHARS];
    struct resp r[2];
};

enum item_kind {
    IT_DATA,
    IT_GAP,
    IT_END,
};

struct item {
    enum item_kind kind;
    int64_t ts;
    uint64_t len; /* data left, or the gap's length */
    size_t off;   /* data consumed */
    struct item *next;
    uint8_t data[];
};

/* Where a framer is inside a message, to bridge gaps. */
struct position {
    bool in_msg, head_done, interim;
    enum http1_framing framing;
    uint64_t content_length, got;
};

struct side {
    struct compare_conn *c;
    int i; /* 0 production, 1 local */
    struct http1 *framer;
    struct item *first, *last;
    size_t pending;
    unsigned generation; /* of the queue: changes when it is dropped */
    bool stopped; /* no more responses will be framed */
    bool ended;
    bool killed;  /* stopped by a gap, a limit, an error, a timeout */
    enum compare_reason reason;
    char detail[DETAIL_CHARS];
    uint64_t next; /* exchange answered by the next final response */
    int64_t ts, begin_ts;
    struct position pos;
    uint8_t first_bytes[FIRST_BYTES];
    size_t n_first;
};

struct bytecmp {
    uint8_t *buf; /* bytes of the side that is ahead */
    size_t len, cap;
    int ahead;
    uint64_t size[2];
    uint64_t matched;
    bool client_gap;  /* the local target did not get all the requests */
    bool cut[2];      /* a gap: that side's later bytes are not compared */
    uint64_t gap_off; /* the first gap's stream offset */
    char gap_detail[DETAIL_CHARS];
    bool differ;
    uint64_t at;
    bool nc;
    enum compare_reason reason;
    char detail[DETAIL_CHARS];
    bool emitted;
};

struct compare_conn {
    struct compare_config cfg;
    struct compare_noise *noise;
    uint64_t id;
    compare_exchange_fn *fn;
    void *ctx;
    enum compare_protocol proto;
    char proto_name[16];
    char stop[DETAIL_CHARS];

    struct http1 *client;
    bool client_stopped; /* no more exchanges: ended, switched, failed */
    bool client_ended;
    bool overflow;
    enum compare_reason client_reason;
    char client_detail[DETAIL_CHARS];
    int64_t client_ts;
    struct position cpos;
    struct exch *cur; /* the request being framed */
    struct exch *lean; /* a request past the waiting cap */
    uint8_t first_bytes[FIRST_BYTES];
    size_t n_first;
    uint64_t created;

    struct side sd[2];

    struct exch **q; /* ring of max_waiting */
    size_t q_first, q_len;
    uint64_t q_base; /* index of the front exchange */

    struct {
        uint64_t upto;
        int64_t ts;
    } marks[SENT_MARKS];
    size_t n_marks, mark_next;

    struct bytecmp bc;
};

static const char *side_name(int i)
{
    return i == 0 ? "production's response" : "the local response";
}

static void stop_conn(struct compare_conn *c, const char *why)
{
    if (c->stop[0] == '\0') {
        snprintf(c->stop, sizeof(c->stop), "%s", why);
    }
}

static struct exch *exch_at(struct compare_conn *c, uint64_t index)
{
    if (index < c->q_base || index - c->q_base >= c->q_len) {
        return NULL;
    }
    size_t cap = c->cfg.max_waiting;
    return c->q[(c->q_first + (size_t)(index - c->q_base)) % cap];
}

static void exch_free(struct exch *e)
{
    if (e == NULL) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        headcopy_free(&e->r[i].head);
        httpbody_free(e->r[i].body);
    }
    free(e->target);
    free(e);
}

static void exch_nc(struct exch *e, enum compare_reason reason,
                    const char *detail)
{
    if (!e->nc) {
        e->nc = true;
        e->reason = reason;
        snprintf(e->detail, sizeof(e->detail), "%s", detail);
    }
}

static void items_free(struct side *s)
{
    struct item *it = s->first;
    while (it != NULL) {
        struct item *next = it->next;
        free(it);
        it = next;
    }
    s->first = s->last = NULL;
    s->pending = 0;
    s->generation++;
}

static void bytes_nc(struct compare_conn *c, enum compare_reason reason,
                     const char *detail)
{
    if (!c->bc.differ && !c->bc.nc) {
        c->bc.nc = true;
        c->bc.reason = reason;
        snprintf(c->bc.detail, sizeof(c->bc.detail), "%s", detail);
    }
    free(c->bc.buf);
    c->bc.buf = NULL;
    c->bc.len = c->bc.cap = 0;
}

/* No more responses will be framed on this side; exchanges still
 * waiting for one are not comparable for `reason`. */
static void side_kill(struct side *s, enum compare_reason reason,
                      const char *detail)
{
    if (!s->stopped) {
        s->stopped = true;
        s->killed = true;
        s->reason = reason;
        snprintf(s->detail, sizeof(s->detail), "%s", detail);
    }
    items_free(s);
    if (s->c->proto != COMPARE_PROTO_HTTP10 &&
        s->c->proto != COMPARE_PROTO_HTTP11) {
        bytes_nc(s->c, reason, detail);
    }
}

/* ---- framer events -------------------------------------------------- */

static void track(struct position *p, const struct http1_event *ev)
{
    switch (ev->kind) {
    case HTTP1_EV_BEGIN:
        memset(p, 0, sizeof(*p));
        p->in_msg = true;
        break;
    case HTTP1_EV_HEAD:
        p->head_done = true;
        /* A 101 is the final answer to its request. */
        p->interim = ev->head->interim && ev->head->status != 101;
        p->framing = ev->head->framing;
        p->content_length = ev->head->content_length;
        break;
    case HTTP1_EV_BODY:
        p->got += ev->len;
        break;
    case HTTP1_EV_END:
        p->in_msg = false;
        break;
    }
}

static void on_response(void *ctx, const struct http1_event *ev)
{
    struct side *s = ctx;
    track(&s->pos, ev);
    if (ev->kind == HTTP1_EV_BEGIN) {
        s->begin_ts = s->ts;
        return;
    }
    if (s->pos.interim) {
        return; /* 100 Continue and the like are not compared */
    }
    struct exch *e = exch_at(s->c, s->next);
    struct resp *r = e ? &e->r[s->i] : NULL;
    switch (ev->kind) {
    case HTTP1_EV_HEAD:
        if (r != NULL) {
            const struct http1_header *ct =
                http1_header_find(ev->head, "content-type");
            const struct http1_header *ce =
                http1_header_find(ev->head, "content-encoding");
            r->state = RESP_HEAD;
            headcopy_set(&r->head, ev->head);
            r->json_type = ct && jsondiff_is_json_type(ct->value,
                                                       ct->value_len);
            r->first_ts = s->begin_ts;
            r->body = httpbody_new(
                ce ? httpbody_coding_of(ce->value, ce->value_len)
                   : HTTPBODY_IDENTITY,
                s->c->cfg.body_limit, 0);
        }
        break;
    case HTTP1_EV_BODY:
        if (r != NULL && r->body != NULL) {
            httpbody_feed(r->body, ev->data, ev->len);
        }
        break;
    case HTTP1_EV_END:
        if (r != NULL && r->body != NULL) {
            httpbody_finish(r->body);
            r->state = RESP_DONE;
        }
        s->next++;
        break;
    case HTTP1_EV_BEGIN:
        break;
    }
}

static void sent_time(struct compare_conn *c, struct exch *e)
{
    size_t n = c->n_marks;
    for (size_t k = 0; k < n; k++) {
        size_t at = (c->mark_next + SENT_MARKS - n + k) % SENT_MARKS;
        if (c->marks[at].upto >= e->req_end) {
            e->sent_ts = c->marks[at].ts;
            e->have_sent = true;
            return;
        }
    }
}

static void emit_lean(struct compare_conn *c, struct exch *e);

static void on_request(void *ctx, const struct http1_event *ev)
{
    struct compare_conn *c = ctx;
    track(&c->cpos, ev);
    if (ev->kind == HTTP1_EV_BEGIN) {
        struct exch *e = tm_xcalloc(1, sizeof(*e));
        e->index = c->created++;
        e->key_ok = true;
        e->key_hash = FNV_START;
        if (c->overflow || c->q_len == c->cfg.max_waiting) {
            if (!c->overflow) {
                char why[DETAIL_CHARS];
                snprintf(why, sizeof(why),
                         "more than %zu exchanges waiting for their answers",
                         c->cfg.max_waiting);
                stop_conn(c, why);
                c->overflow = true;
            }
            exch_nc(e, COMPARE_R_LIMIT, c->stop);
            c->lean = e;
        } else {
            size_t at = (c->q_first + c->q_len) % c->cfg.max_waiting;
            c->q[at] = e;
            c->q_len++;
        }
        c->cur = e;
        return;
    }
    struct exch *e = c->cur;
    if (e == NULL) {
        return;
    }
    switch (ev->kind) {
    case HTTP1_EV_HEAD: {
        const struct http1_head *h = ev->head;
        if (c->proto == COMPARE_PROTO_UNKNOWN) {
            c->proto = h->version_minor == 0 ? COMPARE_PROTO_HTTP10
                                             : COMPARE_PROTO_HTTP11;
            snprintf(c->proto_name, sizeof(c->proto_name), "%s",
                     compare_protocol_name(c->proto));
        }
        snprintf(e->method, sizeof(e->method), "%s", h->method_name);
        size_t tlen = TM_MIN(h->target_len, (size_t)COMPARE_TARGET_CHARS);
        e->target = tm_xmalloc(tlen + 1);
        memcpy(e->target, h->target, tlen);
        e->target[tlen] = '\0';
        httpmsg_endpoint(h->method_name, h->target, h->target_len,
                         e->endpoint, sizeof(e->endpoint));
        e->key_hash = fnv(e->key_hash, h->method_name,
                          strlen(h->method_name) + 1);
        e->key_hash = fnv(e->key_hash, h->target, h->target_len);
        e->key_hash = fnv(e->key_hash, "", 1);
        e->method_code = h->method;
        e->req_head = true;
        break;
    }
    case HTTP1_EV_BODY:
        e->key_hash = fnv(e->key_hash, ev->data, ev->len);
        break;
    case HTTP1_EV_END:
        e->req_done = true;
        e->req_end = ev->offset;
        e->req_ts = c->client_ts;
        sent_time(c, e);
        c->cur = NULL;
        if (e == c->lean) {
            c->lean = NULL;
            emit_lean(c, e);
        }
        break;
    case HTTP1_EV_BEGIN:
        break;
    }
}

/* ---- other protocols ------------------------------------------------ */

static void guess_protocol(struct compare_conn *c)
{
    const uint8_t *b = c->first_bytes;
    size_t n = c->n_first;
    const uint8_t *s = c->sd[0].first_bytes;
    size_t sn = c->sd[0].n_first;
    const char *name = "unknown";
    if (n >= 14 && memcmp(b, "PRI * HTTP/2.0", 14) == 0) {
        name = "http2";
    } else if (n >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04) {
        name = "tls";
    } else if (n >= 2 && strchr("*+-:$", b[0]) != NULL &&
               ((b[1] >= '0' && b[1] <= '9') || b[0] == '+' ||
                b[0] == '-')) {
        name = "redis";
    } else if (n >= 8 && b[0] == 0 && b[4] == 0 &&
               ((b[5] == 3 && b[6] == 0 && b[7] == 0) ||
                (b[4] == 0x04 && b[5] == 0xd2))) {
        name = "postgres";
    } else if (n >= 8 && b[0] == 0 && b[4] == 0x04 && b[5] == 0xd2) {
        name = "postgres";
    } else if (sn >= 5 && s[3] == 0 && s[4] == 0x0a) {
        name = "mysql";
    } else if (n == 0 && sn == 0) {
        name = "empty";
    }
    snprintf(c->proto_name, sizeof(c->proto_name), "%s", name);
}

/* The connection is not HTTP/1: from now on the response streams are
 * compared byte by byte. */
static void become_other(struct compare_conn *c)
{
    c->proto = COMPARE_PROTO_OTHER;
    guess_protocol(c);
    c->client_stopped = true;
    for (size_t k = 0; k < c->q_len; k++) {
        exch_free(c->q[(c->q_first + k) % c->cfg.max_waiting]);
    }
    exch_free(c->lean);
    c->lean = NULL;
    c->q_len = 0;
    c->cur = NULL;
    for (int i = 0; i < 2; i++) {
        if (c->sd[i].killed) {
            bytes_nc(c, c->sd[i].reason, c->sd[i].detail);
        }
    }
}

static void bytes_append(struct compare_conn *c, const uint8_t *data,
                         size_t len)
{
    struct bytecmp *b = &c->bc;
    if (len > c->cfg.max_pending - b->len) {
        char why[DETAIL_CHARS];
        snprintf(why, sizeof(why),
                 "one response stream ran more than %zu bytes ahead of "
                 "the other",
                 c->cfg.max_pending);
        bytes_nc(c, COMPARE_R_LIMIT, why);
        return;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len) {
            cap *= 2;
        }
        b->buf = tm_xrealloc(b->buf, cap);
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, len);
    b->len += len;
}

static void bytes_feed(struct compare_conn *c, int i, const uint8_t *data,
                       size_t len)
{
    struct bytecmp *b = &c->bc;
    uint64_t start = b->size[i];
    b->size[i] += len;
    if (b->differ || b->nc || b->cut[i] || len == 0) {
        return;
    }
    if (b->cut[1 - i]) {
        /* Only what lies before the other side's gap can be compared,
         * whichever stream was fed first. */
        if (start >= b->gap_off) {
            return;
        }
        len = (size_t)TM_MIN((uint64_t)len, b->gap_off - start);
    }
    if (b->len == 0 || b->ahead == i) {
        b->ahead = i;
        bytes_append(c, data, len);
        return;
    }
    size_t common = TM_MIN(len, b->len);
    for (size_t k = 0; k < common; k++) {
        if (data[k] != b->buf[k]) {
            b->differ = true;
            b->at = b->matched + k;
            free(b->buf);
            b->buf = NULL;
            b->len = b->cap = 0;
            return;
        }
    }
    b->matched += common;
    memmove(b->buf, b->buf + common, b->len - common);
    b->len -= common;
    if (len > common) {
        b->ahead = i;
        bytes_append(c, data + common, len - common);
    }
}

static void bytes_gap(struct compare_conn *c, int i, const char *detail)
{
    struct bytecmp *b = &c->bc;
    if (b->cut[i]) {
        return;
    }
    if (!b->cut[1 - i]) {
        b->gap_off = b->size[i];
        snprintf(b->gap_detail, sizeof(b->gap_detail), "%s", detail);
    } else if (b->size[i] < b->gap_off) {
        b->gap_off = b->size[i];
    }
    b->cut[i] = true;
    if (b->ahead != i && b->len > 0 && b->matched + b->len > b->gap_off) {
        b->len = b->gap_off > b->matched ? (size_t)(b->gap_off - b->matched)
                                         : 0;
    }
}

/* ---- response streams ----------------------------------------------- */

/* The framer waits for a method: give it the one of the request that
 * the next response answers, if that request has been framed. */
static bool unblock(struct side *s)
{
    struct compare_conn *c = s->c;
    struct exch *e = exch_at(c, s->next);
    if (e != NULL && e->req_head) {
        return http1_expect(s->framer, e->method_code);
    }
    if (e == NULL &&
        (s->next < c->created || c->client_stopped || c->overflow)) {
        /* No request left for it: what follows is not compared. */
        s->stopped = true;
        items_free(s);
    }
    return false;
}

/* Whether a gap of `len` bytes falls inside a body whose length is known
 * (then the framer can be fed as many stand-in bytes and stays in step:
 * only the message it falls in is lost). */
static bool bridgeable(const struct position *p, uint64_t len)
{
    if (!p->in_msg || !p->head_done) {
        return false;
    }
    if (p->framing == HTTP1_BODY_CLOSE) {
        return true;
    }
    return p->framing == HTTP1_BODY_LENGTH &&
           p->content_length - p->got >= len;
}

static void feed_zeros(struct http1 *h, uint64_t len)
{
    while (len > 0) {
        size_t n = (size_t)TM_MIN(len, (uint64_t)sizeof(zeros));
        http1_feed(h, zeros, n, NULL);
        len -= n;
    }
}

static void side_failed(struct side *s, enum http1_status st)
{
    char why[DETAIL_CHARS];
    if (st == HTTP1_STOPPED) {
        /* The message that switched was reported whole; nothing after
         * it is HTTP/1. */
        s->stopped = true;
        items_free(s);
        snprintf(why, sizeof(why), "%s", http1_reason(s->framer));
        stop_conn(s->c, why);
        return;
    }
    snprintf(why, sizeof(why), "%s is malformed: %s", side_name(s->i),
             http1_reason(s->framer));
    side_kill(s, COMPARE_R_MALFORMED, why);
}

/*
 * Feeds one item to a side. Returns false when the side must wait for a
 * request (the item stays queued); *used says how much data was taken.
 */
static bool side_step(struct side *s, enum item_kind kind,
                      const uint8_t *data, size_t len, uint64_t gap,
                      int64_t ts, size_t *used)
{
    struct compare_conn *c = s->c;
    *used = 0;
    if (c->proto == COMPARE_PROTO_UNKNOWN) {
        return false;
    }
    if (c->proto == COMPARE_PROTO_OTHER) {
        *used = len;
        if (kind == IT_DATA) {
            bytes_feed(c, s->i, data, len);
        } else if (kind == IT_GAP) {
            char why[DETAIL_CHARS];
            snprintf(why, sizeof(why), "%llu bytes missing in %s stream",
                     (unsigned long long)gap,
                     s->i == 0 ? "production's" : "the local");
            bytes_gap(c, s->i, why);
        } else {
            s->ended = true;
        }
        return true;
    }
    if (s->stopped) {
        *used = len;
        if (kind == IT_END) {
            s->ended = true;
        }
        return true;
    }
    s->ts = ts;
    if (kind == IT_GAP) {
        char why[DETAIL_CHARS];
        snprintf(why, sizeof(why), "%llu bytes of %s missing",
                 (unsigned long long)gap, side_name(s->i));
        if (bridgeable(&s->pos, gap)) {
            struct exch *e = exch_at(c, s->next);
            if (e != NULL && !s->pos.interim) {
                exch_nc(e, COMPARE_R_GAP, why);
            }
            feed_zeros(s->framer, gap);
        } else {
            side_kill(s, COMPARE_R_GAP, why);
            stop_conn(c, why);
        }
        return true;
    }
    if (kind == IT_END) {
        enum http1_status st = http1_finish(s->framer);
        s->ended = true;
        if (st == HTTP1_ERROR && s->pos.in_msg) {
            char why[DETAIL_CHARS];
            snprintf(why, sizeof(why), "%s was cut: %s", side_name(s->i),
                     http1_reason(s->framer));
            side_kill(s, s->i == 0 ? COMPARE_R_NOT_CAPTURED
                                   : COMPARE_R_LOCAL_CLOSED, why);
        } else if (s->i == 0) {
            side_kill(s, COMPARE_R_NOT_CAPTURED,
                      "production's stream ended before its response");
        } else {
            side_kill(s, COMPARE_R_LOCAL_CLOSED,
                      "the local target closed before its response");
        }
        return true;
    }
    while (*used < len) {
        size_t n = 0;
        enum http1_status st =
            http1_feed(s->framer, data + *used, len - *used, &n);
        *used += n;
        if (st == HTTP1_BLOCKED) {
            if (!unblock(s)) {
                if (s->stopped) {
                    *used = len;
                    return true;
                }
                return false;
            }
        } else if (st != HTTP1_OK) {
            side_failed(s, st);
            *used = len;
        }
    }
    return true;
}

static void side_queue(struct side *s, enum item_kind kind,
                       const uint8_t *data, size_t len, uint64_t gap,
                       int64_t ts)
{
    struct compare_conn *c = s->c;
    if (kind == IT_DATA && len > c->cfg.max_pending - s->pending) {
        char why[DETAIL_CHARS];
        snprintf(why, sizeof(why),
                 "more than %zu bytes of %s waited for their request",
                 c->cfg.max_pending, side_name(s->i));
        side_kill(s, COMPARE_R_LIMIT, why);
        stop_conn(c, why);
        return;
    }
    struct item *it = tm_xmalloc(sizeof(*it) + len);
    it->kind = kind;
    it->ts = ts;
    it->len = kind == IT_DATA ? len : gap;
    it->off = 0;
    it->next = NULL;
    if (len > 0) {
        memcpy(it->data, data, len);
    }
    if (s->last != NULL) {
        s->last->next = it;
    } else {
        s->first = it;
    }
    s->last = it;
    s->pending += len;
}

/* Runs a side's queued items as far as they go. Returns whether any
 * progress was made. */
static bool side_drain(struct side *s)
{
    bool progress = false;
    while (s->first != NULL) {
        struct item *it = s->first;
        unsigned generation = s->generation;
        size_t used;
        bool done = side_step(s, it->kind, it->data + it->off,
                              it->kind == IT_DATA ? (size_t)it->len : 0,
                              it->len, it->ts, &used);
        if (s->generation != generation) {
            return true; /* the side was killed: the queue is gone */
        }
        if (used > 0) {
            it->off += used;
            it->len -= used;
            s->pending -= used;
            progress = true;
        }
        if (!done) {
            break;
        }
        s->first = it->next;
        if (s->first == NULL) {
            s->last = NULL;
        }
        free(it);
        progress = true;
    }
    return progress;
}

static void side_push(struct side *s, enum item_kind kind,
                      const uint8_t *data, size_t len, uint64_t gap,
                      int64_t ts)
{
    if (s->first == NULL) {
        /* Nothing waits: feed in place, copy only what must wait. */
        size_t used;
        if (side_step(s, kind, data, len, gap, ts, &used)) {
            return;
        }
        if (used > 0) {
            data += used;
            len -= used;
        }
    }
    side_queue(s, kind, data, len, gap, ts);
    side_drain(s);
}

/* ---- reporting ------------------------------------------------------ */

static void response_view(const struct resp *r, struct compare_response *out,
                          struct side_view *view)
{
    memset(out, 0, sizeof(*out));
    out->latency_ns = -1;
    view->head = &r->head;
    memset(&view->body, 0, sizeof(view->body));
    if (r->state != RESP_DONE) {
        return;
    }
    out->present = true;
    out->status = r->head.status;
    out->headers = r->head.hdrs;
    out->header_count = r->head.n;
    out->body = httpbody_data(r->body, &out->body_kept);
    out->body_size = httpbody_size(r->body);
    out->body_truncated = out->body_size > out->body_kept;
    view->body.data = out->body;
    view->body.kept = out->body_kept;
    view->body.size = out->body_size;
    view->body.hash = httpbody_hash(r->body);
    view->body.over_decode = httpbody_over_limit(r->body);
    view->body.json_type = r->json_type;
}

static void fill_base(struct compare_conn *c, const struct exch *e,
                      struct compare_exchange *ex)
{
    memset(ex, 0, sizeof(*ex));
    ex->conn_id = c->id;
    ex->index = e->index;
    ex->protocol = c->proto;
    ex->protocol_name = c->proto_name;
    ex->method = e->method;
    ex->target = e->target ? e->target : "";
    ex->endpoint = e->endpoint[0] ? e->endpoint : "(unknown)";
    ex->detail = "";
    ex->prod.latency_ns = ex->local.latency_ns = -1;
}

static void emit_lean(struct compare_conn *c, struct exch *e)
{
    struct compare_exchange ex;
    fill_base(c, e, &ex);
    ex.outcome = COMPARE_NOT_COMPARABLE;
    ex.reason = e->reason;
    ex.detail = e->detail;
    c->fn(c->ctx, &ex);
    exch_free(e);
}

/* Puts differences in noise fields after the others and counts them. */
static size_t mark_noise(struct compare_conn *c, const char *endpoint,
                         struct difflist *l)
{
    size_t noise = 0;
    if (l->n == 0) {
        return 0;
    }
    for (size_t i = 0; i < l->n; i++) {
        l->d[i].noise = compare_noise_has(c->noise, endpoint, l->d[i].field);
        noise += l->d[i].noise;
    }
    /* Stable: real differences first, in the order found. */
    struct compare_diff *sorted = tm_xmalloc((l->n + 1) * sizeof(*sorted));
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < l->n; i++) {
            if (l->d[i].noise == (pass == 1)) {
                sorted[k++] = l->d[i];
            }
        }
    }
    memcpy(l->d, sorted, l->n * sizeof(*sorted));
    free(sorted);
    return noise;
}

static int64_t latency(int64_t from, int64_t to)
{
    return to >= from ? to - from : -1;
}

static void emit_exchange(struct compare_conn *c, struct exch *e)
{
    struct compare_exchange ex;
    fill_base(c, e, &ex);
    struct side_view vp, vl;
    if (!e->req_done) {
        /* A request that never ended: whether an answer was framed
         * before that was known depends only on the feeding order. */
        e->r[0].state = e->r[1].state = RESP_WAIT;
    }
    response_view(&e->r[0], &ex.prod, &vp);
    response_view(&e->r[1], &ex.local, &vl);
    if (ex.prod.present && e->req_done) {
        ex.prod.latency_ns = latency(e->req_ts, e->r[0].first_ts);
    }
    if (ex.local.present && e->req_done) {
        ex.local.latency_ns = latency(e->have_sent ? e->sent_ts : e->req_ts,
                                      e->r[1].first_ts);
    }
    if (c->noise != NULL && ex.prod.present && e->req_done && e->key_ok) {
        uint64_t key = tm_hash64(&e->key_hash, sizeof(e->key_hash),
                                 c->noise->seed);
        noise_learn(c->noise, &c->cfg, key, ex.endpoint, &vp);
    }
    struct difflist l = {0};
    char detail[DETAIL_CHARS] = "";
    ex.outcome = COMPARE_NOT_COMPARABLE;
    if (e->nc) {
        ex.reason = e->reason;
        ex.detail = e->detail;
    } else if (!ex.prod.present) {
        ex.reason = c->sd[0].reason;
        ex.detail = c->sd[0].detail;
    } else if (!ex.local.present) {
        ex.reason = c->sd[1].reason;
        ex.detail = c->sd[1].detail;
    } else if (diff_responses(&c->cfg, &vp, &vl, &l, detail,
                              sizeof(detail)) == V_UNKNOWN) {
        ex.reason = COMPARE_R_LIMIT;
        ex.detail = detail;
    } else {
        ex.noise_count = mark_noise(c, ex.endpoint, &l);
        ex.diff_count = l.count;
        bool real = l.n > ex.noise_count || l.unknown;
        ex.outcome = real ? COMPARE_DIFFER : COMPARE_SAME;
        ex.diffs = l.d;
        ex.n_diffs = TM_MIN(l.n, c->cfg.diff_lines);
    }
    if (ex.outcome == COMPARE_NOT_COMPARABLE && ex.reason == COMPARE_R_NONE) {
        ex.reason = COMPARE_R_NOT_CAPTURED;
        ex.detail = "no response";
    }
    c->fn(c->ctx, &ex);
    diff_free(&l);
}

static void emit_bytes(struct compare_conn *c)
{
    struct bytecmp *b = &c->bc;
    if (b->emitted) {
        return;
    }
    b->emitted = true;
    guess_protocol(c);
    if (b->size[0] == 0 && b->size[1] == 0 && c->n_first == 0 && !b->nc) {
        return; /* a connection that carried nothing */
    }
    struct exch e;
    memset(&e, 0, sizeof(e));
    snprintf(e.endpoint, sizeof(e.endpoint), "%s", c->proto_name);
    struct compare_exchange ex;
    fill_base(c, &e, &ex);
    ex.prod.present = ex.local.present = true;
    ex.prod.body_size = b->size[0];
    ex.local.body_size = b->size[1];
    struct compare_diff d = {COMPARE_F_BODY, "body", NULL, false};
    char line[200];
    bool gap = b->cut[0] || b->cut[1] || b->client_gap;
    if (!b->differ && !b->nc && !gap && b->size[0] != b->size[1]) {
        b->differ = true;
        b->at = TM_MIN(b->size[0], b->size[1]);
    }
    if (b->differ && !b->client_gap) {
        snprintf(line, sizeof(line),
                 "body: %llu -> %llu bytes, first difference at byte %llu",
                 (unsigned long long)b->size[0],
                 (unsigned long long)b->size[1], (unsigned long long)b->at);
        d.line = line;
        ex.outcome = COMPARE_DIFFER;
        ex.diffs = &d;
        ex.n_diffs = ex.diff_count = 1;
    } else if (gap) {
        ex.outcome = COMPARE_NOT_COMPARABLE;
        ex.reason = COMPARE_R_GAP;
        ex.detail = b->gap_detail;
    } else if (b->nc) {
        ex.outcome = COMPARE_NOT_COMPARABLE;
        ex.reason = b->reason;
        ex.detail = b->detail;
    } else {
        ex.outcome = COMPARE_SAME;
    }
    c->fn(c->ctx, &ex);
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}

/* Whether the front exchange can be reported; stops the sides that will
 * never answer it when its request can no longer be whole. */
static bool front_ready(struct compare_conn *c, struct exch *e)
{
    if (!e->req_done) {
        if (!c->client_stopped) {
            return false;
        }
        exch_nc(e, c->client_reason, c->client_detail);
        for (int i = 0; i < 2; i++) {
            struct side *s = &c->sd[i];
            if (s->next <= e->index && !s->stopped) {
                side_kill(s, c->client_reason, c->client_detail);
            }
        }
        return true;
    }
    for (int i = 0; i < 2; i++) {
        if (e->r[i].state != RESP_DONE && !c->sd[i].stopped) {
            return false;
        }
    }
    return true;
}

/* Runs the queued response bytes and reports what is finished, until
 * nothing moves. */
static void pump(struct compare_conn *c)
{
    bool progress = true;
    while (progress) {
        progress = false;
        for (int i = 0; i < 2; i++) {
            progress |= side_drain(&c->sd[i]);
        }
        while (c->q_len > 0) {
            struct exch *e = c->q[c->q_first];
            if (!front_ready(c, e)) {
                break;
            }
            c->q_first = (c->q_first + 1) % c->cfg.max_waiting;
            c->q_len--;
            c->q_base++;
            if (c->cur == e) {
                c->cur = NULL;
            }
            emit_exchange(c, e);
            exch_free(e);
            progress = true;
        }
    }
    /* Reported once all three streams ended: a gap in the client
     * stream, however late, decides, and the protocol is named from
     * the first bytes of both directions. */
    if (c->proto == COMPARE_PROTO_OTHER && !c->bc.emitted &&
        c->sd[0].ended && c->sd[1].ended && c->client_ended) {
        emit_bytes(c);
    }
}

/* ---- the client stream ---------------------------------------------- */

static void client_stop(struct compare_conn *c, enum compare_reason reason,
                        const char *detail)
{
    if (c->client_stopped) {
        return;
    }
    c->client_stopped = true;
    c->client_reason = reason;
    snprintf(c->client_detail, sizeof(c->client_detail), "%s", detail);
    if (c->lean != NULL) {
        struct exch *e = c->lean;
        c->lean = NULL;
        c->cur = NULL;
        emit_lean(c, e);
    }
}

static void client_feed(struct compare_conn *c, const uint8_t *data,
                        size_t len, int64_t ts)
{
    if (c->n_first < FIRST_BYTES) {
        size_t n = TM_MIN(len, FIRST_BYTES - c->n_first);
        memcpy(c->first_bytes + c->n_first, data, n);
        c->n_first += n;
    }
    if (c->client_stopped || len == 0) {
        return;
    }
    c->client_ts = ts;
    enum http1_status st = http1_feed(c->client, data, len, NULL);
    if (st == HTTP1_OK) {
        return;
    }
    if (c->proto == COMPARE_PROTO_UNKNOWN) {
        become_other(c);
        return;
    }
    char why[DETAIL_CHARS];
    if (st == HTTP1_STOPPED) {
        snprintf(why, sizeof(why), "%s", http1_reason(c->client));
        stop_conn(c, why);
        client_stop(c, COMPARE_R_SWITCHED, why);
    } else {
        snprintf(why, sizeof(why), "the request is malformed: %s",
                 http1_reason(c->client));
        stop_conn(c, why);
        client_stop(c, COMPARE_R_MALFORMED, why);
    }
}

static void client_gap(struct compare_conn *c, uint64_t len)
{
    char why[DETAIL_CHARS];
    snprintf(why, sizeof(why), "%llu bytes of the request missing",
             (unsigned long long)len);
    if (c->proto == COMPARE_PROTO_OTHER) {
        if (!c->bc.client_gap) {
            c->bc.client_gap = true;
            snprintf(c->bc.gap_detail, sizeof(c->bc.gap_detail), "%s", why);
        }
        return;
    }
    if (c->client_stopped) {
        return;
    }
    if (c->proto != COMPARE_PROTO_UNKNOWN && bridgeable(&c->cpos, len) &&
        c->cur != NULL) {
        exch_nc(c->cur, COMPARE_R_GAP, why);
        c->cur->key_ok = false;
        feed_zeros(c->client, len);
        return;
    }
    if (c->proto == COMPARE_PROTO_UNKNOWN && c->n_first == 0) {
        /* The capture starts inside the connection: nothing here can
         * be paired. */
        snprintf(why, sizeof(why),
                 "the capture started inside the connection (%llu bytes "
                 "missing)",
                 (unsigned long long)len);
    }
    stop_conn(c, why);
    client_stop(c, COMPARE_R_GAP, why);
    if (c->proto == COMPARE_PROTO_UNKNOWN) {
        become_other(c);
        c->bc.client_gap = true;
        snprintf(c->bc.gap_detail, sizeof(c->bc.gap_detail), "%s", why);
    }
}

static void client_end(struct compare_conn *c)
{
    if (c->client_ended) {
        return;
    }
    c->client_ended = true;
    if (c->client_stopped) {
        return;
    }
    enum http1_status st = http1_finish(c->client);
    if (c->proto == COMPARE_PROTO_UNKNOWN) {
        become_other(c);
        return;
    }
    if (st == HTTP1_ERROR) {
        client_stop(c, COMPARE_R_GAP,
                    "the client's stream ended inside a request");
    } else {
        client_stop(c, COMPARE_R_NONE, "");
    }
}

/* ---- public --------------------------------------------------------- */

struct compare_conn *compare_conn_new(const struct compare_config *cfg,
                                      struct compare_noise *noise,
                                      uint64_t conn_id,
                                      compare_exchange_fn *fn, void *ctx)
{
    struct compare_conn *c = tm_xcalloc(1, sizeof(*c));
    if (cfg != NULL) {
        c->cfg = *cfg;
    }
    if (c->cfg.body_limit == 0) {
        c->cfg.body_limit = COMPARE_DEFAULT_BODY_LIMIT;
    }
    if (c->cfg.max_waiting == 0) {
        c->cfg.max_waiting = COMPARE_DEFAULT_MAX_WAITING;
    }
    if (c->cfg.max_pending == 0) {
        c->cfg.max_pending = COMPARE_DEFAULT_MAX_PENDING;
    }
    if (c->cfg.diff_lines == 0) {
        c->cfg.diff_lines = COMPARE_DEFAULT_DIFF_LINES;
    }
    c->noise = noise;
    c->id = conn_id;
    c->fn = fn;
    c->ctx = ctx;
    snprintf(c->proto_name, sizeof(c->proto_name), "unknown");
    c->q = tm_xcalloc(c->cfg.max_waiting, sizeof(*c->q));
    c->client = http1_new(HTTP1_REQUESTS, NULL, on_request, c);
    for (int i = 0; i < 2; i++) {
        c->sd[i].c = c;
        c->sd[i].i = i;
        c->sd[i].framer = http1_new(HTTP1_RESPONSES, NULL, on_response,
                                    &c->sd[i]);
    }
    return c;
}

void compare_conn_free(struct compare_conn *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t k = 0; k < c->q_len; k++) {
        exch_free(c->q[(c->q_first + k) % c->cfg.max_waiting]);
    }
    exch_free(c->lean);
    free(c->q);
    http1_free(c->client);
    for (int i = 0; i < 2; i++) {
        items_free(&c->sd[i]);
        http1_free(c->sd[i].framer);
    }
    free(c->bc.buf);
    free(c);
}

void compare_conn_feed(struct compare_conn *c, enum compare_stream s,
                       const uint8_t *data, size_t len, int64_t ts_ns)
{
    if (s == COMPARE_CLIENT) {
        client_feed(c, data, len, ts_ns);
    } else {
        struct side *sd = &c->sd[s == COMPARE_PROD ? 0 : 1];
        if (sd->n_first < FIRST_BYTES) {
            size_t n = TM_MIN(len, FIRST_BYTES - sd->n_first);
            memcpy(sd->first_bytes + sd->n_first, data, n);
            sd->n_first += n;
        }
        if (sd->ended || len == 0) {
            return;
        }
        side_push(sd, IT_DATA, data, len, 0, ts_ns);
    }
    pump(c);
}

void compare_conn_gap(struct compare_conn *c, enum compare_stream s,
                      uint64_t len)
{
    if (len == 0) {
        return;
    }
    if (s == COMPARE_CLIENT) {
        client_gap(c, len);
    } else {
        struct side *sd = &c->sd[s == COMPARE_PROD ? 0 : 1];
        if (!sd->ended) {
            side_push(sd, IT_GAP, NULL, 0, len, 0);
        }
    }
    pump(c);
}

void compare_conn_end(struct compare_conn *c, enum compare_stream s)
{
    if (s == COMPARE_CLIENT) {
        client_end(c);
    } else {
        struct side *sd = &c->sd[s == COMPARE_PROD ? 0 : 1];
        if (!sd->ended && (sd->last == NULL || sd->last->kind != IT_END)) {
            side_push(sd, IT_END, NULL, 0, 0, 0);
        }
    }
    pump(c);
}

void compare_conn_sent(struct compare_conn *c, uint64_t upto, int64_t ts_ns)
{
    c->marks[c->mark_next].upto = upto;
    c->marks[c->mark_next].ts = ts_ns;
    c->mark_next = (c->mark_next + 1) % SENT_MARKS;
    if (c->n_marks < SENT_MARKS) {
        c->n_marks++;
    }
    for (size_t k = 0; k < c->q_len; k++) {
        struct exch *e = c->q[(c->q_first + k) % c->cfg.max_waiting];
        if (e->req_done && !e->have_sent && e->req_end <= upto) {
            e->sent_ts = ts_ns;
            e->have_sent = true;
        }
    }
}

void compare_conn_timeout(struct compare_conn *c)
{
    struct side *s = &c->sd[1];
    side_kill(s, COMPARE_R_TIMEOUT, "the local target did not answer in time");
    s->ended = true;
    pump(c);
}

void compare_conn_finish(struct compare_conn *c)
{
    client_end(c);
    if (c->proto == COMPARE_PROTO_UNKNOWN) {
        become_other(c);
    }
    for (int i = 0; i < 2; i++) {
        struct side *sd = &c->sd[i];
        if (!sd->ended && (sd->last == NULL || sd->last->kind != IT_END)) {
            side_push(sd, IT_END, NULL, 0, 0, 0);
        }
    }
    pump(c);
    /* Everything has ended, so nothing can still be waiting; should a
     * state be missed, report what is left rather than lose it. */
    for (int i = 0; i < 2; i++) {
        if (!c->sd[i].stopped) {
            side_kill(&c->sd[i], i == 0 ? COMPARE_R_NOT_CAPTURED
                                        : COMPARE_R_LOCAL_CLOSED,
                      "the connection ended before the response");
        }
        c->sd[i].ended = true;
    }
    pump(c);
    if (c->proto == COMPARE_PROTO_OTHER) {
        emit_bytes(c);
    }
}

void compare_conn_abandon(struct compare_conn *c, enum compare_reason reason,
                          const char *detail)
{
    stop_conn(c, detail);
    if (c->proto == COMPARE_PROTO_UNKNOWN) {
        become_other(c);
    }
    client_stop(c, reason, detail);
    for (int i = 0; i < 2; i++) {
        side_kill(&c->sd[i], reason, detail);
    }
    pump(c);
}

bool compare_conn_awaiting_local(const struct compare_conn *c)
{
    if (c->sd[1].stopped) {
        return false;
    }
    if (c->proto == COMPARE_PROTO_OTHER) {
        return false; /* no answer to wait for: the streams' ends decide */
    }
    for (size_t k = 0; k < c->q_len; k++) {
        const struct exch *e = c->q[(c->q_first + k) % c->cfg.max_waiting];
        if (e->req_done && e->r[1].state != RESP_DONE) {
            return true;
        }
    }
    return false;
}

size_t compare_conn_held(const struct compare_conn *c, size_t *waiting)
{
    size_t own = sizeof(*c) + c->cfg.max_waiting * sizeof(*c->q) +
                 http1_footprint(c->client);
    size_t n = c->bc.cap;
    for (int i = 0; i < 2; i++) {
        own += http1_footprint(c->sd[i].framer);
        n += c->sd[i].pending;
    }
    for (size_t k = 0; k < c->q_len; k++) {
        const struct exch *e = c->q[(c->q_first + k) % c->cfg.max_waiting];
        n += sizeof(*e);
        for (int i = 0; i < 2; i++) {
            if (e->r[i].body != NULL) {
                n += httpbody_footprint(e->r[i].body);
            }
            n += e->r[i].head.bytes;
        }
    }
    if (waiting != NULL) {
        *waiting = n;
    }
    return own + n;
}

enum compare_protocol compare_conn_protocol(const struct compare_conn *c)
{
    return c->proto;
}

const char *compare_conn_protocol_name(const struct compare_conn *c)
{
    return c->proto_name;
}

const char *compare_conn_stop_reason(const struct compare_conn *c)
{
    return c->stop;
}
