/* Unit tests of cli.c: command-line parsing and help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/cli.h"

#define MS 1000000ULL
#define SEC 1000000000ULL

/* One cli_parse() call: argv copies (getopt permutes them and the options
 * borrow them), the options, the error and whatever was printed. */
struct run {
    enum cli_result rc;
    struct tm_options o;
    char err[512];
    char *out;
    size_t out_len;
    char *argv[80];
    int argc;
};

/* Parses "tapmirror" followed by the NULL-terminated `args`. */
static struct run *run_args(const char *const *args)
{
    struct run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->argv[r->argc++] = strdup("tapmirror");
    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(r->argc < 79);
        r->argv[r->argc++] = strdup(args[i]);
    }
    r->argv[r->argc] = NULL;
    FILE *out = open_memstream(&r->out, &r->out_len);
    assert_non_null(out);
    memset(r->err, 'X', sizeof(r->err) - 1);
    r->err[sizeof(r->err) - 1] = '\0';
    r->rc = cli_parse(r->argc, r->argv, &r->o, out, r->err, sizeof(r->err));
    fclose(out);
    return r;
}

#define RUN(...) run_args((const char *const[]){__VA_ARGS__, NULL})

static void run_free(struct run *r)
{
    for (int i = 0; i < r->argc; i++) {
        free(r->argv[i]);
    }
    free(r->out);
    free(r);
}

/* Expects CLI_USAGE with an error containing every needle. */
static void expect_usage(struct run *r, const char *needle1,
                         const char *needle2)
{
    if (r->rc != CLI_USAGE) {
        fail_msg("expected CLI_USAGE, got %d (err \"%s\")", (int)r->rc,
                 r->err);
    }
    assert_true(r->err[0] != '\0');
    assert_null(strchr(r->err, '\n'));
    if (needle1 != NULL && strstr(r->err, needle1) == NULL) {
        fail_msg("error \"%s\" does not mention \"%s\"", r->err, needle1);
    }
    if (needle2 != NULL && strstr(r->err, needle2) == NULL) {
        fail_msg("error \"%s\" does not mention \"%s\"", r->err, needle2);
    }
}

static void expect_run(struct run *r)
{
    if (r->rc != CLI_RUN) {
        fail_msg("expected CLI_RUN, got %d (err \"%s\")", (int)r->rc,
                 r->err);
    }
}

/* Whether `text` holds "--name" as a whole option token (not a prefix of
 * a longer option name). */
static bool has_option(const char *text, const char *name)
{
    char pat[80];
    snprintf(pat, sizeof(pat), "--%s", name);
    size_t n = strlen(pat);
    for (const char *p = text; (p = strstr(p, pat)) != NULL; p += n) {
        char c = p[n];
        bool word = (c >= 'a' && c <= 'z') || c == '-';
        if (!word) {
            return true;
        }
    }
    return false;
}

/* How many option headings of `text` name --`name`: lines that start,
 * after the indent and an optional "-x, ", with it. */
static size_t option_headings(const char *text, const char *name)
{
    char pat[80];
    snprintf(pat, sizeof(pat), "--%s", name);
    size_t n = strlen(pat), count = 0;
    for (const char *line = text; line != NULL && *line;) {
        const char *p = line;
        while (*p == ' ') {
            p++;
        }
        if (p[0] == '-' && p[1] != '-' && p[1] != '\0' && p[2] == ',') {
            p += 3;
            while (*p == ' ') {
                p++;
            }
        }
        if (strncmp(p, pat, n) == 0 && (p[n] == ' ' || p[n] == '\n')) {
            count++;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    return count;
}

/* ---- replay ---- */

static void test_replay_ok(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "cap.pcap", "-p", "8080", "--to", ":9000");
    expect_run(r);
    assert_int_equal(r->o.cmd, CMD_REPLAY);
    assert_string_equal(r->o.input, "cap.pcap");
    assert_int_equal(r->o.port, 8080);
    assert_int_equal(r->o.n_targets, 1);
    assert_string_equal(r->o.targets[0].host, "127.0.0.1");
    assert_int_equal(r->o.targets[0].port, 9000);
    assert_string_equal(r->o.target_text[0], ":9000");
    assert_null(r->o.output); /* replay writes nothing unless asked */
    assert_string_equal(r->err, "");
    run_free(r);

    /* Standard input, long options and = forms. */
    r = RUN("replay", "-", "--port=443", "--to=[::1]:8443", "--pace", "2x",
            "-o", "copy.pcap", "--filter", "tcp", "--stats-json", "s.json");
    expect_run(r);
    assert_string_equal(r->o.input, "-");
    assert_int_equal(r->o.port, 443);
    assert_string_equal(r->o.targets[0].host, "::1");
    assert_true(r->o.targets[0].bracketed);
    assert_true(r->o.pace == 2.0);
    assert_string_equal(r->o.output, "copy.pcap");
    assert_string_equal(r->o.filter, "tcp");
    assert_string_equal(r->o.stats_json, "s.json");
    assert_true(r->o.max_pause_ns == 60000000000ULL); /* the default */
    run_free(r);

    /* --max-pause: a duration above 0. */
    r = RUN("replay", "-", "-p", "443", "--to", ":1", "--pace", "realtime",
            "--max-pause", "1.5s");
    expect_run(r);
    assert_true(r->o.max_pause_ns == 1500000000ULL);
    run_free(r);
    r = RUN("replay", "-", "-p", "443", "--to", ":1", "--max-pause", "0");
    expect_usage(r, "--max-pause", "above 0");
    run_free(r);
    r = RUN("replay", "-", "-p", "443", "--to", ":1", "--max-pause", "5");
    expect_usage(r, "--max-pause", NULL);
    run_free(r);
}

static void test_replay_requires(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "-p", "8080", "--to", ":9000");
    expect_usage(r, "FILE", NULL);
    run_free(r);
    r = RUN("replay", "cap.pcap", "--to", ":9000");
    expect_usage(r, "-p", "port");
    run_free(r);
    r = RUN("replay", "cap.pcap", "-p", "8080");
    expect_usage(r, "--to", NULL);
    run_free(r);
    r = RUN("replay");
    expect_usage(r, NULL, NULL);
    run_free(r);
    /* Two inputs. */
    r = RUN("replay", "a.pcap", "b.pcap", "-p", "1", "--to", ":2");
    expect_usage(r, "b.pcap", NULL);
    run_free(r);
}

