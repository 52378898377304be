/* Unit tests of reasm.c: one direction of a TCP connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/reasm.h"

/* ---- a recording sink ---- */

struct event {
    char kind; /* 'D' data, 'G' gap */
    uint32_t len;
};

struct out {
    uint8_t bytes[1 << 17];
    size_t len;
    struct event ev[256];
    size_t nev;
    uint64_t gap_bytes;
    unsigned gaps;
};

static void on_data(void *ctx, const uint8_t *data, uint32_t len)
{
    struct out *o = ctx;
    assert_true(len > 0);
    assert_true(o->len + len <= sizeof(o->bytes));
    memcpy(o->bytes + o->len, data, len);
    o->len += len;
    assert_true(o->nev < 256);
    o->ev[o->nev].kind = 'D';
    o->ev[o->nev++].len = len;
}

static void on_gap(void *ctx, uint32_t len)
{
    struct out *o = ctx;
    assert_true(len > 0);
    o->gap_bytes += len;
    o->gaps++;
    assert_true(o->nev < 256);
    o->ev[o->nev].kind = 'G';
    o->ev[o->nev++].len = len;
}

/* Test fixture: one stream, its sink, a budget with a large limit. */
struct fx {
    struct reasm rs;
    struct reasm_budget budget;
    struct reasm_sink sink;
    struct out *out;
    size_t flow_cap;
};

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->out = calloc(1, sizeof(*f->out));
    assert_non_null(f->out);
    f->budget.limit = (size_t)1 << 30;
    f->sink.data = on_data;
    f->sink.gap = on_gap;
    f->sink.ctx = f->out;
    f->flow_cap = (size_t)1 << 30;
    return f;
}

static void fx_free(struct fx *f)
{
    reasm_discard(&f->rs, &f->budget);
    assert_int_equal(f->budget.used, 0);
    free(f->out);
    free(f);
}

static void push(struct fx *f, uint32_t seq, const char *data, bool fin,
                 uint64_t ts)
{
    uint32_t len = (uint32_t)strlen(data);
    reasm_push(&f->rs, seq, (const uint8_t *)data, len, len, fin, ts,
               f->flow_cap, &f->budget, &f->sink);
}

static void push_cut(struct fx *f, uint32_t seq, const char *data,
                     uint32_t wirelen, uint64_t ts)
{
    uint32_t len = (uint32_t)strlen(data);
    reasm_push(&f->rs, seq, (const uint8_t *)data, len, wirelen, false, ts,
               f->flow_cap, &f->budget, &f->sink);
}

/* The delivered stream so far, as a string. */
static void assert_stream(const struct fx *f, const char *want)
{
    size_t n = strlen(want);
    if (f->out->len != n || memcmp(f->out->bytes, want, n) != 0) {
        fail_msg("delivered \"%.*s\" (%zu bytes), want \"%s\"",
                 (int)f->out->len, (const char *)f->out->bytes, f->out->len,
                 want);
    }
}

/* A string of `n` copies of `c` (one of 8 rotating static buffers). */
static const char *rep(char c, size_t n)
{
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ & 7];
    assert_true(n < sizeof(bufs[0]));
    memset(b, c, n);
    b[n] = '\0';
    return b;
}

static const struct reasm_timeouts TMO = {.gap_ns = 100, .rtx_ns = 1000};

/* ---- tests ---- */

static void test_syn_then_in_order(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 1000);
    assert_false(reasm_has_hole(&f->rs));
    push(f, 1001, "hello", false, 1);
    assert_stream(f, "hello");
    assert_int_equal(f->out->nev, 1);
    push(f, 1006, " world", false, 2);
    assert_stream(f, "hello world");
    assert_false(reasm_has_hole(&f->rs));
    assert_false(reasm_done(&f->rs));
    assert_int_equal(f->budget.used, 0);
    assert_int_equal(f->rs.next, 1012);
    /* Data at the SYN's own sequence number is not stream data. */
    struct fx *g = fx_new();
    reasm_init_syn(&g->rs, 1000);
    push(g, 1000, "Xhello", false, 1);
    assert_stream(g, "hello");
    fx_free(g);
    fx_free(f);
}

