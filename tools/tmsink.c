/*
 * tmsink: loopback TCP receiver used as tapmirror's replay target in tests
 * and benchmarks. It reads every connection to EOF, counts the bytes and
 * hashes them with 64-bit FNV-1a, and at exit writes a JSON manifest of
 * what each connection delivered. Fault modes (never read, reset, slow
 * reader, early close) exercise the replayer's error handling.
 *
 * Single-threaded on libuv. The data is only hashed, so all connections
 * share one static read buffer; a connection costs its handle and a few
 * counters.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#define FNV_OFFSET_BASIS 0xcbf29ce484222325ULL
#define FNV_PRIME        0x100000001b3ULL
#define GOLDEN_GAMMA     0x9e3779b97f4a7c15ULL

#define READ_BUFFER_SIZE    (256u * 1024u)
#define RESPOND_BUFFER_SIZE (64u * 1024u)
#define LISTEN_BACKLOG      16384
#define RESET_SPAN          65536u /* reset mode: read up to this first */
#define PACE_TICK_MS        100u

enum sink_mode {
    MODE_NORMAL,
    MODE_NOREAD,
    MODE_RESET,
    MODE_SLOW,
    MODE_CLOSE_AFTER,
};

struct options {
    const char *listen;
    const char *port_file;
    const char *manifest;
    const char *dump_dir;
    uint64_t respond;
    uint64_t respond_after; /* 0: answer at EOF */
    uint64_t expect; /* 0: not set */
    uint64_t idle_ms;
    uint64_t timeout_ms;
    enum sink_mode mode;
    double reset_percent;
    uint64_t bytes_per_sec;
    uint64_t close_after;
    uint64_t seed;
    bool quiet;
    bool no_hash;
};

/* Outcome of one connection, indexed by accept order. */
struct record {
    uint64_t bytes;
    uint64_t fnv;
    bool complete;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t *pace;      /* slow mode only */
    uv_write_t *write_req; /* while sending --respond bytes */
    struct conn *prev;
    struct conn *next;
    uint64_t id;
    uint64_t bytes;
    uint64_t fnv;
    uint64_t read_budget; /* bytes until reset/close-after acts */
    uint64_t tokens;      /* slow mode: bytes allowed this tick */
    uint64_t respond_left;
    FILE *dump;
    bool responding; /* --respond bytes being written */
    bool responded;  /* ... and all written (or failed) */
    unsigned open_handles;
    bool eof;
    bool reset_planned;
    bool closing;
};

struct sink {
    struct options opt;
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_timer_t idle_timer;
    uv_timer_t timeout_timer;
    struct conn *conns; /* open connections, for shutdown */
    struct record *records;
    size_t n_records;
    size_t records_cap;
    uint64_t open_count;
    uint64_t peak_concurrent;
    uint64_t completed;
    uint64_t responding;
    uint64_t total_bytes;
    uint64_t last_activity_ms;
    uint64_t first_accept_ns;
    uint64_t last_event_ns;
    uint64_t rng_state;
    bool exiting;
    int exit_code;
};

static struct sink sink;
static uv_loop_t loop_storage;
static uint8_t read_buffer[READ_BUFFER_SIZE];
static uint8_t respond_buffer[RESPOND_BUFFER_SIZE];

static void *xmalloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        fprintf(stderr, "tmsink: out of memory\n");
        exit(1);
    }
    return p;
}

