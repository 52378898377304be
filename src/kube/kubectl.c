#include "kubectl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/list.h"
#include "core/textsafe.h"
#include "core/util.h"

#define ERR_CAP  (64u * 1024)
#define TAIL_CAP 8192u
#define STOP_GRACE_MS 2000
#define KILL_GRACE_MS 5000
/* The slots before kubectl's own argv when it is started through
 * kubectl_child_main(): this program and KUBECTL_CHILD_ARG. */
#define CHILD_PREFIX 2
/* The descriptor kubectl_child_main() watches: the read end of a pipe
 * whose write end only tapmirror holds. */
#define WATCH_FD 3

struct kubectl {
    uv_loop_t *loop;
    char *path;
    char *prefix[4];
    size_t n_prefix;
    struct tm_list calls;
    struct tm_list execs;
    uv_file watch[2]; /* see WATCH_FD; -1 if it could not be made */
};

struct buf {
    char *data;
    size_t len, cap, limit;
    bool truncated; /* more arrived than the limit */
};

static void buf_add(struct buf *b, const char *p, size_t n)
{
    if (b->len + n > b->limit) {
        n = b->limit > b->len ? b->limit - b->len : 0;
        b->truncated = true;
    }
    if (n == 0) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->data = tm_xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

struct call {
    struct kubectl *k;
    struct tm_list link;
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_timer_t timer;
    uv_write_t wreq;
    char *input;
    struct buf outb, errb;
    int open; /* handles not yet closed */
    int pending; /* exit + two EOFs still to come */
    int exit_code, term_signal;
    bool spawn_failed, has_input, killed, exited;
    kubectl_cb *cb;
    void *ctx;
};

struct kubectl_exec {
    struct kubectl *k;
    struct tm_list link;
    uv_process_t proc;
    uv_pipe_t in, err;
    uv_timer_t timer;
    struct kubectl_exec_events ev;
    char tail[TAIL_CAP];
    size_t tail_len;
    char line[1024];
    size_t line_len;
    int open;
    bool running, err_eof, reported, stdin_closed, freed;
    int exit_code, term_signal;
    int stop_stage;
};

int kubectl_find(const char *explicit_path, char *out, size_t len, char *err,
                 size_t errlen)
{
    struct stat st;
    if (explicit_path != NULL) {
        if (stat(explicit_path, &st) < 0 || !S_ISREG(st.st_mode) ||
            access(explicit_path, X_OK) < 0) {
            snprintf(err, errlen, "--kubectl %s is not an executable file",
                     explicit_path);
            return -1;
        }
        snprintf(out, len, "%s", explicit_path);
        return 0;
    }
    const char *pathenv = getenv("PATH");
    if (pathenv == NULL) {
        pathenv = "/usr/local/bin:/usr/bin:/bin";
    }
    const char *p = pathenv;
    while (*p) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 0 && n + 9 < len) {
            snprintf(out, len, "%.*s/kubectl", (int)n, p);
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
                access(out, X_OK) == 0) {
                return 0;
            }
        }
        p += n;
        if (*p == ':') {
            p++;
        }
    }
    snprintf(err, errlen,
             "kubectl not found on PATH: install it, or name it with "
             "--kubectl PATH");
    return -1;
}

struct kubectl *kubectl_new(uv_loop_t *loop, const char *path,
                            const char *kubeconfig, const char *context,
                            const char *ns)
{
    struct kubectl *k = tm_xcalloc(1, sizeof(*k));
    char buf[1200];
    k->loop = loop;
    k->path = tm_xstrdup(path);
    /* One argv element each, "--flag=value": a value can never be read
     * as a flag of its own. */
    if (kubeconfig != NULL) {
        snprintf(buf, sizeof(buf), "--kubeconfig=%s", kubeconfig);
        k->prefix[k->n_prefix++] = tm_xstrdup(buf);
    }
    if (context != NULL) {
        snprintf(buf, sizeof(buf), "--context=%s", context);
        k->prefix[k->n_prefix++] = tm_xstrdup(buf);
    }
    if (ns != NULL) {
        snprintf(buf, sizeof(buf), "--namespace=%s", ns);
        k->prefix[k->n_prefix++] = tm_xstrdup(buf);
    }
    tm_list_init(&k->calls);
    tm_list_init(&k->execs);
    /* Both ends close on exec: kubectl_child_main() gets the read end as
     * WATCH_FD, and no child ever holds the write end. */
    if (uv_pipe(k->watch, 0, 0) < 0) {
        k->watch[0] = k->watch[1] = -1;
    }
    return k;
}

