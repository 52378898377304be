#!/usr/bin/env python3
"""Smoke test of `tapmirror mirror --all-pods` against a real cluster.

    python3 tests/cluster/smoke.py --context kind-dev [--tapmirror build/default/tapmirror]

In a namespace of its own (tapmirror-smoke-<random>, labelled
app.kubernetes.io/created-by=tapmirror-smoke), in the kubeconfig context
named with --context and no other, it:

  1. deploys a small HTTP server (a Deployment of --replicas pods) and a
     ClusterIP Service in front of it;
  2. starts `tapmirror mirror deployment/smoke-web --all-pods` with --to a
     receiver this script runs on 127.0.0.1, and waits until every pod is
     being captured;
  3. runs a client pod that sends --requests requests, each with a path of
     its own, to the Service's cluster DNS name (real pod-to-Service
     traffic; `kubectl port-forward` would reach the pod over loopback,
     which tapmirror rightly leaves out);
  4. checks that the receiver got every request line, stops tapmirror the
     way Ctrl-C does and checks its exit status, the capture file and the
     statistics;
  5. deletes the namespace, on every exit path (failure, Ctrl-C, SIGTERM).

The current context is never used: kubectl and tapmirror always get
--context. Without --context, or when the cluster does not answer, it
prints the reason and exits 77 (skipped) before creating anything.

Exit status: 0 passed, 1 failed, 2 usage or configuration error (e.g. a
context that is not in the kubeconfig), 77 skipped, 130 interrupted.
Python 3 standard library only.
"""
import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_SKIP, EXIT_INTERRUPTED = 0, 1, 2, 77, 130

DEFAULT_SERVER_IMAGE = "docker.io/traefik/whoami:v1.10"
DEFAULT_SERVER_PORT = 80
DEFAULT_CLIENT_IMAGE = "docker.io/curlimages/curl:8.10.1"
APP = "smoke-web"
CREATED_BY = "tapmirror-smoke"
LABELS = {"app.kubernetes.io/created-by": CREATED_BY}

# What kubectl prints when no API server answers at all (as opposed to one
# that answers with an error, which is a failure, not a skip).
UNREACHABLE = re.compile(
    r"was refused|connection refused|Unable to connect to the server|"
    r"no such host|i/o timeout|context deadline exceeded|Client\.Timeout|"
    r"network is unreachable|no route to host|connection reset by peer|"
    r"TLS handshake timeout|server misbehaving")


class Skip(Exception):
    """The test cannot run here; the message says why."""


class Fail(Exception):
    """A check failed; the message says which and how."""


class Usage(Exception):
    """The invocation or the kubeconfig is wrong."""


class Terminated(Exception):
    """SIGTERM or SIGHUP: clean up as for Ctrl-C."""


def say(line=""):
    print(line, flush=True)


def ok(what):
    say(f"  \u2713 {what}")


def bad(what):
    say(f"  \u2717 {what}")


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="smoke.py",
        description="tapmirror smoke test against a real cluster "
                    "(exit 0 pass, 1 fail, 2 usage, 77 skipped)")
    p.add_argument("--context", default="",
                   help="kubeconfig context to use (required: the current "
                        "context is never used)")
    p.add_argument("--kubeconfig", default="",
                   help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--kubectl", default="",
                   help="kubectl binary (default: kubectl on PATH)")
    p.add_argument("--tapmirror", default="build/default/tapmirror",
                   help="tapmirror binary (default: %(default)s)")
    p.add_argument("--server-image", default=DEFAULT_SERVER_IMAGE,
                   help="image of the HTTP server (default: %(default)s)")
    p.add_argument("--server-port", type=int, default=DEFAULT_SERVER_PORT,
                   help="port the server image listens on (default: %(default)s)")
    p.add_argument("--server-command", default="",
                   help="shell command that starts the server, for images "
                        "without a suitable entrypoint (run with sh -c)")
    p.add_argument("--client-image", default=DEFAULT_CLIENT_IMAGE,
                   help="image with sh and curl for the client pod "
                        "(default: %(default)s)")
    p.add_argument("--tap-image", default="",
                   help="passed to tapmirror --tap-image (default: tapmirror's)")
    p.add_argument("--replicas", type=int, default=2,
                   help="server pods, all tapped with --all-pods (default: %(default)s)")
    p.add_argument("--requests", type=int, default=20,
                   help="requests the client sends (default: %(default)s)")
    p.add_argument("--timeout", type=int, default=180,
                   help="seconds each step may take: rollout, tap, client, "
                        "delivery, namespace deletion (default: %(default)s)")
    p.add_argument("--keep", action="store_true",
                   help="keep the namespace and the work directory for debugging")
    a = p.parse_args(argv)
    if a.replicas < 1 or a.requests < 1 or a.timeout < 10:
        p.error("--replicas and --requests must be at least 1, --timeout at least 10")
    if not 1 <= a.server_port <= 65535:
        p.error("--server-port must be 1-65535")
    return a


