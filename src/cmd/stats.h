/*
 * The end-of-run report: a summary on standard error and the
 * --stats-json document.
 */
#ifndef TAPMIRROR_STATS_H
#define TAPMIRROR_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/engine.h"
#include "kube/mirror.h"
#include "io/replay.h"
#include "io/source.h"

struct run_report {
    const char *source_name;
    const char *link_name;
    uint64_t packets, bytes; /* records read and their captured bytes */
    uint64_t filtered;       /* records rejected by --filter */
    uint64_t pauses_capped;  /* --pace waits cut to --max-pause */
    bool truncated;
    int64_t kernel_drops; /* -1: not a live capture */
    const struct source_capture_modes *modes; /* NULL: not a live capture */
    const char *output_path; /* NULL: no output */
    bool output_untouched;   /* a file nothing was written to */
    uint64_t out_packets, out_bytes;
    bool redact;              /* --redact */
    uint64_t values_redacted; /* credentials overwritten in the output */
    const struct engine_stats *flows; /* NULL: no engine */
    const struct replay *replay;      /* NULL: no targets */
    uint64_t tls_connections; /* flows that opened with a TLS handshake */
    bool replay_tls;          /* and they were replayed (--replay-tls) */
    const struct mirror_report *kube; /* NULL unless mirroring */
    /* --compare: the --stats-json `compare` object (compare_report_json()
     * plus the run's own counts); NULL without --compare. */
    const struct cJSON *compare;
    uint64_t duration_ns;
    int exit_code;
};

/* Prints the summary lines (not under -q) and any warnings. */
void stats_print(const struct run_report *rep);

/* Writes the JSON document. Returns 0, or -1 with `err` set. `input`
 * and `output` are the run's (NULL: none): a path stats_path_refused()
 * refuses is not written. A regular file is replaced through a private
 * temporary file in its directory and rename(), so it ends up mode 0600
 * and a hard link to the old file keeps the old contents; the null
 * device is written as it is. */
int stats_write_json(const char *path, const char *input,
                     const char *output, const struct run_report *rep,
                     char *err, size_t errlen);

/* For a run that failed before it started (a bad filter, interface or
 * target): only its exit status and why, so that a file left by an
 * earlier run is not mistaken for this one's. Written as above. */
int stats_write_failure_json(const char *path, const char *input,
                             const char *output, int exit_code,
                             const char *error, char *err, size_t errlen);

/* Whether the --stats-json `path` must not be written: a symbolic link
 * (dangling or not), something other than a regular file or the null
 * device, or the capture this run reads or writes under any name (the
 * same canonical name, which the output may not have yet, or the same
 * file through a hard link or a symbolic link; "-" is standard input or
 * output). The caller refuses the run, which writes nothing; `err` says
 * why. `input` and `output` may be NULL. */
bool stats_path_refused(const char *path, const char *input,
                        const char *output, char *err, size_t errlen);

#endif