static void test_options_after_positionals(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "-p", "80", "--to", ":81", "in.pcap");
    expect_run(r);
    assert_string_equal(r->o.input, "in.pcap");
    run_free(r);
    r = RUN("replay", "in.pcap", "-p", "80", "--to", ":81", "-q");
    expect_run(r);
    assert_string_equal(r->o.input, "in.pcap");
    assert_int_equal(r->o.port, 80);
    assert_int_equal(r->o.verbosity, -1);
    run_free(r);
    /* After "--" everything is positional. */
    r = RUN("replay", "-p", "80", "--to", ":81", "--", "-weird-name");
    expect_run(r);
    assert_string_equal(r->o.input, "-weird-name");
    run_free(r);
    /* Attached short values. */
    r = RUN("replay", "in.pcap", "-p80", "--to", ":81");
    expect_run(r);
    assert_int_equal(r->o.port, 80);
    run_free(r);
}

/* ---- capture, summary, mirror ---- */

static void test_capture(void **state)
{
    (void)state;
    struct run *r = RUN("capture", "-i", "eth0", "-p", "80");
    expect_run(r);
    assert_int_equal(r->o.cmd, CMD_CAPTURE);
    assert_string_equal(r->o.interface, "eth0");
    assert_int_equal(r->o.port, 80);
    assert_string_equal(r->o.output, "mirror.pcap");
    assert_int_equal(r->o.n_targets, 0);
    assert_null(r->o.input);
    run_free(r);

    r = RUN("capture", "-p", "80");
    expect_usage(r, "-i", "interface");
    run_free(r);
    r = RUN("capture", "-i", "eth0");
    expect_usage(r, "-p", "port");
    run_free(r);
    r = RUN("capture", "-i", "any", "-p", "80", "-o", "-", "--to", ":1",
            "--to", "10.0.0.1:2", "--promisc", "--snaplen", "65535",
            "--kernel-buffer", "64MiB");
    expect_run(r);
    assert_string_equal(r->o.output, "-");
    assert_int_equal(r->o.n_targets, 2);
    assert_true(r->o.promisc);
    assert_int_equal(r->o.snaplen, 65535);
    assert_int_equal(r->o.kernel_buffer, 64ULL << 20);
    assert_int_equal(r->o.batch_above, 0);
    run_free(r);
    r = RUN("capture", "-i", "lo", "-p", "80", "--batch-above", "never");
    expect_run(r);
    assert_true(r->o.batch_above == TM_BATCH_NEVER);
    run_free(r);
    r = RUN("capture", "-i", "lo", "-p", "80", "--batch-above", "0");
    expect_run(r);
    assert_int_equal(r->o.batch_above, 0);
    run_free(r);
    r = RUN("capture", "-i", "lo", "-p", "80", "--batch-above", "120000");
    expect_run(r);
    assert_int_equal(r->o.batch_above, 120000);
    run_free(r);
    /* A positional argument is not expected. */
    r = RUN("capture", "-i", "eth0", "-p", "80", "extra");
    expect_usage(r, "extra", NULL);
    run_free(r);
    /* An interface that looks like an option. */
    r = RUN("capture", "-p", "80", "-i", "-x");
    expect_usage(r, "--interface", NULL);
    run_free(r);
}

static void test_summary(void **state)
{
    (void)state;
    struct run *r = RUN("summary", "cap.pcap");
    expect_run(r);
    assert_int_equal(r->o.cmd, CMD_SUMMARY);
    assert_string_equal(r->o.input, "cap.pcap");
    assert_int_equal(r->o.port, 0);
    assert_null(r->o.output);
    assert_false(r->o.json);
    assert_int_equal(r->o.list_flows, 20);
    run_free(r);
    r = RUN("summary", "cap.pcap", "--json", "--flows", "5", "-p", "443");
    expect_run(r);
    assert_true(r->o.json);
    assert_int_equal(r->o.list_flows, 5);
    assert_int_equal(r->o.port, 443);
    run_free(r);
    r = RUN("summary");
    expect_usage(r, "FILE", NULL);
    run_free(r);
    r = RUN("summary", "cap.pcap", "--flows", "x");
    expect_usage(r, "--flows", NULL);
    run_free(r);
}

static void test_mirror(void **state)
{
    (void)state;
    static const char *const good[] = {"deployment/web", "deploy/web",
                                       "pod/web-0", "web", "a.b-c.9",
                                       "0abc", "svc/foo", "service/web",
                                       "statefulset/db", "sts/db",
                                       "daemonset/logs", "ds/logs",
                                       "replicaset/web-1", "rs/web-1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct run *r = RUN("mirror", good[i], "-p", "8080");
        expect_run(r);
        assert_int_equal(r->o.cmd, CMD_MIRROR);
        assert_string_equal(r->o.target, good[i]);
        assert_string_equal(r->o.output, "mirror.pcap");
        run_free(r);
    }
    static const char *const bad[] = {"-x", "Upper", "a_b", "job/foo",
                                      "service/", "sts/Db", "cronjob/x",
                                      "deployment/", "pod/", "web-",
                                      "deployment/Web", "pod/-x", "a b",
                                      ".web"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct run *r = RUN("mirror", "-p", "8080", "--", bad[i]);
        expect_usage(r, NULL, NULL);
        run_free(r);
    }
    struct run *r = RUN("mirror", "-p", "8080");
    expect_usage(r, "deployment", NULL);
    run_free(r);
    r = RUN("mirror", "web");
    expect_usage(r, "-p", NULL);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "-n", "prod", "-c", "app",
            "--context", "kind", "--kubeconfig", "/k", "--kubectl", "/bin/k",
            "--tap-image", "img:1", "--tap-timeout", "2m", "--all-pods",
            "--to", ":1");
    expect_run(r);
    assert_string_equal(r->o.namespace_, "prod");
    assert_string_equal(r->o.container, "app");
    assert_string_equal(r->o.context, "kind");
    assert_string_equal(r->o.kubeconfig, "/k");
    assert_string_equal(r->o.kubectl, "/bin/k");
    assert_string_equal(r->o.tap_image, "img:1");
    assert_int_equal(r->o.tap_timeout_ns, 120 * SEC);
    assert_true(r->o.all_pods);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "-n", "Prod");
    expect_usage(r, "--namespace", NULL);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "-c", "a_b");
    expect_usage(r, "--container", NULL);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--context=-x");
    expect_usage(r, "--context", NULL);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--tap-image", "a b");
    expect_usage(r, "--tap-image", NULL);
    run_free(r);
}

