#include "decode.h"

#include <string.h>

#include "wire.h"

#define ETHERTYPE_IPV4  0x0800
#define ETHERTYPE_IPV6  0x86dd
#define ETHERTYPE_VLAN  0x8100
#define ETHERTYPE_QINQ  0x88a8
#define ETHERTYPE_QINQ1 0x9100
#define ETHERTYPE_QINQ2 0x9200

/* More nested VLAN tags than any real network uses: a packet with more is
 * malformed, and the bound keeps the loop finite. */
#define MAX_VLAN_TAGS 8
/* Bound on an IPv6 extension header chain (RFC 8200 allows any order but
 * real stacks send a handful). */
#define MAX_IPV6_EXT_HEADERS 16

#define IPPROTO_TCP_NUM   6
#define IPV6_HOPOPTS      0
#define IPV6_ROUTING      43
#define IPV6_FRAGMENT     44
#define IPV6_ESP          50
#define IPV6_AH           51
#define IPV6_NONE         59
#define IPV6_DSTOPTS      60
#define IPV6_MOBILITY     135
#define IPV6_HIP          139
#define IPV6_SHIM6        140

/* The packet being decoded: the bytes present, and whether the snap
 * length cut the packet (so running off the end means "truncated"
 * rather than "malformed"). */
struct cursor {
    const uint8_t *pkt;
    size_t caplen;
    size_t wirelen; /* the packet's length on the wire (>= caplen) */
    bool cut;
};

static enum decode_verdict short_of(const struct cursor *c)
{
    return c->cut ? DECODE_TRUNCATED : DECODE_MALFORMED;
}

/* Whether `n` bytes starting at `off` were captured. The one bounds
 * check of this file: written so that neither side can overflow, however
 * large `off` grew from hostile length fields. */
static bool has(const struct cursor *c, size_t off, size_t n)
{
    return off <= c->caplen && n <= c->caplen - off;
}

bool decode_link_supported(int linktype)
{
    switch (linktype) {
    case LINKTYPE_NULL:
    case LINKTYPE_ETHERNET:
    case LINKTYPE_RAW:
    case LINKTYPE_LOOP:
    case LINKTYPE_LINUX_SLL:
    case LINKTYPE_IPV4:
    case LINKTYPE_IPV6:
    case LINKTYPE_LINUX_SLL2:
        return true;
    default:
        return false;
    }
}

const char *decode_verdict_name(enum decode_verdict v)
{
    switch (v) {
    case DECODE_TCP:
        return "tcp";
    case DECODE_NOT_IP:
        return "not_ip";
    case DECODE_NOT_TCP:
        return "not_tcp";
    case DECODE_FRAGMENT:
        return "fragment";
    case DECODE_TRUNCATED:
        return "truncated";
    case DECODE_MALFORMED:
        return "malformed";
    case DECODE_BAD_LINK:
        return "bad_link";
    case DECODE_VERDICT_COUNT:
        break;
    }
    return "unknown";
}

/*
 * TCP header at `off`; `seglen` is the TCP segment length according to
 * the IP header (header plus payload on the wire).
 */
static enum decode_verdict decode_tcp(const struct cursor *c, size_t off,
                                      size_t seglen, struct tcp_segment *seg)
{
    if (seglen < 20) {
        return DECODE_MALFORMED;
    }
    if (!has(c, off, 20)) {
        return short_of(c);
    }
    const uint8_t *th = c->pkt + off;
    size_t hlen = (size_t)(th[12] >> 4) * 4;
    if (hlen < 20 || hlen > seglen) {
        return DECODE_MALFORMED;
    }
    if (!has(c, off, hlen)) {
        return short_of(c);
    }
    seg->sport = rd_be16(th);
    seg->dport = rd_be16(th + 2);
    seg->seq = rd_be32(th + 4);
    seg->ack = rd_be32(th + 8);
    seg->flags = th[13];
    size_t avail = c->caplen - off - hlen;
    size_t wire = seglen - hlen;
    seg->tcp = th;
    seg->payload = th + hlen;
    seg->wire_len = (uint32_t)wire;
    seg->payload_len = (uint32_t)(avail < wire ? avail : wire);
    return DECODE_TCP;
}

