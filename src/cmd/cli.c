#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kube/kubejson.h"
#include "proto/jsondiff.h"

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
    OPT_MAX_PODS,
    OPT_MESH,
    OPT_REPLAY_TLS,
    OPT_TURNS,
    OPT_TURN_TIMEOUT,
    OPT_TURN_QUIET,
    OPT_TAP_PROFILE,
    OPT_CHECK,
    OPT_WARN_SILENCE,
    OPT_MATCH_METHOD,
    OPT_MATCH_PATH,
    OPT_SKIP_PATH,
    OPT_MATCH_HEADER,
    OPT_SAFE_METHODS,
    OPT_SAMPLE,
    OPT_SAMPLE_REQUESTS,
    OPT_MAX_RATE,
    OPT_SET_HEADER,
    OPT_DROP_HEADER,
    OPT_HOST,
    OPT_MARK,
    OPT_REDACT,
    OPT_REDACT_REPLAY,
    OPT_REDACT_HEADER,
    OPT_GAP_POLICY,
    OPT_COMPARE,
    OPT_FAIL_ON_DIFF,
    OPT_DIFF_LOG,
    OPT_DIFF_REPORT,
    OPT_IGNORE_HEADER,
    OPT_IGNORE_JSON,
    OPT_COMPARE_BODY_LIMIT,
    OPT_NO_REDACT,
};

/* How an option's value is read and where it goes. */
enum opt_kind {
    KIND_OWN = 0,  /* a case of its own in apply_option(); no field */
    KIND_DURATION, /* parse_duration() -> uint64_t nanoseconds */
    KIND_SIZE,     /* parse_size() -> uint64_t bytes */
    KIND_COUNT,    /* parse_count() -> uint64_t */
    KIND_FLAG,     /* no value: the bool becomes true */
    KIND_STRING,   /* the argument itself (borrowed from argv) */
};

struct cli_option {
    const char *name;
    int val;         /* short option character or OPT_* */
    const char *arg; /* NULL for a flag */
    unsigned commands;
    enum opt_kind kind;
    size_t field;      /* offsetof(struct tm_options, ...); not for KIND_OWN */
    const char *deflt; /* the default, written as a value */
    const char *deflt_about; /* or the default in words, when no value */
    const char *min, *max;   /* bounds, written as values; NULL: none */
    const char *help;
};

/* The offset of field `f` of struct tm_options, which must be of type T:
 * a row pointing at a field of another type does not compile. */
