/* Unit tests of decode.c: link, IPv4/IPv6 and TCP header decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/decode.h"
#include "pktbuild.h"

static const uint8_t PAYLOAD[] = "hello, tapmirror";
#define PAYLOAD_LEN (sizeof(PAYLOAD) - 1)

/* A default TCP/IPv4 packet 10.0.0.1:40000 -> 10.0.0.2:8080. */
static struct pb_pkt base4(void)
{
    return pb_tcp4(40000, 8080, 0x11223344u, 0x55667788u,
                   TCP_FLAG_ACK | TCP_FLAG_PSH, PAYLOAD, PAYLOAD_LEN);
}

static struct pb_pkt base6(void)
{
    struct pb_pkt p = base4();
    pb_ip6(&p, 1, 2);
    return p;
}

/* Decodes a whole (uncut) frame. */
static enum decode_verdict dec(int linktype, const uint8_t *buf, size_t len,
                               struct tcp_segment *seg)
{
    memset(seg, 0xa5, sizeof(*seg));
    return decode_packet(linktype, buf, len, len, seg);
}

/* Every field of a decoded default packet. */
static void check_seg(const struct tcp_segment *s, const struct pb_pkt *p,
                      const uint8_t *buf, const struct pb_info *info)
{
    assert_int_equal(s->family, p->family ? p->family : 4);
    assert_int_equal(s->sport, p->sport);
    assert_int_equal(s->dport, p->dport);
    assert_int_equal(s->seq, p->seq);
    assert_int_equal(s->ack, p->ack);
    assert_int_equal(s->flags, p->flags);
    size_t alen = s->family == 4 ? 4 : 16;
    assert_memory_equal(s->src, p->src, alen);
    assert_memory_equal(s->dst, p->dst, alen);
    if (s->family == 4) {
        static const uint8_t zeros[12];
        assert_memory_equal(s->src + 4, zeros, 12);
        assert_memory_equal(s->dst + 4, zeros, 12);
    }
    assert_ptr_equal(s->payload, buf + info->payload_off);
    assert_int_equal(s->payload_len, p->len);
    assert_int_equal(s->wire_len, p->len);
    if (p->len > 0) {
        assert_memory_equal(s->payload, p->payload, p->len);
    }
}

/* Builds `p` on `linktype`, decodes it whole and checks every field. */
static void roundtrip(int linktype, const struct pb_pkt *p)
{
    uint8_t buf[2048];
    struct pb_info info;
    size_t len = pb_build(buf, linktype, p, &info);
    struct tcp_segment s;
    assert_int_equal(dec(linktype, buf, len, &s), DECODE_TCP);
    check_seg(&s, p, buf, &info);
}

/* ---- link layers ---- */

static void test_ethernet_ipv4(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    roundtrip(LINKTYPE_ETHERNET, &p);
    /* The payload starts after 14 + 20 + 20 bytes. */
    uint8_t buf[256];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(info.payload_off, 54);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    assert_ptr_equal(s.payload, buf + 54);
}

static void test_ethernet_ipv6(void **state)
{
    (void)state;
    struct pb_pkt p = base6();
    roundtrip(LINKTYPE_ETHERNET, &p);
}

static void test_vlan_one_tag(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    p.n_tags = 1;
    uint8_t buf[256];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(info.ip_off, 18);
    assert_int_equal(buf[12], 0x81);
    assert_int_equal(buf[13], 0x00);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);

    struct pb_pkt q = base6();
    q.n_tags = 1;
    roundtrip(LINKTYPE_ETHERNET, &q);
}

static void test_qinq(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    p.n_tags = 2;
    p.tpid[0] = 0x88a8;
    p.tpid[1] = 0x8100;
    uint8_t buf[256];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(info.ip_off, 22);
    assert_int_equal(buf[12], 0x88);
    assert_int_equal(buf[13], 0xa8);
    assert_int_equal(buf[16], 0x81);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);

    /* IPv6 inside QinQ too. */
    struct pb_pkt q = base6();
    q.n_tags = 2;
    q.tpid[0] = 0x88a8;
    q.tpid[1] = 0x8100;
    roundtrip(LINKTYPE_ETHERNET, &q);
}