/* ---- help and version ---- */

static const enum tm_command ALL_CMDS[] = {CMD_REPLAY, CMD_CAPTURE,
                                           CMD_SUMMARY, CMD_MIRROR};

/* Whether `cmd` accepts --name (asked of the parser itself: an option a
 * command does not have is reported as unknown). */
static bool accepts(enum tm_command cmd, const char *name)
{
    char opt[80];
    snprintf(opt, sizeof(opt), "--%s", name);
    struct run *r = RUN(cli_command_name(cmd), opt);
    bool unknown = r->rc == CLI_USAGE && strstr(r->err, "unknown option");
    run_free(r);
    return !unknown;
}

static void test_command_help(void **state)
{
    (void)state;
    const char *const *names = cli_long_options();
    for (size_t c = 0; c < 4; c++) {
        const char *cmd = cli_command_name(ALL_CMDS[c]);
        struct run *r = RUN(cmd, "--help");
        assert_int_equal(r->rc, CLI_HELP);
        char usage[64];
        snprintf(usage, sizeof(usage), "Usage: tapmirror %s", cmd);
        assert_non_null(strstr(r->out, usage));
        size_t n_listed = 0;
        for (size_t i = 0; names[i] != NULL; i++) {
            bool avail = accepts(ALL_CMDS[c], names[i]);
            bool listed = has_option(r->out, names[i]);
            if (avail && !listed) {
                fail_msg("%s --help does not list --%s", cmd, names[i]);
            }
            if (!avail && listed) {
                fail_msg("%s --help lists --%s, which %s rejects", cmd,
                         names[i], cmd);
            }
            n_listed += listed;
        }
        assert_true(n_listed >= 5);
        /* -h is the same. */
        struct run *h = RUN(cmd, "-h");
        assert_int_equal(h->rc, CLI_HELP);
        assert_string_equal(h->out, r->out);
        run_free(h);
        run_free(r);
    }
    /* Spot checks of what each command has. */
    assert_true(accepts(CMD_REPLAY, "pace"));
    assert_true(accepts(CMD_REPLAY, "to"));
    assert_false(accepts(CMD_REPLAY, "interface"));
    assert_true(accepts(CMD_CAPTURE, "interface"));
    assert_true(accepts(CMD_CAPTURE, "snaplen"));
    assert_true(accepts(CMD_CAPTURE, "promisc"));
    assert_false(accepts(CMD_CAPTURE, "pace"));
    assert_true(accepts(CMD_REPLAY, "max-pause"));
    assert_false(accepts(CMD_MIRROR, "max-pause"));
    assert_true(accepts(CMD_SUMMARY, "json"));
    assert_false(accepts(CMD_SUMMARY, "to"));
    assert_true(accepts(CMD_MIRROR, "namespace"));
    assert_true(accepts(CMD_MIRROR, "all-pods"));
    assert_false(accepts(CMD_MIRROR, "pace"));
    /* Help output goes to the stream given, even with other errors. */
    struct run *r = RUN("replay", "--help", "--bogus");
    assert_int_equal(r->rc, CLI_HELP);
    run_free(r);
}

static void test_top_level_help(void **state)
{
    (void)state;
    const char *const *names = cli_long_options();
    static const char *const forms[] = {"--help", "-h", "help"};
    char *first = NULL;
    for (size_t f = 0; f < 3; f++) {
        struct run *r = RUN(forms[f]);
        assert_int_equal(r->rc, CLI_HELP);
        assert_non_null(strstr(r->out, "Usage: tapmirror"));
        size_t n = 0;
        for (size_t i = 0; names[i] != NULL; i++) {
            if (!has_option(r->out, names[i])) {
                fail_msg("--help does not list --%s", names[i]);
            }
            /* Once, even where each command describes it (-p). */
            if (option_headings(r->out, names[i]) != 1) {
                fail_msg("--help describes --%s %zu times", names[i],
                         option_headings(r->out, names[i]));
            }
            n++;
        }
        assert_true(n >= 30);
        /* Every command is named. */
        for (size_t c = 0; c < 4; c++) {
            char line[64];
            snprintf(line, sizeof(line), "tapmirror %s",
                     cli_command_name(ALL_CMDS[c]));
            assert_non_null(strstr(r->out, line));
        }
        if (first == NULL) {
            first = strdup(r->out);
        } else {
            assert_string_equal(r->out, first);
        }
        run_free(r);
    }
    free(first);
    /* cli_print_help() directly, to a tmpfile. */
    FILE *tf = tmpfile();
    assert_non_null(tf);
    cli_print_help(tf, "tapmirror", CMD_CAPTURE);
    long size = ftell(tf);
    assert_true(size > 100);
    fclose(tf);
}

/* The program name comes from argv[0] of each parse, not from state set
 * beforehand: "kubectl tapmirror" when run as the kubectl plugin. */
static void test_program_name(void **state)
{
    (void)state;
    static const struct {
        const char *argv0, *want;
    } cases[] = {
        {"/usr/local/bin/kubectl-tapmirror", "kubectl tapmirror"},
        {"kubectl-tapmirror", "kubectl tapmirror"},
        {"/usr/bin/tapmirror", "tapmirror"},
        {"./kubectl-tapmirror.sh", "tapmirror"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[] = {strdup(cases[i].argv0), strdup("replay"),
                        strdup("--help"), NULL};
        char *out = NULL, err[256];
        size_t len = 0;
        struct tm_options o;
        FILE *f = open_memstream(&out, &len);
        assert_non_null(f);
        assert_int_equal(cli_parse(3, argv, &o, f, err, sizeof(err)),
                         CLI_HELP);
        fclose(f);
        assert_string_equal(o.program, cases[i].want);
        char usage[64];
        snprintf(usage, sizeof(usage), "Usage: %s replay ", cases[i].want);
        if (strncmp(out, usage, strlen(usage)) != 0) {
            fail_msg("%s: help starts \"%.40s\"", cases[i].argv0, out);
        }
        free(out);
        /* A usage error names the program for main's hint too. */
        free(argv[2]);
        argv[2] = strdup("--bogus");
        assert_int_equal(cli_parse(3, argv, &o, stdout, err, sizeof(err)),
                         CLI_USAGE);
        assert_string_equal(o.program, cases[i].want);
        assert_int_equal(o.cmd, CMD_REPLAY);
        for (size_t a = 0; a < 3; a++) {
            free(argv[a]);
        }
    }
    struct tm_options d;
    cli_defaults(&d);
    assert_string_equal(d.program, "tapmirror");
}

static void test_long_option_names(void **state)
{
    (void)state;
    const char *const *names = cli_long_options();
    size_t n = 0;
    for (; names[n] != NULL; n++) {
        assert_true(names[n][0] != '\0');
        assert_true(names[n][0] != '-');
        for (size_t j = 0; j < n; j++) {
            assert_string_not_equal(names[n], names[j]);
        }
    }
    static const char *const must[] = {
        "port", "to", "output", "filter", "interface", "service-ip", "pace",
        "stats-json", "gap-timeout", "retransmit-wait", "idle-timeout",
        "retry-window", "max-buffer", "flow-buffer", "max-flows", "quiet",
        "verbose", "help", "version"};
    for (size_t m = 0; m < sizeof(must) / sizeof(must[0]); m++) {
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            found = found || strcmp(names[i], must[m]) == 0;
        }
        if (!found) {
            fail_msg("--%s missing from cli_long_options()", must[m]);
        }
    }
}

