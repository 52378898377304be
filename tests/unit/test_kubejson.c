/* Unit tests of kubejson.c's kube_classify: kubectl's standard error
 * turned into one line that says what to do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_kubeconfig_says_what_to_do),
        cmocka_unit_test(test_refused_elsewhere_is_unreachable),
        cmocka_unit_test(test_not_found_names_the_object),
        cmocka_unit_test(test_unknown_keeps_the_first_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