static void test_too_many_vlan_tags(void **state)
{
    (void)state;
    /* Twenty tags: more than any network uses; the decoder bounds them. */
    uint8_t buf[256];
    size_t pos = 12;
    memset(buf, 0, sizeof(buf));
    for (int i = 0; i < 20; i++) {
        buf[pos] = 0x81;
        buf[pos + 1] = 0x00;
        pos += 4;
    }
    struct tcp_segment s;
    enum decode_verdict v = dec(LINKTYPE_ETHERNET, buf, sizeof(buf), &s);
    assert_int_equal(v, DECODE_MALFORMED);
}

static void test_sll(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    uint8_t buf[256];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_LINUX_SLL, &p, &info);
    assert_int_equal(info.ip_off, 16);
    assert_int_equal(buf[14], 0x08);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_LINUX_SLL, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);
    /* The protocol is at offset 14, not 12 (where Ethernet has it). */
    buf[12] = 0x86;
    buf[13] = 0xdd;
    assert_int_equal(dec(LINKTYPE_LINUX_SLL, buf, len, &s), DECODE_TCP);
    buf[14] = 0x08;
    buf[15] = 0x06; /* ARP */
    assert_int_equal(dec(LINKTYPE_LINUX_SLL, buf, len, &s), DECODE_NOT_IP);

    struct pb_pkt q = base6();
    roundtrip(LINKTYPE_LINUX_SLL, &q);
    q.n_tags = 1;
    roundtrip(LINKTYPE_LINUX_SLL, &q);
}

static void test_sll2(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    uint8_t buf[256];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_LINUX_SLL2, &p, &info);
    assert_int_equal(info.ip_off, 20);
    assert_int_equal(buf[0], 0x08);
    assert_int_equal(buf[1], 0x00);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_LINUX_SLL2, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);
    /* The protocol is at offset 0: changing it to ARP stops decoding. */
    buf[0] = 0x08;
    buf[1] = 0x06;
    assert_int_equal(dec(LINKTYPE_LINUX_SLL2, buf, len, &s), DECODE_NOT_IP);

    struct pb_pkt q = base6();
    roundtrip(LINKTYPE_LINUX_SLL2, &q);
    q.n_tags = 1;
    roundtrip(LINKTYPE_LINUX_SLL2, &q);
}

static void test_raw(void **state)
{
    (void)state;
    struct pb_pkt p4 = base4();
    struct pb_pkt p6 = base6();
    roundtrip(LINKTYPE_RAW, &p4);
    roundtrip(LINKTYPE_RAW, &p6);
    /* A version nibble that is neither 4 nor 6 is not IP. */
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_RAW, &p4, NULL);
    buf[0] = 0x55;
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_RAW, buf, len, &s), DECODE_NOT_IP);
}

static void test_linktype_ipv4_ipv6(void **state)
{
    (void)state;
    struct pb_pkt p4 = base4();
    struct pb_pkt p6 = base6();
    roundtrip(LINKTYPE_IPV4, &p4);
    roundtrip(LINKTYPE_IPV6, &p6);
    /* The link type fixes the version: an IPv6 packet on an IPv4 link and
     * the reverse are malformed. */
    uint8_t buf[256];
    struct tcp_segment s;
    size_t len = pb_build(buf, LINKTYPE_IPV4, &p6, NULL);
    assert_int_equal(dec(LINKTYPE_IPV4, buf, len, &s), DECODE_MALFORMED);
    len = pb_build(buf, LINKTYPE_IPV6, &p4, NULL);
    assert_int_equal(dec(LINKTYPE_IPV6, buf, len, &s), DECODE_MALFORMED);
}

static void test_null_little_endian(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    p.family_code = 2;
    p.null_be = false;
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_NULL, &p, NULL);
    assert_int_equal(buf[0], 2);
    assert_int_equal(buf[3], 0);
    roundtrip(LINKTYPE_NULL, &p);
    static const uint32_t fams6[] = {30, 24, 28, 10};
    for (size_t i = 0; i < 4; i++) {
        struct pb_pkt q = base6();
        q.family_code = fams6[i];
        q.null_be = false;
        roundtrip(LINKTYPE_NULL, &q);
    }
    /* An unknown family is not IP. */
    p.family_code = 7;
    len = pb_build(buf, LINKTYPE_NULL, &p, NULL);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_NULL, buf, len, &s), DECODE_NOT_IP);
}

