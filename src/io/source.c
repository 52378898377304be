/*
 * The common source object: its name, its events and its started,
 * paused and stopped state, with every call dispatched through the
 * kind's source_ops; and the capture reader with --pace that a file and
 * a byte stream share.
 */
#include "source_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "core/util.h"

struct source *source_new(const char *name, const struct source_ops *ops,
                          void *impl, const struct source_events *ev)
{
    struct source *s = tm_xcalloc(1, sizeof(*s));
    s->ops = ops;
    s->impl = impl;
    s->name = tm_xstrdup(name);
    if (ev != NULL) {
        s->ev = *ev;
    }
    return s;
}

void *source_impl(const struct source *s, const struct source_ops *ops)
{
    return s->ops == ops ? s->impl : NULL;
}

const char *source_name(const struct source *s)
{
    return s->name;
}

bool source_lossless(const struct source *s)
{
    return s->ops->lossless;
}

bool source_is_live_capture(const struct source *s)
{
    return s->ops->live_capture;
}

uint64_t source_bytes_read(const struct source *s)
{
    return s->bytes_read;
}

uint64_t source_pauses_capped(const struct source *s)
{
    return s->pauses_capped;
}

bool source_paused(const struct source *s)
{
    return s->paused;
}

void source_report_end(struct source *s, int status, const char *msg,
                       bool truncated)
{
    s->ended = true;
    s->ev.end(s->ev.ctx, status, msg, truncated);
}

void source_start(struct source *s)
{
    if (s->started) {
        return;
    }
    s->started = true;
    s->ops->start(s->impl);
}

void source_pause(struct source *s)
{
    if (s->paused) {
        return;
    }
    s->paused = true;
    s->ops->pause(s->impl);
}

void source_resume(struct source *s)
{
    if (!s->paused) {
        return;
    }
    s->paused = false;
    s->ops->resume(s->impl);
}

void source_stop(struct source *s)
{
    if (s->stopped) {
        return;
    }
    s->stopped = true;
    s->ops->stop(s->impl);
}

void source_stop_then(struct source *s, void (*stopped)(void *ctx),
                      void *ctx)
{
    if (s->ops->stop_then == NULL || !s->started || s->paused ||
        source_over(s)) {
        source_stop(s);
        stopped(ctx);
        return;
    }
    s->ops->stop_then(s->impl, stopped, ctx);
}

int64_t source_kernel_drops(struct source *s)
{
    return s->ops->kernel_drops != NULL ? s->ops->kernel_drops(s->impl) : -1;
}

bool source_capture_modes(const struct source *s,
                          struct source_capture_modes *out)
{
    memset(out, 0, sizeof(*out));
    return s->ops->capture_modes != NULL &&
           s->ops->capture_modes(s->impl, out);
}

static void on_impl_closed(void *ctx)
{
    struct source *s = ctx;
    void (*done)(void *) = s->done;
    void *done_ctx = s->done_ctx;
    free(s->name);
    free(s);
    if (done != NULL) {
        done(done_ctx);
    }
}

void source_close(struct source *s, void (*done)(void *ctx), void *ctx)
{
    source_stop(s);
    s->done = done;
    s->done_ctx = ctx;
    s->ops->close(s->impl, on_impl_closed, s);
}

/* ---- a capture read from bytes: file and stream ---- */

/* The kernel copies file pages into a page-aligned buffer about three
 * times faster than into one at a 16-byte offset (measured: 22 against
 * 79 us per 128 KiB read; the whole of W1 in bench/ went from 0.47 to
 * 0.31 s). malloc() gives page alignment only while it serves 128 KiB
 * from mmap, which depends on what was freed before. */
static uint8_t *page_aligned_buffer(size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, size) != 0) {
        return tm_xmalloc(size);
    }
    return p;
}

static void on_pace_timer(uv_timer_t *t)
{
    struct source_feed *f = t->data;
    f->wake(f->owner);
}

void source_feed_init(struct source_feed *f, uv_loop_t *loop,
                      struct source *src, const struct source_config *cfg,
                      size_t bufcap, void (*wake)(void *owner),
                      void (*quiet)(void *owner), void *owner)
{
    memset(f, 0, sizeof(*f));
    f->src = src;
    f->reader = capreader_new();
    f->bufcap = bufcap;
    f->buf = page_aligned_buffer(bufcap);
    f->need_data = true;
    f->pace = cfg->pace;
    f->max_pause_ns = cfg->max_pause_ns;
    uv_timer_init(loop, &f->pace_timer);
    f->pace_timer.data = f;
    f->wake = wake;
    f->quiet = quiet;
    f->owner = owner;
}

void source_feed_push(struct source_feed *f, size_t n)
{
    f->src->bytes_read += (uint64_t)n;
    capreader_push(f->reader, f->buf, n);
    f->need_data = false;
}

