/*
 * Capture redaction (see capredact.h). A small line machine per TCP
 * direction, carried from segment to segment by sequence number.
 */
#include "capredact.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/decode.h"
#include "core/util.h"
#include "httpmsg.h"

#define NAME_MAX_LEN    64
#define DEFAULT_STREAMS 16384

enum line_state {
    L_START, /* at a line start */
    L_NAME,  /* reading what may be a field name */
    L_LEAD,  /* after the colon of a redacted field: whitespace kept */
    L_VALUE, /* inside a redacted value: every byte but CR and LF */
    L_OTHER, /* a line that is not redacted, to its end */
};

struct range {
    uint32_t start, end; /* sequence numbers, end excluded */
};

struct stream {
    bool used;
    uint8_t family;
    uint16_t sport, dport;
    uint8_t src[16], dst[16];
    uint32_t next_seq;
    uint8_t state;
    bool continued; /* the last line was a redacted value: a folded line
                       (starting with SP or HT) continues it */
    uint8_t name_len;
    char name[NAME_MAX_LEN];
    struct range ranges[CAPREDACT_RANGES];
    uint8_t n_ranges, next_range;
};

struct capredact {
    char **names; /* lower case */
    size_t n_names;
    struct stream *table;
    size_t mask;
    uint64_t values;
};

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void add_name(struct capredact *cr, const char *name)
{
    size_t len = strlen(name);
    char *copy = tm_xmalloc(len + 1);
    for (size_t i = 0; i <= len; i++) {
        copy[i] = lower(name[i]);
    }
    cr->names = tm_xrealloc(cr->names, (cr->n_names + 1) * sizeof(char *));
    cr->names[cr->n_names++] = copy;
}

struct capredact *capredact_new(const char *const *extra, size_t n_extra,
                                size_t streams)
{
    struct capredact *cr = tm_xcalloc(1, sizeof(*cr));
    for (size_t i = 0; i < httpmsg_redact_default_count; i++) {
        add_name(cr, httpmsg_redact_default[i]);
    }
    for (size_t i = 0; i < n_extra; i++) {
        add_name(cr, extra[i]);
    }
    size_t n = 1;
    while (n < (streams ? streams : DEFAULT_STREAMS)) {
        n *= 2;
    }
    cr->table = tm_xcalloc(n, sizeof(*cr->table));
    cr->mask = n - 1;
    return cr;
}

void capredact_free(struct capredact *cr)
{
    if (cr == NULL) {
        return;
    }
    for (size_t i = 0; i < cr->n_names; i++) {
        free(cr->names[i]);
    }
    free(cr->names);
    free(cr->table);
    free(cr);
}

uint64_t capredact_values(const struct capredact *cr)
{
    return cr->values;
}

static bool sensitive(const struct capredact *cr, const char *name,
                      size_t len)
{
    for (size_t i = 0; i < cr->n_names; i++) {
        if (strlen(cr->names[i]) == len &&
            memcmp(cr->names[i], name, len) == 0) {
            return true;
        }
    }
    return false;
}

/* The stream of this direction; *fresh when it was not followed. */
static struct stream *lookup(struct capredact *cr,
                             const struct tcp_segment *seg, bool *fresh)
{
    uint8_t key[37];
    key[0] = seg->family;
    memcpy(key + 1, seg->src, 16);
    memcpy(key + 17, seg->dst, 16);
    memcpy(key + 33, &seg->sport, 2);
    memcpy(key + 35, &seg->dport, 2);
    struct stream *s = &cr->table[tm_hash64(key, sizeof(key), 0x7a9) &
                                  cr->mask];
    *fresh = !(s->used && s->family == seg->family &&
               s->sport == seg->sport && s->dport == seg->dport &&
               memcmp(s->src, seg->src, 16) == 0 &&
               memcmp(s->dst, seg->dst, 16) == 0);
    if (*fresh) {
        memset(s, 0, sizeof(*s));
        s->used = true;
        s->family = seg->family;
        s->sport = seg->sport;
        s->dport = seg->dport;
        memcpy(s->src, seg->src, 16);
        memcpy(s->dst, seg->dst, 16);
        s->state = L_START;
    }
    return s;
}

