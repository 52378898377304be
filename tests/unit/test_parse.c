/* Unit tests of parse.c: command-line value parsers and formatters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/parse.h"

#define MS 1000000ULL
#define SEC 1000000000ULL

/* ---- ports ---- */

static void port_ok(const char *s, uint16_t want)
{
    uint16_t p = 0;
    const char *why = NULL;
    if (parse_port(s, &p, &why) != 0) {
        fail_msg("parse_port(\"%s\") failed: %s", s, why ? why : "?");
    }
    assert_int_equal(p, want);
}

static void port_bad(const char *s)
{
    uint16_t p = 4321;
    const char *why = NULL;
    if (parse_port(s, &p, &why) == 0) {
        fail_msg("parse_port(\"%s\") accepted as %u", s, p);
    }
    assert_non_null(why);
    assert_true(why[0] != '\0');
}

static void test_port(void **state)
{
    (void)state;
    port_ok("1", 1);
    port_ok("80", 80);
    port_ok("8080", 8080);
    port_ok("65535", 65535);
    port_bad("0");
    port_bad("65536");
    port_bad("-1");
    port_bad("+80");
    port_bad("80x");
    port_bad(" 80");
    port_bad("80 ");
    port_bad("");
    port_bad("abc");
    port_bad("0x50");
    port_bad("123456");
    port_bad("99999");
    port_bad("8.0");
    port_bad("1e3");
}

/* ---- counts ---- */

static void test_count(void **state)
{
    (void)state;
    uint64_t v = 0;
    const char *why = NULL;
    assert_int_equal(parse_count("0", 10, &v, &why), 0);
    assert_int_equal(v, 0);
    assert_int_equal(parse_count("1000000", 1000000, &v, &why), 0);
    assert_int_equal(v, 1000000);
    assert_int_equal(parse_count("18446744073709551615", UINT64_MAX, &v,
                                 &why),
                     0);
    assert_int_equal(v, UINT64_MAX);
    assert_int_equal(parse_count("1000001", 1000000, &v, &why), -1);
    assert_int_equal(parse_count("18446744073709551616", UINT64_MAX, &v,
                                 &why),
                     -1);
    assert_int_equal(parse_count("99999999999999999999999", UINT64_MAX, &v,
                                 &why),
                     -1);
    assert_int_equal(parse_count("", 10, &v, &why), -1);
    assert_int_equal(parse_count("1x", 10, &v, &why), -1);
    assert_int_equal(parse_count("-1", 10, &v, &why), -1);
    assert_int_equal(parse_count(" 1", 10, &v, &why), -1);
}

/* ---- durations ---- */

static void dur_ok(const char *s, uint64_t want)
{
    uint64_t ns = 12345;
    const char *why = NULL;
    if (parse_duration(s, &ns, &why) != 0) {
        fail_msg("parse_duration(\"%s\") failed: %s", s, why ? why : "?");
    }
    if (ns != want) {
        fail_msg("parse_duration(\"%s\") = %llu, want %llu", s,
                 (unsigned long long)ns, (unsigned long long)want);
    }
}

static void dur_bad(const char *s)
{
    uint64_t ns = 12345;
    const char *why = NULL;
    if (parse_duration(s, &ns, &why) == 0) {
        fail_msg("parse_duration(\"%s\") accepted as %llu", s,
                 (unsigned long long)ns);
    }
    assert_non_null(why);
}

static void test_duration(void **state)
{
    (void)state;
    dur_ok("250us", 250000);
    dur_ok("500ms", 500 * MS);
    dur_ok("10s", 10 * SEC);
    dur_ok("1.5s", 1500 * MS);
    dur_ok("2m", 120 * SEC);
    dur_ok("1h", 3600 * SEC);
    dur_ok("0", 0);
    dur_ok("0s", 0);
    dur_ok("100ns", 100);
    dur_ok("0.5ms", 500000);
    dur_ok("3.000000001s", 3 * SEC + 1);
    dur_ok("200ms", 200 * MS);
    dur_bad("10");
    dur_bad("ms");
    dur_bad("1.5.5s");
    dur_bad("-1s");
    dur_bad("1d");
    dur_bad("");
    dur_bad(" 1s");
    dur_bad("1s ");
    dur_bad("1 s");
    dur_bad("1sec");
    dur_bad("1S");
    dur_bad("s");
    dur_bad(".s");
    dur_bad("1.s5");
    dur_bad("00");
}

