#include "fileid.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool fileid_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

bool fileid_null_device(const struct stat *st)
{
    struct stat null;
    return S_ISCHR(st->st_mode) && stat("/dev/null", &null) == 0 &&
           S_ISCHR(null.st_mode) && st->st_rdev == null.st_rdev;
}

/* Appends one component to the absolute path in `out`, "." and ".."
 * by name. */
static int append_component(char *out, size_t outlen, const char *name)
{
    if (name[0] == '\0' || strcmp(name, ".") == 0) {
        return 0;
    }
    if (strcmp(name, "..") == 0) {
        char *slash = strrchr(out, '/');
        slash[slash == out ? 1 : 0] = '\0'; /* "/.." is "/" */
        return 0;
    }
    size_t used = strlen(out);
    int n = snprintf(out + used, outlen - used, "%s%s",
                     used > 0 && out[used - 1] == '/' ? "" : "/", name);
    return n < 0 || (size_t)n >= outlen - used ? -1 : 0;
}

/* The canonical form of the absolute directory `dir`, which may not
 * exist yet; `dir` is cut up on the way. A directory that does not
 * exist cannot be a symbolic link, so its "." and ".." go by name. */
static int canonical_dir(char *dir, char *out, size_t outlen)
{
    char *real = realpath(dir[0] != '\0' ? dir : "/", NULL);
    if (real != NULL) {
        int n = snprintf(out, outlen, "%s", real);
        free(real);
        return n < 0 || (size_t)n >= outlen ? -1 : 0;
    }
    if (errno != ENOENT) {
        return -1;
    }
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    if (canonical_dir(dir, out, outlen) < 0) {
        return -1;
    }
    return append_component(out, outlen, slash + 1);
}

int fileid_canonical_path(const char *path, char *out, size_t outlen)
{
    char abs[PATH_MAX], cwd[PATH_MAX];
    int n;
    if (path[0] == '/') {
        n = snprintf(abs, sizeof(abs), "%s", path);
    } else if (getcwd(cwd, sizeof(cwd)) != NULL) {
        n = snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
    } else {
        return -1;
    }
    if (n < 0 || (size_t)n >= sizeof(abs)) {
        return -1;
    }
    size_t len = (size_t)n;
    while (len > 1 && abs[len - 1] == '/') {
        abs[--len] = '\0';
    }
    char *slash = strrchr(abs, '/');
    const char *name = slash + 1;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        return canonical_dir(abs, out, outlen); /* a directory */
    }
    *slash = '\0';
    if (canonical_dir(abs, out, outlen) < 0) {
        return -1;
    }
    return append_component(out, outlen, name);
}
