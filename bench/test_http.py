#!/usr/bin/env python3
"""The H benchmarks' tools, checked against each other and against the
real tapmirror: bench_httpgen's capture is read back packet by packet
(sequence numbers, turns, the manifest's totals), bench_httptarget is
spoken to directly (it must answer each captured request with the
captured response, but for the Date value), the capture is replayed into
the target by tapmirror, bench_httpfloor speaks the same conversations,
and bench/run.py runs H1 and H2 once, small.

Binaries come from the environment (CTest sets them) or build/default."""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, "build", "default")


def binary(var, rel):
    return os.environ.get(var) or os.path.join(BUILD, rel)


TAPMIRROR = binary("TAPMIRROR", "tapmirror")
HTTPGEN = binary("HTTPGEN", "bench/bench_httpgen")
HTTPTARGET = binary("HTTPTARGET", "bench/bench_httptarget")
HTTPFLOOR = binary("HTTPFLOOR", "bench/bench_httpfloor")
PCAPREAD = binary("PCAPREAD", "bench/bench_pcapread")
TMGEN = binary("TMGEN", "tools/tmgen")
TMSINK = binary("TMSINK", "tools/tmsink")
PORT = 8080
DATE_RE = re.compile(rb"\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} "
                     rb"\d\d:\d\d:\d\d GMT\r\n")