class Kubectl:
    """kubectl pinned to one context: every call carries --context (and
    --kubeconfig when given), so the current context never matters."""

    def __init__(self, exe, context, kubeconfig):
        self.exe = exe
        self.pin = ["--context", context]
        if kubeconfig:
            self.pin += ["--kubeconfig", kubeconfig]

    def run(self, *args, input=None, timeout=60):
        try:
            r = subprocess.run([self.exe, *self.pin, *args], input=input,
                               stdin=None if input is not None else subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "",
                                               f"timed out after {timeout}s")
        return r

    def ok(self, *args, input=None, timeout=60, what=None):
        r = self.run(*args, input=input, timeout=timeout)
        if r.returncode != 0:
            raise Fail(f"{what or 'kubectl ' + ' '.join(args)}: "
                       f"{last_line(r.stderr) or 'exit ' + str(r.returncode)}")
        return r.stdout


def last_line(text):
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


class Receiver:
    """A TCP listener on 127.0.0.1 that keeps every byte each connection
    delivers: the local copy of the service tapmirror replays into."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.streams = []
        self.connections = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                buf = bytearray()
                self.streams.append(buf)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True).start()

    def _read(self, conn, buf):
        with conn:
            conn.settimeout(600)
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    buf.extend(data)

    def request_numbers(self, token):
        want = re.compile(rb"GET /tapmirror-smoke/" + token.encode() +
                          rb"/(\d+) HTTP/1\.[01]\r\n")
        with self.lock:
            data = [bytes(s) for s in self.streams]
        return {int(m.group(1)) for s in data for m in want.finditer(s)}

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()


class Tapmirror:
    """tapmirror mirror in its own session (only this script signals it),
    its stderr copied to a log file and scanned for the capture lines."""

    def __init__(self, argv, log_path):
        self.argv = argv
        self.log = open(log_path, "w")
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     errors="replace", start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.log.write(line)
            self.log.flush()
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def captured_pods(self):
        pods = set()
        for ln in self.lines:
            m = (re.search(r"capturing TCP port \d+ in pod (\S+)", ln) or
                 re.search(r"capturing in pod (\S+) too", ln))
            if m:
                pods.add(m.group(1))
        return pods

    def wait_capturing(self, count, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.captured_pods()) < count:
                left = deadline - time.monotonic()
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise Fail("tapmirror exited with status "
                               f"{self.proc.returncode} before capturing: "
                               f"{self.tail()}")
                if left <= 0:
                    raise Fail(f"tapmirror captured {len(self.captured_pods())} "
                               f"of {count} pods after {timeout}s: {self.tail()}")
                self.cond.wait(min(left, 1.0))
        return self.captured_pods()

    def tail(self, n=3):
        return " | ".join(self.lines[-n:]) or "(nothing on stderr)"

    def interrupt(self, timeout):
        """Stops it as Ctrl-C does; kills it if it outlives `timeout`.
        Returns its exit status, or None if it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.reader.join(5)
                return None
        self.reader.join(5)
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            self.interrupt(30)
        self.log.close()


