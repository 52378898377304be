/* Unit tests of diffreport.c: the page's structure from a real compare
 * run, escaping of hostile text everywhere it can appear, the choice and
 * the caps of examples, redaction, the page's size bound. Every page is
 * also checked by htmlcheck.h, which knows only the template's tags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/diffreport.h"
#include "htmlcheck.h"
#include "proto/compare.h"

static void check_page(const char *page)
{
    size_t at = 0;
    const char *why = htmlcheck(page, strlen(page), &at);
    if (why != NULL) {
        fail_msg("%s at %zu: %.80s", why, at, page + at);
    }
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* ---- a real compare run --------------------------------------------- */

struct run {
    struct compare_report *report;
    struct diffreport *dr;
    bool redact;
};

static void on_exchange(void *ctx, const struct compare_exchange *ex)
{
    struct run *r = ctx;
    compare_report_add(r->report, ex);
    diffreport_add_exchange(r->dr, ex, r->redact);
}

static void conn(struct run *r, uint64_t id, const char *client,
                 const char *prod, const char *local)
{
    struct compare_conn *c = compare_conn_new(NULL, NULL, id, on_exchange, r);
    compare_conn_feed(c, COMPARE_CLIENT, (const uint8_t *)client,
                      strlen(client), 1000000);
    compare_conn_feed(c, COMPARE_PROD, (const uint8_t *)prod, strlen(prod),
                      2000000);
    compare_conn_feed(c, COMPARE_LOCAL, (const uint8_t *)local, strlen(local),
                      5000000);
    compare_conn_finish(c);
    compare_report_add_conn(r->report, c);
    compare_conn_free(c);
}

static char *resp(const char *status, const char *headers, const char *body)
{
    static char buf[8][2048];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, 2048,
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%s"
             "Content-Length: %zu\r\n\r\n%s",
             status, headers, strlen(body), body);
    return b;
}

static char *render_run(struct run *r)
{
    cJSON *rep = compare_report_json(r->report, NULL);
    char *page = diffreport_render(r->dr, rep, NULL);
    cJSON_Delete(rep);
    return page;
}

static void test_page_from_compare_run(void **state)
{
    (void)state;
    struct run r = {compare_report_new(0), diffreport_new(0, 0), true};
    char prod[4096], local[4096];
    snprintf(prod, sizeof(prod), "%s%s",
             resp("200 OK", "X-Version: 1\r\n", "{\"id\":1,\"price\":5}"),
             resp("200 OK", "X-Version: 1\r\n",
                  "{\"id\":2,\"items\":[{\"p\":1},{\"p\":2}]}"));
    snprintf(local, sizeof(local), "%s%s",
             resp("200 OK", "X-Version: 1\r\n", "{\"id\":1,\"price\":5}"),
             resp("200 OK", "X-Version: 2\r\n",
                  "{\"id\":2,\"items\":[{\"p\":1},{\"p\":3}]}"));
    conn(&r, 1,
         "GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n"
         "GET /users/2 HTTP/1.1\r\nHost: a\r\n\r\n",
         prod, local);
    conn(&r, 2, "DELETE /users/3 HTTP/1.1\r\nHost: a\r\n\r\n",
         resp("204 No Content", "", ""), "");
    char *page = render_run(&r);
    check_page(page);

    /* The frame: a CSP forbidding the network, no script, no URL. */
    assert_non_null(strstr(page, "default-src 'none'"));
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "http://"));
    assert_null(strstr(page, "https://"));
    assert_null(strstr(page, " on")); /* no handler attribute anywhere */

    /* The table: one row per endpoint, with the bar and the counts. */
    assert_int_equal(count(page, "<td class=\"ep\">"), 2);
    assert_non_null(strstr(page, "<td class=\"ep\"><code>GET /users/{id}"
                                 "</code></td><td class=\"num\">2</td>"));
    assert_non_null(strstr(page, "<span class=\"s\" style=\"width:50.00%\">"
                                 "</span><span class=\"d\" "
                                 "style=\"width:50.00%\">"));
    assert_non_null(strstr(page, "<code>$.items[*].p</code>"));
    assert_non_null(strstr(page, "<code>header x-version</code>"));
    assert_non_null(strstr(page, "<td class=\"ep\"><code>DELETE /users/{id}"));

    /* The examples: the differing one first and open, its element and
     * header marked, the not comparable one with its reason. */
    const char *differ = strstr(page, "<details class=\"ex\" open><summary>"
                                      "<span class=\"badge differ\">");
    assert_non_null(differ);
    assert_non_null(strstr(differ, "<code>GET /users/2</code>"));
    /* $.items[1].p on each side, and nothing else. */
    assert_non_null(strstr(page, "<mark>&quot;p&quot;: 2</mark>"));
    assert_non_null(strstr(page, "<mark>&quot;p&quot;: 3</mark>"));
    assert_int_equal(count(page, "<mark>"), 2);
    assert_non_null(strstr(page, "<tr class=\"hl\"><td>X-Version</td>"
                                 "<td>2</td></tr>"));
    assert_non_null(strstr(page, "<span class=\"badge not_comparable\">"));
    assert_non_null(strstr(page, "<p class=\"reason\">not comparable: "));
    assert_non_null(strstr(page, "<span class=\"badge same\">"));
    /* Sections follow the table's rows. */
    assert_non_null(strstr(page, "<a href=\"#ep-1\">2</a>"));
    assert_non_null(strstr(page, "<section id=\"ep-1\"><h3><code>GET "
                                 "/users/{id}</code>"));
    free(page);
    diffreport_free(r.dr);
    compare_report_free(r.report);
}