bool kubectl_idle(const struct kubectl *k)
{
    return tm_list_empty(&k->calls) && tm_list_empty(&k->execs);
}

void kubectl_free(struct kubectl *k)
{
    if (k == NULL) {
        return;
    }
    for (size_t i = 0; i < k->n_prefix; i++) {
        free(k->prefix[i]);
    }
    if (k->watch[0] >= 0) {
        close(k->watch[0]);
        close(k->watch[1]);
    }
    free(k->path);
    free(k);
}

/* argv = kubectl, the prefix, then args. */
static size_t build_argv(struct kubectl *k, const char *const *args,
                         char **argv)
{
    size_t n = 0;
    argv[n++] = k->path;
    for (size_t i = 0; i < k->n_prefix; i++) {
        argv[n++] = k->prefix[i];
    }
    for (size_t i = 0; args[i] != NULL && n < KUBECTL_MAX_ARGS; i++) {
        argv[n++] = (char *)(uintptr_t)args[i];
    }
    argv[n] = NULL;
    return n;
}

/* Storage for the argv of one spawn: see spawn_argv(). */
struct spawn_argv {
    char *argv[CHILD_PREFIX + KUBECTL_MAX_ARGS + 1];
    char self[4096];
};

/*
 * Fills opt's file, args and stdio (three given, a fourth added) to run
 * `kubectl PREFIX ARGS...` through this program (kubectl_child_main), so
 * that kubectl dies with tapmirror, however tapmirror dies: docs/DESIGN.md
 * explains why this and not PR_SET_PDEATHSIG. Without the watch pipe,
 * kubectl is started directly.
 */
static void spawn_argv(struct kubectl *k, const char *const *args,
                       struct spawn_argv *sa, uv_stdio_container_t *stdio,
                       uv_process_options_t *opt)
{
    size_t len = sizeof(sa->self);
    opt->stdio = stdio;
    opt->stdio_count = 3;
    if (k->watch[0] < 0) {
        build_argv(k, args, sa->argv);
        opt->file = k->path;
        opt->args = sa->argv;
        return;
    }
    /* uv_exepath() names the program even under valgrind. A binary
     * replaced or removed since it started has no path: on Linux it is
     * still /proc/self/exe in the forked child. */
    if (uv_exepath(sa->self, &len) < 0 || access(sa->self, X_OK) < 0) {
        snprintf(sa->self, sizeof(sa->self), "/proc/self/exe");
    }
    sa->argv[0] = sa->self;
    sa->argv[1] = (char *)(uintptr_t)KUBECTL_CHILD_ARG;
    build_argv(k, args, sa->argv + CHILD_PREFIX);
    stdio[WATCH_FD].flags = UV_INHERIT_FD;
    stdio[WATCH_FD].data.fd = k->watch[0];
    opt->stdio_count = WATCH_FD + 1;
    opt->file = sa->self;
    opt->args = sa->argv;
}

/*
 * Starts `kubectl ARGS...` (see spawn_argv()) in a process group of its
 * own, so that the terminal's Ctrl-C reaches tapmirror, which then stops
 * kubectl in order. Its stdin is `in` (NULL: none); stdout and stderr
 * are pipes the caller has initialised.
 */
