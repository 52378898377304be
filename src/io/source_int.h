/*
 * Inside the sources (source.c and the kinds behind it: source_file.c,
 * source_stream.c, live.c); nothing outside src/io/ includes this. Like
 * libpcap's pcap-int.h: the common object's layout, which the kinds read
 * and update, and the capture reader with --pace that a file and a
 * stream share.
 */
#ifndef TAPMIRROR_SOURCE_INT_H
#define TAPMIRROR_SOURCE_INT_H

#include "source.h"

/* The common object; source.c owns it. */
struct source {
    const struct source_ops *ops;
    void *impl;
    char *name;
    struct source_events ev;
    bool started, paused, stopped, ended;
    uint64_t bytes_read;
    uint64_t pauses_capped; /* --pace waits cut to --max-pause */
    void (*done)(void *);   /* source_close() */
    void *done_ctx;
};

/* Whether the source delivers nothing more (stopped or ended). */
static inline bool source_over(const struct source *s)
{
    return s->stopped || s->ended;
}

/* Reports the end to the run; the kind has stopped watching its input
 * first. Only while !source_over(s); nothing is delivered after it. */
void source_report_end(struct source *s, int status, const char *msg,
                       bool truncated);

/*
 * A capture read from bytes (a file or a byte stream): the reader, the
 * buffer the bytes are read into, and the pacing of --pace. The owner
 * reads into `buf`, calls source_feed_push() and then source_feed_pump().
 */
struct source_feed {
    struct source *src;
    struct capreader *reader;
    uint8_t *buf; /* page-aligned, bufcap bytes */
    size_t bufcap;
    bool need_data; /* the reader has used up its chunk */
    bool holding;   /* `held` waits for its time (pacing) */
    struct cap_item held;
    uint64_t held_due; /* uv_hrtime() when `held` is due */
    double pace;
    uint64_t max_pause_ns;
    bool pace_started;
    uint64_t pace_last_ts, pace_last_due; /* the previous timed packet */
    uv_timer_t pace_timer;
    /* The owner's: deliver again (a held item is due), and stop
     * watching the input (the feed ends the source). */
    void (*wake)(void *owner);
    void (*quiet)(void *owner);
    void *owner;
    int open_handles; /* while closing */
    void (*release)(void *owner);
    void (*closed)(void *ctx);
    void *closed_ctx;
};

void source_feed_init(struct source_feed *f, uv_loop_t *loop,
                      struct source *src, const struct source_config *cfg,
                      size_t bufcap, void (*wake)(void *owner),
                      void (*quiet)(void *owner), void *owner);

/* Hands `n` bytes read into the buffer to the reader. */
void source_feed_push(struct source_feed *f, size_t n);

/* Hands items to the run until the reader's chunk is used up (returns
 * true), or the source pauses, stops, ends or holds an item for its time
 * (returns false). */
bool source_feed_pump(struct source_feed *f);

/* Ends the source (see source_report_end): at the end of input
 * (status 0) input that was not a whole capture is an error. */
void source_feed_finish(struct source_feed *f, int status, const char *msg);

/* source_stop(): no held item is delivered any more. */
void source_feed_stop(struct source_feed *f);

/* Closes the pace timer and the owner's `watcher` (its idle handle or
 * pipe); once both are closed frees the feed, then release(owner) frees
 * the owner, then closed(ctx) runs. */
void source_feed_close(struct source_feed *f, uv_handle_t *watcher,
                       void (*release)(void *owner),
                       void (*closed)(void *ctx), void *ctx);

#endif