#define FIELD(f, T)                                                        \
    (offsetof(struct tm_options, f) +                                     \
     0 * sizeof(struct {                                                   \
         _Static_assert(_Generic(((struct tm_options *)0)->f, T: 1,        \
                                 default: 0),                              \
                        "struct tm_options." #f " is not " #T);            \
         char c;                                                           \
     }))
#define OPTION(name_, val_, arg_, commands_)                               \
    .name = (name_), .val = (val_), .arg = (arg_), .commands = (commands_)
#define DURATION_AT(f) .kind = KIND_DURATION, .field = FIELD(f, uint64_t)
#define SIZE_AT(f)     .kind = KIND_SIZE, .field = FIELD(f, uint64_t)
#define COUNT_AT(f)    .kind = KIND_COUNT, .field = FIELD(f, uint64_t)
#define FLAG_AT(f)     .kind = KIND_FLAG, .field = FIELD(f, bool)
#define STRING_AT(f)   .kind = KIND_STRING, .field = FIELD(f, const char *)

/*
 * The one table of options, in --help order, and the only place a
 * default is written. A row:
 *
 *   {OPTION("gap-timeout", OPT_GAP_TIMEOUT, "DURATION", C_RUN),
 *    DURATION_AT(gap_timeout_ns), .deflt = "200ms", .min = "1ns",
 *    .help = "..."},
 *
 * OPTION(long name, short character or OPT_* (add one to the enum above
 * for a long-only option), the value's name in --help or NULL for a
 * flag, the C_* commands that accept it); then where the value goes:
 * DURATION_AT, SIZE_AT, COUNT_AT, FLAG_AT or STRING_AT(field of struct
 * tm_options), which also says how it is parsed; or nothing (KIND_OWN)
 * for an option whose value has rules of its own, handled by a case in
 * apply_option(). Then, all optional:
 *
 *   .deflt  the default written as a user would write the value: it is
 *           shown as "(default: ...)" and cli_defaults() sets it through
 *           apply_option(), the same code as the user's value (without
 *           it the field starts as 0, false or NULL);
 *   .deflt_about  the default in words when it is no value one could
 *           write ("the descriptor limit less 64"): shown, not parsed;
 *   .min, .max  bounds written as values ("4KiB"): a value above .max
 *           is refused as too large when it is read, one below .min once
 *           every option is read, so the last one given counts;
 *   .help   the --help text.
 *
 * cli_check_table() checks every row (defaults and bounds parse, flags
 * have no value...); unit.cli runs it, and the docs test in e2e.cli
 * compares every option and default with docs/tapmirror.1 and README.md.
 */
static const struct cli_option options[] = {
    {OPTION("port", 'p', "PORT", C_OVERVIEW),
     .help = "service port: TCP segments sent to it are client data "
             "(required; optional for summary)"},
    {OPTION("port", 'p', "PORT", C_REPLAY | C_CAPTURE),
     .help = "service port: TCP segments sent to it are client data "
             "(required)"},
    /* The same option, described for mirror, where it may be a name. */
    {OPTION("port", 'p', "PORT", C_MIRROR),
     .help = "service port: TCP segments sent to it are client data "
             "(required). A number or a named container port; with a "
             "service/ target, a Service port (number or name) is mapped "
             "to its targetPort in each pod"},
    /* The same option, described for summary, where it is optional. */
    {OPTION("port", 'p', "PORT", C_SUMMARY),
     .help = "service port: TCP segments sent to it are client data "
             "(without it, the client is the sender of the SYN, else the "
             "side with the higher port)"},
    {OPTION("to", OPT_TO, "HOST:PORT", C_RUN),
     .help = "replay every mirrored connection to this local target; "
             "repeat for more targets (each gets every connection). "
             "HOST:PORT, [IPV6]:PORT, or :PORT for 127.0.0.1"},
    {OPTION("replay-tls", OPT_REPLAY_TLS, NULL, C_RUN), FLAG_AT(replay_tls),
     .deflt_about = "off",
     .help = "also replay connections that open with a TLS handshake; "
             "without it they are counted as tls and not sent to the "
             "targets, which speak plaintext"},
    {OPTION("output", 'o', "FILE|-", C_RUN), STRING_AT(output),
     .deflt_about = "capture and mirror: mirror.pcap; replay: none",
     .help = "write the capture to FILE (mode 0600, never through a "
             "symlink; not a FIFO or device but /dev/null), or to standard "
             "output with -"},
    {OPTION("filter", 'f', "BPF", C_ALL), STRING_AT(filter),
     .help = "extra libpcap filter expression; packets it rejects are "
             "neither replayed nor written"},
    {OPTION("interface", 'i', "IFACE", C_CAPTURE),
     .help = "interface to capture on (\"any\" for all; required)"},
    {OPTION("service-ip", OPT_SERVICE_IP, "ADDR", C_RUN),
     .deflt_about = "any address",
     .help = "only segments sent to this address are inbound (repeatable); "
             "keeps the service's own outbound connections to PORT out"},
    {OPTION("pace", OPT_PACE, "MODE", C_REPLAY), .deflt = "fast",
     .help = "fast (as fast as the targets accept; connections are not "
             "ordered against each other), ordered (as fast as the targets "
             "answer, but a chunk goes only after every chunk production "
             "had answered before it was captured), realtime (the "
             "capture's own timing), or a factor such as 2x or 0.5x"},
    {OPTION("max-pause", OPT_MAX_PAUSE, "DURATION", C_REPLAY),
     DURATION_AT(max_pause_ns), .deflt = "60s", .min = "1ns",
     .help = "with --pace: wait at most this long between two packets; a "
             "longer pause (a jump in the capture's clock) is cut short "
             "and warned about"},
    {OPTION("stats-json", OPT_STATS_JSON, "FILE", C_RUN),
     STRING_AT(stats_json),
     .help = "write the run's statistics as JSON to FILE at exit (mode "
             "0600; not a symlink, nor the input or output capture under "
             "any name)"},
    {OPTION("gap-timeout", OPT_GAP_TIMEOUT, "DURATION", C_RUN),
     DURATION_AT(gap_timeout_ns), .deflt = "200ms", .min = "1ns",
     .help = "skip a hole the capture missed after this long (capture "
             "time; on live sources also wall time when packets stop)"},
    {OPTION("retransmit-wait", OPT_RTX_WAIT, "DURATION", C_RUN),
     DURATION_AT(rtx_timeout_ns), .deflt = "3s",
     .help = "skip a hole the server has not acknowledged either (a "
             "network loss TCP will retransmit) after this long"},
    {OPTION("idle-timeout", OPT_IDLE_TIMEOUT, "DURATION", C_RUN),
     DURATION_AT(idle_timeout_ns), .deflt = "5m",
     .help = "end a connection with no segments for this long"},
    {OPTION("retry-window", OPT_RETRY_WINDOW, "DURATION", C_RUN),
     DURATION_AT(retry_window_ns), .deflt = "10s",
     .help = "keep redialling a target that refuses a connection for this "
             "long while the connection's bytes wait"},
    {OPTION("connect-timeout", OPT_CONNECT_TIMEOUT, "DURATION", C_RUN),
     DURATION_AT(connect_timeout_ns), .deflt = "3s",
     .help = "give up one connection attempt after this long"},
    {OPTION("write-timeout", OPT_WRITE_TIMEOUT, "DURATION", C_RUN),
     DURATION_AT(write_timeout_ns), .deflt = "30s",
     .help = "drop a local connection whose target accepts no bytes for "
             "this long"},
    {OPTION("linger", OPT_LINGER, "DURATION", C_RUN), DURATION_AT(linger_ns),
     .deflt = "2s",
     .help = "at the end of a connection, wait at most this long for the "
             "target's last answer and its close"},
    {OPTION("drain-timeout", OPT_DRAIN_TIMEOUT, "DURATION", C_RUN),
     DURATION_AT(drain_timeout_ns), .deflt = "10s",
     .help = "on stop, deliver queued bytes for at most this long"},
    {OPTION("turns", OPT_TURNS, "MODE", C_RUN), .deflt = "auto",
     .help = "auto: replay each connection in turns, as its client spoke: "
             "bytes the client sent only after hearing from the server wait "
             "for the target's answer (HTTP/1: the end of its response); "
             "off: send every byte as soon as it is captured"},
    {OPTION("turn-timeout", OPT_TURN_TIMEOUT, "DURATION", C_RUN),
     DURATION_AT(turn_timeout_ns), .deflt = "5s", .min = "1ns",
     .help = "send a held turn anyway when the target has not answered it "
             "within this long (counted)"},
    {OPTION("turn-quiet", OPT_TURN_QUIET, "DURATION", C_RUN),
     DURATION_AT(turn_quiet_ns), .deflt = "50ms", .min = "1ns",
     .help = "a target that answered a turn in part and then sent nothing "
             "for this long has answered it (not HTTP/1, where the "
             "response's end does)"},
    {OPTION("match-method", OPT_MATCH_METHOD, "LIST", C_RUN),
     .help = "HTTP/1: replay only requests with one of these methods "
             "(GET,HEAD; repeatable, the lists add up); other requests "
             "are dropped one by one inside keep-alive connections"},
    {OPTION("match-path", OPT_MATCH_PATH, "REGEX", C_RUN),
     .help = "HTTP/1: replay only requests whose path (no query) matches "
             "this POSIX extended regular expression (repeatable: any "
             "may match)"},
    {OPTION("skip-path", OPT_SKIP_PATH, "REGEX", C_RUN),
     .help = "HTTP/1: drop requests whose path matches this regular "
             "expression (repeatable)"},
    {OPTION("match-header", OPT_MATCH_HEADER, "'NAME: REGEX'", C_RUN),
     .help = "HTTP/1: replay only requests with a field NAME whose value "
             "matches REGEX (repeatable: every one must match)"},
    {OPTION("safe-methods", OPT_SAFE_METHODS, NULL, C_RUN),
     FLAG_AT(safe_methods), .deflt_about = "off",
     .help = "HTTP/1: replay only GET, HEAD and OPTIONS requests, so a "
             "local copy that shares a database with production writes "
             "nothing"},
    {OPTION("sample", OPT_SAMPLE, "PERCENT", C_RUN),
     .deflt_about = "every connection",
     .help = "replay this share of the connections (0 to 100), chosen by "
             "a hash of each connection: a rerun of the same capture picks "
             "the same ones"},
    {OPTION("sample-requests", OPT_SAMPLE_REQUESTS, NULL, C_RUN),
     FLAG_AT(sample_requests), .deflt_about = "off",
     .help = "with --sample: sample HTTP/1 requests rather than "
             "connections"},
    {OPTION("max-rate", OPT_MAX_RATE, "N/s", C_RUN),
     .deflt_about = "no limit",
     .help = "send each target at most N HTTP/1 requests (other "
             "protocols: connections) a second, with a burst of N; the "
             "excess is dropped and counted, never queued"},
    {OPTION("set-header", OPT_SET_HEADER, "'NAME: VALUE'", C_RUN),
     .help = "HTTP/1: set this request field, replacing the first of that "
             "name or adding it (repeatable; not Content-Length or "
             "Transfer-Encoding)"},
    {OPTION("drop-header", OPT_DROP_HEADER, "NAME", C_RUN),
     .help = "HTTP/1: remove this request field (repeatable)"},
    {OPTION("host", OPT_HOST, "HOST", C_RUN), STRING_AT(host),
     .help = "HTTP/1: replace the Host field of every request (for a "
             "local server with virtual hosts)"},
    {OPTION("mark", OPT_MARK, NULL, C_RUN), FLAG_AT(mark),
     .deflt_about = "off",
     .help = "HTTP/1: add X-Tapmirror: 1 to every request, so the local "
             "service and its logs can tell mirrored traffic apart"},
    {OPTION("redact", OPT_REDACT, NULL, C_RUN), FLAG_AT(redact),
     .deflt_about = "off",
     .help = "write the capture with the values of Authorization, Cookie, "
             "Set-Cookie and Proxy-Authorization (and --redact-header) "
             "replaced by as many x: lengths and TCP sequence numbers "
             "hold"},
    {OPTION("redact-replay", OPT_REDACT_REPLAY, NULL, C_RUN),
     FLAG_AT(redact_replay), .deflt_about = "off",
     .help = "HTTP/1: redact the same fields in the requests the targets "
             "receive"},
    {OPTION("redact-header", OPT_REDACT_HEADER, "NAME", C_RUN),
     .help = "one more field for --redact and --redact-replay "
             "(repeatable)"},
    {OPTION("gap-policy", OPT_GAP_POLICY, "POLICY", C_RUN),
     .deflt = "resync",
     .help = "HTTP/1 connections with a hole the capture missed: resync "
             "(abandon the damaged request, close that local connection, "
             "go on with the next whole request on a new one) or splice "
             "(send the bytes after the hole as if contiguous)"},
    {OPTION("compare", OPT_COMPARE, NULL, C_RUN), FLAG_AT(compare),
     .deflt_about = "off",
     .help = "compare what the first --to target answers with what "
             "production answered in the capture: HTTP/1 exchange by "
             "exchange (status, headers, bodies decoded, JSON by path), "
             "other protocols as byte streams; fields that differ between "
             "production's own answers to identical requests are learned "
             "as noise and ignored. Headers ignored by default: Date, Age, "
             "Expires, ETag, Last-Modified, Server, Via, "
             "X-Envoy-Upstream-Service-Time, X-Request-Id, X-Correlation-Id, "
             "X-Amzn-Trace-Id, traceparent, tracestate, b3, X-B3-*, "
             "Connection, Keep-Alive, Content-Length, Transfer-Encoding and "
             "Content-Encoding (bodies are compared decoded), Set-Cookie "
             "values (cookie names are compared), and header order. Not "
             "with the options that keep requests from the target "
             "(--match-*, --skip-path, --safe-methods, --sample, "
             "--max-rate)"},
    {OPTION("fail-on-diff", OPT_FAIL_ON_DIFF, NULL, C_RUN),
     FLAG_AT(fail_on_diff), .deflt_about = "off",
     .help = "exit with status 4 when any exchange differs (noise "
             "excluded); implies --compare"},
    {OPTION("diff-log", OPT_DIFF_LOG, "FILE", C_RUN), STRING_AT(diff_log),
     .help = "write one JSON line per differing or not comparable "
             "exchange to FILE (mode 0600): connection, request line, "
             "statuses, differences, bodies cut to 4 KiB, credentials "
             "redacted; implies --compare"},
    {OPTION("diff-report", OPT_DIFF_REPORT, "FILE", C_RUN),
     STRING_AT(diff_report),
     .help = "write a self-contained HTML page of the comparison to FILE "
             "at exit (mode 0600): the endpoint table and examples, "
             "production and local side by side; implies --compare"},
    {OPTION("ignore-header", OPT_IGNORE_HEADER, "NAME", C_RUN),
     .help = "with --compare, also ignore this response header "
             "(repeatable)"},
    {OPTION("ignore-json", OPT_IGNORE_JSON, "PATH", C_RUN),
     .help = "with --compare, ignore this JSON path and what is under it "
             "(repeatable): $, then .name, [\"name\"], [N] and the wildcards "
             ".* and [*], as in $.items[*].id or $.*.updated_at"},
    {OPTION("compare-body-limit", OPT_COMPARE_BODY_LIMIT, "SIZE", C_RUN),
     SIZE_AT(compare_body_limit), .deflt = "1MiB", .min = "1KiB",
     .max = "1GiB",
     .help = "decoded body bytes kept per answer for --compare; beyond "
             "it bodies are compared by size and hash"},
    {OPTION("no-redact", OPT_NO_REDACT, NULL, C_RUN), FLAG_AT(no_redact),
     .deflt_about = "off",
     .help = "with --diff-log and --diff-report, show the values of "
             "Authorization, Proxy-Authorization, Cookie and Set-Cookie "
             "instead of (redacted)"},
    {OPTION("max-buffer", OPT_MAX_BUFFER, "SIZE", C_RUN),
     SIZE_AT(max_buffer), .deflt = "256MiB",
     .help = "bytes held for all connections (reassembly and replay "
             "queues, and up to half of it for each connection's state)"},
    {OPTION("flow-buffer", OPT_FLOW_BUFFER, "SIZE", C_RUN),
     SIZE_AT(flow_buffer), .deflt = "16MiB", .min = "4KiB",
     .help = "bytes held for one connection"},
    {OPTION("max-flows", OPT_MAX_FLOWS, "N", C_RUN), COUNT_AT(max_flows),
     .deflt = "1000000", .min = "1", .max = "100000000",
     .help = "connections tracked at once; one that never carried a byte "
             "is ended first, then the longest idle"},
    {OPTION("max-connections", OPT_MAX_CONNECTIONS, "N", C_RUN),
     COUNT_AT(max_connections), .max = "10000000",
     .deflt_about = "the descriptor limit less 64",
     .help = "local connections open at once; more wait for a free slot"},
    {OPTION("snaplen", OPT_SNAPLEN, "BYTES", C_CAPTURE), COUNT_AT(snaplen),
     .deflt = "262144", .min = "64", .max = "262144",
     .help = "bytes captured per packet"},
    {OPTION("kernel-buffer", OPT_KERNEL_BUFFER, "SIZE", C_CAPTURE),
     SIZE_AT(kernel_buffer), .deflt = "128MiB",
     .help = "size of the kernel capture ring, mapped into the process "
             "(a second one with a --batch-above rate): the default "
             "takes about 132 MiB; blocks pack packets, per-packet "
             "delivery gives each a frame sized for the largest one "
             "(128 KiB on lo, twice SIZE of memory); a bigger ring "
             "absorbs longer stalls"},
    /* COUNT_AT, and a case in apply_option() for "never". */
    {OPTION("batch-above", OPT_BATCH_ABOVE, "PPS", C_CAPTURE),
     COUNT_AT(batch_above), .deflt = "0", .max = "100000000",
     .help = "0: deliver in 1 ms blocks always (up to 1 ms of added "
             "latency; a ring deep enough for a burst from idle); PPS: "
             "deliver each packet at once below this rate and switch to "
             "blocks above it, back below a fifth of it, which adds a "
             "second ring and drops packets when a burst fills the "
             "per-packet ring before the switch; 'never': always per "
             "packet"},
    {OPTION("promisc", OPT_PROMISC, NULL, C_CAPTURE), FLAG_AT(promisc),
     .deflt_about = "off",
     .help = "put the interface in promiscuous mode"},
    {OPTION("namespace", 'n', "NAMESPACE", C_MIRROR), STRING_AT(namespace_),
     .deflt_about = "the kubeconfig context's",
     .help = "namespace of the workload"},
    {OPTION("container", 'c', "NAME", C_MIRROR), STRING_AT(container),
     .deflt_about = "the only one, else the default-container annotation",
     .help = "container the tap targets (must exist)"},
    {OPTION("context", OPT_CONTEXT, "CTX", C_MIRROR), STRING_AT(context),
     .deflt_about = "the current context", .help = "kubeconfig context"},
    {OPTION("kubeconfig", OPT_KUBECONFIG, "FILE", C_MIRROR),
     STRING_AT(kubeconfig), .deflt_about = "$KUBECONFIG or ~/.kube/config",
     .help = "kubeconfig file"},
    {OPTION("kubectl", OPT_KUBECTL, "PATH", C_MIRROR), STRING_AT(kubectl),
     .deflt_about = "kubectl on PATH", .help = "kubectl binary"},
    {OPTION("tap-image", OPT_TAP_IMAGE, "IMAGE", C_MIRROR),
     STRING_AT(tap_image), .deflt = "docker.io/nicolaka/netshoot:v0.16",
     .help = "image of the tap container (needs tcpdump)"},
    {OPTION("tap-timeout", OPT_TAP_TIMEOUT, "DURATION", C_MIRROR),
     DURATION_AT(tap_timeout_ns), .deflt = "60s",
     .help = "wait this long for the tap container to run"},
    {OPTION("all-pods", OPT_ALL_PODS, NULL, C_MIRROR), FLAG_AT(all_pods),
     .deflt_about = "off",
     .help = "tap every pod of the deployment and merge their traffic"},
    {OPTION("max-pods", OPT_MAX_PODS, "N", C_MIRROR), COUNT_AT(max_pods),
     .deflt = "16", .min = "1", .max = "64",
     .help = "with --all-pods, tap at most N pods at once (1 to 64), Ready "
             "ones first; a warning says how many are left out"},
    {OPTION("mesh", OPT_MESH, "auto|off", C_MIRROR), .deflt = "auto",
     .help = "auto: in a pod behind an Istio or Linkerd sidecar, mirror "
             "the sidecar's plaintext connections to the port, not the "
             "mesh's TLS ones (Istio ambient: the plaintext ztunnel "
             "delivers); off: the connections from other hosts, as "
             "without a mesh"},
    {OPTION("tap-profile", OPT_TAP_PROFILE, "PROFILE", C_MIRROR),
     .deflt = "auto",
     .help = "the tap's security context: netraw (NET_RAW only, every "
             "other capability dropped), baseline (no capability added or "
             "dropped, as Pod Security's baseline level admits; captures "
             "where the runtime grants NET_RAW by default, as containerd "
             "does), or auto: netraw, then baseline if Pod Security "
             "refuses it"},
    {OPTION("check", OPT_CHECK, NULL, C_MIRROR), FLAG_AT(check),
     .deflt_about = "off",
     .help = "check what a run needs (versions, pods, port, mesh, RBAC, "
             "Pod Security, nodes, an existing tap) and print a checklist, "
             "injecting and running nothing; exit 0 only if a run would "
             "start"},
    {OPTION("warn-silence", OPT_WARN_SILENCE, "DURATION", C_MIRROR),
     DURATION_AT(warn_silence_ns), .deflt = "30s",
     .help = "warn once, with the likely causes, when the tap has streamed "
             "this long without one segment to PORT (0: never)"},
    {OPTION("json", OPT_JSON, NULL, C_SUMMARY), FLAG_AT(json),
     .help = "print the summary as JSON"},
    {OPTION("flows", OPT_FLOWS, "N", C_SUMMARY), COUNT_AT(list_flows),
     .deflt = "20", .max = "100000000",
     .help = "list at most N connections, largest first (0: all)"},
    {OPTION("quiet", 'q', NULL, C_ALL),
     .help = "only errors and warnings on standard error: no live status, "
             "no run summary"},
    {OPTION("verbose", 'v', NULL, C_ALL),
     .help = "also report each connection opening, ending and skipping a "
             "gap (twice: more)"},
    {OPTION("help", 'h', NULL, C_ALL), .help = "show this help"},
    {OPTION("version", 'V', NULL, C_ALL), .help = "show the version"},
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
     "mirror [KIND/]NAME -p PORT|NAME [--to HOST:PORT ...] [-o FILE|-] "
     "[options]",
     "Taps a Kubernetes workload through kubectl: deployment/ (the "
     "default), statefulset/, daemonset/, replicaset/ or service/ (the pods "
     "of its selector, followed through rollouts) or pod/. An ephemeral "
     "container "
     "with only NET_RAW runs tcpdump in the pod, its capture streams back "
     "over kubectl exec, and each client connection is replayed live to "
     "local targets. Ctrl-C stops it cleanly with exit status 0 (3 if some "
     "bytes could not be delivered)."},
};