static int spawn_kubectl(struct kubectl *k, const char *const *args,
                         uv_process_t *proc, uv_pipe_t *in, uv_pipe_t *out,
                         uv_pipe_t *err, uv_exit_cb exit_cb)
{
    struct spawn_argv sa;
    uv_stdio_container_t stdio[WATCH_FD + 1];
    if (in != NULL) {
        stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
        stdio[0].data.stream = (uv_stream_t *)in;
    } else {
        stdio[0].flags = UV_IGNORE;
    }
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)err;
    uv_process_options_t opt;
    memset(&opt, 0, sizeof(opt));
    spawn_argv(k, args, &sa, stdio, &opt);
    opt.exit_cb = exit_cb;
    opt.flags = UV_PROCESS_DETACHED;
    return uv_spawn(k->loop, proc, &opt);
}

/* Signals kubectl and everything in its process group, the supervisor
 * included: every kubectl leads a group of its own (UV_PROCESS_DETACHED). */
static void signal_kubectl(uv_process_t *p, int signum)
{
    if (uv_kill(-p->pid, signum) < 0) {
        uv_process_kill(p, signum);
    }
}

/* ---- the supervisor: tapmirror __kubectl-child KUBECTL ARGS... ---- */

static int child_wake[2] = {-1, -1};

static void on_child_signal(int signum)
{
    int saved = errno;
    if (signum == SIGCHLD) {
        ssize_t n = write(child_wake[1], "", 1);
        (void)n; /* full: a wake-up is pending anyway */
    }
    /* SIGTERM, SIGINT, SIGHUP: tapmirror signals the whole group, so
     * kubectl has it too; its exit status is relayed below. */
    errno = saved;
}

static int relay_status(int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    int signum = WTERMSIG(status);
    sigset_t set;
    signal(signum, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, signum);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(signum);
    return 128 + signum;
}

int kubectl_child_main(int argc, char **argv)
{
    struct stat st;
    if (argc <= CHILD_PREFIX || fstat(WATCH_FD, &st) < 0 ||
        !S_ISFIFO(st.st_mode)) {
        fprintf(stderr, "tapmirror: %s is for tapmirror's own use\n",
                KUBECTL_CHILD_ARG);
        return 2;
    }
    if (fcntl(WATCH_FD, F_SETFD, FD_CLOEXEC) < 0 || pipe(child_wake) < 0 ||
        fcntl(child_wake[0], F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(child_wake[1], F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(child_wake[1], F_SETFL, O_NONBLOCK) < 0) {
        fprintf(stderr, "tapmirror: cannot watch kubectl: %s\n",
                strerror(errno));
        return 127;
    }
    /* Handlers, not SIG_IGN: exec resets them to the default for kubectl. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_child_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tapmirror: cannot run %s: %s\n", argv[CHILD_PREFIX],
                strerror(errno));
        return 127;
    }
    if (pid == 0) {
        execv(argv[CHILD_PREFIX], argv + CHILD_PREFIX);
        fprintf(stderr, "tapmirror: cannot run %s: %s\n", argv[CHILD_PREFIX],
                strerror(errno));
        _exit(127);
    }
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return relay_status(status);
        }
        /* A SIGCHLD after the waitpid() above wakes this poll(). */
        struct pollfd pf[2] = {{WATCH_FD, POLLIN, 0},
                               {child_wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            continue; /* EINTR */
        }
        if (pf[1].revents != 0) {
            char drain[64];
            ssize_t n = read(child_wake[0], drain, sizeof(drain));
            (void)n;
        }
        if (pf[0].revents != 0) {
            char b;
            ssize_t n = read(WATCH_FD, &b, 1);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                /* tapmirror is gone (killed, crashed): so is every writer
                 * of the pipe. Take kubectl and its helpers along. */
                if (getpgrp() == getpid()) {
                    kill(0, SIGKILL);
                }
                kill(pid, SIGKILL);
                close(WATCH_FD);
                waitpid(pid, &status, 0);
                return relay_status(status);
            }
        }
    }
}

/* ---- one-shot calls ---- */

static void call_handle_closed(uv_handle_t *h)
{
    struct call *c = h->data;
    if (--c->open > 0) {
        return;
    }
    free(c->outb.data);
    free(c->errb.data);
    free(c->input);
    free(c);
}

static void call_close(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, call_handle_closed);
    }
}