static void test_duration_fraction_of_minutes_hours(void **state)
{
    (void)state;
    /* Fractions of the small units work... */
    dur_ok("1.5s", 1500 * MS);
    dur_ok("2.5ms", 2500000);
    /* Regression: ...but the fraction is multiplied as frac(1e9-scaled) * unit_ns
     * before dividing by 1e9, which overflows 64 bits for minutes and
     * hours: 0.5e9 * 60e9 = 3e19 > 2^64. parse_duration("1.5m") should
     * be 90 s, "1.5h" 5400 s, "0.25h" 900 s. */
    dur_ok("1.5m", 90 * SEC);
    dur_ok("0.5m", 30 * SEC);
    dur_ok("1.5h", 5400 * SEC);
    dur_ok("0.25h", 900 * SEC);
}

static void test_duration_large(void **state)
{
    (void)state;
    /* Regression: parse_decimal_nano() computes whole * 10^9 in 64 bits, which
     * wraps for whole numbers above 18446744073, so large values are
     * silently changed instead of parsed or rejected:
     * parse_duration("20000000000ms") (2e16 ns, which fits) gives
     * 1553255926 ms, and "20000000000s" (2e19 ns, which does not fit)
     * is accepted as 1553255926 s instead of "too large". */
    dur_ok("10000000000ms", 10000000000ULL * MS);
    dur_ok("20000000000ms", 20000000000ULL * MS);
    dur_bad("20000000000s");
    dur_bad("99999999999999h");
}

/* ---- sizes ---- */

static void size_ok(const char *s, uint64_t want)
{
    uint64_t v = 12345;
    const char *why = NULL;
    if (parse_size(s, &v, &why) != 0) {
        fail_msg("parse_size(\"%s\") failed: %s", s, why ? why : "?");
    }
    if (v != want) {
        fail_msg("parse_size(\"%s\") = %llu, want %llu", s,
                 (unsigned long long)v, (unsigned long long)want);
    }
}

static void size_bad(const char *s)
{
    uint64_t v = 12345;
    const char *why = NULL;
    if (parse_size(s, &v, &why) == 0) {
        fail_msg("parse_size(\"%s\") accepted as %llu", s,
                 (unsigned long long)v);
    }
    assert_non_null(why);
}

static void test_size(void **state)
{
    (void)state;
    size_ok("65536", 65536);
    size_ok("64KiB", 65536);
    size_ok("256MiB", 256ULL << 20);
    size_ok("1GiB", 1ULL << 30);
    size_ok("64K", 65536);
    size_ok("64k", 65536);
    size_ok("1MB", 1000000);
    size_ok("1KB", 1000);
    size_ok("2GB", 2000000000ULL);
    size_ok("2G", 2ULL << 30);
    size_ok("16M", 16ULL << 20);
    size_ok("1.5MiB", 1572864);
    size_ok("0.5KiB", 512);
    size_ok("100B", 100);
    size_ok("0", 0);
    size_bad("");
    size_bad("MiB");
    size_bad("-1");
    size_bad("1XB");
    size_bad("1 MiB");
    size_bad("1mib");
    size_bad("1.5.5K");
    size_bad("1TiB0");
    size_bad(" 1K");
    /* Beyond 2^50 bytes: too large. */
    size_bad("2000000GiB");
}

static void test_size_large(void **state)
{
    (void)state;
    /* Regression: the same 64-bit wrap as durations: parse_size("20000000000")
     * (20 GB, well inside the 2^50 limit) returns 1553255926. */
    size_ok("10000000000", 10000000000ULL);
    size_ok("20000000000", 20000000000ULL);
}

/* ---- pace ---- */

