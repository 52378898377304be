/* Unit tests of kubejson.c: kube_classify (kubectl's standard error
 * turned into one line that says what to do), text from the cluster kept
 * off the terminal's control channel, the check of a tap that already
 * exists, and the bounds on what is parsed. */
#include <setjmp.h>
#include <stdarg.h>
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
                                   err, sizeof(err));
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
        cmocka_unit_test(test_tapmirrors_own_tap_is_the_same),
        cmocka_unit_test(test_tap_with_more_privilege_is_refused),
        cmocka_unit_test(test_tap_differences_are_listed),
        cmocka_unit_test(test_pod_list_is_bounded),
        cmocka_unit_test(test_dense_json_is_refused_before_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
