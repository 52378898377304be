/*
 * Test helpers: build link/IP/TCP frames and pcap/pcapng byte streams.
 * Everything is static inline so that each test executable takes what it
 * uses without warnings about unused functions.
 *
 * Frames are described by a struct pb_pkt (zero means "the usual"; fields
 * with a matching *_raw flag are written literally) and built into a
 * caller buffer by pb_build(), which returns the frame length and can
 * report where the TCP payload starts.
 */
#ifndef TAPMIRROR_TEST_PKTBUILD_H
#define TAPMIRROR_TEST_PKTBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- byte writers ---- */

static inline void pb_w16(uint8_t *p, uint16_t v, bool be)
{
    if (be) {
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
    } else {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
    }
}

static inline void pb_w32(uint8_t *p, uint32_t v, bool be)
{
    if (be) {
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
    } else {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
    }
}

/* ---- frames ---- */

#define PB_PROTO_TCP 6
#define PB_PROTO_UDP 17

/* One IPv6 extension header. `type` is the protocol number naming it
 * (0 hop-by-hop, 43 routing, 44 fragment, 51 AH, 60 destination options,
 * 50 ESP...). `len_field` is the header's length byte (units of 8 bytes
 * beyond the first 8; for AH, 4-byte units minus 2). For a fragment
 * header `frag` is the offset/flags field. ESP is written as 8 opaque
 * bytes (the decoder must stop at it). */
struct pb_ext {
    uint8_t type;
    uint8_t len_field;
    uint16_t frag;
};

struct pb_pkt {
    /* link layer */
    int n_tags;           /* VLAN tags (Ethernet, SLL, SLL2) */
    uint16_t tpid[4];     /* each tag's type; 0 means 0x8100 */
    uint16_t ethertype;   /* 0: derived from the IP family */
    uint32_t family_code; /* NULL / LOOP: 0 means 2 (IPv4) or 30 (IPv6) */
    bool null_be;         /* NULL: write the family big-endian */
    size_t link_pad;      /* bytes after the IP packet (Ethernet padding) */
    /* IP */
    int family;           /* 4 or 6 (0 means 4) */
    uint8_t src[16], dst[16];
    uint8_t proto;        /* 0: TCP */
    const uint8_t *ip4_opts;
    size_t ip4_optlen;    /* multiple of 4 */
    uint16_t ip4_frag;    /* flags and fragment offset field */
    uint8_t ip4_ihl;      /* with ip4_ihl_raw: written literally */
    bool ip4_ihl_raw;
    uint16_t ip_len;      /* with ip_len_raw: IPv4 total length or IPv6
                             payload length written literally */
    bool ip_len_raw;
    const struct pb_ext *ext;
    size_t n_ext;
    /* TCP */
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    const uint8_t *tcp_opts;
    size_t tcp_optlen;    /* multiple of 4 */
    uint8_t tcp_doff;     /* with tcp_doff_raw: data offset in words */
    bool tcp_doff_raw;
    const uint8_t *payload;
    size_t len;
};

/* Frame and offsets of one built packet. */
struct pb_info {
    size_t len;         /* whole frame */
    size_t ip_off;      /* where the IP header starts */
    size_t l4_off;      /* where the TCP header starts */
    size_t payload_off; /* where the TCP payload starts */
};

static inline void pb_ip4(struct pb_pkt *p, uint8_t a, uint8_t b, uint8_t c,
                          uint8_t d, uint8_t e, uint8_t f, uint8_t g,
                          uint8_t h)
{
    p->family = 4;
    memset(p->src, 0, sizeof(p->src));
    memset(p->dst, 0, sizeof(p->dst));
    p->src[0] = a;
    p->src[1] = b;
    p->src[2] = c;
    p->src[3] = d;
    p->dst[0] = e;
    p->dst[1] = f;
    p->dst[2] = g;
    p->dst[3] = h;
}

/* 2001:db8::<s> -> 2001:db8::<d> */
static inline void pb_ip6(struct pb_pkt *p, uint8_t s, uint8_t d)
{
    p->family = 6;
    memset(p->src, 0, sizeof(p->src));
    memset(p->dst, 0, sizeof(p->dst));
    p->src[0] = 0x20;
    p->src[1] = 0x01;
    p->src[2] = 0x0d;
    p->src[3] = 0xb8;
    p->src[15] = s;
    memcpy(p->dst, p->src, 16);
    p->dst[15] = d;
}

