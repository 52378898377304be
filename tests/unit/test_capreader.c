/* Unit tests of capreader.c: the incremental pcap/pcapng reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/capreader.h"
#include "core/decode.h"
#include "pktbuild.h"

/* ---- collecting items ---- */

struct rec {
    enum cap_item_kind kind;
    int linktype;
    uint32_t iface;
    uint64_t ts_ns;
    uint32_t caplen, wirelen;
    uint8_t *data;
    uint8_t *raw;
    size_t raw_len;
};

struct recs {
    struct rec v[64];
    size_t n;
    int last;          /* the status that ended reading */
    char err[256];
    size_t pending;
};

static void recs_free(struct recs *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].data);
        free(r->v[i].raw);
    }
    r->n = 0;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

static void keep(struct recs *out, const struct cap_item *it)
{
    assert_true(out->n < sizeof(out->v) / sizeof(out->v[0]));
    struct rec *r = &out->v[out->n++];
    r->kind = it->kind;
    r->linktype = it->linktype;
    r->iface = it->iface;
    r->ts_ns = it->ts_ns;
    r->caplen = it->caplen;
    r->wirelen = it->wirelen;
    r->data = it->kind == CAP_ITEM_PACKET ? dup_bytes(it->data, it->caplen)
                                          : NULL;
    r->raw = dup_bytes(it->raw, it->raw_len);
    r->raw_len = it->raw_len;
}

/*
 * Feeds `buf` in chunks of `chunk` bytes, each in its own allocation that
 * is freed as soon as the reader says NEED_MORE (so that a reader keeping
 * a pointer into an old chunk is caught by valgrind), and collects every
 * item until the end or an error.
 */
static void read_chunked(const uint8_t *buf, size_t len, size_t chunk,
                         struct recs *out)
{
    memset(out, 0, sizeof(*out));
    struct capreader *r = capreader_new();
    size_t pos = 0;
    int st = CAPREADER_NEED_MORE;
    while (pos < len) {
        size_t n = len - pos < chunk ? len - pos : chunk;
        uint8_t *c = dup_bytes(buf + pos, n);
        pos += n;
        capreader_push(r, c, n);
        struct cap_item it;
        while ((st = capreader_next(r, &it)) == CAPREADER_ITEM) {
            keep(out, &it);
        }
        free(c);
        if (st == CAPREADER_ERROR) {
            break;
        }
    }
    out->last = st;
    snprintf(out->err, sizeof(out->err), "%s",
             st == CAPREADER_ERROR ? capreader_error(r) : "");
    out->pending = capreader_pending(r);
    capreader_free(r);
}

static void assert_same_items(const struct recs *a, const struct recs *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->last, b->last);
    for (size_t i = 0; i < a->n; i++) {
        const struct rec *x = &a->v[i], *y = &b->v[i];
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->linktype, y->linktype);
        assert_int_equal(x->iface, y->iface);
        assert_int_equal(x->ts_ns, y->ts_ns);
        assert_int_equal(x->caplen, y->caplen);
        assert_int_equal(x->wirelen, y->wirelen);
        assert_int_equal(x->raw_len, y->raw_len);
        assert_memory_equal(x->raw, y->raw, x->raw_len);
        if (x->kind == CAP_ITEM_PACKET && x->caplen > 0) {
            assert_memory_equal(x->data, y->data, x->caplen);
        }
    }
}

/* Reads a whole buffer pushed at once. */
static struct capreader *read_all(const uint8_t *buf, size_t len,
                                  struct cap_item *items, size_t max,
                                  size_t *n, int *last)
{
    struct capreader *r = capreader_new();
    capreader_push(r, buf, len);
    *n = 0;
    int st;
    struct cap_item it;
    while ((st = capreader_next(r, &it)) == CAPREADER_ITEM) {
        assert_true(*n < max);
        items[(*n)++] = it; /* pointers stay in `buf`: pushed whole */
    }
    *last = st;
    return r;
}

static const uint8_t PKT_A[] = "first packet bytes";
static const uint8_t PKT_B[] = "second, a little longer packet";

/* ---- pcap ---- */

static void pcap_two_packets(struct pb_buf *b, uint32_t magic, bool be)
{
    pb_pcap_header(b, magic, be, 65535, LINKTYPE_ETHERNET);
    bool mod = magic == PB_PCAP_MAGIC_MODIFIED;
    pb_pcap_record(b, be, mod, 1700000000u, 123456u, sizeof(PKT_A),
                   sizeof(PKT_A), PKT_A);
    pb_pcap_record(b, be, mod, 1700000001u, 999999u, sizeof(PKT_B),
                   sizeof(PKT_B) + 100, PKT_B);
}

static void check_pcap(uint32_t magic, bool be, uint64_t ts0, uint64_t ts1)
{
    struct pb_buf b = {0};
    pcap_two_packets(&b, magic, be);
    size_t hl = magic == PB_PCAP_MAGIC_MODIFIED ? 24 : 16;
    struct cap_item items[8];
    size_t n;
    int last;
    struct capreader *r = read_all(b.p, b.len, items, 8, &n, &last);
    assert_int_equal(last, CAPREADER_NEED_MORE);
    assert_int_equal(n, 3);
    assert_int_equal(capreader_format(r), CAP_FORMAT_PCAP);
    assert_int_equal(capreader_linktype(r), LINKTYPE_ETHERNET);
    assert_int_equal(capreader_snaplen(r), 65535);
    assert_int_equal(capreader_pending(r), 0);
    assert_int_equal(capreader_anomalies(r), 0);
    assert_int_equal(capreader_offset(r), b.len);

    assert_int_equal(items[0].kind, CAP_ITEM_HEADER);
    assert_ptr_equal(items[0].raw, b.p);
    assert_int_equal(items[0].raw_len, 24);

    assert_int_equal(items[1].kind, CAP_ITEM_PACKET);
    assert_ptr_equal(items[1].raw, b.p + 24);
    assert_int_equal(items[1].raw_len, hl + sizeof(PKT_A));
    assert_ptr_equal(items[1].data, b.p + 24 + hl);
    assert_int_equal(items[1].caplen, sizeof(PKT_A));
    assert_int_equal(items[1].wirelen, sizeof(PKT_A));
    assert_int_equal(items[1].linktype, LINKTYPE_ETHERNET);
    assert_int_equal(items[1].ts_ns, ts0);
    assert_memory_equal(items[1].data, PKT_A, sizeof(PKT_A));

    size_t off2 = 24 + hl + sizeof(PKT_A);
    assert_int_equal(items[2].kind, CAP_ITEM_PACKET);
    assert_ptr_equal(items[2].raw, b.p + off2);
    assert_int_equal(items[2].raw_len, hl + sizeof(PKT_B));
    assert_ptr_equal(items[2].data, b.p + off2 + hl);
    assert_int_equal(items[2].caplen, sizeof(PKT_B));
    assert_int_equal(items[2].wirelen, sizeof(PKT_B) + 100);
    assert_int_equal(items[2].ts_ns, ts1);
    assert_memory_equal(items[2].data, PKT_B, sizeof(PKT_B));
    capreader_free(r);
    pb_free(&b);
}

