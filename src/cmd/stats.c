#include "stats.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/decode.h"
#include "io/log.h"
#include "core/parse.h"
#include "core/util.h"
#include "io/fileid.h"
#include "io/proc.h"

/* HTTP-aware mirroring's counters of one target, when anything moved. */
static void print_http_counts(const char *label,
                              const struct replay_target_stats *t)
{
    uint64_t dropped = t->requests_filtered + t->requests_sampled_out +
                       t->requests_rate_limited;
    if (t->requests_forwarded + dropped + t->requests_lost_to_gaps > 0) {
        tm_info("-> %s: HTTP/1 requests: %llu forwarded (%llu rewritten); "
                "dropped: %llu by filter, %llu sampled out, %llu "
                "rate-limited; %llu lost to gaps (%llu connections "
                "reopened)",
                label, (unsigned long long)t->requests_forwarded,
                (unsigned long long)t->requests_rewritten,
                (unsigned long long)t->requests_filtered,
                (unsigned long long)t->requests_sampled_out,
                (unsigned long long)t->requests_rate_limited,
                (unsigned long long)t->requests_lost_to_gaps,
                (unsigned long long)t->gap_reconnects);
    }
    uint64_t other = t->connections_passed_through +
                     t->connections_sampled_out + t->connections_rate_limited;
    if (other > 0) {
        tm_info("-> %s: %llu connections not HTTP/1: %llu passed through "
                "untouched, %llu sampled out, %llu rate-limited",
                label, (unsigned long long)other,
                (unsigned long long)t->connections_passed_through,
                (unsigned long long)t->connections_sampled_out,
                (unsigned long long)t->connections_rate_limited);
    }
}

/* A latency cell: "p50/p99" in ms, or "-". */
static void latency_cell(const cJSON *ep, const char *side, char *buf,
                         size_t len)
{
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ep, "latency_ms"), side);
    const cJSON *p50 = cJSON_GetObjectItemCaseSensitive(lat, "p50");
    const cJSON *p99 = cJSON_GetObjectItemCaseSensitive(lat, "p99");
    if (!cJSON_IsNumber(p50) || !cJSON_IsNumber(p99)) {
        snprintf(buf, len, "-");
        return;
    }
    snprintf(buf, len, "%.3g/%.3g", p50->valuedouble, p99->valuedouble);
}

static uint64_t json_count(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble
                                                   : 0;
}

/* The --compare part of the summary: totals, then the endpoint table
 * (at most 20 rows: the page and the JSON have them all), then the noise
 * fields learned. */
