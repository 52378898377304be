#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define C_REPLAY  (1u << CMD_REPLAY)
#define C_CAPTURE (1u << CMD_CAPTURE)
#define C_SUMMARY (1u << CMD_SUMMARY)
#define C_MIRROR  (1u << CMD_MIRROR)
#define C_RUN     (C_REPLAY | C_CAPTURE | C_MIRROR)
#define C_ALL     (C_RUN | C_SUMMARY)
/* An entry of the top-level --help only: the one description there of
 * an option each command describes its own way. */
#define C_OVERVIEW (1u << 16)

/* Long-only options get values above the character range. */
enum {
    OPT_TO = 256,
    OPT_STATS_JSON,
    OPT_PACE,
    OPT_SERVICE_IP,
    OPT_GAP_TIMEOUT,
    OPT_RTX_WAIT,
    OPT_IDLE_TIMEOUT,
    OPT_RETRY_WINDOW,
    OPT_CONNECT_TIMEOUT,
    OPT_WRITE_TIMEOUT,
    OPT_LINGER,
    OPT_DRAIN_TIMEOUT,
    OPT_MAX_BUFFER,
    OPT_FLOW_BUFFER,
    OPT_MAX_FLOWS,
    OPT_MAX_CONNECTIONS,
    OPT_SNAPLEN,
    OPT_KERNEL_BUFFER,
    OPT_BATCH_ABOVE,
    OPT_PROMISC,
    OPT_JSON,
    OPT_FLOWS,
    OPT_CONTEXT,
    OPT_KUBECONFIG,
    OPT_KUBECTL,
    OPT_TAP_IMAGE,
    OPT_TAP_TIMEOUT,
    OPT_ALL_PODS,
    OPT_MAX_PAUSE,
    OPT_TURNS,
    OPT_TURN_TIMEOUT,
    OPT_TURN_QUIET,
};

struct cli_option {
    const char *name;
    int val;         /* short option character or OPT_* */
    const char *arg; /* NULL for a flag */
    unsigned commands;
    const char *help;
    const char *deflt; /* shown as "(default: ...)" */
};

