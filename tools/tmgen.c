/*
 * tmgen: writes a deterministic pcap or pcapng capture of synthetic TCP
 * conversations towards one server port, plus a JSON manifest that says
 * exactly which client bytes a correct reassembler delivers for each
 * connection.
 *
 * Output is streamed through one fixed buffer, so memory is bounded by
 * --concurrency and not by the capture size. Payload bytes are a pure
 * function of (seed, flow, stream offset): retransmissions and the manifest
 * checksum regenerate them instead of keeping copies.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET_BASIS 0xcbf29ce484222325ULL
#define FNV_PRIME        0x100000001b3ULL
#define GOLDEN_GAMMA     0x9e3779b97f4a7c15ULL

#define MAX_SEGMENT     65000u
#define MAX_SNAPLEN     262144u
#define FRAME_MAX       (MAX_SEGMENT + 256u)
#define OUT_BUFFER_SIZE (4u << 20)
#define HOLD_MAX        16u
#define SEG_WINDOW      32u
#define CLIENT_ADDRS    1000u
#define CLIENT_PORTS    64511u /* 1024..65535 minus the server port */
#define PORT_STRIDE     7919u  /* prime, so coprime with CLIENT_PORTS */
#define MAX_FLOWS       ((uint64_t)CLIENT_ADDRS * CLIENT_PORTS)
#define MAX_CONCURRENCY 1000000u
#define MAX_FLOW_SIZE   (1ULL << 40)
#define HTTP_BODY_LEN   1024u
#define OTHER_MAX_LEN   200u

#define TCP_FIN 0x01u
#define TCP_SYN 0x02u
#define TCP_RST 0x04u
#define TCP_PSH 0x08u
#define TCP_ACK 0x10u

#define ETHERTYPE_IPV4 0x0800u
#define ETHERTYPE_ARP  0x0806u
#define ETHERTYPE_IPV6 0x86ddu
#define ETHERTYPE_VLAN 0x8100u
#define ETHERTYPE_QINQ 0x88a8u

#define PROTO_TCP 6u
#define PROTO_UDP 17u

enum link_kind {
    LINK_ETHERNET,
    LINK_VLAN,
    LINK_QINQ,
    LINK_SLL,
    LINK_SLL2,
    LINK_RAW,
    LINK_NULL,
    LINK_LOOP,
    LINK_IPV4,
    LINK_IPV6,
    LINK_COUNT
};

struct link_desc {
    const char *name;
    uint32_t linktype;
    size_t header_len;
    bool ethernet; /* carries Ethernet frames, so ARP can appear */
};

static const struct link_desc link_table[LINK_COUNT] = {
    [LINK_ETHERNET] = {"ethernet", 1, 14, true},
    [LINK_VLAN] = {"vlan", 1, 18, true},
    [LINK_QINQ] = {"qinq", 1, 22, true},
    [LINK_SLL] = {"sll", 113, 16, false},
    [LINK_SLL2] = {"sll2", 276, 20, false},
    [LINK_RAW] = {"raw", 101, 0, false},
    [LINK_NULL] = {"null", 0, 4, false},
    [LINK_LOOP] = {"loop", 108, 4, false},
    [LINK_IPV4] = {"ipv4", 228, 0, false},
    [LINK_IPV6] = {"ipv6", 229, 0, false},
};

struct options {
    const char *output;
    const char *manifest;
    uint64_t flows;
    uint64_t size;
    uint64_t size_min;
    uint64_t size_max;
    bool size_min_set;
    bool size_max_set;
    uint64_t response;
    uint64_t concurrency;
    uint32_t segment;
    bool random_segments;
    double reorder;
    double retransmit;
    double loss;
    double midstream;
    double rst;
    double other_traffic;
    uint32_t snaplen;
    bool isn_wrap;
    bool ipv6;
    bool ip_options;
    bool tcp_options;
    bool tfo;
    bool no_acks;
    bool nanos;
    bool big_endian;
    bool pcapng;
    bool http;
    enum link_kind link;
    unsigned interfaces;
    uint16_t port;
    uint64_t start_time;
    uint64_t step_us;
    uint64_t seed;
};

/* ---- Random numbers: splitmix64 seeding, xoshiro256** streams ---- */

struct rng {
    uint64_t s[4];
};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (unsigned i = 0; i < 4; i++) {
        seed += GOLDEN_GAMMA;
        r->s[i] = mix64(seed);
    }
}

static uint64_t rotl64(uint64_t x, unsigned k)
{
    return (x << k) | (x >> (64u - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5u, 7) * 9u;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, n); the modulo bias is irrelevant for test data. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    uint64_t v = rng_next(r);
    return n == 0 ? 0 : v % n;
}

/* Always draws, so enabling one impairment does not shift the random
 * sequence that decides the others. */
static bool rng_chance(struct rng *r, double percent)
{
    double unit = (double)(rng_next(r) >> 11) * 0x1p-53;
    return unit * 100.0 < percent;
}

/* ---- Byte helpers ---- */

static void put_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_le16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* File-format fields follow --big-endian; protocol fields are always
 * network order. */
static void put_file16(uint8_t *p, uint32_t v, bool big)
{
    if (big) {
        put_be16(p, v);
    } else {
        put_le16(p, v);
    }
}

static void put_file32(uint8_t *p, uint32_t v, bool big)
{
    if (big) {
        put_be32(p, v);
    } else {
        put_le32(p, v);
    }
}

static uint64_t fnv1a(uint64_t hash, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    while (p < end) {
        hash = (hash ^ *p++) * FNV_PRIME;
    }
    return hash;
}

/* One's-complement sum over native-order words: RFC 1071 shows the result
 * is byte-order independent when it is stored back the same way. Callers
 * pass chunks that start at even offsets of the summed data. */
static uint64_t csum_add(uint64_t acc, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        acc += (w & 0xffffffffu) + (w >> 32);
        p += 8;
        n -= 8;
    }
    while (n >= 2) {
        uint16_t h;
        memcpy(&h, p, 2);
        acc += h;
        p += 2;
        n -= 2;
    }
    if (n == 1) {
        uint8_t last[2] = {p[0], 0};
        uint16_t h;
        memcpy(&h, last, 2);
        acc += h;
    }
    return acc;
}

static uint16_t csum_fold(uint64_t acc)
{
    while (acc >> 16) {
        acc = (acc & 0xffffu) + (acc >> 16);
    }
    return (uint16_t)~acc;
}

/* ---- Capture file writer ---- */

struct capture {
    FILE *fp;
    const char *path;
    const struct options *opt;
    uint8_t *buf;
    size_t len;
    uint64_t file_bytes;
    uint64_t packets;
};