/* Length of what follows an IP header, when the header's own length field
 * is zero: TSO/GRO packets larger than 64 KiB are captured that way. */
static size_t zero_length_fallback(const struct cursor *c, size_t off)
{
    return c->caplen - off;
}

static enum decode_verdict decode_ipv4(const struct cursor *c, size_t off,
                                       struct tcp_segment *seg)
{
    if (!has(c, off, 20)) {
        return short_of(c);
    }
    const uint8_t *ip = c->pkt + off;
    if ((ip[0] >> 4) != 4) {
        return DECODE_MALFORMED;
    }
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
    size_t total = rd_be16(ip + 2);
    if (ihl < 20) {
        return DECODE_MALFORMED;
    }
    if (total == 0 && !c->cut) {
        total = zero_length_fallback(c, off);
    }
    if (total < ihl) {
        return DECODE_MALFORMED;
    }
    uint16_t frag = rd_be16(ip + 6);
    if ((frag & 0x3fff) != 0) { /* more-fragments flag or an offset */
        return DECODE_FRAGMENT;
    }
    if (ip[9] != IPPROTO_TCP_NUM) {
        return DECODE_NOT_TCP;
    }
    if (!has(c, off, ihl)) {
        return short_of(c);
    }
    /* A total length beyond what was captured is normal for a cut
     * record. Beyond what the packet held on the wire, the header lies:
     * a whole record is malformed, a cut one is taken at the record's
     * own word (its original length). */
    if (total > c->wirelen - off) {
        if (!c->cut) {
            return DECODE_MALFORMED;
        }
        total = c->wirelen - off;
        if (total < ihl) {
            return DECODE_MALFORMED;
        }
    }
    seg->family = 4;
    memset(seg->src, 0, sizeof(seg->src));
    memset(seg->dst, 0, sizeof(seg->dst));
    memcpy(seg->src, ip + 12, 4);
    memcpy(seg->dst, ip + 16, 4);
    return decode_tcp(c, off + ihl, total - ihl, seg);
}

static enum decode_verdict decode_ipv6(const struct cursor *c, size_t off,
                                       struct tcp_segment *seg)
{
    if (!has(c, off, 40)) {
        return short_of(c);
    }
    const uint8_t *ip = c->pkt + off;
    if ((ip[0] >> 4) != 6) {
        return DECODE_MALFORMED;
    }
    size_t remaining = rd_be16(ip + 4); /* bytes after the fixed header */
    if (remaining == 0 && !c->cut) {
        remaining = zero_length_fallback(c, off + 40);
    }
    if (remaining > c->wirelen - off - 40) {
        if (!c->cut) {
            return DECODE_MALFORMED;
        }
        remaining = c->wirelen - off - 40;
    }
    uint8_t next = ip[6];
    size_t pos = off + 40;
    for (int n = 0;; n++) {
        if (next == IPPROTO_TCP_NUM) {
            break;
        }
        if (n >= MAX_IPV6_EXT_HEADERS) {
            return DECODE_MALFORMED;
        }
        size_t extlen;
        switch (next) {
        case IPV6_HOPOPTS:
        case IPV6_ROUTING:
        case IPV6_DSTOPTS:
        case IPV6_MOBILITY:
        case IPV6_HIP:
        case IPV6_SHIM6:
        case IPV6_AH:
        case IPV6_FRAGMENT:
            break;
        default: /* ESP, no-next-header, UDP, ICMPv6 ... */
            return DECODE_NOT_TCP;
        }
        if (!has(c, pos, 8)) {
            return short_of(c);
        }
        const uint8_t *eh = c->pkt + pos;
        if (next == IPV6_FRAGMENT) {
            uint16_t offflags = rd_be16(eh + 2);
            /* An atomic fragment (offset 0, no more fragments) is a whole
             * packet; anything else is part of one. */
            if ((offflags & 0xfff9) != 0) {
                return DECODE_FRAGMENT;
            }
            extlen = 8;
        } else if (next == IPV6_AH) {
            extlen = ((size_t)eh[1] + 2) * 4;
        } else {
            extlen = ((size_t)eh[1] + 1) * 8;
        }
        if (extlen > remaining) {
            return DECODE_MALFORMED;
        }
        remaining -= extlen;
        pos += extlen;
        next = eh[0];
    }
    seg->family = 6;
    memcpy(seg->src, ip + 8, 16);
    memcpy(seg->dst, ip + 24, 16);
    return decode_tcp(c, pos, remaining, seg);
}