static void test_null_big_endian(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    p.family_code = 2;
    p.null_be = true;
    uint8_t buf[256];
    pb_build(buf, LINKTYPE_NULL, &p, NULL);
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[3], 2);
    roundtrip(LINKTYPE_NULL, &p);
    static const uint32_t fams6[] = {30, 24, 28, 10};
    for (size_t i = 0; i < 4; i++) {
        struct pb_pkt q = base6();
        q.family_code = fams6[i];
        q.null_be = true;
        roundtrip(LINKTYPE_NULL, &q);
    }
}

static void test_loop(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    p.family_code = 2;
    roundtrip(LINKTYPE_LOOP, &p);
    struct pb_pkt q = base6();
    q.family_code = 24;
    roundtrip(LINKTYPE_LOOP, &q);
    /* LOOP is always network order: a little-endian 2 is not IPv4. */
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_LOOP, &p, NULL);
    buf[0] = 2;
    buf[1] = buf[2] = buf[3] = 0;
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_LOOP, buf, len, &s), DECODE_NOT_IP);
}

static void test_unknown_link(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    struct tcp_segment s;
    assert_int_equal(dec(147, buf, len, &s), DECODE_BAD_LINK);
    assert_int_equal(dec(105, buf, len, &s), DECODE_BAD_LINK);
    assert_int_equal(dec(-1, buf, len, &s), DECODE_BAD_LINK);
    assert_int_equal(dec(2, buf, len, &s), DECODE_BAD_LINK);
}

static void test_link_supported(void **state)
{
    (void)state;
    static const int yes[] = {0, 1, 101, 108, 113, 228, 229, 276};
    static const int no[] = {-1, 2, 9, 100, 105, 127, 147, 192, 230, 275,
                             277, 65535};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_true(decode_link_supported(yes[i]));
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_false(decode_link_supported(no[i]));
    }
}

static void test_arp_not_ip(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    p.ethertype = 0x0806;
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_NOT_IP);
    /* LLDP behind a VLAN tag too. */
    p.ethertype = 0x88cc;
    p.n_tags = 1;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_NOT_IP);
}

/* ---- IPv4 ---- */

static void test_ipv4_options(void **state)
{
    (void)state;
    static const uint8_t opts4[4] = {1, 1, 1, 0}; /* NOP NOP NOP EOL */
    static const uint8_t opts40[40] = {1, 1, 1, 1, 0};
    struct pb_pkt p = base4();
    p.ip4_opts = opts4;
    p.ip4_optlen = sizeof(opts4);
    uint8_t buf[256];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(buf[14], 0x46); /* IHL 6 */
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);
    /* The largest IHL, 15. */
    p.ip4_opts = opts40;
    p.ip4_optlen = sizeof(opts40);
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(buf[14], 0x4f);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);
}

static void test_ipv4_ihl_too_small(void **state)
{
    (void)state;
    for (uint8_t ihl = 0; ihl < 5; ihl++) {
        struct pb_pkt p = base4();
        p.ip4_ihl = ihl;
        p.ip4_ihl_raw = true;
        uint8_t buf[256];
        size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
        struct tcp_segment s;
        assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s),
                         DECODE_MALFORMED);
    }
}

static void test_ipv4_total_below_ihl(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    p.ip_len = 19;
    p.ip_len_raw = true;
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_MALFORMED);
    /* With options: a total of 20 is less than IHL 6's 24 bytes. */
    static const uint8_t opts4[4] = {1, 1, 1, 0};
    p.ip4_opts = opts4;
    p.ip4_optlen = 4;
    p.ip_len = 20;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_MALFORMED);
}

static void test_ipv4_total_beyond_capture(void **state)
{
    (void)state;
    /* A whole record whose IP length claims more than it holds: the
     * header lies. */
    struct pb_pkt p = base4();
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_IPV4, &p, NULL);
    buf[2] = 0x05; /* total length 1280+ */
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_IPV4, buf, len, &s), DECODE_MALFORMED);
}

static void test_ipv4_version_mismatch(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    buf[14] = 0x65; /* version 6 behind an IPv4 ethertype */
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_MALFORMED);
}