/* The one table of options, in --help order. */
static const struct cli_option options[] = {
    {"port", 'p', "PORT", C_OVERVIEW,
     "service port: TCP segments sent to it are client data (required; "
     "optional for summary)",
     NULL},
    {"port", 'p', "PORT", C_RUN,
     "service port: TCP segments sent to it are client data (required)",
     NULL},
    /* The same option, described for summary, where it is optional. */
    {"port", 'p', "PORT", C_SUMMARY,
     "service port: TCP segments sent to it are client data (without it, "
     "the client is the sender of the SYN, else the side with the higher "
     "port)",
     NULL},
    {"to", OPT_TO, "HOST:PORT", C_RUN,
     "replay every mirrored connection to this local target; repeat for "
     "more targets (each gets every connection). HOST:PORT, [IPV6]:PORT, "
     "or :PORT for 127.0.0.1",
     NULL},
    {"output", 'o', "FILE|-", C_RUN,
     "write the capture to FILE (mode 0600, never through a symlink; not "
     "a FIFO or device but /dev/null), or to standard output with -",
     "capture and mirror: mirror.pcap; replay: none"},
    {"filter", 'f', "BPF", C_ALL,
     "extra libpcap filter expression; packets it rejects are neither "
     "replayed nor written",
     NULL},
    {"interface", 'i', "IFACE", C_CAPTURE,
     "interface to capture on (\"any\" for all; required)", NULL},
    {"service-ip", OPT_SERVICE_IP, "ADDR", C_RUN,
     "only segments sent to this address are inbound (repeatable); keeps "
     "the service's own outbound connections to PORT out",
     "any address"},
    {"pace", OPT_PACE, "MODE", C_REPLAY,
     "fast (as fast as the targets accept), realtime (the capture's own "
     "timing), or a factor such as 2x or 0.5x",
     "fast"},
    {"max-pause", OPT_MAX_PAUSE, "DURATION", C_REPLAY,
     "with --pace: wait at most this long between two packets; a longer "
     "pause (a jump in the capture's clock) is cut short and warned about",
     "60s"},
    {"stats-json", OPT_STATS_JSON, "FILE", C_RUN,
     "write the run's statistics as JSON to FILE at exit (mode 0600; not "
     "a symlink, nor the input or output capture under any name)",
     NULL},
    {"gap-timeout", OPT_GAP_TIMEOUT, "DURATION", C_RUN,
     "skip a hole the capture missed after this long (capture time; on "
     "live sources also wall time when packets stop)",
     "200ms"},
    {"retransmit-wait", OPT_RTX_WAIT, "DURATION", C_RUN,
     "skip a hole the server has not acknowledged either (a network loss "
     "TCP will retransmit) after this long",
     "3s"},
    {"idle-timeout", OPT_IDLE_TIMEOUT, "DURATION", C_RUN,
     "end a connection with no segments for this long", "5m"},
    {"retry-window", OPT_RETRY_WINDOW, "DURATION", C_RUN,
     "keep redialling a target that refuses a connection for this long "
     "while the connection's bytes wait",
     "10s"},
    {"connect-timeout", OPT_CONNECT_TIMEOUT, "DURATION", C_RUN,
     "give up one connection attempt after this long", "3s"},
    {"write-timeout", OPT_WRITE_TIMEOUT, "DURATION", C_RUN,
     "drop a local connection whose target accepts no bytes for this long",
     "30s"},
    {"linger", OPT_LINGER, "DURATION", C_RUN,
     "after the half-close, wait this long for the target to close", "2s"},
    {"drain-timeout", OPT_DRAIN_TIMEOUT, "DURATION", C_RUN,
     "on stop, deliver queued bytes for at most this long", "10s"},
    {"turns", OPT_TURNS, "MODE", C_RUN,
     "auto: replay each connection in turns, as its client spoke: bytes "
     "the client sent only after hearing from the server wait for the "
     "target's answer; off: send every byte as soon as it is captured",
     "auto"},
    {"turn-timeout", OPT_TURN_TIMEOUT, "DURATION", C_RUN,
     "send a held turn anyway when the target has not answered it within "
     "this long (counted)",
     "5s"},
    {"turn-quiet", OPT_TURN_QUIET, "DURATION", C_RUN,
     "a target that answered a turn in part and then sent nothing for "
     "this long has answered it",
     "50ms"},
    {"max-buffer", OPT_MAX_BUFFER, "SIZE", C_RUN,
     "bytes held for all connections (reassembly and replay queues, and "
     "up to half of it for each connection's state)",
     "256MiB"},
    {"flow-buffer", OPT_FLOW_BUFFER, "SIZE", C_RUN,
     "bytes held for one connection", "16MiB"},
    {"max-flows", OPT_MAX_FLOWS, "N", C_RUN,
     "connections tracked at once; one that never carried a byte is "
     "ended first, then the longest idle",
     "1000000"},
    {"max-connections", OPT_MAX_CONNECTIONS, "N", C_RUN,
     "local connections open at once; more wait for a free slot",
     "the descriptor limit less 64"},
    {"snaplen", OPT_SNAPLEN, "BYTES", C_CAPTURE,
     "bytes captured per packet", "262144"},
    {"kernel-buffer", OPT_KERNEL_BUFFER, "SIZE", C_CAPTURE,
     "size of each kernel capture ring (two with --batch-above): with "
     "per-packet delivery every packet takes a frame sized for the largest "
     "one (128 KiB on lo), blocks pack them; a bigger ring absorbs longer "
     "stalls",
     "128MiB"},
    {"batch-above", OPT_BATCH_ABOVE, "PPS", C_CAPTURE,
     "packet rate above which the capture switches from per-packet "
     "delivery to 1 ms blocks: a ring that holds many more packets and "
     "far fewer wake-ups, for up to 1 ms of added latency; it switches "
     "back below a fifth of the rate. 0: always blocks; 'never': always "
     "per packet",
     "50000"},
    {"promisc", OPT_PROMISC, NULL, C_CAPTURE,
     "put the interface in promiscuous mode", "off"},
    {"namespace", 'n', "NAMESPACE", C_MIRROR,
     "namespace of the workload", "the kubeconfig context's"},
    {"container", 'c', "NAME", C_MIRROR,
     "container the tap targets (must exist)",
     "the only one, else the default-container annotation"},
    {"context", OPT_CONTEXT, "CTX", C_MIRROR, "kubeconfig context",
     "the current context"},
    {"kubeconfig", OPT_KUBECONFIG, "FILE", C_MIRROR, "kubeconfig file",
     "$KUBECONFIG or ~/.kube/config"},
    {"kubectl", OPT_KUBECTL, "PATH", C_MIRROR, "kubectl binary",
     "kubectl on PATH"},
    {"tap-image", OPT_TAP_IMAGE, "IMAGE", C_MIRROR,
     "image of the tap container (needs tcpdump)",
     "docker.io/nicolaka/netshoot:v0.16"},
    {"tap-timeout", OPT_TAP_TIMEOUT, "DURATION", C_MIRROR,
     "wait this long for the tap container to run", "60s"},
    {"all-pods", OPT_ALL_PODS, NULL, C_MIRROR,
     "tap every pod of the deployment and merge their traffic", "off"},
    {"json", OPT_JSON, NULL, C_SUMMARY, "print the summary as JSON", NULL},
    {"flows", OPT_FLOWS, "N", C_SUMMARY,
     "list at most N connections, largest first (0: all)", "20"},
    {"quiet", 'q', NULL, C_ALL,
     "only errors and warnings on standard error: no live status, no run "
     "summary",
     NULL},
    {"verbose", 'v', NULL, C_ALL,
     "also report each connection opening, ending and skipping a gap "
     "(twice: more)",
     NULL},
    {"help", 'h', NULL, C_ALL, "show this help", NULL},
    {"version", 'V', NULL, C_ALL, "show the version", NULL},
};

