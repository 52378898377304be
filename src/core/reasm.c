#include "reasm.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A queued piece of the stream: `len` captured bytes from `seq`, then
 * `missing` bytes that the capture cut off. The bytes start in `inline`;
 * a piece that later segments extend (see insert) moves them to a
 * growing buffer. */
struct reasm_seg {
    struct reasm_seg *next, *prev;
    uint32_t seq;
    uint32_t len;
    uint32_t missing;
    uint32_t cap; /* bytes data can hold */
    uint64_t ts_ns; /* arrival; the head keeps the oldest in the queue */
    uint8_t *data;
    uint8_t inline_data[];
};

static bool skip_one(struct reasm *r, struct reasm_budget *budget,
                     const struct reasm_sink *sink);

static inline uint32_t seg_end(const struct reasm_seg *s)
{
    return s->seq + s->len + s->missing;
}

/* What a queued piece costs the budget: its node and its buffer. */
static size_t seg_cost(uint32_t cap)
{
    return sizeof(struct reasm_seg) + cap;
}

void reasm_init_syn(struct reasm *r, uint32_t isn)
{
    memset(r, 0, sizeof(*r));
    r->next = isn + 1;
    r->state = REASM_STARTED;
}

void reasm_init_mid(struct reasm *r, uint32_t seq)
{
    memset(r, 0, sizeof(*r));
    r->next = seq;
    r->state = REASM_STARTED;
}

static void free_seg(struct reasm *r, struct reasm_seg *s,
                     struct reasm_budget *budget)
{
    r->queued -= s->len;
    r->nsegs--;
    budget->used -= seg_cost(s->cap);
    if (s->data != s->inline_data) {
        free(s->data);
    }
    free(s);
}

/* The FIN has just become known: nothing at or after it belongs to the
 * stream, neither queued data nor an acknowledgement seen earlier.
 * Everything is measured as a distance from `next`, which every queued
 * piece is ahead of: comparing with the FIN alone is ambiguous when the
 * two are far apart in sequence space. */
static void cut_at_fin(struct reasm *r, struct reasm_budget *budget)
{
    uint32_t limit = seq_gt(r->fin_seq, r->next) ? r->fin_seq - r->next : 0;
    if ((r->state & REASM_HAS_ACK) && seq_gt(r->acked, r->next) &&
        r->acked - r->next > limit) {
        r->acked = limit > 0 ? r->fin_seq : r->next;
    }
    struct reasm_seg **pp = &r->head, *prev = NULL;
    while (*pp != NULL) {
        struct reasm_seg *s = *pp;
        uint32_t off = s->seq - r->next;
        uint32_t size = s->len + s->missing;
        if (off >= limit) {
            *pp = s->next;
            if (s->next != NULL) {
                s->next->prev = prev;
            }
            free_seg(r, s, budget);
            continue;
        }
        if (size > limit - off) {
            uint32_t keep = limit - off;
            if (keep < s->len) {
                r->queued -= s->len - keep;
                s->len = keep;
                s->missing = 0;
            } else {
                s->missing = keep - s->len;
            }
        }
        prev = s;
        pp = &s->next;
    }
    r->tail = prev;
    if (r->head == NULL) {
        r->dups = 0;
    }
}

/* Delivers the queue's head while it touches `next`. */
static void drain(struct reasm *r, struct reasm_budget *budget,
                  const struct reasm_sink *sink)
{
    struct reasm_seg *s;
    while ((s = r->head) != NULL && seq_le(s->seq, r->next)) {
        uint32_t end = seg_end(s);
        if (seq_gt(end, r->next)) {
            uint32_t off = r->next - s->seq;
            if (off < s->len) {
                sink->data(sink->ctx, s->data + off, s->len - off);
                r->next += s->len - off;
            }
            if (r->next != end) {
                sink->gap(sink->ctx, end - r->next);
                r->next = end;
            }
        }
        r->head = s->next;
        if (r->head == NULL) {
            r->tail = NULL;
            r->dups = 0;
        } else {
            r->head->prev = NULL; /* s is freed below */
            if (r->head->ts_ns > s->ts_ns) {
                /* The new head inherits the oldest arrival: data behind
                 * the next hole has waited at least that long. */
                r->head->ts_ns = s->ts_ns;
            }
        }
        free_seg(r, s, budget);
    }
}

