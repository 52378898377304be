/*
 * fuzz_compare: the shadow-compare engine (compare.c, compare_report.c)
 * on hostile streams: a client stream, production's and the local
 * responses, and one gap.
 *
 * Input layout:
 *   byte 0     bit 0: noise learning; bits 1-2: body limit (default, 16,
 *              64, 4096 bytes); bit 3: small caps (3 exchanges waiting,
 *              256 bytes held); bits 4-5: the stream with a gap (none,
 *              client, production, local)
 *   byte 1     PRNG seed for chunking and interleaving
 *   bytes 2-3  the gap's offset in its stream (modulo its length + 1)
 *   byte 4     the gap's length - 1
 *   bytes 5-6  the client stream's length; bytes 7-8 production's
 *   rest       client stream, production's stream, the local stream
 *
 * Checks:
 *  - with the caps large enough never to be reached, the streams fed
 *    whole one after the other and fed in PRNG-sized chunks in a PRNG
 *    interleaving give the same exchanges (index, outcome, reason,
 *    statuses, differences), and so do two chunkings of the same
 *    stream order with the selected caps;
 *  - production's stream compared with itself (the same bytes and gap
 *    as the local stream) never differs;
 *  - every exchange is reported once; NOT_COMPARABLE exactly when a
 *    reason is given, with a one-line detail; SAME only with noise
 *    differences; difference lines are one line each; the diff-log line
 *    and the report are valid JSON.
 */
#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "proto/compare.h"

#define MAX_EX 4096
#define TM_MIN_FZ(a, b) ((a) < (b) ? (a) : (b))

struct run {
    char *sum; /* one line per exchange, sorted by index afterwards */
    size_t len, cap;
    uint64_t seen[MAX_EX / 64];
    size_t n;
    bool any_differ;
    struct compare_report *report;
};

static void put(struct run *r, const char *s)
{
    size_t n = strlen(s);
    if (r->len + n + 1 > r->cap) {
        r->cap = (r->len + n + 1) * 2;
        r->sum = realloc(r->sum, r->cap);
        FZ_CHECK(r->sum != NULL, "out of memory");
    }
    memcpy(r->sum + r->len, s, n + 1);
    r->len += n;
}

static void on_exchange(void *ctx, const struct compare_exchange *ex)
{
    struct run *r = ctx;
    FZ_CHECK(ex->outcome <= COMPARE_NOT_COMPARABLE, "outcome %d",
             (int)ex->outcome);
    FZ_CHECK((ex->outcome == COMPARE_NOT_COMPARABLE) ==
                 (ex->reason != COMPARE_R_NONE),
             "outcome %s with reason %s", compare_outcome_name(ex->outcome),
             compare_reason_name(ex->reason));
    if (ex->outcome == COMPARE_NOT_COMPARABLE) {
        FZ_CHECK(ex->detail[0] != '\0' && strchr(ex->detail, '\n') == NULL,
                 "detail '%s'", ex->detail);
    }
    size_t real = 0;
    for (size_t i = 0; i < ex->n_diffs; i++) {
        FZ_CHECK(strchr(ex->diffs[i].line, '\n') == NULL, "line break");
        FZ_CHECK(ex->diffs[i].field[0] != '\0', "empty field");
        real += !ex->diffs[i].noise;
    }
    FZ_CHECK(ex->n_diffs <= COMPARE_DEFAULT_DIFF_LINES, "%zu lines",
             ex->n_diffs);
    if (ex->outcome == COMPARE_SAME) {
        FZ_CHECK(real == 0, "same with %zu differences", real);
    }
    if (ex->outcome == COMPARE_DIFFER) {
        FZ_CHECK(ex->diff_count > ex->noise_count, "differ without one");
        r->any_differ = true;
    }
    if (ex->protocol != COMPARE_PROTO_OTHER) {
        FZ_CHECK(ex->index < MAX_EX, "index %llu",
                 (unsigned long long)ex->index);
        uint64_t bit = 1ULL << (ex->index % 64);
        FZ_CHECK(!(r->seen[ex->index / 64] & bit), "exchange %llu twice",
                 (unsigned long long)ex->index);
        r->seen[ex->index / 64] |= bit;
    }
    r->n++;
    char *line = compare_exchange_line(ex, true, 0);
    cJSON *back = cJSON_Parse(line);
    FZ_CHECK(back != NULL, "diff-log line is not JSON: %s", line);
    cJSON_Delete(back);
    free(line);
    compare_report_add(r->report, ex);

    char head[256];
    snprintf(head, sizeof(head), "%08llu %s %s %s %u/%u %u/%u ",
             (unsigned long long)ex->index, ex->protocol_name,
             compare_outcome_name(ex->outcome),
             compare_reason_name(ex->reason), ex->prod.present,
             ex->prod.status, ex->local.present, ex->local.status);
    put(r, head);
    for (size_t i = 0; i < ex->n_diffs; i++) {
        put(r, ex->diffs[i].line);
        put(r, ex->diffs[i].noise ? " (noise)|" : "|");
    }
    put(r, "\n");
}

