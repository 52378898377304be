/*
 * What protocol a connection speaks, from its first client bytes. Today
 * one question: is it a TLS handshake? A connection that starts with a
 * TLS ClientHello is encrypted end to end, so replaying it to a plaintext
 * target only sends that target handshakes it cannot answer (a service
 * mesh's mTLS hop, a service that terminates TLS itself).
 *
 * Pure: no I/O, no state; reads at most the first 6 bytes it is given.
 */
#ifndef TAPMIRROR_SNIFF_H
#define TAPMIRROR_SNIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sniff_proto {
    SNIFF_OTHER = 0, /* not TLS (HTTP/1, anything else) */
    SNIFF_TLS,       /* a TLS handshake record holding a ClientHello */
};

/*
 * Classifies a connection by its first client bytes, however few arrived
 * in the first segment: TLS when every byte given fits a TLS record
 * header (content type 22, handshake; version 3.0 to 3.4; a length of 1
 * to 2^14 + 2048) followed by a handshake of type 1, ClientHello. An
 * empty buffer is SNIFF_OTHER. No HTTP/1 request starts with byte 22.
 */
enum sniff_proto sniff_first_bytes(const uint8_t *data, size_t len);

/* "tls" or "other": how a connection was counted. */
const char *sniff_proto_name(enum sniff_proto p);

#endif
