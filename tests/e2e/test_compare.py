#!/usr/bin/env python3
"""Shadow compare (--compare) end to end: a "production" and a "local"
HTTP service (Python's http.server, on 127.0.0.1) that differ in chosen
ways; production's traffic, driven by real clients (curl with
keep-alive, http.client, pipelined requests on a raw socket), is
recorded by `tapmirror capture -i lo` itself, then replayed with
`replay CAP -p PORT --to LOCAL --compare` against local builds:

  - the same build: every exchange is the same;
  - a build whose JSON differs in one field: the differences are named
    by their path in --diff-log, with credentials redacted (and not with
    --no-redact), bodies cut to a few KiB;
  - a field that changes in every answer of production: learned as
    noise, the later exchanges count as same;
  - gzip and chunked bodies, HEAD, 304, pipelining, keep-alive;
  - --fail-on-diff: exit status 4 against the changed build, 0 against
    the same one;
  - --diff-report: the page holds the endpoint table and examples;
  - a capture that missed part of a response: not comparable (gap);
  - a connection that is not HTTP: compared as bytes.

The status and summary lines and --stats-json's `compare` object are
checked along the way."""
import gzip
import http.client
import http.server
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import unittest

import tmtest as t
from test_capture import capture_permitted, wait_line
from test_cli import deroff, json_paths
from test_turns import Recorder

sys.path.insert(0, os.path.join(t.ROOT, "tests", "lib"))
from capbuild import eth, ipv4, pcap_header, pcap_record, tcp  # noqa: E402

REASON = None
CURL = "curl"


def handler_for(build):
    """An HTTP/1.1 handler class; `build` is "prod", "same" (production's
    code run locally) or "changed" (one field and one cookie differ)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send_body(self, body, ctype="application/json", code=200,
                      extra=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            for k, v in extra:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def user(self, uid):
            price = 12.75 if build == "changed" else 12.5
            return {"id": uid, "name": f"user{uid}", "price": price,
                    "tags": ["a", "b"]}

        def do_HEAD(self):  # noqa: N802
            self.do_GET()

        def do_POST(self):  # noqa: N802
            # http.server answers "Expect: 100-continue" with an interim
            # 100 Continue before this runs.
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            self.send_body(json.dumps({"received": len(body),
                                       "first": body[:1].decode()}).encode(),
                           code=201)

        def do_GET(self):  # noqa: N802
            path = self.path
            if path.startswith("/users/"):
                uid = int(path.rsplit("/", 1)[1])
                self.send_body(json.dumps(self.user(uid)).encode())
            elif path == "/time":
                # Changes in every answer, in production too: noise.
                self.send_body(json.dumps({"now": time.time_ns(),
                                           "ok": True}).encode())
            elif path == "/gzip":
                items = [{"sku": i, "qty": 2} for i in range(40)]
                if build == "changed":
                    items[7]["qty"] = 3
                body = gzip.compress(json.dumps({"items": items}).encode())
                self.send_body(body, extra=[("Content-Encoding", "gzip")])
            elif path == "/chunked":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (b"hello ", b"chunked ", b"world\n"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/etag":
                if self.headers.get("If-None-Match") == '"v1"':
                    self.send_response(304)
                    self.send_header("ETag", '"v1"')
                    self.end_headers()
                else:
                    self.send_body(b"etagged\n", "text/plain",
                                   extra=[("ETag", '"v1"')])
            elif path == "/login":
                name = "localsess" if build == "changed" else "prodsess"
                secret = "SECRETLOCAL" if build == "changed" else "SECRETPROD"
                self.send_body(b"{}", extra=[("Set-Cookie",
                                              f"{name}={secret}")])
            elif path == "/big":
                text = ("x" * 20000 if build != "changed"
                        else "x" * 10000 + "y" + "x" * 9999)
                self.send_body(text.encode(), "text/plain")
            else:
                self.send_body(b"not found\n", "text/plain", code=404)

    return Handler


class HTTPService:
    def __init__(self, build):
        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), handler_for(build))
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class LineService:
    """A line protocol (not HTTP): answers each line upper-cased, or
    reversed by the "changed" build."""

    def __init__(self, build):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.build = build
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,),
                             daemon=True).start()

    def _run(self, conn):
        with conn:
            buf = b""
            while True:
                d = conn.recv(4096)
                if not d:
                    return
                buf += d
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    out = (line[::-1] if self.build == "changed"
                           else line.upper())
                    conn.sendall(b"+" + out + b"\n")

    def close(self):
        self.sock.close()


class GreetingService(LineService):
    """The line protocol behind a greeting the server sends first (as
    SMTP, MySQL or POP3 do); the "changed" build greets with another
    version."""

    def _run(self, conn):
        version = b"2" if self.build == "changed" else b"1"
        conn.sendall(b"+HELLO v" + version + b"\n")
        super()._run(conn)


def read_response(sock_file):
    """Reads one HTTP/1.1 response with a Content-Length from a file."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        ch = sock_file.read(1)
        if not ch:
            raise EOFError("connection closed")
        head += ch
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + sock_file.read(length)


