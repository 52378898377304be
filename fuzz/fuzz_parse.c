/*
 * fuzz_parse: every parse_* function on the input as a NUL-terminated
 * string, against reference implementations with exact (128-bit)
 * arithmetic, plus round trips and the format_* renderers.
 *
 * The input is the string (cut at its first NUL); its first bytes also
 * serve as a number for format_bytes()/format_duration() and as their
 * buffer size, and as the maximum for parse_count().
 *
 * Checks:
 *  - parse_port accepts exactly 1 to 5 decimal digits with a value of
 *    1..65535 (nothing else: no sign, space, prefix or suffix);
 *  - parse_count accepts exactly non-empty digit strings whose value is
 *    at most `max`, and returns that value;
 *  - parse_duration / parse_size / parse_pace never accept a value other
 *    than the exact one the text denotes (fractions below the 9th digit
 *    ignored), and accept every well-formed value within their limits
 *    (2^63 - 1 ns, 2^50 bytes, 0.001x to 1000000x; whole parts of up to
 *    13 digits);
 *  - parse_hostport accepts exactly HOST:PORT with one colon and a valid
 *    host name, [IPV6]:PORT and :PORT, and what it returns prints and
 *    parses back the same;
 *  - parse_ip agrees with inet_pton and round-trips through inet_ntop;
 *  - format_bytes / format_duration always terminate within the buffer
 *    (of any size, even 1) and render small values exactly.
 */
#include "fuzz_common.h"

#include <arpa/inet.h>

#include "core/parse.h"

__extension__ typedef unsigned __int128 u128;

#define BILLION 1000000000ULL

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The decimal grammar of durations, sizes and paces: digits, optionally a
 * '.' and more digits, at least one digit in all. Returns the text after
 * it, or NULL. `whole` saturates at 10^30; `frac9` is the first nine
 * fractional digits as nano-units. */
struct decimal {
    u128 whole;
    uint64_t frac9;
    bool huge;
};

static const char *ref_decimal(const char *s, struct decimal *d)
{
    memset(d, 0, sizeof(*d));
    const u128 cap = (u128)1000000000000000ULL * 1000000000000000ULL;
    int digits = 0;
    const char *p = s;
    while (is_digit(*p)) {
        if (d->whole >= cap) {
            d->huge = true;
        } else {
            d->whole = d->whole * 10 + (u128)(*p - '0');
        }
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        uint64_t place = 100000000ULL;
        while (is_digit(*p)) {
            d->frac9 += (uint64_t)(*p - '0') * place;
            place /= 10;
            p++;
            digits++;
        }
    }
    return digits > 0 ? p : NULL;
}