static void test_pcap_micro_le(void **state)
{
    (void)state;
    check_pcap(PB_PCAP_MAGIC_US, false, 1700000000123456000ULL,
               1700000001999999000ULL);
}

static void test_pcap_micro_be(void **state)
{
    (void)state;
    check_pcap(PB_PCAP_MAGIC_US, true, 1700000000123456000ULL,
               1700000001999999000ULL);
}

static void test_pcap_nano_le(void **state)
{
    (void)state;
    check_pcap(PB_PCAP_MAGIC_NS, false, 1700000000000123456ULL,
               1700000001000999999ULL);
}

static void test_pcap_nano_be(void **state)
{
    (void)state;
    check_pcap(PB_PCAP_MAGIC_NS, true, 1700000000000123456ULL,
               1700000001000999999ULL);
}

static void test_pcap_modified_format(void **state)
{
    (void)state;
    check_pcap(PB_PCAP_MAGIC_MODIFIED, false, 1700000000123456000ULL,
               1700000001999999000ULL);
    check_pcap(PB_PCAP_MAGIC_MODIFIED, true, 1700000000123456000ULL,
               1700000001999999000ULL);
}

static void test_pcap_linktype_and_snaplen(void **state)
{
    (void)state;
    /* Link type with FCS bits in the upper half; another snap length. */
    struct pb_buf b = {0};
    pb_pcap_header(&b, PB_PCAP_MAGIC_US, true, 262144,
                   0x14000000u | LINKTYPE_LINUX_SLL2);
    pb_pcap_record(&b, true, false, 1, 2, 4, 4, "abcd");
    struct cap_item items[4];
    size_t n;
    int last;
    struct capreader *r = read_all(b.p, b.len, items, 4, &n, &last);
    assert_int_equal(n, 2);
    assert_int_equal(capreader_linktype(r), LINKTYPE_LINUX_SLL2);
    assert_int_equal(capreader_snaplen(r), 262144);
    assert_int_equal(items[1].linktype, LINKTYPE_LINUX_SLL2);
    assert_int_equal(items[1].ts_ns, 1000002000ULL);
    capreader_free(r);
    pb_free(&b);
}

static void test_pcap_before_header(void **state)
{
    (void)state;
    struct capreader *r = capreader_new();
    assert_int_equal(capreader_linktype(r), -1);
    assert_int_equal(capreader_snaplen(r), 0);
    assert_int_equal(capreader_format(r), CAP_FORMAT_UNKNOWN);
    assert_int_equal(capreader_pending(r), 0);
    capreader_free(r);
}

static void test_pcap_bad_version(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_pcap_header(&b, PB_PCAP_MAGIC_US, false, 65535, 1);
    b.p[4] = 3; /* major version 3 */
    struct cap_item items[4];
    size_t n;
    int last;
    struct capreader *r = read_all(b.p, b.len, items, 4, &n, &last);
    assert_int_equal(last, CAPREADER_ERROR);
    assert_non_null(strstr(capreader_error(r), "version"));
    capreader_free(r);
    pb_free(&b);
}

/* A pcap stream with assorted records, including empty ones. */
static void build_pcap_mix(struct pb_buf *b, uint32_t magic, bool be)
{
    bool mod = magic == PB_PCAP_MAGIC_MODIFIED;
    uint8_t big[700];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 13 + 1);
    }
    pb_pcap_header(b, magic, be, 65535, LINKTYPE_ETHERNET);
    pb_pcap_record(b, be, mod, 10, 1, sizeof(PKT_A), sizeof(PKT_A), PKT_A);
    pb_pcap_record(b, be, mod, 10, 2, 0, 0, NULL);
    pb_pcap_record(b, be, mod, 10, 3, sizeof(big), 1500, big);
    pb_pcap_record(b, be, mod, 11, 4, 1, 1, "z");
    pb_pcap_record(b, be, mod, 12, 5, 0, 60, NULL);
    pb_pcap_record(b, be, mod, 13, 6, sizeof(PKT_B), sizeof(PKT_B), PKT_B);
}

static void check_all_chunk_sizes(const struct pb_buf *b, size_t expect)
{
    struct recs whole, part;
    read_chunked(b->p, b->len, b->len, &whole);
    assert_int_equal(whole.n, expect);
    assert_int_equal(whole.last, CAPREADER_NEED_MORE);
    assert_int_equal(whole.pending, 0);
    for (size_t chunk = 1; chunk <= b->len; chunk++) {
        read_chunked(b->p, b->len, chunk, &part);
        if (part.n != whole.n) {
            fail_msg("chunk size %zu: %zu items, want %zu (%s)", chunk,
                     part.n, whole.n, part.err);
        }
        assert_same_items(&whole, &part);
        assert_int_equal(part.pending, 0);
        recs_free(&part);
    }
    recs_free(&whole);
}