static void test_ipv4_fragments(void **state)
{
    (void)state;
    struct tcp_segment s;
    uint8_t buf[256];
    size_t len;
    struct pb_pkt p = base4();

    p.ip4_frag = 0x2000; /* MF, offset 0: the first fragment */
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_FRAGMENT);

    p.ip4_frag = 0x00b9; /* offset non-zero, last fragment */
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_FRAGMENT);

    p.ip4_frag = 0x2001; /* both */
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_FRAGMENT);

    p.ip4_frag = 0x4000; /* DF only: a whole packet */
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
}

static void test_ipv4_udp_not_tcp(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    p.proto = PB_PROTO_UDP;
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_NOT_TCP);
    p.proto = 1; /* ICMP */
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_NOT_TCP);
    /* IPv6 UDP too. */
    struct pb_pkt q = base6();
    q.proto = PB_PROTO_UDP;
    len = pb_build(buf, LINKTYPE_ETHERNET, &q, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_NOT_TCP);
}

static void test_ethernet_padding_not_payload(void **state)
{
    (void)state;
    /* A bare ACK: 54 bytes padded to the 60-byte Ethernet minimum. */
    struct pb_pkt p = base4();
    p.payload = NULL;
    p.len = 0;
    p.link_pad = 6;
    uint8_t buf[256];
    memset(buf, 0xee, sizeof(buf));
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(len, 60);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    assert_int_equal(s.payload_len, 0);
    assert_int_equal(s.wire_len, 0);
    /* Two payload bytes and four of padding. */
    p.payload = (const uint8_t *)"hi";
    p.len = 2;
    p.link_pad = 4;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    assert_int_equal(s.payload_len, 2);
    assert_int_equal(s.wire_len, 2);
    assert_memory_equal(s.payload, "hi", 2);
    /* The same for IPv6. */
    struct pb_pkt q = base6();
    q.payload = NULL;
    q.len = 0;
    q.link_pad = 10;
    len = pb_build(buf, LINKTYPE_ETHERNET, &q, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    assert_int_equal(s.payload_len, 0);
    assert_int_equal(s.wire_len, 0);
}

static void test_ipv4_zero_total_length_tso(void **state)
{
    (void)state;
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)i;
    }
    struct pb_pkt p = base4();
    p.payload = payload;
    p.len = sizeof(payload);
    p.ip_len = 0;
    p.ip_len_raw = true;
    uint8_t buf[512];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    assert_int_equal(s.payload_len, sizeof(payload));
    assert_int_equal(s.wire_len, sizeof(payload));
    assert_ptr_equal(s.payload, buf + info.payload_off);

    /* IPv6 payload length 0 on a whole record: the same fallback. */
    struct pb_pkt q = base6();
    q.payload = payload;
    q.len = sizeof(payload);
    q.ip_len = 0;
    q.ip_len_raw = true;
    len = pb_build(buf, LINKTYPE_ETHERNET, &q, &info);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    assert_int_equal(s.payload_len, sizeof(payload));
    assert_int_equal(s.wire_len, sizeof(payload));
}

/* ---- IPv6 ---- */

static void test_ipv6_extension_chain(void **state)
{
    (void)state;
    static const struct pb_ext chain[] = {
        {0, 0, 0},  /* hop-by-hop, 8 bytes */
        {43, 1, 0}, /* routing, 16 bytes */
        {60, 2, 0}, /* destination options, 24 bytes */
    };
    struct pb_pkt p = base6();
    p.ext = chain;
    p.n_ext = 3;
    uint8_t buf[512];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(info.l4_off, 14 + 40 + 8 + 16 + 24);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);
}

static void test_ipv6_ah(void **state)
{
    (void)state;
    static const struct pb_ext chain[] = {
        {51, 4, 0}, /* AH: (4 + 2) * 4 = 24 bytes */
    };
    struct pb_pkt p = base6();
    p.ext = chain;
    p.n_ext = 1;
    uint8_t buf[512];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_RAW, &p, &info);
    assert_int_equal(info.l4_off, 40 + 24);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_RAW, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);
}

static void test_ipv6_atomic_fragment(void **state)
{
    (void)state;
    static const struct pb_ext chain[] = {{44, 0, 0x0000}};
    struct pb_pkt p = base6();
    p.ext = chain;
    p.n_ext = 1;
    uint8_t buf[512];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);
    /* The two reserved bits do not make it a fragment. */
    static const struct pb_ext res[] = {{44, 0, 0x0006}};
    p.ext = res;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
}