static void test_mid_stream_init(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_mid(&f->rs, 5000);
    push(f, 5000, "abc", false, 1);
    assert_stream(f, "abc");
    /* Bytes from before the first one seen are old: not delivered. */
    push(f, 4990, "0123456789", false, 2);
    assert_stream(f, "abc");
    push(f, 4995, "56789abcdef", false, 3);
    assert_stream(f, "abcdef");
    push(f, 5006, "g", false, 4);
    assert_stream(f, "abcdefg");
    fx_free(f);
}

static void test_out_of_order_waits(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 6, " world", false, 1);
    assert_stream(f, "");
    assert_true(reasm_has_hole(&f->rs));
    assert_int_equal(f->rs.queued, 6);
    assert_true(f->budget.used >= 6);
    push(f, 12, "!", false, 2);
    assert_stream(f, "");
    push(f, 1, "hello", false, 3);
    assert_stream(f, "hello world!");
    assert_false(reasm_has_hole(&f->rs));
    assert_int_equal(f->out->gaps, 0);
    assert_int_equal(f->rs.queued, 0);
    assert_int_equal(f->budget.used, 0);
    fx_free(f);
}

static void test_reverse_order(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 100);
    const char *text = "the quick brown fox jumps over the lazy dog";
    size_t n = strlen(text);
    /* Segments of 3 bytes, last first. */
    for (size_t k = (n + 2) / 3; k-- > 0;) {
        char piece[4] = {0};
        size_t len = n - k * 3 < 3 ? n - k * 3 : 3;
        memcpy(piece, text + k * 3, len);
        push(f, 101 + (uint32_t)(k * 3), piece, false, 10);
    }
    assert_stream(f, text);
    assert_int_equal(f->budget.used, 0);
    fx_free(f);
}

static void test_exact_duplicate(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "abcd", false, 1);
    push(f, 1, "abcd", false, 2);
    assert_stream(f, "abcd");
    /* A duplicate of a queued segment. */
    push(f, 9, "ijkl", false, 3);
    push(f, 9, "ijkl", false, 4);
    assert_int_equal(f->rs.queued, 4);
    push(f, 5, "efgh", false, 5);
    assert_stream(f, "abcdefghijkl");
    assert_int_equal(f->out->nev, 3);
    fx_free(f);
}

static void test_retransmission_trimmed(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "0123456789", false, 1);
    push(f, 6, "56789abcde", false, 2);
    assert_stream(f, "0123456789abcde");
    assert_int_equal(f->out->ev[1].len, 5);
    fx_free(f);
}

static void test_first_copy_wins_delivered(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "xxxxx", false, 1);
    push(f, 1, "yyyyyyyyyy", false, 2);
    assert_stream(f, "xxxxxyyyyy");
    fx_free(f);
}