/* ---- hostile text everywhere ---------------------------------------- */

#define EVIL "</script><script>alert(1)</script><img src=x onerror=\"a()\">" \
             "'&amp;\xff\xfe\x1b[2J\xc2\x85\xe2\x80\xae\x01"

static cJSON *hostile_exchange(const char *outcome)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "connection", 1);
    cJSON_AddNumberToObject(o, "exchange", 0);
    cJSON_AddStringToObject(o, "protocol", EVIL);
    cJSON_AddStringToObject(o, "outcome", outcome);
    cJSON_AddStringToObject(o, "reason", EVIL);
    cJSON_AddStringToObject(o, "detail", EVIL);
    cJSON_AddStringToObject(o, "request", "GET /" EVIL);
    cJSON_AddStringToObject(o, "endpoint", EVIL);
    cJSON *st = cJSON_AddObjectToObject(o, "status");
    cJSON_AddStringToObject(st, "production", EVIL);
    cJSON_AddNumberToObject(st, "local", 1e300);
    cJSON *diffs = cJSON_AddArrayToObject(o, "differences");
    for (int i = 0; i < 3; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "kind", i == 0 ? "json" : EVIL);
        cJSON_AddStringToObject(d, "field", i == 1 ? "header " EVIL : EVIL);
        cJSON_AddStringToObject(d, "line", i == 0 ? "$[\"<k>\"]: 1 -> 2"
                                                  : EVIL);
        if (i == 2) {
            cJSON_AddBoolToObject(d, "noise", true);
        }
        cJSON_AddItemToArray(diffs, d);
    }
    cJSON_AddNumberToObject(o, "differences_not_shown", 7);
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    cJSON *hp = cJSON_AddArrayToObject(h, "production");
    cJSON *one = cJSON_CreateObject();
    cJSON_AddStringToObject(one, "name", EVIL);
    cJSON_AddStringToObject(one, "value", EVIL);
    cJSON_AddItemToArray(hp, one);
    cJSON_AddStringToObject(h, "local", EVIL); /* not an array */
    cJSON *body = cJSON_AddObjectToObject(o, "body");
    cJSON *bp = cJSON_AddObjectToObject(body, "production");
    cJSON_AddNumberToObject(bp, "size", 10);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "<k>", EVIL);
    cJSON *arr = cJSON_AddArrayToObject(doc, EVIL);
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(1));
    cJSON_AddItemToArray(arr, cJSON_CreateObject());
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_AddStringToObject(bp, "text", text);
    cJSON_free(text);
    cJSON_Delete(doc);
    cJSON *bl = cJSON_AddObjectToObject(body, "local");
    cJSON_AddStringToObject(bl, "base64", EVIL);
    cJSON_AddBoolToObject(bl, "cut", true);
    return o;
}

static cJSON *hostile_report(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "exchanges", 3);
    cJSON *reasons = cJSON_AddObjectToObject(o, "not_comparable_by_reason");
    cJSON_AddNumberToObject(reasons, EVIL, 1);
    cJSON *eps = cJSON_AddArrayToObject(o, "endpoints");
    cJSON *ep = cJSON_CreateObject();
    cJSON_AddStringToObject(ep, "endpoint", EVIL);
    cJSON_AddNumberToObject(ep, "same", -4);
    cJSON_AddNumberToObject(ep, "differ", 2);
    cJSON *top = cJSON_AddArrayToObject(ep, "top_differing_fields");
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "field", EVIL);
    cJSON_AddItemToArray(top, f);
    cJSON *lat = cJSON_AddObjectToObject(ep, "latency_ms");
    cJSON_AddStringToObject(lat, "production", EVIL);
    cJSON_AddItemToArray(eps, ep);
    cJSON_AddItemToArray(eps, cJSON_CreateString(EVIL)); /* not an object */
    cJSON *nf = cJSON_AddArrayToObject(o, "noise_fields");
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "endpoint", EVIL);
    cJSON_AddStringToObject(n, "field", EVIL);
    cJSON_AddItemToArray(nf, n);
    return o;
}