/* Builds the TCP (or UDP) segment at `b`; returns its length. */
static inline size_t pb_l4(uint8_t *b, const struct pb_pkt *p,
                           size_t *hdr_len)
{
    uint8_t proto = p->proto ? p->proto : PB_PROTO_TCP;
    if (proto == PB_PROTO_UDP) {
        pb_w16(b, p->sport, true);
        pb_w16(b + 2, p->dport, true);
        pb_w16(b + 4, (uint16_t)(8 + p->len), true);
        pb_w16(b + 6, 0, true);
        if (p->len > 0) {
            memcpy(b + 8, p->payload, p->len);
        }
        *hdr_len = 8;
        return 8 + p->len;
    }
    size_t hlen = 20 + p->tcp_optlen;
    pb_w16(b, p->sport, true);
    pb_w16(b + 2, p->dport, true);
    pb_w32(b + 4, p->seq, true);
    pb_w32(b + 8, p->ack, true);
    uint8_t doff = p->tcp_doff_raw ? p->tcp_doff : (uint8_t)(hlen / 4);
    b[12] = (uint8_t)(doff << 4);
    b[13] = p->flags;
    pb_w16(b + 14, 65535, true); /* window */
    pb_w16(b + 16, 0, true);     /* checksum: never verified */
    pb_w16(b + 18, 0, true);
    if (p->tcp_optlen > 0) {
        memcpy(b + 20, p->tcp_opts, p->tcp_optlen);
    }
    if (p->len > 0) {
        memcpy(b + hlen, p->payload, p->len);
    }
    *hdr_len = hlen;
    return hlen + p->len;
}

/* Builds the IP packet at `b`; returns its length. */
static inline size_t pb_ippkt(uint8_t *b, const struct pb_pkt *p,
                              struct pb_info *info, size_t base)
{
    uint8_t proto = p->proto ? p->proto : PB_PROTO_TCP;
    size_t l4hdr;
    if (p->family == 6) {
        size_t pos = 40;
        uint8_t first = p->n_ext > 0 ? p->ext[0].type : proto;
        for (size_t i = 0; i < p->n_ext; i++) {
            const struct pb_ext *x = &p->ext[i];
            uint8_t next = i + 1 < p->n_ext ? p->ext[i + 1].type : proto;
            size_t xlen;
            if (x->type == 44) {
                xlen = 8;
            } else if (x->type == 51) {
                xlen = ((size_t)x->len_field + 2) * 4;
            } else if (x->type == 50) {
                xlen = 8;
            } else {
                xlen = ((size_t)x->len_field + 1) * 8;
            }
            memset(b + pos, 0, xlen);
            if (x->type == 50) {
                pb_w32(b + pos, 0x1234, true); /* SPI */
                pb_w32(b + pos + 4, 1, true);  /* sequence */
            } else {
                b[pos] = next;
                b[pos + 1] = x->type == 44 ? 0 : x->len_field;
                if (x->type == 44) {
                    pb_w16(b + pos + 2, x->frag, true);
                    pb_w32(b + pos + 4, 0xabcd, true);
                } else if (x->type != 51) {
                    /* PadN option filling the header. */
                    b[pos + 2] = 1;
                    b[pos + 3] = (uint8_t)(xlen - 4);
                }
            }
            pos += xlen;
        }
        info->l4_off = base + pos;
        size_t l4 = pb_l4(b + pos, p, &l4hdr);
        size_t total = pos + l4;
        b[0] = 0x60;
        b[1] = 0;
        b[2] = 0;
        b[3] = 0;
        pb_w16(b + 4, p->ip_len_raw ? p->ip_len : (uint16_t)(total - 40),
               true);
        b[6] = first;
        b[7] = 64;
        memcpy(b + 8, p->src, 16);
        memcpy(b + 24, p->dst, 16);
        info->payload_off = info->l4_off + l4hdr;
        return total;
    }
    size_t ihl = 20 + p->ip4_optlen;
    info->l4_off = base + ihl;
    size_t l4 = pb_l4(b + ihl, p, &l4hdr);
    size_t total = ihl + l4;
    uint8_t ihl_words = p->ip4_ihl_raw ? p->ip4_ihl : (uint8_t)(ihl / 4);
    b[0] = (uint8_t)(0x40 | (ihl_words & 0x0f));
    b[1] = 0;
    pb_w16(b + 2, p->ip_len_raw ? p->ip_len : (uint16_t)total, true);
    pb_w16(b + 4, 0x1234, true);
    pb_w16(b + 6, p->ip4_frag, true);
    b[8] = 64;
    b[9] = proto;
    pb_w16(b + 10, 0, true);
    memcpy(b + 12, p->src, 4);
    memcpy(b + 16, p->dst, 4);
    if (p->ip4_optlen > 0) {
        memcpy(b + 20, p->ip4_opts, p->ip4_optlen);
    }
    info->payload_off = info->l4_off + l4hdr;
    return total;
}

