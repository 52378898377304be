/*
 * fuzz_pktseen: the fingerprint multiset of a capture-ring hand-over,
 * driven by a script of adds, takes and clears, against a model.
 *
 * Input layout:
 *   byte 0     limit: 1 + value distinct fingerprints
 *   ops...     until the input ends (at most 8192), two bytes each:
 *     op byte  bits 0-1 kind (0, 1 add; 2 take; 3 clear), bits 2-7 the
 *              packet (one of 64)
 *     len byte the packet's length (0-255): the same packet at another
 *              length is another packet
 *
 * Packet n at length L is L bytes of a fixed function of n, so equal
 * (n, L) means equal bytes. The model counts occurrences per (n, L).
 *
 * Checks: add fails exactly when the packet is not recorded and `limit`
 * distinct packets are; take succeeds exactly when the model has an
 * occurrence; the count is the model's total; clear empties both.
 */
#include "fuzz_common.h"
#include "core/pktseen.h"

#define PACKETS 64
#define LENGTHS 256
#define MAX_OPS 8192

static void make_packet(uint8_t *buf, unsigned n, unsigned len)
{
    uint32_t x = 0x9e3779b9u * (n + 1);
    for (unsigned i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
    /* Distinct packets differ in their first bytes, as TCP segments do
     * in their sequence numbers. */
    if (len > 0) {
        buf[0] = (uint8_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    static uint32_t model[PACKETS][LENGTHS];
    memset(model, 0, sizeof(model));
    size_t limit = 1 + (size_t)data[0];
    size_t distinct = 0, total = 0;
    struct pktseen *ps = pktseen_new(limit);
    uint8_t buf[LENGTHS];
    size_t ops = 0;
    for (size_t i = 1; i + 1 < size && ops < MAX_OPS; i += 2, ops++) {
        unsigned kind = data[i] & 3;
        unsigned n = data[i] >> 2;
        unsigned len = data[i + 1];
        /* Zero-length packets are all the same packet. */
        if (len == 0) {
            n = 0;
        }
        make_packet(buf, n, len);
        uint32_t *m = &model[n][len];
        if (kind <= 1) {
            bool want = *m > 0 || distinct < limit;
            bool got = pktseen_add(ps, buf, len);
            FZ_TRACE("add %u/%u -> %d", n, len, got);
            FZ_CHECK(got == want, "add of %u/%u: %d, model %d (distinct "
                     "%zu, limit %zu)", n, len, got, want, distinct, limit);
            if (got) {
                if (*m == 0) {
                    distinct++;
                }
                (*m)++;
                total++;
            }
        } else if (kind == 2) {
            bool want = *m > 0;
            bool got = pktseen_take(ps, buf, len);
            FZ_TRACE("take %u/%u -> %d", n, len, got);
            FZ_CHECK(got == want, "take of %u/%u: %d, model %d", n, len, got,
                     want);
            if (got) {
                (*m)--;
                total--;
                if (*m == 0) {
                    distinct--;
                }
            }
        } else {
            FZ_TRACE("clear");
            pktseen_clear(ps);
            memset(model, 0, sizeof(model));
            distinct = 0;
            total = 0;
        }
        FZ_CHECK(pktseen_count(ps) == total, "count %zu, model %zu",
                 pktseen_count(ps), total);
    }
    pktseen_free(ps);
    return 0;
}
