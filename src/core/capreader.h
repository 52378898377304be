/*
 * Incremental pcap/pcapng reader. Pure: the caller pushes byte chunks as
 * they arrive (file reads, pipe reads, kubectl output) and pulls whole
 * items back out. Items that lie inside the pushed chunk are returned in
 * place; only an item split across chunks is copied, into a carry buffer
 * bounded by CAPREADER_MAX_ITEM.
 */
#ifndef TAPMIRROR_CAPREADER_H
#define TAPMIRROR_CAPREADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest record or block accepted. tcpdump's snap length maximum is
 * 262144; pcapng blocks may also carry options. */
#define CAPREADER_MAX_PACKET     262144u
#define CAPREADER_MAX_ITEM       (16u * 1024 * 1024)
#define CAPREADER_MAX_INTERFACES 1024u

/* A pcap file header, and the header of each of its records. */
#define CAP_PCAP_HEADER_LEN        24
#define CAP_PCAP_RECORD_HEADER_LEN 16

enum cap_format { CAP_FORMAT_UNKNOWN = 0, CAP_FORMAT_PCAP, CAP_FORMAT_PCAPNG };

enum cap_item_kind {
    CAP_ITEM_HEADER, /* pcap file header, or a pcapng section header */
    CAP_ITEM_META,   /* any other pcapng block that is not a packet */
    CAP_ITEM_PACKET, /* a packet record */
};

/* One item. Pointers borrow reader or chunk memory and stay valid until
 * the next capreader_next() or capreader_push() call. */
struct cap_item {
    enum cap_item_kind kind;
    const uint8_t *raw; /* the item's bytes exactly as in the input */
    size_t raw_len;
    const uint8_t *raw2; /* live captures only: the record's packet */
    size_t raw2_len;     /* bytes, which follow raw (its header) */
    /* Packets only: */
    int linktype;       /* LINKTYPE_* of the packet's interface */
    uint32_t iface;     /* pcapng interface number within its section */
    uint64_t ts_ns;     /* capture time, nanoseconds since the epoch, at
                           most CAPREADER_TS_MAX_NS */
    uint32_t caplen;    /* bytes present at data */
    uint32_t wirelen;   /* bytes the packet had on the wire (>= caplen) */
    const uint8_t *data;
};

/* The latest capture time the reader returns (INT64_MAX ns, in the year
 * 2262): a pcapng timestamp or if_tsoffset beyond it is taken as it, and
 * one before the epoch as 0, so that no conversion wraps around and a
 * timeout added to any capture time stays inside 64 bits. */
#define CAPREADER_TS_MAX_NS ((uint64_t)INT64_MAX)

enum capreader_status {
    CAPREADER_ERROR = -1,    /* malformed input; see capreader_error() */
    CAPREADER_NEED_MORE = 0, /* the pushed chunk is used up */
    CAPREADER_ITEM = 1,      /* *item is filled */
};

struct capreader;

/* Returns owned; free with capreader_free(). */
struct capreader *capreader_new(void);
void capreader_free(struct capreader *r);

/*
 * Makes `data` the current chunk. The reader borrows it until
 * capreader_next() returns CAPREADER_NEED_MORE (or the reader is freed);
 * the caller must not change or free it before then.
 */
void capreader_push(struct capreader *r, const uint8_t *data, size_t len);

/* Pulls the next item. After CAPREADER_ERROR every call returns it
 * again. */
int capreader_next(struct capreader *r, struct cap_item *item);

/* Bytes of an incomplete item held back: non-zero at end of input means
 * the last record was cut short. */
size_t capreader_pending(const struct capreader *r);

/*
 * The input has ended. Returns CAPREADER_ERROR (capreader_error() says
 * why) if it was not a capture at all: empty, text, or cut inside the
 * file header; otherwise CAPREADER_NEED_MORE, with capreader_pending()
 * saying whether the last record was cut short.
 */
int capreader_end(struct capreader *r);

/* Offset in the input of the first byte not yet returned in an item. */
uint64_t capreader_offset(const struct capreader *r);

enum cap_format capreader_format(const struct capreader *r);

/* The pcap file header's link type and snap length (pcap only; for
 * pcapng the first interface's), or -1 / 0 before they are known. */
int capreader_linktype(const struct capreader *r);
uint32_t capreader_snaplen(const struct capreader *r);

/* Records whose captured length exceeded the snap length or the wire
 * length: accepted, but a sign of a damaged or hand-made capture. */
uint64_t capreader_anomalies(const struct capreader *r);

/* The error message after CAPREADER_ERROR (no trailing newline). */
const char *capreader_error(const struct capreader *r);

#endif