static inline uint16_t pb_ethertype(const struct pb_pkt *p)
{
    if (p->ethertype != 0) {
        return p->ethertype;
    }
    return p->family == 6 ? 0x86dd : 0x0800;
}

/* Writes VLAN tags and the final type at `b` (where the first type field
 * sits); returns the bytes written. */
static inline size_t pb_tags(uint8_t *b, const struct pb_pkt *p)
{
    size_t pos = 0;
    for (int i = 0; i < p->n_tags; i++) {
        pb_w16(b + pos, p->tpid[i] ? p->tpid[i] : 0x8100, true);
        pb_w16(b + pos + 2, (uint16_t)(100 + i), true); /* TCI: VLAN id */
        pos += 4;
    }
    pb_w16(b + pos, pb_ethertype(p), true);
    return pos + 2;
}

/* Link types, as in decode.h (repeated so that the helper stands
 * alone). */
#define PB_LINK_NULL     0
#define PB_LINK_ETHERNET 1
#define PB_LINK_RAW      101
#define PB_LINK_LOOP     108
#define PB_LINK_SLL      113
#define PB_LINK_IPV4     228
#define PB_LINK_IPV6     229
#define PB_LINK_SLL2     276

/*
 * Builds the frame into `buf` (which must be large enough: 128 bytes of
 * headers plus options, extension headers and payload). Returns the
 * frame length; fills `info` if not NULL.
 */
static inline size_t pb_build(uint8_t *buf, int linktype,
                              const struct pb_pkt *pin, struct pb_info *info)
{
    struct pb_pkt p = *pin;
    struct pb_info tmp;
    if (info == NULL) {
        info = &tmp;
    }
    if (p.family == 0) {
        p.family = 4;
    }
    size_t off = 0;
    switch (linktype) {
    case PB_LINK_ETHERNET:
        for (int i = 0; i < 6; i++) {
            buf[i] = (uint8_t)(0x02 + i);     /* destination MAC */
            buf[6 + i] = (uint8_t)(0x12 + i); /* source MAC */
        }
        off = 12 + pb_tags(buf + 12, &p);
        break;
    case PB_LINK_SLL:
        pb_w16(buf, 0, true);     /* packet type: to us */
        pb_w16(buf + 2, 1, true); /* ARPHRD_ETHER */
        pb_w16(buf + 4, 6, true); /* address length */
        memset(buf + 6, 0, 8);
        buf[6] = 0x12;
        off = 14 + pb_tags(buf + 14, &p);
        break;
    case PB_LINK_SLL2: {
        /* The protocol comes first; tags, if any, follow the header. */
        struct pb_pkt q = p;
        q.n_tags = 0;
        if (p.n_tags > 0) {
            q.ethertype = p.tpid[0] ? p.tpid[0] : 0x8100;
        }
        pb_tags(buf, &q); /* just the protocol field */
        pb_w16(buf + 2, 0, true);     /* reserved */
        pb_w32(buf + 4, 3, true);     /* interface index */
        pb_w16(buf + 8, 1, true);     /* ARPHRD_ETHER */
        buf[10] = 0;                  /* packet type */
        buf[11] = 6;                  /* address length */
        memset(buf + 12, 0, 8);
        off = 20;
        if (p.n_tags > 0) {
            /* TCI, then the remaining tags' types and the final type. */
            for (int i = 0; i < p.n_tags; i++) {
                pb_w16(buf + off, (uint16_t)(100 + i), true);
                uint16_t nt = i + 1 < p.n_tags
                                  ? (p.tpid[i + 1] ? p.tpid[i + 1] : 0x8100)
                                  : pb_ethertype(&p);
                pb_w16(buf + off + 2, nt, true);
                off += 4;
            }
        }
        break;
    }
    case PB_LINK_NULL: {
        uint32_t fam = p.family_code ? p.family_code
                                     : (p.family == 6 ? 30u : 2u);
        pb_w32(buf, fam, p.null_be);
        off = 4;
        break;
    }
    case PB_LINK_LOOP: {
        uint32_t fam = p.family_code ? p.family_code
                                     : (p.family == 6 ? 24u : 2u);
        pb_w32(buf, fam, true);
        off = 4;
        break;
    }
    default: /* RAW, IPV4, IPV6: the IP header comes first */
        off = 0;
        break;
    }
    info->ip_off = off;
    size_t iplen = pb_ippkt(buf + off, &p, info, off);
    size_t len = off + iplen;
    if (p.link_pad > 0) {
        memset(buf + len, 0, p.link_pad);
        len += p.link_pad;
    }
    info->len = len;
    return len;
}