static void test_hostile_text_is_escaped(void **state)
{
    (void)state;
    struct diffreport *dr = diffreport_new(0, 0);
    const char *outcomes[] = {"differ", "not_comparable", EVIL};
    for (int i = 0; i < 3; i++) {
        cJSON *ex = hostile_exchange(outcomes[i]);
        assert_true(diffreport_add_example(dr, EVIL, ex));
        cJSON_Delete(ex);
    }
    assert_false(diffreport_add_example(dr, "x", NULL));
    cJSON *rep = hostile_report();
    char *page = diffreport_render(dr, rep, EVIL);
    cJSON_Delete(rep);
    check_page(page);
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "<img"));
    assert_null(strstr(page, "</script>"));
    /* Shown as text: markup as entities, bad bytes and controls as
     * visible escapes. */
    assert_true(count(page, "&lt;/script&gt;&lt;script&gt;alert(1)") >= 10);
    assert_non_null(strstr(page, "onerror=&quot;a()&quot;&gt;&#39;&amp;amp;"
                                 "\\xff\\xfe\\x1b[2J\\u0085\\u202e\\x01"));
    /* The differing member whose key is markup is still marked. */
    assert_non_null(strstr(page, "<mark>&quot;&lt;k&gt;&quot;: "));
    assert_non_null(strstr(page, "7 more differences not shown"));
    free(page);
    diffreport_free(dr);
}

/* A title and an empty run still make a whole page. */
static void test_empty_page(void **state)
{
    (void)state;
    struct diffreport *dr = diffreport_new(0, 0);
    char *page = diffreport_render(dr, NULL, "run <1>");
    check_page(page);
    assert_non_null(strstr(page, "<title>run &lt;1&gt;</title>"));
    assert_non_null(strstr(page, "No examples were kept."));
    assert_non_null(strstr(page, "</tbody></table>"));
    assert_non_null(strstr(page, "</body></html>\n"));
    free(page);
    diffreport_free(dr);
}

/* ---- which examples are kept ---------------------------------------- */

static cJSON *example(const char *outcome, int n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "outcome", outcome);
    cJSON_AddNumberToObject(o, "exchange", n);
    char req[32];
    snprintf(req, sizeof(req), "GET /n%d", n);
    cJSON_AddStringToObject(o, "request", req);
    return o;
}

static bool add(struct diffreport *dr, const char *ep, const char *outcome,
                int n)
{
    cJSON *o = example(outcome, n);
    bool kept = diffreport_add_example(dr, ep, o);
    cJSON_Delete(o);
    return kept;
}

static void test_examples_per_endpoint(void **state)
{
    (void)state;
    struct diffreport *dr = diffreport_new(3, 0);
    assert_true(add(dr, "GET /a", "same", 1));
    assert_false(diffreport_wants(dr, "GET /a", COMPARE_SAME));
    assert_false(add(dr, "GET /a", "same", 2)); /* one same one */
    assert_true(add(dr, "GET /a", "differ", 3));
    assert_true(add(dr, "GET /a", "not_comparable", 4));
    /* Full: a difference takes the same one's place, then no more. */
    assert_true(diffreport_wants(dr, "GET /a", COMPARE_DIFFER));
    assert_true(add(dr, "GET /a", "differ", 5));
    assert_false(diffreport_wants(dr, "GET /a", COMPARE_DIFFER));
    assert_false(add(dr, "GET /a", "differ", 6));
    assert_false(add(dr, "GET /a", "not_comparable", 7));
    /* Another endpoint has its own examples. */
    assert_true(add(dr, "GET /b", "differ", 8));

    char *page = diffreport_render(dr, NULL, NULL);
    check_page(page);
    assert_null(strstr(page, "GET /n1<"));
    assert_null(strstr(page, "GET /n6<"));
    const char *n3 = strstr(page, "GET /n3<"), *n4 = strstr(page, "GET /n4<"),
               *n5 = strstr(page, "GET /n5<"), *n8 = strstr(page, "GET /n8<");
    assert_true(n3 && n4 && n5 && n8);
    /* Differing first (in arrival order), then not comparable. */
    assert_true(n3 < n5 && n5 < n4 && n4 < n8);
    /* Not in the table: sections after it, numbered on. */
    assert_non_null(strstr(page, "<section id=\"ep-1\"><h3><code>GET /a</code>"
                                 " <span class=\"muted\">3 examples</span>"));
    assert_non_null(strstr(page, "<section id=\"ep-2\"><h3><code>GET /b"));
    free(page);
    diffreport_free(dr);
}