def traffic(port):
    """Production's clients: curl with keep-alive, http.client, and
    three pipelined requests on a raw socket."""
    base = f"http://127.0.0.1:{port}"
    subprocess.run([CURL, "-s", "-o", "/dev/null", "-o", "/dev/null",
                    "-o", "/dev/null", "-o", "/dev/null",
                    f"{base}/users/1", f"{base}/users/2", f"{base}/gzip",
                    f"{base}/chunked"], check=True, timeout=30)
    subprocess.run([CURL, "-s", "-o", "/dev/null", "-I", f"{base}/users/3"],
                   check=True, timeout=30)
    # a POST that waits for 100 Continue before sending its body
    subprocess.run([CURL, "-s", "-o", "/dev/null", "-H",
                    "Expect: 100-continue", "--data-binary", "x" * 3000,
                    f"{base}/orders"], check=True, timeout=30)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path, headers in (("/etag", {}),
                          ("/etag", {"If-None-Match": '"v1"'}),
                          ("/login", {"Authorization": "Bearer TOKEN123"}),
                          ("/big", {})):
        c.request("GET", path, headers=headers)
        c.getresponse().read()
    c.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /users/10 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /users/11 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /users/12 HTTP/1.1\r\nHost: x\r\n\r\n")
        f = s.makefile("rb")
        for _ in range(3):
            read_response(f)


