/*
 * tmdiffpage OUT.html: a --diff-report page from a real compare run, for
 * the browser test (test_diffreport.py).
 *
 * Four connections go through the compare engine (compare_conn fed the
 * client's requests, production's and the local responses, in chunks):
 *   1. GET /users/42 and /users/43: the same answers; then /users/44,
 *      whose JSON differs in $.price and in the header X-Version;
 *   2. POST /orders: 201 against 500, with hostile markup (a closing
 *      script tag, a script, an image with a handler, quotes, a
 *      right-to-left override, invalid UTF-8) in the request target,
 *      a header and the local body;
 *   3. GET /users/45 whose production answer the capture missed (a gap
 *      in production's stream): not comparable;
 *   4. GET /health: the same.
 * Every exchange is counted in a compare_report and offered to a
 * diffreport as an example; the page is written to OUT.html.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/diffreport.h"
#include "proto/compare.h"

struct run {
    struct compare_report *report;
    struct diffreport *dr;
};

static void on_exchange(void *ctx, const struct compare_exchange *ex)
{
    struct run *r = ctx;
    compare_report_add(r->report, ex);
    diffreport_add_exchange(r->dr, ex, true);
}

static char *json_response(const char *status, const char *extra,
                           const char *body)
{
    size_t cap = strlen(body) + strlen(extra) + 256;
    char *s = malloc(cap);
    if (s == NULL) {
        abort();
    }
    snprintf(s, cap,
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%s"
             "Content-Length: %zu\r\n\r\n%s",
             status, extra, strlen(body), body);
    return s;
}

/* Feeds the client's requests at 1 ms, then production's and the local
 * responses in 5-byte chunks in turn, production's from 1.5 ms and the
 * local ones from 3 ms, 0.1 ms apart; `prod_gap` bytes of production's
 * stream are missing at its start. */
static void connection(struct run *r, uint64_t id, const char *client,
                       const char *prod, const char *local, uint64_t prod_gap)
{
    struct compare_conn *c = compare_conn_new(NULL, NULL, id, on_exchange, r);
    compare_conn_feed(c, COMPARE_CLIENT, (const uint8_t *)client,
                      strlen(client), 1000000);
    compare_conn_end(c, COMPARE_CLIENT);
    if (prod_gap > 0) {
        compare_conn_gap(c, COMPARE_PROD, prod_gap);
    }
    const char *s[2] = {prod, local};
    size_t len[2] = {strlen(prod), strlen(local)};
    size_t pos[2] = {0, 0};
    static const enum compare_stream ids[2] = {COMPARE_PROD, COMPARE_LOCAL};
    int64_t ts[2] = {1500000, 3000000};
    bool any = true;
    while (any) {
        any = false;
        for (int i = 0; i < 2; i++) {
            size_t n = len[i] - pos[i] < 5 ? len[i] - pos[i] : 5;
            if (n == 0) {
                continue;
            }
            any = true;
            compare_conn_feed(c, ids[i], (const uint8_t *)s[i] + pos[i], n,
                              ts[i]);
            pos[i] += n;
            ts[i] += 100000;
        }
    }
    compare_conn_finish(c);
    compare_report_add_conn(r->report, c);
    compare_conn_free(c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tmdiffpage OUT.html\n");
        return 2;
    }
    struct run r = {compare_report_new(0), diffreport_new(0, 0)};

    /* 1: two the same, then a JSON field and a header differ. */
    const char *user = "{\"id\":42,\"name\":\"Ada\",\"price\":12.5,"
                       "\"tags\":[\"a\",\"b\"]}";
    const char *user2 = "{\"id\":43,\"name\":\"Bob\",\"price\":3}";
    const char *user3 = "{\"id\":44,\"name\":\"Eve\",\"price\":12.5,"
                        "\"items\":[{\"sku\":\"x1\",\"qty\":1}]}";
    const char *user3_local = "{\"id\":44,\"name\":\"Eve\",\"price\":12.75,"
                              "\"items\":[{\"sku\":\"x1\",\"qty\":1}]}";
    char *p1 = json_response("200 OK", "X-Version: 1.4.2\r\n", user);
    char *p2 = json_response("200 OK", "X-Version: 1.4.2\r\n", user2);
    char *p3 = json_response("200 OK", "X-Version: 1.4.2\r\n", user3);
    char *l3 = json_response("200 OK", "X-Version: 1.5.0-rc1\r\n",
                             user3_local);
    size_t cap = strlen(p1) + strlen(p2) + strlen(p3) + strlen(l3) + 16;
    char *prod = malloc(cap), *local = malloc(cap);
    if (prod == NULL || local == NULL) {
        abort();
    }
    snprintf(prod, cap, "%s%s%s", p1, p2, p3);
    snprintf(local, cap, "%s%s%s", p1, p2, l3);
    connection(&r, 1,
               "GET /users/42 HTTP/1.1\r\nHost: shop\r\n\r\n"
               "GET /users/43 HTTP/1.1\r\nHost: shop\r\n\r\n"
               "GET /users/44?expand=items HTTP/1.1\r\nHost: shop\r\n"
               "Authorization: Bearer secret-token\r\n\r\n",
               prod, local, 0);
    free(p1);
    free(p2);
    free(p3);
    free(l3);
    free(prod);
    free(local);

    /* 2: hostile text in a header, a body and the request target;
     * statuses differ. */
    const char *hostile =
        "{\"error\":\"</script><script>document.title='pwned'</script>"
        "<img src=x onerror=alert(1)> \\\"quoted\\\" 'single' "
        "\xe2\x80\xae evil\"}";
    char *p4 = json_response("201 Created", "", "{\"order\":7}");
    char *l4 = json_response("500 Internal Server Error",
                             "X-Debug: </script><b>bold</b> \xff\xfe\r\n",
                             hostile);
    connection(&r, 2,
               "POST /orders?next=</script><i>x</i>\"' HTTP/1.1\r\n"
               "Host: shop\r\nContent-Length: 2\r\n\r\n{}",
               p4, l4, 0);
    free(p4);
    free(l4);

    /* 3: production's answer was not captured. */
    char *p5 = json_response("200 OK", "", "{\"id\":45}");
    connection(&r, 3, "GET /users/45 HTTP/1.1\r\nHost: shop\r\n\r\n", "", p5,
               strlen(p5));
    free(p5);

    /* 4: the same. */
    char *p6 = json_response("200 OK", "", "{\"ok\":true}");
    connection(&r, 4, "GET /health HTTP/1.1\r\nHost: shop\r\n\r\n", p6, p6,
               0);
    free(p6);

    cJSON *report = compare_report_json(r.report, NULL);
    char *page = diffreport_render(r.dr, report, "shop: production vs "
                                                 "local build");
    cJSON_Delete(report);
    FILE *f = fopen(argv[1], "w");
    if (f == NULL || fputs(page, f) < 0 || fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }
    free(page);
    diffreport_free(r.dr);
    compare_report_free(r.report);
    return 0;
}
