#include "pktseen.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Open addressing with linear probing. A slot whose count fell to zero
 * keeps its key, so that probes continue past it; the table is cleared
 * after every hand-over, before such slots could pile up. */
struct pktseen_slot {
    uint64_t key; /* 0: never used */
    uint32_t count;
};

struct pktseen {
    struct pktseen_slot *slots;
    size_t mask;  /* slots - 1, a power of two minus one */
    size_t used;  /* slots with a key: under half the table */
    size_t live;  /* slots with a count */
    size_t limit; /* most slots with a count */
    size_t count; /* occurrences */
};

/* Most hand-overs fingerprint a few hundred packets; the table starts
 * this small and doubles as needed, up to the limit. */
#define INITIAL_SLOTS 1024u

static const uint64_t FINGERPRINT_SEED = 0x70b3a7c1d2e5f609ULL;

static uint64_t fingerprint(const uint8_t *bytes, size_t len)
{
    uint64_t h = tm_hash64(bytes, len, FINGERPRINT_SEED ^ (uint64_t)len);
    return h != 0 ? h : 1;
}

struct pktseen *pktseen_new(size_t limit)
{
    if (limit == 0) {
        limit = 1;
    }
    struct pktseen *ps = tm_xcalloc(1, sizeof(*ps));
    ps->slots = tm_xcalloc(INITIAL_SLOTS, sizeof(*ps->slots));
    ps->mask = INITIAL_SLOTS - 1;
    ps->limit = limit;
    return ps;
}

void pktseen_free(struct pktseen *ps)
{
    if (ps == NULL) {
        return;
    }
    free(ps->slots);
    free(ps);
}

void pktseen_clear(struct pktseen *ps)
{
    if (ps->mask + 1 > INITIAL_SLOTS) {
        /* A large hand-over is rare: give its memory back. */
        free(ps->slots);
        ps->slots = tm_xcalloc(INITIAL_SLOTS, sizeof(*ps->slots));
        ps->mask = INITIAL_SLOTS - 1;
    } else if (ps->used > 0) {
        memset(ps->slots, 0, (ps->mask + 1) * sizeof(*ps->slots));
    }
    ps->used = 0;
    ps->live = 0;
    ps->count = 0;
}

static struct pktseen_slot *probe(const struct pktseen *ps, uint64_t key)
{
    size_t i = (size_t)key & ps->mask;
    for (;;) {
        struct pktseen_slot *slot = &ps->slots[i];
        if (slot->key == key || slot->key == 0) {
            return slot;
        }
        i = (i + 1) & ps->mask;
    }
}

/* Rebuilds the table without its emptied slots: twice as large if the
 * live ones fill a quarter of it, else at the same size (adds and takes
 * that alternate without a clear would otherwise double it forever). */
static void grow(struct pktseen *ps)
{
    size_t n = ps->mask + 1;
    if (ps->live * 4 >= n) {
        n *= 2;
    }
    struct pktseen_slot *old = ps->slots;
    size_t old_n = ps->mask + 1;
    ps->slots = tm_xcalloc(n, sizeof(*ps->slots));
    ps->mask = n - 1;
    ps->used = 0;
    for (size_t i = 0; i < old_n; i++) {
        if (old[i].count > 0) {
            *probe(ps, old[i].key) = old[i];
            ps->used++;
        }
    }
    free(old);
}

bool pktseen_add(struct pktseen *ps, const uint8_t *bytes, size_t len)
{
    uint64_t key = fingerprint(bytes, len);
    struct pktseen_slot *slot = probe(ps, key);
    if (slot->count == 0 && ps->live >= ps->limit) {
        return false;
    }
    if (slot->count == UINT32_MAX) {
        return false;
    }
    if (slot->key == 0) {
        if ((ps->used + 1) * 2 > ps->mask + 1) {
            grow(ps);
            slot = probe(ps, key);
        }
        slot->key = key;
        ps->used++;
    }
    if (slot->count == 0) {
        ps->live++;
    }
    slot->count++;
    ps->count++;
    return true;
}

bool pktseen_take(struct pktseen *ps, const uint8_t *bytes, size_t len)
{
    if (ps->count == 0) {
        return false;
    }
    struct pktseen_slot *slot = probe(ps, fingerprint(bytes, len));
    if (slot->key == 0 || slot->count == 0) {
        return false;
    }
    slot->count--;
    ps->count--;
    if (slot->count == 0) {
        ps->live--;
    }
    return true;
}

size_t pktseen_count(const struct pktseen *ps)
{
    return ps->count;
}
