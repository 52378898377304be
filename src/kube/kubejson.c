#include "kubejson.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/textsafe.h"
#include "core/util.h"

static cJSON *child(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static cJSON *path(const cJSON *o, const char *a, const char *b,
                   const char *c)
{
    cJSON *x = child(o, a);
    if (x != NULL && b != NULL) {
        x = child(x, b);
    }
    if (x != NULL && c != NULL) {
        x = child(x, c);
    }
    return x;
}

/* Copies a JSON string if it is one and fits; returns whether it did. */
static bool copy_string(char *dst, size_t size, const cJSON *item)
{
    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        return false;
    }
    size_t n = strlen(item->valuestring);
    if (n >= size) {
        return false;
    }
    memcpy(dst, item->valuestring, n + 1);
    return true;
}

/* Copies a name that goes back to kubectl as an argument or into a
 * message (a node, a default container): only a DNS-1123 name, which can
 * be neither a flag nor a terminal control; anything else leaves dst
 * empty, as if the field were absent. */
static void copy_name(char *dst, size_t size, const cJSON *item)
{
    if (!copy_string(dst, size, item) || !tm_dns1123_name(dst, size - 1)) {
        dst[0] = '\0';
    }
}

/* Copies what fits of free text to be shown (a phase, a status message,
 * an image), made safe for a terminal. */
static void copy_text(char *dst, size_t size, const cJSON *item)
{
    if (cJSON_IsString(item) && item->valuestring != NULL) {
        tm_text_safe_str(dst, size, item->valuestring);
    }
}

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

/* Whether the document holds more values than KUBE_MAX_JSON_VALUES:
 * counted on the text, so an oversized tree is never built. */
static bool too_many_values(const char *json, size_t len)
{
    size_t values = 1;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == ',' || c == '[' || c == '{') {
            if (++values > KUBE_MAX_JSON_VALUES) {
                return true;
            }
        }
    }
    return false;
}

/* Parses what kubectl printed about `what` ("the pod list"), refusing a
 * document too large to build first. NULL with the reason in err. */