/* splitmix64: enough for deterministic fault choices. */
static uint64_t next_random(void)
{
    uint64_t z = (sink.rng_state += GOLDEN_GAMMA);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The hot loop at >1 GB/s: unrolled so the only serial work is the
 * xor-multiply chain itself. */
static uint64_t fnv1a_update(uint64_t hash, const uint8_t *p, size_t n)
{
    const uint8_t *end8 = p + (n & ~(size_t)7u);
    const uint8_t *end = p + n;
    while (p < end8) {
        hash = (hash ^ p[0]) * FNV_PRIME;
        hash = (hash ^ p[1]) * FNV_PRIME;
        hash = (hash ^ p[2]) * FNV_PRIME;
        hash = (hash ^ p[3]) * FNV_PRIME;
        hash = (hash ^ p[4]) * FNV_PRIME;
        hash = (hash ^ p[5]) * FNV_PRIME;
        hash = (hash ^ p[6]) * FNV_PRIME;
        hash = (hash ^ p[7]) * FNV_PRIME;
        p += 8;
    }
    while (p < end) {
        hash = (hash ^ *p++) * FNV_PRIME;
    }
    return hash;
}

static void note_activity(void)
{
    sink.last_activity_ms = uv_now(sink.loop);
}

/* ---- Connection lifecycle ---- */

static void begin_exit(int code);

static void maybe_exit_on_expect(void)
{
    if (sink.opt.expect > 0 && sink.completed >= sink.opt.expect &&
        sink.responding == 0) {
        begin_exit(0);
    }
}

static void on_conn_handle_closed(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    if (--c->open_handles > 0) {
        return;
    }
    free(c->pace);
    free(c->write_req);
    free(c);
    note_activity();
    if (!sink.exiting) {
        maybe_exit_on_expect();
    }
}

/* Records the outcome and closes the connection; idempotent. */
static void conn_finish(struct conn *c, bool complete, bool reset)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    struct record *r = &sink.records[c->id];
    r->bytes = c->bytes;
    r->fnv = c->fnv;
    r->complete = complete;
    if (c->dump != NULL) {
        if (fclose(c->dump) != 0) {
            fprintf(stderr, "tmsink: dump of connection %" PRIu64 ": %s\n",
                    c->id, strerror(errno));
        }
        c->dump = NULL;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        sink.conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    sink.open_count--;
    sink.last_event_ns = uv_hrtime();
    note_activity();

    if (c->pace != NULL) {
        uv_close((uv_handle_t *)c->pace, on_conn_handle_closed);
    }
    /* SO_LINGER 0: the peer sees a reset, not an orderly close. */
    if (!reset || uv_tcp_close_reset(&c->tcp, on_conn_handle_closed) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    }
}

static void write_next_chunk(struct conn *c);

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 || c->respond_left == 0 || c->closing) {
        sink.responding--;
        c->responding = false;
        c->responded = true;
        /* With --respond-after the answer may go before the EOF: the
         * connection then reads on until it. */
        if (c->eof || status < 0) {
            conn_finish(c, c->eof, false);
        }
        return;
    }
    write_next_chunk(c);
}

static void write_next_chunk(struct conn *c)
{
    size_t len = c->respond_left < RESPOND_BUFFER_SIZE ? (size_t)c->respond_left
                                                       : RESPOND_BUFFER_SIZE;
    c->respond_left -= len;
    /* The response is constant, so every write shares one buffer. */
    uv_buf_t buf = uv_buf_init((char *)respond_buffer, (unsigned)len);
    if (uv_write(c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) !=
        0) {
        sink.responding--;
        c->responding = false;
        c->responded = true;
        conn_finish(c, c->eof, false);
    }
}

/* Starts the --respond answer: after the EOF, or with --respond-after
 * once that many bytes arrived (a server answering a whole request). */
static void start_response(struct conn *c)
{
    c->write_req = xmalloc(sizeof *c->write_req);
    c->write_req->data = c;
    c->respond_left = sink.opt.respond;
    c->responding = true;
    sink.responding++;
    write_next_chunk(c);
}

static void on_eof(struct conn *c)
{
    c->eof = true;
    if (c->reset_planned) {
        /* Reset mode picked this connection; the data ran out first. */
        conn_finish(c, false, true);
        return;
    }
    sink.completed++;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->responding) {
        return; /* on_write finishes it */
    }
    if (sink.opt.respond == 0 || c->responded) {
        conn_finish(c, true, false);
        return;
    }
    start_response(c);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    const struct conn *c = handle->data;
    uint64_t len = READ_BUFFER_SIZE;
    /* Never read past the point where a fault mode acts. */
    if (c->read_budget < len) {
        len = c->read_budget;
    }
    if (c->pace != NULL && c->tokens < len) {
        len = c->tokens;
    }
    *buf = uv_buf_init((char *)read_buffer, (unsigned)len);
}

static void on_pace(uv_timer_t *timer);

static uint64_t pace_grant(void)
{
    uint64_t grant = sink.opt.bytes_per_sec * PACE_TICK_MS / 1000u;
    return grant > 0 ? grant : 1u;
}