static void print_compare(const cJSON *cmp)
{
    char reasons[256] = "", protos[256] = "";
    const cJSON *it;
    size_t n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(
                               cmp, "not_comparable_by_reason")) {
        n += (size_t)snprintf(reasons + n, n < sizeof(reasons)
                                               ? sizeof(reasons) - n : 0,
                              "%s%s %llu", n ? ", " : " (", it->string,
                              (unsigned long long)it->valuedouble);
        n = TM_MIN(n, sizeof(reasons) - 1);
    }
    if (n > 0 && n + 1 < sizeof(reasons)) {
        reasons[n] = ')';
        reasons[n + 1] = '\0';
    }
    n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(
                               cmp, "connections_by_protocol")) {
        n += (size_t)snprintf(protos + n, n < sizeof(protos)
                                              ? sizeof(protos) - n : 0,
                              "%s%s %llu", n ? ", " : ": ", it->string,
                              (unsigned long long)it->valuedouble);
        n = TM_MIN(n, sizeof(protos) - 1);
    }
    tm_info("compared %llu exchanges: %llu same, %llu differ, %llu not "
            "comparable%s; %llu connections%s",
            (unsigned long long)json_count(cmp, "exchanges"),
            (unsigned long long)json_count(cmp, "same"),
            (unsigned long long)json_count(cmp, "differ"),
            (unsigned long long)json_count(cmp, "not_comparable"), reasons,
            (unsigned long long)json_count(cmp, "connections"), protos);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cmp, "endpoints");
    if (cJSON_GetArraySize(eps) == 0) {
        return;
    }
    tm_info("  %-32s %6s %6s %6s %6s  %-13s %-13s %s", "endpoint",
            "exch", "same", "differ", "n/c", "prod p50/p99", "local p50/p99",
            "most frequent differing fields");
    int rows = 0;
    cJSON_ArrayForEach(it, eps) {
        if (++rows > 20) {
            tm_info("  ... %d more endpoints (--stats-json, --diff-report)",
                    cJSON_GetArraySize(eps) - 20);
            break;
        }
        char prod[32], local[32], fields[256] = "";
        latency_cell(it, "production", prod, sizeof(prod));
        latency_cell(it, "local", local, sizeof(local));
        const cJSON *f;
        size_t at = 0;
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(
                                  it, "top_differing_fields")) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "field");
            if (!cJSON_IsString(name)) {
                continue;
            }
            at += (size_t)snprintf(fields + at,
                                   at < sizeof(fields) ? sizeof(fields) - at
                                                       : 0,
                                   "%s%s (%llu)", at ? ", " : "",
                                   name->valuestring,
                                   (unsigned long long)json_count(
                                       f, "exchanges"));
            at = TM_MIN(at, sizeof(fields) - 1);
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "endpoint");
        tm_info("  %-32s %6llu %6llu %6llu %6llu  %-13s %-13s %s",
                cJSON_IsString(name) ? name->valuestring : "?",
                (unsigned long long)json_count(it, "exchanges"),
                (unsigned long long)json_count(it, "same"),
                (unsigned long long)json_count(it, "differ"),
                (unsigned long long)json_count(it, "not_comparable"), prod,
                local, fields);
    }
    cJSON_ArrayForEach(it,
                       cJSON_GetObjectItemCaseSensitive(cmp, "noise_fields")) {
        const cJSON *ep = cJSON_GetObjectItemCaseSensitive(it, "endpoint");
        const cJSON *field = cJSON_GetObjectItemCaseSensitive(it, "field");
        if (cJSON_IsString(ep) && cJSON_IsString(field)) {
            tm_info("  noise (production differs from itself): %s %s",
                    ep->valuestring, field->valuestring);
        }
    }
}