static void test_version(void **state)
{
    (void)state;
    static const char *const forms[][2] = {
        {"--version", NULL}, {"-V", NULL}, {"replay", "--version"},
        {"capture", "-V"}};
    for (size_t i = 0; i < 4; i++) {
        struct run *r = forms[i][1] ? RUN(forms[i][0], forms[i][1])
                                    : RUN(forms[i][0]);
        assert_int_equal(r->rc, CLI_VERSION);
        assert_non_null(strstr(r->out, "tapmirror " TAPMIRROR_VERSION));
        run_free(r);
    }
}

/* ---- errors ---- */

static void test_unknown_command(void **state)
{
    (void)state;
    struct run *r = RUN("frobnicate");
    expect_usage(r, "frobnicate", NULL);
    run_free(r);
    r = RUN("-p", "80");
    expect_usage(r, "command", NULL);
    run_free(r);
    r = run_args((const char *const[]){NULL});
    expect_usage(r, "command", NULL);
    run_free(r);
    r = RUN("Replay", "x");
    expect_usage(r, "Replay", NULL);
    run_free(r);
}

static void test_unknown_option(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "f", "-p", "80", "--to", ":1", "--bogus");
    expect_usage(r, "--bogus", NULL);
    run_free(r);
    r = RUN("replay", "f", "-p", "80", "--to", ":1", "-Z");
    expect_usage(r, "-Z", NULL);
    run_free(r);
    r = RUN("replay", "--bogus=3", "f", "-p", "80", "--to", ":1");
    expect_usage(r, "--bogus", NULL);
    run_free(r);
}

static void test_unknown_option_in_cluster(void **state)
{
    (void)state;
    /* A flag cluster whose unknown letter is not the last: getopt has not
     * moved past the cluster yet, so the message must come from optopt,
     * not from the argument before it. */
    struct run *r = RUN("replay", "-Zq", "f", "-p", "80", "--to", ":1");
    expect_usage(r, "-Z", NULL);
    assert_null(strstr(r->err, "'replay'"));
    run_free(r);
    r = RUN("replay", "f", "-p", "80", "--to", ":1", "-qZ");
    expect_usage(r, "-Z", NULL);
    run_free(r);
}

static void test_results_distinct(void **state)
{
    (void)state;
    /* main() turns these into exit statuses: --version must not look like
     * a usage error, nor help like success. */
    assert_int_not_equal(CLI_RUN, CLI_HELP);
    assert_int_not_equal(CLI_RUN, CLI_VERSION);
    assert_int_not_equal(CLI_RUN, CLI_USAGE);
    assert_int_not_equal(CLI_HELP, CLI_VERSION);
    assert_int_not_equal(CLI_HELP, CLI_USAGE);
    assert_int_not_equal(CLI_VERSION, CLI_USAGE);
    struct run *v = RUN("--version");
    struct run *u = RUN("--bogus");
    assert_int_not_equal(v->rc, u->rc);
    assert_string_equal(v->err, "");
    run_free(v);
    run_free(u);
}

static void test_option_of_other_command(void **state)
{
    (void)state;
    struct run *r = RUN("capture", "-i", "eth0", "-p", "80", "--pace", "2x");
    expect_usage(r, "--pace", "capture");
    run_free(r);
    r = RUN("summary", "f", "--to", ":1");
    expect_usage(r, "--to", "summary");
    run_free(r);
    r = RUN("replay", "f", "-p", "1", "--to", ":1", "-i", "eth0");
    expect_usage(r, "-i", "replay");
    run_free(r);
    r = RUN("replay", "f", "-p", "1", "--to", ":1", "--promisc");
    expect_usage(r, "--promisc", NULL);
    run_free(r);
    r = RUN("capture", "-i", "eth0", "-p", "1", "-n", "default");
    expect_usage(r, "-n", NULL);
    run_free(r);
    r = RUN("summary", "f", "-o", "x.pcap");
    expect_usage(r, "-o", NULL);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--json");
    expect_usage(r, "--json", NULL);
    run_free(r);
}

static void test_missing_value(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "f", "-p", "80", "--to");
    expect_usage(r, "--to", "value");
    run_free(r);
    r = RUN("replay", "f", "--to", ":1", "-p");
    expect_usage(r, "-p", "value");
    run_free(r);
}

static void test_targets_repeatable(void **state)
{
    (void)state;
    const char *args[2 + 2 * 17 + 3];
    size_t n = 0;
    char texts[17][16];
    args[n++] = "replay";
    args[n++] = "f";
    for (int i = 0; i < 16; i++) {
        snprintf(texts[i], sizeof(texts[i]), ":%d", 9000 + i);
        args[n++] = "--to";
        args[n++] = texts[i];
    }
    args[n++] = "-p";
    args[n++] = "80";
    args[n] = NULL;
    struct run *r = run_args(args);
    expect_run(r);
    assert_int_equal(r->o.n_targets, 16);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(r->o.targets[i].port, 9000 + i);
        assert_string_equal(r->o.target_text[i], texts[i]);
    }
    run_free(r);
    /* A seventeenth. */
    snprintf(texts[16], sizeof(texts[16]), ":%d", 9016);
    n -= 2;
    args[n++] = "--to";
    args[n++] = texts[16];
    args[n++] = "-p";
    args[n++] = "80";
    args[n] = NULL;
    r = run_args(args);
    expect_usage(r, "16", "--to");
    run_free(r);
}