static void test_pcap_every_chunk_size(void **state)
{
    (void)state;
    static const uint32_t magics[] = {PB_PCAP_MAGIC_US, PB_PCAP_MAGIC_NS,
                                      PB_PCAP_MAGIC_MODIFIED};
    for (size_t m = 0; m < 3; m++) {
        for (int be = 0; be < 2; be++) {
            struct pb_buf b = {0};
            build_pcap_mix(&b, magics[m], be != 0);
            check_all_chunk_sizes(&b, 7);
            pb_free(&b);
        }
    }
}

static void test_pcap_zero_length_records(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_pcap_header(&b, PB_PCAP_MAGIC_US, false, 65535, 1);
    pb_pcap_record(&b, false, false, 5, 0, 0, 0, NULL);
    pb_pcap_record(&b, false, false, 6, 0, 0, 54, NULL);
    pb_pcap_record(&b, false, false, 7, 0, 2, 2, "ok");
    struct cap_item items[8];
    size_t n;
    int last;
    struct capreader *r = read_all(b.p, b.len, items, 8, &n, &last);
    assert_int_equal(n, 4);
    assert_int_equal(items[1].caplen, 0);
    assert_int_equal(items[1].wirelen, 0);
    assert_int_equal(items[1].raw_len, 16);
    assert_int_equal(items[1].ts_ns, 5000000000ULL);
    assert_int_equal(items[2].caplen, 0);
    assert_int_equal(items[2].wirelen, 54);
    assert_int_equal(items[3].caplen, 2);
    assert_memory_equal(items[3].data, "ok", 2);
    assert_int_equal(capreader_pending(r), 0);
    capreader_free(r);
    pb_free(&b);
}

static void test_pcap_pending(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pcap_two_packets(&b, PB_PCAP_MAGIC_US, false);
    /* Whole stream: nothing pending. Stream cut inside the last record's
     * data, or inside its header: pending. */
    struct recs r;
    read_chunked(b.p, b.len, 7, &r);
    assert_int_equal(r.pending, 0);
    assert_int_equal(r.n, 3);
    recs_free(&r);

    size_t cut_points[] = {b.len - 1, b.len - sizeof(PKT_B) - 3,
                           24 + 16 + sizeof(PKT_A) + 5};
    for (size_t i = 0; i < 3; i++) {
        for (size_t chunk = 1; chunk <= b.len; chunk += 5) {
            read_chunked(b.p, cut_points[i], chunk, &r);
            assert_int_equal(r.last, CAPREADER_NEED_MORE);
            assert_int_equal(r.n, 2);
            assert_true(r.pending > 0);
            recs_free(&r);
        }
    }
    /* Pushed all at once. */
    struct capreader *cr = capreader_new();
    capreader_push(cr, b.p, b.len - 1);
    struct cap_item it;
    assert_int_equal(capreader_next(cr, &it), CAPREADER_ITEM);
    assert_int_equal(capreader_next(cr, &it), CAPREADER_ITEM);
    assert_int_equal(capreader_next(cr, &it), CAPREADER_NEED_MORE);
    assert_int_equal(capreader_pending(cr), 16 + sizeof(PKT_B) - 1);
    /* The last byte completes it: once returned, nothing is pending. */
    capreader_push(cr, b.p + b.len - 1, 1);
    assert_int_equal(capreader_next(cr, &it), CAPREADER_ITEM);
    assert_int_equal(it.caplen, sizeof(PKT_B));
    assert_memory_equal(it.data, PKT_B, sizeof(PKT_B));
    assert_int_equal(capreader_pending(cr), 0);
    assert_int_equal(capreader_next(cr, &it), CAPREADER_NEED_MORE);
    assert_int_equal(capreader_pending(cr), 0);
    capreader_free(cr);
    pb_free(&b);
}

static void test_empty_input(void **state)
{
    (void)state;
    struct capreader *r = capreader_new();
    struct cap_item it;
    assert_int_equal(capreader_next(r, &it), CAPREADER_NEED_MORE);
    capreader_push(r, (const uint8_t *)"", 0);
    assert_int_equal(capreader_next(r, &it), CAPREADER_NEED_MORE);
    assert_int_equal(capreader_pending(r), 0);
    assert_int_equal(capreader_format(r), CAP_FORMAT_UNKNOWN);
    capreader_free(r);
}

static void test_wrong_magic(void **state)
{
    (void)state;
    static const uint8_t junk[32] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02};
    for (size_t chunk = 1; chunk <= sizeof(junk); chunk *= 2) {
        struct recs r;
        read_chunked(junk, sizeof(junk), chunk, &r);
        assert_int_equal(r.last, CAPREADER_ERROR);
        assert_int_equal(r.n, 0);
        assert_non_null(strstr(r.err, "not a pcap or pcapng"));
        recs_free(&r);
    }
}

static void test_text_input(void **state)
{
    (void)state;
    static const char text[] =
        "error: unable to upgrade connection: pod not found\nmore\n";
    struct capreader *r = capreader_new();
    capreader_push(r, (const uint8_t *)text, sizeof(text) - 1);
    struct cap_item it;
    assert_int_equal(capreader_next(r, &it), CAPREADER_ERROR);
    const char *msg = capreader_error(r);
    assert_non_null(strstr(msg, "not a pcap or pcapng"));
    assert_non_null(strstr(msg, "\"error: unable to upgrade"));
    /* Only the first line is quoted, and there is no newline. */
    assert_null(strstr(msg, "more"));
    assert_null(strchr(msg, '\n'));
    capreader_free(r);
}

static void test_truncated_global_header(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_pcap_header(&b, PB_PCAP_MAGIC_US, false, 65535, 1);
    static const size_t lens[] = {1, 3, 4, 10, 23};
    for (size_t i = 0; i < 5; i++) {
        struct capreader *r = capreader_new();
        capreader_push(r, b.p, lens[i]);
        struct cap_item it;
        assert_int_equal(capreader_next(r, &it), CAPREADER_NEED_MORE);
        assert_int_equal(capreader_pending(r), lens[i]);
        capreader_free(r);
    }
    pb_free(&b);
}