void stats_print(const struct run_report *rep)
{
    char a[32], b[32];
    /* The bytes of the packets as captured, without the capture's own
     * record and file headers: what --filter and decoding see. */
    tm_info("read %llu packets (%s of captured packet data) from %s%s%s%s",
            (unsigned long long)rep->packets,
            format_bytes(rep->bytes, a, sizeof(a)), rep->source_name,
            rep->link_name ? " [" : "", rep->link_name ? rep->link_name : "",
            rep->link_name ? "]" : "");
    if (rep->filtered > 0) {
        tm_info("%llu packets rejected by --filter",
                (unsigned long long)rep->filtered);
    }
    if (rep->flows != NULL && rep->flows->timestamps_clamped > 0) {
        tm_warn("%llu live packets were stamped more than %.0f s ahead of "
                "this machine's clock and were taken at its time",
                (unsigned long long)rep->flows->timestamps_clamped,
                (double)ENGINE_LIVE_AHEAD_NS / 1e9);
    }
    if (rep->pauses_capped > 0) {
        tm_info("--pace cut %llu waits short at --max-pause",
                (unsigned long long)rep->pauses_capped);
    }
    if (rep->kernel_drops > 0) {
        tm_warn("the kernel dropped %lld packets before tapmirror read them",
                (long long)rep->kernel_drops);
    }
    if (rep->modes != NULL && rep->modes->handover_lost > 0) {
        tm_warn("%llu packets were lost handing the capture from one ring "
                "to the other",
                (unsigned long long)rep->modes->handover_lost);
    }
    if (rep->modes != NULL && rep->modes->switching) {
        tm_verbose("capture: %llu switches between per-packet and block "
                   "delivery, %llu copies skipped at hand-overs",
                   (unsigned long long)rep->modes->switches,
                   (unsigned long long)rep->modes->duplicates_skipped);
    }
    if (rep->output_path != NULL && rep->output_untouched) {
        tm_info("wrote nothing: %s was not created or changed",
                rep->output_path);
    } else if (rep->output_path != NULL) {
        /* Every byte the output took: the file header and each
         * packet's record header included. */
        tm_info("wrote %llu packets (%s, file and record headers "
                "included) to %s",
                (unsigned long long)rep->out_packets,
                format_bytes(rep->out_bytes, a, sizeof(a)),
                rep->output_path);
    }
    if (rep->output_path != NULL && rep->redact) {
        tm_info("--redact: %llu credential values overwritten with x in %s",
                (unsigned long long)rep->values_redacted, rep->output_path);
    }
    if (rep->flows != NULL) {
        const struct engine_stats *f = rep->flows;
        tm_info("connections: %llu seen, %llu completed, %llu reset, %llu "
                "ended otherwise; client bytes %s; gaps %llu (%s)",
                (unsigned long long)f->flows_seen,
                (unsigned long long)f->flows_completed,
                (unsigned long long)f->flows_reset,
                (unsigned long long)(f->flows_expired + f->flows_evicted +
                                     f->flows_unfinished +
                                     f->flows_replaced),
                format_bytes(f->payload_bytes, a, sizeof(a)),
                (unsigned long long)f->gaps,
                format_bytes(f->gap_bytes, b, sizeof(b)));
    }
    if (rep->tls_connections > 0) {
        unsigned long long n = (unsigned long long)rep->tls_connections;
        const char *s = n == 1 ? " was" : "s were";
        if (rep->replay == NULL) {
            tm_info("%llu connection%s TLS: the service terminates TLS "
                    "itself; a replay sends them only with --replay-tls, "
                    "and the plaintext hop (a mesh sidecar's) carries the "
                    "requests",
                    n, s);
        } else if (rep->replay_tls) {
            tm_info("%llu connection%s TLS and %s replayed as they were "
                    "(--replay-tls)",
                    n, s, n == 1 ? "was" : "were");
        } else {
            tm_warn("%llu connection%s TLS and %s not replayed: the service "
                    "terminates TLS itself; mirror the plaintext hop (a mesh "
                    "sidecar) or use --replay-tls to send them anyway",
                    n, s, n == 1 ? "was" : "were");
        }
    }
    if (rep->kube != NULL && rep->kube->n_pods > 0) {
        /* As many names as fit, and how many more: the count is always
         * the true one. */
        char pods[512] = "", more[64] = "";
        size_t listed = 0;
        for (; listed < rep->kube->n_pods; listed++) {
            size_t used = strlen(pods);
            const char *name = rep->kube->pods[listed];
            if (used + strlen(name) + 2 >= sizeof(pods) - sizeof(more)) {
                break;
            }
            snprintf(pods + used, sizeof(pods) - used, "%s%s",
                     listed ? ", " : "", name);
        }
        if (listed < rep->kube->n_pods) {
            snprintf(more, sizeof(more), " and %zu more",
                     rep->kube->n_pods - listed);
        }
        char untapped[96] = "";
        if (rep->kube->pods_left_untapped > 0) {
            snprintf(untapped, sizeof(untapped),
                     "; up to %zu running pods left untapped by --max-pods",
                     rep->kube->pods_left_untapped);
        }
        tm_info("kubernetes: tapped %zu pod%s (%s%s); %llu re-attaches, %llu "
                "pod switches%s",
                rep->kube->n_pods, rep->kube->n_pods == 1 ? "" : "s", pods,
                more, (unsigned long long)rep->kube->reattaches,
                (unsigned long long)rep->kube->pod_switches, untapped);
    }
    if (rep->replay != NULL) {
        for (size_t i = 0; i < replay_target_count(rep->replay); i++) {
            const struct replay_target_stats *t =
                replay_target_stats(rep->replay, i);
            tm_info("-> %s: %llu connections, %s delivered, %llu dial "
                    "failures, %llu write failures, %llu dropped",
                    replay_target_label(rep->replay, i),
                    (unsigned long long)t->connections,
                    format_bytes(t->bytes_delivered, a, sizeof(a)),
                    (unsigned long long)t->dial_failures,
                    (unsigned long long)t->write_failures,
                    (unsigned long long)t->flows_dropped);
            const char *label = replay_target_label(rep->replay, i);
            uint64_t cut = t->flows_dropped - t->reset_after_end;
            if (cut > 0) {
                tm_warn("%llu connections to %s were dropped before every "
                        "byte was delivered (%s undelivered)",
                        (unsigned long long)cut, label,
                        format_bytes(t->bytes_dropped, a, sizeof(a)));
            }
            if (t->reset_after_end > 0) {
                tm_warn("%llu connections to %s were reset by the target "
                        "after their last byte was sent: it did not read "
                        "everything",
                        (unsigned long long)t->reset_after_end, label);
            }
            if (t->closed_before_finished > 0) {
                tm_warn("-> %s: closed before the target finished: %llu; "
                        "raise --linger",
                        label,
                        (unsigned long long)t->closed_before_finished);
            }
            if (t->turns > 0) {
                tm_verbose("-> %s: %llu turns waited for the target's "
                           "answer, %llu ended by the end of its HTTP/1 "
                           "response, %llu by a quiet target, %llu by "
                           "--turn-timeout",
                           label, (unsigned long long)t->turns,
                           (unsigned long long)t->turns_http_end,
                           (unsigned long long)t->turns_quiet,
                           (unsigned long long)t->turns_timed_out);
            }
            print_http_counts(label, t);
            if (t->turns_timed_out > 0) {
                tm_warn("-> %s: %llu turns sent without the target's answer "
                        "after --turn-timeout",
                        label, (unsigned long long)t->turns_timed_out);
            }
            if (t->order_waits > 0) {
                tm_verbose("-> %s: %llu chunks waited for other "
                           "connections' answers (--pace ordered), %llu "
                           "released by a stalled target",
                           label, (unsigned long long)t->order_waits,
                           (unsigned long long)t->order_stalls);
            }
            if (t->order_timed_out > 0) {
                tm_warn("-> %s: %llu chunks sent before other connections' "
                        "answers after --turn-timeout (--pace ordered)",
                        label, (unsigned long long)t->order_timed_out);
            }
        }
    }
    if (rep->compare != NULL) {
        print_compare(rep->compare);
    }
    if (rep->kube != NULL && rep->kube->removal_hint != NULL) {
        /* The tap outlives the run: said even with -q. */
        tm_warn("%s", rep->kube->removal_hint);
    }
}