void source_feed_finish(struct source_feed *f, int status, const char *msg)
{
    struct source *s = f->src;
    char why[400];
    if (source_over(s)) {
        return;
    }
    if (status == 0 && capreader_end(f->reader) == CAPREADER_ERROR) {
        snprintf(why, sizeof(why), "%s: %s", s->name,
                 capreader_error(f->reader));
        status = -1;
        msg = why;
    }
    bool truncated = status == 0 && capreader_pending(f->reader) > 0;
    f->quiet(f->owner);
    source_report_end(s, status, msg, truncated);
}

/*
 * When a packet read now is due under --pace (uv_hrtime()): the previous
 * packet's due time plus the capture's spacing divided by the factor,
 * but never more than --max-pause later. A packet stamped before the
 * previous one (the capture's clock stepped back) is due with it, and the
 * spacing resumes from its stamp; one with no time (0) is due at once.
 * The wait is computed in double and compared with the cap before it is
 * converted, so that no stamp, however far off, converts out of range.
 */
static uint64_t pace_schedule(struct source_feed *f, uint64_t ts)
{
    uint64_t now = uv_hrtime();
    if (!f->pace_started || ts == 0) {
        if (ts != 0) {
            f->pace_started = true;
            f->pace_last_ts = ts;
            f->pace_last_due = now;
        }
        return f->pace_started ? f->pace_last_due : now;
    }
    uint64_t cap = TM_MIN(f->max_pause_ns, 1ull << 62);
    uint64_t wait = 0;
    if (ts > f->pace_last_ts) {
        double w = (double)(ts - f->pace_last_ts) / f->pace;
        if (w > (double)cap) {
            if (f->src->pauses_capped++ == 0) {
                tm_warn("%s: the capture's clock jumps %.0f s between two "
                        "packets; --pace waits at most %.3g s (--max-pause), "
                        "and counts every wait it cuts short "
                        "(source.pauses_capped)",
                        f->src->name,
                        (double)(ts - f->pace_last_ts) / (double)TM_NS_PER_S,
                        (double)cap / (double)TM_NS_PER_S);
            }
            wait = cap;
        } else {
            wait = (uint64_t)w;
        }
    }
    f->pace_last_ts = ts;
    f->pace_last_due = wait > UINT64_MAX - f->pace_last_due
                           ? UINT64_MAX
                           : f->pace_last_due + wait;
    return f->pace_last_due;
}

/* Whether `due` (uv_hrtime()) has come; arms the pace timer if not. */
static bool pace_reached(struct source_feed *f, uint64_t due)
{
    uint64_t now = uv_hrtime();
    if (now >= due) {
        return true;
    }
    uint64_t ms = (due - now + TM_NS_PER_MS - 1) / TM_NS_PER_MS;
    uv_timer_start(&f->pace_timer, on_pace_timer, ms, 0);
    return false;
}

bool source_feed_pump(struct source_feed *f)
{
    struct source *s = f->src;
    struct cap_item it;
    for (;;) {
        if (s->paused || source_over(s)) {
            return false;
        }
        if (f->holding) {
            if (!pace_reached(f, f->held_due)) {
                return false;
            }
            f->holding = false;
            s->ev.item(s->ev.ctx, &f->held);
            continue;
        }
        int rc = capreader_next(f->reader, &it);
        if (rc == CAPREADER_NEED_MORE) {
            f->need_data = true;
            return true;
        }
        if (rc == CAPREADER_ERROR) {
            char msg[400];
            snprintf(msg, sizeof(msg), "%s: %s", s->name,
                     capreader_error(f->reader));
            source_feed_finish(f, -1, msg);
            return false;
        }
        if (f->pace > 0 && it.kind == CAP_ITEM_PACKET) {
            uint64_t due = pace_schedule(f, it.ts_ns);
            if (!pace_reached(f, due)) {
                f->held = it;
                f->held_due = due;
                f->holding = true;
                return false;
            }
        }
        s->ev.item(s->ev.ctx, &it);
    }
}

void source_feed_stop(struct source_feed *f)
{
    uv_timer_stop(&f->pace_timer);
}

static void on_feed_handle_closed(uv_handle_t *h)
{
    struct source_feed *f = h->data;
    if (--f->open_handles > 0) {
        return;
    }
    capreader_free(f->reader);
    free(f->buf);
    void (*closed)(void *) = f->closed;
    void *ctx = f->closed_ctx;
    f->release(f->owner);
    closed(ctx);
}

void source_feed_close(struct source_feed *f, uv_handle_t *watcher,
                       void (*release)(void *owner),
                       void (*closed)(void *ctx), void *ctx)
{
    f->release = release;
    f->closed = closed;
    f->closed_ctx = ctx;
    f->open_handles = 2;
    watcher->data = f;
    uv_close((uv_handle_t *)&f->pace_timer, on_feed_handle_closed);
    uv_close(watcher, on_feed_handle_closed);
}
