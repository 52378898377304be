/*
 * fuzz_httpturn: where an HTTP/1 turn ends (httpturn.c) on hostile
 * conversations.
 *
 * Input layout:
 *   byte 0     PRNG seed for the chunked feeding
 *   rest       steps: a byte (bit 0: the target's bytes, else the
 *              client's; bit 1: the target's end after them; bits 2-7
 *              and the next byte: the step's length), then its bytes
 *
 * Checks: fed whole per step, byte by byte and in PRNG-sized chunks, the
 * state, request and response counts, stop and reason are the same
 * after every step; the counts never go down; once stopped it stays
 * stopped and UNKNOWN, with a one-line reason (none before); ANSWERED
 * needs a request; the footprint stays within the framers' limits.
 */
#include "fuzz_common.h"
#include "proto/httpturn.h"

#define MAX_STEPS 64
/* Two framers at most: their heads (64 KiB each) and tables. */
#define FOOTPRINT_MAX (2 * (64 * 1024 + 16 * 1024) + 1024)

struct step {
    const uint8_t *p;
    size_t len;
    bool target, end;
};

struct snap {
    enum httpturn_state state;
    uint64_t requests, responses;
    bool stopped;
    char reason[160];
};

static void feed(struct httpturn *t, const struct step *s, size_t off,
                 size_t n)
{
    if (s->target) {
        httpturn_received(t, s->p + off, n);
    } else {
        httpturn_sent(t, s->p + off, n);
    }
}

/* mode 0 whole, 1 byte by byte, 2 PRNG chunks. */
static void run(const struct step *steps, size_t nsteps, int mode,
                uint64_t seed, struct snap *out)
{
    struct httpturn *t = httpturn_new();
    struct snap prev = {HTTPTURN_UNKNOWN, 0, 0, false, ""};
    for (size_t i = 0; i < nsteps; i++) {
        const struct step *s = &steps[i];
        size_t pos = 0;
        while (pos < s->len) {
            size_t step = mode == 0 ? s->len - pos
                        : mode == 1 ? 1
                                    : 1 + (size_t)(fz_rand(&seed) % 32);
            step = step > s->len - pos ? s->len - pos : step;
            feed(t, s, pos, step);
            pos += step;
        }
        if (s->end) {
            httpturn_received_end(t);
        }
        struct snap *now = &out[i];
        now->state = httpturn_state(t);
        now->requests = httpturn_requests(t);
        now->responses = httpturn_responses(t);
        now->stopped = httpturn_stopped(t);
        snprintf(now->reason, sizeof(now->reason), "%s", httpturn_reason(t));
        FZ_CHECK(now->requests >= prev.requests, "requests went down");
        FZ_CHECK(now->responses >= prev.responses, "responses went down");
        FZ_CHECK(!prev.stopped || now->stopped, "restarted after a stop");
        FZ_CHECK(!now->stopped || now->state == HTTPTURN_UNKNOWN,
                 "a verdict after the framing stopped");
        FZ_CHECK(now->stopped == (now->reason[0] != '\0'),
                 "reason and stop disagree");
        FZ_CHECK(strchr(now->reason, '\n') == NULL, "reason is not one line");
        FZ_CHECK(now->state != HTTPTURN_ANSWERED || now->requests > 0,
                 "answered with no request");
        FZ_CHECK(httpturn_footprint(t) <= FOOTPRINT_MAX, "footprint %zu",
                 httpturn_footprint(t));
        prev = *now;
    }
    httpturn_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 32768) {
        return 0;
    }
    struct fz f = {data + 1, size - 1};
    uint64_t seed = data[0];
    struct step steps[MAX_STEPS] = {{NULL, 0, false, false}};
    size_t nsteps = 0;
    while (fz_left(&f) > 0 && nsteps < MAX_STEPS) {
        uint8_t b = fz_u8(&f);
        size_t want = ((size_t)(b >> 2) << 8) | fz_u8(&f);
        struct step *s = &steps[nsteps++];
        s->target = b & 1;
        s->end = (b & 2) != 0;
        s->p = fz_bytes(&f, want, &s->len);
    }
    static struct snap whole[MAX_STEPS], bytes[MAX_STEPS], chunks[MAX_STEPS];
    run(steps, nsteps, 0, seed, whole);
    run(steps, nsteps, 1, seed, bytes);
    run(steps, nsteps, 2, seed, chunks);
    for (size_t i = 0; i < nsteps; i++) {
        const struct snap *a = &whole[i];
        for (int k = 0; k < 2; k++) {
            const struct snap *b = k == 0 ? &bytes[i] : &chunks[i];
            const char *how = k == 0 ? "byte by byte" : "in chunks";
            FZ_CHECK(a->state == b->state && a->requests == b->requests &&
                         a->responses == b->responses &&
                         a->stopped == b->stopped,
                     "step %zu differs fed %s", i, how);
            FZ_CHECK(strcmp(a->reason, b->reason) == 0,
                     "step %zu reason differs fed %s: %s / %s", i, how,
                     a->reason, b->reason);
        }
    }
    return 0;
}