static void test_first_copy_wins_queued(void **state)
{
    (void)state;
    /* Queued [11, 21) "A..."; a later segment [6, 16) with 'b's; then the
     * start. Bytes 11-15 must be the first copy's. */
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 11, rep('A', 10), false, 1);
    push(f, 6, rep('b', 10), false, 2);
    assert_stream(f, "");
    push(f, 1, "01234", false, 3);
    assert_stream(f, "01234bbbbbAAAAAAAAAA");
    assert_int_equal(f->budget.used, 0);
    fx_free(f);

    /* A later segment that covers a queued one entirely. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 6, "QQQ", false, 1);
    push(f, 4, "zzzzzzzz", false, 2);
    push(f, 1, "012", false, 3);
    assert_stream(f, "012zzQQQzzz");
    fx_free(f);

    /* The later copy arrives in order, overlapping the queue head: the
     * queued bytes still win. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 4, "QQ", false, 1);
    push(f, 1, "zzzzzzzz", false, 2);
    assert_stream(f, "zzzQQzzz");
    fx_free(f);
}

static void test_segment_spanning_queued(void **state)
{
    (void)state;
    /* Queued [11, 21) and [31, 41); a segment [5, 51) fills only the
     * holes between and around them; then [1, 5) completes it. */
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 11, rep('a', 10), false, 1);
    push(f, 31, rep('b', 10), false, 2);
    push(f, 5, rep('Z', 46), false, 3);
    assert_stream(f, "");
    assert_int_equal(f->rs.queued, 46);
    push(f, 1, "0123", false, 4);
    char want[64];
    snprintf(want, sizeof(want), "0123%s%s%s%s%s", rep('Z', 6), rep('a', 10),
             rep('Z', 10), rep('b', 10), rep('Z', 10));
    assert_stream(f, want);
    assert_int_equal(f->budget.used, 0);
    fx_free(f);

    /* The same segment starting in order. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 11, rep('a', 10), false, 1);
    push(f, 31, rep('b', 10), false, 2);
    push(f, 1, rep('Z', 50), false, 3);
    snprintf(want, sizeof(want), "%s%s%s%s%s", rep('Z', 10), rep('a', 10),
             rep('Z', 10), rep('b', 10), rep('Z', 10));
    assert_stream(f, want);
    fx_free(f);
}

static void test_sequence_wrap(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0xfffffff0u);
    assert_int_equal(f->rs.next, 0xfffffff1u);
    push(f, 0xfffffff1u, "0123456789", false, 1); /* up to 0xfffffffa */
    push(f, 0xfffffffbu, "abcdefghij", false, 2); /* crosses zero */
    assert_stream(f, "0123456789abcdefghij");
    assert_int_equal(f->rs.next, 5);
    fx_free(f);

    /* Out of order across the wrap: the segment after zero first. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0xfffffff0u);
    push(f, 0x00000005u, "KLMNO", false, 1);
    push(f, 0xfffffffbu, "ABCDEFGHIJ", false, 2);
    assert_stream(f, "");
    assert_true(reasm_has_hole(&f->rs));
    push(f, 0xfffffff1u, "0123456789", false, 3);
    assert_stream(f, "0123456789ABCDEFGHIJKLMNO");
    assert_false(reasm_has_hole(&f->rs));
    /* A retransmission from before the wrap is old. */
    push(f, 0xfffffffbu, "abcdefghij", false, 4);
    assert_stream(f, "0123456789ABCDEFGHIJKLMNO");
    /* A FIN after the wrap. */
    push(f, 0x0000000au, "!", true, 5);
    assert_true(reasm_done(&f->rs));
    assert_stream(f, "0123456789ABCDEFGHIJKLMNO!");
    fx_free(f);
}

static void test_fin_completes(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "abc", false, 1);
    assert_false(reasm_done(&f->rs));
    push(f, 4, "def", true, 2);
    assert_true(reasm_done(&f->rs));
    assert_stream(f, "abcdef");
    fx_free(f);

    /* A bare FIN after the data. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "abc", false, 1);
    push(f, 4, "", true, 2);
    assert_true(reasm_done(&f->rs));
    fx_free(f);
}

static void test_fin_before_data(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 11, "", true, 1); /* FIN occupies 11: data is 1..10 */
    assert_false(reasm_done(&f->rs));
    assert_true(reasm_has_hole(&f->rs));
    push(f, 1, "01234", false, 2);
    assert_false(reasm_done(&f->rs));
    push(f, 6, "56789", false, 3);
    assert_true(reasm_done(&f->rs));
    assert_stream(f, "0123456789");
    assert_false(reasm_has_hole(&f->rs));
    fx_free(f);

    /* A FIN with data, out of order. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 6, "56789", true, 1);
    assert_false(reasm_done(&f->rs));
    push(f, 1, "01234", false, 2);
    assert_true(reasm_done(&f->rs));
    assert_stream(f, "0123456789");
    fx_free(f);
}

static void test_data_beyond_fin_ignored(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 11, "", true, 1);
    push(f, 1, "0123456789EXTRA", false, 2);
    assert_stream(f, "0123456789");
    assert_true(reasm_done(&f->rs));
    push(f, 11, "more", false, 3);
    push(f, 20, "more", false, 4);
    assert_stream(f, "0123456789");
    assert_int_equal(f->rs.queued, 0);
    fx_free(f);

    /* Data beyond the FIN arriving first is not queued either. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "abc", true, 1); /* FIN at 4 */
    push(f, 4, "zzz", false, 2);
    push(f, 10, "zzz", false, 3);
    assert_int_equal(f->rs.queued, 0);
    assert_stream(f, "abc");
    /* A second FIN further on does not move the first. */
    push(f, 7, "zzz", true, 4);
    assert_int_equal(f->rs.fin_seq, 4);
    assert_true(reasm_done(&f->rs));
    fx_free(f);

    /* Beyond a FIN that delivery has not reached yet: not queued. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 11, "", true, 1);
    push(f, 15, "zzzz", false, 2);
    push(f, 11, "zz", false, 3);
    assert_int_equal(f->rs.queued, 0);
    push(f, 8, "789zz", false, 4); /* straddles the FIN */
    assert_int_equal(f->rs.queued, 3);
    push(f, 1, "0123456", false, 5);
    assert_stream(f, "0123456789");
    assert_true(reasm_done(&f->rs));
    assert_int_equal(f->out->gaps, 0);
    fx_free(f);
}

