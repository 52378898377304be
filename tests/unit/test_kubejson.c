/* Unit tests of kubejson.c: kube_classify (kubectl's standard error
 * turned into one line that says what to do), text from the cluster kept
 * off the terminal's control channel, the check of a tap that already
 * exists, and the bounds on what is parsed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/kubejson.h"

/* Classifies kubectl's standard error `text` for deployment web in
 * namespace shop; checks the class and that the message is one line. */
static void expect_class(const char *text, enum kube_error want, char *msg,
                         size_t len)
{
    enum kube_error e =
        kube_classify(text, "deployment web", "namespace shop", msg, len);
    assert_int_equal(e, want);
    assert_null(strchr(msg, '\n'));
}

static void test_no_kubeconfig_says_what_to_do(void **state)
{
    (void)state;
    char msg[512];
    /* Unreachable, not a kubeconfig error: a tunnel on localhost:8080
     * that is down for a moment gives the same line. */
    expect_class("The connection to the server localhost:8080 was refused - "
                 "did you specify the right host or port?\n",
                 KUBE_ERR_UNREACHABLE, msg, sizeof(msg));
    assert_non_null(strstr(msg, "localhost:8080"));
    assert_non_null(strstr(msg, "--kubeconfig"));
    assert_non_null(strstr(msg, "KUBECONFIG"));
}

static void test_refused_elsewhere_is_unreachable(void **state)
{
    (void)state;
    char msg[512];
    expect_class("The connection to the server 10.0.0.1:6443 was refused - "
                 "did you specify the right host or port?\n",
                 KUBE_ERR_UNREACHABLE, msg, sizeof(msg));
    assert_non_null(strstr(msg, "10.0.0.1:6443"));
    expect_class("Unable to connect to the server: dial tcp 10.0.0.1:6443: "
                 "i/o timeout\n",
                 KUBE_ERR_UNREACHABLE, msg, sizeof(msg));
}

static void test_not_found_names_the_object(void **state)
{
    (void)state;
    char msg[512];
    expect_class(
        "Error from server (NotFound): deployments.apps \"web\" not found\n",
        KUBE_ERR_NOT_FOUND, msg, sizeof(msg));
    assert_string_equal(msg, "deployment web not found in namespace shop");
}

static void test_unknown_keeps_the_first_line(void **state)
{
    (void)state;
    char msg[512];
    expect_class("\n  something odd happened  \nsecond line\n",
                 KUBE_ERR_UNKNOWN, msg, sizeof(msg));
    assert_string_equal(msg, "something odd happened");
}

/* No byte of `s` is a C0 control, DEL, ESC or a raw or UTF-8 C1. */
static void assert_no_controls(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && *p <= 0x9f &&
                                        (p == (const unsigned char *)s ||
                                         p[-1] == 0xc2))) {
            fail_msg("control byte %02x at %td in \"%s\"", *p,
                     (const char *)p - s, s);
        }
    }
}

static void test_quoted_text_is_escaped(void **state)
{
    (void)state;
    char msg[512];
    expect_class("Error from server (Forbidden): pods \"w\" is forbidden: "
                 "User \"\x1b[2Jme\x07\" cannot \x1b]0;t\x07get resource "
                 "\"pods/exec\xc2\x9b\" in API group \"\x9b\" in the "
                 "namespace \"shop\"\n",
                 KUBE_ERR_FORBIDDEN, msg, sizeof(msg));
    assert_no_controls(msg);
    assert_string_equal(msg, "not allowed: \\x1b[2Jme\\x07 cannot "
                             "\\x1b]0;t\\x07get pods/exec\\u009b.\\x9b in "
                             "namespace shop; a Role granting "
                             "'\\x1b]0;t\\x07get' on 'pods/exec\\u009b' is "
                             "needed");
    expect_class("Error from server (NotFound): namespaces \"\x1b[8mx\" not "
                 "found\n",
                 KUBE_ERR_NAMESPACE, msg, sizeof(msg));
    assert_string_equal(msg, "namespace \\x1b[8mx not found");
    expect_class("weird \x1b[2J\xc2\x85 failure\n", KUBE_ERR_UNKNOWN, msg,
                 sizeof(msg));
    assert_string_equal(msg, "weird \\x1b[2J\\u0085 failure");
}

static void test_message_cut_on_a_whole_character(void **state)
{
    (void)state;
    char msg[9];
    /* "weird \u00e9" cut after 8 bytes would end in half of the 'e'. */
    expect_class("weird \xc3\xa9\xc3\xa9\n", KUBE_ERR_UNKNOWN, msg,
                 sizeof(msg));
    assert_string_equal(msg, "weird \xc3\xa9");
    char tiny[8];
    expect_class("weird \xc3\xa9\xc3\xa9\n", KUBE_ERR_UNKNOWN, tiny,
                 sizeof(tiny));
    assert_string_equal(tiny, "weird ");
}

static const char listening[] =
    "tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), "
    "snapshot length 262144 bytes\n";

static void test_tcpdump_error_line_not_its_banner(void **state)
{
    (void)state;
    char text[1024], msg[512], line[256];
    snprintf(text, sizeof(text),
             "%stcpdump: Couldn't change to 'tcpdump' uid=102 gid=105: "
             "Operation not permitted\ncommand terminated with exit code 1\n",
             listening);
    expect_class(text, KUBE_ERR_PRIVDROP, msg, sizeof(msg));
    assert_non_null(strstr(msg, "(tcpdump: Couldn't change to 'tcpdump' "
                                "uid=102 gid=105: Operation not permitted)"));
    assert_null(strstr(msg, "listening"));
    /* tcpdump's last error wins over its warnings and kubectl's lines. */
    snprintf(text, sizeof(text),
             "tcpdump: WARNING: any: no IPv4 address assigned\n%s"
             "tcpdump: pcap_loop: The interface disappeared\n"
             "command terminated with exit code 1\n",
             listening);
    kube_error_line(text, line, sizeof(line));
    assert_string_equal(line, "tcpdump: pcap_loop: The interface disappeared");
    /* No tcpdump error: the first line that is not its banner. */
    snprintf(text, sizeof(text),
             "%serror: error reading from error stream: next reader: "
             "websocket: close 1006 (abnormal closure): unexpected EOF\n",
             listening);
    kube_error_line(text, line, sizeof(line));
    assert_string_equal(line, "error: error reading from error stream: next "
                              "reader: websocket: close 1006 (abnormal "
                              "closure): unexpected EOF");
    kube_first_line(listening, line, sizeof(line));
    assert_string_equal(line, "");
    /* kubectl's logged error, without its log header... */
    kube_first_line("I1207 17:00:00.1 1 round_trippers.go:553] GET 200\n"
                    "E1207 17:00:00.123456   4242 memcache.go:265] couldn't "
                    "get current server API group list: dial tcp "
                    "127.0.0.1:6443: connect: connection refused\n"
                    "The connection to the server 127.0.0.1:6443 was refused "
                    "- did you specify the right host or port?\n",
                    line, sizeof(line));
    assert_string_equal(line, "couldn't get current server API group list: "
                              "dial tcp 127.0.0.1:6443: connect: connection "
                              "refused");
    /* A line that only looks like a log header is shown as it is. */
    kube_first_line("E12 not a log line\n", line, sizeof(line));
    assert_string_equal(line, "E12 not a log line");
    /* The error line is shown escaped too. */
    kube_error_line("tcpdump: bad \x1b]0;t\x07\x9b" "2J\n", line, sizeof(line));
    assert_string_equal(line, "tcpdump: bad \\x1b]0;t\\x07\\x9b2J");
}

