/*
 * The per-connection request transform (see httpflow.h).
 *
 * The stream goes through http1 (the framer). Offsets of its events say
 * which bytes belong to what: from the end of one message (or the stream
 * start) to the end of the next head, bytes are held ("held"): line
 * breaks between messages, then the head. At the head the request is
 * decided; the held bytes are forwarded (rebuilt when rewriting) or
 * dropped, and the body bytes that follow are forwarded or skipped as
 * the framer consumes them, raw, up to the message's end. `emit_pos` is
 * the stream offset of the first byte not yet held, forwarded or skipped;
 * during a feed it lies inside the block being fed.
 *
 * After a gap (resync policy), bytes collect in a search buffer until
 * http1_find_request() proves a request start; the framer then starts
 * afresh there.
 *
 * Decisions depend on event offsets only, never on where a feed ends,
 * so the output does not depend on the chunking.
 */
#include "httpflow.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "http1.h"
#include "httpmsg.h"

/* ---- configuration -------------------------------------------------- */

struct header_match {
    char *name;
    regex_t re;
};

struct httpflow_config {
    char **methods;
    size_t n_methods;
    regex_t *match_paths;
    size_t n_match_paths;
    regex_t *skip_paths;
    size_t n_skip_paths;
    /* For a path pattern that is "^" and plain characters, the characters
     * (a prefix compare, without regexec and the allocations it makes
     * per call); NULL otherwise. */
    char **match_prefix, **skip_prefix;
    struct header_match *headers;
    size_t n_headers;
    bool safe_methods;

    bool sample;
    double sample_percent;
    bool sample_requests;

    struct httpmsg_set *set;
    char **set_storage; /* "name\0value" */
    size_t n_set;
    char **drop;
    size_t n_drop;
    char *host;
    bool mark;
    bool rewrite;

    bool redact;
    char **redact_extra;
    size_t n_redact_extra;

    enum httpflow_gap_policy gap_policy;
    size_t max_head;
    bool filters; /* any method, path or header condition */
};

static int cfg_error(char *err, size_t errlen, const char *what,
                     const char *arg, const char *detail)
{
    snprintf(err, errlen, "%s '%s'%s%s", what, arg, detail ? ": " : "",
             detail ? detail : "");
    return -1;
}

static bool is_token_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The literal prefix a pattern "^abc" stands for, or NULL when the
 * pattern has any other special character. */
static char *literal_prefix(const char *pattern)
{
    if (pattern[0] != '^' || pattern[1] == '\0') {
        return NULL;
    }
    for (const char *p = pattern + 1; *p; p++) {
        if (strchr(".[]()*+?{}|^$\\", *p) != NULL) {
            return NULL;
        }
    }
    return tm_xstrdup(pattern + 1);
}

static int compile(regex_t *re, const char *pattern, const char *opt,
                   char *err, size_t errlen)
{
    int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, re, why, sizeof(why));
        char what[64];
        snprintf(what, sizeof(what), "%s: bad regular expression", opt);
        return cfg_error(err, errlen, what, pattern, why);
    }
    return 0;
}

/* Splits "NAME: REST" at the first colon; the name is trimmed and must be
 * a token; REST starts after the whitespace that follows the colon. */
static int split_field(const char *arg, const char *opt, char **name,
                       const char **rest, char *err, size_t errlen)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL) {
        char what[64];
        snprintf(what, sizeof(what), "%s: expected 'NAME: VALUE'", opt);
        return cfg_error(err, errlen, what, arg, NULL);
    }
    const char *end = colon;
    while (end > arg && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    const char *start = arg;
    while (start < end && (*start == ' ' || *start == '\t')) {
        start++;
    }
    if (start == end) {
        char what[64];
        snprintf(what, sizeof(what), "%s: empty header name", opt);
        return cfg_error(err, errlen, what, arg, NULL);
    }
    for (const char *p = start; p < end; p++) {
        if (!is_token_char((unsigned char)*p)) {
            char what[64];
            snprintf(what, sizeof(what), "%s: not a header name", opt);
            return cfg_error(err, errlen, what, arg, NULL);
        }
    }
    *name = tm_xmalloc((size_t)(end - start) + 1);
    memcpy(*name, start, (size_t)(end - start));
    (*name)[end - start] = '\0';
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    *rest = v;
    return 0;
}

