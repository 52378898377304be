/*
 * A capture file (or a character device such as /dev/null) read on the
 * loop: an idle handle reads a batch of chunks per loop iteration, so
 * the rest of the loop (the replay's sockets) runs in between. Lossless:
 * the run may pause it while the targets catch up.
 */
#include "source_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

/* A file is read in chunks this large: copying from the page cache into
 * a buffer that stays in the CPU cache is several times faster than into
 * one that does not (measured: 128 KiB reads 4-5x faster than 1 MiB ones).
 * Up to FILE_BATCH bytes are handed over per loop iteration (fewer when
 * the replay pauses the file). The replay's writes start between
 * batches, so a larger batch means larger writes and fewer wakeups of the
 * target: replaying 2,000 interleaved connections (W3 of bench/) took
 * 0.57 s with 2 MiB batches, 0.35 s with 16 MiB. Few large connections
 * (W1) do not gain: their queued bytes leave the CPU cache before they
 * are written (user time 0.10 -> 0.13 s) but need fewer writes (system
 * time 0.28 -> 0.23 s), and the wall time stays the same. */
#define FILE_CHUNK (128u * 1024)
#define FILE_BATCH (16u * 1024 * 1024)

struct file_source {
    struct source_feed feed;
    struct source *src;
    int fd;
    uv_idle_t idle;
    bool idle_active;
};

static void file_quiet(void *impl)
{
    struct file_source *f = impl;
    if (f->idle_active) {
        uv_idle_stop(&f->idle);
        f->idle_active = false;
    }
}

/* Reads one chunk and hands its items over; returns false when it
 * cannot go on (paused, pacing, ended). */
static bool file_chunk(struct file_source *f)
{
    struct source *s = f->src;
    if (f->feed.need_data) {
        ssize_t n;
        do {
            n = read(f->fd, f->feed.buf, f->feed.bufcap);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            char msg[400];
            snprintf(msg, sizeof(msg), "reading %s: %s", s->name,
                     strerror(errno));
            source_feed_finish(&f->feed, -1, msg);
            return false;
        }
        if (n == 0) {
            s->ev.batch(s->ev.ctx);
            source_feed_finish(&f->feed, 0, NULL);
            return false;
        }
        source_feed_push(&f->feed, (size_t)n);
    }
    return source_feed_pump(&f->feed);
}

static void file_step(struct file_source *f)
{
    for (size_t done = 0; done < FILE_BATCH; done += FILE_CHUNK) {
        if (!file_chunk(f)) {
            break;
        }
    }
    if (!source_over(f->src)) {
        f->src->ev.batch(f->src->ev.ctx);
    }
}

static void on_idle(uv_idle_t *h)
{
    struct file_source *f = h->data;
    file_step(f);
    if (f->src->paused || f->feed.holding || source_over(f->src)) {
        file_quiet(f);
    }
}

/* Start, resume, and a held item's time come: step from the loop. */
static void file_schedule(void *impl)
{
    struct file_source *f = impl;
    struct source *s = f->src;
    if (!s->started || s->paused || source_over(s)) {
        return;
    }
    if (!f->idle_active) {
        uv_idle_start(&f->idle, on_idle);
        f->idle_active = true;
    }
}

static void file_pause(void *impl)
{
    (void)impl; /* on_idle stops stepping */
}

static void file_stop(void *impl)
{
    struct file_source *f = impl;
    file_quiet(f);
    source_feed_stop(&f->feed);
}

static void file_release(void *impl)
{
    struct file_source *f = impl;
    close(f->fd);
    free(f);
}

static void file_close(void *impl, void (*closed)(void *), void *ctx)
{
    struct file_source *f = impl;
    source_feed_close(&f->feed, (uv_handle_t *)&f->idle, file_release,
                      closed, ctx);
}

static const struct source_ops file_ops = {
    .lossless = true,
    .start = file_schedule,
    .pause = file_pause,
    .resume = file_schedule,
    .stop = file_stop,
    .close = file_close,
};

static int open_file_fd(uv_loop_t *loop, int fd, const char *name,
                        const struct source_config *cfg,
                        const struct source_events *ev, struct source **out)
{
    struct file_source *f = tm_xcalloc(1, sizeof(*f));
    f->src = source_new(name, &file_ops, f, ev);
    f->fd = fd;
    source_feed_init(&f->feed, loop, f->src, cfg, FILE_CHUNK, file_schedule,
                     file_quiet, f);
    uv_idle_init(loop, &f->idle);
    f->idle.data = f;
    *out = f->src;
    return 0;
}

/* A FIFO, a socket or a pipe on standard input is a live byte stream. */
static int open_stream_fd(uv_loop_t *loop, int fd, const char *name,
                          const struct source_config *cfg,
                          const struct source_events *ev,
                          struct source **out, char *err, size_t errlen)
{
    uv_pipe_t *pipe = tm_xmalloc(sizeof(*pipe));
    int rc = uv_pipe_init(loop, pipe, 0);
    if (rc == 0) {
        rc = uv_pipe_open(pipe, fd);
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", name, uv_strerror(rc));
        free(pipe);
        return -1;
    }
    return source_open_pipe(loop, pipe, name, cfg, ev, out);
}

int source_open_input(uv_loop_t *loop, const char *path,
                      const struct source_config *cfg,
                      const struct source_events *ev, struct source **out,
                      char *err, size_t errlen)
{
    struct stat st;
    if (strcmp(path, "-") == 0) {
        if (isatty(STDIN_FILENO)) {
            snprintf(err, errlen,
                     "standard input is a terminal: pipe a capture into "
                     "it (tcpdump -U -w - ... | tapmirror replay - ...)");
            return -1;
        }
        if (fstat(STDIN_FILENO, &st) == 0 &&
            (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
            /* A character device (/dev/null, say) cannot be watched by
             * epoll: it is read like a file. */
            return open_file_fd(loop, STDIN_FILENO, "standard input", cfg,
                                ev, out);
        }
        return open_stream_fd(loop, STDIN_FILENO, "standard input", cfg, ev,
                              out, err, errlen);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "cannot read %s: is a directory", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
        /* A FIFO or socket: a live stream. A character device cannot be
         * watched by epoll, so it is read like a file. */
        int rc = open_stream_fd(loop, fd, path, cfg, ev, out, err, errlen);
        if (rc < 0) {
            close(fd);
        }
        return rc;
    }
    return open_file_fd(loop, fd, path, cfg, ev, out);
}
