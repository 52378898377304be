"""Shared helpers for tapmirror's end-to-end tests.

Every test drives the real binaries over real sockets on 127.0.0.1:
tmgen writes captures with a manifest of the exact client bytes each
connection must deliver, tmsink receives and checksums what tapmirror
replays, and the two are compared as multisets of (length, FNV-1a 64).
Every subprocess runs under a timeout, so a hang fails instead of
blocking the suite.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _binary(var, name):
    path = os.environ.get(var)
    if path:
        return path
    for build in ("build/ci", "build/default", "build/asan", "build/valgrind"):
        cand = os.path.join(ROOT, build, name)
        if os.path.exists(cand):
            return cand
    raise RuntimeError(f"{var} is not set and no built {name} was found")


TAPMIRROR = _binary("TAPMIRROR", "tapmirror")
TMGEN = _binary("TMGEN", "tools/tmgen")
TMSINK = _binary("TMSINK", "tools/tmsink")
# Set by `make memcheck`: a command prefix such as "valgrind --error-exitcode=99".
WRAPPER = os.environ.get("TAPMIRROR_WRAPPER", "").split()
SLOW = 4.0 if WRAPPER else 1.0  # valgrind runs everything slower
# Sanitizers and valgrind change memory use: memory bounds are checked
# only in plain builds.
SANITIZED = os.environ.get("TAPMIRROR_SANITIZED", "0") not in ("0", "")
MEASURE_MEMORY = not WRAPPER and not SANITIZED

SKIP = 77  # CTest's SKIP_RETURN_CODE


def fnv64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="tapmirror-test-")

    def __call__(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def gen(tmp, name, *args, fmt_ext="pcap"):
    """Runs tmgen; returns (capture path, manifest dict)."""
    cap = tmp(f"{name}.{fmt_ext}")
    man = tmp(f"{name}.json")
    subprocess.run([TMGEN, "-o", cap, "-m", man, *map(str, args)],
                   check=True, timeout=120, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    with open(man) as f:
        return cap, json.load(f)


def expected_streams(manifest):
    return sorted((f["bytes"], f["fnv64"]) for f in manifest["flows"])


class Sink:
    """A tmsink receiver on an ephemeral loopback port."""

    def __init__(self, tmp, *extra, listen="127.0.0.1:0", expect=None,
                 timeout=120):
        self.manifest_path = tmp(f"sink-{id(self)}.json")
        args = [TMSINK, "--listen", listen, "--manifest", self.manifest_path,
                "--quiet", "--timeout", f"{int(timeout * SLOW)}s"]
        if expect is not None:
            args += ["--expect", str(expect)]
        self.proc = subprocess.Popen(args + [str(a) for a in extra],
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"tmsink did not start: {line!r} "
                               f"{self.proc.stderr.read()}")
        self.address = line[len("listening on "):]
        self.port = int(self.address.rsplit(":", 1)[1])
        self.manifest = None

    @property
    def to(self):
        return self.address

    def wait(self, timeout=60):
        """Waits for tmsink to exit by itself (--expect); returns the
        manifest."""
        try:
            self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            return self.stop()
        return self._load()

    def stop(self, grace=0.0):
        if grace:
            time.sleep(grace)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self._load()

    def _load(self):
        self.proc.stdout.close()
        self.proc.stderr.close()
        with open(self.manifest_path) as f:
            self.manifest = json.load(f)
        return self.manifest

    def streams(self, complete_only=False):
        conns = self.manifest["connections"]
        if complete_only:
            conns = [c for c in conns if c.get("complete")]
        return sorted((c["bytes"], c["fnv64"]) for c in conns)


def run(args, timeout=60, stdin=None, input_bytes=None, env=None, cwd=None):
    """Runs tapmirror (under the memcheck wrapper, if any) to completion."""
    cmd = WRAPPER + [TAPMIRROR] + [str(a) for a in args]
    return subprocess.run(cmd, timeout=timeout * SLOW, stdin=stdin,
                          input=input_bytes, capture_output=True, env=env,
                          cwd=cwd)


def start(args, **kw):
    """Starts tapmirror in the background."""
    cmd = WRAPPER + [TAPMIRROR] + [str(a) for a in args]
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(cmd, **kw)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_text(path):
    with open(path) as f:
        return f.read()


def wait_stderr(proc, needle, timeout=30):
    """Reads a background tapmirror's stderr until `needle` appears (the
    "replaying" line comes after its signal handlers are installed);
    returns what was read."""
    import select
    deadline = time.monotonic() + timeout * SLOW
    buf = b""
    fd = proc.stderr.fileno()
    while time.monotonic() < deadline and needle.encode() not in buf:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
    return buf.decode(errors="replace")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Service:
    """A real TCP service on loopback for live-capture tests: it reads
    every connection to the end and answers "ok"."""

    def __init__(self, host="127.0.0.1", family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    def _handle(self, conn):
        chunks = []
        try:
            while True:
                d = conn.recv(262144)
                if not d:
                    break
                chunks.append(d)
            conn.sendall(b"ok")
        except OSError:
            pass
        finally:
            conn.close()
        with self.lock:
            self.received.append(b"".join(chunks))

    def close(self):
        self.sock.close()


class Receiver:
    """A Python receiver on loopback that records, per connection, every
    chunk with its arrival time: for tests that must see bytes arrive
    while a connection is still open."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.to = f"127.0.0.1:{self.port}"
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            chunks = []
            with self.lock:
                self.conns.append(chunks)
            threading.Thread(target=self._read, args=(conn, chunks),
                             daemon=True).start()

    def _read(self, conn, chunks):
        while True:
            try:
                d = conn.recv(65536)
            except OSError:
                break
            if not d:
                break
            with self.lock:
                chunks.append((time.monotonic(), d))
        conn.close()

    def data(self, i=-1):
        with self.lock:
            if not self.conns:
                return b""
            return b"".join(d for _, d in self.conns[i])

    def close(self):
        self.sock.close()


def client_send(port, data, host="127.0.0.1", family=socket.AF_INET):
    """Sends `data` as one client connection, half-closes, reads the
    answer."""
    c = socket.socket(family, socket.SOCK_STREAM)
    c.settimeout(20)
    c.connect((host, port))
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    c.close()


def main():
    """Runs the unittest module; exits 77 if every test was skipped."""
    prog = unittest.main(exit=False, verbosity=2)
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    if res.testsRun > 0 and len(res.skipped) == res.testsRun:
        sys.exit(SKIP)
    sys.exit(0)
