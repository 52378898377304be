/* Live-capture latency helper of the benchmarks (bench/run.py, L1/L2).
 *
 *     bench_latency serve --port P [--port-file F]
 *         the "production" service on 127.0.0.1:P (0: any free port): accepts
 *         connections and reads and discards everything.
 *
 *     bench_latency sink [--port-file F] [--out F.json] [--size B]
 *         the replay target on 127.0.0.1 (a free port). Reads every
 *         connection; for each whole request of B bytes it records the
 *         arrival time (CLOCK_MONOTONIC, taken right after the read that
 *         completed the request) minus the send time embedded in the
 *         request. SIGINT/SIGTERM writes the JSON summary and exits 0.
 *
 *     bench_latency gen --port P --rate R --seconds S [--conns C]
 *                       [--size B] [--warmup-ms MS]
 *         the load: C connections to 127.0.0.1:P (TCP_NODELAY), opened, then
 *         after MS milliseconds (default 500: the replay dials its local
 *         connections on the SYN) R requests per second in total, round
 *         robin over the connections, for S seconds, paced on an absolute
 *         schedule; then the connections are closed. Prints one JSON line
 *         with what was sent.
 *
 * A request is B bytes (default 64, at least 32): 20 decimal digits of
 * CLOCK_MONOTONIC nanoseconds taken just before the write(), a space, a
 * sequence number of 10 digits, 'x' padding and a final '\n'. The sink
 * checks the framing ('\n' at the end, digits at the start); requests that
 * fail it are counted as "bad". CLOCK_MONOTONIC is what Python's
 * time.monotonic_ns() reads on Linux, so Python tools may send too.
 *
 * Single-threaded, poll(2), no dependencies beyond POSIX. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define MAX_CONNS   4096
#define READ_BUF    (256 * 1024)
#define MIN_REQUEST 32
#define MAX_REQUEST 65536

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_latency: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_latency serve --port P [--port-file F]\n"
            "       bench_latency sink [--port-file F] [--out F] [--size B]\n"
            "       bench_latency gen --port P --rate R --seconds S "
            "[--conns C] [--size B] [--warmup-ms MS]\n");
    exit(2);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        die("fcntl");
    }
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Listens on 127.0.0.1:port and writes the bound port to port_file. */
static int listen_on(unsigned port, const char *port_file)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        die("socket");
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        die("bind");
    }
    if (listen(fd, 4096) < 0) {
        die("listen");
    }
    socklen_t len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        die("getsockname");
    }
    set_nonblock(fd);
    unsigned bound = ntohs(sa.sin_port);
    if (port_file != NULL) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        FILE *fp = fopen(tmp, "w");
        if (fp == NULL || fprintf(fp, "%u\n", bound) < 0 || fclose(fp) != 0 ||
            rename(tmp, port_file) != 0) {
            die(port_file);
        }
    }
    printf("listening on 127.0.0.1:%u\n", bound);
    fflush(stdout);
    return fd;
}

/* ---- serve and sink: one poll loop ---- */

struct rconn {
    int fd;
    size_t have;            /* bytes of the current request seen */
    char head[MIN_REQUEST]; /* its first bytes */
};

struct lat_log {
    uint64_t *v;
    size_t n, cap;
    uint64_t bad, bytes, conns;
};

static void lat_push(struct lat_log *l, uint64_t x)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        if (l->v == NULL) {
            die("realloc");
        }
    }
    l->v[l->n++] = x;
}