static uint64_t pace_interval_ms(void)
{
    /* Below 10 B/s a tick would grant nothing: stretch it instead. */
    uint64_t rate = sink.opt.bytes_per_sec;
    if (rate * PACE_TICK_MS < 1000u) {
        return (1000u + rate - 1u) / rate;
    }
    return PACE_TICK_MS;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread > 0) {
        size_t n = (size_t)nread;
        if (!sink.opt.no_hash) {
            c->fnv = fnv1a_update(c->fnv, (const uint8_t *)buf->base, n);
        }
        c->bytes += n;
        sink.total_bytes += n;
        sink.last_event_ns = uv_hrtime();
        note_activity();
        if (c->dump != NULL && fwrite(buf->base, 1, n, c->dump) != n) {
            fprintf(stderr, "tmsink: dump of connection %" PRIu64 ": %s\n",
                    c->id, strerror(errno));
            fclose(c->dump);
            c->dump = NULL;
        }
        if (sink.opt.respond_after > 0 && sink.opt.respond > 0 &&
            !c->responding && !c->responded &&
            c->bytes >= sink.opt.respond_after) {
            start_response(c);
            if (c->closing) {
                return;
            }
        }
        if (c->read_budget != UINT64_MAX) {
            c->read_budget -= n;
            if (c->read_budget == 0) {
                conn_finish(c, false, sink.opt.mode == MODE_RESET);
                return;
            }
        }
        if (c->pace != NULL) {
            c->tokens -= n;
            if (c->tokens == 0) {
                uv_read_stop(stream);
                uv_timer_start(c->pace, on_pace, pace_interval_ms(), 0);
            }
        }
        return;
    }
    if (nread == UV_EOF) {
        on_eof(c);
    } else if (nread < 0 && nread != UV_ENOBUFS) {
        /* Reset by the peer, or another error: not a clean end. */
        conn_finish(c, false, false);
    }
}