static const struct {
    enum tm_command cmd;
    const char *name;
    const char *usage;
    const char *about;
} commands[] = {
    {CMD_REPLAY, "replay",
     "replay FILE|- -p PORT --to HOST:PORT [--to ...] [options]",
     "Replays the client side of every TCP connection to PORT in a pcap or "
     "pcapng capture (a file, or - for standard input) to local targets: "
     "one local connection per mirrored connection, bytes in TCP order, "
     "responses read and discarded. A file is read as fast as the targets "
     "accept; standard input is live and never waits for them."},
    {CMD_CAPTURE, "capture",
     "capture -i IFACE -p PORT [--to HOST:PORT ...] [-o FILE|-] [options]",
     "Captures TCP traffic to and from PORT on a local interface, writes it "
     "to a pcap file and, with --to, replays each client connection live "
     "to local targets. Ctrl-C stops it cleanly with exit status 0 (3 if "
     "some bytes could not be delivered)."},
    {CMD_SUMMARY, "summary", "summary FILE|- [-p PORT] [options]",
     "Prints what a capture holds: packets, bytes, link type, time span, "
     "and its TCP connections with their ports and client byte counts."},
    {CMD_MIRROR, "mirror",
     "mirror [deployment/]NAME|pod/NAME -p PORT [--to HOST:PORT ...] "
     "[-o FILE|-] [options]",
     "Taps a Kubernetes workload through kubectl: an ephemeral container "
     "with only NET_RAW runs tcpdump in the pod, its capture streams back "
     "over kubectl exec, and each client connection is replayed live to "
     "local targets. Ctrl-C stops it cleanly with exit status 0 (3 if some "
     "bytes could not be delivered)."},
};

/* How the user invoked us: "kubectl tapmirror" as a kubectl plugin. */
static const char *program = "tapmirror";

void cli_set_program(const char *name)
{
    program = name;
}

const char *cli_program(void)
{
    return program;
}

const char *cli_command_name(enum tm_command cmd)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(commands); i++) {
        if (commands[i].cmd == cmd) {
            return commands[i].name;
        }
    }
    return "";
}

const char *const *cli_long_options(void)
{
    static const char *names[TM_ARRAY_LEN(options) + 1];
    size_t n = 0;
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        bool listed = false; /* an option described twice (-p) */
        for (size_t j = 0; j < n && !listed; j++) {
            listed = strcmp(names[j], options[i].name) == 0;
        }
        if (!listed) {
            names[n++] = options[i].name;
        }
    }
    names[n] = NULL;
    return names;
}