static void add_u64(cJSON *o, const char *k, uint64_t v)
{
    cJSON_AddNumberToObject(o, k, (double)v);
}

/* Whether `st` is the file `name` names, "-" being the stream `fd`. */
static bool same_inode(const struct stat *st, const char *name, int fd)
{
    struct stat b;
    if (name == NULL) {
        return false;
    }
    if (strcmp(name, "-") == 0 ? fstat(fd, &b) != 0 : stat(name, &b) != 0) {
        return false;
    }
    return st->st_dev == b.st_dev && st->st_ino == b.st_ino;
}

/* Writes all of `text` to `fd`. */
static int write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        text += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Replaces the regular file `path` (or creates it) with `text`: written
 * to a private temporary file in the same directory, then renamed over
 * the name. A reader never sees half of it; a hard link to the old file
 * keeps the old contents; rename() replaces a symbolic link planted
 * meanwhile, never its target. */
static int replace_file(const char *path, const char *text, size_t len)
{
    const char *slash = strrchr(path, '/');
    int dirlen = slash != NULL ? (int)(slash - path + 1) : 0;
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%.*s.%s.XXXXXX", dirlen, path,
                     path + dirlen);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT | O_EXCL, 0600 */
    if (fd < 0) {
        return -1;
    }
    if (fchmod(fd, 0600) < 0 || write_all(fd, text, len) < 0) {
        int errnum = errno;
        close(fd);
        unlink(tmp);
        errno = errnum;
        return -1;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int errnum = errno;
        unlink(tmp);
        errno = errnum;
        return -1;
    }
    return 0;
}