static int add_methods(struct httpflow_config *c, const char *list,
                       char *err, size_t errlen)
{
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) {
            return cfg_error(err, errlen, "--match-method: empty method in",
                             list, NULL);
        }
        for (size_t i = 0; i < len; i++) {
            if (!is_token_char((unsigned char)p[i])) {
                return cfg_error(err, errlen,
                                 "--match-method: not a method name in",
                                 list, NULL);
            }
        }
        c->methods = tm_xrealloc(c->methods,
                                 (c->n_methods + 1) * sizeof(*c->methods));
        char *m = tm_xmalloc(len + 1);
        memcpy(m, p, len);
        m[len] = '\0';
        c->methods[c->n_methods++] = m;
        if (end == NULL) {
            return 0;
        }
        p = end + 1;
    }
}

static char **copy_strings(const char *const *list, size_t n)
{
    char **out = tm_xcalloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        out[i] = tm_xstrdup(list[i]);
    }
    return out;
}

static int build(struct httpflow_config *c, const struct httpflow_options *o,
                 char *err, size_t errlen)
{
    for (size_t i = 0; i < o->n_match_methods; i++) {
        if (add_methods(c, o->match_methods[i], err, errlen) < 0) {
            return -1;
        }
    }
    c->match_paths = tm_xcalloc(o->n_match_paths + 1, sizeof(regex_t));
    c->match_prefix = tm_xcalloc(o->n_match_paths + 1, sizeof(char *));
    c->skip_prefix = tm_xcalloc(o->n_skip_paths + 1, sizeof(char *));
    for (size_t i = 0; i < o->n_match_paths; i++) {
        if (compile(&c->match_paths[i], o->match_paths[i], "--match-path",
                    err, errlen) < 0) {
            return -1;
        }
        c->match_prefix[i] = literal_prefix(o->match_paths[i]);
        c->n_match_paths++;
    }
    c->skip_paths = tm_xcalloc(o->n_skip_paths + 1, sizeof(regex_t));
    for (size_t i = 0; i < o->n_skip_paths; i++) {
        if (compile(&c->skip_paths[i], o->skip_paths[i], "--skip-path", err,
                    errlen) < 0) {
            return -1;
        }
        c->skip_prefix[i] = literal_prefix(o->skip_paths[i]);
        c->n_skip_paths++;
    }
    c->headers = tm_xcalloc(o->n_match_headers + 1, sizeof(*c->headers));
    for (size_t i = 0; i < o->n_match_headers; i++) {
        struct header_match *h = &c->headers[i];
        const char *pattern;
        if (split_field(o->match_headers[i], "--match-header", &h->name,
                        &pattern, err, errlen) < 0) {
            return -1;
        }
        if (compile(&h->re, pattern, "--match-header", err, errlen) < 0) {
            free(h->name);
            h->name = NULL;
            return -1;
        }
        c->n_headers++;
    }
    c->safe_methods = o->safe_methods;
    c->filters = c->n_methods > 0 || c->n_match_paths > 0 ||
                 c->n_skip_paths > 0 || c->n_headers > 0 || c->safe_methods;

    if (o->sample && !(o->sample_percent >= 0.0 && o->sample_percent <= 100.0)) {
        snprintf(err, errlen, "--sample: %g is not a percentage (0 to 100)",
                 o->sample_percent);
        return -1;
    }
    c->sample = o->sample;
    c->sample_percent = o->sample_percent;
    c->sample_requests = o->sample_requests;

    c->set = tm_xcalloc(o->n_set_headers + 1, sizeof(*c->set));
    c->set_storage = tm_xcalloc(o->n_set_headers + 1, sizeof(char *));
    for (size_t i = 0; i < o->n_set_headers; i++) {
        char *name;
        const char *value;
        if (split_field(o->set_headers[i], "--set-header", &name, &value, err,
                        errlen) < 0) {
            return -1;
        }
        c->set_storage[i] = name;
        c->set[i].name = name;
        c->set[i].value = value; /* checked below, copied after */
        c->n_set++;
    }
    for (size_t i = 0; i < c->n_set; i++) {
        char *v = tm_xstrdup(c->set[i].value);
        size_t nl = strlen(c->set_storage[i]);
        char *both = tm_xmalloc(nl + 1 + strlen(v) + 1);
        memcpy(both, c->set_storage[i], nl + 1);
        memcpy(both + nl + 1, v, strlen(v) + 1);
        free(v);
        free(c->set_storage[i]);
        c->set_storage[i] = both;
        c->set[i].name = both;
        c->set[i].value = both + nl + 1;
    }
    c->drop = copy_strings(o->drop_headers, o->n_drop_headers);
    c->n_drop = o->n_drop_headers;
    c->host = o->host ? tm_xstrdup(o->host) : NULL;
    c->mark = o->mark;
    c->rewrite = c->n_set > 0 || c->n_drop > 0 || c->host != NULL || c->mark;

    /* The rewrite module checks names, values and framing headers: ask it
     * once, on an empty request, so that a bad option fails at start. */
    if (c->rewrite) {
        struct http1_head probe = {
            .dir = HTTP1_REQUESTS,
            .method_name = "GET",
            .target = "/",
            .target_len = 1,
            .version_major = 1,
            .version_minor = 1,
        };
        struct httpmsg_rewrite rw = {c->set, c->n_set,
                                     (const char *const *)c->drop, c->n_drop,
                                     c->host, c->mark};
        char buf[256];
        size_t need = 64 + (c->host ? strlen(c->host) : 0);
        for (size_t i = 0; i < c->n_set; i++) {
            need += strlen(c->set[i].name) + strlen(c->set[i].value) + 4;
        }
        char *out = need > sizeof(buf) ? tm_xmalloc(need) : buf;
        size_t len;
        char why[160];
        int rc = httpmsg_rewrite_head(&probe, &rw, out, need, &len, why,
                                      sizeof(why));
        if (out != buf) {
            free(out);
        }
        if (rc < 0) {
            snprintf(err, errlen, "header rewrite: %s", why);
            return -1;
        }
    }

    c->redact = o->redact_replay;
    c->redact_extra = copy_strings(o->redact_headers, o->n_redact_headers);
    c->n_redact_extra = o->n_redact_headers;
    for (size_t i = 0; i < c->n_redact_extra; i++) {
        for (const char *p = c->redact_extra[i]; *p; p++) {
            if (!is_token_char((unsigned char)*p)) {
                return cfg_error(err, errlen, "--redact-header: not a header name",
                                 c->redact_extra[i], NULL);
            }
        }
        if (c->redact_extra[i][0] == '\0') {
            return cfg_error(err, errlen, "--redact-header: not a header name",
                             "", NULL);
        }
    }
    c->gap_policy = o->gap_policy;
    c->max_head = o->max_head ? o->max_head : HTTP1_DEFAULT_MAX_HEAD;
    return 0;
}

