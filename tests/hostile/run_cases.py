#!/usr/bin/env python3
"""Runs the hostile-capture corpus through the real tapmirror binary.

    run_cases.py TAPMIRROR [NAME-SUBSTRING...]

For each case in cases.json and each run listed for it:
  replay   tapmirror replay FILE -p PORT --to 127.0.0.1:R --stats-json J -q
           [-o OUT] [args], with a receiver on 127.0.0.1:R (an ephemeral
           port) that records every connection's bytes;
  summary  tapmirror summary FILE -p PORT --json [args].
Each run has a time limit (10 s unless the case says otherwise: a hang is
a failure) and must end by exit(), never by a signal. Then: the exit
status; standard error (the case's regex; every line a "tapmirror: ..."
message; no sanitizer report); the client bytes the receiver got (as a
multiset of non-empty connections) and, if the case says, how many
connections it accepted; counters from --stats-json or the
summary's JSON; the -o output; and the peak resident memory of the
process (from wait4(), under 64 MiB unless the case says otherwise).

TAPMIRROR_WRAPPER (as for tests/e2e, e.g. valgrind) runs tapmirror under
a wrapper: time limits grow 20-fold and memory is not checked.
TAPMIRROR_SANITIZED=1 (set by ctest for a sanitizer build) skips the
memory check too: ASan's shadow and quarantine dominate the RSS.

Runs marked known_bug are expected to fail (XFAIL) and do not fail the
suite; one that passes is reported as XPASS so the marker can go.
Exit status: 0 if every run passed (or failed as known), 1 otherwise.
"""
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_cases  # noqa: E402  (builds the cases generated at test time)

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RSS_MIB = 64
# As in tests/e2e: TAPMIRROR_WRAPPER="valgrind --error-exitcode=99 ..."
# runs tapmirror under a wrapper. Time limits then stretch, the memory
# limit no longer applies, and the wrapper's own "==PID==" lines are
# allowed on standard error (its errors show as exit status 99).
WRAPPER = os.environ.get("TAPMIRROR_WRAPPER", "").split()
SLOW = 20.0 if WRAPPER else 1.0


class Receiver:
    """A TCP server on 127.0.0.1 that reads and records every connection."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ, None)
        self.conns = []  # bytearrays, in order of acceptance
        self.open = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping or self.open:
            for key, _ in self.sel.select(timeout=0.05):
                if key.data is None:
                    while True:
                        try:
                            c, _ = self.sock.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        c.setblocking(False)
                        buf = bytearray()
                        self.conns.append(buf)
                        self.open += 1
                        self.sel.register(c, selectors.EVENT_READ, buf)
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    key.data.extend(data)
                else:
                    self.sel.unregister(key.fileobj)
                    key.fileobj.close()
                    self.open -= 1
            if self.stopping and self.deadline < time.monotonic():
                break

    def stop(self, grace=2.0):
        """Waits (at most `grace` s) for open connections to close."""
        self.deadline = time.monotonic() + grace
        self.stopping = True
        self.thread.join(grace + 1)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()
        return [bytes(b) for b in self.conns]


def gnu_time():
    """/usr/bin/time if it is GNU time (-f, -o), else None."""
    try:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "true"],
                           capture_output=True, timeout=10)
        if p.returncode == 0 and p.stderr.strip().isdigit():
            return "/usr/bin/time"
    except (OSError, subprocess.SubprocessError):
        pass
    return None


TIME = gnu_time()


def run_process(argv, timeout, tmp, stdin_path=None):
    """Runs argv; returns (status, stdout, stderr, seconds, peak RSS bytes).
    status is the exit status, or -SIGNAL; None on timeout (killed).

    The peak RSS comes from GNU time (`-f %M`): a process forked from this
    Python interpreter would count the interpreter's pages in its own
    maximum, but time forks tapmirror from its own small image. Without
    GNU time it is None (replay runs then use --stats-json's VmHWM)."""
    start = time.monotonic()
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    time_out = os.path.join(tmp, "time.out")
    argv = WRAPPER + argv
    if TIME and not WRAPPER:
        argv = [TIME, "-o", time_out, "-f", "%M %x"] + argv
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_path
                         else subprocess.DEVNULL, stdout=out_f,
                         stderr=err_f, start_new_session=True)
    if stdin_path:
        # A pipe, not the file itself: a regular file on standard input
        # is read as a file.
        def feed():
            try:
                with open(stdin_path, "rb") as f:
                    p.stdin.write(f.read())
            except OSError:
                pass  # tapmirror stopped reading: its status says why
            finally:
                try:
                    p.stdin.close()
                except OSError:
                    pass
        threading.Thread(target=feed, daemon=True).start()
    try:
        p.wait(timeout)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        hung = True
    seconds = time.monotonic() - start
    out_f.seek(0)
    err_f.seek(0)
    out, err = out_f.read(), err_f.read()
    out_f.close()
    err_f.close()
    status = None if hung else p.returncode
    rss = None
    if TIME and not WRAPPER and not hung:
        with open(time_out) as f:
            lines = f.read().splitlines()
        m = re.search(r"terminated by signal (\d+)", " ".join(lines))
        if m:
            status = -int(m.group(1))
        fields = lines[-1].split() if lines else []
        if len(fields) == 2:
            rss = int(fields[0]) * 1024
            if not m:
                status = int(fields[1])
    return status, out, err, seconds, rss


