/* Unit tests of kubejson.c: kubectl's standard error turned into one
 * line that says what to do, and text from the cluster kept off the
 * terminal's control channel. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_kubeconfig_says_what_to_do),
        cmocka_unit_test(test_refused_elsewhere_is_unreachable),
        cmocka_unit_test(test_not_found_names_the_object),
        cmocka_unit_test(test_unknown_keeps_the_first_line),
        cmocka_unit_test(test_quoted_text_is_escaped),
        cmocka_unit_test(test_message_cut_on_a_whole_character),
        cmocka_unit_test(test_tcpdump_error_line_not_its_banner),
        cmocka_unit_test(test_pod_list_says_why_pods_are_left_out),
        cmocka_unit_test(test_pod_text_is_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