static void on_pace(uv_timer_t *timer)
{
    struct conn *c = timer->data;
    if (c->closing) {
        return;
    }
    c->tokens = pace_grant();
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void grow_records(void)
{
    if (sink.n_records < sink.records_cap) {
        return;
    }
    size_t cap = sink.records_cap ? sink.records_cap * 2 : 1024;
    struct record *grown = realloc(sink.records, cap * sizeof *grown);
    if (grown == NULL) {
        fprintf(stderr, "tmsink: out of memory\n");
        exit(1);
    }
    sink.records = grown;
    sink.records_cap = cap;
}

static void open_dump(struct conn *c)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/conn-%" PRIu64 ".bin", sink.opt.dump_dir,
             c->id);
    c->dump = fopen(path, "wb");
    if (c->dump == NULL) {
        fprintf(stderr, "tmsink: cannot open %s: %s\n", path, strerror(errno));
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        fprintf(stderr, "tmsink: accept: %s\n", uv_strerror(status));
        return;
    }
    struct conn *c = xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    uv_tcp_init(sink.loop, &c->tcp);
    c->tcp.data = c;
    c->open_handles = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        return;
    }
    grow_records();
    c->id = sink.n_records++;
    sink.records[c->id] = (struct record){0, FNV_OFFSET_BASIS, false};
    c->fnv = FNV_OFFSET_BASIS;
    c->read_budget = UINT64_MAX;
    c->next = sink.conns;
    if (sink.conns != NULL) {
        sink.conns->prev = c;
    }
    sink.conns = c;
    if (++sink.open_count > sink.peak_concurrent) {
        sink.peak_concurrent = sink.open_count;
    }
    if (sink.first_accept_ns == 0) {
        sink.first_accept_ns = uv_hrtime();
    }
    sink.last_event_ns = uv_hrtime();
    note_activity();
    if (sink.opt.dump_dir != NULL) {
        open_dump(c);
    }

    switch (sink.opt.mode) {
    case MODE_NOREAD:
        return;
    case MODE_RESET: {
        /* Both draws every time, so choices depend only on accept order. */
        double unit = (double)(next_random() >> 11) * 0x1p-53;
        uint64_t threshold = next_random() % RESET_SPAN;
        if (unit * 100.0 < sink.opt.reset_percent) {
            c->reset_planned = true;
            c->read_budget = threshold;
            if (threshold == 0) {
                conn_finish(c, false, true);
                return;
            }
        }
        break;
    }
    case MODE_CLOSE_AFTER:
        c->read_budget = sink.opt.close_after;
        if (c->read_budget == 0) {
            conn_finish(c, false, false);
            return;
        }
        break;
    case MODE_SLOW:
        c->pace = xmalloc(sizeof *c->pace);
        uv_timer_init(sink.loop, c->pace);
        c->pace->data = c;
        c->open_handles++;
        c->tokens = pace_grant();
        break;
    case MODE_NORMAL:
        break;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- Exit ---- */

static bool write_manifest(void)
{
    const char *path = sink.opt.manifest;
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        fprintf(stderr, "tmsink: cannot open %s: %s\n", path, strerror(errno));
        return false;
    }
    uint64_t complete = 0;
    fputs("{\"connections\":[", fp);
    for (size_t i = 0; i < sink.n_records; i++) {
        const struct record *r = &sink.records[i];
        complete += r->complete ? 1u : 0u;
        char fnv[24];
        if (sink.opt.no_hash) {
            snprintf(fnv, sizeof fnv, "null");
        } else {
            snprintf(fnv, sizeof fnv, "\"%016" PRIx64 "\"", r->fnv);
        }
        fprintf(fp, "%s\n{\"bytes\":%" PRIu64 ",\"fnv64\":%s,\"complete\":%s}",
                i > 0 ? "," : "", r->bytes, fnv,
                r->complete ? "true" : "false");
    }
    fprintf(fp,
            "%s],\"totals\":{\"connections\":%zu,\"bytes\":%" PRIu64
            ",\"complete\":%" PRIu64 ",\"peak_concurrent\":%" PRIu64 "}}\n",
            sink.n_records > 0 ? "\n" : "", sink.n_records, sink.total_bytes,
            complete, sink.peak_concurrent);
    bool failed = ferror(fp) != 0;
    failed = fclose(fp) != 0 || failed;
    if (failed) {
        fprintf(stderr, "tmsink: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

static void close_any_handle(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (uv_is_closing(handle)) {
        return;
    }
    if (handle->data != NULL) {
        /* A connection's socket or pace timer: conn_finish closes both. */
        struct conn *c = handle->data;
        conn_finish(c, c->eof && !c->reset_planned, false);
        return;
    }
    uv_close(handle, NULL);
}

static void print_stats(void)
{
    uint64_t complete = 0;
    for (size_t i = 0; i < sink.n_records; i++) {
        complete += sink.records[i].complete ? 1u : 0u;
    }
    double seconds = 0.0;
    if (sink.first_accept_ns != 0 &&
        sink.last_event_ns > sink.first_accept_ns) {
        seconds = (double)(sink.last_event_ns - sink.first_accept_ns) / 1e9;
    }
    double mb_per_sec =
        seconds > 0.0 ? (double)sink.total_bytes / 1e6 / seconds : 0.0;
    fprintf(stderr,
            "tmsink: %zu connections (%" PRIu64 " complete, peak %" PRIu64
            " open), %" PRIu64 " bytes in %.3f s, %.1f MB/s\n",
            sink.n_records, complete, sink.peak_concurrent, sink.total_bytes,
            seconds, mb_per_sec);
}

/* Closes everything; uv_run() returns once the last handle is closed. */
static void begin_exit(int code)
{
    if (sink.exiting) {
        return;
    }
    sink.exiting = true;
    sink.exit_code = code;
    uv_walk(sink.loop, close_any_handle, NULL);
    if (sink.opt.manifest != NULL && !write_manifest() && code == 0) {
        sink.exit_code = 1;
    }
    if (!sink.opt.quiet) {
        print_stats();
    }
}

static void on_signal(uv_signal_t *handle, int signum)
{
    (void)handle;
    (void)signum;
    begin_exit(0);
}

static void on_timeout(uv_timer_t *timer)
{
    (void)timer;
    fprintf(stderr, "tmsink: --timeout reached\n");
    begin_exit(3);
}

static void on_idle_check(uv_timer_t *timer)
{
    (void)timer;
    if (sink.open_count == 0 &&
        uv_now(sink.loop) - sink.last_activity_ms >= sink.opt.idle_ms) {
        begin_exit(0);
    }
}

/* ---- Command line ---- */

static void usage(FILE *out)
{
    fputs(
        "usage: tmsink [options]\n"
        "Accepts TCP connections, reads each to EOF, and records its byte\n"
        "count and 64-bit FNV-1a hash.\n"
        "\n"
        "  --listen HOST:PORT     address to listen on (default 127.0.0.1:0;\n"
        "                         [::1]:PORT for IPv6)\n"
        "  --port-file FILE       write the bound port to FILE (atomically)\n"
        "  --manifest FILE        write per-connection JSON at exit\n"
        "  --dump-dir DIR         save connection n's bytes to DIR/conn-n.bin\n"
        "  --respond BYTES        send BYTES back after each EOF (default 0)\n"
        "  --respond-after BYTES  send the --respond bytes once BYTES have\n"
        "                         been read instead, then read on to EOF\n"
        "  --expect N             exit 0 once N connections reached EOF\n"
        "  --idle-exit DURATION   exit 0 when idle with no connection open\n"
        "  --timeout DURATION     hard limit: write the manifest, exit 3\n"
        "  --mode MODE            normal (default), noread, reset PCT,\n"
        "                         slow BYTES_PER_SEC, close-after BYTES\n"
        "  --seed N               seed for reset mode (default 1)\n"
        "  --no-hash              count bytes only; fnv64 is null in the\n"
        "                         manifest (FNV-1a runs at ~3-4 CPU cycles\n"
        "                         per byte, which caps throughput)\n"
        "  --quiet                no statistics line at exit\n"
        "  -h, --help             show this help\n"
        "\n"
        "DURATION: a number with ms, s or m (plain numbers are seconds).\n"
        "BYTES accept K/KiB, M/MiB, G/GiB suffixes (powers of 1024).\n",
        out);
}

static void bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "tmsink: %s '%s'\ntry 'tmsink --help'\n", what, arg);
    exit(2);
}

static uint64_t parse_bytes(const char *arg, const char *what)
{
    if (arg[0] < '0' || arg[0] > '9') {
        bad_usage(what, arg);
    }
    errno = 0;
    char *end;
    unsigned long long value = strtoull(arg, &end, 10);
    if (errno != 0) {
        bad_usage(what, arg);
    }
    static const struct {
        const char *name;
        unsigned shift;
    } units[] = {{"", 0},   {"B", 0},    {"K", 10}, {"KiB", 10}, {"k", 10},
                 {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].name) == 0) {
            if (value > (UINT64_MAX >> units[i].shift)) {
                bad_usage(what, arg);
            }
            return (uint64_t)value << units[i].shift;
        }
    }
    bad_usage(what, arg);
    return 0;
}

