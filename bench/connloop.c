/* The reference "bare connection loop" of the benchmarks (bench/run.py).
 *
 *     bench_connloop --port P --count N --size B [--concurrency C]
 *
 * Opens N connections to 127.0.0.1:P, at most C (default 200) at a time,
 * and on each one does what tapmirror's replay does for a mirrored
 * connection: a non-blocking connect (TCP_NODELAY), B bytes written as the
 * socket accepts them (at most 1 MiB per write), shutdown(SHUT_WR), read
 * until the target closes, close. No capture is read and nothing is
 * reassembled: this is the kernel's and the target's cost of moving the
 * same connections and bytes on this machine, the floor under tapmirror.
 * Prints one line: "connections N bytes T seconds S". Exit status 0, or 1
 * on an error (any failed connection is one).
 *
 * Single-threaded, poll(2), no dependencies beyond POSIX. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

enum state { CONNECTING, WRITING, DRAINING };

#define WRITE_MAX (1024u * 1024u)

struct slot {
    int fd;
    enum state st;
    size_t off;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_connloop: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int open_one(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        die("socket");
    }
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        die("fcntl");
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 &&
        errno != EINPROGRESS) {
        die("connect");
    }
    return fd;
}

int main(int argc, char **argv)
{
    unsigned long port = 0, count = 0, size = 0, conc = 200;
    for (int i = 1; i + 1 < argc; i += 2) {
        unsigned long v = strtoul(argv[i + 1], NULL, 10);
        if (strcmp(argv[i], "--port") == 0) {
            port = v;
        } else if (strcmp(argv[i], "--count") == 0) {
            count = v;
        } else if (strcmp(argv[i], "--size") == 0) {
            size = v;
        } else if (strcmp(argv[i], "--concurrency") == 0) {
            conc = v;
        } else {
            port = 0;
            break;
        }
    }
    if (argc % 2 != 1 || port == 0 || port > 65535 || count == 0 || conc == 0 ||
        conc > 10000) {
        fprintf(stderr, "usage: bench_connloop --port P --count N --size B "
                        "[--concurrency C]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t plen = size < WRITE_MAX ? size : WRITE_MAX;
    char *payload = malloc(plen ? plen : 1);
    struct slot *slots = calloc(conc, sizeof(*slots));
    struct pollfd *pfd = calloc(conc, sizeof(*pfd));
    if (payload == NULL || slots == NULL || pfd == NULL) {
        die("malloc");
    }
    memset(payload, 'c', plen ? plen : 1);
    char sink[4096];
    unsigned long started = 0, done = 0, n = 0;
    unsigned long long bytes = 0;
    double t0 = now_s();
    while (done < count) {
        while (n < conc && started < count) {
            slots[n].fd = open_one(&sa);
            slots[n].st = CONNECTING;
            slots[n].off = 0;
            n++;
            started++;
        }
        for (unsigned long i = 0; i < n; i++) {
            pfd[i].fd = slots[i].fd;
            pfd[i].events = slots[i].st == DRAINING ? POLLIN : POLLOUT;
            pfd[i].revents = 0;
        }
        if (poll(pfd, (nfds_t)n, 10000) < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("poll");
        }
        for (unsigned long i = n; i-- > 0;) {
            if (pfd[i].revents == 0) {
                continue;
            }
            struct slot *s = &slots[i];
            if (s->st == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    errno = err;
                    die("connect");
                }
                s->st = WRITING;
            }
            if (s->st == WRITING) {
                while (s->off < size) {
                    size_t want = size - s->off;
                    ssize_t w =
                        write(s->fd, payload, want < plen ? want : plen);
                    if (w < 0) {
                        if (errno == EINTR) {
                            continue;
                        }
                        if (errno == EAGAIN || errno == EWOULDBLOCK) {
                            break;
                        }
                        die("write");
                    }
                    s->off += (size_t)w;
                    bytes += (size_t)w;
                }
                if (s->off == size) {
                    shutdown(s->fd, SHUT_WR);
                    s->st = DRAINING;
                }
                continue;
            }
            ssize_t r = read(s->fd, sink, sizeof(sink));
            if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR))) {
                continue;
            }
            close(s->fd);
            done++;
            slots[i] = slots[--n];
        }
    }
    printf("connections %lu bytes %llu seconds %.6f\n", done, bytes,
           now_s() - t0);
    free(payload);
    free(slots);
    free(pfd);
    return 0;
}