static void test_ipv6_real_fragment(void **state)
{
    (void)state;
    static const uint16_t fields[] = {
        0x0001, /* M set, offset 0: first fragment */
        0x0008, /* offset 1, last fragment */
        0x05a9, /* offset and M */
    };
    for (size_t i = 0; i < 3; i++) {
        struct pb_ext chain[2] = {{0, 0, 0}, {44, 0, fields[i]}};
        struct pb_pkt p = base6();
        p.ext = chain;
        p.n_ext = 2;
        uint8_t buf[512];
        size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
        struct tcp_segment s;
        assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s),
                         DECODE_FRAGMENT);
    }
}

static void test_ipv6_chain_too_long(void **state)
{
    (void)state;
    /* Three short chains decode; forty destination-options headers are
     * past any sane bound. */
    struct pb_ext chain[40];
    for (size_t i = 0; i < 40; i++) {
        chain[i].type = 60;
        chain[i].len_field = 0;
        chain[i].frag = 0;
    }
    uint8_t buf[2048];
    struct tcp_segment s;
    struct pb_pkt p = base6();
    p.ext = chain;
    p.n_ext = 3;
    size_t len = pb_build(buf, LINKTYPE_RAW, &p, NULL);
    assert_int_equal(dec(LINKTYPE_RAW, buf, len, &s), DECODE_TCP);
    p.n_ext = 40;
    len = pb_build(buf, LINKTYPE_RAW, &p, NULL);
    assert_int_equal(dec(LINKTYPE_RAW, buf, len, &s), DECODE_MALFORMED);
}

static void test_ipv6_chain_off_the_end(void **state)
{
    (void)state;
    static const struct pb_ext chain[] = {{0, 0, 0}};
    struct pb_pkt p = base6();
    p.ext = chain;
    p.n_ext = 1;
    p.payload = NULL;
    p.len = 0;
    uint8_t buf[512];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_RAW, &p, &info);
    assert_int_equal(len, 40 + 8 + 20);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_RAW, buf, len, &s), DECODE_TCP);
    /* The hop-by-hop header claims 48 bytes where 28 remain. */
    buf[41] = 5;
    assert_int_equal(dec(LINKTYPE_RAW, buf, len, &s), DECODE_MALFORMED);
    /* A chain of 8-byte destination-options headers that never reaches
     * TCP before the end of a whole record. */
    buf[41] = 0;
    buf[40] = 60; /* hop-by-hop -> destination options at 48 */
    buf[48] = 60; /* -> another at 56 */
    buf[49] = 0;
    buf[56] = 60; /* -> another at 64, which the record does not hold */
    buf[57] = 0;
    buf[64] = 60;
    buf[65] = 0;
    assert_int_equal(dec(LINKTYPE_RAW, buf, len, &s), DECODE_MALFORMED);
    /* A record cut by the snap length inside the chain is truncated. */
    len = pb_build(buf, LINKTYPE_RAW, &p, &info);
    memset(&s, 0, sizeof(s));
    assert_int_equal(decode_packet(LINKTYPE_RAW, buf, 40 + 4, len, &s),
                     DECODE_TRUNCATED);
    assert_int_equal(decode_packet(LINKTYPE_RAW, buf, 40 + 8 + 4, len, &s),
                     DECODE_TRUNCATED);
}

static void test_ipv6_esp_not_tcp(void **state)
{
    (void)state;
    static const struct pb_ext chain[] = {{50, 0, 0}};
    struct pb_pkt p = base6();
    p.ext = chain;
    p.n_ext = 1;
    uint8_t buf[512];
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_NOT_TCP);
    /* ESP after a hop-by-hop header too; and no-next-header (59). */
    static const struct pb_ext chain2[] = {{0, 0, 0}, {50, 0, 0}};
    p.ext = chain2;
    p.n_ext = 2;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_NOT_TCP);
    p.n_ext = 0;
    p.proto = 59;
    p.payload = NULL;
    p.len = 0;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_NOT_TCP);
}

/* ---- TCP ---- */

