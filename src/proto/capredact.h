/*
 * --redact: credentials overwritten in the packets of a capture as they
 * are written. In every TCP payload, in both directions, the value of a
 * line that starts with Authorization, Proxy-Authorization, Cookie,
 * Set-Cookie or an extra name, then a colon (case-insensitive), and of
 * the folded lines that continue it, is replaced by as many 'x': packet
 * lengths, TCP sequence numbers and everything around the value stay.
 *
 * Each direction of each connection is followed by sequence number, so
 * a field split across segments (in its name or in its value) is still
 * redacted: the line state at the end of one segment carries over to the
 * next. Retransmitted bytes get the redactions their first copy got (the
 * last CAPREDACT_RANGES per direction). A segment after a hole (bytes the
 * capture missed, or reordered) starts in an unknown line: the part up
 * to its first line break is overwritten unless it reads as a line start
 * that is no credential (a request or status line, an empty line, a
 * field of another name). Streams are kept in a fixed table; one pushed
 * out by another and seen again starts as a new stream.
 *
 * Lines are not told apart from bodies: a body line that starts with one
 * of the names and a colon is redacted too (the safe side).
 *
 * Pure: no I/O, no globals.
 */
#ifndef TAPMIRROR_CAPREDACT_H
#define TAPMIRROR_CAPREDACT_H

#include <stddef.h>
#include <stdint.h>

#define CAPREDACT_RANGES 16

struct capredact;

/* `extra`: names redacted beyond the default four (copied). `streams`:
 * directions followed at once (0: 16384). */
struct capredact *capredact_new(const char *const *extra, size_t n_extra,
                                size_t streams);
void capredact_free(struct capredact *cr);

/*
 * Redacts the TCP payload of one captured packet of link type
 * `linktype`, in place. Returns how many bytes were overwritten (0 for
 * anything that is not a TCP segment with payload).
 */
size_t capredact_packet(struct capredact *cr, int linktype, uint8_t *pkt,
                        size_t caplen, size_t wirelen);

/* Field values redacted so far (a value split across segments counts
 * once per segment holding part of it). */
uint64_t capredact_values(const struct capredact *cr);

#endif