static void remember(struct stream *s, uint32_t start, uint32_t end)
{
    if (start == end) {
        return;
    }
    if (s->n_ranges > 0) {
        struct range *last =
            &s->ranges[(s->next_range + CAPREDACT_RANGES - 1) %
                       CAPREDACT_RANGES];
        if (last->end == start) {
            last->end = end; /* a value that goes on */
            return;
        }
    }
    s->ranges[s->next_range] = (struct range){start, end};
    s->next_range = (uint8_t)((s->next_range + 1) % CAPREDACT_RANGES);
    if (s->n_ranges < CAPREDACT_RANGES) {
        s->n_ranges++;
    }
}

/* Retransmitted bytes p[len] at `seq`: the redactions of their first
 * copy again. */
static size_t replay_ranges(const struct stream *s, uint8_t *p, size_t len,
                            uint32_t seq)
{
    size_t done = 0;
    for (size_t i = 0; i < s->n_ranges; i++) {
        const struct range *r = &s->ranges[i];
        int64_t from = (int32_t)(r->start - seq);
        int64_t to = (int32_t)(r->end - seq);
        if (from < 0) {
            from = 0;
        }
        if (to > (int64_t)len) {
            to = (int64_t)len;
        }
        for (int64_t k = from; k < to; k++) {
            if (p[k] != '\r' && p[k] != '\n') {
                p[k] = 'x';
                done++;
            }
        }
    }
    return done;
}

/* Runs the line machine over p[len] (at sequence number `seq`). */
static size_t run(struct capredact *cr, struct stream *s, uint8_t *p,
                  size_t len, uint32_t seq)
{
    size_t done = 0;
    size_t run_start = SIZE_MAX;
    if (s->state == L_VALUE) {
        cr->values++; /* a value that goes on in this segment */
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        bool x = false;
        switch (s->state) {
        case L_START:
            if (c == '\r' || c == '\n') {
                s->continued = false;
            } else if ((c == ' ' || c == '\t') && s->continued) {
                s->state = L_LEAD;
            } else if (is_tchar(c)) {
                s->continued = false;
                s->state = L_NAME;
                s->name[0] = lower((char)c);
                s->name_len = 1;
            } else {
                s->continued = false;
                s->state = L_OTHER;
            }
            break;
        case L_NAME:
            if (c == ':') {
                bool secret = sensitive(cr, s->name, s->name_len);
                s->state = secret ? L_LEAD : L_OTHER;
                s->continued = secret;
            } else if (c == '\n') {
                s->state = L_START;
            } else if (is_tchar(c) && s->name_len < NAME_MAX_LEN) {
                s->name[s->name_len++] = lower((char)c);
            } else {
                s->state = L_OTHER;
            }
            break;
        case L_LEAD:
            if (c == '\n') {
                s->state = L_START;
            } else if (c != ' ' && c != '\t' && c != '\r') {
                x = true;
                s->state = L_VALUE;
                cr->values++;
            }
            break;
        case L_VALUE:
            if (c == '\n') {
                s->state = L_START;
            } else if (c != '\r') {
                x = true;
            }
            break;
        case L_OTHER:
        default:
            if (c == '\n') {
                s->state = L_START;
            }
            break;
        }
        if (x) {
            p[i] = 'x';
            done++;
            if (run_start == SIZE_MAX) {
                run_start = i;
            }
        } else if (run_start != SIZE_MAX) {
            remember(s, seq + (uint32_t)run_start, seq + (uint32_t)i);
            run_start = SIZE_MAX;
        }
    }
    if (run_start != SIZE_MAX) {
        remember(s, seq + (uint32_t)run_start, seq + (uint32_t)len);
    }
    return done;
}

/* Whether bytes that follow a hole read as the start of a line that is
 * no credential's continuation: an empty line, a status line, a request
 * line or a field name and its colon. */
static bool reads_as_line_start(const uint8_t *p, size_t len)
{
    if (len == 0 || p[0] == '\r' || p[0] == '\n') {
        return true;
    }
    if (len >= 7 && memcmp(p, "HTTP/1.", 7) == 0) {
        return true;
    }
    size_t i = 0;
    while (i < len && is_tchar(p[i])) {
        i++;
    }
    if (i == 0 || i == len) {
        return false;
    }
    if (p[i] == ':') {
        return true;
    }
    /* "METHOD /target" or "METHOD *" or "METHOD http://" */
    for (size_t k = 0; k < i; k++) {
        if (p[k] < 'A' || p[k] > 'Z') {
            return false;
        }
    }
    return p[i] == ' ' && i + 1 < len &&
           (p[i + 1] == '/' || p[i + 1] == '*' || p[i + 1] == 'h');
}