static void test_cut_record(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push_cut(f, 1, "abcde", 10, 1); /* 5 captured of 10 */
    assert_stream(f, "abcde");
    assert_int_equal(f->out->nev, 2);
    assert_int_equal(f->out->ev[1].kind, 'G');
    assert_int_equal(f->out->ev[1].len, 5);
    assert_int_equal(f->rs.next, 11);
    assert_false(reasm_has_hole(&f->rs));
    push(f, 11, "klm", false, 2);
    assert_stream(f, "abcdeklm");
    assert_int_equal(f->out->gap_bytes, 5);
    /* A cut record with nothing captured. */
    push_cut(f, 14, "", 6, 3);
    assert_int_equal(f->out->gap_bytes, 11);
    push(f, 20, "t", false, 4);
    assert_stream(f, "abcdeklmt");
    fx_free(f);

    /* Out of order: the cut part is reported when delivery reaches it. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push_cut(f, 6, "fg", 5, 1); /* 6..10, 6-7 captured */
    push(f, 11, "kl", false, 2);
    push(f, 1, "abcde", false, 3);
    assert_stream(f, "abcdefgkl");
    assert_int_equal(f->out->gap_bytes, 3);
    assert_int_equal(f->budget.used, 0);
    fx_free(f);
}

static void test_flow_cap_skips_hole(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    f->flow_cap = 100;
    reasm_init_syn(&f->rs, 0);
    push(f, 201, rep('a', 80), false, 1);
    assert_int_equal(f->out->gaps, 0);
    assert_int_equal(f->rs.queued, 80);
    push(f, 301, rep('b', 40), false, 2); /* 120 queued > 100 */
    /* The first hole (1..200) is skipped, its data delivered; that is
     * enough to fit, so the second hole still waits. */
    assert_int_equal(f->out->gaps, 1);
    assert_int_equal(f->out->ev[0].kind, 'G');
    assert_int_equal(f->out->ev[0].len, 200);
    assert_stream(f, rep('a', 80));
    assert_int_equal(f->rs.queued, 40);
    assert_true(f->rs.queued <= f->flow_cap);
    fx_free(f);

    /* One segment larger than the cap on its own. */
    f = fx_new();
    f->flow_cap = 100;
    reasm_init_syn(&f->rs, 0);
    push(f, 11, rep('c', 150), false, 1);
    assert_int_equal(f->out->gap_bytes, 10);
    assert_stream(f, rep('c', 150));
    assert_int_equal(f->budget.used, 0);
    fx_free(f);
}

static void test_budget_limit_skips_hole(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    f->budget.limit = 1000;
    reasm_init_syn(&f->rs, 0);
    push(f, 11, rep('a', 100), false, 1);
    assert_int_equal(f->out->gaps, 0); /* within the budget */
    push(f, 211, rep('b', 2000), false, 2);
    assert_true(f->out->gaps >= 1);
    assert_true(f->budget.used <= f->budget.limit);
    /* Everything that was queued got delivered in order around gaps. */
    char *want = malloc(2101);
    assert_non_null(want);
    memcpy(want, rep('a', 100), 100);
    memcpy(want + 100, rep('b', 2000), 2000);
    want[2100] = '\0';
    assert_stream(f, want);
    assert_int_equal(f->out->gap_bytes, 10 + 100);
    free(want);
    fx_free(f);
}

