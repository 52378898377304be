/*
 * One run of replay or capture (and, through run_with_source, mirror):
 * the source feeds the output capture and the engine, the engine feeds
 * the replay. Returns the exit status; never exits.
 */
#ifndef TAPMIRROR_RUN_H
#define TAPMIRROR_RUN_H

#include "cli.h"

int run_command(const struct tm_options *o);

#endif
