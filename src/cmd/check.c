#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/util.h"
#include "kube/kubectl.h"
#include "kube/kubejson.h"

#define CHECK_TIMEOUT_MS 60000
#define CHECK_OUTPUT_CAP (32u << 20)
#define MAX_RBAC         6

struct check;
typedef void step_fn(struct check *c, const struct kubectl_result *res);

struct check {
    uv_loop_t loop;
    const struct tm_options *o;
    struct kubectl *kc;
    step_fn *next; /* what the running call's answer goes to */
    bool deployment; /* any target with a selector */
    bool service;
    const char *kind;      /* "deployment", "service", "pod", ... */
    char resource[32];     /* "deployments": what RBAC is asked for */
    char what[300];        /* "service web", for messages */
    struct kube_service svc;
    char target[KUBE_NAME_LEN];
    char nsdesc[96];
    char ns[64]; /* the namespace, once known */
    int minor;
    unsigned failures;
    struct kube_deployment dep;
    struct kube_pod pod;
    bool have_pod;
    struct {
        const char *verb, *resource, *sub;
        const char *alt; /* another verb that also serves, or NULL */
        const char *alt_why;
    } rbac[MAX_RBAC];
    size_t n_rbac, rbac_next;
    bool asking_alt; /* the running review is rbac[rbac_next].alt's */
};