static void test_ack_beyond_next(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, rep('x', 10), false, 1000);
    assert_false(reasm_has_hole(&f->rs));
    reasm_ack(&f->rs, 11, 1500); /* acknowledges what was seen */
    assert_false(reasm_has_hole(&f->rs));
    reasm_ack(&f->rs, 31, 5000); /* 11..30 never captured */
    assert_true(reasm_has_hole(&f->rs));
    assert_int_equal(reasm_hole_deadline(&f->rs, &TMO), 5000 + 100);
    /* A later, higher ACK does not move the deadline. */
    reasm_ack(&f->rs, 41, 5050);
    assert_int_equal(reasm_hole_deadline(&f->rs, &TMO), 5000 + 100);
    assert_int_equal(reasm_skip_holes(&f->rs, 5099, &TMO, &f->budget,
                                      &f->sink),
                     0);
    assert_int_equal(f->out->gaps, 0);
    assert_int_equal(reasm_skip_holes(&f->rs, 5100, &TMO, &f->budget,
                                      &f->sink),
                     1);
    assert_int_equal(f->out->gap_bytes, 30);
    assert_false(reasm_has_hole(&f->rs));
    push(f, 41, "next", false, 5200);
    assert_stream(f, "xxxxxxxxxxnext");
    fx_free(f);
}

static void test_ack_hole_with_queued_data(void **state)
{
    (void)state;
    /* Queued data inside the acknowledged range: the skip stops at it,
     * delivers it, then the rest up to the ACK is skipped. */
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 21, "QUEUED", false, 100);
    reasm_ack(&f->rs, 51, 200);
    assert_int_equal(reasm_hole_deadline(&f->rs, &TMO), 300);
    assert_int_equal(reasm_skip_holes(&f->rs, 299, &TMO, &f->budget,
                                      &f->sink),
                     0);
    assert_int_equal(reasm_skip_holes(&f->rs, 300, &TMO, &f->budget,
                                      &f->sink),
                     2);
    assert_stream(f, "QUEUED");
    assert_int_equal(f->out->nev, 3);
    assert_int_equal(f->out->ev[0].len, 20);
    assert_int_equal(f->out->ev[2].len, 24);
    assert_int_equal(f->rs.next, 51);
    fx_free(f);
}

static void test_hole_deadline_without_ack(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "ab", false, 100);
    push(f, 11, "later", false, 2000);
    assert_true(reasm_has_hole(&f->rs));
    assert_int_equal(reasm_hole_deadline(&f->rs, &TMO), 2000 + 100);
    /* More data behind the hole does not postpone it. */
    push(f, 21, "more", false, 2050);
    assert_int_equal(reasm_hole_deadline(&f->rs, &TMO), 2000 + 100);
    /* Data queued before the first one inherits the oldest arrival. */
    push(f, 6, "xy", false, 2080);
    assert_int_equal(reasm_hole_deadline(&f->rs, &TMO), 2000 + 100);
    assert_int_equal(reasm_skip_holes(&f->rs, 2099, &TMO, &f->budget,
                                      &f->sink),
                     0);
    assert_stream(f, "ab");
    assert_true(reasm_skip_holes(&f->rs, 2100, &TMO, &f->budget,
                                 &f->sink) >= 1);
    assert_int_equal(f->out->gaps, 3);
    assert_stream(f, "abxylatermore");
    assert_int_equal(f->budget.used, 0);
    fx_free(f);
}

