#!/usr/bin/env python3
"""The --diff-report page in a real headless browser (Debian's chromium).

tmdiffpage runs real exchanges through the compare engine (same answers,
a JSON field and a header that differ, statuses that differ with hostile
markup in the target, a header and a body, an answer the capture
missed) and writes the page. Chromium loads it from a file: the rendered
DOM must hold the endpoint table and the examples with their differing
fields marked, the hostile markup as text (no element made from it, no
script run), and taking a screenshot must work. The page and the
screenshot are kept in the build's test output (TM_TEST_OUTPUT).

The page may not reach the network: it names no URL, and its Content
Security Policy is checked to be enforced by loading a copy with an
image from a loopback HTTP server slipped in, which must not be fetched.
"""
import html.parser
import http.server
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tmtest  # noqa: E402

sys.path.insert(0, os.path.join(tmtest.ROOT, "tests", "lib"))
from capbuild import eth, ipv4, pcap_header, pcap_record, tcp  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TMDIFFPAGE = os.environ.get("TMDIFFPAGE") or os.path.join(
    tmtest.ROOT, "build", "default", "tests", "e2e", "tmdiffpage")
OUTPUT = os.environ.get("TM_TEST_OUTPUT") or os.path.join(
    tmtest.ROOT, "build", "default", "test-output", "diffreport")


def chromium(profile, *args, timeout=90):
    """Runs headless chromium with no network services of its own."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-default-apps",
           "--user-data-dir=" + profile, *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, check=False)


class Dom(html.parser.HTMLParser):
    """The rendered DOM as a flat list of elements: (tag, class, attributes,
    text of the element and its descendants), in document order."""

    VOID = {"br", "meta", "img", "input", "link", "hr"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.stack = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        el = [tag, a.get("class") or "", a, ""]
        self.elements.append(el)
        if tag not in self.VOID:
            self.stack.append(el)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        for el in self.stack:
            el[3] += data

    def find(self, tag, cls=None):
        return [e for e in self.elements
                if e[0] == tag and (cls is None or e[1] == cls)]

    def texts(self, tag, cls=None):
        return [e[3] for e in self.find(tag, cls)]


class NoRequests(http.server.BaseHTTPRequestHandler):
    hits = []

    def do_GET(self):  # noqa: N802
        NoRequests.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class DiffReportPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.makedirs(OUTPUT, exist_ok=True)
        cls.page = os.path.join(OUTPUT, "diffreport.html")
        r = subprocess.run([TMDIFFPAGE, cls.page], capture_output=True,
                           timeout=60, check=False)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        with open(cls.page, "rb") as f:
            cls.source = f.read()
        cls.tmp = tempfile.mkdtemp(prefix="tm-diffreport-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def dump_dom(self, path):
        r = chromium(os.path.join(self.tmp, "profile-dom"), "--dump-dom",
                     "file://" + path)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return r.stdout.decode("utf-8")

    def test_rendered_table_and_examples(self):
        dom = self.dump_dom(self.page)
        with open(os.path.join(OUTPUT, "diffreport-dom.html"), "w") as f:
            f.write(dom)
        d = Dom(dom)
        self.assertEqual(d.texts("title"), ["shop: production vs local build"])
        # The table: one row per endpoint, most exchanges first, each with
        # its bar of three parts.
        self.assertEqual(d.texts("td", "ep"), ["GET /users/{id}",
                                               "GET /health", "POST /orders"])
        self.assertEqual(len(d.find("div", "bar")), 3)
        self.assertEqual(len(d.find("span", "d")), 4)  # the key's, 3 bars'
        # The examples: the differing one first and open, $.price and the
        # header listed, $.price marked on both sides.
        examples = d.find("details", "ex")
        summaries = d.texts("summary")
        self.assertEqual(len(examples), 5, summaries)
        self.assertIn("open", examples[0][2])
        self.assertTrue(summaries[0].startswith("differGET /users/44?"),
                        summaries)
        fields = [t for t in d.texts("td") if t.startswith(("$.", "header "))]
        self.assertIn("$.price", fields)
        self.assertIn("header x-version", fields)
        self.assertEqual(d.texts("mark")[:2], ['"price": 12.5',
                                               '"price": 12.75'])
        self.assertTrue(any(s.startswith("not comparableGET /users/45")
                            for s in summaries), summaries)
        # Hostile markup stayed text: no element came from it and the
        # script in it never ran (the title above is the page's own).
        for tag in ("script", "img", "i"):
            self.assertEqual(d.find(tag), [], tag)
        self.assertEqual(len(d.find("b")), 5)  # the totals line's own
        self.assertTrue(any("POST /orders?next=</script><i>x</i>\"'" in s
                            for s in summaries), summaries)
        self.assertIn("&lt;/script&gt;&lt;script&gt;document.title=", dom)
        self.assertIn("\\u202e evil", dom)
        self.assertIn("\\xff\\xfe", dom)

    def test_screenshot(self):
        png = os.path.join(OUTPUT, "diffreport.png")
        if os.path.exists(png):
            os.unlink(png)
        r = chromium(os.path.join(self.tmp, "profile-shot"),
                     "--screenshot=" + png, "--window-size=1280,2000",
                     "--hide-scrollbars", "file://" + self.page)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        with open(png, "rb") as f:
            head = f.read(24)
        self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", head[16:24])
        self.assertEqual((width, height), (1280, 2000))
        self.assertGreater(os.path.getsize(png), 20000)  # not a blank page

    def test_no_network(self):
        # The page names no URL: text from traffic is escaped, and the
        # template links only to its own sections.
        self.assertNotIn(b"http://", self.source)
        self.assertNotIn(b"https://", self.source)
        self.assertIn(b"default-src 'none'", self.source)
        # Chromium enforces the policy: an image slipped in after it is
        # not fetched, while the same page without the policy fetches it
        # (so the server would have seen a request).
        server = http.server.HTTPServer(("127.0.0.1", 0), NoRequests)
        port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            img = f'<img src="http://127.0.0.1:{port}/leak.png">'.encode()
            text = self.source.replace(b"<body>\n", b"<body>\n" + img, 1)
            with_csp = os.path.join(self.tmp, "with-csp.html")
            with open(with_csp, "wb") as f:
                f.write(text)
            NoRequests.hits.clear()
            self.dump_dom(with_csp)
            self.assertEqual(NoRequests.hits, [])
            without = os.path.join(self.tmp, "without-csp.html")
            start = text.index(b'<meta http-equiv="Content-Security-Policy"')
            end = text.index(b">", start) + 1
            with open(without, "wb") as f:
                f.write(text[:start] + text[end:])
            self.dump_dom(without)
            self.assertEqual(NoRequests.hits, ["/leak.png"])
        finally:
            server.shutdown()
            server.server_close()


def http_capture(path, port, exchanges):
    """A capture of one keep-alive connection to `port` carrying
    `exchanges`, a list of (request bytes, response bytes)."""
    frames = []
    c, srv = 1000, 5000
    cport = 40000

    def seg(from_client, seq, ack, flags, payload=b""):
        a, b, sp, dp = "10.0.0.1", "10.0.0.2", cport, port
        if not from_client:
            a, b, sp, dp = b, a, dp, sp
        frames.append(eth(ipv4(a, b, tcp(sp, dp, seq, ack, flags, payload))))

    syn, ack, psh, fin = 2, 16, 8, 1
    seg(True, c, 0, syn)
    seg(False, srv, c + 1, syn | ack)
    c, srv = c + 1, srv + 1
    seg(True, c, srv, ack)
    for req, resp in exchanges:
        seg(True, c, srv, psh | ack, req)
        c += len(req)
        seg(False, srv, c, psh | ack, resp)
        srv += len(resp)
    seg(True, c, srv, fin | ack)
    seg(False, srv, c + 1, fin | ack)
    seg(True, c + 1, srv + 1, ack)
    data = pcap_header()
    for i, fr in enumerate(frames):
        data += pcap_record(fr, ts_ns=1_700_000_000 * 10**9 + i * 10**6)
    with open(path, "wb") as f:
        f.write(data)


class LocalBuild(http.server.BaseHTTPRequestHandler):
    """The local build: its price differs from production's."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        body = (b'{"id": 1, "price": 12.75}' if self.path.startswith("/users")
                else b'{"ok": true}')
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def production_answer(body):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