static void mark(struct check *c, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One line of the checklist. */
static void mark(struct check *c, bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(ok ? "\xe2\x9c\x93 " : "\xe2\x9c\x97 ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    if (!ok) {
        c->failures++;
    }
}

static void call_done(void *ctx, const struct kubectl_result *res)
{
    struct check *c = ctx;
    step_fn *next = c->next;
    c->next = NULL;
    next(c, res);
}

static void run(struct check *c, const char *const *args, step_fn *next)
{
    c->next = next;
    kubectl_call(c->kc, args, NULL, CHECK_TIMEOUT_MS, CHECK_OUTPUT_CAP,
                 call_done, c);
}

/* Why a call failed, as one line. */
static void explain(struct check *c, const struct kubectl_result *res,
                    const char *what, char *msg, size_t len)
{
    if (res->spawn_failed) {
        snprintf(msg, len, "%s", res->err);
    } else if (res->exit_code < 0) {
        snprintf(msg, len, "kubectl did not answer within %d s",
                 CHECK_TIMEOUT_MS / 1000);
    } else if (res->out_truncated) {
        snprintf(msg, len, "kubectl printed more than tapmirror reads");
    } else {
        kube_classify(res->err, what, c->o->namespace_ ? c->nsdesc : NULL,
                      msg, len);
    }
}

static void step_rbac(struct check *c);
static void step_namespace(struct check *c);

/* ---- the end: the tap image, and the verdict ---- */

static void finish(struct check *c)
{
    if (c->have_pod && c->pod.has_tap) {
        mark(c, true, "tap image: the existing tap's (%s) is reused",
             c->pod.tap_image);
    } else {
        mark(c, true,
             "tap image %s (the node pulls it; it needs tcpdump; in an "
             "air-gapped cluster mirror it and pass --tap-image)",
             c->o->tap_image);
    }
    if (c->failures == 0) {
        printf("a run would start: nothing was injected or run\n");
    } else {
        printf("a run would not start: %u item%s to fix\n", c->failures,
               c->failures == 1 ? "" : "s");
    }
}

/* ---- RBAC: kubectl auth can-i for every verb a run uses ---- */

static void ask_rbac(struct check *c, const char *verb);

static void on_rbac(struct check *c, const struct kubectl_result *res)
{
    char what[128], msg[1024];
    size_t i = c->rbac_next;
    bool denied = res->exit_code == 1 && res->out_len >= 2 &&
                  strncmp(res->out, "no", 2) == 0;
    snprintf(what, sizeof(what), "%s%s%s", c->rbac[i].resource,
             c->rbac[i].sub ? "/" : "", c->rbac[i].sub ? c->rbac[i].sub : "");
    if (c->asking_alt) {
        /* The first verb was denied; this one would also serve. */
        c->asking_alt = false;
        c->rbac_next++;
        if (res->exit_code == 0) {
            mark(c, true, "RBAC: can %s %s in %s (%s; not %s)",
                 c->rbac[i].alt, what, c->nsdesc, c->rbac[i].alt_why,
                 c->rbac[i].verb);
        } else {
            mark(c, false,
                 "RBAC: cannot %s nor %s %s in %s; a Role granting '%s' on "
                 "'%s' is needed (README: Real clusters)",
                 c->rbac[i].verb, c->rbac[i].alt, what, c->nsdesc,
                 c->rbac[i].verb, what);
        }
        step_rbac(c);
        return;
    }
    if (denied && c->rbac[i].alt != NULL) {
        c->asking_alt = true;
        ask_rbac(c, c->rbac[i].alt);
        return;
    }
    c->rbac_next++;
    if (res->exit_code == 0) {
        mark(c, true, "RBAC: can %s %s in %s", c->rbac[i].verb, what,
             c->nsdesc);
    } else if (denied) {
        mark(c, false,
             "RBAC: cannot %s %s in %s; a Role granting '%s' on '%s' is "
             "needed (README: Real clusters)",
             c->rbac[i].verb, what, c->nsdesc, c->rbac[i].verb, what);
    } else {
        explain(c, res, what, msg, sizeof(msg));
        mark(c, false, "RBAC: cannot check %s %s: %s", c->rbac[i].verb, what,
             msg);
    }
    step_rbac(c);
}

static void ask_rbac(struct check *c, const char *verb)
{
    size_t i = c->rbac_next;
    char sub[64];
    const char *args[] = {"auth", "can-i", verb, c->rbac[i].resource, NULL,
                          NULL};
    if (c->rbac[i].sub != NULL) {
        snprintf(sub, sizeof(sub), "--subresource=%s", c->rbac[i].sub);
        args[4] = sub;
    }
    run(c, args, on_rbac);
}

static void step_rbac(struct check *c)
{
    if (c->rbac_next == c->n_rbac) {
        finish(c);
        return;
    }
    ask_rbac(c, c->rbac[c->rbac_next].verb);
}

static void plan_rbac(struct check *c)
{
    size_t n = 0;
#define RBAC(v, r, s)                                                      \
    (c->rbac[n].verb = (v), c->rbac[n].resource = (r),                     \
     c->rbac[n].sub = (s), c->rbac[n].alt = NULL, n++)
    if (c->deployment) {
        RBAC("get", c->resource, NULL);
        RBAC("list", "pods", NULL);
    }
    RBAC("get", "pods", NULL);
    /* kubectl 1.32 patches the subresource; older ones PUT it. */
    RBAC(c->minor >= 32 ? "patch" : "update", "pods", "ephemeralcontainers");
    RBAC("create", "pods", "exec");
    if (c->minor >= 30) {
        /* kubectl 1.30 and later exec over a WebSocket, a GET, and fall
         * back to SPDY (create) when it is refused: either verb serves. */
        c->rbac[n - 1].alt = "get";
        c->rbac[n - 1].alt_why = "kubectl 1.30 and later exec over a "
                                 "WebSocket";
    }
#undef RBAC
    c->n_rbac = n;
    c->rbac_next = 0;
    c->asking_alt = false;
}

/* ---- Pod Security: the namespace's labels and the tap profile ---- */

static void on_namespace(struct check *c, const struct kubectl_result *res)
{
    char msg[1024];
    struct kube_namespace_psa psa;
    enum kube_psa_level level = KUBE_PSA_PRIVILEGED;
    enum tm_tap_profile want = c->o->tap_profile;
    if (res->exit_code != 0 ||
        kube_parse_namespace_psa(res->out, res->out_len, &psa, msg,
                                 sizeof(msg)) < 0) {
        if (res->exit_code != 0) {
            char what[96];
            snprintf(what, sizeof(what), "namespace %s", c->ns);
            explain(c, res, what, msg, sizeof(msg));
        }
        mark(c, true,
             "Pod Security: the labels of namespace %s are not readable "
             "(%s); with --tap-profile auto a refusal of the NET_RAW tap is "
             "retried with the baseline profile",
             c->ns, msg);
        step_rbac(c);
        return;
    }
    if (psa.enforce[0] &&
        !kube_pod_security_parse_level(psa.enforce, &level)) {
        mark(c, false,
             "Pod Security: namespace %s enforces an unknown level \"%s\"",
             c->ns, psa.enforce);
        step_rbac(c);
        return;
    }
    const char *shown = psa.enforce[0] ? psa.enforce : "none (privileged)";
    if (c->have_pod && c->pod.has_tap) {
        mark(c, true,
             "Pod Security: enforce=%s in namespace %s; the existing tap (%s "
             "profile) is reused, nothing is admitted",
             shown, c->ns,
             c->pod.tap_profile == KUBE_TAP_NETRAW ? "netraw" : "baseline");
    } else if (level == KUBE_PSA_RESTRICTED) {
        mark(c, false,
             "Pod Security: enforce=restricted in namespace %s admits no tap "
             "that can capture (non-root, every capability dropped); the "
             "namespace needs an exemption or the baseline or privileged "
             "level",
             c->ns);
    } else if (level == KUBE_PSA_BASELINE && want == TM_TAP_NETRAW) {
        mark(c, false,
             "Pod Security: enforce=baseline in namespace %s refuses the "
             "NET_RAW tap that --tap-profile netraw asks for; use "
             "--tap-profile auto or baseline",
             c->ns);
    } else if (level == KUBE_PSA_BASELINE || want == TM_TAP_BASELINE) {
        mark(c, true,
             "Pod Security: enforce=%s in namespace %s; tap profile "
             "baseline (no capability added: it captures where the runtime "
             "grants NET_RAW by default, as containerd does and CRI-O does "
             "not)",
             shown, c->ns);
    } else {
        mark(c, true,
             "Pod Security: enforce=%s in namespace %s; tap profile netraw "
             "(NET_RAW only)",
             shown, c->ns);
    }
    step_rbac(c);
}

static void step_namespace(struct check *c)
{
    plan_rbac(c);
    if (c->ns[0] == '\0') {
        mark(c, true,
             "Pod Security: not checked (no namespace known without a pod; "
             "pass -n)");
        step_rbac(c);
        return;
    }
    const char *args[] = {"get", "namespace", c->ns, "-o", "json", NULL};
    run(c, args, on_namespace);
}

/* ---- the pod the run would tap ---- */

static void on_node(struct check *c, const struct kubectl_result *res)
{
    char os[32], msg[1024];
    if (res->exit_code != 0 ||
        kube_parse_node_os(res->out, res->out_len, os, sizeof(os), msg,
                           sizeof(msg)) < 0) {
        if (res->exit_code != 0) {
            explain(c, res, "the node", msg, sizeof(msg));
        }
        mark(c, true,
             "node %s: not readable (%s); the pod does not select Windows "
             "nodes",
             c->pod.node_name, msg);
    } else if (strcmp(os, "windows") == 0) {
        mark(c, false,
             "node %s runs Windows, where ephemeral containers are not "
             "supported: tap a pod on a Linux node",
             c->pod.node_name);
    } else {
        mark(c, true, "node %s: %s", c->pod.node_name, os[0] ? os : "no "
                                                                    "operating system label");
    }
    step_namespace(c);
}

static void check_container(struct check *c, const struct kube_pod *pod)
{
    char names[1024] = "";
    const char *want = c->o->container;
    for (size_t i = 0; i < pod->n_containers; i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                 pod->containers[i]);
    }
    if (want == NULL && pod->n_containers == 1) {
        want = pod->containers[0];
    } else if (want == NULL) {
        want = pod->default_container[0] ? pod->default_container
                                         : c->dep.default_container;
        if (want[0] == '\0') {
            mark(c, false,
                 "container: pod %s has several (%s); choose one with -c",
                 pod->name, names);
            return;
        }
    }
    for (size_t i = 0; i < pod->n_containers; i++) {
        if (strcmp(pod->containers[i], want) == 0) {
            mark(c, true, "container %s (the tap targets it)", want);
            return;
        }
    }
    mark(c, false, "container %s not found in pod %s (it has: %s)", want,
         pod->name, names);
}

