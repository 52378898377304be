/*
 * The output capture. Items (file header, records, pcapng blocks) are
 * appended whole and written in order; a regular file only ever holds
 * whole items, because a failed write is cut back to the last one. A file
 * is created mode 0600 and never opened through a symbolic link. A pipe
 * is written without blocking the event loop: when its reader falls
 * behind the writer reports congestion so the source can pause.
 */
#ifndef TAPMIRROR_CAPWRITER_H
#define TAPMIRROR_CAPWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum capwriter_state {
    CAPWRITER_OK = 0,
    CAPWRITER_FAILED,        /* a write failed; capwriter_error() says why */
    CAPWRITER_READER_GONE,   /* the pipe's reader closed it */
};

struct capwriter;

/* Opens `path` ("-": standard output). Returns 0, or -1 with `err` set to
 * a message naming the path. */
int capwriter_open(uv_loop_t *loop, const char *path, struct capwriter **out,
                   char *err, size_t errlen);

/*
 * Appends one whole item made of `a` followed by `b` (either may be
 * empty). The bytes are copied. Returns 0, or -1 once the writer is no
 * longer CAPWRITER_OK (the item is then discarded).
 */
int capwriter_append(struct capwriter *w, const uint8_t *a, size_t alen,
                     const uint8_t *b, size_t blen, bool packet);

/* Writes what is buffered, as far as the output accepts without
 * blocking. Returns 0, or -1 once the writer has failed. */
int capwriter_flush(struct capwriter *w);

/* More is buffered than a reader should fall behind by. */
bool capwriter_congested(const struct capwriter *w);

/* Called when congestion clears or the state changes. */
void capwriter_set_notify(struct capwriter *w, void (*cb)(void *ctx),
                          void *ctx);

enum capwriter_state capwriter_state(const struct capwriter *w);
const char *capwriter_error(const struct capwriter *w);
const char *capwriter_path(const struct capwriter *w);

/* Items and bytes written out completely. */
uint64_t capwriter_packets(const struct capwriter *w);
uint64_t capwriter_bytes(const struct capwriter *w);
size_t capwriter_buffered(const struct capwriter *w);

/*
 * Writes everything buffered, waiting up to `timeout_ms` for a slow pipe,
 * and closes the output. The counters stay readable. Returns 0, or -1 if
 * data could not be written (the state says why). A regular file nothing
 * was written to is emptied all the same, unless `run_failed`: then an
 * existing file is left as it was and one this run created is removed.
 */
int capwriter_close(struct capwriter *w, int timeout_ms, bool run_failed);

/* Whether nothing was ever written to the regular file (it was left as
 * it was, or removed; see capwriter_close). */
bool capwriter_untouched(const struct capwriter *w);

/* Frees a closed writer once its loop handle is closed; `done` runs then
 * (possibly before this returns). */
void capwriter_free(struct capwriter *w, void (*done)(void *ctx), void *ctx);

/* Writes whole buffered items immediately, without the event loop, for a
 * second interrupt: a pipe gets at most the rest of a started item. */
void capwriter_emergency_flush(struct capwriter *w, int timeout_ms);

#endif
