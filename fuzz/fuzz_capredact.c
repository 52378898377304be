/*
 * fuzz_capredact: capture redaction (capredact.c) on hostile segments of
 * one connection, in and out of order.
 *
 * Input layout:
 *   byte 0     bit 0: X-Api-Key is an extra name
 *   then       segments: direction (bit 0: server to client), a signed
 *              step added to that direction's next sequence number
 *              (holes, retransmissions, reordering), a length, and that
 *              many payload bytes
 *
 * Checks: the packet's length and every header byte but the TCP
 * checksum stay, and the checksum, right before, is right after; a
 * payload byte
 * either stays or becomes 'x'; CR and LF never change; the count
 * returned covers the bytes changed (and is at most the payload); a
 * fresh redactor fed the same
 * packets changes the same bytes.
 */
#include "core/decode.h"
#include "fuzz_common.h"
#include "proto/capredact.h"

#define HDR 40 /* IPv4 (20) + TCP (20) */

#define TCP_CSUM (20 + 16) /* where the TCP checksum is */

/* The ones' complement sum of the TCP pseudo-header, header and payload
 * of the IPv4 packet `b` (`total` bytes), folded: 0xffff when its
 * checksum is right. */
static uint32_t tcp4_sum(const uint8_t *b, size_t total)
{
    uint64_t sum = 0;
    for (int i = 12; i < 20; i += 2) {
        sum += (uint32_t)b[i] << 8 | b[i + 1];
    }
    sum += 6 + (total - 20);
    for (size_t i = 20; i < total; i += 2) {
        sum += (uint32_t)b[i] << 8 | (i + 1 < total ? b[i + 1] : 0);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint32_t)sum;
}

static size_t frame(uint8_t *b, int dir, uint32_t seq, const uint8_t *p,
                    size_t len)
{
    memset(b, 0, HDR);
    size_t total = HDR + len;
    b[0] = 0x45;
    b[2] = (uint8_t)(total >> 8);
    b[3] = (uint8_t)total;
    b[6] = 0x40;
    b[8] = 64;
    b[9] = 6;
    uint8_t c[4] = {10, 0, 0, 1}, s[4] = {10, 0, 0, 2};
    memcpy(b + 12, dir ? s : c, 4);
    memcpy(b + 16, dir ? c : s, 4);
    uint16_t sport = dir ? 8080 : 40000, dport = dir ? 40000 : 8080;
    b[20] = (uint8_t)(sport >> 8);
    b[21] = (uint8_t)sport;
    b[22] = (uint8_t)(dport >> 8);
    b[23] = (uint8_t)dport;
    b[24] = (uint8_t)(seq >> 24);
    b[25] = (uint8_t)(seq >> 16);
    b[26] = (uint8_t)(seq >> 8);
    b[27] = (uint8_t)seq;
    b[32] = 5 << 4;
    b[33] = 0x18;
    memcpy(b + HDR, p, len);
    uint32_t csum = ~tcp4_sum(b, total) & 0xffff;
    b[TCP_CSUM] = (uint8_t)(csum >> 8);
    b[TCP_CSUM + 1] = (uint8_t)csum;
    return total;
}

static void run(const uint8_t *data, size_t size, uint8_t *changed_out,
                size_t *n_out)
{
    static const char *const extra[] = {"X-Api-Key"};
    struct capredact *cr = capredact_new(extra, data[0] & 1, 16);
    uint32_t next[2] = {1000, 5000};
    size_t pos = 1, k = 0;
    uint8_t pkt[HDR + 256], orig[HDR + 256];
    while (pos + 3 <= size) {
        int dir = data[pos] & 1;
        int8_t step = (int8_t)data[pos + 1];
        size_t len = data[pos + 2];
        pos += 3;
        if (len > size - pos) {
            len = size - pos;
        }
        uint32_t seq = next[dir] + (uint32_t)(int32_t)step;
        size_t n = frame(pkt, dir, seq, data + pos, len);
        memcpy(orig, pkt, n);
        size_t done = capredact_packet(cr, 101, pkt, n, n);
        size_t diff = 0;
        FZ_CHECK(memcmp(pkt, orig, TCP_CSUM) == 0 &&
                     memcmp(pkt + TCP_CSUM + 2, orig + TCP_CSUM + 2,
                            HDR - TCP_CSUM - 2) == 0,
                 "a header byte changed");
        FZ_CHECK(tcp4_sum(pkt, n) == 0xffff,
                 "the TCP checksum is wrong after redaction");
        for (size_t i = HDR; i < n; i++) {
            if (pkt[i] != orig[i]) {
                FZ_CHECK(pkt[i] == 'x', "a byte became something but x");
                FZ_CHECK(orig[i] != '\r' && orig[i] != '\n',
                         "a line break was overwritten");
                diff++;
                if (k < 65536) {
                    changed_out[k++] = (uint8_t)(i & 0xff);
                }
            }
        }
        /* A byte that was an x already is overwritten, not changed. */
        FZ_CHECK(diff <= done && done <= len, "%zu bytes changed, %zu counted",
                 diff, done);
        next[dir] = seq + (uint32_t)len;
        pos += len;
    }
    *n_out = k;
    capredact_free(cr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) {
        return 0;
    }
    static uint8_t a[65536], b[65536];
    size_t na = 0, nb = 0;
    run(data, size, a, &na);
    run(data, size, b, &nb);
    FZ_CHECK(na == nb && memcmp(a, b, na) == 0, "not deterministic");
    return 0;
}
