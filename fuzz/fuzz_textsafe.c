/*
 * fuzz_textsafe: text from the cluster made safe to show (src/textsafe.c).
 *
 * The input: one byte that chooses the output size (1 to 256), then the
 * text, as a buffer of exactly its length (it may hold NULs). It goes
 * through tm_text_safe() with that size, with room for everything, and
 * with size 0.
 *
 * Checks: the output is terminated, as long as returned and shorter than
 * its buffer; it is well-formed UTF-8 without C0, DEL or C1 controls
 * (checked by fz_unsafe_text(), written apart); a short buffer holds a
 * prefix of the whole result that stops at most one escape (6 bytes)
 * short of its end; text that is already fit for a terminal and has none
 * of the escaped characters passes unchanged; size 0 writes nothing.
 * tm_text_trim_partial() of the result cut anywhere leaves a prefix that
 * is fit for a terminal, at most 3 bytes shorter than the cut.
 */
#include "fuzz_common.h"

#include "core/textsafe.h"

/* Whether `in` has a character tm_text_safe() escapes although it is
 * valid: U+061C, U+200E, U+200F, U+2028-U+202E, U+2066-U+2069 (C0, DEL
 * and C1 are caught by fz_unsafe_text()). */
FZ_NO_COVERAGE static bool has_reordering(const uint8_t *in, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (in[i] == 0xd8 && in[i + 1] == 0x9c) {
            return true;
        }
        if (i + 2 < n && in[i] == 0xe2 &&
            ((in[i + 1] == 0x80 &&
              (in[i + 2] == 0x8e || in[i + 2] == 0x8f ||
               (in[i + 2] >= 0xa8 && in[i + 2] <= 0xae))) ||
             (in[i + 1] == 0x81 && in[i + 2] >= 0xa6 && in[i + 2] <= 0xa9))) {
            return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t small = (size_t)data[0] + 1;
    size_t len = size - 1;
    char *in = malloc(len ? len : 1);
    FZ_CHECK(in != NULL, "out of memory");
    if (len > 0) {
        memcpy(in, data + 1, len);
    }
    size_t big = 6 * len + 1;
    char *whole = malloc(big);
    char *part = malloc(small);
    FZ_CHECK(whole != NULL && part != NULL, "out of memory");

    memset(whole, 'x', big);
    size_t n = tm_text_safe(whole, big, in, len);
    FZ_CHECK(n < big && memchr(whole, '\0', big) == whole + n,
             "whole: length %zu, buffer %zu", n, big);
    FZ_CHECK_SHOWN(whole, "the whole result");
    size_t at = 0;
    if (fz_unsafe_text((const uint8_t *)in, len, &at) == NULL &&
        !has_reordering((const uint8_t *)in, len)) {
        FZ_CHECK(n == len && memcmp(whole, in, len) == 0,
                 "safe text was changed");
    }

    memset(part, 'x', small);
    size_t k = tm_text_safe(part, small, in, len);
    FZ_CHECK(k < small && memchr(part, '\0', small) == part + k,
             "part: length %zu, buffer %zu", k, small);
    FZ_CHECK_SHOWN(part, "a short result");
    FZ_CHECK(k <= n && memcmp(part, whole, k) == 0,
             "the short result is not a prefix of the whole");
    FZ_CHECK(k == n || k + 6 >= small,
             "stopped at %zu of %zu with room for %zu", k, n, small - 1);

    char none = 'x';
    FZ_CHECK(tm_text_safe(&none, 0, in, len) == 0 && none == 'x',
             "size 0 wrote");

    /* Cut anywhere, then trimmed: a whole-character prefix. */
    for (size_t cut = n > 16 ? n - 16 : 0; cut <= n; cut++) {
        char saved = whole[cut];
        whole[cut] = '\0';
        char *copy = malloc(cut + 1);
        FZ_CHECK(copy != NULL, "out of memory");
        memcpy(copy, whole, cut + 1);
        tm_text_trim_partial(copy);
        size_t left = strlen(copy);
        FZ_CHECK(left <= cut && left + 3 >= cut,
                 "trimmed %zu of %zu bytes", cut - left, cut);
        FZ_CHECK_SHOWN(copy, "a trimmed cut");
        free(copy);
        whole[cut] = saved;
    }

    free(part);
    free(whole);
    free(in);
    return 0;
}