/* The usual test packet: IPv4 10.0.0.1 -> 10.0.0.2, TCP. */
static inline struct pb_pkt pb_tcp4(uint16_t sport, uint16_t dport,
                                    uint32_t seq, uint32_t ack,
                                    uint8_t flags, const void *payload,
                                    size_t len)
{
    struct pb_pkt p;
    memset(&p, 0, sizeof(p));
    pb_ip4(&p, 10, 0, 0, 1, 10, 0, 0, 2);
    p.sport = sport;
    p.dport = dport;
    p.seq = seq;
    p.ack = ack;
    p.flags = flags;
    p.payload = payload;
    p.len = len;
    return p;
}

/* ---- byte streams ---- */

struct pb_buf {
    uint8_t *p;
    size_t len, cap;
};

static inline uint8_t *pb_grow(struct pb_buf *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) {
            cap *= 2;
        }
        uint8_t *np = realloc(b->p, cap);
        if (np == NULL) {
            abort();
        }
        b->p = np;
        b->cap = cap;
    }
    uint8_t *at = b->p + b->len;
    memset(at, 0, n);
    b->len += n;
    return at;
}

static inline void pb_append(struct pb_buf *b, const void *data, size_t n)
{
    uint8_t *at = pb_grow(b, n);
    if (n > 0) {
        memcpy(at, data, n);
    }
}