static void test_huge_caplen_rejected(void **state)
{
    (void)state;
    /* Only the record header is present: the length alone must be
     * refused, before any attempt to gather 4 GiB. */
    struct pb_buf b = {0};
    pb_pcap_header(&b, PB_PCAP_MAGIC_US, false, 65535, 1);
    uint8_t *h = pb_grow(&b, 16);
    pb_w32(h + 8, 0xffffffffu, false);
    pb_w32(h + 12, 0xffffffffu, false);
    for (size_t chunk = 1; chunk <= b.len; chunk++) {
        struct recs r;
        read_chunked(b.p, b.len, chunk, &r);
        assert_int_equal(r.last, CAPREADER_ERROR);
        assert_int_equal(r.n, 1); /* the header */
        assert_non_null(strstr(r.err, "4294967295"));
        recs_free(&r);
    }
    /* Just above the largest snap length, with a small snap length. */
    pb_w32(b.p + 24 + 8, 262145, false);
    struct recs r;
    read_chunked(b.p, b.len, b.len, &r);
    assert_int_equal(r.last, CAPREADER_ERROR);
    recs_free(&r);
    pb_free(&b);
}

static void test_caplen_bound_with_huge_snaplen(void **state)
{
    (void)state;
    /* Regression: with a file header claiming snap length 0xffffffff the
     * per-record bound becomes 4 GiB, so a record of 64 MiB (or 4 GiB)
     * is gathered into the carry buffer, breaking the header's promise
     * that the carry is bounded by CAPREADER_MAX_ITEM (16 MiB) and letting
     * a corrupt or hostile stream make the reader allocate gigabytes.
     * Expected: CAPREADER_ERROR as soon as the record header is read. */
    struct pb_buf b = {0};
    pb_pcap_header(&b, PB_PCAP_MAGIC_US, false, 0xffffffffu, 1);
    uint8_t *h = pb_grow(&b, 16);
    pb_w32(h + 8, 64u << 20, false);
    pb_w32(h + 12, 64u << 20, false);
    struct recs r;
    read_chunked(b.p, b.len, b.len, &r);
    size_t n = r.n;
    int last = r.last;
    recs_free(&r); /* before asserting: a failure must not leak */
    pb_free(&b);
    assert_int_equal(n, 1);
    assert_int_equal(last, CAPREADER_ERROR);
}

static void test_caplen_above_snaplen_accepted(void **state)
{
    (void)state;
    uint8_t data[200];
    memset(data, 0x5a, sizeof(data));
    struct pb_buf b = {0};
    pb_pcap_header(&b, PB_PCAP_MAGIC_US, false, 100, 1);
    pb_pcap_record(&b, false, false, 1, 0, 50, 50, data);
    pb_pcap_record(&b, false, false, 1, 1, 200, 200, data);
    struct cap_item items[4];
    size_t n;
    int last;
    struct capreader *r = read_all(b.p, b.len, items, 4, &n, &last);
    assert_int_equal(last, CAPREADER_NEED_MORE);
    assert_int_equal(n, 3);
    assert_int_equal(items[2].caplen, 200);
    assert_memory_equal(items[2].data, data, 200);
    assert_int_equal(capreader_anomalies(r), 1);
    capreader_free(r);
    pb_free(&b);

    /* Up to the 262144 maximum, even with a snap length of 100. */
    uint8_t *big = calloc(1, 262144);
    assert_non_null(big);
    struct pb_buf c = {0};
    pb_pcap_header(&c, PB_PCAP_MAGIC_US, false, 100, 1);
    pb_pcap_record(&c, false, false, 1, 0, 262144, 262144, big);
    r = read_all(c.p, c.len, items, 4, &n, &last);
    assert_int_equal(last, CAPREADER_NEED_MORE);
    assert_int_equal(n, 2);
    assert_int_equal(items[1].caplen, 262144);
    assert_int_equal(capreader_anomalies(r), 1);
    capreader_free(r);
    /* Split across two chunks (so it goes through the carry buffer). */
    struct recs parts;
    read_chunked(c.p, c.len, c.len / 2, &parts);
    assert_int_equal(parts.n, 2);
    assert_int_equal(parts.v[1].caplen, 262144);
    recs_free(&parts);
    pb_free(&c);
    free(big);
}

static void test_caplen_above_wirelen(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_pcap_header(&b, PB_PCAP_MAGIC_US, false, 65535, 1);
    pb_pcap_record(&b, false, false, 1, 0, 10, 4, "0123456789");
    struct cap_item items[4];
    size_t n;
    int last;
    struct capreader *r = read_all(b.p, b.len, items, 4, &n, &last);
    assert_int_equal(n, 2);
    assert_int_equal(items[1].caplen, 10);
    assert_int_equal(items[1].wirelen, 10);
    assert_int_equal(capreader_anomalies(r), 1);
    capreader_free(r);
    pb_free(&b);
}

/* ---- pcapng ---- */

static void test_pcapng_basic(void **state)
{
    (void)state;
    for (int be = 0; be < 2; be++) {
        struct pb_buf b = {0};
        pb_ng_shb(&b, be);
        size_t idb_at = b.len;
        pb_ng_idb(&b, be, LINKTYPE_ETHERNET, 65535, 0, false, 0);
        size_t epb_at = b.len;
        pb_ng_epb(&b, be, 0, 1700000000123456ULL, sizeof(PKT_A),
                  sizeof(PKT_A) + 10, PKT_A);
        struct cap_item items[8];
        size_t n;
        int last;
        struct capreader *r = read_all(b.p, b.len, items, 8, &n, &last);
        assert_int_equal(last, CAPREADER_NEED_MORE);
        assert_int_equal(n, 3);
        assert_int_equal(capreader_format(r), CAP_FORMAT_PCAPNG);
        assert_int_equal(capreader_linktype(r), LINKTYPE_ETHERNET);
        assert_int_equal(capreader_snaplen(r), 65535);
        assert_int_equal(items[0].kind, CAP_ITEM_HEADER);
        assert_ptr_equal(items[0].raw, b.p);
        assert_int_equal(items[0].raw_len, idb_at);
        assert_int_equal(items[1].kind, CAP_ITEM_META);
        assert_ptr_equal(items[1].raw, b.p + idb_at);
        assert_int_equal(items[1].raw_len, epb_at - idb_at);
        assert_int_equal(items[2].kind, CAP_ITEM_PACKET);
        assert_ptr_equal(items[2].raw, b.p + epb_at);
        assert_int_equal(items[2].raw_len, b.len - epb_at);
        assert_ptr_equal(items[2].data, b.p + epb_at + 28);
        assert_int_equal(items[2].linktype, LINKTYPE_ETHERNET);
        assert_int_equal(items[2].iface, 0);
        assert_int_equal(items[2].caplen, sizeof(PKT_A));
        assert_int_equal(items[2].wirelen, sizeof(PKT_A) + 10);
        /* Default resolution: microseconds. */
        assert_int_equal(items[2].ts_ns, 1700000000123456000ULL);
        assert_memory_equal(items[2].data, PKT_A, sizeof(PKT_A));
        assert_int_equal(capreader_pending(r), 0);
        capreader_free(r);
        pb_free(&b);
    }
}

