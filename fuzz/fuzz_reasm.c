/*
 * fuzz_reasm: reassembly of TCP byte streams, driven by a script of
 * segments, acknowledgements, hole skips and discards, against a model.
 *
 * Input layout:
 *   byte 0     bit 0/1: stream 0/1 starts with a SYN (else mid-stream);
 *              bit 2: copies disagree (segment bytes come from the input;
 *              otherwise every copy of a byte is T(seq), a fixed function
 *              of its sequence number); bits 3-4: where the sequence
 *              numbers start (anywhere, just below 2^32, just below 2^31)
 *   u32        initial sequence number
 *   byte       flow cap: 64 + 32 * value bytes per stream
 *   u16        shared budget limit (0xffff: unlimited)
 *   ops...     until the input ends (at most 4096):
 *     op byte: bits 0-2 kind, bit 3 which of the two streams,
 *              bits 4-5 a variant
 *     0,1,2 push: seq (variant 0: next + i16; 1: end of the previous
 *           push + i8; 2: next + u16 ahead; 3: any u32), flags byte (bit
 *           0 FIN, bit 1 cut by u8 bytes, bit 2 cut by a u16 % 16384, bit
 *           3 caplen from a u16 % 4096 instead of a u8), caplen, cuts,
 *           a u8 time step in ms, then (disagree mode) caplen bytes
 *     3     ack: variant 0/1: next + i16, 2: end of the previous push,
 *           3: any u32
 *     4     skip the holes due at now + u8 ms with gap/rtx timeouts
 *           of u8 ms each
 *     5     skip every hole (as at the end of the input)
 *     6     time step of u16 ms
 *     7     discard the stream's queue; variant 3 also restarts it
 *
 * The model keeps, for each stream, the absolute position of the next
 * byte to deliver (64-bit: sequence numbers wrap, positions do not) and,
 * in a 32 KiB window ahead of it, what the first captured copy of each
 * byte was: nothing yet, a byte value, a byte cut off by the snap length,
 * or unknown (a push reached it while it was beyond the window).
 *
 * Checks: every delivered byte is the first captured copy of the byte at
 * its position (and T(seq) when copies agree); no byte is delivered that
 * was never captured, and no gap covers a captured byte; data and gaps
 * are reported in order and add up to exactly how far r->next moved;
 * nothing is delivered past the FIN; after each push the stream's queue
 * holds at most flow_cap bytes, its segments and the copies of queued
 * bytes counted since it was last empty are at most REASM_MAX_SEGS (and
 * no copies are counted for an empty queue), and the shared budget is
 * respected or the stream's queue is empty; the budget's `used` is the queued bytes plus
 * one fixed per-segment cost for each queued segment, and returns to 0
 * once both queues are discarded; reasm_done() holds exactly when
 * delivery has reached the FIN; after skipping the due holes none is
 * due, and after skipping all of them no hole is left.
 */
#include "fuzz_common.h"

#include "core/reasm.h"
#include "core/util.h"

#define WIN_BITS 15
#define WIN      (1u << WIN_BITS)
#define WIN_MASK (WIN - 1)
#define ORIGIN   (1ULL << 40) /* absolute position of the first byte */
#define MS       1000000ULL
#define MAX_OPS  4096

enum { ST_NONE = 0, ST_UNKNOWN, ST_MISSING, ST_BYTE };

/* A window slot is valid for position `tag` in epoch `epoch`; any other
 * slot reads as "nothing captured" (or "unknown" below beyond_hi). So
 * sliding the window and forgetting it cost nothing. */
struct slot {
    uint64_t tag;
    uint32_t epoch;
    uint8_t st, val;
};

struct stream {
    struct reasm r;
    int id;
    bool agree;
    uint32_t epoch;
    uint32_t seq0;      /* sequence number of position ORIGIN */
    uint64_t next;      /* absolute position of the next byte */
    uint64_t beyond_hi; /* pushes reached up to here beyond the window */
    uint64_t byte_hi;   /* a captured byte was recorded below this */
    bool fin, fin_near;
    uint32_t fin_seq;
    uint64_t fin_abs;
    uint32_t last_end; /* sequence number after the previous push */
    uint64_t data_bytes, gap_bytes;
    struct slot w[WIN];
};

struct harness {
    struct stream s[2];
    struct reasm_budget budget;
    size_t flow_cap;
    uint64_t now;
};