void cli_defaults(struct tm_options *o)
{
    memset(o, 0, sizeof(*o));
    o->pace = 0;
    o->max_pause_ns = 60 * TM_NS_PER_S;
    o->gap_timeout_ns = 200 * TM_NS_PER_MS;
    o->rtx_timeout_ns = 3 * TM_NS_PER_S;
    o->idle_timeout_ns = 300 * TM_NS_PER_S;
    o->retry_window_ns = 10 * TM_NS_PER_S;
    o->connect_timeout_ns = 3 * TM_NS_PER_S;
    o->write_timeout_ns = 30 * TM_NS_PER_S;
    o->linger_ns = 2 * TM_NS_PER_S;
    o->drain_timeout_ns = 10 * TM_NS_PER_S;
    o->turns = true;
    o->turn_timeout_ns = 5 * TM_NS_PER_S;
    o->turn_quiet_ns = 50 * TM_NS_PER_MS;
    o->max_buffer = 256ULL << 20;
    o->flow_buffer = 16ULL << 20;
    o->max_flows = 1000000;
    o->max_connections = 0;
    o->snaplen = 262144;
    o->kernel_buffer = 128ULL << 20;
    o->batch_above = 50000;
    o->list_flows = 20;
    o->tap_image = "docker.io/nicolaka/netshoot:v0.16";
    o->tap_timeout_ns = 60 * TM_NS_PER_S;
}

/* Writes `text` wrapped to `width` columns, every line indented by
 * `indent`, the first one starting at column `col`. */
static void print_wrapped(FILE *out, const char *text, int indent, int col,
                          int width)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        const char *end = p;
        while (*end && *end != ' ') {
            end++;
        }
        int wlen = (int)(end - p);
        if (col > indent && col + 1 + wlen > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        } else if (col < indent) {
            fprintf(out, "%*s", indent - col, "");
            col = indent;
        }
        fwrite(p, 1, (size_t)wlen, out);
        col += wlen;
        p = end;
    }
    fputc('\n', out);
}

/* Whether an entry before options[i] has its name (-p, described for
 * the overview and per command). */
static bool described_before(size_t i)
{
    for (size_t j = 0; j < i; j++) {
        if (strcmp(options[j].name, options[i].name) == 0) {
            return true;
        }
    }
    return false;
}

static void print_options(FILE *out, unsigned mask)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        const struct cli_option *opt = &options[i];
        if (!(opt->commands & mask)) {
            continue;
        }
        if ((mask & C_OVERVIEW) && described_before(i)) {
            continue; /* the top-level help lists each option once */
        }
        char head[64];
        if (opt->val < 256) {
            snprintf(head, sizeof(head), "  -%c, --%s%s%s", opt->val,
                     opt->name, opt->arg ? " " : "", opt->arg ? opt->arg : "");
        } else {
            snprintf(head, sizeof(head), "      --%s%s%s", opt->name,
                     opt->arg ? " " : "", opt->arg ? opt->arg : "");
        }
        char help[512];
        if (opt->deflt != NULL) {
            snprintf(help, sizeof(help), "%s (default: %s)", opt->help,
                     opt->deflt);
        } else {
            snprintf(help, sizeof(help), "%s", opt->help);
        }
        fputs(head, out);
        int col = (int)strlen(head);
        if (col >= 30) {
            fprintf(out, "\n");
            col = 0;
        }
        print_wrapped(out, help, 30, col, 79);
    }
}

void cli_print_help(FILE *out, enum tm_command cmd)
{
    if (cmd == CMD_NONE) {
        fprintf(out,
                "Usage: %s COMMAND [options]\n"
                "\n"
                "tapmirror taps the inbound TCP traffic of one service port, "
                "writes it as a\npcap capture and replays every client "
                "connection live to a local process:\none local connection "
                "per mirrored connection, bytes in TCP order, responses\n"
                "read and thrown away. Nothing ever flows back.\n"
                "\nCommands:\n",
                program);
        for (size_t i = 0; i < TM_ARRAY_LEN(commands); i++) {
            fprintf(out, "  %s %s\n", program, commands[i].usage);
        }
        fprintf(out,
                "\nExamples:\n"
                "  tapmirror mirror deployment/web -p 8080 --to :8080\n"
                "  tapmirror capture -i eth0 -p 8080 --to :8080 -o web.pcap\n"
                "  ssh host tcpdump -U -w - port 8080 | "
                "tapmirror replay - -p 8080 --to :8080\n"
                "  tapmirror summary web.pcap\n"
                "\nOptions (see 'tapmirror COMMAND --help' for each "
                "command's):\n");
        print_options(out, C_ALL | C_OVERVIEW);
    } else {
        for (size_t i = 0; i < TM_ARRAY_LEN(commands); i++) {
            if (commands[i].cmd == cmd) {
                fprintf(out, "Usage: %s %s\n\n", program, commands[i].usage);
                print_wrapped(out, commands[i].about, 0, 0, 79);
            }
        }
        fprintf(out, "\nOptions:\n");
        print_options(out, 1u << cmd);
    }
    fprintf(out,
            "\nDurations: 500ms, 10s, 2m, 1h. Sizes: 65536, 64KiB, 256MiB.\n"
            "Exit status: 0 success (including a stop by Ctrl-C or SIGTERM, "
            "and an output\npipe closed by its reader); 1 runtime error; 2 "
            "usage error; 3 the run finished\nbut some connection bytes "
            "could not be delivered to a target; 130 a second\nCtrl-C.\n");
}