/* How the user invoked us: installed as kubectl-tapmirror, kubectl runs
 * us as the plugin "kubectl tapmirror". */
static const char *program_name(const char *argv0)
{
    const char *base = argv0 != NULL ? strrchr(argv0, '/') : NULL;
    base = base != NULL ? base + 1 : argv0;
    if (base != NULL && strcmp(base, "kubectl-tapmirror") == 0) {
        return "kubectl tapmirror";
    }
    return "tapmirror";
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
        char help[1024];
        const char *deflt =
            opt->deflt_about != NULL ? opt->deflt_about : opt->deflt;
        if (deflt != NULL) {
            snprintf(help, sizeof(help), "%s (default: %s)", opt->help,
                     deflt);
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

void cli_print_help(FILE *out, const char *program, enum tm_command cmd)
{
    if (cmd == CMD_NONE) {
        fprintf(out,
                "Usage: %s COMMAND [options]\n"
                "\n"
                "tapmirror taps the inbound TCP traffic of one service port, "
                "writes it as a\npcap capture and replays every client "
                "connection live to a local process:\none local connection "
                "per mirrored connection, bytes in TCP order, responses\n"
                "read and thrown away (with --compare, compared with "
                "production's answers).\nNothing ever flows back.\n"
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
                "  tapmirror replay prod.pcap -p 8080 --to :8080 --compare "
                "--fail-on-diff\n"
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
            "Exit status: 0 success (including a stop by Ctrl-C, SIGTERM or "
            "SIGHUP, and an\noutput pipe closed by its reader); 1 runtime "
            "error; 2 usage error; 3 the run\nfinished but some connection "
            "bytes could not be delivered to a target;%s\n130 a second "
            "Ctrl-C.\n",
            cmd == CMD_SUMMARY ? ""
                               : " 4 an\nexchange differed, with "
                                 "--fail-on-diff (it decides before 3);");
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

/* Reads a number of a numeric kind, at most `max`. */
static int parse_number(enum opt_kind kind, const char *s, uint64_t max,
                        uint64_t *v, const char **why)
{
    int rc;
    switch (kind) {
    case KIND_COUNT:
        return parse_count(s, max, v, why);
    case KIND_DURATION:
        rc = parse_duration(s, v, why);
        break;
    case KIND_SIZE:
        rc = parse_size(s, v, why);
        break;
    default:
        *why = "not a number";
        return -1;
    }
    if (rc == 0 && *v > max) {
        *why = "too large";
        return -1;
    }
    return rc;
}

/* A row's bound as a number; `none` when it has none. Bounds are written
 * like values (cli_check_table() makes sure they parse). */
static uint64_t option_bound(const struct cli_option *opt, const char *text,
                             uint64_t none)
{
    uint64_t v;
    const char *why;
    if (text == NULL || parse_number(opt->kind, text, UINT64_MAX, &v, &why)) {
        return none;
    }
    return v;
}

/* Stores `arg` in the row's field as its kind says. */
static enum cli_result set_value(struct tm_options *o,
                                 const struct cli_option *opt,
                                 const char *arg, char *err, size_t errlen)
{
    char *field = (char *)o + opt->field;
    switch (opt->kind) {
    case KIND_DURATION:
    case KIND_SIZE:
    case KIND_COUNT: {
        uint64_t v, max = option_bound(opt, opt->max, UINT64_MAX);
        const char *why;
        if (parse_number(opt->kind, arg, max, &v, &why) < 0) {
            return usage_error(err, errlen, "invalid --%s '%s': %s",
                               opt->name, arg, why);
        }
        memcpy(field, &v, sizeof(v));
        return CLI_RUN;
    }
    case KIND_FLAG: {
        bool on = true;
        memcpy(field, &on, sizeof(on));
        return CLI_RUN;
    }
    case KIND_STRING:
        memcpy(field, &arg, sizeof(arg));
        return CLI_RUN;
    case KIND_OWN:
    default:
        return usage_error(err, errlen, "unhandled option --%s", opt->name);
    }
}

/* The .min of every row, once all options are read. */
static enum cli_result check_bounds(const struct tm_options *o, char *err,
                                    size_t errlen)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        const struct cli_option *opt = &options[i];
        uint64_t v, min = option_bound(opt, opt->min, 0);
        if (opt->kind == KIND_OWN || min == 0) {
            continue;
        }
        memcpy(&v, (const char *)o + opt->field, sizeof(v));
        if (v >= min) {
            continue;
        }
        if (min == 1 && opt->kind == KIND_DURATION) {
            /* "1ns" reads as a bound nobody meant: any positive time. */
            return usage_error(err, errlen, "--%s must be above 0",
                               opt->name);
        }
        return usage_error(err, errlen, "--%s must be at least %s", opt->name,
                           opt->min);
    }
    return CLI_RUN;
}

static enum cli_result check_mirror(struct tm_options *o, char *err,
                                    size_t errlen)
{
    const char *name;
    if (kube_target_kind(o->target, &name) == NULL) {
        return usage_error(err, errlen,
                           "invalid target '%s': use NAME, deployment/NAME, "
                           "statefulset/NAME, daemonset/NAME, "
                           "replicaset/NAME, service/NAME or pod/NAME",
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
/* The first option given that keeps some captured requests (or
 * connections) from the targets, or NULL. */
static const char *request_dropping_option(const struct tm_options *o)
{
    if (o->n_match_methods > 0) {
        return "--match-method";
    }
    if (o->n_match_paths > 0) {
        return "--match-path";
    }
    if (o->n_skip_paths > 0) {
        return "--skip-path";
    }
    if (o->n_match_headers > 0) {
        return "--match-header";
    }
    if (o->safe_methods) {
        return "--safe-methods";
    }
    if (o->sample) {
        return "--sample";
    }
    if (o->max_rate > 0) {
        return "--max-rate";
    }
    return NULL;
}

static enum cli_result check_command(struct tm_options *o, int npos,
                                     char **pos, char *err, size_t errlen)
{
    const char *name = cli_command_name(o->cmd);
    int want = o->cmd == CMD_CAPTURE ? 0 : 1;
    if (npos < want) {
        return usage_error(err, errlen, "%s needs %s", name,
                           o->cmd == CMD_MIRROR ? "a target: NAME (a deployment), "
                                                 "KIND/NAME or pod/NAME"
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
    if (o->cmd != CMD_SUMMARY && o->port == 0 && o->port_name == NULL) {
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
    if (o->sample_requests && !o->sample) {
        return usage_error(err, errlen,
                           "--sample-requests needs --sample PERCENT");
    }
    if (o->redact && o->output == NULL) {
        return usage_error(err, errlen,
                           "--redact applies to the capture written with "
                           "-o/--output; for the targets use "
                           "--redact-replay");
    }
    if (o->fail_on_diff || o->diff_log != NULL || o->diff_report != NULL) {
        o->compare = true;
    }
    if (o->compare && o->n_targets == 0) {
        return usage_error(err, errlen,
                           "--compare needs a --to target to compare");
    }
    const char *dropper = request_dropping_option(o);
    if (o->compare && dropper != NULL) {
        return usage_error(err, errlen,
                           "--compare pairs every captured request with the "
                           "local answer to it, and %s drops requests: "
                           "compare in a run without it", dropper);
    }
    const char *outputs[] = {o->diff_log, o->diff_report, o->stats_json,
                             o->output, o->input};
    for (size_t i = 0; i < 2; i++) {
        if (outputs[i] != NULL && outputs[i][0] == '\0') {
            return usage_error(err, errlen, "--%s needs a file name",
                               i == 0 ? "diff-log" : "diff-report");
        }
        for (size_t j = i + 1; j < TM_ARRAY_LEN(outputs) && outputs[i]; j++) {
            if (outputs[j] != NULL && strcmp(outputs[i], outputs[j]) == 0) {
                return usage_error(err, errlen,
                                   "--%s must name a file of its own",
                                   i == 0 ? "diff-log" : "diff-report");
            }
        }
    }
    if (o->flow_buffer > o->max_buffer) {
        return usage_error(err, errlen,
                           "--flow-buffer must not exceed --max-buffer");
    }
    if (o->pace_ordered && !o->turns) {
        return usage_error(err, errlen,
                           "--pace ordered needs --turns auto: the order "
                           "between connections is kept by waiting for "
                           "the target's answers");
    }
    if (check_bounds(o, err, errlen) != CLI_RUN) {
        return CLI_USAGE;
    }
    if (o->cmd == CMD_MIRROR) {
        return check_mirror(o, err, errlen);
    }
    return CLI_RUN;
}

/* Checks one HTTP option's value now, through httpflow's own compiler,
 * so that a bad pattern is a usage error naming it. */
static enum cli_result check_http_value(const struct httpflow_options *one,
                                        char *err, size_t errlen)
{
    struct httpflow_config *cfg = NULL;
    char why[256];
    if (httpflow_config_new(one, &cfg, why, sizeof(why)) < 0) {
        return usage_error(err, errlen, "%s", why);
    }
    httpflow_config_free(cfg);
    return CLI_RUN;
}

/* Appends a repeatable HTTP option's value after checking it alone. */
static enum cli_result add_http_rule(const char **list, size_t *n,
                                     const struct cli_option *opt,
                                     const char *arg, char *err,
                                     size_t errlen)
{
    if (*n == TM_MAX_HTTP_RULES) {
        return usage_error(err, errlen, "at most %d --%s",
                           TM_MAX_HTTP_RULES, opt->name);
    }
    struct httpflow_options one;
    memset(&one, 0, sizeof(one));
    const char *const *single = &arg;
    switch (opt->val) {
    case OPT_MATCH_METHOD:
        one.match_methods = single;
        one.n_match_methods = 1;
        break;
    case OPT_MATCH_PATH:
        one.match_paths = single;
        one.n_match_paths = 1;
        break;
    case OPT_SKIP_PATH:
        one.skip_paths = single;
        one.n_skip_paths = 1;
        break;
    case OPT_MATCH_HEADER:
        one.match_headers = single;
        one.n_match_headers = 1;
        break;
    case OPT_SET_HEADER:
        one.set_headers = single;
        one.n_set_headers = 1;
        break;
    case OPT_DROP_HEADER:
        one.drop_headers = single;
        one.n_drop_headers = 1;
        break;
    case OPT_REDACT_HEADER:
    default:
        one.redact_headers = single;
        one.n_redact_headers = 1;
        break;
    }
    if (check_http_value(&one, err, errlen) != CLI_RUN) {
        return CLI_USAGE;
    }
    list[(*n)++] = arg;
    return CLI_RUN;
}

/* "25", "25%" or "12.5": a share from 0 to 100. */
static int parse_percent(const char *s, double *v)
{
    char *end;
    if (*s < '0' || *s > '9') {
        return -1;
    }
    double d = strtod(s, &end);
    if (*end == '%') {
        end++;
    }
    if (end == s || *end != '\0' || !(d >= 0.0 && d <= 100.0)) {
        return -1;
    }
    *v = d;
    return 0;
}

/* "100/s" or "100": a positive count a second. */
static int parse_rate(const char *s, uint64_t *v, const char **why)
{
    char num[32];
    size_t len = strlen(s);
    if (len >= 2 && strcmp(s + len - 2, "/s") == 0) {
        len -= 2;
    }
    if (len == 0 || len >= sizeof(num)) {
        *why = "expected N/s";
        return -1;
    }
    memcpy(num, s, len);
    num[len] = '\0';
    if (parse_count(num, 100000000, v, why) < 0) {
        return -1;
    }
    if (*v == 0) {
        *why = "must be above 0";
        return -1;
    }
    return 0;
}

void cli_httpflow_options(const struct tm_options *o,
                          struct httpflow_options *out)
{
    memset(out, 0, sizeof(*out));
    out->match_methods = o->match_methods;
    out->n_match_methods = o->n_match_methods;
    out->match_paths = o->match_paths;
    out->n_match_paths = o->n_match_paths;
    out->skip_paths = o->skip_paths;
    out->n_skip_paths = o->n_skip_paths;
    out->match_headers = o->match_headers;
    out->n_match_headers = o->n_match_headers;
    out->safe_methods = o->safe_methods;
    out->sample = o->sample;
    out->sample_percent = o->sample_percent;
    out->sample_requests = o->sample_requests;
    out->set_headers = o->set_headers;
    out->n_set_headers = o->n_set_headers;
    out->drop_headers = o->drop_headers;
    out->n_drop_headers = o->n_drop_headers;
    out->host = o->host;
    out->mark = o->mark;
    out->redact_replay = o->redact_replay;
    out->redact_headers = o->redact_headers;
    out->n_redact_headers = o->n_redact_headers;
    out->gap_policy = o->gap_splice ? HTTPFLOW_GAP_SPLICE
                                    : HTTPFLOW_GAP_RESYNC;
}

/* Reads one option's value into `o`: the user's, or a default from the
 * table. Options with rules of their own have a case here; the rest are
 * read as their row's kind says. */
static enum cli_result apply_option(struct tm_options *o,
                                    const struct cli_option *opt,
                                    const char *arg, char *err, size_t errlen)
{
    const char *why;
    switch (opt->val) {
    case 'p':
        /* mirror resolves a name in the pods; elsewhere there is nothing
         * to resolve it against. */
        if (o->cmd == CMD_MIRROR && kube_port_name_ok(arg)) {
            o->port_name = arg;
            o->port = 0;
            return CLI_RUN;
        }
        if (parse_port(arg, &o->port, &why) < 0) {
            return usage_error(err, errlen, "invalid --port '%s': %s%s", arg,
                               why,
                               o->cmd == CMD_MIRROR
                                   ? ", or a port name (at most 15 lower "
                                     "case letters, digits and '-')"
                                   : "");
        }
        o->port_name = NULL;
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
    case OPT_MESH:
        if (strcmp(arg, "auto") != 0 && strcmp(arg, "off") != 0) {
            return usage_error(err, errlen,
                               "invalid --mesh '%s': auto or off", arg);
        }
        o->mesh_off = strcmp(arg, "off") == 0;
        return CLI_RUN;
    case OPT_TURNS:
        if (strcmp(arg, "auto") == 0 || strcmp(arg, "off") == 0) {
            o->turns = strcmp(arg, "auto") == 0;
            return CLI_RUN;
        }
        return usage_error(err, errlen,
                           "invalid --turns '%s': use auto or off", arg);
    case OPT_PACE:
        o->pace_ordered = strcmp(arg, "ordered") == 0;
        if (o->pace_ordered) {
            o->pace = 0; /* the source reads as fast as it may */
            return CLI_RUN;
        }
        if (parse_pace(arg, &o->pace, &why) < 0) {
            return usage_error(err, errlen, "invalid --pace '%s': %s", arg,
                               why);
        }
        return CLI_RUN;
    case OPT_TAP_PROFILE:
        if (strcmp(arg, "auto") == 0) {
            o->tap_profile = TM_TAP_AUTO;
        } else if (strcmp(arg, "netraw") == 0) {
            o->tap_profile = TM_TAP_NETRAW;
        } else if (strcmp(arg, "baseline") == 0) {
            o->tap_profile = TM_TAP_BASELINE;
        } else {
            return usage_error(err, errlen,
                               "invalid --tap-profile '%s': use auto, "
                               "netraw or baseline",
                               arg);
        }
        return CLI_RUN;
    case OPT_BATCH_ABOVE:
        if (strcmp(arg, "never") == 0) {
            o->batch_above = TM_BATCH_NEVER;
            return CLI_RUN;
        }
        if (set_value(o, opt, arg, err, errlen) != CLI_RUN) {
            size_t used = strlen(err);
            snprintf(err + used, errlen - used, ", or never");
            return CLI_USAGE;
        }
        return CLI_RUN;
    case OPT_MATCH_METHOD:
        return add_http_rule(o->match_methods, &o->n_match_methods, opt,
                             arg, err, errlen);
    case OPT_MATCH_PATH:
        return add_http_rule(o->match_paths, &o->n_match_paths, opt, arg,
                             err, errlen);
    case OPT_SKIP_PATH:
        return add_http_rule(o->skip_paths, &o->n_skip_paths, opt, arg, err,
                             errlen);
    case OPT_MATCH_HEADER:
        return add_http_rule(o->match_headers, &o->n_match_headers, opt,
                             arg, err, errlen);
    case OPT_SET_HEADER:
        return add_http_rule(o->set_headers, &o->n_set_headers, opt, arg,
                             err, errlen);
    case OPT_DROP_HEADER:
        return add_http_rule(o->drop_headers, &o->n_drop_headers, opt, arg,
                             err, errlen);
    case OPT_REDACT_HEADER:
        return add_http_rule(o->redact_headers, &o->n_redact_headers, opt,
                             arg, err, errlen);
    case OPT_HOST: {
        struct httpflow_options one;
        memset(&one, 0, sizeof(one));
        one.host = arg;
        if (arg[0] == '\0' || check_http_value(&one, err, errlen) != CLI_RUN) {
            return usage_error(err, errlen,
                               "invalid --host '%s': a host name, no line "
                               "breaks",
                               arg);
        }
        o->host = arg;
        return CLI_RUN;
    }
    case OPT_SAMPLE:
        if (parse_percent(arg, &o->sample_percent) < 0) {
            return usage_error(err, errlen,
                               "invalid --sample '%s': a percentage from 0 "
                               "to 100",
                               arg);
        }
        o->sample = true;
        return CLI_RUN;
    case OPT_MAX_RATE:
        if (parse_rate(arg, &o->max_rate, &why) < 0) {
            return usage_error(err, errlen, "invalid --max-rate '%s': %s",
                               arg, why);
        }
        return CLI_RUN;
    case OPT_GAP_POLICY:
        if (strcmp(arg, "resync") == 0 || strcmp(arg, "splice") == 0) {
            o->gap_splice = strcmp(arg, "splice") == 0;
            return CLI_RUN;
        }
        return usage_error(err, errlen,
                           "invalid --gap-policy '%s': use resync or splice",
                           arg);
    case OPT_IGNORE_HEADER:
        if (o->n_ignore_headers == TM_MAX_IGNORES) {
            return usage_error(err, errlen, "at most %d --ignore-header",
                               TM_MAX_IGNORES);
        }
        if (arg[0] == '\0' || strpbrk(arg, " \t\r\n:") != NULL) {
            return usage_error(err, errlen,
                               "invalid --ignore-header '%s': a header name",
                               arg);
        }
        o->ignore_headers[o->n_ignore_headers++] = arg;
        return CLI_RUN;
    case OPT_IGNORE_JSON: {
        if (o->n_ignore_json == TM_MAX_IGNORES) {
            return usage_error(err, errlen, "at most %d --ignore-json",
                               TM_MAX_IGNORES);
        }
        struct jsondiff_ignore *ig = jsondiff_ignore_new();
        char bad[256];
        int rc = jsondiff_ignore_add(ig, arg, bad, sizeof(bad));
        jsondiff_ignore_free(ig);
        if (rc < 0) {
            return usage_error(err, errlen, "invalid --ignore-json '%s': %s",
                               arg, bad);
        }
        o->ignore_json[o->n_ignore_json++] = arg;
        return CLI_RUN;
    }
    case 'q':
        o->verbosity = -1;
        return CLI_RUN;
    case 'v':
        o->verbosity = o->verbosity < 0 ? 1 : o->verbosity + 1;
        return CLI_RUN;
    default:
        return set_value(o, opt, arg, err, errlen);
    }
}

/* Sets every default through apply_option(), as if the user had given
 * it; reports the first that does not parse (a bug in the table). */
static enum cli_result set_defaults(struct tm_options *o, char *err,
                                    size_t errlen)
{
    enum cli_result result = CLI_RUN;
    memset(o, 0, sizeof(*o));
    o->program = "tapmirror";
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        const struct cli_option *opt = &options[i];
        char why[256];
        if (opt->deflt != NULL &&
            apply_option(o, opt, opt->deflt, why, sizeof(why)) != CLI_RUN &&
            result == CLI_RUN) {
            result = usage_error(err, errlen, "the default of --%s: %s",
                                 opt->name, why);
        }
    }
    return result;
}

void cli_defaults(struct tm_options *o)
{
    char ignored[256]; /* cli_check_table() reports it */
    (void)set_defaults(o, ignored, sizeof(ignored));
}

/* One row's own consistency; NULL when it is sound. */
static const char *row_error(const struct cli_option *opt)
{
    bool numeric = opt->kind == KIND_DURATION || opt->kind == KIND_SIZE ||
                   opt->kind == KIND_COUNT;
    if (opt->kind == KIND_FLAG && opt->arg != NULL) {
        return "a flag takes no value";
    }
    if ((numeric || opt->kind == KIND_STRING) && opt->arg == NULL) {
        return "it stores a value but takes none";
    }
    if (opt->kind == KIND_FLAG && opt->deflt != NULL) {
        return "a flag's default is off: use .deflt_about";
    }
    if (opt->deflt != NULL && opt->deflt_about != NULL) {
        return "both .deflt and .deflt_about";
    }
    if (!numeric && (opt->min != NULL || opt->max != NULL)) {
        return "bounds on an option that is not a number";
    }
    const char *bounds[] = {opt->min, opt->max};
    for (size_t b = 0; b < TM_ARRAY_LEN(bounds); b++) {
        uint64_t v;
        const char *why;
        if (bounds[b] != NULL &&
            parse_number(opt->kind, bounds[b], UINT64_MAX, &v, &why) < 0) {
            return "a bound that does not parse";
        }
    }
    if (option_bound(opt, opt->min, 0) >
        option_bound(opt, opt->max, UINT64_MAX)) {
        return ".min above .max";
    }
    return NULL;
}

int cli_check_table(char *err, size_t errlen)
{
    err[0] = '\0';
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        const struct cli_option *opt = &options[i];
        const char *why = row_error(opt);
        for (size_t j = 0; j < i && why == NULL; j++) {
            const struct cli_option *other = &options[j];
            bool same_name = strcmp(other->name, opt->name) == 0;
            if (same_name != (other->val == opt->val)) {
                why = same_name ? "described twice with different letters"
                                : "its letter or OPT_* value is taken";
            } else if (same_name &&
                       (other->kind != opt->kind ||
                        other->field != opt->field ||
                        (other->arg == NULL) != (opt->arg == NULL) ||
                        other->deflt != opt->deflt)) {
                why = "described twice with different values";
            }
        }
        if (why != NULL) {
            snprintf(err, errlen, "--%s: %s", opt->name, why);
            return -1;
        }
    }
    /* Every default parses and is within its bounds. */
    struct tm_options o;
    if (set_defaults(&o, err, errlen) != CLI_RUN ||
        check_bounds(&o, err, errlen) != CLI_RUN) {
        return -1;
    }
    return 0;
}

enum cli_result cli_parse(int argc, char **argv, struct tm_options *o,
                          FILE *out, char *err, size_t errlen)
{
    cli_defaults(o);
    o->program = program_name(argc > 0 ? argv[0] : NULL);
    err[0] = '\0';
    if (argc < 2) {
        return usage_error(err, errlen, "missing command");
    }
    const char *cmdname = argv[1];
    if (strcmp(cmdname, "--help") == 0 || strcmp(cmdname, "-h") == 0 ||
        strcmp(cmdname, "help") == 0) {
        cli_print_help(out, o->program, CMD_NONE);
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
            cli_print_help(out, o->program, o->cmd);
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
        enum cli_result r = apply_option(o, opt, optarg, err, errlen);
        if (r != CLI_RUN) {
            return r;
        }
    }
    return check_command(o, sub_argc - optind, sub_argv + optind, err,
                         errlen);
}