static void die_io(const char *what, const char *path)
{
    fprintf(stderr, "tmgen: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void cap_flush(struct capture *c)
{
    if (c->len > 0 && fwrite(c->buf, 1, c->len, c->fp) != c->len) {
        die_io("cannot write", c->path);
    }
    c->len = 0;
}

static uint8_t *cap_reserve(struct capture *c, size_t n)
{
    if (c->len + n > OUT_BUFFER_SIZE) {
        cap_flush(c);
    }
    uint8_t *p = c->buf + c->len;
    c->len += n;
    c->file_bytes += n;
    return p;
}

/* Capture time of the next packet, relative to --start-time. */
static uint64_t cap_offset_us(const struct capture *c)
{
    return c->packets * c->opt->step_us;
}

static void cap_write_header(struct capture *c, const uint32_t *linktypes,
                             unsigned n_ifaces)
{
    const struct options *o = c->opt;
    bool big = o->big_endian;
    if (!o->pcapng) {
        uint8_t *p = cap_reserve(c, 24);
        put_file32(p, o->nanos ? 0xa1b23c4du : 0xa1b2c3d4u, big);
        put_file16(p + 4, 2, big);
        put_file16(p + 6, 4, big);
        put_file32(p + 8, 0, big);
        put_file32(p + 12, 0, big);
        put_file32(p + 16, o->snaplen, big);
        put_file32(p + 20, linktypes[0], big);
        return;
    }
    uint8_t *shb = cap_reserve(c, 28);
    put_file32(shb, 0x0a0d0d0au, big);
    put_file32(shb + 4, 28, big);
    put_file32(shb + 8, 0x1a2b3c4du, big);
    put_file16(shb + 12, 1, big);
    put_file16(shb + 14, 0, big);
    /* Section length -1: unknown, since the output is streamed. */
    memset(shb + 16, 0xff, 8);
    put_file32(shb + 24, 28, big);
    for (unsigned i = 0; i < n_ifaces; i++) {
        uint32_t block_len = o->nanos ? 32u : 20u;
        uint8_t *idb = cap_reserve(c, block_len);
        put_file32(idb, 1, big);
        put_file32(idb + 4, block_len, big);
        put_file16(idb + 8, linktypes[i], big);
        put_file16(idb + 10, 0, big);
        put_file32(idb + 12, o->snaplen, big);
        size_t at = 16;
        if (o->nanos) {
            put_file16(idb + at, 9, big); /* if_tsresol */
            put_file16(idb + at + 2, 1, big);
            idb[at + 4] = 9; /* 10^-9 seconds */
            memset(idb + at + 5, 0, 3);
            put_file32(idb + at + 8, 0, big); /* opt_endofopt */
            at += 12;
        }
        put_file32(idb + at, block_len, big);
    }
}

static void cap_write_packet(struct capture *c, unsigned iface,
                             const uint8_t *frame, size_t wire_len)
{
    const struct options *o = c->opt;
    bool big = o->big_endian;
    size_t caplen = wire_len < o->snaplen ? wire_len : o->snaplen;
    uint64_t offset_us = cap_offset_us(c);
    if (!o->pcapng) {
        uint64_t sec = o->start_time + offset_us / 1000000u;
        uint64_t frac = offset_us % 1000000u;
        uint8_t *p = cap_reserve(c, 16 + caplen);
        put_file32(p, (uint32_t)sec, big);
        put_file32(p + 4, (uint32_t)(o->nanos ? frac * 1000u : frac), big);
        put_file32(p + 8, (uint32_t)caplen, big);
        put_file32(p + 12, (uint32_t)wire_len, big);
        memcpy(p + 16, frame, caplen);
    } else {
        size_t padded = (caplen + 3u) & ~(size_t)3u;
        size_t block_len = 32 + padded;
        uint64_t ts = o->start_time * 1000000u + offset_us;
        if (o->nanos) {
            ts *= 1000u;
        }
        uint8_t *p = cap_reserve(c, block_len);
        put_file32(p, 6, big);
        put_file32(p + 4, (uint32_t)block_len, big);
        put_file32(p + 8, iface, big);
        put_file32(p + 12, (uint32_t)(ts >> 32), big);
        put_file32(p + 16, (uint32_t)ts, big);
        put_file32(p + 20, (uint32_t)caplen, big);
        put_file32(p + 24, (uint32_t)wire_len, big);
        memcpy(p + 28, frame, caplen);
        memset(p + 28 + caplen, 0, padded - caplen);
        put_file32(p + 28 + padded, (uint32_t)block_len, big);
    }
    c->packets++;
}

/* ---- Flows ---- */

struct segment {
    uint64_t index;
    uint64_t offset; /* in the client stream */
    uint32_t len;
    uint32_t captured; /* payload bytes inside the snap length; 0 if lost */
    uint8_t delay;     /* reorder: emit after this many later segments */
    bool lost;
    bool retransmit;
    bool in_syn; /* TCP Fast Open: carried by the SYN */
};

enum held_kind { HELD_ORIGINAL, HELD_COPY };

/* A packet waiting for `countdown` more segments of its flow. */
struct held {
    struct segment seg; /* for copies: offset and len of the resend */
    uint64_t born;      /* segment index during which it was queued */
    enum held_kind kind;
    unsigned countdown;
};

enum flow_phase { PHASE_HANDSHAKE, PHASE_DATA, PHASE_TAIL };

struct flow {
    uint64_t index;
    struct rng rng;
    uint64_t content_key;
    uint64_t size;
    enum flow_phase phase;
    bool rst;
    bool midstream;
    bool tfo;
    unsigned iface;

    uint32_t client_isn;
    uint32_t server_isn;
    uint16_t client_port;
    uint16_t client_ip_id;
    uint16_t server_ip_id;
    uint8_t client_ip[16];
    uint8_t client_mac[6];
    uint32_t client_ts_base;
    uint32_t server_ts_base;
    uint32_t last_client_tsval;
    uint32_t last_server_tsval;

    /* Segmentation runs one segment ahead of emission, so a resend can
     * know whether the following segment may be half-covered. */
    uint32_t max_payload;
    uint32_t data_cap; /* payload bytes a data segment keeps at snaplen */
    uint32_t syn_cap;
    uint64_t planned_offset;
    uint64_t planned_count;
    uint64_t current_index;
    struct segment next;
    bool have_next;
    uint64_t seg_end[SEG_WINDOW];
    uint32_t seg_whole_len[SEG_WINDOW]; /* len if fully captured, else 0 */

    struct held held[HOLD_MAX];
    unsigned n_held;
    uint64_t retransmissions;

    /* What the server has received: its ACKs are cumulative. */
    uint64_t srv_next_index;
    uint64_t srv_pending; /* bit k: segment srv_next_index + k arrived */
    uint64_t srv_acked;   /* stream offset */
    uint64_t last_ack_sent;
    unsigned unacked_segments;

    /* Manifest accounting, done in stream order while planning. */
    uint64_t delivered;
    uint64_t fnv;
    uint64_t gaps;
    uint64_t gap_bytes;
    bool in_gap;

    uint8_t *http_request;
    size_t http_request_len;
};

struct generator {
    const struct options *opt;
    struct capture cap;
    FILE *manifest;
    bool manifest_first;
    struct rng sched;
    struct rng other;
    uint64_t port_base;
    enum link_kind iface_links[2];
    uint8_t *frame;
    uint8_t *scratch;
    uint8_t server_ip[16];
    uint8_t server_mac[6];
    uint8_t *http_response;
    size_t http_response_len;

    uint64_t total_flows;
    uint64_t total_client_bytes;
    uint64_t total_delivered;
    uint64_t total_gaps;
    uint64_t total_gap_bytes;
};

static size_t ip_header_len(const struct options *o)
{
    if (o->ipv6) {
        return 40u + (o->ip_options ? 16u : 0u);
    }
    return 20u + (o->ip_options ? 4u : 0u);
}

static size_t tcp_header_len(const struct options *o, bool syn)
{
    if (!o->tcp_options) {
        return 20;
    }
    return syn ? 36u : 32u;
}

static size_t l4_offset(const struct generator *g, unsigned iface)
{
    return link_table[g->iface_links[iface]].header_len + ip_header_len(g->opt);
}

/* ---- Payload content ---- */

/* Counter-mode bytes: any offset can be regenerated independently. */
static void fill_random(uint64_t key, uint64_t offset, uint8_t *dst, size_t len)
{
    uint64_t word = offset >> 3;
    size_t skip = (size_t)(offset & 7u);
    while (len > 0) {
        uint64_t v = mix64(key + word * GOLDEN_GAMMA);
        if (skip == 0 && len >= 8) {
            put_le64(dst, v);
            dst += 8;
            len -= 8;
        } else {
            uint8_t bytes[8];
            put_le64(bytes, v);
            size_t take = 8 - skip;
            if (take > len) {
                take = len;
            }
            memcpy(dst, bytes + skip, take);
            dst += take;
            len -= take;
            skip = 0;
        }
        word++;
    }
}

static void fill_pattern(const uint8_t *pattern, size_t pattern_len,
                         uint64_t offset, uint8_t *dst, size_t len)
{
    size_t at = (size_t)(offset % pattern_len);
    while (len > 0) {
        size_t take = pattern_len - at;
        if (take > len) {
            take = len;
        }
        memcpy(dst, pattern + at, take);
        dst += take;
        len -= take;
        at = 0;
    }
}

static void fill_content(const struct generator *g, const struct flow *f,
                         bool client, uint64_t offset, uint8_t *dst, size_t len)
{
    if (g->opt->http) {
        if (client) {
            fill_pattern(f->http_request, f->http_request_len, offset, dst,
                         len);
        } else {
            fill_pattern(g->http_response, g->http_response_len, offset, dst,
                         len);
        }
        return;
    }
    uint64_t key = client ? f->content_key : ~f->content_key;
    fill_random(key, offset, dst, len);
}

static uint8_t *build_http_text(const char *head, uint64_t salt, size_t *len)
{
    size_t head_len = strlen(head);
    uint8_t *text = malloc(head_len + HTTP_BODY_LEN);
    if (text == NULL) {
        fprintf(stderr, "tmgen: out of memory\n");
        exit(1);
    }
    memcpy(text, head, head_len);
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < HTTP_BODY_LEN; i++) {
        uint64_t v = mix64(salt + i * GOLDEN_GAMMA);
        text[head_len + i] = (uint8_t)alphabet[v % (sizeof alphabet - 1)];
    }
    *len = head_len + HTTP_BODY_LEN;
    return text;
}

/* ---- Packet assembly ---- */

struct endpoints {
    const uint8_t *src_mac;
    const uint8_t *dst_mac;
    const uint8_t *src_ip;
    const uint8_t *dst_ip;
    bool outgoing; /* sent by the capturing (server) host */
    unsigned iface;
    uint16_t ip_id;
};

static void write_link_header(const struct generator *g, uint8_t *p,
                              const struct endpoints *ep, uint32_t ethertype)
{
    enum link_kind kind = g->iface_links[ep->iface];
    bool v6 = ethertype == ETHERTYPE_IPV6;
    switch (kind) {
    case LINK_ETHERNET:
    case LINK_VLAN:
    case LINK_QINQ: {
        memcpy(p, ep->dst_mac, 6);
        memcpy(p + 6, ep->src_mac, 6);
        size_t at = 12;
        if (kind == LINK_QINQ) {
            put_be16(p + at, ETHERTYPE_QINQ);
            put_be16(p + at + 2, 200);
            at += 4;
        }
        if (kind != LINK_ETHERNET) {
            put_be16(p + at, ETHERTYPE_VLAN);
            put_be16(p + at + 2, 100);
            at += 4;
        }
        put_be16(p + at, ethertype);
        break;
    }
    case LINK_SLL:
        put_be16(p, ep->outgoing ? 4u : 0u);
        put_be16(p + 2, 1); /* ARPHRD_ETHER */
        put_be16(p + 4, 6);
        memcpy(p + 6, ep->src_mac, 6);
        memset(p + 12, 0, 2);
        put_be16(p + 14, ethertype);
        break;
    case LINK_SLL2:
        put_be16(p, ethertype);
        put_be16(p + 2, 0);
        put_be32(p + 4, 1); /* ifindex */
        put_be16(p + 8, 1); /* ARPHRD_ETHER */
        p[10] = ep->outgoing ? 4u : 0u;
        p[11] = 6;
        memcpy(p + 12, ep->src_mac, 6);
        memset(p + 18, 0, 2);
        break;
    case LINK_NULL:
        /* Host order of the capturing machine; macOS numbers IPv6 30. */
        put_le32(p, v6 ? 30u : 2u);
        break;
    case LINK_LOOP:
        put_be32(p, v6 ? 24u : 2u);
        break;
    case LINK_RAW:
    case LINK_IPV4:
    case LINK_IPV6:
    case LINK_COUNT:
        break;
    }
}

/* The L4 header and payload already sit at l4_offset(); this adds the IP
 * and link headers, the checksums, and writes the record. */
static void emit_ip_packet(struct generator *g, const struct endpoints *ep,
                           uint32_t proto, size_t l4_len, size_t csum_at)
{
    const struct options *o = g->opt;
    size_t link_len = link_table[g->iface_links[ep->iface]].header_len;
    size_t ip_len = ip_header_len(o);
    uint8_t *ip = g->frame + link_len;
    uint8_t *l4 = ip + ip_len;
    uint8_t pseudo[40];
    size_t pseudo_len;

    if (o->ipv6) {
        memcpy(pseudo, ep->src_ip, 16);
        memcpy(pseudo + 16, ep->dst_ip, 16);
        put_be32(pseudo + 32, (uint32_t)l4_len);
        memset(pseudo + 36, 0, 3);
        pseudo[39] = (uint8_t)proto;
        pseudo_len = 40;
    } else {
        memcpy(pseudo, ep->src_ip, 4);
        memcpy(pseudo + 4, ep->dst_ip, 4);
        pseudo[8] = 0;
        pseudo[9] = (uint8_t)proto;
        put_be16(pseudo + 10, (uint32_t)l4_len);
        pseudo_len = 12;
    }
    memset(l4 + csum_at, 0, 2);
    uint16_t l4_csum =
        csum_fold(csum_add(csum_add(0, pseudo, pseudo_len), l4, l4_len));
    if (proto == PROTO_UDP && l4_csum == 0) {
        l4_csum = 0xffff;
    }
    memcpy(l4 + csum_at, &l4_csum, 2);

    if (o->ipv6) {
        size_t ext_len = ip_len - 40;
        ip[0] = 0x60;
        memset(ip + 1, 0, 3);
        put_be16(ip + 4, (uint32_t)(ext_len + l4_len));
        ip[6] = o->ip_options ? 0u : (uint8_t)proto; /* 0: hop-by-hop */
        ip[7] = 64;
        memcpy(ip + 8, ep->src_ip, 16);
        memcpy(ip + 24, ep->dst_ip, 16);
        if (o->ip_options) {
            /* Hop-by-hop and destination options, each one PadN(4). */
            static const uint8_t hop_by_hop[8] = {60, 0, 1, 4, 0, 0, 0, 0};
            memcpy(ip + 40, hop_by_hop, 8);
            uint8_t *dest_opts = ip + 48;
            dest_opts[0] = (uint8_t)proto;
            dest_opts[1] = 0;
            dest_opts[2] = 1;
            dest_opts[3] = 4;
            memset(dest_opts + 4, 0, 4);
        }
    } else {
        ip[0] = (uint8_t)(0x40u | (ip_len / 4));
        ip[1] = 0;
        put_be16(ip + 2, (uint32_t)(ip_len + l4_len));
        put_be16(ip + 4, ep->ip_id);
        put_be16(ip + 6, 0x4000); /* DF */
        ip[8] = 64;
        ip[9] = (uint8_t)proto;
        memset(ip + 10, 0, 2);
        memcpy(ip + 12, ep->src_ip, 4);
        memcpy(ip + 16, ep->dst_ip, 4);
        if (o->ip_options) {
            static const uint8_t nops_eol[4] = {1, 1, 1, 0};
            memcpy(ip + 20, nops_eol, 4);
        }
        uint16_t ip_csum = csum_fold(csum_add(0, ip, ip_len));
        memcpy(ip + 10, &ip_csum, 2);
    }
    write_link_header(g, g->frame, ep,
                      o->ipv6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
    cap_write_packet(&g->cap, ep->iface, g->frame, link_len + ip_len + l4_len);
}

struct tcp_packet {
    bool from_client;
    uint32_t flags;
    uint32_t seq;
    uint32_t ack;
    uint64_t payload_offset; /* in the sender's stream */
    uint32_t payload_len;
};

static void emit_tcp(struct generator *g, struct flow *f,
                     const struct tcp_packet *tp)
{
    const struct options *o = g->opt;
    bool syn = (tp->flags & TCP_SYN) != 0;
    if (!tp->from_client && o->no_acks && !syn) {
        return;
    }
    size_t tcp_len = tcp_header_len(o, syn);
    uint8_t *t = g->frame + l4_offset(g, f->iface);
    uint32_t now_ms =
        (uint32_t)((o->start_time * 1000u) + cap_offset_us(&g->cap) / 1000u);

    put_be16(t, tp->from_client ? f->client_port : o->port);
    put_be16(t + 2, tp->from_client ? o->port : f->client_port);
    put_be32(t + 4, tp->seq);
    put_be32(t + 8, tp->ack);
    t[12] = (uint8_t)((tcp_len / 4) << 4);
    t[13] = (uint8_t)tp->flags;
    put_be16(t + 14, tp->from_client ? 64240u : 65160u);
    memset(t + 16, 0, 4);
    if (o->tcp_options) {
        uint8_t *opt = t + 20;
        if (syn) {
            opt[0] = 2; /* MSS */
            opt[1] = 4;
            put_be16(opt + 2, o->segment);
            opt += 4;
        }
        uint32_t tsval;
        uint32_t tsecr;
        if (tp->from_client) {
            tsval = f->client_ts_base + now_ms;
            tsecr = (tp->flags & TCP_ACK) ? f->last_server_tsval : 0u;
            f->last_client_tsval = tsval;
        } else {
            tsval = f->server_ts_base + now_ms;
            tsecr = f->last_client_tsval;
            f->last_server_tsval = tsval;
        }
        opt[0] = 1;
        opt[1] = 1;
        opt[2] = 8; /* timestamps */
        opt[3] = 10;
        put_be32(opt + 4, tsval);
        put_be32(opt + 8, tsecr);
    }
    if (tp->payload_len > 0) {
        fill_content(g, f, tp->from_client, tp->payload_offset, t + tcp_len,
                     tp->payload_len);
    }
    const uint8_t *server_ip = g->server_ip;
    struct endpoints ep = {
        .iface = f->iface,
        .outgoing = !tp->from_client,
    };
    if (tp->from_client) {
        ep.src_mac = f->client_mac;
        ep.dst_mac = g->server_mac;
        ep.src_ip = f->client_ip;
        ep.dst_ip = server_ip;
        ep.ip_id = f->client_ip_id++;
    } else {
        ep.src_mac = g->server_mac;
        ep.dst_mac = f->client_mac;
        ep.src_ip = server_ip;
        ep.dst_ip = f->client_ip;
        ep.ip_id = f->server_ip_id++;
    }
    emit_ip_packet(g, &ep, PROTO_TCP, tcp_len + tp->payload_len, 16);
}

static uint32_t client_seq(const struct flow *f, uint64_t offset)
{
    return (uint32_t)(f->client_isn + 1u + offset);
}

static uint32_t server_seq(const struct flow *f, uint64_t offset)
{
    return (uint32_t)(f->server_isn + 1u + offset);
}

static void emit_client_data(struct generator *g, struct flow *f,
                             uint64_t offset, uint32_t len)
{
    struct tcp_packet tp = {
        .from_client = true,
        .flags = TCP_ACK | TCP_PSH,
        .seq = client_seq(f, offset),
        .ack = server_seq(f, 0),
        .payload_offset = offset,
        .payload_len = len,
    };
    emit_tcp(g, f, &tp);
}

static void emit_server_ack(struct generator *g, struct flow *f)
{
    struct tcp_packet tp = {
        .from_client = false,
        .flags = TCP_ACK,
        .seq = server_seq(f, 0),
        .ack = client_seq(f, f->srv_acked),
    };
    emit_tcp(g, f, &tp);
    f->last_ack_sent = f->srv_acked;
    f->unacked_segments = 0;
}

/* ---- Unrelated traffic the reassembler must ignore ---- */

static void other_host(struct generator *g, uint8_t ip[16], uint8_t mac[6])
{
    uint32_t host = (uint32_t)rng_below(&g->other, 250) + 1u;
    memset(ip, 0, 16);
    if (g->opt->ipv6) {
        ip[0] = 0xfd;
        ip[13] = 3;
        ip[15] = (uint8_t)host;
    } else {
        ip[0] = 10;
        ip[1] = 3;
        ip[3] = (uint8_t)host;
    }
    static const uint8_t prefix[4] = {0x02, 0x00, 0x0a, 0x03};
    memcpy(mac, prefix, 4);
    mac[4] = 0;
    mac[5] = (uint8_t)host;
}

/* Any port but the server's, so the packet belongs to no replayed flow. */
static uint16_t other_port(struct generator *g)
{
    uint16_t port;
    do {
        port = (uint16_t)(1024u + rng_below(&g->other, 64512));
    } while (port == g->opt->port);
    return port;
}

static void emit_other_packet(struct generator *g)
{
    const struct options *o = g->opt;
    unsigned iface = (unsigned)rng_below(&g->other, o->interfaces);
    bool arp_possible = link_table[g->iface_links[iface]].ethernet;
    uint64_t kind = rng_below(&g->other, arp_possible ? 3u : 2u);
    uint8_t host_ip[16];
    uint8_t host_mac[6];
    other_host(g, host_ip, host_mac);
    struct endpoints ep = {
        .src_mac = host_mac,
        .dst_mac = g->server_mac,
        .src_ip = host_ip,
        .dst_ip = g->server_ip,
        .iface = iface,
        .ip_id = (uint16_t)rng_next(&g->other),
    };

    if (kind == 2) {
        /* ARP who-has for the server address. */
        static const uint8_t broadcast[6] = {0xff, 0xff, 0xff,
                                             0xff, 0xff, 0xff};
        ep.dst_mac = broadcast;
        size_t link_len = link_table[g->iface_links[iface]].header_len;
        uint8_t *arp = g->frame + link_len;
        put_be16(arp, 1);
        put_be16(arp + 2, ETHERTYPE_IPV4);
        arp[4] = 6;
        arp[5] = 4;
        put_be16(arp + 6, 1);
        memcpy(arp + 8, host_mac, 6);
        uint8_t sender_ip[4] = {10, 3, 0, host_mac[5]};
        memcpy(arp + 14, sender_ip, 4);
        memset(arp + 18, 0, 6);
        static const uint8_t target_ip[4] = {10, 2, 0, 1};
        memcpy(arp + 24, target_ip, 4);
        write_link_header(g, g->frame, &ep, ETHERTYPE_ARP);
        cap_write_packet(&g->cap, iface, g->frame, link_len + 28);
        return;
    }

    uint8_t *l4 = g->frame + l4_offset(g, iface);
    uint32_t payload_len = 1u + (uint32_t)rng_below(&g->other, OTHER_MAX_LEN);
    if (kind == 0) {
        /* UDP, half of it even aimed at the server port. */
        uint16_t dport = rng_below(&g->other, 2) ? o->port : other_port(g);
        put_be16(l4, other_port(g));
        put_be16(l4 + 2, dport);
        put_be16(l4 + 4, 8u + payload_len);
        fill_random(rng_next(&g->other), 0, l4 + 8, payload_len);
        emit_ip_packet(g, &ep, PROTO_UDP, 8u + payload_len, 6);
        return;
    }
    size_t tcp_len = tcp_header_len(o, false);
    put_be16(l4, other_port(g));
    put_be16(l4 + 2, other_port(g));
    put_be32(l4 + 4, (uint32_t)rng_next(&g->other));
    put_be32(l4 + 8, (uint32_t)rng_next(&g->other));
    l4[12] = (uint8_t)((tcp_len / 4) << 4);
    l4[13] = (uint8_t)(TCP_ACK | TCP_PSH);
    put_be16(l4 + 14, 65535);
    memset(l4 + 16, 0, 4);
    if (tcp_len > 20) {
        static const uint8_t no_timestamps[12] = {1, 1, 8, 10};
        memcpy(l4 + 20, no_timestamps, 12);
    }
    fill_random(rng_next(&g->other), 0, l4 + tcp_len, payload_len);
    emit_ip_packet(g, &ep, PROTO_TCP, tcp_len + payload_len, 16);
}

static void maybe_emit_other(struct generator *g)
{
    double pct = g->opt->other_traffic;
    if (pct <= 0.0) {
        return;
    }
    uint64_t count = (uint64_t)(pct / 100.0);
    if (rng_chance(&g->other, pct - (double)count * 100.0)) {
        count++;
    }
    for (uint64_t i = 0; i < count; i++) {
        emit_other_packet(g);
    }
}

/* ---- Flow lifecycle ---- */

static void flow_start(struct generator *g, struct flow *f, uint64_t index)
{
    const struct options *o = g->opt;
    memset(f, 0, sizeof *f);
    f->index = index;
    f->content_key = mix64(mix64(o->seed) ^ mix64(index + GOLDEN_GAMMA));
    rng_seed(&f->rng, f->content_key);

    /* Fixed draw order keeps a flow's shape independent of other flags. */
    f->rst = rng_chance(&f->rng, o->rst);
    f->midstream = rng_chance(&f->rng, o->midstream);
    uint64_t size_draw = rng_next(&f->rng);
    if (o->size_min_set) {
        f->size = o->size_min + size_draw % (o->size_max - o->size_min + 1u);
    } else {
        f->size = o->size;
    }
    uint32_t isn_draw = (uint32_t)rng_next(&f->rng);
    if (o->isn_wrap) {
        /* Start close enough to 2^32 that the data crosses zero. */
        uint64_t span = f->size < 16384u ? f->size + 1u : 16384u;
        f->client_isn = (uint32_t)(0xffffffffu - (isn_draw % span));
    } else {
        f->client_isn = isn_draw;
    }
    f->server_isn = (uint32_t)rng_next(&f->rng);
    f->client_ip_id = (uint16_t)rng_next(&f->rng);
    f->server_ip_id = (uint16_t)rng_next(&f->rng);
    f->client_ts_base = (uint32_t)rng_next(&f->rng);
    f->server_ts_base = (uint32_t)rng_next(&f->rng);

    if (f->size == 0) {
        f->midstream = false;
    }
    f->tfo = o->tfo && !f->midstream && f->size > 0;
    f->iface = o->interfaces == 2 ? (unsigned)(index % 2u) : 0u;

    uint32_t addr = (uint32_t)(index % CLIENT_ADDRS);
    uint64_t port_slot = index / CLIENT_ADDRS;
    uint32_t port =
        1024u +
        (uint32_t)((port_slot * PORT_STRIDE + g->port_base) % CLIENT_PORTS);
    if (o->port >= 1024u && port >= o->port) {
        port++;
    }
    f->client_port = (uint16_t)port;
    if (o->ipv6) {
        f->client_ip[0] = 0xfd;
        f->client_ip[13] = 1;
        put_be16(f->client_ip + 14, addr + 1u);
    } else {
        f->client_ip[0] = 10;
        f->client_ip[1] = 1;
        f->client_ip[2] = (uint8_t)(addr / 250u);
        f->client_ip[3] = (uint8_t)(addr % 250u + 1u);
    }
    static const uint8_t mac_prefix[3] = {0x02, 0x00, 0x0a};
    memcpy(f->client_mac, mac_prefix, 3);
    f->client_mac[3] = 1;
    put_be16(f->client_mac + 4, addr + 1u);

    size_t link_len = link_table[g->iface_links[f->iface]].header_len;
    size_t data_hdr = link_len + ip_header_len(o) + tcp_header_len(o, false);
    size_t syn_hdr = link_len + ip_header_len(o) + tcp_header_len(o, true);
    f->data_cap = (uint32_t)(o->snaplen - data_hdr);
    f->syn_cap = (uint32_t)(o->snaplen - syn_hdr);
    f->max_payload = o->segment;
    if (f->rst && f->max_payload > f->data_cap) {
        /* A reset flow must be captured whole: see the manifest notes. */
        f->max_payload = f->data_cap;
    }

    if (o->http) {
        char head[160];
        snprintf(head, sizeof head,
                 "POST /flow/%" PRIu64 " HTTP/1.1\r\nHost: tapmirror.test\r\n"
                 "Content-Length: %u\r\n\r\n",
                 index, HTTP_BODY_LEN);
        f->http_request =
            build_http_text(head, f->content_key, &f->http_request_len);
    }
    f->fnv = FNV_OFFSET_BASIS;
    f->phase = PHASE_HANDSHAKE;
}

/* Adds a planned segment's captured bytes to the manifest digest. Runs in
 * stream order, which is the order a reassembler delivers in. */
static void account_segment(struct generator *g, struct flow *f,
                            const struct segment *s)
{
    if (s->captured > 0) {
        fill_content(g, f, true, s->offset, g->scratch, s->captured);
        f->fnv = fnv1a(f->fnv, g->scratch, s->captured);
        f->delivered += s->captured;
        f->in_gap = false;
    }
    uint32_t missing = s->len - s->captured;
    if (missing > 0) {
        if (!f->in_gap) {
            f->gaps++;
        }
        f->in_gap = true;
        f->gap_bytes += missing;
    }
}

static bool plan_segment(struct generator *g, struct flow *f, struct segment *s)
{
    const struct options *o = g->opt;
    if (f->planned_offset >= f->size) {
        return false;
    }
    memset(s, 0, sizeof *s);
    s->index = f->planned_count++;
    s->offset = f->planned_offset;
    s->in_syn = f->tfo && s->index == 0;

    uint32_t limit = f->max_payload;
    if (s->in_syn && f->rst && limit > f->syn_cap) {
        limit = f->syn_cap;
    }
    uint64_t len_draw = rng_next(&f->rng);
    uint64_t len = o->random_segments ? 1u + len_draw % limit : limit;
    uint64_t remaining = f->size - f->planned_offset;
    if (len > remaining) {
        len = remaining;
    }
    s->len = (uint32_t)len;
    f->planned_offset += len;

    bool lose = rng_chance(&f->rng, o->loss);
    bool reorder = rng_chance(&f->rng, o->reorder);
    uint64_t delay_draw = rng_next(&f->rng);
    bool resend = rng_chance(&f->rng, o->retransmit);

    /* The SYN is never lost; a midstream flow's first data segment is
     * what starts the flow, so it stays captured and in place. Reset
     * flows never lose data (a reassembler stops at the first hole). */
    bool pinned = s->in_syn || (f->midstream && s->index == 0);
    s->lost = lose && !pinned && !f->rst;
    s->delay =
        (reorder && !pinned && !s->lost) ? (uint8_t)(1u + delay_draw % 3u) : 0u;
    /* A resend of a lost segment would be lost too ("every copy"); a SYN
     * resend would carry other headers and so another snaplen cut. */
    s->retransmit = resend && !s->lost && !s->in_syn;

    uint32_t cap = s->in_syn ? f->syn_cap : f->data_cap;
    s->captured = s->lost ? 0u : (s->len < cap ? s->len : cap);

    f->seg_end[s->index % SEG_WINDOW] = s->offset + s->len;
    f->seg_whole_len[s->index % SEG_WINDOW] =
        (!s->lost && s->captured == s->len) ? s->len : 0u;
    account_segment(g, f, s);
    return true;
}

/* The server's view: cumulative ACK of contiguously received segments,
 * whether or not the capture saw them. */
static void server_receive(struct generator *g, struct flow *f, uint64_t index,
                           bool count_for_ack)
{
    uint64_t k = index - f->srv_next_index;
    if (f->planned_count - f->srv_next_index > SEG_WINDOW) {
        fprintf(stderr, "tmgen: internal error: reorder window overflow\n");
        exit(1);
    }
    f->srv_pending |= 1ULL << k;
    while (f->srv_pending & 1u) {
        f->srv_acked = f->seg_end[f->srv_next_index % SEG_WINDOW];
        f->srv_pending >>= 1;
        f->srv_next_index++;
    }
    if (count_for_ack && ++f->unacked_segments >= 2) {
        emit_server_ack(g, f);
    }
}

static void release_held(struct generator *g, struct flow *f,
                         const struct held *h);

static void hold_packet(struct generator *g, struct flow *f,
                        const struct held *h)
{
    if (f->n_held == HOLD_MAX) {
        /* Cannot happen with delays of at most 3; stay safe anyway. */
        struct held oldest = f->held[0];
        f->n_held--;
        memmove(f->held, f->held + 1, f->n_held * sizeof f->held[0]);
        release_held(g, f, &oldest);
    }
    f->held[f->n_held++] = *h;
}

static void schedule_copy(struct generator *g, struct flow *f,
                          const struct segment *s)
{
    struct held copy = {
        .seg = *s,
        .born = f->current_index,
        .kind = HELD_COPY,
        .countdown = 1u + (unsigned)rng_below(&f->rng, 3),
    };
    /* Every second resend is a partial overlap: the last half of this
     * segment and the first half of the next. Both must be captured
     * whole, or the overlap would supply bytes the manifest calls lost
     * or cut. The resend is then no longer than either segment. */
    bool want_partial = (f->retransmissions++ & 1u) != 0;
    uint64_t next_index = s->index + 1;
    if (want_partial && next_index < f->planned_count &&
        f->planned_count - next_index < SEG_WINDOW && s->captured == s->len) {
        uint32_t next_len = f->seg_whole_len[next_index % SEG_WINDOW];
        if (next_len >= 2) {
            uint32_t start = s->len / 2;
            copy.seg.offset = s->offset + start;
            copy.seg.len = (s->len - start) + next_len / 2;
        }
    }
    hold_packet(g, f, &copy);
}

static void emit_original(struct generator *g, struct flow *f,
                          const struct segment *s)
{
    emit_client_data(g, f, s->offset, s->len);
    server_receive(g, f, s->index, true);
    if (s->retransmit) {
        schedule_copy(g, f, s);
    }
}

static void release_held(struct generator *g, struct flow *f,
                         const struct held *h)
{
    if (h->kind == HELD_ORIGINAL) {
        emit_original(g, f, &h->seg);
    } else {
        emit_client_data(g, f, h->seg.offset, h->seg.len);
    }
}

/* One more segment of the flow went by: held packets queued before it
 * count down and leave when they reach zero. */
static void tick_held(struct generator *g, struct flow *f)
{
    unsigned i = 0;
    while (i < f->n_held) {
        struct held *h = &f->held[i];
        if (h->born < f->current_index && --h->countdown == 0) {
            struct held ready = *h;
            f->n_held--;
            memmove(f->held + i, f->held + i + 1,
                    (f->n_held - i) * sizeof f->held[0]);
            release_held(g, f, &ready);
        } else {
            i++;
        }
    }
}

static void flush_held(struct generator *g, struct flow *f)
{
    while (f->n_held > 0) {
        struct held ready = f->held[0];
        f->n_held--;
        memmove(f->held, f->held + 1, f->n_held * sizeof f->held[0]);
        release_held(g, f, &ready);
    }
}

static void flow_handshake(struct generator *g, struct flow *f)
{
    f->have_next = plan_segment(g, f, &f->next);
    if (f->midstream) {
        return;
    }
    uint32_t syn_data = 0;
    if (f->tfo && f->have_next) {
        syn_data = f->next.len;
    }
    struct tcp_packet syn = {
        .from_client = true,
        .flags = TCP_SYN,
        .seq = f->client_isn,
        .payload_offset = 0,
        .payload_len = syn_data,
    };
    emit_tcp(g, f, &syn);
    if (syn_data > 0) {
        /* The SYN-ACK below acknowledges the Fast Open data. */
        server_receive(g, f, f->next.index, false);
        f->have_next = plan_segment(g, f, &f->next);
    }
    struct tcp_packet syn_ack = {
        .from_client = false,
        .flags = TCP_SYN | TCP_ACK,
        .seq = f->server_isn,
        .ack = client_seq(f, syn_data),
    };
    emit_tcp(g, f, &syn_ack);
    f->last_ack_sent = syn_data;
    struct tcp_packet ack = {
        .from_client = true,
        .flags = TCP_ACK,
        .seq = client_seq(f, syn_data),
        .ack = server_seq(f, 0),
    };
    emit_tcp(g, f, &ack);
}

static void flow_data_step(struct generator *g, struct flow *f)
{
    struct segment cur = f->next;
    f->current_index = cur.index;
    f->have_next = plan_segment(g, f, &f->next);
    if (cur.lost) {
        /* The server got it; only the capture missed it. */
        server_receive(g, f, cur.index, true);
    } else if (cur.delay > 0) {
        struct held h = {
            .seg = cur,
            .born = cur.index,
            .kind = HELD_ORIGINAL,
            .countdown = cur.delay,
        };
        hold_packet(g, f, &h);
    } else {
        emit_original(g, f, &cur);
    }
    tick_held(g, f);
    maybe_emit_other(g);
}

static void write_manifest_flow(struct generator *g, const struct flow *f)
{
    if (g->manifest == NULL) {
        return;
    }
    char client[64];
    if (g->opt->ipv6) {
        snprintf(client, sizeof client, "[fd00::1:%x]:%u",
                 ((unsigned)f->client_ip[14] << 8) | f->client_ip[15],
                 (unsigned)f->client_port);
    } else {
        snprintf(client, sizeof client, "%u.%u.%u.%u:%u", f->client_ip[0],
                 f->client_ip[1], f->client_ip[2], f->client_ip[3],
                 (unsigned)f->client_port);
    }
    fprintf(g->manifest,
            "%s\n{\"index\":%" PRIu64 ",\"client\":\"%s\",\"bytes\":%" PRIu64
            ",\"fnv64\":\"%016" PRIx64 "\",\"gaps\":%" PRIu64
            ",\"gap_bytes\":%" PRIu64
            ",\"end\":\"%s\",\"midstream\":%s,\"size\":%" PRIu64 "}",
            g->manifest_first ? "" : ",", f->index, client, f->delivered,
            f->fnv, f->gaps, f->gap_bytes, f->rst ? "rst" : "fin",
            f->midstream ? "true" : "false", f->size);
    g->manifest_first = false;
}

static void flow_tail(struct generator *g, struct flow *f)
{
    const struct options *o = g->opt;
    flush_held(g, f);
    if (f->last_ack_sent != f->size) {
        emit_server_ack(g, f);
    }

    /* HTTP-like: the server answers once it has the whole request. */
    uint64_t sent = 0;
    unsigned unacked = 0;
    while (sent < o->response) {
        uint64_t left = o->response - sent;
        uint32_t len = left < o->segment ? (uint32_t)left : o->segment;
        struct tcp_packet data = {
            .from_client = false,
            .flags = TCP_ACK | TCP_PSH,
            .seq = server_seq(f, sent),
            .ack = client_seq(f, f->size),
            .payload_offset = sent,
            .payload_len = len,
        };
        emit_tcp(g, f, &data);
        sent += len;
        if (++unacked == 2 || sent == o->response) {
            struct tcp_packet ack = {
                .from_client = true,
                .flags = TCP_ACK,
                .seq = client_seq(f, f->size),
                .ack = server_seq(f, sent),
            };
            emit_tcp(g, f, &ack);
            unacked = 0;
        }
    }

    if (f->rst) {
        struct tcp_packet rst = {
            .from_client = true,
            .flags = TCP_RST | TCP_ACK,
            .seq = client_seq(f, f->size),
            .ack = server_seq(f, o->response),
        };
        emit_tcp(g, f, &rst);
    } else {
        struct tcp_packet client_fin = {
            .from_client = true,
            .flags = TCP_FIN | TCP_ACK,
            .seq = client_seq(f, f->size),
            .ack = server_seq(f, o->response),
        };
        emit_tcp(g, f, &client_fin);
        struct tcp_packet server_fin = {
            .from_client = false,
            .flags = TCP_FIN | TCP_ACK,
            .seq = server_seq(f, o->response),
            .ack = client_seq(f, f->size + 1u),
        };
        emit_tcp(g, f, &server_fin);
        struct tcp_packet last_ack = {
            .from_client = true,
            .flags = TCP_ACK,
            .seq = client_seq(f, f->size + 1u),
            .ack = server_seq(f, o->response + 1u),
        };
        emit_tcp(g, f, &last_ack);
    }

    write_manifest_flow(g, f);
    g->total_flows++;
    g->total_client_bytes += f->size;
    g->total_delivered += f->delivered;
    g->total_gaps += f->gaps;
    g->total_gap_bytes += f->gap_bytes;
    free(f->http_request);
    f->http_request = NULL;
}

/* Emits the flow's next step; returns true once the flow has ended. */
static bool flow_step(struct generator *g, struct flow *f)
{
    if (f->phase == PHASE_HANDSHAKE) {
        flow_handshake(g, f);
        f->phase = f->have_next ? PHASE_DATA : PHASE_TAIL;
        /* A midstream flow's first captured packet is its first data
         * segment, so do not spend a step on the invisible handshake. */
        if (!f->midstream) {
            return false;
        }
    }
    if (f->phase == PHASE_DATA) {
        flow_data_step(g, f);
        if (!f->have_next) {
            f->phase = PHASE_TAIL;
        }
        return false;
    }
    flow_tail(g, f);
    return true;
}

/* ---- Command line ---- */

enum {
    OPT_FLOWS = 256,
    OPT_SIZE,
    OPT_SIZE_MIN,
    OPT_SIZE_MAX,
    OPT_RESPONSE,
    OPT_CONCURRENCY,
    OPT_SEGMENT,
    OPT_RANDOM_SEGMENTS,
    OPT_REORDER,
    OPT_RETRANSMIT,
    OPT_LOSS,
    OPT_SNAPLEN,
    OPT_ISN_WRAP,
    OPT_IPV6,
    OPT_IP_OPTIONS,
    OPT_TCP_OPTIONS,
    OPT_LINK,
    OPT_FORMAT,
    OPT_NANOS,
    OPT_BIG_ENDIAN,
    OPT_PCAPNG_INTERFACES,
    OPT_MIDSTREAM,
    OPT_RST,
    OPT_TFO,
    OPT_PORT,
    OPT_START_TIME,
    OPT_STEP_US,
    OPT_NO_ACKS,
    OPT_SEED,
    OPT_OTHER_TRAFFIC,
    OPT_PAYLOAD,
};

static void usage(FILE *out)
{
    fputs(
        "usage: tmgen -o FILE [options]\n"
        "Writes a deterministic capture of synthetic TCP flows to one server\n"
        "port, and a JSON manifest of the client bytes each flow delivers.\n"
        "\n"
        "  -o, --output FILE        capture to write, - for stdout (required)\n"
        "  -m, --manifest FILE      JSON manifest to write (default: none)\n"
        "      --flows N            client connections (default 10)\n"
        "      --size BYTES         client bytes per flow (default 4096)\n"
        "      --size-min BYTES     with --size-max: uniform random size\n"
        "      --size-max BYTES       per flow instead of --size\n"
        "      --response BYTES     server bytes sent back per flow (default "
        "0)\n"
        "      --concurrency N      flows in progress at once (default 1)\n"
        "      --segment BYTES      maximum segment payload (default 1448)\n"
        "      --random-segments    segment sizes uniform in [1, --segment]\n"
        "      --reorder PCT        client data segments delayed (default 0)\n"
        "      --retransmit PCT     client data segments resent (default 0)\n"
        "      --loss PCT           client data segments not captured\n"
        "                           (default 0)\n"
        "      --snaplen N          capture length limit (default 262144)\n"
        "      --isn-wrap           client sequence numbers wrap past 2^32\n"
        "      --ipv6               IPv6 instead of IPv4\n"
        "      --ip-options         IPv4 options / IPv6 extension headers\n"
        "      --tcp-options        TCP timestamps (and MSS on SYNs)\n"
        "      --link TYPE          ethernet (default), vlan, qinq, sll, "
        "sll2,\n"
        "                           raw, null, loop, ipv4, ipv6\n"
        "      --format FMT         pcap (default) or pcapng\n"
        "      --nanos              nanosecond timestamps\n"
        "      --big-endian         big-endian file headers\n"
        "      --pcapng-interfaces N  1 (default) or 2; interface 1 is raw\n"
        "                           (ethernet if --link raw), flows alternate\n"
        "      --midstream PCT      flows captured from after the handshake\n"
        "                           (default 0)\n"
        "      --rst PCT            flows ending in a client RST (default 0)\n"
        "      --tfo                the SYN carries the first data segment\n"
        "      --port P             server port (default 8080)\n"
        "      --start-time SEC     first packet time (default 1700000000)\n"
        "      --step-us N          time between packets (default 10)\n"
        "      --no-acks            drop server packets but the SYN-ACK\n"
        "      --seed N             random seed (default 1)\n"
        "      --other-traffic PCT  unrelated UDP, ARP and TCP packets, per\n"
        "                           client data segment (default 0)\n"
        "      --payload KIND       random (default) or http\n"
        "  -h, --help               show this help\n"
        "\n"
        "BYTES accept the suffixes K/KiB, M/MiB, G/GiB (powers of 1024).\n",
        out);
}

static void bad_usage(const char *fmt, const char *arg)
{
    fputs("tmgen: ", stderr);
    fprintf(stderr, "%s '%s'\n", fmt, arg);
    fputs("try 'tmgen --help'\n", stderr);
    exit(2);
}

static void bad_combination(const char *message)
{
    fprintf(stderr, "tmgen: %s\ntry 'tmgen --help'\n", message);
    exit(2);
}

static uint64_t parse_number(const char *arg, const char *what, bool suffixes,
                             uint64_t max)
{
    if (arg[0] < '0' || arg[0] > '9') {
        bad_usage(what, arg);
    }
    errno = 0;
    char *end;
    unsigned long long value = strtoull(arg, &end, 10);
    if (errno != 0) {
        bad_usage(what, arg);
    }
    unsigned shift = 0;
    if (suffixes && *end != '\0') {
        static const struct {
            const char *name;
            unsigned shift;
        } units[] = {{"B", 0},  {"K", 10},   {"KiB", 10}, {"k", 10},
                     {"M", 20}, {"MiB", 20}, {"G", 30},   {"GiB", 30}};
        bool known = false;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcmp(end, units[i].name) == 0) {
                shift = units[i].shift;
                known = true;
            }
        }
        if (!known) {
            bad_usage(what, arg);
        }
    } else if (*end != '\0') {
        bad_usage(what, arg);
    }
    if (value > (max >> shift)) {
        bad_usage(what, arg);
    }
    return (uint64_t)value << shift;
}