static int line_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The summary's lines in index order (lean exchanges refused at the cap
 * are reported when their request ends, before older ones). */
static void sort_lines(struct run *r)
{
    if (r->len == 0) {
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < r->len; i++) {
        n += r->sum[i] == '\n';
    }
    char **lines = malloc(n * sizeof(*lines));
    char *copy = malloc(r->len + 1);
    FZ_CHECK(lines != NULL && copy != NULL, "out of memory");
    memcpy(copy, r->sum, r->len + 1);
    size_t k = 0;
    for (char *p = copy; k < n; k++) {
        lines[k] = p;
        p = strchr(p, '\n');
        *p++ = '\0';
    }
    qsort(lines, n, sizeof(*lines), line_cmp);
    size_t at = 0;
    for (k = 0; k < n; k++) {
        size_t l = strlen(lines[k]);
        memcpy(r->sum + at, lines[k], l);
        r->sum[at + l] = '\n';
        at += l + 1;
    }
    free(lines);
    free(copy);
}

struct input {
    const uint8_t *s[3];
    size_t len[3];
    int gap_stream; /* -1 none */
    size_t gap_at;
    uint64_t gap_len;
};

static const enum compare_stream ids[3] = {COMPARE_CLIENT, COMPARE_PROD,
                                           COMPARE_LOCAL};

struct cursor {
    size_t pos;
    bool gap_done, ended;
};

static void step(struct compare_conn *c, const struct input *in, int i,
                 struct cursor *k, size_t n)
{
    if (k->ended) {
        return;
    }
    if (in->gap_stream == i && !k->gap_done && k->pos == in->gap_at) {
        compare_conn_gap(c, ids[i], in->gap_len);
        k->gap_done = true;
        return;
    }
    size_t stop = in->len[i];
    if (in->gap_stream == i && !k->gap_done) {
        stop = in->gap_at;
    }
    n = TM_MIN_FZ(n, stop - k->pos);
    if (n > 0) {
        compare_conn_feed(c, ids[i], in->s[i] + k->pos, n,
                          (int64_t)k->pos * 1000);
        k->pos += n;
    }
    if (k->pos == in->len[i] && (in->gap_stream != i || k->gap_done)) {
        compare_conn_end(c, ids[i]);
        k->ended = true;
    }
}

static void feed(const struct compare_config *cfg, struct compare_noise *nz,
                 const struct input *in, uint64_t seed, bool chunked,
                 bool interleave, struct run *r)
{
    memset(r, 0, sizeof(*r));
    r->report = compare_report_new(8);
    struct compare_conn *c = compare_conn_new(cfg, nz, 1, on_exchange, r);
    struct cursor k[3];
    memset(k, 0, sizeof(k));
    uint64_t st = seed;
    int turn = 0;
    while (!k[0].ended || !k[1].ended || !k[2].ended) {
        int i = turn;
        if (interleave) {
            i = (int)(fz_rand(&st) % 3);
        } else if (k[turn].ended) {
            turn++;
            continue;
        }
        size_t n = SIZE_MAX;
        if (chunked) {
            uint64_t v = fz_rand(&st);
            n = (v & 3) == 0 ? 1 : (size_t)(v >> 8) % 97 + 1;
        }
        step(c, in, i, &k[i], n);
        size_t waiting;
        size_t held = compare_conn_held(c, &waiting);
        FZ_CHECK(waiting < held, "waiting %zu of %zu held", waiting, held);
        (void)compare_conn_awaiting_local(c);
    }
    compare_conn_finish(c);
    compare_report_add_conn(r->report, c);
    FZ_CHECK(strchr(compare_conn_stop_reason(c), '\n') == NULL,
             "stop reason is not one line");
    compare_conn_free(c);
    cJSON *o = compare_report_json(r->report, nz);
    char *text = cJSON_PrintUnformatted(o);
    FZ_CHECK(text != NULL, "report not printable");
    cJSON *back = cJSON_Parse(text);
    FZ_CHECK(back != NULL, "report is not JSON");
    cJSON_Delete(back);
    free(text);
    cJSON_Delete(o);
    compare_report_free(r->report);
    sort_lines(r);
    if (r->sum == NULL) {
        put(r, "");
    }
}

