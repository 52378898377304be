/*
 * Content decoding of one body (see httpbody.h): zlib for gzip and
 * deflate, libbrotli for br, through a fixed scratch buffer so that
 * memory is the kept prefix plus the decoders' own state.
 */
#include "httpbody.h"

#include <brotli/decode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/util.h"

#define SCRATCH 16384

struct httpbody {
    enum httpbody_coding coding;
    size_t keep_limit;
    size_t decode_limit;

    uint8_t *kept;
    size_t kept_len, kept_cap;
    uint64_t size;
    uint64_t wire;
    uint64_t hash;
    /* The body as it came, for when it cannot be decoded: what a decoder
     * produced before it found the damage depends on how much input it
     * had at once, so a damaged body is compared as sent. */
    uint8_t *raw;
    size_t raw_len, raw_cap;
    uint64_t raw_hash;
    bool use_raw;
    bool over_limit;
    bool ended;   /* the compressed stream reached its end */
    bool stopped; /* decoding gave up: problem or limit */
    char problem[96];

    /* deflate: the first two bytes decide zlib or raw. */
    uint8_t lead[2];
    size_t lead_len;
    bool z_ready;
    z_stream z;
    BrotliDecoderState *br;
};

enum httpbody_coding httpbody_coding_of(const char *value, size_t len)
{
    if (value == NULL) {
        return HTTPBODY_IDENTITY;
    }
    while (len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) {
        len--;
    }
    if (len == 0 || tm_ascii_caseeq(value, len, "identity")) {
        return HTTPBODY_IDENTITY;
    }
    if (tm_ascii_caseeq(value, len, "gzip") || tm_ascii_caseeq(value, len, "x-gzip")) {
        return HTTPBODY_GZIP;
    }
    if (tm_ascii_caseeq(value, len, "deflate")) {
        return HTTPBODY_DEFLATE;
    }
    if (tm_ascii_caseeq(value, len, "br")) {
        return HTTPBODY_BR;
    }
    return HTTPBODY_UNSUPPORTED;
}

const char *httpbody_coding_name(enum httpbody_coding c)
{
    switch (c) {
    case HTTPBODY_IDENTITY:
        return "identity";
    case HTTPBODY_GZIP:
        return "gzip";
    case HTTPBODY_DEFLATE:
        return "deflate";
    case HTTPBODY_BR:
        return "br";
    case HTTPBODY_UNSUPPORTED:
        break;
    }
    return "unsupported";
}

struct httpbody *httpbody_new(enum httpbody_coding coding, size_t keep_limit,
                              size_t decode_limit)
{
    struct httpbody *b = tm_xcalloc(1, sizeof(*b));
    b->coding = coding;
    b->keep_limit = keep_limit ? keep_limit : HTTPBODY_DEFAULT_KEEP;
    b->decode_limit = decode_limit ? decode_limit : HTTPBODY_DEFAULT_DECODE;
    b->hash = 0xcbf29ce484222325ULL;
    b->raw_hash = b->hash;
    if (coding == HTTPBODY_UNSUPPORTED) {
        snprintf(b->problem, sizeof(b->problem),
                 "unsupported Content-Encoding: compared as sent");
    }
    if (coding == HTTPBODY_GZIP) {
        if (inflateInit2(&b->z, 16 + MAX_WBITS) != Z_OK) {
            snprintf(b->problem, sizeof(b->problem), "zlib: out of memory");
            b->stopped = true;
        } else {
            b->z_ready = true;
        }
    } else if (coding == HTTPBODY_BR) {
        b->br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
        if (b->br == NULL) {
            snprintf(b->problem, sizeof(b->problem), "brotli: out of memory");
            b->stopped = true;
        }
    }
    return b;
}

