#include "sniff.h"

#define TLS_CONTENT_HANDSHAKE 22
#define TLS_HANDSHAKE_CLIENT_HELLO 1
/* RFC 8446 5.2: a record's length is at most 2^14 + 2048 (ciphertext);
 * a plaintext handshake record is at most 2^14, but older stacks pad. */
#define TLS_MAX_RECORD (16384 + 2048)

enum sniff_proto sniff_first_bytes(const uint8_t *data, size_t len)
{
    if (len == 0 || data[0] != TLS_CONTENT_HANDSHAKE) {
        return SNIFF_OTHER;
    }
    /* The record's legacy_version: 3.0 (SSLv3) to 3.4; a ClientHello's
     * record says 3.1 for compatibility, anything else is not TLS. */
    if (len >= 2 && data[1] != 3) {
        return SNIFF_OTHER;
    }
    if (len >= 3 && data[2] > 4) {
        return SNIFF_OTHER;
    }
    if (len >= 5) {
        unsigned record = (unsigned)data[3] << 8 | data[4];
        if (record == 0 || record > TLS_MAX_RECORD) {
            return SNIFF_OTHER;
        }
    }
    if (len >= 6 && data[5] != TLS_HANDSHAKE_CLIENT_HELLO) {
        return SNIFF_OTHER;
    }
    return SNIFF_TLS;
}

const char *sniff_proto_name(enum sniff_proto p)
{
    return p == SNIFF_TLS ? "tls" : "other";
}
