#include "run.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/capwriter.h"
#include "core/engine.h"
#include "diffreport.h"
#include "intake.h"
#include "io/fileid.h"
#include "io/log.h"
#include "kube/mirror.h"
#include "io/pktfilter.h"
#include "io/proc.h"
#include "io/replay.h"
#include "proto/capredact.h"
#include "proto/httpflow.h"
#include "proto/compare.h"
#include "proto/jsondiff.h"
#include "proto/sniff.h"
#include "io/source.h"
#include "stats.h"
#include "core/util.h"

/* A capture file pauses above this much queued for the targets and
 * resumes below the low mark: it can wait, and memory stays small. */
#define FILE_QUEUE_HIGH (8u * 1024 * 1024)
#define FILE_QUEUE_LOW  (2u * 1024 * 1024)
/* Connections waiting for a dial slot past which a file pauses (see
 * replay_dial_backlog), and below which it reads on. */
#define FILE_DIALS_HIGH 1024
#define FILE_DIALS_LOW  256
/* --compare: production's answers a file has given compare ahead of the
 * local answers, past which it pauses and below which it reads on. */
#define FILE_COMPARE_HIGH (32u * 1024 * 1024)
#define FILE_COMPARE_LOW  (16u * 1024 * 1024)
#define TICK_MS         50
#define HEAP_CHECK_NS   (1000ull * 1000 * 1000)
#define HEAP_TRIM_DROP  (4ull * 1024 * 1024)
#define STALL_RESUME_NS (500 * TM_NS_PER_MS)
#define STATUS_EVERY_NS (250 * TM_NS_PER_MS)

enum run_state { RUN_STARTING, RUN_RUNNING, RUN_DRAINING, RUN_CLOSING };

struct run {
    uv_loop_t loop;
    const struct tm_options *o;
    struct source *src;
    struct capwriter *out;
    struct engine *engine;
    struct replay *replay;
    uv_signal_t sigint, sigterm, sighup;
    bool signals_open;
    bool loop_ended; /* the run is over: a signal now changes nothing */
    uv_timer_t tick;
    enum run_state state;
    int exit_code;
    bool failed;      /* a runtime error decided the exit status */
    int interrupts;   /* SIGINT, SIGTERM and SIGHUP received */
    bool source_stopping; /* a stop waits for the source's last packets */
    bool reported; /* the summary and --stats-json are out */
    bool write_stats; /* --stats-json, and not refused */
    int handles_open;

    bool header_written;
    bool writer_reported; /* the output's failure was reported */
    bool lossless;
    bool paused_for_queue;
    uint64_t pause_progress; /* replay_progress() when the pause began */
    uint64_t pause_since;
    /* The records' way to the engine: link type, --filter (NULL for a
     * live capture, whose kernel applies it), packet counters. */
    struct intake in;

    uint64_t tls_connections; /* flows that opened with a TLS handshake */
    struct httpflow_config *http; /* HTTP-aware mirroring; NULL: none */
    struct capredact *redact;     /* --redact: the output's credentials */
    uint8_t *redact_buf;          /* a record copied to be redacted */
    size_t redact_cap;
    bool truncated;
    int64_t kernel_drops;
    struct source_capture_modes modes;
    bool have_modes;
    /* Live sources: this machine's clock (ns since the epoch) read at the
     * loop time `wall_at_loop_ns` (uv_now in ns); packets read later are
     * compared with it plus the loop time since, which costs no clock
     * read per packet. */
    uint64_t wall_ns, wall_at_loop_ns;
    uint64_t started;
    uint64_t last_status;
    uint64_t last_heap_check, heap_high; /* see maybe_trim_heap */
    bool status_line;

    /* --compare (see build_compare) */
    struct compare_config cmp_cfg;
    struct jsondiff_ignore *cmp_ignore;
    struct compare_noise *cmp_noise;
    struct compare_report *cmp_report;
    struct diffreport *cmp_page; /* --diff-report */
    FILE *diff_log;              /* --diff-log */
    bool diff_log_failed;
    uint64_t cmp_counts[COMPARE_OUTCOMES];
    cJSON *cmp_json; /* the report's `compare` object, at the end */
};

/* ---- helpers ---- */

static void format_endpoint(char *buf, size_t len, uint8_t family,
                            const uint8_t *addr, uint16_t port)
{
    char host[INET6_ADDRSTRLEN];
    inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, host, sizeof(host));
    if (family == 4) {
        snprintf(buf, len, "%s:%u", host, port);
    } else {
        snprintf(buf, len, "[%s]:%u", host, port);
    }
}

static void describe_flow(const struct flow *f, char *buf, size_t len)
{
    char c[64], s[64];
    format_endpoint(c, sizeof(c), f->node.key.family, f->node.key.caddr,
                    f->node.key.cport);
    format_endpoint(s, sizeof(s), f->node.key.family, f->node.key.saddr,
                    f->node.key.sport);
    snprintf(buf, len, "connection %llu %s -> %s",
             (unsigned long long)f->id, c, s);
}

/* Raises the soft descriptor limit to the hard one: every mirrored
 * connection needs a local socket. Returns the resulting limit. */
static uint64_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return 1024;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1000000 : (uint64_t)rl.rlim_cur;
}

static void stop(struct run *r);

static void fail(struct run *r, const char *msg)
{
    if (!r->failed) {
        tm_error("%s", msg);
        r->failed = true;
        r->exit_code = 1;
    }
    stop(r);
}

/* ---- engine events ---- */

static void on_flow_open(void *ctx, struct flow *f)
{
    (void)ctx;
    if (tm_log_level() >= LOG_VERBOSE) {
        char d[160];
        describe_flow(f, d, sizeof(d));
        tm_verbose("%s opened (%s)", d,
                   (f->flags & FLOW_SYN) ? "SYN" : "joined mid-stream");
    }
}

/* What --sample hashes for a connection: its 4-tuple, initial sequence
 * number and first timestamp, the same on every run of a capture. */
static uint64_t flow_sample_key(const struct flow *f)
{
    const struct flow_key *k = &f->node.key;
    uint64_t h = tm_hash64(k->caddr, sizeof(k->caddr), f->first_ns);
    h = tm_hash64(k->saddr, sizeof(k->saddr), h);
    uint64_t rest[2] = {((uint64_t)k->cport << 16 | k->sport) << 8 |
                            k->family,
                        f->isn};
    return tm_hash64(rest, sizeof(rest), h);
}