static cJSON *parse_kubectl_json(const char *json, size_t len,
                                 const char *what, char *err, size_t errlen)
{
    if (too_many_values(json, len)) {
        snprintf(err, errlen, "kubectl printed too many JSON values for %s",
                 what);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (root == NULL) {
        snprintf(err, errlen, "kubectl printed no valid JSON for %s", what);
    }
    return root;
}

static int minor_of(const cJSON *v)
{
    /* "27", or "32+" from vendor builds. */
    const cJSON *m = child(v, "minor");
    if (!cJSON_IsString(m) || m->valuestring == NULL) {
        return -1;
    }
    int n = 0, digits = 0;
    for (const char *p = m->valuestring; *p >= '0' && *p <= '9'; p++) {
        if (n > 10000) {
            return -1;
        }
        n = n * 10 + (*p - '0');
        digits++;
    }
    return digits ? n : -1;
}

int kube_parse_version(const char *json, size_t len, int *client_minor,
                       int *server_minor, char *err, size_t errlen)
{
    cJSON *root = parse_kubectl_json(json, len, "kubectl version", err,
                                     errlen);
    if (root == NULL) {
        return -1;
    }
    *client_minor = minor_of(child(root, "clientVersion"));
    *server_minor = minor_of(child(root, "serverVersion"));
    cJSON_Delete(root);
    if (*client_minor < 0) {
        return fail(err, errlen, "kubectl version printed no client version");
    }
    return 0;
}

/* Label keys and values as Kubernetes allows them; anything else could
 * change the meaning of the selector handed to kubectl -l. */
static bool label_text_ok(const char *s, bool key)
{
    size_t n = strlen(s);
    if (n == 0 || n > (key ? 317 : 63)) {
        return !key && n == 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                  c == '.' || (key && c == '/');
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Appends to the selector; returns false when it would not fit. */
static bool sel_add(char *sel, size_t size, const char *text)
{
    size_t used = strlen(sel), n = strlen(text);
    if (used + n + 1 > size) {
        return false;
    }
    memcpy(sel + used, text, n + 1);
    return true;
}

static int build_selector(const cJSON *selector, char *sel, size_t size,
                          char *err, size_t errlen)
{
    sel[0] = '\0';
    const cJSON *labels = child(selector, "matchLabels");
    const cJSON *item;
    if (labels != NULL && !cJSON_IsObject(labels)) {
        return fail(err, errlen, "deployment selector's matchLabels is not "
                                 "an object");
    }
    cJSON_ArrayForEach(item, labels)
    {
        if (!cJSON_IsString(item) || item->string == NULL ||
            !label_text_ok(item->string, true) ||
            !label_text_ok(item->valuestring, false)) {
            return fail(err, errlen, "deployment selector has a label that "
                                     "is not a valid label");
        }
        if ((sel[0] && !sel_add(sel, size, ",")) ||
            !sel_add(sel, size, item->string) || !sel_add(sel, size, "=") ||
            !sel_add(sel, size, item->valuestring)) {
            return fail(err, errlen, "deployment selector is too long");
        }
    }
    const cJSON *exprs = child(selector, "matchExpressions");
    if (exprs != NULL && !cJSON_IsArray(exprs)) {
        return fail(err, errlen, "deployment selector's matchExpressions is "
                                 "not a list");
    }
    cJSON_ArrayForEach(item, exprs)
    {
        const cJSON *key = child(item, "key");
        const cJSON *op = child(item, "operator");
        const cJSON *values = child(item, "values");
        if (!cJSON_IsString(key) || !cJSON_IsString(op) ||
            !label_text_ok(key->valuestring, true)) {
            return fail(err, errlen,
                        "deployment selector has an invalid expression");
        }
        char term[1024];
        const char *o = op->valuestring;
        if (strcmp(o, "Exists") == 0) {
            snprintf(term, sizeof(term), "%s", key->valuestring);
        } else if (strcmp(o, "DoesNotExist") == 0) {
            snprintf(term, sizeof(term), "!%s", key->valuestring);
        } else if (strcmp(o, "In") == 0 || strcmp(o, "NotIn") == 0) {
            int n = snprintf(term, sizeof(term), "%s %s (", key->valuestring,
                             strcmp(o, "In") == 0 ? "in" : "notin");
            const cJSON *v;
            bool first = true;
            if (cJSON_GetArraySize(values) == 0) {
                return fail(err, errlen, "deployment selector has an In or "
                                         "NotIn without values");
            }
            cJSON_ArrayForEach(v, values)
            {
                if (!cJSON_IsString(v) ||
                    !label_text_ok(v->valuestring, false) ||
                    (size_t)n + strlen(v->valuestring) + 3 >= sizeof(term)) {
                    return fail(err, errlen, "deployment selector has an "
                                             "invalid value");
                }
                n += snprintf(term + n, sizeof(term) - (size_t)n, "%s%s",
                              first ? "" : ",", v->valuestring);
                first = false;
            }
            snprintf(term + n, sizeof(term) - (size_t)n, ")");
        } else {
            return fail(err, errlen,
                        "deployment selector has an unknown operator");
        }
        if ((sel[0] && !sel_add(sel, size, ",")) ||
            !sel_add(sel, size, term)) {
            return fail(err, errlen, "deployment selector is too long");
        }
    }
    if (sel[0] == '\0') {
        return fail(err, errlen, "the deployment's selector is empty: it "
                                 "would select every pod");
    }
    return 0;
}

static int read_containers(const cJSON *list, char names[][64], size_t *n,
                           char *err, size_t errlen)
{
    const cJSON *c;
    *n = 0;
    cJSON_ArrayForEach(c, list)
    {
        if (*n == KUBE_MAX_CONTAINERS) {
            return fail(err, errlen, "too many containers");
        }
        if (!copy_string(names[*n], 64, child(c, "name")) ||
            !tm_dns1123_name(names[*n], 63)) {
            return fail(err, errlen, "a container has no valid name");
        }
        (*n)++;
    }
    return 0;
}

int kube_parse_deployment(const char *json, size_t len,
                          struct kube_deployment *d, char *err,
                          size_t errlen)
{
    return kube_parse_workload(json, len, "deployment", d, err, errlen);
}

int kube_parse_workload(const char *json, size_t len, const char *kind,
                        struct kube_deployment *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    char what[64];
    snprintf(what, sizeof(what), "the %s", kind);
    cJSON *root = parse_kubectl_json(json, len, what, err, errlen);
    if (root == NULL) {
        return -1;
    }
    int rc = -1;
    if (!copy_string(d->name, sizeof(d->name),
                     path(root, "metadata", "name", NULL)) ||
        !tm_dns1123_name(d->name, KUBE_NAME_LEN - 1)) {
        snprintf(err, errlen, "the %s has no valid name", kind);
        goto out;
    }
    const cJSON *selector = path(root, "spec", "selector", NULL);
    if (!cJSON_IsObject(selector)) {
        snprintf(err, errlen, "the %s has no selector", kind);
        goto out;
    }
    if (build_selector(selector, d->selector, sizeof(d->selector), err,
                       errlen) < 0) {
        goto out;
    }
    const cJSON *tmpl = path(root, "spec", "template", NULL);
    if (read_containers(path(tmpl, "spec", "containers", NULL), d->containers,
                        &d->n_containers, err, errlen) < 0) {
        goto out;
    }
    if (d->n_containers == 0) {
        snprintf(err, errlen, "the %s's pod template has no containers",
                 kind);
        goto out;
    }
    copy_name(d->default_container, sizeof(d->default_container),
              path(tmpl, "metadata", "annotations",
                   "kubectl.kubernetes.io/default-container"));
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

static void read_state(const cJSON *state, struct kube_container_status *st)
{
    const cJSON *s;
    memset(st, 0, sizeof(*st));
    if ((s = child(state, "running")) != NULL && cJSON_IsObject(s)) {
        st->state = KUBE_STATE_RUNNING;
    } else if ((s = child(state, "terminated")) != NULL &&
               cJSON_IsObject(s)) {
        st->state = KUBE_STATE_TERMINATED;
        const cJSON *code = child(s, "exitCode");
        if (cJSON_IsNumber(code)) {
            st->exit_code = code->valueint;
        }
        copy_text(st->reason, sizeof(st->reason), child(s, "reason"));
        copy_text(st->message, sizeof(st->message), child(s, "message"));
    } else if ((s = child(state, "waiting")) != NULL && cJSON_IsObject(s)) {
        st->state = KUBE_STATE_WAITING;
        copy_text(st->reason, sizeof(st->reason), child(s, "reason"));
        copy_text(st->message, sizeof(st->message), child(s, "message"));
    }
}

/* Joins the tap's command and args as it would run. */
static void read_tap_command(const cJSON *c, struct kube_pod *p)
{
    const char *keys[] = {"command", "args"};
    size_t used = 0;
    p->tap_command[0] = '\0';
    p->tap_has_command = child(c, "command") != NULL;
    for (size_t k = 0; k < 2; k++) {
        const cJSON *word;
        cJSON_ArrayForEach(word, child(c, keys[k]))
        {
            const char *text = cJSON_IsString(word) && word->valuestring
                                   ? word->valuestring
                                   : "?";
            int n = snprintf(p->tap_command + used,
                             sizeof(p->tap_command) - used, "%s%s",
                             used ? " " : "", text);
            if (n < 0 || (size_t)n >= sizeof(p->tap_command) - used) {
                return;
            }
            used += (size_t)n;
        }
    }
}

static bool same_capability(const char *name, const char *want)
{
    if (strncasecmp(name, "CAP_", 4) == 0) {
        name += 4;
    }
    return strcasecmp(name, want) == 0;
}

/*
 * How a tap's security context gives more than tapmirror's (every
 * capability dropped but NET_RAW, or with the baseline profile none
 * added and none dropped; no privilege escalation, the RuntimeDefault
 * seccomp profile): writes the first reason found into
 * `why`, or leaves it empty. `pod_sc` is the pod's securityContext,
 * whose seccomp profile applies when the container sets none. The user
 * the tap runs as is not compared: with nothing but NET_RAW, root has no
 * more than any other user.
 */
static void tap_excess(const cJSON *sc, const cJSON *pod_sc, char *why,
                       size_t len)
{
    const cJSON *caps = child(sc, "capabilities");
    const cJSON *item;
    bool drops_all = false;
    why[0] = '\0';
    if (cJSON_IsTrue(child(sc, "privileged"))) {
        snprintf(why, len, "is privileged");
        return;
    }
    cJSON_ArrayForEach(item, child(caps, "add"))
    {
        if (!cJSON_IsString(item) || item->valuestring == NULL) {
            snprintf(why, len, "adds a capability that is not a name");
            return;
        }
        if (!same_capability(item->valuestring, "NET_RAW")) {
            char name[32];
            snprintf(name, sizeof(name), "%s", item->valuestring);
            for (char *q = name; *q; q++) {
                bool ok = (*q >= 'A' && *q <= 'Z') ||
                          (*q >= 'a' && *q <= 'z') ||
                          (*q >= '0' && *q <= '9') || *q == '_';
                *q = ok ? *q : '?';
            }
            snprintf(why, len, "adds capability %s", name);
            return;
        }
    }
    cJSON_ArrayForEach(item, child(caps, "drop"))
    {
        if (cJSON_IsString(item) && item->valuestring != NULL &&
            same_capability(item->valuestring, "ALL")) {
            drops_all = true;
        }
    }
    /* The baseline profile adds nothing and drops nothing: the runtime's
     * default set. NET_RAW on top of that set is more than either. */
    if (!drops_all && cJSON_GetArraySize(child(caps, "add")) > 0) {
        snprintf(why, len, "does not drop ALL capabilities");
        return;
    }
    if (!cJSON_IsFalse(child(sc, "allowPrivilegeEscalation"))) {
        snprintf(why, len, "allows privilege escalation");
        return;
    }
    const cJSON *seccomp = child(child(sc, "seccompProfile"), "type");
    if (seccomp == NULL) {
        seccomp = child(child(pod_sc, "seccompProfile"), "type");
    }
    if (!cJSON_IsString(seccomp) ||
        strcmp(seccomp->valuestring, "RuntimeDefault") != 0) {
        snprintf(why, len, "runs without the RuntimeDefault seccomp profile");
        return;
    }
    const cJSON *apparmor = child(child(sc, "appArmorProfile"), "type");
    if (cJSON_IsString(apparmor) &&
        strcmp(apparmor->valuestring, "Unconfined") == 0) {
        snprintf(why, len, "runs unconfined by AppArmor");
        return;
    }
    const cJSON *proc_mount = child(sc, "procMount");
    if (cJSON_IsString(proc_mount) &&
        strcmp(proc_mount->valuestring, "Unmasked") == 0) {
        snprintf(why, len, "has an unmasked /proc");
        return;
    }
    if (cJSON_IsTrue(child(child(sc, "windowsOptions"), "hostProcess"))) {
        snprintf(why, len, "is a Windows host process");
    }
}

/* Whether the pod has a container or a native sidecar (an init
 * container with restartPolicy Always) named `name`. */
static bool has_proxy(const cJSON *spec, const char *name, bool *native)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, child(spec, "containers"))
    {
        const cJSON *n = child(c, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
            *native = false;
            return true;
        }
    }
    cJSON_ArrayForEach(c, child(spec, "initContainers"))
    {
        const cJSON *n = child(c, "name");
        const cJSON *restart = child(c, "restartPolicy");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0 &&
            cJSON_IsString(restart) &&
            strcmp(restart->valuestring, "Always") == 0) {
            *native = true;
            return true;
        }
    }
    return false;
}

/* A mesh's sidecar is found by its container first, then by the
 * annotation its injector leaves; Istio's ambient mode has no sidecar,
 * only the annotation the CNI agent sets on a redirected pod. A pod with
 * a sidecar is not redirected by ambient, so the sidecar wins. */
static void read_mesh(const cJSON *meta, const cJSON *spec,
                      struct kube_pod *p)
{
    static const struct {
        const char *container, *annotation;
        enum kube_mesh mesh;
    } sidecars[] = {
        {"istio-proxy", "sidecar.istio.io/status", KUBE_MESH_ISTIO_SIDECAR},
        {"linkerd-proxy", "linkerd.io/proxy-version", KUBE_MESH_LINKERD},
    };
    const cJSON *annotations = child(meta, "annotations");
    for (size_t i = 0; i < TM_ARRAY_LEN(sidecars); i++) {
        bool native = false;
        if (has_proxy(spec, sidecars[i].container, &native)) {
            p->mesh = sidecars[i].mesh;
            snprintf(p->mesh_sign, sizeof(p->mesh_sign), "%s %s",
                     native ? "native sidecar" : "container",
                     sidecars[i].container);
            return;
        }
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(sidecars); i++) {
        if (cJSON_IsString(child(annotations, sidecars[i].annotation))) {
            p->mesh = sidecars[i].mesh;
            snprintf(p->mesh_sign, sizeof(p->mesh_sign), "annotation %s",
                     sidecars[i].annotation);
            return;
        }
    }
    const cJSON *ambient = child(annotations, "ambient.istio.io/redirection");
    if (cJSON_IsString(ambient) &&
        strcmp(ambient->valuestring, "enabled") == 0) {
        p->mesh = KUBE_MESH_ISTIO_AMBIENT;
        snprintf(p->mesh_sign, sizeof(p->mesh_sign),
                 "annotation ambient.istio.io/redirection");
    }
}

const char *kube_mesh_name(enum kube_mesh mesh)
{
    switch (mesh) {
    case KUBE_MESH_ISTIO_SIDECAR:
        return "Istio (sidecar)";
    case KUBE_MESH_ISTIO_AMBIENT:
        return "Istio (ambient)";
    case KUBE_MESH_LINKERD:
        return "Linkerd";
    case KUBE_MESH_NONE:
        break;
    }
    return "no mesh";
}

/* Where the pod runs and as whom the tap would: the pod-level user
 * applies to an ephemeral container that sets none, as tapmirror's tap
 * does. */
static void read_pod_placement(const cJSON *spec, struct kube_pod *p)
{
    const cJSON *psc = child(spec, "securityContext");
    const cJSON *user = child(psc, "runAsUser");
    p->run_as_user = cJSON_IsNumber(user) && user->valuedouble >= 0 &&
                             user->valuedouble < 4294967296.0
                         ? (long long)user->valuedouble
                         : -1;
    p->run_as_non_root = cJSON_IsTrue(child(psc, "runAsNonRoot"));
    copy_name(p->node_name, sizeof(p->node_name), child(spec, "nodeName"));
    const cJSON *os = path(spec, "nodeSelector", "kubernetes.io/os", NULL);
    const cJSON *pod_os = path(spec, "os", "name", NULL);
    p->windows = (cJSON_IsString(os) && os->valuestring != NULL &&
                  strcmp(os->valuestring, "windows") == 0) ||
                 (cJSON_IsString(pod_os) && pod_os->valuestring != NULL &&
                  strcmp(pod_os->valuestring, "windows") == 0);
}

/* A JSON number that is a TCP port (1-65535), else 0. */
static uint16_t port_number(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 ||
        v->valuedouble > 65535 || v->valuedouble != (double)v->valueint) {
        return 0;
    }
    return (uint16_t)v->valueint;
}