/* Writes `text` to `path` unless `path` is not to be written (see
 * stats_path_refused). What is at the path is opened without following
 * a symbolic link and compared, by device and inode, with the input and
 * the output once more: the names may have changed since the run
 * started. */
static int write_text(const char *path, const char *input,
                      const char *output, const char *text, size_t len,
                      char *err, size_t errlen)
{
    if (stats_path_refused(path, input, output, err, errlen)) {
        return -1;
    }
    const char *refusal = NULL;
    struct stat st;
    int fd = open(path, O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC |
                            O_NONBLOCK);
    if (fd < 0) {
        if (errno == ELOOP) {
            refusal = "it is a symbolic link";
        } else if (errno == ENXIO) {
            refusal = "it is not a regular file"; /* a FIFO, say */
        } else if (errno != ENOENT) {
            goto fail;
        }
    } else if (fstat(fd, &st) < 0) {
        int errnum = errno;
        close(fd);
        errno = errnum;
        goto fail;
    } else if (fileid_null_device(&st)) {
        int rc = write_all(fd, text, len);
        int errnum = errno;
        close(fd);
        errno = errnum;
        if (rc == 0) {
            return 0;
        }
        goto fail;
    } else {
        if (!S_ISREG(st.st_mode)) {
            refusal = "it is not a regular file";
        } else if (same_inode(&st, input, STDIN_FILENO) ||
                   same_inode(&st, output, STDOUT_FILENO)) {
            refusal = "it is now the input or output capture";
        }
        close(fd);
    }
    if (refusal != NULL) {
        snprintf(err, errlen, "refusing to write --stats-json %s: %s", path,
                 refusal);
        return -1;
    }
    if (replace_file(path, text, len) == 0) {
        return 0;
    }
fail:
    snprintf(err, errlen, "cannot write --stats-json %s: %s", path,
             strerror(errno));
    return -1;
}

/* Writes `root` as one line to `path` (see write_text) and frees it. */
static int write_json_file(const char *path, const char *input,
                           const char *output, cJSON *root, char *err,
                           size_t errlen)
{
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t len = strlen(json);
    char *text = tm_xmalloc(len + 1);
    memcpy(text, json, len);
    text[len] = '\n';
    cJSON_free(json);
    int rc = write_text(path, input, output, text, len + 1, err, errlen);
    free(text);
    return rc;
}

int stats_write_failure_json(const char *path, const char *input,
                             const char *output, int exit_code,
                             const char *error, char *err, size_t errlen)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "exit_code", exit_code);
    cJSON_AddStringToObject(root, "error", error);
    return write_json_file(path, input, output, root, err, errlen);
}

/* Whether the --stats-json `path` names the file `other` (input or
 * output): one canonical name (the output may not exist yet), or one
 * existing file, through a hard link or a symbolic link to it. */
static bool names_same_file(const char *path, const char *other, int fd)
{
    char a[PATH_MAX], b[PATH_MAX];
    struct stat st;
    if (other == NULL) {
        return false;
    }
    if (strcmp(other, "-") != 0) {
        if (fileid_canonical_path(path, a, sizeof(a)) == 0 &&
            fileid_canonical_path(other, b, sizeof(b)) == 0) {
            if (strcmp(a, b) == 0) {
                return true;
            }
        } else if (strcmp(path, other) == 0) {
            return true;
        }
    }
    return stat(path, &st) == 0 && !fileid_null_device(&st) &&
           same_inode(&st, other, fd);
}

