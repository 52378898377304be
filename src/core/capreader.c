#include "capreader.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wire.h"

#define PCAP_MAGIC_US       0xa1b2c3d4u
#define PCAP_MAGIC_NS       0xa1b23c4du
#define PCAP_MAGIC_MODIFIED 0xa1b2cd34u /* Kuznetzov's patched libpcap */

#define PCAPNG_SHB      0x0a0d0d0au
#define PCAPNG_IDB      0x00000001u
#define PCAPNG_OPB      0x00000002u /* obsolete packet block */
#define PCAPNG_SPB      0x00000003u
#define PCAPNG_EPB      0x00000006u
#define PCAPNG_BOM      0x1a2b3c4du
#define PCAPNG_MIN_SHB  28
#define PCAPNG_MIN_BLOCK 12

#define OPT_IF_TSRESOL  9
#define OPT_IF_TSOFFSET 14

struct iface {
    int linktype;
    uint32_t snaplen;
    uint8_t tsresol; /* if_tsresol: bit 7 set = power of two */
    int64_t tsoffset;
};

struct capreader {
    enum cap_format format;
    bool big_endian;   /* byte order of the file / current section */
    bool nanos;        /* pcap: nanosecond timestamps */
    size_t rec_hdr_len; /* pcap: 16, or 24 for the modified format */
    int linktype;
    uint32_t snaplen;
    bool header_seen;
    bool failed;

    struct iface *ifaces;
    uint32_t n_ifaces, cap_ifaces;

    const uint8_t *chunk;
    size_t chunk_len, chunk_pos;

    uint8_t *carry; /* an item split across chunks */
    size_t carry_len, carry_cap;
    bool carry_returned; /* carry holds the item last returned */

    uint64_t offset; /* input offset of carry[0] or chunk[chunk_pos] */
    uint64_t anomalies;
    char error[256];
};

static uint32_t rd32(const struct capreader *r, const uint8_t *p)
{
    return r->big_endian ? rd_be32(p) : rd_le32(p);
}

static uint16_t rd16(const struct capreader *r, const uint8_t *p)
{
    return r->big_endian ? rd_be16(p) : rd_le16(p);
}

static int fail(struct capreader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct capreader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    r->failed = true;
    return CAPREADER_ERROR;
}

struct capreader *capreader_new(void)
{
    struct capreader *r = tm_xcalloc(1, sizeof(*r));
    r->linktype = -1;
    return r;
}

void capreader_free(struct capreader *r)
{
    if (r == NULL) {
        return;
    }
    free(r->ifaces);
    free(r->carry);
    free(r);
}

void capreader_push(struct capreader *r, const uint8_t *data, size_t len)
{
    r->chunk = data;
    r->chunk_len = len;
    r->chunk_pos = 0;
}

size_t capreader_pending(const struct capreader *r)
{
    return r->carry_returned ? 0 : r->carry_len;
}

uint64_t capreader_offset(const struct capreader *r)
{
    return r->offset;
}

enum cap_format capreader_format(const struct capreader *r)
{
    return r->format;
}

int capreader_linktype(const struct capreader *r)
{
    return r->linktype;
}

uint32_t capreader_snaplen(const struct capreader *r)
{
    return r->snaplen;
}

uint64_t capreader_anomalies(const struct capreader *r)
{
    return r->anomalies;
}

const char *capreader_error(const struct capreader *r)
{
    return r->error;
}

/* How much text is read before calling it not a capture: enough to quote
 * a kubectl or shell error line, so that the message does not depend on
 * how the input was chunked. */
#define TEXT_PROBE 48

static bool printable_prefix(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' || p[i] == '\r') {
            return true;
        }
        if (!isprint(p[i])) {
            return false;
        }
    }
    return true;
}

/* Describes bytes that are not a capture, so that "kubectl: error: ..."
 * piped in by mistake is recognisable in the message. */
static int fail_not_capture(struct capreader *r, const uint8_t *p, size_t n)
{
    char text[48];
    size_t k = 0;
    bool printable = true;
    for (size_t i = 0; i < n && k + 1 < sizeof(text); i++) {
        if (p[i] == '\n' || p[i] == '\r') {
            break;
        }
        if (!isprint(p[i])) {
            printable = false;
            break;
        }
        text[k++] = (char)p[i];
    }
    text[k] = '\0';
    if (printable && k >= 1) {
        return fail(r, "input is not a pcap or pcapng capture: it starts "
                       "with text \"%s\"",
                    text);
    }
    char hex[16] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && i < 4; i++) {
        used += (size_t)snprintf(hex + used, sizeof(hex) - used, "%s%02x",
                                 i ? " " : "", p[i]);
    }
    return fail(r, "input is not a pcap or pcapng capture (first bytes %s)",
                hex);
}