/* The HTTP options: repeatable lists, values checked when read (a bad
 * pattern is a one-line usage error naming the option), cross rules. */
static void test_http_options(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "f", "-p", "80", "--to", ":9",
                        "--match-method", "GET,HEAD", "--match-method", "post",
                        "--match-path", "^/api/", "--skip-path", "health$",
                        "--match-header", "User-Agent: ^curl/",
                        "--set-header", "X-Env: shadow", "--drop-header",
                        "Cookie", "--host", "local.test", "--mark",
                        "--safe-methods", "--sample", "12.5%",
                        "--sample-requests", "--max-rate", "50/s",
                        "--redact-replay", "--redact-header", "X-Api-Key",
                        "--gap-policy", "splice");
    expect_run(r);
    assert_int_equal(r->o.n_match_methods, 2);
    assert_string_equal(r->o.match_paths[0], "^/api/");
    assert_string_equal(r->o.skip_paths[0], "health$");
    assert_string_equal(r->o.match_headers[0], "User-Agent: ^curl/");
    assert_string_equal(r->o.set_headers[0], "X-Env: shadow");
    assert_string_equal(r->o.drop_headers[0], "Cookie");
    assert_string_equal(r->o.host, "local.test");
    assert_true(r->o.mark && r->o.safe_methods && r->o.sample &&
                r->o.sample_requests && r->o.redact_replay && r->o.gap_splice);
    assert_true(r->o.sample_percent == 12.5);
    assert_int_equal(r->o.max_rate, 50);
    assert_string_equal(r->o.redact_headers[0], "X-Api-Key");
    struct httpflow_options ho;
    cli_httpflow_options(&r->o, &ho);
    assert_int_equal(ho.n_match_methods, 2);
    assert_int_equal(ho.gap_policy, HTTPFLOW_GAP_SPLICE);
    run_free(r);

    r = RUN("replay", "f", "-p", "80", "--to", ":9", "--match-path", "(");
    expect_usage(r, "--match-path", "regular expression");
    run_free(r);
    r = RUN("replay", "f", "-p", "80", "--to", ":9", "--match-header", "X");
    expect_usage(r, "--match-header", "NAME: VALUE");
    run_free(r);
    r = RUN("replay", "f", "-p", "80", "--to", ":9", "--set-header",
            "Content-Length: 3");
    expect_usage(r, "Content-Length", NULL);
    run_free(r);
    r = RUN("replay", "f", "-p", "80", "--to", ":9", "--sample", "101");
    expect_usage(r, "--sample", "0 to 100");
    run_free(r);
    r = RUN("replay", "f", "-p", "80", "--to", ":9", "--max-rate", "0/s");
    expect_usage(r, "--max-rate", NULL);
    run_free(r);
    r = RUN("replay", "f", "-p", "80", "--to", ":9", "--sample-requests");
    expect_usage(r, "--sample", NULL);
    run_free(r);
    r = RUN("replay", "f", "-p", "80", "--to", ":9", "--redact");
    expect_usage(r, "--redact", "-o");
    run_free(r);
    r = RUN("replay", "f", "-p", "80", "--to", ":9", "--gap-policy", "x");
    expect_usage(r, "--gap-policy", "resync");
    run_free(r);
    /* Defaults: resync, nothing selected. */
    r = RUN("replay", "f", "-p", "80", "--to", ":9");
    expect_run(r);
    assert_false(r->o.gap_splice);
    assert_false(r->o.sample);
    assert_int_equal(r->o.max_rate, 0);
    run_free(r);
}

static void test_service_ip_repeatable(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "f", "-p", "1", "--to", ":1",
                        "--service-ip", "10.0.0.2", "--service-ip",
                        "2001:db8::1");
    expect_run(r);
    assert_int_equal(r->o.n_service, 2);
    assert_int_equal(r->o.service[0].family, 4);
    assert_int_equal(r->o.service[0].addr[0], 10);
    assert_int_equal(r->o.service[0].addr[3], 2);
    assert_int_equal(r->o.service[1].family, 6);
    assert_int_equal(r->o.service[1].addr[15], 1);
    run_free(r);
    r = RUN("replay", "f", "-p", "1", "--to", ":1", "--service-ip", "nope");
    expect_usage(r, "--service-ip", "nope");
    run_free(r);
    const char *args[2 + 2 * 17 + 5];
    size_t n = 0;
    args[n++] = "replay";
    args[n++] = "f";
    for (int i = 0; i < 17; i++) {
        args[n++] = "--service-ip";
        args[n++] = "10.0.0.9";
    }
    args[n++] = "-p";
    args[n++] = "1";
    args[n++] = "--to";
    args[n++] = ":1";
    args[n] = NULL;
    r = run_args(args);
    expect_usage(r, "16", "--service-ip");
    run_free(r);
}

static void test_defaults(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "f", "-p", "1", "--to", ":1");
    expect_run(r);
    const struct tm_options *o = &r->o;
    assert_int_equal(o->gap_timeout_ns, 200 * MS);
    assert_int_equal(o->rtx_timeout_ns, 3 * SEC);
    assert_int_equal(o->idle_timeout_ns, 300 * SEC);
    assert_int_equal(o->retry_window_ns, 10 * SEC);
    assert_int_equal(o->connect_timeout_ns, 3 * SEC);
    assert_int_equal(o->write_timeout_ns, 30 * SEC);
    assert_int_equal(o->linger_ns, 2 * SEC);
    assert_int_equal(o->drain_timeout_ns, 10 * SEC);
    assert_int_equal(o->max_buffer, 256ULL << 20);
    assert_int_equal(o->flow_buffer, 16ULL << 20);
    assert_int_equal(o->max_flows, 1000000);
    assert_int_equal(o->max_connections, 0);
    assert_int_equal(o->snaplen, 262144);
    assert_int_equal(o->verbosity, 0);
    assert_true(o->pace == 0);
    assert_int_equal(o->n_service, 0);
    assert_null(o->filter);
    assert_null(o->stats_json);
    run_free(r);
    /* cli_defaults() directly agrees. */
    struct tm_options d;
    memset(&d, 0x55, sizeof(d));
    cli_defaults(&d);
    assert_int_equal(d.cmd, CMD_NONE);
    assert_int_equal(d.gap_timeout_ns, 200 * MS);
    assert_int_equal(d.idle_timeout_ns, 300 * SEC);
    assert_int_equal(d.retry_window_ns, 10 * SEC);
    assert_int_equal(d.max_buffer, 256ULL << 20);
    assert_int_equal(d.flow_buffer, 16ULL << 20);
    assert_int_equal(d.n_targets, 0);
    assert_null(d.output);
}