static void test_tcp_options(void **state)
{
    (void)state;
    /* MSS, NOP, window scale, NOP NOP, SACK permitted... 12 bytes. */
    static const uint8_t opts[12] = {2, 4, 0x05, 0xb4, 1, 3, 3, 7,
                                     1, 1, 4, 2};
    struct pb_pkt p = base4();
    p.tcp_opts = opts;
    p.tcp_optlen = sizeof(opts);
    p.flags = TCP_FLAG_SYN;
    uint8_t buf[256];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(info.payload_off, 14 + 20 + 32);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);
    assert_int_equal(s.flags, TCP_FLAG_SYN);
    /* Data offset 15: 40 bytes of options. */
    static const uint8_t opts40[40] = {1};
    p.tcp_opts = opts40;
    p.tcp_optlen = 40;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_TCP);
    check_seg(&s, &p, buf, &info);
    assert_ptr_equal(s.payload, buf + 14 + 20 + 60);
}

static void test_tcp_flags(void **state)
{
    (void)state;
    static const uint8_t flagsets[] = {
        TCP_FLAG_SYN, TCP_FLAG_SYN | TCP_FLAG_ACK, TCP_FLAG_FIN | TCP_FLAG_ACK,
        TCP_FLAG_RST, TCP_FLAG_RST | TCP_FLAG_ACK, TCP_FLAG_PSH | TCP_FLAG_ACK};
    for (size_t i = 0; i < sizeof(flagsets); i++) {
        struct pb_pkt p = base4();
        p.flags = flagsets[i];
        roundtrip(LINKTYPE_ETHERNET, &p);
    }
}

static void test_tcp_data_offset_too_small(void **state)
{
    (void)state;
    for (uint8_t doff = 0; doff < 5; doff++) {
        struct pb_pkt p = base4();
        p.tcp_doff = doff;
        p.tcp_doff_raw = true;
        uint8_t buf[256];
        size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
        struct tcp_segment s;
        assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s),
                         DECODE_MALFORMED);
    }
}

static void test_tcp_data_offset_past_segment(void **state)
{
    (void)state;
    /* Data offset 15 (60 bytes) in a segment of 20 + 4 bytes. */
    struct pb_pkt p = base4();
    p.payload = (const uint8_t *)"abcd";
    p.len = 4;
    p.tcp_doff = 15;
    p.tcp_doff_raw = true;
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_MALFORMED);
    /* Also when Ethernet padding would make up the bytes. */
    p.link_pad = 64;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_MALFORMED);
    /* And for IPv6. */
    struct pb_pkt q = base6();
    q.payload = (const uint8_t *)"abcd";
    q.len = 4;
    q.tcp_doff = 8;
    q.tcp_doff_raw = true;
    len = pb_build(buf, LINKTYPE_ETHERNET, &q, NULL);
    assert_int_equal(dec(LINKTYPE_ETHERNET, buf, len, &s), DECODE_MALFORMED);
}

static void test_ip_too_short_for_tcp(void **state)
{
    (void)state;
    /* An IP length that leaves less than a TCP header. */
    struct pb_pkt p = base4();
    p.payload = NULL;
    p.len = 0;
    p.ip_len = 30;
    p.ip_len_raw = true;
    uint8_t buf[256];
    size_t len = pb_build(buf, LINKTYPE_RAW, &p, NULL);
    struct tcp_segment s;
    assert_int_equal(dec(LINKTYPE_RAW, buf, len, &s), DECODE_MALFORMED);
}

/* ---- snap length ---- */

static void test_cut_inside_payload(void **state)
{
    (void)state;
    uint8_t payload[1000];
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i * 7);
    }
    struct pb_pkt p = base4();
    p.payload = payload;
    p.len = sizeof(payload);
    uint8_t buf[2048];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    size_t cut = info.payload_off + 100;
    struct tcp_segment s;
    assert_int_equal(decode_packet(LINKTYPE_ETHERNET, buf, cut, len, &s),
                     DECODE_TCP);
    assert_int_equal(s.payload_len, 100);
    assert_int_equal(s.wire_len, 1000);
    assert_ptr_equal(s.payload, buf + info.payload_off);
    assert_memory_equal(s.payload, payload, 100);
    /* The wire length comes from the IP header, not the record's wire
     * length (which includes Ethernet padding or an FCS). */
    assert_int_equal(decode_packet(LINKTYPE_ETHERNET, buf, cut, len + 4, &s),
                     DECODE_TCP);
    assert_int_equal(s.wire_len, 1000);
    /* IPv6. */
    struct pb_pkt q = base6();
    q.payload = payload;
    q.len = sizeof(payload);
    len = pb_build(buf, LINKTYPE_ETHERNET, &q, &info);
    cut = info.payload_off + 1;
    assert_int_equal(decode_packet(LINKTYPE_ETHERNET, buf, cut, len, &s),
                     DECODE_TCP);
    assert_int_equal(s.payload_len, 1);
    assert_int_equal(s.wire_len, 1000);
    /* Cut exactly at the end of the headers. */
    cut = info.payload_off;
    assert_int_equal(decode_packet(LINKTYPE_ETHERNET, buf, cut, len, &s),
                     DECODE_TCP);
    assert_int_equal(s.payload_len, 0);
    assert_int_equal(s.wire_len, 1000);
}

