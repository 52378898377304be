#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static int level = LOG_NORMAL;
static bool status_shown;

void tm_log_set_level(int l)
{
    level = l;
}

int tm_log_level(void)
{
    return level;
}

static void clear_status(void)
{
    if (status_shown) {
        fputs("\r\033[K", stderr);
        status_shown = false;
    }
}

static void vlog(const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
    clear_status();
    fputs("tapmirror: ", stderr);
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void tm_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void tm_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning: ", fmt, ap);
    va_end(ap);
}

void tm_info(const char *fmt, ...)
{
    if (level < LOG_NORMAL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void tm_verbose(const char *fmt, ...)
{
    if (level < LOG_VERBOSE) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void tm_debug(const char *fmt, ...)
{
    if (level < LOG_DEBUG) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void tm_status(const char *line)
{
    clear_status();
    if (line[0] != '\0') {
        fputs(line, stderr);
        status_shown = true;
    }
    fflush(stderr);
}
