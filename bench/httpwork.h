/* The HTTP/1.1 keep-alive workload of the H benchmarks (bench/run.py),
 * shared by the capture generator (httpgen.c), the answering target
 * (httptarget.c) and the floor client (httpfloor.c), so that all three
 * agree byte for byte on every request and every response.
 *
 * Requests are a pure function of (seed, connection, exchange); a response
 * is a pure function of the request's method and target plus the Date
 * header, so the target gives the same answer production gave in the
 * capture, except for the date. */
#ifndef TM_BENCH_HTTPWORK_H
#define TM_BENCH_HTTPWORK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Longest request or response this workload produces, with room to spare. */
#define HW_MESSAGE_MAX 2048u
/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is always this long, so
 * a target's answer has production's length whatever the clock says. */
#define HW_DATE_LEN 29u

enum hw_kind { HW_GET, HW_POST, HW_HEALTH };

/* The request of exchange `exch` on connection `conn` into buf (at least
 * HW_MESSAGE_MAX bytes); returns its length and sets *kind. */
size_t hw_request(uint64_t seed, uint32_t conn, uint32_t exch, char *buf,
                  enum hw_kind *kind);

/* The response to a request with this method and target, with `date`
 * (HW_DATE_LEN bytes) as its Date header, into buf (at least
 * HW_MESSAGE_MAX bytes); returns its length. */
size_t hw_response(const char *method, size_t method_len, const char *target,
                   size_t target_len, const char *date, char *buf);

/* date: HW_DATE_LEN characters and a NUL. */
void hw_http_date(time_t t, char *date);

uint64_t hw_fnv1a(uint64_t hash, const void *data, size_t len);

#define HW_FNV_BASIS 0xcbf29ce484222325ULL

#endif