static void call_maybe_done(struct call *c)
{
    if (c->pending > 0) {
        return;
    }
    tm_list_remove(&c->link);
    uv_timer_stop(&c->timer);
    struct kubectl_result res = {
        .exit_code = c->killed ? -1 : c->exit_code,
        .term_signal = c->term_signal,
        .spawn_failed = c->spawn_failed,
        .out = c->outb.data ? c->outb.data : "",
        .out_len = c->outb.len,
        .out_truncated = c->outb.truncated,
        .err = c->errb.data ? c->errb.data : "",
        .err_len = c->errb.len,
    };
    c->cb(c->ctx, &res);
    call_close((uv_handle_t *)&c->timer);
    call_close((uv_handle_t *)&c->out);
    call_close((uv_handle_t *)&c->err);
    if (c->has_input) {
        call_close((uv_handle_t *)&c->in);
    }
    /* Closed even after a failed spawn: libuv initialised it. */
    call_close((uv_handle_t *)&c->proc);
}

static void call_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char scratch[65536];
    (void)h;
    (void)suggested;
    b->base = scratch;
    b->len = sizeof(scratch);
}

static void call_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct call *c = st->data;
    if (n > 0) {
        buf_add(st == (uv_stream_t *)&c->out ? &c->outb : &c->errb, b->base,
                (size_t)n);
        return;
    }
    if (n < 0) {
        uv_read_stop(st);
        c->pending--;
        call_maybe_done(c);
    }
}

static void call_exit(uv_process_t *p, int64_t status, int sig)
{
    struct call *c = p->data;
    c->exited = true;
    c->exit_code = (int)status;
    c->term_signal = sig;
    c->pending--;
    call_maybe_done(c);
}

static void call_timeout(uv_timer_t *t)
{
    struct call *c = t->data;
    c->killed = true;
    if (c->exited) {
        return; /* reaped: its pid may be another process's now */
    }
    signal_kubectl(&c->proc, c->term_signal ? SIGKILL : SIGTERM);
    c->term_signal = SIGTERM;
    uv_timer_start(&c->timer, call_timeout, KILL_GRACE_MS, 0);
}

static void call_written(uv_write_t *req, int status)
{
    struct call *c = req->data;
    (void)status;
    call_close((uv_handle_t *)&c->in); /* EOF for kubectl */
}

void kubectl_call(struct kubectl *k, const char *const *args,
                  const char *stdin_data, uint64_t timeout_ms,
                  size_t out_cap, kubectl_cb *cb, void *ctx)
{
    struct call *c = tm_xcalloc(1, sizeof(*c));
    c->k = k;
    c->cb = cb;
    c->ctx = ctx;
    c->outb.limit = out_cap;
    c->errb.limit = ERR_CAP;
    c->has_input = stdin_data != NULL;
    tm_list_append(&k->calls, &c->link);
    uv_pipe_init(k->loop, &c->out, 0);
    uv_pipe_init(k->loop, &c->err, 0);
    uv_timer_init(k->loop, &c->timer);
    c->out.data = c->err.data = c->timer.data = c->proc.data = c;
    c->open = 4; /* out, err, timer and the process */
    if (c->has_input) {
        uv_pipe_init(k->loop, &c->in, 0);
        c->in.data = c;
        c->open++;
    }
    int rc = spawn_kubectl(k, args, &c->proc, c->has_input ? &c->in : NULL,
                           &c->out, &c->err, call_exit);
    if (rc < 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "cannot run %s: %s", k->path,
                 uv_strerror(rc));
        buf_add(&c->errb, msg, strlen(msg));
        c->spawn_failed = true;
        c->exit_code = -1;
        c->pending = 0;
        call_maybe_done(c);
        return;
    }
    c->pending = 3;
    uv_read_start((uv_stream_t *)&c->out, call_alloc, call_read);
    uv_read_start((uv_stream_t *)&c->err, call_alloc, call_read);
    if (c->has_input) {
        c->input = tm_xstrdup(stdin_data);
        uv_buf_t b = uv_buf_init(c->input, (unsigned)strlen(c->input));
        c->wreq.data = c;
        if (uv_write(&c->wreq, (uv_stream_t *)&c->in, &b, 1, call_written) <
            0) {
            call_close((uv_handle_t *)&c->in);
        }
    }
    uv_timer_start(&c->timer, call_timeout, timeout_ms, 0);
}