static uint64_t parse_duration_ms(const char *arg, const char *what)
{
    char *end;
    errno = 0;
    double value = strtod(arg, &end);
    if (errno != 0 || end == arg || !(value >= 0.0) || value > 1e9) {
        bad_usage(what, arg);
    }
    double ms;
    if (strcmp(end, "ms") == 0) {
        ms = value;
    } else if (strcmp(end, "s") == 0 || *end == '\0') {
        ms = value * 1000.0;
    } else if (strcmp(end, "m") == 0) {
        ms = value * 60000.0;
    } else {
        bad_usage(what, arg);
        return 0;
    }
    return (uint64_t)(ms + 0.5);
}

/* `--mode reset 10` takes its parameter from the next argument;
 * `--mode reset:10` works too. */
static void parse_mode(struct options *o, const char *arg, int argc,
                       char **argv)
{
    static const struct {
        const char *name;
        enum sink_mode mode;
        bool has_param;
    } modes[] = {
        {"normal", MODE_NORMAL, false},
        {"noread", MODE_NOREAD, false},
        {"reset", MODE_RESET, true},
        {"slow", MODE_SLOW, true},
        {"close-after", MODE_CLOSE_AFTER, true},
    };
    size_t name_len = strcspn(arg, ":=,");
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strlen(modes[i].name) != name_len ||
            strncmp(arg, modes[i].name, name_len) != 0) {
            continue;
        }
        o->mode = modes[i].mode;
        if (!modes[i].has_param) {
            if (arg[name_len] != '\0') {
                bad_usage("unexpected --mode parameter", arg);
            }
            return;
        }
        const char *param;
        if (arg[name_len] != '\0') {
            param = arg + name_len + 1;
        } else if (optind < argc) {
            param = argv[optind++];
        } else {
            bad_usage("--mode needs a parameter", arg);
            return;
        }
        if (o->mode == MODE_RESET) {
            char *end;
            errno = 0;
            o->reset_percent = strtod(param, &end);
            if (errno != 0 || end == param || *end != '\0' ||
                !(o->reset_percent >= 0.0) || o->reset_percent > 100.0) {
                bad_usage("bad reset percentage", param);
            }
        } else if (o->mode == MODE_SLOW) {
            o->bytes_per_sec = parse_bytes(param, "bad slow rate");
            if (o->bytes_per_sec == 0) {
                bad_usage("bad slow rate", param);
            }
        } else {
            o->close_after = parse_bytes(param, "bad close-after size");
        }
        return;
    }
    bad_usage("unknown --mode", arg);
}

