#include "parse.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int parse_count(const char *s, uint64_t max, uint64_t *out, const char **why)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0') {
        *why = "empty";
        return -1;
    }
    for (const char *p = s; *p; p++) {
        if (!is_digit(*p)) {
            *why = "not a whole number";
            return -1;
        }
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10 || v * 10 + d > max) {
            *why = "too large";
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int parse_port(const char *s, uint16_t *port, const char **why)
{
    uint64_t v;
    if (parse_count(s, 999999, &v, why) < 0 || strlen(s) > 5) {
        *why = "must be a whole number between 1 and 65535";
        return -1;
    }
    if (v < 1 || v > 65535) {
        *why = "must be between 1 and 65535";
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

/* Reads "123" or "1.5": the whole part and the fraction in units of
 * 10^-9, so that fractions stay exact in integers. Fails on no digits
 * or a whole part beyond 2^60. */
static int parse_decimal(const char **sp, uint64_t *whole, uint64_t *frac)
{
    const char *p = *sp;
    uint64_t w = 0, f = 0;
    int digits = 0;
    while (is_digit(*p)) {
        if (w > (1ULL << 60) / 10) {
            return -1;
        }
        w = w * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        uint64_t place = 100000000ULL;
        while (is_digit(*p)) {
            f += (uint64_t)(*p - '0') * place;
            place /= 10;
            p++;
            digits++;
        }
    }
    if (digits == 0) {
        return -1;
    }
    *whole = w;
    *frac = f;
    *sp = p;
    return 0;
}

/* whole.frac * unit, where frac is in 10^-9; -1 if it exceeds `max`. */
static int scale(uint64_t whole, uint64_t frac, uint64_t unit, uint64_t max,
                 uint64_t *out)
{
    if (whole > max / unit) {
        return -1;
    }
    /* frac < 10^9 and unit may be 3600 * 10^9: scale units that are whole
     * multiples of 10^9 first so the product cannot overflow. */
    uint64_t part = unit % TM_NS_PER_S == 0 ? frac * (unit / TM_NS_PER_S)
                                            : frac * unit / TM_NS_PER_S;
    if (whole * unit > max - part) {
        return -1;
    }
    *out = whole * unit + part;
    return 0;
}

int parse_duration(const char *s, uint64_t *ns, const char **why)
{
    static const struct {
        const char *unit;
        uint64_t ns; /* nanoseconds per unit */
    } units[] = {
        {"ns", 1},
        {"us", TM_NS_PER_US},
        {"ms", TM_NS_PER_MS},
        {"s", TM_NS_PER_S},
        {"m", 60 * TM_NS_PER_S},
        {"h", 3600 * TM_NS_PER_S},
    };
    const char *p = s;
    uint64_t whole, frac;
    *why = "must be a number with a unit: 500ms, 10s, 2m, 1h";
    if (s == NULL) {
        return -1;
    }
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    if (parse_decimal(&p, &whole, &frac) < 0) {
        if (is_digit(*s)) {
            *why = "too large";
        }
        return -1;
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            /* Up to about 290 years: far beyond any sensible timeout. */
            if (scale(whole, frac, units[i].ns, UINT64_MAX / 2, ns) < 0) {
                *why = "too large";
                return -1;
            }
            return 0;
        }
    }
    return -1;
}

int parse_size(const char *s, uint64_t *bytes, const char **why)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } suffixes[] = {
        {"", 1},
        {"B", 1},
        {"K", 1ULL << 10},
        {"KiB", 1ULL << 10},
        {"KB", 1000},
        {"k", 1ULL << 10},
        {"M", 1ULL << 20},
        {"MiB", 1ULL << 20},
        {"MB", 1000000},
        {"G", 1ULL << 30},
        {"GiB", 1ULL << 30},
        {"GB", 1000000000},
    };
    const char *p = s;
    uint64_t whole, frac;
    *why = "must be a size such as 65536, 64KiB, 256MiB or 1GiB";
    if (s == NULL) {
        return -1;
    }
    if (parse_decimal(&p, &whole, &frac) < 0) {
        if (is_digit(*s)) {
            *why = "too large";
        }
        return -1;
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(suffixes); i++) {
        if (strcmp(p, suffixes[i].suffix) == 0) {
            if (scale(whole, frac, suffixes[i].mult, 1ULL << 50, bytes) < 0) {
                *why = "too large";
                return -1;
            }
            return 0;
        }
    }
    return -1;
}

