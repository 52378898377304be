/*
 * Reading what kubectl prints, and writing what it is given. Pure: JSON
 * and text in, structures and one-line messages out; no I/O. Everything
 * read from the cluster is treated as untrusted input: lengths are
 * bounded and names are checked before they are passed back to kubectl.
 * Free text that may be shown (a phase, a container's reason and
 * message, a tap's image and target) is made safe for a terminal as it is
 * read (textsafe.h), and so is every piece of kubectl's standard error
 * that goes into a message or an `err`.
 */
#ifndef TAPMIRROR_KUBEJSON_H
#define TAPMIRROR_KUBEJSON_H

#include <stdbool.h>
#include <stddef.h>

#define KUBE_NAME_LEN     254 /* DNS-1123 subdomain, plus NUL */
#define KUBE_MAX_CONTAINERS 32
#define KUBE_MAX_IPS      4
#define KUBE_TAP_NAME     "tapmirror-tap"
/* A workload has hundreds of pods: a pod list longer than this is
 * refused rather than turned into a large array of pods. */
#define KUBE_MAX_POD_LIST 1000
/* cJSON nodes a document may hold (64 bytes each: 128 MiB), counted
 * before it is parsed. kubectl's indented JSON of a pod has well under
 * 1,000 values; dense input such as [0,0,0,...] would otherwise become a
 * tree 32 times its own size. */
#define KUBE_MAX_JSON_VALUES 2000000

enum kube_state {
    KUBE_STATE_NONE = 0, /* no status reported yet */
    KUBE_STATE_WAITING,
    KUBE_STATE_RUNNING,
    KUBE_STATE_TERMINATED,
};

struct kube_container_status {
    enum kube_state state;
    char reason[64];
    char message[256];
    int exit_code;
};

/* A service mesh in front of a pod's containers, from the pod's shape. */
enum kube_mesh {
    KUBE_MESH_NONE = 0,
    KUBE_MESH_ISTIO_SIDECAR, /* an istio-proxy container or native sidecar */
    KUBE_MESH_ISTIO_AMBIENT, /* ztunnel redirects the pod's traffic */
    KUBE_MESH_LINKERD,       /* a linkerd-proxy container or sidecar */
};

struct kube_pod {
    char name[KUBE_NAME_LEN];
    char ns[64];
    char uid[64];
    char phase[32];
    char resource_version[64];
    bool terminating; /* has a deletionTimestamp */
    bool host_network;
    bool ready;
    char containers[KUBE_MAX_CONTAINERS][64];
    size_t n_containers;
    char default_container[64]; /* kubectl.kubernetes.io/default-container */
    char ips[KUBE_MAX_IPS][64];
    size_t n_ips;
    bool has_tap; /* an ephemeral container named KUBE_TAP_NAME */
    char tap_image[256];
    char tap_target[64];
    bool tap_has_command;
    char tap_command[256]; /* command and args, joined by spaces */
    bool tap_writable_root;
    char tap_excess[128]; /* how it has more privilege than tapmirror's
                           * tap ("is privileged"), or empty */
    struct kube_container_status tap;
    enum kube_mesh mesh;
    char mesh_sign[96]; /* what showed it: "container istio-proxy" */
};

struct kube_deployment {
    char name[KUBE_NAME_LEN];
    char selector[2048]; /* in kubectl -l syntax */
    char containers[KUBE_MAX_CONTAINERS][64];
    size_t n_containers;
    char default_container[64];
};

/* Each returns 0, or -1 with a one-line reason in `err`. */
int kube_parse_version(const char *json, size_t len, int *client_minor,
                       int *server_minor, char *err, size_t errlen);
int kube_parse_deployment(const char *json, size_t len,
                          struct kube_deployment *d, char *err,
                          size_t errlen);
int kube_parse_pod(const char *json, size_t len, struct kube_pod *pod,
                   char *err, size_t errlen);
