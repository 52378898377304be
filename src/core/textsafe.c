#include "textsafe.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The length of the valid UTF-8 sequence (2 to 4 bytes) at `p`, with its
 * code point in *cp, or 0 when the bytes there are not one. */
static size_t utf8_decode(const unsigned char *p, size_t len, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1fu;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0fu;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return 0; /* ASCII, a continuation byte, 0xc0, 0xc1 or 0xf5-0xff */
    }
    if (len < n) {
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (p[k] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0; /* overlong, past Unicode, or a surrogate */
    }
    *cp = v;
    return n;
}

/* Valid characters that still must not reach a terminal as they are: C1
 * controls, and those that reorder the text around them or break the
 * line (they could make a message read as something it is not). */
static bool unsafe_char(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c || cp == 0x200e ||
           cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

size_t tm_text_safe(char *out, size_t size, const char *in, size_t len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0, i = 0;
    if (size == 0) {
        return 0;
    }
    while (i < len) {
        char piece[12];
        size_t n, used = 1;
        unsigned char c = p[i];
        uint32_t cp = 0;
        if (c >= 0x20 && c < 0x7f) {
            piece[0] = (char)c;
            n = 1;
        } else if (c == '\t' || c == '\n' || c == '\r') {
            piece[0] = '\\';
            piece[1] = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
            n = 2;
        } else if (c < 0x80 ||
                   (used = utf8_decode(p + i, len - i, &cp)) == 0) {
            used = 1; /* a C0 control, DEL, or a byte that is not UTF-8 */
            n = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", c);
        } else if (unsafe_char(cp)) {
            n = (size_t)snprintf(piece, sizeof(piece), "\\u%04x",
                                 (unsigned)cp);
        } else {
            memcpy(piece, p + i, used);
            n = used;
        }
        if (o + n + 1 > size) {
            break;
        }
        memcpy(out + o, piece, n);
        o += n;
        i += used;
    }
    out[o] = '\0';
    return o;
}

size_t tm_text_safe_str(char *out, size_t size, const char *in)
{
    return tm_text_safe(out, size, in, strlen(in));
}

void tm_text_trim_partial(char *s)
{
    size_t n = strlen(s), start = n;
    /* Back over at most three continuation bytes to a lead byte. */
    while (start > 0 && n - start < 4 &&
           ((unsigned char)s[start - 1] & 0xc0) == 0x80) {
        start--;
    }
    if (start == 0) {
        return;
    }
    unsigned char lead = (unsigned char)s[start - 1];
    size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (lead >= 0xc0 && n - (start - 1) < want) {
        s[start - 1] = '\0';
    }
}
