#!/usr/bin/env python3
"""What smoke.py (make cluster-test) does when it must not or cannot run.

No cluster is reachable here, so these tests pin down the promises that
keep the smoke test safe to leave in a CI script or run by hand:

- without a named context it skips (77) and sends no request at all, even
  when the kubeconfig's current context points at a live API server;
- a named context whose server does not answer skips (77) with kubectl's
  reason, and the current context's server sees nothing;
- a context that is not in the kubeconfig is a usage error (2);
- when the cluster answers but refuses to create the namespace, the test
  fails (1), tries to delete that same namespace, and every kubectl call
  carries --context;
- Ctrl-C while it works still deletes the namespace (exit 130);
- no temporary file is left behind in any of these cases.

The live server is fakekube.py (tests/kube), which records every request.
Exit code 77 (CTest SKIP_RETURN_CODE) when nothing could run.
"""
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "kube"))
from kubetest import FakeKube, kubectl_path  # noqa: E402

SMOKE = os.path.join(HERE, "smoke.py")
TAPMIRROR = os.environ.get("TAPMIRROR", "")
NEEDS_KUBECTL = "kubectl is not installed"


class SmokeGuards(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="smoke-test-")
        self.tmpdir = os.path.join(self.tmp, "tmpdir")     # smoke.py's TMPDIR
        os.mkdir(self.tmpdir)
        self.fk = FakeKube({})
        # Bound but not listening: a connection to it is refused.
        self.closed = socket.socket()
        self.closed.bind(("127.0.0.1", 0))
        closed_port = self.closed.getsockname()[1]
        self.kubeconfig = os.path.join(self.tmp, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n"
                    f"- name: live\n  cluster:\n    server: {self.fk.url}\n"
                    f"- name: closed\n  cluster:\n    server: https://127.0.0.1:{closed_port}\n"
                    "users:\n- name: me\n  user:\n    token: t\n"
                    "contexts:\n"
                    "- name: production\n  context:\n    cluster: live\n    user: me\n"
                    "- name: kind-gone\n  context:\n    cluster: closed\n    user: me\n"
                    "current-context: production\n")
        self.argv_log = os.path.join(self.tmp, "kubectl-argv.jsonl")
        self.kubectl = os.path.join(self.tmp, "kubectl")
        real = kubectl_path()
        if real:
            # Records each call's arguments, then runs the real kubectl.
            with open(self.kubectl, "w") as f:
                f.write(f"#!{sys.executable}\nimport json, os, sys\n"
                        f"with open({self.argv_log!r}, 'a') as f:\n"
                        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
                        "if 'create' in sys.argv and os.environ.get('SLOW_CREATE'):\n"
                        "    import time; time.sleep(60)\n"
                        f"os.execv({real!r}, [{real!r}] + sys.argv[1:])\n")
            os.chmod(self.kubectl, stat.S_IRWXU)

    def tearDown(self):
        self.fk.stop()
        self.closed.close()
        subprocess.run(["rm", "-rf", self.tmp], check=False)

    def smoke(self, *args, kubectl=True, popen=False, env=None):
        argv = [sys.executable, SMOKE, "--timeout", "20", *args]
        if kubectl:
            if not kubectl_path():
                self.skipTest(NEEDS_KUBECTL)
            argv += ["--kubectl", self.kubectl]
        if TAPMIRROR:
            argv += ["--tapmirror", TAPMIRROR]
        env = self.fk.env({"KUBECONFIG": self.kubeconfig, "TMPDIR": self.tmpdir,
                           **(env or {})})
        if popen:
            return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
        r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.stderr, "", r.stdout)
        return r.returncode, r.stdout

    def kubectl_calls(self):
        if not os.path.exists(self.argv_log):
            return []
        with open(self.argv_log) as f:
            return [json.loads(ln) for ln in f]

    def assert_untouched(self):
        """Nothing reached the current context's server; nothing left in TMPDIR."""
        self.assertEqual(self.fk.requests(), [])
        self.assertEqual(os.listdir(self.tmpdir), [])

    def test_no_context_skips_without_a_request(self):
        for kubectl in (False, True):
            with self.subTest(kubectl=kubectl):
                if kubectl and not kubectl_path():
                    self.skipTest(NEEDS_KUBECTL)
                code, out = self.smoke(kubectl=kubectl)
                self.assertEqual(code, 77, out)
                self.assertIn("SKIP: no kubeconfig context named; the current "
                              "context is never used", out)
                self.assertIn("make cluster-test CONTEXT=", out)
                self.assertEqual(self.kubectl_calls(), [])
                self.assert_untouched()

    def test_unreachable_context_skips(self):
        code, out = self.smoke("--context", "kind-gone")
        self.assertEqual(code, 77, out)
        self.assertRegex(out, r"SKIP: the cluster of context 'kind-gone' does "
                              r"not answer: .*refused")
        self.assertNotIn("namespace", out)
        calls = self.kubectl_calls()
        self.assertTrue(calls)
        for argv in calls:
            self.assertEqual(argv[:2], ["--context", "kind-gone"], argv)
        self.assert_untouched()

    def test_unknown_context_is_a_usage_error(self):
        code, out = self.smoke("--context", "kind-dev")
        self.assertEqual(code, 2, out)
        self.assertIn("ERROR: context 'kind-dev' is not in the kubeconfig; "
                      "it has: kind-gone, production", out)
        self.assert_untouched()

    def test_missing_kubectl_is_a_usage_error(self):
        argv = ["--context", "kind-gone", "--kubectl", os.path.join(self.tmp, "none")]
        code, out = self.smoke(*argv, kubectl=False)
        self.assertEqual(code, 2, out)
        self.assertIn("--kubectl", out)
        self.assert_untouched()

    def test_refused_namespace_is_deleted_anyway(self):
        # The named context answers (fakekube serves /version) but cannot
        # create namespaces: the run fails, and cleanup still deletes the
        # namespace it asked for, through the same context.
        code, out = self.smoke("--context", "production")
        self.assertEqual(code, 1, out)
        self.assertIn("\u2713 cluster answers (v1.33.1)", out)
        self.assertIn("\u2717 creating namespace tapmirror-smoke-", out)
        self.assertTrue(out.endswith("FAIL\n"), out)
        reqs = [(e["method"], e["path"], e.get("body")) for e in self.fk.requests()
                if e["method"] != "GET"]
        self.assertEqual(len(reqs), 2, reqs)
        (post, path, body), (delete, dpath, _) = reqs
        self.assertEqual((post, path), ("POST", "/api/v1/namespaces"))
        ns = body["metadata"]["name"]
        self.assertRegex(ns, r"^tapmirror-smoke-[0-9a-f]{8}$")
        self.assertEqual(body["metadata"]["labels"],
                         {"app.kubernetes.io/created-by": "tapmirror-smoke"})
        self.assertEqual((delete, dpath), ("DELETE", f"/api/v1/namespaces/{ns}"))
        for argv in self.kubectl_calls():
            self.assertEqual(argv[:2], ["--context", "production"], argv)
        self.assertEqual(os.listdir(self.tmpdir), [])

    def test_interrupt_deletes_the_namespace(self):
        # Ctrl-C while the namespace is being created (kubectl held up by
        # the wrapper): the run stops with 130 and still deletes it.
        p = self.smoke("--context", "production", popen=True,
                       env={"SLOW_CREATE": "1"})
        try:
            deadline = time.monotonic() + 60
            while not any("create" in c for c in self.kubectl_calls()):
                self.assertIsNone(p.poll(), "smoke.py ended before create")
                self.assertLess(time.monotonic(), deadline, "no create")
                time.sleep(0.1)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual((p.returncode, err), (130, ""), out)
        self.assertIn("\u2717 interrupted (SIGINT); cleaning up", out)
        m = re.search(r"deleting namespace (tapmirror-smoke-[0-9a-f]{8})", out)
        self.assertTrue(m, out)
        deletes = [(e["method"], e["path"]) for e in self.fk.requests()
                   if e["method"] != "GET"]
        self.assertEqual(deletes, [("DELETE", f"/api/v1/namespaces/{m.group(1)}")])
        self.assertEqual(os.listdir(self.tmpdir), [])
        left = subprocess.run(["pgrep", "-f", self.kubectl], capture_output=True,
                              text=True).stdout.strip()
        self.assertEqual(left, "", "kubectl left running")


def main():
    r = unittest.main(exit=False, verbosity=2).result
    if not r.wasSuccessful():
        return 1
    if r.testsRun and len(r.skipped) == r.testsRun:
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
