/*
 * Running the user's kubectl on the event loop. Every call is an argv
 * array (never a shell) with the user's environment, so kubeconfig,
 * contexts and auth plugins work unchanged. Output is captured with
 * caps; a call that outlives its timeout is killed.
 */
#ifndef TAPMIRROR_KUBECTL_H
#define TAPMIRROR_KUBECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define KUBECTL_MAX_ARGS 48

/* argv[1] of this program when it supervises a kubectl it started (see
 * kubectl_child_main). */
#define KUBECTL_CHILD_ARG "__kubectl-child"

struct kubectl;

struct kubectl_result {
    int exit_code;    /* -1 if it could not run or was killed */
    int term_signal;  /* the signal that ended it, or 0 */
    bool spawn_failed;
    const char *out;  /* standard output (NUL-terminated), borrowed */
    size_t out_len;
    bool out_truncated; /* it printed more than the cap: `out` is cut */
    const char *err;  /* standard error, at most 64 KiB, borrowed; raw:
                         shown only through kube_classify() */
    size_t err_len;
};

typedef void kubectl_cb(void *ctx, const struct kubectl_result *res);

/* Finds the kubectl binary: `explicit` if given, else kubectl on PATH.
 * Returns 0 with the path in `out`, or -1 with `err` set. */
int kubectl_find(const char *explicit_path, char *out, size_t len,
                 char *err, size_t errlen);

/* Borrows nothing: copies every string. */
struct kubectl *kubectl_new(uv_loop_t *loop, const char *path,
                            const char *kubeconfig, const char *context,
                            const char *ns);
/* Frees once no call is running (kubectl_idle()). */
void kubectl_free(struct kubectl *k);
bool kubectl_idle(const struct kubectl *k);

/*
 * Runs `kubectl PREFIX ARGS...` (ARGS NULL-terminated), feeding
 * `stdin_data` if not NULL. `cb` runs once it has exited and its output
 * is read, or it was killed after `timeout_ms`. At most `out_cap` bytes
 * of standard output are kept; the rest is read and dropped.
 */
void kubectl_call(struct kubectl *k, const char *const *args,
                  const char *stdin_data, uint64_t timeout_ms,
                  size_t out_cap, kubectl_cb *cb, void *ctx);

/* Terminates every running call (their callbacks still run). */
void kubectl_cancel_calls(struct kubectl *k);

/* Kills every kubectl now with SIGKILL, calls and execs alike (their
 * callbacks still run): a second Ctrl-C. */
void kubectl_kill_all(struct kubectl *k);

/*
 * main() of `tapmirror __kubectl-child KUBECTL ARGS...`, the supervisor
 * every kubectl is started under: it runs KUBECTL with ARGS as its child,
 * SIGKILLs it (and its process group) as soon as descriptor 3, a pipe
 * whose write end only tapmirror holds, reports tapmirror gone, and
 * otherwise ends as kubectl ended (same exit code or signal). Returns
 * 127 if kubectl cannot run, 2 if not started by tapmirror.
 */
int kubectl_child_main(int argc, char **argv);

/* A long-running `kubectl exec`. */
struct kubectl_exec;

struct kubectl_exec_events {
    /* One line of its standard error, made safe to show (textsafe.h). */
    void (*stderr_line)(void *ctx, const char *line);
    /* The process has exited and its standard error is read. */
    void (*exited)(void *ctx, int exit_code, int term_signal);
    void *ctx;
};

/*
 * Starts `kubectl PREFIX ARGS...` with a pipe on its standard input that
 * stays open, and hands its standard output, an initialised and open
 * pipe, to the caller through *out_pipe (the caller owns and closes it).
 * Returns NULL with `err` set if it cannot start.
 */
struct kubectl_exec *kubectl_exec_start(struct kubectl *k,
                                        const char *const *args,
                                        const struct kubectl_exec_events *ev,
                                        uv_pipe_t **out_pipe, char *err,
                                        size_t errlen);

/* Stops it the polite way: closes its standard input, then after 2 s
 * sends SIGTERM, then after 5 s more SIGKILL. */
void kubectl_exec_stop(struct kubectl_exec *x);

/* Kills it now (SIGTERM, then SIGKILL after 5 s). */
void kubectl_exec_kill(struct kubectl_exec *x);

/* The last lines it wrote to standard error, as written: classify them
 * (kube_classify(), kube_error_line()), do not print them. */
const char *kubectl_exec_stderr(const struct kubectl_exec *x);
bool kubectl_exec_running(const struct kubectl_exec *x);

/* Releases it; it must have exited. Handles close asynchronously. */
void kubectl_exec_free(struct kubectl_exec *x);

#endif