/* -p as the run resolves it in this pod: a named port, or a Service
 * port mapped to its targetPort. */
static void check_port(struct check *c, const struct kube_pod *pod)
{
    char how[256], err[768], ports[512];
    uint16_t port = 0;
    if (kube_resolve_port(c->service ? &c->svc : NULL, c->o->port_name,
                          c->o->port, pod, &port, how, sizeof(how), err,
                          sizeof(err)) < 0) {
        mark(c, false, "port: %s", err);
        return;
    }
    if (how[0]) {
        mark(c, true, "port: %s; the tap captures TCP port %u", how, port);
    } else if (c->o->port_name != NULL) {
        mark(c, true, "port: %s is %u in pod %s", c->o->port_name, port,
             pod->name);
    } else {
        kube_list_ports(pod, ports, sizeof(ports));
        mark(c, true, "port: the tap captures TCP port %u (pod %s declares "
             "%s)", port, pod->name, ports[0] ? ports : "no ports");
    }
}

/* The mesh the run would see in the pod, and the hop it mirrors: what
 * the start line of a run says. */
static void check_mesh(struct check *c, const struct kube_pod *pod)
{
    if (pod->mesh == KUBE_MESH_NONE) {
        mark(c, true,
             "mesh: none seen in pod %s (no istio-proxy or linkerd-proxy "
             "container or native sidecar, no mesh annotation)",
             pod->name);
    } else if (c->o->mesh_off) {
        mark(c, true,
             "mesh: %s (%s) in pod %s; --mesh off: the run mirrors the "
             "connections from other hosts, which carry the mesh's TLS and "
             "are counted as tls, not replayed",
             kube_mesh_name(pod->mesh), pod->mesh_sign, pod->name);
    } else {
        mark(c, true, "mesh: %s (%s) in pod %s; the run mirrors %s",
             kube_mesh_name(pod->mesh), pod->mesh_sign, pod->name,
             pod->mesh == KUBE_MESH_ISTIO_AMBIENT
                 ? "the plaintext ztunnel delivers on the pod's loopback"
                 : "the sidecar's plaintext connections to the port, not "
                   "the mesh's TLS");
    }
}

