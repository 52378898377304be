/*
 * Where an HTTP/1 turn ends (see httpturn.h): a request framer and a
 * response framer over the two directions of one local connection, and
 * counts of what each has seen.
 */
#include "httpturn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "http1.h"

/* Fewer header fields than http1's default: two framers per mirrored
 * HTTP connection, and a head with more fields only falls back to
 * counting bytes. */
#define TURN_MAX_HEADERS 64

struct httpturn {
    struct http1 *requests, *responses; /* NULL once stopped */
    bool http;    /* a request head parsed: the connection is HTTP/1 */
    bool stopped; /* for good: UNKNOWN from now on */
    bool failing; /* a framer callback asked to stop */
    char reason[160];
    uint64_t begun;   /* requests started */
    uint64_t heads;   /* requests whose head was sent */
    uint64_t whole;   /* requests sent to their end */
    uint64_t finals;  /* final responses ended */
    uint64_t interim; /* 1xx ended since the last final response */
    bool responding;  /* a response has started and not ended */
};

static void fail(struct httpturn *t, const char *why)
{
    if (!t->failing) {
        t->failing = true;
        snprintf(t->reason, sizeof(t->reason), "%s", why);
    }
}

/* Stops for good (outside the framers' callbacks). */
static void stop(struct httpturn *t)
{
    t->stopped = true;
    http1_free(t->requests);
    http1_free(t->responses);
    t->requests = NULL;
    t->responses = NULL;
}

static void on_request(void *ctx, const struct http1_event *ev)
{
    struct httpturn *t = ctx;
    switch (ev->kind) {
    case HTTP1_EV_BEGIN:
        t->begun++;
        break;
    case HTTP1_EV_HEAD:
        t->heads++;
        t->http = true;
        if (!http1_expect(t->responses, ev->head->method)) {
            fail(t, "more requests in flight than the framer queues");
        }
        break;
    case HTTP1_EV_END:
        t->whole++;
        break;
    case HTTP1_EV_BODY:
        break;
    }
}

static void on_response(void *ctx, const struct http1_event *ev)
{
    struct httpturn *t = ctx;
    switch (ev->kind) {
    case HTTP1_EV_BEGIN:
        t->responding = true;
        break;
    case HTTP1_EV_END:
        t->responding = false;
        if (ev->head->interim) {
            t->interim++;
        } else {
            t->finals++;
            t->interim = 0;
        }
        break;
    case HTTP1_EV_HEAD:
    case HTTP1_EV_BODY:
        break;
    }
}

struct httpturn *httpturn_new(void)
{
    struct httpturn *t = tm_xcalloc(1, sizeof(*t));
    struct http1_limits lim = {.max_headers = TURN_MAX_HEADERS};
    t->requests = http1_new(HTTP1_REQUESTS, &lim, on_request, t);
    t->responses = http1_new(HTTP1_RESPONSES, &lim, on_response, t);
    return t;
}

void httpturn_free(struct httpturn *t)
{
    if (t == NULL) {
        return;
    }
    http1_free(t->requests);
    http1_free(t->responses);
    free(t);
}

size_t httpturn_footprint(const struct httpturn *t)
{
    size_t n = sizeof(*t);
    if (t->requests != NULL) {
        n += http1_footprint(t->requests) + http1_footprint(t->responses);
    }
    return n;
}

/* After a feed: a framer that cannot go on stops the whole turn
 * framing, with its reason. */
static void settle(struct httpturn *t, struct http1 *h,
                   enum http1_status st, const char *what)
{
    if (st == HTTP1_STOPPED || st == HTTP1_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "%s: %s", what, http1_reason(h));
        fail(t, why);
    } else if (st == HTTP1_BLOCKED) {
        fail(t, "the target sent a response to no request");
    }
    if (t->failing) {
        stop(t);
    }
}

void httpturn_sent(struct httpturn *t, const uint8_t *data, size_t len)
{
    if (t->stopped || len == 0) {
        return;
    }
    enum http1_status st = http1_feed(t->requests, data, len, NULL);
    settle(t, t->requests, st, "requests");
}

void httpturn_received(struct httpturn *t, const uint8_t *data, size_t len)
{
    if (t->stopped || len == 0) {
        return;
    }
    if (!t->http) {
        fail(t, "the target spoke before a request");
        stop(t);
        return;
    }
    enum http1_status st = http1_feed(t->responses, data, len, NULL);
    settle(t, t->responses, st, "responses");
}

void httpturn_received_end(struct httpturn *t)
{
    if (t->stopped || !t->http) {
        return;
    }
    enum http1_status st = http1_finish(t->responses);
    settle(t, t->responses, st, "responses");
}

enum httpturn_state httpturn_state(const struct httpturn *t)
{
    if (t->stopped || !t->http || t->begun > t->heads) {
        /* A request head sent in part cannot be answered yet. */
        return HTTPTURN_UNKNOWN;
    }
    if (t->responding) {
        return HTTPTURN_OWED;
    }
    if (t->finals >= t->heads) {
        return HTTPTURN_ANSWERED;
    }
    /* The last request's body is still to come, and its interim answer
     * came after every earlier request had its final one. */
    if (t->whole < t->heads && t->finals + 1 == t->heads && t->interim > 0) {
        return HTTPTURN_ANSWERED;
    }
    return HTTPTURN_OWED;
}

bool httpturn_stopped(const struct httpturn *t)
{
    return t->stopped;
}

const char *httpturn_reason(const struct httpturn *t)
{
    return t->reason;
}

uint64_t httpturn_requests(const struct httpturn *t)
{
    return t->heads;
}

uint64_t httpturn_responses(const struct httpturn *t)
{
    return t->finals;
}
