#include "mirror.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubectl.h"
#include "kubejson.h"
#include "io/log.h"
#include "core/parse.h"
#include "core/util.h"

#define CALL_TIMEOUT_MS   60000
#define WAIT_POLL_MS      500
#define LIVENESS_MS       10000
#define BACKOFF_FIRST_MS  500
#define BACKOFF_MAX_MS    10000
#define MAX_FAST_FAILURES 6   /* attaches in a row that carried nothing */
#define MAX_CONFLICTS     5
#define SWITCH_POLL_MS    1000
#define MAX_PORT_REFUSED  64
/* kubectl's standard output for one object: etcd stores objects of at
 * most 1.5 MiB by default, and kubectl's indented JSON of one stays well
 * within this. */
#define OBJECT_OUTPUT_CAP (8u << 20)
/* For a pod list: KUBE_MAX_POD_LIST pods of 32 KiB each, where a
 * typical pod prints as 5 to 15 KiB. */
#define POD_LIST_OUTPUT_CAP (32u << 20)

enum tap_state {
    T_INJECTING,
    T_WAITING,   /* for the tap container to run */
    T_STREAMING, /* kubectl exec is running */
    T_CHECKING,  /* the stream ended: is the pod still there? */
    T_BACKOFF,   /* re-attaching after a pause */
    T_GONE,      /* finished with this pod */
};

struct mirror;

/* One tapped pod. */
struct tap {
    struct mirror *m;
    struct tap *next;
    char pod[KUBE_NAME_LEN];
    char uid[64];
    char container[64];
    char ns[64];
    char node[KUBE_NAME_LEN]; /* spec.nodeName, "" before scheduling */
    struct service_addr addrs[KUBE_MAX_IPS];
    size_t n_addrs;
    enum tap_state state;
    uv_timer_t timer;
    uint64_t deadline; /* waiting for the tap to run, in loop ms */
    struct kubectl_exec *exec;
    struct source *stream;
    bool stream_ended, exec_exited, listening, announced;
    int exit_code, term_signal;
    uint64_t packets;
    unsigned fast_failures;
    uint64_t backoff_ms;
    int conflicts;
    int calls; /* kubectl calls in flight for this tap */
    bool timer_closed;
    bool refused; /* its existing tap has more privilege than tapmirror's */
    enum kube_mesh mesh; /* KUBE_MESH_NONE under --mesh off */
    char mesh_sign[96];
    enum kube_tap_profile profile; /* the tap injected or found */
    char image[256]; /* the tap's image, for the --immediate-mode probe */
    struct kube_port ports[KUBE_MAX_PORTS]; /* what the pod declares */
    size_t n_ports;
};

/* Whether a tap image's tcpdump takes --immediate-mode, asked once. */
#define MAX_PROBED_IMAGES 8
struct image_probe {
    char image[256];
    bool done, immediate;
};

enum mirror_state { M_IDLE, M_STARTING, M_RUNNING, M_STOPPING };

struct mirror {
    uv_loop_t *loop;
    struct mirror_config cfg; /* copied; its strings are borrowed */
    struct source_events ev;
    struct source *self;
    struct kubectl *kc;
    char kubectl_path[4096];
    char portstr[8];
    int minor;
    bool deployment;
    char target[KUBE_NAME_LEN];
    char nsdesc[96]; /* "namespace shop" or "the current namespace" */
    struct kube_deployment dep;
    const char *kind; /* "deployment", "service", "pod", ... */
    char what[300];   /* "service web", for messages */
    bool service;
    struct kube_service svc;
    uint16_t port; /* the pods' port number, once resolved */
    /* Pods (by uid) refused for having the port as another number: said
     * once, not offered again at each refresh of the --all-pods set. */
    char port_refused[MAX_PORT_REFUSED][64];
    size_t n_port_refused;
    uint64_t streaming_since; /* loop ms the first stream listened; 0 */
    bool silence_warned;
    struct image_probe probes[MAX_PROBED_IMAGES];
    size_t n_probes;
    struct tap *taps;
    enum mirror_state state;
    bool paused, failed, ended, any_streaming;
    uint8_t header[24];
    bool have_header;
    uv_timer_t poll;
    bool poll_busy;
    uint64_t switch_deadline;
    char old_pod[KUBE_NAME_LEN];
    uint64_t reattaches, pod_switches;
    char **seen; /* every pod whose tap was used */
    size_t n_seen, seen_cap;
    size_t untapped, most_untapped; /* running pods --max-pods left out */
    char hint[512];
    int calls; /* mirror-level kubectl calls in flight */
    void (*close_done)(void *);
    void *close_ctx;
    bool closing;
};

static void tap_attach(struct tap *t);
static void tap_begin(struct mirror *m, const struct kube_pod *pod);
static void maybe_closed(struct mirror *m);
static void list_pods(struct mirror *m, int purpose);

enum { LIST_INITIAL, LIST_SWITCH, LIST_REFRESH };

/* ---- small helpers ---- */

static uint64_t now_ms(struct mirror *m)
{
    return uv_now(m->loop);
}

static bool stopping(const struct mirror *m)
{
    return m->state == M_STOPPING;
}

/* A fatal error: reported once, then everything stops. */
static void fail(struct mirror *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void end_source(struct mirror *m, int status, const char *msg)
{
    if (m->ended) {
        return;
    }
    m->ended = true;
    m->ev.end(m->ev.ctx, status, msg, false);
}

static void fail(struct mirror *m, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m->failed || stopping(m)) {
        return;
    }
    m->failed = true;
    end_source(m, -1, msg);
}

static void remember_pod(struct mirror *m, const char *pod)
{
    for (size_t i = 0; i < m->n_seen; i++) {
        if (strcmp(m->seen[i], pod) == 0) {
            return;
        }
    }
    if (m->n_seen == m->seen_cap) {
        m->seen_cap = m->seen_cap ? m->seen_cap * 2 : 8;
        m->seen = tm_xrealloc(m->seen, m->seen_cap * sizeof(*m->seen));
    }
    m->seen[m->n_seen++] = tm_xstrdup(pod);
}

/* Tells the run the union of every tapped pod's addresses, plus the
 * user's --service-ip: only traffic sent to them is inbound. */
static void publish_addresses(struct mirror *m)
{
    struct service_addr all[MIRROR_MAX_SERVICE_ADDRS +
                            MIRROR_MAX_PODS * KUBE_MAX_IPS];
    size_t n = 0;
    for (size_t i = 0; i < m->cfg.n_service; i++) {
        all[n++] = m->cfg.service[i];
    }
    for (struct tap *t = m->taps; t != NULL; t = t->next) {
        if (t->state == T_GONE) {
            continue;
        }
        for (size_t i = 0; i < t->n_addrs && n < TM_ARRAY_LEN(all); i++) {
            all[n++] = t->addrs[i];
        }
    }
    if (m->ev.addresses != NULL) {
        m->ev.addresses(m->ev.ctx, all, n);
    }
}

static size_t live_taps(const struct mirror *m)
{
    size_t n = 0;
    for (const struct tap *t = m->taps; t != NULL; t = t->next) {
        if (t->state != T_GONE) {
            n++;
        }
    }
    return n;
}

static struct tap *find_tap(struct mirror *m, const char *pod)
{
    for (struct tap *t = m->taps; t != NULL; t = t->next) {
        if (t->state != T_GONE && strcmp(t->pod, pod) == 0) {
            return t;
        }
    }
    return NULL;
}

/* ---- kubectl calls with a context ---- */

struct call_ctx {
    struct mirror *m;
    struct tap *t; /* NULL for mirror-level calls */
    int purpose;
    void (*done)(struct call_ctx *c, const struct kubectl_result *res);
    size_t out_cap;
    char what[300]; /* what it prints, for a message */
};

static void on_pod_list(struct call_ctx *c, const struct kubectl_result *res);
static void on_injected(struct call_ctx *c, const struct kubectl_result *res);

