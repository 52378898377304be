#!/usr/bin/env python3
"""Self-test of fakekube.py: drives the REAL kubectl against the fake.

With the gcloud kubectl dispatcher, the version the fake reports picks the
bundled client, so each test runs for kubectl 1.27 (SPDY exec), 1.30 and 1.33
(WebSocket exec). With a plain kubectl, only its own minor version is tested.
Exit code 77 (CTest SKIP_RETURN_CODE) if kubectl is not installed.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True          # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from kubetest import (FakeKube, LISTENING, TAP, TCPDUMP_ARGV, WEB_SELECTOR, WEB_SELECTOR_STR,  # noqa: E402
                      kubectl_path, make_pcap, standard_state, tap_container)

NS, POD, POD2 = "shop", "web-7d4b9c6f5d-x2k8q", "web-7d4b9c6f5d-m9vtl"
EXEC = ("exec", "-i", "-n", NS, POD, "-c", TAP, "--", *TCPDUMP_ARGV)
PRIVDROP = "tcpdump: Couldn't change to 'tcpdump' uid=102 gid=105: Operation not permitted\n"
NOTFOUND_INNER = ('error executing command in container: failed to exec in container: failed to start '
                  'exec "{id}": OCI runtime exec failed: exec failed: unable to start container process: '
                  'exec: "tcpdump": executable file not found in $PATH: unknown')
WS_DROP = "error: error reading from error stream: next reader: websocket: close 1006 (abnormal closure): unexpected EOF"
KLOG_WS_DROP = r"^E\d{4} [\d:.]+ +\d+ v2\.go:\d+\] .*websocket: close 1006 \(abnormal closure\): unexpected EOF\"?\n$"
TMP = CAPTURE = CAPTURE_BYTES = None


def client_versions():
    """Minor versions to test: 27, 30, 33 if the dispatcher bundles them."""
    exe = kubectl_path()
    out = subprocess.run([exe, "version", "--client", "-o", "json"], capture_output=True, timeout=20)
    cv = json.loads(out.stdout or b"{}").get("clientVersion", {})
    real = os.path.realpath(exe)
    if "dispatcher" in cv.get("gitVersion", ""):
        found = [v for v in (27, 30, 33) if os.path.exists(os.path.join(os.path.dirname(real), f"kubectl.1.{v}"))]
        if found:
            return found
    return [int(re.sub(r"\D.*", "", cv.get("minor", "0")) or 0)]


def with_tap(state, pod=0, status=None):
    state["pods"][pod]["ephemeralContainers"] = [tap_container()]
    if status:
        state["pods"][pod]["ephemeralContainerStatuses"] = [
            {"name": TAP, "state": status, "ready": False, "restartCount": 0, "image": "netshoot"}]
    return state


def exec_interactive(fk, args, want, timeout=15, env=None):
    """Runs kubectl with stdin held open until `want` stdout bytes arrived (or
    it exits), then closes stdin; returns (rc, stdout, stderr)."""
    p = fk.popen(*args, env=env)
    out, err = bytearray(), bytearray()

    def pump(src, dst):
        for chunk in iter(lambda: src.read1(65536), b""):
            dst.extend(chunk)
    threads = [threading.Thread(target=pump, args=(p.stdout, out)),
               threading.Thread(target=pump, args=(p.stderr, err))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        p.stdin.close()
        rc = p.wait(max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError(f"kubectl {' '.join(args)} timed out; stderr={bytes(err)!r}")
    finally:
        for t in threads:
            t.join(10)
    return rc, bytes(out), bytes(err).decode()


class Base:
    VERSION = 33        # set per subclass
    fk = None

    @classmethod
    def setUpClass(cls):
        cls.fk = FakeKube(standard_state(), version=f"1.{cls.VERSION}")
        cls.ws = cls.VERSION >= 30          # WebSocket exec is the default from 1.30

    @classmethod
    def tearDownClass(cls):
        cls.fk.stop()

    def setup_state(self, state):
        self.fk.state(state, replace=True)
        self.mark = len(self.fk.log())

    def kubectl(self, *args, **kw):
        return self.fk.kubectl(*args, **kw)

    def assertFails(self, r, stderr, rc=1):
        self.assertEqual((r.returncode, r.stderr.decode()), (rc, stderr))

    def capture_state(self, *modes, **kw):
        return with_tap(standard_state(capture=CAPTURE, exec_modes=modes or ["capture"], **kw))

    def exec_record(self):
        ex = self.fk.wait_exec(timeout=10)
        self.assertEqual(ex["transport"], "websocket" if self.ws else "spdy")
        self.assertEqual(ex["protocol"], "v5.channel.k8s.io" if self.ws else "v4.channel.k8s.io")
        self.assertEqual(ex["command"], TCPDUMP_ARGV)
        self.assertEqual(ex["container"], TAP)
        return ex

    # ---- reads
    def test_get_deployment(self):
        self.setup_state(standard_state())
        r = self.kubectl("get", "deployment", "web", "-n", NS, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        d = json.loads(r.stdout)
        self.assertEqual((d["kind"], d["metadata"]["name"]), ("Deployment", "web"))
        self.assertEqual(d["spec"]["selector"], WEB_SELECTOR)
        self.assertEqual(d["spec"]["template"]["metadata"]["annotations"],
                         {"kubectl.kubernetes.io/default-container": "api"})
        self.assertEqual([c["name"] for c in d["spec"]["template"]["spec"]["containers"]], ["api", "envoy"])
        self.assertEqual(d["status"]["readyReplicas"], 2)
        reqs = self.fk.requests(self.mark)
        self.assertIn(("GET", "/apis/apps/v1/namespaces/shop/deployments/web"),
                      [(e["method"], e["path"]) for e in reqs])
        # "kubectl/v1.27.16 ..." when dispatched; argv[0] names it when run directly
        self.assertTrue(any(re.match(rf"kubectl[^/]*/v1\.{self.VERSION}\.", e["user_agent"]) for e in reqs),
                        "the dispatcher did not run the client matching the server version")

    def test_get_pods_with_selectors(self):
        extra = [{"name": "web-canary-1", "namespace": NS, "deployment": "web", "labels": {"canary": "true"}},
                 {"name": "web-db-1", "namespace": NS, "deployment": "web", "labels": {"tier": "db"}},
                 {"name": "web-edge-1", "namespace": NS, "deployment": "web", "labels": {"tier": "edge"}},
                 {"name": "web-pending-1", "namespace": NS, "deployment": "web", "start_ms": 600000},
                 {"name": "other-1", "namespace": NS, "labels": {"app": "other", "tier": "api"}},
                 {"name": "web-elsewhere", "namespace": "default", "labels": {"app": "web", "tier": "api"}}]
        self.setup_state(standard_state(extra_pods=extra))
        r = self.kubectl("get", "pods", "-n", NS, "-l", WEB_SELECTOR_STR,
                         "--field-selector=status.phase=Running", "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["kind"], "List")
        self.assertEqual(sorted(p["metadata"]["name"] for p in out["items"]), sorted([POD2, "web-edge-1", POD]))
        q = [e for e in self.fk.requests(self.mark) if e["path"] == f"/api/v1/namespaces/{NS}/pods"][-1]["query"]
        self.assertEqual((q["labelSelector"], q["fieldSelector"]),
                         ([WEB_SELECTOR_STR], ["status.phase=Running"]))
        r = self.kubectl("get", "pods", "-n", NS, "--field-selector=metadata.name=web-db-1,status.phase!=Pending",
                         "-o", "json")
        self.assertEqual([p["metadata"]["name"] for p in json.loads(r.stdout)["items"]], ["web-db-1"])
        r = self.kubectl("get", "pods", "-n", NS, "-l", "app=nothing", "-o", "json")
        self.assertEqual((r.returncode, json.loads(r.stdout)["items"]), (0, []))

    def test_get_pod(self):
        self.setup_state(standard_state())
        r = self.kubectl("get", "pod", POD, "-n", NS, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        p = json.loads(r.stdout)
        self.assertEqual((p["kind"], p["metadata"]["name"], p["status"]["phase"]), ("Pod", POD, "Running"))
        self.assertTrue(p["status"]["podIP"])

    # ---- ephemeral containers
    def test_patch_ephemeralcontainers(self):
        # "waiting" lasts 2.7 s: one `kubectl get` takes up to a second on
        # a loaded machine, and a 600 ms window was missed there.
        self.setup_state(standard_state(tap={"created_ms": 300, "running_ms": 3000}))
        patch = json.dumps({"spec": {"ephemeralContainers": [tap_container()]}})
        args = ("patch", "pod", POD, "-n", NS, "--subresource=ephemeralcontainers", "--type=strategic",
                "-p", patch, "-o", "json")
        r = self.kubectl(*args)
        if self.VERSION < 32:
            return self.assertFails(r, 'error: invalid subresource value: "ephemeralcontainers". '
                                       'Must be one of [status scale]\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        pod = json.loads(r.stdout)
        self.assertEqual(pod["spec"]["ephemeralContainers"][0]["securityContext"]["capabilities"]["add"],
                         ["NET_RAW"])
        self.assertNotIn("ephemeralContainerStatuses", pod["status"])
        req = [e for e in self.fk.requests(self.mark) if e["method"] == "PATCH"][0]
        self.assertEqual(req["path"], f"/api/v1/namespaces/{NS}/pods/{POD}/ephemeralcontainers")
        self.assertEqual(req["headers"]["Content-Type"], "application/strategic-merge-patch+json")
        self.assertEqual(json.loads(patch), req["body"])
        seen = []
        deadline = time.monotonic() + 10
        while "running" not in seen and time.monotonic() < deadline:
            p = json.loads(self.kubectl("get", "pod", POD, "-n", NS, "-o", "json").stdout)
            st = (p["status"].get("ephemeralContainerStatuses") or [{"state": {"none": {}}}])[0]["state"]
            kind = next(iter(st))
            if not seen or seen[-1] != kind:
                seen.append(kind)
            if kind == "waiting":
                self.assertEqual(st["waiting"]["reason"], "ContainerCreating")
        self.assertEqual(seen[-2:], ["waiting", "running"])
        again = self.kubectl(*args)         # identical: a no-op
        self.assertEqual(again.returncode, 0, again.stderr)
        changed = json.dumps({"spec": {"ephemeralContainers": [tap_container(image="busybox:1.36")]}})
        r = self.kubectl(*args[:-3], changed, "-o", "json")
        self.assertFails(r, f'The Pod "{POD}" is invalid: spec.ephemeralContainers: Forbidden: '
                            f'existing ephemeral containers "{TAP}" may not be changed\n')

    def put_tap(self, pod_name=POD, fresh=True):
        pod = json.loads(self.kubectl("get", "pod", pod_name, "-n", NS, "-o", "json").stdout)
        pod["spec"].setdefault("ephemeralContainers", []).append(tap_container())
        path = os.path.join(TMP, f"pod-{self.VERSION}.json")
        with open(path, "w") as f:
            json.dump(pod, f)
        return self.kubectl("replace", "--raw", f"/api/v1/namespaces/{NS}/pods/{pod_name}/ephemeralcontainers",
                            "-f", path), path

    def test_replace_raw_ephemeralcontainers(self):
        self.setup_state(standard_state(tap={"outcome": "ErrImagePull", "created_ms": 0, "running_ms": 0}))
        r, path = self.put_tap()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["spec"]["ephemeralContainers"][0]["name"], TAP)
        put = [e for e in self.fk.requests(self.mark) if e["method"] == "PUT"]
        self.assertEqual(len(put), 1)
        self.assertEqual(put[0]["body"]["spec"]["ephemeralContainers"][-1]["name"], TAP)
        p = json.loads(self.kubectl("get", "pod", POD, "-n", NS, "-o", "json").stdout)
        w = p["status"]["ephemeralContainerStatuses"][0]["state"]["waiting"]
        self.assertEqual(w["reason"], "ErrImagePull")
        self.assertIn("netshoot", w["message"])
        stale = self.kubectl("replace", "--raw", f"/api/v1/namespaces/{NS}/pods/{POD}/ephemeralcontainers",
                             "-f", path)
        self.assertFails(stale, f'Error from server (Conflict): Operation cannot be fulfilled on pods "{POD}": '
                                "the object has been modified; please apply your changes to the latest "
                                "version and try again\n")

    # ---- exec
    def test_exec_capture_byte_exact_until_stdin_closes(self):
        self.setup_state(self.capture_state({"mode": "capture", "chunk_size": 7001, "chunk_delay_ms": 1}))
        rc, out, err = exec_interactive(self.fk, EXEC, len(CAPTURE_BYTES))
        self.assertEqual((rc, err), (0, LISTENING))
        self.assertEqual(hashlib.sha256(out).hexdigest(), hashlib.sha256(CAPTURE_BYTES).hexdigest())
        ex = self.exec_record()
        self.assertTrue(ex["stdin_closed"])
        self.assertEqual(ex["end"], "success")
        self.assertEqual(ex["stdout_bytes"], len(CAPTURE_BYTES))
        req = [e for e in self.fk.requests(self.mark) if e["path"].endswith("/exec")]
        self.assertEqual([(e["method"], e["code"]) for e in req], [("GET", 101)] if self.ws else [("POST", 101)])
        self.assertEqual(req[0]["query"]["command"], TCPDUMP_ARGV)
        self.assertEqual(req[0]["query"]["container"], [TAP])
        ends = [e for e in self.fk.log(self.mark) if e.get("event") == "exec_end"]
        self.assertEqual((ends[-1]["end"], ends[-1]["stdin_closed"]), ("success", True))

    def test_exec_stdin_byte_exact(self):
        st = self.capture_state("echo")
        self.setup_state(st)
        data = bytes(range(256)) * 300 + b"\r\n\x1b[0m\x00"
        r = self.kubectl(*EXEC, input=data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(hashlib.sha256(r.stdout).digest(), hashlib.sha256(data).digest())
        self.assertEqual(self.exec_record()["stdin_bytes"], len(data))

    def test_exec_close_is_silent_success(self):
        self.setup_state(self.capture_state("close"))
        rc, out, err = exec_interactive(self.fk, EXEC, 1 << 30)   # never closes stdin itself
        self.assertEqual((rc, err, out == CAPTURE_BYTES), (0, LISTENING, True))
        ex = self.exec_record()
        self.assertEqual((ex["end"], ex["stdin_closed"]), ("close", False))

    def test_exec_notfound(self):
        self.setup_state(self.capture_state("notfound"))
        r = self.kubectl(*EXEC, input=b"")
        inner = NOTFOUND_INNER.format(id=hashlib.sha256(self.fk.execs()[-1]["id"].encode()).hexdigest())
        prefix = "Internal error occurred: " * (2 if self.ws else 1)
        self.assertFails(r, f"error: {prefix}{inner}\n")
        self.assertEqual(self.exec_record()["end"], "error:InternalError")

    def test_exec_exit_code(self):
        self.setup_state(self.capture_state({"mode": "exit", "stdout_bytes": 24, "stderr": PRIVDROP,
                                             "exit_code": 1}))
        r = self.kubectl(*EXEC, input=b"")
        self.assertFails(r, PRIVDROP + "command terminated with exit code 1\n")
        self.assertEqual(r.stdout, CAPTURE_BYTES[:24])
        self.setup_state(self.capture_state({"mode": "exit", "stderr": "", "exit_code": 3}))
        self.assertFails(self.kubectl(*EXEC, input=b""), "command terminated with exit code 3\n", rc=3)

    def test_exec_drop(self):
        self.setup_state(self.capture_state({"mode": "drop", "drop_after": 5000}))
        r = self.kubectl(*EXEC, input=b"")
        self.assertEqual(r.stdout, CAPTURE_BYTES[:5000])
        err = r.stderr.decode()
        if self.ws:     # the WebSocket client reports the abnormal closure
            # kubectl copies the remote stderr and logs its own reader errors
            # from different goroutines, so their lines interleave in any order.
            self.assertEqual(r.returncode, 1)
            lines = err.splitlines(keepends=True)
            self.assertEqual(lines.count(LISTENING), 1, err)
            self.assertEqual(lines[-1], WS_DROP + "\n", err)
            for line in lines[:-1]:
                if line != LISTENING:
                    self.assertRegex(line, KLOG_WS_DROP, err)
        else:           # spdystream turns a dropped connection into EOF on every stream
            self.assertEqual((r.returncode, err), (0, LISTENING))
        self.assertEqual(self.exec_record()["end"], "drop")

    def test_exec_mode_sequence_reattach(self):
        self.setup_state(self.capture_state("close", "capture"))
        rc, out, err = exec_interactive(self.fk, EXEC, 1 << 30)
        self.assertEqual((rc, out == CAPTURE_BYTES), (0, True))
        rc, out, err = exec_interactive(self.fk, EXEC, len(CAPTURE_BYTES))
        self.assertEqual((rc, out == CAPTURE_BYTES), (0, True))
        ex = self.fk.execs()[-2:]
        self.assertEqual([(e["mode"], e["attempt"], e["end"]) for e in ex],
                         [("close", 1, "close"), ("capture", 2, "success")])

    def test_exec_tap_not_running(self):
        self.setup_state(with_tap(standard_state(capture=CAPTURE),
                                  status={"waiting": {"reason": "ContainerCreating"}}))
        r = self.kubectl(*EXEC, input=b"")
        msg = f'unable to upgrade connection: container not found ("{TAP}")'
        self.assertFails(r, f"error: Internal error occurred: {msg}\n" if self.ws else f"error: {msg}\n")

    def test_exec_wrong_container(self):
        self.setup_state(standard_state(capture=CAPTURE))
        r = self.kubectl("exec", "-i", "-n", NS, POD, "-c", "nope", "--", "true", input=b"")
        self.assertFails(r, f"Error from server (BadRequest): container nope is not valid for pod {POD}\n")

    # ---- errors
    def test_rbac_forbidden(self):
        user = 'User "system:serviceaccount:dev:me"'
        self.setup_state(standard_state(rbac={"deny": ["get deployments", "update pods/ephemeralcontainers",
                                                       "list pods"]}))
        self.assertFails(self.kubectl("get", "deployment", "web", "-n", NS, "-o", "json"),
                         f'Error from server (Forbidden): deployments.apps "web" is forbidden: {user} cannot '
                         f'get resource "deployments" in API group "apps" in the namespace "{NS}"\n')
        self.assertFails(self.kubectl("get", "pods", "-n", NS, "-l", "app=web", "-o", "json"),
                         f'Error from server (Forbidden): pods is forbidden: {user} cannot list resource '
                         f'"pods" in API group "" in the namespace "{NS}"\n')
        self.assertFails(self.put_tap()[0],
                         f'Error from server (Forbidden): pods "{POD}" is forbidden: {user} cannot update '
                         f'resource "pods/ephemeralcontainers" in API group "" in the namespace "{NS}"\n')
        if self.VERSION >= 32:
            self.setup_state(standard_state(rbac={"deny": ["patch pods/ephemeralcontainers"]}))
            r = self.kubectl("patch", "pod", POD, "-n", NS, "--subresource=ephemeralcontainers",
                             "--type=strategic", "-p", json.dumps({"spec": {"ephemeralContainers": [
                                 tap_container()]}}), "-o", "json")
            self.assertFails(r, f'Error from server (Forbidden): pods "{POD}" is forbidden: {user} cannot '
                                f'patch resource "pods/ephemeralcontainers" in API group "" in the '
                                f'namespace "{NS}"\n')

    def test_rbac_exec_verbs(self):
        # WebSocket exec needs `get pods/exec`; a 403 on the upgrade makes kubectl
        # fall back to SPDY, which needs `create`.
        self.setup_state(self.capture_state("close", rbac={"deny": ["get pods/exec"]}))
        rc, out, err = exec_interactive(self.fk, EXEC, 1 << 30)
        self.assertEqual((rc, out == CAPTURE_BYTES), (0, True))
        ex = [(e["method"], e["code"]) for e in self.fk.requests(self.mark) if e["path"].endswith("/exec")]
        self.assertEqual(ex, [("GET", 403), ("POST", 101)] if self.ws else [("POST", 101)])
        self.setup_state(self.capture_state("close", rbac={"deny": ["create pods/exec", "get pods/exec"]}))
        self.assertFails(self.kubectl(*EXEC, input=b""),
                         f'Error from server (Forbidden): pods "{POD}" is forbidden: User '
                         f'"system:serviceaccount:dev:me" cannot create resource "pods/exec" in API group '
                         f'"" in the namespace "{NS}"\n')

    def test_pod_security_rejects_tap(self):
        self.setup_state(standard_state(psa={"level": "baseline"}))
        self.assertFails(self.put_tap()[0],
                         f'Error from server (Forbidden): pods "{POD}" is forbidden: violates PodSecurity '
                         f'"baseline:latest": non-default capabilities (container "{TAP}" must not include '
                         f'"NET_RAW" in securityContext.capabilities.add)\n')

    # ---- Services, StatefulSets, DaemonSets, ReplicaSets; the tcpdump probe
    def test_get_service_and_workloads(self):
        svc = {"kind": "Service", "metadata": {"name": "web", "namespace": NS},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": "web-http"}]}}
        sts = {"kind": "StatefulSet", "metadata": {"name": "db", "namespace": NS},
               "spec": {"selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}},
                                     "spec": {"containers": [{"name": "pg"}]}}}}
        self.setup_state(standard_state(objects=[svc, sts]))
        r = self.kubectl("get", "svc", "web", "-n", NS, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        self.assertEqual(got["spec"]["ports"][0]["targetPort"], "web-http")
        self.assertEqual(got["spec"]["ports"][0]["protocol"], "TCP")
        r = self.kubectl("get", "statefulset", "db", "-n", NS, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["kind"], "StatefulSet")
        r = self.kubectl("get", "sts", "-n", NS, "-o", "json")
        self.assertEqual([i["metadata"]["name"] for i in json.loads(r.stdout)["items"]], ["db"])
        self.assertFails(self.kubectl("get", "service", "nope", "-n", NS, "-o", "json"),
                         'Error from server (NotFound): services "nope" not found\n')
        self.assertFails(self.kubectl("get", "daemonset", "logs", "-n", NS, "-o", "json"),
                         'Error from server (NotFound): daemonsets.apps "logs" not found\n')

    def test_exec_tcpdump_immediate_mode_probe(self):
        self.setup_state(self.capture_state())
        probe = ("exec", "-n", NS, POD, "-c", TAP, "--", "tcpdump", "--immediate-mode", "--version")
        r = self.kubectl(*probe)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"tcpdump version 4.99"))
        self.fk.state({"tcpdump": {"immediate_mode": False}})
        r = self.kubectl(*probe)
        self.assertEqual(r.returncode, 1)
        self.assertIn("unrecognized option '--immediate-mode'", r.stderr.decode())
        # The probe is answered by the tcpdump model, not the scenario's
        # capture rules (it uses none of their mode sequence).
        probes = [e for e in self.fk.execs() if "--version" in e["command"]]
        self.assertEqual([(e["rule"], e["end"]) for e in probes[-2:]],
                         [("tcpdump", "exit:0"), ("tcpdump", "exit:1")])

    def test_not_found(self):
        self.setup_state(standard_state())
        self.assertFails(self.kubectl("get", "deployment", "nope", "-n", NS, "-o", "json"),
                         'Error from server (NotFound): deployments.apps "nope" not found\n')
        self.assertFails(self.kubectl("get", "pod", "nope", "-n", NS, "-o", "json"),
                         'Error from server (NotFound): pods "nope" not found\n')
        self.mark = len(self.fk.log())
        self.assertFails(self.kubectl("get", "deployment", "web", "-n", "gone", "-o", "json"),
                         'Error from server (NotFound): namespaces "gone" not found\n')
        paths = [e["path"] for e in self.fk.requests(self.mark)]
        self.assertEqual(paths[-2:], ["/apis/apps/v1/namespaces/gone/deployments/web", "/api/v1/namespaces/gone"])

    def test_ephemeral_containers_unsupported(self):
        self.setup_state(standard_state(ephemeral_containers=False))
        self.assertFails(self.put_tap()[0],
                         "Error from server (NotFound): the server could not find the requested resource\n")


class TestOnce(unittest.TestCase):
    """Version-independent checks, run with the newest client."""
    VERSION = None

    def test_config_errors(self):
        with FakeKube(standard_state(), version=f"1.{self.VERSION}") as fk:
            r = fk.kubectl("--context", "nope", "get", "pods")
            self.assertEqual((r.returncode, r.stderr.decode()),
                             (1, "Error in configuration: context was not found for specified context: nope\n"))
            missing = os.path.join(fk.dir, "missing-kubeconfig")
            r = fk.kubectl("--kubeconfig", missing, "get", "pods")
            self.assertEqual((r.returncode, r.stderr.decode()),
                             (1, f"error: stat {missing}: no such file or directory\n"))
            self.assertEqual(fk.requests(), [])     # neither reached the server

    def test_rollout_and_pod_deletion_events(self):
        st = with_tap(standard_state(capture=CAPTURE, exec_modes=[{"mode": "capture", "chunk_size": 4096,
                                                                   "chunk_delay_ms": 0}]))
        with FakeKube(st, version=f"1.{self.VERSION}") as fk:
            p = fk.popen(*EXEC, stdout=subprocess.DEVNULL)
            try:
                fk.wait_exec(lambda e: e["stdout_bytes"] == len(CAPTURE_BYTES), timeout=10)
                # The grace period must outlast kubectl's start-up on a loaded machine,
                # or the old pods are gone before the check below can see them.
                res = fk.event("rollout", namespace=NS, deployment="web", grace_ms=3000)
                self.assertEqual(sorted(res["old"]), sorted([POD, POD2]))
                rc = p.wait(10)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.assertEqual(rc, 143)
            self.assertTrue(p.stderr.read().decode().endswith("command terminated with exit code 143\n"))
            self.assertEqual(fk.execs()[-1]["end"], "exit:143")
            pods = json.loads(fk.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)["items"]
            terminating = {x["metadata"]["name"] for x in pods if "deletionTimestamp" in x["metadata"]}
            self.assertEqual(terminating, {POD, POD2})
            deadline = time.monotonic() + 15
            while True:     # the old pods go when their grace period ends
                pods = json.loads(fk.kubectl("get", "pods", "-n", NS, "-l", WEB_SELECTOR_STR, "-o", "json")
                                  .stdout)["items"]
                names = sorted(x["metadata"]["name"] for x in pods)
                if names == sorted(res["new"]) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(names, sorted(res["new"]))
            self.assertTrue(all(x["status"]["phase"] == "Running" and x["metadata"]["uid"] and
                                x["status"]["podIP"] for x in pods))
            r = fk.kubectl("get", "pod", POD, "-n", NS, "-o", "json")
            self.assertEqual(r.stderr.decode(), f'Error from server (NotFound): pods "{POD}" not found\n')
            fk.event("add_pod", pod={"name": "web-extra", "namespace": NS, "deployment": "web"})
            fk.event("delete_pod", namespace=NS, pod=res["new"][0])
            pods = json.loads(fk.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)["items"]
            self.assertEqual(sorted(x["metadata"]["name"] for x in pods), sorted(res["new"][1:] + ["web-extra"]))


    def test_pings_answered_on_long_exec(self):
        # Both clients ping every 5 s; an unanswered WebSocket ping kills the
        # stream after 61 s. Hold one exec per transport open for 6.5 s.
        st = with_tap(standard_state(capture=CAPTURE, exec_modes=["capture"]))
        with FakeKube(st, version=f"1.{self.VERSION}") as fk:
            procs = [fk.popen(*EXEC, stdout=subprocess.DEVNULL, env=env) for env in
                     ({"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}, None)]
            try:
                fk.wait_exec(lambda e: len(fk.execs()) == 2 and all(
                    x["stdout_bytes"] == len(CAPTURE_BYTES) for x in fk.execs()), timeout=10)
                time.sleep(6.5)
                for p in procs:
                    self.assertIsNone(p.poll(), "exec ended early")
                    p.stdin.close()
                self.assertEqual([p.wait(10) for p in procs], [0, 0])
            finally:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
            ex = {e["transport"]: e for e in fk.execs()}
            self.assertEqual(set(ex), {"spdy", "websocket"} if self.VERSION >= 30 else {"spdy"})
            for e in ex.values():
                self.assertGreaterEqual(e.get("pings", 0), 1, e)
                self.assertEqual((e["end"], e["stdin_closed"]), ("success", True))

    def test_scheduled_events_and_jsonl_log(self):
        st = standard_state(events=[
            {"at_ms": 1500, "event": "add_pod", "pod": {"name": "web-late", "namespace": NS,
                                                        "deployment": "web"}},
            {"at_ms": 1500, "event": "delete_pod", "namespace": NS, "pod": POD, "grace_ms": 0}])
        with FakeKube(st, version=f"1.{self.VERSION}") as fk:
            names = lambda: sorted(p["metadata"]["name"] for p in json.loads(  # noqa: E731
                fk.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)["items"])
            t0 = time.monotonic()
            first = names()
            if time.monotonic() - t0 < 1.2:     # the events fire 1.5 s after the state loaded
                self.assertEqual(first, sorted([POD, POD2]))
            deadline = time.monotonic() + 10
            while names() != sorted([POD2, "web-late"]):
                self.assertLess(time.monotonic(), deadline, "scheduled events did not apply")
                time.sleep(0.1)
            with open(fk.log_path) as f:
                lines = [json.loads(line) for line in f]
            self.assertEqual([e["event"] for e in lines if "event" in e], ["add_pod", "delete_pod"])
            paths = {e["path"] for e in lines if "path" in e}
            self.assertIn(f"/api/v1/namespaces/{NS}/pods", paths)
            self.assertTrue(all("code" in e for e in lines if "path" in e))

    def test_in_process_stop_leaves_no_threads(self):
        import fakekube
        before = set(threading.enumerate())
        st = with_tap(standard_state(capture=CAPTURE, exec_modes=[{"mode": "capture", "chunk_size": 512,
                                                                   "chunk_delay_ms": 5}]))
        srv = fakekube.Server(fakekube.Cluster(st, version=f"1.{self.VERSION}"))
        port = srv.start()
        fk = FakeKube.__new__(FakeKube)         # reuse the kubeconfig plumbing only
        fk.dir = tempfile.mkdtemp(prefix="fakekube-inproc-", dir=TMP)
        fk.home, fk.kubeconfig = os.path.join(fk.dir, "home"), os.path.join(fk.dir, "kubeconfig")
        os.makedirs(fk.home)
        fk.url, fk.namespace, fk.token = f"http://127.0.0.1:{port}", "default", "t"
        fk.write_kubeconfig()
        p = fk.popen(*EXEC, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not (srv.cluster.execs and srv.cluster.execs[-1]["stdout_bytes"]):
                self.assertLess(time.monotonic(), deadline, "exec did not start")
                time.sleep(0.02)
            t0 = time.monotonic()
            srv.stop()          # mid-stream: sessions are dropped, threads joined
            self.assertLess(time.monotonic() - t0, 3)
            p.wait(10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        leaked = [t for t in set(threading.enumerate()) - before if t.is_alive()]
        self.assertEqual(leaked, [])
        self.assertEqual(srv.cluster.execs[-1]["end"], "server_stop")


    def test_spdy_flow_control_windows(self):
        # kubectl's spdystream never sends WINDOW_UPDATE; a peer that does flow
        # control must get no more than its window. A raw SPDY/3.1 client.
        import socket
        import struct
        import zlib
        import fakekube
        st = with_tap(standard_state(capture=CAPTURE, exec_modes=["capture"]))
        srv = fakekube.Server(fakekube.Cluster(st, version="1.27"))
        port = srv.start()
        comp = zlib.compressobj(zdict=fakekube.SPDY_DICT)
        dec = zlib.decompressobj(zdict=fakekube.SPDY_DICT)
        got = {}
        ctrl = fakekube.SPDYSession.ctrl
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"POST /api/v1/namespaces/{NS}/pods/{POD}/exec?command=tcpdump&container={TAP}"
                      "&stdin=true&stdout=true&stderr=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                      "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                      "Content-Length: 0\r\n\r\n".encode())
            buf = bytearray()

            def take(n):        # n bytes, or None on timeout (keeping what arrived)
                while len(buf) < n:
                    try:
                        chunk = s.recv(65536)
                    except socket.timeout:
                        return None
                    if not chunk:
                        return None
                    buf.extend(chunk)
                out = bytes(buf[:n])
                del buf[:n]
                return out
            while b"\r\n\r\n" not in buf:
                buf.extend(s.recv(4096))
            head, _, rest = bytes(buf).partition(b"\r\n\r\n")
            self.assertIn(b" 101 ", head.split(b"\r\n")[0])
            buf[:] = rest
            s.sendall(ctrl(4, 0, struct.pack("!III", 1, 7, 1000)))     # SETTINGS initial window 1000
            for sid, t in ((1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")):
                raw = struct.pack("!I", 1) + b"".join(struct.pack("!I", len(x)) + x for x in
                                                      (b"streamtype", t.encode()))
                block = comp.compress(raw) + comp.flush(zlib.Z_SYNC_FLUSH)
                s.sendall(ctrl(1, 0, struct.pack("!IIBB", sid, 0, 0, 0) + block))

            def read_until(pred, quiet=0.3):
                """Reads frames until pred() holds, then for `quiet` more seconds."""
                end = None
                while True:
                    s.settimeout(quiet if end else 5)
                    hdr = take(8)
                    if hdr is None:
                        return
                    w1, w2 = struct.unpack("!II", hdr)
                    payload = b""
                    while len(payload) < w2 & 0xFFFFFF:     # a frame is never left half-read
                        s.settimeout(5)
                        payload = take(w2 & 0xFFFFFF)
                        self.assertIsNotNone(payload, "truncated frame")
                    if w1 & 0x80000000:
                        if w1 & 0xFFFF in (1, 2, 8):
                            dec.decompress(payload[4:])     # keep the zlib stream in step
                    else:
                        got.setdefault(w1, bytearray()).extend(payload)
                        got.setdefault(("fin", w1), w2 >> 24 & 1)
                    if end is None and pred():
                        end = True
            out = lambda: len(got.get(5, b""))  # noqa: E731
            read_until(lambda: out() >= 1000)
            self.assertEqual(out(), 1000)       # the window, and not a byte more
            s.sendall(ctrl(9, 0, struct.pack("!II", 5, 4000)))
            read_until(lambda: out() >= 5000)
            self.assertEqual(out(), 5000)
            s.sendall(ctrl(9, 0, struct.pack("!II", 5, 1 << 30)))
            read_until(lambda: out() >= len(CAPTURE_BYTES), quiet=0.1)
            self.assertEqual(bytes(got[5]), CAPTURE_BYTES)
            self.assertEqual(bytes(got[7]).decode(), LISTENING)
            s.sendall(struct.pack("!II", 3, 1 << 24))      # stdin: empty DATA with FIN
            read_until(lambda: 1 in got, quiet=0.3)
            self.assertEqual(json.loads(bytes(got[1])), {"metadata": {}, "status": "Success"})
            s.close()
            ex = srv.cluster.execs[-1]
            self.assertEqual((ex["transport"], ex["end"], ex["stdin_closed"]), ("spdy", "success", True))
        finally:
            srv.stop()


def main():
    global TMP, CAPTURE, CAPTURE_BYTES
    if not kubectl_path():
        print("SKIP: kubectl is not installed (set $KUBECTL or put kubectl on PATH)")
        return 77
    versions = client_versions()
    print(f"kubectl {kubectl_path()}: testing client versions " + ", ".join(f"1.{v}" for v in versions))
    TMP = tempfile.mkdtemp(prefix="fakekube-test-")
    try:
        CAPTURE = os.path.join(TMP, "capture.pcap")
        CAPTURE_BYTES = make_pcap(CAPTURE, packets=160)     # ~230 KB: several windows and frames
        suite = unittest.TestSuite()
        loader = unittest.TestLoader()
        for v in versions:
            cls = type(f"Kubectl_1_{v}", (Base, unittest.TestCase), {"VERSION": v})
            suite.addTests(loader.loadTestsFromTestCase(cls))
        TestOnce.VERSION = versions[-1]
        suite.addTests(loader.loadTestsFromTestCase(TestOnce))
        result = unittest.TextTestRunner(verbosity=2).run(suite)
        return 0 if result.wasSuccessful() else 1
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