static uint64_t ng_one_ts(bool be, uint8_t tsresol, bool has_off,
                          int64_t off, uint64_t ts)
{
    struct pb_buf b = {0};
    pb_ng_shb(&b, be);
    pb_ng_idb(&b, be, LINKTYPE_RAW, 0, tsresol, has_off, off);
    pb_ng_epb(&b, be, 0, ts, 4, 4, "abcd");
    struct cap_item items[8];
    size_t n;
    int last;
    struct capreader *r = read_all(b.p, b.len, items, 8, &n, &last);
    assert_int_equal(last, CAPREADER_NEED_MORE);
    assert_int_equal(n, 3);
    assert_int_equal(items[2].linktype, LINKTYPE_RAW);
    uint64_t out = items[2].ts_ns;
    capreader_free(r);
    pb_free(&b);
    return out;
}

static void test_pcapng_tsresol_and_offset(void **state)
{
    (void)state;
    for (int be = 0; be < 2; be++) {
        /* 10^-9: nanoseconds as they are. */
        assert_int_equal(ng_one_ts(be, 9, false, 0, 1700000000123456789ULL),
                         1700000000123456789ULL);
        /* 10^-6 written explicitly. */
        assert_int_equal(ng_one_ts(be, 6, false, 0, 1500000ULL),
                         1500000000ULL);
        /* 10^-3. */
        assert_int_equal(ng_one_ts(be, 3, false, 0, 2500ULL),
                         2500000000ULL);
        /* 2^-20: 5.5 seconds. */
        uint64_t t = (5ULL << 20) | (1ULL << 19);
        assert_int_equal(ng_one_ts(be, 0x80 | 20, false, 0, t),
                         5500000000ULL);
        /* 2^-20 with one tick: 1e9 / 2^20 = 953.67 ns. */
        assert_int_equal(ng_one_ts(be, 0x80 | 20, false, 0, 1), 953);
        /* if_tsoffset: seconds added. */
        assert_int_equal(ng_one_ts(be, 0, true, 1000, 1500000ULL),
                         1001500000000ULL);
        assert_int_equal(ng_one_ts(be, 9, true, 1700000000, 42),
                         1700000000000000042ULL);
        /* Both together. */
        assert_int_equal(ng_one_ts(be, 0x80 | 20, true, 10, 1ULL << 20),
                         11000000000ULL);
        /* A negative if_tsoffset moves back... */
        assert_int_equal(ng_one_ts(be, 0x80, true, -10, 100), 90000000000ULL);
        /* ...but never before the epoch, and nothing wraps around. */
        assert_int_equal(ng_one_ts(be, 0x80, true, -1000, 5), 0);
        assert_int_equal(ng_one_ts(be, 0x80, true, INT64_MIN, 5), 0);
        assert_int_equal(ng_one_ts(be, 9, true, INT64_MAX, 1),
                         CAPREADER_TS_MAX_NS);
        assert_int_equal(ng_one_ts(be, 9, true, 10000000000LL, 1),
                         CAPREADER_TS_MAX_NS);
        assert_int_equal(ng_one_ts(be, 0, false, 0, 1ULL << 63),
                         CAPREADER_TS_MAX_NS);
        assert_int_equal(ng_one_ts(be, 9, false, 0, UINT64_MAX),
                         CAPREADER_TS_MAX_NS);
        assert_int_equal(ng_one_ts(be, 0x80 | 1, false, 0, UINT64_MAX),
                         CAPREADER_TS_MAX_NS);
        /* Just inside the range: kept as it is. */
        assert_int_equal(ng_one_ts(be, 9, false, 0, CAPREADER_TS_MAX_NS - 1),
                         CAPREADER_TS_MAX_NS - 1);
    }
}

static void test_pcapng_simple_packet_block(void **state)
{
    (void)state;
    for (int be = 0; be < 2; be++) {
        struct pb_buf b = {0};
        pb_ng_shb(&b, be);
        pb_ng_idb(&b, be, LINKTYPE_LINUX_SLL, 0, 0, false, 0);
        size_t spb_at = b.len;
        pb_ng_spb(&b, be, 7, "abcdefg", 7);
        struct cap_item items[8];
        size_t n;
        int last;
        struct capreader *r = read_all(b.p, b.len, items, 8, &n, &last);
        assert_int_equal(last, CAPREADER_NEED_MORE);
        assert_int_equal(n, 3);
        assert_int_equal(items[2].kind, CAP_ITEM_PACKET);
        assert_int_equal(items[2].linktype, LINKTYPE_LINUX_SLL);
        assert_int_equal(items[2].iface, 0);
        assert_int_equal(items[2].caplen, 7);
        assert_int_equal(items[2].wirelen, 7);
        assert_ptr_equal(items[2].data, b.p + spb_at + 12);
        assert_memory_equal(items[2].data, "abcdefg", 7);
        capreader_free(r);
        pb_free(&b);
    }
    /* Padding is not packet data; a snap length cuts the packet. */
    struct pb_buf b = {0};
    pb_ng_shb(&b, false);
    pb_ng_idb(&b, false, LINKTYPE_RAW, 3, 0, false, 0);
    pb_ng_spb(&b, false, 100, "abcdefg", 7);
    struct cap_item items[8];
    size_t n;
    int last;
    struct capreader *r = read_all(b.p, b.len, items, 8, &n, &last);
    assert_int_equal(n, 3);
    assert_int_equal(items[2].caplen, 3);
    assert_int_equal(items[2].wirelen, 100);
    capreader_free(r);
    pb_free(&b);
}

