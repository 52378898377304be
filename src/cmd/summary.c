#include "summary.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/capreader.h"
#include "core/engine.h"
#include "intake.h"
#include "io/log.h"
#include "io/pktfilter.h"
#include "stats.h"
#include "core/util.h"

#define READ_CHUNK (1024u * 1024)
/* With --flows 0 every connection is listed, up to this many. */
#define LIST_ALL_MAX 1000000u

struct conn_summary {
    struct flow_key key;
    uint64_t id;
    uint64_t client_bytes, server_bytes, gap_bytes;
    uint32_t gaps;
    uint64_t first_ns, last_ns;
    enum flow_end_reason why;
    bool syn;
};

struct summary {
    struct conn_summary *top; /* min-heap on client_bytes */
    size_t n, cap;
    uint64_t listed_out; /* connections beyond the list */
    uint64_t by_reason[FLOW_END_INPUT + 1];
};

static bool smaller(const struct conn_summary *a,
                    const struct conn_summary *b)
{
    return a->client_bytes < b->client_bytes ||
           (a->client_bytes == b->client_bytes && a->id > b->id);
}

static void sift_down(struct summary *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < s->n && smaller(&s->top[l], &s->top[m])) {
            m = l;
        }
        if (l + 1 < s->n && smaller(&s->top[l + 1], &s->top[m])) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        struct conn_summary t = s->top[i];
        s->top[i] = s->top[m];
        s->top[m] = t;
        i = m;
    }
}