enum {
    OPT_LISTEN = 256,
    OPT_PORT_FILE,
    OPT_MANIFEST,
    OPT_DUMP_DIR,
    OPT_RESPOND,
    OPT_RESPOND_AFTER,
    OPT_EXPECT,
    OPT_IDLE_EXIT,
    OPT_TIMEOUT,
    OPT_MODE,
    OPT_SEED,
    OPT_QUIET,
    OPT_NO_HASH,
};

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"manifest", required_argument, NULL, OPT_MANIFEST},
        {"dump-dir", required_argument, NULL, OPT_DUMP_DIR},
        {"respond", required_argument, NULL, OPT_RESPOND},
        {"respond-after", required_argument, NULL, OPT_RESPOND_AFTER},
        {"expect", required_argument, NULL, OPT_EXPECT},
        {"idle-exit", required_argument, NULL, OPT_IDLE_EXIT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"mode", required_argument, NULL, OPT_MODE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"no-hash", no_argument, NULL, OPT_NO_HASH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){
        .listen = "127.0.0.1:0",
        .mode = MODE_NORMAL,
        .seed = 1,
    };
    int c;
    /* '+': no argument permutation, so parse_mode may take argv[optind]. */
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN:
            o->listen = optarg;
            break;
        case OPT_PORT_FILE:
            o->port_file = optarg;
            break;
        case OPT_MANIFEST:
            o->manifest = optarg;
            break;
        case OPT_DUMP_DIR:
            o->dump_dir = optarg;
            break;
        case OPT_RESPOND:
            o->respond = parse_bytes(optarg, "bad --respond");
            break;
        case OPT_RESPOND_AFTER:
            o->respond_after = parse_bytes(optarg, "bad --respond-after");
            if (o->respond_after == 0) {
                bad_usage("bad --respond-after", optarg);
            }
            break;
        case OPT_EXPECT:
            o->expect = parse_bytes(optarg, "bad --expect");
            if (o->expect == 0) {
                bad_usage("bad --expect", optarg);
            }
            break;
        case OPT_IDLE_EXIT:
            o->idle_ms = parse_duration_ms(optarg, "bad --idle-exit");
            if (o->idle_ms == 0) {
                bad_usage("bad --idle-exit", optarg);
            }
            break;
        case OPT_TIMEOUT:
            o->timeout_ms = parse_duration_ms(optarg, "bad --timeout");
            if (o->timeout_ms == 0) {
                bad_usage("bad --timeout", optarg);
            }
            break;
        case OPT_MODE:
            parse_mode(o, optarg, argc, argv);
            break;
        case OPT_SEED:
            o->seed = parse_bytes(optarg, "bad --seed");
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case OPT_NO_HASH:
            o->no_hash = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            fputs("try 'tmsink --help'\n", stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        bad_usage("unexpected argument", argv[optind]);
    }
}

/* Accepts "1.2.3.4:PORT" and "[v6]:PORT". */
static bool parse_listen(const char *arg, struct sockaddr_storage *addr)
{
    char host[128];
    const char *port_text;
    if (arg[0] == '[') {
        const char *close = strchr(arg, ']');
        if (close == NULL || close[1] != ':' ||
            (size_t)(close - arg - 1) >= sizeof host) {
            return false;
        }
        memcpy(host, arg + 1, (size_t)(close - arg - 1));
        host[close - arg - 1] = '\0';
        port_text = close + 2;
    } else {
        const char *colon = strrchr(arg, ':');
        if (colon == NULL || (size_t)(colon - arg) >= sizeof host) {
            return false;
        }
        memcpy(host, arg, (size_t)(colon - arg));
        host[colon - arg] = '\0';
        port_text = colon + 1;
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(port_text, &end, 10);
    if (errno != 0 || end == port_text || *end != '\0' || port > 65535) {
        return false;
    }
    memset(addr, 0, sizeof *addr);
    if (arg[0] == '[') {
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)addr) == 0;
    }
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr) == 0;
}