static void test_cut_inside_headers(void **state)
{
    (void)state;
    struct pb_pkt p = base4();
    uint8_t buf[256];
    struct pb_info info;
    size_t len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    struct tcp_segment s;
    /* In the Ethernet header, the IP header and the TCP header. */
    assert_int_equal(decode_packet(LINKTYPE_ETHERNET, buf, 10, len, &s),
                     DECODE_TRUNCATED);
    assert_int_equal(decode_packet(LINKTYPE_ETHERNET, buf, 14 + 10, len, &s),
                     DECODE_TRUNCATED);
    assert_int_equal(
        decode_packet(LINKTYPE_ETHERNET, buf, info.l4_off + 19, len, &s),
        DECODE_TRUNCATED);
    /* The same short records uncut are malformed, not truncated. */
    assert_int_equal(decode_packet(LINKTYPE_ETHERNET, buf, 14 + 10, 24, &s),
                     DECODE_MALFORMED);
    /* TCP options cut. */
    static const uint8_t opts[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    p.tcp_opts = opts;
    p.tcp_optlen = 12;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(
        decode_packet(LINKTYPE_ETHERNET, buf, info.l4_off + 24, len, &s),
        DECODE_TRUNCATED);
    /* IPv4 options cut. */
    static const uint8_t o4[8] = {1, 1, 1, 1, 1, 1, 1, 0};
    p.ip4_opts = o4;
    p.ip4_optlen = 8;
    len = pb_build(buf, LINKTYPE_ETHERNET, &p, &info);
    assert_int_equal(decode_packet(LINKTYPE_ETHERNET, buf, 14 + 22, len, &s),
                     DECODE_TRUNCATED);
}

/*
 * Every prefix of a frame: never a crash or a read past the prefix (each
 * prefix is copied to an exact-size allocation, so valgrind and ASan see
 * overreads), TRUNCATED while headers are cut, TCP with the bytes present
 * once they are whole.
 */
static void sweep_prefixes(int linktype, const struct pb_pkt *p)
{
    uint8_t buf[2048];
    struct pb_info info;
    size_t full = pb_build(buf, linktype, p, &info);
    for (size_t n = 0; n < full; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, buf, n);
        struct tcp_segment s;
        memset(&s, 0, sizeof(s));
        enum decode_verdict v = decode_packet(linktype, copy, n, full, &s);
        if (n < info.payload_off) {
            if (v != DECODE_TRUNCATED) {
                fail_msg("prefix %zu of %zu (headers %zu): verdict %s", n,
                         full, info.payload_off, decode_verdict_name(v));
            }
        } else {
            if (v != DECODE_TCP) {
                fail_msg("prefix %zu of %zu (headers %zu): verdict %s", n,
                         full, info.payload_off, decode_verdict_name(v));
            }
            assert_int_equal(s.payload_len, n - info.payload_off);
            assert_int_equal(s.wire_len, p->len);
            assert_ptr_equal(s.payload, copy + info.payload_off);
        }
        free(copy);
    }
}

