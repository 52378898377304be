/*
 * HTTP/1 framing over http_parser 2.9 (see http1.h).
 *
 * Offsets: http_parser's callbacks are told where data lies but not
 * where notifications (message begin, headers complete, message
 * complete) happen. Each of those callbacks pauses the parser, which
 * makes http_parser_execute() return at exactly that byte; the event is
 * delivered from http1_feed() with the offset the return value gives, and
 * the parser is resumed. Body data is delivered from the callback itself,
 * at the offset of its pointer. Every path through the parser then
 * produces the same events whatever the chunking.
 *
 * Heads are copied (URL, status text, header names and values) into one
 * buffer that grows up to the head limit; spans are kept as offsets while
 * it can move and turned into pointers when the head is complete.
 */
#include "http1.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

enum pending {
    PEND_NONE,
    PEND_BEGIN,
    PEND_HEAD,
    PEND_END,
};

struct span {
    size_t off, len;
};

struct hdr_spans {
    struct span name, value;
};

struct http1 {
    http_parser parser;
    http_parser_settings settings;
    enum http1_dir dir;
    struct http1_limits lim;
    http1_event_fn *fn;
    void *ctx;

    const char *call_data; /* the block given to http_parser_execute() */
    uint64_t call_base;    /* its stream offset */
    uint64_t offset;       /* bytes consumed */
    uint64_t index;        /* number of the current/next message */
    uint64_t ended;
    enum pending pending;
    bool in_message;
    bool head_done;
    bool switching; /* the current message switches protocols */
    char switch_reason[128];
    bool closed; /* a message without keep-alive ended */
    /* A limit was passed in a callback. Reported when the head (or the
     * trailers) end, so that the verdict does not depend on how the
     * parser split the pieces; a parse error found first wins. */
    bool over;
    char over_reason[96];
    enum http1_status final;
    char reason[160];

    /* The head being read. */
    char *buf;
    size_t buf_len, buf_cap;
    struct span target, status_text;
    struct hdr_spans *hdrs;
    size_t nhdrs;
    int last; /* 0 nothing, 1 a field name piece, 2 a value piece */
    size_t trailer_fields, trailer_bytes;
    struct http1_header *view;
    struct http1_head head;

    /* Methods of requests whose responses have not started. */
    unsigned *queue;
    size_t q_first, q_len;

    bool have_version;
    unsigned version_major, version_minor;
};

static void set_reason(struct http1 *h, enum http1_status st,
                       const char *msg)
{
    if (h->final != HTTP1_OK) {
        return;
    }
    h->final = st;
    snprintf(h->reason, sizeof(h->reason), "%s", msg);
}

/* ---- head building -------------------------------------------------- */

static void over_limit(struct http1 *h, const char *msg)
{
    if (!h->over) {
        h->over = true;
        snprintf(h->over_reason, sizeof(h->over_reason), "%s", msg);
    }
}

static bool head_append(struct http1 *h, const char *at, size_t len)
{
    if (h->over) {
        return false;
    }
    if (len > h->lim.max_head - h->buf_len) {
        char msg[64];
        snprintf(msg, sizeof(msg), "message head is larger than %zu bytes",
                 h->lim.max_head);
        over_limit(h, msg);
        return false;
    }
    if (h->buf_len + len > h->buf_cap) {
        size_t cap = h->buf_cap;
        while (cap < h->buf_len + len) {
            cap *= 2;
        }
        cap = TM_MIN(cap, h->lim.max_head);
        h->buf = tm_xrealloc(h->buf, cap);
        h->buf_cap = cap;
    }
    memcpy(h->buf + h->buf_len, at, len);
    h->buf_len += len;
    return true;
}

static bool extend(struct http1 *h, struct span *s, const char *at,
                   size_t len)
{
    if (s->len == 0) {
        s->off = h->buf_len;
    }
    if (head_append(h, at, len)) {
        s->len += len;
    }
    return true;
}