static size_t seg_overhead; /* the budget's cost of one segment, less data */
static uint32_t epochs;
static bool tolerate_overrun; /* TAPMIRROR_FUZZ_TOLERATE=reasm-fin-overrun */

FZ_NO_COVERAGE static inline uint8_t true_byte(uint32_t seq)
{
    return (uint8_t)(((seq * 2654435761u) >> 24) ^ seq);
}

static inline uint32_t seq_of(const struct stream *s, uint64_t abs)
{
    return s->seq0 + (uint32_t)(abs - ORIGIN);
}

FZ_NO_COVERAGE static uint8_t state_at(const struct stream *s, uint64_t p, uint8_t *val)
{
    const struct slot *sl = &s->w[p & WIN_MASK];
    if (sl->epoch == s->epoch && sl->tag == p) {
        *val = sl->val;
        return sl->st;
    }
    *val = 0;
    return p < s->beyond_hi ? ST_UNKNOWN : ST_NONE;
}

/* Forgets every recorded byte (the queue was discarded). */
static void forget(struct stream *s)
{
    s->epoch = ++epochs;
    s->byte_hi = 0;
}

static void stream_init(struct stream *s, int id, bool syn, uint32_t seq,
                        bool agree)
{
    /* The window is not cleared: a new epoch invalidates it. */
    memset(s, 0, offsetof(struct stream, w));
    s->id = id;
    s->agree = agree;
    if (syn) {
        reasm_init_syn(&s->r, seq);
        s->seq0 = seq + 1;
    } else {
        reasm_init_mid(&s->r, seq);
        s->seq0 = seq;
    }
    s->next = ORIGIN;
    s->last_end = s->seq0;
    forget(s);
}

static bool past_fin(const struct stream *s, uint64_t p)
{
    return s->fin && s->fin_near && p >= s->fin_abs;
}

FZ_NO_COVERAGE static void on_data(void *ctx, const uint8_t *data, uint32_t len)
{
    struct stream *s = ctx;
    FZ_CHECK(len > 0, "stream %d: empty data event", s->id);
    FZ_TRACE("  stream %d: data %u at seq %u", s->id, len,
             seq_of(s, s->next));
    fz_touch(data, len);
    for (uint32_t i = 0; i < len; i++) {
        uint64_t p = s->next + i;
        uint32_t seq = seq_of(s, p);
        if (s->agree) {
            FZ_CHECK(data[i] == true_byte(seq),
                     "stream %d: byte at seq %u is %02x, not %02x", s->id,
                     seq, data[i], true_byte(seq));
        }
        uint8_t val;
        uint8_t st = state_at(s, p, &val);
        FZ_CHECK(st != ST_NONE,
                 "stream %d: delivered seq %u, which was never captured",
                 s->id, seq);
        FZ_CHECK(st != ST_MISSING,
                 "stream %d: delivered seq %u, whose first copy was cut off",
                 s->id, seq);
        if (st == ST_BYTE) {
            FZ_CHECK(data[i] == val,
                     "stream %d: seq %u delivered as %02x, first copy was "
                     "%02x",
                     s->id, seq, data[i], val);
        }
        if (!tolerate_overrun) {
            FZ_CHECK(!past_fin(s, p),
                     "stream %d: delivered seq %u at or after the FIN (%u)",
                     s->id, seq, s->fin_seq);
        }
    }
    s->data_bytes += len;
    s->next += len;
}

FZ_NO_COVERAGE static void on_gap(void *ctx, uint32_t len)
{
    struct stream *s = ctx;
    FZ_CHECK(len > 0, "stream %d: empty gap event", s->id);
    FZ_TRACE("  stream %d: gap %u at seq %u", s->id, len, seq_of(s, s->next));
    uint64_t end = s->next + len;
    /* Each position is scanned at most once: next moves past it. */
    uint64_t scan_end = end < s->byte_hi ? end : s->byte_hi;
    for (uint64_t p = s->next; p < scan_end; p++) {
        uint8_t val;
        FZ_CHECK(state_at(s, p, &val) != ST_BYTE,
                 "stream %d: gap of %u from seq %u covers captured seq %u",
                 s->id, len, seq_of(s, s->next), seq_of(s, p));
    }
    if (!tolerate_overrun) {
        FZ_CHECK(!past_fin(s, end - 1), "stream %d: gap runs past the FIN",
                 s->id);
    }
    s->gap_bytes += len;
    s->next = end;
}

/* Records what a segment tells the model, before reasm sees it. The FIN
 * rules are the documented ones, in sequence space: the first FIN fixes
 * the end, and later bytes at or after it are dropped. */
