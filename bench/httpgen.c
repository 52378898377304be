/* The capture generator of the H benchmarks (bench/run.py).
 *
 *     bench_httpgen -o FILE.pcap -m MANIFEST.json [--connections N]
 *         [--exchanges M] [--concurrency C] [--port P] [--seed S]
 *
 * Writes a pcap (Ethernet, IPv4) of N keep-alive HTTP/1.1 connections to
 * port P (default 200 connections x 100 exchanges, all open at once),
 * both directions: handshake, M request/response exchanges, FIN on both
 * sides. Requests and responses are httpwork.c's, so bench_httptarget
 * answers each request with the bytes production answered it with here,
 * but for the Date header. Sequence and acknowledgement numbers are
 * exact: each request acknowledges the previous response, as a client
 * that waits for its answers does, so a replay in turns sends it only
 * after its target has answered. Connections are interleaved at random
 * (seeded), packet by packet.
 *
 * The manifest is one JSON object of totals: connections, requests by
 * kind, client and server payload bytes, and the wrapping sum of every
 * connection's FNV-1a over its client bytes (what a target that hashes
 * each connection it receives must add up to). Exit status 0, 1 on an
 * I/O error, 2 on a usage error. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpwork.h"

#define MSS         1448u
#define START_TIME  1767225600u /* 2026-01-01 00:00:00 UTC */
#define STEP_US     20u
#define SERVER_MAC  "\x02\x00\x0a\x02\x00\x01"
#define CLIENT_MAC0 0x02u

struct conn {
    uint32_t index;
    uint32_t exch;
    uint32_t client_isn;
    uint32_t server_isn;
    uint64_t client_sent; /* payload bytes */
    uint64_t server_sent;
    uint64_t fnv;
    uint16_t client_port;
    uint16_t client_ip_id;
    uint16_t server_ip_id;
    uint8_t client_ip[4];
    enum { OPENING, REQUEST, RESPONSE } phase;
    size_t request_len;
    char request[HW_MESSAGE_MAX];
};

struct gen {
    FILE *out;
    const char *out_path;
    uint16_t port;
    uint64_t seed;
    uint64_t now_us;
    uint64_t rng;
    uint8_t frame[64 + MSS];

    uint64_t packets;
    uint64_t requests[3];
    uint64_t client_bytes;
    uint64_t health_client_bytes;
    uint64_t server_bytes;
    uint64_t fnv_sum;
};

static const uint8_t server_ip[4] = {10, 2, 0, 1};

static uint64_t rng_next(struct gen *g)
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void put_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t csum_add(uint32_t acc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        acc += ((uint32_t)p[i] << 8) | p[i + 1];
    }
    if (n & 1u) {
        acc += (uint32_t)p[n - 1] << 8;
    }
    return acc;
}

static uint16_t csum_fold(uint32_t acc)
{
    while (acc >> 16) {
        acc = (acc & 0xffffu) + (acc >> 16);
    }
    return (uint16_t)~acc;
}

static void write_or_die(struct gen *g, const void *p, size_t n)
{
    if (fwrite(p, 1, n, g->out) != n) {
        fprintf(stderr, "bench_httpgen: %s: %s\n", g->out_path,
                strerror(errno));
        exit(1);
    }
}