static void test_pcapng_obsolete_packet_block(void **state)
{
    (void)state;
    for (int be = 0; be < 2; be++) {
        struct pb_buf b = {0};
        pb_ng_shb(&b, be);
        pb_ng_idb(&b, be, LINKTYPE_ETHERNET, 0, 0, false, 0);
        pb_ng_idb(&b, be, LINKTYPE_RAW, 0, 9, false, 0);
        size_t at = b.len;
        pb_ng_epb_any(&b, be, true, 1, 123456789ULL, sizeof(PKT_B),
                      sizeof(PKT_B), PKT_B);
        struct cap_item items[8];
        size_t n;
        int last;
        struct capreader *r = read_all(b.p, b.len, items, 8, &n, &last);
        assert_int_equal(last, CAPREADER_NEED_MORE);
        assert_int_equal(n, 4);
        assert_int_equal(items[3].kind, CAP_ITEM_PACKET);
        assert_int_equal(items[3].iface, 1);
        assert_int_equal(items[3].linktype, LINKTYPE_RAW);
        assert_int_equal(items[3].ts_ns, 123456789ULL);
        assert_int_equal(items[3].caplen, sizeof(PKT_B));
        assert_ptr_equal(items[3].data, b.p + at + 28);
        assert_memory_equal(items[3].data, PKT_B, sizeof(PKT_B));
        capreader_free(r);
        pb_free(&b);
    }
}

static void test_pcapng_unknown_blocks_are_meta(void **state)
{
    (void)state;
    static const uint8_t body[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (int be = 0; be < 2; be++) {
        struct pb_buf b = {0};
        pb_ng_shb(&b, be);
        pb_ng_block(&b, be, 4, body, 8);             /* name resolution */
        pb_ng_idb(&b, be, LINKTYPE_ETHERNET, 0, 0, false, 0);
        size_t at = pb_ng_block(&b, be, 5, body, 12); /* statistics */
        pb_ng_block(&b, be, 0x40000bad, body, 5);    /* custom */
        pb_ng_block(&b, be, 0x12345678, NULL, 0);    /* empty, unknown */
        pb_ng_epb(&b, be, 0, 1, 2, 2, "hi");
        struct cap_item items[8];
        size_t n;
        int last;
        struct capreader *r = read_all(b.p, b.len, items, 8, &n, &last);
        assert_int_equal(last, CAPREADER_NEED_MORE);
        assert_int_equal(n, 7);
        assert_int_equal(items[1].kind, CAP_ITEM_META);
        assert_int_equal(items[2].kind, CAP_ITEM_META);
        assert_int_equal(items[3].kind, CAP_ITEM_META);
        assert_ptr_equal(items[3].raw, b.p + at);
        assert_int_equal(items[3].raw_len, 24);
        assert_int_equal(items[4].kind, CAP_ITEM_META);
        assert_int_equal(items[5].kind, CAP_ITEM_META);
        assert_int_equal(items[5].raw_len, 12);
        assert_int_equal(items[6].kind, CAP_ITEM_PACKET);
        capreader_free(r);
        pb_free(&b);
    }
}

static void test_pcapng_two_interfaces(void **state)
{
    (void)state;
    for (int be = 0; be < 2; be++) {
        struct pb_buf b = {0};
        pb_ng_shb(&b, be);
        pb_ng_idb(&b, be, LINKTYPE_ETHERNET, 65535, 6, false, 0);
        pb_ng_idb(&b, be, LINKTYPE_LINUX_SLL2, 1000, 9, false, 0);
        pb_ng_epb(&b, be, 0, 1000, 2, 2, "e0");
        pb_ng_epb(&b, be, 1, 1000, 2, 2, "s1");
        pb_ng_epb(&b, be, 0, 2000, 2, 2, "e0");
        struct cap_item items[8];
        size_t n;
        int last;
        struct capreader *r = read_all(b.p, b.len, items, 8, &n, &last);
        assert_int_equal(last, CAPREADER_NEED_MORE);
        assert_int_equal(n, 6);
        assert_int_equal(items[3].linktype, LINKTYPE_ETHERNET);
        assert_int_equal(items[3].iface, 0);
        assert_int_equal(items[3].ts_ns, 1000000ULL);
        assert_int_equal(items[4].linktype, LINKTYPE_LINUX_SLL2);
        assert_int_equal(items[4].iface, 1);
        assert_int_equal(items[4].ts_ns, 1000ULL); /* that one is in ns */
        assert_int_equal(items[5].linktype, LINKTYPE_ETHERNET);
        /* The reader's link type is the first interface's. */
        assert_int_equal(capreader_linktype(r), LINKTYPE_ETHERNET);
        assert_int_equal(capreader_snaplen(r), 65535);
        capreader_free(r);
        pb_free(&b);
    }
}

static void test_pcapng_every_chunk_size(void **state)
{
    (void)state;
    uint8_t big[301];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i ^ 0x3c);
    }
    for (int be = 0; be < 2; be++) {
        struct pb_buf b = {0};
        pb_ng_shb(&b, be);
        pb_ng_idb(&b, be, LINKTYPE_ETHERNET, 0, 0x80 | 20, true, 5);
        pb_ng_idb(&b, be, LINKTYPE_RAW, 0, 9, false, 0);
        pb_ng_epb(&b, be, 0, 123456789, sizeof(big), 1500, big);
        pb_ng_epb(&b, be, 1, 987654321, 0, 40, NULL);
        pb_ng_block(&b, be, 5, big, 17);
        pb_ng_spb(&b, be, 3, "xyz", 3);
        pb_ng_epb_any(&b, be, true, 1, 55, 5, 5, "hello");
        /* A second section in the other byte order. */
        pb_ng_shb(&b, !be);
        pb_ng_idb(&b, !be, LINKTYPE_LINUX_SLL, 0, 0, false, 0);
        pb_ng_epb(&b, !be, 0, 77, 1, 1, "!");
        check_all_chunk_sizes(&b, 11);
        pb_free(&b);
    }
}