static struct http1 *from(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    struct http1 *h = from(p);
    h->buf_len = 0;
    h->nhdrs = 0;
    h->last = 0;
    h->trailer_fields = 0;
    h->trailer_bytes = 0;
    h->target = (struct span){0, 0};
    h->status_text = (struct span){0, 0};
    h->head_done = false;
    h->switching = false;
    h->over = false;
    h->in_message = true;
    h->pending = PEND_BEGIN;
    http_parser_pause(p, 1);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http1 *h = from(p);
    return extend(h, &h->target, at, len) ? 0 : -1;
}

static int on_status(http_parser *p, const char *at, size_t len)
{
    struct http1 *h = from(p);
    return extend(h, &h->status_text, at, len) ? 0 : -1;
}

static bool trailer_piece(struct http1 *h, size_t len, bool is_name)
{
    if (is_name && h->last != 1) {
        h->trailer_fields++;
    }
    h->last = is_name ? 1 : 2;
    h->trailer_bytes += len;
    if (h->nhdrs + h->trailer_fields > h->lim.max_headers ||
        h->trailer_bytes > h->lim.max_head) {
        over_limit(h, "trailer fields over the head limits");
    }
    return true;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http1 *h = from(p);
    if (h->head_done) {
        return trailer_piece(h, len, true) ? 0 : -1;
    }
    if (h->over) {
        return 0;
    }
    if (h->last != 1) {
        if (h->nhdrs == h->lim.max_headers) {
            char msg[64];
            snprintf(msg, sizeof(msg), "more than %zu header fields",
                     h->lim.max_headers);
            over_limit(h, msg);
            return 0;
        }
        h->hdrs[h->nhdrs++] = (struct hdr_spans){{0, 0}, {0, 0}};
        h->last = 1;
    }
    return extend(h, &h->hdrs[h->nhdrs - 1].name, at, len) ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http1 *h = from(p);
    if (h->head_done) {
        return trailer_piece(h, len, false) ? 0 : -1;
    }
    if (h->over) {
        return 0;
    }
    if (h->nhdrs == 0) {
        return -1; /* http_parser names a field first; never happens */
    }
    h->last = 2;
    return extend(h, &h->hdrs[h->nhdrs - 1].value, at, len) ? 0 : -1;
}

static unsigned queue_front(const struct http1 *h)
{
    return h->queue[h->q_first];
}

static void queue_pop(struct http1 *h)
{
    h->q_first = (h->q_first + 1) % h->lim.max_pipeline;
    h->q_len--;
}

/* Trims the optional whitespace that http_parser leaves at the end of a
 * value (and obs-fold line breaks inside it stay as they came). */
static size_t trim_end(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
                       s[len - 1] == '\r' || s[len - 1] == '\n')) {
        len--;
    }
    return len;
}

static void build_view(struct http1 *h)
{
    for (size_t i = 0; i < h->nhdrs; i++) {
        const struct hdr_spans *s = &h->hdrs[i];
        h->view[i].name = h->buf + s->name.off;
        h->view[i].name_len = s->name.len;
        h->view[i].value = h->buf + s->value.off;
        h->view[i].value_len = trim_end(h->buf + s->value.off, s->value.len);
    }
    struct http1_head *hd = &h->head;
    memset(hd, 0, sizeof(*hd));
    hd->dir = h->dir;
    hd->headers = h->view;
    hd->header_count = h->nhdrs;
    hd->target = h->buf + h->target.off;
    hd->target_len = h->target.len;
    hd->reason = h->buf + h->status_text.off;
    hd->reason_len = h->status_text.len;
    hd->version_major = h->parser.http_major;
    hd->version_minor = h->parser.http_minor;
}

static void stop_reason_upgrade(struct http1 *h, const char *what)
{
    const struct http1_header *up = http1_header_find(&h->head, "upgrade");
    char proto[64] = "";
    if (up != NULL) {
        size_t n = TM_MIN(up->value_len, sizeof(proto) - 1);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)up->value[i];
            proto[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        }
        proto[n] = '\0';
    }
    snprintf(h->switch_reason, sizeof(h->switch_reason), "%s%s%s", what,
             up ? " to " : "", up ? proto : "");
}

