/*
 * Small helpers shared by every module: allocation that aborts on
 * exhaustion (fixed-size objects only; data growth goes through caps),
 * TCP sequence arithmetic and time units.
 */
#ifndef TAPMIRROR_UTIL_H
#define TAPMIRROR_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TM_NS_PER_US 1000ULL
#define TM_NS_PER_MS 1000000ULL
#define TM_NS_PER_S  1000000000ULL

#define TM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TM_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define TM_MAX(a, b)    ((a) > (b) ? (a) : (b))

/* Returns owned memory; aborts with a message when the allocator fails. */
void *tm_xmalloc(size_t size);
void *tm_xcalloc(size_t count, size_t size);
void *tm_xrealloc(void *ptr, size_t size);
char *tm_xstrdup(const char *s);

/*
 * Sequence-space comparisons modulo 2^32 (RFC 9293 section 3.4). Written
 * with unsigned subtraction so that every case is defined C.
 */
static inline bool seq_lt(uint32_t a, uint32_t b)
{
    return ((a - b) & 0x80000000u) != 0;
}
static inline bool seq_le(uint32_t a, uint32_t b)
{
    return a == b || seq_lt(a, b);
}
static inline bool seq_gt(uint32_t a, uint32_t b)
{
    return seq_lt(b, a);
}
static inline bool seq_ge(uint32_t a, uint32_t b)
{
    return seq_le(b, a);
}

/* A Kubernetes object name: DNS-1123 (lower-case letters, digits, '-'
 * and '.', starting and ending with a letter or digit), at most `max`
 * characters. Such a name can never be read as a command-line flag. */
bool tm_dns1123_name(const char *s, size_t max);

/* Whether the `len` bytes at `s` equal the string `lit`, ASCII letters
 * compared without case (HTTP header names, codings, media types). */
bool tm_ascii_caseeq(const char *s, size_t len, const char *lit);

/* Keyed 64-bit hash of a byte string (seeded so that flow tuples chosen
 * by strangers cannot be aimed at one hash bucket). */
uint64_t tm_hash64(const void *data, size_t len, uint64_t seed);

#endif