void kubectl_cancel_calls(struct kubectl *k)
{
    for (struct tm_list *n = k->calls.next; n != &k->calls; n = n->next) {
        struct call *c = TM_CONTAINER_OF(n, struct call, link);
        if (!c->spawn_failed && !c->killed && !c->exited) {
            c->killed = true;
            signal_kubectl(&c->proc, SIGTERM);
            uv_timer_start(&c->timer, call_timeout, KILL_GRACE_MS, 0);
        }
    }
}

/* ---- long-running exec ---- */


static void exec_handle_closed(uv_handle_t *h)
{
    struct kubectl_exec *x = h->data;
    if (--x->open > 0) {
        return;
    }
    free(x);
}

static void exec_close(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, exec_handle_closed);
    }
}

static void exec_maybe_report(struct kubectl_exec *x)
{
    if (x->running || !x->err_eof || x->reported) {
        return;
    }
    x->reported = true;
    uv_timer_stop(&x->timer);
    tm_list_remove(&x->link);
    if (x->ev.exited != NULL) {
        x->ev.exited(x->ev.ctx, x->exit_code, x->term_signal);
    }
}

static void tail_add(struct kubectl_exec *x, const char *p, size_t n)
{
    if (n >= TAIL_CAP) {
        p += n - (TAIL_CAP - 1);
        n = TAIL_CAP - 1;
    }
    if (x->tail_len + n >= TAIL_CAP) {
        size_t drop = x->tail_len + n - (TAIL_CAP - 1);
        memmove(x->tail, x->tail + drop, x->tail_len - drop);
        x->tail_len -= drop;
    }
    memcpy(x->tail + x->tail_len, p, n);
    x->tail_len += n;
    x->tail[x->tail_len] = '\0';
}

static void exec_err_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct kubectl_exec *x = st->data;
    if (n < 0) {
        uv_read_stop(st);
        x->err_eof = true;
        exec_maybe_report(x);
        return;
    }
    tail_add(x, b->base, (size_t)n);
    for (ssize_t i = 0; i < n; i++) {
        char ch = b->base[i];
        if (ch == '\n' || x->line_len + 1 == sizeof(x->line)) {
            if (x->ev.stderr_line != NULL && x->line_len > 0) {
                /* The remote end (tcpdump, or anything that shares its
                 * PID namespace) writes this: shown, it must not drive
                 * the terminal. */
                char shown[4 * sizeof(x->line)];
                tm_text_safe(shown, sizeof(shown), x->line, x->line_len);
                x->ev.stderr_line(x->ev.ctx, shown);
            }
            x->line_len = 0;
        } else if (ch != '\r') {
            x->line[x->line_len++] = ch;
        }
    }
}

static void exec_exit(uv_process_t *p, int64_t status, int sig)
{
    struct kubectl_exec *x = p->data;
    x->running = false;
    x->exit_code = (int)status;
    x->term_signal = sig;
    exec_close((uv_handle_t *)&x->in);
    exec_maybe_report(x);
}

static void exec_timer(uv_timer_t *t)
{
    struct kubectl_exec *x = t->data;
    if (!x->running) {
        return;
    }
    if (x->stop_stage <= 1) {
        x->stop_stage = 2;
        signal_kubectl(&x->proc, SIGTERM);
        uv_timer_start(&x->timer, exec_timer, KILL_GRACE_MS, 0);
    } else {
        signal_kubectl(&x->proc, SIGKILL);
    }
}

