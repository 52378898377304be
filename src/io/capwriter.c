#include "capwriter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "fileid.h"

/* A regular file is written once this much is buffered (and by the run's
 * 50 ms tick otherwise). */
#define FILE_FLUSH_AT (256u * 1024)
/* A pipe's reader may fall this far behind before the source pauses; it
 * resumes below the low mark. */
#define PIPE_HIGH (16u * 1024 * 1024)
#define PIPE_LOW  (4u * 1024 * 1024)

#define LEN_PACKET 0x80000000u

struct capwriter {
    uv_loop_t *loop;
    int fd;
    bool is_file;   /* a regular file we may cut back on failure */
    /* A regular file is emptied only when its first bytes are written,
     * so that a run that fails before that, on a kubectl error say, leaves
     * an existing capture as it was; one this run created is removed
     * then (if it is still that empty file). */
    bool replace_pending;
    bool created;
    /* make_parents created path[0 .. made_dirs_len) and the directories
     * below it (0: none); removed with the file this run created. */
    size_t made_dirs_len;
    dev_t dev;
    ino_t ino;
    bool is_stdout;
    bool nonblock;  /* a pipe written without blocking */
    int saved_flags;
    char *path;
    enum capwriter_state state;
    char error[320];

    uint8_t *buf; /* unwritten bytes: buf[head .. head+len) */
    size_t head, len, cap;
    size_t partial; /* bytes of the first item already written */

    uint32_t *items; /* ring of item lengths, LEN_PACKET marks packets */
    size_t ihead, ilen, icap;

    uint64_t file_end; /* bytes of whole items in a regular file */
    uint64_t packets, bytes;

    uv_poll_t poll;
    bool polling, poll_init;
    bool congested;
    void (*notify)(void *);
    void *notify_ctx;
    void (*done)(void *);
    void *done_ctx;
};

static void set_failed(struct capwriter *w, int errnum)
{
    if (w->state != CAPWRITER_OK) {
        return;
    }
    if (errnum == EPIPE && !w->is_file) {
        w->state = CAPWRITER_READER_GONE;
        snprintf(w->error, sizeof(w->error),
                 "the reader of %s closed it", w->path);
    } else {
        w->state = CAPWRITER_FAILED;
        snprintf(w->error, sizeof(w->error), "writing %s: %s", w->path,
                 strerror(errnum));
    }
}

/* Creates the missing parent directories of `path`, private to the user:
 * they are about to hold a capture. Sets *made_len to the length of the
 * first directory it created (0: none), for remove_made_parents. */
static int make_parents(const char *path, size_t *made_len, char *err,
                        size_t errlen)
{
    char *dir = tm_xstrdup(path);
    *made_len = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(dir, 0700) == 0) {
            if (*made_len == 0) {
                *made_len = (size_t)(p - dir);
            }
        } else if (errno != EEXIST) {
            snprintf(err, errlen, "cannot create directory %s: %s", dir,
                     strerror(errno));
            free(dir);
            return -1;
        }
        *p = '/';
    }
    free(dir);
    return 0;
}

/* Removes the directories make_parents created for `path`, deepest
 * first, as long as they are empty: a run that leaves no capture leaves
 * no new directories either. */
static void remove_made_parents(const char *path, size_t made_len)
{
    if (made_len == 0) {
        return;
    }
    char *dir = tm_xstrdup(path);
    char *slash;
    while ((slash = strrchr(dir, '/')) != NULL &&
           (size_t)(slash - dir) >= made_len) {
        *slash = '\0';
        if (dir[0] != '\0' && rmdir(dir) < 0 && errno != ENOENT) {
            break; /* not empty: something else is in it now */
        }
    }
    free(dir);
}

/* Whether the output `path` is something the capture is never written
 * to: a FIFO, a socket or a device other than the null device. A
 * directory is left to open(), which names it. */
static bool refuse_kind(const char *path, const struct stat *st, char *err,
                        size_t errlen)
{
    const char *kind = NULL;
    if (S_ISFIFO(st->st_mode)) {
        kind = "it is a FIFO (-o - writes to a pipe)";
    } else if (S_ISSOCK(st->st_mode)) {
        kind = "it is a socket";
    } else if ((S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) &&
               !fileid_null_device(st)) {
        kind = "it is a device (only /dev/null is written to)";
    }
    if (kind != NULL) {
        snprintf(err, errlen, "refusing to write %s: %s", path, kind);
    }
    return kind != NULL;
}

/* Whether fchmod() on the file `st` will be allowed: its owner, or root
 * (CAP_FOWNER). */
