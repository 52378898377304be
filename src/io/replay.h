/*
 * Live replay: one local TCP connection per mirrored connection per
 * target. Bytes are copied once, into the connection's queue, and written
 * without blocking; what the target sends back is read and discarded.
 *
 * Every queue is capped: a connection that exceeds --flow-buffer, or the
 * largest ones when all together exceed --max-buffer, is dropped and
 * counted. A lossless source (a file) is paused instead, by the run,
 * when a connection passes --flow-buffer or the total grows; its hard
 * cap per connection is --flow-buffer plus the 8 MiB a paused file may
 * still release. A live source is never paused. A target that stops accepting bytes
 * for --write-timeout is dropped too. A target that refuses a connection
 * is redialled with backoff for --retry-window while the bytes wait.
 */
#ifndef TAPMIRROR_REPLAY_H
#define TAPMIRROR_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proto/httpflow.h"
#include "proto/compare.h"

struct replay_config {
    uint64_t retry_window_ns, connect_timeout_ns, write_timeout_ns;
    uint64_t linger_ns;
    /* Turns: a client byte that production's client sent after hearing
     * more of the server goes out only after the target answered as much
     * (or fell quiet for turn_quiet after its first byte, or turn_timeout
     * passed). Off: every byte goes out as soon as it is queued. */
    bool turns;
    uint64_t turn_timeout_ns, turn_quiet_ns;
    /* --pace ordered: a client chunk goes out only once the target has
     * answered every chunk (on any connection) that production's server
     * had answered when it was captured (or --turn-timeout passed). */
    bool ordered;
    uint64_t max_buffer, flow_buffer;
    uint64_t max_connections;
    bool lossless; /* a file: over --flow-buffer, pause rather than drop */
    /* HTTP-aware mirroring: each connection's client bytes go through an
     * httpflow per target before they are queued (filters, rewrites,
     * resynchronisation after capture gaps). NULL: bytes as they came.
     * `max_rate` (> 0) is the --max-rate bucket of each target. */
    const struct httpflow_config *http;
    uint64_t max_rate;
};

struct replay_target_stats {
    uint64_t flows;           /* mirrored connections assigned */
    uint64_t connections;     /* local connections established */
    uint64_t bytes_delivered; /* accepted by the target's socket */
    uint64_t bytes_received;  /* answered by the target, discarded */
    uint64_t dial_failures;   /* connection attempts that failed */
    uint64_t write_failures;  /* writes that failed or timed out */
    uint64_t flows_dropped;   /* connections given up with bytes lost */
    uint64_t bytes_dropped;   /* client bytes never delivered */
    uint64_t completed;       /* connections closed after every byte */
    uint64_t reset_after_end; /* of flows_dropped: reset by the target
                                 after their last byte was accepted */
    uint64_t turns;           /* client turns held for the target's answer */
    uint64_t turns_quiet;     /* ... released by a quiet target */
    uint64_t turns_timed_out; /* ... released by --turn-timeout */
    uint64_t turns_http_end;  /* ... released at the end of the target's
                                 HTTP/1 response */
    uint64_t closed_before_finished; /* closed (by --linger or the
                                        drain) while the target had not
                                        answered the last turn */
    /* HTTP-aware mirroring (replay_config.http). */
    uint64_t requests_forwarded;    /* HTTP/1 requests sent on */
    uint64_t requests_rewritten;    /* ... whose head was changed */
    uint64_t requests_filtered;     /* dropped by the --match/--skip rules */
    uint64_t requests_sampled_out;  /* dropped by --sample */
    uint64_t requests_rate_limited; /* dropped by --max-rate */
    uint64_t requests_lost_to_gaps; /* abandoned: a capture gap inside */
    uint64_t gap_reconnects; /* local connections closed for a damaged
                                request, the rest sent on a new one */
    uint64_t connections_passed_through; /* not HTTP/1: bytes as they came */
    uint64_t connections_sampled_out;  /* not HTTP/1, dropped by --sample */
    uint64_t connections_rate_limited; /* not HTTP/1, by --max-rate */
    uint64_t order_waits;     /* --pace ordered: chunks held for other
                                 connections' answers */
    uint64_t order_timed_out; /* ... released by --turn-timeout */
    uint64_t order_stalls;    /* ... released because the whole replay
                                 stood still (a fifth of --turn-quiet) */
};

