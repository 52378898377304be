/*
 * Unit tests for capredact: credentials overwritten in capture packets,
 * across segment boundaries, retransmissions and holes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/decode.h"
#include "pktbuild.h"
#include "proto/capredact.h"

struct conn {
    struct capredact *cr;
    uint32_t seq;   /* next client sequence number */
    uint8_t out[65536]; /* the payloads after redaction, in order */
    size_t out_len;
};

/* Sends one client segment of `s` at `seq`, appends the payload as it
 * was written to out (unless `quiet`); returns bytes overwritten. */
static size_t segment_at(struct conn *c, uint32_t seq, const char *s,
                         size_t len, bool keep)
{
    uint8_t frame[4096];
    struct pb_info info;
    struct pb_pkt p = pb_tcp4(40000, 8080, seq, 1, 0x18, s, len);
    size_t n = pb_build(frame, LINKTYPE_ETHERNET, &p, &info);
    size_t done = capredact_packet(c->cr, LINKTYPE_ETHERNET, frame, n, n);
    assert_int_equal(info.len, n); /* the length never changes */
    if (keep) {
        memcpy(c->out + c->out_len, frame + info.payload_off, len);
        c->out_len += len;
    }
    return done;
}

static size_t segment(struct conn *c, const char *s)
{
    size_t len = strlen(s);
    size_t done = segment_at(c, c->seq, s, len, true);
    c->seq += (uint32_t)len;
    return done;
}

static void conn_start(struct conn *c, const char *const *extra, size_t n)
{
    memset(c, 0, sizeof(*c));
    c->cr = capredact_new(extra, n, 64);
    uint8_t frame[256];
    struct pb_pkt p = pb_tcp4(40000, 8080, 999, 0, 0x02, NULL, 0);
    size_t len = pb_build(frame, LINKTYPE_ETHERNET, &p, NULL);
    capredact_packet(c->cr, LINKTYPE_ETHERNET, frame, len, len);
    c->seq = 1000;
}

static void expect(const struct conn *c, const char *want)
{
    assert_int_equal(c->out_len, strlen(want));
    if (memcmp(c->out, want, c->out_len) != 0) {
        fail_msg("got:\n%.*s\nwant:\n%s", (int)c->out_len, c->out, want);
    }
}

static void test_whole_head(void **state)
{
    (void)state;
    struct conn c;
    conn_start(&c, NULL, 0);
    size_t n = segment(&c, "GET / HTTP/1.1\r\nHost: a\r\n"
                           "authorization:  Bearer abc\r\n"
                           "Cookie: sid=1; t=2\r\nX-Cookie: keep\r\n\r\n");
    expect(&c, "GET / HTTP/1.1\r\nHost: a\r\n"
               "authorization:  xxxxxxxxxx\r\n"
               "Cookie: xxxxxxxxxx\r\nX-Cookie: keep\r\n\r\n");
    assert_int_equal(n, 20);
    assert_int_equal(capredact_values(c.cr), 2);
    capredact_free(c.cr);
}

/* Split in the name, after the colon, and inside the value. */
static void test_split_across_segments(void **state)
{
    (void)state;
    const char *cuts[][4] = {
        {"GET / HTTP/1.1\r\nAutho", "rization: Basic dXNlcjpwYXNz\r\n",
         "\r\n", NULL},
        {"GET / HTTP/1.1\r\nAuthorization:", " Basic dXNlcjpwYXNz\r\n\r\n",
         NULL, NULL},
        {"GET / HTTP/1.1\r\nAuthorization: Basic dXNl", "cjpw",
         "YXNz\r", "\n\r\n"},
    };
    for (size_t k = 0; k < 3; k++) {
        struct conn c;
        conn_start(&c, NULL, 0);
        for (size_t i = 0; i < 4 && cuts[k][i] != NULL; i++) {
            segment(&c, cuts[k][i]);
        }
        expect(&c, "GET / HTTP/1.1\r\nAuthorization: xxxxxxxxxxxxxxxxxx"
                   "\r\n\r\n");
        capredact_free(c.cr);
    }
}