static void test_pcapng_pending(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_ng_shb(&b, false);
    pb_ng_idb(&b, false, LINKTYPE_ETHERNET, 0, 0, false, 0);
    pb_ng_epb(&b, false, 0, 1, sizeof(PKT_A), sizeof(PKT_A), PKT_A);
    struct recs r;
    read_chunked(b.p, b.len - 4, 9, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.last, CAPREADER_NEED_MORE);
    assert_true(r.pending > 0);
    recs_free(&r);
    read_chunked(b.p, b.len, 9, &r);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.pending, 0);
    recs_free(&r);
    pb_free(&b);
}

/* Reads `b` whole and expects an error naming `needle` (NULL: any). */
static void expect_error(const struct pb_buf *b, size_t items_before,
                         const char *needle)
{
    for (size_t chunk = 1; chunk <= b->len; chunk = chunk * 2 + 1) {
        struct recs r;
        read_chunked(b->p, b->len, chunk, &r);
        assert_int_equal(r.last, CAPREADER_ERROR);
        assert_int_equal(r.n, items_before);
        assert_true(r.err[0] != '\0');
        if (needle != NULL && strstr(r.err, needle) == NULL) {
            fail_msg("error \"%s\" does not mention \"%s\"", r.err, needle);
        }
        recs_free(&r);
    }
    struct recs r;
    read_chunked(b->p, b->len, b->len, &r);
    assert_int_equal(r.last, CAPREADER_ERROR);
    recs_free(&r);
}

static void test_pcapng_unknown_interface(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_ng_shb(&b, false);
    pb_ng_idb(&b, false, LINKTYPE_ETHERNET, 0, 0, false, 0);
    pb_ng_epb(&b, false, 1, 1, 2, 2, "hi");
    expect_error(&b, 2, "interface");
    pb_free(&b);
    /* A packet before any interface. */
    struct pb_buf c = {0};
    pb_ng_shb(&c, true);
    pb_ng_epb(&c, true, 0, 1, 2, 2, "hi");
    expect_error(&c, 1, NULL);
    pb_free(&c);
    /* A simple packet block with no interface. */
    struct pb_buf d = {0};
    pb_ng_shb(&d, false);
    pb_ng_spb(&d, false, 2, "hi", 2);
    expect_error(&d, 1, NULL);
    pb_free(&d);
}

static void test_pcapng_trailing_length_mismatch(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_ng_shb(&b, false);
    pb_ng_idb(&b, false, LINKTYPE_ETHERNET, 0, 0, false, 0);
    pb_ng_epb(&b, false, 0, 1, 2, 2, "hi");
    pb_w32(b.p + b.len - 4, 40, false); /* 36 is right */
    expect_error(&b, 2, "trailing length");
    pb_free(&b);
}

static void test_pcapng_bad_block_lengths(void **state)
{
    (void)state;
    static const uint32_t bad[] = {34, 13, 8, 0, 4,
                                   16u * 1024 * 1024 + 4, 0xfffffffcu};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int be = 0; be < 2; be++) {
            struct pb_buf b = {0};
            pb_ng_shb(&b, be);
            pb_ng_idb(&b, be, LINKTYPE_ETHERNET, 0, 0, false, 0);
            size_t at = pb_ng_block(&b, be, 5, "0123456789abcdef0123", 20);
            pb_w32(b.p + at + 4, bad[i], be);
            expect_error(&b, 2, "block length");
            pb_free(&b);
        }
    }
    /* A section header whose length is too small for one. */
    struct pb_buf c = {0};
    pb_ng_shb(&c, false);
    pb_w32(c.p + 4, 24, false);
    expect_error(&c, 0, NULL);
    pb_free(&c);
}

static void test_pcapng_block_before_shb(void **state)
{
    (void)state;
    /* An interface block first: not a capture at all. */
    struct pb_buf b = {0};
    pb_ng_idb(&b, false, LINKTYPE_ETHERNET, 0, 0, false, 0);
    pb_ng_shb(&b, false);
    expect_error(&b, 0, NULL);
    pb_free(&b);
    /* An enhanced packet block first. */
    struct pb_buf c = {0};
    pb_ng_epb(&c, false, 0, 1, 2, 2, "hi");
    expect_error(&c, 0, NULL);
    pb_free(&c);
}

static void test_pcapng_bad_byte_order_magic(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_ng_shb(&b, false);
    b.p[8] = 0x00;
    expect_error(&b, 0, "byte-order");
    pb_free(&b);
}

static void test_pcapng_second_shb_resets_interfaces(void **state)
{
    (void)state;
    for (int be = 0; be < 2; be++) {
        struct pb_buf b = {0};
        pb_ng_shb(&b, be);
        pb_ng_idb(&b, be, LINKTYPE_ETHERNET, 0, 0, false, 0);
        pb_ng_idb(&b, be, LINKTYPE_RAW, 0, 0, false, 0);
        pb_ng_epb(&b, be, 1, 1, 2, 2, "ok");
        pb_ng_shb(&b, be);
        pb_ng_idb(&b, be, LINKTYPE_LINUX_SLL, 0, 9, false, 0);
        pb_ng_epb(&b, be, 0, 5, 2, 2, "s0");
        size_t good = b.len;
        pb_ng_epb(&b, be, 1, 6, 2, 2, "s1"); /* interface 1 is gone */

        struct recs r;
        read_chunked(b.p, good, good, &r);
        assert_int_equal(r.last, CAPREADER_NEED_MORE);
        assert_int_equal(r.n, 7);
        assert_int_equal(r.v[3].linktype, LINKTYPE_RAW);
        assert_int_equal(r.v[4].kind, CAP_ITEM_HEADER);
        assert_int_equal(r.v[6].kind, CAP_ITEM_PACKET);
        assert_int_equal(r.v[6].linktype, LINKTYPE_LINUX_SLL);
        assert_int_equal(r.v[6].ts_ns, 5); /* the new interface's units */
        recs_free(&r);

        expect_error(&b, 7, "interface");
        pb_free(&b);
    }
}