static void check_pod(struct check *c)
{
    const struct kube_pod *pod = &c->pod;
    char why[512];
    if (!c->ns[0] && pod->ns[0]) {
        snprintf(c->ns, sizeof(c->ns), "%s", pod->ns);
    }
    if (pod->host_network) {
        mark(c, false,
             "pod %s uses the host network: a tap would capture the node's "
             "traffic, so tapmirror refuses",
             pod->name);
    } else {
        mark(c, true, "pod %s is not on the host network", pod->name);
    }
    check_container(c, pod);
    if (pod->windows) {
        mark(c, false,
             "pod %s selects Windows nodes, where ephemeral containers are "
             "not supported",
             pod->name);
    }
    check_port(c, pod);
    check_mesh(c, pod);
    if (pod->has_tap) {
        switch (kube_tap_compare(pod, c->o->tap_image,
                                 c->o->container ? c->o->container
                                                 : pod->tap_target,
                                 why, sizeof(why))) {
        case KUBE_TAP_EXCESS:
            mark(c, false,
                 "pod %s has a %s container that %s: tapmirror does not use "
                 "it; replace the pod to remove it",
                 pod->name, KUBE_TAP_NAME, why);
            break;
        case KUBE_TAP_DIFFERS:
            mark(c, true, "pod %s already has a tap that %s: it is reused",
                 pod->name, why);
            break;
        case KUBE_TAP_SAME:
            mark(c, true,
                 "pod %s already has a tap (%s, %s profile): it is reused",
                 pod->name, pod->tap_image,
                 pod->tap_profile == KUBE_TAP_NETRAW ? "netraw" : "baseline");
            break;
        }
        if (pod->tap.state == KUBE_STATE_TERMINATED) {
            mark(c, false,
                 "the tap in pod %s has exited and ephemeral containers "
                 "never restart: replace the pod",
                 pod->name);
        }
    } else {
        mark(c, true, "pod %s has no tap yet: a run injects one",
             pod->name);
        if (kube_tap_nonroot(pod, why, sizeof(why)) != NULL) {
            mark(c, false,
                 "a tap in pod %s would run as a non-root user (%s applies "
                 "to it) and tcpdump could not open a capture",
                 pod->name, why);
        }
    }
    if (pod->node_name[0]) {
        const char *args[] = {"get", "node", pod->node_name, "-o", "json",
                              NULL};
        run(c, args, on_node);
        return;
    }
    step_namespace(c);
}