/* A retransmission gets the redaction its first copy got. */
static void test_retransmission(void **state)
{
    (void)state;
    struct conn c;
    conn_start(&c, NULL, 0);
    segment(&c, "GET / HTTP/1.1\r\nCookie: se");
    segment(&c, "cret\r\n\r\n");
    /* The second segment again, and both at once. */
    struct conn again = c;
    again.out_len = 0;
    segment_at(&again, 1000 + 26, "cret\r\n\r\n", 8, true);
    segment_at(&again, 1000, "GET / HTTP/1.1\r\nCookie: secret\r\n\r\n", 34,
               true);
    expect(&again, "xxxx\r\n\r\nGET / HTTP/1.1\r\nCookie: xxxxxx\r\n\r\n");
    capredact_free(c.cr);
}

/* After a hole: a part that may continue a value is overwritten up to
 * the line break; a line start is read as one. */
static void test_after_a_hole(void **state)
{
    (void)state;
    struct conn c;
    conn_start(&c, NULL, 0);
    segment(&c, "GET / HTTP/1.1\r\nCookie: a");
    c.seq += 100; /* lost */
    segment(&c, "bc.def\r\nX-A: 1\r\n\r\n");
    c.seq += 50; /* lost */
    segment(&c, "GET /next HTTP/1.1\r\nCookie: z\r\n\r\n");
    expect(&c, "GET / HTTP/1.1\r\nCookie: x"
               "xxxxxx\r\nX-A: 1\r\n\r\n"
               "GET /next HTTP/1.1\r\nCookie: x\r\n\r\n");
    capredact_free(c.cr);
}

/* Folded continuation lines, extra names, both directions apart. */
static void test_folded_extra_and_directions(void **state)
{
    (void)state;
    const char *extra[] = {"X-Api-Key"};
    struct conn c;
    conn_start(&c, extra, 1);
    segment(&c, "GET / HTTP/1.1\r\nCookie: a=1;\r\n  b=2\r\nx-api-key: k1"
                "\r\nX-B: 2\r\n\r\n");
    expect(&c, "GET / HTTP/1.1\r\nCookie: xxxx\r\n  xxx\r\nx-api-key: xx"
               "\r\nX-B: 2\r\n\r\n");
    /* The server's direction: a Set-Cookie split across segments. */
    uint8_t frame[512];
    struct pb_info info;
    const char *r1 = "HTTP/1.1 200 OK\r\nSet-Cookie: s", *r2 = "id=9\r\n\r\n";
    struct pb_pkt p = pb_tcp4(8080, 40000, 5000, c.seq, 0x18, r1, strlen(r1));
    size_t n = pb_build(frame, LINKTYPE_ETHERNET, &p, &info);
    capredact_packet(c.cr, LINKTYPE_ETHERNET, frame, n, n);
    assert_memory_equal(frame + info.payload_off,
                        "HTTP/1.1 200 OK\r\nSet-Cookie: x", strlen(r1));
    p = pb_tcp4(8080, 40000, 5000 + (uint32_t)strlen(r1), c.seq, 0x18, r2,
                strlen(r2));
    n = pb_build(frame, LINKTYPE_ETHERNET, &p, &info);
    capredact_packet(c.cr, LINKTYPE_ETHERNET, frame, n, n);
    assert_memory_equal(frame + info.payload_off, "xxxx\r\n\r\n", strlen(r2));
    capredact_free(c.cr);
}

/* Not TCP, or no payload: nothing changes. */
static void test_other_packets(void **state)
{
    (void)state;
    struct capredact *cr = capredact_new(NULL, 0, 0);
    uint8_t junk[64];
    memset(junk, 'A', sizeof(junk));
    assert_int_equal(capredact_packet(cr, LINKTYPE_ETHERNET, junk,
                                      sizeof(junk), sizeof(junk)),
                     0);
    capredact_free(cr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_head),
        cmocka_unit_test(test_split_across_segments),
        cmocka_unit_test(test_retransmission),
        cmocka_unit_test(test_after_a_hole),
        cmocka_unit_test(test_folded_extra_and_directions),
        cmocka_unit_test(test_other_packets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
