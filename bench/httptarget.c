/* The local HTTP target of the H benchmarks (bench/run.py).
 *
 *     bench_httptarget [--port P] [--port-file FILE] [--expect N]
 *
 * Listens on 127.0.0.1:P (0, the default: any free port, written to
 * --port-file once listening), reads HTTP/1.1 requests on every connection
 * (request line and headers, then a Content-Length body; pipelined
 * requests in one read are answered in order) and answers each one with
 * httpwork.c's response for its method and target: the bytes production
 * answered with in bench_httpgen's capture, but for the Date header,
 * which says the time now (the same length). A connection ends when the
 * client half-closes it and every answer is written. After N connections
 * have ended (--expect; 0, the default: only SIGTERM or SIGINT ends it)
 * it prints one JSON line of counts on standard output and exits 0:
 * connections, requests (and of them, those for /health), bad requests
 * (a head it cannot frame: it answers nothing and closes that
 * connection), request bytes and the wrapping sum of each connection's
 * FNV-1a over the bytes it received, response bytes.
 *
 * Single-threaded epoll, no dependencies beyond Linux and libc: it must
 * cost less than whatever drives it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "httpwork.h"

#define READ_CHUNK  65536u
#define HEAD_MAX    65536u
#define MAX_EVENTS  256

struct conn {
    int fd;
    bool read_closed;
    bool want_out;
    uint64_t fnv;
    char *in;
    size_t in_len;
    size_t in_cap;
    char *out;
    size_t out_len;
    size_t out_off;
    size_t out_cap;
};

struct counts {
    uint64_t connections;
    uint64_t requests;
    uint64_t health_requests;
    uint64_t bad_requests;
    uint64_t request_bytes;
    uint64_t response_bytes;
    uint64_t fnv_sum;
};

static volatile sig_atomic_t stop_requested;
static struct counts counts;
static char date_now[HW_DATE_LEN + 1];
static time_t date_second = -1;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_httptarget: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        die("realloc");
    }
    return q;
}

static void reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) {
        return;
    }
    size_t n = *cap ? *cap : 4096u;
    while (n < need) {
        n *= 2;
    }
    *buf = xrealloc(*buf, n);
    *cap = n;
}

static const char *date_header(void)
{
    time_t now = time(NULL);
    if (now != date_second) {
        hw_http_date(now, date_now);
        date_second = now;
    }
    return date_now;
}

/* The value of Content-Length in a head, 0 without one, -1 if the head
 * cannot be framed here (a bad length, or chunked). */
static long long body_length(const char *head, size_t len)
{
    long long length = 0;
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    while (p != NULL && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL) {
            break;
        }
        size_t n = (size_t)(eol - line);
        if (n >= 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
            const char *v = line + 15;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }
            length = 0;
            if (v == eol || *v < '0' || *v > '9') {
                return -1;
            }
            while (v < eol && *v >= '0' && *v <= '9') {
                length = length * 10 + (*v - '0');
                if (length > (1LL << 40)) {
                    return -1;
                }
                v++;
            }
        } else if (n >= 18 &&
                   strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
            return -1;
        }
        p = eol;
    }
    return length;
}

/* Answers every complete request in the input; false on a bad one. */
static bool answer(struct conn *c)
{
    size_t at = 0;
    bool ok = true;
    while (at < c->in_len) {
        const char *head = c->in + at;
        size_t avail = c->in_len - at;
        const char *end = memmem(head, avail, "\r\n\r\n", 4);
        if (end == NULL) {
            ok = avail < HEAD_MAX;
            break;
        }
        size_t head_len = (size_t)(end - head) + 4u;
        long long body = body_length(head, head_len);
        const char *sp1 = memchr(head, ' ', head_len);
        const char *sp2 =
            sp1 ? memchr(sp1 + 1, ' ', head_len - (size_t)(sp1 + 1 - head))
                : NULL;
        if (body < 0 || sp2 == NULL) {
            ok = false;
            break;
        }
        if ((unsigned long long)body > avail - head_len) {
            break;
        }
        size_t method_len = (size_t)(sp1 - head);
        size_t target_len = (size_t)(sp2 - sp1 - 1);
        reserve(&c->out, &c->out_cap, c->out_len + HW_MESSAGE_MAX);
        size_t n = hw_response(head, method_len, sp1 + 1, target_len,
                               date_header(), c->out + c->out_len);
        c->out_len += n;
        counts.response_bytes += n;
        counts.requests++;
        if (target_len >= 7 && memcmp(sp1 + 1, "/health", 7) == 0) {
            counts.health_requests++;
        }
        at += head_len + (size_t)body;
    }
    if (at > 0) {
        memmove(c->in, c->in + at, c->in_len - at);
        c->in_len -= at;
    }
    if (!ok) {
        counts.bad_requests++;
    }
    return ok;
}

