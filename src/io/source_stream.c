/*
 * A capture byte stream read on the loop: a pipe, a FIFO, standard input
 * or a kubectl's output. Live: waiting loses data upstream, so the run
 * never pauses it for the replay side.
 */
#include "source_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"

#define STREAM_CHUNK (128u * 1024)

struct stream_source {
    struct source_feed feed;
    struct source *src;
    uv_pipe_t *pipe;
    bool reading;
};

static void stream_quiet(void *impl)
{
    struct stream_source *st = impl;
    if (st->reading) {
        uv_read_stop((uv_stream_t *)st->pipe);
        st->reading = false;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct stream_source *st = h->data;
    (void)suggested;
    buf->base = (char *)st->feed.buf;
    buf->len = st->feed.bufcap;
}

static void on_read(uv_stream_t *pipe, ssize_t nread, const uv_buf_t *buf)
{
    struct stream_source *st = pipe->data;
    struct source *s = st->src;
    (void)buf;
    if (nread == UV_EOF) {
        source_feed_finish(&st->feed, 0, NULL);
        return;
    }
    if (nread < 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "reading %s: %s", s->name,
                 uv_strerror((int)nread));
        source_feed_finish(&st->feed, -1, msg);
        return;
    }
    if (nread == 0) {
        return;
    }
    source_feed_push(&st->feed, (size_t)nread);
    bool used_up = source_feed_pump(&st->feed);
    if (!source_over(s)) {
        s->ev.batch(s->ev.ctx);
    }
    if (!used_up && st->reading) {
        /* The chunk is still being handed out: no new read may reuse the
         * buffer until it is. */
        uv_read_stop(pipe);
        st->reading = false;
    }
}

/* Start, resume, and a held item's time come: hand out the rest of the
 * chunk, then read the next one. */
static void stream_schedule(void *impl)
{
    struct stream_source *st = impl;
    struct source *s = st->src;
    if (!s->started || s->paused || source_over(s)) {
        return;
    }
    if (!st->feed.need_data) {
        bool used_up = source_feed_pump(&st->feed);
        if (!source_over(s)) {
            s->ev.batch(s->ev.ctx);
        }
        if (!used_up) {
            return;
        }
    }
    if (!st->reading && !source_over(s) && !s->paused) {
        uv_read_start((uv_stream_t *)st->pipe, on_alloc, on_read);
        st->reading = true;
    }
}

static void stream_pause(void *impl)
{
    (void)impl; /* reading stops once the chunk is handed out (on_read) */
}

static void stream_stop(void *impl)
{
    struct stream_source *st = impl;
    stream_quiet(st);
    source_feed_stop(&st->feed);
}

static void stream_release(void *impl)
{
    struct stream_source *st = impl;
    free(st->pipe);
    free(st);
}

static void stream_close(void *impl, void (*closed)(void *), void *ctx)
{
    struct stream_source *st = impl;
    source_feed_close(&st->feed, (uv_handle_t *)st->pipe, stream_release,
                      closed, ctx);
}

static const struct source_ops stream_ops = {
    .start = stream_schedule,
    .pause = stream_pause,
    .resume = stream_schedule,
    .stop = stream_stop,
    .close = stream_close,
};

int source_open_pipe(uv_loop_t *loop, uv_pipe_t *pipe, const char *name,
                     const struct source_config *cfg,
                     const struct source_events *ev, struct source **out)
{
    struct stream_source *st = tm_xcalloc(1, sizeof(*st));
    st->src = source_new(name, &stream_ops, st, ev);
    st->pipe = pipe;
    st->pipe->data = st;
    source_feed_init(&st->feed, loop, st->src, cfg, STREAM_CHUNK,
                     stream_schedule, stream_quiet, st);
    *out = st->src;
    return 0;
}