static bool usable(const struct kube_pod *p)
{
    return strcmp(p->phase, "Running") == 0 && !p->terminating;
}

static void on_pods(struct check *c, const struct kubectl_result *res)
{
    char msg[1024], names[1024] = "";
    struct kube_pod *pods = NULL;
    size_t n = 0, refused = 0, running = 0, pick = SIZE_MAX;
    if (res->exit_code != 0) {
        explain(c, res, "pods", msg, sizeof(msg));
        mark(c, false, "pods of %s: %s", c->what, msg);
        step_namespace(c);
        return;
    }
    if (kube_parse_pod_list(res->out, res->out_len, &pods, &n, &refused, msg,
                            sizeof(msg)) < 0) {
        mark(c, false, "pods of %s: %s", c->what, msg);
        step_namespace(c);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!usable(&pods[i])) {
            continue;
        }
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, "%s%s",
                 running++ ? ", " : "", pods[i].name);
        if (pods[i].host_network) {
            continue;
        }
        if (pick == SIZE_MAX || (pods[i].ready && !pods[pick].ready)) {
            pick = i;
        }
    }
    if (running == 0) {
        mark(c, false, "%s in %s has no running pods", c->what, c->nsdesc);
        free(pods);
        step_namespace(c);
        return;
    }
    if (pick == SIZE_MAX) {
        mark(c, false,
             "the pods of %s use the host network: a tap would "
             "capture the node's traffic, so tapmirror refuses",
             c->what);
        free(pods);
        step_namespace(c);
        return;
    }
    mark(c, true, "%s: %zu running pod%s (%s); the run taps %s", c->what,
         running, running == 1 ? "" : "s", names,
         c->o->all_pods ? "each of them (--all-pods)" : pods[pick].name);
    c->pod = pods[pick];
    c->have_pod = true;
    free(pods);
    check_pod(c);
}

static void on_deployment(struct check *c, const struct kubectl_result *res)
{
    char msg[1024], what[300];
    snprintf(what, sizeof(what), "%s", c->what);
    if (res->exit_code != 0) {
        explain(c, res, what, msg, sizeof(msg));
        mark(c, false, "%s", msg);
        step_namespace(c);
        return;
    }
    if (c->service) {
        if (kube_parse_service(res->out, res->out_len, &c->svc, msg,
                               sizeof(msg)) < 0) {
            mark(c, false, "%s: %s", c->what, msg);
            step_namespace(c);
            return;
        }
        snprintf(c->dep.selector, sizeof(c->dep.selector), "%s",
                 c->svc.selector);
    } else if (kube_parse_workload(res->out, res->out_len, c->kind, &c->dep,
                                   msg, sizeof(msg)) < 0) {
        mark(c, false, "%s: %s", c->what, msg);
        step_namespace(c);
        return;
    }
    const char *args[] = {"get",
                          "pods",
                          "-l",
                          c->dep.selector,
                          "--field-selector=status.phase=Running",
                          "-o",
                          "json",
                          NULL};
    run(c, args, on_pods);
}