static inline void pb_free(struct pb_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

#define PB_PCAP_MAGIC_US       0xa1b2c3d4u
#define PB_PCAP_MAGIC_NS       0xa1b23c4du
#define PB_PCAP_MAGIC_MODIFIED 0xa1b2cd34u

/* A pcap global header, written in the byte order `be`. */
static inline void pb_pcap_header(struct pb_buf *b, uint32_t magic, bool be,
                                  uint32_t snaplen, uint32_t linktype)
{
    uint8_t *h = pb_grow(b, 24);
    pb_w32(h, magic, be);
    pb_w16(h + 4, 2, be);
    pb_w16(h + 6, 4, be);
    pb_w32(h + 8, 0, be);
    pb_w32(h + 12, 0, be);
    pb_w32(h + 16, snaplen, be);
    pb_w32(h + 20, linktype, be);
}

/* A pcap record: 16-byte header (24 with `modified`), then `caplen` bytes
 * of `data` (zeros if NULL). */
static inline void pb_pcap_record(struct pb_buf *b, bool be, bool modified,
                                  uint32_t sec, uint32_t frac,
                                  uint32_t caplen, uint32_t wirelen,
                                  const void *data)
{
    size_t hl = modified ? 24 : 16;
    uint8_t *h = pb_grow(b, hl);
    pb_w32(h, sec, be);
    pb_w32(h + 4, frac, be);
    pb_w32(h + 8, caplen, be);
    pb_w32(h + 12, wirelen, be);
    if (modified) {
        pb_w32(h + 16, 7, be); /* ifindex */
        pb_w16(h + 20, 0x0800, be); /* protocol */
        h[22] = 0;                  /* packet type */
        h[23] = 0;
    }
    uint8_t *d = pb_grow(b, caplen);
    if (data != NULL && caplen > 0) {
        memcpy(d, data, caplen);
    }
}

static inline size_t pb_pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* A pcapng block with `body` (padded to 4 bytes) between the type/length
 * header and the trailing length. Returns the offset of the block. */
static inline size_t pb_ng_block(struct pb_buf *b, bool be, uint32_t type,
                                 const void *body, size_t body_len)
{
    size_t at = b->len;
    size_t total = 12 + pb_pad4(body_len);
    uint8_t *h = pb_grow(b, total);
    pb_w32(h, type, be);
    pb_w32(h + 4, (uint32_t)total, be);
    if (body_len > 0) {
        memcpy(h + 8, body, body_len);
    }
    pb_w32(h + total - 4, (uint32_t)total, be);
    return at;
}

static inline void pb_ng_shb(struct pb_buf *b, bool be)
{
    uint8_t body[16];
    pb_w32(body, 0x1a2b3c4du, be);
    pb_w16(body + 4, 1, be);
    pb_w16(body + 6, 0, be);
    pb_w32(body + 8, 0xffffffffu, be); /* section length: unknown */
    pb_w32(body + 12, 0xffffffffu, be);
    pb_ng_block(b, be, 0x0a0d0d0au, body, sizeof(body));
}

/* An interface description block. `tsresol` 0 means no if_tsresol option;
 * `has_tsoffset` adds if_tsoffset = `tsoffset` seconds. */
static inline void pb_ng_idb(struct pb_buf *b, bool be, uint16_t linktype,
                             uint32_t snaplen, uint8_t tsresol,
                             bool has_tsoffset, int64_t tsoffset)
{
    uint8_t body[64];
    size_t n = 0;
    pb_w16(body, linktype, be);
    pb_w16(body + 2, 0, be);
    pb_w32(body + 4, snaplen, be);
    n = 8;
    if (tsresol != 0) {
        pb_w16(body + n, 9, be);
        pb_w16(body + n + 2, 1, be);
        body[n + 4] = tsresol;
        body[n + 5] = body[n + 6] = body[n + 7] = 0;
        n += 8;
    }
    if (has_tsoffset) {
        uint64_t v = (uint64_t)tsoffset;
        pb_w16(body + n, 14, be);
        pb_w16(body + n + 2, 8, be);
        if (be) {
            pb_w32(body + n + 4, (uint32_t)(v >> 32), true);
            pb_w32(body + n + 8, (uint32_t)v, true);
        } else {
            pb_w32(body + n + 4, (uint32_t)v, false);
            pb_w32(body + n + 8, (uint32_t)(v >> 32), false);
        }
        n += 12;
    }
    if (n > 8) {
        pb_w16(body + n, 0, be); /* opt_endofopt */
        pb_w16(body + n + 2, 0, be);
        n += 4;
    }
    pb_ng_block(b, be, 1, body, n);
}

/* An enhanced packet block (type 6) or, with `obsolete`, a packet block
 * (type 2, 16-bit interface id and drops count). */
static inline void pb_ng_epb_any(struct pb_buf *b, bool be, bool obsolete,
                                 uint32_t iface, uint64_t ts,
                                 uint32_t caplen, uint32_t wirelen,
                                 const void *data)
{
    size_t body_len = 20 + pb_pad4(caplen);
    uint8_t *body = calloc(1, body_len);
    if (body == NULL) {
        abort();
    }
    if (obsolete) {
        pb_w16(body, (uint16_t)iface, be);
        pb_w16(body + 2, 0, be); /* drops */
    } else {
        pb_w32(body, iface, be);
    }
    pb_w32(body + 4, (uint32_t)(ts >> 32), be);
    pb_w32(body + 8, (uint32_t)ts, be);
    pb_w32(body + 12, caplen, be);
    pb_w32(body + 16, wirelen, be);
    if (data != NULL && caplen > 0) {
        memcpy(body + 20, data, caplen);
    }
    pb_ng_block(b, be, obsolete ? 2u : 6u, body, body_len);
    free(body);
}

static inline void pb_ng_epb(struct pb_buf *b, bool be, uint32_t iface,
                             uint64_t ts, uint32_t caplen, uint32_t wirelen,
                             const void *data)
{
    pb_ng_epb_any(b, be, false, iface, ts, caplen, wirelen, data);
}

/* A simple packet block: original length, then the packet. */
static inline void pb_ng_spb(struct pb_buf *b, bool be, uint32_t wirelen,
                             const void *data, size_t len)
{
    size_t body_len = 4 + pb_pad4(len);
    uint8_t *body = calloc(1, body_len);
    if (body == NULL) {
        abort();
    }
    pb_w32(body, wirelen, be);
    if (len > 0) {
        memcpy(body + 4, data, len);
    }
    pb_ng_block(b, be, 3, body, body_len);
    free(body);
}

#endif