static void check_port(const char *s)
{
    uint16_t port = 0;
    const char *why = NULL;
    int rc = parse_port(s, &port, &why);
    size_t len = strlen(s);
    bool ok = len >= 1 && len <= 5;
    unsigned long v = 0;
    for (size_t i = 0; ok && i < len; i++) {
        ok = is_digit(s[i]);
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    ok = ok && v >= 1 && v <= 65535;
    FZ_CHECK((rc == 0) == ok, "parse_port(\"%s\") = %d", s, rc);
    if (ok) {
        FZ_CHECK(port == v, "parse_port(\"%s\") gave %u", s, port);
    } else {
        FZ_CHECK(why != NULL && why[0] != '\0', "no reason");
    }
}

static void check_count(const char *s, uint64_t max)
{
    uint64_t v = 12345;
    const char *why = NULL;
    int rc = parse_count(s, max, &v, &why);
    bool ok = s[0] != '\0';
    u128 ref = 0;
    for (const char *p = s; ok && *p; p++) {
        ok = is_digit(*p);
        if (ref <= (u128)UINT64_MAX) {
            ref = ref * 10 + (u128)(*p - '0');
        }
    }
    ok = ok && ref <= (u128)max;
    FZ_CHECK((rc == 0) == ok, "parse_count(\"%s\", %llu) = %d", s,
             (unsigned long long)max, rc);
    if (ok) {
        FZ_CHECK((u128)v == ref, "parse_count(\"%s\") gave %llu", s,
                 (unsigned long long)v);
    } else {
        FZ_CHECK(why != NULL, "no reason");
    }
}

/* A decimal with a unit from `units` (NULL-terminated names, scales).
 * Returns the exact value, or -1 if the text is not of that form. */
static int ref_scaled(const char *s, const char *const *names,
                      const uint64_t *scales, u128 *value, u128 *whole,
                      uint64_t *scale)
{
    struct decimal d;
    const char *rest = ref_decimal(s, &d);
    if (rest == NULL || d.huge) {
        return -1;
    }
    for (size_t i = 0; names[i] != NULL; i++) {
        if (strcmp(rest, names[i]) == 0) {
            *value = d.whole * scales[i] + (u128)d.frac9 * scales[i] / BILLION;
            *whole = d.whole;
            *scale = scales[i];
            return 0;
        }
    }
    return -1;
}

static void check_duration(const char *s)
{
    static const char *const names[] = {"ns", "us", "ms", "s", "m", "h", NULL};
    static const uint64_t scales[] = {1,           1000ULL,
                                      1000000ULL,  BILLION,
                                      60 * BILLION, 3600 * BILLION};
    uint64_t ns = 0;
    const char *why = NULL;
    int rc = parse_duration(s, &ns, &why);
    u128 value = 0, whole = 0;
    uint64_t scale = 1;
    int ref = strcmp(s, "0") == 0
                  ? 0
                  : ref_scaled(s, names, scales, &value, &whole, &scale);
    if (rc == 0) {
        FZ_CHECK(ref == 0, "parse_duration(\"%s\") accepted malformed text",
                 s);
        FZ_CHECK((u128)ns == value,
                 "parse_duration(\"%s\") = %llu ns, exactly %.0Lf ns", s,
                 (unsigned long long)ns, (long double)value);
    } else {
        FZ_CHECK(why != NULL, "no reason");
        FZ_CHECK(!(ref == 0 && whole <= 1000000000000ULL &&
                   value <= UINT64_MAX / 2),
                 "parse_duration(\"%s\") rejected a valid duration", s);
    }
}

static void check_size(const char *s)
{
    static const char *const names[] = {"",   "B",  "K",   "KiB", "KB",
                                        "k",  "M",  "MiB", "MB",  "G",
                                        "GiB", "GB", NULL};
    static const uint64_t scales[] = {
        1,       1,          1ULL << 10, 1ULL << 10, 1000,          1ULL << 10,
        1ULL << 20, 1ULL << 20, 1000000, 1ULL << 30, 1ULL << 30, BILLION};
    uint64_t bytes = 0;
    const char *why = NULL;
    int rc = parse_size(s, &bytes, &why);
    u128 value = 0, whole = 0;
    uint64_t scale = 1;
    int ref = ref_scaled(s, names, scales, &value, &whole, &scale);
    if (rc == 0) {
        FZ_CHECK(ref == 0, "parse_size(\"%s\") accepted malformed text", s);
        FZ_CHECK((u128)bytes == value,
                 "parse_size(\"%s\") = %llu, exactly %.0Lf", s,
                 (unsigned long long)bytes, (long double)value);
    } else {
        FZ_CHECK(why != NULL, "no reason");
        FZ_CHECK(!(ref == 0 && whole <= 1000000000000ULL &&
                   value <= (1ULL << 50)),
                 "parse_size(\"%s\") rejected a valid size", s);
    }
}

static void check_pace(const char *s)
{
    static const char *const names[] = {"x", NULL};
    static const uint64_t scales[] = {BILLION};
    double speed = -1;
    const char *why = NULL;
    int rc = parse_pace(s, &speed, &why);
    if (strcmp(s, "fast") == 0 || strcmp(s, "realtime") == 0) {
        FZ_CHECK(rc == 0 && speed == (s[0] == 'f' ? 0.0 : 1.0),
                 "parse_pace(\"%s\")", s);
        return;
    }
    u128 nano = 0, whole = 0;
    uint64_t scale = 1;
    int ref = ref_scaled(s, names, scales, &nano, &whole, &scale);
    bool in_range = nano >= 1000000ULL && nano <= 1000000ULL * BILLION;
    if (rc == 0) {
        FZ_CHECK(ref == 0, "parse_pace(\"%s\") accepted malformed text", s);
        /* Within rounding of the exact factor. */
        double exact = (double)(uint64_t)nano / 1e9;
        double diff = speed > exact ? speed - exact : exact - speed;
        FZ_CHECK(in_range && diff <= exact * 1e-12,
                 "parse_pace(\"%s\") = %.17g, exactly %.9Lf", s, speed,
                 (long double)nano / 1e9L);
    } else {
        FZ_CHECK(why != NULL, "no reason");
        FZ_CHECK(!(ref == 0 && whole <= 1000000000000ULL && in_range),
                 "parse_pace(\"%s\") rejected a valid pace", s);
    }
}

static bool ref_port_text(const char *p)
{
    size_t len = strlen(p);
    if (len < 1 || len > 5) {
        return false;
    }
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(p[i])) {
            return false;
        }
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

static bool host_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '.' || c == '-' || c == '_';
}