static struct reasm_seg *new_seg(struct reasm *r, uint32_t seq,
                                 const uint8_t *data, uint32_t len,
                                 uint32_t missing, uint64_t ts_ns,
                                 struct reasm_budget *budget)
{
    struct reasm_seg *s = tm_xmalloc(seg_cost(len));
    s->next = s->prev = NULL;
    s->seq = seq;
    s->len = len;
    s->missing = missing;
    s->cap = len;
    s->ts_ns = ts_ns;
    s->data = s->inline_data;
    if (len > 0) {
        memcpy(s->data, data, len);
    }
    r->queued += len;
    r->nsegs++;
    budget->used += seg_cost(len);
    return s;
}

/* Appends `len` captured bytes, then `missing` cut-off ones, to `s`; its
 * buffer grows geometrically, so appending stays cheap on average. */
static void extend_seg(struct reasm *r, struct reasm_seg *s,
                       const uint8_t *data, uint32_t len, uint32_t missing,
                       struct reasm_budget *budget)
{
    if (s->len + len > s->cap) {
        uint32_t cap = s->cap < 2048 ? 4096 : s->cap * 2;
        while (cap < s->len + len) {
            cap *= 2;
        }
        uint8_t *buf = tm_xmalloc(cap);
        memcpy(buf, s->data, s->len);
        if (s->data != s->inline_data) {
            free(s->data);
        }
        budget->used += cap - s->cap;
        s->data = buf;
        s->cap = cap;
    }
    if (len > 0) {
        memcpy(s->data + s->len, data, len);
    }
    s->len += len;
    s->missing = missing;
    r->queued += len;
}

/*
 * The last queued piece that ends at or before `s` (NULL if none). The
 * pieces are sorted and disjoint, so their ends increase along the list;
 * the walk starts from whichever end of the queue is nearer `s` in
 * sequence space: new data usually lands near the tail, retransmissions
 * filling the first hole near the head.
 */
static struct reasm_seg *find_before(const struct reasm *r, uint32_t s,
                                     struct reasm_budget *budget)
{
    struct reasm_seg *p;
    if (r->head == NULL) {
        return NULL;
    }
    if (s - r->next >= (r->tail->seq - r->next) / 2) {
        p = r->tail;
        while (p != NULL && seq_gt(seg_end(p), s)) {
            budget->search_steps++;
            p = p->prev;
        }
        return p;
    }
    p = NULL;
    for (struct reasm_seg *c = r->head; c != NULL && seq_le(seg_end(c), s);
         c = c->next) {
        budget->search_steps++;
        p = c;
    }
    return p;
}

/*
 * Queues [seq, seq + caplen + missing) minus every byte already queued:
 * the first copy captured wins. `data` holds the caplen captured bytes.
 */
static void insert(struct reasm *r, uint32_t seq, const uint8_t *data,
                   uint32_t caplen, uint32_t missing, uint64_t ts_ns,
                   struct reasm_budget *budget)
{
    uint32_t s = seq;
    uint32_t e = seq + caplen + missing;
    uint32_t cap_end = seq + caplen;
    struct reasm_seg *prev = NULL, *cur = r->head;

    if (r->tail != NULL && s == seg_end(r->tail) && r->tail->missing == 0) {
        /* Contiguous with the last queued piece: the usual case while a
         * hole waits. Grow that piece instead of adding one, so that a
         * stream of small segments behind a hole stays one piece. */
        extend_seg(r, r->tail, data, caplen, missing, budget);
        return;
    }
    if (r->tail != NULL && seq_ge(s, seg_end(r->tail))) {
        prev = r->tail; /* beyond everything queued */
        cur = NULL;
    } else {
        prev = find_before(r, s, budget);
        cur = prev != NULL ? prev->next : r->head;
    }
    bool dup = false;
    while (seq_lt(s, e)) {
        if (cur != NULL && seq_le(cur->seq, s)) {
            /* Already queued from s on: keep the earlier copy. */
            if (seq_lt(s, seg_end(cur))) {
                s = seg_end(cur);
                dup = true;
            }
            prev = cur;
            cur = cur->next;
            continue;
        }
        uint32_t pe = (cur != NULL && seq_lt(cur->seq, e)) ? cur->seq : e;
        uint32_t plen = 0, pmissing;
        const uint8_t *pdata = NULL;
        if (seq_lt(s, cap_end)) {
            uint32_t upto = seq_lt(pe, cap_end) ? pe : cap_end;
            plen = upto - s;
            pdata = data + (s - seq);
        }
        pmissing = (pe - s) - plen;
        struct reasm_seg *n =
            new_seg(r, s, pdata, plen, pmissing, ts_ns, budget);
        n->next = cur;
        n->prev = prev;
        if (cur != NULL) {
            cur->prev = n;
        }
        if (prev == NULL) {
            if (r->head != NULL && r->head->ts_ns < n->ts_ns) {
                n->ts_ns = r->head->ts_ns;
            }
            r->head = n;
        } else {
            prev->next = n;
        }
        if (cur == NULL) {
            r->tail = n;
        }
        prev = n;
        s = pe;
    }
    if (dup) {
        r->dups++;
    }
}

