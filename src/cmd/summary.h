/* The summary command: what a capture holds. */
#ifndef TAPMIRROR_SUMMARY_H
#define TAPMIRROR_SUMMARY_H

#include "cli.h"

/* Prints the summary to standard output. Returns the exit status. */
int summary_command(const struct tm_options *o);

#endif