struct replay;

struct replay *replay_new(uv_loop_t *loop, const struct replay_config *cfg);

/* Adds a target; `label` is how messages and statistics name it.
 * `parked`, if not NULL, is an open connection to it (from
 * replay_probe) that the first mirrored connection takes over; the
 * replay owns it. */
void replay_add_target(struct replay *r, const char *label,
                       const struct sockaddr *addr, uv_tcp_t *parked);

size_t replay_target_count(const struct replay *r);
const char *replay_target_label(const struct replay *r, size_t i);
const struct replay_target_stats *replay_target_stats(const struct replay *r,
                                                      size_t i);

/* The flow events, for mirrored connection `flow_id`. A session handle
 * is returned by replay_open and passed back to the others; after
 * replay_end it belongs to the replay. */
struct replay_session;
/* What one session holds in memory with `n_targets` targets (its
 * connections' libuv handles included), for the memory budget. */
size_t replay_session_size(size_t n_targets);
struct replay_session *replay_open(struct replay *r, uint64_t flow_id);
/* The key --sample hashes: the same for the same connection on every run
 * of a capture (its 4-tuple and first timestamp). Before any data;
 * without it the key is the flow id. */
void replay_set_flow_key(struct replay_session *s, uint64_t key);
/* `server_acked`: how much of the server's data production's client had
 * heard when it sent these bytes (monotonic per session). */
void replay_data(struct replay *r, struct replay_session *s,
                 const uint8_t *data, uint32_t len, uint64_t server_acked);
/* `len` client bytes were lost to the capture (a hole skipped). */
void replay_gap(struct replay *r, struct replay_session *s, uint64_t len);
/* Production's server sent new bytes on this connection: an answer to
 * every client byte given so far (--pace ordered counts these). */
void replay_answer(struct replay *r, struct replay_session *s);
/* `end_acked`: what the client had heard when it closed; `server_sent`:
 * all production's server sent, so what the target should answer after
 * the last turn. */
void replay_end(struct replay *r, struct replay_session *s,
                uint64_t end_acked, uint64_t server_sent);

/* Starts writes for every connection that received bytes since the last
 * call: small segments queued meanwhile go out as one write. */
void replay_flush(struct replay *r);

/* A counter that moves whenever a write completes or a connection
 * closes: if it stands still, waiting longer frees nothing. */
uint64_t replay_progress(const struct replay *r);

/* Connections holding more than --flow-buffer: a lossless source waits
 * until there are none (replay_queued() below the low mark). */
size_t replay_conns_over_cap(const struct replay *r);

/* Bytes queued for all targets and connections. */
size_t replay_queued(const struct replay *r);
/* Local connections open, waiting for a descriptor, and in all. */
size_t replay_open_connections(const struct replay *r);
size_t replay_waiting_connections(const struct replay *r);

/* Bytes held elsewhere (reassembly) that count against --max-buffer. */
void replay_set_other_usage(struct replay *r, const size_t *used);

/* Called after writes complete while replay_queued() is below `low`, and
 * after dials start while no more than `low_dials` wait for one. */
void replay_set_low_water(struct replay *r, size_t low, size_t low_dials,
                          void (*cb)(void *), void *ctx);

/* More than `limit` connections wait to be dialled while descriptors are
 * free: they wait for dials in progress, which end in microseconds on
 * loopback, so a file source should wait too rather than read ahead and
 * hold a session and a queue for every connection. (Connections that
 * wait for a descriptor may wait for the file's FINs: not counted.) */
bool replay_dial_backlog(const struct replay *r, size_t limit);

/*
 * Delivers what is queued, for at most `timeout_ns`: connections that
 * still hold bytes then are dropped (counted); `done` runs once every
 * connection is closed.
 */