static enum cli_result usage_error(char *err, size_t errlen, const char *fmt,
                                   ...) __attribute__((format(printf, 3, 4)));

static enum cli_result usage_error(char *err, size_t errlen, const char *fmt,
                                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return CLI_USAGE;
}

static const struct cli_option *find_option(int val)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        if (options[i].val == val) {
            return &options[i];
        }
    }
    return NULL;
}

/* Resets getopt for another parse (tests, fuzzing). */
static void reset_getopt(void)
{
#ifdef __APPLE__
    optreset = 1;
    optind = 1;
#else
    optind = 0;
#endif
}

static enum cli_result set_duration(const char *name, const char *arg,
                                    uint64_t *dst, char *err, size_t errlen)
{
    const char *why;
    if (parse_duration(arg, dst, &why) < 0) {
        return usage_error(err, errlen, "invalid --%s '%s': %s", name, arg,
                           why);
    }
    return CLI_RUN;
}

static enum cli_result set_size(const char *name, const char *arg,
                                uint64_t *dst, char *err, size_t errlen)
{
    const char *why;
    if (parse_size(arg, dst, &why) < 0) {
        return usage_error(err, errlen, "invalid --%s '%s': %s", name, arg,
                           why);
    }
    return CLI_RUN;
}

static enum cli_result set_count(const char *name, const char *arg,
                                 uint64_t max, uint64_t *dst, char *err,
                                 size_t errlen)
{
    const char *why;
    if (parse_count(arg, max, dst, &why) < 0) {
        return usage_error(err, errlen, "invalid --%s '%s': %s", name, arg,
                           why);
    }
    return CLI_RUN;
}

static enum cli_result check_mirror(struct tm_options *o, char *err,
                                    size_t errlen)
{
    const char *name = o->target;
    if (strncmp(name, "deployment/", 11) == 0 ||
        strncmp(name, "deploy/", 7) == 0) {
        name = strchr(name, '/') + 1;
    } else if (strncmp(name, "pod/", 4) == 0) {
        name += 4;
    } else if (strchr(name, '/') != NULL) {
        return usage_error(err, errlen,
                           "invalid target '%s': use NAME, deployment/NAME "
                           "or pod/NAME",
                           o->target);
    }
    if (!tm_dns1123_name(name, 253)) {
        return usage_error(err, errlen,
                           "invalid name '%s': Kubernetes names are lower "
                           "case letters, digits, '-' and '.', starting and "
                           "ending with a letter or digit",
                           name);
    }
    if (o->namespace_ != NULL && !tm_dns1123_name(o->namespace_, 63)) {
        return usage_error(err, errlen, "invalid --namespace '%s'",
                           o->namespace_);
    }
    if (o->container != NULL && !tm_dns1123_name(o->container, 63)) {
        return usage_error(err, errlen, "invalid --container '%s'",
                           o->container);
    }
    if (o->context != NULL && (o->context[0] == '-' || !o->context[0])) {
        return usage_error(err, errlen, "invalid --context '%s'",
                           o->context);
    }
    if (o->tap_image[0] == '-' || strpbrk(o->tap_image, " \t\n") != NULL) {
        return usage_error(err, errlen, "invalid --tap-image '%s'",
                           o->tap_image);
    }
    return CLI_RUN;
}