static void test_pcapng_epb_caplen_beyond_block(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_ng_shb(&b, false);
    pb_ng_idb(&b, false, LINKTYPE_ETHERNET, 0, 0, false, 0);
    size_t at = b.len;
    pb_ng_epb(&b, false, 0, 1, 4, 4, "abcd");
    pb_w32(b.p + at + 20, 5, false); /* caplen 5 in a block holding 4 */
    expect_error(&b, 2, NULL);
    pb_free(&b);
}

static void test_error_is_sticky(void **state)
{
    (void)state;
    static const uint8_t junk[8] = {'J', 'U', 'N', 'K', 0, 0, 0, 0};
    struct pb_buf good = {0};
    pcap_two_packets(&good, PB_PCAP_MAGIC_US, false);
    struct capreader *r = capreader_new();
    capreader_push(r, junk, sizeof(junk));
    struct cap_item it;
    assert_int_equal(capreader_next(r, &it), CAPREADER_ERROR);
    char first[256];
    snprintf(first, sizeof(first), "%s", capreader_error(r));
    assert_int_equal(capreader_next(r, &it), CAPREADER_ERROR);
    capreader_push(r, good.p, good.len);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(capreader_next(r, &it), CAPREADER_ERROR);
    }
    assert_string_equal(capreader_error(r), first);
    capreader_free(r);

    /* The same after an error in the middle of a valid stream. */
    struct pb_buf b = {0};
    pb_ng_shb(&b, false);
    pb_ng_idb(&b, false, LINKTYPE_ETHERNET, 0, 0, false, 0);
    pb_ng_epb(&b, false, 3, 1, 2, 2, "hi");
    pb_ng_epb(&b, false, 0, 1, 2, 2, "hi");
    r = capreader_new();
    capreader_push(r, b.p, b.len);
    assert_int_equal(capreader_next(r, &it), CAPREADER_ITEM);
    assert_int_equal(capreader_next(r, &it), CAPREADER_ITEM);
    assert_int_equal(capreader_next(r, &it), CAPREADER_ERROR);
    assert_int_equal(capreader_next(r, &it), CAPREADER_ERROR);
    capreader_push(r, b.p, b.len);
    assert_int_equal(capreader_next(r, &it), CAPREADER_ERROR);
    capreader_free(r);
    pb_free(&b);
    pb_free(&good);
}

static void test_offset_tracks_input(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pcap_two_packets(&b, PB_PCAP_MAGIC_US, false);
    struct capreader *r = capreader_new();
    size_t ends[3] = {24, 24 + 16 + sizeof(PKT_A), b.len};
    size_t k = 0;
    for (size_t pos = 0; pos < b.len; pos += 5) {
        size_t n = b.len - pos < 5 ? b.len - pos : 5;
        capreader_push(r, b.p + pos, n);
        struct cap_item it;
        while (capreader_next(r, &it) == CAPREADER_ITEM) {
            assert_true(k < 3);
            k++;
        }
    }
    assert_int_equal(k, 3);
    assert_int_equal(capreader_offset(r), b.len);
    capreader_free(r);
    /* After each item pushed whole, the offset is the item's end. */
    r = capreader_new();
    capreader_push(r, b.p, b.len);
    struct cap_item it;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(capreader_next(r, &it), CAPREADER_ITEM);
        assert_int_equal(capreader_offset(r), ends[i]);
    }
    capreader_free(r);
    pb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pcap_micro_le),
        cmocka_unit_test(test_pcap_micro_be),
        cmocka_unit_test(test_pcap_nano_le),
        cmocka_unit_test(test_pcap_nano_be),
        cmocka_unit_test(test_pcap_modified_format),
        cmocka_unit_test(test_pcap_linktype_and_snaplen),
        cmocka_unit_test(test_pcap_before_header),
        cmocka_unit_test(test_pcap_bad_version),
        cmocka_unit_test(test_pcap_every_chunk_size),
        cmocka_unit_test(test_pcap_zero_length_records),
        cmocka_unit_test(test_pcap_pending),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_wrong_magic),
        cmocka_unit_test(test_text_input),
        cmocka_unit_test(test_truncated_global_header),
        cmocka_unit_test(test_huge_caplen_rejected),
        cmocka_unit_test(test_caplen_bound_with_huge_snaplen),
        cmocka_unit_test(test_caplen_above_snaplen_accepted),
        cmocka_unit_test(test_caplen_above_wirelen),
        cmocka_unit_test(test_pcapng_basic),
        cmocka_unit_test(test_pcapng_tsresol_and_offset),
        cmocka_unit_test(test_pcapng_simple_packet_block),
        cmocka_unit_test(test_pcapng_obsolete_packet_block),
        cmocka_unit_test(test_pcapng_unknown_blocks_are_meta),
        cmocka_unit_test(test_pcapng_two_interfaces),
        cmocka_unit_test(test_pcapng_every_chunk_size),
        cmocka_unit_test(test_pcapng_pending),
        cmocka_unit_test(test_pcapng_unknown_interface),
        cmocka_unit_test(test_pcapng_trailing_length_mismatch),
        cmocka_unit_test(test_pcapng_bad_block_lengths),
        cmocka_unit_test(test_pcapng_block_before_shb),
        cmocka_unit_test(test_pcapng_bad_byte_order_magic),
        cmocka_unit_test(test_pcapng_second_shb_resets_interfaces),
        cmocka_unit_test(test_pcapng_epb_caplen_beyond_block),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_offset_tracks_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