/* The bytes after a hole start in an unknown line: the part up to the
 * first line break is overwritten unless it reads as a line start (see
 * capredact.h). */
static void after_hole(struct stream *s, const uint8_t *p, size_t len)
{
    const uint8_t *lf = memchr(p, '\n', len);
    size_t line = lf ? (size_t)(lf - p) : len;
    s->continued = false;
    s->state = L_START;
    if (!reads_as_line_start(p, line)) {
        s->state = L_VALUE;
        s->continued = true;
    }
}

/* The ones' complement sum of `len` bytes read as big-endian 16-bit
 * words (an odd last byte padded with zero), folded to 16 bits. */
static uint32_t ones_sum(const uint8_t *p, size_t len)
{
    uint64_t sum = 0;
    size_t i = 0;
    for (; i + 1 < len; i += 2) {
        sum += (uint32_t)p[i] << 8 | p[i + 1];
    }
    if (i < len) {
        sum += (uint32_t)p[i] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint32_t)sum;
}

/*
 * Updates the TCP checksum at `field` for payload words whose sum went
 * from `before` to `after` (RFC 1624: HC' = ~(~HC + ~m + m')). The
 * payload starts at an even offset from the TCP header (its length is a
 * multiple of 4), so the words summed are the ones the checksum covers.
 * A checksum that was right stays right; one the capture holds unset
 * (offloaded) stays as wrong as it was.
 */
static void update_checksum(uint8_t *field, uint32_t before, uint32_t after)
{
    uint32_t hc = (uint32_t)field[0] << 8 | field[1];
    uint32_t sum = (~hc & 0xffff) + (~before & 0xffff) + after;
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    uint32_t out = ~sum & 0xffff;
    field[0] = (uint8_t)(out >> 8);
    field[1] = (uint8_t)out;
}

static size_t redact_payload(struct capredact *cr, struct stream *s,
                             uint8_t *p, size_t len, uint32_t seq);

size_t capredact_packet(struct capredact *cr, int linktype, uint8_t *pkt,
                        size_t caplen, size_t wirelen)
{
    struct tcp_segment seg;
    if (decode_packet(linktype, pkt, caplen, wirelen, &seg) != DECODE_TCP) {
        return 0;
    }
    bool fresh;
    struct stream *s = lookup(cr, &seg, &fresh);
    uint32_t seq = seg.seq;
    if (seg.flags & TCP_FLAG_SYN) {
        /* A new connection on this 4-tuple: start afresh. */
        if (!fresh) {
            memset(s->ranges, 0, sizeof(s->ranges));
            s->n_ranges = s->next_range = 0;
        }
        s->state = L_START;
        s->continued = false;
        seq++;
        s->next_seq = seq;
    } else if (fresh) {
        /* Joined mid-stream: most likely at a message start. */
        s->next_seq = seq;
    }
    size_t len = seg.payload_len;
    if (len == 0) {
        return 0;
    }
    uint8_t *p = pkt + (seg.payload - pkt);
    /* The checksum covers the whole payload: only a record that holds
     * it all (and the checksum field) can have it kept right. */
    bool whole = seg.payload_len == seg.wire_len;
    uint32_t before = whole ? ones_sum(p, len) : 0;
    size_t done = redact_payload(cr, s, p, len, seq);
    if (whole) {
        /* Bytes after a hole may be overwritten without being counted:
         * the sums say whether anything changed. */
        uint32_t after = ones_sum(p, len);
        if (after != before) {
            update_checksum(pkt + (seg.tcp - pkt) + 16, before, after);
        }
    }
    return done;
}

/* Redacts the payload `p` (`len` bytes from `seq`) of one segment of
 * stream `s`; returns the bytes overwritten. */
static size_t redact_payload(struct capredact *cr, struct stream *s,
                             uint8_t *p, size_t len, uint32_t seq)
{
    size_t done = 0;
    int32_t behind = (int32_t)(s->next_seq - seq);
    if (behind > 0) {
        size_t old = TM_MIN(len, (size_t)behind);
        done += replay_ranges(s, p, old, seq);
        if (old == len) {
            return done;
        }
        p += old;
        len -= old;
        seq += (uint32_t)old;
    } else if (behind < 0) {
        after_hole(s, p, len);
    }
    done += run(cr, s, p, len, seq);
    s->next_seq = seq + (uint32_t)len;
    return done;
}
