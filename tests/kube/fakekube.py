#!/usr/bin/env python3
"""fakekube: a fake Kubernetes API server that the real kubectl can talk to.

Plain HTTP on 127.0.0.1, one thread per connection, Python standard library
only. It serves what `kubectl get/patch/replace --raw/exec` need (version,
discovery, namespaces, deployments, pods, the ephemeralcontainers
subresource, exec over WebSocket v5/v4 and SPDY/3.1 v4/v3/v2) from a JSON
scenario, records every request, and has a control API under /__fake/.
See README.md beside this file for the scenario format and the control API.

    python3 fakekube.py --state STATE.json --port-file F --log LOG.jsonl [--version 1.33]
"""
import argparse
import base64
import copy
import hashlib
import heapq
import http.server
import itertools
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import zlib

TCPDUMP_LISTENING = ("tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), "
                     "snapshot length 262144 bytes\n")
# gitVersion of the clients bundled with the gcloud kubectl dispatcher.
BUNDLED = {27: "v1.27.16", 28: "v1.28.15", 29: "v1.29.14", 30: "v1.30.13",
           31: "v1.31.9", 32: "v1.32.5", 33: "v1.33.1"}
DEFAULT_USER = "system:serviceaccount:dev:me"
FINISH_WAIT = 10.0      # seconds to wait for the client to hang up after the end of an exec
STREAM_WAIT = 30.0      # seconds to wait for the SPDY client to open its streams (kubelet: 30 s)
GROUP_OF = {"deployments": "apps", "replicasets": "apps", "statefulsets": "apps",
            "daemonsets": "apps"}
# Objects served as given (the scenario's "objects"): kind -> (group, resource).
OBJECT_KINDS = {"Service": ("", "services"), "StatefulSet": ("apps", "statefulsets"),
                "DaemonSet": ("apps", "daemonsets"), "ReplicaSet": ("apps", "replicasets")}
# `tcpdump --version` in netshoot v0.16 (stdout).
TCPDUMP_VERSION = (b"tcpdump version 4.99.5\nlibpcap version 1.10.5 (with TPACKET_V3)\n"
                   b"OpenSSL 3.3.2 3 Sep 2024\n")


def _spdy_dictionary():
    """The SPDY/3 zlib dictionary (draft 3, section 2.6.10.1); 1423 bytes."""
    words = ("options head post put delete trace accept accept-charset accept-encoding "
             "accept-language accept-ranges age allow authorization cache-control connection "
             "content-base content-encoding content-language content-length content-location "
             "content-md5 content-range content-type date etag expect expires from host if-match "
             "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
             "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
             "server te trailer transfer-encoding upgrade user-agent vary via warning "
             "www-authenticate method get status 200_OK version HTTP/1.1 url public set-cookie "
             "keep-alive origin").replace("200_OK", "200\0OK").split()
    head = b"".join(struct.pack("!I", len(w)) + w.replace("\0", " ").encode() for w in words)
    tail = (b"100101201202205206300302303304305306307402405406407408409410411412413414415416417"
            b"502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
            b"400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
            b"501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
            b"Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
            b"image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
            b"publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    d = head + tail
    assert len(d) == 1423 and zlib.adler32(d) == 0xE3C6A7C2, "bad SPDY dictionary"
    return d


SPDY_DICT = _spdy_dictionary()


def iso(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def parse_version(v):
    """'1.33', 'v1.33.1', '33' -> (minor, gitVersion)."""
    m = re.fullmatch(r"v?(?:1\.)?(\d+)(?:\.(\d+))?", str(v).strip())
    if not m:
        raise ValueError(f"bad version {v!r}")
    minor = int(m.group(1))
    git = f"v1.{minor}.{m.group(2)}" if m.group(2) else BUNDLED.get(minor, f"v1.{minor}.0")
    return minor, git


# ---------------------------------------------------------------- Status bodies

def status(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason}
    if details is not None:
        s["details"] = {k: v for k, v in details.items() if v not in ("", None)}
    s["code"] = code
    return s


def not_found(resource, name, group=""):
    qual = resource + ("." + group if group else "")
    return status(404, "NotFound", f'{qual} "{name}" not found',
                  {"name": name, "group": group, "kind": resource})


NO_RESOURCE = status(404, "NotFound", "the server could not find the requested resource", {})


def invalid(kind, name, field, body, reason="FieldValueForbidden"):
    """A 422 as validation returns it; body is e.g. 'Forbidden: ...'."""
    return status(422, "Invalid", f'{kind} "{name}" is invalid: {field}: {body}',
                  {"name": name, "kind": kind,
                   "causes": [{"reason": reason, "message": body, "field": field}]})


# Exec outcomes written on the error channel (v4/v5 protocols).
EXEC_SUCCESS = {"metadata": {}, "status": "Success"}


def exec_internal(msg):
    """apierrors.NewInternalError as the kubelet (and the apiserver's stream
    translator, which wraps the kubelet's message once more) writes it."""
    return {"metadata": {}, "status": "Failure", "message": "Internal error occurred: " + msg,
            "reason": "InternalError", "details": {"causes": [{"message": msg}]}, "code": 500}


def exec_exit(code, transport, argv):
    inner = (f"command terminated with exit code {code}" if transport == "websocket"
             else f"error executing command [{' '.join(argv)}], exit code {code}")
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {inner}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


# ---------------------------------------------------------------- selectors

_SEL_TERMS = [
    (re.compile(r"!\s*([\w./-]+)"), lambda m: ("!", m[1], None)),
    (re.compile(r"([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)"),
     lambda m: (m[2], m[1], [v.strip() for v in m[3].split(",") if v.strip()])),
    (re.compile(r"([\w./-]+)\s*(==|=|!=|>|<)\s*([\w./-]*)"), lambda m: (m[2], m[1], m[3])),
    (re.compile(r"([\w./-]+)"), lambda m: ("exists", m[1], None)),
]


def parse_label_selector(s):
    """The labels.Parse grammar: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k, k>n, k<n."""
    terms, depth, cur = [], 0, ""
    for ch in s or "":
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    reqs = []
    for t in (t.strip() for t in terms):
        if not t:
            if s and s.strip():
                raise ValueError(f"unable to parse requirement: found '', in selector {s!r}")
            continue
        for rx, mk in _SEL_TERMS:
            m = rx.fullmatch(t)
            if m:
                reqs.append(mk(m))
                break
        else:
            raise ValueError(f"unable to parse requirement: {t!r}")
    return reqs


def label_match(reqs, labels):
    labels = labels or {}
    for op, k, v in reqs:
        have = k in labels
        val = labels.get(k)
        ok = {"!": not have, "exists": have, "=": have and val == v, "==": have and val == v,
              "!=": not have or val != v, "in": have and val in (v or []),
              "notin": not have or val not in (v or [])}.get(op)
        if op in (">", "<"):
            try:
                ok = have and (int(val) > int(v) if op == ">" else int(val) < int(v))
            except ValueError:
                ok = False
        if not ok:
            return False
    return True


def selector_from_spec(sel):
    """metav1.LabelSelector -> requirements."""
    reqs = [("=", k, v) for k, v in sorted((sel or {}).get("matchLabels", {}).items())]
    for e in (sel or {}).get("matchExpressions", []):
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}[e["operator"]]
        reqs.append((op, e["key"], e.get("values")))
    return reqs


POD_FIELDS = {"metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
              "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
              "status.podIP", "status.nominatedNodeName"}


def parse_field_selector(s, allowed):
    reqs = []
    for t in filter(None, (t.strip() for t in (s or "").split(","))):
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", t)
        if not m:
            raise ValueError(f"invalid selector: '{s}'; can't understand '{t}'")
        if m[1] not in allowed:
            raise KeyError(m[1])
        reqs.append((m[1], m[2] != "!=", m[3]))
    return reqs


def field_match(reqs, obj):
    for path, eq, want in reqs:
        v = obj
        for part in path.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        v = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
        if (v == want) != eq:
            return False
    return True


# ---------------------------------------------------------------- patches

MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
              "volumes": "name", "env": "name", "volumeMounts": "mountPath",
              "ports": "containerPort", "imagePullSecrets": "name", "conditions": "type",
              "ownerReferences": "uid", "containerStatuses": "name",
              "ephemeralContainerStatuses": "name"}


