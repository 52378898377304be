/*
 * One direction of one TCP connection: turns segments in capture order
 * into the byte stream in sequence order. Pure: no I/O, no clock; time is
 * the capture timestamp passed in.
 *
 * Rules (RFC 9293 sequence arithmetic, modulo 2^32):
 *  - delivery starts at the SYN's sequence + 1, or at the first data
 *    segment of a connection joined mid-stream;
 *  - every byte is delivered once and in order: retransmitted and
 *    overlapping bytes are trimmed, and where copies disagree the first
 *    one captured wins;
 *  - data beyond a hole waits, sorted, until the hole fills or is
 *    skipped; a skipped hole is reported as a gap and delivery goes on;
 *  - how long a hole may wait depends on what the receiver said: bytes
 *    it acknowledged but the capture never saw are a capture miss and
 *    wait `gap` (nothing will fill them); bytes the receiver is itself
 *    still waiting for are a network loss that TCP will retransmit, so
 *    they wait `rtx`; with no acknowledgements captured, `gap` applies;
 *  - a record cut by the snap length is delivered up to the cut and the
 *    rest of its payload is reported as a gap straight away;
 *  - the stream is done when delivery reaches the FIN's sequence.
 */
#ifndef TAPMIRROR_REASM_H
#define TAPMIRROR_REASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where reassembled bytes go. `data` borrows the caller's record or the
 * reassembler's queue; it is valid only during the call. */
struct reasm_sink {
    void (*data)(void *ctx, const uint8_t *data, uint32_t len);
    void (*gap)(void *ctx, uint32_t len);
    void *ctx;
};

/* Memory held by out-of-order segments, shared by every stream. */
struct reasm_budget {
    size_t used;
    size_t limit;
    uint64_t search_steps; /* queued pieces visited to find where a
                              segment goes: the work insertion costs */
};

struct reasm_seg;

struct reasm {
    struct reasm_seg *head, *tail; /* waiting segments, sorted, disjoint */
    uint32_t next;    /* sequence number of the next byte to deliver */
    uint32_t fin_seq; /* sequence number the FIN occupies */
    uint32_t acked;   /* highest acknowledgement from the receiver */
    uint32_t queued;  /* payload bytes waiting in the queue */
    uint32_t nsegs;   /* segments waiting in the queue */
    uint32_t dups;    /* segments that repeated queued bytes since the
                         queue was last empty */
    uint64_t fin_ns, ack_ns; /* when the FIN / the acknowledgement
                                beyond `next` was seen */
    uint8_t state;    /* REASM_* bits */
};

/* Segments a stream may queue, duplicates of queued bytes included:
 * beyond it the first hole is skipped as if the byte cap were reached.
 * 4096 full-size segments cover a 6 MB window; the bound keeps insertion
 * (a list walk from the nearer end) from growing quadratic on thousands
 * of tiny segments, or on copies of one segment sent again and again. */
#define REASM_MAX_SEGS 4096

/* The largest TCP window (2^30, with window scaling): a segment further
 * than this from the next byte to deliver cannot belong to the stream,
 * and ignoring it keeps every sequence comparison unambiguous (at 2^31
 * a number is both before and after another). */
#define REASM_WINDOW (1u << 30)

#define REASM_STARTED 0x01
#define REASM_FIN     0x02
#define REASM_HAS_ACK 0x04 /* receiver's acknowledgements are captured */

/* Starts the stream: after a SYN carrying sequence `isn`, or at the first
 * data byte `seq` of a connection joined mid-stream. */
void reasm_init_syn(struct reasm *r, uint32_t isn);
void reasm_init_mid(struct reasm *r, uint32_t seq);

/*
 * Adds a segment whose first payload byte has sequence `seq` (after the
 * SYN, if the segment carries one). `caplen` payload bytes are present at
 * `data`; the segment carried `wirelen` >= caplen on the wire. Delivers
 * whatever became contiguous through `sink`. If the stream's queue grows
 * past `flow_cap` bytes or the budget is exhausted, holes are skipped so
 * that the queue drains.
 */
void reasm_push(struct reasm *r, uint32_t seq, const uint8_t *data,
                uint32_t caplen, uint32_t wirelen, bool fin, uint64_t ts_ns,
                size_t flow_cap, struct reasm_budget *budget,
                const struct reasm_sink *sink);

/* Records the receiver's acknowledgement number: bytes it acknowledged
 * that were never captured are a known hole, and an acknowledgement that
 * stops short of queued data says the receiver is missing it too. */
void reasm_ack(struct reasm *r, uint32_t ack, uint64_t ts_ns);

/* Whether bytes are known to be missing before queued data, an
 * acknowledgement or the FIN. */
bool reasm_has_hole(const struct reasm *r);

/* How long holes may wait, in capture-time nanoseconds (see above). */
struct reasm_timeouts {
    uint64_t gap_ns;
    uint64_t rtx_ns;
};

/* Capture time at which the first hole is due to be skipped (valid if
 * reasm_has_hole()). */
uint64_t reasm_hole_deadline(const struct reasm *r,
                             const struct reasm_timeouts *t);

/*
 * Skips holes that are due at `now_ns` (every hole if `t` is NULL),
 * delivering what follows each one. Returns the number skipped.
 */
unsigned reasm_skip_holes(struct reasm *r, uint64_t now_ns,
                          const struct reasm_timeouts *t,
                          struct reasm_budget *budget,
                          const struct reasm_sink *sink);

/* Frees the queue without delivering it; returns the bytes dropped. */
uint64_t reasm_discard(struct reasm *r, struct reasm_budget *budget);

/* Delivery has reached the FIN. */
bool reasm_done(const struct reasm *r);

/* Walks the queue and checks its links, order and counts; returns what
 * is wrong, or NULL. O(queue): for tests and fuzz targets, not the
 * packet path. */
const char *reasm_check(const struct reasm *r);

#endif