int httpflow_config_new(const struct httpflow_options *opts,
                        struct httpflow_config **out, char *err,
                        size_t errlen)
{
    struct httpflow_config *c = tm_xcalloc(1, sizeof(*c));
    if (build(c, opts, err, errlen) < 0) {
        httpflow_config_free(c);
        *out = NULL;
        return -1;
    }
    *out = c;
    return 0;
}

static void free_strings(char **list, size_t n)
{
    for (size_t i = 0; list != NULL && i < n; i++) {
        free(list[i]);
    }
    free(list);
}

void httpflow_config_free(struct httpflow_config *c)
{
    if (c == NULL) {
        return;
    }
    free_strings(c->methods, c->n_methods);
    for (size_t i = 0; i < c->n_match_paths; i++) {
        regfree(&c->match_paths[i]);
    }
    free(c->match_paths);
    free_strings(c->match_prefix, c->n_match_paths);
    for (size_t i = 0; i < c->n_skip_paths; i++) {
        regfree(&c->skip_paths[i]);
    }
    free(c->skip_paths);
    free_strings(c->skip_prefix, c->n_skip_paths);
    for (size_t i = 0; i < c->n_headers; i++) {
        free(c->headers[i].name);
        regfree(&c->headers[i].re);
    }
    free(c->headers);
    free_strings(c->set_storage, c->n_set);
    free(c->set);
    free_strings(c->drop, c->n_drop);
    free(c->host);
    free_strings(c->redact_extra, c->n_redact_extra);
    free(c);
}

/* ---- rate limit ----------------------------------------------------- */

#define NS_PER_S 1000000000ull

struct httpflow_rate {
    uint64_t per_second;
    uint64_t tokens; /* in 1e-9 of an admission */
    uint64_t last_ns;
    bool started;
    uint64_t refused;
};

struct httpflow_rate *httpflow_rate_new(uint64_t per_second)
{
    struct httpflow_rate *r = tm_xcalloc(1, sizeof(*r));
    /* Above 1e9/s the bucket would overflow; nobody limits that high. */
    r->per_second = TM_MAX(1, TM_MIN(per_second, NS_PER_S));
    r->tokens = r->per_second * NS_PER_S;
    return r;
}

void httpflow_rate_free(struct httpflow_rate *r)
{
    free(r);
}

bool httpflow_rate_take(struct httpflow_rate *r, uint64_t now_ns)
{
    if (!r->started) {
        r->started = true;
        r->last_ns = now_ns;
    }
    if (now_ns > r->last_ns) {
        uint64_t elapsed = TM_MIN(now_ns - r->last_ns, NS_PER_S);
        uint64_t cap = r->per_second * NS_PER_S;
        r->tokens = TM_MIN(cap, r->tokens + elapsed * r->per_second);
        r->last_ns = now_ns;
    }
    if (r->tokens >= NS_PER_S) {
        r->tokens -= NS_PER_S;
        return true;
    }
    r->refused++;
    return false;
}

