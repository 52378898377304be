/* Intrusive doubly linked list (a ring with a sentinel head). */
#ifndef TAPMIRROR_LIST_H
#define TAPMIRROR_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct tm_list {
    struct tm_list *prev, *next;
};

#define TM_CONTAINER_OF(ptr, type, member)                                    \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void tm_list_init(struct tm_list *l)
{
    l->prev = l->next = l;
}

static inline bool tm_list_empty(const struct tm_list *l)
{
    return l->next == l;
}

/* A node that is on no list points at itself. */
static inline bool tm_list_linked(const struct tm_list *n)
{
    return n->next != n;
}

static inline void tm_list_remove(struct tm_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static inline void tm_list_append(struct tm_list *l, struct tm_list *n)
{
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}

static inline struct tm_list *tm_list_first(const struct tm_list *l)
{
    return tm_list_empty(l) ? NULL : l->next;
}

#endif
