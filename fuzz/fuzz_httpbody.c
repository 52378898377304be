/*
 * fuzz_httpbody: content decoding (httpbody.c) of hostile bodies.
 *
 * Input layout:
 *   byte 0     coding (value % 5: identity, gzip, deflate, br,
 *              unsupported)
 *   byte 1     keep limit: 1 + value * 64 bytes
 *   byte 2     decode limit: 1 + value * 1024 bytes
 *   byte 3     PRNG seed for the chunked feeding
 *   rest       the encoded body
 *
 * Checks: fed whole and in PRNG-sized chunks, the decoded size, hash,
 * kept bytes and problem verdicts agree (unless one run reached the decode
 * limit and the other found damage beyond it first: a race between the
 * two that depends on the cut); the kept bytes are at
 * most the keep limit and the decoded size at most the decode limit,
 * unless the body is damaged and so described by its raw bytes;
 * identity keeps the input's prefix; a body compares equal to itself.
 */
#include "fuzz_common.h"
#include "proto/httpbody.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > 65536) {
        return 0;
    }
    enum httpbody_coding c = (enum httpbody_coding)(data[0] % 5);
    size_t keep = 1 + (size_t)data[1] * 64;
    size_t limit = 1 + (size_t)data[2] * 1024;
    uint64_t seed = data[3];
    const uint8_t *p = data + 4;
    size_t n = size - 4;

    struct httpbody *whole = httpbody_new(c, keep, limit);
    httpbody_feed(whole, p, n);
    httpbody_finish(whole);
    struct httpbody *chunks = httpbody_new(c, keep, limit);
    for (size_t pos = 0; pos < n;) {
        size_t step = 1 + (size_t)(fz_rand(&seed) % 97);
        step = step > n - pos ? n - pos : step;
        httpbody_feed(chunks, p + pos, step);
        pos += step;
    }
    httpbody_finish(chunks);

    if (httpbody_over_limit(whole) != httpbody_over_limit(chunks)) {
        /* The decode limit and damage beyond it race: which one a decoder
         * meets first depends on how much input it had at once. */
        httpbody_free(whole);
        httpbody_free(chunks);
        return 0;
    }
    FZ_CHECK(httpbody_size(whole) == httpbody_size(chunks), "size differs");
    FZ_CHECK(httpbody_hash(whole) == httpbody_hash(chunks), "hash differs");
    FZ_CHECK(httpbody_over_limit(whole) == httpbody_over_limit(chunks),
             "limit verdict differs");
    FZ_CHECK((httpbody_problem(whole) == NULL) ==
                 (httpbody_problem(chunks) == NULL),
             "problem verdict differs");
    size_t kw, kc;
    const uint8_t *dw = httpbody_data(whole, &kw);
    const uint8_t *dc = httpbody_data(chunks, &kc);
    FZ_CHECK(kw == kc && (kw == 0 || memcmp(dw, dc, kw) == 0),
             "kept bytes differ");
    FZ_CHECK(kw <= keep, "kept %zu over %zu", kw, keep);
    if (httpbody_problem(whole) == NULL || c == HTTPBODY_UNSUPPORTED) {
        FZ_CHECK(httpbody_size(whole) <= limit, "decoded past the limit");
    } else {
        /* Damaged: compared as sent. */
        FZ_CHECK(httpbody_size(whole) == n, "a damaged body is its bytes");
        FZ_CHECK(kw == 0 || memcmp(dw, p, kw) == 0, "damaged body bytes");
    }
    FZ_CHECK(httpbody_wire_size(whole) == n, "wire size");
    if (c == HTTPBODY_IDENTITY) {
        size_t want = n < keep ? n : keep;
        want = want < limit ? want : limit;
        FZ_CHECK(kw == want, "identity keeps a prefix");
        FZ_CHECK(kw == 0 || memcmp(dw, p, kw) == 0, "identity bytes");
    }
    struct httpbody_diff d;
    httpbody_compare(whole, chunks, &d);
    FZ_CHECK(d.verdict != HTTPBODY_DIFFERENT, "a body differs from itself");
    httpbody_free(whole);
    httpbody_free(chunks);
    return 0;
}