uint64_t httpflow_rate_refused(const struct httpflow_rate *r)
{
    return r->refused;
}

/* ---- sampling ------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

bool httpflow_sampled(uint64_t key, double percent)
{
    /* 53 bits of a fixed hash as a number in [0, 100). */
    double u = (double)(splitmix64(key) >> 11) * (100.0 / 9007199254740992.0);
    return u < percent;
}

/* ---- one connection ------------------------------------------------- */

enum mode {
    M_HTTP,    /* framing requests */
    M_RESYNC,  /* after a gap: looking for a request start */
    M_SKIP,    /* after a gap in a Content-Length body: skipping the rest
                * of it, the next request starts right after */
    M_PASS,    /* forwarding everything as it comes */
    M_DISCARD, /* forwarding nothing more */
};

enum msg_state {
    S_HOLD,    /* between messages or inside a head: bytes held */
    S_FORWARD, /* the head was forwarded: body bytes go through */
    S_DROP,    /* the request was dropped: body bytes are skipped */
};

struct httpflow {
    const struct httpflow_config *cfg;
    struct httpflow_rate *rate;
    uint64_t key;
    httpflow_emit_fn *emit;
    void *ctx;
    uint64_t now;

    struct http1 *h;
    enum mode mode;
    enum msg_state state;
    bool conn_sampled;
    bool seen_head;    /* a request head was read whole: this is HTTP */
    bool last_dropped; /* the last message ended was dropped */
    bool local_closed; /* the last forwarded request closes its connection */
    bool body_known;   /* the message in progress has a Content-Length */
    uint64_t body_end; /* ... and its body ends at this stream offset */
    uint64_t skip_left; /* M_SKIP: body bytes still to skip */

    /* The block being fed to the framer. */
    const uint8_t *chunk;
    size_t chunk_len;
    uint64_t chunk_base;

    uint64_t emit_pos;
    uint64_t hold_start; /* stream offset of held[0] */
    uint64_t begin_off;  /* where the held message starts (begun) */
    bool begun;
    uint8_t *held;
    size_t held_len, held_cap;
    size_t held_limit;
    bool fail; /* set in an event: the framer's rest is ignored */
    char fail_reason[160];

    uint8_t *search;
    size_t search_len, search_cap;
    bool midline; /* the search dropped part of a line */

    uint64_t forwarded; /* since the last reconnect */
    struct httpflow_counts counts;
    char reason[192];
};

static void out_forward(struct httpflow *f, const uint8_t *data, size_t len)
{
    if (len == 0) {
        return;
    }
    f->forwarded += len;
    f->counts.bytes_forwarded += len;
    struct httpflow_action a = {.kind = HTTPFLOW_FORWARD, .data = data,
                                .len = len};
    f->emit(f->ctx, &a);
}

static void out_action(struct httpflow *f, enum httpflow_action_kind kind,
                       const char *reason)
{
    struct httpflow_action a = {.kind = kind, .reason = reason};
    f->emit(f->ctx, &a);
}

static void out_drop(struct httpflow *f, enum httpflow_drop_reason why,
                     bool connection, uint64_t request)
{
    struct httpflow_action a = {.kind = HTTPFLOW_DROP, .drop = why,
                                .connection = connection,
                                .request = request};
    f->emit(f->ctx, &a);
}

static http1_event_fn on_event;

struct httpflow *httpflow_new(const struct httpflow_config *cfg,
                              struct httpflow_rate *rate, uint64_t flow_key,
                              httpflow_emit_fn *emit, void *ctx)
{
    struct httpflow *f = tm_xcalloc(1, sizeof(*f));
    f->cfg = cfg;
    f->rate = rate;
    f->key = flow_key;
    f->emit = emit;
    f->ctx = ctx;
    struct http1_limits lim = {cfg->max_head, 0, 0};
    f->h = http1_new(HTTP1_REQUESTS, &lim, on_event, f);
    f->conn_sampled = !cfg->sample ||
                      httpflow_sampled(flow_key, cfg->sample_percent);
    /* The raw head is larger than what http1 counts (line breaks,
     * separators, whitespace); this bounds it, and the line breaks
     * allowed before a request, all the same. */
    f->held_limit = 2 * cfg->max_head + 16384;
    f->search_cap = 2 * cfg->max_head + 64;
    f->mode = M_HTTP;
    f->state = S_HOLD;
    return f;
}

void httpflow_free(struct httpflow *f)
{
    if (f == NULL) {
        return;
    }
    http1_free(f->h);
    free(f->held);
    free(f->search);
    free(f);
}

