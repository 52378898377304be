/*
 * fuzz_jsondiff: the structural JSON diff (jsondiff.c) and its ignore
 * patterns on hostile documents.
 *
 * Input layout: three parts separated by the byte 0x00: document a,
 * document b, then ignore patterns separated by newlines (each at most
 * 80 bytes; the third part and the second separator may be absent).
 *
 * Checks: diff(a, a) and diff(b, b) are empty; diff(a, b) and diff(b, a)
 * count the same differences and agree on which document does not
 * parse; the report keeps min(count, limit) lines, each one line
 * starting with '$'; a pattern is accepted or refused with a one-line
 * message.
 */
#include "fuzz_common.h"
#include "proto/jsondiff.h"

#define LIMIT 16

static void check_report(const struct jsondiff_report *r)
{
    FZ_CHECK(r->reported == (r->count < LIMIT ? r->count : LIMIT),
             "kept %zu lines of %zu", r->reported, r->count);
    for (size_t i = 0; i < r->reported; i++) {
        FZ_CHECK(r->lines[i][0] == '$', "line does not start with $");
        FZ_CHECK(strchr(r->lines[i], '\n') == NULL, "line break in a line");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) {
        return 0;
    }
    const char *s = (const char *)data;
    const char *sep1 = memchr(s, 0, size);
    if (sep1 == NULL) {
        return 0;
    }
    const char *a = s;
    size_t alen = (size_t)(sep1 - s);
    const char *b = sep1 + 1;
    const char *end = s + size;
    const char *sep2 = memchr(b, 0, (size_t)(end - b));
    size_t blen = (size_t)((sep2 ? sep2 : end) - b);

    struct jsondiff_ignore *ig = jsondiff_ignore_new();
    if (sep2 != NULL) {
        const char *p = sep2 + 1;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = (size_t)((nl ? nl : end) - p);
            if (n <= 80) {
                char pat[81], err[128];
                memcpy(pat, p, n);
                pat[n] = '\0';
                if (strlen(pat) == n &&
                    jsondiff_ignore_add(ig, pat, err, sizeof(err)) != 0) {
                    FZ_CHECK(strchr(err, '\n') == NULL || memchr(pat, '\n', n),
                             "message is not one line");
                }
            }
            p = nl ? nl + 1 : end;
        }
    }

    struct jsondiff_report ab, ba, aa;
    enum jsondiff_status s_ab = jsondiff_compare(a, alen, b, blen, ig, LIMIT, &ab);
    enum jsondiff_status s_ba = jsondiff_compare(b, blen, a, alen, ig, LIMIT, &ba);
    bool a_ok = s_ab != JSONDIFF_A_NOT_JSON;
    FZ_CHECK((s_ab == JSONDIFF_OK) == (s_ba == JSONDIFF_OK), "status not symmetric");
    if (s_ab == JSONDIFF_OK) {
        check_report(&ab);
        check_report(&ba);
        FZ_CHECK(ab.count == ba.count, "diff(a,b) %zu, diff(b,a) %zu", ab.count,
                 ba.count);
    } else {
        FZ_CHECK(ab.count == 0 && ab.reported == 0, "report for no JSON");
    }
    if (a_ok) {
        FZ_CHECK(jsondiff_compare(a, alen, a, alen, ig, LIMIT, &aa) == JSONDIFF_OK,
                 "a parses once only");
        FZ_CHECK(aa.count == 0, "diff(a,a) has %zu differences", aa.count);
        jsondiff_report_free(&aa);
    }
    jsondiff_report_free(&ab);
    jsondiff_report_free(&ba);
    jsondiff_ignore_free(ig);
    return 0;
}