/* Dispatch on an Ethernet type at `off`, skipping VLAN tags. `type_off`
 * is where the type field itself sits. */
static enum decode_verdict decode_ethertype(const struct cursor *c,
                                            size_t type_off, size_t off,
                                            struct tcp_segment *seg)
{
    for (int tags = 0;; tags++) {
        if (!has(c, type_off, 2)) {
            return short_of(c);
        }
        uint16_t type = rd_be16(c->pkt + type_off);
        switch (type) {
        case ETHERTYPE_IPV4:
            return decode_ipv4(c, off, seg);
        case ETHERTYPE_IPV6:
            return decode_ipv6(c, off, seg);
        case ETHERTYPE_VLAN:
        case ETHERTYPE_QINQ:
        case ETHERTYPE_QINQ1:
        case ETHERTYPE_QINQ2:
            if (tags >= MAX_VLAN_TAGS) {
                return DECODE_MALFORMED;
            }
            /* A tag is 2 bytes of TCI then the next type. */
            type_off = off + 2;
            off += 4;
            break;
        default:
            return DECODE_NOT_IP;
        }
    }
}

/* Raw IP: the version nibble says which. */
static enum decode_verdict decode_raw_ip(const struct cursor *c, size_t off,
                                         struct tcp_segment *seg)
{
    if (!has(c, off, 1)) {
        return short_of(c);
    }
    switch (c->pkt[off] >> 4) {
    case 4:
        return decode_ipv4(c, off, seg);
    case 6:
        return decode_ipv6(c, off, seg);
    default:
        return DECODE_NOT_IP;
    }
}

/* BSD address families for IPv6 differ by system: Linux 10, NetBSD and
 * OpenBSD 24, FreeBSD 28, macOS 30. */
static enum decode_verdict decode_loopback_family(const struct cursor *c,
                                                  uint32_t family,
                                                  struct tcp_segment *seg)
{
    switch (family) {
    case 2:
        return decode_ipv4(c, 4, seg);
    case 10:
    case 24:
    case 28:
    case 30:
        return decode_ipv6(c, 4, seg);
    default:
        return DECODE_NOT_IP;
    }
}

enum decode_verdict decode_packet(int linktype, const uint8_t *pkt,
                                  size_t caplen, size_t wirelen,
                                  struct tcp_segment *seg)
{
    struct cursor c = {pkt, caplen, caplen < wirelen ? wirelen : caplen,
                       caplen < wirelen};
    switch (linktype) {
    case LINKTYPE_ETHERNET:
        if (!has(&c, 0, 14)) {
            return short_of(&c);
        }
        return decode_ethertype(&c, 12, 14, seg);
    case LINKTYPE_LINUX_SLL:
        if (!has(&c, 0, 16)) {
            return short_of(&c);
        }
        return decode_ethertype(&c, 14, 16, seg);
    case LINKTYPE_LINUX_SLL2:
        if (!has(&c, 0, 20)) {
            return short_of(&c);
        }
        return decode_ethertype(&c, 0, 20, seg);
    case LINKTYPE_RAW:
        return decode_raw_ip(&c, 0, seg);
    case LINKTYPE_IPV4:
        return decode_ipv4(&c, 0, seg);
    case LINKTYPE_IPV6:
        return decode_ipv6(&c, 0, seg);
    case LINKTYPE_NULL: {
        if (!has(&c, 0, 4)) {
            return short_of(&c);
        }
        /* Host byte order of the machine that captured: a family number
         * is small, so a value with high bits set is the other order. */
        uint32_t family = rd_le32(pkt);
        if (family > 0xffff) {
            family = rd_be32(pkt);
        }
        return decode_loopback_family(&c, family, seg);
    }
    case LINKTYPE_LOOP:
        if (!has(&c, 0, 4)) {
            return short_of(&c);
        }
        return decode_loopback_family(&c, rd_be32(pkt), seg);
    default:
        return DECODE_BAD_LINK;
    }
}
