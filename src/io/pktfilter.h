/*
 * --filter for capture files and streams: a libpcap BPF program compiled
 * once per link type (a pcapng file may mix them) and run on each
 * record. Live captures filter in the kernel instead. Also the name
 * libpcap gives a link type, which shares the LINKTYPE_/DLT_ mapping.
 */
#ifndef TAPMIRROR_PKTFILTER_H
#define TAPMIRROR_PKTFILTER_H

#include <stddef.h>
#include <stdint.h>

struct pktfilter;

/* Checks the expression's syntax. Returns 0, or -1 with `err` set. */
int pktfilter_check(const char *expr, char *err, size_t errlen);

/* Returns owned; free with pktfilter_free(). Borrows `expr`. */
struct pktfilter *pktfilter_new(const char *expr);
void pktfilter_free(struct pktfilter *f);

/* 1 if the packet matches, 0 if not, -1 if the expression cannot apply
 * to this link type (`err` says why). */
int pktfilter_match(struct pktfilter *f, int linktype, const uint8_t *data,
                    uint32_t caplen, uint32_t wirelen, char *err,
                    size_t errlen);

/* libpcap's name of a capture file's link type ("EN10MB", "LINUX_SLL2";
 * "UNKNOWN" for a number it does not know): it names every link type,
 * decode_link_supported() or not, in messages and the report. */
const char *pktfilter_link_name(int linktype);

#endif