bool stats_path_refused(const char *path, const char *input,
                        const char *output, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode)) {
            /* Dangling or not, it could lead anywhere, the capture
             * included; the capture's own path is never followed
             * either. */
            snprintf(err, errlen,
                     "refusing to write --stats-json %s: it is a symbolic "
                     "link",
                     path);
            return true;
        }
        if (fileid_null_device(&st)) {
            return false; /* may be named twice: nothing is replaced */
        }
        if (!S_ISREG(st.st_mode)) {
            snprintf(err, errlen,
                     "refusing to write --stats-json %s: it is not a "
                     "regular file",
                     path);
            return true;
        }
    }
    if (names_same_file(path, input, STDIN_FILENO)) {
        snprintf(err, errlen, "--stats-json %s is the input file", path);
        return true;
    }
    if (names_same_file(path, output, STDOUT_FILENO)) {
        snprintf(err, errlen, "--stats-json %s is the -o/--output file", path);
        return true;
    }
    return false;
}

int stats_write_json(const char *path, const char *input,
                     const char *output, const struct run_report *rep,
                     char *err, size_t errlen)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *src = cJSON_AddObjectToObject(root, "source");
    cJSON_AddStringToObject(src, "name", rep->source_name);
    add_u64(src, "packets", rep->packets);
    add_u64(src, "bytes", rep->bytes);
    if (rep->link_name != NULL) {
        cJSON_AddStringToObject(src, "link_type", rep->link_name);
    } else {
        cJSON_AddNullToObject(src, "link_type");
    }
    cJSON_AddBoolToObject(src, "truncated", rep->truncated);
    add_u64(src, "filtered", rep->filtered);
    add_u64(src, "timestamps_clamped",
            rep->flows != NULL ? rep->flows->timestamps_clamped : 0);
    add_u64(src, "pauses_capped", rep->pauses_capped);
    if (rep->kernel_drops >= 0) {
        add_u64(src, "kernel_drops", (uint64_t)rep->kernel_drops);
    }
    if (rep->modes != NULL) {
        cJSON_AddStringToObject(src, "delivery",
                                rep->modes->blocks ? "blocks" : "packets");
        add_u64(src, "delivery_switches", rep->modes->switches);
        add_u64(src, "handover_duplicates_skipped",
                rep->modes->duplicates_skipped);
        add_u64(src, "handover_lost", rep->modes->handover_lost);
        add_u64(src, "handover_unrecorded", rep->modes->unrecorded);
        cJSON *rd = cJSON_AddObjectToObject(src, "kernel_drops_by_ring");
        if (rep->modes->packet_ring_drops >= 0) {
            add_u64(rd, "packets", (uint64_t)rep->modes->packet_ring_drops);
        }
        if (rep->modes->block_ring_drops >= 0) {
            add_u64(rd, "blocks", (uint64_t)rep->modes->block_ring_drops);
        }
    }
    cJSON *out = cJSON_AddObjectToObject(root, "output");
    if (rep->output_path != NULL) {
        cJSON_AddStringToObject(out, "path", rep->output_path);
    } else {
        cJSON_AddNullToObject(out, "path");
    }
    add_u64(out, "packets", rep->out_packets);
    add_u64(out, "bytes", rep->out_bytes);
    if (rep->redact) {
        add_u64(out, "values_redacted", rep->values_redacted);
    }
    cJSON *fl = cJSON_AddObjectToObject(root, "flows");
    struct engine_stats none;
    const struct engine_stats *f = rep->flows;
    if (f == NULL) {
        memset(&none, 0, sizeof(none));
        f = &none;
    }
    add_u64(fl, "seen", f->flows_seen);
    add_u64(fl, "completed", f->flows_completed);
    add_u64(fl, "reset", f->flows_reset);
    add_u64(fl, "payload_bytes", f->payload_bytes);
    add_u64(fl, "gaps", f->gaps);
    add_u64(fl, "gap_bytes", f->gap_bytes);
    add_u64(fl, "expired", f->flows_expired);
    add_u64(fl, "evicted", f->flows_evicted);
    add_u64(fl, "unfinished", f->flows_unfinished);
    add_u64(fl, "replaced", f->flows_replaced);
    add_u64(fl, "discarded_bytes", f->discarded_bytes);
    add_u64(fl, "peak_open", f->flows_open_peak);
    add_u64(fl, "tls_connections", rep->tls_connections);
    cJSON *segs = cJSON_AddObjectToObject(root, "segments");
    add_u64(segs, "inbound", f->inbound);
    add_u64(segs, "outbound", f->outbound);
    add_u64(segs, "other_ports", f->other);
    add_u64(segs, "stray", f->stray);
    add_u64(segs, "late", f->late);
    for (int v = 1; v < DECODE_VERDICT_COUNT; v++) {
        add_u64(segs, decode_verdict_name((enum decode_verdict)v),
                f->decode[v]);
    }
    cJSON *targets = cJSON_AddArrayToObject(root, "targets");
    if (rep->replay != NULL) {
        for (size_t i = 0; i < replay_target_count(rep->replay); i++) {
            const struct replay_target_stats *t =
                replay_target_stats(rep->replay, i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "address",
                                    replay_target_label(rep->replay, i));
            add_u64(o, "connections", t->connections);
            add_u64(o, "bytes_delivered", t->bytes_delivered);
            add_u64(o, "dial_failures", t->dial_failures);
            add_u64(o, "write_failures", t->write_failures);
            add_u64(o, "flows_dropped", t->flows_dropped);
            add_u64(o, "bytes_dropped", t->bytes_dropped);
            add_u64(o, "flows", t->flows);
            add_u64(o, "completed", t->completed);
            add_u64(o, "bytes_received", t->bytes_received);
            add_u64(o, "reset_after_end", t->reset_after_end);
            add_u64(o, "turns", t->turns);
            add_u64(o, "turns_quiet", t->turns_quiet);
            add_u64(o, "turns_timed_out", t->turns_timed_out);
            add_u64(o, "turns_http_end", t->turns_http_end);
            add_u64(o, "closed_before_finished", t->closed_before_finished);
            add_u64(o, "requests_forwarded", t->requests_forwarded);
            add_u64(o, "requests_rewritten", t->requests_rewritten);
            add_u64(o, "requests_filtered", t->requests_filtered);
            add_u64(o, "requests_sampled_out", t->requests_sampled_out);
            add_u64(o, "requests_rate_limited", t->requests_rate_limited);
            add_u64(o, "requests_lost_to_gaps", t->requests_lost_to_gaps);
            add_u64(o, "gap_reconnects", t->gap_reconnects);
            add_u64(o, "connections_passed_through",
                    t->connections_passed_through);
            add_u64(o, "connections_sampled_out", t->connections_sampled_out);
            add_u64(o, "connections_rate_limited",
                    t->connections_rate_limited);
            add_u64(o, "order_waits", t->order_waits);
            add_u64(o, "order_timed_out", t->order_timed_out);
            add_u64(o, "order_stalls", t->order_stalls);
            cJSON_AddItemToArray(targets, o);
        }
    }
    if (rep->kube != NULL) {
        cJSON *k = cJSON_AddObjectToObject(root, "kubernetes");
        cJSON *pods = cJSON_AddArrayToObject(k, "pods");
        for (size_t i = 0; i < rep->kube->n_pods; i++) {
            cJSON_AddItemToArray(pods,
                                 cJSON_CreateString(rep->kube->pods[i]));
        }
        add_u64(k, "pods_tapped", rep->kube->n_pods);
        add_u64(k, "pods_left_untapped", rep->kube->pods_left_untapped);
        add_u64(k, "reattaches", rep->kube->reattaches);
        add_u64(k, "pod_switches", rep->kube->pod_switches);
    }
    if (rep->compare != NULL) {
        cJSON_AddItemToObject(root, "compare",
                              cJSON_Duplicate(rep->compare, true));
    }
    cJSON *proc = cJSON_AddObjectToObject(root, "process");
    add_u64(proc, "peak_rss_bytes", proc_peak_rss());
    cJSON_AddNumberToObject(root, "duration_s",
                            (double)rep->duration_ns / 1e9);
    cJSON_AddNumberToObject(root, "exit_code", rep->exit_code);
    return write_json_file(path, input, output, root, err, errlen);
}
