#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void out_of_memory(size_t size)
{
    /* There is no sensible recovery from failing to allocate a fixed-size
     * object; data buffers are bounded by caps long before this. */
    fprintf(stderr, "tapmirror: out of memory allocating %zu bytes\n", size);
    abort();
}

void *tm_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        out_of_memory(size);
    }
    return p;
}

void *tm_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        out_of_memory(count * size);
    }
    return p;
}

void *tm_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL) {
        out_of_memory(size);
    }
    return p;
}

char *tm_xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *p = tm_xmalloc(len);
    memcpy(p, s, len);
    return p;
}

bool tm_dns1123_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '.') {
            return false;
        }
        if ((i == 0 || i == n - 1) && !alnum) {
            return false;
        }
    }
    return true;
}

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t mix64(uint64_t h)
{
    /* The finaliser of MurmurHash3: every input bit affects every output
     * bit. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t tm_hash64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = rotl64(h ^ mix64(w + seed), 27) * 0x9e3779b97f4a7c15ULL;
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = rotl64(h ^ mix64(w + seed + len), 27) * 0x9e3779b97f4a7c15ULL;
    }
    return mix64(h);
}

bool tm_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

bool tm_null_device(const struct stat *st)
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

int tm_canonical_path(const char *path, char *out, size_t outlen)
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

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool tm_ascii_caseeq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower(s[i]) != ascii_lower(lit[i])) {
            return false;
        }
    }
    return true;
}