static void test_every_truncation_point(void **state)
{
    (void)state;
    static const uint8_t topts[8] = {2, 4, 5, 0xb4, 1, 1, 1, 0};
    static const struct pb_ext chain[] = {{0, 0, 0}, {60, 1, 0}};
    uint8_t payload[64];
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(0x40 + i);
    }
    /* The frame the contract names: TCP/IPv6 behind one VLAN tag. */
    struct pb_pkt p = base6();
    p.n_tags = 1;
    p.tcp_opts = topts;
    p.tcp_optlen = sizeof(topts);
    p.payload = payload;
    p.len = sizeof(payload);
    sweep_prefixes(LINKTYPE_ETHERNET, &p);
    /* With an extension chain. */
    p.ext = chain;
    p.n_ext = 2;
    sweep_prefixes(LINKTYPE_ETHERNET, &p);
    /* Other link types and IPv4 with options. */
    struct pb_pkt q = base4();
    static const uint8_t o4[4] = {1, 1, 1, 0};
    q.ip4_opts = o4;
    q.ip4_optlen = 4;
    q.tcp_opts = topts;
    q.tcp_optlen = sizeof(topts);
    q.n_tags = 2;
    q.tpid[0] = 0x88a8;
    sweep_prefixes(LINKTYPE_ETHERNET, &q);
    q.n_tags = 0;
    sweep_prefixes(LINKTYPE_LINUX_SLL, &q);
    sweep_prefixes(LINKTYPE_LINUX_SLL2, &q);
    sweep_prefixes(LINKTYPE_NULL, &q);
    sweep_prefixes(LINKTYPE_LOOP, &q);
    sweep_prefixes(LINKTYPE_RAW, &q);
    sweep_prefixes(LINKTYPE_IPV4, &q);
    sweep_prefixes(LINKTYPE_IPV6, &p);
}

static void test_verdict_names(void **state)
{
    (void)state;
    assert_string_equal(decode_verdict_name(DECODE_TCP), "tcp");
    assert_string_equal(decode_verdict_name(DECODE_FRAGMENT), "fragment");
    assert_string_equal(decode_verdict_name(DECODE_MALFORMED), "malformed");
    assert_string_equal(decode_verdict_name(DECODE_TRUNCATED), "truncated");
    /* Every verdict has its own name. */
    for (int a = 0; a < DECODE_VERDICT_COUNT; a++) {
        for (int b = a + 1; b < DECODE_VERDICT_COUNT; b++) {
            assert_string_not_equal(
                decode_verdict_name((enum decode_verdict)a),
                decode_verdict_name((enum decode_verdict)b));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ethernet_ipv4),
        cmocka_unit_test(test_ethernet_ipv6),
        cmocka_unit_test(test_vlan_one_tag),
        cmocka_unit_test(test_qinq),
        cmocka_unit_test(test_too_many_vlan_tags),
        cmocka_unit_test(test_sll),
        cmocka_unit_test(test_sll2),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_linktype_ipv4_ipv6),
        cmocka_unit_test(test_null_little_endian),
        cmocka_unit_test(test_null_big_endian),
        cmocka_unit_test(test_loop),
        cmocka_unit_test(test_unknown_link),
        cmocka_unit_test(test_link_supported),
        cmocka_unit_test(test_arp_not_ip),
        cmocka_unit_test(test_ipv4_options),
        cmocka_unit_test(test_ipv4_ihl_too_small),
        cmocka_unit_test(test_ipv4_total_below_ihl),
        cmocka_unit_test(test_ipv4_total_beyond_capture),
        cmocka_unit_test(test_ipv4_version_mismatch),
        cmocka_unit_test(test_ipv4_fragments),
        cmocka_unit_test(test_ipv4_udp_not_tcp),
        cmocka_unit_test(test_ethernet_padding_not_payload),
        cmocka_unit_test(test_ipv4_zero_total_length_tso),
        cmocka_unit_test(test_ipv6_extension_chain),
        cmocka_unit_test(test_ipv6_ah),
        cmocka_unit_test(test_ipv6_atomic_fragment),
        cmocka_unit_test(test_ipv6_real_fragment),
        cmocka_unit_test(test_ipv6_chain_too_long),
        cmocka_unit_test(test_ipv6_chain_off_the_end),
        cmocka_unit_test(test_ipv6_esp_not_tcp),
        cmocka_unit_test(test_tcp_options),
        cmocka_unit_test(test_tcp_flags),
        cmocka_unit_test(test_tcp_data_offset_too_small),
        cmocka_unit_test(test_tcp_data_offset_past_segment),
        cmocka_unit_test(test_ip_too_short_for_tcp),
        cmocka_unit_test(test_cut_inside_payload),
        cmocka_unit_test(test_cut_inside_headers),
        cmocka_unit_test(test_every_truncation_point),
        cmocka_unit_test(test_verdict_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