static void pace_ok(const char *s, double want)
{
    double v = -5;
    const char *why = NULL;
    if (parse_pace(s, &v, &why) != 0) {
        fail_msg("parse_pace(\"%s\") failed: %s", s, why ? why : "?");
    }
    assert_true(v == want);
}

static void pace_bad(const char *s)
{
    double v = -5;
    const char *why = NULL;
    if (parse_pace(s, &v, &why) == 0) {
        fail_msg("parse_pace(\"%s\") accepted as %f", s, v);
    }
    assert_non_null(why);
}

static void test_pace(void **state)
{
    (void)state;
    pace_ok("fast", 0);
    pace_ok("realtime", 1.0);
    pace_ok("2x", 2.0);
    pace_ok("0.5x", 0.5);
    pace_ok("1x", 1.0);
    pace_ok("0.001x", 0.001);
    pace_ok("1000000x", 1000000.0);
    pace_bad("2");
    pace_bad("x");
    pace_bad("0x");
    pace_bad("abc");
    pace_bad("");
    pace_bad("-2x");
    pace_bad("2X");
    pace_bad("2xx");
    pace_bad("Fast");
    pace_bad("0.0001x");
    pace_bad("1000001x");
}

/* ---- host:port ---- */

static void hp_ok(const char *s, const char *host, uint16_t port,
                  bool bracketed)
{
    struct hostport hp;
    const char *why = NULL;
    if (parse_hostport(s, &hp, &why) != 0) {
        fail_msg("parse_hostport(\"%s\") failed: %s", s, why ? why : "?");
    }
    assert_string_equal(hp.host, host);
    assert_int_equal(hp.port, port);
    assert_int_equal(hp.bracketed, bracketed);
}

static const char *hp_bad(const char *s)
{
    struct hostport hp;
    const char *why = NULL;
    if (parse_hostport(s, &hp, &why) == 0) {
        fail_msg("parse_hostport(\"%s\") accepted as %s port %u", s, hp.host,
                 hp.port);
    }
    assert_non_null(why);
    assert_true(why[0] != '\0');
    return why;
}

static void test_hostport(void **state)
{
    (void)state;
    hp_ok(":8080", "127.0.0.1", 8080, false);
    hp_ok("localhost:80", "localhost", 80, false);
    hp_ok("[::1]:9000", "::1", 9000, true);
    hp_ok("10.0.0.1:1", "10.0.0.1", 1, false);
    hp_ok("[2001:db8::1]:65535", "2001:db8::1", 65535, true);
    hp_ok("my-host.example.com:443", "my-host.example.com", 443, false);

    const char *why = hp_bad("::1:80");
    assert_non_null(strstr(why, "bracket"));
    hp_bad("2001:db8::1:80");
    hp_bad("host");
    hp_bad("host:");
    hp_bad("host:0");
    hp_bad("host:65536");
    hp_bad("host:+80");
    hp_bad("host:80x");
    hp_bad("[::1]");
    hp_bad("[::1]80");
    hp_bad("[::1");
    hp_bad("[1.2.3.4]:80");
    hp_bad("[localhost]:80");
    hp_bad("[]:80");
    hp_bad("-evil:80");
    hp_bad("a b:80");
    hp_bad("a/b:80");
    hp_bad("a;b:80");
    hp_bad("");
    hp_bad(":");
    hp_bad(":0");

    char longname[300];
    memset(longname, 'a', 290);
    memcpy(longname + 290, ":80", 4);
    hp_bad(longname);
    /* 255 characters is the most the host field holds. */
    memset(longname, 'b', 255);
    memcpy(longname + 255, ":80", 4);
    struct hostport hp;
    const char *w = NULL;
    assert_int_equal(parse_hostport(longname, &hp, &w), 0);
    assert_int_equal(strlen(hp.host), 255);
}

/* ---- addresses ---- */

