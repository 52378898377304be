/*
 * Command-line parsing: one option table drives getopt_long, --help and
 * the documentation check. Pure apart from printing help to the stream it
 * is given; never exits.
 */
#ifndef TAPMIRROR_CLI_H
#define TAPMIRROR_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/engine.h"
#include "core/parse.h"

#define TM_MAX_TARGETS       16
#define TM_BATCH_NEVER       UINT64_MAX
#define TM_MAX_SERVICE_ADDRS 16

enum tm_command {
    CMD_NONE = 0,
    CMD_REPLAY,
    CMD_CAPTURE,
    CMD_SUMMARY,
    CMD_MIRROR,
};

struct tm_options {
    enum tm_command cmd;
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
};

enum cli_result {
    CLI_RUN = 0,   /* options are valid: run the command */
    CLI_HELP,      /* help was printed to the out stream */
    CLI_VERSION,   /* the version was printed */
    CLI_USAGE,     /* invalid usage: `err` says why */
};

/* Fills `o` with every default. */
void cli_defaults(struct tm_options *o);

/*
 * Parses argv. Prints --help / --version output to `out`. On CLI_USAGE,
 * `err` holds a one-line message without the program-name prefix and
 * *help_cmd the command whose --help to suggest. Pointers in `o` borrow
 * argv.
 */
enum cli_result cli_parse(int argc, char **argv, struct tm_options *o,
                          FILE *out, char *err, size_t errlen);

/* Prints the help of one command (CMD_NONE: the overview). */
void cli_print_help(FILE *out, enum tm_command cmd);

const char *cli_command_name(enum tm_command cmd);

/* The name help and usage messages use ("tapmirror", or "kubectl
 * tapmirror" when run as a kubectl plugin). */
void cli_set_program(const char *name);
const char *cli_program(void);

/* Every long option name once, NULL-terminated (for the documentation
 * check). */
const char *const *cli_long_options(void);

#endif