static void call_done(void *ctx, const struct kubectl_result *res)
{
    struct call_ctx *c = ctx;
    if (c->t != NULL) {
        c->t->calls--;
    } else {
        c->m->calls--;
    }
    if (!stopping(c->m) && res->out_truncated && res->exit_code == 0 &&
        c->done != on_injected) {
        /* Cut JSON would only say "no valid JSON": say why instead. (A
         * patch that printed too much has still been applied.) */
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "kubectl printed more than %zu MiB for %s, which is more "
                 "than tapmirror reads",
                 c->out_cap >> 20, c->what);
        struct kubectl_result cut = *res;
        cut.exit_code = 1;
        cut.out = "";
        cut.out_len = 0;
        cut.err = msg;
        cut.err_len = strlen(msg);
        c->done(c, &cut);
    } else if (!stopping(c->m)) {
        c->done(c, res);
    }
    struct mirror *m = c->m;
    free(c);
    maybe_closed(m);
}

static void call(struct mirror *m, struct tap *t, int purpose,
                 const char *const *args, const char *input,
                 void (*done)(struct call_ctx *, const struct kubectl_result *))
{
    struct call_ctx *c = tm_xcalloc(1, sizeof(*c));
    c->m = m;
    c->t = t;
    c->purpose = purpose;
    c->done = done;
    c->out_cap = done == on_pod_list ? POD_LIST_OUTPUT_CAP : OBJECT_OUTPUT_CAP;
    if (done == on_pod_list) {
        snprintf(c->what, sizeof(c->what), "the pod list");
    } else if (strcmp(args[0], "get") == 0 && args[1] && args[2]) {
        snprintf(c->what, sizeof(c->what), "%s %s", args[1], args[2]);
    } else {
        snprintf(c->what, sizeof(c->what), "kubectl %s", args[0]);
    }
    if (t != NULL) {
        t->calls++;
    } else {
        m->calls++;
    }
    kubectl_call(m->kc, args, input, CALL_TIMEOUT_MS, c->out_cap, call_done,
                 c);
}

/* The namespace as kube_classify() names it: NULL for kubectl's current
 * one, which tapmirror does not know. */
static const char *classify_ns(const struct mirror *m)
{
    return m->cfg.namespace_ ? m->nsdesc : NULL;
}

/* Explains a failed call as one line. */
static void explain(struct mirror *m, const struct kubectl_result *res,
                    const char *what, char *msg, size_t len)
{
    if (res->spawn_failed) {
        snprintf(msg, len, "%s", res->err);
        return;
    }
    if (res->exit_code < 0) {
        snprintf(msg, len, "kubectl did not answer within %d s while "
                           "getting %s",
                 CALL_TIMEOUT_MS / 1000, what);
        return;
    }
    kube_classify(res->err, what, m->cfg.namespace_ ? m->nsdesc : NULL, msg,
                  len);
}

/* ---- resolving ---- */

static bool contains(const char names[][64], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static void list_names(const char names[][64], size_t n, char *out,
                       size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", i ? ", " : "", names[i]);
    }
}

/* The container the tap targets: -c, else the only one, else the
 * default-container annotation, else an error that lists them. */
static bool choose_container(struct mirror *m, const struct kube_pod *pod,
                             char *out, size_t len)
{
    char names[1024];
    list_names(pod->containers, pod->n_containers, names,
               sizeof(names));
    if (m->cfg.container != NULL) {
        if (!contains(pod->containers, pod->n_containers,
                      m->cfg.container)) {
            fail(m, "container %s not found in pod %s (it has: %s)",
                 m->cfg.container, pod->name, names);
            return false;
        }
        snprintf(out, len, "%s", m->cfg.container);
        return true;
    }
    if (pod->n_containers == 1) {
        snprintf(out, len, "%s", pod->containers[0]);
        return true;
    }
    const char *def = pod->default_container[0] ? pod->default_container
                                                : m->dep.default_container;
    if (def[0] && contains(pod->containers, pod->n_containers,
                           def)) {
        snprintf(out, len, "%s", def);
        return true;
    }
    fail(m, "pod %s has several containers (%s): choose one with -c", pod->name,
         names);
    return false;
}

static int pod_rank(const struct kube_pod *p)
{
    return p->ready ? 0 : 1;
}

static int cmp_pods(const void *a, const void *b)
{
    const struct kube_pod *x = a, *y = b;
    if (pod_rank(x) != pod_rank(y)) {
        return pod_rank(x) - pod_rank(y);
    }
    return strcmp(x->name, y->name);
}

/* Keeps the pods worth tapping: running, not terminating, not on the
 * host network; ready ones first. */
static size_t usable_pods(struct kube_pod *pods, size_t n, size_t *hostnet)
{
    size_t k = 0;
    *hostnet = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(pods[i].phase, "Running") != 0 || pods[i].terminating) {
            continue;
        }
        if (pods[i].host_network) {
            (*hostnet)++;
            continue;
        }
        pods[k++] = pods[i];
    }
    qsort(pods, k, sizeof(*pods), cmp_pods);
    return k;
}

/* Whether this pod's tap was refused already: it cannot change. */
static bool tap_refused(struct mirror *m, const struct kube_pod *pod)
{
    for (struct tap *t = m->taps; t != NULL; t = t->next) {
        if (t->refused && strcmp(t->uid, pod->uid) == 0) {
            return true;
        }
    }
    size_t n = m->n_port_refused < MAX_PORT_REFUSED ? m->n_port_refused
                                                    : MAX_PORT_REFUSED;
    for (size_t i = 0; i < n; i++) {
        if (pod->uid[0] && strcmp(m->port_refused[i], pod->uid) == 0) {
            return true;
        }
    }
    return false;
}

static void note_untapped(struct mirror *m, size_t n)
{
    m->untapped = n;
    m->most_untapped = TM_MAX(m->most_untapped, n);
}

static void on_pod_list(struct call_ctx *c, const struct kubectl_result *res)
{
    struct mirror *m = c->m;
    char msg[1024];
    struct kube_pod *pods = NULL;
    size_t n = 0, hostnet = 0, refused = 0;
    if (c->purpose == LIST_REFRESH) {
        m->poll_busy = false;
    }
    if (res->exit_code != 0) {
        explain(m, res, "pods", msg, sizeof(msg));
        if (c->purpose == LIST_INITIAL) {
            fail(m, "%s", msg);
        } else {
            tm_warn("listing the pods of %s failed: %s", m->what, msg);
            if (c->purpose == LIST_SWITCH) {
                uv_timer_start(&m->poll, NULL, 0, 0); /* see on_poll */
            }
        }
        return;
    }
    if (kube_parse_pod_list(res->out, res->out_len, &pods, &n, &refused, msg,
                            sizeof(msg)) < 0) {
        fail(m, "%s", msg);
        return;
    }
    size_t k = usable_pods(pods, n, &hostnet);
    if (c->purpose == LIST_INITIAL && k > 0 && refused > 0) {
        tm_warn("%s: %zu running pod%s left out (%s)", m->what, refused,
                refused == 1 ? "" : "s", msg);
    }
    if (c->purpose == LIST_INITIAL) {
        if (k == 0) {
            if (hostnet > 0) {
                fail(m,
                     "the pods of %s use the host network: a tap "
                     "would capture the node's traffic, so tapmirror "
                     "refuses",
                     m->what);
            } else if (refused > 0) {
                fail(m,
                     "%s in %s has no running pod tapmirror "
                     "accepts: %zu refused (%s)",
                     m->what, m->nsdesc, refused, msg);
            } else {
                fail(m, "%s in %s has no running pods", m->what, m->nsdesc);
            }
        } else if (m->cfg.all_pods) {
            size_t cap = (size_t)m->cfg.max_pods;
            if (k > cap) {
                tm_warn("%s has %zu running pods; tapping %zu of "
                        "them (--max-pods %zu)",
                        m->what, k, cap, cap);
            }
            note_untapped(m, k > cap ? k - cap : 0);
            for (size_t i = 0; i < k && i < cap && !m->failed; i++) {
                tap_begin(m, &pods[i]);
            }
        } else {
            tap_begin(m, &pods[0]);
        }
    } else if (c->purpose == LIST_SWITCH) {
        size_t pick = k;
        for (size_t i = 0; i < k; i++) {
            if (strcmp(pods[i].name, m->old_pod) != 0 &&
                find_tap(m, pods[i].name) == NULL) {
                pick = i;
                break;
            }
        }
        if (pick < k) {
            m->pod_switches++;
            tm_warn("pod %s is gone; following %s to pod %s", m->old_pod,
                    m->what, pods[pick].name);
            tap_begin(m, &pods[pick]);
        } else if (now_ms(m) >= m->switch_deadline) {
            fail(m,
                 "pod %s is gone and %s has no other running pod "
                 "to tap",
                 m->old_pod, m->what);
        } else {
            m->poll_busy = true; /* retried by the poll timer */
        }
    } else {
        /* --all-pods: tap the pods that appeared, up to --max-pods; the
         * ones that went away end their own streams. */
        size_t left_out = 0;
        for (size_t i = 0; i < k && !m->failed; i++) {
            if (find_tap(m, pods[i].name) != NULL ||
                tap_refused(m, &pods[i])) {
                continue;
            }
            if (live_taps(m) >= m->cfg.max_pods) {
                left_out++;
                continue;
            }
            tm_info("%s has a new pod %s; tapping it too", m->what,
                    pods[i].name);
            tap_begin(m, &pods[i]);
        }
        if (left_out > 0 && left_out != m->untapped) {
            tm_warn("%s has %zu running pods that are not tapped "
                    "(--max-pods %llu)",
                    m->what, left_out,
                    (unsigned long long)m->cfg.max_pods);
        }
        note_untapped(m, left_out);
    }
    free(pods);
}