/* Returns owned array in *pods (free()), or -1. A pod that fails the
 * checks (a name that is not DNS-1123, ...) is left out and counted in
 * *refused; `err` then says why the first one was. */
int kube_parse_pod_list(const char *json, size_t len, struct kube_pod **pods,
                        size_t *n, size_t *refused, char *err, size_t errlen);

/* The tap container, for `kubectl patch --subresource=ephemeralcontainers`
 * (strategic merge) and for a PUT of the whole pod with the tap appended
 * (`kubectl replace --raw`). Return owned strings (free()), or NULL with
 * `err` set. */
char *kube_tap_patch(const char *image, const char *target);
char *kube_pod_with_tap(const char *pod_json, size_t len, const char *image,
                        const char *target, char *err, size_t errlen);

/*
 * Compares a pod's existing tap with the one kube_tap_patch() makes for
 * `image` and `target`. KUBE_TAP_EXCESS: it has more privilege (tcpdump
 * would parse traffic with it), and `why` completes "the tap that ...";
 * KUBE_TAP_DIFFERS: the rest differs, and `why` lists how ("uses image X
 * (not Y), targets container B (not A)"); KUBE_TAP_SAME. Text from the
 * cluster is cut to printable ASCII.
 */
enum kube_tap_match {
    KUBE_TAP_SAME = 0,
    KUBE_TAP_DIFFERS,
    KUBE_TAP_EXCESS,
};
enum kube_tap_match kube_tap_compare(const struct kube_pod *pod,
                                     const char *image, const char *target,
                                     char *why, size_t len);

/* "Istio (sidecar)", "Istio (ambient)", "Linkerd", or "no mesh". */
const char *kube_mesh_name(enum kube_mesh mesh);

/* Why a kubectl call failed, from its standard error. */
enum kube_error {
    KUBE_ERR_UNKNOWN = 0,
    KUBE_ERR_CONTEXT,      /* no such context */
    KUBE_ERR_KUBECONFIG,   /* kubeconfig missing or invalid */
    KUBE_ERR_UNREACHABLE,  /* the API server did not answer */
    KUBE_ERR_UNAUTHORIZED, /* credentials rejected */
    KUBE_ERR_NOT_FOUND,    /* the object */
    KUBE_ERR_NAMESPACE,    /* the namespace does not exist */
    KUBE_ERR_FORBIDDEN,    /* RBAC */
    KUBE_ERR_POD_SECURITY, /* Pod Security admission refused the tap */
    KUBE_ERR_NO_EPHEMERAL, /* ephemeral containers unsupported */
    KUBE_ERR_BAD_SUBRESOURCE, /* kubectl too old for --subresource */
    KUBE_ERR_CONFLICT,     /* the pod changed meanwhile */
    KUBE_ERR_TAP_IMMUTABLE, /* a tap with another spec exists */
    KUBE_ERR_NO_TCPDUMP,   /* the tap image lacks tcpdump */
    KUBE_ERR_PRIVDROP,     /* tcpdump cannot drop privileges */
    KUBE_ERR_POD_COMPLETED, /* exec into a finished pod */
};

/*
 * Classifies kubectl's standard error and writes a one-line explanation
 * with what to do into `msg` (for RBAC: the verb and resource that are
 * missing). `what` names the object for not-found messages
 * ("deployment web"), `ns` the namespace (may be NULL).
 */
enum kube_error kube_classify(const char *stderr_text, const char *what,
                              const char *ns, char *msg, size_t len);

/* The first non-empty line of `text` that is not a warning or tcpdump's
 * "listening on" banner, trimmed and made safe to show, into `out`. */
void kube_first_line(const char *text, char *out, size_t len);

/* The line that says why a call failed: the last error line tcpdump
 * printed ("tcpdump: ...", not a banner or a warning), else
 * kube_first_line(). */
void kube_error_line(const char *text, char *out, size_t len);

#endif
