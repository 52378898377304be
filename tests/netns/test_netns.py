#!/usr/bin/env python3
"""tapmirror capture on a real network: two network namespaces joined by
a veth pair, a real HTTP service in one, real HTTP clients in the other,
and tapmirror capturing on the service side of the veth, replaying every
client connection to a tmsink receiver on the service namespace's
loopback.

    client namespace                      service namespace
    http.client  --veth (10.77.X.0/24)--> nsserver.py :8080
                                          tapmirror capture -i <veth>
                                            --to 127.0.0.1:<tmsink>
                                          tmsink on 127.0.0.1

Tests: every connection arrives complete (IPv4 and IPv6); real packet
loss, reordering and duplication are reassembled into exactly what the
service received, with netem on the veths if the kernel has it, and with
htb/pfifo/u32/mirred in a router namespace between client and service
(which minimal kernels have); loss injected into the capture only (a BPF
filter) becomes counted gaps, not stalls.

Needs root (namespaces, veth, tc, capture); skipped with a printed reason
otherwise. Every namespace (and so veth), process and temporary file is
removed at the end, even on failure or Ctrl-C; processes die with the test
(PR_SET_PDEATHSIG), and the namespaces and files of a killed run (its pid
is gone) are removed by the next run.
"""
import atexit
import ctypes
import hashlib
import http.client
import itertools
import json
import os
import random
import re
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
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import tmtest as t  # noqa: E402

SERVER = os.path.join(HERE, "nsserver.py")
PORT = 8080                 # the service port, inside the namespace
NS_PREFIX = "tmns-"         # every namespace this file creates
TMP_PREFIX = "tapmirror-netns-"  # every temporary directory
CMD_TIMEOUT = 30            # one ip/tc command
CLIENT_TIMEOUT = 30         # one client socket operation
CLIENT_JOIN = 120           # all clients of one test
SINK_WAIT = 90              # the receiver has every connection
STOP_TIMEOUT = 60           # tapmirror exits after SIGINT

# tapmirror's default capture ring (one --kernel-buffer of 128 MiB in
# blocks) holds more than one test's packets; set
# TAPMIRROR_NETNS_KERNEL_BUFFER to try another size.
KERNEL_BUFFER = os.environ.get("TAPMIRROR_NETNS_KERNEL_BUFFER", "")

REASON = None               # why everything is skipped, if it is


# --- commands and processes ----------------------------------------------

def cmd(*argv, check=True, timeout=CMD_TIMEOUT):
    argv = [str(a) for a in argv]
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: "
                           f"{r.stderr.strip()}")
    return r


# Runs argv[2:] with PR_SET_PDEATHSIG = SIGKILL: if this test is killed
# (a CTest timeout, SIGKILL), nothing it started keeps running. The signal
# survives `ip netns exec`, which execs the command in the same process.
# (preexec_fn would do the same, but is unsafe once threads run.)
PDEATHSIG = ("import ctypes, os, signal, sys\n"
             "ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
             "if os.getppid() != int(sys.argv[1]):\n"
             "    os._exit(1)\n"
             "os.execvp(sys.argv[2], sys.argv[2:])\n")


