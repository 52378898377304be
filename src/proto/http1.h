/*
 * HTTP/1.0 and 1.1 message framing for one direction of one connection,
 * over http_parser 2.9 (Node's parser, as Debian packages it).
 *
 * Bytes are fed in any chunking; the framer reports where each message
 * starts, where its head ends, its body bytes (chunked framing removed)
 * and where it ends, as offsets into the direction's byte stream. Feeding
 * the same stream byte by byte or in one block gives the same events.
 *
 * A response framer must know the method of the request each response
 * answers (HEAD has no body; a 2xx to CONNECT opens a tunnel): the caller
 * queues request methods with http1_expect() in request order. At the
 * start of a response with no method queued the framer stops consuming
 * (HTTP1_BLOCKED) until one is queued. 1xx interim responses (100
 * Continue) are messages of their own and do not take a method off the
 * queue; the final response does.
 *
 * The framer stops for good (HTTP1_STOPPED, with a reason) when the
 * connection leaves HTTP/1: a CONNECT request or an Upgrade request, a
 * 101 Switching Protocols response or a 2xx answer to CONNECT. The
 * message that switches is reported in full first.
 *
 * Errors are values: a malformed stream, a head over the limits or data
 * after a message that closed the connection stops the framer with a
 * one-line reason. Memory is bounded by the head limit and the pipelining
 * depth.
 *
 * Pure: no I/O, no globals.
 */
#ifndef TAPMIRROR_HTTP1_H
#define TAPMIRROR_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults for struct http1_limits (0 there means the default). */
#define HTTP1_DEFAULT_MAX_HEAD    (64 * 1024) /* start line + headers */
#define HTTP1_DEFAULT_MAX_HEADERS 128
#define HTTP1_DEFAULT_MAX_PIPELINE 64 /* queued request methods */

struct http1_limits {
    size_t max_head;     /* bytes of start line, header names and values */
    size_t max_headers;  /* header fields in a head (trailers count too) */
    size_t max_pipeline; /* methods http1_expect() can queue */
};

enum http1_dir {
    HTTP1_REQUESTS,  /* the client's stream */
    HTTP1_RESPONSES, /* a server's stream */
};

/* How a message's body is delimited. */
enum http1_framing {
    HTTP1_BODY_NONE,    /* no body (HEAD answer, 1xx, 204, 304, no length) */
    HTTP1_BODY_LENGTH,  /* Content-Length bytes */
    HTTP1_BODY_CHUNKED, /* Transfer-Encoding: chunked, maybe trailers */
    HTTP1_BODY_CLOSE,   /* a response read until the connection closes */
};

struct http1_header {
    const char *name; /* as sent (not lower-cased), not terminated */
    size_t name_len;
    const char *value; /* without surrounding whitespace, not terminated */
    size_t value_len;
};

/* The parsed head of one message. Its pointers are valid during the
 * event that carries it only. */
struct http1_head {
    enum http1_dir dir;
    unsigned method;         /* requests: http_parser's enum http_method */
    const char *method_name; /* requests: "GET", ...; responses: the
                              * method of the request answered */
    const char *target; /* requests: the request target as sent */
    size_t target_len;
    unsigned status; /* responses */
    const char *reason;
    size_t reason_len;
    unsigned version_major, version_minor;
    const struct http1_header *headers;
    size_t header_count;
    enum http1_framing framing;
    uint64_t content_length; /* HTTP1_BODY_LENGTH */
    bool keep_alive;         /* the connection stays open after it */
    bool interim;            /* a 1xx response */
};

enum http1_event_kind {
    HTTP1_EV_BEGIN,   /* a message starts at `offset` */
    HTTP1_EV_HEAD,    /* its head ends just before `offset`; `head` */
    HTTP1_EV_BODY,    /* body bytes `data`/`len`, the first of which is at
                       * stream offset `offset` (chunked: dechunked data) */
    HTTP1_EV_END,     /* the message ends just before `offset` */
};