static int on_headers_complete(http_parser *p)
{
    struct http1 *h = from(p);
    if (h->over) {
        set_reason(h, HTTP1_ERROR, h->over_reason);
        return -1;
    }
    build_view(h);
    struct http1_head *hd = &h->head;
    if (p->http_major != 1 || p->http_minor > 1) {
        char msg[64];
        snprintf(msg, sizeof(msg), "HTTP/%u.%u is not HTTP/1.0 or 1.1",
                 (unsigned)p->http_major, (unsigned)p->http_minor);
        set_reason(h, HTTP1_ERROR, msg);
        return -1;
    }
    int skip = 0; /* 0 body as framed, 1 no body, 2 no body and switch */
    if (h->dir == HTTP1_REQUESTS) {
        hd->method = p->method;
        hd->method_name = http_method_str((enum http_method)p->method);
        if (!h->have_version) {
            h->have_version = true;
            h->version_major = p->http_major;
            h->version_minor = p->http_minor;
        }
        if (p->method == HTTP_CONNECT) {
            h->switching = true;
            snprintf(h->switch_reason, sizeof(h->switch_reason), "%s",
                     "CONNECT request: the connection becomes a tunnel");
        } else if (p->upgrade) {
            h->switching = true;
            stop_reason_upgrade(h, "Upgrade request");
        }
    } else {
        unsigned status = p->status_code;
        unsigned method = queue_front(h);
        hd->status = status;
        hd->method = method;
        hd->method_name = http_method_str((enum http_method)method);
        hd->interim = status / 100 == 1;
        if (status == 101) {
            skip = 2;
            h->switching = true;
            stop_reason_upgrade(h, "101 Switching Protocols");
        } else if (hd->interim) {
            skip = 1;
        } else if (method == HTTP_CONNECT && status / 100 == 2) {
            skip = 2;
            h->switching = true;
            snprintf(h->switch_reason, sizeof(h->switch_reason), "%s",
                     "2xx answer to CONNECT: the connection is a tunnel");
        } else if (method == HTTP_HEAD || status == 204 || status == 304) {
            /* RFC 9112 section 6.3: no body whatever the headers say. */
            skip = 1;
        }
        if (!hd->interim) {
            queue_pop(h);
        }
    }
    if (skip == 0 && (p->flags & F_CHUNKED)) {
        hd->framing = HTTP1_BODY_CHUNKED;
    } else if (skip == 0 && (p->flags & F_CONTENTLENGTH)) {
        hd->framing = p->content_length ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
        hd->content_length = p->content_length;
    } else if (skip == 0 && h->dir == HTTP1_RESPONSES) {
        hd->framing = HTTP1_BODY_CLOSE;
    } else {
        hd->framing = HTTP1_BODY_NONE;
    }
    hd->keep_alive = http_should_keep_alive(p) != 0 && !h->switching &&
                     hd->framing != HTTP1_BODY_CLOSE;
    h->head_done = true;
    h->last = 0;
    h->pending = PEND_HEAD;
    http_parser_pause(p, 1);
    return skip;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http1 *h = from(p);
    struct http1_event ev = {
        .kind = HTTP1_EV_BODY,
        .offset = h->call_base + (uint64_t)(at - h->call_data),
        .index = h->index,
        .data = (const uint8_t *)at,
        .len = len,
    };
    h->fn(h->ctx, &ev);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http1 *h = from(p);
    if (h->over) {
        set_reason(h, HTTP1_ERROR, h->over_reason);
        return -1;
    }
    h->pending = PEND_END;
    http_parser_pause(p, 1);
    return 0;
}

/* ---- life cycle ----------------------------------------------------- */

