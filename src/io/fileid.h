/*
 * Which file a path names: the identity of two paths, the null device,
 * the canonical form of a path that may not exist yet. They ask the
 * kernel (stat, realpath, getcwd), so they live with the I/O layer; the
 * capture output and --stats-json use them to refuse a path that would
 * overwrite the input or each other.
 */
#ifndef TAPMIRROR_FILEID_H
#define TAPMIRROR_FILEID_H

#include <stdbool.h>
#include <stddef.h>

/* Whether two paths name one existing file (the same device and inode:
 * a hard link, a symlink, another spelling of the path). */
bool fileid_same_file(const char *a, const char *b);

struct stat;

/* Whether `st` is the null device (/dev/null, under any name): the one
 * device the capture and --stats-json may be written to. */
bool fileid_null_device(const struct stat *st);

/*
 * Writes to `out` the absolute form of `path` that the kernel would
 * reach: its directories resolved with realpath() (symbolic links, "."
 * and ".."), those that do not exist yet (the capture creates them)
 * normalised by name, and the last component as given, not followed.
 * Two spellings of one name, "./x" and "d/../x", give one string.
 * Returns -1 if the working directory is unknown or a directory cannot
 * be resolved for another reason than not existing.
 */
int fileid_canonical_path(const char *path, char *out, size_t outlen);

#endif
