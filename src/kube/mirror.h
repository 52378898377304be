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

#include "core/addr.h"
#include "io/source.h"

/* The most pods tapped at once and the most service addresses given:
 * bounds of the address table the engine gets (cli.c's limits are
 * checked against these where the run fills the config). */
#define MIRROR_MAX_PODS          64
#define MIRROR_MAX_SERVICE_ADDRS 16

enum mirror_tap_profile {
    MIRROR_TAP_AUTO = 0, /* NET_RAW, then baseline if Pod Security refuses */
    MIRROR_TAP_NETRAW,
    MIRROR_TAP_BASELINE,
};

/* What a mirror needs from the command line; strings and the address
 * array are borrowed for the source's life. */
struct mirror_config {
    const char *target; /* [KIND/]NAME */
    const char *namespace_; /* NULL: kubectl's current namespace */
    const char *container;  /* NULL: the pod's default */
    const char *context, *kubeconfig, *kubectl;
    const char *tap_image;
    uint64_t tap_timeout_ns;
    bool all_pods;
    uint64_t max_pods; /* at most MIRROR_MAX_PODS */
    enum mirror_tap_profile tap_profile;
    uint16_t port;         /* 0: port_name is resolved per pod */
    const char *port_name; /* -p NAME, or NULL */
    uint64_t warn_silence_ns; /* 0: never warn */
    bool mesh_off; /* --mesh off: ignore a pod's service mesh */
    const struct service_addr *service; /* --service-ip addresses */
    size_t n_service;                   /* at most MIRROR_MAX_SERVICE_ADDRS */
};

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
int mirror_open(uv_loop_t *loop, const struct mirror_config *mc,
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
