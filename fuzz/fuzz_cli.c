/*
 * fuzz_cli: cli_parse() on arbitrary command lines.
 *
 * The input is split at NUL bytes into argv[1..] (argv[0] is
 * "tapmirror"; at most 64 arguments). Help and version output go to a
 * fmemopen() stream. cli_parse() resets getopt itself, so runs are
 * independent.
 *
 * Checks: the result is one of the four; a usage error has a one-line,
 * non-empty message; a successful parse names a command and satisfies the
 * cross-option rules (replay has a port, a target and an input; capture
 * has an interface and an output; --flow-buffer within --max-buffer and
 * at least 4 KiB; --gap-timeout and --max-flows above 0; targets have
 * ports); every string in the options points into an argument or is a
 * built-in default; the same command line parses the same way twice.
 * Every command's help is printed too.
 */
#include "fuzz_common.h"

#include "cmd/cli.h"

#define MAX_ARGS 64

static bool in_args(const char *s, char **args, int n)
{
    for (int i = 0; i < n; i++) {
        size_t len = strlen(args[i]);
        if (fz_within((const uint8_t *)s, 1, (const uint8_t *)args[i],
                      len + 1)) {
            return true;
        }
    }
    return false;
}

static void check_ptr(const char *s, char **args, int n, const char *what)
{
    if (s != NULL) {
        FZ_CHECK(in_args(s, args, n), "%s does not point into argv", what);
    }
}

static void check_run(const struct tm_options *o, char **args, int n)
{
    FZ_CHECK(o->cmd == CMD_REPLAY || o->cmd == CMD_CAPTURE ||
                 o->cmd == CMD_SUMMARY || o->cmd == CMD_MIRROR,
             "command %d", (int)o->cmd);
    check_ptr(o->input, args, n, "input");
    check_ptr(o->interface, args, n, "interface");
    if (o->output != NULL && strcmp(o->output, "mirror.pcap") != 0) {
        check_ptr(o->output, args, n, "output");
    }
    check_ptr(o->filter, args, n, "filter");
    check_ptr(o->stats_json, args, n, "stats_json");
    check_ptr(o->target, args, n, "target");
    FZ_CHECK(o->n_targets <= TM_MAX_TARGETS, "%zu targets", o->n_targets);
    FZ_CHECK(o->n_service <= TM_MAX_SERVICE_ADDRS, "%zu service addresses",
             o->n_service);
    for (size_t i = 0; i < o->n_targets; i++) {
        check_ptr(o->target_text[i], args, n, "target text");
        FZ_CHECK(o->targets[i].port != 0, "target without a port");
        FZ_CHECK(memchr(o->targets[i].host, '\0',
                        sizeof(o->targets[i].host)) != NULL,
                 "target host not terminated");
    }
    for (size_t i = 0; i < o->n_service; i++) {
        FZ_CHECK(o->service[i].family == 4 || o->service[i].family == 6,
                 "service address family %u", o->service[i].family);
    }
    if (o->cmd != CMD_SUMMARY) {
        FZ_CHECK(o->port != 0, "%s without a port",
                 cli_command_name(o->cmd));
    }
    if (o->cmd == CMD_REPLAY || o->cmd == CMD_SUMMARY) {
        FZ_CHECK(o->input != NULL, "no input");
    }
    if (o->cmd == CMD_REPLAY) {
        FZ_CHECK(o->n_targets > 0, "replay without a target");
    }
    if (o->cmd == CMD_CAPTURE) {
        FZ_CHECK(o->interface != NULL && o->interface[0] != '\0' &&
                     o->interface[0] != '-',
                 "capture interface");
    }
    if (o->cmd == CMD_CAPTURE || o->cmd == CMD_MIRROR) {
        FZ_CHECK(o->output != NULL, "no output");
    }
    if (o->cmd == CMD_MIRROR) {
        FZ_CHECK(o->target != NULL && o->target[0] != '\0', "mirror target");
    }
    if (o->output != NULL) {
        FZ_CHECK(o->output[0] != '\0', "empty output name");
    }
    FZ_CHECK(o->flow_buffer <= o->max_buffer && o->flow_buffer >= 4096,
             "flow buffer %llu, max buffer %llu",
             (unsigned long long)o->flow_buffer,
             (unsigned long long)o->max_buffer);
    FZ_CHECK(o->gap_timeout_ns > 0, "gap timeout 0");
    FZ_CHECK(o->max_flows > 0, "max flows 0");
    FZ_CHECK(o->snaplen >= 64 && o->snaplen <= 262144, "snaplen %llu",
             (unsigned long long)o->snaplen);
    FZ_CHECK(o->pace == 0 || (o->pace >= 0.001 && o->pace <= 1e6),
             "pace %g", o->pace);
    FZ_CHECK(o->verbosity >= -1, "verbosity %d", o->verbosity);
}

