/*
 * tapmirror: mirror the inbound TCP traffic of one service port into a
 * capture and, live, into local processes. The only file that exits.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "io/log.h"
#include "kube/kubectl.h"
#include "run.h"
#include "stats.h"
#include "summary.h"

int main(int argc, char **argv)
{
    /* How tapmirror starts kubectl (kubectl.c): before anything else, so
     * that kubectl inherits no signal disposition of ours. */
    if (argc > 1 && strcmp(argv[1], KUBECTL_CHILD_ARG) == 0) {
        exit(kubectl_child_main(argc, argv));
    }
    /* A reader that goes away must show up as EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);

    struct tm_options opt;
    char err[512];
    enum cli_result r = cli_parse(argc, argv, &opt, stdout, err, sizeof(err));
    if (r == CLI_HELP || r == CLI_VERSION) {
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (r == CLI_USAGE) {
        fprintf(stderr, "tapmirror: %s\n", err);
        if (opt.cmd != CMD_NONE) {
            fprintf(stderr, "tapmirror: try '%s %s --help'\n", opt.program,
                    cli_command_name(opt.cmd));
        } else {
            fprintf(stderr, "tapmirror: try '%s --help'\n", opt.program);
        }
        /* So that a file from an earlier run is not read as this one's;
         * a failure to write it adds nothing to the error. Never over a
         * capture named twice, which may be the mistake reported: the
         * writer refuses what stats_path_refused() refuses. */
        char ignored[512];
        if (opt.stats_json != NULL) {
            stats_write_failure_json(opt.stats_json, opt.input, opt.output,
                                     2, err, ignored, sizeof(ignored));
        }
        exit(2);
    }
    tm_log_set_level(opt.verbosity);
    int code;
    switch (opt.cmd) {
    case CMD_SUMMARY:
        code = summary_command(&opt);
        break;
    case CMD_MIRROR:
        code = opt.check ? mirror_check(&opt) : run_command(&opt);
        break;
    case CMD_REPLAY:
    case CMD_CAPTURE:
        code = run_command(&opt);
        break;
    default:
        fprintf(stderr, "tapmirror: the %s command is not available\n",
                cli_command_name(opt.cmd));
        code = 2;
        break;
    }
    exit(code);
}