uint64_t httpflow_forwarded(const struct httpflow *f)
{
    return f->forwarded;
}

size_t httpflow_held(const struct httpflow *f)
{
    return f->held_len + f->search_len;
}

const struct httpflow_counts *httpflow_counts(const struct httpflow *f)
{
    return &f->counts;
}

const char *httpflow_reason(const struct httpflow *f)
{
    return f->reason;
}

static void hold(struct httpflow *f, const uint8_t *data, size_t len)
{
    if (len == 0) {
        return;
    }
    if (f->held_len + len > f->held_cap) {
        size_t cap = f->held_cap ? f->held_cap : 1024;
        while (cap < f->held_len + len) {
            cap *= 2;
        }
        f->held = tm_xrealloc(f->held, cap);
        f->held_cap = cap;
    }
    memcpy(f->held + f->held_len, data, len);
    f->held_len += len;
}

static const uint8_t *at(const struct httpflow *f, uint64_t offset)
{
    return f->chunk + (offset - f->chunk_base);
}

/* Moves emit_pos to `offset` inside the current block: holds, forwards or
 * skips the bytes on the way as the message state says. */
static void advance(struct httpflow *f, uint64_t offset)
{
    if (offset <= f->emit_pos) {
        return;
    }
    size_t n = (size_t)(offset - f->emit_pos);
    if (f->state == S_HOLD) {
        hold(f, at(f, f->emit_pos), n);
    } else if (f->state == S_FORWARD) {
        out_forward(f, at(f, f->emit_pos), n);
    }
    f->emit_pos = offset;
}

static void start_hold(struct httpflow *f, uint64_t offset)
{
    f->state = S_HOLD;
    f->held_len = 0;
    f->hold_start = offset;
    f->emit_pos = offset;
    f->begun = false;
    f->body_known = false;
}

/* ---- the decision on a head ------------------------------------------ */

static bool pattern_matches(const regex_t *re, const char *s, size_t len)
{
    char small[512];
    char *buf = len < sizeof(small) ? small : tm_xmalloc(len + 1);
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* A NUL inside the value ends the match early: http_parser refuses
     * NUL in heads, so it cannot be there. */
    bool ok = regexec(re, buf, 0, NULL, 0) == 0;
    if (buf != small) {
        free(buf);
    }
    return ok;
}

static bool path_matches(const regex_t *re, const char *prefix,
                         const char *path, size_t len)
{
    if (prefix != NULL) {
        size_t n = strlen(prefix);
        return len >= n && memcmp(path, prefix, n) == 0;
    }
    return pattern_matches(re, path, len);
}

/* The path of a request target: no query or fragment; an absolute-form
 * target ("http://host/p") reduced to its path. */
static void target_path(const char *t, size_t len, const char **path,
                        size_t *path_len)
{
    size_t start = 0;
    const char *sep = memchr(t, ':', len);
    if (len > 0 && t[0] != '/' && sep != NULL && (size_t)(sep - t) + 2 < len &&
        sep[1] == '/' && sep[2] == '/') {
        start = (size_t)(sep - t) + 3;
        while (start < len && t[start] != '/' && t[start] != '?') {
            start++;
        }
    }
    size_t end = start;
    while (end < len && t[end] != '?' && t[end] != '#') {
        end++;
    }
    if (end == start && start > 0) {
        *path = "/";
        *path_len = 1;
        return;
    }
    *path = t + start;
    *path_len = end - start;
}

static bool method_in(const char *m, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (tm_ascii_caseeq(m, strlen(m), list[i])) {
            return true;
        }
    }
    return false;
}

static bool filters_pass(const struct httpflow_config *c,
                         const struct http1_head *head)
{
    const char *m = head->method_name ? head->method_name : "";
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS"};
    if (c->safe_methods && !method_in(m, safe, 3)) {
        return false;
    }
    if (c->n_methods > 0 &&
        !method_in(m, (const char *const *)c->methods, c->n_methods)) {
        return false;
    }
    const char *path;
    size_t path_len;
    target_path(head->target, head->target_len, &path, &path_len);
    if (c->n_match_paths > 0) {
        bool any = false;
        for (size_t i = 0; i < c->n_match_paths && !any; i++) {
            any = path_matches(&c->match_paths[i], c->match_prefix[i], path,
                               path_len);
        }
        if (!any) {
            return false;
        }
    }
    for (size_t i = 0; i < c->n_skip_paths; i++) {
        if (path_matches(&c->skip_paths[i], c->skip_prefix[i], path,
                         path_len)) {
            return false;
        }
    }
    for (size_t i = 0; i < c->n_headers; i++) {
        const struct header_match *hm = &c->headers[i];
        bool any = false;
        for (size_t k = 0; k < head->header_count && !any; k++) {
            const struct http1_header *hd = &head->headers[k];
            any = tm_ascii_caseeq(hd->name, hd->name_len, hm->name) &&
                  pattern_matches(&hm->re, hd->value, hd->value_len);
        }
        if (!any) {
            return false;
        }
    }
    return true;
}