static void check_hostport(const char *s)
{
    struct hostport hp;
    const char *why = NULL;
    int rc = parse_hostport(s, &hp, &why);
    bool ok = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close != NULL && close[1] == ':') {
            size_t hl = (size_t)(close - s - 1);
            char host[256];
            if (hl < sizeof(host)) {
                memcpy(host, s + 1, hl);
                host[hl] = '\0';
                uint8_t a[16];
                ok = inet_pton(AF_INET6, host, a) == 1 &&
                     ref_port_text(close + 2);
            }
        }
    } else if (s[0] != '\0') {
        const char *colon = strrchr(s, ':');
        if (colon != NULL && strchr(s, ':') == colon &&
            (size_t)(colon - s) < 256 && s[0] != '-') {
            ok = ref_port_text(colon + 1);
            for (const char *c = s; ok && c < colon; c++) {
                ok = host_char(*c);
            }
        }
    }
    FZ_CHECK((rc == 0) == ok, "parse_hostport(\"%s\") = %d", s, rc);
    if (rc != 0) {
        FZ_CHECK(why != NULL && why[0] != '\0', "no reason");
        return;
    }
    FZ_CHECK(hp.port >= 1, "port 0");
    FZ_CHECK(memchr(hp.host, '\0', sizeof(hp.host)) != NULL,
             "host not terminated");
    FZ_CHECK(hp.bracketed == (s[0] == '['), "bracketed flag");
    if (s[0] == ':') {
        FZ_CHECK(strcmp(hp.host, "127.0.0.1") == 0, ":PORT host %s", hp.host);
    }
    /* Round trip. */
    char text[300];
    snprintf(text, sizeof(text), hp.bracketed ? "[%s]:%u" : "%s:%u", hp.host,
             hp.port);
    struct hostport hp2;
    FZ_CHECK(parse_hostport(text, &hp2, &why) == 0 &&
                 strcmp(hp2.host, hp.host) == 0 && hp2.port == hp.port &&
                 hp2.bracketed == hp.bracketed,
             "\"%s\" does not parse back as itself", text);
}

static void check_ip(const char *s)
{
    uint8_t fam = 0, addr[16];
    int rc = parse_ip(s, &fam, addr);
    uint8_t ref[16];
    memset(ref, 0, sizeof(ref));
    int ref4 = inet_pton(AF_INET, s, ref);
    if (ref4 == 1) {
        FZ_CHECK(rc == 0 && fam == 4 && memcmp(addr, ref, 16) == 0,
                 "parse_ip(\"%s\") IPv4", s);
    } else {
        memset(ref, 0, sizeof(ref));
        int ref6 = inet_pton(AF_INET6, s, ref);
        FZ_CHECK((rc == 0) == (ref6 == 1), "parse_ip(\"%s\") = %d", s, rc);
        if (rc == 0) {
            FZ_CHECK(fam == 6 && memcmp(addr, ref, 16) == 0,
                     "parse_ip(\"%s\") IPv6", s);
        }
    }
    if (rc == 0) {
        char text[INET6_ADDRSTRLEN];
        FZ_CHECK(inet_ntop(fam == 4 ? AF_INET : AF_INET6, addr, text,
                           sizeof(text)) != NULL,
                 "inet_ntop");
        uint8_t fam2 = 0, addr2[16];
        FZ_CHECK(parse_ip(text, &fam2, addr2) == 0 && fam2 == fam &&
                     memcmp(addr2, addr, 16) == 0,
                 "\"%s\" does not parse back", text);
    }
}

static void check_format(uint64_t n, size_t len)
{
    char *buf = malloc(len ? len : 1);
    FZ_CHECK(buf != NULL, "out of memory");
    memset(buf, 'x', len ? len : 1);
    const char *r = format_bytes(n, buf, len);
    FZ_CHECK(r == buf, "format_bytes returned another buffer");
    if (len > 0) {
        FZ_CHECK(memchr(buf, '\0', len) != NULL, "format_bytes unterminated");
    }
    if (len >= 32 && n < 1024) {
        char want[32];
        snprintf(want, sizeof(want), "%llu B", (unsigned long long)n);
        FZ_CHECK(strcmp(buf, want) == 0, "format_bytes(%llu) = \"%s\"",
                 (unsigned long long)n, buf);
    }
    memset(buf, 'x', len ? len : 1);
    r = format_duration(n, buf, len);
    FZ_CHECK(r == buf, "format_duration returned another buffer");
    if (len > 0) {
        FZ_CHECK(memchr(buf, '\0', len) != NULL,
                 "format_duration unterminated");
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FZ_CHECK(s != NULL, "out of memory");
    if (size > 0) {
        memcpy(s, data, size);
    }
    s[size] = '\0';

    check_port(s);
    check_count(s, UINT64_MAX);
    check_count(s, 65535);
    check_count(s, 0);
    struct fz f = {data, size};
    uint64_t n = fz_u64(&f);
    check_count(s, n);
    check_duration(s);
    check_size(s);
    check_pace(s);
    check_hostport(s);
    check_ip(s);

    check_format(n, (size_t)(n % 41));
    check_format(n >> (n & 63), 64);
    check_format(size, 1 + size % 16);
    free(s);
    return 0;
}
