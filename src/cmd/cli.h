/*
 * Command-line parsing: one option table drives getopt_long, the
 * defaults, --help and the documentation check. Pure but for one thing:
 * it writes --help and --version text to the FILE * its caller gives
 * (main passes stdout). It opens nothing, keeps nothing between calls
 * (getopt's state is reset on every parse) and never exits.
 */
#ifndef TAPMIRROR_CLI_H
#define TAPMIRROR_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/addr.h"
#include "core/parse.h"
#include "proto/httpflow.h"

#define TM_MAX_TARGETS       16
#define TM_BATCH_NEVER       UINT64_MAX
#define TM_MAX_SERVICE_ADDRS 16
/* --max-pods: each tapped pod is a kubectl exec and a tcpdump in the
 * cluster; the engine matches every pod address per packet. */
#define TM_MAX_PODS_DEFAULT 16
#define TM_MAX_PODS_LIMIT   64
/* Each repeatable HTTP option (--match-path, --set-header...). */
#define TM_MAX_HTTP_RULES 32
/* --ignore-header and --ignore-json: each repeatable this many times. */
#define TM_MAX_IGNORES      64

enum tm_command {
    CMD_NONE = 0,
    CMD_REPLAY,
    CMD_CAPTURE,
    CMD_SUMMARY,
    CMD_MIRROR,
};

/* --tap-profile: the tap's security context (kubejson.h). */
enum tm_tap_profile {
    TM_TAP_AUTO = 0, /* NET_RAW, then baseline if Pod Security refuses */
    TM_TAP_NETRAW,
    TM_TAP_BASELINE,
};

struct tm_options {
    enum tm_command cmd;
    /* "tapmirror", or "kubectl tapmirror" when argv[0] is
     * kubectl-tapmirror (run as a kubectl plugin): the name help and
     * usage messages use. */
    const char *program;
    const char *input;     /* replay, summary: FILE or - */
    const char *interface; /* capture */
    const char *output;    /* -o; NULL: no capture output */
    uint16_t port;         /* 0: not given */
    struct hostport targets[TM_MAX_TARGETS];
    const char *target_text[TM_MAX_TARGETS];
    size_t n_targets;
    struct service_addr service[TM_MAX_SERVICE_ADDRS];
    size_t n_service;
    const char *filter;
    const char *stats_json;
    int verbosity; /* -1 quiet, 0 normal, 1 verbose, 2 debug */
    double pace;   /* 0: as fast as possible */
    bool pace_ordered; /* --pace ordered: fast, keeping production's
                          happens-before between connections */
    uint64_t max_pause_ns; /* --pace: the longest wait between packets */
    uint64_t gap_timeout_ns, rtx_timeout_ns, idle_timeout_ns;
    uint64_t retry_window_ns, connect_timeout_ns, write_timeout_ns;
    uint64_t linger_ns, drain_timeout_ns;
    bool turns; /* --turns auto (true) or off */
    uint64_t turn_timeout_ns, turn_quiet_ns;
    uint64_t max_buffer, flow_buffer;
    uint64_t max_flows, max_connections; /* 0: from the descriptor limit */
    uint64_t snaplen, kernel_buffer;
    uint64_t batch_above; /* packets/s; TM_BATCH_NEVER: per packet only */
    bool promisc;
    bool replay_tls; /* replay connections that open with TLS too */
    /* summary */
    bool json;
    uint64_t list_flows;
    /* mirror */
    const char *target;
    const char *namespace_;
    const char *container;
    const char *context;
    const char *kubeconfig;
    const char *kubectl;
    const char *tap_image;
    uint64_t tap_timeout_ns;
    bool all_pods;
    uint64_t max_pods; /* tapped at once with --all-pods */
    bool mesh_off;     /* --mesh off: ignore a pod's service mesh */
    enum tm_tap_profile tap_profile;
    bool check; /* --check: the preflight checklist only */
    /* -p NAME (mirror only): a container port's name, or a Service
     * port's; `port` is then 0 until the tap resolves it per pod. */
    const char *port_name;
    uint64_t warn_silence_ns; /* 0: never warn */
    /* HTTP-aware mirroring (proto/httpflow.h); lists borrow argv and
     * every pattern was compiled once when it was read. */
    const char *match_methods[TM_MAX_HTTP_RULES];
    size_t n_match_methods;
    const char *match_paths[TM_MAX_HTTP_RULES];
    size_t n_match_paths;
    const char *skip_paths[TM_MAX_HTTP_RULES];
    size_t n_skip_paths;
    const char *match_headers[TM_MAX_HTTP_RULES];
    size_t n_match_headers;
    bool safe_methods;
    bool sample;           /* --sample given */
    double sample_percent; /* 0..100 */
    bool sample_requests;
    uint64_t max_rate; /* requests (or connections) a second; 0: none */
    const char *set_headers[TM_MAX_HTTP_RULES];
    size_t n_set_headers;
    const char *drop_headers[TM_MAX_HTTP_RULES];
    size_t n_drop_headers;
    const char *host;
    bool mark;
    bool redact;        /* the capture output */
    bool redact_replay; /* what the targets receive */
    const char *redact_headers[TM_MAX_HTTP_RULES];
    size_t n_redact_headers;
    bool gap_splice; /* --gap-policy splice */
    /* shadow compare (--compare, or implied by the options naming its
     * outputs) */
    bool compare;
    bool fail_on_diff;
    bool no_redact;
    const char *diff_log;    /* JSON lines; NULL: none */
    const char *diff_report; /* HTML page; NULL: none */
    const char *ignore_headers[TM_MAX_IGNORES];
    size_t n_ignore_headers;
    const char *ignore_json[TM_MAX_IGNORES];
    size_t n_ignore_json;
    uint64_t compare_body_limit;
};

enum cli_result {
    CLI_RUN = 0,   /* options are valid: run the command */
    CLI_HELP,      /* help was printed to the out stream */
    CLI_VERSION,   /* the version was printed */
    CLI_USAGE,     /* invalid usage: `err` says why */
};

/* Fills `o` with every default: the option table's default texts, read
 * by the same code as the user's values. */
void cli_defaults(struct tm_options *o);

/* Checks the option table itself: every default and bound parses, the
 * defaults are within the bounds, flags take no value, an option described
 * twice is described alike. Returns 0, or -1 with the first fault in
 * `err`. A fault is a bug in cli.c, caught by unit.cli. */
int cli_check_table(char *err, size_t errlen);

/*
 * Parses argv. Writes --help / --version output to `out` and nothing
 * else anywhere. o->program is set from argv[0] whatever the result. On
 * CLI_USAGE, `err` holds a one-line message without the program-name
 * prefix, and o->cmd the command whose --help to suggest (CMD_NONE: the
 * overview). Pointers in `o` borrow argv.
 */
enum cli_result cli_parse(int argc, char **argv, struct tm_options *o,
                          FILE *out, char *err, size_t errlen);

/* Writes the help of one command (CMD_NONE: the overview) to `out`,
 * naming the program `program` (struct tm_options.program). */
void cli_print_help(FILE *out, const char *program, enum tm_command cmd);

const char *cli_command_name(enum tm_command cmd);

/* The HTTP options of `o` as httpflow takes them (pointers borrow `o`). */
void cli_httpflow_options(const struct tm_options *o,
                          struct httpflow_options *out);

/* Every long option name once, NULL-terminated (for the documentation
 * check): a static list, rebuilt the same on every call. */
const char *const *cli_long_options(void);

#endif