/*
 * How many bytes the item starting at `p` (of which `avail` are present)
 * occupies. Returns 0 when more bytes are needed to tell, -1 on error.
 */
static long long item_size(struct capreader *r, const uint8_t *p, size_t avail)
{
    if (r->format == CAP_FORMAT_UNKNOWN) {
        if (avail < 4) {
            return 0;
        }
        uint32_t le = rd_le32(p);
        uint32_t be = rd_be32(p);
        if (le == PCAPNG_SHB) {
            r->format = CAP_FORMAT_PCAPNG;
        } else if (le == PCAP_MAGIC_US || le == PCAP_MAGIC_NS ||
                   le == PCAP_MAGIC_MODIFIED || be == PCAP_MAGIC_US ||
                   be == PCAP_MAGIC_NS || be == PCAP_MAGIC_MODIFIED) {
            r->format = CAP_FORMAT_PCAP;
        } else if (avail < TEXT_PROBE && printable_prefix(p, avail) &&
                   memchr(p, '\n', avail) == NULL) {
            return 0; /* text: read a line's worth to quote it */
        } else {
            fail_not_capture(r, p, avail);
            return -1;
        }
    }
    if (r->format == CAP_FORMAT_PCAP) {
        if (!r->header_seen) {
            return CAP_PCAP_HEADER_LEN;
        }
        if (avail < r->rec_hdr_len) {
            return 0;
        }
        uint32_t caplen = rd32(r, p + 8);
        /* A file may declare any snap length; records are still bounded
         * so that a corrupt length cannot make the carry buffer huge. */
        uint32_t limit = TM_MIN(TM_MAX(r->snaplen, CAPREADER_MAX_PACKET),
                                CAPREADER_MAX_ITEM - (uint32_t)r->rec_hdr_len);
        if (caplen > limit) {
            fail(r,
                 "corrupt capture at byte offset %llu: record length %u "
                 "exceeds the maximum of %u",
                 (unsigned long long)r->offset, caplen, limit);
            return -1;
        }
        return (long long)r->rec_hdr_len + caplen;
    }
    /* pcapng: type, length, and for a section header the byte-order
     * magic that says how to read the length. */
    if (avail < PCAPNG_MIN_BLOCK) {
        return 0;
    }
    uint32_t type = rd_le32(p);
    if (type == PCAPNG_SHB) {
        uint32_t bom_le = rd_le32(p + 8);
        if (bom_le == PCAPNG_BOM) {
            r->big_endian = false;
        } else if (rd_be32(p + 8) == PCAPNG_BOM) {
            r->big_endian = true;
        } else {
            fail(r,
                 "corrupt pcapng section header at byte offset %llu: bad "
                 "byte-order magic",
                 (unsigned long long)r->offset);
            return -1;
        }
    } else if (!r->header_seen) {
        fail(r, "corrupt pcapng capture: it does not start with a section "
                "header");
        return -1;
    }
    uint32_t len = rd32(r, p + 4);
    if (len < PCAPNG_MIN_BLOCK || len % 4 != 0 || len > CAPREADER_MAX_ITEM ||
        (type == PCAPNG_SHB && len < PCAPNG_MIN_SHB)) {
        fail(r,
             "corrupt pcapng block at byte offset %llu: invalid block "
             "length %u",
             (unsigned long long)r->offset, len);
        return -1;
    }
    return len;
}

static int parse_pcap_header(struct capreader *r, const uint8_t *p,
                             struct cap_item *item)
{
    uint32_t le = rd_le32(p);
    r->big_endian = !(le == PCAP_MAGIC_US || le == PCAP_MAGIC_NS ||
                      le == PCAP_MAGIC_MODIFIED);
    uint32_t magic = rd32(r, p);
    r->nanos = magic == PCAP_MAGIC_NS;
    r->rec_hdr_len = magic == PCAP_MAGIC_MODIFIED ? 24 : 16;
    uint16_t major = rd16(r, p + 4);
    uint16_t minor = rd16(r, p + 6);
    if (major != 2) {
        return fail(r, "unsupported pcap version %u.%u", major, minor);
    }
    r->snaplen = rd32(r, p + 16);
    /* The upper bits hold FCS information (LT_FCS_*); the link type is
     * the low 16. */
    r->linktype = (int)(rd32(r, p + 20) & 0xffffu);
    r->header_seen = true;
    item->kind = CAP_ITEM_HEADER;
    item->linktype = r->linktype;
    return CAPREADER_ITEM;
}