/* A flow's local connections are dialled at its first byte, not at its
 * SYN: a connection that carries nothing (a SYN flood, a port scan, a
 * health check) costs the target nothing and holds no session. */
static char tls_flow; /* the f->user of a TLS flow that is not replayed */

static void on_flow_data(void *ctx, struct flow *f, const uint8_t *data,
                         uint32_t len, uint64_t server_acked)
{
    struct run *r = ctx;
    if (f->user == &tls_flow) {
        return;
    }
    /* A connection that opens with a TLS handshake is encrypted: its
     * bytes would only be handshakes to a plaintext target. */
    if (f->payload_bytes == len &&
        sniff_first_bytes(data, len) == SNIFF_TLS) {
        r->tls_connections++;
        if (tm_log_level() >= LOG_VERBOSE) {
            char d[160];
            describe_flow(f, d, sizeof(d));
            tm_verbose("%s opens with a TLS handshake%s", d,
                       r->o->replay_tls || r->replay == NULL
                           ? ""
                           : ": not replayed");
        }
        if (!r->o->replay_tls) {
            f->user = &tls_flow;
            return;
        }
    }
    if (r->replay == NULL) {
        return;
    }
    if (f->user == NULL) {
        f->user = replay_open(r->replay, f->id);
        replay_set_flow_key(f->user, flow_sample_key(f));
    }
    /* What compare pairs the local answers with: the captured requests
     * (the options that drop some are refused with --compare). Fed
     * first, so that a write the replay starts at once already counts
     * them as sent. */
    replay_compare_client(r->replay, f->user, data, len,
                          (int64_t)engine_now(r->engine));
    replay_data(r->replay, f->user, data, len, server_acked);
}

/* The server answered: --pace ordered numbers production's answers. */
static void on_server_answer(void *ctx, struct flow *f)
{
    struct run *r = ctx;
    if (r->replay != NULL && f->user != NULL && f->user != &tls_flow) {
        replay_answer(r->replay, f->user);
    }
}

static void on_flow_gap(void *ctx, struct flow *f, uint32_t len)
{
    struct run *r = ctx;
    if (f->user != NULL && f->user != &tls_flow) {
        replay_gap(r->replay, f->user, len);
    }
    if (tm_log_level() >= LOG_VERBOSE) {
        char d[160];
        describe_flow(f, d, sizeof(d));
        tm_verbose("%s: skipped %u bytes the capture missed", d, len);
    }
    if (f->user != NULL && f->user != &tls_flow) {
        replay_compare_client_gap(r->replay, f->user, len);
    }
}

static void apply_backpressure(struct run *r);

/* --compare: production's answers, in order, as the capture shows them.
 * A server that speaks first on a connection seen from its SYN (a
 * greeting) opens the local connections too, so that the target's
 * greeting is compared with it; answers before any client byte on a
 * connection joined mid-stream answer requests never seen, and open
 * nothing. */
static void on_server_data(void *ctx, struct flow *f, const uint8_t *data,
                           uint32_t len)
{
    struct run *r = ctx;
    if (f->user == &tls_flow || r->replay == NULL) {
        return;
    }
    if (f->user == NULL) {
        if (!(f->flags & FLOW_SERVER_FIRST)) {
            return;
        }
        f->user = replay_open(r->replay, f->id);
    }
    replay_compare_prod(r->replay, f->user, data, len,
                        (int64_t)engine_now(r->engine));
    /* A file may run far ahead of the local answers within one batch:
     * it pauses as soon as compare holds too much, not at the batch's
     * end. */
    if (r->lossless && !source_paused(r->src) &&
        replay_compare_backlog(r->replay) > FILE_COMPARE_HIGH) {
        apply_backpressure(r);
    }
}

static void on_server_gap(void *ctx, struct flow *f, uint32_t len)
{
    struct run *r = ctx;
    if (f->user != NULL && f->user != &tls_flow) {
        replay_compare_prod_gap(r->replay, f->user, len);
    }
}

static void on_server_end(void *ctx, struct flow *f)
{
    struct run *r = ctx;
    if (f->user != NULL && f->user != &tls_flow) {
        replay_compare_prod_end(r->replay, f->user);
    }
}

static void on_flow_end(void *ctx, struct flow *f, enum flow_end_reason why)
{
    struct run *r = ctx;
    if (tm_log_level() >= LOG_VERBOSE) {
        char d[160];
        describe_flow(f, d, sizeof(d));
        tm_verbose("%s ended (%s): %llu bytes, %u gaps", d,
                   flow_end_reason_name(why),
                   (unsigned long long)f->payload_bytes, f->gaps);
    }
    if (f->user != NULL && f->user != &tls_flow) {
        replay_end(r->replay, f->user, f->server_acked,
                   engine_flow_server_sent(f));
    }
    f->user = NULL;
}

/* ---- backpressure ---- */

static void maybe_resume(struct run *r)
{
    if (r->state != RUN_RUNNING || r->src == NULL ||
        !source_paused(r->src)) {
        return;
    }
    if (r->out != NULL && capwriter_congested(r->out)) {
        return;
    }
    if (r->paused_for_queue && r->replay != NULL &&
        (replay_queued(r->replay) > FILE_QUEUE_LOW ||
         replay_compare_backlog(r->replay) > FILE_COMPARE_LOW ||
         replay_conns_over_cap(r->replay) > 0 ||
         replay_dial_backlog(r->replay, FILE_DIALS_LOW))) {
        return;
    }
    r->paused_for_queue = false;
    source_resume(r->src);
}

static void on_queue_low(void *ctx)
{
    maybe_resume(ctx);
}

static void on_writer_change(void *ctx)
{
    struct run *r = ctx;
    enum capwriter_state st = capwriter_state(r->out);
    if (st != CAPWRITER_OK && r->writer_reported) {
        return;
    }
    if (st == CAPWRITER_READER_GONE) {
        r->writer_reported = true;
        tm_info("%s; stopping", capwriter_error(r->out));
        stop(r);
    } else if (st == CAPWRITER_FAILED) {
        r->writer_reported = true;
        fail(r, capwriter_error(r->out));
    } else {
        maybe_resume(r);
    }
}