void reasm_push(struct reasm *r, uint32_t seq, const uint8_t *data,
                uint32_t caplen, uint32_t wirelen, bool fin, uint64_t ts_ns,
                size_t flow_cap, struct reasm_budget *budget,
                const struct reasm_sink *sink)
{
    if ((seq - r->next > REASM_WINDOW && r->next - seq > REASM_WINDOW) ||
        wirelen > REASM_WINDOW) {
        return; /* outside any window this stream could have */
    }
    uint32_t end = seq + wirelen;
    if (fin && !(r->state & REASM_FIN)) {
        r->state |= REASM_FIN;
        r->fin_seq = end;
        r->fin_ns = ts_ns;
        cut_at_fin(r, budget);
    }
    if (wirelen == 0 || seq_le(end, r->next)) {
        return; /* no payload, or all of it delivered already */
    }
    /* Nothing after the FIN belongs to the stream. Measured from `next`,
     * as in cut_at_fin(). */
    if (r->state & REASM_FIN) {
        uint32_t limit =
            seq_gt(r->fin_seq, r->next) ? r->fin_seq - r->next : 0;
        uint32_t from = seq_lt(seq, r->next) ? 0 : seq - r->next;
        if (from >= limit) {
            return;
        }
        if (end - r->next > limit) {
            uint32_t drop = (end - r->next) - limit;
            wirelen -= drop;
            if (caplen > wirelen) {
                caplen = wirelen;
            }
            end -= drop;
        }
    }
    if (seq_lt(seq, r->next)) {
        uint32_t off = r->next - seq;
        if (off >= caplen) {
            data = NULL;
            caplen = 0;
        } else {
            data += off;
            caplen -= off;
        }
        wirelen -= off;
        seq = r->next;
    }
    if (seq == r->next &&
        (r->head == NULL || seq_le(end, r->head->seq))) {
        /* In order and clear of the queue: straight through, no copy. */
        if (caplen > 0) {
            sink->data(sink->ctx, data, caplen);
        }
        r->next = seq + caplen;
        if (caplen < wirelen) {
            sink->gap(sink->ctx, wirelen - caplen);
            r->next = end;
        }
        drain(r, budget, sink);
    } else {
        insert(r, seq, data, caplen, wirelen - caplen, ts_ns, budget);
        drain(r, budget, sink);
    }
    /* A stream holding more than its share skips holes until it fits;
     * over the shared budget, the stream being fed gives up its queue. */
    while (r->head != NULL &&
           (r->queued > flow_cap || r->nsegs + r->dups > REASM_MAX_SEGS ||
            budget->used > budget->limit)) {
        if (!skip_one(r, budget, sink)) {
            break;
        }
    }
}

void reasm_ack(struct reasm *r, uint32_t ack, uint64_t ts_ns)
{
    if (!(r->state & REASM_STARTED)) {
        return;
    }
    /* The FIN occupies a sequence number the stream never delivers. */
    if ((r->state & REASM_FIN) && seq_gt(ack, r->fin_seq)) {
        ack = r->fin_seq;
    }
    /* An acknowledgement further than a window away is not from this
     * connection's recent past: ignore it rather than skip a gigabyte. */
    if (ack - r->next > REASM_WINDOW && r->next - ack > REASM_WINDOW) {
        return;
    }
    bool had_hole = (r->state & REASM_HAS_ACK) && seq_gt(r->acked, r->next);
    if (!(r->state & REASM_HAS_ACK) || seq_gt(ack, r->acked)) {
        r->acked = ack;
    }
    r->state |= REASM_HAS_ACK;
    if (!had_hole && seq_gt(r->acked, r->next)) {
        r->ack_ns = ts_ns;
    }
}