/* The option table is the only place a default is written: each is read
 * by the parser of the option's kind, and bounds are values too. */
static void test_option_table(void **state)
{
    (void)state;
    char err[256];
    if (cli_check_table(err, sizeof(err)) != 0) {
        fail_msg("option table: %s", err);
    }
    /* A bound names the option and, unless it is "above 0", the bound as
     * the table writes it; the value that counts is the last one given. */
    static const struct {
        const char *args[14];
        const char *error; /* NULL: accepted */
    } cases[] = {
        {{"capture", "-i", "eth0", "-p", "1", "--snaplen", "63"},
         "--snaplen must be at least 64"},
        {{"replay", "f", "-p", "1", "--to", ":1", "--flow-buffer", "4095"},
         "--flow-buffer must be at least 4KiB"},
        {{"replay", "f", "-p", "1", "--to", ":1", "--max-pause", "0"},
         "--max-pause must be above 0"},
        {{"replay", "f", "-p", "1", "--to", ":1", "--max-connections",
          "10000001"},
         "--max-connections '10000001': too large"},
        {{"replay", "f", "-p", "1", "--to", ":1", "--gap-timeout", "0",
          "--gap-timeout", "1ns", "--flow-buffer", "4KiB"},
         NULL},
        {{"capture", "-i", "eth0", "-p", "1", "--snaplen", "64",
          "--max-flows", "100000000", "--max-connections", "10000000"},
         NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run *r = run_args(cases[i].args);
        if (cases[i].error != NULL) {
            expect_usage(r, cases[i].error, NULL);
        } else {
            expect_run(r);
            assert_true(r->o.gap_timeout_ns == 1 || r->o.snaplen == 64);
        }
        run_free(r);
    }
    /* Giving a default changes nothing. */
    struct run *r = RUN("capture", "-i", "eth0", "-p", "1", "--gap-timeout", "200ms",
            "--kernel-buffer", "128MiB", "--batch-above", "0",
            "--snaplen", "262144");
    struct run *d = RUN("capture", "-i", "eth0", "-p", "1");
    expect_run(r);
    expect_run(d);
    d->o.interface = r->o.interface; /* each points into its own argv */
    assert_memory_equal(&r->o, &d->o, sizeof(r->o));
    run_free(r);
    run_free(d);
}

static void test_values_set(void **state)
{
    (void)state;
    struct run *r = RUN(
        "replay", "f", "-p", "1", "--to", ":1", "--gap-timeout", "50ms",
        "--retransmit-wait", "1s", "--idle-timeout", "2m", "--retry-window",
        "30s", "--connect-timeout", "500ms", "--write-timeout", "1m",
        "--linger", "100ms", "--drain-timeout", "5s", "--max-buffer", "1GiB",
        "--flow-buffer", "64KiB", "--max-flows", "5000", "--max-connections",
        "100", "--pace", "realtime");
    expect_run(r);
    const struct tm_options *o = &r->o;
    assert_int_equal(o->gap_timeout_ns, 50 * MS);
    assert_int_equal(o->rtx_timeout_ns, 1 * SEC);
    assert_int_equal(o->idle_timeout_ns, 120 * SEC);
    assert_int_equal(o->retry_window_ns, 30 * SEC);
    assert_int_equal(o->connect_timeout_ns, 500 * MS);
    assert_int_equal(o->write_timeout_ns, 60 * SEC);
    assert_int_equal(o->linger_ns, 100 * MS);
    assert_int_equal(o->drain_timeout_ns, 5 * SEC);
    assert_int_equal(o->max_buffer, 1ULL << 30);
    assert_int_equal(o->flow_buffer, 64ULL << 10);
    assert_int_equal(o->max_flows, 5000);
    assert_int_equal(o->max_connections, 100);
    assert_true(o->pace == 1.0);
    run_free(r);
}

static void test_invalid_values_name_flag(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value, *needle;
    } cases[] = {
        {"-p", "0", "--port"},
        {"--port", "65536", "--port"},
        {"--gap-timeout", "10", "--gap-timeout"},
        {"--retransmit-wait", "x", "--retransmit-wait"},
        {"--idle-timeout", "5", "--idle-timeout"},
        {"--retry-window", "1d", "--retry-window"},
        {"--connect-timeout", "-1s", "--connect-timeout"},
        {"--write-timeout", "s", "--write-timeout"},
        {"--linger", "1..s", "--linger"},
        {"--drain-timeout", "ten", "--drain-timeout"},
        {"--max-buffer", "abc", "--max-buffer"},
        {"--flow-buffer", "1XB", "--flow-buffer"},
        {"--max-flows", "-1", "--max-flows"},
        {"--max-connections", "lots", "--max-connections"},
        {"--pace", "2", "--pace"},
        {"--to", "host", "--to"},
        {"--to", "::1:80", "--to"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run *r;
        if (strcmp(cases[i].flag, "-p") == 0 ||
            strcmp(cases[i].flag, "--port") == 0) {
            r = RUN("replay", "f", "--to", ":1", cases[i].flag,
                    cases[i].value);
        } else {
            r = RUN("replay", "f", "-p", "1", "--to", ":1", cases[i].flag,
                    cases[i].value);
        }
        expect_usage(r, cases[i].needle, cases[i].value);
        run_free(r);
    }
    struct run *r = RUN("capture", "-i", "eth0", "-p", "1", "--snaplen", "10");
    expect_usage(r, "--snaplen", NULL);
    run_free(r);
    r = RUN("capture", "-i", "eth0", "-p", "1", "--snaplen", "300000");
    expect_usage(r, "--snaplen", NULL);
    run_free(r);
    r = RUN("capture", "-i", "eth0", "-p", "1", "--kernel-buffer", "big");
    expect_usage(r, "--kernel-buffer", NULL);
    run_free(r);
    r = RUN("capture", "-i", "eth0", "-p", "1", "--batch-above", "fast");
    expect_usage(r, "--batch-above", "fast");
    expect_usage(r, "--batch-above", "or never");
    run_free(r);
    r = RUN("capture", "-i", "eth0", "-p", "1", "--batch-above", "-5");
    expect_usage(r, "--batch-above", NULL);
    run_free(r);
    r = RUN("replay", "in.pcap", "-p", "1", "--batch-above", "10");
    expect_usage(r, "--batch-above", NULL);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--tap-timeout", "1");
    expect_usage(r, "--tap-timeout", NULL);
    run_free(r);
    /* --max-pods: 1 to 64, 16 unless given. */
    r = RUN("mirror", "web", "-p", "1", "--all-pods");
    expect_run(r);
    assert_int_equal(r->o.max_pods, 16);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--all-pods", "--max-pods", "64");
    expect_run(r);
    assert_int_equal(r->o.max_pods, 64);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--max-pods", "0");
    expect_usage(r, "--max-pods must be at least 1", NULL);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--max-pods", "65");
    expect_usage(r, "--max-pods", "65");
    run_free(r);
    r = RUN("replay", "in.pcap", "-p", "1", "--max-pods", "2");
    expect_usage(r, "--max-pods", NULL);
    run_free(r);
    /* --mesh: auto unless given, or off; for mirror only. */
    r = RUN("mirror", "web", "-p", "1");
    expect_run(r);
    assert_false(r->o.mesh_off);
    assert_false(r->o.replay_tls);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--mesh", "off", "--mesh", "auto");
    expect_run(r);
    assert_false(r->o.mesh_off);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--mesh", "off");
    expect_run(r);
    assert_true(r->o.mesh_off);
    run_free(r);
    r = RUN("mirror", "web", "-p", "1", "--mesh", "istio");
    expect_usage(r, "--mesh 'istio'", "auto or off");
    run_free(r);
    r = RUN("replay", "in.pcap", "-p", "1", "--mesh", "off");
    expect_usage(r, "--mesh", NULL);
    run_free(r);
    /* --replay-tls: a flag of every command that replays. */
    r = RUN("replay", "in.pcap", "-p", "1", "--to", ":1", "--replay-tls");
    expect_run(r);
    assert_true(r->o.replay_tls);
    run_free(r);
    r = RUN("summary", "in.pcap", "--replay-tls");
    expect_usage(r, "--replay-tls", NULL);
    run_free(r);
}

static void test_cross_option_rules(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "f", "-p", "1", "--to", ":1",
                        "--max-buffer", "1MiB", "--flow-buffer", "2MiB");
    expect_usage(r, "--flow-buffer", "--max-buffer");
    run_free(r);
    r = RUN("replay", "f", "-p", "1", "--to", ":1", "--flow-buffer", "1KiB");
    expect_usage(r, "--flow-buffer", NULL);
    run_free(r);
    r = RUN("replay", "f", "-p", "1", "--to", ":1", "--gap-timeout", "0");
    expect_usage(r, "--gap-timeout", NULL);
    run_free(r);
    r = RUN("replay", "f", "-p", "1", "--to", ":1", "--max-flows", "0");
    expect_usage(r, "--max-flows", NULL);
    run_free(r);
    r = RUN("replay", "same.pcap", "-p", "1", "--to", ":1", "-o",
            "same.pcap");
    expect_usage(r, "-o", NULL);
    run_free(r);
    r = RUN("replay", "-", "-p", "1", "--to", ":1", "-o", "-");
    expect_run(r);
    run_free(r);
    r = RUN("replay", "f", "-p", "1", "--to", ":1", "-o", "");
    expect_usage(r, "-o", NULL);
    run_free(r);
}