static bool is_tcp(const cJSON *port)
{
    const cJSON *proto = child(port, "protocol");
    return proto == NULL ||
           (cJSON_IsString(proto) && strcmp(proto->valuestring, "TCP") == 0);
}

/* The containers' declared TCP ports; a malformed one is left out (the
 * API server validates them: this is only a guard). */
static void read_ports(const cJSON *containers, struct kube_pod *p)
{
    const cJSON *c, *port;
    cJSON_ArrayForEach(c, containers)
    {
        cJSON_ArrayForEach(port, child(c, "ports"))
        {
            struct kube_port *kp = &p->ports[p->n_ports];
            uint16_t n = port_number(child(port, "containerPort"));
            if (p->n_ports == KUBE_MAX_PORTS || n == 0 || !is_tcp(port)) {
                continue;
            }
            memset(kp, 0, sizeof(*kp));
            if (child(port, "name") != NULL &&
                (!copy_string(kp->name, sizeof(kp->name),
                              child(port, "name")) ||
                 !kube_port_name_ok(kp->name))) {
                continue;
            }
            kp->port = n;
            p->n_ports++;
        }
    }
}

static int read_pod(const cJSON *root, struct kube_pod *p, char *err,
                    size_t errlen)
{
    memset(p, 0, sizeof(*p));
    const cJSON *meta = child(root, "metadata");
    const cJSON *spec = child(root, "spec");
    const cJSON *status = child(root, "status");
    /* Names read from the cluster go back into kubectl's argv: a name
     * that is not DNS-1123 (say "--kubeconfig=...") is refused. */
    const cJSON *pod_name = child(meta, "name");
    if (!cJSON_IsString(pod_name) || pod_name->valuestring == NULL ||
        pod_name->valuestring[0] == '\0') {
        return fail(err, errlen, "a pod has no name");
    }
    if (!copy_string(p->name, sizeof(p->name), pod_name) ||
        !tm_dns1123_name(p->name, KUBE_NAME_LEN - 1)) {
        char shown[128];
        tm_text_safe_str(shown, sizeof(shown), pod_name->valuestring);
        snprintf(err, errlen,
                 "pod name \"%s\" is not a valid Kubernetes name (DNS-1123, "
                 "at most %d characters)",
                 shown, KUBE_NAME_LEN - 1);
        tm_text_trim_partial(err);
        return -1;
    }
    if (copy_string(p->ns, sizeof(p->ns), child(meta, "namespace")) &&
        !tm_dns1123_name(p->ns, 63)) {
        return fail(err, errlen, "a pod has no valid namespace");
    }
    copy_string(p->uid, sizeof(p->uid), child(meta, "uid"));
    copy_string(p->resource_version, sizeof(p->resource_version),
                child(meta, "resourceVersion"));
    const cJSON *del = child(meta, "deletionTimestamp");
    p->terminating = del != NULL && !cJSON_IsNull(del);
    copy_name(p->default_container, sizeof(p->default_container),
              path(meta, "annotations",
                   "kubectl.kubernetes.io/default-container", NULL));
    p->host_network = cJSON_IsTrue(child(spec, "hostNetwork"));
    read_mesh(meta, spec, p);
    read_pod_placement(spec, p);
    if (read_containers(child(spec, "containers"), p->containers,
                        &p->n_containers, err, errlen) < 0) {
        return -1;
    }
    read_ports(child(spec, "containers"), p);
    const cJSON *c;
    cJSON_ArrayForEach(c, child(spec, "ephemeralContainers"))
    {
        const cJSON *name = child(c, "name");
        if (cJSON_IsString(name) && name->valuestring != NULL &&
            strcmp(name->valuestring, KUBE_TAP_NAME) == 0) {
            p->has_tap = true;
            copy_text(p->tap_image, sizeof(p->tap_image), child(c, "image"));
            copy_text(p->tap_target, sizeof(p->tap_target),
                      child(c, "targetContainerName"));
            read_tap_command(c, p);
            const cJSON *sc = child(c, "securityContext");
            p->tap_writable_root =
                !cJSON_IsTrue(child(sc, "readOnlyRootFilesystem"));
            tap_excess(sc, child(spec, "securityContext"), p->tap_excess,
                       sizeof(p->tap_excess));
            p->tap_profile = cJSON_GetArraySize(path(sc, "capabilities",
                                                     "add", NULL)) > 0
                                 ? KUBE_TAP_NETRAW
                                 : KUBE_TAP_BASELINE;
        }
    }
    copy_text(p->phase, sizeof(p->phase), child(status, "phase"));
    cJSON_ArrayForEach(c, child(status, "conditions"))
    {
        const cJSON *type = child(c, "type");
        const cJSON *st = child(c, "status");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "Ready") == 0 &&
            cJSON_IsString(st) && strcmp(st->valuestring, "True") == 0) {
            p->ready = true;
        }
    }
    cJSON_ArrayForEach(c, child(status, "podIPs"))
    {
        if (p->n_ips < KUBE_MAX_IPS &&
            copy_string(p->ips[p->n_ips], sizeof(p->ips[0]),
                        child(c, "ip"))) {
            p->n_ips++;
        }
    }
    if (p->n_ips == 0 &&
        copy_string(p->ips[0], sizeof(p->ips[0]), child(status, "podIP"))) {
        p->n_ips = 1;
    }
    cJSON_ArrayForEach(c, child(status, "ephemeralContainerStatuses"))
    {
        const cJSON *name = child(c, "name");
        if (cJSON_IsString(name) && name->valuestring != NULL &&
            strcmp(name->valuestring, KUBE_TAP_NAME) == 0) {
            read_state(child(c, "state"), &p->tap);
        }
    }
    return 0;
}