def lookup(obj, dotted):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return KeyError(dotted)
        obj = obj[part]
    return obj


def check_stats(obj, want, problems, what):
    for key, expect in want.items():
        got = lookup(obj, key)
        if isinstance(got, KeyError):
            problems.append(f"{what}: no {key}")
            continue
        if isinstance(expect, list):
            op, val = expect
            ok = {">=": got >= val, "<=": got <= val, ">": got > val}[op]
            if not ok:
                problems.append(f"{what}: {key} = {got}, want {op} {val}")
        elif got != expect:
            problems.append(f"{what}: {key} = {got}, want {expect}")


def show(b, limit=60):
    r = repr(bytes(b[:limit]))
    return r + (f"... ({len(b)} bytes)" if len(b) > limit else "")


def run_one(binary, case, run, path, port, tmp):
    """Returns (list of problems, seconds, rss)."""
    problems = []
    timeout = run.get("max_seconds", DEFAULT_TIMEOUT) * SLOW
    stats_path = os.path.join(tmp, "stats.json")
    out_path = os.path.join(tmp, "out.pcap")
    for p in (stats_path, out_path):
        if os.path.exists(p):
            os.unlink(p)
    receiver = None
    if run["command"] == "replay":
        receiver = Receiver()
        # "stdin": the capture comes through a pipe, a live source whose
        # clock follows this machine's.
        argv = [binary, "replay", "-" if run.get("stdin") else path, "-p",
                str(port), "--to",
                f"127.0.0.1:{receiver.port}", "--stats-json", stats_path, "-q"]
        if "output" in run:
            argv += ["-o", out_path]
    else:
        argv = [binary, "summary", path, "-p", str(port), "--json"]
    argv += run.get("args", [])
    status, out, err, seconds, rss = run_process(
        argv, timeout, tmp, path if run.get("stdin") else None)
    conns = receiver.stop() if receiver else []
    err_text = err.decode("utf-8", "replace")
    if WRAPPER:
        err_text = "".join(l for l in err_text.splitlines(True)
                           if not re.match(r"==\d+==", l))

    if status is None:
        problems.append(f"hung: killed after {timeout:.0f} s")
    elif status < 0:
        problems.append(f"killed by signal {-status}")
    elif status != run["exit"]:
        problems.append(f"exit status {status}, want {run['exit']}")
    if re.search(r"AddressSanitizer|LeakSanitizer|runtime error:|"
                 r"Assertion .* failed", err_text):
        problems.append("sanitizer or assertion report on stderr")
    want_err = run.get("stderr", "")
    if want_err == "":
        if err_text.strip():
            problems.append(f"unexpected stderr: {err_text.strip()!r}")
    elif not re.search(want_err, err_text, re.M):
        problems.append(f"stderr {err_text.strip()!r} does not match {want_err!r}")
    for line in err_text.splitlines():
        if line and not line.startswith("tapmirror: "):
            problems.append(f"stderr line not a tapmirror message: {line!r}")
            break
    if WRAPPER or os.environ.get("TAPMIRROR_SANITIZED") == "1":
        rss = None  # the wrapper's or ASan's memory, not tapmirror's
    elif rss is None and os.path.exists(stats_path):
        try:
            with open(stats_path) as f:
                rss = json.load(f)["process"]["peak_rss_bytes"]
        except (OSError, ValueError, KeyError):
            pass
    max_rss = run.get("max_rss_mib", DEFAULT_MAX_RSS_MIB) * 1024 * 1024
    if rss is not None and rss > max_rss:
        problems.append(f"peak RSS {rss / 1048576:.1f} MiB over "
                        f"{max_rss / 1048576:.0f} MiB")
    if seconds > timeout:
        problems.append(f"took {seconds:.1f} s")
    if status is not None and seconds < run.get("min_seconds", 0):
        problems.append(f"took {seconds:.1f} s, want at least "
                        f"{run['min_seconds']} s")

    if "delivered" in run:
        def key(d):
            if isinstance(d, dict):
                return (d["size"], d["sha256"])
            b = d.encode("latin-1")
            return (len(b), hashlib.sha256(b).hexdigest())
        want = sorted(key(d) for d in run["delivered"])
        got_conns = [c for c in conns if c]
        got = sorted((len(c), hashlib.sha256(c).hexdigest()) for c in got_conns)
        if got != want:
            problems.append(
                "delivered " + (", ".join(show(c) for c in got_conns) or "nothing")
                + "; want " + (", ".join(
                    show(d.encode("latin-1")) if isinstance(d, str)
                    else f"<{d['size']} bytes>" for d in run["delivered"])
                    or "nothing"))
    if "connections" in run and len(conns) != run["connections"]:
        problems.append(f"the receiver accepted {len(conns)} connections, "
                        f"want {run['connections']}")
    if "stats" in run and status is not None and status >= 0:
        if run["command"] == "replay":
            try:
                with open(stats_path) as f:
                    obj = json.load(f)
            except (OSError, ValueError) as e:
                obj = None
                problems.append(f"--stats-json: {e}")
        else:
            try:
                obj = json.loads(out.decode())
            except ValueError as e:
                obj = None
                problems.append(f"summary --json: {e}")
        if obj is not None:
            check_stats(obj, run["stats"], problems, run["command"])
    if "output" in run:
        kind, n = run["output"].split(":")
        with open(path, "rb") as f:
            want = f.read()[: int(n)]
        try:
            with open(out_path, "rb") as f:
                got = f.read()
        except OSError as e:
            got = None
            problems.append(f"-o output: {e}")
        if got is not None and got != want:
            problems.append(f"-o output is {len(got)} bytes, want the first "
                            f"{len(want)} bytes of the input"
                            + ("" if len(got) != len(want) else " (content differs)"))
    return problems, seconds, rss