struct http1 *http1_new(enum http1_dir dir, const struct http1_limits *limits,
                        http1_event_fn *fn, void *ctx)
{
    struct http1 *h = tm_xcalloc(1, sizeof(*h));
    h->dir = dir;
    if (limits != NULL) {
        h->lim = *limits;
    }
    if (h->lim.max_head == 0) {
        h->lim.max_head = HTTP1_DEFAULT_MAX_HEAD;
    }
    if (h->lim.max_headers == 0) {
        h->lim.max_headers = HTTP1_DEFAULT_MAX_HEADERS;
    }
    if (h->lim.max_pipeline == 0) {
        h->lim.max_pipeline = HTTP1_DEFAULT_MAX_PIPELINE;
    }
    h->fn = fn;
    h->ctx = ctx;
    h->hdrs = tm_xcalloc(h->lim.max_headers, sizeof(*h->hdrs));
    h->view = tm_xcalloc(h->lim.max_headers, sizeof(*h->view));
    h->queue = tm_xcalloc(h->lim.max_pipeline, sizeof(*h->queue));
    h->buf_cap = TM_MIN((size_t)512, h->lim.max_head);
    h->buf = tm_xmalloc(h->buf_cap);
    http_parser_settings_init(&h->settings);
    h->settings.on_message_begin = on_message_begin;
    h->settings.on_url = on_url;
    h->settings.on_status = on_status;
    h->settings.on_header_field = on_header_field;
    h->settings.on_header_value = on_header_value;
    h->settings.on_headers_complete = on_headers_complete;
    h->settings.on_body = on_body;
    h->settings.on_message_complete = on_message_complete;
    http1_reset(h, 0);
    return h;
}

size_t http1_footprint(const struct http1 *h)
{
    return sizeof(*h) + h->buf_cap +
           h->lim.max_headers * (sizeof(*h->hdrs) + sizeof(*h->view)) +
           h->lim.max_pipeline * sizeof(*h->queue);
}

void http1_free(struct http1 *h)
{
    if (h == NULL) {
        return;
    }
    free(h->buf);
    free(h->hdrs);
    free(h->view);
    free(h->queue);
    free(h);
}

void http1_reset(struct http1 *h, uint64_t offset)
{
    http_parser_init(&h->parser,
                     h->dir == HTTP1_REQUESTS ? HTTP_REQUEST : HTTP_RESPONSE);
    h->parser.data = h;
    h->offset = offset;
    h->pending = PEND_NONE;
    h->in_message = false;
    h->head_done = false;
    h->switching = false;
    h->closed = false;
    h->over = false;
    h->final = HTTP1_OK;
    h->reason[0] = '\0';
    h->q_first = 0;
    h->q_len = 0;
    h->buf_len = 0;
    h->nhdrs = 0;
}

bool http1_expect(struct http1 *h, unsigned method)
{
    if (h->q_len == h->lim.max_pipeline) {
        return false;
    }
    h->queue[(h->q_first + h->q_len) % h->lim.max_pipeline] = method;
    h->q_len++;
    return true;
}

/* ---- feeding -------------------------------------------------------- */

static void deliver(struct http1 *h, enum http1_event_kind kind,
                    uint64_t offset)
{
    struct http1_event ev = {
        .kind = kind,
        .offset = offset,
        .index = h->index,
        .head = kind == HTTP1_EV_BEGIN ? NULL : &h->head,
    };
    if (kind == HTTP1_EV_END) {
        h->in_message = false;
        h->index++;
        h->ended++;
    }
    h->fn(h->ctx, &ev);
}

static void parser_failed(struct http1 *h)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (h->final != HTTP1_OK) {
        return; /* a callback said why */
    }
    if (e == HPE_CLOSED_CONNECTION) {
        set_reason(h, HTTP1_ERROR,
                   "data after a message that closed the connection");
    } else {
        char msg[128];
        snprintf(msg, sizeof(msg), "malformed HTTP/1: %s",
                 http_errno_description(e));
        set_reason(h, HTTP1_ERROR, msg);
    }
}

/* Runs the parser over [data, data+len) until it pauses, fails or eats
 * everything; delivers the paused-for event. Returns bytes consumed. */