int kube_parse_pod(const char *json, size_t len, struct kube_pod *pod,
                   char *err, size_t errlen)
{
    cJSON *root = parse_kubectl_json(json, len, "the pod", err, errlen);
    if (root == NULL) {
        return -1;
    }
    int rc = read_pod(root, pod, err, errlen);
    cJSON_Delete(root);
    return rc;
}

int kube_parse_pod_list(const char *json, size_t len, struct kube_pod **pods,
                        size_t *n, size_t *refused, char *err, size_t errlen)
{
    *pods = NULL;
    *n = 0;
    *refused = 0;
    cJSON *root = parse_kubectl_json(json, len, "the pod list", err, errlen);
    if (root == NULL) {
        return -1;
    }
    const cJSON *items = child(root, "items");
    int count = cJSON_GetArraySize(items);
    if (count > KUBE_MAX_POD_LIST) {
        cJSON_Delete(root);
        snprintf(err, errlen,
                 "the pod list has %d pods, more than the %d tapmirror "
                 "reads",
                 count, KUBE_MAX_POD_LIST);
        return -1;
    }
    struct kube_pod *out = tm_xcalloc((size_t)count + 1, sizeof(*out));
    const cJSON *it;
    size_t k = 0;
    char why[256];
    cJSON_ArrayForEach(it, items)
    {
        if (k >= (size_t)count) {
            break;
        }
        if (read_pod(it, &out[k], why, sizeof(why)) == 0) {
            k++;
        } else if ((*refused)++ == 0) {
            snprintf(err, errlen, "%s", why);
        }
    }
    cJSON_Delete(root);
    *pods = out;
    *n = k;
    return 0;
}

