/* Unit tests of kubejson.c's kube_classify: kubectl's standard error
 * turned into one line that says what to do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kubejson.h"

static enum kube_error classify(const char *text, char *msg, size_t len)
{
    return kube_classify(text, "deployment web", "namespace shop", msg, len);
}

static void test_no_kubeconfig_says_what_to_do(void **state)
{
    (void)state;
    char msg[512];
    enum kube_error e = classify(
        "The connection to the server localhost:8080 was refused - did you "
        "specify the right host or port?\n",
        msg, sizeof(msg));
    /* Unreachable, not a kubeconfig error: a tunnel on localhost:8080
     * that is down for a moment gives the same line. */
    assert_int_equal(e, KUBE_ERR_UNREACHABLE);
    assert_non_null(strstr(msg, "localhost:8080"));
    assert_non_null(strstr(msg, "--kubeconfig"));
    assert_non_null(strstr(msg, "KUBECONFIG"));
    assert_null(strchr(msg, '\n'));
}

static void test_refused_elsewhere_is_unreachable(void **state)
{
    (void)state;
    char msg[512];
    enum kube_error e = classify(
        "The connection to the server 10.0.0.1:6443 was refused - did you "
        "specify the right host or port?\n",
        msg, sizeof(msg));
    assert_int_equal(e, KUBE_ERR_UNREACHABLE);
    assert_non_null(strstr(msg, "10.0.0.1:6443"));
    e = classify("Unable to connect to the server: dial tcp 10.0.0.1:6443: "
                 "i/o timeout\n",
                 msg, sizeof(msg));
    assert_int_equal(e, KUBE_ERR_UNREACHABLE);
}

static void test_not_found_names_the_object(void **state)
{
    (void)state;
    char msg[512];
    enum kube_error e = classify(
        "Error from server (NotFound): deployments.apps \"web\" not found\n",
        msg, sizeof(msg));
    assert_int_equal(e, KUBE_ERR_NOT_FOUND);
    assert_string_equal(msg, "deployment web not found in namespace shop");
}

static void test_unknown_keeps_the_first_line(void **state)
{
    (void)state;
    char msg[512];
    enum kube_error e =
        classify("\n  something odd happened  \nsecond line\n", msg,
                 sizeof(msg));
    assert_int_equal(e, KUBE_ERR_UNKNOWN);
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
