#include "proc.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <sys/resource.h>

/* glibc keeps what a burst of connections freed in its heap and returns
 * only the top of it: after 100,000 connections ended, 70 MiB stayed
 * resident. mallinfo2() and malloc_trim() (glibc 2.33+) let the run give
 * it back once the load has dropped. Elsewhere these do nothing. */
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
uint64_t proc_heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

void proc_heap_trim(void)
{
    malloc_trim(0);
}

void proc_heap_keep_top(void)
{
    /* 64 MiB: glibc's default is 128 KiB, grown dynamically. */
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}
#else
void proc_heap_keep_top(void)
{
}

uint64_t proc_heap_in_use(void)
{
    return 0;
}

void proc_heap_trim(void)
{
}
#endif

uint64_t proc_peak_rss(void)
{
    /* VmHWM starts afresh at exec; getrusage's maximum would include
     * whatever the parent held before it. */
    FILE *fp = fopen("/proc/self/status", "r");
    if (fp != NULL) {
        char line[256];
        unsigned long long kib = 0;
        while (fgets(line, sizeof(line), fp) != NULL) {
            if (sscanf(line, "VmHWM: %llu kB", &kib) == 1) {
                break;
            }
        }
        fclose(fp);
        if (kib > 0) {
            return (uint64_t)kib * 1024;
        }
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
#ifdef __APPLE__
        return (uint64_t)ru.ru_maxrss; /* bytes on macOS */
#else
        return (uint64_t)ru.ru_maxrss * 1024;
#endif
    }
    return 0;
}