static size_t run(struct http1 *h, const char *data, size_t len)
{
    h->call_data = data;
    h->call_base = h->offset;
    h->pending = PEND_NONE;
    size_t n = http_parser_execute(&h->parser, &h->settings, data, len);
    if (n > len) {
        n = len; /* an EOF error reports 1 of 0 bytes */
    }
    h->offset += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (e == HPE_PAUSED) {
        http_parser_pause(&h->parser, 0);
        switch (h->pending) {
        case PEND_BEGIN:
            /* message_begin fires after the method's first byte. */
            deliver(h, HTTP1_EV_BEGIN, h->call_base + n - 1);
            break;
        case PEND_HEAD:
            /* headers_complete fires on the final LF, unconsumed. */
            deliver(h, HTTP1_EV_HEAD, h->call_base + n + 1);
            break;
        case PEND_END:
            deliver(h, HTTP1_EV_END, h->call_base + n);
            if (h->switching) {
                set_reason(h, HTTP1_STOPPED, h->switch_reason);
            } else if (!h->head.keep_alive && !h->head.interim) {
                h->closed = true;
            }
            break;
        case PEND_NONE:
            break;
        }
    } else if (e != HPE_OK) {
        parser_failed(h);
    }
    /* http_parser's `upgrade` is set from the head on, while a body may
     * still follow: the switch is taken at the message's end (PEND_END). */
    return n;
}

enum http1_status http1_feed(struct http1 *h, const uint8_t *data, size_t len,
                             size_t *consumed)
{
    size_t done = 0;
    while (h->final == HTTP1_OK && done < len) {
        if (h->closed) {
            /* http_parser (built lenient) would read on; nothing but
             * line breaks may follow a message that closed. */
            while (done < len && (data[done] == '\r' || data[done] == '\n')) {
                done++;
                h->offset++;
            }
            if (done < len) {
                set_reason(h, HTTP1_ERROR,
                           "data after a message that closed the connection");
            }
            break;
        }
        size_t stop = len;
        if (h->dir == HTTP1_RESPONSES && !h->in_message && h->q_len == 0) {
            /* Line breaks between messages are fine; a response start
             * must wait for its request's method. */
            stop = done;
            while (stop < len && (data[stop] == '\r' || data[stop] == '\n')) {
                stop++;
            }
            if (stop == done) {
                if (consumed != NULL) {
                    *consumed = done;
                }
                return HTTP1_BLOCKED;
            }
        }
        done += run(h, (const char *)data + done, stop - done);
    }
    if (consumed != NULL) {
        *consumed = done;
    }
    return h->final;
}

enum http1_status http1_finish(struct http1 *h)
{
    if (h->final != HTTP1_OK) {
        return h->final;
    }
    if (!h->in_message) {
        return HTTP1_OK;
    }
    run(h, "", 0);
    if (h->final == HTTP1_OK && h->in_message) {
        h->final = HTTP1_ERROR;
        snprintf(h->reason, sizeof(h->reason), "%s",
                 h->head_done ? "the stream ended inside a message body"
                              : "the stream ended inside a message head");
    }
    if (h->final == HTTP1_ERROR &&
        HTTP_PARSER_ERRNO(&h->parser) == HPE_INVALID_EOF_STATE) {
        snprintf(h->reason, sizeof(h->reason), "%s",
                 h->head_done ? "the stream ended inside a message body"
                              : "the stream ended inside a message head");
    }
    return h->final;
}

const char *http1_reason(const struct http1 *h)
{
    return h->reason;
}

uint64_t http1_offset(const struct http1 *h)
{
    return h->offset;
}

void http1_version(const struct http1 *h, unsigned *major, unsigned *minor)
{
    *major = h->have_version ? h->version_major : 0;
    *minor = h->have_version ? h->version_minor : 0;
}

uint64_t http1_messages(const struct http1 *h)
{
    return h->ended;
}

/* ---- helpers -------------------------------------------------------- */

const struct http1_header *http1_header_find(const struct http1_head *head,
                                             const char *name)
{
    for (size_t i = 0; i < head->header_count; i++) {
        const struct http1_header *hd = &head->headers[i];
        if (tm_ascii_caseeq(hd->name, hd->name_len, name)) {
            return hd;
        }
    }
    return NULL;
}

