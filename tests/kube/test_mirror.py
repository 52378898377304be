#!/usr/bin/env python3
"""tapmirror mirror: the real binary and the real kubectl (1.27 through
1.33) against the fake Kubernetes API server, which streams captures of
real pod traffic recorded by these tests. Checks the bytes each local
connection receives, the output capture, and exactly what was asked of
the cluster."""
import base64
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.dont_write_bytecode = True

import podtraffic  # noqa: E402
import tmtest as t  # noqa: E402
from kubetest import (LISTENING, FakeKube, kubectl_path,  # noqa: E402
                      standard_state, tap_container)

TAP_IMAGE = "docker.io/nicolaka/netshoot:v0.16"
# What a compromised container could write where tapmirror reads it: clear
# the screen, set the window title (OSC ... BEL), C1 CSI as a raw 8-bit
# byte and as UTF-8 (U+009B), hidden text; and how tapmirror shows it.
EVIL = b"\x1b[2J\x1b]0;owned\x07\x9b31m\xc2\x9b8mhidden"
EVIL_SHOWN = r"\x1b[2J\x1b]0;owned\x07\x9b31m\u009b8mhidden"
# The same as text (JSON carries no raw 8-bit bytes).
EVIL_TEXT = "\x1b[2J\x1b]0;owned\x07\u009b8mhidden"
EVIL_TEXT_SHOWN = r"\x1b[2J\x1b]0;owned\x07\u009b8mhidden"
PODS = ["web-7d4b9c6f5d-x2k8q", "web-7d4b9c6f5d-m9vtl", "web-7d4b9c6f5d-p4hzw"]
SKIP = None


def capture_execs(fk):
    """The capture execs: not the one-off `tcpdump --immediate-mode
    --version` probe of each tap image."""
    return [e for e in fk.execs() if "--version" not in e["command"]]


def fnv_streams(payloads):
    return sorted((len(p), t.fnv64(p)) for p in payloads)