/* Feeds one read's bytes to a connection's request framing. */
static void consume(struct rconn *c, const char *p, size_t n, size_t size,
                    uint64_t t, struct lat_log *log)
{
    while (n > 0) {
        if (c->have < MIN_REQUEST) {
            size_t take = MIN_REQUEST - c->have;
            if (take > n) {
                take = n;
            }
            memcpy(c->head + c->have, p, take);
            c->have += take;
            p += take;
            n -= take;
            continue;
        }
        size_t take = size - c->have;
        if (take > n) {
            take = n;
        }
        c->have += take;
        p += take;
        n -= take;
        if (c->have == size) {
            /* the last byte of the request is p[-1] */
            bool ok = p[-1] == '\n' && c->head[20] == ' ';
            uint64_t ts = 0;
            for (int i = 0; ok && i < 20; i++) {
                if (c->head[i] < '0' || c->head[i] > '9') {
                    ok = false;
                } else {
                    ts = ts * 10 + (uint64_t)(c->head[i] - '0');
                }
            }
            if (ok && t >= ts) {
                lat_push(log, t - ts);
            } else {
                log->bad++;
            }
            c->have = 0;
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double q)
{
    if (n == 0) {
        return 0.0;
    }
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0; /* microseconds */
}

static void write_summary(const char *out, struct lat_log *l)
{
    qsort(l->v, l->n, sizeof(*l->v), cmp_u64);
    FILE *fp = out != NULL ? fopen(out, "w") : stdout;
    if (fp == NULL) {
        die(out);
    }
    fprintf(
        fp,
        "{\"requests\":%zu,\"bad\":%llu,\"bytes\":%llu,\"connections\":%llu,"
        "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
        "\"max_us\":%.1f,\"min_us\":%.1f}\n",
        l->n, (unsigned long long)l->bad, (unsigned long long)l->bytes,
        (unsigned long long)l->conns, pct(l->v, l->n, 0.50),
        pct(l->v, l->n, 0.90), pct(l->v, l->n, 0.99), pct(l->v, l->n, 0.999),
        pct(l->v, l->n, 1.0), pct(l->v, l->n, 0.0));
    if (fp != stdout && fclose(fp) != 0) {
        die(out);
    }
}

static int run_server(unsigned port, const char *port_file, bool record,
                      const char *out, size_t size)
{
    static struct pollfd pfd[MAX_CONNS + 1];
    static struct rconn conns[MAX_CONNS];
    static char buf[READ_BUF];
    struct lat_log log = {0};
    int lfd = listen_on(port, port_file);
    size_t n = 0;
    while (!stop_flag) {
        pfd[0].fd = lfd;
        pfd[0].events = n < MAX_CONNS ? POLLIN : 0;
        for (size_t i = 0; i < n; i++) {
            pfd[i + 1].fd = conns[i].fd;
            pfd[i + 1].events = POLLIN;
            pfd[i + 1].revents = 0;
        }
        int rc = poll(pfd, n + 1, 100);
        if (rc < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("poll");
        }
        uint64_t t = now_ns();
        for (size_t i = n; i-- > 0;) {
            if (!pfd[i + 1].revents) {
                continue;
            }
            bool closed = false;
            for (;;) {
                ssize_t r = read(conns[i].fd, buf, sizeof(buf));
                if (r > 0) {
                    t = now_ns();
                    log.bytes += (uint64_t)r;
                    if (record) {
                        consume(&conns[i], buf, (size_t)r, size, t, &log);
                    }
                    if ((size_t)r < sizeof(buf)) {
                        break;
                    }
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    closed = true;
                    break;
                } else {
                    break;
                }
            }
            if (closed) {
                close(conns[i].fd);
                conns[i] = conns[--n];
            }
        }
        if (pfd[0].revents & POLLIN) {
            for (;;) {
                if (n == MAX_CONNS) {
                    break;
                }
                int fd = accept(lfd, NULL, NULL);
                if (fd < 0) {
                    break;
                }
                set_nonblock(fd);
                memset(&conns[n], 0, sizeof(conns[n]));
                conns[n++].fd = fd;
                log.conns++;
            }
        }
    }
    if (record) {
        write_summary(out, &log);
    }
    return 0;
}

/* ---- gen ---- */

static int run_gen(unsigned port, double rate, double seconds, unsigned nconns,
                   size_t size, unsigned warmup_ms)
{
    int *fds = calloc(nconns, sizeof(int));
    char *req = malloc(size);
    if (fds == NULL || req == NULL) {
        die("malloc");
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (unsigned i = 0; i < nconns; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0) {
            die("socket");
        }
        int one = 1;
        (void)setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            die("connect");
        }
    }
    struct timespec w = {(time_t)(warmup_ms / 1000),
                         (long)(warmup_ms % 1000) * 1000000L};
    nanosleep(&w, NULL);

    memset(req, 'x', size);
    req[size - 1] = '\n';
    uint64_t interval = (uint64_t)(1e9 / rate);
    uint64_t total = (uint64_t)(rate * seconds);
    uint64_t start = now_ns(), sent = 0, late = 0, max_behind = 0;
    while (sent < total && !stop_flag) {
        uint64_t t = now_ns();
        uint64_t due_at = start + sent * interval;
        if (t < due_at) {
            uint64_t d = due_at - t;
            if (d > 60000) { /* sleep, wake a little early */
                struct timespec ts = {0, (long)(d - 50000)};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        if (t - due_at > 1000000) {
            late++;
        }
        if (t - due_at > max_behind) {
            max_behind = t - due_at;
        }
        int fd = fds[sent % nconns];
        t = now_ns();
        char head[40];
        snprintf(head, sizeof(head), "%020llu %010llu", (unsigned long long)t,
                 (unsigned long long)(sent % 10000000000ull));
        memcpy(req, head, 31);
        size_t off = 0;
        while (off < size) {
            ssize_t r = write(fd, req + off, size - off);
            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }
                die("write");
            }
            off += (size_t)r;
        }
        sent++;
    }
    uint64_t elapsed = now_ns() - start;
    for (unsigned i = 0; i < nconns; i++) {
        close(fds[i]);
    }
    printf("{\"sent\":%llu,\"bytes\":%llu,\"seconds\":%.3f,\"rate\":%.1f,"
           "\"late_1ms\":%llu,\"max_behind_us\":%.1f}\n",
           (unsigned long long)sent, (unsigned long long)(sent * size),
           (double)elapsed / 1e9, (double)sent * 1e9 / (double)elapsed,
           (unsigned long long)late, (double)max_behind / 1000.0);
    free(fds);
    free(req);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
    }
    const char *mode = argv[1];
    const char *port_file = NULL, *out = NULL;
    unsigned port = 0, conns = 16, warmup_ms = 500;
    double rate = 0, seconds = 0;
    size_t size = 64;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            usage();
        }
        const char *v = argv[++i];
        if (strcmp(a, "--port") == 0) {
            port = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--size") == 0) {
            size = (size_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--rate") == 0) {
            rate = strtod(v, NULL);
        } else if (strcmp(a, "--seconds") == 0) {
            seconds = strtod(v, NULL);
        } else if (strcmp(a, "--conns") == 0) {
            conns = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--warmup-ms") == 0) {
            warmup_ms = (unsigned)strtoul(v, NULL, 10);
        } else {
            usage();
        }
    }
    if (size < MIN_REQUEST || size > MAX_REQUEST || port > 65535) {
        usage();
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (strcmp(mode, "serve") == 0) {
        return run_server(port, port_file, false, NULL, size);
    }
    if (strcmp(mode, "sink") == 0) {
        return run_server(0, port_file, true, out, size);
    }
    if (strcmp(mode, "gen") == 0) {
        if (port == 0 || rate <= 0 || seconds <= 0 || conns == 0 ||
            conns > MAX_CONNS) {
            usage();
        }
        return run_gen(port, rate, seconds, conns, size, warmup_ms);
    }
    usage();
    return 2;
}
