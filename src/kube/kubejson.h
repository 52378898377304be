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
#include <stdint.h>

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

/* The tap's security context. NETRAW: every capability dropped but
 * NET_RAW; BASELINE: none added or dropped (the runtime's default set),
 * which Pod Security's baseline level admits. */
enum kube_tap_profile {
    KUBE_TAP_NETRAW = 0,
    KUBE_TAP_BASELINE,
};

#define KUBE_MAX_PORTS     32
#define KUBE_PORT_NAME_LEN 16 /* IANA_SVC_NAME: at most 15 characters */

/* A container port: `name` may be empty. */
struct kube_port {
    char name[KUBE_PORT_NAME_LEN];
    uint16_t port;
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
    enum kube_tap_profile tap_profile; /* of the existing tap */
    long long run_as_user; /* the pod's securityContext; -1: not set */
    bool run_as_non_root;
    char node_name[KUBE_NAME_LEN];
    bool windows; /* nodeSelector kubernetes.io/os=windows or os.name */
    /* The TCP ports its containers declare (spec.containers[].ports),
     * for named ports and for saying where a silent pod listens. */
    struct kube_port ports[KUBE_MAX_PORTS];
    size_t n_ports;
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
char *kube_tap_patch(const char *image, const char *target,
                     enum kube_tap_profile profile);
char *kube_pod_with_tap(const char *pod_json, size_t len, const char *image,
                        const char *target, enum kube_tap_profile profile,
                        char *err, size_t errlen);

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

/*
 * Whether kubectl's standard error is Pod Security admission refusing a
 * pod ("violates PodSecurity \"baseline:latest\": ..."); the level it
 * names ("baseline", made safe to show) goes into `level`.
 */
bool kube_pod_security_refusal(const char *stderr_text, char *level,
                               size_t len);

enum kube_psa_level {
    KUBE_PSA_PRIVILEGED = 0,
    KUBE_PSA_BASELINE,
    KUBE_PSA_RESTRICTED,
};
/* "privileged", "baseline" or "restricted"; false for anything else. */
bool kube_pod_security_parse_level(const char *text,
                                   enum kube_psa_level *level);

/* A namespace's pod-security.kubernetes.io/{enforce,audit,warn} labels
 * (empty when not set), from `kubectl get namespace NS -o json`. */
struct kube_namespace_psa {
    char enforce[32];
    char audit[32];
    char warn[32];
};
int kube_parse_namespace_psa(const char *json, size_t len,
                             struct kube_namespace_psa *psa, char *err,
                             size_t errlen);

/* A node's operating system (label kubernetes.io/os, else
 * status.nodeInfo.operatingSystem; empty if neither), from `kubectl get
 * node NAME -o json`. */
int kube_parse_node_os(const char *json, size_t len, char *os, size_t oslen,
                       char *err, size_t errlen);


/* Why a tap injected into `pod` would run as a user other than root
 * (the pod's runAsUser or runAsNonRoot, which an ephemeral container
 * that sets no user inherits): tcpdump could not open a capture then.
 * Returns `why`, or NULL when the tap would run as root. */
const char *kube_tap_nonroot(const struct kube_pod *pod, char *why,
                             size_t len);

/* Whether tcpdump said it may not open a capture ("You don't have
 * permission to perform this capture", "Operation not permitted"). */
bool kube_capture_not_permitted(const char *stderr_text);

/* The first non-empty line of `text` that is not a warning, tcpdump's
 * "listening on" banner or kubectl's informational log, trimmed and made
 * safe to show, into `out`; a kubectl error log line ("E1207 17:00:00.1
 * 42 file.go:9] ...") is shown without its log header. */
void kube_first_line(const char *text, char *out, size_t len);

/* The line that says why a call failed: the last error line tcpdump
 * printed ("tcpdump: ...", not a banner or a warning), else
 * kube_first_line(). */
void kube_error_line(const char *text, char *out, size_t len);

/*
 * Any workload with a pod selector and a pod template (Deployment,
 * StatefulSet, DaemonSet, ReplicaSet), read as kube_parse_deployment()
 * does; `kind` ("statefulset") words the messages.
 */
int kube_parse_workload(const char *json, size_t len, const char *kind,
                        struct kube_deployment *d, char *err, size_t errlen);

/* One TCP port of a Service: `target_name` is set when its targetPort is
 * a container port's name, else `target_port` is the number (the port
 * itself when targetPort is absent). */
struct kube_service_port {
    char name[64];
    uint16_t port;
    uint16_t target_port;
    char target_name[KUBE_PORT_NAME_LEN];
};

struct kube_service {
    char name[KUBE_NAME_LEN];
    char selector[2048]; /* spec.selector in kubectl -l syntax */
    struct kube_service_port ports[KUBE_MAX_PORTS];
    size_t n_ports;
};

/* A Service: refused without a selector (its endpoints are kept by hand
 * or name something outside the cluster: there are no pods to tap). */
int kube_parse_service(const char *json, size_t len, struct kube_service *s,
                       char *err, size_t errlen);

/*
 * The kind of a mirror target as the user wrote it: "deployment" for NAME,
 * deployment/NAME or deploy/NAME; "statefulset" (sts/), "daemonset"
 * (ds/), "replicaset" (rs/), "service" (svc/) or "pod" (po/). *name is
 * set to what follows the slash. NULL for any other KIND/.
 */
const char *kube_target_kind(const char *target, const char **name);

/* Whether `s` is a port name Kubernetes accepts (IANA_SVC_NAME: 1 to 15
 * lower case letters, digits and '-', a letter among them, no '-' at
 * either end nor twice in a row). */
bool kube_port_name_ok(const char *s);

/*
 * The port the user asked for, as a pod's number: `number` (when `name`
 * is NULL) or the container port called `name`. With a Service, a
 * number or name that is one of the Service's ports is first mapped to
 * its targetPort (a number, or a name looked up in the pod). Returns 0
 * with *out set, or -1 with `err` saying what the pod declares.
 * `how` (may be NULL) receives "service port 80 -> targetPort http" or
 * the like when a mapping was made, else "".
 */
int kube_resolve_port(const struct kube_service *svc, const char *name,
                      uint16_t number, const struct kube_pod *pod,
                      uint16_t *out, char *how, size_t howlen, char *err,
                      size_t errlen);

/* The pod's declared TCP ports, "8080 (http), 9090", into `out`. */
void kube_list_ports(const struct kube_pod *pod, char *out, size_t len);

#endif
