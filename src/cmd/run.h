/*
 * One run of replay, capture or mirror: the source (a capture file or
 * stream, a live interface, or for mirror the Kubernetes tap behind the
 * same source interface, see kube/mirror.h) feeds the output capture and
 * the engine, the engine feeds the replay. Returns the exit status (0;
 * 1 an error; 2 a usage error; 3 a target dropped a connection; 130 a
 * second SIGINT, SIGTERM or SIGHUP); never exits.
 */
#ifndef TAPMIRROR_RUN_H
#define TAPMIRROR_RUN_H

#include "cli.h"

int run_command(const struct tm_options *o);

#endif
