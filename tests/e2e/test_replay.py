#!/usr/bin/env python3
"""tapmirror replay: generated captures replayed to a loopback receiver
that checks every connection's bytes exactly against the capture's
client streams."""
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
import unittest

import tmtest as t

sys.path.insert(0, os.path.join(t.ROOT, "tests", "lib"))
from capbuild import eth, ipv4, pcap_header, pcap_record, tcp  # noqa: E402


class PeerRecorder:
    """Accepts connections on 127.0.0.1 and records, in accept order, each
    one's peer address and byte count (read to EOF)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.sock.setblocking(False)
        self.to = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.peers = []  # [address, bytes, finished]
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, None)
        while not self.stopped:
            for key, _ in sel.select(0.1):
                if key.data is None:
                    try:
                        conn, addr = self.sock.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    rec = [addr[0], 0, False]
                    with self.lock:
                        self.peers.append(rec)
                    sel.register(conn, selectors.EVENT_READ, rec)
                    continue
                try:
                    d = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    d = b""
                with self.lock:
                    key.data[1] += len(d)
                    if not d:
                        key.data[2] = True
                if not d:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()

    def wait(self, count, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if sum(1 for p in self.peers if p[2]) >= count:
                    return list(self.peers)
            time.sleep(0.05)
        with self.lock:
            return list(self.peers)

    def close(self):
        self.stopped = True
        self.sock.close()


class Replay(unittest.TestCase):
    def setUp(self):
        self.tmp = t.TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    def replay(self, name, gen_args, extra=(), expect_exit=0, fmt="pcap"):
        """Generates a capture, replays it, and checks every stream and the
        statistics against the generator's manifest."""
        cap, man = t.gen(self.tmp, name, *gen_args, fmt_ext=fmt)
        flows = len(man["flows"])
        stats = self.tmp(f"{name}-stats.json")
        sink = t.Sink(self.tmp, expect=flows)
        r = t.run(["replay", cap, "-p", man["port"], "--to", sink.to,
                   "--stats-json", stats, *extra], timeout=120)
        self.assertEqual(r.returncode, expect_exit, r.stderr.decode())
        sink.wait(timeout=30)
        self.assertEqual(sink.streams(), t.expected_streams(man),
                         f"{name}: delivered streams differ from the capture")
        st = t.read_json(stats)
        self.assertEqual(st["flows"]["seen"], flows)
        self.assertEqual(st["flows"]["payload_bytes"], man["totals"]["bytes"])
        self.assertEqual(st["flows"]["gaps"], man["totals"]["gaps"])
        self.assertEqual(st["flows"]["gap_bytes"], man["totals"]["gap_bytes"])
        tgt = st["targets"][0]
        self.assertEqual(tgt["connections"], flows)
        self.assertEqual(tgt["bytes_delivered"], man["totals"]["bytes"])
        self.assertEqual(tgt["flows_dropped"], 0)
        self.assertEqual(tgt["dial_failures"], 0)
        return st, man

    def test_basic(self):
        st, man = self.replay("basic", ["--flows", 20, "--size-min", 1,
                                        "--size-max", 200000])
        self.assertEqual(st["flows"]["completed"], 20)
        self.assertEqual(st["source"]["packets"], man["totals"]["packets"])
        self.assertEqual(st["source"]["link_type"], "EN10MB")
        self.assertFalse(st["source"]["truncated"])

    def test_reorder_retransmit_overlap(self):
        self.replay("reorder", ["--flows", 200, "--concurrency", 50,
                                "--size-min", 1000, "--size-max", 100000,
                                "--random-segments", "--reorder", 10,
                                "--retransmit", 10, "--seed", 7])

    def test_capture_loss_is_skipped_and_counted(self):
        st, man = self.replay("loss", ["--flows", 100, "--concurrency", 20,
                                       "--size-min", 20000, "--size-max",
                                       200000, "--loss", 3, "--reorder", 3,
                                       "--seed", 3])
        self.assertGreater(man["totals"]["gaps"], 0)

    def test_loss_without_acks_in_capture(self):
        self.replay("loss-noack", ["--flows", 50, "--concurrency", 10,
                                   "--size", 50000, "--loss", 4, "--no-acks",
                                   "--seed", 5])

    def test_sequence_wrap(self):
        self.replay("wrap", ["--flows", 30, "--size", 100000, "--isn-wrap",
                             "--reorder", 5, "--retransmit", 5])

    def test_ipv6_with_options(self):
        self.replay("ipv6", ["--flows", 30, "--ipv6", "--ip-options",
                             "--tcp-options", "--reorder", 5])

    def test_ipv4_options(self):
        self.replay("ipv4opt", ["--flows", 30, "--ip-options",
                                "--tcp-options"])

    def test_link_types(self):
        for link in ("ethernet", "vlan", "qinq", "sll", "sll2", "raw", "null",
                     "loop", "ipv4"):
            with self.subTest(link=link):
                st, _ = self.replay(f"link-{link}", ["--flows", 8, "--link",
                                                     link, "--reorder", 10])
        for link in ("ethernet", "vlan", "sll2", "raw", "null", "loop",
                     "ipv6"):
            with self.subTest(link=link + "/ipv6"):
                self.replay(f"link6-{link}", ["--flows", 8, "--ipv6",
                                              "--link", link])

    def test_pcap_variants(self):
        self.replay("nanos", ["--flows", 10, "--nanos"])
        self.replay("bigendian", ["--flows", 10, "--big-endian"])

    def test_pcapng_with_two_link_types(self):
        st, _ = self.replay("ng", ["--flows", 40, "--format", "pcapng",
                                   "--pcapng-interfaces", 2, "--nanos",
                                   "--reorder", 5], fmt="pcapng")
        self.assertEqual(st["flows"]["completed"], 40)

    def test_snaplen_cut_records_leave_gaps(self):
        st, man = self.replay("snap", ["--flows", 10, "--size", 20000,
                                       "--snaplen", 200])
        self.assertGreater(st["flows"]["gaps"], 0)

    def test_midstream_rst_and_tfo(self):
        self.replay("mid", ["--flows", 40, "--midstream", 50, "--rst", 30,
                            "--concurrency", 10])
        self.replay("tfo", ["--flows", 20, "--tfo"])

    def test_unrelated_traffic_is_ignored(self):
        self.replay("other", ["--flows", 20, "--other-traffic", 30])

    def test_thousands_of_concurrent_flows(self):
        self.replay("many", ["--flows", 5000, "--concurrency", 2000,
                             "--size-min", 100, "--size-max", 3000,
                             "--response", 200, "--reorder", 2])

    def test_busy_runs_spread_loopback_sources(self):
        """A quiet run connects from 127.0.0.1; past 2,048 connections a
        minute to a loopback target, connections come from 127.0.0.2-251
        (a port range each, so ephemeral ports never run out), and every
        connection is still complete."""
        cap, man = t.gen(self.tmp, "busy", "--flows", 3000,
                         "--concurrency", 50, "--size", 100)
        rec = PeerRecorder()
        try:
            r = t.run(["replay", cap, "-p", man["port"], "--to", rec.to,
                       "-v"], timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
            peers = rec.wait(3000)
        finally:
            rec.close()
        self.assertEqual(len(peers), 3000)
        self.assertTrue(all(p[1] == 100 and p[2] for p in peers))
        # The start-up probe's connection and the first 2,048 dials come
        # from 127.0.0.1 (fewer if some were redialled), every later one
        # from 127.0.0.2-251. Counted, not ordered: a SYN the receiver's
        # backlog dropped is accepted a retransmission later.
        local = sum(1 for p in peers if p[0] == "127.0.0.1")
        self.assertGreaterEqual(local, 1900)
        self.assertLessEqual(local, 2049)
        others = {p[0] for p in peers if p[0] != "127.0.0.1"}
        self.assertGreater(len(others), 200)
        self.assertTrue(all(a.startswith("127.0.0.") for a in others))
        self.assertIn(b"127.0.0.2-251", r.stderr)

    def test_every_target_gets_every_flow(self):
        cap, man = t.gen(self.tmp, "multi", "--flows", 30, "--concurrency", 8)
        sinks = [t.Sink(self.tmp, expect=30) for _ in range(3)]
        args = ["replay", cap, "-p", man["port"]]
        for s in sinks:
            args += ["--to", s.to]
        r = t.run(args)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        for s in sinks:
            s.wait()
            self.assertEqual(s.streams(), t.expected_streams(man))

    def test_stdin_pipe(self):
        cap, man = t.gen(self.tmp, "stdin", "--flows", 50, "--concurrency", 10,
                         "--reorder", 5)
        sink = t.Sink(self.tmp, expect=50)
        with open(cap, "rb") as f:
            data = f.read()
        # A pipe, not a redirected file: standard input is a live stream.
        p = t.start(["replay", "-", "-p", man["port"], "--to", sink.to],
                    stdin=subprocess.PIPE)
        out, err = p.communicate(data, timeout=60 * t.SLOW)
        self.assertEqual(p.returncode, 0, err.decode())
        sink.wait()
        self.assertEqual(sink.streams(), t.expected_streams(man))

    def test_stdin_stream_clock_jumps(self):
        """A live stream (a pipe from a running tcpdump) whose clock jumps:
        one record forged a year ahead, then the source's clock stepped
        back an hour. Holes are still skipped after --gap-timeout while
        the stream stays open, and no open connection is ended early."""
        port, srv = 8080, "10.0.0.100"
        year, hour = 365 * 86400 * 10**9, 3600 * 10**9

        def seg(cport, seq, flags, data=b"", to_server=True):
            if to_server:
                return eth(ipv4("10.0.0.1", srv, tcp(cport, port, seq, 1,
                                                      flags, data)))
            return eth(ipv4(srv, "10.0.0.1", tcp(port, cport, 1, seq,
                                                  flags, data)))

        rec = t.Receiver()
        stats = self.tmp("clock-stats.json")
        out = self.tmp("clock-out.pcap")
        p = t.start(["replay", "-", "-p", port, "--to", rec.to,
                     "--gap-timeout", "300ms", "--stats-json", stats,
                     "-o", out], stdin=subprocess.PIPE)
        written = []

        def send(frame, skew=0):
            data = pcap_record(frame, time.time_ns() + skew)
            written.append(data)
            p.stdin.write(data)
            p.stdin.flush()

        def arrived(want, timeout):
            deadline = time.monotonic() + timeout * t.SLOW
            while time.monotonic() < deadline:
                if any(want in rec.data(i) for i in range(len(rec.conns))):
                    return True
                time.sleep(0.02)
            return False

        try:
            p.stdin.write(pcap_header())
            written.append(pcap_header())
            # Connection A is open when the forged record comes.
            send(seg(41000, 100, 0x02))
            send(seg(41000, 101, 0x12, to_server=False))
            send(seg(41000, 101, 0x18, b"A1"))
            send(seg(41002, 500, 0x02), skew=year)
            # Connection B loses 10 bytes in the capture.
            send(seg(41001, 200, 0x02))
            send(seg(41001, 201, 0x18, b"B1"))
            send(seg(41001, 213, 0x18, b"B3"))
            self.assertTrue(arrived(b"B3", 5),
                            "a hole after a future record was not skipped "
                            "while the stream was open")
            send(seg(41000, 103, 0x18, b"A2"))
            # The source's clock steps back an hour; C loses 10 bytes.
            send(seg(41003, 300, 0x02), skew=-hour)
            send(seg(41003, 301, 0x18, b"C1"), skew=-hour)
            send(seg(41003, 313, 0x18, b"C3"), skew=-hour)
            self.assertTrue(arrived(b"C3", 5),
                            "a hole after the clock stepped back was not "
                            "skipped while the stream was open")
            for cport, seq in ((41000, 105), (41001, 215), (41003, 315)):
                send(seg(cport, seq, 0x11), skew=-hour)
        finally:
            p.stdin.close()
            p.wait(timeout=30 * t.SLOW)
            err = p.stderr.read()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(p.returncode, 0, err.decode())
        self.assertRegex(err.decode(), r"stamped \d+ s ahead of this "
                         r"machine's clock")
        st = t.read_json(stats)
        self.assertEqual(st["source"]["timestamps_clamped"], 1)
        self.assertEqual(st["flows"]["gaps"], 2)
        self.assertEqual(st["flows"]["expired"], 0)
        # A was never ended early: one connection with both requests.
        got = sorted(rec.data(i) for i in range(len(rec.conns)))
        self.assertEqual([g for g in got if g],
                         [b"A1A2", b"B1B3", b"C1C3"])
        # The output keeps every record as captured, the forged one too.
        self.assertEqual(t.read_bytes(out), b"".join(written))
        rec.close()

    def test_output_is_a_byte_copy_of_the_input(self):
        for fmt, args in (("pcap", []), ("pcapng", ["--format", "pcapng",
                                                    "--pcapng-interfaces",
                                                    2])):
            with self.subTest(fmt=fmt):
                cap, man = t.gen(self.tmp, f"copy-{fmt}", "--flows", 10,
                                 *args, fmt_ext=fmt)
                out = self.tmp(f"copy-out.{fmt}")
                sink = t.Sink(self.tmp, expect=10)
                r = t.run(["replay", cap, "-p", man["port"], "--to", sink.to,
                           "-o", out])
                self.assertEqual(r.returncode, 0, r.stderr.decode())
                sink.wait()
                self.assertEqual(t.read_bytes(cap), t.read_bytes(out))
                self.assertEqual(os.stat(out).st_mode & 0o777, 0o600)

    def test_filter_selects_flows(self):
        cap, man = t.gen(self.tmp, "filter", "--flows", 20)
        first = man["flows"][0]
        host, port = first["client"].rsplit(":", 1)
        sink = t.Sink(self.tmp, expect=1)
        out = self.tmp("filtered.pcap")
        r = t.run(["replay", cap, "-p", man["port"], "--to", sink.to, "-o",
                   out, "-f", f"host {host} and port {port}"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        sink.wait()
        self.assertEqual(sink.streams(), [(first["bytes"], first["fnv64"])])

    def test_pace(self):
        # 40 packets 50 ms apart: about 2 s of capture time.
        cap, man = t.gen(self.tmp, "pace", "--flows", 4, "--size", 2000,
                         "--step-us", 50000)
        span = (man["totals"]["packets"] - 1) * 0.05
        timings = {}
        for pace in ("fast", "realtime", "2x"):
            sink = t.Sink(self.tmp, expect=4)
            t0 = time.monotonic()
            r = t.run(["replay", cap, "-p", man["port"], "--to", sink.to,
                       "--pace", pace, "-q"])
            timings[pace] = time.monotonic() - t0
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            sink.wait()
            self.assertEqual(sink.streams(), t.expected_streams(man))
        # Start-up costs the same in every mode (much more under
        # valgrind): fast must save at least half the capture's span.
        self.assertLess(timings["fast"], timings["realtime"] - span / 2)
        self.assertGreater(timings["realtime"], span * 0.9)
        self.assertGreater(timings["2x"], span * 0.45)
        self.assertLess(timings["2x"], timings["realtime"])


if __name__ == "__main__":
    t.main()