static double parse_percent(const char *arg, const char *what, double max)
{
    char *end;
    errno = 0;
    double value = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || !(value >= 0.0) ||
        value > max) {
        bad_usage(what, arg);
    }
    return value;
}

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"manifest", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {"flows", required_argument, NULL, OPT_FLOWS},
        {"size", required_argument, NULL, OPT_SIZE},
        {"size-min", required_argument, NULL, OPT_SIZE_MIN},
        {"size-max", required_argument, NULL, OPT_SIZE_MAX},
        {"response", required_argument, NULL, OPT_RESPONSE},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"segment", required_argument, NULL, OPT_SEGMENT},
        {"random-segments", no_argument, NULL, OPT_RANDOM_SEGMENTS},
        {"reorder", required_argument, NULL, OPT_REORDER},
        {"retransmit", required_argument, NULL, OPT_RETRANSMIT},
        {"loss", required_argument, NULL, OPT_LOSS},
        {"snaplen", required_argument, NULL, OPT_SNAPLEN},
        {"isn-wrap", no_argument, NULL, OPT_ISN_WRAP},
        {"ipv6", no_argument, NULL, OPT_IPV6},
        {"ip-options", no_argument, NULL, OPT_IP_OPTIONS},
        {"tcp-options", no_argument, NULL, OPT_TCP_OPTIONS},
        {"link", required_argument, NULL, OPT_LINK},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"nanos", no_argument, NULL, OPT_NANOS},
        {"big-endian", no_argument, NULL, OPT_BIG_ENDIAN},
        {"pcapng-interfaces", required_argument, NULL, OPT_PCAPNG_INTERFACES},
        {"midstream", required_argument, NULL, OPT_MIDSTREAM},
        {"rst", required_argument, NULL, OPT_RST},
        {"tfo", no_argument, NULL, OPT_TFO},
        {"port", required_argument, NULL, OPT_PORT},
        {"start-time", required_argument, NULL, OPT_START_TIME},
        {"step-us", required_argument, NULL, OPT_STEP_US},
        {"no-acks", no_argument, NULL, OPT_NO_ACKS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"other-traffic", required_argument, NULL, OPT_OTHER_TRAFFIC},
        {"payload", required_argument, NULL, OPT_PAYLOAD},
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){
        .flows = 10,
        .size = 4096,
        .concurrency = 1,
        .segment = 1448,
        .snaplen = MAX_SNAPLEN,
        .link = LINK_ETHERNET,
        .interfaces = 1,
        .port = 8080,
        .start_time = 1700000000u,
        .step_us = 10,
        .seed = 1,
    };
    bool interfaces_set = false;
    int c;
    while ((c = getopt_long(argc, argv, "o:m:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o->output = optarg;
            break;
        case 'm':
            o->manifest = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case OPT_FLOWS:
            o->flows = parse_number(optarg, "bad --flows", false, MAX_FLOWS);
            break;
        case OPT_SIZE:
            o->size = parse_number(optarg, "bad --size", true, MAX_FLOW_SIZE);
            break;
        case OPT_SIZE_MIN:
            o->size_min =
                parse_number(optarg, "bad --size-min", true, MAX_FLOW_SIZE);
            o->size_min_set = true;
            break;
        case OPT_SIZE_MAX:
            o->size_max =
                parse_number(optarg, "bad --size-max", true, MAX_FLOW_SIZE);
            o->size_max_set = true;
            break;
        case OPT_RESPONSE:
            o->response =
                parse_number(optarg, "bad --response", true, MAX_FLOW_SIZE);
            break;
        case OPT_CONCURRENCY:
            o->concurrency = parse_number(optarg, "bad --concurrency", false,
                                          MAX_CONCURRENCY);
            if (o->concurrency == 0) {
                bad_usage("bad --concurrency", optarg);
            }
            break;
        case OPT_SEGMENT:
            o->segment = (uint32_t)parse_number(optarg, "bad --segment", true,
                                                MAX_SEGMENT);
            if (o->segment == 0) {
                bad_usage("bad --segment", optarg);
            }
            break;
        case OPT_RANDOM_SEGMENTS:
            o->random_segments = true;
            break;
        case OPT_REORDER:
            o->reorder = parse_percent(optarg, "bad --reorder", 100.0);
            break;
        case OPT_RETRANSMIT:
            o->retransmit = parse_percent(optarg, "bad --retransmit", 100.0);
            break;
        case OPT_LOSS:
            o->loss = parse_percent(optarg, "bad --loss", 100.0);
            break;
        case OPT_SNAPLEN:
            o->snaplen = (uint32_t)parse_number(optarg, "bad --snaplen", false,
                                                MAX_SNAPLEN);
            break;
        case OPT_ISN_WRAP:
            o->isn_wrap = true;
            break;
        case OPT_IPV6:
            o->ipv6 = true;
            break;
        case OPT_IP_OPTIONS:
            o->ip_options = true;
            break;
        case OPT_TCP_OPTIONS:
            o->tcp_options = true;
            break;
        case OPT_LINK: {
            bool known = false;
            for (unsigned i = 0; i < LINK_COUNT; i++) {
                if (strcmp(optarg, link_table[i].name) == 0) {
                    o->link = (enum link_kind)i;
                    known = true;
                }
            }
            if (!known) {
                bad_usage("unknown --link", optarg);
            }
            break;
        }
        case OPT_FORMAT:
            if (strcmp(optarg, "pcap") == 0) {
                o->pcapng = false;
            } else if (strcmp(optarg, "pcapng") == 0) {
                o->pcapng = true;
            } else {
                bad_usage("unknown --format", optarg);
            }
            break;
        case OPT_NANOS:
            o->nanos = true;
            break;
        case OPT_BIG_ENDIAN:
            o->big_endian = true;
            break;
        case OPT_PCAPNG_INTERFACES:
            o->interfaces = (unsigned)parse_number(
                optarg, "bad --pcapng-interfaces", false, 2);
            if (o->interfaces == 0) {
                bad_usage("bad --pcapng-interfaces", optarg);
            }
            interfaces_set = true;
            break;
        case OPT_MIDSTREAM:
            o->midstream = parse_percent(optarg, "bad --midstream", 100.0);
            break;
        case OPT_RST:
            o->rst = parse_percent(optarg, "bad --rst", 100.0);
            break;
        case OPT_TFO:
            o->tfo = true;
            break;
        case OPT_PORT:
            o->port =
                (uint16_t)parse_number(optarg, "bad --port", false, 65535);
            if (o->port == 0) {
                bad_usage("bad --port", optarg);
            }
            break;
        case OPT_START_TIME:
            o->start_time =
                parse_number(optarg, "bad --start-time", false, 0xffffffffu);
            break;
        case OPT_STEP_US:
            o->step_us =
                parse_number(optarg, "bad --step-us", false, 1000000000u);
            break;
        case OPT_NO_ACKS:
            o->no_acks = true;
            break;
        case OPT_SEED:
            o->seed = parse_number(optarg, "bad --seed", false, UINT64_MAX);
            break;
        case OPT_OTHER_TRAFFIC:
            o->other_traffic =
                parse_percent(optarg, "bad --other-traffic", 1000.0);
            break;
        case OPT_PAYLOAD:
            if (strcmp(optarg, "random") == 0) {
                o->http = false;
            } else if (strcmp(optarg, "http") == 0) {
                o->http = true;
            } else {
                bad_usage("unknown --payload", optarg);
            }
            break;
        default:
            fputs("try 'tmgen --help'\n", stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        bad_usage("unexpected argument", argv[optind]);
    }
    if (o->output == NULL) {
        bad_combination("--output is required");
    }
    if (o->size_min_set != o->size_max_set) {
        bad_combination("--size-min and --size-max go together");
    }
    if (o->size_min_set && o->size_min > o->size_max) {
        bad_combination("--size-min is larger than --size-max");
    }
    if (interfaces_set && !o->pcapng && o->interfaces != 1) {
        bad_combination("--pcapng-interfaces needs --format pcapng");
    }
    if (o->link == LINK_IPV4 && o->ipv6) {
        bad_combination("--link ipv4 cannot carry --ipv6 traffic");
    }
    if (o->link == LINK_IPV6 && !o->ipv6) {
        bad_combination("--link ipv6 needs --ipv6");
    }
    if (o->manifest != NULL && strcmp(o->manifest, "-") == 0 &&
        strcmp(o->output, "-") == 0) {
        bad_combination("capture and manifest cannot both go to stdout");
    }
}

/* ---- main ---- */

static FILE *open_output(const char *path, const char *mode)
{
    if (strcmp(path, "-") == 0) {
        return stdout;
    }
    FILE *fp = fopen(path, mode);
    if (fp == NULL) {
        die_io("cannot open", path);
    }
    return fp;
}

static void close_output(FILE *fp, const char *path)
{
    bool failed = ferror(fp) != 0;
    if (fp == stdout) {
        failed = fflush(fp) != 0 || failed;
    } else {
        failed = fclose(fp) != 0 || failed;
    }
    if (failed) {
        die_io("cannot write", path);
    }
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "tmgen: out of memory\n");
        exit(1);
    }
    return p;
}