class Proc:
    """A background process whose stdout and stderr are drained by threads
    (a full pipe never blocks it) and can be waited on line by line. Must
    be started from the main thread (the parent-death signal follows the
    thread that forks)."""

    def __init__(self, argv, name):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.p = subprocess.Popen([sys.executable, "-c", PDEATHSIG,
                                   str(os.getpid()), *self.argv],
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.lines = {"out": [], "err": []}
        self.eof = {"out": False, "err": False}
        self.cv = threading.Condition()
        self.readers = [
            threading.Thread(target=self._drain, args=(self.p.stdout, "out"),
                             daemon=True),
            threading.Thread(target=self._drain, args=(self.p.stderr, "err"),
                             daemon=True)]
        for r in self.readers:
            r.start()

    def _drain(self, f, key):
        try:
            for raw in iter(f.readline, b""):
                with self.cv:
                    self.lines[key].append(raw.decode(errors="replace"))
                    self.cv.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self.cv:
                self.eof[key] = True
                self.cv.notify_all()

    def wait_line(self, key, needle, timeout):
        """The first line of stdout ("out") or stderr ("err") holding
        `needle`; None at EOF or after `timeout` seconds."""
        deadline = time.monotonic() + timeout * t.SLOW
        with self.cv:
            while True:
                for line in self.lines[key]:
                    if needle in line:
                        return line.strip()
                left = deadline - time.monotonic()
                if self.eof[key] or left <= 0:
                    return None
                self.cv.wait(min(left, 0.5))

    def text(self, key="err"):
        with self.cv:
            return "".join(self.lines[key])

    def signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def wait(self, timeout):
        """The exit status, or None if still running after `timeout`."""
        try:
            code = self.p.wait(timeout=timeout * t.SLOW)
        except subprocess.TimeoutExpired:
            return None
        for r in self.readers:
            r.join(5)
        return code

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for r in self.readers:
            r.join(2)
        for f in (self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass


# --- network namespaces ---------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd):
    if hasattr(os, "setns"):  # Python 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


def in_netns(ns, fn, *args):
    """Runs fn(*args) on a fresh thread that has joined network namespace
    `ns` (setns acts on the calling thread only). Sockets it creates stay
    in that namespace whichever thread uses them later."""
    box = {}

    def body():
        try:
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: B902 - handed to the caller
            box["error"] = e

    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(CMD_TIMEOUT)
    if th.is_alive():
        raise RuntimeError(f"in_netns({ns}, {fn}) did not return")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def _read_file(path):
    with open(path) as f:
        return f.read()


def ns_sysctl(ns, key, value):
    """Sets a per-namespace sysctl (/proc/sys/net follows the thread's
    namespace); False if it does not exist."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        in_netns(ns, _write_file, path, str(value))
        return True
    except OSError:
        return False


def tcp_retransmits(ns):
    """TcpRetransSegs of the namespace (from /proc/thread-self/net/snmp:
    /proc/self/net would be the namespace of the main thread)."""
    snmp = in_netns(ns, _read_file, "/proc/thread-self/net/snmp")
    rows = [line.split() for line in snmp.splitlines()
            if line.startswith("Tcp:")]
    return int(dict(zip(rows[0][1:], rows[1][1:]))["RetransSegs"])


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_namespaces():
    """Removes the namespaces and temporary directories of this file
    left by a run that was killed (SIGKILL): their creator's pid no longer
    exists."""
    r = cmd("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"^{NS_PREFIX}(\d+)-\d+-[csr]$", name)
        if m and int(m.group(1)) != os.getpid() and \
                not pid_alive(int(m.group(1))):
            cmd("ip", "netns", "del", name, check=False)
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        m = re.match(rf"^{TMP_PREFIX}(\d+)-", name)
        if m and int(m.group(1)) != os.getpid() and \
                not pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


class TempDir(t.TempDir):
    """tmtest.TempDir named after this process, so that the files of a
    killed run are found and removed by the next one."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-")


_lab_ids = itertools.count()
_open_labs = []


@atexit.register
def _close_open_labs():
    """Interrupted runs (Ctrl-C skips tearDown) still remove everything."""
    for lab in list(_open_labs):
        lab.close()


class Lab:
    """The topology of one test: namespaces, veth, processes, files."""

    def __init__(self, ipv6=False, router=False):
        assert not (ipv6 and router), "the router is IPv4 only"
        k = next(_lab_ids)
        pid = os.getpid()
        self.cns = f"{NS_PREFIX}{pid}-{k}-c"
        self.sns = f"{NS_PREFIX}{pid}-{k}-s"
        self.rns = f"{NS_PREFIX}{pid}-{k}-r" if router else None
        self.cif = f"tmc{pid}x{k}"[:15]
        self.sif = f"tms{pid}x{k}"[:15]
        self.rcif = f"tmr{pid}x{k}c"[:15]  # router, client side
        self.rsif = f"tmr{pid}x{k}s"[:15]  # router, service side
        self.ipv6 = ipv6
        self.family = socket.AF_INET6 if ipv6 else socket.AF_INET
        x = (pid + k) % 120 + 1
        if ipv6:
            self.caddr, self.saddr, self.plen = "fd77::1", "fd77::2", 64
        elif router:
            # Two subnets: 10.77.X.0/24 client side, 10.77.X+128.0/24
            # service side, the router at .254 on both.
            self.caddr, self.saddr = f"10.77.{x}.1", f"10.77.{x + 128}.2"
            self.rcaddr, self.rsaddr = f"10.77.{x}.254", f"10.77.{x + 128}.254"
            self.plen = 24
        else:
            self.caddr, self.saddr = f"10.77.{x}.1", f"10.77.{x}.2"
            self.plen = 24
        self.procs = []
        self.tmp = TempDir()
        self.built = []
        self.server = self.sink = self.capture = None
        self.pcap = self.tmp("capture.pcap")
        self.stats_path = self.tmp("stats.json")

    # topology

    def build(self):
        _open_labs.append(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _addr(self, ns, dev, addr):
        if self.ipv6:
            ns_sysctl(ns, "net.ipv6.conf.all.disable_ipv6", 0)
            ns_sysctl(ns, f"net.ipv6.conf.{dev}.disable_ipv6", 0)
            cmd("ip", "-n", ns, "addr", "add", f"{addr}/{self.plen}",
                "dev", dev, "nodad")
        else:
            cmd("ip", "-n", ns, "addr", "add", f"{addr}/{self.plen}",
                "dev", dev)
        cmd("ip", "-n", ns, "link", "set", dev, "up")

    def _build(self):
        for ns in (self.cns, self.sns, self.rns):
            if ns:
                cmd("ip", "netns", "add", ns)
                self.built.append(ns)
                cmd("ip", "-n", ns, "link", "set", "lo", "up")
        # Both ends of a veth are created directly inside their namespaces:
        # nothing is ever left in the root namespace.
        if self.rns is None:
            cmd("ip", "link", "add", self.cif, "netns", self.cns, "type",
                "veth", "peer", "name", self.sif, "netns", self.sns)
            self._addr(self.cns, self.cif, self.caddr)
            self._addr(self.sns, self.sif, self.saddr)
            return
        cmd("ip", "link", "add", self.cif, "netns", self.cns, "type",
            "veth", "peer", "name", self.rcif, "netns", self.rns)
        cmd("ip", "link", "add", self.sif, "netns", self.sns, "type",
            "veth", "peer", "name", self.rsif, "netns", self.rns)
        self._addr(self.cns, self.cif, self.caddr)
        self._addr(self.rns, self.rcif, self.rcaddr)
        self._addr(self.rns, self.rsif, self.rsaddr)
        self._addr(self.sns, self.sif, self.saddr)
        if not ns_sysctl(self.rns, "net.ipv4.ip_forward", 1):
            raise RuntimeError("cannot enable forwarding in the router")
        cmd("ip", "-n", self.cns, "route", "add", "default", "via",
            self.rcaddr)
        cmd("ip", "-n", self.sns, "route", "add", "default", "via",
            self.rsaddr)

    def tc(self, ns, *args, check=True):
        return cmd("ip", "netns", "exec", ns, "tc", *args, check=check)

    def close(self):
        for p in reversed(self.procs):
            p.kill()
        self.procs = []
        for ns in self.built:
            cmd("ip", "netns", "del", ns, check=False)
        self.built = []
        self.tmp.cleanup()
        if self in _open_labs:
            _open_labs.remove(self)

    # processes

    def spawn(self, ns, argv, name):
        p = Proc(["ip", "netns", "exec", ns, *argv], name)
        self.procs.append(p)
        return p

    def start_server(self):
        self.server = self.spawn(
            self.sns, [sys.executable, SERVER, self.saddr, PORT], "server")
        if self.server.wait_line("out", "listening on", 20) is None:
            raise RuntimeError("nsserver did not start: " +
                               self.server.text())
        return self.server

    def start_sink(self, expect):
        self.sink = NsSink(self, expect)
        return self.sink

    def start_capture(self, *extra):
        argv = [*t.WRAPPER, t.TAPMIRROR, "capture", "-i", self.sif,
                "-p", PORT, "--to", f"127.0.0.1:{self.sink.port}",
                "-o", self.pcap, "--stats-json", self.stats_path, *extra]
        if KERNEL_BUFFER:
            argv += ["--kernel-buffer", KERNEL_BUFFER]
        self.capture = self.spawn(self.sns, argv, "tapmirror")
        if self.capture.wait_line("err", "capturing TCP port", 30) is None:
            raise AssertionError("tapmirror did not start capturing: " +
                                 self.capture.text())
        return self.capture

    def stop_capture(self):
        """SIGINT; the exit status (None: it did not exit)."""
        self.capture.signal(signal.SIGINT)
        code = self.capture.wait(STOP_TIMEOUT)
        if code is None:
            self.capture.kill()
        return code

    def stats(self):
        return t.read_json(self.stats_path)


class NsSink:
    """tmtest.Sink, started inside the service namespace: a tmsink on its
    loopback that exits by itself once `expect` connections reached EOF."""

    def __init__(self, lab, expect, timeout=240):
        self.manifest_path = lab.tmp("sink.json")
        self.proc = lab.spawn(lab.sns, [
            t.TMSINK, "--listen", "127.0.0.1:0",
            "--manifest", self.manifest_path, "--quiet",
            "--timeout", f"{int(timeout * t.SLOW)}s",
            "--expect", expect], "tmsink")
        line = self.proc.wait_line("out", "listening on ", 20)
        if line is None:
            raise RuntimeError(f"tmsink did not start: {self.proc.text()}")
        self.address = line[len("listening on "):]
        self.port = int(self.address.rsplit(":", 1)[1])
        self.manifest = None
        self.code = None

    def wait(self, timeout=SINK_WAIT, feeder=None):
        """Waits for tmsink to exit by itself; stops it after `timeout`, or
        as soon as `feeder` (the tapmirror Proc) has exited. Returns the
        manifest."""
        deadline = time.monotonic() + timeout * t.SLOW
        while True:
            self.code = self.proc.wait(0.2)
            if self.code is not None or time.monotonic() > deadline:
                break
            if feeder is not None and feeder.p.poll() is not None:
                self.code = self.proc.wait(1)
                break
        if self.code is None:
            self.proc.signal(signal.SIGTERM)
            self.code = self.proc.wait(20)
            if self.code is None:
                self.proc.kill()
        with open(self.manifest_path) as f:
            self.manifest = json.load(f)
        return self.manifest

    def streams(self):
        return sorted((c["bytes"], c["fnv64"])
                      for c in self.manifest["connections"])


# --- HTTP clients -----------------------------------------------------------

class RecordingSocket:
    """Wraps a client socket and keeps every piece it sends: the exact
    client byte stream of the connection, piece by piece."""

    def __init__(self, sock):
        self._sock = sock
        self.pieces = []

    def sendall(self, data, *flags):
        data = bytes(data)
        self._sock.sendall(data, *flags)
        self.pieces.append(data)

    def send(self, data, *flags):
        n = self._sock.send(data, *flags)
        self.pieces.append(bytes(data[:n]))
        return n

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def stream(self):
        return b"".join(self.pieces)


class NsHTTPConnection(http.client.HTTPConnection):
    """http.client over a socket of the client namespace, recording what
    it sends. Every TCP connection it opens is kept in `sockets`."""

    def __init__(self, lab):
        super().__init__(lab.saddr, PORT, timeout=CLIENT_TIMEOUT)
        self.lab = lab
        self.sockets = []

    def connect(self):
        s = in_netns(self.lab.cns, socket.socket, self.lab.family,
                     socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.connect((self.host, self.port))
        except BaseException:
            s.close()
            raise
        self.sock = RecordingSocket(s)
        self.sockets.append(self.sock)


def get(size):
    return {"method": "GET", "path": f"/?size={size}"}


def post(body):
    return {"method": "POST", "path": "/upload", "body": body}


def post_chunks(chunks, pause):
    """A POST whose body goes out as separate sends `pause` apart (with
    TCP_NODELAY: one segment each)."""
    return {"method": "POST", "path": "/chunks", "chunks": chunks,
            "pause": pause}


def run_plan(lab, plan):
    """One keep-alive client connection running the requests of `plan`;
    checks every answer. Returns the RecordingSockets it used."""
    conn = NsHTTPConnection(lab)
    try:
        for req in plan:
            if "chunks" in req:
                body = b"".join(req["chunks"])
                conn.putrequest("POST", req["path"])
                conn.putheader("Content-Type", "application/octet-stream")
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders()
                for chunk in req["chunks"]:
                    time.sleep(req["pause"])
                    conn.send(chunk)
            else:
                body = req.get("body")
                headers = {}
                if body is not None:
                    headers["Content-Type"] = "application/octet-stream"
                conn.request(req["method"], req["path"], body=body,
                             headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise AssertionError(f"HTTP {resp.status} for {req['path']}")
            if req["method"] == "GET":
                want = int(req["path"].split("=")[1])
                if len(data) != want:
                    raise AssertionError(f"GET answered {len(data)} bytes, "
                                         f"want {want}")
            else:
                got = json.loads(data)
                if got != {"len": len(body),
                           "sha256": hashlib.sha256(body).hexdigest()}:
                    raise AssertionError(f"the service received {got}, "
                                         f"the client sent {len(body)} bytes")
    finally:
        conn.close()
    return conn.sockets


def run_clients(lab, plans, parallel):
    """Runs every plan as one client connection, `parallel` at a time.
    Returns one RecordingSocket per TCP connection opened."""
    results = [None] * len(plans)
    errors = []
    sem = threading.Semaphore(parallel)

    def worker(i):
        with sem:
            try:
                results[i] = run_plan(lab, plans[i])
            except Exception as e:  # reported below
                errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(len(plans))]
    for th in threads:
        th.start()
    deadline = time.monotonic() + CLIENT_JOIN * t.SLOW
    for th in threads:
        th.join(max(0.1, deadline - time.monotonic()))
    if any(th.is_alive() for th in threads):
        errors.append("clients still running after "
                      f"{CLIENT_JOIN * t.SLOW:.0f}s")
    if errors:
        raise AssertionError("; ".join(errors[:5]))
    return [s for socks in results for s in socks]


def web_plans(seed, n, large, large_size, small_max):
    """`n` keep-alive connections: `large` of them upload one or two large
    bodies, the others make 2 to 6 GET or POST requests each."""
    rng = random.Random(seed)
    plans = []
    for i in range(n):
        reqs = []
        if i < large:
            for _ in range(rng.randint(1, 2)):
                reqs.append(post(rng.randbytes(rng.randint(*large_size))))
            if rng.random() < 0.5:
                reqs.append(get(rng.randint(0, 4000)))
        else:
            for _ in range(rng.randint(2, 6)):
                if rng.random() < 0.35:
                    reqs.append(get(rng.randint(0, 20000)))
                else:
                    reqs.append(post(rng.randbytes(rng.randint(0,
                                                               small_max))))
        plans.append(reqs)
    rng.shuffle(plans)
    return plans


LOWER = bytes(ord("a") + i % 26 for i in range(256))  # translate table


def filler(rng, n):
    """`n` lowercase bytes: never "DROP"."""
    return rng.randbytes(n).translate(LOWER)


def drop_plans(seed, n, pause):
    """Connections whose POST bodies go out in separate segments of 300 to
    1200 bytes (under one MSS, over the filter's 200-byte guard); some
    start with "DROP" (never two in a row, so each is its own hole): first,
    middle and last in a body, and a body's last segment before the next
    request or the connection's close."""
    rng = random.Random(seed)
    plans = []
    for i in range(n):
        reqs = []
        for _ in range(rng.randint(2, 3)):
            if rng.random() < 0.25:
                reqs.append(get(rng.randint(0, 3000)))
            chunks = []
            prev_drop = False
            for _ in range(rng.randint(2, 5)):
                size = rng.randint(300, 1200)
                if not prev_drop and rng.random() < 0.4:
                    chunks.append(b"DROP" + filler(rng, size - 4))
                    prev_drop = True
                else:
                    chunks.append(filler(rng, size))
                    prev_drop = False
            reqs.append(post_chunks(chunks, pause))
        plans.append(reqs)
    # At least one connection ends right after a dropped segment.
    plans[0][-1]["chunks"][-1] = b"DROP" + filler(rng, 700)
    if len(plans[0][-1]["chunks"]) > 1 and \
            plans[0][-1]["chunks"][-2].startswith(b"DROP"):
        plans[0][-1]["chunks"][-2] = filler(rng, 500)
    return plans


def signature(data):
    return (len(data), t.fnv64(data))


# --- tests -------------------------------------------------------------------

def probe_environment():
    """None if namespaces, veth and capture are usable, else the reason."""
    if os.name != "posix" or not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, tc, capture)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} (iproute2) is not installed"
    try:
        remove_stale_namespaces()
        lab = Lab().build()
        lab.close()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return f"cannot build a veth between two namespaces: {e}"
    return None


def tc_dropped(lab, ns, dev):
    """Packets the root qdisc of `dev` dropped (its count includes its
    children's)."""
    r = lab.tc(ns, "-s", "qdisc", "show", "dev", dev, check=False)
    m = re.search(r"^qdisc \S+ \S+ root.*?\n.*?dropped (\d+)", r.stdout,
                  re.M)
    return int(m.group(1)) if m else 0


class NetnsLive(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global REASON
        REASON = probe_environment()
        if REASON:
            print(f"skipping netns tests: {REASON}", flush=True)

    def setUp(self):
        if REASON:
            self.skipTest(REASON)
        self.lab = None
        self.started = time.monotonic()

    def tearDown(self):
        if self.lab is not None:
            self.lab.close()
        print(f"  [{self.id().rsplit('.', 1)[-1]}: "
              f"{time.monotonic() - self.started:.1f}s]", file=sys.stderr,
              flush=True)

    def new_lab(self, ipv6=False, router=False):
        self.lab = Lab(ipv6=ipv6, router=router).build()
        return self.lab

    def info(self, msg):
        print(f"  {msg}", file=sys.stderr, flush=True)

    # the common session: receiver, capture, clients, stop

    def session(self, plans, parallel, capture_args=()):
        """Runs the clients under capture, waits for the receiver to have
        every connection, stops tapmirror with SIGINT; returns (client
        sockets, stats) once tapmirror exited 0."""
        lab = self.lab
        lab.start_server()
        sink = lab.start_sink(expect=len(plans))
        lab.start_capture(*capture_args)
        began = time.monotonic()
        socks = run_clients(lab, plans, parallel)
        clients_done = time.monotonic()
        sink.wait(SINK_WAIT, feeder=lab.capture)
        sink_done = time.monotonic()
        code = lab.stop_capture()
        self.info(f"clients {clients_done - began:.1f}s, receiver complete "
                  f"{sink_done - clients_done:.1f}s later, tapmirror "
                  f"stopped in {time.monotonic() - sink_done:.1f}s")
        err = lab.capture.text()
        self.assertEqual(code, 0, f"tapmirror exit status {code}:\n{err}")
        self.assertTrue(os.path.exists(lab.stats_path), err)
        st = lab.stats()
        self.info(f"captured {st['source']['packets']} packets, "
                  f"{st['source']['kernel_drops']} dropped by the kernel")
        return socks, st

    def check_all_delivered(self, socks, st):
        lab = self.lab
        n = len(socks)
        err = lab.capture.text()
        want = sorted(signature(s.stream()) for s in socks)
        got = lab.sink.streams()
        ctx = (f"\nflows {st['flows']}\ntarget {st['targets'][0]}\n"
               f"source {st['source']}\ntmsink exit {lab.sink.code}\n{err}")
        self.assertEqual(len(got), n, "receiver connections" + ctx)
        self.assertEqual(got, want, "receiver streams differ" + ctx)
        self.assertEqual(st["flows"]["seen"], n, ctx)
        self.assertEqual(st["flows"]["completed"], n, ctx)
        self.assertEqual(st["flows"]["gaps"], 0, ctx)
        self.assertEqual(st["flows"]["gap_bytes"], 0, ctx)
        self.assertEqual(st["flows"]["payload_bytes"],
                         sum(w[0] for w in want), ctx)
        self.assertEqual(st["targets"][0]["connections"], n, ctx)
        self.assertEqual(st["targets"][0]["flows_dropped"], 0, ctx)
        self.assertEqual(st["targets"][0]["bytes_delivered"],
                         sum(w[0] for w in want), ctx)
        self.assertEqual(st["source"]["kernel_drops"], 0, ctx)

    def check_summary(self, socks):
        """The output capture parses and holds the same connections."""
        r = t.run(["summary", self.lab.pcap, "-p", PORT, "--json",
                   "--flows", "0"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["connections"], len(socks), doc)
        self.assertFalse(doc["truncated"], doc)
        self.assertEqual(sorted(f["client_bytes"] for f in doc["flows"]),
                         sorted(len(s.stream()) for s in socks))
        return doc

    # 1

    def test_every_connection_arrives_complete(self):
        self.new_lab()
        plans = web_plans(seed=1, n=30, large=6, large_size=(150_000,
                                                             400_000),
                          small_max=30_000)
        socks, st = self.session(plans, parallel=6)
        self.assertEqual(len(socks), 30)
        self.check_all_delivered(socks, st)
        self.check_summary(socks)

    # 2

    def one_segment_packets(self):
        """No GSO on the veth: every TCP segment is its own packet, so
        loss, reordering and duplication hit single segments, as on a
        wire. Best effort (older iproute2 lacks gso_max_segs)."""
        for ns, dev in ((self.lab.cns, self.lab.cif),
                        (self.lab.sns, self.lab.sif)):
            cmd("ip", "-n", ns, "link", "set", "dev", dev, "gso_max_segs",
                "1", check=False)

    def impaired_run(self, seed, drops):
        """Test 1's checks on a lossy network; `drops` lists the
        (namespace, device) whose qdiscs lose packets. Returns the number
        of segments the clients' TCP retransmitted."""
        plans = web_plans(seed=seed, n=20, large=4, large_size=(60_000,
                                                                200_000),
                          small_max=20_000)
        lab = self.lab
        before = tcp_retransmits(lab.cns)
        socks, st = self.session(plans, parallel=5)
        after = tcp_retransmits(lab.cns)
        dropped = [tc_dropped(lab, ns, dev) for ns, dev in drops]
        retrans = after - before
        self.info(f"packets lost on the network: {dropped} (toward the "
                  f"service, toward the client); client TCP retransmitted "
                  f"{retrans} segments; tapmirror segments: "
                  f"{st.get('segments')}")
        self.assertGreater(dropped[0], 0, "the impairment lost nothing")
        self.check_all_delivered(socks, st)
        self.check_summary(socks)
        return retrans

    def test_netem_loss_reorder_duplicate_is_reassembled(self):
        lab = self.new_lab()
        if shutil.which("modprobe"):
            cmd("modprobe", "sch_netem", check=False)
        r = lab.tc(lab.cns, "qdisc", "add", "dev", lab.cif, "root", "netem",
                   "loss", "5%", "reorder", "25%", "50%", "duplicate", "3%",
                   "delay", "5ms", check=False)
        if r.returncode != 0:
            self.skipTest("the netem qdisc is not available "
                          f"(CONFIG_NET_SCH_NETEM): {r.stderr.strip()}")
        self.one_segment_packets()
        # The service's answers and acknowledgements get lost too.
        lab.tc(lab.sns, "qdisc", "add", "dev", lab.sif, "root", "netem",
               "loss", "2%", "delay", "2ms")
        retrans = self.impaired_run(
            seed=2, drops=[(lab.cns, lab.cif), (lab.sns, lab.sif)])
        self.assertGreater(retrans, 0, "nothing was lost on the wire")

    def test_router_loss_reorder_duplicate_is_reassembled(self):
        """The same without netem, from what minimal kernels have (htb,
        pfifo, u32, mirred): a router namespace between client and
        service forwards the packets, and its egress qdiscs lose and delay
        some of them, where the sender cannot see it (a drop in the
        sender's own qdisc is reported to its TCP, which then just sends
        again: no loss on the wire). u32 picks packets by the low bits of
        their IPv4 ID, a per-socket counter, so a retransmission gets a
        new one. Toward the service one data packet in 16 is lost (a pfifo
        that holds nothing) and one in 4 is delayed in a 20 Mbit/s class
        that later packets overtake (reordering); toward the client one
        packet in 16 is lost (answers and acknowledgements the capture did
        see); one client packet in 32 is also mirrored straight to the
        service side (a duplicate the capture sees and the service
        drops). SYNs and packets under 256 bytes pass."""
        lab = self.new_lab(router=True)
        self.one_segment_packets()
        r, rc, rs = lab.rns, lab.rcif, lab.rsif
        syn = ("match", "u8", "0x02", "0x02", "at", "33")
        small = ("match", "u16", "0x0000", "0xff00", "at", "2")

        def ip_id(value, mask):
            return ("match", "u16", value, mask, "at", "4")

        def htb(dev, slow):
            yield (r, "qdisc", "add", "dev", dev, "root", "handle", "1:",
                   "htb", "default", "10")
            yield (r, "class", "add", "dev", dev, "parent", "1:",
                   "classid", "1:10", "htb", "rate", "1gbit")
            yield (r, "class", "add", "dev", dev, "parent", "1:",
                   "classid", "1:30", "htb", "rate", "1gbit")
            yield (r, "qdisc", "add", "dev", dev, "parent", "1:30",
                   "handle", "30:", "pfifo", "limit", "0")
            if slow:
                yield (r, "class", "add", "dev", dev, "parent", "1:",
                       "classid", "1:20", "htb", "rate", "20mbit",
                       "ceil", "20mbit")

        def u32(dev, prio, flowid, *match):
            return (r, "filter", "add", "dev", dev, "parent", "1:", "prio",
                    str(prio), "protocol", "ip", "u32", *match,
                    "flowid", flowid)

        steps = [
            *htb(rs, slow=True),
            u32(rs, 1, "1:10", *syn),
            u32(rs, 2, "1:10", *small),
            u32(rs, 3, "1:30", *ip_id("0x0005", "0x000f")),
            u32(rs, 4, "1:20", *ip_id("0x0000", "0x0003")),
            *htb(rc, slow=False),
            u32(rc, 1, "1:10", *syn),
            u32(rc, 2, "1:30", *ip_id("0x000a", "0x000f")),
            (r, "qdisc", "add", "dev", rc, "handle", "ffff:", "ingress"),
            (r, "filter", "add", "dev", rc, "parent", "ffff:", "prio", "1",
             "protocol", "ip", "u32", *ip_id("0x0003", "0x001f"),
             "action", "mirred", "egress", "mirror", "dev", rs),
        ]
        for step in steps:
            res = lab.tc(*step, check=False)
            if res.returncode != 0:
                self.skipTest(f"tc {' '.join(step[1:])}: "
                              f"{res.stderr.strip()} (htb, pfifo, u32 and "
                              "mirred are needed)")
        retrans = self.impaired_run(seed=3, drops=[(r, rs), (r, rc)])
        self.assertGreater(retrans, 0, "nothing was lost on the wire")

    # 3

    def test_capture_loss_becomes_counted_gaps(self):
        lab = self.new_lab()
        # One send, one segment: no autocorking of the small sends.
        ns_sysctl(lab.cns, "net.ipv4.tcp_autocorking", 0)
        plans = drop_plans(seed=4, n=12, pause=0.02)
        # `greater 200` first: BPF rejects a packet whose load runs past
        # its end, so a bare SYN, ACK or FIN must never reach the load.
        drop = "greater 200 and tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x44524f50"
        # These are HTTP POSTs: by default a request a hole falls in is
        # abandoned (--gap-policy resync, e2e.httpflow tests it); here the
        # byte stream itself is checked, so the bytes after each hole are
        # spliced on as they always were.
        socks, st = self.session(plans, parallel=6,
                                 capture_args=("-f", f"not ({drop})",
                                               "--gap-policy", "splice"))
        n = len(socks)
        self.assertEqual(n, len(plans))
        dropped = [p for s in socks for p in s.pieces
                   if p.startswith(b"DROP")]
        want = sorted(signature(b"".join(p for p in s.pieces
                                         if not p.startswith(b"DROP")))
                      for s in socks)
        err = lab.capture.text()
        ctx = (f"\nflows {st['flows']}\ntarget {st['targets'][0]}\n"
               f"tmsink exit {lab.sink.code}\n{err}")
        self.info(f"{len(dropped)} segments ({sum(map(len, dropped))} bytes) "
                  "filtered out of the capture")
        self.assertEqual(lab.sink.streams(), want,
                         "receiver streams differ from the client bytes "
                         "minus the filtered segments" + ctx)
        self.assertEqual(st["flows"]["seen"], n, ctx)
        self.assertEqual(st["flows"]["completed"], n, ctx)
        self.assertEqual(st["flows"]["reset"], 0, ctx)
        self.assertEqual(st["flows"]["gaps"], len(dropped), ctx)
        self.assertEqual(st["flows"]["gap_bytes"], sum(map(len, dropped)),
                         ctx)
        self.assertEqual(st["targets"][0]["connections"], n, ctx)
        self.assertEqual(st["targets"][0]["flows_dropped"], 0, ctx)
        self.assertEqual(st["source"]["kernel_drops"], 0, ctx)
        r = t.run(["summary", lab.pcap, "-p", PORT, "--json", "--flows",
                   "0"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["connections"], n)

    # 4

    def test_non_loopback_target_is_warned_about(self):
        """--to an address that is not loopback (the client namespace's,
        seen from the service namespace) prints a warning that production
        traffic leaves the machine, and still delivers every byte."""
        lab = self.new_lab()
        cap, man = t.gen(lab.tmp, "remote", "--flows", 5, "--size", 3000)
        manifest = lab.tmp("remote-sink.json")
        sink = lab.spawn(lab.cns, [
            t.TMSINK, "--listen", f"{lab.caddr}:0", "--manifest", manifest,
            "--quiet", "--expect", 5, "--timeout", "60s"], "remote-sink")
        line = sink.wait_line("out", "listening on ", 20)
        self.assertIsNotNone(line, sink.text())
        to = line[len("listening on "):]
        r = subprocess.run(["ip", "netns", "exec", lab.sns, *t.WRAPPER,
                            t.TAPMIRROR, "replay", cap, "-p", str(man["port"]),
                            "--to", to], capture_output=True, text=True,
                           timeout=60 * t.SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        warnings = [l for l in r.stderr.splitlines()
                    if "production traffic will leave this machine" in l]
        self.assertEqual(len(warnings), 1, r.stderr)
        self.assertTrue(warnings[0].startswith("tapmirror: "), warnings[0])
        self.assertIn(to, warnings[0])
        self.assertEqual(sink.wait(30), 0, sink.text())
        with open(manifest) as f:
            got = sorted((c["bytes"], c["fnv64"])
                         for c in json.load(f)["connections"])
        self.assertEqual(got, t.expected_streams(man))

    def test_ipv6_every_connection_arrives_complete(self):
        self.new_lab(ipv6=True)
        plans = web_plans(seed=5, n=20, large=4, large_size=(100_000,
                                                             300_000),
                          small_max=30_000)
        socks, st = self.session(plans, parallel=5)
        self.assertEqual(len(socks), 20)
        self.check_all_delivered(socks, st)
        self.check_summary(socks)


if __name__ == "__main__":
    t.main()