class CompareRunPage(unittest.TestCase):
    """The page a real `replay --compare --diff-report` run writes, from a
    capture of production, against a local build on loopback."""

    def test_report_of_a_compare_run(self):
        tmp = tempfile.mkdtemp(prefix="tm-compare-page-")
        os.makedirs(OUTPUT, exist_ok=True)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LocalBuild)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            cap = os.path.join(tmp, "prod.pcap")
            http_capture(cap, 8080, [
                (b"GET /users/1 HTTP/1.1\r\nHost: shop\r\n\r\n",
                 production_answer(b'{"id": 1, "price": 12.5}')),
                (b"GET /health HTTP/1.1\r\nHost: shop\r\n\r\n",
                 production_answer(b'{"ok": true}')),
            ])
            page = os.path.join(OUTPUT, "compare-run.html")
            r = tmtest.run(["replay", cap, "-p", "8080", "--to",
                            f"127.0.0.1:{server.server_address[1]}",
                            "--diff-report", page, "--fail-on-diff"])
            err = r.stderr.decode(errors="replace")
            self.assertEqual(r.returncode, 4, err)
            self.assertIn("compared 2 exchanges: 1 same, 1 differ", err)
            r = chromium(os.path.join(tmp, "profile"), "--dump-dom",
                         "file://" + page)
            self.assertEqual(r.returncode, 0,
                             r.stderr.decode(errors="replace"))
            d = Dom(r.stdout.decode("utf-8"))
            self.assertEqual(sorted(d.texts("td", "ep")),
                             ["GET /health", "GET /users/{id}"])
            self.assertEqual(len(d.find("div", "bar")), 2)
            summaries = d.texts("summary")
            self.assertTrue(any(s.startswith("differGET /users/1")
                                for s in summaries), summaries)
            self.assertEqual(d.texts("mark")[:2], ['"price": 12.5',
                                                   '"price": 12.75'])
            png = os.path.join(OUTPUT, "compare-run.png")
            r = chromium(os.path.join(tmp, "profile-shot"),
                         "--screenshot=" + png, "--window-size=1280,1200",
                         "--hide-scrollbars", "file://" + page)
            self.assertEqual(r.returncode, 0,
                             r.stderr.decode(errors="replace"))
            self.assertGreater(os.path.getsize(png), 10000)
        finally:
            server.shutdown()
            server.server_close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if CHROMIUM is None:
        print("SKIP: chromium is not installed (scripts/deps.sh check "
              "installs it on Debian)")
        sys.exit(tmtest.SKIP)
    if not os.path.exists(TMDIFFPAGE):
        print(f"SKIP: {TMDIFFPAGE} is not built")
        sys.exit(tmtest.SKIP)
    unittest.main()