/* Writes what is queued; false on an error. */
static bool flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = 0;
    c->out_len = 0;
    return true;
}

static void conn_end(struct conn *c)
{
    close(c->fd);
    counts.connections++;
    counts.fnv_sum += c->fnv;
    free(c->in);
    free(c->out);
    free(c);
}

/* Handles readiness; false once the connection has ended. */
static bool conn_event(int ep, struct conn *c)
{
    while (!c->read_closed) {
        reserve(&c->in, &c->in_cap, c->in_len + READ_CHUNK);
        ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            c->read_closed = true;
            break;
        }
        if (r == 0) {
            c->read_closed = true;
            break;
        }
        bool drained = (size_t)r < c->in_cap - c->in_len;
        c->fnv = hw_fnv1a(c->fnv, c->in + c->in_len, (size_t)r);
        c->in_len += (size_t)r;
        counts.request_bytes += (uint64_t)r;
        if (!answer(c)) {
            c->read_closed = true;
            c->out_len = c->out_off = 0;
            break;
        }
        if (drained) {
            /* A short read emptied the socket: epoll (level-triggered)
             * reports what comes next, the close included, so skip the
             * read that would only say EAGAIN. */
            break;
        }
    }
    if (!flush(c)) {
        conn_end(c);
        return false;
    }
    bool pending = c->out_off < c->out_len;
    if (c->read_closed && !pending) {
        conn_end(c);
        return false;
    }
    if (pending != c->want_out) {
        struct epoll_event ev = {
            .events = EPOLLIN | (pending ? EPOLLOUT : 0u),
            .data.ptr = c,
        };
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
            die("epoll_ctl");
        }
        c->want_out = pending;
    }
    return true;
}

static unsigned long parse_ulong(const char *arg, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-') {
        fprintf(stderr, "bench_httptarget: bad %s: %s\n", what, arg);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    unsigned long port = 0;
    unsigned long expect = 0;
    const char *port_file = NULL;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: bench_httptarget [--port P] "
                            "[--port-file FILE] [--expect N]\n");
            return 2;
        }
        if (strcmp(argv[i], "--port") == 0) {
            port = parse_ulong(argv[i + 1], "--port");
        } else if (strcmp(argv[i], "--expect") == 0) {
            expect = parse_ulong(argv[i + 1], "--expect");
        } else if (strcmp(argv[i], "--port-file") == 0) {
            port_file = argv[i + 1];
        } else {
            fprintf(stderr, "usage: bench_httptarget [--port P] "
                            "[--port-file FILE] [--expect N]\n");
            return 2;
        }
    }
    if (port > 65535) {
        fprintf(stderr, "bench_httptarget: bad --port\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0) {
        die("socket");
    }
    int one = 1;
    (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        die("bind");
    }
    if (listen(lfd, 4096) < 0) {
        die("listen");
    }
    socklen_t alen = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        die("getsockname");
    }
    if (port_file != NULL) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *fp = fopen(tmp, "w");
        if (fp == NULL || fprintf(fp, "%u\n", ntohs(addr.sin_port)) < 0 ||
            fclose(fp) != 0 || rename(tmp, port_file) != 0) {
            die(port_file);
        }
    }

    int ep = epoll_create1(0);
    if (ep < 0) {
        die("epoll_create1");
    }
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        die("epoll_ctl");
    }
    struct epoll_event events[MAX_EVENTS];
    while (!stop_requested && (expect == 0 || counts.connections < expect)) {
        int n = epoll_wait(ep, events, MAX_EVENTS, 1000);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c != NULL) {
                conn_event(ep, c);
                continue;
            }
            for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0) {
                    if (errno == EINTR || errno == ECONNABORTED) {
                        continue;
                    }
                    if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        break;
                    }
                    die("accept");
                }
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                                 sizeof one);
                c = calloc(1, sizeof *c);
                if (c == NULL) {
                    die("calloc");
                }
                c->fd = fd;
                c->fnv = HW_FNV_BASIS;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                    die("epoll_ctl");
                }
            }
        }
    }
    printf("{\"connections\":%" PRIu64 ",\"requests\":%" PRIu64
           ",\"health_requests\":%" PRIu64 ",\"bad_requests\":%" PRIu64
           ",\"request_bytes\":%" PRIu64 ",\"request_fnv_sum\":\"%016" PRIx64
           "\",\"response_bytes\":%" PRIu64 "}\n",
           counts.connections, counts.requests, counts.health_requests,
           counts.bad_requests, counts.request_bytes, counts.fnv_sum,
           counts.response_bytes);
    return fflush(stdout) == 0 ? 0 : 1;
}