def time_traffic(port):
    """The same request three times: production's answers differ."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):
        c.request("GET", "/time")
        c.getresponse().read()
        time.sleep(0.01)
    c.close()


def greeting_traffic(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()  # the greeting first
        for word in (b"alpha", b"beta"):
            s.sendall(word + b"\n")
            f.readline()


def line_traffic(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        for word in (b"alpha", b"beta", b"gamma"):
            s.sendall(word + b"\n")
            f.readline()


class Compare(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = t.TempDir()
        cls.caps = {}
        for name, service, client in (("http", HTTPService, traffic),
                                      ("time", HTTPService, time_traffic),
                                      ("line", LineService, line_traffic),
                                      ("greet", GreetingService,
                                       greeting_traffic)):
            prod = service("prod")
            path = cls.tmp(f"{name}.pcap")
            rec = Recorder(prod.port, "-o", path)
            try:
                client(prod.port)
            finally:
                rc, err = rec.stop()
                prod.close()
            assert rc == 0, err
            cls.caps[name] = (path, prod.port)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.services = []

    def tearDown(self):
        for s in self.services:
            s.close()

    def local(self, build, kind=HTTPService):
        s = kind(build)
        self.services.append(s)
        return s

    def replay(self, cap, build, *args, kind=HTTPService, expect=0):
        path, port = self.caps[cap]
        local = self.local(build, kind)
        stats = self.tmp(f"{cap}-{build}.json")
        r = t.run(["replay", path, "-p", port, "--to",
                   f"127.0.0.1:{local.port}", "--compare", "--stats-json",
                   stats, *args], timeout=120)
        err = r.stderr.decode(errors="replace")
        if expect is not None:
            self.assertEqual(r.returncode, expect, err)
        return t.read_json(stats)["compare"], err

    def endpoint(self, cmp, name):
        for ep in cmp["endpoints"]:
            if ep["endpoint"] == name:
                return ep
        self.fail(f"no endpoint {name}: {[e['endpoint'] for e in cmp['endpoints']]}")

    def test_same_build_is_the_same(self):
        cmp, err = self.replay("http", "same")
        self.assertEqual(cmp["differ"], 0, json.dumps(cmp, indent=1))
        self.assertEqual(cmp["not_comparable"], 0, json.dumps(cmp, indent=1))
        # 4 (curl keep-alive) + 1 HEAD + 1 POST with 100-continue
        # + 4 (http.client) + 3 pipelined
        self.assertEqual(cmp["exchanges"], 13, json.dumps(cmp, indent=1))
        self.assertEqual(cmp["same"], 13)
        self.assertEqual(cmp["connections_by_protocol"], {"http/1.1": 5})
        self.assertEqual(self.endpoint(cmp, "POST /orders")["same"], 1)
        users = self.endpoint(cmp, "GET /users/{id}")
        self.assertEqual(users["exchanges"], 5)
        self.assertEqual(self.endpoint(cmp, "HEAD /users/{id}")["same"], 1)
        self.assertEqual(self.endpoint(cmp, "GET /etag")["same"], 2)
        self.assertEqual(self.endpoint(cmp, "GET /chunked")["same"], 1)
        lat = users["latency_ms"]
        self.assertEqual(lat["production"]["count"], 5)
        self.assertEqual(lat["local"]["count"], 5)
        self.assertGreater(lat["local"]["p50"], 0)
        self.assertGreater(cmp["production_bytes"], 20000)
        self.assertEqual(cmp["production_gaps"], 0)
        # the summary's endpoint table
        self.assertIn("compared 13 exchanges: 13 same, 0 differ, 0 not "
                      "comparable", err)
        self.assertIn("GET /users/{id}", err)

    def test_changed_field_named_by_path(self):
        log = self.tmp("diff.jsonl")
        cmp, err = self.replay("http", "changed", "--diff-log", log)
        users = self.endpoint(cmp, "GET /users/{id}")
        self.assertEqual(users["differ"], 5, json.dumps(cmp, indent=1))
        self.assertEqual(users["top_differing_fields"][0],
                         {"field": "$.price", "exchanges": 5})
        self.assertEqual(self.endpoint(cmp, "GET /gzip")["differ"], 1)
        self.assertEqual(self.endpoint(cmp, "GET /chunked")["same"], 1)
        self.assertEqual(self.endpoint(cmp, "GET /etag")["same"], 2)
        self.assertEqual(self.endpoint(cmp, "HEAD /users/{id}")["same"], 1)
        self.assertEqual(self.endpoint(cmp, "POST /orders")["same"], 1)
        self.assertIn("$.price (5)", err)
        self.assertEqual(os.stat(log).st_mode & 0o777, 0o600)
        with open(log, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f]
        # one line per differing exchange, nothing for the same ones
        self.assertEqual(len(lines), cmp["differ"] + cmp["not_comparable"])
        self.assertEqual(len(lines), 8)
        by_request = {}
        for line in lines:
            by_request.setdefault(line["request"], []).append(line)
        one = by_request["GET /users/1"][0]
        self.assertEqual(one["outcome"], "differ")
        self.assertEqual(one["status"], {"production": 200, "local": 200})
        self.assertIn({"kind": "json", "field": "$.price",
                       "line": "$.price: 12.5 -> 12.75"},
                      one["differences"])
        gz = by_request["GET /gzip"][0]
        self.assertEqual([d["line"] for d in gz["differences"]],
                         ["$.items[7].qty: 2 -> 3"])
        # a differing cookie: redacted (its values are never compared,
        # its names are, and they are shown only with --no-redact)
        login = by_request["GET /login"][0]
        text = json.dumps(login)
        self.assertEqual(login["differences"][0]["field"],
                         "header set-cookie")
        self.assertNotIn("SECRET", text)
        self.assertNotIn("prodsess", text)
        self.assertIn("(redacted)", text)
        # a long body is cut to a few KiB
        big = by_request["GET /big"][0]
        self.assertEqual(big["body"]["production"]["size"], 20000)
        self.assertTrue(big["body"]["production"]["cut"])
        self.assertLessEqual(len(big["body"]["production"]["text"]), 4096)

        log2 = self.tmp("diff-plain.jsonl")
        self.replay("http", "changed", "--diff-log", log2, "--no-redact")
        with open(log2, encoding="utf-8") as f:
            text = f.read()
        self.assertIn('set-cookie: \\"prodsess\\" -> \\"localsess\\"', text)
        self.assertNotIn("(redacted)", text)

    def test_ignore_options(self):
        cmp, _ = self.replay("http", "changed", "--ignore-json", "$.price",
                             "--ignore-json", "$.items[*].qty",
                             "--ignore-header", "set-cookie")
        self.assertEqual(self.endpoint(cmp, "GET /users/{id}")["differ"], 0)
        self.assertEqual(self.endpoint(cmp, "GET /gzip")["differ"], 0)
        self.assertEqual(self.endpoint(cmp, "GET /login")["differ"], 0)
        self.assertEqual(cmp["differ"], 1)  # /big only

    def test_max_buffer_gives_way_to_the_replay(self):
        # Compare's bytes count against --max-buffer: past it, a
        # connection's comparison is given up (limit), never a delivery.
        cmp, err = self.replay("http", "same", "--max-buffer", "32KiB",
                               "--flow-buffer", "4KiB")
        self.assertGreater(cmp["abandoned_at_max_buffer"], 0,
                           json.dumps(cmp, indent=1))
        self.assertGreater(cmp["not_comparable_by_reason"]["limit"], 0)
        self.assertEqual(cmp["differ"], 0)
        doc = t.read_json(self.tmp("http-same.json"))
        self.assertEqual(doc["targets"][0]["flows_dropped"], 0, err)
        self.assertEqual(doc["targets"][0]["bytes_delivered"],
                         doc["flows"]["payload_bytes"])

    def test_live_capture_compares(self):
        # capture -i lo --to LOCAL --compare: production's answers from the
        # live capture, the local ones as they come.
        prod = HTTPService("prod")
        self.services.append(prod)
        local = self.local("changed")
        stats = self.tmp("live.json")
        log = self.tmp("live.jsonl")
        p = t.start(["capture", "-i", "lo", "-p", prod.port, "-o",
                     "/dev/null", "--to", f"127.0.0.1:{local.port}",
                     "--diff-log", log, "--stats-json", stats],
                    stdin=subprocess.DEVNULL)
        if wait_line(p, "capturing", 15) is None:
            p.kill()
            self.fail("capture did not start")
        try:
            c = http.client.HTTPConnection("127.0.0.1", prod.port,
                                           timeout=10)
            for path in ("/users/7", "/chunked", "/users/8"):
                c.request("GET", path)
                c.getresponse().read()
            c.close()
            time.sleep(1)
        finally:
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err.decode(errors="replace"))
        cmp = t.read_json(stats)["compare"]
        self.assertEqual(cmp["exchanges"], 3, json.dumps(cmp, indent=1))
        self.assertEqual(cmp["differ"], 2)
        self.assertEqual(cmp["same"], 1)
        users = self.endpoint(cmp, "GET /users/{id}")
        self.assertEqual(users["latency_ms"]["production"]["count"], 2)
        self.assertEqual(users["latency_ms"]["local"]["count"], 2)
        with open(log, encoding="utf-8") as f:
            requests = sorted(json.loads(x)["request"] for x in f)
        self.assertEqual(requests, ["GET /users/7", "GET /users/8"])

    def test_noise_is_learned(self):
        cmp, err = self.replay("time", "same")
        ep = self.endpoint(cmp, "GET /time")
        self.assertEqual(ep["exchanges"], 3)
        self.assertIn({"endpoint": "GET /time", "field": "$.now"},
                      cmp["noise_fields"])
        # the first differed before production was seen to differ from
        # itself; the later ones count as the same
        self.assertEqual(ep["same"], 2, json.dumps(cmp, indent=1))
        self.assertEqual(ep["same_but_noise"], 2)
        self.assertEqual(ep["top_differing_fields"], [])
        self.assertIn("noise (production differs from itself): GET /time "
                      "$.now", err)

    def test_fail_on_diff(self):
        _, err = self.replay("http", "changed", "--fail-on-diff", expect=4)
        self.assertIn("differ", err)
        cmp, _ = self.replay("http", "same", "--fail-on-diff", expect=0)
        self.assertEqual(cmp["differ"], 0)
        # noise does not count
        self.replay("time", "same", "--fail-on-diff", "--ignore-json",
                    "$.now", expect=0)

    def test_diff_report(self):
        page = self.tmp("report.html")
        cmp, err = self.replay("http", "changed", "--diff-report", page)
        self.assertIn(f"wrote the comparison report to {page}", err)
        self.assertEqual(os.stat(page).st_mode & 0o777, 0o600)
        with open(page, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("GET /users/{id}", text)
        self.assertIn("$.price", text)
        self.assertIn("<details", text)
        # (e2e.diffreport loads a compare run's page in chromium)

    def test_man_page_names_every_compare_field(self):
        # Every field of the `compare` object, from runs that fill every
        # part of it (differences, noise, latencies, reasons), is named
        # under STATISTICS; a protocol's name is a key of its own.
        docs = [self.replay("http", "changed")[0],
                self.replay("time", "same")[0],
                self.replay("line", "changed", kind=LineService)[0]]
        paths = set()
        for doc in docs:
            json_paths({"compare": doc}, "", paths)
        paths = {p if not p.startswith("compare.connections_by_protocol.")
                 else "compare.connections_by_protocol.NAME" for p in paths}
        self.assertIn("compare.endpoints[].latency_ms.local.p99", paths)
        self.assertIn("compare.noise_fields[].field", paths)
        self.assertIn("compare.endpoints[].top_differing_fields[].field",
                      paths)
        page = t.read_text(os.path.join(t.ROOT, "docs", "tapmirror.1"))
        section = deroff(page.split("\n.SH STATISTICS\n", 1)[1]
                         .split("\n.SH ", 1)[0])
        named = {w.strip(".,;:()") for w in section.split()}
        self.assertEqual(sorted(paths - named), [],
                         "compare fields the man page does not list")

    def test_gap_in_a_response_is_not_comparable(self):
        # A built capture: one connection, production's answer has a
        # Content-Length body whose middle segment the capture missed
        # (the client acknowledged it), then a second exchange.
        cport, sport = 40000, t.free_port()
        c, s = 1000, 5000
        frames = []

        def seg(src_client, seq, ack, flags, payload=b""):
            src, dst = ("10.0.0.1", "10.0.0.2")
            sp, dp = cport, sport
            if not src_client:
                src, dst, sp, dp = dst, src, dp, sp
            frames.append(eth(ipv4(src, dst, tcp(sp, dp, seq, ack, flags,
                                                 payload))))

        body = json.dumps({"id": 1, "name": "user1", "price": 12.5,
                           "tags": ["a", "b"]}).encode()
        req1 = b"GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n"
        req2 = b"GET /users/2 HTTP/1.1\r\nHost: x\r\n\r\n"
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        resp1 = head + body
        body2 = json.dumps({"id": 2, "name": "user2", "price": 12.5,
                            "tags": ["a", "b"]}).encode()
        resp2 = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body2)) + body2
        SYN, ACK, PSH, FIN = 2, 16, 8, 1
        seg(True, c, 0, SYN)
        seg(False, s, c + 1, SYN | ACK)
        seg(True, c + 1, s + 1, ACK)
        seg(True, c + 1, s + 1, PSH | ACK, req1)
        c += 1 + len(req1)
        s += 1
        cut = len(head) + 10
        seg(False, s, c, PSH | ACK, resp1[:cut])
        # resp1[cut:cut+8] never captured
        seg(False, s + cut + 8, c, PSH | ACK, resp1[cut + 8:])
        s += len(resp1)
        seg(True, c, s, PSH | ACK, req2)
        c += len(req2)
        seg(False, s, c, PSH | ACK, resp2)
        s += len(resp2)
        seg(True, c, s, FIN | ACK)
        seg(False, s, c + 1, FIN | ACK)
        seg(True, c + 1, s + 1, ACK)
        path = self.tmp("gap.pcap")
        data = pcap_header()
        for i, fr in enumerate(frames):
            data += pcap_record(fr, ts_ns=1_700_000_000 * 10**9 + i * 10**6)
        t.write_bytes(path, data)
        self.caps["gap"] = (path, sport)
        log = self.tmp("gap.jsonl")
        cmp, _ = self.replay("gap", "same", "--diff-log", log)
        self.assertEqual(cmp["production_gaps"], 1)
        self.assertEqual(cmp["production_gap_bytes"], 8)
        self.assertEqual(cmp["exchanges"], 2, json.dumps(cmp, indent=1))
        self.assertEqual(cmp["not_comparable"], 1)
        self.assertEqual(cmp["not_comparable_by_reason"], {"gap": 1})
        self.assertEqual(cmp["same"], 1)
        with open(log, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual([(x["request"], x["outcome"], x["reason"])
                          for x in lines],
                         [("GET /users/1", "not_comparable", "gap")])

    def test_other_protocol_compared_as_bytes(self):
        cmp, _ = self.replay("line", "same", kind=LineService)
        self.assertEqual(cmp["exchanges"], 1, json.dumps(cmp, indent=1))
        self.assertEqual(cmp["same"], 1)
        self.assertEqual(sum(cmp["connections_by_protocol"].values()), 1)
        self.assertNotIn("http/1.1", cmp["connections_by_protocol"])
        log = self.tmp("line.jsonl")
        cmp, _ = self.replay("line", "changed", "--diff-log", log,
                             kind=LineService)
        self.assertEqual(cmp["differ"], 1, json.dumps(cmp, indent=1))
        with open(log, encoding="utf-8") as f:
            line = json.loads(f.readline())
        self.assertEqual(line["outcome"], "differ")
        self.assertEqual(line["differences"][0]["field"], "body")
        self.assertIn("first difference at byte 1",
                      line["differences"][0]["line"])

    def test_greeting_is_compared(self):
        # A server that speaks first: its greeting is compared too, the
        # local one read on the connection the start-up probe opened.
        cmp, _ = self.replay("greet", "same", kind=GreetingService)
        self.assertEqual((cmp["exchanges"], cmp["same"]), (1, 1),
                         json.dumps(cmp, indent=1))
        log = self.tmp("greet.jsonl")
        cmp, _ = self.replay("greet", "changed", "--diff-log", log,
                             kind=GreetingService)
        self.assertEqual(cmp["differ"], 1, json.dumps(cmp, indent=1))
        with open(log, encoding="utf-8") as f:
            line = json.loads(f.readline())
        self.assertIn("first difference at byte 8",
                      line["differences"][0]["line"])
        # Live, the start-up probe's connection has long read the local
        # greeting when the first client comes: it is kept for compare.
        prod = GreetingService("prod")
        self.services.append(prod)
        local = self.local("same", GreetingService)
        stats = self.tmp("greet-live.json")
        p = t.start(["capture", "-i", "lo", "-p", prod.port, "-o",
                     "/dev/null", "--to", f"127.0.0.1:{local.port}",
                     "--compare", "--stats-json", stats],
                    stdin=subprocess.DEVNULL)
        if wait_line(p, "capturing", 15) is None:
            p.kill()
            self.fail("capture did not start")
        try:
            time.sleep(0.5)
            greeting_traffic(prod.port)
            time.sleep(1)
        finally:
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err.decode(errors="replace"))
        cmp = t.read_json(stats)["compare"]
        self.assertEqual((cmp["exchanges"], cmp["same"]), (1, 1),
                         json.dumps(cmp, indent=1))

    def test_local_target_closing_is_not_comparable(self):
        # A local service that reads the request and closes at once.
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        port = srv.getsockname()[1]

        def serve():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                conn.recv(65536)
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
        try:
            path, prod_port = self.caps["time"]
            stats = self.tmp("closing.json")
            r = t.run(["replay", path, "-p", prod_port, "--to",
                       f"127.0.0.1:{port}", "--compare", "--stats-json",
                       stats], timeout=60)
            cmp = t.read_json(stats)["compare"]
        finally:
            srv.close()
        self.assertIn(r.returncode, (0, 3), r.stderr.decode())
        self.assertEqual(cmp["exchanges"], 3, json.dumps(cmp, indent=1))
        self.assertEqual(cmp["not_comparable"], 3)
        self.assertEqual(list(cmp["not_comparable_by_reason"]),
                         ["local_closed"])

    def test_silent_local_target_times_out(self):
        # A local service that reads and never answers, nor closes.
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        port = srv.getsockname()[1]
        held = []

        def serve():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                held.append(conn)

        threading.Thread(target=serve, daemon=True).start()
        try:
            path, prod_port = self.caps["time"]
            stats = self.tmp("silent.json")
            r = t.run(["replay", path, "-p", prod_port, "--to",
                       f"127.0.0.1:{port}", "--compare", "--stats-json",
                       stats, "--write-timeout", "300ms", "--turns", "off",
                       "--linger", "5s"], timeout=60)
            cmp = t.read_json(stats)["compare"]
        finally:
            srv.close()
            for c in held:
                c.close()
        self.assertIn(r.returncode, (0, 3), r.stderr.decode())
        self.assertEqual(cmp["not_comparable"], 3, json.dumps(cmp, indent=1))
        self.assertEqual(cmp["not_comparable_by_reason"], {"timeout": 3})


if __name__ == "__main__":
    REASON = capture_permitted()
    if REASON:
        print(f"skipping: {REASON}")
        sys.exit(t.SKIP)
    t.main()
