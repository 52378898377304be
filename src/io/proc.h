/*
 * The process as the operating system sees it: its peak resident memory
 * and the allocator's heap. The report reads the first; a long run hands
 * freed heap back to the system once its load has dropped.
 */
#ifndef TAPMIRROR_PROC_H
#define TAPMIRROR_PROC_H

#include <stdint.h>

/* The process's peak resident memory in bytes (0 if unknown). */
uint64_t proc_peak_rss(void);

/* Bytes the allocator holds for the program (0 where unknown), and a way
 * to hand what it has freed back to the system. */
uint64_t proc_heap_in_use(void);
void proc_heap_trim(void);

/* Leaves giving the heap's top back to the run (proc_heap_trim() once
 * the load has dropped) rather than to every free(): replay queues that
 * fill and empty many times a second otherwise shrink and regrow the
 * heap on each, and every regrown page faults again. */
void proc_heap_keep_top(void);

#endif