def fnv64(data, h=0xCBF29CE484222325):
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def read_pcap(path):
    """[(from_client, conn key, flags, seq, ack, payload)] of an Ethernet
    IPv4 pcap, with the TCP checksum verified."""
    out = []
    with open(path, "rb") as fp:
        data = fp.read()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    assert struct.unpack_from("<I", data, 20)[0] == 1
    at = 24
    while at < len(data):
        _, _, caplen, wire = struct.unpack_from("<IIII", data, at)
        frame = data[at + 16:at + 16 + caplen]
        at += 16 + caplen
        assert caplen == wire
        ip = frame[14:]
        total = struct.unpack_from("!H", ip, 2)[0]
        src, dst = ip[12:16], ip[16:20]
        tcp = ip[20:total]
        sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB",
                                                                tcp)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        blob = pseudo + tcp + (b"\0" if len(tcp) % 2 else b"")
        s = sum(struct.unpack("!%dH" % (len(blob) // 2), blob))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        assert s == 0xFFFF, "bad TCP checksum"
        client = dport == PORT
        key = (src, sport) if client else (dst, dport)
        out.append((client, key, flags, seq, ack, tcp[(off >> 4) * 4:]))
    return out


def split_requests(stream):
    """Requests of a client stream (Content-Length bodies)."""
    reqs = []
    while stream:
        head, _, rest = stream.partition(b"\r\n\r\n")
        m = re.search(rb"\r\nContent-Length: (\d+)", head)
        n = int(m.group(1)) if m else 0
        reqs.append(head + b"\r\n\r\n" + rest[:n])
        stream = rest[n:]
    return reqs


def load_json(path):
    with open(path) as fp:
        return json.load(fp)


def without_date(b):
    return DATE_RE.sub(b"\r\nDate: -\r\n", b)


class Target:
    def __init__(self, tmp, expect):
        self.port_file = os.path.join(tmp, "port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.out = os.path.join(tmp, "target.json")
        fp = open(self.out, "w")
        self.proc = subprocess.Popen([HTTPTARGET, "--port-file",
                                      self.port_file, "--expect",
                                      str(expect)], stdout=fp)
        fp.close()
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            assert time.monotonic() < deadline and self.proc.poll() is None
            time.sleep(0.01)
        with open(self.port_file) as fp:
            self.port = int(fp.read())

    def result(self):
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        assert self.proc.returncode == 0
        return load_json(self.out)


class HttpBench(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="tm-httpbench-")
        cls.tmp = cls.tmpdir.name
        cls.pcap = os.path.join(cls.tmp, "h.pcap")
        cls.manifest_path = os.path.join(cls.tmp, "h.json")
        subprocess.run([HTTPGEN, "-o", cls.pcap, "-m", cls.manifest_path,
                        "--connections", "6", "--exchanges", "20",
                        "--concurrency", "4"], check=True, timeout=30)
        cls.man = load_json(cls.manifest_path)
        cls.packets = read_pcap(cls.pcap)
        cls.conns = {}
        for client, key, flags, seq, ack, payload in cls.packets:
            cls.conns.setdefault(key, []).append(
                (client, flags, seq, ack, payload))

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()

    def streams(self, pkts):
        c = b"".join(p[4] for p in pkts if p[0])
        s = b"".join(p[4] for p in pkts if not p[0])
        return c, s

    def test_capture_is_keep_alive_http_in_turns(self):
        man = self.man
        self.assertEqual(len(self.conns), 6)
        self.assertEqual(man["packets"], len(self.packets))
        total_req, client_bytes, server_bytes, fnv_sum = 0, 0, 0, 0
        kinds = {"GET": 0, "POST": 0, "health": 0}
        for pkts in self.conns.values():
            flags = [p[1] for p in pkts]
            self.assertEqual(flags[:3], [0x02, 0x12, 0x10])  # handshake
            self.assertEqual(flags[-3:], [0x11, 0x11, 0x10])  # FIN, FIN, ACK
            cisn, sisn = pkts[0][2], pkts[1][2]
            cseen, sseen = 0, 0
            for client, fl, seq, ack, payload in pkts[3:-3]:
                if client:
                    # In order, and acknowledging every answer so far: a
                    # request is sent only after the previous response.
                    self.assertEqual(seq, (cisn + 1 + cseen) & 0xFFFFFFFF)
                    self.assertEqual(ack, (sisn + 1 + sseen) & 0xFFFFFFFF)
                    cseen += len(payload)
                else:
                    self.assertEqual(seq, (sisn + 1 + sseen) & 0xFFFFFFFF)
                    self.assertEqual(ack, (cisn + 1 + cseen) & 0xFFFFFFFF)
                    sseen += len(payload)
            m = 0xFFFFFFFF
            # The client closes after its last answer; the server follows.
            self.assertEqual([p[2:4] for p in pkts[-3:]], [
                ((cisn + 1 + cseen) & m, (sisn + 1 + sseen) & m),
                ((sisn + 1 + sseen) & m, (cisn + 2 + cseen) & m),
                ((cisn + 2 + cseen) & m, (sisn + 2 + sseen) & m)])
            c, s = self.streams(pkts)
            reqs = split_requests(c)
            resps = re.findall(rb"HTTP/1\.1 200 OK\r\n", s)
            self.assertEqual(len(reqs), 20)
            self.assertEqual(len(resps), 20)
            for r in reqs:
                line = r.split(b"\r\n", 1)[0]
                if line.startswith(b"GET /health "):
                    kinds["health"] += 1
                elif line.startswith(b"POST "):
                    kinds["POST"] += 1
                    body = r.split(b"\r\n\r\n", 1)[1]
                    json.loads(body)
                else:
                    self.assertTrue(line.startswith(b"GET /api/v1/items/"))
                    kinds["GET"] += 1
            bodies = re.findall(rb"\r\n\r\n(\{.*?\})(?=HTTP/|$)", s)
            self.assertEqual(len(bodies), 20)
            for body in bodies:
                json.loads(body)
            total_req += len(reqs)
            client_bytes += len(c)
            server_bytes += len(s)
            fnv_sum = (fnv_sum + fnv64(c)) & 0xFFFFFFFFFFFFFFFF
        self.assertEqual(man["requests"], total_req)
        self.assertEqual(man["get_requests"], kinds["GET"])
        self.assertEqual(man["post_requests"], kinds["POST"])
        self.assertEqual(man["health_requests"], kinds["health"])
        self.assertGreater(kinds["POST"], 0)
        self.assertGreater(kinds["health"], 0)
        self.assertEqual(man["client_bytes"], client_bytes)
        self.assertEqual(man["server_bytes"], server_bytes)
        self.assertEqual(man["client_fnv_sum"], "%016x" % fnv_sum)
        # Connections overlap: the capture interleaves them.
        keys = [p[1] for p in self.packets if p[5]]
        self.assertGreater(sum(1 for a, b in zip(keys, keys[1:]) if a != b),
                           len(self.conns))

    def test_target_answers_as_the_capture_did(self):
        target = Target(self.tmp, len(self.conns) + 1)
        expect_requests = 0
        for pkts in self.conns.values():
            c, s = self.streams(pkts)
            with socket.create_connection(("127.0.0.1", target.port)) as sk:
                # All requests in one write: answered in order.
                sk.sendall(c)
                sk.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    chunk = sk.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            self.assertEqual(len(got), len(s))
            self.assertEqual(without_date(got), without_date(s))
            expect_requests += 20
        # A body it cannot frame: no answer, the connection closed, counted.
        with socket.create_connection(("127.0.0.1", target.port)) as sk:
            sk.sendall(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                       b"\r\n5\r\nhello\r\n0\r\n\r\n")
            self.assertEqual(sk.recv(100), b"")
        res = target.result()
        self.assertEqual(res["connections"], len(self.conns) + 1)
        self.assertEqual(res["requests"], expect_requests)
        self.assertEqual(res["bad_requests"], 1)
        self.assertEqual(res["response_bytes"], self.man["server_bytes"])

    def test_replay_delivers_every_request_in_turns(self):
        target = Target(self.tmp, len(self.conns))
        stats = os.path.join(self.tmp, "stats.json")
        p = subprocess.run([TAPMIRROR, "replay", self.pcap, "-p", str(PORT),
                            "--to", ":%d" % target.port, "--stats-json",
                            stats, "-q"], timeout=60)
        self.assertEqual(p.returncode, 0)
        res = target.result()
        man = self.man
        self.assertEqual(res["connections"], man["connections"])
        self.assertEqual(res["requests"], man["requests"])
        self.assertEqual(res["bad_requests"], 0)
        self.assertEqual(res["request_bytes"], man["client_bytes"])
        self.assertEqual(res["request_fnv_sum"], man["client_fnv_sum"])
        st = load_json(stats)
        tg = st["targets"][0]
        self.assertEqual(st["flows"]["completed"], man["connections"])
        # Each request waited for the target's whole answer, which is as
        # long as production's: no turn ended by quiet or by timeout.
        self.assertEqual(tg["turns"], man["requests"])
        self.assertEqual(tg["turns_quiet"], 0)
        self.assertEqual(tg["turns_timed_out"], 0)
        self.assertEqual(tg["bytes_received"], man["server_bytes"])

    def test_floor_speaks_the_same_conversations(self):
        target = Target(self.tmp, 6)
        p = subprocess.run([HTTPFLOOR, "--port", str(target.port),
                            "--connections", "6", "--exchanges", "20",
                            "--concurrency", "4"], stdout=subprocess.PIPE,
                           timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(),
                         r"^connections 6 requests 120 mismatches 0 ")
        res = target.result()
        self.assertEqual(res["request_fnv_sum"], self.man["client_fnv_sum"])
        self.assertEqual(res["request_bytes"], self.man["client_bytes"])

    def test_run_py_times_or_skips_each_variant(self):
        out = os.path.join(self.tmp, "results.json")
        scratch = os.path.join(self.tmp, "scratch")
        p = subprocess.run(
            [sys.executable, os.path.join(HERE, "run.py"), "--tapmirror",
             TAPMIRROR, "--tmgen", TMGEN, "--tmsink", TMSINK, "--pcapread",
             PCAPREAD, "--httpgen", HTTPGEN, "--httptarget", HTTPTARGET,
             "--httpfloor", HTTPFLOOR, "--quick", "--runs", "1", "--only",
             "H1,H2", "--scratch", scratch, "--out", out],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout.decode()[-3000:])
        res = load_json(out)["results"]
        helptext = subprocess.run([TAPMIRROR, "replay", "--help"],
                                  stdout=subprocess.PIPE).stdout.decode()
        for name, variant in (("H1", "compare"), ("H2", "filtered")):
            r = res[name]
            plain = r["variants"]["plain"]
            self.assertTrue(plain["check"]["ok"], plain["check"])
            self.assertTrue(plain["all_runs_ok"])
            self.assertGreater(plain["requests_per_s"], 0)
            self.assertLessEqual(plain["max_peak_rss_bytes"],
                                 r["max_buffer_bytes"])
            v = r["variants"][variant]
            missing = [o for o in v["extra_args"] if o.startswith("--")
                       and not re.search(re.escape(o) + r"(?![\w-])",
                                         helptext)]
            if missing:
                # Never run without the options it is about.
                self.assertEqual(v["skipped"],
                                 "the binary has no " + ", ".join(missing))
                self.assertNotIn("runs", v)
                self.assertIsNone(r["ratio"])
            else:
                self.assertNotIn("skipped", v)
                self.assertTrue(v["check"]["ok"], v["check"])
                self.assertAlmostEqual(
                    r["ratio"], plain["wall_s"] / v["wall_s"])
        # The captures stay in the scratch directory.
        self.assertTrue(any(f.endswith(".pcap") for f in os.listdir(scratch)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