/* Cross-option rules once everything is parsed. */
static enum cli_result check_command(struct tm_options *o, int npos,
                                     char **pos, char *err, size_t errlen)
{
    const char *name = cli_command_name(o->cmd);
    int want = o->cmd == CMD_CAPTURE ? 0 : 1;
    if (npos < want) {
        return usage_error(err, errlen, "%s needs %s", name,
                           o->cmd == CMD_MIRROR ? "a deployment or pod name"
                                                : "a capture FILE or -");
    }
    if (npos > want) {
        return usage_error(err, errlen, "unexpected argument '%s'",
                           pos[want]);
    }
    if (o->cmd == CMD_MIRROR) {
        o->target = pos[0];
    } else if (want == 1) {
        o->input = pos[0];
    }
    if (o->cmd != CMD_SUMMARY && o->port == 0) {
        return usage_error(err, errlen, "%s needs -p/--port PORT", name);
    }
    if (o->cmd == CMD_REPLAY && o->n_targets == 0) {
        return usage_error(err, errlen,
                           "replay needs at least one --to HOST:PORT");
    }
    if (o->cmd == CMD_CAPTURE && o->interface == NULL) {
        return usage_error(err, errlen,
                           "capture needs -i/--interface IFACE");
    }
    if ((o->cmd == CMD_CAPTURE || o->cmd == CMD_MIRROR) &&
        o->output == NULL) {
        o->output = "mirror.pcap";
    }
    if (o->output != NULL && o->output[0] == '\0') {
        return usage_error(err, errlen, "-o/--output needs a file name");
    }
    if (o->input != NULL && o->output != NULL && strcmp(o->input, "-") &&
        strcmp(o->input, o->output) == 0) {
        return usage_error(err, errlen,
                           "-o/--output must not be the input file");
    }
    if (o->flow_buffer > o->max_buffer) {
        return usage_error(err, errlen,
                           "--flow-buffer must not exceed --max-buffer");
    }
    if (o->flow_buffer < 4096) {
        return usage_error(err, errlen, "--flow-buffer must be at least 4KiB");
    }
    if (o->gap_timeout_ns == 0) {
        return usage_error(err, errlen, "--gap-timeout must be above 0");
    }
    if (o->max_flows == 0) {
        return usage_error(err, errlen, "--max-flows must be above 0");
    }
    if (o->max_pause_ns == 0) {
        return usage_error(err, errlen, "--max-pause must be above 0");
    }
    if (o->cmd == CMD_MIRROR) {
        return check_mirror(o, err, errlen);
    }
    return CLI_RUN;
}