static void apply_backpressure(struct run *r)
{
    if (r->state != RUN_RUNNING) {
        return;
    }
    /* A file can wait for the targets; a live source never does. */
    if (r->lossless && r->replay != NULL &&
        (replay_queued(r->replay) > FILE_QUEUE_HIGH ||
         replay_compare_backlog(r->replay) > FILE_COMPARE_HIGH ||
         replay_conns_over_cap(r->replay) > 0 ||
         replay_dial_backlog(r->replay, FILE_DIALS_HIGH)) &&
        !source_paused(r->src)) {
        r->paused_for_queue = true;
        r->pause_progress = replay_progress(r->replay);
        r->pause_since = uv_hrtime();
        source_pause(r->src);
    }
    /* The output reader is the one consumer everyone waits for. */
    if (r->out != NULL && capwriter_congested(r->out)) {
        source_pause(r->src);
    }
}

/* ---- source events ---- */

/* --redact: the record's bytes copied, its packet's credentials
 * overwritten in the copy (the engine and the replay keep the original).
 * Returns false when the packet does not lie in the record's bytes. */
static bool redact_item(struct run *r, const struct cap_item *it,
                        struct cap_item *copy)
{
    const uint8_t *base = it->raw;
    size_t len = it->raw_len;
    if (it->raw2 != NULL && it->data >= it->raw2 &&
        it->data + it->caplen <= it->raw2 + it->raw2_len) {
        base = it->raw2;
        len = it->raw2_len;
    } else if (!(it->data >= it->raw &&
                 it->data + it->caplen <= it->raw + it->raw_len)) {
        return false;
    }
    if (len > r->redact_cap) {
        r->redact_cap = len;
        r->redact_buf = tm_xrealloc(r->redact_buf, len);
    }
    memcpy(r->redact_buf, base, len);
    uint8_t *pkt = r->redact_buf + (it->data - base);
    capredact_packet(r->redact, it->linktype, pkt, it->caplen, it->wirelen);
    *copy = *it;
    if (base == it->raw) {
        copy->raw = r->redact_buf;
    } else {
        copy->raw2 = r->redact_buf;
    }
    return true;
}

static void write_item(struct run *r, const struct cap_item *it, bool packet)
{
    if (r->out == NULL) {
        return;
    }
    struct cap_item redacted;
    if (packet && r->redact != NULL && redact_item(r, it, &redacted)) {
        it = &redacted;
    }
    if (capwriter_append(r->out, it->raw, it->raw_len, it->raw2,
                         it->raw2_len, packet) < 0) {
        on_writer_change(r);
    }
}

static void on_item(void *ctx, const struct cap_item *it)
{
    struct run *r = ctx;
    char err[512];
    if (r->state != RUN_RUNNING) {
        return;
    }
    if (it->kind != CAP_ITEM_PACKET) {
        if (it->kind == CAP_ITEM_HEADER &&
            intake_header(&r->in, it, err, sizeof(err)) < 0) {
            fail(r, err);
            return;
        }
        /* A pcap file has one header; a pcapng file has blocks that all
         * belong in the output. */
        if (it->kind == CAP_ITEM_HEADER && r->header_written &&
            it->raw_len == CAP_PCAP_HEADER_LEN) {
            return;
        }
        r->header_written = true;
        write_item(r, it, false);
        return;
    }
    enum intake_verdict v = intake_packet(&r->in, it, err, sizeof(err));
    if (v == INTAKE_FAILED) {
        fail(r, err);
        return;
    }
    if (v == INTAKE_FILTERED) {
        return;
    }
    write_item(r, it, true);
    if (r->state != RUN_RUNNING) {
        return; /* the output failed */
    }
    if (r->lossless) {
        intake_to_engine(&r->in, it);
        return;
    }
    /* Live: the record is written as captured (above), but the engine
     * never takes a time ahead of this machine's clock. */
    uint64_t loop_ns = uv_now(&r->loop) * TM_NS_PER_MS;
    uint64_t wall = r->wall_ns + (loop_ns - r->wall_at_loop_ns);
    uint64_t clamped = engine_stats(r->engine)->timestamps_clamped;
    engine_live_packet(r->engine, it->linktype, it->ts_ns, wall, loop_ns,
                       it->data, it->caplen, it->wirelen);
    if (clamped == 0 && engine_stats(r->engine)->timestamps_clamped > 0) {
        tm_warn("%s: a packet is stamped %.0f s ahead of this machine's "
                "clock; live packets stamped more than %.0f s ahead are "
                "taken at this machine's time (counted as "
                "source.timestamps_clamped)",
                source_name(r->src), (double)(it->ts_ns - wall) / 1e9,
                (double)ENGINE_LIVE_AHEAD_NS / 1e9);
    }
}

/* Reads this machine's clock for the live sources' timestamp check. */
static void read_wall_clock(struct run *r)
{
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) == 0) {
        r->wall_ns = (uint64_t)tv.tv_sec * TM_NS_PER_S +
                     (uint64_t)tv.tv_usec * TM_NS_PER_US;
        r->wall_at_loop_ns = uv_now(&r->loop) * TM_NS_PER_MS;
    }
}

static void on_addresses(void *ctx, const struct service_addr *addrs,
                         size_t n)
{
    struct run *r = ctx;
    engine_set_service_addrs(r->engine, addrs, n);
}

static void on_port(void *ctx, uint16_t port)
{
    struct run *r = ctx;
    engine_set_port(r->engine, port);
}

static void on_batch(void *ctx)
{
    struct run *r = ctx;
    if (r->state != RUN_RUNNING) {
        return;
    }
    engine_advance(r->engine, engine_now(r->engine));
    if (r->replay != NULL) {
        replay_flush(r->replay);
    }
    apply_backpressure(r);
}

static void on_source_end(void *ctx, int status, const char *msg,
                          bool truncated)
{
    struct run *r = ctx;
    if (status < 0) {
        fail(r, msg);
        return;
    }
    if (truncated) {
        r->truncated = true;
        tm_warn("%s ends inside a record: the incomplete last record was "
                "ignored",
                source_name(r->src));
    }
    if (r->lossless && r->replay != NULL) {
        replay_drain_while_moving(r->replay);
    }
    stop(r);
}

