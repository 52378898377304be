/*
 * Flow table: TCP 4-tuples to flows, O(1) lookup. Pure. The table is
 * intrusive: callers embed a struct flowtab_entry in their own flow
 * object, so lookups allocate nothing. The hash is seeded per table, so
 * tuples chosen by the senders of the mirrored traffic cannot be aimed
 * at one bucket.
 */
#ifndef TAPMIRROR_FLOWTAB_H
#define TAPMIRROR_FLOWTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A connection, oriented client -> server. IPv4 addresses use the first
 * four bytes; the rest are zero. */
struct flow_key {
    uint8_t family;
    uint8_t zero;
    uint16_t cport, sport;
    uint8_t caddr[16], saddr[16];
};

struct flowtab_entry {
    struct flowtab_entry *next;
    uint64_t hash;
    struct flow_key key;
};

struct flowtab {
    struct flowtab_entry **buckets;
    size_t mask; /* bucket count - 1; the count is a power of two */
    size_t count;
    uint64_t seed;
};

void flowtab_init(struct flowtab *t, uint64_t seed);
/* Frees the buckets; entries belong to the caller. */
void flowtab_cleanup(struct flowtab *t);

/* The entry with this key, or NULL. */
struct flowtab_entry *flowtab_find(const struct flowtab *t,
                                   const struct flow_key *key);

/* Adds `e`, whose key is set and not in the table. Borrows `e` until it
 * is removed. */
void flowtab_insert(struct flowtab *t, struct flowtab_entry *e);
void flowtab_remove(struct flowtab *t, struct flowtab_entry *e);

bool flow_key_equal(const struct flow_key *a, const struct flow_key *b);

#endif