static enum cli_result apply_option(struct tm_options *o, int c,
                                    const char *arg, char *err, size_t errlen)
{
    const char *why;
    switch (c) {
    case 'p':
        if (parse_port(arg, &o->port, &why) < 0) {
            return usage_error(err, errlen, "invalid --port '%s': %s", arg,
                               why);
        }
        return CLI_RUN;
    case OPT_TO:
        if (o->n_targets == TM_MAX_TARGETS) {
            return usage_error(err, errlen, "at most %d --to targets",
                               TM_MAX_TARGETS);
        }
        if (parse_hostport(arg, &o->targets[o->n_targets], &why) < 0) {
            return usage_error(err, errlen, "invalid --to '%s': %s", arg,
                               why);
        }
        o->target_text[o->n_targets++] = arg;
        return CLI_RUN;
    case 'o':
        o->output = arg;
        return CLI_RUN;
    case 'f':
        o->filter = arg;
        return CLI_RUN;
    case 'i':
        if (arg[0] == '\0' || arg[0] == '-') {
            return usage_error(err, errlen, "invalid --interface '%s'", arg);
        }
        o->interface = arg;
        return CLI_RUN;
    case OPT_SERVICE_IP: {
        struct service_addr *a = &o->service[o->n_service];
        if (o->n_service == TM_MAX_SERVICE_ADDRS) {
            return usage_error(err, errlen, "at most %d --service-ip",
                               TM_MAX_SERVICE_ADDRS);
        }
        if (parse_ip(arg, &a->family, a->addr) < 0) {
            return usage_error(err, errlen,
                               "invalid --service-ip '%s': not an IPv4 or "
                               "IPv6 address",
                               arg);
        }
        o->n_service++;
        return CLI_RUN;
    }
    case OPT_PACE:
        if (parse_pace(arg, &o->pace, &why) < 0) {
            return usage_error(err, errlen, "invalid --pace '%s': %s", arg,
                               why);
        }
        return CLI_RUN;
    case OPT_MAX_PAUSE:
        return set_duration("max-pause", arg, &o->max_pause_ns, err,
                            errlen);
    case OPT_STATS_JSON:
        o->stats_json = arg;
        return CLI_RUN;
    case OPT_GAP_TIMEOUT:
        return set_duration("gap-timeout", arg, &o->gap_timeout_ns, err,
                            errlen);
    case OPT_RTX_WAIT:
        return set_duration("retransmit-wait", arg, &o->rtx_timeout_ns, err,
                            errlen);
    case OPT_IDLE_TIMEOUT:
        return set_duration("idle-timeout", arg, &o->idle_timeout_ns, err,
                            errlen);
    case OPT_RETRY_WINDOW:
        return set_duration("retry-window", arg, &o->retry_window_ns, err,
                            errlen);
    case OPT_CONNECT_TIMEOUT:
        return set_duration("connect-timeout", arg, &o->connect_timeout_ns,
                            err, errlen);
    case OPT_WRITE_TIMEOUT:
        return set_duration("write-timeout", arg, &o->write_timeout_ns, err,
                            errlen);
    case OPT_LINGER:
        return set_duration("linger", arg, &o->linger_ns, err, errlen);
    case OPT_DRAIN_TIMEOUT:
        return set_duration("drain-timeout", arg, &o->drain_timeout_ns, err,
                            errlen);
    case OPT_TURNS:
        if (strcmp(arg, "auto") == 0 || strcmp(arg, "off") == 0) {
            o->turns = strcmp(arg, "auto") == 0;
            return CLI_RUN;
        }
        return usage_error(err, errlen,
                           "invalid --turns '%s': use auto or off", arg);
    case OPT_TURN_TIMEOUT:
        return set_duration("turn-timeout", arg, &o->turn_timeout_ns, err,
                            errlen);
    case OPT_TURN_QUIET:
        return set_duration("turn-quiet", arg, &o->turn_quiet_ns, err,
                            errlen);
    case OPT_TAP_TIMEOUT:
        return set_duration("tap-timeout", arg, &o->tap_timeout_ns, err,
                            errlen);
    case OPT_MAX_BUFFER:
        return set_size("max-buffer", arg, &o->max_buffer, err, errlen);
    case OPT_FLOW_BUFFER:
        return set_size("flow-buffer", arg, &o->flow_buffer, err, errlen);
    case OPT_KERNEL_BUFFER:
        return set_size("kernel-buffer", arg, &o->kernel_buffer, err, errlen);
    case OPT_BATCH_ABOVE:
        if (strcmp(arg, "never") == 0) {
            o->batch_above = TM_BATCH_NEVER;
            return CLI_RUN;
        }
        enum cli_result r = set_count("batch-above", arg, 100000000,
                                      &o->batch_above, err, errlen);
        if (r != CLI_RUN) {
            size_t used = strlen(err);
            snprintf(err + used, errlen - used, ", or never");
        }
        return r;
    case OPT_MAX_FLOWS:
        return set_count("max-flows", arg, 100000000, &o->max_flows, err,
                         errlen);
    case OPT_MAX_CONNECTIONS:
        return set_count("max-connections", arg, 10000000,
                         &o->max_connections, err, errlen);
    case OPT_SNAPLEN:
        if (set_count("snaplen", arg, 262144, &o->snaplen, err, errlen) !=
            CLI_RUN) {
            return CLI_USAGE;
        }
        if (o->snaplen < 64) {
            return usage_error(err, errlen, "--snaplen must be at least 64");
        }
        return CLI_RUN;
    case OPT_FLOWS:
        return set_count("flows", arg, 100000000, &o->list_flows, err,
                         errlen);
    case OPT_PROMISC:
        o->promisc = true;
        return CLI_RUN;
    case OPT_JSON:
        o->json = true;
        return CLI_RUN;
    case 'n':
        o->namespace_ = arg;
        return CLI_RUN;
    case 'c':
        o->container = arg;
        return CLI_RUN;
    case OPT_CONTEXT:
        o->context = arg;
        return CLI_RUN;
    case OPT_KUBECONFIG:
        o->kubeconfig = arg;
        return CLI_RUN;
    case OPT_KUBECTL:
        o->kubectl = arg;
        return CLI_RUN;
    case OPT_TAP_IMAGE:
        o->tap_image = arg;
        return CLI_RUN;
    case OPT_ALL_PODS:
        o->all_pods = true;
        return CLI_RUN;
    case 'q':
        o->verbosity = -1;
        return CLI_RUN;
    case 'v':
        o->verbosity = o->verbosity < 0 ? 1 : o->verbosity + 1;
        return CLI_RUN;
    default:
        return usage_error(err, errlen, "unhandled option");
    }
}

