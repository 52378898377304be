"""Helpers shared by the benchmark scripts (run.py, load.py, soak.py).
Only the Python 3 standard library is used."""

import json
import os
import resource
import sys
import time


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def raise_nofile():
    """Soft descriptor limit up to the hard one (for a child's preexec)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def wait_file(path, proc, timeout=10.0):
    """The stripped text of `path` once a child has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as fp:
                text = fp.read().strip()
            if text:
                return text
        if proc.poll() is not None:
            raise RuntimeError("%s exited (%s) before writing %s"
                               % (proc.args[0], proc.returncode, path))
        time.sleep(0.005)
    raise RuntimeError("timed out waiting for " + path)


def read_json(path):
    try:
        with open(path) as fp:
            return json.load(fp)
    except (OSError, ValueError):
        return None


def proc_status(pid):
    """/proc/PID/status's kB fields (VmRSS, VmHWM, ...) in bytes."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as fp:
            for line in fp:
                k, _, v = line.partition(":")
                f = v.split()
                if len(f) == 2 and f[1] == "kB":
                    out[k] = int(f[0]) * 1024
    except OSError:
        pass
    return out


def count_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def linfit(xs, ys):
    """Least-squares slope and intercept."""
    n = len(xs)
    if n < 2:
        return 0.0, ys[0] if ys else 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, my
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return sxy / sxx, my - sxy / sxx * mx