void httpbody_free(struct httpbody *b)
{
    if (b == NULL) {
        return;
    }
    if (b->z_ready) {
        inflateEnd(&b->z);
    }
    if (b->br != NULL) {
        BrotliDecoderDestroyInstance(b->br);
    }
    free(b->kept);
    free(b->raw);
    free(b);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Appends to a buffer that stops growing at `limit`. */
static void keep(uint8_t **buf, size_t *len, size_t *cap, size_t limit,
                 const uint8_t *p, size_t n)
{
    size_t take = TM_MIN(limit - *len, n);
    if (take == 0) {
        return;
    }
    if (*len + take > *cap) {
        /* The first piece exactly (most bodies come whole: a small one
         * waiting for the other side's answer holds only itself), then
         * doubling. */
        size_t c = *cap ? *cap : *len + take;
        while (c < *len + take) {
            c *= 2;
        }
        c = TM_MIN(c, limit);
        *buf = tm_xrealloc(*buf, c);
        *cap = c;
    }
    memcpy(*buf + *len, p, take);
    *len += take;
}

/* Decoded bytes: counted, hashed, the first keep_limit kept. */
static void emit(struct httpbody *b, const uint8_t *p, size_t n)
{
    b->hash = fnv(b->hash, p, n);
    b->size += n;
    keep(&b->kept, &b->kept_len, &b->kept_cap, b->keep_limit, p, n);
}

/* Room left under the decode limit for one round of output. */
static size_t out_room(const struct httpbody *b)
{
    uint64_t left = b->decode_limit - b->size;
    return left < SCRATCH ? (size_t)left : SCRATCH;
}

static void give_up(struct httpbody *b, const char *what, const char *detail)
{
    b->stopped = true;
    b->use_raw = true;
    snprintf(b->problem, sizeof(b->problem), "%s%s%s", what,
             detail ? ": " : "", detail ? detail : "");
}

/* The decoders' output goes through a buffer on the stack: a body that
 * waits (for the other side's answer) holds no scratch space. */
static void feed_zlib(struct httpbody *b, const uint8_t *data, size_t len)
{
    uint8_t scratch[SCRATCH];
    b->z.next_in = (Bytef *)(uintptr_t)data;
    b->z.avail_in = 0;
    size_t left = len;
    while (!b->stopped) {
        if (b->z.avail_in == 0) {
            if (left == 0) {
                break;
            }
            uInt step = left > 65536 ? 65536 : (uInt)left;
            b->z.avail_in = step;
            left -= step;
        }
        if (b->ended) {
            /* gzip members may follow one another (RFC 1952 2.2). */
            if (b->coding == HTTPBODY_GZIP && b->z.next_in[0] == 0x1f) {
                inflateReset(&b->z);
                b->ended = false;
            } else {
                give_up(b, "data after the end of the compressed stream",
                        NULL);
                break;
            }
        }
        size_t room = out_room(b);
        if (room == 0) {
            b->over_limit = true;
            b->stopped = true;
            break;
        }
        b->z.next_out = scratch;
        b->z.avail_out = (uInt)room;
        int rc = inflate(&b->z, Z_NO_FLUSH);
        emit(b, scratch, room - b->z.avail_out);
        if (rc == Z_STREAM_END) {
            b->ended = true;
        } else if (rc == Z_BUF_ERROR) {
            if (b->z.avail_in == 0 && left == 0) {
                break; /* needs more input */
            }
            if (b->z.avail_out != 0) {
                give_up(b, "corrupt compressed data", NULL);
            }
        } else if (rc != Z_OK) {
            give_up(b, "corrupt compressed data", b->z.msg);
        }
    }
}

/* HTTP's "deflate" is the zlib format (RFC 9110 8.4.1.2); some servers
 * send raw deflate instead, as browsers and curl accept. A zlib header
 * is CM 8 with a header checksum: anything else is taken as raw. */
static void feed_deflate(struct httpbody *b, const uint8_t *data, size_t len)
{
    if (!b->z_ready) {
        while (b->lead_len < 2 && len > 0) {
            b->lead[b->lead_len++] = *data++;
            len--;
        }
        if (b->lead_len < 2) {
            return;
        }
        bool zlib_header = (b->lead[0] & 0x0f) == 8 &&
                           ((b->lead[0] << 8) | b->lead[1]) % 31 == 0;
        if (inflateInit2(&b->z, zlib_header ? MAX_WBITS : -MAX_WBITS) !=
            Z_OK) {
            give_up(b, "zlib: out of memory", NULL);
            return;
        }
        b->z_ready = true;
        feed_zlib(b, b->lead, 2);
    }
    feed_zlib(b, data, len);
}

static void feed_brotli(struct httpbody *b, const uint8_t *data, size_t len)
{
    uint8_t scratch[SCRATCH];
    const uint8_t *in = data;
    size_t avail_in = len;
    while (!b->stopped) {
        if (b->ended) {
            if (avail_in > 0) {
                give_up(b, "data after the end of the compressed stream",
                        NULL);
            }
            break;
        }
        size_t room = out_room(b);
        if (room == 0) {
            if (avail_in > 0 || BrotliDecoderHasMoreOutput(b->br)) {
                b->over_limit = true;
                b->stopped = true;
            }
            break;
        }
        uint8_t *out = scratch;
        size_t avail_out = room;
        BrotliDecoderResult rc = BrotliDecoderDecompressStream(
            b->br, &avail_in, &in, &avail_out, &out, NULL);
        emit(b, scratch, room - avail_out);
        if (rc == BROTLI_DECODER_RESULT_SUCCESS) {
            b->ended = true;
        } else if (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
            break;
        } else if (rc == BROTLI_DECODER_RESULT_ERROR) {
            give_up(b, "corrupt brotli data",
                    BrotliDecoderErrorString(BrotliDecoderGetErrorCode(b->br)));
        }
    }
}

void httpbody_feed(struct httpbody *b, const uint8_t *data, size_t len)
{
    b->wire += len;
    if (b->coding != HTTPBODY_IDENTITY && b->coding != HTTPBODY_UNSUPPORTED) {
        b->raw_hash = fnv(b->raw_hash, data, len);
        keep(&b->raw, &b->raw_len, &b->raw_cap, b->keep_limit, data, len);
    }
    if (len == 0 || b->stopped) {
        if (b->stopped && len > 0 && b->size >= b->decode_limit) {
            b->over_limit = true;
        }
        return;
    }
    switch (b->coding) {
    case HTTPBODY_IDENTITY:
    case HTTPBODY_UNSUPPORTED: {
        uint64_t left = b->decode_limit - b->size;
        size_t take = left < len ? (size_t)left : len;
        emit(b, data, take);
        if (take < len) {
            b->over_limit = true;
            b->stopped = true;
        }
        break;
    }
    case HTTPBODY_GZIP:
        feed_zlib(b, data, len);
        break;
    case HTTPBODY_DEFLATE:
        feed_deflate(b, data, len);
        break;
    case HTTPBODY_BR:
        feed_brotli(b, data, len);
        break;
    }
}

void httpbody_finish(struct httpbody *b)
{
    if (b->stopped || b->coding == HTTPBODY_IDENTITY ||
        b->coding == HTTPBODY_UNSUPPORTED) {
        return;
    }
    if (b->wire == 0) {
        return; /* an empty body declared compressed: nothing to undo */
    }
    if (!b->ended) {
        if (b->size >= b->decode_limit) {
            b->over_limit = true;
            b->stopped = true;
        } else {
            give_up(b, "the compressed stream is cut short", NULL);
        }
    }
}

size_t httpbody_footprint(const struct httpbody *b)
{
    size_t n = sizeof(*b) + b->kept_cap + b->raw_cap;
    if (b->z_ready) {
        n += HTTPBODY_ZLIB_STATE;
    }
    if (b->br != NULL) {
        n += HTTPBODY_BROTLI_STATE;
    }
    return n;
}

const uint8_t *httpbody_data(const struct httpbody *b, size_t *len)
{
    *len = b->use_raw ? b->raw_len : b->kept_len;
    return b->use_raw ? b->raw : b->kept;
}

uint64_t httpbody_size(const struct httpbody *b)
{
    return b->use_raw ? b->wire : b->size;
}

uint64_t httpbody_wire_size(const struct httpbody *b)
{
    return b->wire;
}

uint64_t httpbody_hash(const struct httpbody *b)
{
    return b->use_raw ? b->raw_hash : b->hash;
}

bool httpbody_truncated(const struct httpbody *b)
{
    size_t kept;
    httpbody_data(b, &kept);
    return httpbody_size(b) > kept;
}

bool httpbody_over_limit(const struct httpbody *b)
{
    return b->over_limit;
}

const char *httpbody_problem(const struct httpbody *b)
{
    return b->problem[0] ? b->problem : NULL;
}

void httpbody_compare(const struct httpbody *a, const struct httpbody *b,
                      struct httpbody_diff *out)
{
    memset(out, 0, sizeof(*out));
    size_t ka, kb;
    const uint8_t *da = httpbody_data(a, &ka);
    const uint8_t *db = httpbody_data(b, &kb);
    out->size_a = httpbody_size(a);
    out->size_b = httpbody_size(b);
    size_t common = TM_MIN(ka, kb);
    for (size_t i = 0; i < common; i++) {
        if (da[i] != db[i]) {
            out->verdict = HTTPBODY_DIFFERENT;
            out->offset_known = true;
            out->offset = i;
            return;
        }
    }
    if (out->size_a != out->size_b) {
        out->verdict = HTTPBODY_DIFFERENT;
        /* The kept parts agree: when the shorter body is kept whole it
         * is a prefix of the other and they part where it ends; else
         * they part somewhere beyond the kept bytes. */
        uint64_t shorter = TM_MIN(out->size_a, out->size_b);
        if (shorter <= common) {
            out->offset_known = true;
            out->offset = shorter;
        }
        return;
    }
    if (httpbody_hash(a) != httpbody_hash(b)) {
        out->verdict = HTTPBODY_DIFFERENT;
        return;
    }
    out->verdict = (a->over_limit || b->over_limit) ? HTTPBODY_UNKNOWN
                                                    : HTTPBODY_EQUAL;
}