FZ_NO_COVERAGE static void model_push(struct stream *s, uint32_t seq, const uint8_t *d,
                       uint32_t caplen, uint32_t wirelen, bool fin)
{
    /* reasm ignores a segment further than a window from `next`, or
     * longer than one: nothing of it reaches the stream. */
    uint32_t nx = seq_of(s, s->next);
    if ((seq - nx > REASM_WINDOW && nx - seq > REASM_WINDOW) ||
        wirelen > REASM_WINDOW) {
        return;
    }
    int64_t diff = (int32_t)(seq - seq_of(s, s->next));
    int64_t a0 = (int64_t)s->next + diff;
    uint32_t end = seq + wirelen;
    if (fin && !s->fin) {
        s->fin = true;
        s->fin_seq = end;
        s->fin_abs = (uint64_t)(a0 + (int64_t)wirelen);
        /* Positions are unambiguous only for nearby sequence numbers. */
        s->fin_near = diff > -(1LL << 30) && diff < (1LL << 30);
    }
    if (s->fin && seq_gt(end, s->fin_seq)) {
        if (seq_ge(seq, s->fin_seq)) {
            return;
        }
        wirelen = s->fin_seq - seq;
        if (caplen > wirelen) {
            caplen = wirelen;
        }
    }
    /* Bytes before next were delivered already: trimmed. */
    uint32_t i0 = 0;
    if (a0 < (int64_t)s->next) {
        if ((int64_t)s->next - a0 >= (int64_t)wirelen) {
            return;
        }
        i0 = (uint32_t)((int64_t)s->next - a0);
    }
    for (uint32_t i = i0; i < wirelen; i++) {
        int64_t p = a0 + i;
        if ((uint64_t)p >= s->next + WIN) {
            uint64_t e = (uint64_t)(a0 + (int64_t)wirelen);
            if (e > s->beyond_hi) {
                s->beyond_hi = e;
            }
            break;
        }
        uint8_t val;
        if (state_at(s, (uint64_t)p, &val) == ST_NONE) {
            struct slot *sl = &s->w[(uint64_t)p & WIN_MASK];
            sl->tag = (uint64_t)p;
            sl->epoch = s->epoch;
            sl->st = i < caplen ? ST_BYTE : ST_MISSING;
            sl->val = i < caplen ? d[i] : 0;
            if (i < caplen && (uint64_t)p + 1 > s->byte_hi) {
                s->byte_hi = (uint64_t)p + 1;
            }
        }
    }
}

static void check_stream(const struct harness *h, const struct stream *s)
{
    const char *broken = reasm_check(&s->r);
    FZ_CHECK(broken == NULL, "stream %d: %s", s->id, broken);
    FZ_CHECK(s->r.next == seq_of(s, s->next),
             "stream %d: r.next %u, but data and gaps reached %u", s->id,
             s->r.next, seq_of(s, s->next));
    bool reached;
    if (s->fin && s->fin_near && !tolerate_overrun) {
        /* Sequence comparisons reach 2^31 either way. */
        reached = s->next >= s->fin_abs &&
                  s->next - s->fin_abs <= (1ULL << 31);
    } else {
        /* Far away, or delivery allowed to run past the FIN (and so
         * perhaps around the sequence space): sequence-space terms. */
        reached = s->fin && seq_ge(seq_of(s, s->next), s->fin_seq);
    }
    FZ_CHECK(reasm_done(&s->r) == reached,
             "stream %d: reasm_done() %d, FIN %s reached", s->id,
             reasm_done(&s->r), reached ? "" : "not");
    if (s->r.head == NULL) {
        FZ_CHECK(s->r.queued == 0, "stream %d: %u queued, empty queue", s->id,
                 s->r.queued);
    }
    (void)h;
}

static void check_budget(const struct harness *h)
{
    size_t queued = (size_t)h->s[0].r.queued + h->s[1].r.queued;
    size_t segs = (size_t)h->s[0].r.nsegs + h->s[1].r.nsegs;
    size_t heads = (h->s[0].r.head != NULL) + (h->s[1].r.head != NULL);
    /* Each queued piece costs its node and its buffer, which may hold
     * more than its bytes (a merged piece grows geometrically; a piece cut
     * at the FIN keeps its buffer). */
    FZ_CHECK(h->budget.used >= queued + segs * seg_overhead,
             "budget used %zu < queued %zu + %zu segments", h->budget.used,
             queued, segs);
    FZ_CHECK(heads == 0 || segs > 0, "a queue with no segments counted");
    if (heads == 0) {
        FZ_CHECK(h->budget.used == 0, "budget used %zu with empty queues",
                 h->budget.used);
    }
}