static void list_pods(struct mirror *m, int purpose)
{
    const char *args[] = {"get",
                          "pods",
                          "-l",
                          m->dep.selector,
                          "--field-selector=status.phase=Running",
                          "-o",
                          "json",
                          NULL};
    call(m, NULL, purpose, args, NULL, on_pod_list);
}

static void on_deployment(struct call_ctx *c, const struct kubectl_result *res)
{
    struct mirror *m = c->m;
    char msg[1024], what[300];
    snprintf(what, sizeof(what), "%s", m->what);
    if (res->exit_code != 0) {
        explain(m, res, what, msg, sizeof(msg));
        fail(m, "%s", msg);
        return;
    }
    if (kube_parse_workload(res->out, res->out_len, m->kind, &m->dep, msg,
                            sizeof(msg)) < 0) {
        fail(m, "%s: %s", m->what, msg);
        return;
    }
    list_pods(m, LIST_INITIAL);
}

/* A Service: its selector picks the pods, as a workload's does. */
static void on_service(struct call_ctx *c, const struct kubectl_result *res)
{
    struct mirror *m = c->m;
    char msg[1024], what[300];
    snprintf(what, sizeof(what), "%s", m->what);
    if (res->exit_code != 0) {
        explain(m, res, what, msg, sizeof(msg));
        fail(m, "%s", msg);
        return;
    }
    if (kube_parse_service(res->out, res->out_len, &m->svc, msg,
                           sizeof(msg)) < 0) {
        fail(m, "%s: %s", m->what, msg);
        return;
    }
    snprintf(m->dep.selector, sizeof(m->dep.selector), "%s",
             m->svc.selector);
    list_pods(m, LIST_INITIAL);
}

static void on_target_pod(struct call_ctx *c, const struct kubectl_result *res)
{
    struct mirror *m = c->m;
    char msg[1024], what[300];
    struct kube_pod pod;
    snprintf(what, sizeof(what), "pod %s", m->target);
    if (res->exit_code != 0) {
        explain(m, res, what, msg, sizeof(msg));
        fail(m, "%s", msg);
        return;
    }
    if (kube_parse_pod(res->out, res->out_len, &pod, msg, sizeof(msg)) < 0) {
        fail(m, "pod %s: %s", m->target, msg);
        return;
    }
    if (strcmp(pod.phase, "Running") != 0 || pod.terminating) {
        fail(m, "pod %s is not running (phase %s%s)", pod.name,
             pod.phase[0] ? pod.phase : "unknown",
             pod.terminating ? ", terminating" : "");
        return;
    }
    if (pod.host_network) {
        fail(m,
             "pod %s uses the host network: a tap would capture the node's "
             "traffic, so tapmirror refuses",
             pod.name);
        return;
    }
    tap_begin(m, &pod);
}

static void on_version(struct call_ctx *c, const struct kubectl_result *res)
{
    struct mirror *m = c->m;
    char msg[1024];
    int client = -1, server = -1;
    kube_parse_version(res->out, res->out_len, &client, &server, msg,
                       sizeof(msg));
    if (res->exit_code != 0 || server < 0) {
        explain(m, res, "the server version", msg, sizeof(msg));
        fail(m, "%s", msg);
        return;
    }
    m->minor = client;
    tm_verbose("kubectl 1.%d, API server 1.%d", client, server);
    if (m->deployment) {
        const char *args[] = {"get", m->kind, m->target, "-o", "json", NULL};
        call(m, NULL, 0, args, NULL,
             m->service ? on_service : on_deployment);
    } else {
        const char *args[] = {"get", "pod", m->target, "-o", "json", NULL};
        call(m, NULL, 0, args, NULL, on_target_pod);
    }
}

/* ---- one pod's tap ---- */

static void tap_timer_closed(uv_handle_t *h)
{
    struct tap *t = h->data;
    t->timer_closed = true;
    maybe_closed(t->m);
}

static void tap_wait_poll(uv_timer_t *timer);

