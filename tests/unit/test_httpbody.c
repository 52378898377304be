/* Unit tests of httpbody.c: content decoding, limits and comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/encode.h>
#include <cmocka.h>
#include <zlib.h>

#include "proto/httpbody.h"

/* windowBits: 15 zlib, -15 raw deflate, 31 gzip. */
static size_t zcompress(const uint8_t *in, size_t n, uint8_t *out, size_t cap,
                        int window_bits)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, window_bits, 9,
                                  Z_DEFAULT_STRATEGY),
                     Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

static size_t brcompress(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t len = cap;
    assert_true(BrotliEncoderCompress(9, 22, BROTLI_MODE_GENERIC, n, in, &len,
                                      out));
    return len;
}

static const char text[] =
    "{\"items\":[{\"id\":1,\"price\":12.5},{\"id\":2,\"price\":3}],"
    "\"note\":\"the same text, compressed every way\"}";

/* Decodes in one block and byte by byte: the same result. */
static struct httpbody *decode(enum httpbody_coding c, const uint8_t *p,
                               size_t n, size_t keep, size_t limit)
{
    struct httpbody *whole = httpbody_new(c, keep, limit);
    httpbody_feed(whole, p, n);
    httpbody_finish(whole);
    struct httpbody *bytes = httpbody_new(c, keep, limit);
    for (size_t i = 0; i < n; i++) {
        httpbody_feed(bytes, p + i, 1);
    }
    httpbody_finish(bytes);
    assert_int_equal(httpbody_size(whole), httpbody_size(bytes));
    assert_int_equal(httpbody_hash(whole), httpbody_hash(bytes));
    assert_int_equal(httpbody_over_limit(whole), httpbody_over_limit(bytes));
    assert_int_equal(httpbody_problem(whole) == NULL,
                     httpbody_problem(bytes) == NULL);
    httpbody_free(bytes);
    return whole;
}

static void assert_text(const struct httpbody *b)
{
    size_t len;
    const uint8_t *d = httpbody_data(b, &len);
    assert_null(httpbody_problem(b));
    assert_int_equal(len, strlen(text));
    assert_memory_equal(d, text, len);
}

static void test_every_coding_decodes(void **state)
{
    (void)state;
    uint8_t buf[1024];
    const uint8_t *in = (const uint8_t *)text;
    size_t n = strlen(text);
    struct httpbody *b;

    b = decode(HTTPBODY_IDENTITY, in, n, 0, 0);
    assert_text(b);
    httpbody_free(b);

    size_t len = zcompress(in, n, buf, sizeof(buf), 31);
    b = decode(httpbody_coding_of("gzip", 4), buf, len, 0, 0);
    assert_text(b);
    assert_int_equal(httpbody_wire_size(b), len);
    httpbody_free(b);

    len = zcompress(in, n, buf, sizeof(buf), 15);
    b = decode(httpbody_coding_of(" deflate ", 9), buf, len, 0, 0);
    assert_text(b);
    httpbody_free(b);

    /* Raw deflate, as some servers send for "deflate". */
    len = zcompress(in, n, buf, sizeof(buf), -15);
    b = decode(HTTPBODY_DEFLATE, buf, len, 0, 0);
    assert_text(b);
    httpbody_free(b);

    len = brcompress(in, n, buf, sizeof(buf));
    b = decode(httpbody_coding_of("BR", 2), buf, len, 0, 0);
    assert_text(b);
    httpbody_free(b);

    /* Two gzip members make one body (RFC 1952 2.2). */
    size_t half = n / 2;
    len = zcompress(in, half, buf, sizeof(buf), 31);
    len += zcompress(in + half, n - half, buf + len, sizeof(buf) - len, 31);
    b = decode(HTTPBODY_GZIP, buf, len, 0, 0);
    assert_text(b);
    httpbody_free(b);
}

static void test_coding_names(void **state)
{
    (void)state;
    assert_int_equal(httpbody_coding_of(NULL, 0), HTTPBODY_IDENTITY);
    assert_int_equal(httpbody_coding_of("identity", 8), HTTPBODY_IDENTITY);
    assert_int_equal(httpbody_coding_of("x-gzip", 6), HTTPBODY_GZIP);
    assert_int_equal(httpbody_coding_of("gzip, br", 8), HTTPBODY_UNSUPPORTED);
    assert_int_equal(httpbody_coding_of("zstd", 4), HTTPBODY_UNSUPPORTED);
    struct httpbody *b = decode(HTTPBODY_UNSUPPORTED, (const uint8_t *)"ab",
                                2, 0, 0);
    assert_non_null(httpbody_problem(b));
    assert_int_equal(httpbody_size(b), 2);
    httpbody_free(b);
}