static const struct reasm_sink *sink_of(struct stream *s)
{
    static struct reasm_sink sinks[2];
    sinks[s->id].data = on_data;
    sinks[s->id].gap = on_gap;
    sinks[s->id].ctx = s;
    return &sinks[s->id];
}

/* The budget's per-segment cost: queue one out-of-order byte. */
static void learn_overhead(void)
{
    if (seg_overhead != 0) {
        return;
    }
    tolerate_overrun = fz_tolerate("reasm-fin-overrun");
    struct reasm_budget b = {0, SIZE_MAX, 0};
    struct stream *s = calloc(1, sizeof(*s));
    FZ_CHECK(s != NULL, "out of memory");
    stream_init(s, 0, false, 1000, true);
    uint8_t byte = true_byte(1010);
    reasm_push(&s->r, 1010, &byte, 1, 1, false, 0, SIZE_MAX, &b, sink_of(s));
    FZ_CHECK(s->r.queued == 1 && b.used > 1, "cannot queue one byte");
    seg_overhead = b.used - 1;
    reasm_discard(&s->r, &b);
    FZ_CHECK(b.used == 0, "discard left %zu", b.used);
    free(s);
}

static void do_push(struct harness *h, struct stream *s, struct fz *f,
                    uint8_t variant)
{
    uint32_t next_seq = seq_of(s, s->next);
    uint32_t seq;
    switch (variant) {
    case 0:
        seq = next_seq + (uint32_t)(int32_t)(int16_t)fz_u16(f);
        break;
    case 1:
        seq = s->last_end + (uint32_t)(int32_t)(int8_t)fz_u8(f);
        break;
    case 2:
        seq = next_seq + fz_u16(f);
        break;
    default:
        seq = fz_u32(f);
        break;
    }
    uint8_t flags = fz_u8(f);
    uint32_t caplen = (flags & 8) ? fz_u16(f) % 4096 : fz_u8(f);
    uint32_t wirelen = caplen;
    if (flags & 2) {
        wirelen += fz_u8(f);
    }
    if (flags & 4) {
        wirelen += fz_u16(f) % 16384;
    }
    bool fin = flags & 1;
    h->now += fz_u8(f) * MS;

    uint8_t *d = malloc(caplen ? caplen : 1);
    FZ_CHECK(d != NULL, "out of memory");
    if (s->agree) {
        for (uint32_t i = 0; i < caplen; i++) {
            d[i] = true_byte(seq + i);
        }
    } else {
        size_t got;
        const uint8_t *src = fz_bytes(f, caplen, &got);
        memcpy(d, src, got);
        for (size_t i = got; i < caplen; i++) {
            d[i] = true_byte(seq + (uint32_t)i);
        }
    }
    FZ_TRACE("stream %d: push seq %u caplen %u wirelen %u%s (next %u, "
             "queued %u)",
             s->id, seq, caplen, wirelen, fin ? " FIN" : "", s->r.next,
             s->r.queued);
    model_push(s, seq, d, caplen, wirelen, fin);
    reasm_push(&s->r, seq, d, caplen, wirelen, fin, h->now, h->flow_cap,
               &h->budget, sink_of(s));
    free(d); /* reasm must have copied whatever it queued */
    s->last_end = seq + wirelen;

    FZ_CHECK(s->r.queued <= h->flow_cap,
             "stream %d: %u bytes queued after a push, cap %zu", s->id,
             s->r.queued, h->flow_cap);
    FZ_CHECK(h->budget.used <= h->budget.limit || s->r.head == NULL,
             "stream %d: over the budget (%zu > %zu) with a queue left",
             s->id, h->budget.used, h->budget.limit);
    FZ_CHECK((uint64_t)s->r.nsegs + s->r.dups <= REASM_MAX_SEGS,
             "stream %d: %u segments and %u copies queued after a push",
             s->id, s->r.nsegs, s->r.dups);
    FZ_CHECK(s->r.head != NULL || s->r.dups == 0,
             "stream %d: %u copies counted for an empty queue", s->id,
             s->r.dups);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    learn_overhead();
    struct fz f = {data, size};
    /* Allocated once: the windows are large and need no clearing. */
    static struct harness *h;
    if (h == NULL) {
        h = calloc(1, sizeof(*h));
        FZ_CHECK(h != NULL, "out of memory");
    }

    uint8_t cfg = fz_u8(&f);
    uint32_t isn = fz_u32(&f);
    switch ((cfg >> 3) & 3) {
    case 1:
        isn = 0xffffff00u + (isn & 0xff); /* wraps soon */
        break;
    case 2:
        isn = 0x7fffff00u + (isn & 0xff);
        break;
    default:
        break;
    }
    bool agree = !(cfg & 4);
    h->flow_cap = 64 + 32 * (size_t)fz_u8(&f);
    uint16_t lim = fz_u16(&f);
    h->budget.used = 0;
    h->budget.limit = lim == 0xffff ? SIZE_MAX : lim;
    h->now = 1000 * MS;
    stream_init(&h->s[0], 0, cfg & 1, isn, agree);
    stream_init(&h->s[1], 1, cfg & 2, isn ^ 0x5a5a5a5au, agree);

    for (int n = 0; n < MAX_OPS && fz_left(&f) > 0; n++) {
        uint8_t op = fz_u8(&f);
        struct stream *s = &h->s[(op >> 3) & 1];
        uint8_t variant = (op >> 4) & 3;
        switch (op & 7) {
        case 0:
        case 1:
        case 2:
            do_push(h, s, &f, variant);
            break;
        case 3: {
            uint32_t ack;
            if (variant <= 1) {
                ack = seq_of(s, s->next) + (uint32_t)(int32_t)(int16_t)fz_u16(&f);
            } else if (variant == 2) {
                ack = s->last_end;
            } else {
                ack = fz_u32(&f);
            }
            FZ_TRACE("stream %d: ack %u (next %u)", s->id, ack, s->r.next);
            reasm_ack(&s->r, ack, h->now);
            break;
        }
        case 4: {
            uint64_t now = h->now + fz_u8(&f) * MS;
            struct reasm_timeouts t;
            t.gap_ns = fz_u8(&f) * MS;
            t.rtx_ns = t.gap_ns + fz_u8(&f) * MS;
            FZ_TRACE("stream %d: skip due holes at +%llu ms", s->id,
                     (unsigned long long)((now - h->now) / MS));
            reasm_skip_holes(&s->r, now, &t, &h->budget, sink_of(s));
            FZ_CHECK(!reasm_has_hole(&s->r) ||
                         now < reasm_hole_deadline(&s->r, &t),
                     "stream %d: a hole is due after skipping the due ones",
                     s->id);
            break;
        }
        case 5:
            FZ_TRACE("stream %d: skip all holes", s->id);
            reasm_skip_holes(&s->r, h->now, NULL, &h->budget, sink_of(s));
            FZ_CHECK(!reasm_has_hole(&s->r) && s->r.head == NULL,
                     "stream %d: a hole is left after skipping them all",
                     s->id);
            break;
        case 6:
            h->now += fz_u16(&f) * MS;
            break;
        default: {
            FZ_TRACE("stream %d: discard", s->id);
            uint32_t queued = s->r.queued;
            uint64_t dropped = reasm_discard(&s->r, &h->budget);
            FZ_CHECK(dropped == queued && s->r.queued == 0 &&
                         s->r.head == NULL && s->r.tail == NULL,
                     "stream %d: discard dropped %llu of %u", s->id,
                     (unsigned long long)dropped, queued);
            /* What was queued is gone: those bytes were never captured,
             * as far as delivery can tell. */
            forget(s);
            if (variant == 3) {
                bool syn = fz_bool(&f);
                stream_init(s, s->id, syn, fz_u32(&f), agree);
            }
            break;
        }
        }
        check_stream(h, &h->s[0]);
        check_stream(h, &h->s[1]);
        check_budget(h);
    }

    /* The end of the input: every hole is skipped, then nothing is left. */
    for (int i = 0; i < 2; i++) {
        struct stream *s = &h->s[i];
        FZ_TRACE("stream %d: end of input", i);
        reasm_skip_holes(&s->r, h->now, NULL, &h->budget, sink_of(s));
        check_stream(h, s);
        FZ_CHECK(s->r.head == NULL && !reasm_has_hole(&s->r),
                 "stream %d: holes left at the end", i);
        reasm_discard(&s->r, &h->budget);
    }
    FZ_CHECK(h->budget.used == 0, "budget used %zu after discarding both",
             h->budget.used);
    return 0;
}