static void test_verbosity(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        int want;
    } cases[] = {
        {"-q", NULL, -1}, {"-v", NULL, 1},         {"-vv", NULL, 2},
        {"-v", "-v", 2},  {"-q", "-v", 1},         {"-v", "-q", -1},
        {"--quiet", NULL, -1}, {"--verbose", NULL, 1},
        {"--verbose", "--verbose", 2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run *r =
            cases[i].b ? RUN("summary", "f", cases[i].a, cases[i].b)
                       : RUN("summary", "f", cases[i].a);
        expect_run(r);
        if (r->o.verbosity != cases[i].want) {
            fail_msg("%s %s: verbosity %d, want %d", cases[i].a,
                     cases[i].b ? cases[i].b : "", r->o.verbosity,
                     cases[i].want);
        }
        run_free(r);
    }
    struct run *r = RUN("summary", "f");
    assert_int_equal(r->o.verbosity, 0);
    run_free(r);
}

static void test_repeated_parses(void **state)
{
    (void)state;
    /* getopt state from an earlier parse, even one that stopped half-way
     * through its arguments, must not leak into the next. */
    struct run *a = RUN("replay", "-Z", "more", "args", "here");
    expect_usage(a, NULL, NULL);
    run_free(a);
    a = RUN("capture", "-i", "eth0", "-p", "1", "-vq");
    expect_run(a);
    run_free(a);
    struct run *b = RUN("summary", "x.pcap", "-v");
    expect_run(b);
    assert_string_equal(b->o.input, "x.pcap");
    assert_int_equal(b->o.verbosity, 1);
    assert_null(b->o.interface);
    run_free(b);
}

static void test_command_names(void **state)
{
    (void)state;
    assert_string_equal(cli_command_name(CMD_REPLAY), "replay");
    assert_string_equal(cli_command_name(CMD_CAPTURE), "capture");
    assert_string_equal(cli_command_name(CMD_SUMMARY), "summary");
    assert_string_equal(cli_command_name(CMD_MIRROR), "mirror");
    assert_string_equal(cli_command_name(CMD_NONE), "");
}

/* -p NAME is a named port, for mirror only, where the pods resolve it;
 * --warn-silence is mirror's, 30 s by default, 0 turns it off. */