/* Forwards the held bytes: line breaks before the message as they came,
 * then the head, rebuilt and redacted as configured. */
static void forward_head(struct httpflow *f, const struct http1_head *head)
{
    const struct httpflow_config *c = f->cfg;
    if (!c->rewrite && !c->redact) {
        out_forward(f, f->held, f->held_len);
        return;
    }
    size_t pre = (size_t)(f->begin_off - f->hold_start);
    out_forward(f, f->held, pre);
    const uint8_t *raw = f->held + pre;
    size_t raw_len = f->held_len - pre;
    size_t cap = 2 * raw_len + 2 * head->header_count + 256 +
                 (c->host ? strlen(c->host) : 0);
    for (size_t i = 0; i < c->n_set; i++) {
        cap += strlen(c->set[i].name) + strlen(c->set[i].value) + 4;
    }
    /* Most heads fit on the stack: no allocation per request. */
    uint8_t small[4096];
    uint8_t *out = cap <= sizeof(small) ? small : tm_xmalloc(cap);
    size_t len = raw_len;
    bool rebuilt = false;
    if (c->rewrite) {
        struct httpmsg_rewrite rw = {c->set, c->n_set,
                                     (const char *const *)c->drop, c->n_drop,
                                     c->host, c->mark};
        char why[160];
        rebuilt = httpmsg_rewrite_head(head, &rw, (char *)out, cap, &len, why,
                                       sizeof(why)) == 0;
    }
    if (!rebuilt) {
        /* Only redaction (or a rewrite the checks at start let through and
         * this head refused): the head as it came. */
        memcpy(out, raw, raw_len);
        len = raw_len;
    }
    if (c->redact) {
        httpmsg_redact(out, len, (const char *const *)c->redact_extra,
                       c->n_redact_extra);
    }
    if (len != raw_len || memcmp(out, raw, len) != 0) {
        f->counts.requests_rewritten++;
    }
    out_forward(f, out, len);
    if (out != small) {
        free(out);
    }
}

static void on_head(struct httpflow *f, const struct http1_event *e)
{
    const struct httpflow_config *c = f->cfg;
    f->seen_head = true;
    f->body_known = e->head->framing == HTTP1_BODY_LENGTH;
    f->body_end = e->offset + e->head->content_length;
    f->counts.requests_seen++;
    bool drop = true;
    enum httpflow_drop_reason why = HTTPFLOW_DROP_FILTER;
    if (!filters_pass(c, e->head)) {
        why = HTTPFLOW_DROP_FILTER;
    } else if (c->sample && !(c->sample_requests
                                  ? httpflow_sampled(f->key ^ splitmix64(e->index),
                                                     c->sample_percent)
                                  : f->conn_sampled)) {
        why = HTTPFLOW_DROP_SAMPLE;
    } else if (f->rate != NULL && !httpflow_rate_take(f->rate, f->now)) {
        why = HTTPFLOW_DROP_RATE;
    } else {
        drop = false;
    }
    if (drop) {
        if (why == HTTPFLOW_DROP_FILTER) {
            f->counts.dropped_filter++;
        } else if (why == HTTPFLOW_DROP_SAMPLE) {
            f->counts.dropped_sample++;
        } else {
            f->counts.dropped_rate++;
        }
        out_drop(f, why, false, e->index);
        f->state = S_DROP;
    } else {
        f->counts.requests_forwarded++;
        forward_head(f, e->head);
        f->state = S_FORWARD;
    }
    f->held_len = 0;
}

static void on_event(void *ctx, const struct http1_event *e)
{
    struct httpflow *f = ctx;
    if (f->fail || f->mode != M_HTTP) {
        return;
    }
    switch (e->kind) {
    case HTTP1_EV_BEGIN:
        f->begun = true;
        f->begin_off = e->offset;
        break;
    case HTTP1_EV_HEAD:
        if (e->offset - f->hold_start > f->held_limit) {
            f->fail = true;
            snprintf(f->fail_reason, sizeof(f->fail_reason),
                     "more than %zu bytes before a request head ends",
                     f->held_limit);
            return;
        }
        advance(f, e->offset);
        on_head(f, e);
        break;
    case HTTP1_EV_BODY:
        break;
    case HTTP1_EV_END:
        advance(f, e->offset);
        f->last_dropped = f->state == S_DROP;
        if (f->state == S_FORWARD) {
            f->local_closed = !e->head->keep_alive;
        }
        start_hold(f, e->offset);
        break;
    }
}