static bool may_change_mode(const struct stat *st)
{
    return st->st_uid == geteuid() || geteuid() == 0;
}

int capwriter_open(uv_loop_t *loop, const char *path, struct capwriter **out,
                   char *err, size_t errlen)
{
    struct capwriter *w = tm_xcalloc(1, sizeof(*w));
    struct stat st;
    w->loop = loop;
    w->poll.data = w;
    w->fd = -1;
    if (strcmp(path, "-") == 0) {
        w->path = tm_xstrdup("standard output");
        w->is_stdout = true;
        w->fd = STDOUT_FILENO;
        if (isatty(w->fd)) {
            snprintf(err, errlen,
                     "refusing to write a binary capture to a terminal: "
                     "redirect standard output or use -o FILE");
            goto fail;
        }
        if (fstat(w->fd, &st) < 0) {
            snprintf(err, errlen, "standard output: %s", strerror(errno));
            goto fail;
        }
        w->saved_flags = fcntl(w->fd, F_GETFL);
    } else {
        w->path = tm_xstrdup(path);
        /* Only a regular file or the null device: a FIFO or device
         * planted at the path would hand the capture to whoever reads
         * it (-o - writes to a pipe). Looked at before open(), which can
         * itself act on a device, and again on what was opened. */
        if (lstat(path, &st) == 0 && refuse_kind(path, &st, err, errlen)) {
            goto fail;
        }
        if (make_parents(path, &w->made_dirs_len, err, errlen) < 0) {
            goto fail;
        }
        /* O_NOFOLLOW: a symlink planted at the path must not redirect a
         * capture full of credentials. O_NONBLOCK: a FIFO put there since
         * fails at once instead of hanging. */
        int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
                    O_NOCTTY;
        w->fd = open(path, flags | O_EXCL, 0600);
        if (w->fd >= 0) {
            w->created = true;
        } else if (errno == EEXIST) {
            w->fd = open(path, flags, 0600);
        }
        if (w->fd < 0) {
            if (errno == ELOOP) {
                snprintf(err, errlen,
                         "refusing to write %s: it is a symbolic link", path);
            } else if (errno == ENXIO) {
                snprintf(err, errlen,
                         "refusing to write %s: it is not a regular file",
                         path);
            } else {
                snprintf(err, errlen, "cannot open %s: %s", path,
                         strerror(errno));
            }
            goto fail;
        }
        if (fstat(w->fd, &st) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (refuse_kind(path, &st, err, errlen)) {
            goto fail;
        }
        if (S_ISREG(st.st_mode)) {
            /* A file this run created is private at once (captures hold
             * credentials). An existing one keeps its mode and contents
             * until the first record is written (replace_contents);
             * whether it can be made private then is known now. */
            if (w->created ? fchmod(w->fd, 0600) < 0
                           : !may_change_mode(&st)) {
                snprintf(err, errlen, "cannot prepare %s: %s", path,
                         strerror(w->created ? errno : EPERM));
                goto fail;
            }
            w->replace_pending = true;
            w->dev = st.st_dev;
            w->ino = st.st_ino;
        }
        w->saved_flags = fcntl(w->fd, F_GETFL) & ~O_NONBLOCK;
    }
    w->is_file = S_ISREG(st.st_mode);
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
        w->nonblock = true;
        fcntl(w->fd, F_SETFL, w->saved_flags | O_NONBLOCK);
        if (uv_poll_init(loop, &w->poll, w->fd) == 0) {
            w->poll_init = true;
            w->poll.data = w;
        }
    } else {
        fcntl(w->fd, F_SETFL, w->saved_flags);
    }
    if (w->is_file && !w->is_stdout) {
        w->file_end = 0;
    } else if (w->is_file) {
        off_t pos = lseek(w->fd, 0, SEEK_CUR);
        w->file_end = pos > 0 ? (uint64_t)pos : 0;
    }
    *out = w;
    return 0;
fail:
    if (w->fd >= 0 && !w->is_stdout) {
        close(w->fd);
    }
    if (w->path != NULL && (!w->created || unlink(w->path) == 0)) {
        remove_made_parents(w->path, w->made_dirs_len);
    }
    free(w->path);
    free(w);
    return -1;
}

enum capwriter_state capwriter_state(const struct capwriter *w)
{
    return w->state;
}

const char *capwriter_error(const struct capwriter *w)
{
    return w->error;
}

const char *capwriter_path(const struct capwriter *w)
{
    return w->path;
}

bool capwriter_untouched(const struct capwriter *w)
{
    return w->replace_pending;
}