static cJSON *tap_container(const char *image, const char *target,
                            enum kube_tap_profile profile)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", KUBE_TAP_NAME);
    cJSON_AddStringToObject(c, "image", image);
    cJSON *cmd = cJSON_AddArrayToObject(c, "command");
    cJSON_AddItemToArray(cmd, cJSON_CreateString("sleep"));
    cJSON_AddItemToArray(cmd, cJSON_CreateString("infinity"));
    cJSON_AddStringToObject(c, "targetContainerName", target);
    cJSON *sc = cJSON_AddObjectToObject(c, "securityContext");
    if (profile == KUBE_TAP_NETRAW) {
        /* Capturing needs NET_RAW and nothing else. */
        cJSON *caps = cJSON_AddObjectToObject(sc, "capabilities");
        cJSON *drop = cJSON_AddArrayToObject(caps, "drop");
        cJSON_AddItemToArray(drop, cJSON_CreateString("ALL"));
        cJSON *add = cJSON_AddArrayToObject(caps, "add");
        cJSON_AddItemToArray(add, cJSON_CreateString("NET_RAW"));
    }
    /* KUBE_TAP_BASELINE adds and drops nothing: Pod Security's baseline
     * level admits the runtime's default set, which on containerd holds
     * NET_RAW. */
    cJSON_AddBoolToObject(sc, "allowPrivilegeEscalation", false);
    cJSON_AddBoolToObject(sc, "readOnlyRootFilesystem", true);
    cJSON *seccomp = cJSON_AddObjectToObject(sc, "seccompProfile");
    cJSON_AddStringToObject(seccomp, "type", "RuntimeDefault");
    return c;
}

char *kube_tap_patch(const char *image, const char *target,
                     enum kube_tap_profile profile)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *spec = cJSON_AddObjectToObject(root, "spec");
    cJSON *list = cJSON_AddArrayToObject(spec, "ephemeralContainers");
    cJSON_AddItemToArray(list, tap_container(image, target, profile));
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char *copy = tm_xstrdup(text);
    cJSON_free(text);
    return copy;
}

char *kube_pod_with_tap(const char *pod_json, size_t len, const char *image,
                        const char *target, enum kube_tap_profile profile,
                        char *err, size_t errlen)
{
    cJSON *root = parse_kubectl_json(pod_json, len, "the pod", err, errlen);
    if (root == NULL) {
        return NULL;
    }
    if (!cJSON_IsObject(child(root, "spec"))) {
        cJSON_Delete(root);
        fail(err, errlen, "kubectl printed a pod without a spec");
        return NULL;
    }
    cJSON *spec = child(root, "spec");
    cJSON *list = child(spec, "ephemeralContainers");
    if (!cJSON_IsArray(list)) {
        cJSON_DeleteItemFromObjectCaseSensitive(spec, "ephemeralContainers");
        list = cJSON_AddArrayToObject(spec, "ephemeralContainers");
    }
    cJSON_AddItemToArray(list, tap_container(image, target, profile));
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char *copy = tm_xstrdup(text);
    cJSON_free(text);
    return copy;
}

/* Lines that never say what went wrong: kubectl's own warnings, and the
 * banners tcpdump prints before it captures (a tcpdump that fails later
 * has printed "listening on ..." first). */
static bool noise_line(const char *p)
{
    return strncmp(p, "Warning:", 8) == 0 || strncmp(p, "W1", 2) == 0 ||
           strncmp(p, "I1", 2) == 0 ||
           strncmp(p, "tcpdump: listening on ", 22) == 0 ||
           strncmp(p, "tcpdump: verbose output suppressed", 34) == 0;
}

/* kubectl's internal log lines (klog: "E1207 17:00:00.123456   4242
 * memcache.go:265] couldn't get current server API group list: ...").
 * Returns where the message starts, or NULL if `p` is not such a line. */
static const char *klog_message(const char *p, const char *e)
{
    if (e - p < 6 || strchr("EFWI", p[0]) == NULL) {
        return NULL;
    }
    for (int i = 1; i <= 4; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return NULL;
        }
    }
    if (p[5] != ' ') {
        return NULL;
    }
    for (const char *q = p + 6; q + 1 < e; q++) {
        if (q[0] == ']' && q[1] == ' ') {
            return q + 2;
        }
    }
    return NULL;
}

/* Trims the line that starts at `p` (blanks skipped) and ends at the next
 * line break into out, made safe to show. */
static void shown_line(const char *p, const char *e, char *out, size_t len)
{
    size_t n = (size_t)(e - p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
        n--;
    }
    tm_text_safe(out, len, p, n);
}

/* Copies remote text with anything but printable ASCII replaced: the
 * pod fields are escaped already (textsafe), and this keeps the
 * comparison one ASCII line whatever they hold. */
static void printable(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
    for (char *q = dst; *q; q++) {
        if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e) {
            *q = '?';
        }
    }
}

enum kube_tap_match kube_tap_compare(const struct kube_pod *pod,
                                     const char *image, const char *target,
                                     char *why, size_t len)
{
    char a[256];
    size_t used = 0;
    if (len == 0) {
        return KUBE_TAP_SAME;
    }
    why[0] = '\0';
    if (pod->tap_excess[0]) {
        snprintf(why, len, "%s", pod->tap_excess);
        return KUBE_TAP_EXCESS;
    }
    if (strcmp(pod->tap_image, image) != 0) {
        printable(a, sizeof(a), pod->tap_image);
        used += (size_t)snprintf(why + used, len - used,
                                 "uses image %s (not %s)", a, image);
    }
    if (used < len && strcmp(pod->tap_command, "sleep infinity") != 0) {
        printable(a, sizeof(a), pod->tap_command);
        used += (size_t)snprintf(why + used, len - used,
                                 "%sruns %s%s%s (not sleep infinity)",
                                 used ? ", " : "",
                                 pod->tap_has_command ? "" : "the image's "
                                                             "entrypoint",
                                 !pod->tap_has_command && a[0] ? " " : "",
                                 a);
    }
    if (used < len && strcmp(pod->tap_target, target) != 0) {
        printable(a, sizeof(a), pod->tap_target);
        used += (size_t)snprintf(why + used, len - used,
                                 "%stargets %s%s (not %s)", used ? ", " : "",
                                 a[0] ? "container " : "no container", a,
                                 target);
    }
    if (used < len && pod->tap_writable_root) {
        used += (size_t)snprintf(why + used, len - used,
                                 "%shas a writable root filesystem",
                                 used ? ", " : "");
    }
    return used > 0 ? KUBE_TAP_DIFFERS : KUBE_TAP_SAME;
}

void kube_first_line(const char *text, char *out, size_t len)
{
    const char *p = text;
    if (len == 0) {
        return;
    }
    out[0] = '\0';
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            p++;
        }
        const char *e = p;
        while (*e && *e != '\n' && *e != '\r') {
            e++;
        }
        const char *msg = klog_message(p, e);
        if (msg != NULL && (p[0] == 'E' || p[0] == 'F')) {
            /* kubectl's first logged error names the cause ("dial tcp
             * ...: connection refused") better than the plain line it
             * ends with; its log header says nothing to the user. */
            shown_line(msg, e, out, len);
            return;
        }
        if (msg == NULL && e > p && !noise_line(p)) {
            shown_line(p, e, out, len);
            return;
        }
        p = e;
    }
}