int parse_pace(const char *s, double *speed, const char **why)
{
    *why = "must be fast, ordered, realtime, or a factor such as 2x or "
           "0.5x";
    if (s == NULL) {
        return -1;
    }
    if (strcmp(s, "fast") == 0) {
        *speed = 0;
        return 0;
    }
    if (strcmp(s, "realtime") == 0) {
        *speed = 1.0;
        return 0;
    }
    const char *p = s;
    uint64_t whole, frac;
    if (parse_decimal(&p, &whole, &frac) < 0 || strcmp(p, "x") != 0) {
        return -1;
    }
    if ((whole == 0 && frac < 1000000ULL) || whole > 1000000 ||
        (whole == 1000000 && frac > 0)) {
        *why = "factor must be between 0.001x and 1000000x";
        return -1;
    }
    *speed = (double)whole + (double)frac / 1e9;
    return 0;
}

int parse_ip(const char *s, uint8_t *family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, s, addr) == 1) {
        *family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, s, addr) == 1) {
        *family = 6;
        return 0;
    }
    return -1;
}

int parse_hostport(const char *s, struct hostport *hp, const char **why)
{
    const char *port;
    size_t hostlen;
    memset(hp, 0, sizeof(*hp));
    if (s == NULL || *s == '\0') {
        *why = "must be HOST:PORT, [IPV6]:PORT or :PORT";
        return -1;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            *why = "must be [IPV6]:PORT";
            return -1;
        }
        hostlen = (size_t)(close - s - 1);
        memcpy(hp->host, s + 1, TM_MIN(hostlen, sizeof(hp->host) - 1));
        hp->bracketed = true;
        port = close + 2;
        uint8_t fam, addr[16];
        if (hostlen >= sizeof(hp->host) || parse_ip(hp->host, &fam, addr) ||
            fam != 6) {
            *why = "the address in brackets must be an IPv6 address";
            return -1;
        }
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL) {
            *why = "must be HOST:PORT, [IPV6]:PORT or :PORT";
            return -1;
        }
        if (strchr(s, ':') != colon) {
            *why = "an IPv6 address needs brackets: [::1]:PORT";
            return -1;
        }
        hostlen = (size_t)(colon - s);
        if (hostlen >= sizeof(hp->host)) {
            *why = "host name too long";
            return -1;
        }
        if (hostlen == 0) {
            snprintf(hp->host, sizeof(hp->host), "127.0.0.1");
        } else {
            memcpy(hp->host, s, hostlen);
            hp->host[hostlen] = '\0';
        }
        port = colon + 1;
        for (const char *c = hp->host; *c; c++) {
            if (!(is_digit(*c) || (*c >= 'a' && *c <= 'z') ||
                  (*c >= 'A' && *c <= 'Z') || *c == '.' || *c == '-' ||
                  *c == '_')) {
                *why = "invalid character in host name";
                return -1;
            }
        }
        if (hp->host[0] == '-') {
            *why = "host name must not start with '-'";
            return -1;
        }
    }
    const char *pwhy;
    if (parse_port(port, &hp->port, &pwhy) < 0) {
        *why = "port must be a whole number between 1 and 65535";
        return -1;
    }
    return 0;
}

const char *format_bytes(uint64_t n, char *buf, size_t len)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (n < 1024) {
        snprintf(buf, len, "%llu B", (unsigned long long)n);
        return buf;
    }
    double v = (double)n;
    size_t u = 0;
    v /= 1024.0;
    while (v >= 1024.0 && u + 1 < TM_ARRAY_LEN(units)) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

const char *format_duration(uint64_t ns, char *buf, size_t len)
{
    if (ns < TM_NS_PER_MS) {
        snprintf(buf, len, "%llu us", (unsigned long long)(ns / 1000));
    } else if (ns < TM_NS_PER_S) {
        snprintf(buf, len, "%llu ms",
                 (unsigned long long)(ns / TM_NS_PER_MS));
    } else if (ns < 120 * TM_NS_PER_S) {
        snprintf(buf, len, "%.2f s", (double)ns / 1e9);
    } else if (ns < 7200 * TM_NS_PER_S) {
        snprintf(buf, len, "%.1f min", (double)ns / 60e9);
    } else {
        snprintf(buf, len, "%.1f h", (double)ns / 3600e9);
    }
    return buf;
}