static void sift_up(struct summary *s, size_t i)
{
    while (i > 0 && smaller(&s->top[i], &s->top[(i - 1) / 2])) {
        struct conn_summary t = s->top[i];
        s->top[i] = s->top[(i - 1) / 2];
        s->top[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/* Keeps the `cap` largest connections by client bytes. */
static void keep(struct summary *s, const struct conn_summary *c)
{
    if (s->cap == 0) {
        s->listed_out++;
        return;
    }
    if (s->n < s->cap) {
        if (s->n % 1024 == 0) {
            s->top = tm_xrealloc(s->top, (s->n + 1024) * sizeof(*s->top));
        }
        s->top[s->n++] = *c;
        sift_up(s, s->n - 1);
        return;
    }
    s->listed_out++;
    if (smaller(&s->top[0], c)) {
        s->top[0] = *c;
        sift_down(s, 0);
    }
}

static void on_end(void *ctx, struct flow *f, enum flow_end_reason why)
{
    struct summary *s = ctx;
    struct conn_summary c = {
        .key = f->node.key,
        .id = f->id,
        .client_bytes = f->payload_bytes,
        .server_bytes = f->server_bytes,
        .gap_bytes = f->gap_bytes,
        .gaps = f->gaps,
        .first_ns = f->first_ns,
        .last_ns = f->last_ns,
        .why = why,
        .syn = (f->flags & FLOW_SYN) != 0,
    };
    s->by_reason[why]++;
    keep(s, &c);
}

static int cmp_desc(const void *a, const void *b)
{
    const struct conn_summary *x = a, *y = b;
    if (smaller(x, y)) {
        return 1;
    }
    if (smaller(y, x)) {
        return -1;
    }
    return 0;
}

static void endpoint(char *buf, size_t len, uint8_t family,
                     const uint8_t *addr, uint16_t port)
{
    char host[INET6_ADDRSTRLEN];
    inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, host, sizeof(host));
    snprintf(buf, len, family == 4 ? "%s:%u" : "[%s]:%u", host, port);
}

static void format_time(uint64_t ns, char *buf, size_t len)
{
    time_t sec = (time_t)(ns / TM_NS_PER_S);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%06llu UTC",
             (unsigned long long)(ns % TM_NS_PER_S / 1000));
}

static const char *end_word(enum flow_end_reason why)
{
    switch (why) {
    case FLOW_END_FIN:
        return "closed";
    case FLOW_END_RST:
        return "reset";
    case FLOW_END_SERVER_RST:
        return "reset by server";
    case FLOW_END_IDLE:
        return "idle";
    case FLOW_END_EVICTED:
        return "evicted";
    case FLOW_END_NEW_SYN:
        return "replaced";
    case FLOW_END_INPUT:
        return "open at end";
    }
    return "?";
}

struct capture_facts {
    const char *name;
    const char *format;
    const char *link;
    uint32_t snaplen;
    uint64_t packets, bytes, file_bytes, filtered;
    uint64_t first_ns, last_ns;
    bool truncated;
    const char *error;
};

static void print_text(const struct capture_facts *cf, struct summary *s,
                       const struct engine_stats *es, uint16_t port)
{
    char a[32], b[32], t1[64], t2[64];
    printf("capture:     %s (%s, %s, snaplen %u)\n", cf->name, cf->format,
           cf->link ? cf->link : "no link type", cf->snaplen);
    printf("packets:     %llu (%s captured)%s\n",
           (unsigned long long)cf->packets,
           format_bytes(cf->bytes, a, sizeof(a)),
           cf->truncated ? ", last record cut short" : "");
    if (cf->filtered > 0) {
        printf("filtered:    %llu packets rejected by --filter\n",
               (unsigned long long)cf->filtered);
    }
    if (cf->packets > 0 && cf->first_ns != 0) {
        format_time(cf->first_ns, t1, sizeof(t1));
        format_time(cf->last_ns, t2, sizeof(t2));
        printf("time span:   %s to %s (%s)\n", t1, t2,
               format_duration(cf->last_ns - cf->first_ns, a, sizeof(a)));
    }
    uint64_t other = 0;
    for (int v = 1; v < DECODE_VERDICT_COUNT; v++) {
        other += es->decode[v];
    }
    printf("tcp:         %llu segments; %llu other packets (%llu not IP, "
           "%llu not TCP, %llu fragments, %llu truncated, %llu malformed)\n",
           (unsigned long long)es->decode[DECODE_TCP],
           (unsigned long long)other,
           (unsigned long long)es->decode[DECODE_NOT_IP],
           (unsigned long long)es->decode[DECODE_NOT_TCP],
           (unsigned long long)es->decode[DECODE_FRAGMENT],
           (unsigned long long)es->decode[DECODE_TRUNCATED],
           (unsigned long long)es->decode[DECODE_MALFORMED]);
    char portdesc[32] = "";
    if (port != 0) {
        snprintf(portdesc, sizeof(portdesc), " to port %u", port);
    }
    printf("connections: %llu%s; client bytes %s; gaps %llu (%s)\n",
           (unsigned long long)es->flows_seen, portdesc,
           format_bytes(es->payload_bytes, a, sizeof(a)),
           (unsigned long long)es->gaps,
           format_bytes(es->gap_bytes, b, sizeof(b)));
    printf("             %llu closed, %llu reset, %llu idle, %llu open at "
           "end\n",
           (unsigned long long)s->by_reason[FLOW_END_FIN],
           (unsigned long long)(s->by_reason[FLOW_END_RST] +
                                s->by_reason[FLOW_END_SERVER_RST]),
           (unsigned long long)s->by_reason[FLOW_END_IDLE],
           (unsigned long long)s->by_reason[FLOW_END_INPUT]);
    if (s->n == 0) {
        return;
    }
    qsort(s->top, s->n, sizeof(*s->top), cmp_desc); /* n > 0: top set */
    printf("\n  %-46s %-46s %12s %12s %5s  %s\n", "CLIENT", "SERVER",
           "CLIENT B", "SERVER B", "GAPS", "END");
    for (size_t i = 0; i < s->n; i++) {
        const struct conn_summary *c = &s->top[i];
        char ce[64], se[64];
        endpoint(ce, sizeof(ce), c->key.family, c->key.caddr, c->key.cport);
        endpoint(se, sizeof(se), c->key.family, c->key.saddr, c->key.sport);
        printf("  %-46s %-46s %12llu %12llu %5u  %s%s\n", ce, se,
               (unsigned long long)c->client_bytes,
               (unsigned long long)c->server_bytes, c->gaps,
               end_word(c->why), c->syn ? "" : " (joined mid-stream)");
    }
    if (s->listed_out > 0) {
        printf("  ... and %llu smaller connections (--flows N lists more)\n",
               (unsigned long long)s->listed_out);
    }
}

static void print_json(const struct capture_facts *cf, struct summary *s,
                       const struct engine_stats *es)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "capture", cf->name);
    cJSON_AddStringToObject(root, "format", cf->format);
    if (cf->link) {
        cJSON_AddStringToObject(root, "link_type", cf->link);
    } else {
        cJSON_AddNullToObject(root, "link_type");
    }
    cJSON_AddNumberToObject(root, "snaplen", cf->snaplen);
    cJSON_AddNumberToObject(root, "packets", (double)cf->packets);
    cJSON_AddNumberToObject(root, "bytes", (double)cf->bytes);
    cJSON_AddBoolToObject(root, "truncated", cf->truncated);
    /* Nanoseconds since 1970 need 61 bits; a double would round them. */
    char ns[24];
    snprintf(ns, sizeof(ns), "%llu", (unsigned long long)cf->first_ns);
    cJSON_AddRawToObject(root, "first_ns", ns);
    snprintf(ns, sizeof(ns), "%llu", (unsigned long long)cf->last_ns);
    cJSON_AddRawToObject(root, "last_ns", ns);
    cJSON_AddNumberToObject(root, "tcp_segments",
                            (double)es->decode[DECODE_TCP]);
    cJSON_AddNumberToObject(root, "connections", (double)es->flows_seen);
    cJSON_AddNumberToObject(root, "client_bytes", (double)es->payload_bytes);
    cJSON_AddNumberToObject(root, "gaps", (double)es->gaps);
    cJSON_AddNumberToObject(root, "gap_bytes", (double)es->gap_bytes);
    if (cf->error) {
        cJSON_AddStringToObject(root, "error", cf->error);
    }
    if (s->n > 0) {
        qsort(s->top, s->n, sizeof(*s->top), cmp_desc);
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "flows");
    for (size_t i = 0; i < s->n; i++) {
        const struct conn_summary *c = &s->top[i];
        char ce[64], se[64];
        endpoint(ce, sizeof(ce), c->key.family, c->key.caddr, c->key.cport);
        endpoint(se, sizeof(se), c->key.family, c->key.saddr, c->key.sport);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "client", ce);
        cJSON_AddStringToObject(o, "server", se);
        cJSON_AddNumberToObject(o, "client_bytes", (double)c->client_bytes);
        cJSON_AddNumberToObject(o, "server_bytes", (double)c->server_bytes);
        cJSON_AddNumberToObject(o, "gaps", c->gaps);
        cJSON_AddNumberToObject(o, "gap_bytes", (double)c->gap_bytes);
        cJSON_AddStringToObject(o, "end", flow_end_reason_name(c->why));
        cJSON_AddBoolToObject(o, "syn", c->syn);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddNumberToObject(root, "unlisted", (double)s->listed_out);
    char *text = cJSON_Print(root);
    puts(text);
    cJSON_free(text);
    cJSON_Delete(root);
}