void kube_error_line(const char *text, char *out, size_t len)
{
    const char *p = text, *last = NULL, *last_end = NULL;
    if (len == 0) {
        return;
    }
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            p++;
        }
        const char *e = p;
        while (*e && *e != '\n' && *e != '\r') {
            e++;
        }
        /* tcpdump's errors, and its warnings, start "tcpdump: ". */
        if (strncmp(p, "tcpdump: ", 9) == 0 && !noise_line(p) &&
            strncmp(p, "tcpdump: WARNING", 16) != 0) {
            last = p;
            last_end = e;
        }
        p = e;
    }
    if (last != NULL) {
        shown_line(last, last_end, out, len);
    } else {
        kube_first_line(text, out, len);
    }
}

/* Copies the text between `after` and the next quote into `out`, made
 * safe to show. */
static bool quoted_after(const char *text, const char *after, char *out,
                         size_t len)
{
    const char *p = strstr(text, after);
    if (p == NULL) {
        return false;
    }
    p += strlen(after);
    const char *e = strchr(p, '"');
    if (e == NULL || (size_t)(e - p) >= len) {
        return false;
    }
    tm_text_safe(out, len, p, (size_t)(e - p));
    return true;
}

/* What a message is built from: kubectl's standard error, the line of it
 * that says why (kube_error_line()), and what the caller asked about. */
struct failure {
    const char *text;
    const char *line;
    const char *what;   /* "deployment web", or NULL */
    const char *nsname; /* "namespace shop", or "the current namespace" */
    const char *before, *after; /* the class's, for say_line() */
};

typedef void say_fn(const struct failure *f, char *msg, size_t len);

#define FAILURE_CLAUSES 7
#define FAILURE_WORDS   3

/* One kind of failure. It matches when one of `when`'s clauses does (a
 * clause matches when `text` holds each of its substrings) and, if there
 * is one, `also` agrees; `say` then writes the message, from `before`,
 * the error line and `after` unless it builds its own. */
struct failure_class {
    enum kube_error error;
    const char *when[FAILURE_CLAUSES][FAILURE_WORDS];
    bool (*also)(const char *text);
    say_fn *say;
    const char *before, *after;
};

static bool has_all(const char *text, const char *const words[])
{
    if (words[0] == NULL) {
        return false; /* an unused clause */
    }
    for (size_t i = 0; i < FAILURE_WORDS && words[i] != NULL; i++) {
        if (strstr(text, words[i]) == NULL) {
            return false;
        }
    }
    return true;
}

static bool failure_matches(const struct failure_class *c, const char *text)
{
    for (size_t i = 0; i < FAILURE_CLAUSES; i++) {
        if (has_all(text, c->when[i])) {
            return c->also == NULL || c->also(text);
        }
    }
    return false;
}

static void say_line(const struct failure *f, char *msg, size_t len)
{
    snprintf(msg, len, "%s%s%s", f->before ? f->before : "", f->line,
             f->after ? f->after : "");
}

static void say_pod_security(const struct failure *f, char *msg, size_t len)
{
    char policy[128] = "?";
    quoted_after(f->text, "violates PodSecurity \"", policy, sizeof(policy));
    snprintf(msg, len,
             "Pod Security admission (\"%s\") in %s refuses the tap's "
             "NET_RAW capability; the namespace needs "
             "pod-security.kubernetes.io/enforce=privileged, or an "
             "exemption",
             policy, f->nsname);
}

/* RBAC: who may not do what, and the Role that would let them. */
static void say_forbidden(const struct failure *f, char *msg, size_t len)
{
    char user[128] = "?", verb[32] = "?", res[128] = "?", group[64] = "";
    quoted_after(f->text, "User \"", user, sizeof(user));
    const char *at = strstr(f->text, "\" cannot ");
    char word[32];
    if (at != NULL && sscanf(at + 9, "%31s", word) == 1) {
        tm_text_safe_str(verb, sizeof(verb), word);
    }
    quoted_after(f->text, "resource \"", res, sizeof(res));
    quoted_after(f->text, "in API group \"", group, sizeof(group));
    snprintf(msg, len,
             "not allowed: %s cannot %s %s%s%s in %s; a Role granting "
             "'%s' on '%s' is needed",
             user, verb, res, group[0] ? "." : "", group, f->nsname, verb,
             res);
}

/* Only when the namespace's name can be shown; else it is an object that
 * was not found. */
static bool names_a_namespace(const char *text)
{
    char name[128];
    return quoted_after(text, "namespaces \"", name, sizeof(name));
}

static void say_namespace(const struct failure *f, char *msg, size_t len)
{
    char name[128] = "?";
    quoted_after(f->text, "namespaces \"", name, sizeof(name));
    snprintf(msg, len, "namespace %s not found", name);
}

static void say_not_found(const struct failure *f, char *msg, size_t len)
{
    snprintf(msg, len, "%s not found in %s", f->what ? f->what : "object",
             f->nsname);
}

/* kubectl's own default when it finds no kubeconfig at all, but also what
 * a tunnel on that port gives while it is down: not a reason to give up
 * on a tap that was streaming, so it is unreachable, not a kubeconfig
 * problem. */
static void say_no_kubeconfig(const struct failure *f, char *msg, size_t len)
{
    (void)f;
    snprintf(msg, len,
             "cannot reach the Kubernetes API server at localhost:8080, "
             "which is where kubectl goes when it finds no kubeconfig: "
             "check --kubeconfig, $KUBECONFIG or ~/.kube/config");
}

/*
 * The classes, tried in order; the first that matches wins. The order
 * matters because one text can hold another class's words:
 *   - the tap's tcpdump writes what it likes to standard error, so its
 *     own failures are read first, before its words can pass for the
 *     API server's;
 *   - Pod Security admission refuses with "(Forbidden) ... is forbidden"
 *     too, and nothing keeps its reasons from saying "cannot ", so it
 *     comes before RBAC;
 *   - a missing namespace, and a cluster without the ephemeralcontainers
 *     subresource, are NotFound too, and come before the object;
 *   - "invalid configuration: [context was not found ...]" is a missing
 *     context, not any kubeconfig problem;
 *   - localhost:8080 refusing is one case of a refused connection.
 * A row that uses say_line() keeps kubectl's error line in its message.
 */
