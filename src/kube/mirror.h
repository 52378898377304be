/*
 * The Kubernetes tap (the mirror command) as a capture source: resolves a
 * workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, the pods of a
 * Service's selector) or pod through kubectl, injects or reuses the ephemeral
 * container tapmirror-tap (NET_RAW only), streams `tcpdump -w -` over
 * `kubectl exec`, re-attaches when the stream ends, follows the
 * Deployment to a new pod when the tapped one goes away, and with
 * --all-pods merges every pod's stream.
 */
#ifndef TAPMIRROR_MIRROR_H
#define TAPMIRROR_MIRROR_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cmd/cli.h"
#include "io/source.h"

struct mirror_report {
    const char *const *pods; /* every pod whose tap was used */
    size_t n_pods;
    size_t pods_left_untapped; /* the most --max-pods left out at once */
    uint64_t reattaches;
    uint64_t pod_switches;
    const char *removal_hint; /* how to remove the tap, or NULL */
};

/* Checks what can be checked without the cluster (kubectl is there) and
 * returns the source; nothing runs until source_start(). Returns -1 with
 * `err` set. */
int mirror_open(uv_loop_t *loop, const struct tm_options *o,
                const struct source_config *cfg,
                const struct source_events *ev, struct source **out,
                char *err, size_t errlen);

/* Stops the tap at once: every kubectl is killed with SIGKILL (a second
 * Ctrl-C). The source still closes once they have exited. */
void mirror_kill(struct source *src);

/* Called with the engine's count of inbound segments (run's tick): once
 * a tap has streamed for --warn-silence without one, warns once with the
 * likely causes. */
void mirror_check_silence(struct source *src, uint64_t inbound);

/* What the tap did, for the summary (valid until the source is freed). */
void mirror_get_report(const struct source *src, struct mirror_report *rep);

#endif