bool http1_method_is_head(unsigned method)
{
    return method == HTTP_HEAD;
}

bool http1_method_is_connect(unsigned method)
{
    return method == HTTP_CONNECT;
}

/* ---- resynchronisation ---------------------------------------------- */

struct probe {
    bool done;
};

static int probe_headers_complete(http_parser *p)
{
    struct probe *pr = p->data;
    pr->done = true;
    http_parser_pause(p, 1);
    return 0;
}

enum line_check {
    LINE_NO,
    LINE_PARTIAL,
    LINE_YES,
};

/* Whether data starts with "METHOD SP target SP HTTP/1.x CRLF" for a
 * method http_parser knows. */
static enum line_check request_line(const uint8_t *d, size_t len,
                                    size_t max_head)
{
    size_t i = 0;
    while (i < len && i < 24 && ((d[i] >= 'A' && d[i] <= 'Z') ||
                                 d[i] == '-')) {
        i++;
    }
    if (i == len) {
        return i < 24 ? LINE_PARTIAL : LINE_NO;
    }
    if (i == 0 || d[i] != ' ') {
        return LINE_NO;
    }
    bool known = false;
    for (unsigned m = 0;; m++) {
        const char *s = http_method_str((enum http_method)m);
        if (strcmp(s, "<unknown>") == 0) {
            break;
        }
        if (strlen(s) == i && memcmp(s, d, i) == 0) {
            known = true;
            break;
        }
    }
    if (!known) {
        return LINE_NO;
    }
    size_t t = ++i;
    while (i < len && d[i] > ' ' && d[i] != 0x7f) {
        i++;
    }
    if (i == len) {
        return i < max_head ? LINE_PARTIAL : LINE_NO;
    }
    if (i == t || d[i] != ' ') {
        return LINE_NO;
    }
    static const char tail[] = " HTTP/1.?\r\n";
    for (size_t k = 0; k < sizeof(tail) - 1; k++, i++) {
        if (i == len) {
            return LINE_PARTIAL;
        }
        bool ok = tail[k] == '?' ? (d[i] == '0' || d[i] == '1')
                                 : d[i] == (uint8_t)tail[k];
        if (!ok) {
            return LINE_NO;
        }
    }
    return LINE_YES;
}

enum http1_sync http1_find_request(const uint8_t *data, size_t len,
                                   size_t max_head, size_t *offset)
{
    if (max_head == 0) {
        max_head = HTTP1_DEFAULT_MAX_HEAD;
    }
    http_parser_settings settings;
    http_parser_settings_init(&settings);
    settings.on_headers_complete = probe_headers_complete;
    size_t keep = 0; /* bytes before this can be dropped */
    for (size_t i = 0; i < len; i++) {
        if (i > 0 && data[i - 1] != '\n') {
            continue;
        }
        keep = i;
        enum line_check lc = request_line(data + i, len - i, max_head);
        if (lc == LINE_NO) {
            continue;
        }
        if (lc == LINE_PARTIAL) {
            *offset = i;
            return HTTP1_SYNC_NEED_MORE;
        }
        http_parser p;
        struct probe pr = {false};
        http_parser_init(&p, HTTP_REQUEST);
        p.data = &pr;
        size_t avail = TM_MIN(len - i, max_head);
        http_parser_execute(&p, &settings, (const char *)data + i, avail);
        if (pr.done) {
            *offset = i;
            return HTTP1_SYNC_FOUND;
        }
        if (HTTP_PARSER_ERRNO(&p) == HPE_OK && avail < max_head) {
            *offset = i;
            return HTTP1_SYNC_NEED_MORE;
        }
    }
    /* Only a line start can begin a request; keep the last line unless
     * it is already too long to be one. */
    if (len > 0 && data[len - 1] == '\n') {
        keep = len;
    }
    if (len - keep > max_head) {
        keep = len;
    }
    *offset = keep;
    return HTTP1_SYNC_NEED_MORE;
}
