/*
 * A bounded multiset of packet fingerprints, for the hand-over between two
 * capture rings on one interface (io/live.c). While both rings are attached
 * every packet lands in both; the packets the old ring delivered are added
 * here, and the new ring's copies of them are taken out again instead of
 * being delivered twice.
 *
 * Two sockets timestamp the same packet independently, microseconds
 * apart, so a fingerprint covers the packet's bytes and length only. A
 * multiset, not a set: identical packets (a duplicated ACK) are skipped
 * exactly as often as the old ring saw them.
 *
 * Pure: no I/O.
 */
#ifndef TAPMIRROR_PKTSEEN_H
#define TAPMIRROR_PKTSEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pktseen;

/* Holds at most `limit` distinct fingerprints (at least 1). */
struct pktseen *pktseen_new(size_t limit);
void pktseen_free(struct pktseen *ps);

/* Forgets every fingerprint. */
void pktseen_clear(struct pktseen *ps);

/* Records one packet; false (and nothing recorded) when full. */
bool pktseen_add(struct pktseen *ps, const uint8_t *bytes, size_t len);

/* Whether the packet was recorded; if so one occurrence is removed. */
bool pktseen_take(struct pktseen *ps, const uint8_t *bytes, size_t len);

/* Occurrences recorded and not yet taken. */
size_t pktseen_count(const struct pktseen *ps);

#endif