def manifests(ns, a, token):
    labels = dict(LABELS)
    pod_labels = {"app": APP, **LABELS}
    server = {"name": "web", "image": a.server_image,
              "ports": [{"containerPort": a.server_port, "protocol": "TCP"}],
              "readinessProbe": {"tcpSocket": {"port": a.server_port},
                                 "periodSeconds": 2}}
    if a.server_command:
        server["command"] = ["sh", "-c", a.server_command]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP, "namespace": ns, "labels": labels},
        "spec": {"replicas": a.replicas,
                 "selector": {"matchLabels": {"app": APP}},
                 "template": {"metadata": {"labels": pod_labels},
                              "spec": {"containers": [server]}}}}
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": APP, "namespace": ns, "labels": labels},
        "spec": {"selector": {"app": APP},
                 "ports": [{"port": 80, "targetPort": a.server_port,
                            "protocol": "TCP"}]}}
    # One curl per request: a new connection each, so the Service spreads
    # them over the pods. Retries may repeat a request; each path only
    # needs to arrive once.
    url = f"http://{APP}.{ns}.svc/tapmirror-smoke/{token}/"
    script = (f"i=1; while [ $i -le {a.requests} ]; do "
              f"curl -sS -o /dev/null --max-time 10 --retry 5 "
              f"--retry-connrefused --retry-delay 1 {shlex.quote(url)}$i "
              f"|| exit 1; i=$((i+1)); done; echo sent {a.requests}")
    client = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "smoke-client", "namespace": ns, "labels": labels},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "client", "image": a.client_image,
                                 "command": ["sh", "-c", script]}]}}
    return deployment, service, client, url


def probe(kc, timeout):
    """The API server's version, or Skip when no cluster answers."""
    r = kc.run("get", "--raw", "/version", f"--request-timeout={timeout}s",
               timeout=timeout + 30)
    if r.returncode == 0:
        try:
            return json.loads(r.stdout).get("gitVersion", "?")
        except ValueError:
            raise Fail(f"GET /version did not return JSON: {r.stdout[:200]!r}")
    reason = last_line(r.stderr) or f"kubectl exit {r.returncode}"
    if r.returncode == 124 or UNREACHABLE.search(r.stderr):
        raise Skip(f"the cluster of context {kc.pin[1]!r} does not answer: {reason}")
    raise Fail(f"the cluster of context {kc.pin[1]!r} answered with an error: {reason}")


def wait_pod_done(kc, ns, name, timeout):
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        r = kc.run("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}",
                   "--request-timeout=20s", timeout=40)
        phase = r.stdout.strip() if r.returncode == 0 else phase
        if phase in ("Succeeded", "Failed"):
            return phase
        time.sleep(2)
    return phase or "unknown"


def diagnose(kc, ns):
    """What the namespace looks like, for the report of a failure."""
    for args in (("get", "pods", "-o", "wide"),
                 ("get", "events", "--sort-by=.lastTimestamp")):
        r = kc.run(*args, "-n", ns, "--request-timeout=20s", timeout=40)
        say(f"    $ kubectl {' '.join(args)} -n {ns}")
        for ln in (r.stdout or r.stderr).strip().splitlines()[-15:]:
            say(f"    {ln}")