static void test_hole_deadline_receiver_waiting(void **state)
{
    (void)state;
    /* ACKs are captured and stop short of the hole: the receiver waits
     * for a retransmission too, so the hole gets the longer wait. */
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "ab", false, 100);
    reasm_ack(&f->rs, 3, 150);
    push(f, 11, "later", false, 2000);
    assert_true(reasm_has_hole(&f->rs));
    assert_int_equal(reasm_hole_deadline(&f->rs, &TMO), 2000 + 1000);
    assert_int_equal(reasm_skip_holes(&f->rs, 2100, &TMO, &f->budget,
                                      &f->sink),
                     0);
    assert_int_equal(reasm_skip_holes(&f->rs, 2999, &TMO, &f->budget,
                                      &f->sink),
                     0);
    assert_stream(f, "ab");
    /* The retransmission arrives in time. */
    push(f, 3, "cdefghij", false, 2500);
    assert_stream(f, "abcdefghijlater");
    assert_int_equal(f->out->gaps, 0);
    fx_free(f);

    /* Or it does not, and the hole is skipped at arrival + rtx. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    reasm_ack(&f->rs, 1, 50);
    push(f, 11, "later", false, 2000);
    assert_int_equal(reasm_skip_holes(&f->rs, 3000, &TMO, &f->budget,
                                      &f->sink),
                     1);
    assert_int_equal(f->out->gap_bytes, 10);
    assert_stream(f, "later");
    fx_free(f);
}

static void test_skip_all_without_timeouts(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 11, "one", false, 1);
    push(f, 21, "two", false, 2);
    push(f, 31, "three", false, 3);
    assert_int_equal(reasm_skip_holes(&f->rs, 0, NULL, &f->budget, &f->sink),
                     3);
    assert_stream(f, "onetwothree");
    assert_int_equal(f->out->gap_bytes, 10 + 7 + 7);
    assert_false(reasm_has_hole(&f->rs));
    assert_int_equal(f->budget.used, 0);
    assert_int_equal(f->rs.queued, 0);
    /* Nothing left: nothing skipped. */
    assert_int_equal(reasm_skip_holes(&f->rs, 0, NULL, &f->budget, &f->sink),
                     0);
    fx_free(f);
}

static void test_skip_reaches_fin(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "data", false, 1);
    push(f, 21, "", true, 5); /* FIN at 21: 5..20 missing */
    assert_false(reasm_done(&f->rs));
    assert_true(reasm_has_hole(&f->rs));
    assert_int_equal(reasm_hole_deadline(&f->rs, &TMO), 5 + 100);
    assert_int_equal(reasm_skip_holes(&f->rs, 104, &TMO, &f->budget,
                                      &f->sink),
                     0);
    assert_int_equal(reasm_skip_holes(&f->rs, 105, &TMO, &f->budget,
                                      &f->sink),
                     1);
    assert_int_equal(f->out->gap_bytes, 16);
    assert_true(reasm_done(&f->rs));
    assert_false(reasm_has_hole(&f->rs));
    fx_free(f);

    /* Queued data between the hole and the FIN. */
    f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 11, "tail", true, 1);
    assert_int_equal(reasm_skip_holes(&f->rs, 0, NULL, &f->budget, &f->sink),
                     1);
    assert_stream(f, "tail");
    assert_true(reasm_done(&f->rs));
    fx_free(f);
}

static void test_discard(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "ok", false, 1);
    push(f, 11, "abc", false, 2);
    push(f, 21, "defgh", false, 3);
    push_cut(f, 31, "ij", 10, 4);
    assert_true(f->budget.used > 0);
    assert_int_equal(reasm_discard(&f->rs, &f->budget), 3 + 5 + 2);
    assert_int_equal(f->budget.used, 0);
    assert_int_equal(f->rs.queued, 0);
    assert_false(reasm_has_hole(&f->rs));
    assert_stream(f, "ok");
    assert_int_equal(reasm_discard(&f->rs, &f->budget), 0);
    /* The stream goes on after a discard. */
    push(f, 3, "xy", false, 5);
    assert_stream(f, "okxy");
    fx_free(f);
}

static void test_budget_shared(void **state)
{
    (void)state;
    /* Two streams share a budget; it returns to zero once both deliver. */
    struct fx *f = fx_new();
    struct reasm other;
    reasm_init_syn(&f->rs, 0);
    reasm_init_syn(&other, 500);
    push(f, 11, "aaaa", false, 1);
    reasm_push(&other, 511, (const uint8_t *)"bbbb", 4, 4, false, 1,
               f->flow_cap, &f->budget, &f->sink);
    size_t both = f->budget.used;
    assert_true(both >= 8);
    push(f, 1, "0123456789", false, 2);
    assert_true(f->budget.used < both);
    assert_true(f->budget.used > 0);
    reasm_push(&other, 501, (const uint8_t *)"0123456789", 10, 10, false, 2,
               f->flow_cap, &f->budget, &f->sink);
    assert_int_equal(f->budget.used, 0);
    fx_free(f);
}