static const struct failure_class failure_classes[] = {
    {KUBE_ERR_NO_TCPDUMP,
     {{"executable file not found"}, {"tcpdump", "not found", "exec"}},
     NULL, say_line, "the tap image has no tcpdump (",
     "); choose an image with tcpdump with --tap-image"},
    {KUBE_ERR_PRIVDROP, {{"Couldn't change to"}}, NULL, say_line,
     "tcpdump in the tap image tries to drop root and cannot with only "
     "NET_RAW (",
     "); use an image whose tcpdump keeps running as root, such as "
     "nicolaka/netshoot"},
    {KUBE_ERR_POD_SECURITY, {{"violates PodSecurity"}}, NULL,
     say_pod_security, NULL, NULL},
    {KUBE_ERR_FORBIDDEN, {{"cannot ", "forbidden"}, {"cannot ", "Forbidden"}},
     NULL, say_forbidden, NULL, NULL},
    {KUBE_ERR_BAD_SUBRESOURCE, {{"invalid subresource value"}}, NULL,
     say_line, NULL, NULL},
    {KUBE_ERR_TAP_IMMUTABLE, {{"may not be changed"}}, NULL, say_line, NULL,
     NULL},
    {KUBE_ERR_CONFLICT, {{"(Conflict)"}, {"has been modified"}}, NULL,
     say_line, NULL, NULL},
    {KUBE_ERR_NO_EPHEMERAL,
     {{"could not find the requested resource"},
      {"ephemeral containers are disabled"}},
     NULL, say_line,
     "the cluster does not support ephemeral containers (Kubernetes 1.23 "
     "or later is needed): ",
     NULL},
    {KUBE_ERR_NAMESPACE, {{"namespaces \"", "not found"}}, names_a_namespace,
     say_namespace, NULL, NULL},
    {KUBE_ERR_NOT_FOUND, {{"NotFound"}}, NULL, say_not_found, NULL, NULL},
    {KUBE_ERR_CONTEXT,
     {{"context was not found"},
      {"context \"", "does not exist"},
      {"no context exists"}},
     NULL, say_line, "kubeconfig context not found (",
     "); list them with kubectl config get-contexts"},
    {KUBE_ERR_KUBECONFIG,
     {{"error loading config file"},
      {"invalid configuration"},
      {"stat ", "no such file"}},
     NULL, say_line, "kubeconfig problem (",
     "); check --kubeconfig or $KUBECONFIG"},
    {KUBE_ERR_UNAUTHORIZED, {{"Unauthorized"}, {"must be logged in"}}, NULL,
     say_line, "the Kubernetes API server rejected the credentials (", ")"},
    {KUBE_ERR_UNREACHABLE,
     {{"The connection to the server localhost:8080 was refused"}}, NULL,
     say_no_kubeconfig, NULL, NULL},
    {KUBE_ERR_UNREACHABLE,
     {{"connection refused"},
      {"was refused"},
      {"Unable to connect"},
      {"no such host"},
      {"i/o timeout"},
      {"dial tcp"},
      {"connection reset"}},
     NULL, say_line, "cannot reach the Kubernetes API server: ", NULL},
    {KUBE_ERR_POD_COMPLETED, {{"completed pod"}}, NULL, say_line, NULL, NULL},
};

static enum kube_error classify(const char *text, const char *what,
                                const char *ns, char *msg, size_t len)
{
    char line[512];
    kube_error_line(text, line, sizeof(line));
    for (size_t i = 0; i < sizeof(failure_classes) / sizeof(failure_classes[0]);
         i++) {
        const struct failure_class *c = &failure_classes[i];
        if (failure_matches(c, text)) {
            struct failure f = {text, line, what,
                                ns ? ns : "the current namespace", c->before,
                                c->after};
            c->say(&f, msg, len);
            return c->error;
        }
    }
    snprintf(msg, len, "%s", line[0] ? line : "kubectl failed");
    return KUBE_ERR_UNKNOWN;
}

enum kube_error kube_classify(const char *text, const char *what,
                              const char *ns, char *msg, size_t len)
{
    enum kube_error e = classify(text, what, ns, msg, len);
    /* A message cut to `len` ends on a whole character. */
    tm_text_trim_partial(msg);
    return e;
}

bool kube_pod_security_refusal(const char *text, char *level, size_t len)
{
    const char *p = strstr(text, "violates PodSecurity \"");
    if (len > 0) {
        level[0] = '\0';
    }
    if (p == NULL) {
        return false;
    }
    p += strlen("violates PodSecurity \"");
    size_t n = strcspn(p, ":\"\n");
    if (len > 0 && n < len) {
        tm_text_safe(level, len, p, n);
    }
    return true;
}

bool kube_pod_security_parse_level(const char *text,
                                   enum kube_psa_level *level)
{
    static const char *const names[] = {"privileged", "baseline",
                                        "restricted"};
    static const enum kube_psa_level levels[] = {
        KUBE_PSA_PRIVILEGED, KUBE_PSA_BASELINE, KUBE_PSA_RESTRICTED};
    for (size_t i = 0; i < TM_ARRAY_LEN(names); i++) {
        if (strcmp(text, names[i]) == 0) {
            *level = levels[i];
            return true;
        }
    }
    return false;
}

int kube_parse_namespace_psa(const char *json, size_t len,
                             struct kube_namespace_psa *psa, char *err,
                             size_t errlen)
{
    static const char *const modes[] = {"enforce", "audit", "warn"};
    memset(psa, 0, sizeof(*psa));
    cJSON *root = parse_kubectl_json(json, len, "the namespace", err, errlen);
    if (root == NULL) {
        return -1;
    }
    const cJSON *labels = path(root, "metadata", "labels", NULL);
    char *out[] = {psa->enforce, psa->audit, psa->warn};
    for (size_t i = 0; i < TM_ARRAY_LEN(modes); i++) {
        char key[64];
        snprintf(key, sizeof(key), "pod-security.kubernetes.io/%s",
                 modes[i]);
        copy_text(out[i], sizeof(psa->enforce), child(labels, key));
    }
    cJSON_Delete(root);
    return 0;
}

int kube_parse_node_os(const char *json, size_t len, char *os, size_t oslen,
                       char *err, size_t errlen)
{
    if (oslen > 0) {
        os[0] = '\0';
    }
    cJSON *root = parse_kubectl_json(json, len, "the node", err, errlen);
    if (root == NULL) {
        return -1;
    }
    const cJSON *label = path(root, "metadata", "labels", NULL);
    label = child(label, "kubernetes.io/os");
    if (label == NULL) {
        label = path(root, "status", "nodeInfo", "operatingSystem");
    }
    copy_text(os, oslen, label);
    cJSON_Delete(root);
    return 0;
}

const char *kube_tap_nonroot(const struct kube_pod *pod, char *why,
                             size_t len)
{
    if (pod->run_as_user > 0) {
        snprintf(why, len, "the pod's securityContext.runAsUser (%lld)",
                 pod->run_as_user);
        return why;
    }
    if (pod->run_as_non_root && pod->run_as_user != 0) {
        snprintf(why, len, "the pod's securityContext.runAsNonRoot");
        return why;
    }
    return NULL;
}

bool kube_capture_not_permitted(const char *text)
{
    return strstr(text, "tcpdump") != NULL &&
           (strstr(text, "You don't have permission") != NULL ||
            strstr(text, "Operation not permitted") != NULL);
}

/* ---- Services and ports ---- */