def smoke(a, kc, state):
    """The test itself; raises Skip or Fail, returns on success."""
    version = probe(kc, 15)
    ok(f"cluster answers ({version})")
    if not os.access(a.tapmirror, os.X_OK):
        raise Usage(f"no tapmirror binary at {a.tapmirror} (build it: make)")

    ns = f"{CREATED_BY}-{secrets.token_hex(4)}"
    token = secrets.token_hex(6)
    deployment, service, client, url = manifests(ns, a, token)
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": ns, "labels": dict(LABELS)}}
    state["namespace"] = ns        # from here on, cleanup deletes it
    kc.ok("create", "-f", "-", "--request-timeout=30s",
          input=json.dumps(namespace), what=f"creating namespace {ns}")
    ok(f"namespace {ns}")

    kc.ok("create", "-f", "-", "--request-timeout=30s",
          input=json.dumps({"apiVersion": "v1", "kind": "List",
                            "items": [deployment, service]}),
          what="creating the deployment and service")
    r = kc.run("rollout", "status", f"deployment/{APP}", "-n", ns,
               f"--timeout={a.timeout}s", timeout=a.timeout + 30)
    if r.returncode != 0:
        state["diagnose"] = True
        raise Fail(f"deployment {APP} not ready within {a.timeout}s "
                   f"({a.server_image}): {last_line(r.stderr)}")
    ok(f"deployment {APP}: {a.replicas} pods ready ({a.server_image})")

    work = state["work"] = tempfile.mkdtemp(prefix="tapmirror-smoke-")
    receiver = state["receiver"] = Receiver()
    pcap = os.path.join(work, "smoke.pcap")
    stats = os.path.join(work, "stats.json")
    argv = [a.tapmirror, "mirror", f"deployment/{APP}", "-n", ns,
            "-p", str(a.server_port), "--all-pods",
            "--to", f"127.0.0.1:{receiver.port}", "-o", pcap,
            "--stats-json", stats, "--tap-timeout", f"{a.timeout}s",
            "--context", kc.pin[1]]
    if a.kubeconfig:
        argv += ["--kubeconfig", a.kubeconfig]
    if a.kubectl:
        argv += ["--kubectl", kc.exe]
    if a.tap_image:
        argv += ["--tap-image", a.tap_image]
    say(f"    $ {shlex.join(argv)}")
    tm = state["tapmirror"] = Tapmirror(argv, os.path.join(work, "tapmirror.log"))
    pods = tm.wait_capturing(a.replicas, a.timeout + 30)
    ok(f"tapmirror capturing in {len(pods)} pods: {', '.join(sorted(pods))}")

    kc.ok("create", "-f", "-", "--request-timeout=30s",
          input=json.dumps(client), what="creating the client pod")
    phase = wait_pod_done(kc, ns, "smoke-client", a.timeout)
    if phase != "Succeeded":
        logs = kc.run("logs", "smoke-client", "-n", ns,
                      "--request-timeout=20s", timeout=40)
        state["diagnose"] = True
        raise Fail(f"client pod {phase} ({a.client_image}): "
                   f"{last_line(logs.stdout + logs.stderr)}")
    ok(f"client sent {a.requests} requests to {url}N")

    want = set(range(1, a.requests + 1))
    deadline = time.monotonic() + a.timeout
    got = receiver.request_numbers(token)
    while got != want and time.monotonic() < deadline:
        if tm.proc.poll() is not None:
            break
        time.sleep(0.5)
        got = receiver.request_numbers(token)
    missing = sorted(want - got)
    if missing:
        raise Fail(f"receiver got {len(got & want)}/{a.requests} requests "
                   f"({receiver.connections} connections); missing paths "
                   f"{missing[:10]}{' ...' if len(missing) > 10 else ''}; "
                   f"tapmirror: {tm.tail()}")
    ok(f"receiver on 127.0.0.1:{receiver.port} got {a.requests}/{a.requests} "
       f"requests on {receiver.connections} connections")

    code = tm.interrupt(60)
    if code != 0:
        raise Fail(f"tapmirror exited with {code if code is not None else 'no status (killed after 60s)'} "
                   f"after SIGINT: {tm.tail()}")
    ok("tapmirror stopped with status 0 after SIGINT")

    size = os.path.getsize(pcap) if os.path.exists(pcap) else 0
    with open(pcap, "rb") as f:
        held = token.encode() in f.read() if size else False
    if size <= 24 or not held:
        raise Fail(f"capture {pcap}: {size} bytes, "
                   f"{'holds' if held else 'lacks'} the requests")
    ok(f"capture {size} bytes, holds the requests")

    try:
        with open(stats) as f:
            st = json.load(f)
        tapped = st["kubernetes"]["pods"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Fail(f"statistics {stats}: {e}")
    if len(set(tapped)) < a.replicas:
        raise Fail(f"statistics name {len(tapped)} pods, not {a.replicas}: {tapped}")
    ok(f"statistics: {len(set(tapped))} pods tapped")


def cleanup(a, kc, state):
    """Runs on every exit path. Ctrl-C and SIGTERM are ignored while it runs
    (each step is bounded), so a second Ctrl-C cannot leave the namespace."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    tm = state.get("tapmirror")
    if tm:
        tm.close()
    if state.get("receiver"):
        state["receiver"].close()
    ns = state.get("namespace")
    if ns and state.get("diagnose"):
        diagnose(kc, ns)
    if ns and a.keep:
        say(f"  kept namespace {ns}: kubectl --context {shlex.quote(kc.pin[1])} "
            f"delete namespace {ns}")
    elif ns:
        r = kc.run("delete", "namespace", ns, "--ignore-not-found",
                   "--wait=true", f"--timeout={a.timeout}s",
                   f"--request-timeout={a.timeout}s", timeout=a.timeout + 30)
        if r.returncode == 0:
            ok(f"namespace {ns} deleted")
        else:
            bad(f"deleting namespace {ns}: {last_line(r.stderr)}; it may still "
                f"be terminating. Left-overs: kubectl --context "
                f"{shlex.quote(kc.pin[1])} delete namespace -l "
                f"app.kubernetes.io/created-by={CREATED_BY}")
            state["cleanup_failed"] = True
    work = state.get("work")
    if work:
        if a.keep or state.get("failed"):
            say(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def known_contexts(kc):
    r = kc.run("config", "get-contexts", "-o", "name", timeout=30)
    if r.returncode != 0:
        raise Skip(f"cannot read the kubeconfig: {last_line(r.stderr)}")
    return r.stdout.split()


def main(argv):
    try:
        sys.stdout.reconfigure(errors="backslashreplace")
    except AttributeError:
        pass
    a = parse_args(argv)
    say("tapmirror cluster smoke test")
    if not a.context:
        say("SKIP: no kubeconfig context named; the current context is never "
            "used. Run: make cluster-test CONTEXT=kind-dev (or smoke.py "
            "--context NAME); kubectl config get-contexts lists them")
        return EXIT_SKIP
    if a.kubectl and not os.access(a.kubectl, os.X_OK):
        say(f"ERROR: --kubectl {a.kubectl}: not an executable file")
        return EXIT_USAGE
    exe = a.kubectl or shutil.which("kubectl")
    if not exe:
        say("SKIP: kubectl is not on PATH (or name it with --kubectl)")
        return EXIT_SKIP
    kc = Kubectl(exe, a.context, a.kubeconfig)
    state = {}

    def terminated(signum, _frame):
        raise Terminated(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)
    status = EXIT_PASS
    try:
        contexts = known_contexts(kc)
        if a.context not in contexts:
            raise Usage(f"context {a.context!r} is not in the kubeconfig; "
                        f"it has: {', '.join(contexts) or 'none'}")
        say(f"  context {a.context} (never the current context)")
        smoke(a, kc, state)
    except Skip as e:
        say(f"SKIP: {e}")
        status = EXIT_SKIP
    except Usage as e:
        say(f"ERROR: {e}")
        status = EXIT_USAGE
    except Fail as e:
        bad(str(e))
        state["failed"] = True
        status = EXIT_FAIL
    except (KeyboardInterrupt, Terminated) as e:
        bad(f"interrupted ({str(e) or 'SIGINT'}); cleaning up")
        state["failed"] = True
        status = EXIT_INTERRUPTED
    finally:
        cleanup(a, kc, state)
    if status == EXIT_PASS and state.get("cleanup_failed"):
        status = EXIT_FAIL
    if status in (EXIT_PASS, EXIT_FAIL):
        say("PASS" if status == EXIT_PASS else "FAIL")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