static bool ack_hole(const struct reasm *r)
{
    return (r->state & REASM_HAS_ACK) && seq_gt(r->acked, r->next);
}

static bool fin_hole(const struct reasm *r)
{
    return (r->state & REASM_FIN) && seq_lt(r->next, r->fin_seq);
}

bool reasm_has_hole(const struct reasm *r)
{
    if (reasm_done(r)) {
        return false; /* nothing after the FIN is awaited */
    }
    return r->head != NULL || ack_hole(r) || fin_hole(r);
}

uint64_t reasm_hole_deadline(const struct reasm *r,
                             const struct reasm_timeouts *t)
{
    if (ack_hole(r)) {
        /* The receiver has bytes the capture missed: they will never be
         * captured now, so only the capture's own reordering is worth
         * waiting for. */
        return r->ack_ns + t->gap_ns;
    }
    uint64_t since = UINT64_MAX;
    if (r->head != NULL) {
        since = r->head->ts_ns;
    }
    if (fin_hole(r) && r->fin_ns < since) {
        since = r->fin_ns;
    }
    if (since == UINT64_MAX) {
        return 0;
    }
    /* With acknowledgements in the capture, a hole the receiver has not
     * acknowledged is a loss on the network: the sender retransmits it
     * and the capture will see the copy. */
    uint64_t wait = (r->state & REASM_HAS_ACK) ? t->rtx_ns : t->gap_ns;
    return since + wait;
}

/* Skips the first hole: reports it as a gap and delivers what follows.
 * Returns false if there is no hole. */
static bool skip_one(struct reasm *r, struct reasm_budget *budget,
                     const struct reasm_sink *sink)
{
    /* The hole ends where the next known byte begins. */
    uint32_t to = r->next;
    bool have = false;
    if (r->head != NULL) {
        to = r->head->seq;
        have = true;
    }
    if (ack_hole(r) && (!have || seq_lt(r->acked, to))) {
        to = r->acked;
        have = true;
    }
    if (fin_hole(r) && (!have || seq_lt(r->fin_seq, to))) {
        to = r->fin_seq;
        have = true;
    }
    if (!have || to == r->next) {
        return false;
    }
    sink->gap(sink->ctx, to - r->next);
    r->next = to;
    drain(r, budget, sink);
    return true;
}

unsigned reasm_skip_holes(struct reasm *r, uint64_t now_ns,
                          const struct reasm_timeouts *t,
                          struct reasm_budget *budget,
                          const struct reasm_sink *sink)
{
    unsigned skipped = 0;
    while (reasm_has_hole(r)) {
        if (t != NULL && now_ns < reasm_hole_deadline(r, t)) {
            break;
        }
        if (!skip_one(r, budget, sink)) {
            break;
        }
        skipped++;
    }
    return skipped;
}

uint64_t reasm_discard(struct reasm *r, struct reasm_budget *budget)
{
    uint64_t dropped = 0;
    struct reasm_seg *s = r->head;
    while (s != NULL) {
        struct reasm_seg *next = s->next;
        dropped += s->len;
        free_seg(r, s, budget);
        s = next;
    }
    r->head = r->tail = NULL;
    r->dups = 0;
    return dropped;
}

bool reasm_done(const struct reasm *r)
{
    return (r->state & REASM_FIN) && seq_ge(r->next, r->fin_seq);
}

const char *reasm_check(const struct reasm *r)
{
    uint32_t queued = 0, nsegs = 0;
    const struct reasm_seg *prev = NULL;
    for (const struct reasm_seg *s = r->head; s != NULL; s = s->next) {
        if (s->prev != prev) {
            return "a piece's prev link is not the piece before it";
        }
        if (s->len > s->cap) {
            return "a piece holds more bytes than its buffer";
        }
        if (s->len + s->missing == 0) {
            return "an empty piece is queued";
        }
        if (!seq_gt(s->seq, r->next)) {
            return "a queued piece starts at or before the next byte";
        }
        if (prev != NULL && seq_lt(s->seq, seg_end(prev))) {
            return "queued pieces overlap or are out of order";
        }
        if (++nsegs > REASM_MAX_SEGS + 1) {
            return "the queue is longer than its cap (a loop?)";
        }
        queued += s->len;
        prev = s;
    }
    if (r->tail != prev) {
        return "the tail is not the last queued piece";
    }
    if (nsegs != r->nsegs || queued != r->queued) {
        return "the queue's counts disagree with its pieces";
    }
    return NULL;
}
