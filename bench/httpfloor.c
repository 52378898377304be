/* The floor of the H benchmarks (bench/run.py): the same conversations as
 * bench_httpgen's capture, spoken by a minimal client straight to the
 * target, with no capture read.
 *
 *     bench_httpfloor --port P [--connections N] [--exchanges M]
 *         [--concurrency C] [--seed S]
 *
 * Opens N connections to 127.0.0.1:P, at most C at a time (default: all),
 * and on each one sends httpwork.c's M requests one after the other, each
 * once the answer to the one before has arrived in full (its
 * Content-Length), then half-closes and reads until the target closes.
 * Every answer is checked against the expected response (all but the
 * Date's value). Prints one line: "connections N requests R mismatches K
 * seconds S". Exit status 0, 1 on an error or a mismatch, 2 on a usage
 * error. Single-threaded epoll, each request written as soon as the answer
 * before it is complete. */
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
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "httpwork.h"

enum state { CONNECTING, SENDING, RECEIVING, DRAINING };

struct slot {
    int fd;
    enum state st;
    uint32_t conn;
    uint32_t exch;
    size_t req_len;
    size_t req_off;
    size_t want_len; /* the expected response's length */
    size_t got;
    uint32_t events; /* what epoll waits for */
    char request[HW_MESSAGE_MAX];
    char expected[HW_MESSAGE_MAX];
    char response[HW_MESSAGE_MAX];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_httpfloor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int open_one(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        die("socket");
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 &&
        errno != EINPROGRESS) {
        die("connect");
    }
    return fd;
}

static void next_request(struct slot *s, uint64_t seed)
{
    enum hw_kind kind;
    s->req_len = hw_request(seed, s->conn, s->exch, s->request, &kind);
    s->req_off = 0;
    s->got = 0;
    const char *sp1 = memchr(s->request, ' ', s->req_len);
    const char *sp2 = memchr(sp1 + 1, ' ',
                             s->req_len - (size_t)(sp1 + 1 - s->request));
    static const char no_date[HW_DATE_LEN + 1] =
        "Thu, 01 Jan 1970 00:00:00 GMT";
    s->want_len =
        hw_response(s->request, (size_t)(sp1 - s->request), sp1 + 1,
                    (size_t)(sp2 - sp1 - 1), no_date, s->expected);
    s->st = SENDING;
}

/* The answer without its Date value equals the expected one. */
static bool same_but_date(const struct slot *s)
{
    const char *d = memmem(s->expected, s->want_len, "\r\nDate: ", 8);
    if (d == NULL) {
        return memcmp(s->expected, s->response, s->want_len) == 0;
    }
    size_t from = (size_t)(d - s->expected) + 8u;
    size_t to = from + HW_DATE_LEN;
    return memcmp(s->expected, s->response, from) == 0 &&
           memcmp(s->expected + to, s->response + to, s->want_len - to) == 0;
}

static unsigned long parse_ulong(const char *arg, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-') {
        fprintf(stderr, "bench_httpfloor: bad %s: %s\n", what, arg);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    unsigned long port = 0, count = 200, exchanges = 100, conc = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i];
        if (i + 1 >= argc) {
            port = 0;
            break;
        }
        unsigned long v = parse_ulong(argv[i + 1], k);
        if (strcmp(k, "--port") == 0) {
            port = v;
        } else if (strcmp(k, "--connections") == 0) {
            count = v;
        } else if (strcmp(k, "--exchanges") == 0) {
            exchanges = v;
        } else if (strcmp(k, "--concurrency") == 0) {
            conc = v;
        } else if (strcmp(k, "--seed") == 0) {
            seed = v;
        } else {
            port = 0;
            break;
        }
    }
    if (port == 0 || port > 65535 || count == 0 || count > 1000000 ||
        exchanges > 1000000) {
        fprintf(stderr, "usage: bench_httpfloor --port P [--connections N] "
                        "[--exchanges M] [--concurrency C] [--seed S]\n");
        return 2;
    }
    if (conc == 0 || conc > count) {
        conc = count;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ep = epoll_create1(0);
    if (ep < 0) {
        die("epoll_create1");
    }
    struct epoll_event *events = calloc(conc, sizeof *events);
    if (events == NULL) {
        die("calloc");
    }
    unsigned long started = 0, done = 0, open_now = 0;
    unsigned long long requests = 0, mismatches = 0;
    double t0 = now_s();
    while (done < count) {
        while (open_now < conc && started < count) {
            struct slot *s = calloc(1, sizeof *s);
            if (s == NULL) {
                die("calloc");
            }
            s->fd = open_one(&sa);
            s->conn = (uint32_t)started++;
            s->st = CONNECTING;
            s->events = EPOLLOUT;
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
                die("epoll_ctl");
            }
            open_now++;
        }
        int n = epoll_wait(ep, events, (int)conc, 10000);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct slot *s = events[i].data.ptr;
            if (s->st == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    errno = err;
                    die("connect");
                }
                if (exchanges == 0) {
                    shutdown(s->fd, SHUT_WR);
                    s->st = DRAINING;
                } else {
                    next_request(s, seed);
                }
            } else if (s->st == RECEIVING) {
                ssize_t r = recv(s->fd, s->response + s->got,
                                 s->want_len - s->got, 0);
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                    continue;
                }
                if (r <= 0) {
                    fprintf(stderr, "bench_httpfloor: connection %" PRIu32
                                    " closed before answer %" PRIu32 "\n",
                            s->conn, s->exch);
                    return 1;
                }
                s->got += (size_t)r;
                if (s->got < s->want_len) {
                    continue;
                }
                requests++;
                if (!same_but_date(s)) {
                    mismatches++;
                }
                if (++s->exch < exchanges) {
                    next_request(s, seed);
                } else {
                    shutdown(s->fd, SHUT_WR);
                    s->st = DRAINING;
                }
            } else if (s->st == DRAINING) {
                char sink[4096];
                ssize_t r = recv(s->fd, sink, sizeof sink, 0);
                if (r > 0) {
                    mismatches++; /* bytes nobody asked for */
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                    continue;
                }
                close(s->fd);
                free(s);
                done++;
                open_now--;
                continue;
            }
            /* A request is written at once, as the capture's client did;
             * only a full socket buffer waits for EPOLLOUT. */
            if (s->st == SENDING) {
                ssize_t w = send(s->fd, s->request + s->req_off,
                                 s->req_len - s->req_off, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    die("send");
                }
                if (w > 0) {
                    s->req_off += (size_t)w;
                }
                if (s->req_off == s->req_len) {
                    s->st = RECEIVING;
                }
            }
            uint32_t want = s->st == SENDING ? EPOLLOUT : EPOLLIN;
            if (want != s->events) {
                struct epoll_event ev = {.events = want, .data.ptr = s};
                if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) < 0) {
                    die("epoll_ctl");
                }
                s->events = want;
            }
        }
    }
    printf("connections %lu requests %llu mismatches %llu seconds %.6f\n",
           done, requests, mismatches, now_s() - t0);
    free(events);
    close(ep);
    return mismatches ? 1 : 0;
}