/* The replay's budget: abandoned half way, the connection holds nothing
 * waiting, reports what was waiting and every later request as limit,
 * and no longer waits for a local answer. */
static void feed_abandoned(const struct compare_config *cfg,
                           const struct input *in, uint64_t seed)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    r.report = compare_report_new(8);
    struct compare_conn *c = compare_conn_new(cfg, NULL, 1, on_exchange, &r);
    struct cursor k[3];
    memset(k, 0, sizeof(k));
    uint64_t st = seed;
    size_t steps = 0, half = (size_t)(seed % 7) + 1;
    bool abandoned = false;
    while (!k[0].ended || !k[1].ended || !k[2].ended) {
        int i = (int)(fz_rand(&st) % 3);
        step(c, in, i, &k[i], (size_t)(fz_rand(&st) % 61) + 1);
        if (++steps == half) {
            compare_conn_abandon(c, COMPARE_R_LIMIT, "over the budget");
            abandoned = true;
        }
        if (abandoned) {
            size_t waiting;
            compare_conn_held(c, &waiting);
            FZ_CHECK(waiting == 0, "%zu bytes wait after the abandon",
                     waiting);
            FZ_CHECK(!compare_conn_awaiting_local(c),
                     "awaits a local answer after the abandon");
        }
    }
    compare_conn_finish(c);
    compare_conn_free(c);
    compare_report_free(r.report);
    free(r.sum);
}

static void same_runs(const struct run *a, const struct run *b,
                      const char *what)
{
    FZ_CHECK(strcmp(a->sum, b->sum) == 0, "%s:\n%s--- against ---\n%s",
             what, a->sum, b->sum);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9 || size > 32768) {
        return 0;
    }
    struct fz f = {data, size};
    uint8_t flags = fz_u8(&f);
    uint64_t seed = fz_u8(&f);
    uint16_t gap_at = fz_u16(&f);
    uint64_t gap_len = (uint64_t)fz_u8(&f) + 1;
    size_t lc = fz_u16(&f), lp = fz_u16(&f);
    struct input in;
    size_t got;
    in.s[0] = fz_bytes(&f, lc, &in.len[0]);
    in.s[1] = fz_bytes(&f, lp, &in.len[1]);
    in.s[2] = fz_bytes(&f, fz_left(&f), &got);
    in.len[2] = got;
    in.gap_stream = ((flags >> 4) & 3) - 1;
    in.gap_at = in.gap_stream >= 0 ? gap_at % (in.len[in.gap_stream] + 1)
                                   : 0;
    in.gap_len = gap_len;

    static const size_t limits[4] = {0, 16, 64, 4096};
    struct compare_config big = {
        .body_limit = limits[(flags >> 1) & 3],
        .max_waiting = MAX_EX,
        .max_pending = 1 << 20,
    };
    struct compare_config small = big;
    if (flags & 8) {
        small.max_waiting = 3;
        small.max_pending = 256;
    }
    bool learn = flags & 1;

    struct run a, b;
    struct compare_noise *na = learn ? compare_noise_new(4, 64, 9) : NULL;
    struct compare_noise *nb = learn ? compare_noise_new(4, 64, 9) : NULL;
    feed(&big, na, &in, seed, false, false, &a);
    feed(&big, nb, &in, seed, true, true, &b);
    same_runs(&a, &b, "whole and interleaved chunks differ");
    free(a.sum);
    free(b.sum);
    compare_noise_free(na);
    compare_noise_free(nb);

    feed_abandoned(&small, &in, seed);
    feed(&small, NULL, &in, seed, false, false, &a);
    feed(&small, NULL, &in, seed + 1, true, false, &b);
    same_runs(&a, &b, "two chunkings differ");
    free(a.sum);
    free(b.sum);

    /* Production's answers against themselves. */
    struct input self = in;
    self.s[2] = in.s[1];
    self.len[2] = in.len[1];
    if (in.gap_stream == 2) {
        self.gap_stream = -1;
    }
    struct compare_noise *ns = learn ? compare_noise_new(4, 64, 9) : NULL;
    feed(&big, ns, &self, seed, true, true, &a);
    FZ_CHECK(!a.any_differ, "a stream differs from itself:\n%s", a.sum);
    free(a.sum);
    compare_noise_free(ns);
    return 0;
}