static void test_pod_list_says_why_pods_are_left_out(void **state)
{
    (void)state;
    static const char list[] =
        "{\"items\":["
        "{\"metadata\":{\"name\":\"Web_1\\u001b]0;owned\\u0007\"},"
        "\"spec\":{\"containers\":[{\"name\":\"c\"}]},"
        "\"status\":{\"phase\":\"Running\"}},"
        "{\"metadata\":{\"name\":\"--kubeconfig=/tmp/x\"},"
        "\"spec\":{\"containers\":[{\"name\":\"c\"}]}},"
        "{\"metadata\":{\"name\":\"web-2\"},"
        "\"spec\":{\"containers\":[{\"name\":\"c\"}]},"
        "\"status\":{\"phase\":\"Running\"}}]}";
    struct kube_pod *pods = NULL;
    size_t n = 0, refused = 0;
    char err[256];
    assert_int_equal(kube_parse_pod_list(list, sizeof(list) - 1, &pods, &n,
                                         &refused, err, sizeof(err)),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(pods[0].name, "web-2");
    assert_int_equal(refused, 2);
    assert_string_equal(err, "pod name \"Web_1\\x1b]0;owned\\x07\" is not a "
                             "valid Kubernetes name (DNS-1123, at most 253 "
                             "characters)");
    free(pods);
}

static void test_pod_text_is_escaped(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"metadata\":{\"name\":\"web-0\"},"
        "\"spec\":{\"containers\":[{\"name\":\"c\"}],"
        "\"ephemeralContainers\":[{\"name\":\"tapmirror-tap\","
        "\"image\":\"img\\u001b[2J:1\",\"targetContainerName\":\"c\\u009b\"}]},"
        "\"status\":{\"phase\":\"Pend\\u0007ing\","
        "\"ephemeralContainerStatuses\":[{\"name\":\"tapmirror-tap\","
        "\"state\":{\"waiting\":{\"reason\":\"ErrImagePull\\u202e\","
        "\"message\":\"pull \\u001b[8mdenied\"}}}]}}";
    struct kube_pod pod;
    char err[256];
    assert_int_equal(kube_parse_pod(doc, sizeof(doc) - 1, &pod, err,
                                    sizeof(err)),
                     0);
    assert_string_equal(pod.tap_image, "img\\x1b[2J:1");
    assert_string_equal(pod.tap_target, "c\\u009b");
    assert_string_equal(pod.phase, "Pend\\x07ing");
    assert_string_equal(pod.tap.reason, "ErrImagePull\\u202e");
    assert_string_equal(pod.tap.message, "pull \\x1b[8mdenied");
}

/* A node name goes back to kubectl (get node NAME) and into --check's
 * lines, a default container into a message: a value that is no DNS-1123
 * name (a flag, a terminal control) is dropped, a valid one kept. */
static void test_names_from_the_pod_are_checked(void **state)
{
    (void)state;
    static const char *const bad[] = {"-oyaml", "--raw=/api", "n1\\u001b[2J",
                                      "N1", "a\\u009bb", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char doc[512], err[256];
        struct kube_pod pod;
        struct kube_deployment dep;
        snprintf(doc, sizeof(doc),
                 "{\"metadata\":{\"name\":\"web-0\",\"annotations\":"
                 "{\"kubectl.kubernetes.io/default-container\":\"%s\"}},"
                 "\"spec\":{\"nodeName\":\"%s\",\"selector\":{\"matchLabels\":"
                 "{\"app\":\"web\"}},\"template\":{\"metadata\":"
                 "{\"annotations\":{\"kubectl.kubernetes.io/"
                 "default-container\":\"%s\"}},\"spec\":{\"containers\":"
                 "[{\"name\":\"c\"}]}},\"containers\":[{\"name\":\"c\"}]}}",
                 bad[i], bad[i], bad[i]);
        assert_int_equal(kube_parse_pod(doc, strlen(doc), &pod, err,
                                        sizeof(err)),
                         0);
        assert_string_equal(pod.node_name, "");
        assert_string_equal(pod.default_container, "");
        assert_int_equal(kube_parse_deployment(doc, strlen(doc), &dep, err,
                                               sizeof(err)),
                         0);
        assert_string_equal(dep.default_container, "");
    }
    static const char good[] =
        "{\"metadata\":{\"name\":\"web-0\",\"annotations\":"
        "{\"kubectl.kubernetes.io/default-container\":\"api\"}},"
        "\"spec\":{\"nodeName\":\"ip-10-0-1-2.eu-west-1.compute.internal\","
        "\"containers\":[{\"name\":\"api\"}]}}";
    struct kube_pod pod;
    char err[256];
    assert_int_equal(kube_parse_pod(good, sizeof(good) - 1, &pod, err,
                                    sizeof(err)),
                     0);
    assert_string_equal(pod.node_name,
                        "ip-10-0-1-2.eu-west-1.compute.internal");
    assert_string_equal(pod.default_container, "api");
}

#define IMAGE "docker.io/nicolaka/netshoot:v0.16"
#define BASE_POD                                                               \
    "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"shop\"},"               \
    "\"spec\":{\"containers\":[{\"name\":\"api\"},{\"name\":\"envoy\"}]},"     \
    "\"status\":{\"phase\":\"Running\"}}"

/* A pod whose tap is the container JSON `tap`. */
static void parse_pod_with(const char *tap, const char *pod_sc,
                           struct kube_pod *pod)
{
    char json[4096], err[256];
    snprintf(json, sizeof(json),
             "{\"metadata\":{\"name\":\"web-1\"},\"spec\":{%s%s"
             "\"containers\":[{\"name\":\"api\"}],"
             "\"ephemeralContainers\":[%s]}}",
             pod_sc ? "\"securityContext\":" : "", pod_sc ? pod_sc : "",
             tap);
    if (pod_sc != NULL) {
        /* the comma after the pod's securityContext */
        char *p = strstr(json, "\"containers\"");
        memmove(p + 1, p, strlen(p) + 1);
        *p = ',';
    }
    assert_int_equal(kube_parse_pod(json, strlen(json), pod, err,
                                    sizeof(err)),
                     0);
    assert_true(pod->has_tap);
}

/* A tap as tapmirror makes it, with `sc` as its securityContext. */
static enum kube_tap_match compare_sc(const char *sc, const char *pod_sc,
                                      char *why, size_t len)
{
    char tap[1024];
    struct kube_pod pod;
    snprintf(tap, sizeof(tap),
             "{\"name\":\"tapmirror-tap\",\"image\":\"" IMAGE "\","
             "\"command\":[\"sleep\",\"infinity\"],"
             "\"targetContainerName\":\"api\",\"securityContext\":%s}",
             sc);
    parse_pod_with(tap, pod_sc, &pod);
    return kube_tap_compare(&pod, IMAGE, "api", why, len);
}

#define HARDENED_CAPS                                                          \
    "\"capabilities\":{\"drop\":[\"ALL\"],\"add\":[\"NET_RAW\"]}"
#define NO_ESCALATION "\"allowPrivilegeEscalation\":false"
#define RUNTIME_DEFAULT "\"seccompProfile\":{\"type\":\"RuntimeDefault\"}"
#define READ_ONLY "\"readOnlyRootFilesystem\":true"

static void test_tapmirrors_own_tap_is_the_same(void **state)
{
    (void)state;
    char err[256], why[512];
    struct kube_pod pod;
    /* The pod as tapmirror's PUT leaves it. */
    char *body = kube_pod_with_tap(BASE_POD, strlen(BASE_POD), IMAGE, "api",
                                   KUBE_TAP_NETRAW, err, sizeof(err));
    assert_non_null(body);
    assert_int_equal(kube_parse_pod(body, strlen(body), &pod, err,
                                    sizeof(err)),
                     0);
    free(body);
    assert_true(pod.has_tap);
    assert_int_equal(kube_tap_compare(&pod, IMAGE, "api", why, sizeof(why)),
                     KUBE_TAP_SAME);
    assert_string_equal(why, "");
    /* The same tap seen from -c envoy targets another container. */
    assert_int_equal(kube_tap_compare(&pod, IMAGE, "envoy", why,
                                      sizeof(why)),
                     KUBE_TAP_DIFFERS);
    assert_string_equal(why, "targets container api (not envoy)");
}

static void test_tap_with_more_privilege_is_refused(void **state)
{
    (void)state;
    static const struct {
        const char *sc, *pod_sc, *why;
    } cases[] = {
        {"{\"privileged\":true," HARDENED_CAPS "," NO_ESCALATION
         "," RUNTIME_DEFAULT "}",
         NULL, "is privileged"},
        {"{\"capabilities\":{\"drop\":[\"ALL\"],\"add\":[\"NET_RAW\","
         "\"SYS_ADMIN\"]}," NO_ESCALATION "," RUNTIME_DEFAULT "}",
         NULL, "adds capability SYS_ADMIN"},
        {"{\"capabilities\":{\"drop\":[\"ALL\"],\"add\":[\"ALL\"]},"
         NO_ESCALATION "," RUNTIME_DEFAULT "}",
         NULL, "adds capability ALL"},
        {"{\"capabilities\":{\"drop\":[\"ALL\"],\"add\":[\"x\\u001b[2J\"]},"
         NO_ESCALATION "," RUNTIME_DEFAULT "}",
         NULL, "adds capability x??2J"},
        {"{\"capabilities\":{\"add\":[\"NET_RAW\"]}," NO_ESCALATION
         "," RUNTIME_DEFAULT "}",
         NULL, "does not drop ALL capabilities"},
        {"{" HARDENED_CAPS "," RUNTIME_DEFAULT "}", NULL,
         "allows privilege escalation"},
        {"{" HARDENED_CAPS ",\"allowPrivilegeEscalation\":true,"
         RUNTIME_DEFAULT "}",
         NULL, "allows privilege escalation"},
        {"{" HARDENED_CAPS "," NO_ESCALATION "}", NULL,
         "runs without the RuntimeDefault seccomp profile"},
        {"{" HARDENED_CAPS "," NO_ESCALATION
         ",\"seccompProfile\":{\"type\":\"Unconfined\"}}",
         "{" RUNTIME_DEFAULT "}",
         "runs without the RuntimeDefault seccomp profile"},
        {"{" HARDENED_CAPS "," NO_ESCALATION "," RUNTIME_DEFAULT
         ",\"appArmorProfile\":{\"type\":\"Unconfined\"}}",
         NULL, "runs unconfined by AppArmor"},
        {"{" HARDENED_CAPS "," NO_ESCALATION "," RUNTIME_DEFAULT
         ",\"procMount\":\"Unmasked\"}",
         NULL, "has an unmasked /proc"},
        {"{\"capabilities\":{\"drop\":[\"all\"],\"add\":[\"CAP_NET_RAW\"]},"
         NO_ESCALATION "," RUNTIME_DEFAULT "," READ_ONLY "}",
         NULL, ""},
        /* The pod's own seccomp profile applies to a tap that sets none;
         * who it runs as adds nothing to NET_RAW. */
        {"{" HARDENED_CAPS "," NO_ESCALATION "," READ_ONLY
         ",\"runAsUser\":0}",
         "{" RUNTIME_DEFAULT "}", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char why[512];
        enum kube_tap_match got = compare_sc(cases[i].sc, cases[i].pod_sc,
                                             why, sizeof(why));
        assert_int_equal(got, cases[i].why[0] ? KUBE_TAP_EXCESS
                                              : KUBE_TAP_SAME);
        assert_string_equal(why, cases[i].why);
    }
}

static void test_tap_differences_are_listed(void **state)
{
    (void)state;
    struct kube_pod pod;
    char why[512];
    parse_pod_with("{\"name\":\"tapmirror-tap\",\"image\":\"other\\n:1\","
                   "\"command\":[\"sh\",\"-c\"],\"args\":[\"sleep 9\"],"
                   "\"targetContainerName\":\"envoy\",\"securityContext\":{"
                   HARDENED_CAPS "," NO_ESCALATION "," RUNTIME_DEFAULT "}}",
                   NULL, &pod);
    assert_int_equal(kube_tap_compare(&pod, IMAGE, "api", why, sizeof(why)),
                     KUBE_TAP_DIFFERS);
    assert_string_equal(why, "uses image other\\n:1 (not " IMAGE "), runs sh "
                             "-c sleep 9 (not sleep infinity), targets "
                             "container envoy (not api), has a writable "
                             "root filesystem");
    parse_pod_with("{\"name\":\"tapmirror-tap\",\"image\":\"" IMAGE "\","
                   "\"securityContext\":{" HARDENED_CAPS "," NO_ESCALATION
                   "," RUNTIME_DEFAULT "," READ_ONLY "}}",
                   NULL, &pod);
    assert_int_equal(kube_tap_compare(&pod, IMAGE, "api", why, sizeof(why)),
                     KUBE_TAP_DIFFERS);
    assert_string_equal(why, "runs the image's entrypoint (not sleep "
                             "infinity), targets no container (not api)");
    /* A short buffer cuts the list, never overruns. */
    char small[20];
    assert_int_equal(kube_tap_compare(&pod, IMAGE, "api", small,
                                      sizeof(small)),
                     KUBE_TAP_DIFFERS);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* A pod list of `n` pods. */
static char *pod_list(size_t n, size_t *len)
{
    size_t size = 64 + n * 128, used = 0;
    char *json = malloc(size);
    assert_non_null(json);
    used += (size_t)snprintf(json, size, "{\"kind\":\"List\",\"items\":[");
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(json + used, size - used,
                                 "%s{\"metadata\":{\"name\":\"web-%zu\"},"
                                 "\"spec\":{\"containers\":[{\"name\":"
                                 "\"api\"}]}}",
                                 i ? "," : "", i);
    }
    used += (size_t)snprintf(json + used, size - used, "]}");
    *len = used;
    return json;
}

static void test_pod_list_is_bounded(void **state)
{
    (void)state;
    struct kube_pod *pods;
    size_t n, len, refused;
    char err[256];
    char *json = pod_list(KUBE_MAX_POD_LIST, &len);
    assert_int_equal(kube_parse_pod_list(json, len, &pods, &n, &refused, err,
                                         sizeof(err)),
                     0);
    assert_int_equal(n, KUBE_MAX_POD_LIST);
    free(pods);
    free(json);
    json = pod_list(KUBE_MAX_POD_LIST + 1, &len);
    assert_int_equal(kube_parse_pod_list(json, len, &pods, &n, &refused, err,
                                         sizeof(err)),
                     -1);
    assert_null(pods);
    assert_string_equal(err, "the pod list has 1001 pods, more than the "
                             "1000 tapmirror reads");
    free(json);
}

static void test_dense_json_is_refused_before_parsing(void **state)
{
    (void)state;
    /* [0,0,...]: two bytes per value, 64 bytes per parsed node. */
    size_t values = KUBE_MAX_JSON_VALUES + 1;
    size_t size = 16 + values * 2;
    char *json = malloc(size);
    assert_non_null(json);
    size_t used = (size_t)snprintf(json, size, "{\"items\":[");
    for (size_t i = 0; i < values; i++) {
        json[used++] = '0';
        json[used++] = ',';
    }
    json[used - 1] = ']';
    json[used++] = '}';
    struct kube_pod *pods, pod;
    size_t n, refused;
    char err[256];
    assert_int_equal(kube_parse_pod_list(json, used, &pods, &n, &refused, err,
                                         sizeof(err)),
                     -1);
    assert_string_equal(err, "kubectl printed too many JSON values for the "
                             "pod list");
    assert_int_equal(kube_parse_pod(json, used, &pod, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too many JSON values"));
    /* Commas and brackets inside strings are not values. */
    size_t slen = (size_t)snprintf(json, size,
                                   "{\"metadata\":{\"name\":\"web-1\","
                                   "\"annotations\":{\"a\":\"");
    for (size_t i = 0; i < values; i++) {
        json[slen++] = i % 2 ? ',' : '[';
    }
    slen += (size_t)snprintf(json + slen, size - slen,
                             "\\\"\"}},\"spec\":{}}");
    assert_int_equal(kube_parse_pod(json, slen, &pod, err, sizeof(err)), 0);
    free(json);
}

/* The mesh kube_parse_pod() sees in a pod with these annotations (JSON
 * members, may be empty) and spec members before "containers". */
static enum kube_mesh mesh_of(const char *annotations, const char *spec,
                              char *sign, size_t len)
{
    char json[4096], err[256];
    struct kube_pod pod;
    snprintf(json, sizeof(json),
             "{\"metadata\":{\"name\":\"web-1\",\"annotations\":{%s}},"
             "\"spec\":{%s\"containers\":[{\"name\":\"api\"}%s]}}",
             annotations, spec[0] == '[' ? "" : spec,
             spec[0] == '[' ? spec + 1 : "");
    assert_int_equal(kube_parse_pod(json, strlen(json), &pod, err,
                                    sizeof(err)),
                     0);
    snprintf(sign, len, "%s", pod.mesh_sign);
    return pod.mesh;
}

static void test_mesh_is_read_from_the_pod(void **state)
{
    (void)state;
    char sign[96];
    static const struct {
        const char *annotations, *spec; /* spec "[,...": more containers */
        enum kube_mesh mesh;
        const char *sign;
    } cases[] = {
        {"", "", KUBE_MESH_NONE, ""},
        /* Istio's injected sidecar: a container, and its annotation. */
        {"\"sidecar.istio.io/status\":\"{\\\"containers\\\":[]}\"",
         "[,{\"name\":\"istio-proxy\"}", KUBE_MESH_ISTIO_SIDECAR,
         "container istio-proxy"},
        /* Istio 1.19+ on Kubernetes 1.29+: a native sidecar. */
        {"", "\"initContainers\":[{\"name\":\"istio-init\"},"
             "{\"name\":\"istio-proxy\",\"restartPolicy\":\"Always\"}],",
         KUBE_MESH_ISTIO_SIDECAR, "native sidecar istio-proxy"},
        /* An init container of that name that runs once is no sidecar. */
        {"", "\"initContainers\":[{\"name\":\"istio-proxy\"}],",
         KUBE_MESH_NONE, ""},
        /* The annotation alone (the container renamed). */
        {"\"sidecar.istio.io/status\":\"{}\"", "", KUBE_MESH_ISTIO_SIDECAR,
         "annotation sidecar.istio.io/status"},
        /* Ambient: no sidecar, the CNI agent's annotation. */
        {"\"ambient.istio.io/redirection\":\"enabled\"", "",
         KUBE_MESH_ISTIO_AMBIENT, "annotation ambient.istio.io/redirection"},
        {"\"ambient.istio.io/redirection\":\"disabled\"", "",
         KUBE_MESH_NONE, ""},
        /* A sidecar pod is not redirected by ambient. */
        {"\"ambient.istio.io/redirection\":\"enabled\"",
         "[,{\"name\":\"istio-proxy\"}", KUBE_MESH_ISTIO_SIDECAR,
         "container istio-proxy"},
        /* Linkerd: the proxy container, its native sidecar, the
         * annotation. */
        {"\"linkerd.io/proxy-version\":\"edge-24.11.8\"",
         "[,{\"name\":\"linkerd-proxy\"}", KUBE_MESH_LINKERD,
         "container linkerd-proxy"},
        {"", "\"initContainers\":[{\"name\":\"linkerd-init\"},"
             "{\"name\":\"linkerd-proxy\",\"restartPolicy\":\"Always\"}],",
         KUBE_MESH_LINKERD, "native sidecar linkerd-proxy"},
        {"\"linkerd.io/proxy-version\":\"stable-2.14.10\"", "",
         KUBE_MESH_LINKERD, "annotation linkerd.io/proxy-version"},
        /* Values of the wrong type say nothing. */
        {"\"linkerd.io/proxy-version\":7", "", KUBE_MESH_NONE, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(mesh_of(cases[i].annotations, cases[i].spec, sign,
                                 sizeof(sign)),
                         cases[i].mesh);
        assert_string_equal(sign, cases[i].sign);
    }
    assert_string_equal(kube_mesh_name(KUBE_MESH_ISTIO_SIDECAR),
                        "Istio (sidecar)");
    assert_string_equal(kube_mesh_name(KUBE_MESH_ISTIO_AMBIENT),
                        "Istio (ambient)");
    assert_string_equal(kube_mesh_name(KUBE_MESH_LINKERD), "Linkerd");
    assert_string_equal(kube_mesh_name(KUBE_MESH_NONE), "no mesh");
}

/* kubectl's standard error for each class, as the clients of 1.27-1.33
 * print it (captured with each client against tests/kube/fakekube.py, a
 * server answering 401, a closed port and a silent one; kubectl adds
 * the E... lines five times, with other timestamps). A call that cannot
 * reach /version runs the dispatcher's own 1.32 client, whatever the
 * server. */
#define POD_NAME "web-7d4b9c6f5d-x2k8q"
#define SA_USER "User \"system:serviceaccount:dev:me\""
#define OCI_NO_TCPDUMP                                                        \
    "error executing command in container: failed to exec in container: "    \
    "failed to start exec "                                                   \
    "\"f42b7a9069c383bbfa5b0a4b3c29d4ebbc393a6d037f7e5be00a358d4f16e417\": " \
    "OCI runtime exec failed: exec failed: unable to start container "       \
    "process: exec: \"tcpdump\": executable file not found in $PATH: unknown"
#define TCPDUMP_BANNER                                                        \
    "tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), "     \
    "snapshot length 262144 bytes\n"
#define PRIVDROP_LINE                                                         \
    "tcpdump: Couldn't change to 'tcpdump' uid=102 gid=105: Operation not "   \
    "permitted"
#define FIVE(line) line line line line line
#define KLOG_401_OLD                                                          \
    "E1207 15:03:30.540130   30188 memcache.go:265] couldn't get current "    \
    "server API group list: the server has asked for the client to provide "  \
    "credentials\n"
#define KLOG_401                                                              \
    "E1207 15:03:31.271593   30267 memcache.go:265] \"Unhandled Error\" "     \
    "err=\"couldn't get current server API group list: the server has asked " \
    "for the client to provide credentials\"\n"
#define LOGIN_401                                                             \
    "error: You must be logged in to the server (the server has asked for "   \
    "the client to provide credentials)\n"
#define KLOG_REFUSED(host, addr)                                              \
    "E1207 15:03:16.864901   28818 memcache.go:265] \"Unhandled Error\" "     \
    "err=\"couldn't get current server API group list: Get "                  \
    "\\\"http://" host "/api?timeout=32s\\\": dial tcp " addr ": connect: "   \
    "connection refused\"\n"
#define KLOG_DEADLINE                                                         \
    "E1207 15:03:35.540052   30305 memcache.go:265] \"Unhandled Error\" "     \
    "err=\"couldn't get current server API group list: Get "                  \
    "\\\"http://127.0.0.1:52041/api?timeout=2s\\\": context deadline "        \
    "exceeded\"\n"

struct stderr_case {
    const char *kubectl; /* the client versions that print `text` */
    const char *text;
    enum kube_error want;
    const char *message; /* the whole message, or */
    const char *starts;  /* how it starts, and */
    const char *holds;   /* a part of kubectl's line it keeps */
};

static const struct stderr_case stderr_cases[] = {
    {"1.27 (SPDY exec)",
     "error: Internal error occurred: " OCI_NO_TCPDUMP "\n",
     KUBE_ERR_NO_TCPDUMP,
     "the tap image has no tcpdump (error: Internal error occurred: "
     OCI_NO_TCPDUMP "); choose an image with tcpdump with --tap-image",
     NULL, NULL},
    {"1.30-1.33 (WebSocket exec)",
     "error: Internal error occurred: Internal error occurred: "
     OCI_NO_TCPDUMP "\n",
     KUBE_ERR_NO_TCPDUMP,
     "the tap image has no tcpdump (error: Internal error occurred: "
     "Internal error occurred: " OCI_NO_TCPDUMP "); choose an image with "
     "tcpdump with --tap-image",
     NULL, NULL},
    {"1.27-1.33",
     TCPDUMP_BANNER PRIVDROP_LINE "\ncommand terminated with exit code 1\n",
     KUBE_ERR_PRIVDROP,
     "tcpdump in the tap image tries to drop root and cannot with only "
     "NET_RAW (" PRIVDROP_LINE "); use an image whose tcpdump keeps running "
     "as root, such as nicolaka/netshoot",
     NULL, NULL},
    {"1.27-1.33 (PUT), 1.32-1.33 (patch)",
     "Error from server (Forbidden): pods \"" POD_NAME "\" is forbidden: "
     "violates PodSecurity \"baseline:latest\": non-default capabilities "
     "(container \"tapmirror-tap\" must not include \"NET_RAW\" in "
     "securityContext.capabilities.add)\n",
     KUBE_ERR_POD_SECURITY,
     "Pod Security admission (\"baseline:latest\") in namespace shop "
     "refuses the tap's NET_RAW capability; the namespace needs "
     "pod-security.kubernetes.io/enforce=privileged, or an exemption",
     NULL, NULL},
    {"1.27-1.33",
     "Error from server (Forbidden): deployments.apps \"web\" is forbidden: "
     SA_USER " cannot get resource \"deployments\" in API group \"apps\" in "
     "the namespace \"shop\"\n",
     KUBE_ERR_FORBIDDEN,
     "not allowed: system:serviceaccount:dev:me cannot get deployments.apps "
     "in namespace shop; a Role granting 'get' on 'deployments' is needed",
     NULL, NULL},
    {"1.27-1.33 (exec; 1.30+ after its WebSocket get was refused)",
     "Error from server (Forbidden): pods \"" POD_NAME "\" is forbidden: "
     SA_USER " cannot create resource \"pods/exec\" in API group \"\" in the "
     "namespace \"shop\"\n",
     KUBE_ERR_FORBIDDEN,
     "not allowed: system:serviceaccount:dev:me cannot create pods/exec in "
     "namespace shop; a Role granting 'create' on 'pods/exec' is needed",
     NULL, NULL},
    {"1.27-1.31",
     "error: invalid subresource value: \"ephemeralcontainers\". Must be one "
     "of [status scale]\n",
     KUBE_ERR_BAD_SUBRESOURCE,
     "error: invalid subresource value: \"ephemeralcontainers\". Must be one "
     "of [status scale]",
     NULL, NULL},
    {"1.27-1.33",
     "The Pod \"" POD_NAME "\" is invalid: spec.ephemeralContainers: "
     "Forbidden: existing ephemeral containers \"tapmirror-tap\" may not be "
     "changed\n",
     KUBE_ERR_TAP_IMMUTABLE,
     "The Pod \"" POD_NAME "\" is invalid: spec.ephemeralContainers: "
     "Forbidden: existing ephemeral containers \"tapmirror-tap\" may not be "
     "changed",
     NULL, NULL},
    {"1.27-1.33",
     "Error from server (Conflict): Operation cannot be fulfilled on pods \""
     POD_NAME "\": the object has been modified; please apply your changes "
     "to the latest version and try again\n",
     KUBE_ERR_CONFLICT,
     "Error from server (Conflict): Operation cannot be fulfilled on pods \""
     POD_NAME "\": the object has been modified; please apply your changes "
     "to the latest version and try again",
     NULL, NULL},
    {"1.27-1.33",
     "Error from server (NotFound): the server could not find the requested "
     "resource\n",
     KUBE_ERR_NO_EPHEMERAL,
     "the cluster does not support ephemeral containers (Kubernetes 1.23 or "
     "later is needed): Error from server (NotFound): the server could not "
     "find the requested resource",
     NULL, NULL},
    {"1.27-1.33",
     "Error from server (NotFound): namespaces \"gone\" not found\n",
     KUBE_ERR_NAMESPACE, "namespace gone not found", NULL, NULL},
    {"1.27-1.33",
     "Error from server (NotFound): deployments.apps \"nope\" not found\n",
     KUBE_ERR_NOT_FOUND, "deployment web not found in namespace shop", NULL,
     NULL},
    {"1.27-1.33 (get, exec)",
     "Error from server (NotFound): pods \"nope\" not found\n",
     KUBE_ERR_NOT_FOUND, "deployment web not found in namespace shop", NULL,
     NULL},
    {"1.27-1.33",
     "Error in configuration: context was not found for specified context: "
     "nope\n",
     KUBE_ERR_CONTEXT,
     "kubeconfig context not found (Error in configuration: context was not "
     "found for specified context: nope); list them with kubectl config "
     "get-contexts",
     NULL, NULL},
    {"1.27-1.33",
     "error: stat /tmp/missing: no such file or directory\n",
     KUBE_ERR_KUBECONFIG,
     "kubeconfig problem (error: stat /tmp/missing: no such file or "
     "directory); check --kubeconfig or $KUBECONFIG",
     NULL, NULL},
    {"1.27-1.33",
     "error: error loading config file \"/tmp/bad.yaml\": yaml: line 3: did "
     "not find expected node content\n",
     KUBE_ERR_KUBECONFIG,
     "kubeconfig problem (error: error loading config file \"/tmp/bad.yaml\": "
     "yaml: line 3: did not find expected node content); check --kubeconfig "
     "or $KUBECONFIG",
     NULL, NULL},
    {"1.27-1.30", FIVE(KLOG_401_OLD) LOGIN_401, KUBE_ERR_UNAUTHORIZED, NULL,
     "the Kubernetes API server rejected the credentials (",
     "provide credentials"},
    {"1.33", FIVE(KLOG_401) LOGIN_401, KUBE_ERR_UNAUTHORIZED, NULL,
     "the Kubernetes API server rejected the credentials (",
     "provide credentials"},
    {"no kubeconfig (the dispatcher's 1.32)",
     FIVE(KLOG_REFUSED("localhost:8080", "127.0.0.1:8080"))
     "The connection to the server localhost:8080 was refused - did you "
     "specify the right host or port?\n",
     KUBE_ERR_UNREACHABLE,
     "cannot reach the Kubernetes API server at localhost:8080, which is "
     "where kubectl goes when it finds no kubeconfig: check --kubeconfig, "
     "$KUBECONFIG or ~/.kube/config",
     NULL, NULL},
    {"closed port (the dispatcher's 1.32)",
     FIVE(KLOG_REFUSED("127.0.0.1:51073", "127.0.0.1:51073"))
     "The connection to the server 127.0.0.1:51073 was refused - did you "
     "specify the right host or port?\n",
     KUBE_ERR_UNREACHABLE, NULL, "cannot reach the Kubernetes API server: ",
     "dial tcp 127.0.0.1:51073: connect: connection refused"},
    {"silent server, --request-timeout=2s (the dispatcher's 1.32)",
     FIVE(KLOG_DEADLINE)
     "Unable to connect to the server: context deadline exceeded\n",
     KUBE_ERR_UNREACHABLE, NULL, "cannot reach the Kubernetes API server: ",
     "context deadline exceeded"},
    {"1.27-1.33, https:// to a plain HTTP server",
     "Unable to connect to the server: tls: first record does not look like "
     "a TLS handshake\n",
     KUBE_ERR_UNREACHABLE,
     "cannot reach the Kubernetes API server: Unable to connect to the "
     "server: tls: first record does not look like a TLS handshake",
     NULL, NULL},
    {"1.27-1.33",
     "error: cannot exec into a container in a completed pod; current phase "
     "is Succeeded\n",
     KUBE_ERR_POD_COMPLETED,
     "error: cannot exec into a container in a completed pod; current phase "
     "is Succeeded",
     NULL, NULL},
    {"1.27 (tap not running yet)",
     "error: unable to upgrade connection: container not found "
     "(\"tapmirror-tap\")\n",
     KUBE_ERR_UNKNOWN,
     "error: unable to upgrade connection: container not found "
     "(\"tapmirror-tap\")",
     NULL, NULL},
    {"1.30-1.33 (tap not running yet)",
     "error: Internal error occurred: unable to upgrade connection: "
     "container not found (\"tapmirror-tap\")\n",
     KUBE_ERR_UNKNOWN,
     "error: Internal error occurred: unable to upgrade connection: "
     "container not found (\"tapmirror-tap\")",
     NULL, NULL},
};

static void test_each_class_from_real_stderr(void **state)
{
    (void)state;
    bool seen[KUBE_ERR_POD_COMPLETED + 1] = {false};
    for (size_t i = 0; i < sizeof(stderr_cases) / sizeof(stderr_cases[0]);
         i++) {
        const struct stderr_case *c = &stderr_cases[i];
        char msg[1024];
        enum kube_error e = kube_classify(c->text, "deployment web",
                                          "namespace shop", msg, sizeof(msg));
        if (e != c->want) {
            fail_msg("case %zu (kubectl %s): class %d, not %d, for \"%s\"", i,
                     c->kubectl, (int)e, (int)c->want, c->text);
        }
        assert_null(strchr(msg, '\n'));
        assert_no_controls(msg);
        if (c->message != NULL) {
            assert_string_equal(msg, c->message);
        } else {
            assert_int_equal(strncmp(msg, c->starts, strlen(c->starts)), 0);
            assert_non_null(strstr(msg, c->holds));
        }
        seen[e] = true;
    }
    /* One case at least for every class. */
    for (int k = KUBE_ERR_UNKNOWN; k <= KUBE_ERR_POD_COMPLETED; k++) {
        if (!seen[k]) {
            fail_msg("no case for class %d", k);
        }
    }
}

/* The baseline-profile tap adds and drops nothing, and is tapmirror's
 * own as much as the NET_RAW one; NET_RAW on top of the runtime's
 * default set is more than either. */
static void test_baseline_profile_tap_is_ours(void **state)
{
    (void)state;
    char err[256], why[512];
    struct kube_pod pod;
    char *patch = kube_tap_patch(IMAGE, "api", KUBE_TAP_BASELINE);
    assert_null(strstr(patch, "capabilities"));
    assert_non_null(strstr(patch, "\"allowPrivilegeEscalation\":false"));
    assert_non_null(strstr(patch, "RuntimeDefault"));
    free(patch);
    patch = kube_tap_patch(IMAGE, "api", KUBE_TAP_NETRAW);
    assert_non_null(strstr(patch, "NET_RAW"));
    free(patch);
    char *body = kube_pod_with_tap(BASE_POD, strlen(BASE_POD), IMAGE, "api",
                                   KUBE_TAP_BASELINE, err, sizeof(err));
    assert_non_null(body);
    assert_int_equal(kube_parse_pod(body, strlen(body), &pod, err,
                                    sizeof(err)),
                     0);
    free(body);
    assert_int_equal(pod.tap_profile, KUBE_TAP_BASELINE);
    assert_int_equal(kube_tap_compare(&pod, IMAGE, "api", why, sizeof(why)),
                     KUBE_TAP_SAME);
    assert_int_equal(compare_sc("{\"capabilities\":{\"add\":[\"NET_RAW\"]},"
                                NO_ESCALATION "," RUNTIME_DEFAULT "}",
                                NULL, why, sizeof(why)),
                     KUBE_TAP_EXCESS);
    assert_string_equal(why, "does not drop ALL capabilities");
    assert_int_equal(compare_sc("{" NO_ESCALATION "," RUNTIME_DEFAULT
                                "," READ_ONLY "}",
                                NULL, why, sizeof(why)),
                     KUBE_TAP_SAME);
    assert_int_equal(compare_sc("{" NO_ESCALATION "}", NULL, why,
                                sizeof(why)),
                     KUBE_TAP_EXCESS);
}

static void test_pod_security_refusal_names_its_level(void **state)
{
    (void)state;
    char level[64];
    enum kube_psa_level psa = KUBE_PSA_PRIVILEGED;
    assert_true(kube_pod_security_refusal(
        "Error from server (Forbidden): pods \"web-1\" is forbidden: "
        "violates PodSecurity \"baseline:latest\": non-default capabilities "
        "(container \"tapmirror-tap\" must not include \"NET_RAW\" in "
        "securityContext.capabilities.add)\n",
        level, sizeof(level)));
    assert_string_equal(level, "baseline");
    assert_true(kube_pod_security_parse_level(level, &psa));
    assert_int_equal(psa, KUBE_PSA_BASELINE);
    assert_true(kube_pod_security_refusal(
        "violates PodSecurity \"restricted:v1.30\": runAsNonRoot != true",
        level, sizeof(level)));
    assert_string_equal(level, "restricted");
    assert_true(kube_pod_security_parse_level(level, &psa));
    assert_int_equal(psa, KUBE_PSA_RESTRICTED);
    /* RBAC, not admission. */
    assert_false(kube_pod_security_refusal(
        "Error from server (Forbidden): pods \"web-1\" is forbidden: User "
        "\"me\" cannot patch resource \"pods/ephemeralcontainers\"",
        level, sizeof(level)));
    assert_string_equal(level, "");
    /* Remote text is made safe; an unknown level is not a level. */
    assert_true(kube_pod_security_refusal("violates PodSecurity \"b\x1b[2J",
                                          level, sizeof(level)));
    assert_null(strchr(level, 0x1b));
    assert_false(kube_pod_security_parse_level(level, &psa));
    assert_false(kube_pod_security_parse_level("", &psa));
}

static void test_namespace_and_node_labels(void **state)
{
    (void)state;
    char err[256], os[32];
    struct kube_namespace_psa psa;
    static const char ns[] =
        "{\"metadata\":{\"name\":\"shop\",\"labels\":{"
        "\"pod-security.kubernetes.io/enforce\":\"baseline\","
        "\"pod-security.kubernetes.io/warn\":\"restricted\"}}}";
    assert_int_equal(kube_parse_namespace_psa(ns, strlen(ns), &psa, err,
                                              sizeof(err)),
                     0);
    assert_string_equal(psa.enforce, "baseline");
    assert_string_equal(psa.warn, "restricted");
    assert_string_equal(psa.audit, "");
    assert_int_equal(kube_parse_namespace_psa("{", 1, &psa, err, sizeof(err)),
                     -1);
    static const char node[] =
        "{\"metadata\":{\"name\":\"n1\",\"labels\":{"
        "\"kubernetes.io/os\":\"windows\"}}}";
    assert_int_equal(kube_parse_node_os(node, strlen(node), os, sizeof(os),
                                        err, sizeof(err)),
                     0);
    assert_string_equal(os, "windows");
    static const char info[] =
        "{\"metadata\":{\"name\":\"n1\"},\"status\":{\"nodeInfo\":{"
        "\"operatingSystem\":\"linux\"}}}";
    assert_int_equal(kube_parse_node_os(info, strlen(info), os, sizeof(os),
                                        err, sizeof(err)),
                     0);
    assert_string_equal(os, "linux");
}

/* Parses a pod with `spec_extra` in its spec. */
static void parse_spec(const char *spec_extra, struct kube_pod *pod)
{
    char json[2048], err[256];
    snprintf(json, sizeof(json),
             "{\"metadata\":{\"name\":\"web-1\"},\"spec\":{%s"
             "\"containers\":[{\"name\":\"api\"},"
             "{\"name\":\"istio-proxy\"}]},"
             "\"status\":{\"phase\":\"Running\"}}",
             spec_extra);
    assert_int_equal(kube_parse_pod(json, strlen(json), pod, err,
                                    sizeof(err)),
                     0);
}

static void test_pod_user_os_and_sidecar(void **state)
{
    (void)state;
    char why[128];
    struct kube_pod pod;
    parse_spec("", &pod);
    assert_null(kube_tap_nonroot(&pod, why, sizeof(why)));
    assert_false(pod.windows);
    assert_int_equal(pod.mesh, KUBE_MESH_ISTIO_SIDECAR);
    assert_string_equal(pod.mesh_sign, "container istio-proxy");
    parse_spec("\"securityContext\":{\"runAsUser\":1000},"
               "\"nodeName\":\"n1\",", &pod);
    assert_non_null(kube_tap_nonroot(&pod, why, sizeof(why)));
    assert_non_null(strstr(why, "runAsUser (1000)"));
    assert_string_equal(pod.node_name, "n1");
    parse_spec("\"securityContext\":{\"runAsNonRoot\":true},", &pod);
    assert_non_null(kube_tap_nonroot(&pod, why, sizeof(why)));
    assert_non_null(strstr(why, "runAsNonRoot"));
    parse_spec("\"securityContext\":{\"runAsUser\":0},", &pod);
    assert_null(kube_tap_nonroot(&pod, why, sizeof(why)));
    parse_spec("\"nodeSelector\":{\"kubernetes.io/os\":\"windows\"},", &pod);
    assert_true(pod.windows);
    parse_spec("\"os\":{\"name\":\"windows\"},", &pod);
    assert_true(pod.windows);
}

static void test_capture_not_permitted(void **state)
{
    (void)state;
    assert_true(kube_capture_not_permitted(
        "tcpdump: any: You don't have permission to perform this capture "
        "on that device\n(socket: Operation not permitted)\n"));
    assert_false(kube_capture_not_permitted(
        "tcpdump: listening on any, link-type LINUX_SLL2\n"));
}

/* ---- Service, StatefulSet/DaemonSet/ReplicaSet and container ports ---- */

static const char SERVICE_JSON[] =
    "{\"kind\":\"Service\",\"metadata\":{\"name\":\"web\"},"
    "\"spec\":{\"selector\":{\"app\":\"web\",\"tier\":\"api\"},"
    "\"ports\":[{\"name\":\"http\",\"port\":80,\"targetPort\":\"web-http\"},"
    "{\"name\":\"admin\",\"port\":9000,\"targetPort\":9901},"
    "{\"name\":\"dns\",\"port\":53,\"protocol\":\"UDP\"},"
    "{\"name\":\"metrics\",\"port\":9100}]}}";

static const char POD_PORTS_JSON[] =
    "{\"metadata\":{\"name\":\"web-1\"},\"spec\":{\"containers\":["
    "{\"name\":\"api\",\"ports\":[{\"name\":\"web-http\","
    "\"containerPort\":8080},{\"containerPort\":8443},"
    "{\"name\":\"syslog\",\"containerPort\":514,\"protocol\":\"UDP\"}]},"
    "{\"name\":\"envoy\",\"ports\":[{\"name\":\"admin\","
    "\"containerPort\":9901,\"protocol\":\"TCP\"}]}]}}";

static void test_service_selector_and_ports(void **state)
{
    (void)state;
    struct kube_service svc;
    char err[256];
    assert_int_equal(kube_parse_service(SERVICE_JSON, strlen(SERVICE_JSON),
                                        &svc, err, sizeof(err)),
                     0);
    assert_string_equal(svc.name, "web");
    assert_string_equal(svc.selector, "app=web,tier=api");
    assert_int_equal(svc.n_ports, 3); /* the UDP port is left out */
    assert_string_equal(svc.ports[0].target_name, "web-http");
    assert_int_equal(svc.ports[0].target_port, 0);
    assert_int_equal(svc.ports[1].target_port, 9901);
    /* No targetPort: the API server's default, the port itself. */
    assert_int_equal(svc.ports[2].port, 9100);
    assert_int_equal(svc.ports[2].target_port, 9100);
}

static void test_service_without_selector_is_refused(void **state)
{
    (void)state;
    struct kube_service svc;
    char err[256];
    const char *none = "{\"metadata\":{\"name\":\"ext\"},\"spec\":{"
                       "\"ports\":[{\"port\":80}]}}";
    assert_int_equal(
        kube_parse_service(none, strlen(none), &svc, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no selector"));
    const char *bad = "{\"metadata\":{\"name\":\"web\"},\"spec\":{"
                      "\"selector\":{\"app\":\"a b\"}}}";
    assert_int_equal(
        kube_parse_service(bad, strlen(bad), &svc, err, sizeof(err)), -1);
    const char *badtarget = "{\"metadata\":{\"name\":\"web\"},\"spec\":{"
                            "\"selector\":{\"app\":\"web\"},\"ports\":[{"
                            "\"port\":80,\"targetPort\":\"--all\"}]}}";
    assert_int_equal(kube_parse_service(badtarget, strlen(badtarget), &svc,
                                        err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "targetPort"));
}

static void test_workload_selector_words_its_kind(void **state)
{
    (void)state;
    struct kube_deployment d;
    char err[256];
    const char *sts =
        "{\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"db\"},\"spec\":{"
        "\"selector\":{\"matchLabels\":{\"app\":\"db\"},\"matchExpressions\":"
        "[{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"a\",\"b\"]}]},"
        "\"template\":{\"spec\":{\"containers\":[{\"name\":\"pg\"}]}}}}";
    assert_int_equal(kube_parse_workload(sts, strlen(sts), "statefulset", &d,
                                         err, sizeof(err)),
                     0);
    assert_string_equal(d.selector, "app=db,tier in (a,b)");
    assert_string_equal(d.containers[0], "pg");
    const char *nosel = "{\"metadata\":{\"name\":\"logs\"},\"spec\":{}}";
    assert_int_equal(kube_parse_workload(nosel, strlen(nosel), "daemonset",
                                         &d, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "the daemonset has no selector");
}

static void test_pod_container_ports(void **state)
{
    (void)state;
    struct kube_pod pod;
    char err[256], list[256];
    assert_int_equal(kube_parse_pod(POD_PORTS_JSON, strlen(POD_PORTS_JSON),
                                    &pod, err, sizeof(err)),
                     0);
    assert_int_equal(pod.n_ports, 3); /* TCP ports of every container */
    assert_string_equal(pod.ports[0].name, "web-http");
    assert_int_equal(pod.ports[0].port, 8080);
    assert_string_equal(pod.ports[1].name, "");
    assert_int_equal(pod.ports[2].port, 9901);
    kube_list_ports(&pod, list, sizeof(list));
    assert_string_equal(list, "8080 (web-http), 8443, 9901 (admin)");
}

static void test_port_names(void **state)
{
    (void)state;
    assert_true(kube_port_name_ok("http"));
    assert_true(kube_port_name_ok("web-http"));
    assert_true(kube_port_name_ok("h2c"));
    assert_true(kube_port_name_ok("abcdefghijklmno")); /* 15 */
    assert_false(kube_port_name_ok("abcdefghijklmnop"));
    assert_false(kube_port_name_ok("8080"));
    assert_false(kube_port_name_ok("-http"));
    assert_false(kube_port_name_ok("http-"));
    assert_false(kube_port_name_ok("we--b"));
    assert_false(kube_port_name_ok("Http"));
    assert_false(kube_port_name_ok(""));
}

static void test_port_resolution(void **state)
{
    (void)state;
    struct kube_service svc;
    struct kube_pod pod;
    char err[256], how[256];
    uint16_t port = 0;
    assert_int_equal(kube_parse_service(SERVICE_JSON, strlen(SERVICE_JSON),
                                        &svc, err, sizeof(err)),
                     0);
    assert_int_equal(kube_parse_pod(POD_PORTS_JSON, strlen(POD_PORTS_JSON),
                                    &pod, err, sizeof(err)),
                     0);
    /* A Service port with a named targetPort: looked up in the pod. */
    assert_int_equal(kube_resolve_port(&svc, NULL, 80, &pod, &port, how,
                                       sizeof(how), err, sizeof(err)),
                     0);
    assert_int_equal(port, 8080);
    assert_non_null(strstr(how, "targetPort 'web-http'"));
    /* ... by the Service port's name too. */
    assert_int_equal(kube_resolve_port(&svc, "http", 0, &pod, &port, how,
                                       sizeof(how), err, sizeof(err)),
                     0);
    assert_int_equal(port, 8080);
    /* A numeric targetPort. */
    assert_int_equal(kube_resolve_port(&svc, NULL, 9000, &pod, &port, how,
                                       sizeof(how), err, sizeof(err)),
                     0);
    assert_int_equal(port, 9901);
    assert_string_equal(how, "service port 9000 is targetPort 9901");
    /* Not a Service port: the pod's own port, as given. */
    assert_int_equal(kube_resolve_port(&svc, NULL, 8443, &pod, &port, how,
                                       sizeof(how), err, sizeof(err)),
                     0);
    assert_int_equal(port, 8443);
    assert_string_equal(how, "");
    /* Without a Service, a name is a container port's. */
    assert_int_equal(kube_resolve_port(NULL, "admin", 0, &pod, &port, NULL,
                                       0, err, sizeof(err)),
                     0);
    assert_int_equal(port, 9901);
    /* A name the pod does not declare says what it does declare; a UDP
     * port of that name does not count. */
    assert_int_equal(kube_resolve_port(NULL, "syslog", 0, &pod, &port, NULL,
                                       0, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "pod web-1 has no TCP container port named "
                             "'syslog' (its ports: 8080 (web-http), 8443, "
                             "9901 (admin))");
    /* A named targetPort the pod lacks. */
    const char *bare = "{\"metadata\":{\"name\":\"web-2\"},\"spec\":{"
                       "\"containers\":[{\"name\":\"api\"}]}}";
    assert_int_equal(
        kube_parse_pod(bare, strlen(bare), &pod, err, sizeof(err)), 0);
    assert_int_equal(kube_resolve_port(&svc, NULL, 80, &pod, &port, how,
                                       sizeof(how), err, sizeof(err)),
                     -1);
    assert_string_equal(err, "pod web-2 has no TCP container port named "
                             "'web-http' (its ports: none declared)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_kubeconfig_says_what_to_do),
        cmocka_unit_test(test_refused_elsewhere_is_unreachable),
        cmocka_unit_test(test_not_found_names_the_object),
        cmocka_unit_test(test_unknown_keeps_the_first_line),
        cmocka_unit_test(test_quoted_text_is_escaped),
        cmocka_unit_test(test_mesh_is_read_from_the_pod),
        cmocka_unit_test(test_message_cut_on_a_whole_character),
        cmocka_unit_test(test_tcpdump_error_line_not_its_banner),
        cmocka_unit_test(test_pod_list_says_why_pods_are_left_out),
        cmocka_unit_test(test_pod_text_is_escaped),
        cmocka_unit_test(test_names_from_the_pod_are_checked),
        cmocka_unit_test(test_tapmirrors_own_tap_is_the_same),
        cmocka_unit_test(test_baseline_profile_tap_is_ours),
        cmocka_unit_test(test_pod_security_refusal_names_its_level),
        cmocka_unit_test(test_namespace_and_node_labels),
        cmocka_unit_test(test_pod_user_os_and_sidecar),
        cmocka_unit_test(test_capture_not_permitted),
        cmocka_unit_test(test_tap_with_more_privilege_is_refused),
        cmocka_unit_test(test_tap_differences_are_listed),
        cmocka_unit_test(test_pod_list_is_bounded),
        cmocka_unit_test(test_dense_json_is_refused_before_parsing),
        cmocka_unit_test(test_each_class_from_real_stderr),
        cmocka_unit_test(test_service_selector_and_ports),
        cmocka_unit_test(test_service_without_selector_is_refused),
        cmocka_unit_test(test_workload_selector_words_its_kind),
        cmocka_unit_test(test_pod_container_ports),
        cmocka_unit_test(test_port_names),
        cmocka_unit_test(test_port_resolution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