static void test_parse_ip(void **state)
{
    (void)state;
    uint8_t fam = 0, addr[16];
    memset(addr, 0xff, sizeof(addr));
    assert_int_equal(parse_ip("10.1.2.3", &fam, addr), 0);
    assert_int_equal(fam, 4);
    static const uint8_t want4[16] = {10, 1, 2, 3};
    assert_memory_equal(addr, want4, 16); /* the rest zeroed */

    memset(addr, 0xff, sizeof(addr));
    assert_int_equal(parse_ip("::1", &fam, addr), 0);
    assert_int_equal(fam, 6);
    static const uint8_t want6[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                      0, 0, 0, 0, 0, 0, 0, 1};
    assert_memory_equal(addr, want6, 16);

    assert_int_equal(parse_ip("2001:db8::5", &fam, addr), 0);
    assert_int_equal(fam, 6);
    assert_int_equal(addr[0], 0x20);
    assert_int_equal(addr[1], 0x01);
    assert_int_equal(addr[2], 0x0d);
    assert_int_equal(addr[3], 0xb8);
    assert_int_equal(addr[15], 5);

    assert_int_equal(parse_ip("1.2.3", &fam, addr), -1);
    assert_int_equal(parse_ip("1.2.3.4.5", &fam, addr), -1);
    assert_int_equal(parse_ip("256.1.1.1", &fam, addr), -1);
    assert_int_equal(parse_ip("hello", &fam, addr), -1);
    assert_int_equal(parse_ip("", &fam, addr), -1);
    assert_int_equal(parse_ip("[::1]", &fam, addr), -1);
    assert_int_equal(parse_ip("::1%eth0", &fam, addr), -1);
}

/* ---- formatting ---- */

static void test_format_bytes(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(format_bytes(0, buf, sizeof(buf)), "0 B");
    assert_string_equal(format_bytes(1023, buf, sizeof(buf)), "1023 B");
    assert_string_equal(format_bytes(1024, buf, sizeof(buf)), "1.0 KiB");
    assert_string_equal(format_bytes(1536, buf, sizeof(buf)), "1.5 KiB");
    assert_string_equal(format_bytes(1572864, buf, sizeof(buf)), "1.5 MiB");
    assert_string_equal(format_bytes(256ULL << 20, buf, sizeof(buf)),
                        "256.0 MiB");
    assert_string_equal(format_bytes(1ULL << 30, buf, sizeof(buf)),
                        "1.0 GiB");
    assert_string_equal(format_bytes(5ULL << 40, buf, sizeof(buf)),
                        "5.0 TiB");
    assert_string_equal(format_bytes(1ULL << 50, buf, sizeof(buf)),
                        "1024.0 TiB");
    /* The result is the buffer, truncated to fit. */
    char small[4];
    assert_ptr_equal(format_bytes(1536, small, sizeof(small)), small);
    assert_string_equal(small, "1.5");
}

static void test_format_duration(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(format_duration(0, buf, sizeof(buf)), "0 us");
    assert_string_equal(format_duration(250000, buf, sizeof(buf)), "250 us");
    assert_string_equal(format_duration(999999, buf, sizeof(buf)), "999 us");
    assert_string_equal(format_duration(1 * MS, buf, sizeof(buf)), "1 ms");
    assert_string_equal(format_duration(500 * MS, buf, sizeof(buf)),
                        "500 ms");
    assert_string_equal(format_duration(1 * SEC, buf, sizeof(buf)),
                        "1.00 s");
    assert_string_equal(format_duration(2250 * MS, buf, sizeof(buf)),
                        "2.25 s");
    assert_string_equal(format_duration(119 * SEC, buf, sizeof(buf)),
                        "119.00 s");
    assert_string_equal(format_duration(120 * SEC, buf, sizeof(buf)),
                        "2.0 min");
    assert_string_equal(format_duration(90 * 60 * SEC, buf, sizeof(buf)),
                        "90.0 min");
    assert_string_equal(format_duration(7200 * SEC, buf, sizeof(buf)),
                        "2.0 h");
    assert_string_equal(format_duration(36 * 3600 * SEC, buf, sizeof(buf)),
                        "36.0 h");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_duration_fraction_of_minutes_hours),
        cmocka_unit_test(test_duration_large),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_size_large),
        cmocka_unit_test(test_pace),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_parse_ip),
        cmocka_unit_test(test_format_bytes),
        cmocka_unit_test(test_format_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
