#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t size)
{
    /* There is no sensible recovery from failing to allocate a fixed-size
     * object; data buffers are bounded by caps long before this. */
    fprintf(stderr, "tapmirror: out of memory allocating %zu bytes\n", size);
    abort();
}

void *tm_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        out_of_memory(size);
    }
    return p;
}

void *tm_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        out_of_memory(count * size);
    }
    return p;
}

void *tm_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL) {
        out_of_memory(size);
    }
    return p;
}

char *tm_xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *p = tm_xmalloc(len);
    memcpy(p, s, len);
    return p;
}

bool tm_dns1123_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '.') {
            return false;
        }
        if ((i == 0 || i == n - 1) && !alnum) {
            return false;
        }
    }
    return true;
}

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t mix64(uint64_t h)
{
    /* The finaliser of MurmurHash3: every input bit affects every output
     * bit. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t tm_hash64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = rotl64(h ^ mix64(w + seed), 27) * 0x9e3779b97f4a7c15ULL;
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = rotl64(h ^ mix64(w + seed + len), 27) * 0x9e3779b97f4a7c15ULL;
    }
    return mix64(h);
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool tm_ascii_caseeq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower(s[i]) != ascii_lower(lit[i])) {
            return false;
        }
    }
    return true;
}
