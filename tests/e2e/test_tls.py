#!/usr/bin/env python3
"""TLS detection: real TLS client connections captured live on the
loopback interface are counted and not replayed (unless --replay-tls);
plaintext connections replay as before."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import tmtest as t
from test_capture import capture_permitted, wait_line

N_TLS = 3
N_PLAIN = 2
REQUEST = (b"GET /tls-probe HTTP/1.1\r\nHost: localhost\r\n"
           b"Connection: close\r\n\r\n")
REASON = None


class TlsService:
    """A Python ssl server on loopback that answers one request per
    connection."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    def _handle(self, conn):
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as s:
                s.settimeout(20)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    d = s.recv(4096)
                    if not d:
                        break
                    buf += d
                self.requests.append(buf)
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                          b"Connection: close\r\n\r\nok")
        except (OSError, ssl.SSLError):
            conn.close()

    def close(self):
        self.sock.close()


def tls_client(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(REQUEST)
            answer = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                answer += d
            return answer


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global REASON
        if shutil.which("openssl") is None:
            REASON = "openssl is not installed"
        else:
            REASON = capture_permitted()
        if REASON:
            print(f"skipping TLS capture tests: {REASON}")
            return
        cls.tmp = t.TempDir()
        cls.cert, cls.key = cls.tmp("cert.pem"), cls.tmp("key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", cls.key, "-out", cls.cert,
                        "-days", "1", "-subj", "/CN=localhost"],
                       check=True, timeout=60, capture_output=True)
        # One live capture of real TLS clients, one of plaintext clients:
        # every test replays these files.
        tls = TlsService(cls.cert, cls.key)
        cls.tls_port = tls.port
        cls.tls_cap = cls.tmp("tls.pcap")
        p = cls.capture(tls.port, cls.tls_cap)
        for _ in range(N_TLS):
            assert tls_client(tls.port).endswith(b"ok")
        cls.stop(p)
        tls.close()
        assert len(tls.requests) == N_TLS, tls.requests

        plain = t.Service()
        cls.plain_port = plain.port
        cls.plain_cap = cls.tmp("plain.pcap")
        cls.plain_payloads = [REQUEST + b"X-N: %d\r\n" % i
                              for i in range(N_PLAIN)]
        p = cls.capture(plain.port, cls.plain_cap)
        for data in cls.plain_payloads:
            t.client_send(plain.port, data)
        cls.stop(p)
        plain.close()

    @classmethod
    def tearDownClass(cls):
        if not REASON:
            cls.tmp.cleanup()

    @staticmethod
    def capture(port, out):
        p = t.start(["capture", "-i", "lo", "-p", port, "-o", out],
                    stdin=subprocess.DEVNULL)
        if wait_line(p, "capturing", 15) is None:
            p.kill()
            raise RuntimeError("capture did not start")
        return p

    @staticmethod
    def stop(p):
        time.sleep(0.3 * t.SLOW)  # the last FINs reach the capture
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30 * t.SLOW)
        assert p.returncode == 0, err

    def setUp(self):
        if REASON:
            self.skipTest(REASON)
        self.receiver = t.Receiver()

    def tearDown(self):
        self.receiver.close()

    def replay(self, cap, port, *extra):
        stats = self.tmp(f"stats-{id(self)}.json")
        r = t.run(["replay", cap, "-p", port, "--to", self.receiver.to,
                   "--stats-json", stats, *extra], timeout=60)
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 0, err)
        return err, t.read_json(stats)

    def received(self, n):
        """The receiver's connections once `n` have ended (or 5 s)."""
        deadline = time.monotonic() + 5 * t.SLOW
        while time.monotonic() < deadline:
            with self.receiver.lock:
                if len(self.receiver.conns) >= n:
                    break
            time.sleep(0.05)
        time.sleep(0.2)
        return [self.receiver.data(i)
                for i in range(len(self.receiver.conns))]

    def test_tls_connections_are_counted_and_not_replayed(self):
        err, st = self.replay(self.tls_cap, self.tls_port)
        self.assertEqual(st["flows"]["tls_connections"], N_TLS, err)
        self.assertIn(f"{N_TLS} connections were TLS and were not "
                      "replayed", err)
        time.sleep(0.5 * t.SLOW)
        # The start-up probe of the target may connect; nothing is sent.
        self.assertEqual(b"".join(self.received(0)), b"")

    def test_replay_tls_sends_the_client_hello(self):
        err, st = self.replay(self.tls_cap, self.tls_port, "--replay-tls")
        self.assertEqual(st["flows"]["tls_connections"], N_TLS, err)
        self.assertIn("(--replay-tls)", err)
        self.assertNotIn("not replayed", err)
        got = self.received(N_TLS)
        self.assertEqual(len(got), N_TLS)
        for data in got:
            # A TLS handshake record (0x16, version 3.x) whose first
            # message is a ClientHello (type 1).
            self.assertGreater(len(data), 6)
            self.assertEqual(data[0], 0x16)
            self.assertEqual(data[1], 3)
            self.assertEqual(data[5], 1)
            self.assertNotIn(b"/tls-probe", data)

    def test_live_capture_counts_tls_and_replays_it_only_when_asked(self):
        # The capture command replays live: the same rule as a file.
        for extra in ([], ["--replay-tls"]):
            with self.subTest(extra=extra):
                receiver = t.Receiver()
                tls = TlsService(self.cert, self.key)
                stats = self.tmp(f"live-{len(extra)}.json")
                p = t.start(["capture", "-i", "lo", "-p", tls.port,
                             "-o", self.tmp("live.pcap"), "--to", receiver.to,
                             "--stats-json", stats, *extra],
                            stdin=subprocess.DEVNULL)
                self.assertIsNotNone(wait_line(p, "capturing", 15))
                for _ in range(N_TLS):
                    self.assertTrue(tls_client(tls.port).endswith(b"ok"))
                time.sleep(0.3 * t.SLOW)
                p.send_signal(signal.SIGINT)
                _, err = p.communicate(timeout=30 * t.SLOW)
                err = err.decode(errors="replace")
                tls.close()
                self.assertEqual(p.returncode, 0, err)
                self.assertEqual(t.read_json(stats)["flows"]["tls_connections"],
                                 N_TLS, err)
                time.sleep(0.3 * t.SLOW)  # the receiver reads the last
                got = [receiver.data(i) for i in range(len(receiver.conns))]
                receiver.close()
                if extra:
                    self.assertIn("(--replay-tls)", err)
                    hellos = [d for d in got if d]
                    self.assertEqual(len(hellos), N_TLS, err)
                    for data in hellos:
                        self.assertEqual(data[0], 0x16)
                        self.assertEqual(data[5], 1)
                else:
                    self.assertIn(f"{N_TLS} connections were TLS and were "
                                  "not replayed", err)
                    self.assertEqual(b"".join(got), b"", err)

    def test_plaintext_is_replayed_as_before(self):
        err, st = self.replay(self.plain_cap, self.plain_port)
        self.assertEqual(st["flows"]["tls_connections"], 0)
        self.assertNotIn("TLS", err)
        got = self.received(N_PLAIN)
        self.assertEqual(sorted(got), sorted(self.plain_payloads))


if __name__ == "__main__":
    t.main()