static void test_far_ack_ignored(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "abc", false, 1);
    reasm_ack(&f->rs, 4 + (1u << 30) + 1, 2);
    assert_false(reasm_has_hole(&f->rs));
    reasm_ack(&f->rs, 4u - (1u << 30) - 1, 3);
    assert_false(reasm_has_hole(&f->rs));
    assert_int_equal(reasm_skip_holes(&f->rs, 1u << 31, NULL, &f->budget,
                                      &f->sink),
                     0);
    assert_int_equal(f->out->gaps, 0);
    /* An ACK a thousand bytes on is believed. */
    reasm_ack(&f->rs, 4 + 1000, 4);
    assert_true(reasm_has_hole(&f->rs));
    fx_free(f);
}

static void test_ack_of_fin_makes_no_hole(void **state)
{
    (void)state;
    /* The FIN's own sequence number is acknowledged but never data. */
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 1, "abc", true, 1);
    assert_true(reasm_done(&f->rs));
    reasm_ack(&f->rs, 5, 2);
    assert_false(reasm_has_hole(&f->rs));
    assert_int_equal(f->out->gaps, 0);
    fx_free(f);
}

static void test_ack_before_start_ignored(void **state)
{
    (void)state;
    struct reasm r;
    memset(&r, 0, sizeof(r));
    reasm_ack(&r, 100, 1); /* not started: nothing to say */
    assert_false(reasm_has_hole(&r));
}

/* Queues `n` one-byte pieces at 2, 4, ... 2n after a SYN at 0, each
 * behind a hole of one byte. */
static void queue_pieces(struct fx *f, uint32_t n)
{
    reasm_init_syn(&f->rs, 0);
    for (uint32_t i = 1; i <= n; i++) {
        push(f, 2 * i, "x", false, i);
    }
    assert_int_equal(f->rs.nsegs, n);
    assert_int_equal(f->out->len, 0);
}

/* Finding where a segment goes walks the queue from its nearer end, so a
 * copy of a piece near either end of a long queue costs a few steps,
 * however long the queue (the walk from the head cost ~4,000 per copy
 * near the tail). */
static void test_insert_searches_from_nearer_end(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    queue_pieces(f, 4000);
    uint64_t before = f->budget.search_steps;
    for (int i = 0; i < 60; i++) {
        push(f, 2 * 3990, "y", false, 5000); /* near the tail */
    }
    for (int i = 0; i < 30; i++) {
        push(f, 2 * 10, "y", false, 5000); /* near the head */
    }
    uint64_t steps = f->budget.search_steps - before;
    if (steps > 90 * 16) {
        fail_msg("90 copies cost %llu search steps",
                 (unsigned long long)steps);
    }
    /* A new piece in a hole near the tail: found from the tail too. */
    before = f->budget.search_steps;
    push(f, 2 * 3995 + 1, "z", false, 5001);
    assert_true(f->budget.search_steps - before <= 16);
    assert_int_equal(f->rs.nsegs, 4001);
    /* The first copy won, and every piece is where it belongs. */
    push(f, 1, "a", false, 5002);
    assert_stream(f, "ax");
    fx_free(f);
}

/* Copies of queued bytes count towards REASM_MAX_SEGS: a sender that
 * repeats a queued segment forever cannot keep the queue, and the work
 * each copy costs, alive; past the cap each copy skips a hole, until the
 * copied bytes are delivered and copies of them cost nothing. */
