/*
 * `tapmirror mirror TARGET -p PORT --check`: resolves what a run would
 * (versions, the target's pods and container, RBAC, Pod Security, the
 * node, an existing tap) with read-only kubectl calls and prints a
 * checklist on standard output, one line per item, each ✓ or ✗ with
 * what to do. Injects and execs nothing.
 */
#ifndef TAPMIRROR_CHECK_H
#define TAPMIRROR_CHECK_H

#include "cli.h"

/* Returns 0 when a run would start, 1 when an item failed (and 1 with a
 * `tapmirror: ...` line on standard error when kubectl is missing). */
int mirror_check(const struct tm_options *o);

#endif