static void free_pipe(uv_handle_t *h)
{
    free(h);
}

struct kubectl_exec *kubectl_exec_start(struct kubectl *k,
                                        const char *const *args,
                                        const struct kubectl_exec_events *ev,
                                        uv_pipe_t **out_pipe, char *err,
                                        size_t errlen)
{
    struct kubectl_exec *x = tm_xcalloc(1, sizeof(*x));
    uv_pipe_t *out = tm_xmalloc(sizeof(*out));
    x->k = k;
    x->ev = *ev;
    uv_pipe_init(k->loop, &x->in, 0);
    uv_pipe_init(k->loop, &x->err, 0);
    uv_pipe_init(k->loop, out, 0);
    uv_timer_init(k->loop, &x->timer);
    x->in.data = x->err.data = x->timer.data = x->proc.data = x;
    x->open = 4; /* in, err, timer and the process */
    int rc = spawn_kubectl(k, args, &x->proc, &x->in, out, &x->err,
                           exec_exit);
    if (rc < 0) {
        snprintf(err, errlen, "cannot run %s: %s", k->path, uv_strerror(rc));
        exec_close((uv_handle_t *)&x->in);
        exec_close((uv_handle_t *)&x->err);
        exec_close((uv_handle_t *)&x->timer);
        exec_close((uv_handle_t *)&x->proc);
        uv_close((uv_handle_t *)out, free_pipe);
        return NULL;
    }
    x->running = true;
    tm_list_append(&k->execs, &x->link);
    uv_read_start((uv_stream_t *)&x->err, call_alloc, exec_err_read);
    *out_pipe = out;
    return x;
}

void kubectl_exec_stop(struct kubectl_exec *x)
{
    if (!x->running || x->stop_stage > 0) {
        return;
    }
    /* Closing its standard input ends the remote session the polite way
     * (kubectl sends a close frame); signals follow if it lingers. */
    x->stop_stage = 1;
    exec_close((uv_handle_t *)&x->in);
    uv_timer_start(&x->timer, exec_timer, STOP_GRACE_MS, 0);
}

void kubectl_exec_kill(struct kubectl_exec *x)
{
    if (!x->running || x->stop_stage >= 2) {
        return;
    }
    x->stop_stage = 2;
    exec_close((uv_handle_t *)&x->in);
    signal_kubectl(&x->proc, SIGTERM);
    uv_timer_start(&x->timer, exec_timer, KILL_GRACE_MS, 0);
}

void kubectl_kill_all(struct kubectl *k)
{
    for (struct tm_list *n = k->calls.next; n != &k->calls; n = n->next) {
        struct call *c = TM_CONTAINER_OF(n, struct call, link);
        if (!c->spawn_failed && !c->exited) {
            c->killed = true;
            signal_kubectl(&c->proc, SIGKILL);
        }
    }
    for (struct tm_list *n = k->execs.next; n != &k->execs; n = n->next) {
        struct kubectl_exec *x = TM_CONTAINER_OF(n, struct kubectl_exec, link);
        if (x->running) {
            x->stop_stage = 3;
            exec_close((uv_handle_t *)&x->in);
            uv_timer_stop(&x->timer);
            signal_kubectl(&x->proc, SIGKILL);
        }
    }
}

const char *kubectl_exec_stderr(const struct kubectl_exec *x)
{
    return x->tail;
}

bool kubectl_exec_running(const struct kubectl_exec *x)
{
    return x->running || !x->reported;
}

void kubectl_exec_free(struct kubectl_exec *x)
{
    if (x == NULL || x->freed) {
        return;
    }
    x->freed = true;
    exec_close((uv_handle_t *)&x->in);
    exec_close((uv_handle_t *)&x->err);
    exec_close((uv_handle_t *)&x->timer);
    exec_close((uv_handle_t *)&x->proc);
}