class Mirror(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global SKIP
        if kubectl_path() is None:
            SKIP = "kubectl is not installed"
        else:
            ok, why = podtraffic.can_record()
            if not ok:
                SKIP = why
        if SKIP:
            print(f"skipping mirror tests: {SKIP}")
            return
        cls.dir = t.TempDir()
        cls.caps = []
        for k in range(3):
            path = cls.dir(f"pod{k}.pcap")
            ip, payloads = podtraffic.record(path, k, clients=5, seed=k + 1)
            cls.caps.append({"path": path, "ip": ip, "payloads": payloads,
                             "bytes": t.read_bytes(path)})

    @classmethod
    def tearDownClass(cls):
        if not SKIP:
            cls.dir.cleanup()

    def setUp(self):
        if SKIP:
            self.skipTest(SKIP)
        self.tmp = t.TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    # ---- helpers

    def state(self, pods=1, exec_modes=None, **kw):
        """The standard shop/web deployment with `pods` pods; pod k has the
        address and streams the capture recorded for pod k."""
        st = standard_state(replicas=pods, **kw)
        for k, pod in enumerate(st["pods"]):
            cap = self.caps[k]
            pod["podIP"] = cap["ip"]
            pod["exec"] = [{"container": "tapmirror-tap", "argv0": "tcpdump",
                            "capture": cap["path"],
                            "modes": exec_modes or ["capture"]}]
        return st

    def start(self, fk, target, *args):
        argv = [*t.WRAPPER, t.TAPMIRROR, "mirror", target, *map(str, args)]
        return subprocess.Popen(argv, env=fk.env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait_for(self, p, needle, timeout=30):
        """Reads stderr until a line with `needle`; returns all stderr read,
        or fails if the process ends first."""
        err = t.wait_stderr(p, needle, timeout)
        if needle in err:
            return err
        p.kill()
        p.wait()
        self.fail(f"no '{needle}' on stderr: {err}")

    def interrupt(self, p, before=""):
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30 * t.SLOW)
        return p.returncode, out, before + err.decode(errors="replace")

    def run_fail(self, fk, target, *args):
        argv = [*t.WRAPPER, t.TAPMIRROR, "mirror", target, *map(str, args)]
        r = subprocess.run(argv, env=fk.env(), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120 * t.SLOW)
        return r.returncode, r.stderr.decode(errors="replace")

    def writes(self, fk):
        return [e for e in fk.requests()
                if e["method"] in ("PATCH", "PUT", "POST", "DELETE")
                and "/exec" not in e["path"]]

    # ---- targets as users name them; silence

    NAMED = [{"name": "api", "image": "ghcr.io/example/web:1.4.2",
              "ports": [{"name": "http", "containerPort": 8080}]},
             {"name": "envoy", "image": "envoyproxy/envoy:v1.31.0"}]

    def test_service_port_to_named_target_port(self):
        svc = {"kind": "Service", "metadata": {"name": "shopfront", "namespace": "shop"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}
        cap = self.caps[0]
        for version in ("1.27", "1.33"):
            with self.subTest(version=version), \
                    FakeKube(self.state(containers=self.NAMED, objects=[svc]),
                             version=version) as fk:
                sink = t.Sink(self.tmp, expect=len(cap["payloads"]))
                out = self.tmp(f"svc-{version}.pcap")
                p = self.start(fk, "service/shopfront", "-n", "shop", "-p", 80,
                               "--to", sink.to, "-o", out)
                err = self.wait_for(p, "capturing TCP port 8080")
                sink.wait(timeout=60)
                code, _, err = self.interrupt(p, err)
                self.assertEqual(code, 0, err)
                self.assertIn("service port 80 is targetPort 'http', port 8080",
                              err)
                self.assertEqual(sink.streams(), fnv_streams(cap["payloads"]))
                self.assertEqual(t.read_bytes(out), cap["bytes"])
                gets = [e["path"] for e in fk.requests() if e["method"] == "GET"]
                self.assertIn("/api/v1/namespaces/shop/services/shopfront", gets)
                ex = capture_execs(fk)
                self.assertEqual(ex[0]["command"][-3:], ["tcp", "port", "8080"])
                self.assertIn("--immediate-mode", ex[0]["command"])

    def test_statefulset_with_named_port(self):
        sts = {"kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": self.NAMED}}}}
        cap = self.caps[0]
        with FakeKube(self.state(containers=self.NAMED, objects=[sts]),
                      version="1.30") as fk:
            out = self.tmp("sts.pcap")
            p = self.start(fk, "sts/db", "-n", "shop", "-p", "http", "-o", out)
            err = self.wait_for(p, "capturing TCP port 8080")
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertIn("port http is 8080 in pod", err)
            self.assertIn("kubectl rollout restart statefulset/db -n shop", err)
            gets = [e["path"] for e in fk.requests() if e["method"] == "GET"]
            self.assertIn("/apis/apps/v1/namespaces/shop/statefulsets/db", gets)
        # A name no container declares: refused, saying what they declare.
        with FakeKube(self.state(containers=self.NAMED, objects=[sts]),
                      version="1.33") as fk:
            code, err = self.run_fail(fk, "statefulset/db", "-n", "shop",
                                      "-p", "grpc")
            self.assertEqual(code, 1, err)
            self.assertIn("has no TCP container port named 'grpc' (its ports: "
                          "8080 (http))", err)
            self.assertEqual(self.writes(fk), [])

    def test_all_pods_refuses_a_pod_with_the_port_renumbered_once(self):
        # A named targetPort that one pod declares as another number (a
        # rollout that renumbered it): one run captures one port, so that
        # pod is refused, once, not again at every refresh of the set.
        svc = {"kind": "Service", "metadata": {"name": "shopfront",
                                               "namespace": "shop"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "web", "port": 80,
                                   "targetPort": "http"}]}}
        st = self.state(pods=2, containers=self.NAMED, objects=[svc])
        # Pods are taken by name: m9vtl (8080) first, then x2k8q (9090).
        st["pods"][0]["containers"] = [
            {"name": "api", "image": "ghcr.io/example/web:1.5.0",
             "ports": [{"name": "http", "containerPort": 9090}]}]
        cap = self.caps[1]
        with FakeKube(st, version="1.33") as fk:
            sink = t.Sink(self.tmp, expect=len(cap["payloads"]))
            p = self.start(fk, "service/shopfront", "-n", "shop", "-p", 80,
                           "--all-pods", "--to", sink.to,
                           "-o", self.tmp("renum.pcap"))
            err = self.wait_for(p, "capturing TCP port 8080")
            sink.wait(timeout=60)
            time.sleep(12 * t.SLOW)  # past a refresh of the pod set
            code, _, err = self.interrupt(p, err)
            sink.stop()
            self.assertEqual(code, 0, err)
            self.assertEqual(err.count(
                f"pod {PODS[0]} has port 80 as 9090, but the pods tapped so "
                "far have it as 8080"), 1, err)
            self.assertNotIn(f"new pod {PODS[0]}", err)
            self.assertEqual([e["pod"] for e in capture_execs(fk)], [PODS[1]])
            self.assertEqual(sink.streams(), fnv_streams(cap["payloads"]))

    def test_silence_is_reported_once(self):
        cap = self.caps[0]
        st = self.state(tcpdump={"immediate_mode": False})
        # tcpdump starts and writes its file header, then nothing arrives.
        st["pods"][0]["exec"][0].pop("capture")
        st["pods"][0]["exec"][0]["data_b64"] = base64.b64encode(
            cap["bytes"][:24]).decode()
        with FakeKube(st, version="1.31") as fk:
            p = self.start(fk, "web", "-n", "shop", "-p", 8081,
                           "--warn-silence", "1s")
            err = self.wait_for(p, "no segment to port 8081")
            time.sleep(1.5)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertEqual(err.count("no segment to port"), 1, err)
            self.assertIn("declares no port 8081 (it declares 8080)", err)
            self.assertIn("--service-ip", err)
            self.assertIn("mesh", err)
            # This tcpdump does not take --immediate-mode: not passed.
            ex = capture_execs(fk)
            self.assertNotIn("--immediate-mode", ex[0]["command"])
        # Traffic to the port: no warning.
        with FakeKube(self.state(), version="1.31") as fk:
            p = self.start(fk, "web", "-n", "shop", "-p", 8080,
                           "--warn-silence", "1s")
            err = self.wait_for(p, "capturing TCP port 8080")
            time.sleep(2.5)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertNotIn("no segment", err)

    # ---- the happy path, on the oldest, a middle and the newest kubectl

    def test_mirror_end_to_end(self):
        for version, transport, call in (("1.27", "spdy", "PUT"),
                                         ("1.28", "spdy", "PUT"),
                                         ("1.29", "spdy", "PUT"),
                                         ("1.30", "websocket", "PUT"),
                                         ("1.31", "websocket", "PUT"),
                                         ("1.32", "websocket", "PATCH"),
                                         ("1.33", "websocket", "PATCH")):
            with self.subTest(version=version):
                self.end_to_end(version, transport, call)

    def end_to_end(self, version, transport, call):
        cap = self.caps[0]
        with FakeKube(self.state(), version=version) as fk:
            sink = t.Sink(self.tmp, expect=len(cap["payloads"]))
            out = self.tmp(f"mirror-{version}.pcap")
            stats = self.tmp(f"mirror-{version}.json")
            p = self.start(fk, "deployment/web", "-n", "shop", "-p", 8080,
                           "--to", sink.to, "-o", out, "--stats-json", stats)
            err = self.wait_for(p, "capturing TCP port 8080")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            # Every client connection arrived whole at the local target.
            self.assertEqual(sink.streams(), fnv_streams(cap["payloads"]))
            # The output is the pod's capture, byte for byte.
            self.assertEqual(t.read_bytes(out), cap["bytes"])
            self.assertEqual(os.stat(out).st_mode & 0o777, 0o600)
            st = t.read_json(stats)
            self.assertEqual(st["kubernetes"]["pods"], [PODS[0]])
            self.assertEqual(st["kubernetes"]["reattaches"], 0)
            self.assertEqual(st["flows"]["seen"], len(cap["payloads"]))
            # The tap: added once, with exactly the hardened spec.
            reqs = fk.requests()
            writes = [e for e in reqs if "/ephemeralcontainers" in e["path"]
                      and e["method"] in ("PATCH", "PUT")]
            self.assertEqual([e["method"] for e in writes], [call])
            body = writes[0]["body"]
            ephemeral = body["spec"]["ephemeralContainers"]
            self.assertEqual(ephemeral[-1],
                             tap_container(image=TAP_IMAGE, target="api"))
            # The capture: tcpdump with exactly these arguments, no TTY.
            ex = capture_execs(fk)
            self.assertEqual(len(ex), 1)
            self.assertEqual(ex[0]["transport"], transport)
            self.assertEqual(ex[0]["command"],
                             ["tcpdump", "-p", "-i", "any", "--immediate-mode",
                              "-U", "-w", "-", "tcp", "port", "8080"])
            # Whether tcpdump takes --immediate-mode was asked once.
            probes = [e for e in fk.execs() if "--version" in e["command"]]
            self.assertEqual([e["command"] for e in probes],
                             [["tcpdump", "--immediate-mode", "--version"]])
            self.assertEqual(ex[0]["container"], "tapmirror-tap")
            self.assertFalse(ex[0].get("tty"))
            # Stopped the polite way: standard input closed, no kubectl left.
            self.assertTrue(ex[0]["stdin_closed"], ex[0])
            self.assertIn("injected the tap", err)
            self.assertIn("kubectl rollout restart deployment/web -n shop",
                          err)
            self.assert_no_kubectl(PODS[0])
            sink.stop()

    def assert_no_kubectl(self, pod):
        r = subprocess.run(["pgrep", "-f", f"exec -i {pod} "],
                           capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), "", "kubectl left running")

    def test_existing_tap_is_reused(self):
        st = self.state()
        st["pods"][0]["ephemeralContainers"] = [
            tap_container(image="example.com/tools:1", target="api")]
        st["pods"][0]["ephemeralContainerStatuses"] = [
            {"name": "tapmirror-tap", "state": {"running": {}}}]
        with FakeKube(st) as fk:
            sink = t.Sink(self.tmp, expect=5)
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("reuse.pcap"))
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertEqual(sink.streams(),
                             fnv_streams(self.caps[0]["payloads"]))
            self.assertIn("already has a tap that uses image example.com/tools:1",
                          err)
            self.assertEqual(self.writes(fk), [])

    def existing_tap_state(self, **spec):
        st = self.state()
        tap = tap_container(target="api")
        for key, value in spec.items():
            if key == "securityContext":
                tap[key].update(value)
            else:
                tap[key] = value
        st["pods"][0]["ephemeralContainers"] = [tap]
        st["pods"][0]["ephemeralContainerStatuses"] = [
            {"name": "tapmirror-tap", "state": {"running": {}}}]
        return st

    def test_existing_tap_with_more_privileges_is_refused(self):
        # tcpdump parses traffic from strangers: it runs only where it has
        # NET_RAW and nothing else, so a tap someone else made with more
        # privileges is not used, and the reason is given.
        for spec, why in (
                ({"securityContext": {"privileged": True}},
                 "is privileged"),
                ({"securityContext": {"capabilities": {
                    "drop": ["ALL"], "add": ["NET_RAW", "SYS_ADMIN"]}}},
                 "adds capability SYS_ADMIN"),
                ({"securityContext": {"capabilities": {"add": ["NET_RAW"]}}},
                 "does not drop ALL capabilities"),
                ({"securityContext": {"allowPrivilegeEscalation": True}},
                 "allows privilege escalation")):
            with self.subTest(why=why):
                err, _, fk = self.failure(
                    self.existing_tap_state(**spec), ["-n", "shop"],
                    f"pod {PODS[0]} already has a tapmirror-tap container "
                    f"that {why}; tapmirror does not use it")
                self.assertNotIn("capturing", err)
                self.assertNotIn("tapped", err)

    def test_existing_tap_with_other_command_or_target_is_warned(self):
        st = self.existing_tap_state(command=["sh", "-c", "sleep 9999"],
                                     targetContainerName="envoy")
        with FakeKube(st) as fk:
            sink = t.Sink(self.tmp, expect=5)
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("other.pcap"))
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertRegex(err, r"warning: pod \S+ already has a tap that "
                                  r"runs sh -c sleep 9999 \(not sleep "
                                  r"infinity\), targets container envoy "
                                  r"\(not api\): reusing it")
            self.assertEqual(self.writes(fk), [])

    def test_quiet_still_tells_of_the_permanent_tap(self):
        cap = self.caps[0]
        with FakeKube(self.state()) as fk:
            sink = t.Sink(self.tmp, expect=len(cap["payloads"]))
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("quiet.pcap"), "-q")
            sink.wait(timeout=60)
            time.sleep(0.5)
            code, _, err = self.interrupt(p)
            self.assertEqual(code, 0, err)
            self.assertRegex(err, rf"warning: injected the tap .* into pod "
                                  rf"{PODS[0]}")
            self.assertRegex(err, "warning: the tap container stays in the "
                                  "pod .*kubectl rollout restart "
                                  "deployment/web -n shop")
            self.assertNotIn("kubernetes: tapped", err)  # the summary: not
                                                        # with -q

    def test_refused_injection_is_not_reported_as_a_tap(self):
        stats = self.tmp("psa.json")
        err, _, _ = self.failure(self.state(psa={"level": "baseline"}),
                                 ["-n", "shop", "--stats-json", stats,
                                  "--tap-profile", "netraw"],
                                 "Pod Security level", no_writes=False)
        self.assertNotIn("tapped", err)
        self.assertNotIn("rollout restart", err)
        self.assertNotIn("stays in", err)
        self.assertEqual(t.read_json(stats)["kubernetes"]["pods"], [])

    # ---- Pod Security, the pod's user, Windows nodes

    def tap_writes(self, fk):
        return [e for e in fk.requests() if "/ephemeralcontainers" in e["path"]
                and e["method"] in ("PATCH", "PUT")]

    def test_pod_security_baseline_falls_back_to_the_baseline_tap(self):
        for version in ("1.27", "1.33"):
            with self.subTest(version=version):
                st = self.state(namespaces=[{"name": "shop", "labels": {
                    "pod-security.kubernetes.io/enforce": "baseline"}}])
                with FakeKube(st, version=version) as fk:
                    sink = t.Sink(self.tmp, expect=5)
                    p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                                   sink.to, "-o", self.tmp("psa.pcap"))
                    err = self.wait_for(p, "capturing TCP port")
                    sink.wait(timeout=60)
                    code, _, err = self.interrupt(p, err)
                    self.assertEqual(code, 0, err)
                    self.assertIn('Pod Security level "baseline" in namespace '
                                  "shop refuses the NET_RAW tap; retrying with "
                                  "the baseline profile", err)
                    self.assertIn("baseline profile: the runtime's default "
                                  "capabilities", err)
                    writes = self.tap_writes(fk)
                    self.assertEqual(len(writes), 2)
                    self.assertEqual([w["code"] for w in writes], [403, 200])
                    tap = writes[1]["body"]["spec"]["ephemeralContainers"][-1]
                    self.assertEqual(tap["securityContext"], {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "seccompProfile": {"type": "RuntimeDefault"}})
                    self.assertEqual(sink.streams(),
                                     fnv_streams(self.caps[0]["payloads"]))
                    sink.stop()

    def test_existing_baseline_tap_is_reused(self):
        st = self.existing_tap_state()
        del st["pods"][0]["ephemeralContainers"][0]["securityContext"]["capabilities"]
        with FakeKube(st) as fk:
            sink = t.Sink(self.tmp, expect=5)
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("reuse.pcap"))
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertIn("reusing the tap already in pod", err)
            self.assertEqual(self.writes(fk), [])

    def test_pod_security_restricted_fails_at_once(self):
        st = self.state(namespaces=[{"name": "shop", "labels": {
            "pod-security.kubernetes.io/enforce": "restricted"}}])
        err, _, _ = self.failure(st, ["-n", "shop"],
                                 'Pod Security level "restricted" in namespace '
                                 "shop admits no tap that can capture",
                                 no_writes=False)
        self.assertNotIn("retrying", err)

    def test_baseline_tap_without_net_raw_explains(self):
        # CRI-O grants no NET_RAW by default: tcpdump in the baseline tap
        # cannot open the capture.
        denied = ("tcpdump: any: You don't have permission to perform this "
                  "capture on that device\n(socket: Operation not permitted)\n")
        st = self.state(exec_modes=[{"mode": "exit", "exit_code": 1,
                                     "stderr": denied}])
        self.failure(st, ["-n", "shop", "--tap-profile", "baseline"],
                     "baseline-profile tap cannot open a capture .*the "
                     "container runtime does not grant NET_RAW",
                     no_writes=False)

    def test_non_root_pod_and_windows_node_are_refused_before_injecting(self):
        for raw, pattern in (
                ({"spec": {"securityContext": {"runAsUser": 1000}}},
                 r"would run as a non-root user \(the pod's "
                 r"securityContext.runAsUser \(1000\) applies"),
                ({"spec": {"securityContext": {"runAsNonRoot": True}}},
                 r"would run as a non-root user .*runAsNonRoot"),
                ({"spec": {"nodeSelector": {"kubernetes.io/os": "windows"}}},
                 r"runs on a Windows node, where ephemeral containers are "
                 r"not supported")):
            with self.subTest(pattern=pattern):
                st = self.state()
                st["pods"][0]["raw"] = raw
                self.failure(st, ["-n", "shop"], pattern)
        # A pod whose spec does not say it (an affinity, a Windows-only
        # pool): its node does, and nothing is injected either.
        st = self.state()
        st["nodes"] = [{"name": "node-1", "os": "windows"}]
        for version in ("1.27", "1.33"):
            with self.subTest(version=version):
                self.failure(st, ["-n", "shop"],
                             rf"pod {PODS[0]} runs on node node-1, a Windows "
                             r"node, where ephemeral containers are not "
                             r"supported", version=version)
        # A node the user may not read (a Role cannot grant it) is taken
        # for Linux: the run starts.
        st = self.state(rbac={"deny": ["get nodes"]})
        with FakeKube(st) as fk:
            sink = t.Sink(self.tmp, expect=5)
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("n.pcap"), "-v")
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertIn("node node-1 of pod", err)
            self.assertEqual(sink.streams(),
                             fnv_streams(self.caps[0]["payloads"]))
            sink.stop()

    # ---- --check

    def check(self, state, *args, version="1.33", target="web", port="8080"):
        with FakeKube(state, version=version) as fk:
            argv = [*t.WRAPPER, t.TAPMIRROR, "mirror", target,
                    *(["-p", port] if port else []), "-n", "shop", "--check",
                    *args]
            r = subprocess.run(argv, env=fk.env(), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=120 * t.SLOW)
            # Changes nothing: no tap, no exec; only access reviews.
            self.assertEqual(
                [e["path"] for e in self.writes(fk)
                 if "selfsubjectaccessreviews" not in e["path"]], [])
            self.assertEqual(fk.execs(), [])
            return r.returncode, r.stdout.decode(), r.stderr.decode(), fk.requests()

    def test_check_prints_a_checklist(self):
        for version, verb in (("1.27", "update"), ("1.33", "patch")):
            with self.subTest(version=version):
                code, out, err, reqs = self.check(self.state(), version=version)
                self.assertEqual(code, 0, out + err)
                lines = out.splitlines()
                self.assertTrue(all(l.startswith(("\u2713 ", "a run"))
                                    for l in lines), out)
                for want in (f"kubectl 1.{version[2:]}, API server "
                             f"1.{version[2:]}",
                             f"deployment web: 1 running pod ({PODS[0]}); "
                             f"the run taps {PODS[0]}",
                             "container api (the tap targets it)",
                             f"pod {PODS[0]} is not on the host network",
                             "node node-1: linux",
                             "port: the tap captures TCP port 8080 (pod "
                             f"{PODS[0]} declares 8080)",
                             f"mesh: none seen in pod {PODS[0]}",
                             "has no tap yet",
                             "enforce=none (privileged) in namespace shop; "
                             "tap profile netraw",
                             "RBAC: can get deployments in namespace shop",
                             "RBAC: can list pods",
                             f"RBAC: can {verb} pods/ephemeralcontainers",
                             "RBAC: can create pods/exec",
                             f"tap image {TAP_IMAGE}",
                             "a run would start"):
                    self.assertIn(want, out)
                # One SelfSubjectAccessReview per verb a run uses.
                reviews = [e for e in reqs
                           if "selfsubjectaccessreviews" in e["path"]]
                self.assertEqual([e["method"] for e in reviews], ["POST"] * 5)

    def test_check_failures(self):
        def labelled(level):
            return self.state(namespaces=[{"name": "shop", "labels": {
                "pod-security.kubernetes.io/enforce": level}}])
        hostnet = self.state()
        hostnet["pods"][0]["hostNetwork"] = True
        windows = self.state()
        windows["nodes"] = [{"name": "node-1", "os": "windows"}]
        for state, args, ok, want in (
                (labelled("baseline"), [], True,
                 "\u2713 Pod Security: enforce=baseline in namespace shop; "
                 "tap profile baseline"),
                (labelled("baseline"), ["--tap-profile", "netraw"], False,
                 "\u2717 Pod Security: enforce=baseline in namespace shop "
                 "refuses the NET_RAW tap"),
                (labelled("restricted"), [], False,
                 "\u2717 Pod Security: enforce=restricted"),
                (self.state(rbac={"deny": ["patch pods/ephemeralcontainers"]}),
                 [], False,
                 "\u2717 RBAC: cannot patch pods/ephemeralcontainers in "
                 "namespace shop; a Role granting 'patch'"),
                (self.state(rbac={"deny": ["create pods/exec"]}), [], True,
                 "\u2713 RBAC: can get pods/exec in namespace shop (kubectl "
                 "1.30 and later exec over a WebSocket; not create)"),
                (self.state(rbac={"deny": ["create pods/exec",
                                           "get pods/exec"]}), [], False,
                 "\u2717 RBAC: cannot create nor get pods/exec"),
                (windows, [], False, "\u2717 node node-1 runs Windows"),
                (hostnet, [], False, "the host network"),
                (self.existing_tap_state(securityContext={"privileged": True}),
                 [], False, "container that is privileged")):
            with self.subTest(want=want):
                code, out, err, _ = self.check(state, *args)
                self.assertIn(want, out)
                self.assertEqual(code, 0 if ok else 1, out + err)
                self.assertIn("a run would start" if ok else
                              "a run would not start", out)
        # kubectl before 1.30 execs over SPDY only: create it must be.
        code, out, err, _ = self.check(
            self.state(rbac={"deny": ["create pods/exec"]}), version="1.29")
        self.assertIn("\u2717 RBAC: cannot create pods/exec", out)
        self.assertEqual(code, 1, out + err)

    def test_check_resolves_targets_ports_and_meshes_as_a_run(self):
        svc = {"kind": "Service", "metadata": {"name": "shopfront",
                                               "namespace": "shop"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "web", "port": 80,
                                   "targetPort": "http"}]}}
        sts = {"kind": "StatefulSet", "metadata": {"name": "db",
                                                   "namespace": "shop"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": self.NAMED}}}}
        ds, rs = (dict(sts, kind=kind, metadata={"name": name,
                                                  "namespace": "shop"})
                  for kind, name in (("DaemonSet", "agent"),
                                     ("ReplicaSet", "web-7d4b9c6f5d")))
        native = {"spec": {"initContainers": [
            {"name": "istio-proxy", "image": "istio/proxyv2",
             "restartPolicy": "Always"}]}}
        pod = PODS[0]
        for target, args, raw, annotations, ok, want in (
                ("service/shopfront", ["-p", "80"], None, None, True,
                 ["\u2713 service shopfront: 1 running pod",
                  "\u2713 port: service port 80 is targetPort 'http', port "
                  f"8080 in pod {pod}; the tap captures TCP port 8080",
                  "\u2713 RBAC: can get services in namespace shop"]),
                ("sts/db", ["-p", "http"], None, None, True,
                 ["\u2713 statefulset db: 1 running pod",
                  f"\u2713 port: http is 8080 in pod {pod}",
                  "\u2713 RBAC: can get statefulsets in namespace shop"]),
                ("ds/agent", ["-p", "http"], None, None, True,
                 ["\u2713 daemonset agent: 1 running pod",
                  "\u2713 RBAC: can get daemonsets in namespace shop"]),
                ("replicaset/web-7d4b9c6f5d", [], None, None, True,
                 ["\u2713 replicaset web-7d4b9c6f5d: 1 running pod",
                  "\u2713 RBAC: can get replicasets in namespace shop"]),
                ("web", ["-p", "grpc"], None, None, False,
                 [f"\u2717 port: pod {pod} has no TCP container port named "
                  "'grpc' (its ports: 8080 (http))"]),
                ("web", [], native, None, True,
                 [f"\u2713 mesh: Istio (sidecar) (native sidecar istio-proxy) "
                  f"in pod {pod}; the run mirrors the sidecar's plaintext "
                  "connections"]),
                ("web", [], None, {"linkerd.io/proxy-version": "stable-2.14"},
                 True,
                 ["\u2713 mesh: Linkerd (annotation linkerd.io/proxy-version)"]),
                ("web", [], None, {"ambient.istio.io/redirection": "enabled"},
                 True,
                 ["\u2713 mesh: Istio (ambient) (annotation "
                  "ambient.istio.io/redirection) in pod "
                  f"{pod}; the run mirrors the plaintext ztunnel delivers"]),
                ("web", ["--mesh", "off"], native, None, True,
                 ["--mesh off: the run mirrors the connections from other "
                  "hosts"])):
            with self.subTest(target=target, args=args, want=want[0]):
                st = self.state(containers=self.NAMED,
                                objects=[svc, sts, ds, rs])
                if raw:
                    st["pods"][0]["raw"] = raw
                if annotations:
                    st["pods"][0]["annotations"] = annotations
                if "-p" not in args:
                    args = ["-p", "8080", *args]
                code, out, err, _ = self.check(st, *args, target=target,
                                               port=None)
                for line in want:
                    self.assertIn(line, out)
                self.assertEqual(code, 0 if ok else 1, out + err)

    def test_oversized_kubectl_output_is_refused_with_a_reason(self):
        # A pod's JSON is at most a few MiB (etcd refuses bigger objects);
        # a server that sends more is cut off, and the run says so.
        st = self.state()
        st["pods"][0]["annotations"] = {"example.com/blob": "x" * (9 << 20)}
        self.failure(st, ["-n", "shop"],
                     rf"kubectl printed more than 8 MiB for pod {PODS[0]}",
                     target=f"pod/{PODS[0]}")

    def test_max_pods_caps_the_pods_tapped_at_once(self):
        with FakeKube(self.state(pods=3)) as fk:
            sink = t.Sink(self.tmp)
            stats = self.tmp("max.json")
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("max.pcap"), "--all-pods",
                           "--max-pods", 2, "--stats-json", stats)
            err = self.wait_for(p, "capturing TCP port")
            time.sleep(2)
            code, _, err = self.interrupt(p, err)
            sink.stop()
            self.assertEqual(code, 0, err)
            self.assertRegex(err, "warning: deployment web has 3 running "
                                  "pods; tapping 2 of them \(--max-pods 2\)")
            self.assertEqual(len(capture_execs(fk)), 2)
            self.assertIn("kubernetes: tapped 2 pods", err)
            k = t.read_json(stats)["kubernetes"]
            # Ready pods first, then by name.
            self.assertEqual(sorted(k["pods"]), sorted(PODS)[:2])
            self.assertEqual(k["pods_tapped"], 2)
            self.assertEqual(k["pods_left_untapped"], 1)

    # ---- failures: one clear line each, and nothing injected when a
    # local mistake would stop the run anyway

    def test_local_mistakes_touch_nothing(self):
        with FakeKube(self.state()) as fk:
            port = t.free_port()
            code, err = self.run_fail(fk, "web", "-n", "shop", "-p", 8080,
                                      "--to", f":{port}")
            self.assertEqual(code, 1, err)
            self.assertRegex(err, rf"cannot reach --to :{port}")
            self.assertEqual(fk.requests(), [], "the cluster was touched")
            os.mkdir(self.tmp("adir"))
            sink = t.Sink(self.tmp)
            code, err = self.run_fail(fk, "web", "-n", "shop", "-p", 8080,
                                      "--to", sink.to, "-o", self.tmp("adir"))
            sink.stop()
            self.assertEqual(code, 1, err)
            self.assertEqual(fk.requests(), [], "the cluster was touched")
            code, err = self.run_fail(fk, "web", "-n", "shop", "-p", 8080,
                                      "--kubectl", "/nonexistent/kubectl")
            self.assertEqual(code, 1, err)
            self.assertIn("--kubectl /nonexistent/kubectl", err)
            self.assertEqual(fk.requests(), [])

    def failure(self, state, args, pattern, version="1.33", target="web",
                no_writes=True):
        with FakeKube(state, version=version) as fk:
            sink = t.Sink(self.tmp)
            # A capture from an earlier run at the output path must
            # survive a run that fails before writing anything.
            earlier = b"an earlier capture"
            with open(self.tmp("f.pcap"), "wb") as fp:
                fp.write(earlier)
            t0 = time.monotonic()
            code, err = self.run_fail(fk, target, "-p", 8080, "--to",
                                      sink.to, "-o", self.tmp("f.pcap"),
                                      *args)
            sink.stop()
            self.assertEqual(code, 1, err)
            if no_writes:
                # Nothing streamed: the earlier capture is untouched. (A
                # tap that sent a file header and then failed has begun
                # a new capture.)
                self.assertEqual(t.read_bytes(self.tmp("f.pcap")), earlier)
            # One line says what is wrong.
            hits = [l for l in err.splitlines()
                    if l.startswith("tapmirror: ") and re.search(pattern, l)]
            self.assertEqual(len(hits), 1, f"{pattern!r} in:\n{err}")
            if no_writes:
                self.assertEqual([e["method"] for e in self.writes(fk)], [])
            return err, time.monotonic() - t0, fk

    def test_failures(self):
        st = self.state()
        self.failure(st, ["-n", "shop", "--context", "nope"],
                     "kubeconfig context not found")
        self.failure(st, ["-n", "shop", "--kubeconfig", self.tmp("none")],
                     "kubeconfig problem")
        self.failure(st, ["-n", "shop"],
                     "deployment nope not found in namespace shop",
                     target="deployment/nope")
        self.failure(st, ["-n", "nowhere"], "namespace nowhere not found")
        self.failure(st, ["-n", "shop"], "pod web-x not found",
                     target="pod/web-x")
        pending = self.state()
        pending["pods"][0]["start_ms"] = 600000
        self.failure(pending, ["-n", "shop"],
                     "deployment web in namespace shop has no running pods")
        self.failure(self.state(default_container=None), ["-n", "shop"],
                     r"has several containers \(api, envoy\): choose one "
                     "with -c")
        self.failure(st, ["-n", "shop", "-c", "nope"],
                     r"container nope not found in pod .* \(it has: api, "
                     "envoy\\)")
        hostnet = self.state()
        hostnet["pods"][0]["hostNetwork"] = True
        self.failure(hostnet, ["-n", "shop"], "host network")
        rbac = self.state(rbac={"user": "system:serviceaccount:dev:me",
                                "deny": ["patch pods/ephemeralcontainers",
                                         "update pods/ephemeralcontainers"]})
        # These reach the injection, which the cluster refuses.
        self.failure(rbac, ["-n", "shop"],
                     "not allowed: system:serviceaccount:dev:me cannot patch "
                     "pods/ephemeralcontainers in namespace shop; a Role "
                     "granting 'patch'", no_writes=False)
        self.failure(rbac, ["-n", "shop"],
                     "cannot update pods/ephemeralcontainers", version="1.27",
                     no_writes=False)
        self.failure(self.state(rbac={"deny": ["get deployments"]}),
                     ["-n", "shop"], "cannot get deployments.apps")
        self.failure(self.state(psa={"level": "baseline"}),
                     ["-n", "shop", "--tap-profile", "netraw"],
                     "Pod Security level \"baseline\" in namespace shop "
                     "refuses the NET_RAW tap; --tap-profile baseline",
                     no_writes=False)
        self.failure(self.state(ephemeral_containers=False), ["-n", "shop"],
                     "does not support ephemeral containers", no_writes=False)
        err, took, _ = self.failure(
            self.state(tap={"outcome": "ErrImagePull",
                            "message": "pull access denied for bad/image"}),
            ["-n", "shop", "--tap-image", "bad/image:1"],
            "the tap in pod .* cannot start: ErrImagePull: pull access "
            "denied", no_writes=False)
        self.assertLess(took, 20, "an image pull error must fail fast")
        self.failure(self.state(exec_modes=["notfound"]), ["-n", "shop"],
                     "has no tcpdump", no_writes=False)
        # The exec's refusal names the namespace given with -n.
        self.failure(self.state(rbac={"deny": ["get pods/exec",
                                               "create pods/exec"]}),
                     ["-n", "shop"],
                     "cannot (get|create) pods/exec in namespace shop",
                     no_writes=False)
        # A pod whose name tapmirror will not pass to kubectl: the reason,
        # not "no running pods".
        badname = self.state()
        badname["pods"][0]["name"] = "Web_Pod"
        self.failure(badname, ["-n", "shop"],
                     "deployment web in namespace shop has no running pod "
                     "tapmirror accepts: 1 refused \\(pod name \"Web_Pod\" is "
                     "not a valid Kubernetes name")

    def test_pod_and_container_choice(self):
        # Ready pods first, terminating ones never.
        st = self.state(pods=3)
        st["pods"][0]["ready"] = False
        st["pods"][1]["deletionTimestamp"] = "2026-11-28T00:00:00Z"
        with FakeKube(st) as fk:
            sink = t.Sink(self.tmp, expect=5)
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("choice.pcap"), "-c",
                           "envoy")
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertIn(f"in pod {PODS[2]}", err)
            self.assertEqual(sink.streams(),
                             fnv_streams(self.caps[2]["payloads"]))
            put = [e for e in fk.requests()
                   if e["path"].endswith("/ephemeralcontainers")
                   and e["method"] in ("PATCH", "PUT")]
            self.assertEqual(
                put[0]["body"]["spec"]["ephemeralContainers"][-1]
                ["targetContainerName"], "envoy")
        # A pod with one container needs no -c.
        single = self.state(containers=[{"name": "app", "image": "x:1"}],
                            default_container=None)
        with FakeKube(single) as fk:
            sink = t.Sink(self.tmp, expect=5)
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("single.pcap"))
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertIn("container app", err)

    def test_stop_before_any_capture_empties_an_earlier_one(self):
        # Ctrl-C while the tap is still starting: a clean stop (exit 0)
        # that captured nothing. The output holds this run's capture,
        # which is none, not the earlier run's.
        with FakeKube(self.state(tap={"running_ms": 600000})) as fk:
            out = self.tmp("early.pcap")
            with open(out, "wb") as fp:
                fp.write(b"an earlier capture")
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "-o", out)
            err = self.wait_for(p, "injected the tap")
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertEqual(t.read_bytes(out), b"")

    def test_tap_failures(self):
        self.failure(self.state(tap={"outcome": "CreateContainerConfigError",
                                     "message": "container has runAsNonRoot "
                                                "and image will run as root"}),
                     ["-n", "shop"], "cannot start: CreateContainerConfigError"
                     ": container has runAsNonRoot", no_writes=False)
        self.failure(self.state(tap={"outcome": "terminated",
                                     "exit_code": 2}),
                     ["-n", "shop"], "exited .*code 2.* never restart",
                     no_writes=False)
        err, took, _ = self.failure(
            self.state(tap={"running_ms": 600000}),
            ["-n", "shop", "--tap-timeout", "2s"],
            r"did not start within 2\.00 s \(waiting: ContainerCreating\)",
            no_writes=False)
        self.assertLess(took, 15)
        # tcpdump prints its banner, then fails: the message quotes the
        # error, not the banner.
        self.failure(self.state(exec_modes=[{
            "mode": "exit", "exit_code": 1, "stdout_bytes": 24,
            "stderr": LISTENING + "tcpdump: Couldn't change to 'tcpdump' "
                      "uid=102 gid=105: Operation not permitted\n"}]),
            ["-n", "shop"], "tries to drop root and cannot with only NET_RAW "
            r"\(tcpdump: Couldn't change to 'tcpdump' uid=102 gid=105: "
            r"Operation not permitted\)", no_writes=False)

    # ---- text from the cluster never drives the operator's terminal

    def assert_terminal_safe(self, err):
        """stderr (bytes) is UTF-8 without control characters but newlines."""
        text = err.decode("utf-8")  # strict: raw 8-bit bytes fail here
        bad = [f"{ord(c):02x}" for c in text
               if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]
        self.assertEqual(bad, [], text)
        return text

    def run_raw(self, fk, target, *args):
        argv = [*t.WRAPPER, t.TAPMIRROR, "mirror", target, *map(str, args)]
        r = subprocess.run(argv, env=fk.env(), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120 * t.SLOW)
        return r.returncode, r.stderr

    def test_remote_text_is_escaped(self):
        cases = []
        # tcpdump's (or an intruder's) stderr, in the failure message.
        st = self.state(exec_modes=[{
            "mode": "exit", "exit_code": 1,
            "stderr_b64": base64.b64encode(
                LISTENING.encode() + b"tcpdump: Couldn't change to " + EVIL
                + b"\n").decode()}])
        cases.append((st, "tcpdump: Couldn't change to " + EVIL_SHOWN))
        # The kubelet's message about the tap, from the pod's status.
        st = self.state(tap={"outcome": "ErrImagePull",
                             "message": "pull denied " + EVIL_TEXT})
        cases.append((st, "ErrImagePull: pull denied " + EVIL_TEXT_SHOWN))
        # A pod's name.
        st = self.state()
        st["pods"][0]["name"] = "web-" + EVIL_TEXT
        cases.append((st, 'pod name "web-' + EVIL_TEXT_SHOWN + '"'))
        for st, shown in cases:
            with self.subTest(shown=shown), FakeKube(st) as fk:
                code, err = self.run_raw(fk, "web", "-n", "shop", "-p", 8080,
                                         "-o", self.tmp("evil.pcap"))
                self.assertEqual(code, 1, err)
                text = self.assert_terminal_safe(err)
                self.assertIn(shown, text)

    def test_remote_stderr_is_escaped_with_v(self):
        # -v shows every line tcpdump writes to stderr.
        st = self.state(exec_modes=[{
            "mode": "capture", "capture": self.caps[0]["path"],
            "stderr_b64": base64.b64encode(
                LISTENING.encode() + b"tcpdump: " + EVIL + b"\n").decode()}])
        with FakeKube(st) as fk:
            argv = [*t.WRAPPER, t.TAPMIRROR, "mirror", "web", "-n", "shop",
                    "-p", "8080", "-o", self.tmp("v.pcap"), "-v"]
            p = subprocess.Popen(argv, env=fk.env(), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            want = f"pod {PODS[0]}: tcpdump: {EVIL_SHOWN}".encode()
            err = b""
            deadline = time.monotonic() + 60 * t.SLOW
            while want not in err and time.monotonic() < deadline:
                if p.poll() is not None:
                    break
                r, _, _ = select.select([p.stderr], [], [], 0.2)
                if r:
                    chunk = os.read(p.stderr.fileno(), 65536)
                    if not chunk:
                        break
                    err += chunk
            p.send_signal(signal.SIGINT)
            _, rest = p.communicate(timeout=30 * t.SLOW)
            err += rest
            self.assertEqual(p.returncode, 0, err)
            text = self.assert_terminal_safe(err)
            self.assertIn(want.decode(), text)

    # ---- staying attached

    def test_stream_that_ends_is_reattached(self):
        cap = self.caps[0]
        first, second = podtraffic.split_records(cap["bytes"], 2)
        t.write_bytes(self.tmp("part1.pcap"), first)
        t.write_bytes(self.tmp("part2.pcap"), second)
        st = self.state(exec_modes=[
            {"mode": "close", "capture": self.tmp("part1.pcap")},
            {"mode": "capture", "capture": self.tmp("part2.pcap")}])
        with FakeKube(st) as fk:
            sink = t.Sink(self.tmp, expect=len(cap["payloads"]))
            out = self.tmp("reattach.pcap")
            stats = self.tmp("reattach.json")
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", out, "--stats-json", stats)
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            # Connections split across the two streams arrive whole.
            self.assertEqual(sink.streams(), fnv_streams(cap["payloads"]))
            # One output file, one file header.
            self.assertEqual(t.read_bytes(out), cap["bytes"])
            self.assertEqual(t.read_json(stats)["kubernetes"]["reattaches"], 1)
            self.assertIn("re-attaching", err)
            self.assertEqual(len(capture_execs(fk)), 2)

    def test_dropped_websocket_is_reattached(self):
        # A dropped connection: kubectl 1.33 exits 1 with "close 1006".
        cap = self.caps[0]
        first, second = podtraffic.split_records(cap["bytes"], 2)
        t.write_bytes(self.tmp("d1.pcap"), first)
        t.write_bytes(self.tmp("d2.pcap"), second)
        st = self.state(exec_modes=[
            {"mode": "drop", "capture": self.tmp("d1.pcap"),
             "drop_after": len(first)},
            {"mode": "capture", "capture": self.tmp("d2.pcap")}])
        with FakeKube(st, version="1.33") as fk:
            sink = t.Sink(self.tmp, expect=len(cap["payloads"]))
            stats = self.tmp("drop.json")
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("drop.pcap"),
                           "--stats-json", stats)
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertEqual(sink.streams(), fnv_streams(cap["payloads"]))
            self.assertEqual(t.read_json(stats)["kubernetes"]["reattaches"], 1)
            self.assertRegex(err, "kubectl exit code 1")

    def test_all_pods_follows_the_set(self):
        a, b, c3 = self.caps
        with FakeKube(self.state(pods=2)) as fk:
            sink = t.Sink(self.tmp)
            stats = self.tmp("set.json")
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("set.pcap"), "--all-pods",
                           "--stats-json", stats)
            err = self.wait_for(p, "capturing TCP port")
            fk.event("add_pod", pod={
                "name": "web-7d4b9c6f5d-third", "namespace": "shop",
                "deployment": "web", "podIP": c3["ip"],
                "exec": [{"container": "tapmirror-tap", "argv0": "tcpdump",
                          "capture": c3["path"], "modes": ["capture"]}]})
            err += self.wait_for(p, "tapping it too", timeout=30)
            fk.event("delete_pod", namespace="shop", pod=PODS[1], grace_ms=0)
            err += self.wait_for(p, f"pod {PODS[1]}", timeout=30)
            time.sleep(3)
            code, _, err = self.interrupt(p, err)
            sink.stop()
            self.assertEqual(code, 0, err)
            want = fnv_streams(a["payloads"] + b["payloads"] + c3["payloads"])
            self.assertEqual(sink.streams(complete_only=True), want)
            pods = t.read_json(stats)["kubernetes"]["pods"]
            self.assertEqual(sorted(pods), sorted(PODS[:2] +
                                                  ["web-7d4b9c6f5d-third"]))
            # Three pods of one image: its tcpdump was probed once.
            probes = [e for e in fk.execs() if "--version" in e["command"]]
            self.assertEqual(len(probes), 1, probes)

    def test_interrupt_stops_a_stubborn_kubectl(self):
        # The remote end ignores the closed standard input: kubectl must
        # still be gone soon after Ctrl-C (SIGTERM after 2 s).
        st = self.state(exec_modes=[{"mode": "capture",
                                     "ignore_stdin_close": True}])
        with FakeKube(st) as fk:
            sink = t.Sink(self.tmp, expect=5)
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("stub.pcap"))
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            t0 = time.monotonic()
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertLess(time.monotonic() - t0, 10 * t.SLOW)
            self.assert_no_kubectl(PODS[0])

    # ---- signals: no kubectl outlives the run, whatever ends it

    def kubectls(self, fk, exclude=()):
        """Pids of live processes started with this server's kubeconfig in
        their environment: the kubectl of this run (tapmirror excluded)."""
        want = f"KUBECONFIG={fk.kubeconfig}".encode()
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) in exclude:
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                with open(f"/proc/{pid}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if want in env and state != b"Z":
                found.append(int(pid))
        return found

    def wait_no_kubectl(self, fk, exclude=(), timeout=3.0):
        deadline = time.monotonic() + timeout * t.SLOW
        while True:
            left = self.kubectls(fk, exclude)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def stubborn_mirror(self, fk, name):
        """A run whose kubectl exec ignores its closed standard input, so
        that a stop waits 2 s for it; returns (process, stderr so far,
        stats path, sink)."""
        sink = t.Sink(self.tmp, expect=5)
        stats = self.tmp(f"{name}.json")
        p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to", sink.to,
                       "-o", self.tmp(f"{name}.pcap"), "--stats-json", stats)
        err = self.wait_for(p, "capturing TCP port")
        sink.wait(timeout=60)
        self.assertNotEqual(self.kubectls(fk, (p.pid,)), [],
                            "no kubectl found to watch")
        return p, err, stats, sink

    def test_second_interrupt_while_kubectl_stops(self):
        st = self.state(exec_modes=[{"mode": "capture",
                                     "ignore_stdin_close": True}])
        with FakeKube(st) as fk:
            p, err, stats, sink = self.stubborn_mirror(fk, "twice")
            p.send_signal(signal.SIGINT)
            err += t.wait_stderr(p, "interrupted: stopping")
            # Everything is delivered at once: the run now only waits for
            # kubectl, which ignores its closed standard input.
            time.sleep(0.5)
            t0 = time.monotonic()
            code, _, err = self.interrupt(p, err)
            took = time.monotonic() - t0
            sink.stop()
            self.assertEqual(code, 130, err)
            self.assertLess(took, 1.5 * t.SLOW, "waited for kubectl")
            self.assertIn("interrupted again", err)
            self.assertIn("connections:", err)  # the summary
            self.assertIn("kubectl rollout restart deployment/web -n shop",
                          err)
            doc = t.read_json(stats)
            self.assertEqual(doc["exit_code"], 130)
            self.assertEqual(doc["kubernetes"]["pods"], [PODS[0]])
            self.assertEqual(self.kubectls(fk, (p.pid,)), [],
                             "kubectl left running")

    def test_hangup_stops_like_sigterm(self):
        with FakeKube(self.state()) as fk:
            sink = t.Sink(self.tmp, expect=5)
            stats = self.tmp("hup.json")
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", self.tmp("hup.pcap"),
                           "--stats-json", stats)
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            p.send_signal(signal.SIGHUP)
            out, errb = p.communicate(timeout=30 * t.SLOW)
            err += errb.decode(errors="replace")
            sink.stop()
            self.assertEqual(p.returncode, 0, err)
            self.assertIn("hangup: stopping", err)
            self.assertIn("connections:", err)
            self.assertEqual(sink.streams(),
                             fnv_streams(self.caps[0]["payloads"]))
            doc = t.read_json(stats)
            self.assertEqual(doc["exit_code"], 0)
            self.assertEqual(doc["flows"]["seen"],
                             len(self.caps[0]["payloads"]))
            # Stopped the polite way, and nothing left behind.
            self.assertTrue(capture_execs(fk)[0]["stdin_closed"])
            self.assertEqual(self.kubectls(fk, (p.pid,)), [],
                             "kubectl left running")

    def test_killed_tapmirror_takes_kubectl_along(self):
        # SIGKILL (or the OOM killer) leaves tapmirror no chance to stop
        # anything: its kubectl must go too, even one whose remote end
        # ignores the standard input the kernel closed.
        st = self.state(exec_modes=[{"mode": "capture",
                                     "ignore_stdin_close": True}])
        with FakeKube(st) as fk:
            p, err, _, sink = self.stubborn_mirror(fk, "killed")
            before = self.kubectls(fk, (p.pid,))
            p.kill()
            p.communicate(timeout=10)
            sink.stop()
            left = self.wait_no_kubectl(fk, (p.pid,))
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            self.assertEqual(left, [], f"kubectl {before} outlived tapmirror")

    def test_kubectl_plugin(self):
        bindir = self.tmp("bin")
        os.mkdir(bindir)
        os.symlink(t.TAPMIRROR, os.path.join(bindir, "kubectl-tapmirror"))
        env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"])
        r = subprocess.run([kubectl_path(), "tapmirror", "mirror", "--help"],
                           env=env, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"Usage: kubectl tapmirror mirror", r.stdout)

    def test_replaced_pod_is_followed(self):
        # Every target with a selector follows its pods as a Deployment.
        sts = {"kind": "StatefulSet", "metadata": {"name": "db",
                                                   "namespace": "shop"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [
                                         {"name": "api", "image": "db:1"}]}}}}
        svc = {"kind": "Service", "metadata": {"name": "shopfront",
                                               "namespace": "shop"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "web", "port": 80,
                                   "targetPort": 8080}]}}
        for target, port, what in (("deployment/web", 8080, "deployment web"),
                                   ("sts/db", 8080, "statefulset db"),
                                   ("service/shopfront", 80,
                                    "service shopfront")):
            with self.subTest(target=target):
                self.replaced_pod_is_followed(target, port, what, [sts, svc])

    def replaced_pod_is_followed(self, target, port, what, objects):
        a, b = self.caps[0], self.caps[1]
        with FakeKube(self.state(objects=objects)) as fk:
            sink = t.Sink(self.tmp)
            stats = self.tmp("switch.json")
            p = self.start(fk, target, "-n", "shop", "-p", port,
                           "--to", sink.to, "-o", self.tmp("switch.pcap"),
                           "--stats-json", stats)
            err = self.wait_for(p, "capturing TCP port")
            time.sleep(1.0)
            fk.event("add_pod", pod={
                "name": "web-5f6c7d8e9a-newpd", "namespace": "shop",
                "deployment": "web", "podIP": b["ip"],
                "exec": [{"container": "tapmirror-tap", "argv0": "tcpdump",
                          "capture": b["path"], "modes": ["capture"]}]})
            fk.event("delete_pod", namespace="shop", pod=PODS[0],
                     grace_ms=300)
            err += self.wait_for(p, "capturing in pod web-5f6c7d8e9a-newpd",
                                 timeout=60)
            deadline = time.monotonic() + 30
            want = fnv_streams(a["payloads"] + b["payloads"])
            code, _, err2 = None, None, ""
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if capture_execs(fk)[-1]["stdout_bytes"] >= len(b["bytes"]):
                    break
            time.sleep(1.0)
            code, _, err = self.interrupt(p, err)
            sink.stop()
            self.assertEqual(code, 0, err)
            self.assertEqual(sink.streams(complete_only=True), want)
            st = t.read_json(stats)
            self.assertEqual(st["kubernetes"]["pod_switches"], 1)
            self.assertEqual(st["kubernetes"]["pods"],
                             [PODS[0], "web-5f6c7d8e9a-newpd"])
            self.assertIn(f"following {what} to pod", err)

    def test_gone_pod_target_is_an_error(self):
        with FakeKube(self.state()) as fk:
            sink = t.Sink(self.tmp)
            p = self.start(fk, f"pod/{PODS[0]}", "-n", "shop", "-p", 8080,
                           "--to", sink.to, "-o", self.tmp("gone.pcap"))
            err = self.wait_for(p, "capturing TCP port")
            fk.event("delete_pod", namespace="shop", pod=PODS[0], grace_ms=0)
            _, errb = p.communicate(timeout=60 * t.SLOW)
            err += errb.decode(errors="replace")
            sink.stop()
            self.assertEqual(p.returncode, 1, err)
            self.assertRegex(err, rf"pod {PODS[0]} (is gone|was replaced|is "
                                  "terminating)")

    def test_all_pods(self):
        total = sum((c["payloads"] for c in self.caps), [])
        with FakeKube(self.state(pods=3)) as fk:
            sink = t.Sink(self.tmp, expect=len(total))
            out = self.tmp("all.pcap")
            stats = self.tmp("all.json")
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", out, "--stats-json", stats,
                           "--all-pods")
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            code, _, err = self.interrupt(p, err)
            self.assertEqual(code, 0, err)
            self.assertEqual(sink.streams(), fnv_streams(total))
            st = t.read_json(stats)
            self.assertEqual(sorted(st["kubernetes"]["pods"]), sorted(PODS))
            self.assertEqual(len(capture_execs(fk)), 3)
            # One merged capture holding all three pods' connections.
            r = t.run(["summary", out, "-p", 8080, "--json", "--flows", "0"])
            doc = json.loads(r.stdout)
            self.assertEqual(doc["connections"], len(total))
            self.assertFalse(doc["truncated"])
            for pod in PODS:
                self.assert_no_kubectl(pod)

    def test_stdout_carries_only_the_capture(self):
        cap = self.caps[0]
        with FakeKube(self.state()) as fk:
            sink = t.Sink(self.tmp, expect=len(cap["payloads"]))
            p = self.start(fk, "web", "-n", "shop", "-p", 8080, "--to",
                           sink.to, "-o", "-")
            chunks = []
            import threading
            reader = threading.Thread(
                target=lambda: chunks.append(p.stdout.read()), daemon=True)
            reader.start()
            err = self.wait_for(p, "capturing TCP port")
            sink.wait(timeout=60)
            p.send_signal(signal.SIGINT)
            code = p.wait(timeout=30 * t.SLOW)
            reader.join(10)
            err += p.stderr.read().decode(errors="replace")
            self.assertEqual(code, 0, err)
            self.assertEqual(b"".join(chunks), cap["bytes"])