def main():
    if len(sys.argv) < 2:
        print("usage: run_cases.py TAPMIRROR [NAME-SUBSTRING...]", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    only = sys.argv[2:]
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"run_cases.py: {binary} is not an executable file", file=sys.stderr)
        return 2
    with open(os.path.join(HERE, "cases.json")) as f:
        index = json.load(f)
    port = index["port"]
    tmp = tempfile.mkdtemp(prefix="tapmirror-hostile-")
    failed = xfail = xpass = passed = 0
    try:
        for case in index["cases"]:
            if only and not any(s in case["name"] for s in only):
                continue
            if case.get("generate"):
                data = make_cases.generated(case["name"])
                if hashlib.sha256(data).hexdigest() != case["sha256"]:
                    print(f"FAIL  {case['name']}: make_cases.py generates "
                          "different content than cases.json records")
                    failed += 1
                    continue
                path = os.path.join(tmp, case["name"])
                with open(path, "wb") as f:
                    f.write(data)
            else:
                path = os.path.join(HERE, case["file"])
            for run in case["runs"]:
                problems, secs, rss = run_one(binary, case, run, path, port, tmp)
                label = f"{case['name']} {run['command']}"
                if run.get("args"):
                    label += " " + " ".join(run["args"])
                if run.get("stdin"):
                    label += " < pipe"
                known = run.get("known_bug")
                mem = "?" if rss is None else f"{rss / 1048576:.1f}"
                stat = f"({secs:.2f} s, {mem} MiB)"
                if problems and known:
                    xfail += 1
                    print(f"XFAIL {label} {stat}: known bug: {known}")
                    for p in problems:
                        print(f"        {p}")
                elif problems:
                    failed += 1
                    print(f"FAIL  {label} {stat}")
                    for p in problems:
                        print(f"        {p}")
                elif known:
                    xpass += 1
                    print(f"XPASS {label} {stat}: fixed? remove known_bug: {known}")
                else:
                    passed += 1
                    print(f"ok    {label} {stat}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"hostile: {passed} passed, {failed} failed, {xfail} known bugs, "
          f"{xpass} fixed known bugs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
