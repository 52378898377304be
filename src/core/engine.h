/*
 * The mirroring engine: capture records in, per-connection client byte
 * streams out. Pure: no I/O and no clock; time is the capture's own
 * timestamps and, for a live source, the wall clock the caller reads and
 * passes in (engine_live_packet, engine_live_advance).
 *
 * A segment is inbound when its destination port is the service port
 * (and, if service addresses are given, its destination address is one
 * of them); segments the other way carry the server's acknowledgements
 * and resets. Every connection's inbound bytes go through a struct reasm;
 * the engine reports flows opening, their bytes in order, gaps, and their
 * end through the callbacks in struct engine_events.
 */
#ifndef TAPMIRROR_ENGINE_H
#define TAPMIRROR_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "decode.h"
#include "flowtab.h"
#include "list.h"
#include "reasm.h"

enum flow_state { FLOW_OPEN = 0, FLOW_CLOSED };

#define FLOW_SYN        0x01 /* opened by a SYN: isn is known */
#define FLOW_SERVER_FIN 0x02 /* the server has closed its side */
#define FLOW_DATA       0x04 /* the client has sent a payload byte */
#define FLOW_SRV_BASE   0x08 /* srv_base is known */
#define FLOW_SRV_SEEN   0x10 /* srv_next is known (server data or FIN) */
#define FLOW_SERVER_FIRST 0x20 /* the server sent data before the client
                                  (a greeting) */
#define FLOW_SRV_REASM  0x40 /* srv_rs is started (reasm_server) */
#define FLOW_SRV_ENDED  0x80 /* server_end was reported */

struct flow {
    struct flowtab_entry node; /* key: client -> server */
    struct tm_list link;       /* on the open, closing or closed list */
    uint64_t id;               /* numbered from 1 in order of opening */
    uint64_t first_ns, last_ns;
    uint64_t due_ns;           /* when the first hole is due to be skipped */
    uint32_t heap_idx;         /* in the hole heap, or UINT32_MAX */
    uint32_t isn;
    struct reasm rs;
    uint8_t state;
    uint8_t flags;
    uint32_t gaps;
    uint32_t charge;        /* what the flow costs the memory budget */
    uint64_t payload_bytes; /* client bytes delivered */
    uint64_t gap_bytes;     /* client bytes skipped over */
    uint64_t server_bytes;  /* server payload seen on the wire */
    /* The conversation: how many of the server's payload bytes the client
     * had acknowledged, counted from srv_base (the sequence number of the
     * server's first byte: after the SYN-ACK, or for a connection joined
     * mid-stream the acknowledgement of its first client data, so that
     * its first byte carries 0). Monotonic; never beyond what the server
     * was seen sending (srv_next: the end of its data, or its FIN's
     * sequence), when it was seen. */
    uint64_t server_acked;
    uint32_t srv_base, srv_next;
    /* The server's bytes in order, with engine_config.reasm_server only
     * (shadow compare): the same rules as the client's. */
    struct reasm srv_rs;
    uint64_t srv_payload_bytes, srv_gap_bytes; /* delivered, skipped */
    void *user;             /* belongs to the events' consumer */
};

enum flow_end_reason {
    FLOW_END_FIN,        /* delivery reached the client's FIN */
    FLOW_END_RST,        /* the client reset the connection */
    FLOW_END_SERVER_RST, /* the server reset the connection */
    FLOW_END_IDLE,       /* nothing seen for the idle timeout */
    FLOW_END_EVICTED,    /* the flow table was full */
    FLOW_END_NEW_SYN,    /* a new connection reused the 4-tuple */
    FLOW_END_INPUT,      /* the input ended */
};

const char *flow_end_reason_name(enum flow_end_reason why);

/*
 * What the engine reports. `data` borrows the record or the reassembly
 * queue for the duration of the call; `server_acked` is how many of the
 * server's bytes the client had acknowledged when it sent them (the
 * flow's server_acked then): a client byte sent with a higher value than
 * the one before it was sent after hearing from the server. Bytes
 * delivered from the reassembly queue (behind a hole) carry the value of
 * the segment or moment that released them, never less than their own.
 * `end` is the last call for a flow; the flow object may be freed after
 * it returns.
 */
struct engine_events {
    void (*open)(void *ctx, struct flow *f);
    void (*data)(void *ctx, struct flow *f, const uint8_t *data,
                 uint32_t len, uint64_t server_acked);
    void (*gap)(void *ctx, struct flow *f, uint32_t len);
    void (*end)(void *ctx, struct flow *f, enum flow_end_reason why);
    void *ctx;
    /* With engine_config.reasm_server: the server's bytes in order
     * (borrowed for the call, at engine_now()), bytes the capture missed,
     * and the end of the server's stream (its FIN delivered, a reset, or
     * the flow ending: always before `end`, at most once per flow). A
     * server byte the capture shows only after the flow ended (the
     * client closed first and the server answered later) is not
     * reported. */
    void (*server_data)(void *ctx, struct flow *f, const uint8_t *data,
                        uint32_t len);
    void (*server_gap)(void *ctx, struct flow *f, uint32_t len);
    void (*server_end)(void *ctx, struct flow *f);
    /* Optional: the server sent payload it had not sent before (not a
     * retransmission), in capture order with the client's data: an
     * answer to what the client sent so far (--pace ordered). */
    void (*server_answer)(void *ctx, struct flow *f);
};