int main(int argc, char **argv)
{
    struct options opt;
    parse_options(argc, argv, &opt);

    struct generator g = {
        .opt = &opt,
        .manifest_first = true,
    };
    g.iface_links[0] = opt.link;
    g.iface_links[1] = opt.link == LINK_RAW ? LINK_ETHERNET : LINK_RAW;

    /* Every record must keep its headers, and a reset flow at least one
     * payload byte per segment. */
    size_t min_snaplen = 0;
    for (unsigned i = 0; i < opt.interfaces; i++) {
        size_t need = link_table[g.iface_links[i]].header_len +
                      ip_header_len(&opt) + tcp_header_len(&opt, true) + 1u;
        if (need > min_snaplen) {
            min_snaplen = need;
        }
    }
    if (opt.snaplen < min_snaplen) {
        fprintf(stderr,
                "tmgen: --snaplen %u is too small: headers need %zu bytes\n",
                opt.snaplen, min_snaplen);
        return 2;
    }

    rng_seed(&g.sched, mix64(opt.seed) ^ 0x5eed5c4edULL);
    rng_seed(&g.other, mix64(opt.seed) ^ 0x07e4e47affcULL);
    g.port_base = mix64(opt.seed ^ 0x9047ULL) % CLIENT_PORTS;
    g.frame = xcalloc(1, FRAME_MAX);
    g.scratch = xcalloc(1, FRAME_MAX);
    if (opt.ipv6) {
        g.server_ip[0] = 0xfd;
        g.server_ip[15] = 2;
    } else {
        static const uint8_t server_v4[4] = {10, 2, 0, 1};
        memcpy(g.server_ip, server_v4, 4);
    }
    static const uint8_t server_mac[6] = {0x02, 0x00, 0x0a, 0x02, 0x00, 0x01};
    memcpy(g.server_mac, server_mac, 6);
    if (opt.http) {
        char head[128];
        snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                 "Content-Length: %u\r\n\r\n",
                 HTTP_BODY_LEN);
        g.http_response = build_http_text(head, opt.seed, &g.http_response_len);
    }

    g.cap.opt = &opt;
    g.cap.path = opt.output;
    g.cap.buf = xcalloc(1, OUT_BUFFER_SIZE);
    g.cap.fp = open_output(opt.output, "wb");
    if (opt.manifest != NULL) {
        g.manifest = open_output(opt.manifest, "w");
        fprintf(g.manifest,
                "{\"port\":%u,\"link\":\"%s\",\"format\":\"%s\",\"flows\":[",
                (unsigned)opt.port, link_table[opt.link].name,
                opt.pcapng ? "pcapng" : "pcap");
    }
    uint32_t linktypes[2] = {link_table[g.iface_links[0]].linktype,
                             link_table[g.iface_links[1]].linktype};
    cap_write_header(&g.cap, linktypes, opt.interfaces);

    /* Flows in progress; a finished one is replaced by the next, and the
     * one to advance is picked at random so segments interleave. */
    uint64_t slots = opt.concurrency < opt.flows ? opt.concurrency : opt.flows;
    struct flow *active = xcalloc(slots > 0 ? slots : 1, sizeof *active);
    uint64_t n_active = 0;
    uint64_t next_flow = 0;
    while (n_active < slots) {
        flow_start(&g, &active[n_active++], next_flow++);
    }
    while (n_active > 0) {
        uint64_t pick = n_active == 1 ? 0 : rng_below(&g.sched, n_active);
        if (!flow_step(&g, &active[pick])) {
            continue;
        }
        if (next_flow < opt.flows) {
            flow_start(&g, &active[pick], next_flow++);
        } else {
            active[pick] = active[--n_active];
        }
    }

    cap_flush(&g.cap);
    close_output(g.cap.fp, opt.output);
    if (g.manifest != NULL) {
        fprintf(g.manifest,
                "%s],\"totals\":{\"flows\":%" PRIu64 ",\"bytes\":%" PRIu64
                ",\"gaps\":%" PRIu64 ",\"gap_bytes\":%" PRIu64
                ",\"packets\":%" PRIu64 "}}\n",
                g.manifest_first ? "" : "\n", g.total_flows, g.total_delivered,
                g.total_gaps, g.total_gap_bytes, g.cap.packets);
        close_output(g.manifest, opt.manifest);
    }
    fprintf(stderr,
            "tmgen: %" PRIu64 " flows, %" PRIu64 " packets, %" PRIu64
            " client bytes (%" PRIu64 " delivered, %" PRIu64
            " in gaps), %" PRIu64 " file bytes\n",
            g.total_flows, g.cap.packets, g.total_client_bytes,
            g.total_delivered, g.total_gap_bytes, g.cap.file_bytes);

    free(active);
    free(g.http_response);
    free(g.cap.buf);
    free(g.scratch);
    free(g.frame);
    return 0;
}