static void emit(struct gen *g, struct conn *c, bool from_client,
                 uint8_t flags, uint32_t seq, uint32_t ack,
                 const char *payload, size_t len)
{
    uint8_t *f = g->frame;
    uint8_t *ip = f + 14;
    uint8_t *tcp = ip + 20;
    uint8_t client_mac[6] = {CLIENT_MAC0, 0, 0x0a, 1, c->client_ip[2],
                             c->client_ip[3]};
    const uint8_t *src_ip = from_client ? c->client_ip : server_ip;
    const uint8_t *dst_ip = from_client ? server_ip : c->client_ip;

    memcpy(f, from_client ? (const uint8_t *)SERVER_MAC : client_mac, 6);
    memcpy(f + 6, from_client ? client_mac : (const uint8_t *)SERVER_MAC, 6);
    put_be16(f + 12, 0x0800);

    ip[0] = 0x45;
    ip[1] = 0;
    put_be16(ip + 2, (uint32_t)(40u + len));
    put_be16(ip + 4, from_client ? c->client_ip_id++ : c->server_ip_id++);
    put_be16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 6;
    memset(ip + 10, 0, 2);
    memcpy(ip + 12, src_ip, 4);
    memcpy(ip + 16, dst_ip, 4);
    put_be16(ip + 10, csum_fold(csum_add(0, ip, 20)));

    put_be16(tcp, from_client ? c->client_port : g->port);
    put_be16(tcp + 2, from_client ? g->port : c->client_port);
    put_be32(tcp + 4, seq);
    put_be32(tcp + 8, ack);
    tcp[12] = 5u << 4;
    tcp[13] = flags;
    put_be16(tcp + 14, from_client ? 64240u : 65160u);
    memset(tcp + 16, 0, 4);
    if (len > 0) {
        memcpy(tcp + 20, payload, len);
    }
    uint8_t pseudo[12];
    memcpy(pseudo, src_ip, 4);
    memcpy(pseudo + 4, dst_ip, 4);
    pseudo[8] = 0;
    pseudo[9] = 6;
    put_be16(pseudo + 10, (uint32_t)(20u + len));
    put_be16(tcp + 16,
             csum_fold(csum_add(csum_add(0, pseudo, 12), tcp, 20u + len)));

    size_t frame_len = 54u + len;
    uint8_t rec[16];
    uint64_t t = (uint64_t)START_TIME * 1000000u + g->now_us;
    put_le32(rec, (uint32_t)(t / 1000000u));
    put_le32(rec + 4, (uint32_t)(t % 1000000u));
    put_le32(rec + 8, (uint32_t)frame_len);
    put_le32(rec + 12, (uint32_t)frame_len);
    write_or_die(g, rec, 16);
    write_or_die(g, f, frame_len);
    g->now_us += STEP_US;
    g->packets++;
}

#define TCP_FIN 0x01u
#define TCP_SYN 0x02u
#define TCP_PSH 0x08u
#define TCP_ACK 0x10u

static uint32_t cseq(const struct conn *c, uint64_t off)
{
    return (uint32_t)(c->client_isn + 1u + off);
}

static uint32_t sseq(const struct conn *c, uint64_t off)
{
    return (uint32_t)(c->server_isn + 1u + off);
}

/* Sends a message as MSS-sized segments, each acknowledging everything
 * the other side has sent so far. */
static void send_message(struct gen *g, struct conn *c, bool from_client,
                         const char *msg, size_t len)
{
    for (size_t off = 0; off < len; off += MSS) {
        size_t n = len - off < MSS ? len - off : MSS;
        if (from_client) {
            emit(g, c, true, TCP_ACK | TCP_PSH, cseq(c, c->client_sent + off),
                 sseq(c, c->server_sent), msg + off, n);
        } else {
            emit(g, c, false, TCP_ACK | TCP_PSH,
                 sseq(c, c->server_sent + off), cseq(c, c->client_sent),
                 msg + off, n);
        }
    }
}

static void conn_open(struct gen *g, struct conn *c, uint32_t index)
{
    memset(c, 0, offsetof(struct conn, request));
    c->index = index;
    c->client_isn = (uint32_t)rng_next(g);
    c->server_isn = (uint32_t)rng_next(g);
    c->client_ip_id = (uint16_t)rng_next(g);
    c->server_ip_id = (uint16_t)rng_next(g);
    c->client_ip[0] = 10;
    c->client_ip[1] = 1;
    c->client_ip[2] = (uint8_t)((index % 1000u) / 250u);
    c->client_ip[3] = (uint8_t)(index % 250u + 1u);
    c->client_port = (uint16_t)(10000u + index / 1000u);
    c->fnv = HW_FNV_BASIS;
    c->phase = OPENING;
}