uint64_t capwriter_packets(const struct capwriter *w)
{
    return w->packets;
}

uint64_t capwriter_bytes(const struct capwriter *w)
{
    return w->bytes;
}

size_t capwriter_buffered(const struct capwriter *w)
{
    return w->len;
}

bool capwriter_congested(const struct capwriter *w)
{
    return w->congested;
}

void capwriter_set_notify(struct capwriter *w, void (*cb)(void *ctx),
                          void *ctx)
{
    w->notify = cb;
    w->notify_ctx = ctx;
}

static void notify(struct capwriter *w)
{
    if (w->notify != NULL) {
        w->notify(w->notify_ctx);
    }
}

static void push_item(struct capwriter *w, uint32_t v)
{
    if (w->ilen == w->icap) {
        size_t ncap = w->icap ? w->icap * 2 : 1024;
        uint32_t *n = tm_xmalloc(ncap * sizeof(*n));
        for (size_t i = 0; i < w->ilen; i++) {
            n[i] = w->items[(w->ihead + i) % w->icap];
        }
        free(w->items);
        w->items = n;
        w->icap = ncap;
        w->ihead = 0;
    }
    w->items[(w->ihead + w->ilen) % w->icap] = v;
    w->ilen++;
}

/* Accounts for `n` bytes the output accepted: whole items are counted,
 * the rest is remembered as a started item. */
static void consumed(struct capwriter *w, size_t n)
{
    w->head += n;
    w->len -= n;
    w->partial += n;
    while (w->ilen > 0) {
        uint32_t v = w->items[w->ihead];
        size_t ilen = v & ~LEN_PACKET;
        if (w->partial < ilen) {
            break;
        }
        w->partial -= ilen;
        w->bytes += ilen;
        w->file_end += ilen;
        if (v & LEN_PACKET) {
            w->packets++;
        }
        w->ihead = (w->ihead + 1) % w->icap;
        w->ilen--;
    }
    if (w->len == 0) {
        w->head = 0;
    }
}

static void on_writable(uv_poll_t *p, int status, int events);

static void set_polling(struct capwriter *w, bool on)
{
    if (!w->poll_init || w->polling == on) {
        return;
    }
    w->polling = on;
    if (on) {
        uv_poll_start(&w->poll, UV_WRITABLE, on_writable);
    } else {
        uv_poll_stop(&w->poll);
    }
}

/* Before the first write to a regular file: make it private and replace
 * its contents as tcpdump -w does. Returns false after a failure
 * (recorded). */
static bool replace_contents(struct capwriter *w)
{
    if (!w->replace_pending) {
        return true;
    }
    w->replace_pending = false;
    if (fchmod(w->fd, 0600) < 0 || ftruncate(w->fd, 0) < 0) {
        int errnum = errno;
        w->state = CAPWRITER_FAILED;
        snprintf(w->error, sizeof(w->error), "cannot prepare %s: %s",
                 w->path, strerror(errnum));
        notify(w);
        return false;
    }
    return true;
}