static void tap_fail(struct tap *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A pod-level failure: fatal unless other pods are still tapped. */
static void tap_fail(struct tap *t, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct mirror *m = t->m;
    t->state = T_GONE;
    uv_timer_stop(&t->timer);
    if (m->cfg.all_pods && live_taps(m) > 0) {
        tm_warn("%s; the other pods stay tapped", msg);
        publish_addresses(m);
        return;
    }
    fail(m, "%s", msg);
}

/* tcpdump parses traffic from strangers, so it runs with NET_RAW and
 * nothing more: a tap that has more is not used. */
static void refuse_tap(struct tap *t, const char *why)
{
    t->refused = true;
    tap_fail(t,
             "pod %s already has a %s container that %s; tapmirror does not "
             "use it, as tcpdump must run with NET_RAW only: replace the pod "
             "to remove it",
             t->pod, KUBE_TAP_NAME, why);
}

static void on_wait_pod(struct call_ctx *c, const struct kubectl_result *res)
{
    struct tap *t = c->t;
    struct mirror *m = c->m;
    char msg[1024], what[300];
    struct kube_pod pod;
    if (t->state != T_WAITING) {
        return;
    }
    snprintf(what, sizeof(what), "pod %s", t->pod);
    if (res->exit_code != 0) {
        explain(m, res, what, msg, sizeof(msg));
        tap_fail(t, "%s", msg);
        return;
    }
    if (kube_parse_pod(res->out, res->out_len, &pod, msg, sizeof(msg)) < 0) {
        tap_fail(t, "pod %s: %s", t->pod, msg);
        return;
    }
    char why[512];
    if (pod.has_tap && kube_tap_compare(&pod, m->cfg.tap_image, t->container,
                                        why, sizeof(why)) == KUBE_TAP_EXCESS) {
        /* Another tool's tap got there first (KUBE_ERR_TAP_IMMUTABLE). */
        refuse_tap(t, why);
        return;
    }
    if (pod.has_tap) {
        remember_pod(m, t->pod);
    }
    const struct kube_container_status *st = &pod.tap;
    if (st->state == KUBE_STATE_RUNNING) {
        tap_attach(t);
        return;
    }
    if (st->state == KUBE_STATE_TERMINATED) {
        tap_fail(t,
                 "the tap in pod %s exited (code %d%s%s) and ephemeral "
                 "containers never restart: replace the pod (kubectl "
                 "rollout restart) to tap it again",
                 t->pod, st->exit_code, st->reason[0] ? ", " : "",
                 st->reason);
        return;
    }
    static const char *const fatal[] = {
        "ErrImagePull",         "ImagePullBackOff",      "InvalidImageName",
        "ErrImageNeverPull",    "CreateContainerConfigError",
        "CreateContainerError", "RunContainerError",
    };
    if (st->state == KUBE_STATE_WAITING) {
        for (size_t i = 0; i < TM_ARRAY_LEN(fatal); i++) {
            if (strcmp(st->reason, fatal[i]) == 0) {
                tap_fail(t, "the tap in pod %s cannot start: %s%s%s",
                         t->pod, st->reason, st->message[0] ? ": " : "",
                         st->message);
                return;
            }
        }
    }
    if (now_ms(m) >= t->deadline) {
        char waited[32];
        tap_fail(t,
                 "the tap in pod %s did not start within %s (%s%s); raise "
                 "--tap-timeout if the image is slow to pull",
                 t->pod,
                 format_duration(m->cfg.tap_timeout_ns, waited, sizeof(waited)),
                 st->state == KUBE_STATE_WAITING ? "waiting: " : "no status",
                 st->state == KUBE_STATE_WAITING ? st->reason : "");
        return;
    }
    uv_timer_start(&t->timer, tap_wait_poll, WAIT_POLL_MS, 0);
}

static void tap_wait_poll(uv_timer_t *timer)
{
    struct tap *t = timer->data;
    const char *args[] = {"get", "pod", t->pod, "-o", "json", NULL};
    if (t->state == T_WAITING && !stopping(t->m)) {
        call(t->m, t, 0, args, NULL, on_wait_pod);
    }
}

static void tap_wait(struct tap *t)
{
    t->state = T_WAITING;
    t->deadline = now_ms(t->m) + t->m->cfg.tap_timeout_ns / TM_NS_PER_MS;
    tap_wait_poll(&t->timer);
}

static void tap_inject(struct tap *t);

/* Pod Security admission refused the tap: under baseline, retry with
 * the baseline profile (--tap-profile auto); otherwise explain. Returns
 * whether it was such a refusal. */
static bool pod_security_refused(struct tap *t,
                                 const struct kubectl_result *res)
{
    struct mirror *m = t->m;
    char level[64];
    enum kube_psa_level psa = KUBE_PSA_BASELINE;
    if (res->exit_code <= 0 ||
        !kube_pod_security_refusal(res->err, level, sizeof(level))) {
        return false;
    }
    kube_pod_security_parse_level(level, &psa);
    if (psa == KUBE_PSA_RESTRICTED) {
        tap_fail(t,
                 "cannot inject the tap into pod %s: Pod Security level "
                 "\"restricted\" in %s admits no tap that can capture "
                 "(it requires a non-root user and every capability "
                 "dropped, and tcpdump needs root with NET_RAW); the "
                 "namespace needs an exemption or the baseline or "
                 "privileged level",
                 t->pod, m->nsdesc);
        return true;
    }
    if (t->profile == KUBE_TAP_NETRAW && m->cfg.tap_profile == MIRROR_TAP_AUTO) {
        tm_warn("Pod Security level \"%s\" in %s refuses the NET_RAW tap; "
                "retrying with the baseline profile (no capability added: "
                "the runtime's default set, which on containerd includes "
                "NET_RAW)",
                level, m->nsdesc);
        t->profile = KUBE_TAP_BASELINE;
        tap_inject(t);
        return true;
    }
    tap_fail(t,
             "cannot inject the tap into pod %s: Pod Security level \"%s\" "
             "in %s refuses the %s tap%s",
             t->pod, level, m->nsdesc,
             t->profile == KUBE_TAP_NETRAW ? "NET_RAW" : "baseline-profile",
             t->profile == KUBE_TAP_NETRAW
                 ? "; --tap-profile baseline or auto adds no capability, "
                   "which baseline admits, or the namespace needs an "
                   "exemption or the privileged level"
                 : "; the namespace needs an exemption or another level");
    return true;
}

static void on_injected(struct call_ctx *c, const struct kubectl_result *res)
{
    struct tap *t = c->t;
    struct mirror *m = c->m;
    char msg[1024], what[300];
    snprintf(what, sizeof(what), "pod %s", t->pod);
    if (res->exit_code == 0) {
        /* A change to the cluster that outlives the run: said even with
         * -q. */
        tm_warn("injected the tap (%s, %s) into pod %s, container %s; it "
                "stays until the pod is replaced",
                m->cfg.tap_image,
                t->profile == KUBE_TAP_NETRAW
                    ? "NET_RAW only"
                    : "baseline profile: the runtime's default "
                      "capabilities",
                t->pod, t->container);
        remember_pod(m, t->pod);
        tap_wait(t);
        return;
    }
    if (pod_security_refused(t, res)) {
        return;
    }
    switch (kube_classify(res->err, what, m->cfg.namespace_ ? m->nsdesc : NULL,
                          msg, sizeof(msg))) {
    case KUBE_ERR_BAD_SUBRESOURCE:
        /* kubectl older than 1.32: replace the pod's ephemeral containers
         * instead. */
        m->minor = 0;
        tap_inject(t);
        return;
    case KUBE_ERR_CONFLICT:
        if (++t->conflicts <= MAX_CONFLICTS) {
            tap_inject(t);
            return;
        }
        break;
    case KUBE_ERR_TAP_IMMUTABLE:
        /* Another tapmirror injected its tap meanwhile: use that one. */
        tm_info("pod %s already has a tap; reusing it", t->pod);
        tap_wait(t);
        return;
    default:
        break;
    }
    if (res->exit_code < 0) {
        explain(m, res, what, msg, sizeof(msg));
    }
    tap_fail(t, "cannot inject the tap into pod %s: %s", t->pod, msg);
}

static void on_pod_for_put(struct call_ctx *c,
                           const struct kubectl_result *res)
{
    struct tap *t = c->t;
    struct mirror *m = c->m;
    char msg[1024], what[300], uri[512];
    snprintf(what, sizeof(what), "pod %s", t->pod);
    if (res->exit_code != 0) {
        explain(m, res, what, msg, sizeof(msg));
        tap_fail(t, "%s", msg);
        return;
    }
    char *body = kube_pod_with_tap(res->out, res->out_len, m->cfg.tap_image,
                                   t->container, t->profile, msg,
                                   sizeof(msg));
    if (body == NULL) {
        tap_fail(t, "pod %s: %s", t->pod, msg);
        return;
    }
    snprintf(uri, sizeof(uri), "/api/v1/namespaces/%s/pods/%s/ephemeralcontainers",
             t->ns, t->pod);
    const char *args[] = {"replace", "--raw", uri, "-f", "-", NULL};
    call(m, t, 0, args, body, on_injected);
    free(body);
}

static void tap_inject(struct tap *t)
{
    struct mirror *m = t->m;
    t->state = T_INJECTING;
    if (m->minor >= 32) {
        char *patch = kube_tap_patch(m->cfg.tap_image, t->container,
                                     t->profile);
        const char *args[] = {"patch",
                              "pod",
                              t->pod,
                              "--subresource=ephemeralcontainers",
                              "--type=strategic",
                              "-p",
                              patch,
                              "-o",
                              "json",
                              NULL};
        call(m, t, 0, args, NULL, on_injected);
        free(patch);
    } else {
        /* Before 1.32 kubectl cannot patch the subresource; a PUT of the
         * whole pod with the tap appended works on every version. */
        const char *args[] = {"get", "pod", t->pod, "-o", "json", NULL};
        call(m, t, 0, args, NULL, on_pod_for_put);
    }
}

static void set_addresses(struct tap *t, const struct kube_pod *pod)
{
    t->n_addrs = 0;
    for (size_t i = 0; i < pod->n_ips; i++) {
        struct service_addr *a = &t->addrs[t->n_addrs];
        memset(a, 0, sizeof(*a));
        if (parse_ip(pod->ips[i], &a->family, a->addr) == 0) {
            /* Behind a sidecar the plaintext is the sidecar's own hop. */
            a->sidecar_hop = t->mesh == KUBE_MESH_ISTIO_SIDECAR ||
                             t->mesh == KUBE_MESH_LINKERD;
            t->n_addrs++;
        }
    }
}

/* Which hop the start line says is mirrored, and why; "" without a
 * mesh. */
static void describe_hop(const struct tap *t, char *buf, size_t len)
{
    buf[0] = '\0';
    if (t->mesh == KUBE_MESH_NONE) {
        return;
    }
    snprintf(buf, len,
             "; %s (%s): mirroring %s, not the mesh's TLS (--mesh off: "
             "the connections from other hosts)",
             kube_mesh_name(t->mesh), t->mesh_sign,
             t->mesh == KUBE_MESH_ISTIO_AMBIENT
                 ? "the plaintext ztunnel delivers on the pod's loopback"
                 : "the sidecar's plaintext connections to the port");
}

/* A pod that cannot be tapped for its port: the end of the run when
 * nothing else is tapped, else a warning. */
static bool port_refused(struct mirror *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool port_refused(struct mirror *m, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (live_taps(m) == 0) {
        fail(m, "%s", msg);
    } else {
        tm_warn("%s; not tapping it", msg);
    }
    return false;
}

/*
 * The pod's number for -p (a named port, or a Service port mapped to its
 * targetPort). The engine follows one service port, so every tapped pod
 * must resolve to the same number: a pod that resolves to another (a
 * rollout that renumbered the named port) is refused rather than
 * captured on a port the rest of the run does not treat as the
 * service's.
 */
static bool resolve_port(struct mirror *m, const struct kube_pod *pod)
{
    char how[256], err[768];
    uint16_t port = 0;
    if (kube_resolve_port(m->service ? &m->svc : NULL, m->cfg.port_name,
                          m->cfg.port, pod, &port, how, sizeof(how), err,
                          sizeof(err)) < 0) {
        return port_refused(m, "%s", err);
    }
    if (m->port != 0 && port != m->port) {
        char asked[64];
        /* -p as the user gave it: portstr is the resolved number by now. */
        if (m->cfg.port_name != NULL) {
            snprintf(asked, sizeof(asked), "%s", m->cfg.port_name);
        } else {
            snprintf(asked, sizeof(asked), "%u", m->cfg.port);
        }
        snprintf(m->port_refused[m->n_port_refused++ % MAX_PORT_REFUSED],
                 sizeof(m->port_refused[0]), "%s", pod->uid);
        return port_refused(m,
                            "pod %s has port %s as %u, but the pods tapped "
                            "so far have it as %u: one run captures one "
                            "port number; tap that pod in a run of its own",
                            pod->name, asked, port, m->port);
    }
    if (m->port == 0) {
        m->port = port;
        if (how[0]) {
            tm_info("%s", how);
        } else if (m->cfg.port_name != NULL) {
            tm_info("port %s is %u in pod %s", m->cfg.port_name, port,
                    pod->name);
        }
        snprintf(m->portstr, sizeof(m->portstr), "%u", port);
        if (m->ev.port != NULL) {
            m->ev.port(m->ev.ctx, port);
        }
    }
    return true;
}

/*
 * The node's operating system, before injecting: a pod whose spec does
 * not say it runs on Windows (a node affinity rather than a nodeSelector,
 * a Windows-only node pool) is found out by its node, where a tap would
 * be admitted and then never run nor leave. The node is cluster-scoped and
 * a namespace's Role cannot grant reading it, so a node that cannot be
 * read is taken for Linux.
 */
static void on_tap_node(struct call_ctx *c, const struct kubectl_result *res)
{
    struct tap *t = c->t;
    char os[32], msg[1024];
    if (t->state == T_GONE) {
        return;
    }
    if (res->exit_code != 0) {
        kube_error_line(res->err, msg, sizeof(msg));
        tm_verbose("node %s of pod %s not read (%s): taking it for Linux",
                   t->node, t->pod, msg);
    } else if (kube_parse_node_os(res->out, res->out_len, os, sizeof(os), msg,
                                  sizeof(msg)) == 0 &&
               strcmp(os, "windows") == 0) {
        tap_fail(t,
                 "pod %s runs on node %s, a Windows node, where ephemeral "
                 "containers are not supported: tapmirror cannot tap it",
                 t->pod, t->node);
        return;
    }
    tap_inject(t);
}

static void tap_begin(struct mirror *m, const struct kube_pod *pod)
{
    char container[64];
    if (pod->host_network) {
        fail(m,
             "pod %s uses the host network: a tap would capture the node's "
             "traffic, so tapmirror refuses",
             pod->name);
        return;
    }
    if (pod->windows) {
        fail(m,
             "pod %s runs on a Windows node, where ephemeral containers are "
             "not supported: tapmirror cannot tap it",
             pod->name);
        return;
    }
    if (!choose_container(m, pod, container, sizeof(container)) ||
        !resolve_port(m, pod)) {
        return;
    }
    char user[128];
    if (!pod->has_tap && kube_tap_nonroot(pod, user, sizeof(user))) {
        fail(m,
             "a tap in pod %s would run as a non-root user (%s applies to "
             "it) and tcpdump could not open a capture; tapmirror injects "
             "nothing. Tap a pod without that setting, or capture on the "
             "node",
             pod->name, user);
        return;
    }
    struct tap *t = tm_xcalloc(1, sizeof(*t));
    snprintf(t->image, sizeof(t->image), "%s",
             pod->has_tap ? pod->tap_image : m->cfg.tap_image);
    memcpy(t->ports, pod->ports, sizeof(t->ports));
    t->n_ports = pod->n_ports;
    t->m = m;
    snprintf(t->pod, sizeof(t->pod), "%s", pod->name);
    snprintf(t->uid, sizeof(t->uid), "%s", pod->uid);
    snprintf(t->container, sizeof(t->container), "%s", container);
    snprintf(t->node, sizeof(t->node), "%s", pod->node_name);
    if (!m->cfg.mesh_off) {
        t->mesh = pod->mesh;
        snprintf(t->mesh_sign, sizeof(t->mesh_sign), "%s", pod->mesh_sign);
    }
    snprintf(t->ns, sizeof(t->ns), "%s",
             pod->ns[0] ? pod->ns : (m->cfg.namespace_ ? m->cfg.namespace_
                                                      : "default"));
    set_addresses(t, pod);
    t->backoff_ms = BACKOFF_FIRST_MS;
    t->profile = pod->has_tap ? pod->tap_profile
                 : m->cfg.tap_profile == MIRROR_TAP_BASELINE ? KUBE_TAP_BASELINE
                                                         : KUBE_TAP_NETRAW;
    uv_timer_init(m->loop, &t->timer);
    t->timer.data = t;
    t->next = m->taps;
    m->taps = t;
    publish_addresses(m);
    if (pod->has_tap) {
        char why[512];
        switch (kube_tap_compare(pod, m->cfg.tap_image, t->container, why,
                                 sizeof(why))) {
        case KUBE_TAP_EXCESS:
            refuse_tap(t, why);
            return;
        case KUBE_TAP_DIFFERS:
            tm_warn("pod %s already has a tap that %s: reusing it", pod->name,
                    why);
            break;
        case KUBE_TAP_SAME:
            tm_info("reusing the tap already in pod %s", pod->name);
            break;
        }
        remember_pod(m, t->pod);
        if (pod->tap.state == KUBE_STATE_TERMINATED) {
            tap_fail(t,
                     "the tap in pod %s exited (code %d) and ephemeral "
                     "containers never restart: replace the pod (kubectl "
                     "rollout restart) to tap it again",
                     pod->name, pod->tap.exit_code);
            return;
        }
        if (pod->tap.state == KUBE_STATE_RUNNING) {
            tap_attach(t);
        } else {
            tap_wait(t);
        }
        return;
    }
    if (t->node[0]) {
        const char *args[] = {"get", "node", t->node, "-o", "json", NULL};
        call(m, t, 0, args, NULL, on_tap_node);
        return;
    }
    tap_inject(t);
}

/* ---- streaming ---- */

static void stream_item(void *ctx, const struct cap_item *it)
{
    struct tap *t = ctx;
    struct mirror *m = t->m;
    if (it->kind == CAP_ITEM_HEADER) {
        /* A re-attached or second pod's stream starts with its own file
         * header: the output already has one. */
        if (!m->have_header) {
            if (it->raw_len == sizeof(m->header)) {
                memcpy(m->header, it->raw, sizeof(m->header));
                m->have_header = true;
            }
            m->ev.item(m->ev.ctx, it);
            return;
        }
        if (it->raw_len != sizeof(m->header) ||
            memcmp(it->raw, m->header, 8) != 0 ||
            memcmp(it->raw + 20, m->header + 20, 4) != 0) {
            tap_fail(t,
                     "the capture from pod %s has a different format or link "
                     "type than the first stream's",
                     t->pod);
            if (t->exec != NULL) {
                kubectl_exec_kill(t->exec);
            }
        }
        return;
    }
    if (it->kind == CAP_ITEM_PACKET) {
        t->packets++;
    }
    m->ev.item(m->ev.ctx, it);
}

static void stream_batch(void *ctx)
{
    struct tap *t = ctx;
    t->m->ev.batch(t->m->ev.ctx);
}

static void attach_finished(struct tap *t);

static void stream_end(void *ctx, int status, const char *msg,
                       bool truncated)
{
    struct tap *t = ctx;
    if (status < 0) {
        /* A stream that carried nothing is explained by kubectl's own
         * message (attach_finished); one that breaks midway is news. */
        if (t->packets > 0 || t->m->have_header) {
            tm_warn("pod %s: %s", t->pod, msg);
        } else {
            tm_verbose("pod %s: %s", t->pod, msg);
        }
        if (t->exec != NULL) {
            kubectl_exec_kill(t->exec);
        }
    }
    if (truncated) {
        tm_verbose("pod %s: the stream ended inside a record", t->pod);
    }
    t->stream_ended = true;
    attach_finished(t);
}

static void exec_stderr_line(void *ctx, const char *line)
{
    struct tap *t = ctx;
    struct mirror *m = t->m;
    if (strstr(line, "listening on") != NULL) {
        t->listening = true;
        if (!m->any_streaming) {
            m->any_streaming = true;
            m->state = M_RUNNING;
            m->streaming_since = now_ms(m);
            char hop[256];
            describe_hop(t, hop, sizeof(hop));
            tm_info("capturing TCP port %u in pod %s (%s)%s - press Ctrl-C "
                    "to stop",
                    m->port, t->pod, m->nsdesc, hop);
        } else if (!t->announced) {
            char hop[256];
            describe_hop(t, hop, sizeof(hop));
            tm_info("capturing in pod %s too%s", t->pod, hop);
        }
        t->announced = true;
        return;
    }
    tm_verbose("pod %s: %s", t->pod, line);
}

static void exec_exited(void *ctx, int code, int sig)
{
    struct tap *t = ctx;
    t->exec_exited = true;
    t->exit_code = code;
    t->term_signal = sig;
    attach_finished(t);
}

static struct image_probe *find_probe(struct mirror *m, const char *image)
{
    for (size_t i = 0; i < m->n_probes; i++) {
        if (strcmp(m->probes[i].image, image) == 0) {
            return &m->probes[i];
        }
    }
    return NULL;
}

static void probe_wait_timer(uv_timer_t *timer)
{
    struct tap *t = timer->data;
    if (!stopping(t->m) && t->state != T_GONE) {
        tap_attach(t);
    }
}

static void on_probe(struct call_ctx *c, const struct kubectl_result *res)
{
    struct tap *t = c->t;
    struct image_probe *p = find_probe(c->m, t->image);
    if (p != NULL) {
        p->done = true;
        p->immediate = res->exit_code == 0;
        tm_verbose("the tcpdump of %s %s --immediate-mode", p->image,
                   p->immediate ? "takes" : "does not take");
    }
    if (!stopping(c->m) && t->state != T_GONE) {
        tap_attach(t);
    }
}

/*
 * Whether tcpdump in this tap's image takes --immediate-mode (without it,
 * libpcap may hold a quiet pod's packets for up to a second before -U
 * writes them). Asked once per image with `tcpdump --immediate-mode
 * --version`, which exits 0 only when the option is known. Returns false
 * while the answer is pending: the tap is attached when it comes.
 */
static bool probe_immediate(struct tap *t, bool *immediate)
{
    struct mirror *m = t->m;
    struct image_probe *p = find_probe(m, t->image);
    if (p != NULL && p->done) {
        *immediate = p->immediate;
        return true;
    }
    if (p != NULL) { /* another pod's probe is on its way */
        uv_timer_start(&t->timer, probe_wait_timer, 100, 0);
        return false;
    }
    if (m->n_probes == MAX_PROBED_IMAGES) {
        *immediate = false;
        return true;
    }
    p = &m->probes[m->n_probes++];
    snprintf(p->image, sizeof(p->image), "%s", t->image);
    const char *args[] = {"exec",    t->pod,           "-c",
                          KUBE_TAP_NAME, "--",         "tcpdump",
                          "--immediate-mode", "--version", NULL};
    call(m, t, 0, args, NULL, on_probe);
    return false;
}

static void tap_attach(struct tap *t)
{
    struct mirror *m = t->m;
    char err[512];
    /* Istio ambient: ztunnel delivers the plaintext inside the pod from
     * the client's own address, on the loopback; what arrives from other
     * hosts on the port is a plaintext client's first hop, which ztunnel
     * redirects and delivers again. Only the loopback copy is taken. */
    const char *iface =
        t->mesh == KUBE_MESH_ISTIO_AMBIENT ? "lo" : "any";
    bool immediate = false;
    const char *args[] = {"exec", "-i",      t->pod, "-c", KUBE_TAP_NAME,
                          "--",   "tcpdump", "-p",   "-i", iface,
                          "-U",   "-w",      "-",    "tcp", "port",
                          m->portstr, NULL, NULL};
    struct kubectl_exec_events ev = {exec_stderr_line, exec_exited, t};
    uv_pipe_t *out = NULL;
    if (stopping(m) || !probe_immediate(t, &immediate)) {
        return;
    }
    if (immediate) {
        /* Before "-U"; the capture filter stays the last words. */
        memmove(&args[11], &args[10], 6 * sizeof(args[0]));
        args[10] = "--immediate-mode";
    }
    t->state = T_STREAMING;
    t->stream_ended = t->exec_exited = t->listening = false;
    t->packets = 0;
    t->exec = kubectl_exec_start(m->kc, args, &ev, &out, err, sizeof(err));
    if (t->exec == NULL) {
        tap_fail(t, "%s", err);
        return;
    }
    struct source_config sc;
    memset(&sc, 0, sizeof(sc));
    struct source_events sev = {stream_item, stream_batch, stream_end, NULL,
                                t, NULL};
    char name[300];
    snprintf(name, sizeof(name), "pod %s", t->pod);
    source_open_pipe(m->loop, out, name, &sc, &sev, &t->stream);
    source_start(t->stream);
    if (m->paused) {
        source_pause(t->stream);
    }
}

static void on_check_pod(struct call_ctx *c, const struct kubectl_result *res);

static void reattach_timer(uv_timer_t *timer)
{
    struct tap *t = timer->data;
    if (t->state == T_BACKOFF && !stopping(t->m)) {
        t->m->reattaches++;
        tap_attach(t);
    }
}

static void pod_gone(struct tap *t, const char *why)
{
    struct mirror *m = t->m;
    t->state = T_GONE;
    publish_addresses(m);
    if (!m->deployment) {
        fail(m, "pod %s %s", t->pod, why);
        return;
    }
    if (m->cfg.all_pods) {
        tm_warn("pod %s %s; the other pods of %s stay tapped", t->pod, why,
                m->what);
        if (live_taps(m) == 0) {
            snprintf(m->old_pod, sizeof(m->old_pod), "%s", t->pod);
            m->switch_deadline =
                now_ms(m) + m->cfg.tap_timeout_ns / TM_NS_PER_MS;
            list_pods(m, LIST_SWITCH);
        }
        return;
    }
    /* Follow the rollout: tap the workload's next pod. */
    snprintf(m->old_pod, sizeof(m->old_pod), "%s", t->pod);
    m->switch_deadline = now_ms(m) + m->cfg.tap_timeout_ns / TM_NS_PER_MS;
    list_pods(m, LIST_SWITCH);
}

static void on_check_pod(struct call_ctx *c, const struct kubectl_result *res)
{
    struct tap *t = c->t;
    char msg[1024], what[300];
    struct kube_pod pod;
    snprintf(what, sizeof(what), "pod %s", t->pod);
    if (c->purpose == 1) { /* a liveness check while streaming */
        if (t->state != T_STREAMING) {
            return;
        }
        bool gone = res->exit_code != 0 &&
                    kube_classify(res->err, what, classify_ns(t->m), msg,
                                  sizeof(msg)) == KUBE_ERR_NOT_FOUND;
        if (res->exit_code == 0 &&
            kube_parse_pod(res->out, res->out_len, &pod, msg, sizeof(msg)) ==
                0) {
            gone = pod.terminating || strcmp(pod.uid, t->uid) != 0 ||
                   strcmp(pod.phase, "Running") != 0;
        }
        if (gone && t->exec != NULL) {
            /* A deleted pod can leave exec hanging: end it; the stream's
             * end then follows the deployment. */
            kubectl_exec_kill(t->exec);
        }
        return;
    }
    if (t->state != T_CHECKING) {
        return;
    }
    if (res->exit_code != 0) {
        enum kube_error e = kube_classify(res->err, what, classify_ns(t->m),
                                          msg, sizeof(msg));
        if (e == KUBE_ERR_NOT_FOUND) {
            pod_gone(t, "is gone");
        } else {
            tap_fail(t, "%s", msg);
        }
        return;
    }
    if (kube_parse_pod(res->out, res->out_len, &pod, msg, sizeof(msg)) < 0) {
        tap_fail(t, "pod %s: %s", t->pod, msg);
        return;
    }
    if (pod.terminating || strcmp(pod.uid, t->uid) != 0 ||
        strcmp(pod.phase, "Running") != 0) {
        pod_gone(t, pod.terminating ? "is terminating" : "was replaced");
        return;
    }
    if (pod.tap.state == KUBE_STATE_TERMINATED) {
        tap_fail(t,
                 "the tap in pod %s exited (code %d) and ephemeral containers "
                 "never restart: replace the pod (kubectl rollout restart) "
                 "to tap it again",
                 t->pod, pod.tap.exit_code);
        return;
    }
    t->state = T_BACKOFF;
    uv_timer_start(&t->timer, reattach_timer, t->backoff_ms, 0);
}

/* The exec ended and its stream is read: find out why, then re-attach,
 * follow the deployment, or fail. */
static void attach_finished(struct tap *t)
{
    struct mirror *m = t->m;
    if (!t->stream_ended || !t->exec_exited) {
        return;
    }
    char stderr_text[8192];
    snprintf(stderr_text, sizeof(stderr_text), "%s",
             kubectl_exec_stderr(t->exec));
    kubectl_exec_free(t->exec);
    t->exec = NULL;
    source_close(t->stream, NULL, NULL);
    t->stream = NULL;
    if (stopping(m) || t->state == T_GONE) {
        maybe_closed(m);
        return;
    }
    char msg[1024], line[512];
    if (t->profile == KUBE_TAP_BASELINE &&
        kube_capture_not_permitted(stderr_text)) {
        kube_error_line(stderr_text, line, sizeof(line));
        tap_fail(t,
                 "pod %s: tcpdump in the baseline-profile tap cannot open a "
                 "capture (%s): the container runtime does not grant NET_RAW "
                 "by default (CRI-O does not; containerd does); the "
                 "namespace needs a Pod Security exemption or the privileged "
                 "level for the NET_RAW tap",
                 t->pod, line);
        return;
    }
    enum kube_error e = kube_classify(stderr_text, "the tap", classify_ns(m),
                                      msg, sizeof(msg));
    if (e == KUBE_ERR_NO_TCPDUMP || e == KUBE_ERR_PRIVDROP) {
        tap_fail(t, "pod %s: %s", t->pod, msg);
        return;
    }
    if (e == KUBE_ERR_FORBIDDEN || e == KUBE_ERR_CONTEXT ||
        e == KUBE_ERR_KUBECONFIG || e == KUBE_ERR_UNAUTHORIZED) {
        tap_fail(t, "kubectl exec into pod %s: %s", t->pod, msg);
        return;
    }
    kube_error_line(stderr_text, line, sizeof(line));
    if (t->packets > 0 || t->listening) {
        t->fast_failures = 0;
        t->backoff_ms = BACKOFF_FIRST_MS;
    } else if (++t->fast_failures >= MAX_FAST_FAILURES) {
        tap_fail(t, "kubectl exec into pod %s keeps failing (exit code %d): %s",
                 t->pod, t->exit_code, line[0] ? line : "no message");
        return;
    } else {
        t->backoff_ms = TM_MIN(t->backoff_ms * 2, (uint64_t)BACKOFF_MAX_MS);
    }
    tm_warn("the capture stream from pod %s ended (kubectl exit code %d%s%s); "
            "re-attaching",
            t->pod, t->exit_code, line[0] ? ": " : "", line);
    t->state = T_CHECKING;
    const char *args[] = {"get", "pod", t->pod, "-o", "json", NULL};
    call(m, t, 0, args, NULL, on_check_pod);
}

/* ---- periodic checks ---- */

static void on_poll(uv_timer_t *timer)
{
    struct mirror *m = timer->data;
    if (stopping(m)) {
        return;
    }
    if (m->poll_busy && m->old_pod[0] && live_taps(m) == 0) {
        /* Waiting for the rollout's next pod. */
        m->poll_busy = false;
        list_pods(m, LIST_SWITCH);
        return;
    }
    if (m->cfg.all_pods && m->deployment && !m->poll_busy &&
        live_taps(m) > 0) {
        m->poll_busy = true;
        list_pods(m, LIST_REFRESH);
    }
    for (struct tap *t = m->taps; t != NULL; t = t->next) {
        if (t->state == T_STREAMING && t->calls == 0) {
            const char *args[] = {"get", "pod", t->pod, "-o", "json", NULL};
            call(m, t, 1, args, NULL, on_check_pod);
        }
    }
}

/* ---- the source interface ---- */

static void provider_start(void *impl)
{
    struct mirror *m = impl;
    m->state = M_STARTING;
    uv_timer_start(&m->poll, on_poll, LIVENESS_MS, LIVENESS_MS);
    const char *args[] = {"version", "-o", "json", NULL};
    call(m, NULL, 0, args, NULL, on_version);
}

static void provider_pause(void *impl)
{
    struct mirror *m = impl;
    m->paused = true;
    for (struct tap *t = m->taps; t != NULL; t = t->next) {
        if (t->stream != NULL) {
            source_pause(t->stream);
        }
    }
}

static void provider_resume(void *impl)
{
    struct mirror *m = impl;
    m->paused = false;
    for (struct tap *t = m->taps; t != NULL; t = t->next) {
        if (t->stream != NULL) {
            source_resume(t->stream);
        }
    }
}

/* Stops every kubectl: execs get their standard input closed, then
 * SIGTERM, then SIGKILL; one-shot calls are terminated. */
static void provider_stop(void *impl)
{
    struct mirror *m = impl;
    if (stopping(m)) {
        return;
    }
    m->state = M_STOPPING;
    m->ended = true; /* the run has what it needs; no end event now */
    uv_timer_stop(&m->poll);
    for (struct tap *t = m->taps; t != NULL; t = t->next) {
        uv_timer_stop(&t->timer);
        if (t->stream != NULL) {
            source_stop(t->stream);
        }
        if (t->exec != NULL) {
            kubectl_exec_stop(t->exec);
        }
    }
    kubectl_cancel_calls(m->kc);
}

static void poll_closed(uv_handle_t *h)
{
    struct mirror *m = h->data;
    void (*done)(void *) = m->close_done;
    void *ctx = m->close_ctx;
    struct tap *t = m->taps;
    while (t != NULL) {
        struct tap *next = t->next;
        free(t);
        t = next;
    }
    kubectl_free(m->kc);
    for (size_t i = 0; i < m->n_seen; i++) {
        free(m->seen[i]);
    }
    free(m->seen);
    free(m);
    done(ctx);
}

/* Frees the mirror once every kubectl has exited and every handle is
 * closed. */
static void maybe_closed(struct mirror *m)
{
    if (!m->closing || m->calls > 0) {
        return;
    }
    for (struct tap *t = m->taps; t != NULL; t = t->next) {
        if (t->calls > 0 || t->exec != NULL) {
            return;
        }
        if (!uv_is_closing((uv_handle_t *)&t->timer)) {
            uv_close((uv_handle_t *)&t->timer, tap_timer_closed);
        }
        if (!t->timer_closed) {
            return;
        }
    }
    if (!uv_is_closing((uv_handle_t *)&m->poll)) {
        uv_close((uv_handle_t *)&m->poll, poll_closed);
    }
}

static void provider_close(void *impl, void (*done)(void *), void *ctx)
{
    struct mirror *m = impl;
    provider_stop(m);
    m->close_done = done;
    m->close_ctx = ctx;
    m->closing = true;
    for (struct tap *t = m->taps; t != NULL; t = t->next) {
        if (t->exec == NULL && t->stream != NULL) {
            source_close(t->stream, NULL, NULL);
            t->stream = NULL;
        }
        if (t->exec != NULL && !kubectl_exec_running(t->exec)) {
            kubectl_exec_free(t->exec);
            t->exec = NULL;
            if (t->stream != NULL) {
                source_close(t->stream, NULL, NULL);
                t->stream = NULL;
            }
        }
    }
    maybe_closed(m);
}

static const struct source_ops mirror_ops = {
    .start = provider_start,
    .pause = provider_pause,
    .resume = provider_resume,
    .stop = provider_stop,
    .close = provider_close,
};

int mirror_open(uv_loop_t *loop, const struct mirror_config *mc,
                const struct source_config *cfg,
                const struct source_events *ev, struct source **out,
                char *err, size_t errlen)
{
    (void)cfg;
    struct mirror *m = tm_xcalloc(1, sizeof(*m));
    if (kubectl_find(mc->kubectl, m->kubectl_path, sizeof(m->kubectl_path),
                     err, errlen) < 0) {
        free(m);
        return -1;
    }
    m->loop = loop;
    m->cfg = *mc;
    m->ev = *ev;
    snprintf(m->portstr, sizeof(m->portstr), "%u", mc->port);
    const char *name = mc->target;
    m->kind = kube_target_kind(mc->target, &name);
    if (m->kind == NULL) { /* cli.c checked it */
        snprintf(err, errlen, "invalid target '%s'", mc->target);
        free(m);
        return -1;
    }
    m->deployment = strcmp(m->kind, "pod") != 0; /* it has a selector */
    m->service = strcmp(m->kind, "service") == 0;
    snprintf(m->target, sizeof(m->target), "%s", name);
    snprintf(m->what, sizeof(m->what), "%s %s", m->kind, m->target);
    if (mc->namespace_ != NULL) {
        snprintf(m->nsdesc, sizeof(m->nsdesc), "namespace %s", mc->namespace_);
    } else {
        snprintf(m->nsdesc, sizeof(m->nsdesc), "the current namespace");
    }
    m->kc = kubectl_new(loop, m->kubectl_path, mc->kubeconfig, mc->context,
                        mc->namespace_);
    uv_timer_init(loop, &m->poll);
    m->poll.data = m;
    char label[300];
    snprintf(label, sizeof(label), "%s/%s", m->kind, m->target);
    m->self = source_new(label, &mirror_ops, m, NULL);
    *out = m->self;
    return 0;
}

void mirror_get_report(const struct source *src, struct mirror_report *rep)
{
    struct mirror *m = source_impl(src, &mirror_ops);
    memset(rep, 0, sizeof(*rep));
    if (m == NULL) {
        return;
    }
    rep->pods = (const char *const *)m->seen;
    rep->n_pods = m->n_seen;
    rep->pods_left_untapped = m->most_untapped;
    rep->reattaches = m->reattaches;
    rep->pod_switches = m->pod_switches;
    if (m->n_seen > 0) {
        const char *nsflag = m->cfg.namespace_ ? " -n " : "";
        const char *ns = m->cfg.namespace_ ? m->cfg.namespace_ : "";
        if (m->deployment && !m->service &&
            strcmp(m->kind, "replicaset") != 0) {
            snprintf(m->hint, sizeof(m->hint),
                     "the tap container stays in the pod until the pod is "
                     "replaced; to remove it: kubectl rollout restart "
                     "%s/%s%s%s",
                     m->kind, m->target, nsflag, ns);
        } else if (m->deployment) {
            snprintf(m->hint, sizeof(m->hint),
                     "the tap container stays in the pods until they are "
                     "replaced (ephemeral containers cannot be removed): "
                     "restart the workload that owns them");
        } else {
            snprintf(m->hint, sizeof(m->hint),
                     "the tap container stays in pod %s until the pod is "
                     "deleted (ephemeral containers cannot be removed)",
                     m->target);
        }
        rep->removal_hint = m->hint;
    }
}

void mirror_kill(struct source *src)
{
    struct mirror *m = source_impl(src, &mirror_ops);
    if (m == NULL) {
        return;
    }
    provider_stop(m);
    kubectl_kill_all(m->kc);
}

/* The likely causes of a tap that sees nothing, from what is known. */
void mirror_check_silence(struct source *src, uint64_t inbound)
{
    struct mirror *m = source_impl(src, &mirror_ops);
    if (m == NULL || m->silence_warned || m->cfg.warn_silence_ns == 0 ||
        !m->any_streaming || stopping(m)) {
        return;
    }
    if (inbound > 0) {
        m->silence_warned = true; /* it works: nothing to warn about */
        return;
    }
    if (now_ms(m) - m->streaming_since <
        m->cfg.warn_silence_ns / TM_NS_PER_MS) {
        return;
    }
    m->silence_warned = true;
    const struct tap *t = m->taps;
    while (t != NULL && t->state != T_STREAMING) {
        t = t->next;
    }
    char ports[512] = "", declared[600] = "";
    if (t != NULL) {
        bool listed = false;
        struct kube_pod view;
        memset(&view, 0, sizeof(view));
        memcpy(view.ports, t->ports, sizeof(view.ports));
        view.n_ports = t->n_ports;
        for (size_t i = 0; i < t->n_ports; i++) {
            listed = listed || t->ports[i].port == m->port;
        }
        kube_list_ports(&view, ports, sizeof(ports));
        if (t->n_ports == 0) {
            snprintf(declared, sizeof(declared),
                     "pod %s declares no container ports: check that the "
                     "application listens on %u; ",
                     t->pod, m->port);
        } else if (!listed) {
            snprintf(declared, sizeof(declared),
                     "pod %s declares no port %u (it declares %s): -p takes "
                     "the port the pod listens on, or its name; ",
                     t->pod, m->port, ports);
        }
    }
    tm_warn("no segment to port %u in %g s of capture. Likely causes: "
            "%sa service mesh sidecar (Istio, Linkerd) or a CNI that "
            "hands traffic to the pod without it crossing the pod's "
            "interface; clients that reach the pod at an address that is "
            "not its own (add it with --service-ip); or no client called "
            "it yet",
            m->port,
            (double)m->cfg.warn_silence_ns / (double)TM_NS_PER_S,
            declared);
}