static void raise_fd_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
        limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            fprintf(stderr, "tmsink: cannot raise the open file limit: %s\n",
                    strerror(errno));
        }
    }
}

/* Readers poll for the file: rename makes it appear complete. */
static bool write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "w");
    if (fp == NULL) {
        fprintf(stderr, "tmsink: cannot open %s: %s\n", tmp, strerror(errno));
        return false;
    }
    fprintf(fp, "%d\n", port);
    bool failed = ferror(fp) != 0;
    failed = fclose(fp) != 0 || failed;
    if (failed || rename(tmp, path) != 0) {
        fprintf(stderr, "tmsink: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return false;
    }
    return true;
}

static int start_listening(void)
{
    struct sockaddr_storage addr;
    if (!parse_listen(sink.opt.listen, &addr)) {
        bad_usage("bad --listen (want HOST:PORT or [HOST]:PORT)",
                  sink.opt.listen);
    }
    uv_tcp_init(sink.loop, &sink.listener);
    sink.listener.data = NULL;
    int err = uv_tcp_bind(&sink.listener, (const struct sockaddr *)&addr, 0);
    if (err == 0) {
        err = uv_listen((uv_stream_t *)&sink.listener, LISTEN_BACKLOG,
                        on_connection);
    }
    if (err != 0) {
        fprintf(stderr, "tmsink: cannot listen on %s: %s\n", sink.opt.listen,
                uv_strerror(err));
        return -1;
    }
    struct sockaddr_storage bound;
    int bound_len = (int)sizeof bound;
    uv_tcp_getsockname(&sink.listener, (struct sockaddr *)&bound, &bound_len);
    char name[64];
    int port;
    if (bound.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&bound;
        uv_ip6_name(in6, name, sizeof name);
        port = ntohs(in6->sin6_port);
        printf("listening on [%s]:%d\n", name, port);
    } else {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)&bound;
        uv_ip4_name(in4, name, sizeof name);
        port = ntohs(in4->sin_port);
        printf("listening on %s:%d\n", name, port);
    }
    fflush(stdout);
    if (sink.opt.port_file != NULL &&
        !write_port_file(sink.opt.port_file, port)) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv, &sink.opt);
    raise_fd_limit();
    /* A peer that resets while we write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);

    sink.loop = &loop_storage;
    int init_err = uv_loop_init(sink.loop);
    if (init_err != 0) {
        fprintf(stderr, "tmsink: %s\n", uv_strerror(init_err));
        return 1;
    }
    sink.rng_state = sink.opt.seed;
    for (size_t i = 0; i < RESPOND_BUFFER_SIZE; i++) {
        respond_buffer[i] = (uint8_t)('a' + i % 26u);
    }
    note_activity();

    if (start_listening() != 0) {
        uv_close((uv_handle_t *)&sink.listener, NULL);
        uv_run(sink.loop, UV_RUN_DEFAULT);
        uv_loop_close(sink.loop);
        return 1;
    }
    uv_signal_init(sink.loop, &sink.sigint);
    uv_signal_init(sink.loop, &sink.sigterm);
    sink.sigint.data = NULL;
    sink.sigterm.data = NULL;
    uv_signal_start(&sink.sigint, on_signal, SIGINT);
    uv_signal_start(&sink.sigterm, on_signal, SIGTERM);
    if (sink.opt.timeout_ms > 0) {
        uv_timer_init(sink.loop, &sink.timeout_timer);
        sink.timeout_timer.data = NULL;
        uv_timer_start(&sink.timeout_timer, on_timeout, sink.opt.timeout_ms, 0);
    }
    if (sink.opt.idle_ms > 0) {
        uint64_t interval = sink.opt.idle_ms / 4u;
        if (interval > 250u) {
            interval = 250u;
        }
        if (interval < 5u) {
            interval = 5u;
        }
        uv_timer_init(sink.loop, &sink.idle_timer);
        sink.idle_timer.data = NULL;
        uv_timer_start(&sink.idle_timer, on_idle_check, interval, interval);
    }

    uv_run(sink.loop, UV_RUN_DEFAULT);
    int close_err = uv_loop_close(sink.loop);
    if (close_err != 0) {
        fprintf(stderr, "tmsink: loop close: %s\n", uv_strerror(close_err));
    }
    free(sink.records);
    return sink.exit_code;
}