void replay_drain(struct replay *r, uint64_t timeout_ns,
                  void (*done)(void *ctx), void *ctx);

/* At the end of a file the replay is paced by the targets' answers, and
 * may rightly take longer than `timeout_ns`: the drain then ends only once
 * nothing moved (no write, close or byte from a target) for that long. */
void replay_drain_while_moving(struct replay *r);

/* Drops every connection at once (a second interrupt). */
void replay_abort(struct replay *r);

/* Frees the replay once its timer closes (run the loop); every
 * connection must be closed (after drain). */
void replay_free(struct replay *r);

/*
 * Resolves `host` and tries to connect to each address in turn, running
 * `loop` until one accepts or all fail within `timeout_ns` each. The
 * working address goes to `out` and its open connection to `conn` (an
 * owned handle for replay_add_target). Returns 0, or -1 with `err` set.
 */
int replay_probe(uv_loop_t *loop, const char *host, uint16_t port,
                 uint64_t timeout_ns, struct sockaddr_storage *out,
                 uv_tcp_t **conn, char *err, size_t errlen);

/*
 * Shadow compare (--compare): what the first target answers on each
 * replayed connection is kept (bounded) and fed, with the replay's clock,
 * to that connection's compare_conn, together with the client's and
 * production's streams the caller hands over below. Exchanges are
 * reported through `on_exchange`; `on_conn_done` sees each connection
 * once finished, just before it is freed. The connection is compared
 * once both the mirrored flow ended (replay_end) and the local
 * connection closed.
 *
 * Not comparable, with a reason: the local connection dropped, reset or
 * closed before answering (local_closed); a request the target took
 * that got no answer byte for --write-timeout (timeout); the bytes
 * compare holds pushing the run over --max-buffer (limit: that
 * connection's compare is abandoned and what it held freed).
 */
struct replay_compare {
    const struct compare_config *cfg; /* borrowed for the replay's life */
    struct compare_noise *noise;      /* borrowed; may be NULL */
    compare_exchange_fn *on_exchange;
    void (*on_conn_done)(void *ctx, const struct compare_conn *c);
    void *ctx;
};

/* Before the first replay_open. */
void replay_set_compare(struct replay *r, const struct replay_compare *rc);

/*
 * The client bytes compare pairs the local answers with: what was sent
 * to the first target, in order (`ts_ns`: capture time). The caller
 * passes what it gave replay_data, or, if it changed the requests on the
 * way (dropped or rewrote them), what was actually sent.
 */
void replay_compare_client(struct replay *r, struct replay_session *s,
                           const uint8_t *data, size_t len, int64_t ts_ns);
void replay_compare_client_gap(struct replay *r, struct replay_session *s,
                               uint64_t len);
/* Production's answers, from the capture (capture time). */
void replay_compare_prod(struct replay *r, struct replay_session *s,
                         const uint8_t *data, size_t len, int64_t ts_ns);
void replay_compare_prod_gap(struct replay *r, struct replay_session *s,
                             uint64_t len);
void replay_compare_prod_end(struct replay *r, struct replay_session *s);

/* Bytes compare holds in all (counted against --max-buffer), and how
 * many connections' compares were abandoned at it. */
size_t replay_compare_held(const struct replay *r);
/* Of those, the bytes beyond each connection's own state (its framers):
 * answers and bodies waiting for the other side, which the local answers
 * release. What a file waits for; the low-water callback
 * (replay_set_low_water) also runs when it falls to `low` or below. */
size_t replay_compare_backlog(const struct replay *r);
void replay_set_compare_low_water(struct replay *r, size_t low);
uint64_t replay_compare_abandoned(const struct replay *r);

/* Formats an address as 127.0.0.1:9000 or [::1]:9000. */
const char *replay_format_addr(const struct sockaddr *sa, char *buf,
                               size_t len);

/* Whether an address is a loopback address. */
bool replay_addr_is_loopback(const struct sockaddr *sa);

#endif