static void on_pod(struct check *c, const struct kubectl_result *res)
{
    char msg[1024], what[300];
    snprintf(what, sizeof(what), "pod %s", c->target);
    if (res->exit_code != 0) {
        explain(c, res, what, msg, sizeof(msg));
        mark(c, false, "%s", msg);
        step_namespace(c);
        return;
    }
    if (kube_parse_pod(res->out, res->out_len, &c->pod, msg, sizeof(msg)) <
        0) {
        mark(c, false, "pod %s: %s", c->target, msg);
        step_namespace(c);
        return;
    }
    c->have_pod = true;
    mark(c, usable(&c->pod), "pod %s: %s%s", c->pod.name,
         c->pod.phase[0] ? c->pod.phase : "no phase",
         c->pod.terminating ? ", terminating" : "");
    check_pod(c);
}

static void on_version(struct check *c, const struct kubectl_result *res)
{
    char msg[1024];
    int client = -1, server = -1;
    kube_parse_version(res->out, res->out_len, &client, &server, msg,
                       sizeof(msg));
    if (res->exit_code != 0 || server < 0) {
        explain(c, res, "the server version", msg, sizeof(msg));
        mark(c, false, "kubectl and the API server: %s", msg);
        printf("a run would not start: %u item%s to fix\n", c->failures,
               c->failures == 1 ? "" : "s");
        return;
    }
    c->minor = client;
    mark(c, true, "kubectl 1.%d, API server 1.%d", client, server);
    if (c->deployment) {
        const char *args[] = {"get", c->kind, c->target, "-o", "json", NULL};
        run(c, args, on_deployment);
    } else {
        const char *args[] = {"get", "pod", c->target, "-o", "json", NULL};
        run(c, args, on_pod);
    }
}

int mirror_check(const struct tm_options *o)
{
    char path[4096], err[512];
    if (kubectl_find(o->kubectl, path, sizeof(path), err, sizeof(err)) < 0) {
        fprintf(stderr, "tapmirror: %s\n", err);
        return 1;
    }
    struct check *c = tm_xcalloc(1, sizeof(*c));
    c->o = o;
    const char *name = o->target;
    c->kind = kube_target_kind(o->target, &name);
    if (c->kind == NULL) { /* cli.c checked it */
        c->kind = "deployment";
    }
    c->deployment = strcmp(c->kind, "pod") != 0;
    c->service = strcmp(c->kind, "service") == 0;
    snprintf(c->resource, sizeof(c->resource), "%ss", c->kind);
    snprintf(c->target, sizeof(c->target), "%s", name);
    snprintf(c->what, sizeof(c->what), "%s %s", c->kind, name);
    snprintf(c->nsdesc, sizeof(c->nsdesc), "%s%s",
             o->namespace_ ? "namespace " : "the current namespace",
             o->namespace_ ? o->namespace_ : "");
    if (o->namespace_ != NULL) {
        snprintf(c->ns, sizeof(c->ns), "%s", o->namespace_);
    }
    uv_loop_init(&c->loop);
    c->kc = kubectl_new(&c->loop, path, o->kubeconfig, o->context,
                        o->namespace_);
    const char *args[] = {"version", "-o", "json", NULL};
    run(c, args, on_version);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    int code = c->failures == 0 ? 0 : 1;
    kubectl_free(c->kc);
    uv_loop_close(&c->loop);
    free(c);
    return fflush(stdout) == 0 ? code : 1;
}