/* ---- stopping ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct run *r = h->data;
    r->handles_open--;
}

static void on_child_closed(void *ctx)
{
    struct run *r = ctx;
    r->handles_open--;
}

static void close_all(struct run *r)
{
    if (r->state == RUN_CLOSING) {
        return;
    }
    r->state = RUN_CLOSING;
    if (r->src != NULL) {
        r->kernel_drops = source_kernel_drops(r->src);
        r->have_modes = source_capture_modes(r->src, &r->modes);
    }
    tm_status("");
    uv_timer_stop(&r->tick);
    r->handles_open++;
    uv_close((uv_handle_t *)&r->tick, on_handle_closed);
    /* The loop may still wait seconds for kubectl to exit: a second
     * signal must still be ours (to kill it and report), so the handlers
     * stay, they just no longer keep the loop running. */
    uv_unref((uv_handle_t *)&r->sigint);
    uv_unref((uv_handle_t *)&r->sigterm);
    uv_unref((uv_handle_t *)&r->sighup);
}

static void on_drained(void *ctx)
{
    close_all(ctx);
}

/* Stops reading, delivers what is queued (bounded by --drain-timeout),
 * then closes. */
static void stop(struct run *r)
{
    if (r->state != RUN_RUNNING) {
        return;
    }
    r->state = RUN_DRAINING;
    if (r->src != NULL) {
        source_stop(r->src);
    }
    engine_finish(r->engine);
    if (r->out != NULL) {
        capwriter_flush(r->out);
    }
    if (r->replay != NULL) {
        replay_drain(r->replay, r->o->drain_timeout_ns, on_drained, r);
    } else {
        close_all(r);
    }
}

static void on_source_stopped(void *ctx)
{
    stop(ctx);
}

/* A stop asked for by a signal: a live capture first reads what the
 * kernel captured up to now (source_stop_then). Stops for other reasons
 * (a failure, the output's reader gone, the input's end) do not wait. */
static void stop_on_request(struct run *r)
{
    if (r->state != RUN_RUNNING) {
        return;
    }
    if (r->src != NULL && !r->source_stopping) {
        r->source_stopping = true;
        source_stop_then(r->src, on_source_stopped, r);
        return;
    }
    stop(r);
}

