/*
 * Capture sources on the event loop: a capture file, a byte stream
 * (standard input, a kubectl pipe) or a live interface through libpcap.
 * Each hands capture items to the run one at a time.
 *
 * A file is "lossless": it may pause while targets catch up, and nothing
 * is lost by waiting. Streams and interfaces are live: waiting would lose
 * packets upstream, so the run never pauses them for the replay side.
 */
#ifndef TAPMIRROR_SOURCE_H
#define TAPMIRROR_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/addr.h"
#include "core/capreader.h"

struct source;

struct source_events {
    /* One item; borrowed for the call. May call source_pause(). */
    void (*item)(void *ctx, const struct cap_item *it);
    /* A batch of items was handed over: a good moment to flush. */
    void (*batch)(void *ctx);
    /* The source ended: status 0 at the end of input, -1 on an error
     * (msg says what). `truncated` is set when the input ended inside a
     * record. No callback follows. */
    void (*end)(void *ctx, int status, const char *msg, bool truncated);
    /* Optional: the source learned the service's own addresses (a
     * tapped pod's IPs); inbound traffic must be sent to one of them. */
    void (*addresses)(void *ctx, const struct service_addr *addrs,
                      size_t n);
    void *ctx;
    /* Optional: the source resolved the service port (mirror -p NAME, or
     * a Service port mapped to its targetPort), before any packet. */
    void (*port)(void *ctx, uint16_t port);
};

/* How a live capture delivered packets (see --batch-above). */
struct source_capture_modes {
    bool switching;              /* it may switch between two rings */
    bool blocks;                 /* delivering in blocks now */
    uint64_t switches;           /* hand-overs between the rings */
    uint64_t duplicates_skipped; /* copies both rings had */
    uint64_t unrecorded;         /* packets not fingerprinted (table full) */
    uint64_t handover_lost;      /* left in a ring and in no other */
    int64_t packet_ring_drops;   /* kernel drops per ring; -1: no such ring */
    int64_t block_ring_drops;
};

/* What one kind of source does. Every call on a source dispatches
 * through its table, as libpcap's calls do through a pcap_t's methods:
 * a capture file (source_file.c), a byte stream (source_stream.c), a live
 * capture (live.c), or a provider that opens streams of its own (the
 * Kubernetes tap). `impl` is the kind's own object.
 *
 * The source keeps the started, paused and stopped state: start runs
 * once, pause and resume only when the state changes, stop once, and
 * close once, after stop. close must call done(ctx) once every handle of
 * `impl` is closed; the source is freed after it. The entries marked
 * optional may be NULL. */
struct source_ops {
    bool lossless;     /* waiting costs nothing (a regular file) */
    bool live_capture; /* libpcap filters in the kernel */
    void (*start)(void *impl);
    void (*pause)(void *impl);
    void (*resume)(void *impl);
    void (*stop)(void *impl);
    /* Optional: see source_stop_then(); called only on a started source
     * that is neither paused, stopped nor ended. NULL: stops at once. */
    void (*stop_then)(void *impl, void (*stopped)(void *ctx), void *ctx);
    /* Optional: see source_kernel_drops(); NULL: -1. */
    int64_t (*kernel_drops)(void *impl);
    /* Optional: see source_capture_modes(); NULL: false. */
    bool (*capture_modes)(void *impl, struct source_capture_modes *out);
    void (*close)(void *impl, void (*done)(void *ctx), void *ctx);
};

struct source_config {
    double pace;        /* 0: as fast as possible; else the speed factor */
    uint64_t max_pause_ns; /* with pace: the longest wait between packets */
    const char *filter; /* live only: extra BPF, ANDed with the port */
    uint16_t port;      /* live only */
    uint32_t snaplen;   /* live only */
    uint64_t kernel_buffer;
    uint64_t batch_above; /* live only: see --batch-above; UINT64_MAX: never */
    bool promisc;
};

/* Opens a capture file, or "-" for standard input (a regular file there
 * is read like any file; a pipe is a live stream). */
int source_open_input(uv_loop_t *loop, const char *path,
                      const struct source_config *cfg,
                      const struct source_events *ev, struct source **out,
                      char *err, size_t errlen);

/* Reads a capture stream from an open pipe; takes ownership of it. */
int source_open_pipe(uv_loop_t *loop, uv_pipe_t *pipe, const char *name,
                     const struct source_config *cfg,
                     const struct source_events *ev, struct source **out);

/* source_open_live(): the --filter expression does not compile (a usage
 * error, unlike every other failure to open). */
#define SOURCE_BAD_FILTER (-2)

/* Captures live on `iface` (tcp port PORT, plus the filter). Returns 0,
 * -1 or SOURCE_BAD_FILTER; err says why. */
int source_open_live(uv_loop_t *loop, const char *iface,
                     const struct source_config *cfg,
                     const struct source_events *ev, struct source **out,
                     char *err, size_t errlen);

/* A source of the kind `ops` (borrowed) backed by `impl`. `ev` may be
 * NULL for a provider that reports to the run's events itself. */
struct source *source_new(const char *name, const struct source_ops *ops,
                          void *impl, const struct source_events *ev);

/* The object behind `s` when it is of the kind `ops`, else NULL. */
void *source_impl(const struct source *s, const struct source_ops *ops);

/* Starts delivering items. */
void source_start(struct source *s);
void source_pause(struct source *s);
void source_resume(struct source *s);
bool source_paused(const struct source *s);

/* Stops for good: no more callbacks. */
void source_stop(struct source *s);

/* Stops like source_stop(), but a live capture first delivers what the
 * kernel captured before this call, from the loop and for at most
 * SOURCE_FINAL_READ_MS: a ring that packs packets into blocks hands over
 * its last block only when the block's timer retires it, which can take
 * tens of milliseconds. Packets captured after this call are not
 * delivered. `stopped(ctx)` runs once the source has stopped: at once
 * for every other source, and not at all if source_stop() or
 * source_close() comes first. */
#define SOURCE_FINAL_READ_MS 100
void source_stop_then(struct source *s, void (*stopped)(void *ctx),
                      void *ctx);

/* Whether waiting costs nothing (a regular file). */
bool source_lossless(const struct source *s);
bool source_is_live_capture(const struct source *s);
const char *source_name(const struct source *s);
uint64_t source_bytes_read(const struct source *s);

/* Under --pace: waits cut to --max-pause (a jump in the capture's
 * clock). */
uint64_t source_pauses_capped(const struct source *s);

/* Live capture: packets the kernel or interface dropped (-1: unknown). */
int64_t source_kernel_drops(struct source *s);

/* False when `s` is not a live capture. */
bool source_capture_modes(const struct source *s,
                          struct source_capture_modes *out);

/* Closes the handles; `done` runs once they are closed and the source is
 * freed. */
void source_close(struct source *s, void (*done)(void *ctx), void *ctx);

#endif