class MeshMirror(unittest.TestCase):
    """A pod behind a mesh sidecar: a real TLS-terminating proxy in front
    of the application, recorded in the pod's network namespace."""

    @classmethod
    def setUpClass(cls):
        cls.skip = None
        if kubectl_path() is None:
            cls.skip = "kubectl is not installed"
        else:
            ok, why = podtraffic.can_record_mesh()
            if not ok:
                cls.skip = why
        if cls.skip:
            print(f"skipping mesh tests: {cls.skip}")
            return
        cls.dir = t.TempDir()
        cls.caps = {}
        for k, (hop, iface) in enumerate((("127.0.0.6", "any"),
                                          ("pod", "any"), ("pod", "lo"))):
            path = cls.dir(f"mesh{k}.pcap")
            ip, payloads = podtraffic.record_mesh(path, k, cls.dir(""),
                                                  hop_from=hop, seed=k + 3,
                                                  iface=iface)
            cls.caps[hop if iface == "any" else iface] = {
                "path": path, "ip": ip, "payloads": payloads}

    @classmethod
    def tearDownClass(cls):
        if not cls.skip:
            cls.dir.cleanup()

    def setUp(self):
        if self.skip:
            self.skipTest(self.skip)
        self.tmp = t.TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    def mirror(self, cap, shape, *args):
        st = standard_state(replicas=1)
        pod = st["pods"][0]
        pod["podIP"] = cap["ip"]
        pod["exec"] = [{"container": "tapmirror-tap", "argv0": "tcpdump",
                        "capture": cap["path"], "modes": ["capture"]}]
        pod.update(shape)
        with FakeKube(st, version="1.33") as fk:
            sink = t.Sink(self.tmp)
            stats = self.tmp("s.json")
            argv = [*t.WRAPPER, t.TAPMIRROR, "mirror", "deployment/web", "-n",
                    "shop", "-p", "8080", "-c", "api", "--to", sink.to,
                    "-o", self.tmp("m.pcap"), "--stats-json", stats, *args]
            p = subprocess.Popen(argv, env=fk.env(), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            err = t.wait_stderr(p, "capturing TCP port 8080", 60)
            time.sleep(3 * t.SLOW)
            p.send_signal(signal.SIGINT)
            _, rest = p.communicate(timeout=60)
            err += rest.decode(errors="replace")
            self.assertEqual(p.returncode, 0, err)
            sink.stop(grace=1)
            return sink, t.read_json(stats), err, capture_execs(fk)

    def test_sidecar_hop_is_mirrored(self):
        istio_container = {"containers": ["api", "istio-proxy"],
                           "annotations": {"sidecar.istio.io/status": "{}"}}

        def native(name):
            return {"raw": {"spec": {"initContainers": [
                {"name": name, "image": "proxy", "restartPolicy": "Always"}]}}}
        linkerd_container = {
            "containers": ["api", "linkerd-proxy"],
            "annotations": {"linkerd.io/proxy-version": "stable-2.14.10"}}
        for hop, shape, name in (("127.0.0.6", istio_container,
                                  "Istio (sidecar) (container istio-proxy)"),
                                 ("127.0.0.6", native("istio-proxy"),
                                  "Istio (sidecar) (native sidecar "
                                  "istio-proxy)"),
                                 ("pod", linkerd_container,
                                  "Linkerd (container linkerd-proxy)"),
                                 ("pod", native("linkerd-proxy"),
                                  "Linkerd (native sidecar linkerd-proxy)")):
            with self.subTest(name=name):
                cap = self.caps[hop]
                sink, st, err, ex = self.mirror(cap, shape)
                # Exactly the plaintext requests, nothing else.
                self.assertEqual(sink.streams(),
                                 fnv_streams(cap["payloads"]), err)
                self.assertEqual(st["flows"]["seen"], len(cap["payloads"]))
                self.assertEqual(st["flows"]["tls_connections"], 0)
                self.assertIn(name + ": mirroring the sidecar's plaintext "
                              "connections to the port", err)
                self.assertEqual(ex[0]["command"][2:4], ["-i", "any"])

    def test_mesh_off_mirrors_the_tls_and_does_not_replay_it(self):
        cap = self.caps["127.0.0.6"]
        shape = {"containers": ["api", "istio-proxy"]}
        sink, st, err, _ = self.mirror(cap, shape, "--mesh", "off")
        # The start-up probe of the target may connect; nothing is sent.
        self.assertEqual([s for s in sink.streams() if s[0] > 0], [], err)
        self.assertEqual(st["flows"]["tls_connections"],
                         len(cap["payloads"]))
        self.assertIn("4 connections were TLS and were not replayed", err)
        self.assertNotIn("Istio", err)
        # --replay-tls sends the mesh's TLS as it was, and still not the
        # sidecar's plaintext hop.
        sink, st, err, _ = self.mirror(cap, shape, "--mesh", "off",
                                       "--replay-tls")
        sent = [s for s in sink.streams() if s[0] > 0]
        self.assertEqual(len(sent), len(cap["payloads"]), err)
        self.assertEqual(set(sent) & set(fnv_streams(cap["payloads"])),
                         set(), err)
        self.assertEqual(st["flows"]["tls_connections"],
                         len(cap["payloads"]))
        self.assertIn("(--replay-tls)", err)

    def test_ambient_captures_the_loopback(self):
        # What `tcpdump -i lo` sees in an ambient pod: ztunnel's plaintext
        # hop, from a non-loopback address.
        cap = self.caps["lo"]
        shape = {"annotations": {"ambient.istio.io/redirection": "enabled"}}
        sink, st, err, ex = self.mirror(cap, shape)
        self.assertEqual(sink.streams(), fnv_streams(cap["payloads"]), err)
        self.assertEqual(st["flows"]["seen"], len(cap["payloads"]))
        self.assertEqual(st["flows"]["tls_connections"], 0)
        self.assertEqual(ex[0]["command"],
                         ["tcpdump", "-p", "-i", "lo", "--immediate-mode",
                          "-U", "-w", "-", "tcp", "port", "8080"])
        self.assertIn("Istio (ambient) (annotation "
                      "ambient.istio.io/redirection): mirroring the "
                      "plaintext ztunnel delivers", err)

    def test_replay_counts_tls_and_sends_it_only_when_asked(self):
        cap = self.caps["127.0.0.6"]
        for extra, want in (([], cap["payloads"]), (["--replay-tls"], None)):
            with self.subTest(extra=extra):
                sink = t.Sink(self.tmp)
                stats = self.tmp("r.json")
                r = t.run(["replay", cap["path"], "-p", "8080",
                           "--to", sink.to, "--stats-json", stats, *extra])
                self.assertEqual(r.returncode, 0, r.stderr)
                sink.stop(grace=1)
                st = t.read_json(stats)
                self.assertEqual(st["flows"]["tls_connections"], 4)
                got = sink.streams()
                if want is not None:
                    self.assertEqual(got, fnv_streams(want))
                    self.assertIn(b"4 connections were TLS and were not "
                                  b"replayed", r.stderr)
                else:
                    self.assertEqual(len(got), 8)

class LocalShop:
    """The local build of the pod's HTTP service on 127.0.0.1: it answers
    as production does (podtraffic.http_answer) but for one change, the
    price of item 2; it counts the requests it answered."""

    def __init__(self):
        import http.server
        import threading
        shop = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                price = 12.75 if self.path == "/items/2" else 12.5
                body = json.dumps(podtraffic.http_answer(self.path,
                                                         price)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with shop.lock:
                    shop.answered += 1

            def log_message(self, *a):
                pass

        self.lock = threading.Lock()
        self.answered = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def wait(self, n, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.answered >= n:
                    return True
            time.sleep(0.05)
        return False

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class MirrorCompare(unittest.TestCase):
    """mirror --compare: a pod's HTTP service recorded in a network
    namespace, streamed by the fake API server, compared with a local
    build that prices one item differently."""

    @classmethod
    def setUpClass(cls):
        cls.skip = None
        if kubectl_path() is None:
            cls.skip = "kubectl is not installed"
        else:
            ok, why = podtraffic.can_record()
            if not ok:
                cls.skip = why
        if cls.skip:
            print(f"skipping mirror --compare tests: {cls.skip}")
            return
        cls.dir = t.TempDir()
        cls.path = cls.dir("http.pcap")
        cls.ip, cls.requests = podtraffic.record(cls.path, 0, clients=3,
                                                 http=True)

    @classmethod
    def tearDownClass(cls):
        if not cls.skip:
            cls.dir.cleanup()

    def setUp(self):
        if self.skip:
            self.skipTest(self.skip)
        self.tmp = t.TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    def test_mirror_compare_finds_the_changed_field(self):
        st = standard_state(replicas=1)
        pod = st["pods"][0]
        pod["podIP"] = self.ip
        pod["exec"] = [{"container": "tapmirror-tap", "argv0": "tcpdump",
                        "capture": self.path, "modes": ["capture"]}]
        local = LocalShop()
        try:
            with FakeKube(st, version="1.33") as fk:
                stats, log = self.tmp("s.json"), self.tmp("diff.jsonl")
                argv = [*t.WRAPPER, t.TAPMIRROR, "mirror", "deployment/web",
                        "-n", "shop", "-p", "8080", "--to",
                        f"127.0.0.1:{local.port}", "-o", self.tmp("m.pcap"),
                        "--stats-json", stats, "--diff-log", log,
                        "--fail-on-diff"]
                p = subprocess.Popen(argv, env=fk.env(),
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
                err = t.wait_stderr(p, "capturing TCP port 8080", 60)
                answered = local.wait(len(self.requests), 60 * t.SLOW)
                time.sleep(1 * t.SLOW)  # the last answers reach compare
                p.send_signal(signal.SIGINT)
                _, rest = p.communicate(timeout=60)
                err += rest.decode(errors="replace")
        finally:
            local.close()
        self.assertTrue(answered, err)
        # An exchange differed: --fail-on-diff makes that exit status 4.
        self.assertEqual(p.returncode, 4, err)
        cmp = t.read_json(stats)["compare"]
        self.assertEqual(cmp["exchanges"], len(self.requests),
                         json.dumps(cmp, indent=1))
        self.assertEqual(cmp["differ"], self.requests.count("/items/2"))
        self.assertEqual(cmp["same"], len(self.requests) - cmp["differ"])
        self.assertIn("compared 9 exchanges: 6 same, 3 differ", err)
        with open(log, encoding="utf-8") as f:
            lines = [json.loads(x) for x in f]
        self.assertEqual([x["request"] for x in lines], ["GET /items/2"] * 3)
        for x in lines:
            self.assertIn("$.price: 12.5 -> 12.75",
                          [d.get("line") for d in x["differences"]])


if __name__ == "__main__":
    t.main()