struct http1_event {
    enum http1_event_kind kind;
    uint64_t offset;
    uint64_t index; /* the message's number on the stream, from 0;
                     * 1xx responses are numbered like the others */
    const struct http1_head *head; /* HEAD and END events */
    const uint8_t *data;           /* BODY events */
    size_t len;
};

typedef void http1_event_fn(void *ctx, const struct http1_event *ev);

enum http1_status {
    HTTP1_OK,      /* everything was consumed */
    HTTP1_BLOCKED, /* responses: a response starts and no method is
                    * queued; queue one and feed the rest again */
    HTTP1_STOPPED, /* no more HTTP/1 on this stream: http1_reason() */
    HTTP1_ERROR,   /* malformed or over a limit: http1_reason() */
};

struct http1;

/* `limits` may be NULL (defaults). `fn` receives every event. */
struct http1 *http1_new(enum http1_dir dir, const struct http1_limits *limits,
                        http1_event_fn *fn, void *ctx);
/* The bytes the framer holds (its head buffer and tables), for a
 * caller's memory budget. */
size_t http1_footprint(const struct http1 *h);
void http1_free(struct http1 *h);

/*
 * Feeds the next `len` bytes of the stream. *consumed (may be NULL) says
 * how many were taken: all of them unless the result is BLOCKED (the
 * rest must be fed again later) or STOPPED/ERROR (the rest is not
 * HTTP/1 the framer can follow; it takes nothing more). Events, status
 * and reason do not depend on how the stream is cut; for ERROR the
 * consumed count may (a head limit is noticed per parser callback).
 */
enum http1_status http1_feed(struct http1 *h, const uint8_t *data, size_t len,
                             size_t *consumed);

/* The stream ended (FIN): ends a close-delimited body. ERROR if it ended
 * inside a message (http1_reason() says where), OK otherwise. */
enum http1_status http1_finish(struct http1 *h);

/* Responses: the method of the next request, as carried by its head
 * (struct http1_head.method). False when the queue is full. */
bool http1_expect(struct http1 *h, unsigned method);

/* Starts again at a message boundary found after a gap (see
 * http1_find_request()): forgets the current message, queued methods and
 * any error; offsets continue from `offset`. */
void http1_reset(struct http1 *h, uint64_t offset);

/* Why the framer stopped (STOPPED or ERROR), one line; "" otherwise. */
const char *http1_reason(const struct http1 *h);

/* Bytes consumed so far (the stream offset of the next byte). */
uint64_t http1_offset(const struct http1 *h);

/* The HTTP version of the first request on the stream (0.0 before). */
void http1_version(const struct http1 *h, unsigned *major, unsigned *minor);

/* Messages that ended so far. */
uint64_t http1_messages(const struct http1 *h);

/* ---- request boundaries after a capture gap ------------------------- */

enum http1_sync {
    HTTP1_SYNC_FOUND,     /* a request starts at *offset */
    HTTP1_SYNC_NEED_MORE, /* none yet; the first *offset bytes can never
                           * start one: drop them and call again with more */
};

/*
 * Finds the first place in `data` where a request starts that the parser
 * accepts: a line start (or the start of `data`), a known method, SP, a
 * target, SP, HTTP/1.x, CRLF, then headers that parse and frame (valid
 * Content-Length or Transfer-Encoding) within `max_head` bytes (0: the
 * default).
 */
enum http1_sync http1_find_request(const uint8_t *data, size_t len,
                                   size_t max_head, size_t *offset);

/* ---- helpers on a parsed head --------------------------------------- */

/* The first header named `name` (case-insensitive), or NULL. */
const struct http1_header *http1_header_find(const struct http1_head *head,
                                             const char *name);

/* Whether the method is HEAD / CONNECT (http_parser's codes). */
bool http1_method_is_head(unsigned method);
bool http1_method_is_connect(unsigned method);

#endif