static void test_mirror_port_name_and_silence(void **state)
{
    (void)state;
    struct run *r = RUN("mirror", "service/web", "-p", "http");
    expect_run(r);
    assert_int_equal(r->o.port, 0);
    assert_string_equal(r->o.port_name, "http");
    assert_int_equal(r->o.warn_silence_ns, 30 * SEC);
    run_free(r);
    /* The last -p counts, a number after a name too. */
    r = RUN("mirror", "web", "-p", "web-http", "-p", "8080",
            "--warn-silence", "0");
    expect_run(r);
    assert_int_equal(r->o.port, 8080);
    assert_null(r->o.port_name);
    assert_int_equal(r->o.warn_silence_ns, 0);
    run_free(r);
    r = RUN("mirror", "web", "-p", "8080", "-p", "h2c", "--warn-silence",
            "2m");
    expect_run(r);
    assert_int_equal(r->o.port, 0);
    assert_string_equal(r->o.port_name, "h2c");
    assert_int_equal(r->o.warn_silence_ns, 120 * SEC);
    run_free(r);
    static const char *const bad[] = {"Http", "abcdefghijklmnop", "-http",
                                      "we--b", "a_b", "0", "65536", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = RUN("mirror", "web", "-p", bad[i]);
        expect_usage(r, "--port", NULL);
        run_free(r);
    }
    /* Nothing resolves a name for a local capture or a file. */
    r = RUN("capture", "-i", "lo", "-p", "http");
    expect_usage(r, "--port", NULL);
    run_free(r);
    r = RUN("replay", "-", "-p", "http", "--to", ":1");
    expect_usage(r, "--port", NULL);
    run_free(r);
    r = RUN("capture", "-i", "lo", "-p", "1", "--warn-silence", "5s");
    expect_usage(r, "--warn-silence", NULL);
    run_free(r);
}

static void test_compare_options(void **state)
{
    (void)state;
    struct run *r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81");
    expect_run(r);
    assert_false(r->o.compare);
    assert_int_equal(r->o.compare_body_limit, 1024 * 1024);
    run_free(r);
    r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81", "--compare",
            "--ignore-header", "X-Version", "--ignore-header", "etag",
            "--ignore-json", "$.items[*].id", "--ignore-json", "$.*.at",
            "--compare-body-limit", "64KiB", "--no-redact");
    expect_run(r);
    assert_true(r->o.compare);
    assert_false(r->o.fail_on_diff);
    assert_true(r->o.no_redact);
    assert_int_equal(r->o.n_ignore_headers, 2);
    assert_string_equal(r->o.ignore_headers[1], "etag");
    assert_int_equal(r->o.n_ignore_json, 2);
    assert_string_equal(r->o.ignore_json[0], "$.items[*].id");
    assert_int_equal(r->o.compare_body_limit, 64 * 1024);
    run_free(r);
    /* The options naming compare's outputs turn it on. */
    static const char *const implying[][2] = {
        {"--fail-on-diff", NULL},
        {"--diff-log", "d.jsonl"},
        {"--diff-report", "d.html"},
    };
    for (size_t i = 0; i < 3; i++) {
        r = RUN("capture", "-i", "lo", "-p", "80", "--to", ":81",
                implying[i][0], implying[i][1]);
        expect_run(r);
        assert_true(r->o.compare);
        run_free(r);
    }
    r = RUN("mirror", "web", "-p", "80", "--to", ":81", "--diff-log", "x",
            "--fail-on-diff");
    expect_run(r);
    assert_true(r->o.fail_on_diff);
    assert_string_equal(r->o.diff_log, "x");
    run_free(r);
    /* Nothing to compare without a target. */
    r = RUN("capture", "-i", "lo", "-p", "80", "--compare");
    expect_usage(r, "--compare", "--to");
    run_free(r);
    r = RUN("mirror", "web", "-p", "80", "--fail-on-diff");
    expect_usage(r, "--compare", "--to");
    run_free(r);
    r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81", "--ignore-json",
            "items");
    expect_usage(r, "--ignore-json", "items");
    run_free(r);
    r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81", "--ignore-header",
            "a b");
    expect_usage(r, "--ignore-header", NULL);
    run_free(r);
    r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81",
            "--compare-body-limit", "100");
    expect_usage(r, "--compare-body-limit", NULL);
    run_free(r);
    r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81", "--diff-log", "");
    expect_usage(r, "--diff-log", NULL);
    run_free(r);
    /* Each output a file of its own. */
    r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81", "--diff-log",
            "s.json", "--stats-json", "s.json");
    expect_usage(r, "--diff-log", NULL);
    run_free(r);
    r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81", "--diff-report",
            "c.pcap");
    expect_usage(r, "--diff-report", NULL);
    run_free(r);
    /* summary compares nothing. */
    r = RUN("summary", "c.pcap", "--compare");
    expect_usage(r, "--compare", NULL);
    run_free(r);
    /* An option that keeps requests from the target would pair the local
     * answers with the wrong production ones. */
    static const char *const droppers[][2] = {
        {"--match-method", "GET"}, {"--match-path", "^/a"},
        {"--skip-path", "^/b"},    {"--match-header", "X-A: 1"},
        {"--safe-methods", NULL},  {"--sample", "50"},
        {"--max-rate", "10/s"},
    };
    for (size_t i = 0; i < sizeof(droppers) / sizeof(droppers[0]); i++) {
        if (droppers[i][1] != NULL) {
            r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81",
                    "--compare", droppers[i][0], droppers[i][1]);
        } else {
            r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81",
                    "--fail-on-diff", droppers[i][0]);
        }
        expect_usage(r, "--compare pairs", droppers[i][0]);
        run_free(r);
    }
    /* Rewrites keep every request: compared as sent. */
    r = RUN("replay", "c.pcap", "-p", "80", "--to", ":81", "--compare",
            "--mark", "--set-header", "X-A: 1", "--host", "local");
    expect_run(r);
    run_free(r);
}

int main(void)
{
    unsetenv("POSIXLY_CORRECT"); /* GNU argument permutation */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_ok),
        cmocka_unit_test(test_replay_requires),
        cmocka_unit_test(test_options_after_positionals),
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_mirror),
        cmocka_unit_test(test_mirror_port_name_and_silence),
        cmocka_unit_test(test_compare_options),
        cmocka_unit_test(test_command_help),
        cmocka_unit_test(test_top_level_help),
        cmocka_unit_test(test_program_name),
        cmocka_unit_test(test_long_option_names),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_unknown_option),
        cmocka_unit_test(test_unknown_option_in_cluster),
        cmocka_unit_test(test_results_distinct),
        cmocka_unit_test(test_option_of_other_command),
        cmocka_unit_test(test_missing_value),
        cmocka_unit_test(test_targets_repeatable),
        cmocka_unit_test(test_http_options),
        cmocka_unit_test(test_service_ip_repeatable),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_option_table),
        cmocka_unit_test(test_values_set),
        cmocka_unit_test(test_invalid_values_name_flag),
        cmocka_unit_test(test_cross_option_rules),
        cmocka_unit_test(test_verbosity),
        cmocka_unit_test(test_repeated_parses),
        cmocka_unit_test(test_command_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
