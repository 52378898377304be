"""Helpers for tests that drive the real kubectl against fakekube.py.

    with FakeKube(standard_state(), version="1.33") as fk:
        r = fk.kubectl("get", "deployment", "web", "-o", "json")
        fk.log(), fk.execs(), fk.event("delete_pod", namespace="shop", name=...)

Every kubectl call made through FakeKube.kubectl() has a timeout. env() gives
KUBECONFIG and a private HOME, so ~/.kube/cache (discovery, and the gcloud
dispatcher's one-hour cache of /version) never leaks between servers.
"""
import copy
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never proxy 127.0.0.1
FAKEKUBE = os.path.join(HERE, "fakekube.py")
TAP = "tapmirror-tap"
TCPDUMP_ARGV = ["tcpdump", "-p", "-i", "any", "-U", "-w", "-", "tcp", "port", "8080"]
LISTENING = ("tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), "
             "snapshot length 262144 bytes\n")


def kubectl_path():
    """The kubectl to run: $KUBECTL, else the one on PATH (None if absent)."""
    return os.environ.get("KUBECTL") or shutil.which("kubectl")


class FakeKube:
    """Starts fakekube.py on an ephemeral port with a state and a version, and
    writes a kubeconfig (context `fake`, namespace `default`, token auth)."""

    def __init__(self, state=None, version="1.33", namespace="default", token="fake-token",
                 start_timeout=10.0, keep=False):
        self.dir = tempfile.mkdtemp(prefix="fakekube-")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.log_path = os.path.join(self.dir, "requests.jsonl")
        self.version, self.namespace, self.token, self.keep = version, namespace, token, keep
        state_path = os.path.join(self.dir, "state.json")
        with open(state_path, "w") as f:
            json.dump(state or {}, f)
        port_file = os.path.join(self.dir, "port")
        cmd = [sys.executable, FAKEKUBE, "--state", state_path, "--port-file", port_file,
               "--log", self.log_path]
        if version:
            cmd += ["--version", str(version)]
        self.stderr = open(os.path.join(self.dir, "fakekube.stderr"), "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr)
        deadline = time.monotonic() + start_timeout
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fakekube did not start; see {self.stderr.name}")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"
        self.write_kubeconfig()

    def write_kubeconfig(self, extra_contexts=()):
        ctx = [f"- name: fake\n  context:\n    cluster: fake\n    user: me\n    namespace: {self.namespace}\n"]
        ctx += [f"- name: {c}\n  context:\n    cluster: fake\n    user: me\n    namespace: {ns}\n"
                for c, ns in extra_contexts]
        with open(self.kubeconfig, "w") as f:
            f.write("apiVersion: v1\nkind: Config\n"
                    f"clusters:\n- name: fake\n  cluster:\n    server: {self.url}\n"
                    f"users:\n- name: me\n  user:\n    token: {self.token}\n"
                    "contexts:\n" + "".join(ctx) + "current-context: fake\npreferences: {}\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def env(self, extra=None):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("KUBECTL_") and k != "KUBECTL_REMOTE_COMMAND_WEBSOCKETS":
                env.pop(k)
        env.update(KUBECONFIG=self.kubeconfig, HOME=self.home,
                   KUBECACHEDIR=os.path.join(self.home, ".kube", "cache"))
        env.update(extra or {})
        return env

    def kubectl(self, *args, input=None, timeout=20, env=None):
        """Runs kubectl; returns CompletedProcess with bytes stdout/stderr."""
        return subprocess.run([kubectl_path(), *args], input=input, capture_output=True,
                              timeout=timeout, env=self.env(env), stdin=None if input is not None
                              else subprocess.DEVNULL)

    def popen(self, *args, env=None, **kw):
        """Starts kubectl with pipes for stdin/stdout/stderr (caller handles timeouts)."""
        kw.setdefault("stdin", subprocess.PIPE)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen([kubectl_path(), *args], env=self.env(env), **kw)

    # ---- control API
    def _call(self, method, path, body=None, timeout=10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with _NO_PROXY.open(req, timeout=timeout) as r:
            return json.load(r)

    def log(self, since=0):
        """Every recorded request (and exec_end / event entries)."""
        return self._call("GET", f"/__fake/log?since={since}")

    def requests(self, since=0):
        return [e for e in self.log(since) if "method" in e]

    def execs(self):
        return self._call("GET", "/__fake/execs")

    def event(self, event, **args):
        """Applies a scenario event now (or after after_ms), e.g.
        event("delete_pod", namespace="shop", pod="web-...", grace_ms=500)."""
        return self._call("POST", "/__fake/event", {"event": event, **args})

    def state(self, state=None, replace=False):
        """Without a state: the rendered objects. With one: merge (or replace) it."""
        if state is None:
            return self._call("GET", "/__fake/state")
        return self._call("POST", "/__fake/state" + ("?mode=replace" if replace else ""), state)

    def wait_exec(self, pred=lambda e: not e["active"], timeout=10):
        """Waits until the last exec session satisfies pred; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            ex = self.execs()
            if ex and pred(ex[-1]):
                return ex[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"exec did not reach the expected state: {ex[-1:] or ex}")
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if not self.stderr.closed:
            self.stderr.close()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- scenarios

WEB_SELECTOR = {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["api", "edge"]},
                                     {"key": "canary", "operator": "DoesNotExist"}]}
WEB_SELECTOR_STR = "app=web,tier in (api,edge),!canary"
POD_SUFFIXES = ["x2k8q", "m9vtl", "p4hzw", "r7cdn", "b5gjs", "t8kwd", "h3qnz", "c6vfp"]


def standard_state(namespace="shop", deployment="web", replicas=2, template_hash="7d4b9c6f5d",
                   containers=None, default_container="api", capture=None, exec_modes=("capture",),
                   tap=None, version=None, extra_pods=(), **extra):
    """Deployment `web` in `shop` (selector app=web, tier in (api,edge), no
    canary label), containers api (port 8080) and envoy, default-container
    annotation api, `replicas` Running+Ready pods named web-7d4b9c6f5d-x2k8q...
    If capture is given, exec of tcpdump in the tap container streams it."""
    containers = containers or [
        {"name": "api", "image": "ghcr.io/example/web:1.4.2", "ports": [{"containerPort": 8080,
                                                                          "protocol": "TCP"}]},
        {"name": "envoy", "image": "envoyproxy/envoy:v1.31.0"}]
    annotations = {"kubectl.kubernetes.io/default-container": default_container} \
        if default_container else {}
    state = {
        "namespaces": [namespace],
        "deployments": [{"name": deployment, "namespace": namespace, "replicas": replicas,
                         "selector": copy.deepcopy(WEB_SELECTOR) if deployment == "web" else None,
                         "template_hash": template_hash,
                         "labels": {"app": deployment},
                         "template": {"labels": {"app": deployment, "tier": "api"},
                                      "annotations": annotations, "containers": containers}}],
        "pods": [{"name": f"{deployment}-{template_hash}-{POD_SUFFIXES[i]}", "namespace": namespace,
                  "deployment": deployment} for i in range(replicas)] + list(extra_pods),
    }
    if state["deployments"][0]["selector"] is None:
        state["deployments"][0]["selector"] = {"matchLabels": {"app": deployment}}
    if capture:
        state["exec"] = [{"container": TAP, "argv0": "tcpdump", "capture": capture,
                          "modes": list(exec_modes)}]
    if tap:
        state["tap"] = tap
    if version:
        state["version"] = version
    state.update(extra)
    return state


def tap_container(name=TAP, image="docker.io/nicolaka/netshoot:v0.16", target="api"):
    """The ephemeral container tapmirror adds (hardened: drop ALL, add NET_RAW)."""
    return {"name": name, "image": image, "command": ["sleep", "infinity"],
            "targetContainerName": target,
            "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]},
                                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "seccompProfile": {"type": "RuntimeDefault"}}}


# ---------------------------------------------------------------- captures

def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def make_pcap(path, packets=64, payload_size=1400, seed=7, all_bytes=True):
    """Writes a pcap (LINUX_SLL2, linktype 276, snaplen 262144) of one TCP
    flow 10.244.0.10:43210 -> 10.244.0.11:8080 over loopback; returns its bytes.
    The payloads hold every byte value (0x00-0xff, CR, LF, ESC...) so any
    transport that mangles a byte changes the SHA-256."""
    import random
    rnd = random.Random(seed)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 276))
    src, dst = bytes([10, 244, 0, 10]), bytes([10, 244, 0, 11])
    seq = 1000
    for i in range(packets):
        if all_bytes and i == 0:
            payload = bytes(range(256)) + b"\r\n\x1b[0m\r\r\n\n\x00\xff" + bytes(range(255, -1, -1))
        else:
            payload = bytes(rnd.getrandbits(8) for _ in range(payload_size))
        tcp = struct.pack("!HHIIBBHHH", 43210, 8080, seq, 1, 5 << 4, 0x18, 65535, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), i, 0x4000, 64, 6, 0,
                         src, dst)
        ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp + payload)) + tcp[18:]
        sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\0" * 8)
        frame = sll2 + ip + tcp + payload
        out += struct.pack("<IIII", 1748772000 + i, (i * 1000) % 1000000, len(frame), len(frame))
        out += frame
        seq += len(payload)
    with open(path, "wb") as f:
        f.write(out)
    return bytes(out)

