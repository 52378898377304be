/*
 * fuzz_capreader: the incremental pcap/pcapng reader on arbitrary input,
 * pushed whole and in chunks.
 *
 * The input is the capture itself. It is read three ways: in one chunk;
 * in chunks whose sizes come from a PRNG seeded by a hash of the input
 * (many of one byte, some empty pushes); and, for small inputs, one byte
 * at a time. Every chunk is a separate heap block of exactly its size,
 * freed as soon as the reader returns NEED_MORE, so a reader that reads
 * past a chunk or keeps a pointer into an old one trips ASan.
 *
 * Checks, for every item: its kind is valid; raw is exactly the next
 * raw_len bytes of the input (items are consecutive slices, so their
 * lengths sum to the bytes consumed); a packet's data lies inside raw;
 * caplen <= wirelen; raw2 is unused; every byte of raw and data is
 * readable. At every NEED_MORE the bytes consumed plus
 * capreader_pending() equal the bytes pushed. After an error every
 * further call returns the error again. The three readings produce the
 * same items (kind, lengths, timestamp, link type, interface, bytes) and
 * the same end (status, message, pending bytes, format, link type, snap
 * length, anomaly count).
 */
#include "fuzz_common.h"

#include "core/capreader.h"

struct rec {
    int kind;
    size_t raw_len;
    size_t data_off; /* data - raw */
    int linktype;
    uint32_t iface;
    uint64_t ts_ns;
    uint32_t caplen, wirelen;
};

struct reading {
    struct rec *recs;
    size_t n, cap;
    int status; /* final: CAPREADER_ERROR or CAPREADER_NEED_MORE */
    char error[256];
    size_t consumed;
    size_t pending;
    uint64_t offset;
    int format, linktype;
    uint32_t snaplen;
    uint64_t anomalies;
};

enum chunking { WHOLE, RANDOM, BYTES };

static void add_rec(struct reading *rd, const struct rec *r)
{
    if (rd->n == rd->cap) {
        rd->cap = rd->cap ? rd->cap * 2 : 64;
        rd->recs = realloc(rd->recs, rd->cap * sizeof(*rd->recs));
        FZ_CHECK(rd->recs != NULL, "out of memory");
    }
    rd->recs[rd->n++] = *r;
}

static size_t next_chunk_len(enum chunking how, uint64_t *rng, size_t left)
{
    size_t n;
    switch (how) {
    case WHOLE:
        return left;
    case BYTES:
        return left ? 1 : 0;
    case RANDOM:
    default: {
        uint64_t r = fz_rand(rng);
        switch (r & 15) {
        case 0:
            n = 0; /* an empty push */
            break;
        case 1: case 2: case 3: case 4: case 5:
            n = 1;
            break;
        case 6: case 7: case 8:
            n = 1 + (size_t)((r >> 8) % 16);
            break;
        case 9: case 10: case 11: case 12:
            n = 1 + (size_t)((r >> 8) % 512);
            break;
        default:
            n = 1 + (size_t)((r >> 8) % 65536);
            break;
        }
        return n < left ? n : left;
    }
    }
}

static void check_item(const struct cap_item *it, const uint8_t *input,
                       size_t size, struct reading *rd, const uint8_t *chunk,
                       size_t chunk_len)
{
    FZ_CHECK(it->kind == CAP_ITEM_HEADER || it->kind == CAP_ITEM_META ||
                 it->kind == CAP_ITEM_PACKET,
             "item kind %d", (int)it->kind);
    FZ_CHECK(it->raw != NULL && it->raw_len > 0, "empty raw");
    FZ_CHECK(it->raw2 == NULL && it->raw2_len == 0, "raw2 set by the reader");
    /* In the chunk, or else in the reader's carry buffer: either way
     * every byte must be readable (fz_touch copies them; earlier chunks
     * are freed already, so a stale pointer is a use after free). */
    if (fz_within(it->raw, 1, chunk, chunk_len)) {
        FZ_CHECK(fz_within(it->raw, it->raw_len, chunk, chunk_len),
                 "item starts in the chunk but runs past its end");
    }
    fz_touch(it->raw, it->raw_len);
    FZ_CHECK(rd->consumed <= size && it->raw_len <= size - rd->consumed,
             "item of %zu bytes at offset %zu runs past the %zu-byte input",
             it->raw_len, rd->consumed, size);
    FZ_CHECK(memcmp(it->raw, input + rd->consumed, it->raw_len) == 0,
             "raw bytes of the item at offset %zu are not the input's",
             rd->consumed);
    struct rec r;
    memset(&r, 0, sizeof(r));
    r.kind = (int)it->kind;
    r.raw_len = it->raw_len;
    if (it->kind == CAP_ITEM_PACKET) {
        FZ_CHECK(it->data != NULL, "packet without data");
        FZ_CHECK(fz_within(it->data, it->caplen, it->raw, it->raw_len),
                 "packet data (%u bytes) outside its %zu-byte item",
                 it->caplen, it->raw_len);
        FZ_CHECK(it->caplen <= it->wirelen, "caplen %u > wirelen %u",
                 it->caplen, it->wirelen);
        fz_touch(it->data, it->caplen);
        r.data_off = (size_t)(it->data - it->raw);
        r.linktype = it->linktype;
        r.iface = it->iface;
        r.ts_ns = it->ts_ns;
        r.caplen = it->caplen;
        r.wirelen = it->wirelen;
    } else {
        r.linktype = it->linktype;
    }
    rd->consumed += it->raw_len;
    add_rec(rd, &r);
}