int capwriter_flush(struct capwriter *w)
{
    if (w->state != CAPWRITER_OK) {
        return -1;
    }
    if (w->len > 0 && !replace_contents(w)) {
        return -1;
    }
    while (w->len > 0) {
        ssize_t n = write(w->fd, w->buf + w->head, w->len);
        if (n > 0) {
            consumed(w, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_polling(w, true);
            break;
        }
        int errnum = n < 0 ? errno : ENOSPC;
        /* Cut a regular file back to its last whole item, so that what
         * was safe stays readable. */
        if (w->is_file && w->partial > 0) {
            if (ftruncate(w->fd, (off_t)w->file_end) == 0) {
                lseek(w->fd, (off_t)w->file_end, SEEK_SET);
            }
            w->partial = 0;
        }
        set_failed(w, errnum);
        set_polling(w, false);
        notify(w);
        return -1;
    }
    if (w->len == 0) {
        set_polling(w, false);
    }
    if (w->congested && w->len < PIPE_LOW) {
        w->congested = false;
        notify(w);
    }
    return 0;
}

static void on_writable(uv_poll_t *p, int status, int events)
{
    struct capwriter *w = p->data;
    (void)events;
    if (status < 0) {
        /* libuv turns POLLERR into UV_EBADF; for a pipe whose reader has
         * gone that is really EPIPE. The write itself says which. */
        set_polling(w, false);
        if (capwriter_flush(w) == 0 && w->len > 0) {
            set_failed(w, -status);
            notify(w);
        }
        return;
    }
    capwriter_flush(w);
}

int capwriter_append(struct capwriter *w, const uint8_t *a, size_t alen,
                     const uint8_t *b, size_t blen, bool packet)
{
    if (w->state != CAPWRITER_OK) {
        return -1;
    }
    size_t n = alen + blen;
    if (w->head > 0 && w->head + w->len + n > w->cap) {
        memmove(w->buf, w->buf + w->head, w->len);
        w->head = 0;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 64 * 1024;
        while (cap < w->len + n) {
            cap *= 2;
        }
        w->buf = tm_xrealloc(w->buf, cap);
        w->cap = cap;
    }
    uint8_t *dst = w->buf + w->head + w->len;
    if (alen > 0) {
        memcpy(dst, a, alen);
    }
    if (blen > 0) {
        memcpy(dst + alen, b, blen);
    }
    w->len += n;
    push_item(w, (uint32_t)n | (packet ? LEN_PACKET : 0));
    if (w->nonblock) {
        if (!w->polling) {
            capwriter_flush(w);
        }
        if (w->len >= PIPE_HIGH) {
            w->congested = true;
        }
    } else if (w->len >= FILE_FLUSH_AT) {
        return capwriter_flush(w);
    }
    return w->state == CAPWRITER_OK ? 0 : -1;
}

/* Blocking write of everything buffered, bounded by a deadline. */
static void write_out(struct capwriter *w, int timeout_ms, bool whole_only)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * TM_NS_PER_MS;
    if (w->len > 0 && w->state == CAPWRITER_OK && !replace_contents(w)) {
        return;
    }
    while (w->len > 0 && w->state == CAPWRITER_OK) {
        if (whole_only && w->partial == 0) {
            break;
        }
        size_t want = w->len;
        if (whole_only && w->ilen > 0) {
            size_t rest = (w->items[w->ihead] & ~LEN_PACKET) - w->partial;
            want = TM_MIN(want, rest);
        }
        ssize_t n = write(w->fd, w->buf + w->head, want);
        if (n > 0) {
            consumed(w, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            uint64_t now = uv_hrtime();
            if (now >= deadline) {
                break;
            }
            struct pollfd pfd = {w->fd, POLLOUT, 0};
            poll(&pfd, 1, (int)((deadline - now) / TM_NS_PER_MS) + 1);
            continue;
        }
        capwriter_flush(w); /* records the failure and cuts the file */
        break;
    }
}

void capwriter_emergency_flush(struct capwriter *w, int timeout_ms)
{
    if (w->is_file || !w->nonblock) {
        write_out(w, timeout_ms, false);
    } else {
        /* A pipe's reader may be stuck: finish only the item it has
         * started, so that it never sees half a record. */
        write_out(w, timeout_ms, true);
    }
}

static void on_poll_closed(uv_handle_t *h)
{
    struct capwriter *w = h->data;
    if (w->done != NULL) {
        w->done(w->done_ctx);
    }
    free(w->buf);
    free(w->items);
    free(w->path);
    free(w);
}

int capwriter_close(struct capwriter *w, int timeout_ms, bool run_failed)
{
    if (!run_failed && w->state == CAPWRITER_OK) {
        /* A run that captured nothing still replaces an earlier
         * capture: the file is then empty. */
        replace_contents(w);
    }
    write_out(w, timeout_ms, false);
    int rc = (w->state == CAPWRITER_OK && w->len == 0) ? 0 : -1;
    if (w->state == CAPWRITER_OK && w->len > 0) {
        snprintf(w->error, sizeof(w->error),
                 "%s did not accept the last %zu bytes in time", w->path,
                 w->len);
        w->state = CAPWRITER_FAILED;
    }
    if (w->nonblock) {
        fcntl(w->fd, F_SETFL, w->saved_flags);
    }
    set_polling(w, false);
    if (!w->is_stdout) {
        close(w->fd);
    }
    w->fd = -1;
    struct stat st;
    if (w->created && w->replace_pending && lstat(w->path, &st) == 0 &&
        st.st_dev == w->dev && st.st_ino == w->ino && st.st_size == 0) {
        /* Nothing was ever written to the file this run created, and it
         * is still that file. */
        if (unlink(w->path) == 0) {
            remove_made_parents(w->path, w->made_dirs_len);
        }
    }
    return rc;
}

void capwriter_free(struct capwriter *w, void (*done)(void *ctx), void *ctx)
{
    w->done = done;
    w->done_ctx = ctx;
    if (w->poll_init) {
        uv_close((uv_handle_t *)&w->poll, on_poll_closed);
    } else {
        on_poll_closed((uv_handle_t *)&w->poll);
    }
}
