/*
 * Where an HTTP/1 turn ends, for a replay that sends a connection in
 * turns (replay's --turns auto): whether the local target has finished
 * answering what the replay has sent it so far.
 *
 * Fed with the client bytes written to the target, in order, and the
 * target's bytes as they are read. A request framer finds the requests
 * (and decides whether the connection speaks HTTP/1 at all: its first
 * request head parsed); their methods are queued for a response framer
 * in request order, which finds where each response ends (HEAD answers,
 * 1xx, 204 and 304 without a body; a close-delimited body at the target's
 * end).
 *
 * The turn is answered when the final response to the last request sent
 * has ended, whatever its length: the rule production's client followed
 * when it waited. A 1xx (100 Continue) answers a turn only when the last
 * request sent is still missing its body: that client waited for the
 * interim answer before sending the body (Expect: 100-continue). Once the
 * request is whole, its turn waits for the final response, 1xx or not.
 *
 * Anything the framers cannot follow (not HTTP/1, a malformed or
 * over-limit head, a protocol switch, a response nobody asked for, more
 * pipelined requests than the framer queues) stops the framing for the
 * rest of the connection: HTTPTURN_UNKNOWN, and the caller counts bytes
 * instead. The framers are freed then; memory is bounded by their head
 * limits and pipelining depth, and bodies are never held.
 *
 * Pure: no I/O, no globals.
 */
#ifndef TAPMIRROR_HTTPTURN_H
#define TAPMIRROR_HTTPTURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum httpturn_state {
    HTTPTURN_UNKNOWN,  /* not HTTP/1 (yet), or framing stopped */
    HTTPTURN_OWED,     /* the answer to the last request sent has not ended */
    HTTPTURN_ANSWERED, /* it has: the turn is answered */
};

struct httpturn;

struct httpturn *httpturn_new(void);
void httpturn_free(struct httpturn *t);

/* The bytes it holds (framers included), for a caller's budget. */
size_t httpturn_footprint(const struct httpturn *t);

/* Client bytes written to the target. */
void httpturn_sent(struct httpturn *t, const uint8_t *data, size_t len);

/* The target's bytes, and its end (FIN). */
void httpturn_received(struct httpturn *t, const uint8_t *data, size_t len);
void httpturn_received_end(struct httpturn *t);

enum httpturn_state httpturn_state(const struct httpturn *t);

/* True once the framing stopped for good (the state stays UNKNOWN). */
bool httpturn_stopped(const struct httpturn *t);

/* Why it stopped, one line ("" while it has not). */
const char *httpturn_reason(const struct httpturn *t);

/* Requests whose head was sent, and final responses that ended. */
uint64_t httpturn_requests(const struct httpturn *t);
uint64_t httpturn_responses(const struct httpturn *t);

#endif