/* ---- leaving HTTP ----------------------------------------------------- */

/* Connection-level sample and rate for a connection that is not HTTP/1.
 * False when it is dropped. */
static bool admit_connection(struct httpflow *f)
{
    if (!f->conn_sampled) {
        f->counts.connection_dropped = true;
        out_drop(f, HTTPFLOW_DROP_SAMPLE, true, 0);
        return false;
    }
    if (f->rate != NULL && !httpflow_rate_take(f->rate, f->now)) {
        f->counts.connection_dropped = true;
        out_drop(f, HTTPFLOW_DROP_RATE, true, 0);
        return false;
    }
    return true;
}

/* The framer cannot go on: what was not decided yet (held bytes and the
 * rest of the block) is forwarded untouched from here, unless the
 * request in progress was dropped (its rest would be garbage locally). */
static void leave_http(struct httpflow *f, const char *detail, bool switched,
                       const uint8_t *rest, size_t rest_len)
{
    if (f->state == S_DROP || (switched && f->last_dropped)) {
        f->mode = M_DISCARD;
        snprintf(f->reason, sizeof(f->reason), "%s", detail);
        return;
    }
    const char *what;
    if (switched) {
        what = "protocol switched";
        f->counts.switched = true;
    } else if (!f->seen_head) {
        what = "not HTTP/1";
        f->counts.passed_through = true;
        if (!admit_connection(f)) {
            f->mode = M_DISCARD;
            snprintf(f->reason, sizeof(f->reason), "%s: %s", what, detail);
            return;
        }
    } else {
        what = "malformed HTTP/1";
    }
    snprintf(f->reason, sizeof(f->reason), "%s: %s", what, detail);
    f->mode = M_PASS;
    out_action(f, HTTPFLOW_PASSTHROUGH, what);
    if (f->state == S_HOLD) {
        out_forward(f, f->held, f->held_len);
        f->held_len = 0;
    }
    out_forward(f, rest, rest_len);
}

static void feed_http(struct httpflow *f, const uint8_t *data, size_t len)
{
    f->chunk = data;
    f->chunk_len = len;
    f->chunk_base = http1_offset(f->h);
    f->emit_pos = TM_MAX(f->emit_pos, f->chunk_base);
    size_t used = 0;
    enum http1_status st = http1_feed(f->h, data, len, &used);
    uint64_t end = f->chunk_base + used;
    if (!f->fail && st == HTTP1_OK && f->state == S_HOLD &&
        end - f->hold_start > f->held_limit) {
        f->fail = true;
        snprintf(f->fail_reason, sizeof(f->fail_reason),
                 "more than %zu bytes before a request head ends",
                 f->held_limit);
    }
    if (!f->fail && st == HTTP1_ERROR && f->state != S_HOLD) {
        /* The body bytes the framer took before it failed belong to the
         * request in progress, as they would in a smaller block. */
        advance(f, end);
    }
    size_t from = (size_t)(f->emit_pos - f->chunk_base);
    if (f->fail) {
        leave_http(f, f->fail_reason, false, data + from, len - from);
    } else if (st == HTTP1_STOPPED) {
        leave_http(f, http1_reason(f->h), true, data + from, len - from);
    } else if (st == HTTP1_ERROR) {
        leave_http(f, http1_reason(f->h), false, data + from, len - from);
    } else {
        advance(f, end);
    }
    f->chunk = NULL;
}

/* ---- gaps and resynchronisation ----------------------------------------- */

/* Takes bytes into the search after a gap; switches back to framing at a
 * request start. Returns how many of data[len] it used. */
static size_t search(struct httpflow *f, const uint8_t *data, size_t len)
{
    if (f->midline) {
        const uint8_t *lf = memchr(data, '\n', len);
        if (lf == NULL) {
            return len;
        }
        f->midline = false;
        return (size_t)(lf - data) + 1;
    }
    if (f->search == NULL) {
        f->search = tm_xmalloc(f->search_cap);
    }
    size_t take = TM_MIN(len, f->search_cap - f->search_len);
    memcpy(f->search + f->search_len, data, take);
    f->search_len += take;
    size_t off = 0;
    enum http1_sync s = http1_find_request(f->search, f->search_len,
                                           f->cfg->max_head, &off);
    if (s == HTTP1_SYNC_FOUND) {
        if (f->local_closed && f->forwarded > 0) {
            /* The local server closes after that request: what the
             * search found goes on a new connection. */
            f->counts.reconnects++;
            f->forwarded = 0;
            f->local_closed = false;
            out_action(f, HTTPFLOW_RECONNECT,
                       "the last request closed the connection");
        }
        f->mode = M_HTTP;
        http1_reset(f->h, 0);
        start_hold(f, 0);
        size_t n = f->search_len - off;
        f->search_len = 0;
        feed_http(f, f->search + off, n);
        return take;
    }
    if (off > 0) {
        f->midline = f->search[off - 1] != '\n';
        memmove(f->search, f->search + off, f->search_len - off);
        f->search_len -= off;
    }
    return take;
}