static void test_duplicates_count_towards_cap(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    queue_pieces(f, 100);
    uint32_t copies = REASM_MAX_SEGS - 100;
    for (uint32_t i = 0; i < copies; i++) {
        push(f, 2 * 50, "y", false, 200);
    }
    assert_int_equal(f->out->gaps, 0);
    assert_int_equal(f->rs.dups, copies);
    push(f, 2 * 50, "y", false, 201); /* one more: over the cap */
    assert_int_equal(f->out->gaps, 1);
    assert_int_equal(f->rs.nsegs, 99);
    assert_stream(f, "x");
    for (int i = 0; i < 100; i++) {
        push(f, 2 * 50, "y", false, 202);
    }
    /* The 50th piece was delivered at the 50th copy past the cap. */
    assert_int_equal(f->out->gaps, 50);
    assert_int_equal(f->rs.nsegs, 50);
    assert_stream(f, rep('x', 50));
    /* A queue that empties forgets the copies. */
    push(f, 101, "a", false, 203);
    reasm_skip_holes(&f->rs, 0, NULL, &f->budget, &f->sink);
    assert_null(f->rs.head);
    assert_int_equal(f->rs.dups, 0);
    push(f, 2 * 200, "n", false, 204);
    push(f, 2 * 200, "n", false, 205);
    assert_int_equal(f->rs.dups, 1);
    fx_free(f);
}

/* Delivering the head leaves the next piece first: the walk back from
 * the tail must stop there, not step into the delivered (freed) piece.
 * A live capture with loss crashed on this. */
static void test_walk_back_stops_at_new_head(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    reasm_init_syn(&f->rs, 0);
    push(f, 101, "aaaaaaaaaa", false, 1);  /* [101, 111) */
    push(f, 201, "bbbbbbbbbb", false, 2);  /* [201, 211) */
    assert_null(reasm_check(&f->rs));
    /* Fills [1, 101): delivers through 111; [201, 211) is the head. */
    push(f, 1, rep('x', 100), false, 3);
    assert_null(reasm_check(&f->rs));
    assert_int_equal(f->rs.next, 111);
    assert_int_equal(f->rs.nsegs, 1);
    /* Far enough from `next` to search from the tail, and before the
     * tail: the walk goes back past the head. */
    push(f, 171, "cccccccccc", false, 4);
    assert_null(reasm_check(&f->rs));
    assert_int_equal(f->rs.nsegs, 2);
    push(f, 111, rep('y', 60), false, 5);
    push(f, 181, rep('z', 20), false, 6);
    assert_null(reasm_check(&f->rs));
    assert_null(f->rs.head);
    assert_int_equal(f->out->len, 210);
    assert_int_equal(f->out->gaps, 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syn_then_in_order),
        cmocka_unit_test(test_mid_stream_init),
        cmocka_unit_test(test_out_of_order_waits),
        cmocka_unit_test(test_reverse_order),
        cmocka_unit_test(test_exact_duplicate),
        cmocka_unit_test(test_retransmission_trimmed),
        cmocka_unit_test(test_first_copy_wins_delivered),
        cmocka_unit_test(test_first_copy_wins_queued),
        cmocka_unit_test(test_segment_spanning_queued),
        cmocka_unit_test(test_sequence_wrap),
        cmocka_unit_test(test_fin_completes),
        cmocka_unit_test(test_fin_before_data),
        cmocka_unit_test(test_data_beyond_fin_ignored),
        cmocka_unit_test(test_cut_record),
        cmocka_unit_test(test_flow_cap_skips_hole),
        cmocka_unit_test(test_budget_limit_skips_hole),
        cmocka_unit_test(test_ack_beyond_next),
        cmocka_unit_test(test_ack_hole_with_queued_data),
        cmocka_unit_test(test_hole_deadline_without_ack),
        cmocka_unit_test(test_hole_deadline_receiver_waiting),
        cmocka_unit_test(test_skip_all_without_timeouts),
        cmocka_unit_test(test_skip_reaches_fin),
        cmocka_unit_test(test_discard),
        cmocka_unit_test(test_budget_shared),
        cmocka_unit_test(test_far_ack_ignored),
        cmocka_unit_test(test_ack_of_fin_makes_no_hole),
        cmocka_unit_test(test_ack_before_start_ignored),
        cmocka_unit_test(test_insert_searches_from_nearer_end),
        cmocka_unit_test(test_duplicates_count_towards_cap),
        cmocka_unit_test(test_walk_back_stops_at_new_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
