/*
 * Parsers for command-line values. Pure. Each returns 0 on success and
 * -1 on failure, leaving a reason in `why` (a static string).
 */
#ifndef TAPMIRROR_PARSE_H
#define TAPMIRROR_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decimal port, 1-65535: digits only, no sign, spaces or suffix. */
int parse_port(const char *s, uint16_t *port, const char **why);

/* A count: decimal digits, at most `max`. */
int parse_count(const char *s, uint64_t max, uint64_t *out, const char **why);

/* A duration with a unit: 250us, 500ms, 10s, 1.5s, 2m, 1h. "0" alone is
 * accepted as zero. */
int parse_duration(const char *s, uint64_t *ns, const char **why);

/* A size: 1048576, 64KiB, 256MiB, 1GiB (also K/M/G, binary, and
 * KB/MB/GB, decimal). */
int parse_size(const char *s, uint64_t *bytes, const char **why);

/* Replay pace: "fast" (0: as fast as targets accept), "realtime" (1.0),
 * or a factor such as "2x" or "0.5x". */
int parse_pace(const char *s, double *speed, const char **why);

/* HOST:PORT, [IPV6]:PORT, or :PORT (the loopback address). */
struct hostport {
    char host[256]; /* without brackets; "127.0.0.1" for :PORT */
    uint16_t port;
    bool bracketed; /* written as [IPV6] */
};
int parse_hostport(const char *s, struct hostport *hp, const char **why);

/* An IPv4 or IPv6 address literal: family 4 or 6 and 4 or 16 bytes. */
int parse_ip(const char *s, uint8_t *family, uint8_t addr[16]);

/* Human-readable renderings into `buf`: "1.5 MiB", "2.25 s". */
const char *format_bytes(uint64_t n, char *buf, size_t len);
const char *format_duration(uint64_t ns, char *buf, size_t len);

#endif
