/*
 * Shared helpers of the fuzz targets: the libFuzzer entry point's
 * prototype, a consumer of the fuzz input (a tiny C "FuzzedDataProvider")
 * that returns zeros once the input is used up, a deterministic PRNG, and
 * a check macro that aborts in every build type (assert() would vanish
 * under -DNDEBUG, which RelWithDebInfo sets).
 *
 * Everything is static inline so that each target takes what it uses
 * without unused-function warnings.
 */
#ifndef TAPMIRROR_FUZZ_COMMON_H
#define TAPMIRROR_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Harness code that checks bytes one by one need not steer the fuzzer:
 * without coverage instrumentation (and its comparison tracing) those
 * loops run several times faster. Only clang knows the attribute. */
#if defined(__clang__)
#define FZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define FZ_NO_COVERAGE
#endif

/* A failed check: print where and why, then abort so that libFuzzer (or
 * the standalone runner, or ctest) records a crash. */
#define FZ_CHECK(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__,  \
                    #cond);                                                   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

/*
 * Findings already reported against src/ can be tolerated while fuzzing
 * for new ones: TAPMIRROR_FUZZ_TOLERATE=name[,name...] in the environment
 * (see fuzz/README.md for the names). The regression runs under ctest
 * never set it, so a committed crash-* reproducer fails until src/ is
 * fixed.
 */
static inline bool fz_tolerate(const char *name)
{
    const char *list = getenv("TAPMIRROR_FUZZ_TOLERATE");
    if (list == NULL) {
        return false;
    }
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) {
            return true;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return false;
}

/* TAPMIRROR_FUZZ_TRACE=1: the script targets print what they do, to
 * diagnose a reproducer (fuzzrun_reasm -v crash-file). */
static inline bool fz_trace_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("TAPMIRROR_FUZZ_TRACE");
        on = v != NULL && v[0] != '\0' && v[0] != '0';
    }
    return on;
}

#define FZ_TRACE(...)                                                         \
    do {                                                                      \
        if (fz_trace_on()) {                                                  \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

/* ---- input consumer ---- */

struct fz {
    const uint8_t *p;
    size_t n;
};

static inline size_t fz_left(const struct fz *f)
{
    return f->n;
}

static inline uint8_t fz_u8(struct fz *f)
{
    if (f->n == 0) {
        return 0;
    }
    f->n--;
    return *f->p++;
}

static inline uint16_t fz_u16(struct fz *f)
{
    uint16_t hi = fz_u8(f);
    return (uint16_t)((hi << 8) | fz_u8(f));
}

static inline uint32_t fz_u32(struct fz *f)
{
    uint32_t hi = fz_u16(f);
    return (hi << 16) | fz_u16(f);
}

static inline uint64_t fz_u64(struct fz *f)
{
    uint64_t hi = fz_u32(f);
    return (hi << 32) | fz_u32(f);
}

static inline bool fz_bool(struct fz *f)
{
    return fz_u8(f) & 1;
}

/* A value in [0, n) (n > 0). */
static inline uint32_t fz_below(struct fz *f, uint32_t n)
{
    uint32_t v = n <= 256 ? fz_u8(f) : n <= 65536 ? fz_u16(f) : fz_u32(f);
    return v % n;
}

/* Up to `want` bytes of input; *got says how many there were. */
static inline const uint8_t *fz_bytes(struct fz *f, size_t want, size_t *got)
{
    size_t n = want < f->n ? want : f->n;
    const uint8_t *p = f->p;
    f->p += n;
    f->n -= n;
    *got = n;
    return p;
}

/* ---- deterministic PRNG (splitmix64) and hashing ---- */

static inline uint64_t fz_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline uint64_t fz_rand(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return fz_mix(*state);
}

FZ_NO_COVERAGE static inline uint64_t fz_fnv64(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Reads every byte of a range, so that ASan reports a range that is not
 * wholly valid memory. Returns a checksum so the reads are not dead. */
FZ_NO_COVERAGE static inline uint64_t fz_touch(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    FZ_CHECK(copy != NULL, "out of memory");
    if (n > 0) {
        memcpy(copy, p, n);
    }
    uint64_t h = fz_fnv64(copy, n);
    free(copy);
    return h;
}

/* Whether [p, p+n) lies inside [base, base+len). */
static inline bool fz_within(const uint8_t *p, size_t n, const uint8_t *base,
                             size_t len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return a >= b && a - b <= len && n <= len - (a - b);
}

/* ---- text shown on a terminal ---- */

/*
 * Whether `n` bytes at `s` are fit for a terminal: well-formed UTF-8 as
 * the Unicode standard's table 3-7 lists the byte sequences (so no
 * overlong form, surrogate or value past U+10FFFF), with no C0 control,
 * DEL or C1 control. Returns NULL, or what is wrong with *at set to its
 * offset. Written apart from src/textsafe.c so that the two check each
 * other.
 */
FZ_NO_COVERAGE static inline const char *fz_unsafe_text(const uint8_t *s,
                                                        size_t n, size_t *at)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint8_t lo = 0x80, hi = 0xbf; /* the second byte's range */
        size_t len;
        *at = i;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                return "a C0 control or DEL";
            }
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            if (c == 0xc2 && i + 1 < n && s[i + 1] <= 0x9f) {
                return "a C1 control";
            }
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            return "a byte that cannot start UTF-8";
        }
        if (n - i < len) {
            return "a truncated UTF-8 sequence";
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return "an ill-formed UTF-8 sequence";
        }
        for (size_t k = 2; k < len; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) {
                return "an ill-formed UTF-8 sequence";
            }
        }
        i += len;
    }
    return NULL;
}

/* Aborts unless the NUL-terminated `s` is fit for a terminal. */
#define FZ_CHECK_SHOWN(s, what)                                               \
    do {                                                                      \
        size_t fz_at_ = 0;                                                    \
        const char *fz_why_ = fz_unsafe_text((const uint8_t *)(s),            \
                                             strlen(s), &fz_at_);             \
        FZ_CHECK(fz_why_ == NULL, "%s has %s at offset %zu (%02x)", what,     \
                 fz_why_, fz_at_, (unsigned char)(s)[fz_at_]);                \
    } while (0)

#endif