const char *kube_target_kind(const char *target, const char **name)
{
    /* The resource names and short names kubectl accepts. */
    static const struct {
        const char *prefix, *kind;
    } kinds[] = {
        {"deployment/", "deployment"},   {"deploy/", "deployment"},
        {"deployments/", "deployment"},  {"statefulset/", "statefulset"},
        {"sts/", "statefulset"},         {"statefulsets/", "statefulset"},
        {"daemonset/", "daemonset"},     {"ds/", "daemonset"},
        {"daemonsets/", "daemonset"},    {"replicaset/", "replicaset"},
        {"rs/", "replicaset"},           {"replicasets/", "replicaset"},
        {"service/", "service"},         {"svc/", "service"},
        {"services/", "service"},        {"pod/", "pod"},
        {"po/", "pod"},                  {"pods/", "pod"},
    };
    const char *slash = strchr(target, '/');
    if (slash == NULL) {
        *name = target;
        return "deployment";
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(target, kinds[i].prefix, n) == 0) {
            *name = target + n;
            return kinds[i].kind;
        }
    }
    *name = target;
    return NULL;
}

bool kube_port_name_ok(const char *s)
{
    size_t n = strlen(s);
    bool letter = false;
    if (n == 0 || n > KUBE_PORT_NAME_LEN - 1 || s[0] == '-' ||
        s[n - 1] == '-') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'a' && c <= 'z') {
            letter = true;
        } else if (c == '-') {
            if (s[i + 1] == '-') {
                return false;
            }
        } else if (c < '0' || c > '9') {
            return false;
        }
    }
    return letter;
}

static int read_service_port(const cJSON *item, struct kube_service_port *sp,
                             char *err, size_t errlen)
{
    memset(sp, 0, sizeof(*sp));
    sp->port = port_number(child(item, "port"));
    if (sp->port == 0) {
        return fail(err, errlen, "the service has a port without a valid "
                                 "number");
    }
    const cJSON *name = child(item, "name");
    if (name != NULL && (!copy_string(sp->name, sizeof(sp->name), name) ||
                         !tm_dns1123_name(sp->name, 63))) {
        return fail(err, errlen, "the service has a port with an invalid "
                                 "name");
    }
    const cJSON *target = child(item, "targetPort");
    if (target == NULL) {
        sp->target_port = sp->port; /* as the API server defaults it */
    } else if (cJSON_IsString(target)) {
        if (!copy_string(sp->target_name, sizeof(sp->target_name), target) ||
            !kube_port_name_ok(sp->target_name)) {
            return fail(err, errlen, "the service has a targetPort that is "
                                     "not a valid port name");
        }
    } else if ((sp->target_port = port_number(target)) == 0) {
        return fail(err, errlen, "the service has a targetPort that is not "
                                 "a valid port");
    }
    return 0;
}

int kube_parse_service(const char *json, size_t len, struct kube_service *s,
                       char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    cJSON *root = parse_kubectl_json(json, len, "the service", err, errlen);
    if (root == NULL) {
        return -1;
    }
    int rc = -1;
    const cJSON *item;
    if (!copy_string(s->name, sizeof(s->name),
                     path(root, "metadata", "name", NULL)) ||
        !tm_dns1123_name(s->name, KUBE_NAME_LEN - 1)) {
        fail(err, errlen, "the service has no valid name");
        goto out;
    }
    const cJSON *selector = path(root, "spec", "selector", NULL);
    if (selector != NULL && !cJSON_IsObject(selector)) {
        fail(err, errlen, "the service's selector is not an object");
        goto out;
    }
    cJSON_ArrayForEach(item, selector)
    {
        if (!cJSON_IsString(item) || item->string == NULL ||
            !label_text_ok(item->string, true) ||
            !label_text_ok(item->valuestring, false)) {
            fail(err, errlen, "the service's selector has a label that is "
                              "not a valid label");
            goto out;
        }
        if ((s->selector[0] && !sel_add(s->selector, sizeof(s->selector),
                                        ",")) ||
            !sel_add(s->selector, sizeof(s->selector), item->string) ||
            !sel_add(s->selector, sizeof(s->selector), "=") ||
            !sel_add(s->selector, sizeof(s->selector), item->valuestring)) {
            fail(err, errlen, "the service's selector is too long");
            goto out;
        }
    }
    if (s->selector[0] == '\0') {
        fail(err, errlen, "the service has no selector (its endpoints are "
                          "managed by hand, or it names an external "
                          "address): tap one of its pods by name");
        goto out;
    }
    cJSON_ArrayForEach(item, path(root, "spec", "ports", NULL))
    {
        if (!is_tcp(item)) {
            continue;
        }
        if (s->n_ports == KUBE_MAX_PORTS) {
            fail(err, errlen, "the service has too many ports");
            goto out;
        }
        if (read_service_port(item, &s->ports[s->n_ports], err, errlen) < 0) {
            goto out;
        }
        s->n_ports++;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

void kube_list_ports(const struct kube_pod *pod, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < pod->n_ports && used < len; i++) {
        const struct kube_port *p = &pod->ports[i];
        int n = p->name[0]
                    ? snprintf(out + used, len - used, "%s%u (%s)",
                               i ? ", " : "", p->port, p->name)
                    : snprintf(out + used, len - used, "%s%u", i ? ", " : "",
                               p->port);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    if (pod->n_ports == 0) {
        snprintf(out, len, "none declared");
    }
}

static int named_port(const struct kube_pod *pod, const char *name,
                      uint16_t *out, char *err, size_t errlen)
{
    char ports[512];
    for (size_t i = 0; i < pod->n_ports; i++) {
        if (strcmp(pod->ports[i].name, name) == 0) {
            *out = pod->ports[i].port;
            return 0;
        }
    }
    kube_list_ports(pod, ports, sizeof(ports));
    snprintf(err, errlen,
             "pod %s has no TCP container port named '%s' (its ports: %s)",
             pod->name, name, ports);
    return -1;
}

int kube_resolve_port(const struct kube_service *svc, const char *name,
                      uint16_t number, const struct kube_pod *pod,
                      uint16_t *out, char *how, size_t howlen, char *err,
                      size_t errlen)
{
    if (how != NULL && howlen > 0) {
        how[0] = '\0';
    }
    for (size_t i = 0; svc != NULL && i < svc->n_ports; i++) {
        const struct kube_service_port *sp = &svc->ports[i];
        bool match = name != NULL ? sp->name[0] && strcmp(sp->name, name) == 0
                                  : sp->port == number;
        if (!match) {
            continue;
        }
        if (sp->target_name[0]) {
            if (named_port(pod, sp->target_name, out, err, errlen) < 0) {
                return -1;
            }
            if (how != NULL) {
                snprintf(how, howlen,
                         "service port %u is targetPort '%s', port %u in "
                         "pod %s",
                         sp->port, sp->target_name, *out, pod->name);
            }
        } else {
            *out = sp->target_port;
            if (how != NULL && *out != sp->port) {
                snprintf(how, howlen, "service port %u is targetPort %u",
                         sp->port, *out);
            }
        }
        return 0;
    }
    if (name == NULL) {
        *out = number;
        return 0;
    }
    return named_port(pod, name, out, err, errlen);
}