struct engine_config {
    uint16_t port; /* service port; 0 guesses each connection's client
                      (the SYN's sender, else the higher port) */
    const struct service_addr *service_addrs; /* none: any address */
    size_t n_service_addrs;
    uint64_t gap_timeout_ns;   /* a hole the capture missed */
    uint64_t rtx_timeout_ns;   /* a hole the server is waiting for too */
    uint64_t idle_timeout_ns;  /* a flow with no segments at all */
    uint64_t closing_timeout_ns; /* after the server's FIN */
    uint64_t closed_keep_ns;   /* a finished flow's tuple is remembered */
    size_t flow_queue_cap;     /* out-of-order bytes held per flow */
    size_t queue_budget;       /* out-of-order bytes held in all */
    size_t max_flows;          /* open and remembered flows */
    size_t flow_state_budget;  /* bytes of flow state (ENGINE_FLOW_COST
                                  each, plus flow_data_cost once a flow
                                  carries data); 0: unlimited */
    size_t flow_data_cost;     /* what the consumer keeps for a flow that
                                  carries data (a replay session) */
    bool skip_loopback_clients; /* a client on 127/8 or ::1 is a proxy
                                   hop inside the host, not a client */
    bool reasm_server; /* reassemble the server's direction too (shadow
                          compare); its queue shares flow_queue_cap (per
                          direction) and queue_budget */
    uint64_t hash_seed;
};

/* What the engine charges the memory budget for one flow: the flow, its
 * share of the table's buckets (at most two pointers) and the
 * allocator's header. A bare SYN costs this and nothing else. */
#define ENGINE_FLOW_COST (sizeof(struct flow) + 2 * sizeof(void *) + 16)

struct engine_stats {
    uint64_t packets;
    uint64_t decode[DECODE_VERDICT_COUNT];
    uint64_t inbound, outbound, other; /* TCP segments by direction */
    uint64_t stray;      /* segments of unknown flows that open nothing */
    uint64_t late;       /* segments of finished flows */
    uint64_t flows_seen, flows_completed, flows_reset, flows_expired;
    uint64_t flows_evicted, flows_unfinished, flows_replaced;
    uint64_t flows_open, flows_open_peak;
    uint64_t payload_bytes, gaps, gap_bytes, discarded_bytes;
    /* reasm_server: the server's bytes delivered and skipped */
    uint64_t server_payload_bytes, server_gaps, server_gap_bytes;
    uint64_t timestamps_clamped; /* live packets stamped in the future */
};

struct engine;

/* Returns owned; free with engine_free(). Copies the configuration. */
struct engine *engine_new(const struct engine_config *cfg,
                          const struct engine_events *ev);
/* Frees every flow without reporting anything. */
void engine_free(struct engine *e);

/* Replaces the service addresses (copied); none: any address. */
void engine_set_service_addrs(struct engine *e,
                              const struct service_addr *addrs, size_t n);

/* Sets the service port once a source has resolved it (a named port in
 * a Kubernetes pod); before the first packet, or it changes nothing
 * already tracked. */
void engine_set_port(struct engine *e, uint16_t port);

/* Feeds one captured packet. Returns how it decoded. */
enum decode_verdict engine_packet(struct engine *e, int linktype,
                                  uint64_t ts_ns, const uint8_t *pkt,
                                  uint32_t caplen, uint32_t wirelen);

/*
 * Live sources (an interface, a stream from a running tcpdump): capture
 * time may not run ahead of the wall clock, and timeouts follow the wall
 * clock between packets. `wall_ns` is this machine's clock (ns since the
 * epoch) and `mono_ns` a monotonic clock (never 0), both read by the
 * caller. A packet stamped more than ENGINE_LIVE_AHEAD_NS after `wall_ns`
 * (a forged record, a clock that will be stepped back) counts as stamped
 * `wall_ns` and is counted in stats.timestamps_clamped; one such packet
 * would otherwise expire every flow and skip every hole at once.
 */
#define ENGINE_LIVE_AHEAD_NS (2ull * 1000 * 1000 * 1000)
enum decode_verdict engine_live_packet(struct engine *e, int linktype,
                                       uint64_t ts_ns, uint64_t wall_ns,
                                       uint64_t mono_ns, const uint8_t *pkt,
                                       uint32_t caplen, uint32_t wirelen);

/* Live sources: moves the clock by the monotonic time since a packet
 * last moved it forward (see engine_live_packet), so that holes, idle
 * flows and remembered tuples fall due when packets stop and while they
 * are stamped in the past (a clock stepped back). */
void engine_live_advance(struct engine *e, uint64_t mono_ns);

/* Moves the engine's clock to `now_ns` (if later) and applies every
 * timeout that is due: hole skips, idle flows, remembered tuples. */
void engine_advance(struct engine *e, uint64_t now_ns);

/* The input has ended: every open flow's holes are skipped, its queue is
 * delivered and it ends with FLOW_END_INPUT. */
void engine_finish(struct engine *e);

uint64_t engine_now(const struct engine *e);
/* How many payload bytes the flow's server sent, as far as the capture
 * shows: the highest sequence seen, or what the client acknowledged if
 * that is more (the server's segments were not captured). */
uint64_t engine_flow_server_sent(const struct flow *f);
/* Out-of-order bytes queued (nodes and buffers). */
size_t engine_queued_bytes(const struct engine *e);
/* Bytes charged for flows: ENGINE_FLOW_COST each, plus flow_data_cost
 * for each that carried data. */
size_t engine_flow_state_bytes(const struct engine *e);
/* Where the engine keeps the sum of the two, for the budget it shares
 * with the replay. */
const size_t *engine_queued_counter(const struct engine *e);
const struct engine_stats *engine_stats(const struct engine *e);

#endif
