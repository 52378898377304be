/* Unit tests of textsafe.c: text from the cluster made safe to show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/textsafe.h"

/* `in` (of `len` bytes) shown in a roomy buffer is exactly `want`. */
static void shown_n(const char *in, size_t len, const char *want)
{
    char out[256];
    size_t n = tm_text_safe(out, sizeof(out), in, len);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

/* A literal, embedded NULs included. */
#define shown(lit, want) shown_n(lit, sizeof(lit) - 1, want)

static void test_printable_text_passes(void **state)
{
    (void)state;
    shown("pod web-0: tcpdump: Couldn't change to 'tcpdump' uid=102",
          "pod web-0: tcpdump: Couldn't change to 'tcpdump' uid=102");
    /* Valid UTF-8 of every length, and a backslash, pass unchanged. */
    shown("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3 a\\b",
          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3 a\\b");
    shown("", "");
}

static void test_terminal_sequences_are_escaped(void **state)
{
    (void)state;
    /* Clear screen, window title (OSC ... BEL), hidden text. */
    shown("\x1b[2J\x1b]0;owned\x07\x1b[8mhidden",
          "\\x1b[2J\\x1b]0;owned\\x07\\x1b[8mhidden");
    shown("a\tb\nc\rd\x7f\x00" "e", "a\\tb\\nc\\rd\\x7f\\x00e");
    /* C1 CSI as a UTF-8 character, and as a raw 8-bit byte. */
    shown("\xc2\x9b" "31m", "\\u009b31m");
    shown("\x9b" "31m", "\\x9b31m");
    shown("\xc2\x80\xc2\x9f\xc2\xa0", "\\u0080\\u009f\xc2\xa0");
}

static void test_reordering_characters_are_escaped(void **state)
{
    (void)state;
    /* RIGHT-TO-LEFT OVERRIDE, LINE SEPARATOR, RLI, ALM. */
    shown("a\xe2\x80\xae" "b\xe2\x80\xa8" "c\xe2\x81\xa7" "d\xd8\x9c",
          "a\\u202eb\\u2028c\\u2067d\\u061c");
}

static void test_invalid_utf8_is_escaped_bytewise(void **state)
{
    (void)state;
    shown("\x80x", "\\x80x");                       /* stray continuation */
    shown("\xc3", "\\xc3");                         /* cut at the end */
    shown("\xe2\x82x", "\\xe2\\x82x");              /* cut in the middle */
    shown("\xc0\xaf", "\\xc0\\xaf");                /* overlong '/' */
    shown("\xe0\x80\xaf", "\\xe0\\x80\\xaf");       /* overlong, 3 bytes */
    shown("\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf");
    shown("\xed\xa0\x80", "\\xed\\xa0\\x80");       /* a surrogate */
    shown("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
    shown("\xfe\xff", "\\xfe\\xff");
    /* The largest valid character passes. */
    shown("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");
}

static void test_never_cuts_an_escape_or_a_character(void **state)
{
    (void)state;
    char out[6];
    /* "ab" fits, "\x1b" (4) would not. */
    assert_int_equal(tm_text_safe(out, sizeof(out), "ab\x1b" "c", 4), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(tm_text_safe(out, 4, "ab\xe2\x82\xac", 5), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(tm_text_safe(out, 1, "abc", 3), 0);
    assert_string_equal(out, "");
    out[0] = 'x';
    assert_int_equal(tm_text_safe(out, 0, "abc", 3), 0);
    assert_int_equal(out[0], 'x');
    assert_int_equal(tm_text_safe_str(out, sizeof(out), "a\x1b"), 5);
    assert_string_equal(out, "a\\x1b");
}

static void test_trim_partial(void **state)
{
    (void)state;
    char s[16];
    strcpy(s, "ab\xe2\x82");
    tm_text_trim_partial(s);
    assert_string_equal(s, "ab");
    strcpy(s, "ab\xe2\x82\xac");
    tm_text_trim_partial(s);
    assert_string_equal(s, "ab\xe2\x82\xac");
    strcpy(s, "ab\xf0");
    tm_text_trim_partial(s);
    assert_string_equal(s, "ab");
    strcpy(s, "abc");
    tm_text_trim_partial(s);
    assert_string_equal(s, "abc");
    s[0] = '\0';
    tm_text_trim_partial(s);
    assert_string_equal(s, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable_text_passes),
        cmocka_unit_test(test_terminal_sequences_are_escaped),
        cmocka_unit_test(test_reordering_characters_are_escaped),
        cmocka_unit_test(test_invalid_utf8_is_escaped_bytewise),
        cmocka_unit_test(test_never_cuts_an_escape_or_a_character),
        cmocka_unit_test(test_trim_partial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
