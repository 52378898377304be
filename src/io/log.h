/*
 * Messages on standard error, each one line prefixed "tapmirror: ".
 * A live status line may occupy the terminal's last line; messages clear
 * it first so they never interleave with it. Messages are printed as
 * given: text from outside is made safe where it enters one (textsafe.h).
 */
#ifndef TAPMIRROR_LOG_H
#define TAPMIRROR_LOG_H

#include <stdbool.h>

enum { LOG_QUIET = -1, LOG_NORMAL = 0, LOG_VERBOSE = 1, LOG_DEBUG = 2 };

void tm_log_set_level(int level);
int tm_log_level(void);

#define TM_PRINTF(a, b) __attribute__((format(printf, a, b)))

void tm_error(const char *fmt, ...) TM_PRINTF(1, 2);   /* always */
void tm_warn(const char *fmt, ...) TM_PRINTF(1, 2);    /* "warning: " */
void tm_info(const char *fmt, ...) TM_PRINTF(1, 2);    /* unless quiet */
void tm_verbose(const char *fmt, ...) TM_PRINTF(1, 2); /* with -v */
void tm_debug(const char *fmt, ...) TM_PRINTF(1, 2);   /* with -vv */

/* Draws `line` as the live status (no newline); empty clears it. */
void tm_status(const char *line);

#endif