static void read_all(const uint8_t *input, size_t size, enum chunking how,
                     uint64_t seed, struct reading *rd)
{
    memset(rd, 0, sizeof(*rd));
    struct capreader *r = capreader_new();
    uint64_t rng = seed;
    size_t pushed = 0;
    int status = CAPREADER_NEED_MORE;
    bool first = true;
    while (status != CAPREADER_ERROR && (first || pushed < size)) {
        first = false;
        size_t n = next_chunk_len(how, &rng, size - pushed);
        uint8_t *chunk = malloc(n ? n : 1);
        FZ_CHECK(chunk != NULL, "out of memory");
        if (n > 0) {
            memcpy(chunk, input + pushed, n);
        }
        capreader_push(r, chunk, n);
        pushed += n;
        for (;;) {
            struct cap_item it;
            memset(&it, 0xa5, sizeof(it));
            status = capreader_next(r, &it);
            if (status == CAPREADER_ITEM) {
                check_item(&it, input, size, rd, chunk, n);
                uint64_t off = capreader_offset(r);
                FZ_CHECK(off == rd->consumed ||
                             off == rd->consumed - it.raw_len,
                         "offset %llu after an item ending at %zu",
                         (unsigned long long)off, rd->consumed);
                continue;
            }
            FZ_CHECK(status == CAPREADER_NEED_MORE ||
                         status == CAPREADER_ERROR,
                     "status %d", status);
            break;
        }
        if (status == CAPREADER_NEED_MORE) {
            FZ_CHECK(capreader_offset(r) == rd->consumed,
                     "offset %llu, consumed %zu",
                     (unsigned long long)capreader_offset(r), rd->consumed);
            FZ_CHECK(rd->consumed + capreader_pending(r) == pushed,
                     "consumed %zu + pending %zu != pushed %zu", rd->consumed,
                     capreader_pending(r), pushed);
        } else {
            /* Sticky: the reader keeps returning the error. */
            struct cap_item it;
            FZ_CHECK(capreader_next(r, &it) == CAPREADER_ERROR,
                     "error not sticky");
            const char *msg = capreader_error(r);
            FZ_CHECK(msg != NULL && msg[0] != '\0', "empty error message");
            FZ_CHECK(strchr(msg, '\n') == NULL, "error message with newline");
            snprintf(rd->error, sizeof(rd->error), "%s", msg);
        }
        free(chunk); /* the reader must not hold on to it */
    }
    rd->status = status;
    rd->pending = status == CAPREADER_ERROR ? 0 : capreader_pending(r);
    rd->offset = capreader_offset(r);
    rd->format = (int)capreader_format(r);
    rd->linktype = capreader_linktype(r);
    rd->snaplen = capreader_snaplen(r);
    rd->anomalies = capreader_anomalies(r);
    if (status != CAPREADER_ERROR) {
        FZ_CHECK(rd->consumed + rd->pending == size,
                 "end: consumed %zu + pending %zu != size %zu", rd->consumed,
                 rd->pending, size);
    }
    capreader_free(r);
}

FZ_NO_COVERAGE static void compare(const struct reading *a, const struct reading *b,
                    const char *what)
{
    FZ_CHECK(a->n == b->n, "%s: %zu items, whole: %zu", what, b->n, a->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct rec *x = &a->recs[i], *y = &b->recs[i];
        FZ_CHECK(x->kind == y->kind && x->raw_len == y->raw_len &&
                     x->data_off == y->data_off && x->linktype == y->linktype &&
                     x->iface == y->iface && x->ts_ns == y->ts_ns &&
                     x->caplen == y->caplen && x->wirelen == y->wirelen,
                 "%s: item %zu differs (kind %d/%d len %zu/%zu caplen "
                 "%u/%u)",
                 what, i, x->kind, y->kind, x->raw_len, y->raw_len,
                 x->caplen, y->caplen);
    }
    FZ_CHECK(a->status == b->status, "%s: status %d, whole: %d", what,
             b->status, a->status);
    if (a->status == CAPREADER_ERROR && !fz_tolerate("capreader-errmsg")) {
        FZ_CHECK(strcmp(a->error, b->error) == 0,
                 "%s: error \"%s\", whole: \"%s\"", what, b->error, a->error);
    }
    FZ_CHECK(a->consumed == b->consumed && a->pending == b->pending &&
                 a->format == b->format && a->linktype == b->linktype &&
                 a->snaplen == b->snaplen && a->anomalies == b->anomalies,
             "%s: end state differs", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reading whole, chunked;
    read_all(data, size, WHOLE, 0, &whole);
    read_all(data, size, RANDOM, fz_fnv64(data, size), &chunked);
    compare(&whole, &chunked, "random chunks");
    free(chunked.recs);
    if (size <= 4096) {
        struct reading bytes;
        read_all(data, size, BYTES, 0, &bytes);
        compare(&whole, &bytes, "1-byte chunks");
        free(bytes.recs);
    }
    free(whole.recs);
    return 0;
}