enum cli_result cli_parse(int argc, char **argv, struct tm_options *o,
                          FILE *out, char *err, size_t errlen)
{
    cli_defaults(o);
    err[0] = '\0';
    if (argc < 2) {
        return usage_error(err, errlen, "missing command");
    }
    const char *cmdname = argv[1];
    if (strcmp(cmdname, "--help") == 0 || strcmp(cmdname, "-h") == 0 ||
        strcmp(cmdname, "help") == 0) {
        cli_print_help(out, CMD_NONE);
        return CLI_HELP;
    }
    if (strcmp(cmdname, "--version") == 0 || strcmp(cmdname, "-V") == 0) {
        fprintf(out, "tapmirror %s\n", TAPMIRROR_VERSION);
        return CLI_VERSION;
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(commands); i++) {
        if (strcmp(cmdname, commands[i].name) == 0) {
            o->cmd = commands[i].cmd;
        }
    }
    if (o->cmd == CMD_NONE) {
        if (cmdname[0] == '-') {
            return usage_error(err, errlen,
                               "a command comes first: replay, capture, "
                               "summary or mirror");
        }
        return usage_error(err, errlen, "unknown command '%s'", cmdname);
    }

    /* getopt tables for this command only, so options of other commands
     * are rejected by name. */
    unsigned mask = 1u << o->cmd;
    struct option longopts[TM_ARRAY_LEN(options) + 1];
    char shortopts[3 * TM_ARRAY_LEN(options) + 2];
    size_t nl = 0, ns = 0;
    shortopts[ns++] = ':'; /* report a missing argument as ':' */
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        if (!(options[i].commands & mask)) {
            continue;
        }
        longopts[nl].name = options[i].name;
        longopts[nl].has_arg = options[i].arg ? required_argument : no_argument;
        longopts[nl].flag = NULL;
        longopts[nl].val = options[i].val;
        nl++;
        if (options[i].val < 256) {
            shortopts[ns++] = (char)options[i].val;
            if (options[i].arg) {
                shortopts[ns++] = ':';
            }
        }
    }
    memset(&longopts[nl], 0, sizeof(longopts[nl]));
    shortopts[ns] = '\0';

    int sub_argc = argc - 1;
    char **sub_argv = argv + 1;
    reset_getopt();
    opterr = 0;
    int c;
    while ((c = getopt_long(sub_argc, sub_argv, shortopts, longopts, NULL)) !=
           -1) {
        if (c == 'h') {
            cli_print_help(out, o->cmd);
            return CLI_HELP;
        }
        if (c == 'V') {
            fprintf(out, "tapmirror %s\n", TAPMIRROR_VERSION);
            return CLI_VERSION;
        }
        if (c == '?' || c == ':') {
            const char *bad = sub_argv[optind - 1];
            if (c == ':') {
                return usage_error(err, errlen, "option '%s' needs a value",
                                   bad);
            }
            if (optopt > 0 && optopt < 256) {
                return usage_error(err, errlen,
                                   "unknown option '-%c' for %s", optopt,
                                   cmdname);
            }
            return usage_error(err, errlen, "unknown option '%s' for %s", bad,
                               cmdname);
        }
        const struct cli_option *opt = find_option(c);
        if (opt == NULL) {
            return usage_error(err, errlen, "unhandled option");
        }
        enum cli_result r = apply_option(o, c, optarg, err, errlen);
        if (r != CLI_RUN) {
            return r;
        }
    }
    return check_command(o, sub_argc - optind, sub_argv + optind, err,
                         errlen);
}
