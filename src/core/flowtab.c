#include "flowtab.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define INITIAL_BUCKETS 1024

void flowtab_init(struct flowtab *t, uint64_t seed)
{
    t->buckets = tm_xcalloc(INITIAL_BUCKETS, sizeof(*t->buckets));
    t->mask = INITIAL_BUCKETS - 1;
    t->count = 0;
    t->seed = seed;
}

void flowtab_cleanup(struct flowtab *t)
{
    free(t->buckets);
    t->buckets = NULL;
    t->count = 0;
}

bool flow_key_equal(const struct flow_key *a, const struct flow_key *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

static uint64_t key_hash(const struct flowtab *t, const struct flow_key *k)
{
    return tm_hash64(k, sizeof(*k), t->seed);
}

struct flowtab_entry *flowtab_find(const struct flowtab *t,
                                   const struct flow_key *key)
{
    uint64_t h = key_hash(t, key);
    for (struct flowtab_entry *e = t->buckets[h & t->mask]; e != NULL;
         e = e->next) {
        if (e->hash == h && flow_key_equal(&e->key, key)) {
            return e;
        }
    }
    return NULL;
}

/* Doubles the bucket array. The whole table moves at once: at a million
 * flows that is a few milliseconds, once. */
static void grow(struct flowtab *t)
{
    size_t n = (t->mask + 1) * 2;
    struct flowtab_entry **b = tm_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i <= t->mask; i++) {
        struct flowtab_entry *e = t->buckets[i];
        while (e != NULL) {
            struct flowtab_entry *next = e->next;
            size_t j = e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = n - 1;
}

void flowtab_insert(struct flowtab *t, struct flowtab_entry *e)
{
    if (t->count >= t->mask + 1) {
        grow(t);
    }
    e->hash = key_hash(t, &e->key);
    size_t i = e->hash & t->mask;
    e->next = t->buckets[i];
    t->buckets[i] = e;
    t->count++;
}

void flowtab_remove(struct flowtab *t, struct flowtab_entry *e)
{
    struct flowtab_entry **pp = &t->buckets[e->hash & t->mask];
    while (*pp != NULL) {
        if (*pp == e) {
            *pp = e->next;
            e->next = NULL;
            t->count--;
            return;
        }
        pp = &(*pp)->next;
    }
}