/* One step of a connection; returns true once it has closed. */
static bool conn_step(struct gen *g, struct conn *c, uint32_t exchanges)
{
    switch (c->phase) {
    case OPENING:
        emit(g, c, true, TCP_SYN, c->client_isn, 0, NULL, 0);
        emit(g, c, false, TCP_SYN | TCP_ACK, c->server_isn, cseq(c, 0), NULL,
             0);
        emit(g, c, true, TCP_ACK, cseq(c, 0), sseq(c, 0), NULL, 0);
        c->phase = REQUEST;
        return false;
    case REQUEST: {
        if (c->exch == exchanges) {
            /* The client closes once it has its last answer. */
            emit(g, c, true, TCP_FIN | TCP_ACK, cseq(c, c->client_sent),
                 sseq(c, c->server_sent), NULL, 0);
            emit(g, c, false, TCP_FIN | TCP_ACK, sseq(c, c->server_sent),
                 cseq(c, c->client_sent + 1u), NULL, 0);
            emit(g, c, true, TCP_ACK, cseq(c, c->client_sent + 1u),
                 sseq(c, c->server_sent + 1u), NULL, 0);
            g->client_bytes += c->client_sent;
            g->fnv_sum += c->fnv;
            return true;
        }
        enum hw_kind kind;
        c->request_len = hw_request(g->seed, c->index, c->exch, c->request,
                                    &kind);
        g->requests[kind]++;
        if (kind == HW_HEALTH) {
            g->health_client_bytes += c->request_len;
        }
        send_message(g, c, true, c->request, c->request_len);
        c->fnv = hw_fnv1a(c->fnv, c->request, c->request_len);
        c->client_sent += c->request_len;
        c->phase = RESPONSE;
        return false;
    }
    case RESPONSE: {
        const char *sp1 = memchr(c->request, ' ', c->request_len);
        const char *sp2 =
            sp1 ? memchr(sp1 + 1, ' ',
                         c->request_len - (size_t)(sp1 + 1 - c->request))
                : NULL;
        if (sp2 == NULL) {
            fprintf(stderr, "bench_httpgen: internal error: request line\n");
            exit(1);
        }
        char date[HW_DATE_LEN + 1];
        hw_http_date((time_t)(START_TIME + g->now_us / 1000000u), date);
        char response[HW_MESSAGE_MAX];
        size_t len = hw_response(c->request, (size_t)(sp1 - c->request),
                                 sp1 + 1, (size_t)(sp2 - sp1 - 1), date,
                                 response);
        send_message(g, c, false, response, len);
        c->server_sent += len;
        g->server_bytes += len;
        c->exch++;
        c->phase = REQUEST;
        return false;
    }
    }
    return false;
}

static void usage(FILE *out)
{
    fputs("usage: bench_httpgen -o FILE.pcap -m MANIFEST.json "
          "[--connections N] [--exchanges M]\n"
          "                     [--concurrency C] [--port P] [--seed S]\n",
          out);
}