int summary_command(const struct tm_options *o)
{
    char err[512];
    int fd;
    const char *name = o->input;
    if (strcmp(o->input, "-") == 0) {
        fd = STDIN_FILENO;
        name = "standard input";
        if (isatty(fd)) {
            tm_error("standard input is a terminal: pipe a capture into it");
            return 1;
        }
    } else if ((fd = open(o->input, O_RDONLY | O_CLOEXEC)) < 0) {
        tm_error("cannot open %s: %s", o->input, strerror(errno));
        return 1;
    }
    if (o->filter != NULL && pktfilter_check(o->filter, err, sizeof(err))) {
        tm_error("%s", err);
        tm_error("try 'tapmirror summary --help'");
        if (fd != STDIN_FILENO) {
            close(fd);
        }
        return 2;
    }
    struct summary s;
    memset(&s, 0, sizeof(s));
    s.cap = o->list_flows == 0 ? LIST_ALL_MAX : o->list_flows;
    /* The engine a replay of the capture would use, so that summary
     * reports what replay would see. */
    struct engine_config ec = engine_config_from_options(o);
    struct engine_events ev = {NULL, NULL, NULL, on_end, &s, NULL};
    struct engine *e = engine_new(&ec, &ev);
    struct capreader *rd = capreader_new();
    /* Every link type reaches the engine: summary lists what a capture
     * holds, and the engine counts what it cannot read. */
    struct intake in = {
        .engine = e,
        .filter = o->filter ? pktfilter_new(o->filter) : NULL,
        .name = name,
        .any_link = true,
    };
    uint8_t *buf = tm_xmalloc(READ_CHUNK);
    struct capture_facts cf = {.name = name, .format = "unknown"};
    int code = 0;
    bool eof = false;
    while (!eof && code == 0) {
        ssize_t n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(err, sizeof(err), "reading %s: %s", name,
                     strerror(errno));
            cf.error = err;
            code = 1;
            break;
        }
        if (n == 0) {
            eof = true;
            break;
        }
        cf.file_bytes += (uint64_t)n;
        capreader_push(rd, buf, (size_t)n);
        struct cap_item it;
        int rc;
        while ((rc = capreader_next(rd, &it)) == CAPREADER_ITEM) {
            if (it.kind != CAP_ITEM_PACKET) {
                /* With any_link a header only names the link type. */
                if (it.kind == CAP_ITEM_HEADER) {
                    (void)intake_header(&in, &it, err, sizeof(err));
                }
                continue;
            }
            enum intake_verdict v = intake_packet(&in, &it, err, sizeof(err));
            if (it.ts_ns != 0) {
                if (cf.first_ns == 0 || it.ts_ns < cf.first_ns) {
                    cf.first_ns = it.ts_ns;
                }
                if (it.ts_ns > cf.last_ns) {
                    cf.last_ns = it.ts_ns;
                }
            }
            if (v == INTAKE_FAILED) {
                cf.error = err;
                code = 1;
                break;
            }
            if (v == INTAKE_FILTERED) {
                continue;
            }
            intake_to_engine(&in, &it);
            engine_advance(e, engine_now(e));
        }
        if (rc == CAPREADER_ERROR) {
            snprintf(err, sizeof(err), "%s: %s", name, capreader_error(rd));
            cf.error = err;
            code = 1;
        }
    }
    cf.format = capreader_format(rd) == CAP_FORMAT_PCAPNG ? "pcapng"
                : capreader_format(rd) == CAP_FORMAT_PCAP ? "pcap"
                                                          : "unknown";
    cf.snaplen = capreader_snaplen(rd);
    if (eof && code == 0 && capreader_end(rd) == CAPREADER_ERROR) {
        snprintf(err, sizeof(err), "%s: %s", name, capreader_error(rd));
        cf.error = err;
        code = 1;
    }
    cf.truncated = eof && code == 0 && capreader_pending(rd) > 0;
    cf.link = in.link_name;
    cf.packets = in.packets;
    cf.bytes = in.bytes;
    cf.filtered = in.filtered;
    engine_finish(e);
    if (o->json) {
        print_json(&cf, &s, engine_stats(e));
    } else if (cf.format[0] != 'u') {
        print_text(&cf, &s, engine_stats(e), o->port);
    }
    fflush(stdout);
    if (cf.error != NULL) {
        tm_error("%s", cf.error);
    } else if (cf.truncated) {
        tm_warn("%s ends inside a record: the incomplete last record was "
                "ignored",
                name);
    }
    engine_free(e);
    capreader_free(rd);
    pktfilter_free(in.filter);
    free(buf);
    free(s.top);
    if (fd != STDIN_FILENO) {
        close(fd);
    }
    return code;
}