static void test_endpoint_cap(void **state)
{
    (void)state;
    struct diffreport *dr = diffreport_new(1, 0);
    char name[32];
    for (int i = 0; i < DIFFREPORT_MAX_ENDPOINTS; i++) {
        snprintf(name, sizeof(name), "GET /e%d", i);
        assert_true(add(dr, name, "differ", i));
    }
    assert_false(diffreport_wants(dr, "GET /new", COMPARE_DIFFER));
    assert_false(add(dr, "GET /new", "differ", 1));
    /* A kept endpoint keeps its own cap. */
    assert_false(add(dr, "GET /e0", "differ", 1));
    diffreport_free(dr);
}

/* The page stops adding examples at its size limit; the table stays. */
static void test_page_size_bound(void **state)
{
    (void)state;
    const size_t limit = 64 * 1024;
    struct diffreport *dr = diffreport_new(5, limit);
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cJSON *rep = cJSON_CreateObject();
    cJSON *eps = cJSON_AddArrayToObject(rep, "endpoints");
    char name[32];
    for (int e = 0; e < 20; e++) {
        snprintf(name, sizeof(name), "GET /e%d", e);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "endpoint", name);
        cJSON_AddNumberToObject(row, "differ", 5);
        cJSON_AddItemToArray(eps, row);
        for (int i = 0; i < 5; i++) {
            cJSON *o = example("differ", i);
            cJSON *body = cJSON_AddObjectToObject(o, "body");
            cJSON *p = cJSON_AddObjectToObject(body, "production");
            cJSON_AddStringToObject(p, "text", big);
            assert_true(diffreport_add_example(dr, name, o));
            cJSON_Delete(o);
        }
    }
    char *page = diffreport_render(dr, rep, NULL);
    cJSON_Delete(rep);
    check_page(page);
    assert_true(strlen(page) <= limit + 256);
    assert_int_equal(count(page, "<td class=\"ep\">"), 20);
    size_t shown = count(page, "<details");
    assert_true(shown > 0 && shown < 100);
    char note[96];
    snprintf(note, sizeof(note), "%zu more examples not shown", 100 - shown);
    assert_non_null(strstr(page, note));
    assert_non_null(strstr(page, "</body></html>\n"));
    free(page);
    diffreport_free(dr);
}

/* ---- headers -------------------------------------------------------- */

static void headers_run(bool redact, char **page)
{
    struct run r = {compare_report_new(0), diffreport_new(0, 0), redact};
    conn(&r, 1,
         "GET /me HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer abc\r\n\r\n",
         resp("200 OK", "Set-Cookie: sid=s3cr3t\r\nX-A: 1\r\n", "{}"),
         resp("200 OK", "Set-Cookie: sid=0ther\r\nX-A: 2\r\n", "{}"));
    *page = render_run(&r);
    check_page(*page);
    diffreport_free(r.dr);
    compare_report_free(r.report);
}

static void test_headers_and_redaction(void **state)
{
    (void)state;
    char *page;
    headers_run(true, &page);
    assert_null(strstr(page, "s3cr3t"));
    assert_null(strstr(page, "0ther"));
    assert_int_equal(count(page, "<td>Set-Cookie</td><td>(redacted)</td>"),
                     2);
    assert_non_null(strstr(page, "<tr class=\"hl\"><td>X-A</td><td>1</td>"));
    assert_non_null(strstr(page, "<tr class=\"hl\"><td>X-A</td><td>2</td>"));
    free(page);
    headers_run(false, &page);
    assert_non_null(strstr(page, "<td>Set-Cookie</td><td>sid=s3cr3t</td>"));
    assert_non_null(strstr(page, "<td>Set-Cookie</td><td>sid=0ther</td>"));
    free(page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_from_compare_run),
        cmocka_unit_test(test_hostile_text_is_escaped),
        cmocka_unit_test(test_empty_page),
        cmocka_unit_test(test_examples_per_endpoint),
        cmocka_unit_test(test_endpoint_cap),
        cmocka_unit_test(test_page_size_bound),
        cmocka_unit_test(test_headers_and_redaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