static uint64_t number(const char *arg, const char *what, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || end == arg || *end || v > max || arg[0] == '-') {
        fprintf(stderr, "bench_httpgen: bad %s: %s\n", what, arg);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"manifest", required_argument, NULL, 'm'},
        {"connections", required_argument, NULL, 'n'},
        {"exchanges", required_argument, NULL, 'e'},
        {"concurrency", required_argument, NULL, 'c'},
        {"port", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *manifest = NULL;
    uint32_t connections = 200;
    uint32_t exchanges = 100;
    uint32_t concurrency = 0;
    struct gen g = {.port = 8080, .seed = 1};
    int ch;
    while ((ch = getopt_long(argc, argv, "o:m:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            g.out_path = optarg;
            break;
        case 'm':
            manifest = optarg;
            break;
        case 'n':
            connections = (uint32_t)number(optarg, "--connections", 1000000);
            break;
        case 'e':
            exchanges = (uint32_t)number(optarg, "--exchanges", 1000000);
            break;
        case 'c':
            concurrency = (uint32_t)number(optarg, "--concurrency", 1000000);
            break;
        case 'p':
            g.port = (uint16_t)number(optarg, "--port", 65535);
            break;
        case 's':
            g.seed = number(optarg, "--seed", UINT64_MAX);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (g.out_path == NULL || manifest == NULL || optind != argc ||
        connections == 0 || g.port < 1 || g.port >= 10000) {
        /* Client ports start at 10000, so the service port sits below. */
        usage(stderr);
        return 2;
    }
    if (concurrency == 0 || concurrency > connections) {
        concurrency = connections;
    }
    g.rng = g.seed;
    g.out = fopen(g.out_path, "wb");
    if (g.out == NULL) {
        fprintf(stderr, "bench_httpgen: %s: %s\n", g.out_path,
                strerror(errno));
        return 1;
    }
    setvbuf(g.out, NULL, _IOFBF, 1u << 20);
    uint8_t header[24];
    put_le32(header, 0xa1b2c3d4u);
    header[4] = 2;
    header[5] = 0;
    header[6] = 4;
    header[7] = 0;
    memset(header + 8, 0, 8);
    put_le32(header + 16, 65535);
    put_le32(header + 20, 1);
    write_or_die(&g, header, sizeof header);

    struct conn *active = calloc(concurrency, sizeof *active);
    if (active == NULL) {
        fprintf(stderr, "bench_httpgen: out of memory\n");
        return 1;
    }
    uint32_t opened = 0;
    uint32_t live = 0;
    while (live < concurrency) {
        conn_open(&g, &active[live++], opened++);
    }
    while (live > 0) {
        uint32_t i = (uint32_t)(rng_next(&g) % live);
        if (conn_step(&g, &active[i], exchanges)) {
            if (opened < connections) {
                conn_open(&g, &active[i], opened++);
            } else {
                active[i] = active[--live];
            }
        }
    }
    free(active);
    if (fclose(g.out) != 0) {
        fprintf(stderr, "bench_httpgen: %s: %s\n", g.out_path,
                strerror(errno));
        return 1;
    }

    FILE *m = fopen(manifest, "w");
    if (m == NULL) {
        fprintf(stderr, "bench_httpgen: %s: %s\n", manifest, strerror(errno));
        return 1;
    }
    uint64_t requests = g.requests[HW_GET] + g.requests[HW_POST] +
                        g.requests[HW_HEALTH];
    fprintf(m,
            "{\"connections\":%" PRIu32 ",\"exchanges_per_connection\":%" PRIu32
            ",\"concurrency\":%" PRIu32 ",\"port\":%u,\"seed\":%" PRIu64
            ",\"packets\":%" PRIu64 ",\"requests\":%" PRIu64
            ",\"get_requests\":%" PRIu64 ",\"post_requests\":%" PRIu64
            ",\"health_requests\":%" PRIu64 ",\"client_bytes\":%" PRIu64
            ",\"health_client_bytes\":%" PRIu64 ",\"server_bytes\":%" PRIu64
            ",\"client_fnv_sum\":\"%016" PRIx64 "\"}\n",
            connections, exchanges, concurrency, (unsigned)g.port, g.seed,
            g.packets, requests, g.requests[HW_GET], g.requests[HW_POST],
            g.requests[HW_HEALTH], g.client_bytes, g.health_client_bytes,
            g.server_bytes, g.fnv_sum);
    if (fclose(m) != 0) {
        fprintf(stderr, "bench_httpgen: %s: %s\n", manifest, strerror(errno));
        return 1;
    }
    return 0;
}