static const char *signal_word(int signum)
{
    switch (signum) {
    case SIGINT:
        return "interrupted";
    case SIGHUP:
        return "hangup"; /* the terminal or the SSH session went away */
    default:
        return "terminated";
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct run *r = h->data;
    if (r->loop_ended) {
        return;
    }
    /* The first signal stops cleanly even if the run was already
     * stopping (the input ended in the same instant, say); only a second
     * one cuts the delivery short. */
    if (++r->interrupts == 1) {
        tm_info("%s: stopping; delivering what is queued (Ctrl-C again to "
                "quit at once)",
                signal_word(signum));
        stop_on_request(r);
        return;
    }
    if (r->interrupts > 2) {
        return; /* already quitting */
    }
    /* Also while closing: the loop may be waiting for kubectl, which is
     * killed now rather than left to its grace periods. */
    stop(r); /* if the first was still reading the last packets */
    /* A second signal: out now, leaving whole records behind. */
    tm_error("interrupted again: quitting without delivering the rest");
    if (r->out != NULL) {
        capwriter_emergency_flush(r->out, 1000);
    }
    r->exit_code = 130;
    r->failed = true;
    if (r->replay != NULL) {
        replay_abort(r->replay);
    }
    if (r->o->cmd == CMD_MIRROR && r->src != NULL) {
        mirror_kill(r->src);
    }
    close_all(r);
}

/* ---- periodic work ---- */

static void draw_status(struct run *r)
{
    char line[256], a[32], b[32];
    const struct engine_stats *es = engine_stats(r->engine);
    int n = snprintf(line, sizeof(line),
                     "tapmirror: %llu pkts %s | %llu conns, %llu open",
                     (unsigned long long)r->in.packets,
                     format_bytes(r->in.bytes, a, sizeof(a)),
                     (unsigned long long)es->flows_seen,
                     (unsigned long long)es->flows_open);
    if (r->replay != NULL && n > 0 && (size_t)n < sizeof(line)) {
        uint64_t delivered = 0, dropped = 0;
        for (size_t i = 0; i < replay_target_count(r->replay); i++) {
            delivered += replay_target_stats(r->replay, i)->bytes_delivered;
            dropped += replay_target_stats(r->replay, i)->flows_dropped;
        }
        n += snprintf(line + n, sizeof(line) - (size_t)n,
                      " | delivered %s, queued %s",
                      format_bytes(delivered, a, sizeof(a)),
                      format_bytes(replay_queued(r->replay), b, sizeof(b)));
        /* Connections given up, not packets; like gaps, said once there
         * are some, so that the line fits 80 columns until then. */
        if (dropped > 0 && n > 0 && (size_t)n < sizeof(line)) {
            n += snprintf(line + n, sizeof(line) - (size_t)n,
                          ", conns dropped %llu",
                          (unsigned long long)dropped);
        }
    }
    /* Packets the kernel dropped before tapmirror read them: known for
     * a live interface only (-1 otherwise). */
    int64_t kernel_drops = r->src != NULL ? source_kernel_drops(r->src) : -1;
    if (kernel_drops >= 0 && n > 0 && (size_t)n < sizeof(line)) {
        n += snprintf(line + n, sizeof(line) - (size_t)n,
                      " | kernel drops %lld", (long long)kernel_drops);
    }
    if (es->gaps > 0 && n > 0 && (size_t)n < sizeof(line)) {
        n += snprintf(line + n, sizeof(line) - (size_t)n, " | gaps %llu",
                      (unsigned long long)es->gaps);
    }
    if (r->cmp_report != NULL && n > 0 && (size_t)n < sizeof(line)) {
        const uint64_t *c = r->cmp_counts;
        snprintf(line + n, sizeof(line) - (size_t)n,
                 " | compared %llu, same %llu, differ %llu",
                 (unsigned long long)(c[COMPARE_SAME] + c[COMPARE_DIFFER] +
                                      c[COMPARE_NOT_COMPARABLE]),
                 (unsigned long long)c[COMPARE_SAME],
                 (unsigned long long)c[COMPARE_DIFFER]);
    }
    tm_status(line);
}

/* Once the memory in use has fallen well below its high point since the
 * last trim (a burst of connections ended), free heap pages go back to
 * the system, so a long run's resident size follows its load. */
static void maybe_trim_heap(struct run *r, uint64_t now)
{
    if (now - r->last_heap_check < HEAP_CHECK_NS) {
        return;
    }
    r->last_heap_check = now;
    uint64_t used = proc_heap_in_use();
    if (used > r->heap_high) {
        r->heap_high = used;
    } else if (r->heap_high - used >= HEAP_TRIM_DROP) {
        proc_heap_trim();
        r->heap_high = used;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct run *r = t->data;
    uint64_t now = uv_hrtime();
    if (r->out != NULL && r->state != RUN_CLOSING) {
        if (capwriter_flush(r->out) < 0) {
            on_writer_change(r);
        }
    }
    if (r->state != RUN_RUNNING) {
        return;
    }
    /* A live source that goes quiet, or whose packets are stamped in
     * the past (a clock stepped back), must not leave holes waiting for
     * packets that will never come: capture time moves with the wall
     * clock since a packet last moved it. */
    if (!r->lossless) {
        read_wall_clock(r);
        engine_live_advance(r->engine, uv_now(&r->loop) * TM_NS_PER_MS);
        if (r->replay != NULL) {
            replay_flush(r->replay);
        }
    }
    if (r->o->cmd == CMD_MIRROR) {
        mirror_check_silence(r->src, engine_stats(r->engine)->inbound);
    }
    /* A file paused for the targets, while nothing drains: every queued
     * byte waits for a connection that waits for more of the file (all
     * descriptor slots taken, say). Read on; the caps bound memory. */
    if (r->paused_for_queue && source_paused(r->src) &&
        replay_progress(r->replay) == r->pause_progress &&
        now - r->pause_since >= STALL_RESUME_NS) {
        r->paused_for_queue = false;
        source_resume(r->src);
    }
    if (r->status_line && now - r->last_status >= STATUS_EVERY_NS) {
        r->last_status = now;
        draw_status(r);
    }
    maybe_trim_heap(r, now);
}

/* ---- setup ---- */

/* The mirror's own configuration: the kube layer does not see the
 * command line's struct. */
_Static_assert(TM_MAX_PODS_LIMIT <= MIRROR_MAX_PODS, "--max-pods bound");
_Static_assert(TM_MAX_SERVICE_ADDRS <= MIRROR_MAX_SERVICE_ADDRS,
               "--service-ip bound");
static struct mirror_config mirror_config_from_options(
    const struct tm_options *o)
{
    static const enum mirror_tap_profile profiles[] = {
        [TM_TAP_AUTO] = MIRROR_TAP_AUTO,
        [TM_TAP_NETRAW] = MIRROR_TAP_NETRAW,
        [TM_TAP_BASELINE] = MIRROR_TAP_BASELINE,
    };
    return (struct mirror_config){
        .target = o->target,
        .namespace_ = o->namespace_,
        .container = o->container,
        .context = o->context,
        .kubeconfig = o->kubeconfig,
        .kubectl = o->kubectl,
        .tap_image = o->tap_image,
        .tap_timeout_ns = o->tap_timeout_ns,
        .all_pods = o->all_pods,
        .max_pods = o->max_pods,
        .tap_profile = profiles[o->tap_profile],
        .port = o->port,
        .port_name = o->port_name,
        .warn_silence_ns = o->warn_silence_ns,
        .mesh_off = o->mesh_off,
        .service = o->service,
        .n_service = o->n_service,
    };
}

/* Returns 0, -1 (a runtime error) or SOURCE_BAD_FILTER (a usage error),
 * with err set. */
static int open_source_for_command(struct run *r, char *err, size_t errlen)
{
    const struct tm_options *o = r->o;
    struct source_config sc = {
        .pace = o->pace,
        .max_pause_ns = o->max_pause_ns,
        .filter = o->filter,
        .port = o->port,
        .snaplen = (uint32_t)o->snaplen,
        .kernel_buffer = o->kernel_buffer,
        .batch_above = o->batch_above,
        .promisc = o->promisc,
    };
    struct source_events ev = {on_item, on_batch, on_source_end,
                               on_addresses, r, on_port};
    if (o->cmd == CMD_MIRROR) {
        struct mirror_config mc = mirror_config_from_options(o);
        return mirror_open(&r->loop, &mc, &sc, &ev, &r->src, err, errlen);
    }
    if (o->cmd == CMD_CAPTURE) {
        return source_open_live(&r->loop, o->interface, &sc, &ev, &r->src,
                                err, errlen);
    }
    return source_open_input(&r->loop, o->input, &sc, &ev, &r->src, err,
                             errlen);
}

static int probe_targets(struct run *r, char *err, size_t errlen)
{
    const struct tm_options *o = r->o;
    for (size_t i = 0; i < o->n_targets; i++) {
        struct sockaddr_storage ss;
        uv_tcp_t *conn = NULL;
        char why[400], label[80];
        if (replay_probe(&r->loop, o->targets[i].host, o->targets[i].port,
                         o->connect_timeout_ns, &ss, &conn, why,
                         sizeof(why)) < 0) {
            snprintf(err, errlen, "cannot reach --to %s: %s",
                     o->target_text[i], why);
            return -1;
        }
        replay_format_addr((const struct sockaddr *)&ss, label,
                           sizeof(label));
        if (!replay_addr_is_loopback((const struct sockaddr *)&ss)) {
            tm_warn("--to %s (%s) is not a loopback address: mirrored "
                    "production traffic will leave this machine",
                    o->target_text[i], label);
        }
        replay_add_target(r->replay, label, (const struct sockaddr *)&ss,
                          conn);
        tm_verbose("target %s (%s) is reachable", o->target_text[i], label);
    }
    return 0;
}

static void report(struct run *r, uint64_t duration)
{
    struct run_report rep = {
        .source_name = r->o->cmd == CMD_CAPTURE
                           ? r->o->interface
                           : (r->o->cmd == CMD_MIRROR
                                  ? r->o->target
                                  : (strcmp(r->o->input, "-")
                                         ? r->o->input
                                         : "standard input")),
        .link_name = r->in.link_name,
        .packets = r->in.packets,
        .bytes = r->in.bytes,
        .filtered = r->in.filtered,
        .pauses_capped = r->src != NULL ? source_pauses_capped(r->src) : 0,
        .truncated = r->truncated,
        .kernel_drops = r->kernel_drops,
        .modes = r->have_modes ? &r->modes : NULL,
        .output_path = r->o->output == NULL
                           ? NULL
                           : (strcmp(r->o->output, "-") == 0
                                  ? "standard output"
                                  : r->o->output),
        .flows = engine_stats(r->engine),
        .replay = r->replay,
        .tls_connections = r->tls_connections,
        .replay_tls = r->o->replay_tls,
        .duration_ns = duration,
        .exit_code = r->exit_code,
        .compare = r->cmp_json,
    };
    if (r->redact != NULL) {
        rep.redact = true;
        rep.values_redacted = capredact_values(r->redact);
    }
    if (r->out != NULL) {
        rep.out_packets = capwriter_packets(r->out);
        rep.out_bytes = capwriter_bytes(r->out);
        rep.output_untouched = capwriter_untouched(r->out);
    }
    struct mirror_report kube;
    if (r->o->cmd == CMD_MIRROR && r->src != NULL) {
        mirror_get_report(r->src, &kube);
        rep.kube = &kube;
        rep.source_name = r->o->target;
    }
    stats_print(&rep); /* its warnings also under -q */
    if (r->o->cmd == CMD_REPLAY && rep.flows->flows_seen == 0 &&
        rep.flows->other > 0 && !r->failed) {
        /* TCP, but none of it to the service: most often the wrong -p. */
        tm_warn("none of the %llu TCP segments read went to or came from "
                "port %u%s; 'tapmirror summary %s' lists the connections "
                "the input holds",
                (unsigned long long)rep.flows->other, r->o->port,
                r->o->n_service > 0 ? " at the --service-ip addresses" : "",
                strcmp(r->o->input, "-") ? r->o->input : "FILE");
    }
    if (r->o->stats_json != NULL) {
        char err[512];
        if (stats_write_json(r->o->stats_json, r->o->input, r->o->output,
                             &rep, err, sizeof(err)) < 0) {
            tm_error("%s", err);
            if (r->exit_code == 0 || r->exit_code == 3) {
                r->exit_code = 1;
            }
        }
    }
    r->reported = true;
}

/* ---- the steps of a run ---- */

/* Refuses what the options cannot mean, before anything is opened:
 * --stats-json naming a capture (then no stats are written at all), -o
 * naming the input under another name, a --filter that does not compile.
 * Returns 0 or 2, having said why. */
static int check_arguments(struct run *r, char *err, size_t errlen)
{
    const struct tm_options *o = r->o;
    if (r->write_stats && stats_path_refused(o->stats_json, o->input,
                                             o->output, err, errlen)) {
        tm_error("%s", err);
        r->write_stats = false;
        return 2;
    }
    if (o->output != NULL && o->input != NULL && strcmp(o->input, "-") &&
        strcmp(o->output, "-") && fileid_same_file(o->input, o->output)) {
        /* cli.c compares the names; this catches other names for it. */
        snprintf(err, errlen,
                 "-o %s is the input file %s under another name", o->output,
                 o->input);
        tm_error("%s", err);
        return 2;
    }
    if (o->filter != NULL && pktfilter_check(o->filter, err, errlen) < 0) {
        tm_error("%s", err);
        tm_error("try 'tapmirror %s --help'", cli_command_name(o->cmd));
        return 2;
    }
    return 0;
}

/* Opens the source (file, stream, live capture, or mirror's Kubernetes
 * tap) and, where the kernel does not apply it, the --filter. Returns 0,
 * or 1 or 2 (a usage error) having said why. */
static int open_input(struct run *r, char *err, size_t errlen)
{
    const struct tm_options *o = r->o;
    int rc = open_source_for_command(r, err, errlen);
    if (rc < 0) {
        tm_error("%s", err);
        if (rc == SOURCE_BAD_FILTER) {
            tm_error("try 'tapmirror %s --help'", cli_command_name(o->cmd));
            return 2;
        }
        return 1;
    }
    r->lossless = source_lossless(r->src);
    r->in.name = source_name(r->src);
    if (o->filter != NULL && !source_is_live_capture(r->src)) {
        r->in.filter = pktfilter_new(o->filter);
    }
    return 0;
}

/* Creates the engine, configured as summary's is, its events coming
 * back to this run. Cannot fail. */
static void build_engine(struct run *r)
{
    struct engine_config ec = engine_config_from_options(r->o);
    struct engine_events ev = {
        .open = on_flow_open,
        .data = on_flow_data,
        .gap = on_flow_gap,
        .end = on_flow_end,
        .ctx = r,
        .server_data = r->o->compare ? on_server_data : NULL,
        .server_gap = r->o->compare ? on_server_gap : NULL,
        .server_end = r->o->compare ? on_server_end : NULL,
        .server_answer = on_server_answer,
    };
    r->engine = engine_new(&ec, &ev);
    r->in.engine = r->engine;
}

/* Whether client streams go through httpflow: any HTTP option, --sample
 * or --max-rate, or the resync gap policy (the default). */
static bool http_mirroring_wanted(const struct tm_options *o)
{
    struct httpflow_options ho;
    cli_httpflow_options(o, &ho);
    return !o->gap_splice || o->max_rate > 0 || ho.n_match_methods ||
           ho.n_match_paths || ho.n_skip_paths || ho.n_match_headers ||
           ho.safe_methods || ho.sample || ho.n_set_headers ||
           ho.n_drop_headers || ho.host || ho.mark || ho.redact_replay;
}

/* With --to: creates the replay, sharing --max-buffer with the engine,
 * and adds every target, each reached once first. Returns 0, or 1 having
 * said why. `fds` is the descriptor limit. */
static int build_replay(struct run *r, uint64_t fds, char *err,
                        size_t errlen)
{
    const struct tm_options *o = r->o;
    if (o->n_targets == 0) {
        return 0;
    }
    if (http_mirroring_wanted(o)) {
        struct httpflow_options ho;
        char why[256];
        cli_httpflow_options(o, &ho);
        if (httpflow_config_new(&ho, &r->http, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s", why);
            tm_error("%s", err);
            return 2;
        }
    }
    struct replay_config rc_cfg = {
        .retry_window_ns = o->retry_window_ns,
        .connect_timeout_ns = o->connect_timeout_ns,
        .write_timeout_ns = o->write_timeout_ns,
        .linger_ns = o->linger_ns,
        .turns = o->turns,
        .turn_timeout_ns = o->turn_timeout_ns,
        .turn_quiet_ns = o->turn_quiet_ns,
        .ordered = o->pace_ordered,
        .max_buffer = o->max_buffer,
        .flow_buffer = o->flow_buffer,
        .max_connections = o->max_connections
                               ? o->max_connections
                               : (fds > 128 ? fds - 64 : fds / 2),
        .lossless = r->lossless,
        .http = r->http,
        .max_rate = o->max_rate,
    };
    r->replay = replay_new(&r->loop, &rc_cfg);
    replay_set_other_usage(r->replay, engine_queued_counter(r->engine));
    replay_set_low_water(r->replay, FILE_QUEUE_LOW, FILE_DIALS_LOW,
                         on_queue_low, r);
    if (probe_targets(r, err, errlen) < 0) {
        tm_error("%s", err);
        return 1;
    }
    return 0;
}

/* ---- --compare ---- */

/* One finished exchange: counted, and written to --diff-log and kept
 * for --diff-report as they ask. */
static void on_exchange(void *ctx, const struct compare_exchange *ex)
{
    struct run *r = ctx;
    bool redact = !r->o->no_redact;
    r->cmp_counts[ex->outcome]++;
    compare_report_add(r->cmp_report, ex);
    if (r->diff_log != NULL && ex->outcome != COMPARE_SAME &&
        !r->diff_log_failed) {
        char *line = compare_exchange_line(ex, redact, 0);
        if (fputs(line, r->diff_log) == EOF ||
            fputc('\n', r->diff_log) == EOF) {
            r->diff_log_failed = true;
            tm_error("cannot write --diff-log %s: %s", r->o->diff_log,
                     strerror(errno));
        }
        free(line);
    }
    if (r->cmp_page != NULL) {
        diffreport_add_exchange(r->cmp_page, ex, redact);
    }
}

static void on_compare_conn_done(void *ctx, const struct compare_conn *c)
{
    struct run *r = ctx;
    compare_report_add_conn(r->cmp_report, c);
}

/* Opens a file the run writes for the user (--diff-log, --diff-report):
 * mode 0600, created or truncated, never through a symbolic link. */
static int open_private(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                0600);
}

/* With --compare: the comparison's configuration and the run-wide
 * report, noise and outputs, handed to the replay. Returns 0, or 1 or 2
 * (a usage error) having said why. */
static int build_compare(struct run *r, char *err, size_t errlen)
{
    const struct tm_options *o = r->o;
    if (!o->compare || r->replay == NULL) {
        return 0;
    }
    r->cmp_ignore = jsondiff_ignore_new();
    for (size_t i = 0; i < o->n_ignore_json; i++) {
        char why[256];
        if (jsondiff_ignore_add(r->cmp_ignore, o->ignore_json[i], why,
                                sizeof(why)) < 0) {
            snprintf(err, errlen, "invalid --ignore-json '%s': %s",
                     o->ignore_json[i], why);
            tm_error("%s", err);
            return 2;
        }
    }
    r->cmp_cfg = (struct compare_config){
        .body_limit = (size_t)o->compare_body_limit,
        .ignore_headers = o->ignore_headers,
        .n_ignore_headers = o->n_ignore_headers,
        .ignore_json = r->cmp_ignore,
    };
    r->cmp_noise = compare_noise_new(0, 0, intake_hash_seed());
    r->cmp_report = compare_report_new(0);
    if (o->diff_report != NULL) {
        r->cmp_page = diffreport_new(0, 0);
    }
    if (o->diff_log != NULL) {
        int fd = open_private(o->diff_log);
        if (fd < 0 || (r->diff_log = fdopen(fd, "w")) == NULL) {
            snprintf(err, errlen, "cannot open --diff-log %s: %s",
                     o->diff_log, strerror(errno));
            tm_error("%s", err);
            if (fd >= 0) {
                close(fd);
            }
            return 1;
        }
    }
    struct replay_compare rc = {
        .cfg = &r->cmp_cfg,
        .noise = r->cmp_noise,
        .on_exchange = on_exchange,
        .on_conn_done = on_compare_conn_done,
        .ctx = r,
    };
    replay_set_compare(r->replay, &rc);
    replay_set_compare_low_water(r->replay, FILE_COMPARE_LOW);
    if (o->n_targets > 1) {
        tm_info("--compare compares the answers of the first --to target, "
                "%s", o->target_text[0]);
    }
    return 0;
}

/* The `compare` object of the summary and --stats-json: the report and
 * what the run itself counted. */
static void finish_compare(struct run *r)
{
    if (r->cmp_report == NULL) {
        return;
    }
    const struct engine_stats *es = engine_stats(r->engine);
    r->cmp_json = compare_report_json(r->cmp_report, r->cmp_noise);
    cJSON_AddNumberToObject(r->cmp_json, "production_bytes",
                            (double)es->server_payload_bytes);
    cJSON_AddNumberToObject(r->cmp_json, "production_gaps",
                            (double)es->server_gaps);
    cJSON_AddNumberToObject(r->cmp_json, "production_gap_bytes",
                            (double)es->server_gap_bytes);
    cJSON_AddNumberToObject(r->cmp_json, "abandoned_at_max_buffer",
                            (double)replay_compare_abandoned(r->replay));
}

/* Writes --diff-report; closes --diff-log. Returns 0, or -1 having said
 * why. */
static int write_compare_outputs(struct run *r)
{
    int rc = 0;
    if (r->diff_log != NULL) {
        if (fclose(r->diff_log) != 0 && !r->diff_log_failed) {
            tm_error("cannot write --diff-log %s: %s", r->o->diff_log,
                     strerror(errno));
            rc = -1;
        }
        r->diff_log = NULL;
        if (r->diff_log_failed) {
            rc = -1;
        }
    }
    if (r->cmp_page != NULL) {
        char *page = diffreport_render(r->cmp_page, r->cmp_json, NULL);
        size_t len = strlen(page);
        int fd = open_private(r->o->diff_report);
        bool ok = fd >= 0;
        for (size_t done = 0; ok && done < len;) {
            ssize_t n = write(fd, page + done, len - done);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            ok = n > 0;
            done += ok ? (size_t)n : 0;
        }
        if (fd >= 0 && close(fd) != 0) {
            ok = false;
        }
        if (!ok) {
            tm_error("cannot write --diff-report %s: %s", r->o->diff_report,
                     strerror(errno));
            rc = -1;
        } else {
            tm_info("wrote the comparison report to %s", r->o->diff_report);
        }
        free(page);
    }
    return rc;
}

static void free_compare(struct run *r)
{
    if (r->diff_log != NULL) {
        fclose(r->diff_log);
    }
    cJSON_Delete(r->cmp_json);
    diffreport_free(r->cmp_page);
    compare_report_free(r->cmp_report);
    compare_noise_free(r->cmp_noise);
    jsondiff_ignore_free(r->cmp_ignore);
}

/* With -o: opens the output capture. Returns 0, or 1 having said why. */
static int open_output(struct run *r, char *err, size_t errlen)
{
    if (r->o->output == NULL) {
        return 0;
    }
    if (capwriter_open(&r->loop, r->o->output, &r->out, err, errlen) < 0) {
        tm_error("%s", err);
        return 1;
    }
    capwriter_set_notify(r->out, on_writer_change, r);
    if (r->o->redact) {
        r->redact = capredact_new(r->o->redact_headers,
                                  r->o->n_redact_headers, 0);
    }
    return 0;
}

/* Starts the signals, the tick and the source, and runs the loop until
 * the run has stopped and every handle but the signals' is closed (they
 * stay ours, unreferenced, until tear_down). */
static void run_loop(struct run *r)
{
    const struct tm_options *o = r->o;
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    uv_signal_init(&r->loop, &r->sighup);
    r->sigint.data = r->sigterm.data = r->sighup.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    /* A closed terminal or a lost SSH session stops like SIGTERM. */
    uv_signal_start(&r->sighup, on_signal, SIGHUP);
    r->signals_open = true;
    uv_timer_init(&r->loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
    r->status_line = tm_log_level() >= LOG_NORMAL && isatty(STDERR_FILENO);

    if (o->cmd == CMD_CAPTURE) {
        tm_info("capturing TCP port %u on %s%s%s - press Ctrl-C to stop",
                o->port, o->interface, o->output ? ", writing " : "",
                o->output ? (strcmp(o->output, "-") ? o->output
                                                     : "standard output")
                          : "");
    }
    for (size_t i = 0; r->replay && i < replay_target_count(r->replay); i++) {
        if (o->port_name != NULL) {
            tm_info("replaying client connections to port %s to %s",
                    o->port_name, replay_target_label(r->replay, i));
            continue;
        }
        tm_info("replaying client connections to port %u to %s", o->port,
                replay_target_label(r->replay, i));
    }
    r->state = RUN_RUNNING;
    read_wall_clock(r);
    source_start(r->src);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    r->loop_ended = true;
}

/* After the loop: a run no error decided exits 0, or 3 if a target
 * dropped a connection; then the output is closed, and an output that
 * fails to close fails the run (1). */
static void settle_exit_status(struct run *r)
{
    if (!r->failed) {
        r->exit_code = 0;
        if (r->replay != NULL) {
            for (size_t i = 0; i < replay_target_count(r->replay); i++) {
                if (replay_target_stats(r->replay, i)->flows_dropped > 0 ||
                    replay_target_stats(r->replay, i)
                            ->closed_before_finished > 0) {
                    r->exit_code = 3;
                }
            }
        }
        /* The CI gate: a differing answer decides before lost bytes. */
        if (r->o->fail_on_diff && r->cmp_counts[COMPARE_DIFFER] > 0) {
            r->exit_code = 4;
        }
    }
    if (r->out != NULL) {
        int timeout = r->exit_code == 130 ? 1000 : 5000;
        if (capwriter_close(r->out, timeout, r->failed) < 0 &&
            capwriter_state(r->out) == CAPWRITER_FAILED && !r->failed) {
            tm_error("%s", capwriter_error(r->out));
            r->exit_code = 1;
        }
    }
}

/* Frees everything the steps made, whichever step the run reached, and
 * closes the signal handlers. A run that never reported writes its failure to --stats-json: `code`
 * and `err`, the message that ended it. */
static void tear_down(struct run *r, int code, const char *err)
{
    const struct tm_options *o = r->o;
    if (r->out != NULL) {
        r->handles_open++;
        capwriter_free(r->out, on_child_closed, r);
        r->out = NULL;
        uv_run(&r->loop, UV_RUN_DEFAULT);
    }
    if (r->signals_open) {
        /* Only now: until the loop above ended, a signal was ours. */
        uv_close((uv_handle_t *)&r->sigint, NULL);
        uv_close((uv_handle_t *)&r->sigterm, NULL);
        uv_close((uv_handle_t *)&r->sighup, NULL);
    }
    if (!r->reported && r->write_stats) {
        char why[512];
        if (stats_write_failure_json(o->stats_json, o->input, o->output,
                                     code, err, why, sizeof(why)) < 0) {
            tm_error("%s", why);
        }
    }
    if (r->src != NULL) {
        source_close(r->src, NULL, NULL);
    }
    if (r->replay != NULL) {
        replay_free(r->replay);
    }
    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (r->engine != NULL) {
        engine_free(r->engine);
    }
    pktfilter_free(r->in.filter);
    httpflow_config_free(r->http);
    capredact_free(r->redact);
    free(r->redact_buf);
    free_compare(r);
    uv_loop_close(&r->loop);
    free(r);
}

/* A run is these steps; each that fails has said why, and its exit
 * status ends the run (see run.h). */
int run_command(const struct tm_options *o)
{
    struct run *r = tm_xcalloc(1, sizeof(*r));
    char err[1024] = "";
    r->o = o;
    r->kernel_drops = -1;
    r->started = uv_hrtime();
    uv_loop_init(&r->loop);
    uint64_t fds = raise_fd_limit();
    proc_heap_keep_top(); /* maybe_trim_heap() gives it back */
    /* Even a run that fails writes its stats, but never over a capture. */
    r->write_stats = o->stats_json != NULL;

    int code = check_arguments(r, err, sizeof(err));
    if (code == 0) {
        code = open_input(r, err, sizeof(err));
    }
    if (code == 0) {
        build_engine(r);
        code = build_replay(r, fds, err, sizeof(err));
    }
    if (code == 0) {
        code = build_compare(r, err, sizeof(err));
    }
    if (code == 0) {
        code = open_output(r, err, sizeof(err));
    }
    if (code == 0) {
        run_loop(r);
        finish_compare(r);
        if (write_compare_outputs(r) < 0 && !r->failed) {
            r->failed = true;
            r->exit_code = 1;
        }
        settle_exit_status(r);
        report(r, uv_hrtime() - r->started);
        code = r->exit_code;
    }
    tear_down(r, code, err);
    return code;
}