static enum cli_result parse_once(int argc, char **argv, char **args,
                                  int nargs, struct tm_options *o, FILE *out)
{
    char err[512];
    memset(err, 'x', sizeof(err));
    enum cli_result r = cli_parse(argc, argv, o, out, err, sizeof(err));
    FZ_CHECK(r == CLI_RUN || r == CLI_HELP || r == CLI_VERSION ||
                 r == CLI_USAGE,
             "result %d", (int)r);
    FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL, "err not terminated");
    if (r == CLI_USAGE) {
        FZ_CHECK(err[0] != '\0', "usage error without a message");
        /* One line, unless it quotes an argument that has a newline. */
        bool nl_arg = false;
        for (int i = 0; i < nargs; i++) {
            nl_arg = nl_arg || strchr(args[i], '\n') != NULL;
        }
        FZ_CHECK(nl_arg || strchr(err, '\n') == NULL,
                 "multi-line usage error: %s", err);
    } else if (r == CLI_RUN) {
        check_run(o, args, nargs);
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One NUL-terminated copy; arguments point into it. */
    char *buf = malloc(size + 1);
    FZ_CHECK(buf != NULL, "out of memory");
    if (size > 0) {
        memcpy(buf, data, size);
    }
    buf[size] = '\0';
    char *args[MAX_ARGS + 2];
    int n = 0;
    static char argv0[] = "tapmirror";
    args[n++] = argv0;
    for (size_t i = 0; i < size && n < MAX_ARGS + 1;) {
        args[n++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    args[n] = NULL;

    /* getopt_long permutes argv: parse copies of the pointer array. */
    char *argv1[MAX_ARGS + 2], *argv2[MAX_ARGS + 2];
    memcpy(argv1, args, sizeof(args));
    memcpy(argv2, args, sizeof(args));

    static char outbuf[1 << 16];
    FILE *out = fmemopen(outbuf, sizeof(outbuf), "w");
    FZ_CHECK(out != NULL, "fmemopen");

    struct tm_options *o1 = malloc(sizeof(*o1));
    struct tm_options *o2 = malloc(sizeof(*o2));
    FZ_CHECK(o1 != NULL && o2 != NULL, "out of memory");
    enum cli_result r1 = parse_once(n, argv1, args, n, o1, out);
    enum cli_result r2 = parse_once(n, argv2, args, n, o2, out);
    FZ_CHECK(r1 == r2, "second parse gave %d, first %d", (int)r2, (int)r1);
    if (r1 == CLI_RUN) {
        FZ_CHECK(o1->cmd == o2->cmd && o1->port == o2->port &&
                     o1->n_targets == o2->n_targets &&
                     o1->input == o2->input && o1->output == o2->output &&
                     o1->gap_timeout_ns == o2->gap_timeout_ns &&
                     o1->max_buffer == o2->max_buffer,
                 "second parse differs");
    }
    free(o1);
    free(o2);

    if (size > 0 && (data[0] & 0x80)) {
        cli_print_help(out, "tapmirror", (enum tm_command)(data[0] % 5));
    }
    const char *const *names = cli_long_options();
    FZ_CHECK(names != NULL && names[0] != NULL, "no long options");
    fclose(out);
    free(buf);
    return 0;
}