static void test_corrupt_and_cut_streams(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = zcompress((const uint8_t *)text, strlen(text), buf,
                           sizeof(buf), 31);
    struct httpbody *b = decode(HTTPBODY_GZIP, buf, len - 6, 0, 0);
    assert_string_equal(httpbody_problem(b),
                        "the compressed stream is cut short");
    /* Compared as sent. */
    assert_int_equal(httpbody_size(b), len - 6);
    size_t kept;
    assert_memory_equal(httpbody_data(b, &kept), buf, len - 6);
    assert_int_equal(kept, len - 6);
    httpbody_free(b);
    buf[12] ^= 0xff;
    b = decode(HTTPBODY_GZIP, buf, len, 0, 0);
    assert_non_null(httpbody_problem(b));
    httpbody_free(b);
    b = decode(HTTPBODY_BR, (const uint8_t *)"not brotli at all", 17, 0, 0);
    assert_non_null(httpbody_problem(b));
    httpbody_free(b);
}

/* 64 MiB of zeros compress to about 64 KiB: decoding stops at the
 * decode limit and memory stays at the keep limit. */
static void test_decompression_bomb_is_bounded(void **state)
{
    (void)state;
    size_t n = 64u << 20;
    uint8_t *zeros = calloc(1, n);
    uint8_t *packed = malloc(1 << 20);
    assert_non_null(zeros);
    assert_non_null(packed);
    size_t len = zcompress(zeros, n, packed, 1 << 20, 31);
    assert_true(len < (1 << 20));
    struct httpbody *b = httpbody_new(HTTPBODY_GZIP, 1024, 1 << 20);
    httpbody_feed(b, packed, len);
    httpbody_finish(b);
    assert_true(httpbody_over_limit(b));
    assert_int_equal(httpbody_size(b), 1 << 20);
    size_t kept;
    httpbody_data(b, &kept);
    assert_int_equal(kept, 1024);
    assert_true(httpbody_truncated(b));
    httpbody_free(b);
    free(zeros);
    free(packed);
}

static struct httpbody *plain(const char *s, size_t keep)
{
    struct httpbody *b = httpbody_new(HTTPBODY_IDENTITY, keep, 0);
    httpbody_feed(b, (const uint8_t *)s, strlen(s));
    httpbody_finish(b);
    return b;
}

static void test_compare(void **state)
{
    (void)state;
    struct httpbody_diff d;
    struct httpbody *a = plain("hello world", 0);
    struct httpbody *b = plain("hello there", 0);
    struct httpbody *c = plain("hello", 0);
    httpbody_compare(a, a, &d);
    assert_int_equal(d.verdict, HTTPBODY_EQUAL);
    httpbody_compare(a, b, &d);
    assert_int_equal(d.verdict, HTTPBODY_DIFFERENT);
    assert_true(d.offset_known);
    assert_int_equal(d.offset, 6);
    httpbody_compare(a, c, &d);
    assert_int_equal(d.verdict, HTTPBODY_DIFFERENT);
    assert_true(d.offset_known);
    assert_int_equal(d.offset, 5);
    assert_int_equal(d.size_a, 11);
    assert_int_equal(d.size_b, 5);
    httpbody_free(a);
    httpbody_free(b);
    httpbody_free(c);

    /* Beyond the keep limit: sizes and hashes. */
    a = plain("abcdefgh-1", 4);
    b = plain("abcdefgh-2", 4);
    c = plain("abcdefgh-1", 4);
    httpbody_compare(a, b, &d);
    assert_int_equal(d.verdict, HTTPBODY_DIFFERENT);
    assert_false(d.offset_known);
    httpbody_compare(a, c, &d);
    assert_int_equal(d.verdict, HTTPBODY_EQUAL);
    httpbody_free(a);
    httpbody_free(b);
    httpbody_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_coding_decodes),
        cmocka_unit_test(test_coding_names),
        cmocka_unit_test(test_corrupt_and_cut_streams),
        cmocka_unit_test(test_decompression_bomb_is_bounded),
        cmocka_unit_test(test_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
