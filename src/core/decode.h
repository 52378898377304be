/*
 * Packet decoding: link layer, IPv4/IPv6 and TCP headers of one captured
 * record. Pure: no I/O, no allocation, no globals. Every read is bounds
 * checked against the captured length; a record may be cut anywhere.
 */
#ifndef TAPMIRROR_DECODE_H
#define TAPMIRROR_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Link types as written in capture files (LINKTYPE_*, not DLT_*). */
enum {
    LINKTYPE_NULL = 0,      /* BSD loopback, host-order address family */
    LINKTYPE_ETHERNET = 1,  /* with 802.1Q / 802.1ad tags */
    LINKTYPE_RAW = 101,     /* raw IPv4 or IPv6 */
    LINKTYPE_LOOP = 108,    /* OpenBSD loopback, network-order family */
    LINKTYPE_LINUX_SLL = 113,
    LINKTYPE_IPV4 = 228,
    LINKTYPE_IPV6 = 229,
    LINKTYPE_LINUX_SLL2 = 276,
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10

enum decode_verdict {
    DECODE_TCP = 0,    /* a TCP segment: every field of the result is set */
    DECODE_NOT_IP,     /* the link carries something else (ARP, LLDP...) */
    DECODE_NOT_TCP,    /* IPv4/IPv6 with another transport (UDP, ICMP...) */
    DECODE_FRAGMENT,   /* an IP fragment; fragments are not reassembled */
    DECODE_TRUNCATED,  /* the snap length cut the headers */
    DECODE_MALFORMED,  /* inconsistent header fields */
    DECODE_BAD_LINK,   /* a link type this decoder does not know */
    DECODE_VERDICT_COUNT
};

/* A TCP segment as seen in one record. Pointers borrow the record. */
struct tcp_segment {
    uint8_t family; /* 4 or 6 */
    uint8_t flags;  /* TCP_FLAG_* */
    uint16_t sport, dport;
    uint8_t src[16], dst[16]; /* IPv4 uses the first four bytes */
    uint32_t seq, ack;
    const uint8_t *tcp; /* the TCP header (its checksum at +16) */
    const uint8_t *payload;
    uint32_t payload_len; /* payload bytes present in the record */
    uint32_t wire_len;    /* payload bytes the segment carried on the wire;
                             more than payload_len when the record was cut */
};

/* Whether decode_packet() understands records of this link type. */
bool decode_link_supported(int linktype);

/*
 * Decodes one record: `caplen` bytes at `pkt`, of a packet that was
 * `wirelen` bytes long on the wire. Fills `seg` only for DECODE_TCP.
 */
enum decode_verdict decode_packet(int linktype, const uint8_t *pkt,
                                  size_t caplen, size_t wirelen,
                                  struct tcp_segment *seg);

/* A short lower-case name for a verdict ("fragment", "malformed"...). */
const char *decode_verdict_name(enum decode_verdict v);

#endif