def strategic_merge(orig, patch, key=None):
    """Strategic merge patch, enough of it for pods: maps merge, null deletes,
    lists with a known merge key merge by that key, other lists are replaced."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        out = copy.deepcopy(orig) if isinstance(orig, dict) else {}
        for k, v in patch.items():
            if k.startswith("$"):
                continue
            if v is None:
                out.pop(k, None)
            else:
                out[k] = strategic_merge(out.get(k), v, k)
        return out
    if isinstance(patch, list) and key in MERGE_KEYS and isinstance(orig, list):
        mk, out = MERGE_KEYS[key], copy.deepcopy(orig)
        for item in patch:
            if not isinstance(item, dict):
                continue
            idx = next((i for i, o in enumerate(out)
                        if isinstance(o, dict) and o.get(mk) == item.get(mk)), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    out.pop(idx)
            elif idx is None:
                out.append({k: v for k, v in item.items() if not k.startswith("$")})
            else:
                out[idx] = strategic_merge(out[idx], item, None)
        return out
    return copy.deepcopy(patch)


def merge_patch(orig, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(doc, ops):
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    doc = copy.deepcopy(doc)

    def walk(path):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        return parent, parts[-1]

    def get(path):
        parent, last = walk(path)
        return parent[int(last)] if isinstance(parent, list) else parent[last]

    def put(path, value, replace=False):
        parent, last = walk(path)
        if isinstance(parent, list):
            i = len(parent) if last == "-" else int(last)
            if replace:
                parent[i] = value
            else:
                parent.insert(i, value)
        else:
            if replace and last not in parent:
                raise KeyError(path)
            parent[last] = value

    def remove(path):
        parent, last = walk(path)
        return parent.pop(int(last) if isinstance(parent, list) else last)

    for op in ops:
        o, path = op["op"], op["path"]
        if o == "add":
            put(path, copy.deepcopy(op["value"]))
        elif o == "remove":
            remove(path)
        elif o == "replace":
            put(path, copy.deepcopy(op["value"]), replace=True)
        elif o == "move":
            put(path, remove(op["from"]))
        elif o == "copy":
            put(path, copy.deepcopy(get(op["from"])))
        elif o == "test":
            if get(path) != op["value"]:
                raise ValueError(f"test operation failed at {path}")
        else:
            raise ValueError(f"unknown op {o}")
    return doc


# ---------------------------------------------------------------- Pod Security

BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def _quote(names):
    return ", ".join(f'"{n}"' for n in names)


def _ctrs(names):
    return ("container " if len(names) == 1 else "containers ") + _quote(names)


def psa_violations(pod, level):
    """The pod-security-admission checks that matter for a tap container, in
    check-ID order, as (reason, detail) pairs; empty if allowed."""
    spec, out = pod["spec"], []
    psc = spec.get("securityContext") or {}
    ctrs = [c for k in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(k) or []]
    sc = {c["name"]: c.get("securityContext") or {} for c in ctrs}
    names = [c["name"] for c in ctrs]
    restricted = level == "restricted"
    if restricted:
        bad = [n for n in names if sc[n].get("allowPrivilegeEscalation") is not False]
        if bad:
            out.append(("allowPrivilegeEscalation != false",
                        f"{_ctrs(bad)} must set securityContext.allowPrivilegeEscalation=false"))
    caps = {n: (sc[n].get("capabilities") or {}) for n in names}
    if restricted:
        details = []
        nodrop = [n for n in names if "ALL" not in (caps[n].get("drop") or [])]
        if nodrop:
            details.append(f'{_ctrs(nodrop)} must set securityContext.capabilities.drop=["ALL"]')
        adds = {n: sorted(set(caps[n].get("add") or []) - {"NET_BIND_SERVICE"}) for n in names}
        badn = [n for n in names if adds[n]]
        if badn:
            allc = sorted({c for n in badn for c in adds[n]})
            details.append(f"{_ctrs(badn)} must not include {_quote(allc)} in "
                           "securityContext.capabilities.add")
        if details:
            out.append(("unrestricted capabilities", "; ".join(details)))
    else:
        adds = {n: sorted(set(caps[n].get("add") or []) - BASELINE_CAPS) for n in names}
        badn = [n for n in names if adds[n]]
        if badn:
            allc = sorted({c for n in badn for c in adds[n]})
            out.append(("non-default capabilities", f"{_ctrs(badn)} must not include "
                        f"{_quote(allc)} in securityContext.capabilities.add"))
    hostns = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if hostns:
        out.append(("host namespaces", ", ".join(hostns)))
    priv = [n for n in names if sc[n].get("privileged")]
    if priv:
        out.append(("privileged", f"{_ctrs(priv)} must not set securityContext.privileged=true"))
    if restricted:
        if not psc.get("runAsNonRoot"):
            bad = [n for n in names if sc[n].get("runAsNonRoot") is not True]
            if bad:
                out.append(("runAsNonRoot != true",
                            f"pod or {_ctrs(bad)} must set securityContext.runAsNonRoot=true"))
        if (psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            bad = [n for n in names if (sc[n].get("seccompProfile") or {}).get("type")
                   not in ("RuntimeDefault", "Localhost")]
            if bad:
                out.append(("seccompProfile", f"pod or {_ctrs(bad)} must set securityContext."
                            'seccompProfile.type to "RuntimeDefault" or "Localhost"'))
    return out


def _pb_fields(buf):
    """The fields of a protobuf message: {number: [bytes or int, ...]}."""
    out, i = {}, 0
    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                return v
    while i < len(buf):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            val = varint()
        elif wire == 2:
            n = varint()
            val, i = bytes(buf[i:i + n]), i + n
        else:
            raise ValueError(f"protobuf wire type {wire} not handled")
        out.setdefault(num, []).append(val)
    return out


def ssar_from_protobuf(buf):
    """A SelfSubjectAccessReview from runtime.Unknown{typeMeta, raw}: the
    spec's resourceAttributes (namespace, verb, group, version, resource,
    subresource, name = fields 1..7)."""
    raw = _pb_fields(buf).get(2, [b""])[0]
    spec = _pb_fields(raw).get(2, [b""])[0]
    ra = _pb_fields(_pb_fields(spec).get(1, [b""])[0])
    keys = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
    return {"spec": {"resourceAttributes": {k: ra.get(n + 1, [b""])[0].decode()
                                            for n, k in enumerate(keys)}}}


# ---------------------------------------------------------------- the cluster

class Cluster:
    """Scenario state, the objects rendered from it, and the API semantics.
    Every method that touches state holds self.lock."""

    def __init__(self, state=None, version=None, log_path=None):
        self.lock = threading.RLock()
        self.cv = threading.Condition(self.lock)    # timers
        self.log = []
        self.log_file = open(log_path, "a", buffering=1) if log_path else None
        self.execs = []                 # session records (dicts)
        self.sessions = {}              # id -> live session object
        self.timers = []                # heap of (due, seq, fn)
        self.seq = itertools.count()
        self.rv = 1000
        self.cli_version = version
        self.port = 0
        self.load(state or {})

    # ---- state ----------------------------------------------------------
    def load(self, state, replace=True):
        with self.lock:
            if replace:
                self.state = {}
                self.namespaces, self.deployments, self.pods = {}, {}, {}
                self.objects = {}
                self.rand = random.Random(state.get("seed", 1))
                self.ip_next = 10
                self.global_exec_counts = {}
            for k, v in state.items():
                if k not in ("namespaces", "deployments", "pods", "events", "nodes", "objects"):
                    self.state[k] = copy.deepcopy(v)
            if "version" in state or not hasattr(self, "minor"):
                v = state.get("version") or "1.33"
                if self.cli_version and not hasattr(self, "minor"):
                    v = self.cli_version
            else:
                v = self.git_version
            self.minor, self.git_version = parse_version(v)
            self.state["version"] = self.git_version
            rb = self.state.get("rbac") or {}
            self.user = rb.get("user", DEFAULT_USER)
            self.denials = [self._parse_denial(d) for d in rb.get("deny", [])]
            if replace:
                self.nodes = {}
            for n in state.get("nodes", []):
                self.add_node(n)
            for ns in state.get("namespaces", []):
                self.add_namespace(ns)
            for d in state.get("deployments", []):
                self.add_deployment(d)
            for p in state.get("pods", []):
                self.add_pod(p)
            for rec in self.pods.values():     # every pod's node exists, a Linux one by default
                node = rec["obj"]["spec"].get("nodeName")
                if node and node not in self.nodes:
                    self.add_node(node)
            for o in state.get("objects", []):
                self.add_object(o)
            for ns in ["default"] + [k[0] for k in itertools.chain(self.deployments, self.pods)]:
                if ns not in self.namespaces and not self.state.get("strict_namespaces"):
                    self.add_namespace(ns)
            for ev in state.get("events", []):
                ev = dict(ev)
                at = ev.pop("at_ms", 0) / 1000.0
                self.schedule(at, lambda ev=ev: self.apply_event(**ev))

    def bump(self):
        self.rv += 1
        return str(self.rv)

    def add_namespace(self, ns):
        ns = {"name": ns} if isinstance(ns, str) else ns
        psa = self.state.get("psa") or {}
        labels = {"kubernetes.io/metadata.name": ns["name"], **ns.get("labels", {})}
        if psa.get("level"):
            labels["pod-security.kubernetes.io/enforce"] = psa["level"]
        self.namespaces[ns["name"]] = {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns["name"], "uid": str(uuid.uuid4()), "resourceVersion": self.bump(),
                         "creationTimestamp": iso(time.time() - 86400), "labels": labels},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}

    def add_node(self, n):
        n = {"name": n} if isinstance(n, str) else n
        labels = {"kubernetes.io/hostname": n["name"], "kubernetes.io/os": n.get("os", "linux"),
                  **n.get("labels", {})}
        self.nodes[n["name"]] = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n["name"], "uid": str(uuid.uuid4()), "resourceVersion": self.bump(),
                         "labels": labels},
            "spec": {}, "status": {"nodeInfo": {"operatingSystem": labels["kubernetes.io/os"]}}}

    def psa_level(self, ns):
        """The namespace's enforced Pod Security level (its label), else psa.level."""
        psa = self.state.get("psa") or {}
        obj = self.namespaces.get(ns)
        label = ((obj or {}).get("metadata", {}).get("labels") or {}).get(
            "pod-security.kubernetes.io/enforce")
        return label or psa.get("level")

    def access_review(self, body):
        """SelfSubjectAccessReview: allowed unless an rbac.deny entry matches.
        kubectl sends it as protobuf (`k8s\\0` + runtime.Unknown); the answer
        is JSON, which its Accept allows."""
        try:
            if (body or b"").startswith(b"k8s\x00"):
                doc = ssar_from_protobuf(body[4:])
            else:
                doc = json.loads(body or b"null") or {}
        except (ValueError, IndexError) as e:
            return 400, status(400, "BadRequest", f"error decoding body: {e}")
        ra = (doc.get("spec") or {}).get("resourceAttributes") or {}
        deny = self.authorize(ra.get("verb", ""), ra.get("resource", ""), ra.get("subresource", ""),
                              ra.get("namespace", ""), ra.get("name", ""))
        doc = dict(doc)
        doc.setdefault("apiVersion", "authorization.k8s.io/v1")
        doc.setdefault("kind", "SelfSubjectAccessReview")
        doc["metadata"] = {"creationTimestamp": None}
        doc["status"] = {"allowed": deny is None}
        if deny is not None:
            doc["status"]["reason"] = ""
        return 201, doc

    def add_deployment(self, d):
        if "apiVersion" in d:
            obj = copy.deepcopy(d)
        else:
            t = d.get("template", {})
            obj = {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": d["name"], "namespace": d.get("namespace", "default"),
                                "labels": d.get("labels", {"app": d["name"]}),
                                "annotations": {"deployment.kubernetes.io/revision": "1"}},
                   "spec": {"replicas": d.get("replicas", 1),
                            "selector": d.get("selector") or {"matchLabels": {"app": d["name"]}},
                            "template": {"metadata": {"labels": t.get("labels", {"app": d["name"]}),
                                                      "annotations": t.get("annotations", {})},
                                         "spec": {"containers": [self._container(c) for c in
                                                                 t.get("containers", ["app"])]}},
                            "strategy": {"type": "RollingUpdate", "rollingUpdate":
                                         {"maxUnavailable": "25%", "maxSurge": "25%"}},
                            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}}
            if not t.get("annotations"):
                del obj["spec"]["template"]["metadata"]["annotations"]
            obj = merge_patch(obj, d.get("raw", {}))
        md = obj["metadata"]
        md.setdefault("namespace", "default")
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", iso(time.time() - 3600))
        md.setdefault("generation", 1)
        md["resourceVersion"] = self.bump()
        self.deployments[(md["namespace"], md["name"])] = {
            "obj": obj, "hash": d.get("template_hash") or self._hash10(md["name"])}

    def add_object(self, o):
        """A Service, StatefulSet, DaemonSet or ReplicaSet, served as given
        (metadata defaulted as the API server would)."""
        obj = copy.deepcopy(o)
        group, resource = OBJECT_KINDS[obj["kind"]]
        obj.setdefault("apiVersion", "apps/v1" if group else "v1")
        md = obj.setdefault("metadata", {})
        md.setdefault("namespace", "default")
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", iso(time.time() - 3600))
        md["resourceVersion"] = self.bump()
        if obj["kind"] == "Service":
            for port in obj.get("spec", {}).get("ports", []):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        self.objects[(resource, md["namespace"], md["name"])] = obj
        if md["namespace"] not in self.namespaces and not self.state.get("strict_namespaces"):
            self.add_namespace(md["namespace"])

    def _hash10(self, seed):
        r = random.Random(seed)
        return "".join(r.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(10))

    def _suffix(self):
        return "".join(self.rand.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))

    @staticmethod
    def _container(c):
        c = {"name": c} if isinstance(c, str) else copy.deepcopy(c)
        c.setdefault("image", f"ghcr.io/example/{c['name']}:1.0")
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("imagePullPolicy",
                     "Always" if c["image"].endswith(":latest") or ":" not in c["image"].split("/")[-1]
                     else "IfNotPresent")
        return c

    def add_pod(self, p):
        """Builds a Pod from the scenario's short form (see README)."""
        now = time.time()
        ns = p.get("namespace", "default")
        dep = self.deployments.get((ns, p["deployment"])) if p.get("deployment") else None
        tmpl = dep["obj"]["spec"]["template"] if dep else {"metadata": {}, "spec": {}}
        labels = dict(tmpl["metadata"].get("labels", {}))
        if dep:
            labels["pod-template-hash"] = dep["hash"]
        labels.update(p.get("labels", {}))
        for k in p.get("drop_labels", []):
            labels.pop(k, None)
        name = p.get("name") or (f"{p['deployment']}-{dep['hash']}-{self._suffix()}" if dep
                                 else f"pod-{self._suffix()}")
        containers = [self._container(c) for c in p["containers"]] if "containers" in p else \
            copy.deepcopy(tmpl["spec"].get("containers") or [self._container("app")])
        host_ip = p.get("hostIP", "172.18.0.2")
        if "podIP" in p:
            ip = p["podIP"]
        elif p.get("hostNetwork"):
            ip = host_ip
        else:
            ip, self.ip_next = f"10.244.0.{self.ip_next}", self.ip_next + 1
        ips = p.get("podIPs") or [{"ip": ip}]
        obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": ns, "uid": p.get("uid") or str(uuid.uuid4()),
                            "resourceVersion": self.bump(),
                            "creationTimestamp": iso(now - p.get("age_s", 600)), "labels": labels},
               "spec": {"containers": containers, "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                        "serviceAccountName": "default", "nodeName": p.get("nodeName", "node-1"),
                        "securityContext": {}, "schedulerName": "default-scheduler",
                        "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
                        "priority": 0},
               "status": {"phase": p.get("phase", "Running"), "hostIP": host_ip,
                          "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": ips,
                          "startTime": iso(now - p.get("age_s", 600)), "qosClass": "BestEffort"}}
        annotations = dict(tmpl["metadata"].get("annotations", {}))
        annotations.update(p.get("annotations", {}))
        if annotations:
            obj["metadata"]["annotations"] = annotations
        if dep:
            obj["metadata"]["generateName"] = f"{p['deployment']}-{dep['hash']}-"
            obj["metadata"]["ownerReferences"] = [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{p['deployment']}-{dep['hash']}",
                "uid": str(uuid.UUID(int=self.rand.getrandbits(128))), "controller": True,
                "blockOwnerDeletion": True}]
        if p.get("hostNetwork"):
            obj["spec"]["hostNetwork"] = True
        if p.get("deletionTimestamp"):
            obj["metadata"]["deletionTimestamp"] = p["deletionTimestamp"]
            obj["metadata"]["deletionGracePeriodSeconds"] = 30
        ecs = [self._container(c) for c in p.get("ephemeralContainers", [])]
        if ecs:
            obj["spec"]["ephemeralContainers"] = ecs
        obj = merge_patch(obj, p.get("raw", {}))
        rec = {"obj": obj, "tap": p.get("tap"), "exec": p.get("exec"), "ready": p.get("ready", True),
               "tcpdump": p.get("tcpdump"),
               "added": {}, "override": {}, "exec_counts": {},
               "static_status": {s["name"]: s for s in p.get("ephemeralContainerStatuses", [])},
               "container_status": {s["name"]: s for s in p.get("containerStatuses", [])},
               "start_at": time.monotonic() + p["start_ms"] / 1000.0 if p.get("start_ms") else None,
               "created": now, "stage": None}
        self.pods[(ns, name)] = rec
        return rec

    # ---- rendering ------------------------------------------------------
    def tap_cfg(self, rec):
        cfg = dict(self.state.get("tap") or {})
        cfg.update(rec.get("tap") or {})
        return cfg

    @staticmethod
    def tap_steps(cfg, image):
        if "steps" in cfg:
            return [(s.get("at_ms", 0) / 1000.0, s.get("state")) for s in cfg["steps"]]
        created, running = cfg.get("created_ms", 200) / 1000.0, cfg.get("running_ms", 500) / 1000.0
        out = cfg.get("outcome", "running")
        msg = cfg.get("message")
        if out == "running":
            final = {"running": {}}
        elif out == "terminated":
            code = cfg.get("exit_code", 1)
            final = {"terminated": {"exitCode": code,
                                    "reason": cfg.get("reason", "Error" if code else "Completed")}}
        else:
            msg = msg or {
                "ErrImagePull": f'failed to pull and unpack image "{image}": failed to resolve '
                                f'reference "{image}": {image}: not found',
                "ImagePullBackOff": f'Back-off pulling image "{image}"',
                "CreateContainerConfigError": "container has runAsNonRoot and image will run as root",
            }.get(out, "")
            final = {"waiting": {"reason": out, **({"message": msg} if msg else {})}}
        return [(0.0, None), (created, {"waiting": {"reason": "ContainerCreating"}}), (running, final)]

    @staticmethod
    def parse_state(s):
        """'running' | 'waiting:REASON[:MESSAGE]' | 'terminated:CODE[:REASON]' | dict | None."""
        if not isinstance(s, str):
            return s
        kind, _, rest = s.partition(":")
        if kind == "running":
            return {"running": {}}
        if kind == "waiting":
            reason, _, msg = rest.partition(":")
            return {"waiting": {"reason": reason or "ContainerCreating", **({"message": msg} if msg else {})}}
        if kind == "terminated":
            code, _, reason = rest.partition(":")
            code = int(code or 1)
            return {"terminated": {"exitCode": code, "reason": reason or ("Error" if code else "Completed")}}
        raise ValueError(f"bad container state {s!r}")

    def _eph_status(self, rec, c, now_m):
        name, image = c["name"], c.get("image", "")
        started = rec["created"]
        stage = None
        if name in rec["override"]:
            state = copy.deepcopy(rec["override"][name])
        elif name in rec["added"]:
            t_m, t_w = rec["added"][name]
            steps = self.tap_steps(self.tap_cfg(rec), image)
            idx = max(i for i, (at, _) in enumerate(steps) if now_m - t_m >= at)
            stage, state = idx, copy.deepcopy(steps[idx][1])
            started = t_w + steps[idx][0]
        elif name in rec["static_status"]:
            return copy.deepcopy(rec["static_status"][name]), None
        else:
            state = {"running": {}}
        if state is None:
            return None, stage
        cid = "containerd://" + hashlib.sha256((rec["obj"]["metadata"]["uid"] + name).encode()).hexdigest()
        st = {"name": name, "state": state, "lastState": {}, "ready": False, "restartCount": 0,
              "image": image, "imageID": "", "started": "running" in state}
        if "running" in state:
            state["running"].setdefault("startedAt", iso(started))
        if "terminated" in state:
            state["terminated"].setdefault("startedAt", iso(started))
            state["terminated"].setdefault("finishedAt", iso(started))
            state["terminated"].setdefault("containerID", cid)
        if "waiting" not in state:
            st["containerID"] = cid
            st["imageID"] = image.split(":")[0] + "@sha256:" + hashlib.sha256(image.encode()).hexdigest()
        return st, stage

    def render_pod(self, rec):
        """The Pod as the API returns it now, time-dependent parts included."""
        obj = copy.deepcopy(rec["obj"])
        now_m = time.monotonic()
        md, spec, st = obj["metadata"], obj["spec"], obj["status"]
        pending = rec["start_at"] is not None and now_m < rec["start_at"]
        phase = "Pending" if pending else st.get("phase", "Running")
        st["phase"] = phase
        running = phase == "Running"
        ready = running and rec["ready"] and "deletionTimestamp" not in md
        cstats = []
        for c in spec["containers"]:
            s = copy.deepcopy(rec["container_status"].get(c["name"])) or {
                "name": c["name"], "ready": ready, "restartCount": 0, "image": c["image"],
                "imageID": c["image"].split(":")[0] + "@sha256:" +
                hashlib.sha256(c["image"].encode()).hexdigest(),
                "containerID": "containerd://" + hashlib.sha256(
                    (md["uid"] + c["name"]).encode()).hexdigest(),
                "started": running,
                "state": {"running": {"startedAt": st["startTime"]}} if running else
                {"waiting": {"reason": "ContainerCreating"}} if phase == "Pending" else
                {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                                "reason": "Completed" if phase == "Succeeded" else "Error"}},
                "lastState": {}}
            cstats.append(s)
        st["containerStatuses"] = cstats
        if pending:
            for k in ("podIP", "podIPs"):
                st.pop(k, None)
        t = st["startTime"]
        st["conditions"] = [
            {"type": "PodReadyToStartContainers", "status": "True" if not pending else "False",
             "lastProbeTime": None, "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": t},
            {"type": "Ready", "status": "True" if ready else "False", "lastProbeTime": None,
             "lastTransitionTime": t},
            {"type": "ContainersReady", "status": "True" if ready else "False", "lastProbeTime": None,
             "lastTransitionTime": t},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": t}]
        stages, estats = [], []
        for c in spec.get("ephemeralContainers", []):
            s, stage = self._eph_status(rec, c, now_m)
            stages.append(stage)
            if s:
                estats.append(s)
        if estats:
            st["ephemeralContainerStatuses"] = estats
        sig = (phase, tuple(stages))
        with self.lock:     # the status changed: a real server would have written the object
            if rec["stage"] is not None and rec["stage"] != sig:
                rec["obj"]["metadata"]["resourceVersion"] = self.bump()
            rec["stage"] = sig
            md["resourceVersion"] = rec["obj"]["metadata"]["resourceVersion"]
        return obj

    def render_deployment(self, d):
        obj = copy.deepcopy(d["obj"])
        md = obj["metadata"]
        reqs = selector_from_spec(obj["spec"]["selector"])
        pods = [self.render_pod(r) for (ns, _), r in sorted(self.pods.items())
                if ns == md["namespace"] and label_match(reqs, r["obj"]["metadata"].get("labels"))
                and "deletionTimestamp" not in r["obj"]["metadata"]]
        n = len(pods)
        ready = sum(1 for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                           for c in p["status"]["conditions"]))
        want = obj["spec"].get("replicas", 1)
        obj["status"] = {"observedGeneration": md.get("generation", 1), "replicas": n,
                         "updatedReplicas": n, "readyReplicas": ready, "availableReplicas": ready,
                         "conditions": [
                             {"type": "Available", "status": "True" if ready >= want else "False",
                              "reason": "MinimumReplicasAvailable" if ready >= want
                              else "MinimumReplicasUnavailable",
                              "message": "Deployment has minimum availability." if ready >= want
                              else "Deployment does not have minimum availability.",
                              "lastUpdateTime": md["creationTimestamp"],
                              "lastTransitionTime": md["creationTimestamp"]},
                             {"type": "Progressing", "status": "True",
                              "reason": "NewReplicaSetAvailable",
                              "message": f'ReplicaSet "{md["name"]}-{d["hash"]}" has successfully progressed.',
                              "lastUpdateTime": md["creationTimestamp"],
                              "lastTransitionTime": md["creationTimestamp"]}]}
        if ready < n:
            obj["status"]["unavailableReplicas"] = n - ready
        return obj

    # ---- RBAC -----------------------------------------------------------
    @staticmethod
    def _parse_denial(d):
        if isinstance(d, str):      # "VERB RESOURCE[.GROUP][/SUB]"
            verb, res = d.split()
            res, _, sub = res.partition("/")
            res, _, group = res.partition(".")
            d = {"verb": verb, "resource": res, "subresource": sub}
            if group:
                d["group"] = group
        d = dict(d)
        d.setdefault("group", GROUP_OF.get(d["resource"], ""))
        d.setdefault("subresource", "")
        return d

    def authorize(self, verb, resource, sub="", ns="", name=""):
        """None if allowed, else the 403 Status the authorizer would return."""
        group = GROUP_OF.get(resource, "")
        for d in self.denials:
            if (d["verb"] in (verb, "*") and d["resource"] in (resource, "*")
                    and d["subresource"] in (sub, "*") and d.get("namespace") in (None, ns)
                    and d.get("name") in (None, name)):
                res = resource + ("/" + sub if sub else "")
                where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
                inner = (f'User "{self.user}" cannot {verb} resource "{res}" in API group "{group}" '
                         f"{where}")
                qual = resource + ("." + group if group else "")
                msg = f'{qual} "{name}" is forbidden: {inner}' if name else f"{qual} is forbidden: {inner}"
                return status(403, "Forbidden", msg, {"name": name, "group": group, "kind": resource})
        return None

    # ---- ephemeral containers --------------------------------------------
    def update_ephemeral(self, rec, new_pod, dry_run=False):
        """Validates and stores new_pod's spec.ephemeralContainers; returns (code, body)."""
        name = rec["obj"]["metadata"]["name"]
        old = rec["obj"]["spec"].get("ephemeralContainers", [])
        raw = (new_pod.get("spec") or {}).get("ephemeralContainers") or []
        path = "spec.ephemeralContainers"
        for i, c in enumerate(raw):
            for f in ("name", "image"):
                if not c.get(f):
                    return 422, invalid("Pod", name, f"{path}[{i}].{f}", "Required value",
                                        "FieldValueRequired")
        new = [self._container(c) for c in raw]
        byname = {c["name"]: c for c in new}
        for o in old:
            if o["name"] not in byname:
                return 422, invalid("Pod", name, path,
                                    f'Forbidden: existing ephemeral containers "{o["name"]}" may not be removed')
            if byname[o["name"]] != o:
                return 422, invalid("Pod", name, path,
                                    f'Forbidden: existing ephemeral containers "{o["name"]}" may not be changed')
        taken = {c["name"] for k in ("containers", "initContainers")
                 for c in rec["obj"]["spec"].get(k, [])}
        for i, c in enumerate(new):
            if c["name"] in taken or [x["name"] for x in new].count(c["name"]) > 1:
                return 422, invalid("Pod", name, f"{path}[{i}].name",
                                    f'Duplicate value: "{c["name"]}"', "FieldValueDuplicate")
        candidate = copy.deepcopy(rec["obj"])
        candidate["spec"]["ephemeralContainers"] = new
        psa = self.state.get("psa") or {}
        level = self.psa_level(rec["obj"]["metadata"].get("namespace", "default"))
        if level in ("baseline", "restricted") and psa.get("enforce", True):
            v = psa_violations(candidate, level)
            if v or psa.get("message"):
                msg = psa.get("message") or (
                    f'violates PodSecurity "{level}:{psa.get("version", "latest")}": ' +
                    ", ".join(f"{r} ({d})" for r, d in v))
                return 403, status(403, "Forbidden", f'pods "{name}" is forbidden: {msg}',
                                   {"name": name, "kind": "pods"})
        if not dry_run:
            now = (time.monotonic(), time.time())
            for c in new:
                if c["name"] not in {o["name"] for o in old}:
                    rec["added"][c["name"]] = now
            if new != old:
                rec["obj"]["spec"]["ephemeralContainers"] = new
                rec["obj"]["metadata"]["resourceVersion"] = self.bump()
                rec["stage"] = None
            return 200, self.render_pod(rec)
        out = self.render_pod(rec)
        out["spec"]["ephemeralContainers"] = new
        return 200, out

    # ---- exec -------------------------------------------------------------
    def container_running(self, rec, pod, name):
        for s in pod["status"].get("containerStatuses", []) + \
                pod["status"].get("ephemeralContainerStatuses", []):
            if s["name"] == name:
                return "running" in (s.get("state") or {})
        return False

    def plan_exec(self, ns, name, q, transport):
        """Before the upgrade: ('http', code, body, ctype); after: ('session', behaviour)."""
        rec = self.pods.get((ns, name))
        if rec is None:
            return "http", 404, not_found("pods", name), None
        pod = self.render_pod(rec)
        argv = q.get("command", [])
        ctr = (q.get("container") or [""])[0]
        spec = pod["spec"]
        main = [c["name"] for c in spec["containers"]]
        eph = [c["name"] for c in spec.get("ephemeralContainers", [])]
        init = [c["name"] for c in spec.get("initContainers", [])]
        if not ctr:
            if len(main) != 1:
                msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(main)}]"
                if eph:
                    msg += f" or one of the ephemeral containers: [{' '.join(eph)}]"
                return "http", 400, status(400, "BadRequest", msg), None
            ctr = main[0]
        if ctr not in main + eph + init:
            return "http", 400, status(400, "BadRequest", f"container {ctr} is not valid for pod {name}"), None
        if not argv:
            return "http", 400, status(400, "BadRequest", "you must specify at least 1 command"), None
        if not self.container_running(rec, pod, ctr):
            msg = f'container not found ("{ctr}")'
            if transport == "spdy":      # the kubelet's answer, proxied as is
                return "http", 500, msg, "text/plain; charset=utf-8"
            beh = {"mode": "status", "status": exec_internal("unable to upgrade connection: " + msg)}
        elif argv[0] == "tcpdump" and "--version" in argv:
            beh = self.tcpdump_version(rec, argv)
        else:
            beh = self.pick_behaviour(rec, ns, name, ctr, argv)
        beh.update(container=ctr, argv=argv)
        return "session", beh

    def tcpdump_version(self, rec, argv):
        """`tcpdump [--immediate-mode] --version`, as netshoot's tcpdump answers:
        the version on stdout, exit 0; with `tcpdump: {"immediate_mode": false}`
        (per pod or global) an older tcpdump that rejects the option (getopt's
        message and the usage, exit 1); `{"missing": true}`: no tcpdump."""
        cfg = {**(self.state.get("tcpdump") or {}), **(rec.get("tcpdump") or {})}
        if cfg.get("missing"):
            return {"mode": "notfound", "rule": "tcpdump", "attempt": 1}
        if "--immediate-mode" in argv and not cfg.get("immediate_mode", True):
            return {"mode": "exit", "exit_code": 1, "rule": "tcpdump", "attempt": 1,
                    "stderr": "tcpdump: unrecognized option '--immediate-mode'\n"
                              "tcpdump version 4.1.1\nlibpcap version 1.1.1\n"
                              "Usage: tcpdump [-aAdDefIKlLnNOpqRStuUvxX] [ -B size ] [ -c count ]\n"}
        return {"mode": "exit", "exit_code": 0, "rule": "tcpdump", "attempt": 1,
                "data_b64": base64.b64encode(TCPDUMP_VERSION).decode(),
                "stdout_bytes": len(TCPDUMP_VERSION)}

    def pick_behaviour(self, rec, ns, name, ctr, argv):
        for source, rules in (("pod", rec.get("exec")), ("global", self.state.get("exec"))):
            rules = [rules] if isinstance(rules, dict) else rules or []
            for i, r in enumerate(rules):
                if r.get("container") not in (None, ctr) or r.get("argv0") not in (None, argv[0]) \
                        or r.get("command") not in (None, argv):
                    continue
                counts = rec["exec_counts"] if source == "pod" else \
                    self.global_exec_counts.setdefault((ns, name), {})
                n = counts.get((source, i), 0)
                counts[(source, i)] = n + 1
                modes = r.get("modes") or [r.get("mode", "capture")]
                m = modes[min(n, len(modes) - 1)]
                beh = {k: v for k, v in r.items() if k not in ("modes", "mode", "container", "argv0", "command")}
                beh.update({"mode": m} if isinstance(m, str) else m)
                beh["rule"], beh["attempt"] = f"{source}[{i}]", n + 1
                return beh
        return {"mode": "notfound", "rule": None, "attempt": 1}

    # ---- events -----------------------------------------------------------
    def schedule(self, delay, fn):
        with self.cv:
            heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), fn))
            self.cv.notify_all()

    def timer_loop(self, stop):
        with self.cv:
            while not stop.is_set():
                now = time.monotonic()
                if self.timers and self.timers[0][0] <= now:
                    _, _, fn = heapq.heappop(self.timers)
                    try:
                        fn()
                    except Exception as e:      # a bad scenario event must not kill the timers
                        self.record({"event": "timer_error", "error": repr(e)})
                    continue
                self.cv.wait(min(0.2, self.timers[0][0] - now) if self.timers else 0.2)

    def apply_event(self, event, **a):
        """Applies a named event now (see README for the list)."""
        name = event
        with self.lock:
            after = a.pop("after_ms", 0)
            if after:
                self.schedule(after / 1000.0, lambda: self.apply_event(name, **a))
                return {"scheduled": name, "after_ms": after}
            ns = a.get("namespace", "default")
            self.record({"event": name, "args": a})
            if name == "delete_pod":
                return self._delete_pod(ns, a["pod"], a.get("grace_ms", 0), a.get("exec_end", "exit:143"))
            if name == "add_pod":
                pod = dict(a.get("pod") or {k: v for k, v in a.items()})
                pod.setdefault("namespace", ns)
                return {"added": self.add_pod(pod)["obj"]["metadata"]["name"]}
            if name == "patch_pod":
                rec = self.pods[(ns, a["pod"])]
                rec["obj"] = merge_patch(rec["obj"], a.get("patch", {}))
                for k in ("ready",):
                    if k in a:
                        rec[k] = a[k]
                rec["obj"]["metadata"]["resourceVersion"] = self.bump()
                return {"patched": a["pod"]}
            if name == "set_tap_status":
                rec = self.pods[(ns, a["pod"])]
                ctr = a.get("container") or (rec["obj"]["spec"].get("ephemeralContainers") or [{}])[0].get("name")
                rec["override"][ctr] = self.parse_state(a.get("state"))
                rec["obj"]["metadata"]["resourceVersion"] = self.bump()
                return {"set": ctr}
            if name == "end_execs":
                return {"ended": self.end_sessions(a.get("namespace"), a.get("pod"), a.get("how", "close"))}
            if name == "rollout":
                return self._rollout(ns, a)
            if name == "set_state":
                self.load(a.get("state", {}), replace=False)
                return {"ok": True}
            raise KeyError(f"unknown event {name!r}")

    def _delete_pod(self, ns, name, grace_ms, exec_end):
        rec = self.pods.get((ns, name))
        if rec is None:
            raise KeyError(f"no pod {ns}/{name}")
        md = rec["obj"]["metadata"]
        md["deletionTimestamp"] = iso(time.time() + grace_ms / 1000.0)
        md["deletionGracePeriodSeconds"] = int(round(grace_ms / 1000.0))
        md["resourceVersion"] = self.bump()
        self.end_sessions(ns, name, exec_end)

        def gone():
            with self.lock:
                if self.pods.get((ns, name)) is rec:
                    del self.pods[(ns, name)]
                    self.bump()
        if grace_ms:
            self.schedule(grace_ms / 1000.0, gone)
        else:
            gone()
        return {"deleted": name}

    def _rollout(self, ns, a):
        d = self.deployments[(ns, a["deployment"])]
        reqs = selector_from_spec(d["obj"]["spec"]["selector"])
        old = [n for (pns, n), r in sorted(self.pods.items()) if pns == ns and
               label_match(reqs, r["obj"]["metadata"].get("labels")) and
               "deletionTimestamp" not in r["obj"]["metadata"]]
        d["hash"] = a.get("template_hash") or self._hash10(d["hash"])
        d["obj"]["metadata"]["generation"] = d["obj"]["metadata"].get("generation", 1) + 1
        d["obj"]["metadata"]["resourceVersion"] = self.bump()
        new = []
        for i in range(a.get("replicas", len(old) or d["obj"]["spec"].get("replicas", 1))):
            spec = {"namespace": ns, "deployment": a["deployment"], "age_s": 0,
                    **(a.get("pod") or {})}
            if a.get("start_ms"):
                spec["start_ms"] = a["start_ms"]
            new.append(self.add_pod(spec)["obj"]["metadata"]["name"])
        for n in old:
            self._delete_pod(ns, n, a.get("grace_ms", 1000), a.get("exec_end", "exit:143"))
        return {"old": old, "new": new}

    def end_sessions(self, ns, pod, how):
        ended = []
        for s in list(self.sessions.values()):
            if (ns is None or s.rec["namespace"] == ns) and (pod is None or s.rec["pod"] == pod):
                s.request_end(how)
                ended.append(s.rec["id"])
        return ended

    # ---- log ----------------------------------------------------------------
    def record(self, entry):
        with self.lock:
            entry.setdefault("seq", len(self.log))
            entry.setdefault("time", time.time())
            self.log.append(entry)
            if self.log_file and "event" in entry:
                self.log_file.write(json.dumps(entry, default=str) + "\n")
        return entry

    def finish_entry(self, entry, code):
        with self.lock:
            entry["code"] = code
            if self.log_file:
                self.log_file.write(json.dumps(entry, default=str) + "\n")

    # ---- discovery ----------------------------------------------------------
    def discovery(self, path):
        def res(name, singular, kind, verbs, short=None, cats=None, namespaced=True):
            r = {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
                 "verbs": verbs}
            if short:
                r["shortNames"] = short
            if cats:
                r["categories"] = cats
            return r
        crud = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]}
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
                {"name": "authorization.k8s.io",
                 "versions": [{"groupVersion": "authorization.k8s.io/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "authorization.k8s.io/v1", "version": "v1"}}]}
        if path == "/apis/authorization.k8s.io":
            return {"kind": "APIGroup", "apiVersion": "v1", "name": "authorization.k8s.io",
                    "versions": [{"groupVersion": "authorization.k8s.io/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "authorization.k8s.io/v1", "version": "v1"}}
        if path == "/apis/authorization.k8s.io/v1":
            return {"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": "authorization.k8s.io/v1",
                    "resources": [res("selfsubjectaccessreviews", "selfsubjectaccessreview",
                                      "SelfSubjectAccessReview", ["create"], namespaced=False)]}
        if path == "/apis/apps":
            return {"kind": "APIGroup", "apiVersion": "v1", "name": "apps",
                    "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}
        if path == "/api/v1":
            rs = [res("namespaces", "namespace", "Namespace", ["create", "delete", "get", "list",
                                                                "patch", "update", "watch"], ["ns"],
                      namespaced=False),
                  res("nodes", "node", "Node", crud, ["no"], namespaced=False),
                  res("pods", "pod", "Pod", crud, ["po"], ["all"]),
                  res("pods/attach", "", "PodAttachOptions", ["create", "get"]),
                  res("pods/exec", "", "PodExecOptions", ["create", "get"]),
                  res("pods/log", "", "Pod", ["get"]),
                  res("pods/status", "", "Pod", ["get", "patch", "update"]),
                  res("services", "service", "Service", crud, ["svc"], ["all"]),
                  res("services/status", "", "Service", ["get", "patch", "update"])]
            if self.state.get("ephemeral_containers", True):
                rs.insert(2, res("pods/ephemeralcontainers", "", "Pod", ["get", "patch", "update"]))
            return {"kind": "APIResourceList", "groupVersion": "v1", "resources": rs}
        if path == "/apis/apps/v1":
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
                    "resources": [res("deployments", "deployment", "Deployment", crud, ["deploy"], ["all"]),
                                  res("deployments/scale", "", "Scale", ["get", "patch", "update"]),
                                  res("deployments/status", "", "Deployment", ["get", "patch", "update"]),
                                  res("statefulsets", "statefulset", "StatefulSet", crud, ["sts"], ["all"]),
                                  res("daemonsets", "daemonset", "DaemonSet", crud, ["ds"], ["all"]),
                                  res("replicasets", "replicaset", "ReplicaSet", crud, ["rs"], ["all"])]}
        return None

    # ---- REST -----------------------------------------------------------------
    def rest(self, method, path, q, body, ctype, accept=None):
        """Everything but exec and the control API; returns (code, obj)."""
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if path == "/version":
            return 200, {"major": "1", "minor": str(self.minor), "gitVersion": self.git_version,
                         "gitCommit": hashlib.sha1(self.git_version.encode()).hexdigest(),
                         "gitTreeState": "clean", "buildDate": "2025-05-15T00:00:00Z",
                         "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64"}
        d = self.discovery(path) if method == "GET" else None
        if d is not None:
            return 200, d
        if path == "/openapi/v2" and method == "GET" and self.state.get("openapi_v2", True):
            # kubectl 1.27-1.29 `replace` builds its client-side validator from this even
            # with --raw; an empty protobuf message is a valid, empty openapi_v2.Document.
            if "protobuf" in (accept or ""):
                return 200, (b"", "application/octet-stream")
            return 200, {"swagger": "2.0", "info": {"title": "Kubernetes", "version": self.git_version},
                         "paths": {}, "definitions": {}}
        if path.rstrip("/") == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            if method != "POST":
                return 405, status(405, "MethodNotAllowed",
                                   "the server does not allow this method on the requested resource")
            return self.access_review(body)
        if parts[:3] == ["api", "v1", "nodes"] and len(parts) <= 4:
            name = parts[3] if len(parts) > 3 else ""
            if method != "GET":
                return 405, status(405, "MethodNotAllowed",
                                   "the server does not allow this method on the requested resource")
            deny = self.authorize("get" if name else "list", "nodes", "", "", name)
            if deny:
                return 403, deny
            if not name:
                return 200, {"kind": "NodeList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(self.rv)},
                             "items": [self._item(v) for _, v in sorted(self.nodes.items())]}
            if name not in self.nodes:
                return 404, not_found("nodes", name)
            return 200, self.nodes[name]
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts[:3] == ["apis", "apps", "v1"]:
            group, rest = "apps", parts[3:]
        else:
            return 404, NO_RESOURCE
        ns = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"]:
            if group:
                return 404, NO_RESOURCE
            name = rest[1] if len(rest) > 1 else ""
            verb = {"GET": "get" if name else "list"}.get(method)
            if verb is None:
                return 405, status(405, "MethodNotAllowed",
                                   "the server does not allow this method on the requested resource")
            deny = self.authorize(verb, "namespaces", "", name, name)
            if deny:
                return 403, deny
            if not name:
                return 200, {"kind": "NamespaceList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(self.rv)},
                             "items": [self._item(v) for _, v in sorted(self.namespaces.items())]}
            if name not in self.namespaces:
                return 404, not_found("namespaces", name)
            return 200, self.namespaces[name]
        resource = rest[0] if rest else ""
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        served = {("", "pods"), ("apps", "deployments")} | set(OBJECT_KINDS.values())
        if len(rest) > 3 or (group, resource) not in served or \
                sub not in ("", "ephemeralcontainers", "status"):
            return 404, NO_RESOURCE
        verb = {"GET": "get" if name else ("watch" if q.get("watch", [""])[0] in ("1", "true")
                                           else "list"),
                "PATCH": "patch", "PUT": "update", "POST": "create", "DELETE": "delete"}[method]
        deny = self.authorize(verb, resource, sub, ns or "", name)
        if deny:
            return deny["code"], deny
        if verb == "watch":
            return 405, status(405, "MethodNotAllowed", "fakekube does not implement watch")
        if not name:
            return self._list(resource, ns, q) if method == "GET" else \
                (405, status(405, "MethodNotAllowed",
                             "the server does not allow this method on the requested resource"))
        if (group, resource) in OBJECT_KINDS.values():
            o = self.objects.get((resource, ns, name))
            if method != "GET" or sub:
                return 405, status(405, "MethodNotAllowed",
                                   "the server does not allow this method on the requested resource")
            return (200, copy.deepcopy(o)) if o else (404, not_found(resource, name, group))
        if resource == "deployments":
            d = self.deployments.get((ns, name))
            if method != "GET" or sub:
                return 405, status(405, "MethodNotAllowed",
                                   "the server does not allow this method on the requested resource")
            return (200, self.render_deployment(d)) if d else (404, not_found("deployments", name, "apps"))
        if sub == "ephemeralcontainers" and not self.state.get("ephemeral_containers", True):
            return 404, NO_RESOURCE
        rec = self.pods.get((ns, name))
        if rec is None:
            return 404, not_found("pods", name)
        if method == "GET":
            return 200, self.render_pod(rec)
        if sub != "ephemeralcontainers" or method not in ("PATCH", "PUT"):
            return 405, status(405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource")
        try:
            doc = json.loads(body or b"null")
        except ValueError as e:
            return 400, status(400, "BadRequest", f"error decoding patch/body: {e}")
        dry = q.get("dryRun", [""])[0] == "All"
        current = self.render_pod(rec)
        if method == "PUT":
            md = (doc or {}).get("metadata") or {}
            if md.get("name") != name:
                return 400, status(400, "BadRequest", f"the name of the object ({md.get('name')}) "
                                                      f"does not match the name on the URL ({name})")
            if md.get("resourceVersion") and md["resourceVersion"] != current["metadata"]["resourceVersion"]:
                return 409, status(409, "Conflict", f'Operation cannot be fulfilled on pods "{name}": '
                                   "the object has been modified; please apply your changes to the "
                                   "latest version and try again", {"name": name, "kind": "pods"})
            return self.update_ephemeral(rec, doc, dry)
        kind = (ctype or "").split(";")[0].strip()
        try:
            if kind == "application/strategic-merge-patch+json":
                new = strategic_merge(current, doc)
            elif kind == "application/merge-patch+json":
                new = merge_patch(current, doc)
            elif kind == "application/json-patch+json":
                new = json_patch(current, doc)
            else:
                return 415, status(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format - accepted media "
                                   "types include: application/json-patch+json, application/merge-patch+json, "
                                   "application/strategic-merge-patch+json")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            return 422, status(422, "Invalid", f"the server rejected our request due to an error in "
                               f"our request: {e}")
        return self.update_ephemeral(rec, new, dry)

    @staticmethod
    def _item(obj):
        obj = dict(obj)
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        return obj

    def _list(self, resource, ns, q):
        try:
            lreqs = parse_label_selector(q.get("labelSelector", [""])[0])
            freqs = parse_field_selector(q.get("fieldSelector", [""])[0],
                                         POD_FIELDS if resource == "pods" else
                                         {"metadata.name", "metadata.namespace"})
        except ValueError as e:
            return 400, status(400, "BadRequest", str(e))
        except KeyError as e:
            gvr = "/v1, Resource=pods" if resource == "pods" else "apps/v1, Resource=deployments"
            return 400, status(400, "BadRequest",
                               f'Unable to find "{gvr}" that match label selector '
                               f'"{q.get("labelSelector", [""])[0]}", field selector '
                               f'"{q.get("fieldSelector", [""])[0]}": field label not supported: {e.args[0]}')
        if resource == "pods":
            objs = [self.render_pod(r) for k, r in sorted(self.pods.items()) if ns in (None, k[0])]
            kind = "PodList"
        elif resource != "deployments":
            objs = [copy.deepcopy(o) for k, o in sorted(self.objects.items())
                    if k[0] == resource and ns in (None, k[1])]
            kind = [k for k, v in OBJECT_KINDS.items() if v[1] == resource][0] + "List"
        else:
            objs = [self.render_deployment(d) for k, d in sorted(self.deployments.items())
                    if ns in (None, k[0])]
            kind = "DeploymentList"
        items = [self._item(o) for o in objs if label_match(lreqs, o["metadata"].get("labels"))
                 and field_match(freqs, o)]
        return 200, {"kind": kind, "apiVersion": "v1" if resource in ("pods", "services") else "apps/v1",
                     "metadata": {"resourceVersion": str(self.rv)}, "items": items}

    def snapshot(self):
        with self.lock:
            return {"version": self.git_version,
                    "namespaces": sorted(self.namespaces),
                    "deployments": [self.render_deployment(d) for _, d in sorted(self.deployments.items())],
                    "pods": [self.render_pod(r) for _, r in sorted(self.pods.items())],
                    "objects": [o for _, o in sorted(self.objects.items())]}


# ---------------------------------------------------------------- exec sessions

class Session:
    """One exec stream. The handler thread runs the transport's read loop; a
    runner thread plays the scenario's behaviour through send()/finish()/drop()."""
    transport = "?"

    def __init__(self, handler, beh, protocol, rec):
        self.h, self.sock, self.beh, self.protocol = handler, handler.connection, beh, protocol
        self.cluster = handler.server.cluster
        self.wlock = threading.Lock()
        self.cv = threading.Condition()
        self.gone = self.stdin_closed = self.finished = False
        self.end_req = None
        self.stdin_buf = bytearray()
        self.rec = rec
        self.runner = None

    # -- called by the read loop (handler thread)
    def on_stdin(self, data):
        with self.cv:
            self.rec["stdin_bytes"] += len(data)
            if self.beh.get("mode") == "echo":
                self.stdin_buf += data
            self.cv.notify_all()

    def on_stdin_close(self):
        with self.cv:
            if self.finished:   # e.g. client-go answering the server's end of the stdin stream
                self.rec["stdin_closed_after_end"] = True
            elif not self.stdin_closed:
                self.stdin_closed = True
                self.rec["stdin_closed"] = True
                self.rec["stdin_closed_at"] = time.time()
            self.cv.notify_all()

    def on_gone(self, why):
        with self.cv:
            if not self.gone:
                self.gone = True
                self.rec.setdefault("client_end", why)
            self.cv.notify_all()

    def request_end(self, how):
        with self.cv:
            self.end_req = how
            self.cv.notify_all()

    def wait(self, pred, timeout=None):
        with self.cv:
            return self.cv.wait_for(pred, timeout)

    # -- runner
    def start_runner(self):
        if self.runner is None:
            self.rec["streams_ready_at"] = time.time()
            self.runner = threading.Thread(target=self._run, name=f"exec-{self.rec['id']}", daemon=True)
            self.runner.start()

    def _run(self):
        try:
            self.play()
        except OSError:
            self.on_gone("send_error")
        except Exception as e:      # report scenario errors instead of hanging the client
            self.rec["error"] = repr(e)
            self.drop()
        finally:
            self._ended()

    def _ended(self):
        with self.cv:
            if self.rec["end"] is None:
                self.rec["end"] = "server_stop" if self.end_req == "server_stop" else "client_disconnected"
            self.rec["ended"] = time.time()
            self.rec["active"] = False
            self.cv.notify_all()

    def _end_now(self):
        """Applies an end requested from outside (event, pod deletion). True if the session ended."""
        how = self.end_req
        if not how or how == "hang":
            return False
        if how in ("drop", "server_stop"):
            self.drop(end=how)
        elif how == "close":
            self.finish(EXEC_SUCCESS, "close")
        elif how == "close_nostatus":
            self.finish(None, "close_nostatus")
        elif how.startswith("exit:"):
            code = int(how[5:])
            self.finish(exec_exit(code, self.transport, self.beh.get("argv", [])) if code else EXEC_SUCCESS,
                        f"exit:{code}")
        return True

    def play(self):
        b, mode = self.beh, self.beh.get("mode", "capture")
        self.rec["mode"] = mode
        # A real exec takes a moment to start; kubectl 1.30's WebSocket client also
        # discards messages that arrive before it has set up its streams.
        self.wait(lambda: self.gone, b.get("start_delay_ms", 20) / 1000.0)
        self.hello()
        data = b""
        if b.get("capture"):
            with open(b["capture"], "rb") as f:
                data = f.read()
        elif b.get("data_b64"):
            data = base64.b64decode(b["data_b64"])
        if mode == "status":
            return self.finish(b["status"], "error:" + b["status"].get("reason", ""))
        if mode == "notfound":
            msg = b.get("message") or (
                "error executing command in container: failed to exec in container: failed to start "
                f'exec "{hashlib.sha256(self.rec["id"].encode()).hexdigest()}": OCI runtime exec failed: '
                "exec failed: unable to start container process: exec: "
                f'"{b["argv"][0]}": executable file not found in $PATH: unknown')
            st = exec_internal(msg)
            if self.transport == "websocket":   # the stream translator wraps it once more
                st = exec_internal(st["message"])
            return self.finish(st, "error:InternalError")
        if mode == "exit":
            if b.get("stdout_bytes"):
                self.send(1, data[:b["stdout_bytes"]])
            stderr = self.stderr_bytes(b, "")
            if stderr:
                self.send(2, stderr)
            code = b.get("exit_code", 1)
            return self.finish(exec_exit(code, self.transport, b["argv"]) if code else EXEC_SUCCESS,
                               f"exit:{code}")
        if mode == "hang":
            self.wait(lambda: self.gone or (self.end_req and self.end_req != "hang"))
            return self._end_now()
        if mode == "echo":
            while True:
                self.wait(lambda: self.stdin_buf or self.stdin_closed or self.gone or self.end_req)
                with self.cv:
                    chunk, self.stdin_buf[:] = bytes(self.stdin_buf), b""
                if chunk:
                    self.send(1, chunk)
                elif self.gone or (self.end_req and self._end_now()):
                    return
                elif self.stdin_closed:
                    return self.finish(EXEC_SUCCESS, "success")
        if mode not in ("capture", "close", "drop"):
            raise ValueError(f"unknown exec mode {mode!r}")
        banner = self.stderr_bytes(b, TCPDUMP_LISTENING)
        if banner:
            self.send(2, banner)
        limit = len(data) if mode != "drop" else b.get("drop_after", len(data) // 2)
        size, delay = max(1, b.get("chunk_size", 32768)), b.get("chunk_delay_ms", 0) / 1000.0
        pos = 0
        while pos < limit:
            if self.gone or (self.end_req and self._end_now()):
                return
            if self.stdin_closed and b.get("stop_on_stdin_close"):
                break
            n = min(size, limit - pos)
            self.send(1, data[pos:pos + n])
            pos += n
            if delay:
                self.wait(lambda: self.gone or self.end_req, delay)
        if mode == "drop":
            return self.drop(b.get("drop_how", "fin"))
        if mode == "close":
            return self.finish(EXEC_SUCCESS if b.get("status", True) else None,
                               "close" if b.get("status", True) else "close_nostatus")
        self.wait(lambda: self.gone or self.end_req or
                  (self.stdin_closed and not b.get("ignore_stdin_close")))
        if self.gone or (self.end_req and self._end_now()):
            return
        return self.finish(EXEC_SUCCESS, "success")

    @staticmethod
    def stderr_bytes(b, default):
        """What the command writes to stderr: `stderr_b64` (any bytes, such as
        a raw 8-bit C1 control), else `stderr` as UTF-8, else `default`."""
        if b.get("stderr_b64") is not None:
            return base64.b64decode(b["stderr_b64"])
        return b.get("stderr", default).encode()

    def send(self, ch, data):
        """Writes data on channel ch (1 stdout, 2 stderr, 3 error)."""
        if self.gone or not data:
            return
        self._send(ch, data)
        key = {1: "stdout_bytes", 2: "stderr_bytes"}.get(ch)
        if key:
            self.rec[key] += len(data)

    def finish(self, st, end):
        """Ends the exec: status on the error channel (none if st is None), end of
        streams, then wait for the client to hang up."""
        with self.cv:
            if self.finished:
                return
            self.finished = True
        self.rec["end"] = end
        if st is not None:
            self.rec["status"] = st
        try:
            self._finish(st)
        except OSError:
            pass
        if not self.wait(lambda: self.gone, FINISH_WAIT):
            self.rec["client_end"] = "timeout"
            self.shutdown()

    def drop(self, how="fin", end="drop"):
        """Drops the TCP connection without a close frame or status."""
        self.rec["end"] = end
        with self.cv:
            self.finished = True
        if how == "rst":
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.shutdown()

    def shutdown(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def sendall(self, data):
        with self.wlock:
            self.sock.sendall(data)

    def hello(self):
        pass


class WSSession(Session):
    """RFC 6455 server side of the v5/v4.channel.k8s.io protocols."""
    transport = "websocket"

    def _send(self, ch, data):
        for i in range(0, len(data), 65536):
            self.frame(2, bytes([ch]) + data[i:i + 65536])

    def frame(self, op, payload):
        n = len(payload)
        hdr = struct.pack("!BB", 0x80 | op, n) if n < 126 else \
            struct.pack("!BBH", 0x80 | op, 126, n) if n < 65536 else struct.pack("!BBQ", 0x80 | op, 127, n)
        self.sendall(hdr + payload)

    def _finish(self, st):
        if st is not None:
            self.send(3, json.dumps(st, separators=(",", ":")).encode())
        self.close_sent = True
        self.frame(8, struct.pack("!H", 1000))

    def hello(self):
        """The stream translator's empty message on the lowest writable channel."""
        if self.beh.get("ws_hello", True):
            self.frame(2, b"\x01" if self.beh.get("stdout", True) else b"\x03")

    def read_loop(self):
        r = self.h.rfile
        self.close_sent = False
        msg, msg_op = b"", 0
        self.start_runner()
        while True:
            hdr = r.read(2)
            if len(hdr) < 2:
                return self.on_gone("eof")
            fin, op, masked, n = hdr[0] & 0x80, hdr[0] & 0x0F, hdr[1] & 0x80, hdr[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", r.read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", r.read(8))[0]
            mask = r.read(4) if masked else b""
            payload = r.read(n)
            if len(payload) < n:
                return self.on_gone("eof")
            if masked:
                m = (mask * (n // 4 + 1))[:n]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
            if op == 9:
                self.rec["pings"] = self.rec.get("pings", 0) + 1
                self.frame(10, payload)
            elif op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self.rec["client_close_code"] = code
                if not self.close_sent:
                    self.close_sent = True
                    try:
                        self.frame(8, payload[:2])
                    except OSError:
                        pass
                return self.on_gone("close_frame")
            elif op in (0, 1, 2):
                msg, msg_op = (msg + payload, msg_op) if op == 0 else (payload, op)
                if fin:
                    self.on_message(msg_op, msg)
                    msg = b""

    def on_message(self, op, msg):
        if op != 2 or not msg:
            return
        ch, data = msg[0], msg[1:]
        if ch == 0:
            self.on_stdin(data)
        elif ch == 255 and self.protocol.startswith("v5") and data[:1] == b"\x00":
            self.on_stdin_close()


class SPDYSession(Session):
    """SPDY/3.1 server side of the v4/v3/v2.channel.k8s.io protocols (the kubelet's)."""
    transport = "spdy"

    def __init__(self, *a):
        super().__init__(*a)
        self.comp = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=SPDY_DICT)
        self.decomp = zlib.decompressobj(zdict=SPDY_DICT)
        self.streams = {}           # streamtype -> stream id
        self.reset = set()
        self.fc = {"on": False, "session_on": False, "initial": 65536, "session": 65536, "win": {}}
        self.unacked = 0
        q = self.beh.get("query", {})
        tty = q.get("tty", ["false"])[0] == "true"
        self.expected = {"error"} | {k for k in ("stdin", "stdout") if q.get(k, ["false"])[0] == "true"}
        if q.get("stderr", ["false"])[0] == "true" and not tty:
            self.expected.add("stderr")
        if tty:
            self.expected.add("resize")

    @staticmethod
    def ctrl(typ, flags, payload):
        return struct.pack("!HHI", 0x8003, typ, (flags << 24) | len(payload)) + payload

    def headers_block(self, headers):
        raw = struct.pack("!I", len(headers)) + b"".join(
            struct.pack("!I", len(k)) + k.encode() + struct.pack("!I", len(v)) + v.encode()
            for k, v in headers.items())
        return self.comp.compress(raw) + self.comp.flush(zlib.Z_SYNC_FLUSH)

    def data(self, sid, payload):
        """DATA frames on stream sid, within the flow-control windows if the
        peer does flow control (spdystream does not: it never sends WINDOW_UPDATE)."""
        while payload:
            with self.cv:
                while True:
                    if self.gone or sid in self.reset:
                        return
                    fc = self.fc
                    room = min(fc["win"].get(sid, fc["initial"]) if fc["on"] else 1 << 30,
                               fc["session"] if fc["session_on"] else 1 << 30, 32768)
                    if room > 0:
                        break
                    self.cv.wait(0.5)
                chunk, payload = payload[:room], payload[room:]
                if fc["on"]:
                    fc["win"][sid] = fc["win"].get(sid, fc["initial"]) - len(chunk)
                if fc["session_on"]:
                    fc["session"] -= len(chunk)
            self.sendall(struct.pack("!II", sid, len(chunk)) + chunk)

    def fin(self, sid):
        if sid in self.reset:
            return
        self.sendall(struct.pack("!II", sid, 1 << 24))

    def _send(self, ch, data):
        sid = self.streams.get({1: "stdout", 2: "stderr", 3: "error"}[ch])
        if sid:
            self.data(sid, data)

    def _finish(self, st):
        err = self.streams.get("error")
        if err and st is not None:
            if self.protocol == "v4.channel.k8s.io":
                self.data(err, json.dumps(st, separators=(",", ":")).encode())
            elif st.get("status") != "Success":     # v3/v2: plain text, failures only
                self.data(err, st.get("message", "").encode())
        for t in ("error", "stdout", "stderr", "stdin", "resize"):
            if t in self.streams:
                self.fin(self.streams[t])
        last = max(self.streams.values(), default=0)
        self.sendall(self.ctrl(7, 0, struct.pack("!II", last, 0)))     # GOAWAY OK

    def read_loop(self):
        r = self.h.rfile
        deadline = time.monotonic() + STREAM_WAIT
        while True:
            hdr = r.read(8)
            if len(hdr) < 8:
                return self.on_gone("eof")
            w1, w2 = struct.unpack("!II", hdr)
            flags, n = w2 >> 24, w2 & 0xFFFFFF
            payload = r.read(n)
            if len(payload) < n:
                return self.on_gone("eof")
            if not w1 & 0x80000000:
                self.on_data(w1 & 0x7FFFFFFF, flags, payload)
                continue
            typ = w1 & 0xFFFF
            if typ == 1:        # SYN_STREAM
                sid = struct.unpack("!I", payload[:4])[0] & 0x7FFFFFFF
                hdrs = self.parse_headers(self.decomp.decompress(payload[10:]))
                st = hdrs.get("streamtype", "")
                self.streams[st] = sid
                self.rec.setdefault("streams", []).append({"id": sid, "type": st})
                with self.wlock:
                    self.sock.sendall(self.ctrl(2, 0, struct.pack("!I", sid) + self.headers_block({})))
                if flags & 1 and st == "stdin":
                    self.on_stdin_close()
                if self.expected <= set(self.streams):
                    self.start_runner()
            elif typ == 3:      # RST_STREAM
                sid = struct.unpack("!I", payload[:4])[0] & 0x7FFFFFFF
                with self.cv:
                    self.reset.add(sid)
                    self.cv.notify_all()
                if sid == self.streams.get("stdin"):
                    self.on_stdin_close()
            elif typ == 4:      # SETTINGS
                count = struct.unpack("!I", payload[:4])[0]
                for i in range(count):
                    fid, val = struct.unpack("!II", payload[4 + 8 * i:12 + 8 * i])
                    if fid & 0xFFFFFF == 7:
                        with self.cv:
                            fc = self.fc
                            delta = val - fc["initial"]
                            fc["on"], fc["initial"] = True, val
                            for k in fc["win"]:
                                fc["win"][k] += delta
                            self.cv.notify_all()
            elif typ == 6:      # PING: echo it
                self.rec["pings"] = self.rec.get("pings", 0) + 1
                self.sendall(self.ctrl(6, 0, payload[:4]))
            elif typ == 7:      # GOAWAY
                self.rec["client_goaway"] = True
            elif typ == 9:      # WINDOW_UPDATE
                sid, delta = struct.unpack("!II", payload[:8])
                sid &= 0x7FFFFFFF
                with self.cv:
                    fc = self.fc
                    if sid == 0:
                        fc["session_on"] = True
                        fc["session"] += delta & 0x7FFFFFFF
                    else:
                        fc["on"] = True
                        fc["win"][sid] = fc["win"].get(sid, fc["initial"]) + (delta & 0x7FFFFFFF)
                    self.cv.notify_all()
            if self.runner is None and time.monotonic() > deadline:
                self.rec["error"] = "streams not created in time"
                return self.on_gone("stream_timeout")

    @staticmethod
    def parse_headers(raw):
        count, pos, out = struct.unpack("!I", raw[:4])[0], 4, {}
        for _ in range(count):
            n = struct.unpack("!I", raw[pos:pos + 4])[0]
            k = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            n = struct.unpack("!I", raw[pos:pos + 4])[0]
            out[k.lower()] = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
        return out

    def on_data(self, sid, flags, payload):
        if sid == self.streams.get("stdin"):
            if payload:
                self.on_stdin(payload)
                self.unacked += len(payload)
                if self.unacked >= 32768:   # give the window back
                    self.sendall(self.ctrl(9, 0, struct.pack("!II", sid, self.unacked)))
                    self.unacked = 0
            if flags & 1:
                self.on_stdin_close()


# ---------------------------------------------------------------- HTTP

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakekube"
    sys_version = ""

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, code, body, ctype="application/json", extra=None):
        data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else \
            (json.dumps(body, separators=(",", ":")) + "\n").encode()
        self.send_response(code)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def dispatch(self):
        cl = self.server.cluster
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        body = self.read_body()
        if u.path.startswith("/__fake/"):
            return self.control(u.path, q, body)
        ctype = self.headers.get("Content-Type")
        try:
            shown = json.loads(body) if body else None
        except ValueError:
            shown = body.decode("utf-8", "replace")
        hdrs = {k: self.headers.get_all(k) if k in ("Sec-WebSocket-Protocol", "X-Stream-Protocol-Version")
                else self.headers.get(k)
                for k in ("Accept", "Content-Type", "Upgrade", "Connection", "Sec-WebSocket-Protocol",
                          "X-Stream-Protocol-Version") if self.headers.get(k)}
        entry = {"method": self.command, "path": u.path, "query": q, "headers": hdrs,
                 "user_agent": self.headers.get("User-Agent", ""),
                 "authorization": bool(self.headers.get("Authorization")), "body": shown or None}
        with cl.lock:
            cl.record(entry)
            parts = u.path.strip("/").split("/")
            plan = None
            try:
                if len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods" \
                        and parts[6] == "exec":
                    plan = self.plan_exec(cl, parts[3], parts[5], q, entry)
                else:
                    code, obj = cl.rest(self.command, u.path, q, body, ctype, self.headers.get("Accept"))
            except Exception as e:      # a scenario mistake: answer, record, carry on
                plan, code, obj = None, 500, status(500, "InternalError", f"fakekube: {e!r}")
                entry["error"] = repr(e)
            if plan is None:
                cl.finish_entry(entry, code)
        if plan is None:
            if code == 404 and not u.path.startswith(("/api", "/apis")):
                return self.reply(404, "404 page not found\n", "text/plain; charset=utf-8")
            if isinstance(obj, tuple):
                return self.reply(code, *obj)
            return self.reply(code, obj)
        if plan[0] == "http":
            return self.reply(plan[1], plan[2], plan[3] or "application/json")
        self.run_session(*plan[1:])

    # ---- exec -------------------------------------------------------------
    def plan_exec(self, cl, ns, name, q, entry):
        up = (self.headers.get("Upgrade") or "").lower()
        transport = "websocket" if up == "websocket" else "spdy" if up.startswith("spdy/") else None
        entry["transport"] = transport
        deny = cl.authorize("get" if self.command == "GET" else "create", "pods", "exec", ns, name)
        if deny:
            cl.finish_entry(entry, 403)
            return "http", 403, deny, None
        if transport is None:
            cl.finish_entry(entry, 400)
            return "http", 400, status(400, "BadRequest", "Upgrade request required"), None
        kind, *rest = cl.plan_exec(ns, name, q, transport)
        if kind == "http":
            cl.finish_entry(entry, rest[0])
            return ("http", *rest)
        beh = rest[0]
        beh["query"] = q
        beh["stdout"] = q.get("stdout", ["false"])[0] == "true"
        if transport == "websocket":
            offered = [p.strip() for h in self.headers.get_all("Sec-WebSocket-Protocol") or []
                       for p in h.split(",")]
            proto = next((p for p in offered if p in ("v5.channel.k8s.io", "v4.channel.k8s.io")), None)
        else:
            offered = [p.strip() for h in self.headers.get_all("X-Stream-Protocol-Version") or []
                       for p in h.split(",")]
            proto = next((p for p in offered if p in ("v4.channel.k8s.io", "v3.channel.k8s.io",
                                                      "v2.channel.k8s.io")), None)
        if proto is None:
            cl.finish_entry(entry, 400)
            return "http", 400, status(400, "BadRequest",
                                       f"unable to upgrade: unable to negotiate protocol: client supports "
                                       f"{offered}"), None
        rec = {"id": f"exec-{len(cl.execs) + 1}", "namespace": ns, "pod": name,
               "container": beh.get("container"), "command": beh.get("argv"),
               "transport": transport, "protocol": proto, "rule": beh.get("rule"),
               "attempt": beh.get("attempt"), "mode": beh.get("mode"), "started": time.time(),
               "ended": None, "end": None, "active": True, "stdin_closed": False,
               "stdin_closed_at": None, "stdin_bytes": 0, "stdout_bytes": 0, "stderr_bytes": 0,
               "user_agent": self.headers.get("User-Agent", ""), "log_seq": entry["seq"]}
        cl.execs.append(rec)
        entry["exec_id"] = rec["id"]
        cl.finish_entry(entry, 101)
        return "session", beh, proto, rec

    def run_session(self, beh, proto, rec):
        cl = self.server.cluster
        self.close_connection = True
        if rec["transport"] == "websocket":
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            hdrs = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept,
                    "Sec-WebSocket-Protocol": proto}
            sess = WSSession(self, beh, proto, rec)
        else:
            hdrs = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": proto}
            sess = SPDYSession(self, beh, proto, rec)
        self.send_response(101)
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()
        with cl.lock:
            cl.sessions[rec["id"]] = sess
            if self.server.stopping:
                sess.request_end("server_stop")
        try:
            sess.read_loop()
        except (OSError, ValueError, struct.error, zlib.error) as e:
            sess.on_gone(f"read_error:{e.__class__.__name__}")
        finally:
            sess.on_gone("eof")
            if sess.runner:
                sess.runner.join(FINISH_WAIT + 5)
            else:
                sess._ended()
            with cl.lock:
                cl.sessions.pop(rec["id"], None)
                cl.record({"event": "exec_end", "exec_id": rec["id"], "transport": rec["transport"],
                           "end": rec["end"], "client_end": rec.get("client_end"),
                           "stdin_closed": rec["stdin_closed"], "stdout_bytes": rec["stdout_bytes"],
                           "stderr_bytes": rec["stderr_bytes"]})

    # ---- control API -------------------------------------------------------
    def control(self, path, q, body):
        cl = self.server.cluster
        try:
            arg = json.loads(body) if body else {}
            with cl.lock:
                if path == "/__fake/log" and self.command == "GET":
                    since = int(q.get("since", ["0"])[0])
                    out = json.loads(json.dumps(cl.log[since:], default=str))
                elif path == "/__fake/execs" and self.command == "GET":
                    out = json.loads(json.dumps(cl.execs, default=str))
                elif path == "/__fake/state" and self.command == "GET":
                    out = cl.snapshot()
                elif path == "/__fake/state" and self.command == "POST":
                    cl.load(arg, replace=q.get("mode", ["merge"])[0] == "replace")
                    out = {"ok": True, "version": cl.git_version}
                elif path == "/__fake/event" and self.command == "POST":
                    evs = arg if isinstance(arg, list) else [arg]
                    out = [cl.apply_event(**e) for e in evs]
                    out = out if isinstance(arg, list) else out[0]
                else:
                    return self.reply(404, {"error": f"no control endpoint {self.command} {path}"})
        except (KeyError, ValueError, TypeError) as e:
            return self.reply(400, {"error": repr(e)})
        self.reply(200, out)


class HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, addr, cluster):
        self.cluster = cluster
        self.conns = set()
        self.stopping = False
        self.conns_lock = threading.Lock()
        super().__init__(addr, Handler)

    def process_request(self, request, client_address):
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)


class Server:
    """Runs a Cluster behind an HTTP server; start() returns the port."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.stop_ev = threading.Event()

    def start(self, host="127.0.0.1", port=0):
        self.httpd = HTTPServer((host, port), self.cluster)
        self.cluster.port = self.httpd.server_address[1]
        self.threads = [threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                         name="fakekube-accept"),
                        threading.Thread(target=self.cluster.timer_loop, args=(self.stop_ev,),
                                         name="fakekube-timers")]
        for t in self.threads:
            t.start()
        return self.cluster.port

    def stop(self):
        self.httpd.stopping = True
        self.httpd.shutdown()
        self.stop_ev.set()
        with self.cluster.lock:
            for s in list(self.cluster.sessions.values()):
                s.request_end("server_stop")
        with self.httpd.conns_lock:
            conns = list(self.httpd.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.cluster.cv:
            self.cluster.cv.notify_all()
        self.httpd.server_close()       # joins the connection threads
        for t in self.threads:
            t.join(5)
        if self.cluster.log_file:
            self.cluster.log_file.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", help="scenario JSON file")
    ap.add_argument("--port-file", help="write the listening port here once ready")
    ap.add_argument("--log", help="append every request as a JSON line here")
    ap.add_argument("--version", help="Kubernetes version to report, e.g. 1.33 (overrides the state)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args(argv)
    state = {}
    if args.state:
        with open(args.state) as f:
            state = json.load(f)
    srv = Server(Cluster(state, version=args.version, log_path=args.log))
    port = srv.start(args.host, args.port)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"fakekube: listening on http://{args.host}:{port} ({srv.cluster.git_version})",
          file=sys.stderr, flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
