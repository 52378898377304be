/*
 * What the run commands (replay, capture, mirror) and summary share, so
 * that the two cannot drift apart again: the engine's configuration from
 * the options, and the way one capture record reaches the engine (link
 * type check, --filter, counters). It sits in cmd/ rather than in run.c
 * because summary must not depend on the loop-driven run, and rather than
 * in core/ because it reads the command line's options; it does no I/O.
 */
#ifndef TAPMIRROR_INTAKE_H
#define TAPMIRROR_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "core/capreader.h"
#include "core/engine.h"
#include "core/util.h"
#include "io/pktfilter.h"

/* After the server's FIN, a client that sends nothing more is done. */
#define CLOSING_TIMEOUT_NS (10 * TM_NS_PER_S)
/* How long a finished connection's tuple is remembered, so that its late
 * retransmissions open nothing. */
#define CLOSED_KEEP_NS (5 * TM_NS_PER_S)

/*
 * The engine configuration for o's command. --max-buffer is split the
 * same way for every command: half for the reassembly queues, half for
 * flow state (ENGINE_FLOW_COST per flow, plus a replay session per flow
 * that carries data when there are --to targets). summary keeps the
 * same halves, so it reports the gaps a replay of the capture would skip.
 * The flow table's hash key is fresh (intake_hash_seed).
 */
struct engine_config engine_config_from_options(const struct tm_options *o);

/* A key for the flow table's hash that differs from run to run. */
uint64_t intake_hash_seed(void);

/* One source's records on their way to the engine. Zero it, then set the
 * first four fields; the rest is counted by intake_header/intake_packet. */
struct intake {
    struct engine *engine;
    struct pktfilter *filter; /* NULL: none (or the kernel applies it) */
    const char *name;         /* the source, in messages */
    /* summary: a link type decode cannot read is counted by the engine
     * as not IP; a run refuses it (it could mirror nothing of it). */
    bool any_link;

    const char *link_name; /* the first header's or packet's link type */
    uint64_t packets, bytes; /* packets read, bytes captured */
    uint64_t filtered;       /* packets --filter rejected */
};

/* A file header or interface block. Returns 0, or -1 with `err` set when
 * its link type is one a run cannot decode. */
int intake_header(struct intake *in, const struct cap_item *it, char *err,
                  size_t errlen);

enum intake_verdict {
    INTAKE_PASSED,   /* counted; passed --filter: write it, then
                        intake_to_engine (a live source: its own call) */
    INTAKE_FILTERED, /* counted; --filter rejects it */
    INTAKE_FAILED,   /* `err` says why: a link type a run cannot decode
                        (not counted), or --filter cannot apply */
};

/* One packet record: link check, counters, --filter. */
enum intake_verdict intake_packet(struct intake *in,
                                  const struct cap_item *it, char *err,
                                  size_t errlen);

/* A packet that passed, from a source that can wait (file, stream),
 * into the engine at its capture time. */
void intake_to_engine(struct intake *in, const struct cap_item *it);

#endif