/* The rest of a body a gap fell in is skipped: the framer starts afresh
 * at the byte after it, which Content-Length proves is a message start. */
static size_t skip_body(struct httpflow *f, const uint8_t *data, size_t len)
{
    size_t n = (size_t)TM_MIN((uint64_t)len, f->skip_left);
    f->skip_left -= n;
    if (f->skip_left > 0) {
        return n;
    }
    if (f->local_closed && f->forwarded > 0) {
        f->counts.reconnects++;
        f->forwarded = 0;
        f->local_closed = false;
        out_action(f, HTTPFLOW_RECONNECT,
                   "the last request closed the connection");
    }
    f->mode = M_HTTP;
    http1_reset(f->h, 0);
    start_hold(f, 0);
    (void)data;
    return n;
}

void httpflow_feed(struct httpflow *f, const uint8_t *data, size_t len,
                   uint64_t now_ns)
{
    f->now = now_ns;
    while (len > 0) {
        switch (f->mode) {
        case M_HTTP:
            feed_http(f, data, len);
            return;
        case M_PASS:
            out_forward(f, data, len);
            return;
        case M_DISCARD:
            return;
        case M_RESYNC: {
            size_t n = search(f, data, len);
            data += n;
            len -= n;
            break;
        }
        case M_SKIP: {
            size_t n = skip_body(f, data, len);
            data += n;
            len -= n;
            break;
        }
        }
    }
}

/* Whether the held bytes start a request line the framer took so far:
 * a method it knows and the space after it. Then a gap inside the first
 * request still leaves an HTTP/1 connection to resynchronise. */
static bool request_line_begun(const struct httpflow *f)
{
    if (!f->begun || f->state != S_HOLD || f->begin_off < f->hold_start) {
        return false;
    }
    size_t pre = (size_t)(f->begin_off - f->hold_start);
    return pre < f->held_len &&
           memchr(f->held + pre, ' ', f->held_len - pre) != NULL;
}

void httpflow_gap(struct httpflow *f, uint64_t len, uint64_t now_ns)
{
    (void)len;
    f->now = now_ns;
    f->counts.gaps++;
    switch (f->mode) {
    case M_PASS:
    case M_DISCARD:
        return; /* raw bytes: the caller splices as it always did */
    case M_RESYNC:
    case M_SKIP:
        /* Where the body ends is no longer known: search. */
        f->mode = M_RESYNC;
        f->search_len = 0;
        f->midline = false;
        return;
    case M_HTTP:
        break;
    }
    if (f->cfg->gap_policy == HTTPFLOW_GAP_SPLICE) {
        return; /* the framer reads on as if nothing was lost */
    }
    if (!f->seen_head && !request_line_begun(f)) {
        /* Nothing shows this is HTTP/1 yet: treat it as any stream. */
        leave_http(f, "a gap before the first request head", false, NULL, 0);
        return;
    }
    if (f->state == S_FORWARD) {
        f->counts.lost_to_gaps++;
        f->counts.reconnects++;
        f->forwarded = 0;
        out_action(f, HTTPFLOW_RECONNECT, "a gap inside a forwarded request");
    } else if (f->state == S_HOLD && f->begun) {
        f->counts.lost_to_gaps++;
    }
    /* A gap inside a body of known length that ends before the body
     * does: the next request starts where the body ends. */
    uint64_t pos = http1_offset(f->h);
    bool in_body = f->state != S_HOLD && f->body_known &&
                   pos <= f->body_end && len <= f->body_end - pos;
    f->held_len = 0;
    f->state = S_HOLD;
    f->search_len = 0;
    f->midline = false;
    if (in_body) {
        f->mode = M_SKIP;
        f->skip_left = f->body_end - pos - len;
        if (f->skip_left == 0) {
            skip_body(f, NULL, 0);
        }
        return;
    }
    f->mode = M_RESYNC;
}

void httpflow_finish(struct httpflow *f)
{
    if (f->mode == M_HTTP && f->state == S_HOLD && f->held_len > 0) {
        bool selects = f->cfg->filters || f->cfg->sample || f->rate != NULL;
        if (!selects) {
            out_forward(f, f->held, f->held_len);
        }
        f->held_len = 0;
    }
    f->search_len = 0;
}
