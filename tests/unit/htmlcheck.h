/*
 * A check of a --diff-report page that knows nothing of how it was
 * written (shared by test_diffreport.c and fuzz/fuzz_diffreport.c):
 *
 *   - every '<' opens one of the tags the template writes, spelled
 *     exactly (or with runs of digits as one '9': ids and widths), so
 *     no text from traffic opened, closed or changed a tag, and no tag
 *     carries a handler, a script or a URL;
 *   - every '&' opens an entity the escaping or the template writes;
 *   - the page is well-formed UTF-8 without C0 controls (but the line
 *     break), DEL, C1 controls or the characters that reorder text.
 *
 * Returns NULL or what is wrong, with *at set to its offset.
 */
#ifndef TAPMIRROR_TEST_HTMLCHECK_H
#define TAPMIRROR_TEST_HTMLCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const char *const htmlcheck_tags[] = {
    "<!DOCTYPE html>", "<html lang=\"en\">", "<head>",
    "<meta charset=\"utf-8\">",
    ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
     "'none'; style-src 'unsafe-inline'; img-src data:\">"),
    "<meta name=\"viewport\" content=\"width=device-width\">", "<title>",
    "</title>", "<style>", "</style>", "</head>", "<body>", "</body>",
    "</html>", "<h1>", "</h1>", "<h2>", "</h2>", "<h3>", "</h3>", "<h4>",
    "</h4>", "<p>", "<p class=\"totals\">", "<p class=\"muted\">",
    "<p class=\"key muted\">", "<p class=\"reason\">", "</p>", "<span>",
    "<span class=\"s\">", "<span class=\"d\">", "<span class=\"n\">",
    "<span class=\"s\" style=\"width:9.9%\">",
    "<span class=\"d\" style=\"width:9.9%\">",
    "<span class=\"n\" style=\"width:9.9%\">", "<span class=\"muted\">",
    "<span class=\"hl\">", "<span class=\"badge same\">",
    "<span class=\"badge differ\">", "<span class=\"badge not_comparable\">",
    "</span>", "<b>", "</b>", "<br>", "<code>", "</code>",
    "<table class=\"endpoints\">", "<table class=\"diffs\">",
    "<table class=\"headers\">", "</table>", "<thead>", "</thead>",
    "<tbody>", "</tbody>", "<tr>", "<tr class=\"hl\">",
    "<tr class=\"noise\">", "</tr>", "<th>", "</th>", "<td>",
    "<td class=\"ep\">", "<td class=\"num\">", "</td>",
    "<div class=\"bar\">", "<div class=\"exbody\">", "<div class=\"sides\">",
    "<div class=\"side\">", "</div>", "<a href=\"#ep-9\">", "</a>",
    "<section id=\"ep-9\">", "</section>", "<details class=\"ex\">",
    "<details class=\"ex\" open>", "</details>", "<summary>", "</summary>",
    "<pre>", "</pre>", "<mark>", "</mark>",
};

static const char *const htmlcheck_entities[] = {
    "&amp;", "&lt;", "&gt;", "&quot;", "&#39;",
    "&#8211;", "&#8239;", "&#8594;", "&#183;",
};

static inline bool htmlcheck_known(const char *tag)
{
    for (size_t k = 0; k < sizeof(htmlcheck_tags) / sizeof(*htmlcheck_tags);
         k++) {
        if (strcmp(tag, htmlcheck_tags[k]) == 0) {
            return true;
        }
    }
    return false;
}

/* The tag at p (up to its '>') matched as spelled, or with its digit
 * runs as one '9'. */
static inline bool htmlcheck_tag(const char *p, size_t n, size_t *len)
{
    char exact[256], shape[256];
    size_t o = 0, e = 0, i = 0;
    while (i < n && p[i] != '>' && e < sizeof(exact) - 2) {
        exact[e++] = p[i];
        if (p[i] >= '0' && p[i] <= '9') {
            if (o == 0 || shape[o - 1] != '9' || p[i - 1] < '0' ||
                p[i - 1] > '9') {
                shape[o++] = '9';
            }
        } else {
            shape[o++] = p[i];
        }
        i++;
    }
    if (i == n || p[i] != '>') {
        return false;
    }
    exact[e++] = '>';
    exact[e] = '\0';
    shape[o++] = '>';
    shape[o] = '\0';
    *len = i + 1;
    return htmlcheck_known(exact) || htmlcheck_known(shape);
}

static inline const char *htmlcheck(const char *page, size_t n, size_t *at)
{
    const uint8_t *s = (const uint8_t *)page;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        *at = i;
        if (c == '<') {
            size_t len = 0;
            if (!htmlcheck_tag(page + i, n - i, &len)) {
                return "a tag the template does not write";
            }
            i += len;
            continue;
        }
        if (c == '&') {
            bool known = false;
            for (size_t k = 0;
                 k < sizeof(htmlcheck_entities) / sizeof(*htmlcheck_entities);
                 k++) {
                size_t el = strlen(htmlcheck_entities[k]);
                if (n - i >= el && memcmp(page + i, htmlcheck_entities[k],
                                          el) == 0) {
                    known = true;
                }
            }
            if (!known) {
                return "an unknown entity or a bare '&'";
            }
            i++;
            continue;
        }
        if (c < 0x80) {
            if ((c < 0x20 && c != '\n') || c == 0x7f) {
                return "a control byte";
            }
            i++;
            continue;
        }
        /* Unicode table 3-7. */
        uint8_t lo = 0x80, hi = 0xbf;
        size_t len;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            return "a byte that cannot start UTF-8";
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
            return "ill-formed UTF-8";
        }
        uint32_t cp = c & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
        for (size_t k = 1; k < len; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) {
                return "ill-formed UTF-8";
            }
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp <= 0x9f || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
            (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) {
            return "a C1 control or a character that reorders text";
        }
        i += len;
    }
    return NULL;
}

#endif