static int parse_pcap_record(struct capreader *r, const uint8_t *p,
                             size_t len, struct cap_item *item)
{
    uint32_t sec = rd32(r, p);
    uint32_t frac = rd32(r, p + 4);
    uint32_t caplen = rd32(r, p + 8);
    uint32_t wirelen = rd32(r, p + 12);
    (void)len;
    if ((r->snaplen != 0 && caplen > r->snaplen) || caplen > wirelen) {
        r->anomalies++;
    }
    item->kind = CAP_ITEM_PACKET;
    item->linktype = r->linktype;
    item->iface = 0;
    item->ts_ns = (uint64_t)sec * TM_NS_PER_S +
                  (r->nanos ? frac : (uint64_t)frac * TM_NS_PER_US);
    item->caplen = caplen;
    item->wirelen = wirelen < caplen ? caplen : wirelen;
    item->data = p + r->rec_hdr_len;
    return CAPREADER_ITEM;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return (a != 0 && b > UINT64_MAX / a) ? UINT64_MAX : a * b;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* Converts a pcapng timestamp in interface units to nanoseconds. Every
 * step saturates: a hostile count of units or if_tsoffset gives a time
 * in [0, CAPREADER_TS_MAX_NS], never one that wrapped around. */
static uint64_t pcapng_ts_ns(const struct iface *ifc, uint64_t t)
{
    uint8_t res = ifc->tsresol;
    uint64_t ns;
    if (res & 0x80) {
        unsigned shift = res & 0x7f;
        if (shift > 63) {
            shift = 63;
        }
        uint64_t sec = t >> shift;
        uint64_t frac = t & ((1ULL << shift) - 1);
        /* Keep frac * 1e9 inside 64 bits: drop low bits first when the
         * resolution is finer than 2^-34. */
        while (shift > 34) {
            frac >>= 1;
            shift--;
        }
        ns = sat_add(sat_mul(sec, TM_NS_PER_S),
                     (frac * TM_NS_PER_S) >> shift);
    } else {
        unsigned exp = res;
        if (exp == 9) {
            ns = t;
        } else if (exp < 9) {
            uint64_t mul = 1;
            for (unsigned i = exp; i < 9; i++) {
                mul *= 10;
            }
            ns = sat_mul(t, mul);
        } else {
            uint64_t div = 1;
            for (unsigned i = 9; i < exp && i < 28; i++) {
                div *= 10;
            }
            ns = t / div;
        }
    }
    int64_t off = ifc->tsoffset;
    if (off >= 0) {
        ns = sat_add(ns, sat_mul((uint64_t)off, TM_NS_PER_S));
    } else {
        /* -(off + 1) + 1 is |off| without negating INT64_MIN. */
        uint64_t back = sat_mul((uint64_t)(-(off + 1)) + 1, TM_NS_PER_S);
        ns = ns > back ? ns - back : 0;
    }
    return ns < CAPREADER_TS_MAX_NS ? ns : CAPREADER_TS_MAX_NS;
}

static int parse_idb(struct capreader *r, const uint8_t *p, size_t len)
{
    if (len < 20) {
        return fail(r,
                    "corrupt pcapng interface block at byte offset %llu: "
                    "too short",
                    (unsigned long long)r->offset);
    }
    if (r->n_ifaces >= CAPREADER_MAX_INTERFACES) {
        return fail(r, "pcapng capture declares more than %u interfaces",
                    CAPREADER_MAX_INTERFACES);
    }
    if (r->n_ifaces == r->cap_ifaces) {
        r->cap_ifaces = r->cap_ifaces ? r->cap_ifaces * 2 : 4;
        r->ifaces =
            tm_xrealloc(r->ifaces, r->cap_ifaces * sizeof(*r->ifaces));
    }
    struct iface *ifc = &r->ifaces[r->n_ifaces++];
    ifc->linktype = rd16(r, p + 8);
    ifc->snaplen = rd32(r, p + 12);
    ifc->tsresol = 6;
    ifc->tsoffset = 0;
    /* Options run from 16 to the trailing length. A malformed option list
     * only loses the options: the packets stay readable. */
    size_t pos = 16, end = len - 4;
    while (pos + 4 <= end) {
        uint16_t code = rd16(r, p + pos);
        uint16_t olen = rd16(r, p + pos + 2);
        size_t padded = ((size_t)olen + 3) & ~(size_t)3;
        if (code == 0 || pos + 4 + padded > end) {
            break;
        }
        const uint8_t *v = p + pos + 4;
        if (code == OPT_IF_TSRESOL && olen >= 1) {
            ifc->tsresol = v[0];
        } else if (code == OPT_IF_TSOFFSET && olen >= 8) {
            uint64_t hi = rd32(r, r->big_endian ? v : v + 4);
            uint64_t lo = rd32(r, r->big_endian ? v + 4 : v);
            ifc->tsoffset = (int64_t)((hi << 32) | lo);
        }
        pos += 4 + padded;
    }
    if (r->n_ifaces == 1) {
        r->linktype = ifc->linktype;
        r->snaplen = ifc->snaplen;
    }
    return CAPREADER_ITEM;
}

static int parse_pcapng_block(struct capreader *r, const uint8_t *p,
                              size_t len, struct cap_item *item)
{
    uint32_t type = rd32(r, p);
    if (rd32(r, p + len - 4) != len) {
        return fail(r,
                    "corrupt pcapng block at byte offset %llu: trailing "
                    "length does not match",
                    (unsigned long long)r->offset);
    }
    item->kind = CAP_ITEM_META;
    switch (type) {
    case PCAPNG_SHB: {
        uint16_t major = rd16(r, p + 12);
        if (major != 1) {
            return fail(r, "unsupported pcapng version %u", major);
        }
        r->header_seen = true;
        r->n_ifaces = 0; /* interfaces are numbered per section */
        item->kind = CAP_ITEM_HEADER;
        return CAPREADER_ITEM;
    }
    case PCAPNG_IDB:
        return parse_idb(r, p, len);
    case PCAPNG_EPB:
    case PCAPNG_OPB: {
        if (len < 32) {
            return fail(r,
                        "corrupt pcapng packet block at byte offset %llu: "
                        "too short",
                        (unsigned long long)r->offset);
        }
        uint32_t ifno = type == PCAPNG_EPB ? rd32(r, p + 8) : rd16(r, p + 8);
        uint64_t ts =
            ((uint64_t)rd32(r, p + 12) << 32) | (uint64_t)rd32(r, p + 16);
        uint32_t caplen = rd32(r, p + 20);
        uint32_t wirelen = rd32(r, p + 24);
        if (ifno >= r->n_ifaces) {
            return fail(r,
                        "corrupt pcapng packet block at byte offset %llu: "
                        "unknown interface %u",
                        (unsigned long long)r->offset, ifno);
        }
        if (caplen > len - 32) {
            return fail(r,
                        "corrupt pcapng packet block at byte offset %llu: "
                        "captured length %u exceeds the block",
                        (unsigned long long)r->offset, caplen);
        }
        const struct iface *ifc = &r->ifaces[ifno];
        if ((ifc->snaplen != 0 && caplen > ifc->snaplen) ||
            caplen > wirelen) {
            r->anomalies++;
        }
        item->kind = CAP_ITEM_PACKET;
        item->linktype = ifc->linktype;
        item->iface = ifno;
        item->ts_ns = pcapng_ts_ns(ifc, ts);
        item->caplen = caplen;
        item->wirelen = wirelen < caplen ? caplen : wirelen;
        item->data = p + 28;
        return CAPREADER_ITEM;
    }
    case PCAPNG_SPB: {
        if (r->n_ifaces == 0) {
            return fail(r,
                        "corrupt pcapng simple packet block at byte offset "
                        "%llu: no interface",
                        (unsigned long long)r->offset);
        }
        if (len < 16) {
            return fail(r,
                        "corrupt pcapng simple packet block at byte offset "
                        "%llu: too short",
                        (unsigned long long)r->offset);
        }
        const struct iface *ifc = &r->ifaces[0];
        uint32_t wirelen = rd32(r, p + 8);
        uint32_t caplen = (uint32_t)(len - 16);
        if (wirelen < caplen) {
            caplen = wirelen;
        }
        if (ifc->snaplen != 0 && caplen > ifc->snaplen) {
            caplen = ifc->snaplen;
        }
        item->kind = CAP_ITEM_PACKET;
        item->linktype = ifc->linktype;
        item->iface = 0;
        item->ts_ns = 0; /* simple packet blocks carry no time */
        item->caplen = caplen;
        item->wirelen = wirelen;
        item->data = p + 12;
        return CAPREADER_ITEM;
    }
    default:
        return CAPREADER_ITEM; /* name resolution, statistics, custom... */
    }
}

/* Parses a whole item of `len` bytes at `p`. */
static int parse_item(struct capreader *r, const uint8_t *p, size_t len,
                      struct cap_item *item)
{
    memset(item, 0, sizeof(*item));
    item->raw = p;
    item->raw_len = len;
    item->linktype = -1;
    if (r->format == CAP_FORMAT_PCAP) {
        if (!r->header_seen) {
            return parse_pcap_header(r, p, item);
        }
        return parse_pcap_record(r, p, len, item);
    }
    return parse_pcapng_block(r, p, len, item);
}

static void carry_reserve(struct capreader *r, size_t need)
{
    if (need <= r->carry_cap) {
        return;
    }
    size_t cap = r->carry_cap ? r->carry_cap : 4096;
    while (cap < need) {
        cap *= 2;
    }
    r->carry = tm_xrealloc(r->carry, cap);
    r->carry_cap = cap;
}

/* Moves up to `want` chunk bytes onto the carry. */
static void carry_take(struct capreader *r, size_t want)
{
    size_t avail = r->chunk_len - r->chunk_pos;
    size_t n = want < avail ? want : avail;
    carry_reserve(r, r->carry_len + n);
    memcpy(r->carry + r->carry_len, r->chunk + r->chunk_pos, n);
    r->carry_len += n;
    r->chunk_pos += n;
}

int capreader_next(struct capreader *r, struct cap_item *item)
{
    if (r->failed) {
        return CAPREADER_ERROR;
    }
    if (r->carry_returned) {
        r->offset += r->carry_len;
        r->carry_len = 0;
        r->carry_returned = false;
    }
    if (r->carry_len > 0) {
        /* Finish the item that began in an earlier chunk. Its size may
         * itself need a few more bytes to be known. */
        long long size;
        while ((size = item_size(r, r->carry, r->carry_len)) == 0) {
            if (r->chunk_pos == r->chunk_len) {
                return CAPREADER_NEED_MORE;
            }
            carry_take(r, 1);
        }
        if (size < 0) {
            return CAPREADER_ERROR;
        }
        if (r->carry_len < (size_t)size) {
            carry_take(r, (size_t)size - r->carry_len);
            if (r->carry_len < (size_t)size) {
                return CAPREADER_NEED_MORE;
            }
        }
        r->carry_returned = true;
        return parse_item(r, r->carry, (size_t)size, item);
    }
    size_t avail = r->chunk_len - r->chunk_pos;
    if (avail == 0) {
        return CAPREADER_NEED_MORE;
    }
    const uint8_t *p = r->chunk + r->chunk_pos;
    long long size = item_size(r, p, avail);
    if (size < 0) {
        return CAPREADER_ERROR;
    }
    if (size == 0 || avail < (size_t)size) {
        carry_take(r, avail);
        return CAPREADER_NEED_MORE;
    }
    r->chunk_pos += (size_t)size;
    int rc = parse_item(r, p, (size_t)size, item);
    if (rc == CAPREADER_ITEM) {
        r->offset += (uint64_t)size;
    }
    return rc;
}

int capreader_end(struct capreader *r)
{
    if (r->failed) {
        return CAPREADER_ERROR;
    }
    size_t pending = capreader_pending(r);
    if (r->format == CAP_FORMAT_UNKNOWN) {
        if (pending == 0) {
            return fail(r, "input is empty: not a capture");
        }
        if (pending >= 4 || printable_prefix(r->carry, pending)) {
            return fail_not_capture(r, r->carry, pending);
        }
        return fail(r, "input ends after %zu bytes: not a capture", pending);
    }
    if (!r->header_seen) {
        return fail(r, "input ends inside the %s file header (%zu bytes): "
                       "not a complete capture",
                    r->format == CAP_FORMAT_PCAP ? "pcap" : "pcapng", pending);
    }
    return CAPREADER_NEED_MORE;
}
