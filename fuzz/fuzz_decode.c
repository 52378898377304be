/*
 * fuzz_decode: decode_packet() on arbitrary records.
 *
 * Input layout:
 *   byte 0      link type selector (see `links`; some are unsupported)
 *   byte 1      wire length mode: 0 wirelen = caplen, 1 + u16, 2 + u8,
 *               3 + u32 (wirelen is always >= caplen, as capreader
 *               guarantees)
 *   [extra]     the u8/u16/u32 of the mode
 *   rest        the captured record (caplen = its length)
 *
 * Checks: the verdict is in range and named; unsupported link types and
 * only they give DECODE_BAD_LINK; a DECODE_TCP result has its payload
 * inside the record, payload_len <= wire_len, a family of 4 or 6, and a
 * record that was not cut (caplen == wirelen) has all its payload
 * (payload_len == wire_len); decoding is deterministic and reads nothing
 * outside the record (the record sits in a heap block of exactly its
 * size).
 */
#include "fuzz_common.h"

#include "core/decode.h"

static const int links[16] = {
    LINKTYPE_NULL,       LINKTYPE_ETHERNET, LINKTYPE_RAW,   LINKTYPE_LOOP,
    LINKTYPE_LINUX_SLL,  LINKTYPE_IPV4,     LINKTYPE_IPV6,  LINKTYPE_LINUX_SLL2,
    LINKTYPE_ETHERNET,   LINKTYPE_ETHERNET, LINKTYPE_RAW,   LINKTYPE_LINUX_SLL2,
    /* unsupported: */ -1, 105 /* 802.11 */, 12 /* DLT_RAW on BSD */,
    0x7fffffff,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    int linktype = links[fz_u8(&f) & 15];
    uint8_t mode = fz_u8(&f) & 3;
    uint64_t extra = 0;
    switch (mode) {
    case 1:
        extra = fz_u16(&f);
        break;
    case 2:
        extra = fz_u8(&f);
        break;
    case 3:
        extra = fz_u32(&f);
        break;
    default:
        break;
    }
    size_t caplen;
    const uint8_t *rec = fz_bytes(&f, SIZE_MAX, &caplen);
    size_t wirelen = caplen + (size_t)extra;

    uint8_t *pkt = malloc(caplen ? caplen : 1);
    FZ_CHECK(pkt != NULL, "out of memory");
    if (caplen > 0) {
        memcpy(pkt, rec, caplen);
    }

    struct tcp_segment seg;
    memset(&seg, 0xa5, sizeof(seg));
    enum decode_verdict v = decode_packet(linktype, pkt, caplen, wirelen, &seg);
    FZ_CHECK(v >= DECODE_TCP && v < DECODE_VERDICT_COUNT, "verdict %d", v);
    const char *name = decode_verdict_name(v);
    FZ_CHECK(name != NULL && strcmp(name, "unknown") != 0, "verdict name");
    FZ_CHECK((v == DECODE_BAD_LINK) == !decode_link_supported(linktype),
             "link type %d gave verdict %s", linktype, name);

    if (v == DECODE_TCP) {
        FZ_CHECK(seg.family == 4 || seg.family == 6, "family %u", seg.family);
        FZ_CHECK(seg.payload != NULL, "payload pointer");
        FZ_CHECK(fz_within(seg.payload, seg.payload_len, pkt, caplen),
                 "payload [%p,+%u) outside the record [%p,+%zu)",
                 (const void *)seg.payload, seg.payload_len,
                 (const void *)pkt, caplen);
        FZ_CHECK(seg.payload_len <= seg.wire_len, "payload_len %u > wire_len %u",
                 seg.payload_len, seg.wire_len);
        /* Headers take at least 20 (IPv4) + 20 (TCP) bytes of the packet,
         * so the payload on the wire is shorter than the packet. */
        if (!fz_tolerate("decode-wirelen")) {
            FZ_CHECK((uint64_t)seg.wire_len + 40 <= wirelen,
                     "wire_len %u does not fit a packet of %zu bytes",
                     seg.wire_len, wirelen);
        }
        if (caplen == wirelen) {
            FZ_CHECK(seg.payload_len == seg.wire_len,
                     "uncut record: payload_len %u != wire_len %u",
                     seg.payload_len, seg.wire_len);
        }
        if (seg.family == 4) {
            static const uint8_t zero[12];
            FZ_CHECK(memcmp(seg.src + 4, zero, 12) == 0 &&
                         memcmp(seg.dst + 4, zero, 12) == 0,
                     "IPv4 address bytes 4..15 are not zero");
        }
        fz_touch(seg.payload, seg.payload_len);
    }

    /* Deterministic: the same record decodes the same way. */
    struct tcp_segment again;
    memset(&again, 0x5a, sizeof(again));
    enum decode_verdict v2 =
        decode_packet(linktype, pkt, caplen, wirelen, &again);
    FZ_CHECK(v2 == v, "second decode gave %d, first %d", v2, v);
    if (v == DECODE_TCP) {
        FZ_CHECK(again.family == seg.family && again.flags == seg.flags &&
                     again.sport == seg.sport && again.dport == seg.dport &&
                     again.seq == seg.seq && again.ack == seg.ack &&
                     again.payload == seg.payload &&
                     again.payload_len == seg.payload_len &&
                     again.wire_len == seg.wire_len &&
                     memcmp(again.src, seg.src, 16) == 0 &&
                     memcmp(again.dst, seg.dst, 16) == 0,
                 "second decode differs");
    }

    /* A record cut shorter never decodes to more payload. */
    if (v == DECODE_TCP && caplen > 0) {
        size_t cut = caplen - 1 - (size_t)(fz_mix(caplen) % caplen);
        struct tcp_segment s3;
        enum decode_verdict v3 = decode_packet(linktype, pkt, cut, wirelen, &s3);
        if (v3 == DECODE_TCP) {
            FZ_CHECK(fz_within(s3.payload, s3.payload_len, pkt, cut),
                     "cut record: payload outside the record");
            FZ_CHECK(s3.payload_len <= seg.payload_len,
                     "cut record has more payload (%u > %u)", s3.payload_len,
                     seg.payload_len);
        }
    }
    free(pkt);
    return 0;
}
