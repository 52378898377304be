/*
 * One HTTP body, decoded and kept for comparison with bounded memory.
 *
 * The framer (http1) removes chunked framing; this module undoes the
 * Content-Encoding (gzip, deflate, br; identity) as the bytes stream in,
 * keeps the first `keep_limit` decoded bytes (the compare body limit) and
 * counts and hashes all of them. Decoding stops at `decode_limit` decoded
 * bytes, so a small compressed body that inflates to gigabytes (a
 * decompression bomb) costs neither memory nor unbounded time: it is
 * reported as over the limit, with the sizes seen so far.
 *
 * A coding it cannot undo (compress, zstd, a stack of codings) or a
 * corrupt or cut stream leaves the body compared as the raw bytes it came
 * as (data, size and hash then describe those), with the reason noted:
 * how much a decoder yields before it finds damage depends on how much
 * input it had at once. The raw prefix is kept too (up to keep_limit).
 *
 * Pure: no I/O, no globals.
 */
#ifndef TAPMIRROR_HTTPBODY_H
#define TAPMIRROR_HTTPBODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTPBODY_DEFAULT_KEEP   (1024 * 1024)      /* the compare limit */
#define HTTPBODY_DEFAULT_DECODE (64 * 1024 * 1024) /* decoded bytes */

enum httpbody_coding {
    HTTPBODY_IDENTITY,
    HTTPBODY_GZIP,
    HTTPBODY_DEFLATE,
    HTTPBODY_BR,
    HTTPBODY_UNSUPPORTED, /* kept as raw bytes */
};

/* The coding a Content-Encoding value names (NULL or empty: identity).
 * "x-gzip" is gzip; several codings are UNSUPPORTED. */
enum httpbody_coding httpbody_coding_of(const char *value, size_t len);
const char *httpbody_coding_name(enum httpbody_coding c);

struct httpbody;

/* 0 for either limit means its default. */
struct httpbody *httpbody_new(enum httpbody_coding coding, size_t keep_limit,
                              size_t decode_limit);
void httpbody_free(struct httpbody *b);

/* Feeds encoded body bytes (chunked framing already removed). */
void httpbody_feed(struct httpbody *b, const uint8_t *data, size_t len);

/* The body ended: checks that a compressed stream ended too. */
void httpbody_finish(struct httpbody *b);

/* What a decoder holds while its body is open, roughly: zlib's inflate
 * state and its 32 KiB window; brotli's state and its window, which a
 * stream may ask to be up to 16 MiB (counted as its common 4 MiB). */
#define HTTPBODY_ZLIB_STATE   (7 * 1024 + 32 * 1024)
#define HTTPBODY_BROTLI_STATE (4 * 1024 * 1024)

/* The bytes the body holds: itself, the kept bytes' buffers and its
 * decoder's state (for a caller's memory budget). */
size_t httpbody_footprint(const struct httpbody *b);

/* Kept decoded bytes: the first min(size, keep_limit). */
const uint8_t *httpbody_data(const struct httpbody *b, size_t *len);
/* Decoded bytes seen (stops growing at the decode limit); the raw size
 * when the body could not be decoded. */
uint64_t httpbody_size(const struct httpbody *b);
/* Encoded bytes fed. */
uint64_t httpbody_wire_size(const struct httpbody *b);
/* FNV-1a 64 of every decoded byte seen. */
uint64_t httpbody_hash(const struct httpbody *b);
/* Not all of the body is kept (over keep_limit). */
bool httpbody_truncated(const struct httpbody *b);
/* Decoding gave up at the decode limit: size and hash cover a prefix. */
bool httpbody_over_limit(const struct httpbody *b);
/* The coding could not be undone (unsupported or corrupt): the body is
 * the raw bytes; NULL when decoded as declared. One line. */
const char *httpbody_problem(const struct httpbody *b);

enum httpbody_verdict {
    HTTPBODY_EQUAL,
    HTTPBODY_DIFFERENT,
    HTTPBODY_UNKNOWN, /* a body was over the decode limit with equal
                       * prefixes: nothing more can be said */
};

struct httpbody_diff {
    enum httpbody_verdict verdict;
    uint64_t size_a, size_b;
    bool offset_known;  /* the first differing byte is in the kept part */
    uint64_t offset;    /* first differing decoded byte (or the shorter
                         * size when one is a prefix of the other) */
};

/* Compares two finished bodies: kept bytes first, then sizes and hashes
 * for what lies beyond the keep limit. */
void httpbody_compare(const struct httpbody *a, const struct httpbody *b,
                      struct httpbody_diff *out);

#endif
