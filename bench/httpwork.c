/* See httpwork.h. Everything here is deterministic: no clock, no global
 * state, the same bytes on every machine. */
#include "httpwork.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ULL

/* One in HEALTH_EVERY exchanges is a health probe, one in POST_EVERY of
 * the others a POST with a JSON body; the rest are GETs. */
#define HEALTH_EVERY 16u
#define POST_EVERY   5u

static const char host_header[] = "Host: shop.example.test\r\n";

static const char *const words[] = {
    "alpine",  "basket", "canvas",  "delta",  "ember",   "fjord",
    "granite", "harbor", "indigo",  "juniper", "kelp",   "lumen",
    "meadow",  "nectar", "orchard", "pebble", "quartz",  "russet",
    "saffron", "timber", "umber",   "velvet", "willow",  "yarrow",
};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A small deterministic stream of numbers from one key. */
struct draw {
    uint64_t state;
};

static uint64_t draw_next(struct draw *d)
{
    d->state += GOLDEN_GAMMA;
    return mix64(d->state);
}

static uint32_t draw_below(struct draw *d, uint32_t n)
{
    return (uint32_t)(draw_next(d) % n);
}

uint64_t hw_fnv1a(uint64_t hash, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        hash ^= p[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

/* Appends with snprintf semantics; the caller's sizes keep it in bounds,
 * and a truncation would only shorten a benchmark message. */
static size_t put(char *buf, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static size_t put(char *buf, size_t at, const char *fmt, ...)
{
    if (at >= HW_MESSAGE_MAX) {
        return at;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + at, HW_MESSAGE_MAX - at, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return at;
    }
    size_t end = at + (size_t)n;
    return end < HW_MESSAGE_MAX ? end : HW_MESSAGE_MAX - 1;
}

/* Words until the text would pass `limit` characters. */
static size_t put_words(char *buf, size_t at, size_t limit, struct draw *d)
{
    size_t start = at;
    for (;;) {
        const char *w = words[draw_below(d, sizeof words / sizeof words[0])];
        size_t need = strlen(w) + (at > start ? 1u : 0u);
        if (at - start + need > limit) {
            return at;
        }
        at = put(buf, at, "%s%s", at > start ? " " : "", w);
    }
}

size_t hw_request(uint64_t seed, uint32_t conn, uint32_t exch, char *buf,
                  enum hw_kind *kind)
{
    struct draw d = {mix64(seed ^ mix64(((uint64_t)conn << 32) | exch))};
    uint64_t request_id = draw_next(&d);
    size_t at = 0;

    if (exch % HEALTH_EVERY == HEALTH_EVERY - 1u) {
        *kind = HW_HEALTH;
        at = put(buf, at, "GET /health HTTP/1.1\r\n%s"
                 "User-Agent: kube-probe/1.29\r\nAccept: */*\r\n"
                 "Connection: keep-alive\r\n\r\n", host_header);
        return at;
    }
    if (draw_below(&d, POST_EVERY) == 0) {
        *kind = HW_POST;
        char body[256];
        size_t blen = 0;
        blen = (size_t)snprintf(body, sizeof body,
                                "{\"item\":%" PRIu32 ",\"quantity\":%" PRIu32
                                ",\"customer\":\"c-%08" PRIx32 "\",\"note\":\"",
                                draw_below(&d, 100000), 1u + draw_below(&d, 9),
                                (uint32_t)draw_next(&d));
        struct draw words_draw = {draw_next(&d)};
        char note[96];
        size_t nlen = put_words(note, 0, 20u + draw_below(&d, 60), &words_draw);
        note[nlen] = '\0';
        blen += (size_t)snprintf(body + blen, sizeof body - blen, "%s\"}",
                                 note);
        at = put(buf, at,
                 "POST /api/v1/orders?conn=%" PRIu32 "&seq=%" PRIu32
                 " HTTP/1.1\r\n%s"
                 "User-Agent: shop-web/3.2\r\nAccept: application/json\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                 "X-Request-Id: %016" PRIx64 "\r\n\r\n%s",
                 conn, exch, host_header, blen, request_id, body);
        return at;
    }
    *kind = HW_GET;
    at = put(buf, at,
             "GET /api/v1/items/%" PRIu32 "?view=%s HTTP/1.1\r\n%s"
             "User-Agent: shop-web/3.2\r\nAccept: application/json\r\n"
             "Accept-Language: en-GB,en;q=0.8\r\n"
             "X-Request-Id: %016" PRIx64 "\r\n\r\n",
             draw_below(&d, 100000), draw_below(&d, 2) ? "full" : "summary",
             host_header, request_id);
    return at;
}

/* The JSON body for a request, 300-600 bytes but for health probes. */
static size_t json_body(uint64_t key, int health, int post, char *body)
{
    size_t at = 0;
    if (health) {
        return put(body, at, "{\"status\":\"ok\",\"checks\":{\"db\":\"ok\","
                             "\"cache\":\"ok\"}}");
    }
    struct draw d = {key};
    size_t want = 300u + draw_below(&d, 301);
    if (post) {
        at = put(body, at,
                 "{\"order\":\"ord-%016" PRIx64 "\",\"status\":\"created\","
                 "\"total\":%" PRIu32 ".%02" PRIu32 ",\"currency\":\"EUR\","
                 "\"lines\":[",
                 draw_next(&d), draw_below(&d, 5000), draw_below(&d, 100));
    } else {
        at = put(body, at,
                 "{\"id\":%" PRIu32 ",\"sku\":\"SKU-%06" PRIu32 "\","
                 "\"price\":%" PRIu32 ".%02" PRIu32 ",\"currency\":\"EUR\","
                 "\"stock\":%" PRIu32 ",\"lines\":[",
                 draw_below(&d, 100000), draw_below(&d, 1000000),
                 draw_below(&d, 500), draw_below(&d, 100),
                 draw_below(&d, 1000));
    }
    unsigned lines = 1u + draw_below(&d, 3);
    for (unsigned i = 0; i < lines; i++) {
        at = put(body, at,
                 "%s{\"sku\":\"SKU-%06" PRIu32 "\",\"qty\":%" PRIu32
                 ",\"price\":%" PRIu32 ".%02" PRIu32 "}",
                 i ? "," : "", draw_below(&d, 1000000), 1u + draw_below(&d, 9),
                 draw_below(&d, 500), draw_below(&d, 100));
    }
    at = put(body, at, "],\"description\":\"");
    /* The closing quote and brace take the last two bytes. */
    size_t room = want > at + 2u ? want - at - 2u : 0u;
    at = put_words(body, at, room, &d);
    return put(body, at, "\"}");
}

size_t hw_response(const char *method, size_t method_len, const char *target,
                   size_t target_len, const char *date, char *buf)
{
    uint64_t key = hw_fnv1a(HW_FNV_BASIS, method, method_len);
    key = hw_fnv1a(key, " ", 1);
    key = hw_fnv1a(key, target, target_len);
    int health = target_len >= 7 && memcmp(target, "/health", 7) == 0;
    int post = method_len == 4 && memcmp(method, "POST", 4) == 0;
    char body[HW_MESSAGE_MAX];
    size_t blen = json_body(key, health, post, body);
    size_t at = put(buf, 0,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\nDate: %.*s\r\n"
                    "Cache-Control: no-store\r\n\r\n",
                    blen, (int)HW_DATE_LEN, date);
    if (at + blen >= HW_MESSAGE_MAX) {
        blen = HW_MESSAGE_MAX - 1u - at;
    }
    memcpy(buf + at, body, blen);
    return at + blen;
}

void hw_http_date(time_t t, char *date)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    /* Wide enough for any int the compiler can imagine; real dates are
     * always HW_DATE_LEN characters. */
    char text[96];
    snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(date, text, HW_DATE_LEN);
    date[HW_DATE_LEN] = '\0';
}
