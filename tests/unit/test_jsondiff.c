/* Unit tests of jsondiff.c: structural JSON comparison with paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/jsondiff.h"

static struct jsondiff_report run(const char *a, const char *b,
                                  const struct jsondiff_ignore *ig)
{
    struct jsondiff_report r;
    assert_int_equal(jsondiff_compare(a, strlen(a), b, strlen(b), ig, 0, &r),
                     JSONDIFF_OK);
    return r;
}

static void test_order_and_number_spelling_do_not_matter(void **state)
{
    (void)state;
    struct jsondiff_report r =
        run("{\"a\":12.5,\"b\":[1,2],\"c\":{\"x\":true,\"y\":null}}",
            "{ \"c\": {\"y\": null, \"x\": true}, \"b\": [1.0, 2e0],"
            " \"a\": 12.50 }",
            NULL);
    assert_int_equal(r.count, 0);
    jsondiff_report_free(&r);
}

static void test_differences_are_named_by_path(void **state)
{
    (void)state;
    struct jsondiff_report r = run(
        "{\"items\":[{\"id\":1,\"price\":1},{\"id\":2,\"price\":1},"
        "{\"id\":3,\"price\":1},{\"id\":4,\"price\":12.5}],"
        "\"content-type\":\"a\",\"gone\":1,\"flag\":true}",
        "{\"items\":[{\"id\":1,\"price\":1},{\"id\":2,\"price\":1},"
        "{\"id\":3,\"price\":1},{\"id\":4,\"price\":12.75}],"
        "\"content-type\":\"b\",\"flag\":false,\"new\":[1,2,3]}",
        NULL);
    assert_int_equal(r.count, 5);
    assert_int_equal(r.reported, 5);
    /* Members in name order, then depth first. */
    assert_string_equal(r.lines[0], "$[\"content-type\"]: \"a\" -> \"b\"");
    assert_string_equal(r.lines[1], "$.flag: true -> false");
    assert_string_equal(r.lines[2], "$.gone: 1 -> (absent)");
    assert_string_equal(r.lines[3], "$.items[3].price: 12.5 -> 12.75");
    assert_string_equal(r.lines[4], "$.new: (absent) -> [3 items]");
    jsondiff_report_free(&r);

    r = run("[1,\"1\",{}]", "[1,1]", NULL);
    assert_int_equal(r.count, 2);
    assert_string_equal(r.lines[0], "$[1]: \"1\" -> 1");
    assert_string_equal(r.lines[1], "$[2]: {0 members} -> (absent)");
    jsondiff_report_free(&r);
}

static void test_ignore_patterns(void **state)
{
    (void)state;
    char err[128];
    struct jsondiff_ignore *ig = jsondiff_ignore_new();
    assert_int_equal(jsondiff_ignore_add(ig, "$.items[*].id", err,
                                         sizeof(err)),
                     0);
    assert_int_equal(jsondiff_ignore_add(ig, "$.meta.*", err, sizeof(err)),
                     0);
    assert_int_equal(jsondiff_ignore_add(ig, "$[\"x-y\"][0]", err,
                                         sizeof(err)),
                     0);
    struct jsondiff_report r = run(
        "{\"items\":[{\"id\":\"a\",\"n\":1}],\"meta\":{\"t\":1,\"u\":2},"
        "\"x-y\":[1,2]}",
        "{\"items\":[{\"id\":\"b\",\"n\":2}],\"meta\":{\"t\":9},"
        "\"x-y\":[5,2]}",
        ig);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.lines[0], "$.items[0].n: 1 -> 2");
    jsondiff_report_free(&r);
    jsondiff_ignore_free(ig);

    ig = jsondiff_ignore_new();
    assert_int_equal(jsondiff_ignore_add(ig, "items", err, sizeof(err)), -1);
    assert_string_equal(err, "bad JSON path 'items': it must start with $");
    assert_int_equal(jsondiff_ignore_add(ig, "$.a[", err, sizeof(err)), -1);
    assert_int_equal(jsondiff_ignore_add(ig, "$.a[1", err, sizeof(err)), -1);
    assert_int_equal(jsondiff_ignore_add(ig, "$..a", err, sizeof(err)), -1);
    assert_int_equal(jsondiff_ignore_add(ig, "$[\"a]", err, sizeof(err)), -1);
    jsondiff_ignore_free(ig);
}

static void test_report_is_bounded(void **state)
{
    (void)state;
    char a[4096], b[4096];
    size_t na = 0, nb = 0;
    a[na++] = '[';
    b[nb++] = '[';
    for (int i = 0; i < 500; i++) {
        na += (size_t)snprintf(a + na, sizeof(a) - na, "%s%d", i ? "," : "",
                               i % 10);
        nb += (size_t)snprintf(b + nb, sizeof(b) - nb, "%s%d", i ? "," : "",
                               (i + 1) % 10);
    }
    a[na++] = ']';
    b[nb++] = ']';
    struct jsondiff_report r;
    assert_int_equal(jsondiff_compare(a, na, b, nb, NULL, 7, &r), JSONDIFF_OK);
    assert_int_equal(r.count, 500);
    assert_int_equal(r.reported, 7);
    jsondiff_report_free(&r);
}

static void test_not_json(void **state)
{
    (void)state;
    struct jsondiff_report r;
    assert_int_equal(jsondiff_compare("<html>", 6, "{}", 2, NULL, 0, &r),
                     JSONDIFF_A_NOT_JSON);
    assert_int_equal(r.count, 0);
    assert_int_equal(jsondiff_compare("{}", 2, "{} x", 4, NULL, 0, &r),
                     JSONDIFF_B_NOT_JSON);
    assert_int_equal(jsondiff_compare("{}", 2, "{}\r\n", 4, NULL, 0, &r),
                     JSONDIFF_OK);
    jsondiff_report_free(&r);
}

static void test_json_content_types(void **state)
{
    (void)state;
    const char *yes[] = {"application/json", "application/json; charset=utf-8",
                         "Application/JSON", "application/problem+json",
                         "text/json"};
    const char *no[] = {"text/html", "application/jsonx", "+json", "text/plain"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_true(jsondiff_is_json_type(yes[i], strlen(yes[i])));
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_false(jsondiff_is_json_type(no[i], strlen(no[i])));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_number_spelling_do_not_matter),
        cmocka_unit_test(test_differences_are_named_by_path),
        cmocka_unit_test(test_ignore_patterns),
        cmocka_unit_test(test_report_is_bounded),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_json_content_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
